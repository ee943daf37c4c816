//! Pusher's WebSocket protocol 7 at `/app/{key}`: the handshake and its close codes,
//! ping and pong, signed subscriptions, presence per user, client events, and presence
//! shared with this server's own protocol.

use serde_json::json;

use crate::pusher_support::{App, PusherSocket, close_code};
use crate::support::{Env, PROMPTLY, Ws};

#[tokio::test]
async fn the_handshake_gives_a_dotted_socket_id_and_the_activity_timeout() {
    let env = Env::start().await;
    let mut stream = PusherSocket::open(&env, &App::dev().key, "protocol=7&client=js&version=8.6.0").await;
    use futures_util::StreamExt;
    let first = stream.next().await.unwrap().unwrap().into_text().unwrap();
    let event: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(event["event"], "pusher:connection_established");
    let data: serde_json::Value = serde_json::from_str(event["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["activity_timeout"], 120);
    let socket_id = data["socket_id"].as_str().unwrap();
    let (left, right) = socket_id.split_once('.').unwrap();
    assert!(left.parse::<u64>().is_ok() && right.parse::<u64>().is_ok(), "{socket_id}");
}

#[tokio::test]
async fn an_unknown_key_or_a_bad_protocol_version_is_closed_with_pusher_s_codes() {
    let env = Env::start().await;
    for (key, query, code) in [
        ("no-such-key", "protocol=7", 4001),
        (App::dev().key.as_str(), "client=js", 4008),
        (App::dev().key.as_str(), "protocol=x", 4006),
        (App::dev().key.as_str(), "protocol=8", 4007),
        (App::dev().key.as_str(), "protocol=4", 4007),
    ] {
        let mut stream = PusherSocket::open(&env, key, query).await;
        assert_eq!(close_code(&mut stream).await, Some(code), "{key}?{query}");
    }
}

#[tokio::test]
async fn a_ping_is_answered_with_a_pong() {
    let env = Env::start().await;
    let mut socket = PusherSocket::connect(&env, &App::dev().key).await;
    socket.send("pusher:ping", None, json!({})).await;
    socket.expect("pusher:pong").await;
}

#[tokio::test]
async fn a_silent_client_is_pinged_then_closed_with_4201() {
    let env = Env::start_with(json!({"pusher": {"activity_timeout_seconds": 1, "pong_timeout_seconds": 1}})).await;
    let mut socket = PusherSocket::connect(&env, &App::dev().key).await;
    socket.expect("pusher:ping").await;
    socket.send("pusher:pong", None, json!({})).await;
    // Answered: the next ping comes a whole activity timeout later, and the socket stays.
    socket.expect("pusher:ping").await;
    assert_eq!(socket.expect("pusher:error").await["data"]["code"], 4201);
    assert_eq!(socket.close_code().await, Some(4201));
    // Counted like a native socket's close, by its code.
    let metrics = env.http.get(env.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("realtime_socket_closes_total{code=\"4201\"} 1"), "{metrics}");
}

#[tokio::test]
async fn private_channels_need_a_signature_of_this_socket() {
    let env = Env::start().await;
    let app = App::dev();
    let mut socket = PusherSocket::connect(&env, &app.key).await;
    for auth in [None, Some(app.auth("1.1", "private-room", None)), Some("dev-pusher-key:00".to_owned())] {
        let mut data = json!({"channel": "private-room"});
        if let Some(auth) = auth {
            data["auth"] = json!(auth);
        }
        socket.send("pusher:subscribe", None, data).await;
        let refused = socket.expect("pusher:subscription_error").await;
        assert_eq!(refused["channel"], "private-room");
        assert_eq!(refused["data"]["status"], 401, "{refused}");
    }
    let auth = app.auth(&socket.socket_id.clone(), "private-room", None);
    socket.subscribe("private-room", Some(auth), None).await;
}

#[tokio::test]
async fn a_presence_signature_covers_channel_data_exactly_as_sent() {
    let env = Env::start().await;
    let app = App::dev();
    let mut socket = PusherSocket::connect(&env, &app.key).await;
    // The Python library's spacing: the server must not re-serialise before checking.
    let spaced = r#"{"user_id": "u1", "user_info": {"name": "A"}}"#;
    let auth = app.auth(&socket.socket_id.clone(), "presence-room", Some(spaced));
    let compact = r#"{"user_id":"u1","user_info":{"name":"A"}}"#;
    socket
        .send("pusher:subscribe", None, json!({"channel": "presence-room", "auth": auth, "channel_data": compact}))
        .await;
    assert_eq!(socket.expect("pusher:subscription_error").await["data"]["status"], 401);

    let succeeded = socket.subscribe("presence-room", Some(auth), Some(spaced)).await;
    assert_eq!(succeeded["presence"], json!({"ids": ["u1"], "hash": {"u1": {"name": "A"}}, "count": 1}));
}

/// A socket on a presence channel as `user_id`.
async fn member(env: &Env, channel: &str, user_id: &str) -> PusherSocket {
    let app = App::dev();
    let mut socket = PusherSocket::connect(env, &app.key).await;
    let data = json!({"user_id": user_id, "user_info": {"name": user_id}}).to_string();
    let auth = app.auth(&socket.socket_id.clone(), channel, Some(&data));
    socket.subscribe(channel, Some(auth), Some(&data)).await;
    socket
}

#[tokio::test]
async fn members_come_and_go_per_user_not_per_socket() {
    let env = Env::start().await;
    let mut watcher = member(&env, "presence-room", "watcher").await;
    let mut first = member(&env, "presence-room", "u1").await;
    let added = watcher.expect("pusher_internal:member_added").await;
    assert_eq!(added["data"], json!({"user_id": "u1", "user_info": {"name": "u1"}}));

    let second = member(&env, "presence-room", "u1").await;
    watcher.expect_silence().await;
    drop(second);
    watcher.expect_silence().await;

    first.send("pusher:unsubscribe", None, json!({"channel": "presence-room"})).await;
    let removed = watcher.expect("pusher_internal:member_removed").await;
    assert_eq!(removed["data"], json!({"user_id": "u1"}));
    first.expect_silence().await;
}

#[tokio::test]
async fn subscribing_again_changes_nothing_and_answers_again() {
    let env = Env::start().await;
    let app = App::dev();
    let mut watcher = member(&env, "presence-room", "watcher").await;
    let mut socket = member(&env, "presence-room", "u1").await;
    watcher.expect("pusher_internal:member_added").await;
    // Another user's signed data on the same socket does not make it another member.
    let data = r#"{"user_id":"u2"}"#;
    let auth = app.auth(&socket.socket_id.clone(), "presence-room", Some(data));
    let again = socket.subscribe("presence-room", Some(auth), Some(data)).await;
    assert_eq!(again["presence"]["ids"], json!(["u1", "watcher"]));
    watcher.expect_silence().await;
}

#[tokio::test]
async fn client_events_reach_the_other_subscribers_but_not_the_sender() {
    let env = Env::start().await;
    let mut alice = member(&env, "presence-chat", "alice").await;
    let mut bob = member(&env, "presence-chat", "bob").await;
    alice.expect("pusher_internal:member_added").await;

    alice.send("client-typing", Some("presence-chat"), json!({"typing": true})).await;
    let event = bob.expect("client-typing").await;
    assert_eq!(event["channel"], "presence-chat");
    assert_eq!(event["data"], json!({"typing": true}));
    assert_eq!(event["user_id"], "alice", "presence client events name their sender");
    alice.expect_silence().await;

    // Not on public channels, not on channels the socket is not subscribed to.
    alice.subscribe("lobby", None, None).await;
    alice.send("client-x", Some("lobby"), json!({})).await;
    assert!(alice.expect("pusher:error").await["data"]["message"].as_str().unwrap().contains("private"));
    alice.send("client-x", Some("presence-other"), json!({})).await;
    alice.expect("pusher:error").await;
}

#[tokio::test]
async fn client_events_beyond_the_rate_limit_are_refused_with_4301() {
    let env = Env::start_with(json!({"pusher": {"client_events_per_second": 2}})).await;
    let app = App::dev();
    let mut sender = PusherSocket::connect(&env, &app.key).await;
    let mut reader = PusherSocket::connect(&env, &app.key).await;
    let auth = app.auth(&sender.socket_id.clone(), "private-room", None);
    sender.subscribe("private-room", Some(auth), None).await;
    let auth = app.auth(&reader.socket_id.clone(), "private-room", None);
    reader.subscribe("private-room", Some(auth), None).await;
    for n in 0..3 {
        sender.send("client-n", Some("private-room"), json!({"n": n})).await;
    }
    assert_eq!(sender.expect("pusher:error").await["data"]["code"], 4301);
    assert_eq!(reader.expect("client-n").await["data"]["n"], 0);
    assert_eq!(reader.expect("client-n").await["data"]["n"], 1);
    reader.expect_silence().await;
}

#[tokio::test]
async fn pusher_and_native_members_share_one_presence() {
    let env = Env::start().await;
    let mut pusher = member(&env, "presence-lobby", "p1").await;
    let token = env.token("n1", &["presence-lobby"], &["subscribe", "presence"]).await;
    let mut native = Ws::connect(&token).await;
    native.send(json!({"type": "subscribe", "channel": "presence-lobby"})).await;
    let subscribed = native.expect("subscribed").await;
    let ids: Vec<&str> =
        subscribed["members"].as_array().unwrap().iter().map(|m| m["client_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["n1", "p1"]);
    assert_eq!(subscribed["members"][1]["user_info"], json!({"name": "p1"}));

    let added = pusher.expect("pusher_internal:member_added").await;
    assert_eq!(added["data"]["user_id"], "n1", "a native member is keyed by its client id");
    let presence = env.get("/v1/realtime/presence/get/presence-lobby").await.ok();
    assert_eq!(presence["count"], 2);

    drop(pusher);
    let left = native.next(PROMPTLY).await.unwrap();
    assert_eq!(left["type"], "presence.leave", "{left}");
    assert_eq!(left["member"]["client_id"], "p1");
}

#[tokio::test]
async fn a_cache_channel_gives_a_new_subscriber_its_last_event_or_a_cache_miss() {
    let env = Env::start().await;
    let app = App::dev();
    let mut first = PusherSocket::connect(&env, &app.key).await;
    first.subscribe("cache-weather", None, None).await;
    first.expect("pusher:cache_miss").await;
    app.trigger(&env, &["cache-weather"], "forecast", "rain").await.ok();
    app.trigger(&env, &["cache-weather"], "forecast", "sun").await.ok();
    assert_eq!(first.expect("forecast").await["raw_data"], "rain");
    assert_eq!(first.expect("forecast").await["raw_data"], "sun");

    let mut late = PusherSocket::connect(&env, &app.key).await;
    late.subscribe("cache-weather", None, None).await;
    assert_eq!(late.expect("forecast").await["raw_data"], "sun", "only the last event");
    late.expect_silence().await;
    app.trigger(&env, &["cache-weather"], "forecast", "wind").await.ok();
    assert_eq!(late.expect("forecast").await["raw_data"], "wind");

    // Private cache channels are private channels too.
    let mut private = PusherSocket::connect(&env, &app.key).await;
    let auth = app.auth(&private.socket_id.clone(), "private-cache-room", None);
    private.subscribe("private-cache-room", Some(auth), None).await;
    private.expect("pusher:cache_miss").await;
}

#[tokio::test]
async fn a_deleted_channel_ends_pusher_subscriptions_quietly_and_comes_back_on_use() {
    let env = Env::start().await;
    let app = App::dev();
    let mut socket = PusherSocket::connect(&env, &app.key).await;
    socket.subscribe("room", None, None).await;
    env.send_as(&env.key, "DELETE", "/v1/realtime/channel/delete/room", None, &[]).await.ok();
    // Pusher has no server-side unsubscribe event: the socket just stops receiving.
    socket.expect_silence().await;
    app.trigger(&env, &["room"], "e", "1").await.ok();
    socket.expect_silence().await;
    socket.subscribe("room", None, None).await;
    app.trigger(&env, &["room"], "e", "2").await.ok();
    assert_eq!(socket.expect("e").await["raw_data"], "2");
}
