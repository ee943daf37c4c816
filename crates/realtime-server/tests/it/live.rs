//! The live side: WebSocket delivery, presence, and acting on live sockets.

use std::time::Duration;

use serde_json::json;

use crate::support::{Ending, Env, PROMPTLY, Ws};

#[tokio::test]
async fn a_subscriber_receives_rest_batch_and_client_publishes_in_order() {
    let env = Env::start().await;
    env.create_channel("room", "public").await;
    let mut subscriber = env.subscriber("reader", "room", &["subscribe"]).await;
    let mut publisher = env.subscriber("writer", "room", &["subscribe", "publish"]).await;

    let rest = env.post("/v1/realtime/publish", json!({"channel": "room", "event": "one", "data": 1})).await.ok();
    let batch = env
        .post(
            "/v1/realtime/publish/batch",
            json!({"messages": [{"channel": "room", "event": "two", "data": 2}, {"channel": "room", "event": "three", "data": 3}]}),
        )
        .await
        .ok();
    publisher.send(json!({"type": "publish", "channel": "room", "event": "four", "data": 4, "request_id": "r1"})).await;

    let mut expected = vec![rest["message_id"].clone()];
    expected.extend(batch["messages"].as_array().unwrap().iter().map(|m| m["message_id"].clone()));
    let mut received = Vec::new();
    for _ in 0..4 {
        let frame = subscriber.expect("message").await;
        assert_eq!(frame["channel"], "room");
        assert!(frame["published_at"].is_string());
        received.push((frame["event"].clone(), frame["message_id"].clone(), frame["data"].clone()));
    }
    let events: Vec<_> = received.iter().map(|(event, _, _)| event.as_str().unwrap()).collect();
    assert_eq!(events, ["one", "two", "three", "four"]);
    let ids: Vec<_> = received.iter().take(3).map(|(_, id, _)| id.clone()).collect();
    assert_eq!(ids, expected);
    assert_eq!(rest["delivered"], 2, "both subscribers were handed the REST publish");
    // The publisher's own answer arrives among its copies of the messages.
    let mut answer = None;
    for _ in 0..6 {
        let frame = publisher.next(PROMPTLY).await.expect("a frame");
        if frame["type"] == "published" {
            answer = Some(frame);
            break;
        }
    }
    let answer = answer.expect("a published answer");
    assert_eq!(answer["request_id"], "r1");
    assert_eq!(answer["message_id"], received[3].1);
}

#[tokio::test]
async fn a_thousand_subscribers_each_receive_every_one_of_a_hundred_publishes() {
    const SUBSCRIBERS: usize = 1000;
    const PUBLISHES: usize = 100;
    let env = Env::start_with(json!({"gateway": {"max_connections_per_token": SUBSCRIBERS}})).await;
    env.create_channel("fanout", "public").await;
    let token = env.token("many", &["fanout"], &["subscribe"]).await;
    let started = std::time::Instant::now();
    let mut readers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut ws = Ws::connect(&token).await;
        ws.send(json!({"type": "subscribe", "channel": "fanout"})).await;
        ws.expect("subscribed").await;
        readers.push(tokio::spawn(async move {
            let mut sequence = Vec::with_capacity(PUBLISHES);
            while sequence.len() < PUBLISHES {
                match ws.next(Duration::from_secs(30)).await {
                    Some(frame) if frame["type"] == "message" => sequence.push(frame["data"].as_u64().unwrap()),
                    Some(_) => {}
                    None => break,
                }
            }
            sequence
        }));
    }
    for n in 0..PUBLISHES {
        let published = env.post("/v1/realtime/publish", json!({"channel": "fanout", "event": "n", "data": n})).await;
        assert_eq!(published.ok()["delivered"], SUBSCRIBERS);
    }
    let expected: Vec<u64> = (0..PUBLISHES as u64).collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), expected, "every message, in order");
    }
    eprintln!("1,000 subscribers x 100 publishes: {:?}", started.elapsed());
}

