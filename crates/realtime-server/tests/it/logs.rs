//! What the real binary logs: per request one line with the method, the route template,
//! the status, the latency, the request id and the account; per connection a line when
//! it opens and one when it closes, with the code and the reason; never a key or token.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::Ws;

#[tokio::test]
async fn each_request_is_one_json_line_naming_its_account_but_not_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_realtime-server"))
        .env("REALTIME_LISTEN", "127.0.0.1:0")
        .env("REALTIME_STORE", format!("sqlite://{}", dir.path().join("realtime.db").display()))
        .env("REALTIME_LOG", "info")
        .env("REALTIME_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the server binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut base, mut key) = (None, None);
    while base.is_none() || key.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line()).await.unwrap().unwrap().unwrap();
        if let Some(url) = line.strip_prefix("realtime-server listening on ") {
            base = Some(url.trim().to_owned());
        }
        if let Some((_, found)) = line.split_once("dev api key: ") {
            key = Some(found.trim().to_owned());
        }
    }
    let (base, key) = (base.unwrap(), key.unwrap());
    let account: Value = reqwest::Client::new()
        .get(format!("{base}/v1/account"))
        .bearer_auth(&key)
        .header("x-request-id", "req-logs-1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let account_id = account["account_id"].as_str().unwrap().to_owned();

    let token: Value = reqwest::Client::new()
        .post(format!("{base}/v1/realtime/token/issue"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"client_id": "logged", "channels": ["room"], "capabilities": ["subscribe"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ws = Ws::connect(&token).await;
    ws.close().await;

    let mut logs = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut next = async |message: &str| loop {
        let line = tokio::time::timeout(Duration::from_secs(10), logs.next_line())
            .await
            .unwrap_or_else(|_| panic!("a {message:?} line within 10 s"))
            .unwrap()
            .expect("the server keeps logging");
        assert!(!line.contains(&key), "the API key never prints: {line}");
        assert!(!line.contains(token["token"].as_str().unwrap()), "the token never prints: {line}");
        assert!(!line.contains('\u{1b}'), "no ANSI codes in JSON mode: {line}");
        let entry: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("a JSON line: {line}"));
        if entry["fields"]["message"] == message {
            break entry;
        }
    };
    let line = next("request").await;
    assert_eq!(line["fields"]["route"], "/v1/account");
    assert_eq!(line["fields"]["status"], 200);
    assert!(line["fields"]["latency_ms"].as_f64().is_some());
    assert_eq!(line["span"]["request_id"], "req-logs-1");
    assert_eq!(line["span"]["account_id"], account_id, "{line}");

    let opened = next("connection opened").await;
    assert_eq!(
        (&opened["fields"]["account_id"], &opened["fields"]["client_id"]),
        (&json!(account_id), &json!("logged"))
    );
    let closed = next("connection closed").await;
    assert_eq!(closed["fields"]["connection_id"], opened["fields"]["connection_id"]);
    assert_eq!(closed["fields"]["code"], 1000);
    assert_eq!(closed["fields"]["reason"], "closed by the client");
    assert_eq!((&opened["fields"]["protocol"], &closed["fields"]["protocol"]), (&json!("native"), &json!("native")));
}

/// The real binary on the store in `dir`, logging JSON at `info`.
fn server(dir: &std::path::Path) -> tokio::process::Child {
    crate::support::server_binary(dir)
        .env("REALTIME_LOG", "info")
        .env("REALTIME_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the server binary starts")
}

#[tokio::test]
async fn the_first_start_prints_a_ready_export_line_and_a_later_one_logs_how_to_get_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = server(dir.path());
    let mut stdout = BufReader::new(first.stdout.take().unwrap()).lines();
    let export = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line()).await.unwrap().unwrap().unwrap();
        if line.starts_with("export ") {
            break line;
        }
    };
    let key = export.strip_prefix("export REALTIME_API_KEY=").unwrap_or_else(|| panic!("{export}"));
    assert!(key.starts_with("ifr_pk_") && !key.contains(' '), "ready to paste: {export}");
    first.kill().await.unwrap();

    let mut later = server(dir.path());
    let mut logs = BufReader::new(later.stderr.take().unwrap()).lines();
    let hint = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), logs.next_line())
            .await
            .expect("the hint within 30 s")
            .unwrap()
            .expect("the server keeps logging");
        let entry: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("only JSON on stderr: {line}"));
        if entry["fields"]["message"].as_str().is_some_and(|message| message.contains("realtime account create")) {
            break entry;
        }
    };
    assert_eq!(hint["level"], "INFO", "{hint}");
    later.kill().await.unwrap();
    let mut printed = String::new();
    let mut stdout = BufReader::new(later.stdout.take().unwrap()).lines();
    while let Ok(Some(line)) = stdout.next_line().await {
        printed.push_str(&line);
    }
    assert!(printed.contains("listening on") && !printed.contains("ifr_pk_"), "no key the second time: {printed}");
}
