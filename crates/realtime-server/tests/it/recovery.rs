//! History and recovery: a channel's messages have positions, are readable, and a
//! subscriber that comes back with the last position it saw gets exactly what it missed,
//! or is told why it cannot.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Env, PROMPTLY, Ws};

const PUBLISH: &str = "/v1/realtime/publish";

async fn publish(env: &Env, channel: &str, n: u64) -> Value {
    env.post(PUBLISH, json!({"channel": channel, "event": "e", "data": {"n": n}})).await.ok()
}

/// A socket subscribed to `channel`, from `since` when given; returns it with its
/// `subscribed` frame.
async fn subscribe(env: &Env, channel: &str, since: Option<Value>) -> (Ws, Value) {
    let token = env.token("reader", &[channel], &["subscribe"]).await;
    let mut ws = Ws::connect(&token).await;
    let mut frame = json!({"type": "subscribe", "channel": channel});
    if let Some(since) = since {
        frame["since"] = since;
    }
    ws.send(frame).await;
    let subscribed = ws.expect("subscribed").await;
    (ws, subscribed)
}

/// The offsets of the next `count` message frames.
async fn offsets(ws: &mut Ws, count: usize) -> Vec<u64> {
    let mut offsets = Vec::new();
    for _ in 0..count {
        offsets.push(ws.expect("message").await["offset"].as_u64().unwrap());
    }
    offsets
}