#[tokio::test]
async fn presence_shows_live_members_and_announces_joins_and_leaves() {
    let env = Env::start().await;
    env.create_channel("lobby", "presence").await;
    let mut alice = env.subscriber("alice", "lobby", &["subscribe", "presence"]).await;
    let bob_token = env.token("bob", &["lobby"], &["subscribe", "presence"]).await;
    let mut bob = Ws::connect(&bob_token).await;
    bob.send(json!({"type": "subscribe", "channel": "lobby"})).await;
    let subscribed = bob.expect("subscribed").await;
    assert_eq!(subscribed["members"].as_array().unwrap().len(), 2);
    let joined = alice.expect("presence.join").await;
    assert_eq!(joined["member"]["client_id"], "bob");

    // A second socket of the same client counts once.
    let mut bob_again = Ws::connect(&bob_token).await;
    bob_again.send(json!({"type": "subscribe", "channel": "lobby"})).await;
    bob_again.expect("subscribed").await;
    let presence = env.get("/v1/realtime/presence/get/lobby").await.ok();
    let clients: Vec<_> = presence["members"].as_array().unwrap().iter().map(|m| m["client_id"].clone()).collect();
    assert_eq!(clients, [json!("alice"), json!("bob")]);
    assert_eq!(env.get("/v1/realtime/channel/get/lobby").await.ok()["member_count"], 2);
    alice.expect_silence().await;

    drop(bob_again);
    drop(bob);
    let left = alice.expect("presence.leave").await;
    assert_eq!(left["member"]["client_id"], "bob");
    let presence = env.get("/v1/realtime/presence/get/lobby").await.ok();
    assert_eq!(presence["count"], 1);
    assert_eq!(env.get("/v1/realtime/channel/get/lobby").await.ok()["member_count"], 1);
}

#[tokio::test]
async fn revoking_a_token_closes_its_sockets_and_no_other() {
    let env = Env::start().await;
    env.create_channel("room", "public").await;
    let token = env.token("victim", &["room"], &["subscribe"]).await;
    let mut victim = Ws::connect(&token).await;
    let mut bystander = env.subscriber("bystander", "room", &["subscribe"]).await;
    let revoked = env.post("/v1/realtime/token/revoke", json!({"token_or_jti": token["token"]})).await.ok();
    assert_eq!(revoked["disconnected"], 1);
    let notice = victim.expect("disconnecting").await;
    assert_eq!(notice["code"], 4003);
    assert_eq!(victim.ending().await, Ending::Closed(4003));
    env.post("/v1/realtime/publish", json!({"channel": "room", "event": "e", "data": 1})).await.ok();
    bystander.expect("message").await;
    let mut again = Ws::open(&token).await;
    assert_eq!(again.ending().await, Ending::Closed(4003), "a revoked token cannot reconnect");
}

#[tokio::test]
async fn disconnecting_a_client_closes_its_sockets_and_no_other() {
    let env = Env::start().await;
    env.create_channel("room", "public").await;
    let mut first = env.subscriber("target", "room", &["subscribe"]).await;
    let mut second = env.subscriber("target", "room", &["subscribe"]).await;
    let mut bystander = env.subscriber("bystander", "room", &["subscribe"]).await;
    let answer = env.post("/v1/realtime/user/disconnect", json!({"client_id": "target"})).await.ok();
    assert_eq!(answer["disconnected"], 2);
    assert_eq!(first.ending().await, Ending::Closed(4004));
    assert_eq!(second.ending().await, Ending::Closed(4004));
    env.post("/v1/realtime/publish", json!({"channel": "room", "event": "e", "data": 1})).await.ok();
    bystander.expect("message").await;
}

