//! What the Pusher-face tests share: the dev account's Pusher app, signed HTTP API
//! requests, and a protocol 7 socket that reads events with a deadline.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use realtime_server::pusher::signing::{body_md5, channel_auth, sign_request};
use realtime_server::secret::Secret;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{Answer, Env, PROMPTLY};

/// The dev account's app, created on first start from `vendors.pusher`.
pub(crate) const APP_ID: &str = "1";
pub(crate) const KEY: &str = "dev-pusher-key";
pub(crate) const SECRET: &str = "dev-pusher-secret";

/// An app's credentials.
#[derive(Debug, Clone)]
pub(crate) struct App {
    pub(crate) app_id: String,
    pub(crate) key: String,
    pub(crate) secret: String,
}

impl App {
    /// The dev account's app.
    pub(crate) fn dev() -> App {
        App { app_id: APP_ID.into(), key: KEY.into(), secret: SECRET.into() }
    }

    /// A new app of a new account with `balance` micro-USD, through the admin API.
    pub(crate) async fn create(env: &Env, balance: i64) -> (App, String) {
        let api_key = env.server.create_account(balance).await.unwrap();
        let account_id = env.send_as(&api_key, "GET", "/v1/account", None, &[]).await.ok()["account_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let created = env
            .send_as(
                env.server.admin_secret(),
                "POST",
                "/admin/v1/pusher/apps",
                Some(json!({"account_id": account_id})),
                &[],
            )
            .await
            .ok();
        let app = App {
            app_id: created["app_id"].as_u64().unwrap().to_string(),
            key: created["key"].as_str().unwrap().into(),
            secret: created["secret"].as_str().unwrap().into(),
        };
        (app, api_key)
    }

    /// A channel authorization, as the server libraries make it.
    pub(crate) fn auth(&self, socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
        channel_auth(&self.key, &Secret::new(self.secret.clone()), socket_id, channel, channel_data)
    }

    /// Sends a request signed as the libraries sign it, at `timestamp` (now when `None`).
    pub(crate) async fn request_at(
        &self,
        env: &Env,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: Option<&Value>,
        timestamp: Option<i64>,
    ) -> Answer {
        self.request_to(&env.server.base_url(), method, path, params, body, timestamp).await
    }

    /// Like [`request_at`](Self::request_at), to the node at `base_url`.
    pub(crate) async fn request_to(
        &self,
        base_url: &str,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: Option<&Value>,
        timestamp: Option<i64>,
    ) -> Answer {
        let path = format!("/apps/{}{path}", self.app_id);
        let body = body.map(Value::to_string).unwrap_or_default();
        let timestamp = timestamp.unwrap_or_else(|| chrono::Utc::now().timestamp()).to_string();
        let mut query: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        query.push(("auth_key".into(), self.key.clone()));
        query.push(("auth_timestamp".into(), timestamp));
        query.push(("auth_version".into(), "1.0".into()));
        if !body.is_empty() {
            query.push(("body_md5".into(), body_md5(body.as_bytes())));
        }
        let signature = sign_request(&Secret::new(self.secret.clone()), method, &path, &query);
        query.push(("auth_signature".into(), signature));
        let encoded: Vec<String> = query.iter().map(|(k, v)| format!("{}={}", escape(k), escape(v))).collect();
        let url = format!("{base_url}{path}?{}", encoded.join("&"));
        let mut request = reqwest::Client::new().request(method.parse().unwrap(), url);
        if !body.is_empty() {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    pub(crate) async fn get(&self, env: &Env, path: &str, params: &[(&str, &str)]) -> Answer {
        self.request_at(env, "GET", path, params, None, None).await
    }

    pub(crate) async fn post(&self, env: &Env, path: &str, body: Value) -> Answer {
        self.request_at(env, "POST", path, &[], Some(&body), None).await
    }

    /// Triggers `name` with `data` (a string, as the libraries send it) to `channels`.
    pub(crate) async fn trigger(&self, env: &Env, channels: &[&str], name: &str, data: &str) -> Answer {
        self.post(env, "/events", json!({"name": name, "data": data, "channels": channels})).await
    }
}

/// Percent-encodes everything but unreserved characters, as the libraries' URL encoders
/// do (so the server must decode before it checks the signature).
fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A protocol 7 socket.
pub(crate) struct PusherSocket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The id `pusher:connection_established` gave.
    pub(crate) socket_id: String,
}

impl PusherSocket {
    /// Opens `/app/{key}?{query}` without reading anything.
    pub(crate) async fn open(env: &Env, key: &str, query: &str) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        Self::open_at(&env.server.base_url(), key, query).await
    }

    async fn open_at(base_url: &str, key: &str, query: &str) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        let url = format!("{}/app/{key}?{query}", base_url.replacen("http", "ws", 1));
        tokio_tungstenite::connect_async(url).await.unwrap().0
    }

