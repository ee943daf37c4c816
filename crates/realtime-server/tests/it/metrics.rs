//! `/metrics` after real traffic: the counts are the traffic's, and no label names a
//! channel or an account or takes a value a client makes up.

use serde_json::json;

use crate::pusher_support::App;
use crate::support::{Env, Ws, eventually};

/// The value of the sample `name` (with its labels, exactly as exposed).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

async fn scrape(env: &Env) -> String {
    let response = env.http.get(env.url("/metrics")).send().await.unwrap();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_the_traffic_and_name_no_channel_or_account() {
    let env = Env::start().await;
    env.create_channel("secret-room-name", "public").await;
    let mut reader = env.subscriber("reader", "secret-room-name", &["subscribe"]).await;
    let before = scrape(&env).await;
    assert_eq!(sample(&before, "realtime_connections"), 1.0);
    assert_eq!(sample(&before, "realtime_subscriptions"), 1.0);

    let publish = |n: u64| json!({"channel": "secret-room-name", "event": "e", "data": n});
    for n in 0..3 {
        env.post("/v1/realtime/publish", publish(n)).await.ok();
    }
    let keyed = [("idempotency-key", "metrics-key")];
    for _ in 0..2 {
        env.send_as(&env.key, "POST", "/v1/realtime/publish", Some(publish(9)), &keyed).await.ok();
    }
    let broke = env.server.create_account(0).await.unwrap();
    env.send_as(&broke, "POST", "/v1/realtime/publish", Some(publish(0)), &[])
        .await
        .problem(402, "INSUFFICIENT_CREDIT");
    for _ in 0..4 {
        reader.expect("message").await;
    }
    reader.close().await;

    eventually(crate::support::PROMPTLY, || async {
        sample(&scrape(&env).await, "realtime_socket_closes_total{code=\"1000\"}") == 1.0
    })
    .await;
    let after = scrape(&env).await;
    assert_eq!(sample(&after, "realtime_messages_published_total"), 4.0, "three plain publishes and one keyed");
    assert_eq!(sample(&after, "realtime_frames_delivered_total"), 4.0);
    assert_eq!(sample(&after, "realtime_idempotent_replays_total"), 1.0);
    assert_eq!(sample(&after, "realtime_insufficient_credit_total"), 1.0);
    assert_eq!(sample(&after, "realtime_credit_charged_micro_usd_total"), 1000.0 + 100.0 + 4.0 * 10.0);
    let ok = "realtime_http_requests_total{route=\"/v1/realtime/publish\",method=\"POST\",status=\"200\"}";
    assert_eq!(sample(&after, ok), 5.0, "the replay is a request too");
    assert_eq!(sample(&after, "realtime_connections"), 0.0);
    let broker_publishes = "realtime_broker_call_duration_seconds_count{call=\"publish\"}";
    assert_eq!(sample(&after, broker_publishes), 4.0, "one broker publish per message");
    let recorded = "realtime_store_call_duration_seconds_count{call=\"record_messages\"}";
    // A publish claims its key in the write of its message: the replay and the refused
    // publish reached the store too, and wrote nothing.
    assert_eq!(sample(&after, recorded), 6.0, "each publish reached the store");
    let lookups = "realtime_store_call_duration_seconds_count{call=\"account_by_key_hash\"}";
    assert_eq!(sample(&after, lookups), 2.0, "each key is looked up once, then remembered");
    assert!(!after.contains("secret-room-name") && !after.contains("acct_"), "labels are bounded:\n{after}");
}

/// The count of store calls `call` (0 before the first: the series appears with it).
fn store_calls(text: &str, call: &str) -> f64 {
    let name = format!("realtime_store_call_duration_seconds_count{{call=\"{call}\"}}");
    if text.contains(&name) { sample(text, &name) } else { 0.0 }
}

#[tokio::test]
async fn a_keyed_publish_stores_its_final_answer_only_when_it_differs_from_the_sealed_one() {
    let env = Env::start().await;
    env.create_channel("empty-room", "public").await;
    env.create_channel("busy-room", "public").await;
    let mut reader = env.subscriber("reader", "busy-room", &["subscribe"]).await;
    let publish = |channel: &str, key: &'static str| {
        let body = json!({"channel": channel, "event": "e", "data": 1});
        let env = &env;
        async move { env.send_as(&env.key, "POST", "/v1/realtime/publish", Some(body), &[("idempotency-key", key)]).await }
    };

    // Sealed with `delivered: 0`, and nobody received it: the sealed answer is the final one.
    let unheard = publish("empty-room", "unheard").await.ok();
    assert_eq!(unheard["delivered"], json!(0));
    assert_eq!(store_calls(&scrape(&env).await, "idempotency_finish"), 0.0, "nothing left to write");
    // Received by one socket: the final answer (`delivered: 1`) replaces the sealed one.
    let heard = publish("busy-room", "heard").await.ok();
    assert_eq!(heard["delivered"], json!(1));
    reader.expect("message").await;
    assert_eq!(store_calls(&scrape(&env).await, "idempotency_finish"), 1.0, "one final answer written");

    // Either way a retry replays the answer given.
    assert_eq!(publish("empty-room", "unheard").await.ok(), unheard);
    assert_eq!(publish("busy-room", "heard").await.ok(), heard);
}

