//! pusher-js's HTTP fallback transports on the wire: a stream opened with `o` that
//! carries protocol 7 messages in `a[…]` frames, polls answered once frames wait, client
//! messages POSTed to `xhr_send`, refusals as `c[code,reason]`, and a session whose client
//! stopped reading expiring like a closed socket. (pusher-js itself runs over both
//! transports in `pusher_libraries.rs`.)

use std::time::Duration;

use serde_json::{Value, json};

use crate::pusher_support::App;
use crate::support::{Env, PROMPTLY};

/// A session's base URL, as pusher-js builds it: `{httpPath}/app/{key}/{server}/{session}`.
fn session_url(env: &Env, key: &str, session: &str) -> String {
    env.url(&format!("/pusher/app/{key}/123/{session}"))
}

const QUERY: &str = "protocol=7&client=js&version=8.6.0";

/// The lines of SockJS frames read from a stream, in order.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(env: &Env, key: &str, session: &str) -> Stream {
        let url = format!("{}/xhr_streaming?{QUERY}&t=1&n=1", session_url(env, key, session));
        let response = env.http.post(url).header("content-type", "application/json").send().await.unwrap();
        assert_eq!(response.status(), 200);
        Stream { response, buffer: String::new() }
    }

    /// The next frame (a line); `None` when the stream ended.
    async fn frame(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.find('\n') {
                let line = self.buffer[..end].to_owned();
                self.buffer.drain(..=end);
                return Some(line);
            }
            let chunk = tokio::time::timeout(PROMPTLY, self.response.chunk()).await.expect("a frame in time");
            self.buffer.push_str(std::str::from_utf8(&chunk.unwrap()?).unwrap());
        }
    }

    /// The protocol 7 messages of the next `a` frame (heartbeats skipped).
    async fn messages(&mut self) -> Vec<Value> {
        loop {
            let frame = self.frame().await.expect("the stream is open");
            if frame == "h" {
                continue;
            }
            return decode(&frame);
        }
    }
}

/// The messages of an `a` frame: JSON strings, each a protocol 7 message.
fn decode(frame: &str) -> Vec<Value> {
    let texts: Vec<String> =
        serde_json::from_str(frame.strip_prefix('a').unwrap_or_else(|| panic!("{frame}"))).unwrap();
    texts.iter().map(|text| serde_json::from_str(text).unwrap()).collect()
}

/// POSTs `messages` to the session's `xhr_send`, as pusher-js does; the status.
async fn send(env: &Env, key: &str, session: &str, messages: &[Value]) -> u16 {
    let body: Vec<String> = messages.iter().map(Value::to_string).collect();
    let url = format!("{}/xhr_send?t=2&n=2", session_url(env, key, session));
    let response = env.http.post(url).json(&body).send().await.unwrap();
    response.status().as_u16()
}

