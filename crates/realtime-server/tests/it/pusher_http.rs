//! Pusher's HTTP API: signed requests, triggers and their limits, channel queries, and
//! one publish reaching the sockets of both protocols.

use serde_json::{Value, json};

use crate::pusher_support::{App, PusherSocket};
use crate::support::{Env, Ws};

#[tokio::test]
async fn a_trigger_reaches_pusher_sockets_and_native_subscribers_of_the_same_channel() {
    let env = Env::start().await;
    let app = App::dev();
    let mut pusher = PusherSocket::connect(&env, &app.key).await;
    pusher.subscribe("my-channel", None, None).await;
    // The channel exists now (created by the Pusher face), so a native token may use it.
    let mut native = env.subscriber("reader", "my-channel", &["subscribe"]).await;

    app.trigger(&env, &["my-channel"], "my-event", r#"{"from":"trigger"}"#).await.ok();

    let event = pusher.expect("my-event").await;
    assert_eq!(event["channel"], "my-channel");
    assert_eq!(event["raw_data"], r#"{"from":"trigger"}"#, "the data string, byte for byte");
    let message = native.expect("message").await;
    assert_eq!(message["event"], "my-event");
    assert_eq!(message["data"], r#"{"from":"trigger"}"#, "native subscribers get the same string");
    assert_eq!(message["offset"], 1, "a trigger is recorded in the channel's stream");
}

#[tokio::test]
async fn a_native_publish_reaches_pusher_sockets_with_its_data_as_json_text() {
    let env = Env::start().await;
    let mut pusher = PusherSocket::connect(&env, &App::dev().key).await;
    pusher.subscribe("room", None, None).await;

    env.post("/v1/realtime/publish", json!({"channel": "room", "event": "greeting", "data": {"hello": "world"}}))
        .await
        .ok();
    env.post("/v1/realtime/publish", json!({"channel": "room", "event": "text", "data": "plain"})).await.ok();

    let event = pusher.expect("greeting").await;
    assert_eq!(event["raw_data"], r#"{"hello":"world"}"#);
    assert_eq!(pusher.expect("text").await["raw_data"], "plain", "a string goes out as it is");
}

#[tokio::test]
async fn socket_id_exclusion_skips_exactly_that_socket() {
    let env = Env::start().await;
    let app = App::dev();
    let mut sender = PusherSocket::connect(&env, &app.key).await;
    let mut other = PusherSocket::connect(&env, &app.key).await;
    sender.subscribe("room", None, None).await;
    other.subscribe("room", None, None).await;

    let body = json!({"name": "e", "data": "1", "channel": "room", "socket_id": sender.socket_id});
    app.post(&env, "/events", body).await.ok();
    let batch = json!({"batch": [{"name": "b", "data": "2", "channel": "room", "socket_id": other.socket_id}]});
    app.post(&env, "/batch_events", batch).await.ok();

    assert_eq!(other.expect("e").await["raw_data"], "1");
    assert_eq!(sender.expect("b").await["raw_data"], "2");
    sender.expect_silence().await;
    other.expect_silence().await;
}

#[tokio::test]
async fn requests_with_a_bad_signature_key_timestamp_or_body_digest_are_refused_with_401() {
    let env = Env::start().await;
    let app = App::dev();
    let body = json!({"name": "e", "data": "1", "channel": "room"});
    let old = chrono::Utc::now().timestamp() - 601;
    let stale = app.request_at(&env, "POST", "/events", &[], Some(&body), Some(old)).await;
    assert_eq!(stale.status, 401, "{}", stale.body);
    assert!(stale.body["error"].as_str().unwrap().contains("timestamp"), "{}", stale.body);

    let forged = App { secret: "not-the-secret".into(), ..App::dev() };
    assert_eq!(forged.post(&env, "/events", body.clone()).await.status, 401);
    let wrong_key = App { key: "another-key".into(), ..App::dev() };
    assert_eq!(wrong_key.post(&env, "/events", body.clone()).await.status, 401);

    // A body other than the one signed.
    let url = env.url("/apps/1/events?auth_key=dev-pusher-key&auth_timestamp=1&auth_version=1.0&auth_signature=x");
    let unsigned = env.http.post(url).body(body.to_string()).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);

    let unknown = App { app_id: "999".into(), ..App::dev() };
    assert_eq!(unknown.post(&env, "/events", body.clone()).await.status, 404);
    app.post(&env, "/events", body).await.ok();
}

#[tokio::test]
async fn triggers_keep_pusher_s_limits() {
    let env = Env::start().await;
    let app = App::dev();
    let big = "x".repeat(10 * 1024 + 1);
    assert_eq!(app.trigger(&env, &["room"], "e", &big).await.status, 413);
    assert_eq!(app.trigger(&env, &["room"], "e", &"x".repeat(10 * 1024)).await.status, 200);

    let many: Vec<String> = (0..101).map(|n| format!("c{n}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(app.trigger(&env, &many, "e", "1").await.status, 400);
    assert_eq!(app.trigger(&env, &many[..100], "e", "1").await.status, 200);

    assert_eq!(app.trigger(&env, &["has space"], "e", "1").await.status, 400);
    assert_eq!(app.trigger(&env, &["a-b_c=d@e,f.g;h"], "e", "1").await.status, 200, "Pusher's whole charset");
    assert_eq!(app.trigger(&env, &[&"c".repeat(165)], "e", "1").await.status, 400);
    assert_eq!(app.trigger(&env, &["room"], "pusher:internal", "1").await.status, 400);
    assert_eq!(app.trigger(&env, &["room"], &"e".repeat(201), "1").await.status, 400);

    // One event encrypted for one channel cannot go to several.
    let mixed = app.trigger(&env, &["private-encrypted-a", "room"], "e", "1").await;
    assert_eq!(mixed.status, 400, "{}", mixed.body);
    assert_eq!(app.trigger(&env, &["private-encrypted-a"], "e", r#"{"ciphertext":"x","nonce":"y"}"#).await.status, 200);

    let too_many: Vec<Value> = (0..11).map(|n| json!({"name": "e", "data": "1", "channel": format!("c{n}")})).collect();
    assert_eq!(app.post(&env, "/batch_events", json!({"batch": too_many})).await.status, 400);
    let bad_socket = json!({"name": "e", "data": "1", "channel": "room", "socket_id": "123"});
    assert_eq!(app.post(&env, "/events", bad_socket).await.status, 400);
}

#[tokio::test]
async fn a_trigger_the_balance_does_not_cover_is_403_and_publishes_nothing() {
    let env = Env::start().await;
    let (app, api_key) = App::create(&env, 10).await;
    let mut socket = PusherSocket::connect(&env, &app.key).await;
    socket.subscribe("room", None, None).await;

    // The price of a publish is 10 per channel: one channel is covered, two are not.
    let refused = app.trigger(&env, &["room", "other"], "e", "1").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body["topup_url"].is_string(), "{}", refused.body);
    socket.expect_silence().await;
    assert_eq!(env.balance(&api_key).await, 10, "nothing charged");

    app.trigger(&env, &["room"], "e", "1").await.ok();
    socket.expect("e").await;
    assert_eq!(env.balance(&api_key).await, 0, "charged as a native publish");
}

#[tokio::test]
async fn the_channel_list_reports_occupied_channels_by_prefix_with_user_counts() {
    let env = Env::start().await;
    let app = App::dev();
    let mut socket = PusherSocket::connect(&env, &app.key).await;
    socket.subscribe("room-1", None, None).await;
    let data = r#"{"user_id":"u1","user_info":{"name":"A"}}"#;
    socket
        .subscribe("presence-lobby", Some(app.auth(&socket.socket_id, "presence-lobby", Some(data))), Some(data))
        .await;
    // A channel that exists but has nobody on it is not listed.
    app.trigger(&env, &["empty-room"], "e", "1").await.ok();

    let all = app.get(&env, "/channels", &[]).await.ok();
    assert_eq!(all, json!({"channels": {"presence-lobby": {}, "room-1": {}}}));
    let presence = app.get(&env, "/channels", &[("filter_by_prefix", "presence-"), ("info", "user_count")]).await.ok();
    assert_eq!(presence, json!({"channels": {"presence-lobby": {"user_count": 1}}}));
    let refused = app.get(&env, "/channels", &[("info", "user_count")]).await;
    assert_eq!(refused.status, 400, "user_count needs the presence- prefix");

    let info = app.get(&env, "/channels/presence-lobby", &[("info", "user_count,subscription_count")]).await.ok();
    assert_eq!(info, json!({"occupied": true, "user_count": 1, "subscription_count": 1}));
    assert_eq!(app.get(&env, "/channels/nobody-here", &[]).await.ok(), json!({"occupied": false}));
    assert_eq!(app.get(&env, "/channels/room-1", &[("info", "user_count")]).await.status, 400);

    assert_eq!(app.get(&env, "/channels/presence-lobby/users", &[]).await.ok(), json!({"users": [{"id": "u1"}]}));
    assert_eq!(app.get(&env, "/channels/room-1/users", &[]).await.status, 400);
}

#[tokio::test]
async fn trigger_info_reports_counts_after_the_publish() {
    let env = Env::start().await;
    let app = App::dev();
    let mut socket = PusherSocket::connect(&env, &app.key).await;
    socket.subscribe("room", None, None).await;
    let body = json!({"name": "e", "data": "1", "channels": ["room"], "info": "subscription_count"});
    let answer = app.post(&env, "/events", body).await.ok();
    assert_eq!(answer, json!({"channels": {"room": {"subscription_count": 1}}}));
}

#[tokio::test]
async fn auth_sign_answers_what_a_pusher_socket_accepts_as_it_is() {
    let env = Env::start().await;
    let mut socket = PusherSocket::connect(&env, &App::dev().key).await;
    let data = json!({"user_id": "u7", "user_info": {"name": "Seven"}});
    let signed = env
        .post(
            "/v1/realtime/auth/sign",
            json!({"client_id": "u7", "channels": ["presence-room"], "vendor": "pusher",
                   "socket_id": socket.socket_id, "channel_data": data}),
        )
        .await
        .ok();
    assert_eq!(signed["auth"], signed["token"]);
    // What pusher-js does with its channelAuthorization endpoint's answer.
    socket
        .send(
            "pusher:subscribe",
            None,
            json!({"channel": "presence-room", "auth": signed["auth"], "channel_data": signed["channel_data"]}),
        )
        .await;
    let succeeded = socket.expect("pusher_internal:subscription_succeeded").await;
    assert_eq!(succeeded["data"]["presence"]["hash"]["u7"], json!({"name": "Seven"}));
}

#[tokio::test]
async fn terminate_connections_closes_the_user_s_signed_in_sockets_with_4009() {
    let env = Env::start().await;
    let app = App::dev();
    let mut signed_in = PusherSocket::connect(&env, &app.key).await;
    let mut bystander = PusherSocket::connect(&env, &app.key).await;
    let user_data = r#"{"id":"u1"}"#;
    let auth = realtime_server::pusher::signing::user_auth(
        &app.key,
        &realtime_server::secret::Secret::new(app.secret.clone()),
        &signed_in.socket_id,
        user_data,
    );
    signed_in.send("pusher:signin", None, json!({"auth": auth, "user_data": user_data})).await;
    signed_in.expect("pusher:signin_success").await;

    app.post(&env, "/users/u1/terminate_connections", json!({})).await.ok();
    let error = signed_in.expect("pusher:error").await;
    assert_eq!(error["data"]["code"], 4009);
    assert_eq!(signed_in.close_code().await, Some(4009));
    bystander.send("pusher:ping", None, json!({})).await;
    bystander.expect("pusher:pong").await;
}

#[tokio::test]
async fn a_pusher_trigger_and_a_native_publish_share_one_stream() {
    let env = Env::start().await;
    let app = App::dev();
    app.trigger(&env, &["shared"], "from-pusher", "1").await.ok();
    let published =
        env.post("/v1/realtime/publish", json!({"channel": "shared", "event": "native", "data": 2})).await.ok();
    assert_eq!(published["offset"], 2, "offsets continue across both faces");
    let channel = env.get("/v1/realtime/channel/get/shared").await.ok();
    assert_eq!(channel["type"], "public", "created by the trigger, typed by its name");
    let mut native = Ws::connect(&env.token("r", &["shared"], &["subscribe"]).await).await;
    native
        .send(json!({"type": "subscribe", "channel": "shared", "since": {"epoch": channel["channel_id"], "offset": 0}}))
        .await;
    native.expect("subscribed").await;
    assert_eq!(native.expect("message").await["event"], "from-pusher");
    assert_eq!(native.expect("message").await["event"], "native");
}

#[tokio::test]
async fn channel_info_gives_a_cache_channel_s_last_event_and_its_time_to_live() {
    let env = Env::start().await;
    let app = App::dev();
    let empty = app.get(&env, "/channels/cache-quotes", &[("info", "cache")]).await.ok();
    assert_eq!(empty, json!({"occupied": false}), "nothing cached yet");

    app.trigger(&env, &["cache-quotes"], "quote", "{\"eur\":1.08}").await.ok();
    let info = app.get(&env, "/channels/cache-quotes", &[("info", "cache")]).await.ok();
    assert_eq!(info["cache"]["data"], "{\"eur\":1.08}");
    let ttl = info["cache"]["ttl"].as_u64().unwrap();
    assert!((1_790..=1_800).contains(&ttl), "within Pusher's 30 minutes: {ttl}");

    let not_cache = app.get(&env, "/channels/room", &[("info", "cache")]).await;
    assert_eq!(not_cache.status, 400, "{}", not_cache.body);
    let listed = app.get(&env, "/channels", &[("info", "cache")]).await;
    assert_eq!(listed.status, 400, "{}", listed.body);
}