#[tokio::test]
async fn refusals_for_credit_are_counted_on_every_face_and_methods_are_bounded() {
    let env = Env::start().await;
    let publish = json!({"channel": "room", "event": "e", "data": 1});
    let broke = env.server.create_account(0).await.unwrap();
    env.send_as(&broke, "POST", "/v1/realtime/publish", Some(publish.clone()), &[])
        .await
        .problem(402, "INSUFFICIENT_CREDIT");

    // A token costs 100: this account can afford one, and then no publish.
    let spent = env.server.create_account(100).await.unwrap();
    let issue = json!({"client_id": "spender", "channels": ["room"], "capabilities": ["publish"]});
    let token = env.send_as(&spent, "POST", "/v1/realtime/token/issue", Some(issue), &[]).await.ok();
    let mut socket = Ws::connect(&token).await;
    socket.send(json!({"type": "publish", "channel": "room", "event": "e", "data": 1, "request_id": "p1"})).await;
    let refused = socket.expect("error").await;
    assert_eq!(refused["code"], "INSUFFICIENT_CREDIT", "{refused}");
    socket.close().await;

    let (app, _) = App::create(&env, 0).await;
    let trigger = app.trigger(&env, &["room"], "e", "1").await;
    assert_eq!(trigger.status, 403, "Pusher's over-quota answer: {}", trigger.body);

    let made_up = reqwest::Method::from_bytes(b"BREW").unwrap();
    env.http.request(made_up, env.url("/v1/account")).send().await.unwrap();
    let after = scrape(&env).await;
    assert_eq!(sample(&after, "realtime_insufficient_credit_total"), 3.0, "REST, socket and Pusher:\n{after}");
    assert!(!after.contains("BREW"), "a made-up method is no label:\n{after}");
    assert!(after.contains("method=\"other\""), "{after}");
}

#[tokio::test]
async fn frames_a_slow_consumer_never_gets_are_counted_as_dropped() {
    let env = Env::start_with(json!({"gateway": {"outbound_queue": 8}})).await;
    env.create_channel("firehose", "public").await;
    let mut slow = env.subscriber("slow", "firehose", &["subscribe"]).await;
    let before = scrape(&env).await;
    assert!(!before.contains("realtime_frames_dropped_total{"), "nothing dropped yet:\n{before}");

    // Until the socket's buffers and its queue are full and the server cuts it.
    let message = json!({"channel": "firehose", "event": "e", "data": "x".repeat(8 * 1024)});
    let mut published = 0;
    let hub = &env.server.server().service.hub;
    while hub.connection_count() > 0 {
        assert!(published < 4096, "the client that never reads was not cut");
        env.post("/v1/realtime/publish/batch", json!({"messages": vec![message.clone(); 32]})).await.ok();
        published += 32;
    }
    eventually(crate::support::PROMPTLY, || async {
        scrape(&env).await.contains("realtime_socket_closes_total{code=\"4100\"} 1")
    })
    .await;
    let after = scrape(&env).await;
    let dropped = sample(&after, "realtime_frames_dropped_total{reason=\"slow_consumer\"}");
    let mut received = 0;
    while let Some(frame) = slow.next(std::time::Duration::from_secs(1)).await {
        if frame["type"] == "message" {
            received += 1;
        }
    }
    assert!(dropped >= 1.0, "the frame its full queue refused, at least");
    assert!(received as f64 + dropped <= published as f64, "{received} received + {dropped} dropped of {published}");
    assert!(!after.contains("reason=\"closed\""), "the reading clients lost nothing:\n{after}");
}

#[tokio::test]
async fn a_message_lost_on_its_way_is_counted_as_dropped_once_the_hub_gives_up_on_it() {
    let env = Env::start().await;
    let channel = env.post("/v1/realtime/channel/create", json!({"name": "room", "type": "public"})).await.ok();
    let mut reader = env.subscriber("reader", "room", &["subscribe"]).await;
    // The message at offset 2 arrives; the one at offset 1 never will (its publisher was
    // cut off between its commit and its fan-out).
    let epoch = channel["channel_id"].as_str().unwrap().to_owned();
    let frame = realtime_types::ws::ServerFrame::Message {
        channel: "room".into(),
        message_id: "msg_after_the_gap".into(),
        epoch: epoch.clone(),
        offset: 2,
        event: "e".into(),
        data: json!({}),
        published_at: chrono::Utc::now(),
    };
    let hub = &env.server.server().service.hub;
    let account_id = env.get("/v1/account").await.ok()["account_id"].as_str().unwrap().to_owned();
    let key = realtime_server::hub::ChannelKey::new(account_id, "room");
    let frames = realtime_server::hub::Frames::of(&frame, None, None);
    let held = hub.deliver(&key, &frames, Some(&realtime_types::Position { epoch, offset: 2 }));
    assert_eq!(held, 0, "held for the gap");

    let message = reader.expect("message").await;
    assert_eq!(message["offset"], 2, "it goes out once the hub gives up on offset 1");
    // One message lost, one subscriber.
    eventually(crate::support::PROMPTLY, || async {
        scrape(&env).await.contains("realtime_frames_dropped_total{reason=\"gap_skipped\"} 1\n")
    })
    .await;
}

#[tokio::test]
async fn a_socket_cut_by_a_reset_counts_as_lost_not_as_a_protocol_error() {
    let env = Env::start().await;
    env.create_channel("room", "public").await;
    let reader = env.subscriber("reader", "room", &["subscribe"]).await;
    reader.reset();

    eventually(crate::support::PROMPTLY, || async {
        scrape(&env).await.contains("realtime_socket_closes_total{code=\"1006\"} 1")
    })
    .await;
    let after = scrape(&env).await;
    assert!(!after.contains("realtime_socket_closes_total{code=\"1002\"}"), "no protocol error:\n{after}");
    assert_eq!(sample(&after, "realtime_connections"), 0.0);
    assert_eq!(sample(&after, "realtime_subscriptions"), 0.0);
}
