//! The debug console: its event stream over real HTTP shows an account's publishes,
//! subscribes, presence, revocations and 402s and nothing of other accounts; it is absent
//! when turned off; and its page, driven in Debian's headless Chromium, logs in and shows
//! a publish made through the REST API while it is open (saving `target/console.png`).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Env, PROMPTLY};

/// A reader of `GET /console/events`.
struct Console {
    response: reqwest::Response,
    buffer: String,
}

impl Console {
    /// Opens the stream as `key` and waits for its `ready` event.
    async fn open(env: &Env, key: &str) -> Console {
        let response = env.http.get(env.url("/console/events")).bearer_auth(key).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let mut console = Console { response, buffer: String::new() };
        let (name, data) = console.next().await.expect("a ready event");
        assert_eq!(name, "ready", "{data}");
        console
    }

    /// The next event (name, JSON data), skipping keep-alive comments; `None` when none
    /// comes promptly.
    async fn next(&mut self) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + PROMPTLY;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = "message".to_owned();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                    }
                }
                if !data.is_empty() {
                    return Some((name, serde_json::from_str(&data.join("\n")).unwrap()));
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?.unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Reads until an event `matches`; panics when none does promptly.
    async fn expect(&mut self, what: &str, matches: impl Fn(&str, &Value) -> bool) -> Value {
        let mut seen = Vec::new();
        while let Some((name, data)) = self.next().await {
            if matches(&name, &data) {
                return data;
            }
            seen.push(format!("{name} {data}"));
        }
        panic!("no {what} on the console; saw {seen:#?}");
    }
}

fn is_activity<'a>(kind: &'a str) -> impl Fn(&str, &Value) -> bool + 'a {
    move |name, data| name == "activity" && data["kind"] == kind
}

#[tokio::test]
async fn the_console_stream_shows_publishes_subscribes_presence_revocations_and_402s() {
    let env = Env::start().await;
    env.create_channel("room", "public").await;
    env.create_channel("lobby", "presence").await;
    let mut console = Console::open(&env, &env.key).await;

    let mut alice = env.subscriber("alice", "room", &["subscribe"]).await;
    let subscribed = console.expect("a subscribe", is_activity("subscribed")).await;
    assert_eq!((subscribed["channel"].as_str(), subscribed["client_id"].as_str()), (Some("room"), Some("alice")));

    env.post("/v1/realtime/publish", json!({"channel": "room", "event": "greet", "data": {"n": 1}})).await.ok();
    let message = console.expect("the publish", |name, data| name == "frame" && data["type"] == "message").await;
    assert_eq!((message["channel"].as_str(), message["event"].as_str()), (Some("room"), Some("greet")));
    assert_eq!(message["data"], json!({"n": 1}), "the frame as subscribers get it");
    alice.expect("message").await;

    let _bob = env.subscriber("bob", "lobby", &["subscribe", "presence"]).await;
    let join = console.expect("a presence join", |name, data| name == "frame" && data["type"] == "presence.join").await;
    assert_eq!((join["channel"].as_str(), join["member"]["client_id"].as_str()), (Some("lobby"), Some("bob")));

    alice.close().await;
    let closed = console.expect("a disconnect", is_activity("disconnected")).await;
    assert_eq!((closed["client_id"].as_str(), closed["code"].as_u64()), (Some("alice"), Some(1000)));

    let token = env.token("carol", &["room"], &["subscribe"]).await;
    env.post("/v1/realtime/token/revoke", json!({"token_or_jti": token["jti"]})).await.ok();
    let revoked = console.expect("a revocation", is_activity("token_revoked")).await;
    assert_eq!(revoked["jti"], token["jti"]);

    // An account that cannot pay: its console shows the refusal.
    let poor = env.server.create_account(0).await.unwrap();
    let mut poor_console = Console::open(&env, &poor).await;
    let refused = env.send_as(&poor, "POST", "/v1/realtime/channel/create", Some(json!({"name": "x"})), &[]).await;
    refused.problem(402, "INSUFFICIENT_CREDIT");
    let shown = poor_console.expect("a 402", is_activity("insufficient_credit")).await;
    assert_eq!(shown["operation"], "POST /v1/realtime/channel/create");
}

#[tokio::test]
async fn another_accounts_events_never_reach_a_console() {
    let env = Env::start().await;
    let other = env.server.create_account(2_000_000).await.unwrap();
    let mut console = Console::open(&env, &other).await;

    env.create_channel("room", "public").await;
    let _alice = env.subscriber("alice", "room", &["subscribe"]).await;
    env.post("/v1/realtime/publish", json!({"channel": "room", "event": "secret", "data": {}})).await.ok();
    let poor = env.server.create_account(0).await.unwrap();
    env.send_as(&poor, "POST", "/v1/realtime/channel/create", Some(json!({"name": "x"})), &[])
        .await
        .problem(402, "INSUFFICIENT_CREDIT");
    // The other account's own publish is the first thing its console shows.
    env.send_as(&other, "POST", "/v1/realtime/channel/create", Some(json!({"name": "mine"})), &[]).await.ok();
    let own = json!({"channel": "mine", "event": "own", "data": {}});
    env.send_as(&other, "POST", "/v1/realtime/publish", Some(own), &[]).await.ok();
    let (name, data) = console.next().await.expect("the account's own publish");
    assert_eq!((name.as_str(), data["event"].as_str()), ("frame", Some("own")), "{data}");
}