#[tokio::test]
async fn history_reads_a_channels_messages_with_their_positions_both_ways() {
    let env = Env::start().await;
    env.create_channel("room", "public").await;
    let epoch = env.get("/v1/realtime/channel/get/room").await.ok()["channel_id"].clone();
    let mut published = Vec::new();
    for n in 1..=5 {
        published.push(publish(&env, "room", n).await);
    }
    let offsets: Vec<_> = published.iter().map(|p| (p["epoch"].clone(), p["offset"].clone())).collect();
    assert_eq!(offsets, (1..=5).map(|n| (epoch.clone(), json!(n))).collect::<Vec<_>>(), "positions count up");

    let all = env.get("/v1/realtime/channel/history/room").await.ok();
    assert_eq!((all["epoch"].clone(), all["latest_offset"].clone()), (epoch, json!(5)));
    let messages = all["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 5);
    for (message, publish) in messages.iter().zip(&published) {
        assert_eq!(message["message_id"], publish["message_id"], "history is what was published, in order");
    }
    assert_eq!(messages[2]["data"], json!({"n": 3}));
    assert_eq!(all.get("next_since"), None, "one page");

    let first = env.get("/v1/realtime/channel/history/room?limit=2").await.ok();
    let page =
        |body: &Value| body["messages"].as_array().unwrap().iter().map(|m| m["offset"].clone()).collect::<Vec<_>>();
    assert_eq!((page(&first), first["next_since"].clone()), (vec![json!(1), json!(2)], json!(2)));
    let second = env.get("/v1/realtime/channel/history/room?limit=2&since=2").await.ok();
    assert_eq!(page(&second), [json!(3), json!(4)]);
    let newest = env.get("/v1/realtime/channel/history/room?direction=backward&limit=2").await.ok();
    assert_eq!((page(&newest), newest["next_since"].clone()), (vec![json!(5), json!(4)], json!(4)));

    env.get("/v1/realtime/channel/history/nowhere").await.problem(404, "NOT_FOUND");
    env.get("/v1/realtime/channel/history/room?limit=0").await.problem(422, "VALIDATION_ERROR");
    let stranger = env.server.create_account(1_000_000).await.unwrap();
    let theirs = env.send_as(&stranger, "GET", "/v1/realtime/channel/history/room", None, &[]).await;
    theirs.problem(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_subscriber_that_comes_back_with_its_position_gets_exactly_what_it_missed() {
    let env = Env::start().await;
    env.create_channel("room", "public").await;
    let (mut first, subscribed) = subscribe(&env, "room", None).await;
    assert_eq!(subscribed["position"]["offset"], 0);
    assert_eq!(subscribed.get("recovered"), None, "no recovery was asked for");
    publish(&env, "room", 1).await;
    publish(&env, "room", 2).await;
    let seen = first.expect("message").await;
    let last = first.expect("message").await;
    assert_eq!((seen["offset"].clone(), last["offset"].clone()), (json!(1), json!(2)));
    drop(first);

    for n in 3..=5 {
        publish(&env, "room", n).await;
    }
    let since = json!({"epoch": last["epoch"], "offset": last["offset"]});
    let (mut again, subscribed) = subscribe(&env, "room", Some(since.clone())).await;
    assert_eq!(subscribed["recovered"], true);
    assert_eq!(subscribed["position"], since);
    assert_eq!(offsets(&mut again, 3).await, [3, 4, 5], "exactly the missed messages, in order");
    publish(&env, "room", 6).await;
    assert_eq!(offsets(&mut again, 1).await, [6], "then live");
    again.expect_silence().await;

    let (mut caught_up, subscribed) = subscribe(&env, "room", Some(json!({"epoch": last["epoch"], "offset": 6}))).await;
    assert_eq!(subscribed["recovered"], true, "nothing missed is a recovery too");
    caught_up.expect_silence().await;
}

#[tokio::test]
async fn a_subscriber_is_told_why_it_cannot_recover() {
    let env = Env::start_with(json!({"history_per_channel": 3})).await;
    env.create_channel("room", "public").await;
    let mut last = Value::Null;
    for n in 1..=6 {
        last = publish(&env, "room", n).await;
    }
    let epoch = last["epoch"].clone();
    let refused = |subscribed: &Value, reason: &str| {
        assert_eq!(subscribed["recovered"], false, "{subscribed}");
        assert_eq!(subscribed["recovery_failure"], reason, "{subscribed}");
        assert_eq!(subscribed["position"]["offset"], 6, "it goes on from the channel's latest position");
    };

    let (mut old, subscribed) = subscribe(&env, "room", Some(json!({"epoch": epoch, "offset": 1}))).await;
    refused(&subscribed, "too_old");
    old.expect_silence().await;
    let (_, subscribed) = subscribe(&env, "room", Some(json!({"epoch": epoch, "offset": 99}))).await;
    refused(&subscribed, "unknown");
    let (_, subscribed) = subscribe(&env, "room", Some(json!({"epoch": "ch_another_life", "offset": 5}))).await;
    refused(&subscribed, "epoch_changed");
    // Within retention, the same subscribe recovers.
    let (mut recent, subscribed) = subscribe(&env, "room", Some(json!({"epoch": epoch, "offset": 4}))).await;
    assert_eq!(subscribed["recovered"], true);
    assert_eq!(offsets(&mut recent, 2).await, [5, 6]);
}

#[tokio::test]
async fn more_missed_messages_than_one_recovery_replays_is_too_many() {
    let env = Env::start_with(json!({"history_per_channel": 2000})).await;
    env.create_channel("room", "public").await;
    let first = publish(&env, "room", 0).await;
    for batch in 0..10 {
        let messages: Vec<Value> =
            (0..100).map(|n| json!({"channel": "room", "event": "e", "data": batch * 100 + n})).collect();
        env.post("/v1/realtime/publish/batch", json!({"messages": messages})).await.ok();
    }
    // 1,000 messages after offset 1: exactly the most one recovery replays.
    let since = json!({"epoch": first["epoch"], "offset": 1});
    let (mut full, subscribed) = subscribe(&env, "room", Some(since)).await;
    assert_eq!(subscribed["recovered"], true);
    assert_eq!(offsets(&mut full, 1000).await, (2..=1001).collect::<Vec<u64>>());
    let (_, subscribed) = subscribe(&env, "room", Some(json!({"epoch": first["epoch"], "offset": 0}))).await;
    assert_eq!(
        (subscribed["recovered"].clone(), subscribed["recovery_failure"].clone()),
        (json!(false), json!("too_many"))
    );
}

/// A subscriber that drops its socket every few messages and comes back with the last
/// position it saw (through each of `tokens`' endpoints in turn), until it has seen
/// `total` messages; returns every offset it saw.
pub(crate) async fn reconnecting_reader(tokens: Vec<Value>, channel: String, total: u64, drop_every: u64) -> Vec<u64> {
    let mut seen: Vec<u64> = Vec::new();
    let mut since: Option<Value> = None;
    for token in tokens.iter().cycle() {
        if seen.last().copied().unwrap_or(0) >= total {
            break;
        }
        let mut ws = Ws::connect(token).await;
        let mut subscribe = json!({"type": "subscribe", "channel": channel});
        if let Some(since) = &since {
            subscribe["since"] = since.clone();
        }
        ws.send(subscribe).await;
        let subscribed = ws.expect("subscribed").await;
        if since.is_some() {
            assert_eq!(subscribed["recovered"], true, "{subscribed}");
        }
        for index in 0..drop_every {
            let Some(frame) = ws.next(PROMPTLY).await else { panic!("a message in time after {seen:?}") };
            assert_eq!(frame["type"], "message", "{frame}");
            let offset = frame["offset"].as_u64().unwrap();
            assert!(
                seen.last().is_none_or(|last| offset == last + 1),
                "offset {offset} after {:?}, frame {index} after {subscribed}",
                seen.last()
            );
            seen.push(offset);
            since = Some(json!({"epoch": frame["epoch"], "offset": frame["offset"]}));
            if seen.last() == Some(&total) {
                break;
            }
        }
        // Gone without a goodbye, as a lost network would.
    }
    seen
}

#[tokio::test]
async fn every_subscriber_sees_every_message_once_and_in_order_while_publishes_race_reconnects() {
    const PUBLISHERS: u64 = 4;
    const EACH: u64 = 75;
    const TOTAL: u64 = PUBLISHERS * EACH;
    let env = Env::start_with(json!({"gateway": {"max_connections_per_token": 100}})).await;
    env.create_channel("room", "public").await;
    let token = env.token("reader", &["room"], &["subscribe"]).await;
    let readers: Vec<_> = (0..5u64)
        .map(|reader| tokio::spawn(reconnecting_reader(vec![token.clone()], "room".into(), TOTAL, 7 + reader * 5)))
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|publisher| {
            let (http, url, key) = (env.http.clone(), env.url(PUBLISH), env.key.clone());
            tokio::spawn(async move {
                for n in 0..EACH {
                    let body = json!({"channel": "room", "event": "e", "data": {"from": publisher, "n": n}});
                    let sent = http.post(&url).bearer_auth(&key).json(&body).send().await.unwrap();
                    assert!(sent.status().is_success());
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    for reader in readers {
        let seen = tokio::time::timeout(Duration::from_secs(60), reader).await.expect("in time").unwrap();
        assert_eq!(seen, (1..=TOTAL).collect::<Vec<u64>>(), "every message once, in order");
    }
}