/// One poll of the session; its body.
async fn poll(env: &Env, key: &str, session: &str) -> String {
    let url = format!("{}/xhr?{QUERY}&t=3&n=3", session_url(env, key, session));
    let response = env.http.post(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

fn data(message: &Value) -> Value {
    serde_json::from_str(message["data"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_stream_opens_and_carries_subscriptions_and_triggered_events() {
    let env = Env::start().await;
    let app = App::dev();
    let mut stream = Stream::open(&env, &app.key, "stream01").await;
    assert_eq!(stream.frame().await.as_deref(), Some("o"));
    let established = stream.messages().await;
    assert_eq!(established[0]["event"], "pusher:connection_established");
    assert_eq!(data(&established[0])["activity_timeout"], 120);

    let subscribe = json!({"event": "pusher:subscribe", "data": {"channel": "my-channel"}});
    assert_eq!(send(&env, &app.key, "stream01", &[subscribe]).await, 204);
    let succeeded = stream.messages().await;
    assert_eq!(succeeded[0]["event"], "pusher_internal:subscription_succeeded");

    app.trigger(&env, &["my-channel"], "greeting", "{\"hello\":\"world\"}").await.ok();
    let event = stream.messages().await;
    assert_eq!(event[0]["event"], "greeting");
    assert_eq!(event[0]["channel"], "my-channel");
    assert_eq!(data(&event[0]), json!({"hello": "world"}));

    // A ping in a batch of messages, and the empty heartbeat, are taken as they come.
    let ping = json!({"event": "pusher:ping", "data": {}});
    assert_eq!(send(&env, &app.key, "stream01", &[]).await, 204);
    assert_eq!(send(&env, &app.key, "stream01", &[ping]).await, 204);
    assert_eq!(stream.messages().await[0]["event"], "pusher:pong");
}

#[tokio::test]
async fn polls_are_answered_when_frames_wait() {
    let env = Env::start().await;
    let app = App::dev();
    assert_eq!(poll(&env, &app.key, "polling1").await, "o\n");
    let established = decode(poll(&env, &app.key, "polling1").await.trim_end());
    assert_eq!(established[0]["event"], "pusher:connection_established");

    // A poll waiting when the frames come is answered with them.
    let waiting = tokio::spawn({
        let (url, http) = (format!("{}/xhr?{QUERY}", session_url(&env, &app.key, "polling1")), env.http.clone());
        async move { http.post(url).send().await.unwrap().text().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let subscribe = json!({"event": "pusher:subscribe", "data": {"channel": "my-channel"}});
    assert_eq!(send(&env, &app.key, "polling1", &[subscribe]).await, 204);
    let succeeded = decode(tokio::time::timeout(PROMPTLY, waiting).await.unwrap().unwrap().trim_end());
    assert_eq!(succeeded[0]["event"], "pusher_internal:subscription_succeeded");

    // Frames that come between polls wait for the next one, in order.
    app.trigger(&env, &["my-channel"], "first", "1").await.ok();
    app.trigger(&env, &["my-channel"], "second", "2").await.ok();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut events = Vec::new();
    while events.len() < 2 {
        events.extend(decode(poll(&env, &app.key, "polling1").await.trim_end()));
    }
    assert_eq!(events.iter().map(|event| event["event"].as_str().unwrap()).collect::<Vec<_>>(), ["first", "second"]);
}

#[tokio::test]
async fn an_unknown_key_is_closed_with_pusher_s_code_and_an_unknown_session_refuses_messages() {
    let env = Env::start().await;
    let mut stream = Stream::open(&env, "no-such-key", "refused1").await;
    assert_eq!(stream.frame().await.as_deref(), Some("o"));
    assert_eq!(stream.messages().await[0]["event"], "pusher:error");
    assert_eq!(stream.frame().await.as_deref(), Some("c[4001,\"no app has this key\"]"));
    assert_eq!(stream.frame().await, None);

    let ping = json!({"event": "pusher:ping", "data": {}});
    assert_eq!(send(&env, &App::dev().key, "nosuchsession", &[ping]).await, 404);
}

#[tokio::test]
async fn a_session_nobody_reads_expires_and_leaves_its_presence_channel() {
    let env = Env::start().await;
    let app = App::dev();
    assert_eq!(poll(&env, &app.key, "leaving1").await, "o\n");
    let established = decode(poll(&env, &app.key, "leaving1").await.trim_end());
    let socket_id = data(&established[0])["socket_id"].as_str().unwrap().to_owned();
    let channel_data = json!({"user_id": "carol"}).to_string();
    let auth = app.auth(&socket_id, "presence-room", Some(&channel_data));
    let subscribe = json!({"event": "pusher:subscribe", "data": {
        "channel": "presence-room", "auth": auth, "channel_data": channel_data,
    }});
    assert_eq!(send(&env, &app.key, "leaving1", &[subscribe]).await, 204);
    let succeeded = decode(poll(&env, &app.key, "leaving1").await.trim_end());
    assert_eq!(succeeded[0]["event"], "pusher_internal:subscription_succeeded");
    let users = app.get(&env, "/channels/presence-room/users", &[]).await.ok();
    assert_eq!(users["users"], json!([{"id": "carol"}]));

    // No more polls: after the expiry the session is gone, and so is its member.
    tokio::time::sleep(realtime_server::pusher::fallback::EXPIRY + Duration::from_secs(1)).await;
    let users = app.get(&env, "/channels/presence-room/users", &[]).await.ok();
    assert_eq!(users["users"], json!([]));
    let ping = json!({"event": "pusher:ping", "data": {}});
    assert_eq!(send(&env, &app.key, "leaving1", &[ping]).await, 404);
}

#[tokio::test]
async fn a_close_the_server_asks_for_ends_the_stream_with_pusher_s_code() {
    let env = Env::start().await;
    let app = App::dev();
    let mut stream = Stream::open(&env, &app.key, "closing1").await;
    assert_eq!(stream.frame().await.as_deref(), Some("o"));
    let socket_id = data(&stream.messages().await[0])["socket_id"].as_str().unwrap().to_owned();
    let user_data = r#"{"id":"u1"}"#;
    let secret = realtime_server::secret::Secret::new(app.secret.clone());
    let auth = realtime_server::pusher::signing::user_auth(&app.key, &secret, &socket_id, user_data);
    let signin = json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}});
    assert_eq!(send(&env, &app.key, "closing1", &[signin]).await, 204);
    assert_eq!(stream.messages().await[0]["event"], "pusher:signin_success");

    app.post(&env, "/users/u1/terminate_connections", json!({})).await.ok();
    let error = stream.messages().await;
    assert_eq!(error[0]["event"], "pusher:error");
    assert_eq!(error[0]["data"]["code"], 4009);
    let close = stream.frame().await.unwrap();
    assert!(close.starts_with("c[4009,"), "{close}");
    assert_eq!(stream.frame().await, None);
}