#[tokio::test]
async fn disconnecting_a_client_from_one_channel_only_unsubscribes_it_there() {
    let env = Env::start().await;
    env.create_channel("a", "public").await;
    env.create_channel("b", "public").await;
    let token = env.token("target", &["a", "b"], &["subscribe"]).await;
    let mut target = Ws::connect(&token).await;
    for channel in ["a", "b"] {
        target.send(json!({"type": "subscribe", "channel": channel})).await;
        target.expect("subscribed").await;
    }
    let answer = env.post("/v1/realtime/user/disconnect", json!({"client_id": "target", "channel": "a"})).await.ok();
    assert_eq!(answer["disconnected"], 1);
    let notice = target.expect("unsubscribed").await;
    assert_eq!((notice["channel"].clone(), notice["reason"].clone()), (json!("a"), json!("disconnected_by_server")));
    env.post("/v1/realtime/publish", json!({"channel": "a", "event": "e", "data": 1})).await.ok();
    env.post("/v1/realtime/publish", json!({"channel": "b", "event": "e", "data": 2})).await.ok();
    let frame = target.expect("message").await;
    assert_eq!(frame["channel"], "b", "only channel b still delivers");
}

#[tokio::test]
async fn deleting_a_channel_unsubscribes_its_subscribers_and_no_other() {
    let env = Env::start().await;
    env.create_channel("doomed", "presence").await;
    env.create_channel("other", "public").await;
    let mut subscriber = env.subscriber("s", "doomed", &["subscribe", "presence"]).await;
    let mut bystander = env.subscriber("b", "other", &["subscribe"]).await;
    let deleted = env.send_as(&env.key, "DELETE", "/v1/realtime/channel/delete/doomed", None, &[]).await.ok();
    assert_eq!(deleted["unsubscribed"], 1);
    let notice = subscriber.expect("unsubscribed").await;
    assert_eq!(notice["reason"], "channel_deleted");
    env.post("/v1/realtime/publish", json!({"channel": "doomed", "event": "e", "data": 1}))
        .await
        .problem(404, "NOT_FOUND");
    env.post("/v1/realtime/publish", json!({"channel": "other", "event": "e", "data": 1})).await.ok();
    bystander.expect("message").await;
    env.create_channel("doomed", "presence").await;
    let presence = env.get("/v1/realtime/presence/get/doomed").await.ok();
    assert_eq!(presence["count"], 0, "a recreated channel starts with no members");
}

