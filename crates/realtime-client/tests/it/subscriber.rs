//! The WebSocket subscriber against the reference server's gateway: delivery, presence,
//! the close codes that stop it or renew its token, and reconnection after a restart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use realtime_client::subscriber::Disconnect;
use realtime_client::{Client, ReconnectPolicy, Subscriber, SubscriberEvent};
use realtime_server::testing::TestServer;
use realtime_types::ws::{CloseCode, ServerFrame};
use realtime_types::*;

use crate::support::{Harness, create_channel, next_matching, publish_request, subscribed, within};

fn fast_reconnect() -> ReconnectPolicy {
    ReconnectPolicy {
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(300),
        max_attempts: 40,
        connect_timeout: Duration::from_secs(2),
    }
}

fn token_request(client_id: &str) -> TokenIssueRequest {
    TokenIssueRequest {
        client_id: Some(client_id.to_owned()),
        capabilities: Some(vec![Capability::Subscribe, Capability::Presence]),
        ..Default::default()
    }
}

async fn message(subscriber: &mut Subscriber, event: &str) -> serde_json::Value {
    let frame = next_matching(
        subscriber,
        "a message",
        |e| matches!(e, SubscriberEvent::Frame(ServerFrame::Message { event: name, .. }) if name == event),
    )
    .await;
    let SubscriberEvent::Frame(ServerFrame::Message { data, .. }) = frame else { unreachable!() };
    data
}

