//! `realtime serve` runs the reference server as the `realtime-server` binary does,
//! logging as its settings say.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn serve(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_realtime"));
    command
        .arg("serve")
        .current_dir(dir)
        .env("REALTIME_CLI_CONFIG", "/dev/null")
        .env("REALTIME_LISTEN", "127.0.0.1:0")
        .env("REALTIME_STORE", format!("sqlite://{}", dir.join("realtime.db").display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn serve_writes_json_logs_when_log_format_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path()).env("REALTIME_LOG", "info").env("REALTIME_LOG_FORMAT", "json").spawn().unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap()).lines();
    let base = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line()).await.unwrap().unwrap().unwrap();
        if let Some(url) = line.strip_prefix("realtime-server listening on ") {
            break url.trim().to_owned();
        }
    };
    let refused = reqwest::get(format!("{base}/v1/account")).await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let mut logs = BufReader::new(server.stderr.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), logs.next_line())
            .await
            .expect("a request line within 10 s")
            .unwrap()
            .expect("the server keeps logging");
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("a JSON line: {line}"));
        if entry["fields"]["message"] == "request" {
            assert_eq!(entry["fields"]["status"], 401, "{line}");
            break;
        }
    }
}

#[tokio::test]
async fn serve_refuses_a_log_setting_that_is_not_a_filter() {
    let dir = tempfile::tempdir().unwrap();
    let output = serve(dir.path()).env("REALTIME_LOG", "realtime_server=loud").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "a configuration mistake: {stderr}");
    assert!(stderr.contains("log = \"realtime_server=loud\""), "{stderr}");
}