#[tokio::test]
async fn an_expired_token_closes_its_socket() {
    let env = Env::start().await;
    env.create_channel("room", "public").await;
    let token = env.post("/v1/realtime/token/issue", json!({"client_id": "brief", "ttl_seconds": 1})).await.ok();
    let mut ws = Ws::connect(&token).await;
    let notice = ws.expect("disconnecting").await;
    assert_eq!(notice["code"], 4002);
    assert_eq!(ws.ending().await, Ending::Closed(4002));
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_heartbeat_timeout_and_a_pinging_one_is_kept() {
    let env =
        Env::start_with(json!({"gateway": {"heartbeat_interval_seconds": 1, "heartbeat_timeout_seconds": 1}})).await;
    let token = env.token("quiet", &[], &["subscribe"]).await;
    let mut silent = Ws::connect(&token).await;
    let mut pinging = Ws::connect(&token).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(2500);
    while tokio::time::Instant::now() < deadline {
        pinging.send(json!({"type": "ping"})).await;
        pinging.expect("pong").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(silent.expect("disconnecting").await["code"], 4201);
    pinging.send(json!({"type": "ping"})).await;
    pinging.expect("pong").await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_while_a_reader_receives_everything() {
    const BATCHES: usize = 100;
    const BATCH: usize = 32;
    let env = Env::start_with(json!({"gateway": {"outbound_queue": 64}})).await;
    env.create_channel("firehose", "public").await;
    let slow = env.subscriber("slow", "firehose", &["subscribe"]).await;
    let mut reader = env.subscriber("reader", "firehose", &["subscribe"]).await;
    let expected = BATCHES * BATCH;
    let reading = tokio::spawn(async move {
        let mut count = 0;
        while count < expected {
            match reader.next(Duration::from_secs(20)).await {
                Some(frame) if frame["type"] == "message" => count += 1,
                Some(_) => {}
                None => break,
            }
        }
        count
    });
    let payload = "x".repeat(8 * 1024);
    let message = json!({"channel": "firehose", "event": "e", "data": payload});
    for _ in 0..BATCHES {
        env.post("/v1/realtime/publish/batch", json!({"messages": vec![message.clone(); BATCH]})).await.ok();
    }
    assert_eq!(reading.await.unwrap(), expected, "the reading client received everything");
    let hub = &env.server.server().service.hub;
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    while hub.connection_count() > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(hub.connection_count(), 1, "the slow consumer was cut; the reader remains");
    // Reading now, the slow client finds what its buffers held, then the end of the socket.
    let mut slow = slow;
    let mut buffered = 0;
    let ended = loop {
        match slow.next(Duration::from_secs(2)).await {
            Some(frame) if frame["type"] == "message" => buffered += 1,
            Some(frame) => break Some(frame),
            None => break None,
        }
    };
    assert!(buffered < expected, "the slow client did not get everything: {buffered} of {expected}");
    if let Some(frame) = ended {
        assert_eq!(frame["type"], "disconnecting");
        assert_eq!(frame["code"], 4100);
    }
}

#[tokio::test]
async fn tokens_allow_only_their_channels_and_capabilities() {
    let env = Env::start().await;
    env.create_channel("a", "private").await;
    env.create_channel("b", "private").await;
    env.create_channel("c", "presence").await;
    env.create_channel("open", "public").await;
    let token = env.token("limited", &["a"], &["subscribe"]).await;
    let mut ws = Ws::connect(&token).await;
    for unlisted in ["b", "c", "never-created"] {
        ws.send(json!({"type": "subscribe", "channel": unlisted})).await;
        let refused = ws.expect("error").await;
        assert_eq!((refused["code"].clone(), refused["channel"].clone()), (json!("FORBIDDEN"), json!(unlisted)));
    }
    // A public channel is open to every token of the account, listed or not.
    ws.send(json!({"type": "subscribe", "channel": "open"})).await;
    assert_eq!(ws.expect("subscribed").await["channel"], "open");
    let writer = env.token("writer", &["a"], &["subscribe", "publish"]).await;
    let mut writer = Ws::connect(&writer).await;
    writer.send(json!({"type": "publish", "channel": "open", "event": "e", "data": 1, "request_id": "q"})).await;
    let refused = writer.expect("error").await;
    assert_eq!(refused["code"], "FORBIDDEN", "publishing still needs the channel in the token's list");
    ws.send(json!({"type": "publish", "channel": "a", "event": "e", "data": 1, "request_id": "p"})).await;
    let refused = ws.expect("error").await;
    assert_eq!((refused["code"].clone(), refused["request_id"].clone()), (json!("FORBIDDEN"), json!("p")));
    ws.send(json!({"type": "subscribe", "channel": "a"})).await;
    ws.expect("subscribed").await;
    let unknown = env.post("/v1/realtime/token/issue", json!({"client_id": "any"})).await.ok();
    let mut any = Ws::connect(&unknown).await;
    any.send(json!({"type": "subscribe", "channel": "never-created"})).await;
    assert_eq!(any.expect("error").await["code"], "NOT_FOUND");
}

#[tokio::test]
async fn bad_tokens_are_refused_with_a_close_code() {
    let env = Env::start().await;
    let mut token = env.token("c", &[], &["subscribe"]).await;
    token["token"] = json!("not-a-token");
    let mut ws = Ws::open(&token).await;
    assert_eq!(ws.ending().await, Ending::Closed(4001));
}

#[tokio::test]
async fn a_token_holds_at_most_the_configured_connections() {
    let env = Env::start_with(json!({"gateway": {"max_connections_per_token": 2}})).await;
    let token = env.token("c", &[], &["subscribe"]).await;
    let _first = Ws::connect(&token).await;
    let _second = Ws::connect(&token).await;
    let mut third = Ws::open(&token).await;
    assert_eq!(third.ending().await, Ending::Closed(4006));
}