    /// Connects as pusher-js does and reads `pusher:connection_established`.
    pub(crate) async fn connect(env: &Env, key: &str) -> PusherSocket {
        Self::connect_to(&env.server.base_url(), key).await
    }

    /// Like [`connect`](Self::connect), to the node at `base_url`.
    pub(crate) async fn connect_to(base_url: &str, key: &str) -> PusherSocket {
        let stream = Self::open_at(base_url, key, "protocol=7&client=js&version=8.6.0&flash=false").await;
        let mut socket = PusherSocket { stream, socket_id: String::new() };
        let established = socket.expect("pusher:connection_established").await;
        socket.socket_id = established["data"]["socket_id"].as_str().unwrap().to_owned();
        socket
    }

    /// Sends `{"event": event, "data": data}` (and `channel`).
    pub(crate) async fn send(&mut self, event: &str, channel: Option<&str>, data: Value) {
        let mut frame = json!({"event": event, "data": data});
        if let Some(channel) = channel {
            frame["channel"] = json!(channel);
        }
        self.stream.send(Message::Text(frame.to_string().into())).await.unwrap();
    }

    /// Subscribes and expects `pusher_internal:subscription_succeeded`; returns its data.
    pub(crate) async fn subscribe(&mut self, channel: &str, auth: Option<String>, channel_data: Option<&str>) -> Value {
        let mut data = json!({"channel": channel});
        if let Some(auth) = auth {
            data["auth"] = json!(auth);
        }
        if let Some(channel_data) = channel_data {
            data["channel_data"] = json!(channel_data);
        }
        self.send("pusher:subscribe", None, data).await;
        let succeeded = self.expect("pusher_internal:subscription_succeeded").await;
        assert_eq!(succeeded["channel"], channel);
        succeeded["data"].clone()
    }

    /// The next event, its string `data` decoded (as pusher-js does), or `None` when the
    /// socket ended or nothing came within `within`.
    pub(crate) async fn next(&mut self, within: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(within, self.stream.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let mut event: Value = serde_json::from_str(&text).unwrap();
                    if let Some(data) = event["data"].as_str().map(str::to_owned) {
                        if let Ok(decoded) = serde_json::from_str::<Value>(&data) {
                            event["data"] = decoded;
                        }
                        event["raw_data"] = json!(data);
                    }
                    return Some(event);
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                _ => return None,
            }
        }
    }

    /// The next event, which must be `name`.
    pub(crate) async fn expect(&mut self, name: &str) -> Value {
        let event = self.next(PROMPTLY).await.unwrap_or_else(|| panic!("no {name} arrived"));
        assert_eq!(event["event"], name, "{event}");
        event
    }

    /// Nothing arrives for a short while.
    pub(crate) async fn expect_silence(&mut self) {
        if let Some(event) = self.next(Duration::from_millis(300)).await {
            panic!("unexpected event {event}");
        }
    }

    /// Reads until the socket closes; returns the close code.
    pub(crate) async fn close_code(&mut self) -> Option<u16> {
        close_code(&mut self.stream).await
    }
}

/// Reads a socket until it closes; the close code, `None` without a close frame.
pub(crate) async fn close_code(stream: &mut WebSocketStream<MaybeTlsStream<TcpStream>>) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => return Some(u16::from(frame.code)),
            Ok(Some(Ok(Message::Close(None)))) | Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(_))) => continue,
            Err(_) => panic!("the socket was not closed in time"),
        }
    }
}
