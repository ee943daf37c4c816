//! What every test needs: a server on a loopback port, a JSON HTTP helper, and a
//! WebSocket client that reads typed-enough frames with a deadline.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use realtime_server::testing::TestServer;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should happen promptly.
pub(crate) const PROMPTLY: Duration = Duration::from_secs(5);

/// A server with its own directory, and a funded key.
pub(crate) struct Env {
    pub(crate) server: TestServer,
    pub(crate) key: String,
    pub(crate) http: reqwest::Client,
    pub(crate) dir: TempDir,
}

/// An HTTP answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// Asserts a 200 and returns the body.
    #[track_caller]
    pub(crate) fn ok(self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        self.body
    }

    /// Asserts a problem with `status` and `code`.
    #[track_caller]
    pub(crate) fn problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.content_type(), "application/problem+json");
        assert_eq!(self.body["code"], code, "{}", self.body);
    }
}

impl Env {
    pub(crate) async fn start() -> Env {
        Self::start_with(json!({})).await
    }

    pub(crate) async fn start_with(overrides: Value) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start_with(dir.path(), overrides).await.unwrap();
        let key = server.api_key();
        Env { server, key, http: reqwest::Client::new(), dir }
    }

    pub(crate) async fn restart(self) -> Env {
        let Env { server, key, http, dir } = self;
        Env { server: server.restart().await.unwrap(), key, http, dir }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    /// Sends a request as `key`, with extra headers.
    pub(crate) async fn send_as(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request =
            self.http.request(method.parse().unwrap(), self.url(path)).header("authorization", format!("Bearer {key}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Answer {
        self.send_as(&self.key, "POST", path, Some(body), &[]).await
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        self.send_as(&self.key, "GET", path, None, &[]).await
    }

    pub(crate) async fn balance(&self, key: &str) -> i64 {
        self.send_as(key, "GET", "/v1/account", None, &[]).await.ok()["balance"].as_i64().unwrap()
    }

    pub(crate) async fn create_channel(&self, name: &str, kind: &str) {
        self.post("/v1/realtime/channel/create", json!({"name": name, "type": kind})).await.ok();
    }

    /// Issues a token for `client_id` with the given channels and capabilities.
    pub(crate) async fn token(&self, client_id: &str, channels: &[&str], capabilities: &[&str]) -> Value {
        self.post(
            "/v1/realtime/token/issue",
            json!({"client_id": client_id, "channels": channels, "capabilities": capabilities}),
        )
        .await
        .ok()
    }

    /// A connected client subscribed to `channel`.
    pub(crate) async fn subscriber(&self, client_id: &str, channel: &str, capabilities: &[&str]) -> Ws {
        let token = self.token(client_id, &[channel], capabilities).await;
        let mut ws = Ws::connect(&token).await;
        ws.send(json!({"type": "subscribe", "channel": channel})).await;
        ws.expect("subscribed").await;
        ws
    }
}

/// A WebSocket client of the gateway.
pub(crate) struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// A close frame with this code.
    Closed(u16),
    /// The connection dropped without a close frame.
    Dropped,
}

impl Ws {
    /// Connects with a token from `token.issue` and reads the `connected` frame.
    pub(crate) async fn connect(token: &Value) -> Ws {
        let mut ws = Self::open(token).await;
        ws.expect("connected").await;
        ws
    }

    /// Connects without reading anything.
    pub(crate) async fn open(token: &Value) -> Ws {
        let url = format!("{}?token={}", token["endpoint"].as_str().unwrap(), token["token"].as_str().unwrap());
        let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Ws { stream }
    }

    pub(crate) async fn send(&mut self, frame: Value) {
        self.stream.send(Message::Text(frame.to_string().into())).await.unwrap();
    }

    /// The next JSON frame, or `None` when the socket ended or nothing came in time.
    pub(crate) async fn next(&mut self, within: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(within, self.stream.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(&text).unwrap()),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                _ => return None,
            }
        }
    }

    /// The next frame, which must be of `kind`.
    pub(crate) async fn expect(&mut self, kind: &'static str) -> Value {
        let frame = self.next(PROMPTLY).await.unwrap_or_else(|| panic!("no {kind} frame arrived"));
        assert_eq!(frame["type"], kind, "{frame}");
        frame
    }

    /// Closes the socket as a client would (1000) and waits for the server's answer.
    pub(crate) async fn close(&mut self) {
        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "done".into(),
        };
        self.stream.close(Some(frame)).await.unwrap();
        while let Ok(Some(Ok(_))) = tokio::time::timeout(PROMPTLY, self.stream.next()).await {}
    }

    /// Cuts the connection with a TCP reset, as a network or a load balancer does: no
    /// close frame, no FIN.
    pub(crate) fn reset(self) {
        let MaybeTlsStream::Plain(tcp) = self.stream.get_ref() else { panic!("a plain socket") };
        // A zero linger makes the close a reset; it never blocks (the deprecation is about
        // a lingering close).
        #[allow(deprecated)]
        tcp.set_linger(Some(Duration::ZERO)).unwrap();
    }

    /// Nothing arrives for a short while.
    pub(crate) async fn expect_silence(&mut self) {
        if let Some(frame) = self.next(Duration::from_millis(300)).await {
            panic!("unexpected frame {frame}");
        }
    }

    /// Reads until the socket ends; returns the `disconnecting` frames' codes seen and how
    /// it ended.
    pub(crate) async fn ending(&mut self) -> Ending {
        let deadline = tokio::time::Instant::now() + PROMPTLY;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(Message::Close(Some(frame))))) => return Ending::Closed(u16::from(frame.code)),
                Ok(Some(Ok(Message::Close(None)))) | Ok(None) | Ok(Some(Err(_))) => return Ending::Dropped,
                Ok(Some(Ok(_))) => continue,
                Err(_) => panic!("the socket was not closed in time"),
            }
        }
    }
}

/// Polls `check` until it holds, for at most `within`; returns how long it took.
pub(crate) async fn eventually<F, Fut>(within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// The real server binary, as `command` (made with [`server_binary`]) configures it: its
/// base URL once it prints it and, when `dev_key` is asked for (a first start prints it),
/// the dev account's key. The rest of its output is read and dropped.
pub(crate) async fn spawn_server(
    mut command: tokio::process::Command,
    dev_key: bool,
) -> (tokio::process::Child, String, Option<String>) {
    use tokio::io::AsyncBufReadExt;
    command.stdout(std::process::Stdio::piped()).kill_on_drop(true);
    let mut child = command.spawn().expect("the server binary starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut base, mut key) = (None, None);
    while base.is_none() || (dev_key && key.is_none()) {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the server prints its address")
            .unwrap()
            .expect("the server keeps running");
        if let Some(url) = line.strip_prefix("realtime-server listening on ") {
            base = Some(url.trim().to_owned());
        }
        if let Some((_, found)) = line.split_once("dev api key: ") {
            key = Some(found.trim().to_owned());
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base.unwrap(), key)
}

/// The server binary on a loopback port and a SQLite file in `dir`, logging warnings only.
pub(crate) fn server_binary(dir: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_realtime-server"));
    command
        .env("REALTIME_LISTEN", "127.0.0.1:0")
        .env("REALTIME_STORE", format!("sqlite://{}", dir.join("realtime.db").display()))
        .env("REALTIME_LOG", "warn")
        .stderr(std::process::Stdio::null());
    command
}