async fn stopped(subscriber: &mut Subscriber) -> Disconnect {
    within("the subscriber to stop", async {
        loop {
            match subscriber.next_event().await {
                Some(SubscriberEvent::Stopped { reason }) => return reason,
                Some(SubscriberEvent::Reconnecting { reason, .. }) => panic!("reconnected after {reason}"),
                Some(SubscriberEvent::Frame(_)) => continue,
                None => panic!("the stream ended without a Stopped event"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_subscriber_receives_what_is_published_in_order() {
    let harness = Harness::start().await;
    let client = harness.client();
    create_channel(&client, "room-42", ChannelType::Public).await;
    let token = client.token_issue(token_request("reader")).await.unwrap();
    let mut subscriber = Subscriber::builder().token(token).channel("room-42").connect().await.unwrap();
    let first = subscriber.next_event().await.unwrap();
    assert!(
        matches!(first, SubscriberEvent::Frame(ServerFrame::Connected { ref client_id, .. }) if client_id == "reader")
    );
    subscribed(&mut subscriber, "room-42").await;
    for n in 0..3 {
        client.publish(publish_request("room-42", "tick", serde_json::json!(n))).await.unwrap();
    }
    for n in 0..3 {
        assert_eq!(message(&mut subscriber, "tick").await, serde_json::json!(n));
    }
    subscriber.close().await;
    assert_eq!(stopped(&mut subscriber).await, Disconnect::ClosedByClient);
}

#[tokio::test]
async fn subscribe_and_unsubscribe_take_effect_on_the_live_connection() {
    let harness = Harness::start().await;
    let client = harness.client();
    create_channel(&client, "a", ChannelType::Public).await;
    create_channel(&client, "b", ChannelType::Public).await;
    let mut subscriber =
        Subscriber::builder().issue_tokens_with(client.clone(), token_request("reader")).connect().await.unwrap();
    subscriber.subscribe("a").await.unwrap();
    subscribed(&mut subscriber, "a").await;
    subscriber.subscribe("b").await.unwrap();
    subscribed(&mut subscriber, "b").await;
    subscriber.unsubscribe("a").await.unwrap();
    next_matching(
        &mut subscriber,
        "unsubscribed",
        |e| matches!(e, SubscriberEvent::Frame(ServerFrame::Unsubscribed { channel, .. }) if channel == "a"),
    )
    .await;
    client.publish(publish_request("a", "ignored", serde_json::json!(0))).await.unwrap();
    client.publish(publish_request("b", "seen", serde_json::json!(1))).await.unwrap();
    let next = next_matching(&mut subscriber, "a message", |e| {
        matches!(e, SubscriberEvent::Frame(ServerFrame::Message { .. }))
    })
    .await;
    assert!(
        matches!(next, SubscriberEvent::Frame(ServerFrame::Message { ref channel, .. }) if channel == "b"),
        "{next:?}"
    );
}

#[tokio::test]
async fn presence_shows_a_live_subscriber_and_its_join() {
    let harness = Harness::start().await;
    let client = harness.client();
    create_channel(&client, "lobby", ChannelType::Presence).await;
    let mut watcher = Subscriber::builder()
        .issue_tokens_with(client.clone(), token_request("watcher"))
        .channel("lobby")
        .connect()
        .await
        .unwrap();
    subscribed(&mut watcher, "lobby").await;
    let mut joiner = Subscriber::builder()
        .issue_tokens_with(client.clone(), token_request("joiner"))
        .channel("lobby")
        .connect()
        .await
        .unwrap();
    subscribed(&mut joiner, "lobby").await;
    next_matching(&mut watcher, "presence.join", |e| {
        matches!(e, SubscriberEvent::Frame(ServerFrame::PresenceJoin { member, .. }) if member.client_id == "joiner")
    })
    .await;
    let members: Vec<_> =
        client.presence_get("lobby").await.unwrap().members.into_iter().map(|member| member.client_id).collect();
    assert_eq!(members, ["joiner", "watcher"]);
}

#[tokio::test]
async fn a_revoked_token_stops_a_subscriber_without_a_token_provider() {
    let harness = Harness::start().await;
    let client = harness.client();
    create_channel(&client, "room-42", ChannelType::Public).await;
    let token = client.token_issue(token_request("reader")).await.unwrap();
    let jti = token.jti.clone();
    let mut subscriber =
        Subscriber::builder().token(token).channel("room-42").reconnect(fast_reconnect()).connect().await.unwrap();
    subscribed(&mut subscriber, "room-42").await;
    client.token_revoke(TokenRevokeRequest { token_or_jti: jti, idempotency_key: None }).await.unwrap();
    let reason = stopped(&mut subscriber).await;
    assert!(matches!(reason, Disconnect::Closed { code: CloseCode::TokenRevoked, .. }), "{reason:?}");
}

#[tokio::test]
async fn a_revoked_token_is_replaced_through_the_token_provider() {
    let harness = Harness::start().await;
    let client = harness.client();
    create_channel(&client, "room-42", ChannelType::Public).await;
    let issued = Arc::new(Mutex::new(Vec::<String>::new()));
    let provider = {
        let (client, issued) = (client.clone(), issued.clone());
        move || {
            let (client, issued) = (client.clone(), issued.clone());
            async move {
                let token = client.token_issue(token_request("reader")).await?;
                issued.lock().unwrap().push(token.jti.clone());
                Ok(token)
            }
        }
    };
    let mut subscriber = Subscriber::builder()
        .token_provider(provider)
        .channel("room-42")
        .reconnect(fast_reconnect())
        .connect()
        .await
        .unwrap();
    subscribed(&mut subscriber, "room-42").await;
    let first_jti = issued.lock().unwrap()[0].clone();
    client.token_revoke(TokenRevokeRequest { token_or_jti: first_jti, idempotency_key: None }).await.unwrap();
    let reconnecting =
        next_matching(&mut subscriber, "reconnecting", |e| matches!(e, SubscriberEvent::Reconnecting { .. })).await;
    assert!(
        matches!(
            reconnecting,
            SubscriberEvent::Reconnecting { reason: Disconnect::Closed { code: CloseCode::TokenRevoked, .. }, .. }
        ),
        "{reconnecting:?}"
    );
    subscribed(&mut subscriber, "room-42").await;
    assert_eq!(issued.lock().unwrap().len(), 2, "a fresh token was issued");
    client.publish(publish_request("room-42", "after", serde_json::json!("revocation"))).await.unwrap();
    assert_eq!(message(&mut subscriber, "after").await, serde_json::json!("revocation"));
}

#[tokio::test]
async fn a_server_side_disconnect_stops_the_subscriber_even_with_a_token_provider() {
    let harness = Harness::start().await;
    let client = harness.client();
    create_channel(&client, "room-42", ChannelType::Public).await;
    let mut subscriber = Subscriber::builder()
        .issue_tokens_with(client.clone(), token_request("kicked"))
        .channel("room-42")
        .reconnect(fast_reconnect())
        .connect()
        .await
        .unwrap();
    subscribed(&mut subscriber, "room-42").await;
    let cut = client
        .user_disconnect(UserDisconnectRequest { client_id: "kicked".into(), channel: None, idempotency_key: None })
        .await
        .unwrap();
    assert_eq!(cut.disconnected, 1);
    let reason = stopped(&mut subscriber).await;
    assert!(matches!(reason, Disconnect::Closed { code: CloseCode::DisconnectedByServer, .. }), "{reason:?}");
}

#[tokio::test]
async fn deleting_a_channel_unsubscribes_its_subscribers() {
    let harness = Harness::start().await;
    let client = harness.client();
    create_channel(&client, "doomed", ChannelType::Public).await;
    let mut subscriber = Subscriber::builder()
        .issue_tokens_with(client.clone(), token_request("reader"))
        .channel("doomed")
        .connect()
        .await
        .unwrap();
    subscribed(&mut subscriber, "doomed").await;
    client.channel_delete("doomed").await.unwrap();
    next_matching(&mut subscriber, "unsubscribed", |e| {
        matches!(
            e,
            SubscriberEvent::Frame(ServerFrame::Unsubscribed { reason: ws::UnsubscribeReason::ChannelDeleted, .. })
        )
    })
    .await;
}

#[tokio::test]
async fn connecting_without_a_token_or_provider_is_an_error() {
    let error = Subscriber::builder().connect().await.unwrap_err();
    assert!(matches!(error, realtime_client::SubscribeError::NoToken));
}

/// Reserves a loopback port so that a restarted server can listen on the same one.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn the_subscriber_reconnects_and_resubscribes_after_the_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let server = TestServer::start_with(dir.path(), serde_json::json!({ "listen": listen })).await.unwrap();
    let client = Client::new(server.base_url(), server.api_key()).unwrap();
    create_channel(&client, "room-42", ChannelType::Public).await;
    let token = client.token_issue(token_request("survivor")).await.unwrap();
    let mut subscriber =
        Subscriber::builder().token(token).channel("room-42").reconnect(fast_reconnect()).connect().await.unwrap();
    subscribed(&mut subscriber, "room-42").await;

    let server = server.restart().await.unwrap();
    assert_eq!(server.base_url(), format!("http://{listen}"));
    let reconnecting =
        next_matching(&mut subscriber, "reconnecting", |e| matches!(e, SubscriberEvent::Reconnecting { .. })).await;
    assert!(
        matches!(
            reconnecting,
            SubscriberEvent::Reconnecting { reason: Disconnect::Closed { code: CloseCode::ServerShutdown, .. }, .. }
        ),
        "{reconnecting:?}"
    );
    next_matching(&mut subscriber, "connected again", |e| {
        matches!(e, SubscriberEvent::Frame(ServerFrame::Connected { .. }))
    })
    .await;
    subscribed(&mut subscriber, "room-42").await;
    client.publish(publish_request("room-42", "after", serde_json::json!("restart"))).await.unwrap();
    assert_eq!(message(&mut subscriber, "after").await, serde_json::json!("restart"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn after_a_restart_on_a_new_port_the_subscriber_follows_a_fresh_tokens_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await.unwrap();
    let api_key = server.api_key();
    let base_url = Arc::new(Mutex::new(server.base_url()));
    create_channel(&Client::new(server.base_url(), &api_key).unwrap(), "room-42", ChannelType::Public).await;
    let provider = {
        let (base_url, api_key) = (base_url.clone(), api_key.clone());
        move || {
            let client = Client::new(base_url.lock().unwrap().clone(), api_key.clone());
            async move { client?.token_issue(token_request("wanderer")).await }
        }
    };
    let mut subscriber = Subscriber::builder()
        .token_provider(provider)
        .channel("room-42")
        .reconnect(fast_reconnect())
        .connect()
        .await
        .unwrap();
    subscribed(&mut subscriber, "room-42").await;

    let old_url = server.base_url();
    let server = server.restart().await.unwrap();
    assert_ne!(server.base_url(), old_url, "the node came back on another port");
    *base_url.lock().unwrap() = server.base_url();
    subscribed(&mut subscriber, "room-42").await;
    let client = Client::new(server.base_url(), &api_key).unwrap();
    client.publish(publish_request("room-42", "moved", serde_json::json!(true))).await.unwrap();
    assert_eq!(message(&mut subscriber, "moved").await, serde_json::json!(true));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn heartbeats_keep_an_idle_subscriber_connected_past_the_servers_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = serde_json::json!({ "gateway": { "heartbeat_interval_seconds": 1, "heartbeat_timeout_seconds": 2 } });
    let server = TestServer::start_with(dir.path(), gateway).await.unwrap();
    let client = Client::new(server.base_url(), server.api_key()).unwrap();
    create_channel(&client, "quiet", ChannelType::Public).await;
    let token = client.token_issue(token_request("idle")).await.unwrap();
    let mut subscriber = Subscriber::builder().token(token).channel("quiet").connect().await.unwrap();
    let connected = subscriber.next_event().await.unwrap();
    assert!(
        matches!(connected, SubscriberEvent::Frame(ServerFrame::Connected { heartbeat_timeout_seconds: 2, .. })),
        "{connected:?}"
    );
    subscribed(&mut subscriber, "quiet").await;
    // Silent for twice the server's timeout: only the subscriber's pings keep it alive.
    let idle = tokio::time::timeout(Duration::from_secs(4), subscriber.next_event()).await;
    assert!(idle.is_err(), "nothing should happen on an idle, healthy connection: {idle:?}");
    client.publish(publish_request("quiet", "still-here", serde_json::json!(true))).await.unwrap();
    assert_eq!(message(&mut subscriber, "still-here").await, serde_json::json!(true));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_subscriber_resumes_from_its_last_message_and_misses_nothing_when_cut_mid_stream() {
    const MESSAGES: u64 = 200;
    let harness = Harness::start().await;
    let client = harness.client();
    create_channel(&client, "room-42", ChannelType::Public).await;
    let token = client.token_issue(token_request("resumer")).await.unwrap();
    let mut subscriber =
        Subscriber::builder().token(token).channel("room-42").reconnect(fast_reconnect()).connect().await.unwrap();
    subscribed(&mut subscriber, "room-42").await;

    let publisher = tokio::spawn(async move {
        for n in 0..MESSAGES {
            client.publish(publish_request("room-42", "tick", serde_json::json!(n))).await.unwrap();
        }
    });
    let hub = harness.server.server().service.hub.clone();
    let cutter = tokio::spawn(async move {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            hub.close_all(CloseCode::HeartbeatTimeout, "cut by the test");
        }
    });

    let (mut offsets, mut reconnects, mut recoveries) = (Vec::new(), 0, 0);
    within("every message", async {
        while offsets.last().copied().unwrap_or(0) < MESSAGES {
            match subscriber.next_event().await.expect("the subscriber keeps going") {
                SubscriberEvent::Frame(ServerFrame::Message { offset, .. }) => offsets.push(offset),
                SubscriberEvent::Frame(ServerFrame::Subscribed { recovered, .. }) => {
                    assert_ne!(recovered, Some(false), "every reconnection recovers");
                    recoveries += usize::from(recovered == Some(true));
                }
                SubscriberEvent::Reconnecting { .. } => reconnects += 1,
                SubscriberEvent::Frame(_) => {}
                SubscriberEvent::Stopped { reason } => panic!("stopped: {reason}"),
            }
        }
    })
    .await;
    publisher.await.unwrap();
    cutter.await.unwrap();
    assert!(reconnects >= 1, "the socket was cut");
    assert!(recoveries >= 1, "and the subscriber resumed with its position");
    assert_eq!(offsets, (1..=MESSAGES).collect::<Vec<_>>(), "every message once, in order");
}