#[tokio::test]
async fn the_console_needs_a_valid_api_key() {
    let env = Env::start().await;
    let anonymous = env.http.get(env.url("/console/events")).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = env.http.get(env.url("/console/events")).bearer_auth("ifr_pk_proj_nope").send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
}

#[tokio::test]
async fn the_console_is_absent_when_turned_off() {
    let env = Env::start_with(json!({"console": false})).await;
    for path in ["/console", "/console/events"] {
        let answer = env.http.get(env.url(path)).bearer_auth(&env.key).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 404, "{path}");
    }
}

#[tokio::test]
async fn the_console_page_is_self_contained_and_holds_no_secret() {
    let env = Env::start().await;
    let answer = env.http.get(env.url("/console")).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let page = answer.text().await.unwrap();
    assert!(page.contains("<script>") && page.contains("/console/events"), "the page and its script");
    assert!(!page.contains("https://") && !page.contains("src="), "nothing fetched from elsewhere");
    assert!(!page.contains(&env.key) && !page.contains("ifr_pk_"), "no key in the page");
}

/// A Chrome DevTools Protocol connection to one page.
struct Page {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
}

impl Page {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({"id": id, "method": method, "params": params});
        self.socket.send(Message::Text(command.to_string().into())).await.unwrap();
        loop {
            let message = tokio::time::timeout(PROMPTLY, self.socket.next()).await.expect("chromium answers");
            let Some(Ok(Message::Text(text))) = message else { continue };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// The value of a script expression in the page.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true})).await;
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page.
    async fn until(&mut self, what: &str, expression: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.eval(expression).await != json!(true) {
            let status = self.eval("document.getElementById('status').textContent").await;
            assert!(tokio::time::Instant::now() < deadline, "{what} did not happen; the page says {status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Drives the real page in Debian's Chromium over the DevTools protocol: the page stays
/// open while the test publishes, which a one-shot `--dump-dom` cannot wait for. The key
/// is typed into the login form, as a person would, so it appears in no URL and on no
/// command line.
#[tokio::test]
async fn headless_chromium_shows_a_rest_publish_on_the_console_page() {
    let env = Env::start().await;
    env.create_channel("room-42", "public").await;
    let profile = tempfile::tempdir().unwrap();
    let mut chromium = tokio::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,900", "--remote-debugging-port=0"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(env.url("/console"))
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("Debian's chromium is needed (.ci/run installs it)");
    // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…"
    let mut lines = BufReader::new(chromium.stderr.take().unwrap()).lines();
    let port = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                return rest.split('/').next().unwrap().to_owned();
            }
        }
        panic!("chromium ended without a DevTools address");
    })
    .await
    .expect("chromium starts within 60 s");
    // Chromium keeps writing to stderr; it must not block on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let targets: Vec<Value> =
        env.http.get(format!("http://127.0.0.1:{port}/json/list")).send().await.unwrap().json().await.unwrap();
    let target = targets.iter().find(|t| t["type"] == "page").expect("the console's page");
    let (socket, _) = tokio_tungstenite::connect_async(target["webSocketDebuggerUrl"].as_str().unwrap()).await.unwrap();
    let mut page = Page { socket, next_id: 0 };

    page.until("the page loaded", "document.readyState === 'complete' && !!document.getElementById('login')").await;
    let login = format!(
        "document.getElementById('key').value = {}; document.getElementById('login').requestSubmit(); true",
        json!(env.key)
    );
    page.eval(&login).await;
    page.until("the stream went live", "document.getElementById('status').dataset.state === 'live'").await;
    page.until("the channel is listed", "document.getElementById('channels').textContent.includes('room-42')").await;

    env.post("/v1/realtime/publish", json!({"channel": "room-42", "event": "from-the-test", "data": {"n": 42}}))
        .await
        .ok();
    page.until(
        "the publish appeared",
        "[...document.querySelectorAll('#events li[data-kind=publish]')].some(li => li.textContent.includes('from-the-test'))",
    )
    .await;
    assert_eq!(page.eval("location.href.includes('ifr_pk_')").await, json!(false), "the key is in no URL");

    let screenshot = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/console.png");
    let shot = page.call("Page.captureScreenshot", json!({"format": "png"})).await;
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
    std::fs::create_dir_all(std::path::Path::new(screenshot).parent().unwrap()).unwrap();
    std::fs::write(screenshot, &png).unwrap();
    assert!(png.len() > 10_000, "a screenshot of the page");
    chromium.kill().await.unwrap();
}
