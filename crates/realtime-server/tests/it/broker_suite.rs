//! The broker's behaviour suite: every behaviour runs against the in-memory and the
//! Redis broker (`broker_suite::memory::…`, `broker_suite::redis::…`); behaviours that
//! need two nodes run against two Redis brokers sharing a prefix
//! (`broker_suite::redis_cluster::…`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use realtime_server::broker::ClusterEvent;
use realtime_server::hub::{ChannelKey, Closing, Connection, Frames, Hub};
use realtime_types::ws::CloseCode;
use realtime_types::{Position, PresenceMember};
use serde_json::{Value, json};

use crate::engines::{BrokerEngine, RedisPrefix};

/// How long a test waits for something that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(5);

/// A Redis broker reads the store to catch a new route up; these nodes have none to
/// read (an in-memory SQLite instead of the default file).
fn without_store() -> Value {
    json!({"store": "sqlite::memory:"})
}

/// Instantiates each behaviour once per broker.
macro_rules! suite {
    ($($behaviour:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    super::$behaviour(crate::engines::BrokerEngine::memory()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let prefix = crate::engines::RedisPrefix::create().await;
                    let engine = crate::engines::BrokerEngine::redis(&prefix, super::without_store()).await;
                    super::$behaviour(engine).await;
                }
            )*
        }
    };
}

suite!(
    frames_reach_subscribers_in_publish_order,
    a_publish_counts_the_sockets_it_reached,
    a_join_is_a_members_first_socket_and_a_leave_its_last,
    members_are_listed_once_each_ordered_by_client_id,
    the_subscriber_count_counts_subscribed_sockets,
    a_revoked_token_closes_only_its_sockets,
    a_client_disconnect_closes_or_unsubscribes_that_client,
    a_deleted_channel_unsubscribes_every_subscriber,
    the_engine_answers_ping,
);

/// A socket as the hub sees it, whose queued frames the test takes as its writer would.
struct Socket {
    connection: Arc<Connection>,
}

impl Socket {
    fn open(hub: &Hub, client_id: &str, jti: &str) -> Socket {
        let connection = Arc::new(Connection::new("acct_t".into(), client_id.into(), None, jti.into(), 1024));
        hub.connect(connection.clone());
        Socket { connection }
    }

    fn subscribed(hub: &Hub, client_id: &str, channel: &str) -> Socket {
        let mut socket = Self::open(hub, client_id, &format!("jti_{client_id}"));
        socket.subscribe(hub, channel);
        socket
    }

    /// Subscribes from the start of the channel's stream, and takes the hub's reply.
    fn subscribe(&mut self, hub: &Hub, channel: &str) {
        let start = Position { epoch: "e".into(), offset: 0 };
        hub.subscribe(&self.connection, channel, &start, |_| Utf8Bytes::from_static("{\"type\":\"subscribed\"}"));
        let reply = self.connection.queued_frame().expect("the reply is queued at once");
        assert_eq!(reply.as_str(), "{\"type\":\"subscribed\"}");
    }

    async fn frame(&mut self) -> Value {
        let frame =
            tokio::time::timeout(PROMPTLY, self.connection.next_frame()).await.expect("a frame in time").expect("open");
        serde_json::from_str(&frame).unwrap()
    }

    async fn silence(&mut self) {
        if let Ok(Ok(frame)) = tokio::time::timeout(Duration::from_millis(300), self.connection.next_frame()).await {
            panic!("unexpected frame {frame}");
        }
    }

    async fn closed(&self) -> CloseCode {
        match tokio::time::timeout(PROMPTLY, self.connection.closed()).await.expect("closed in time") {
            Closing::With(code, _) => code,
            Closing::Vanish => panic!("dropped without a close code"),
        }
    }
}

fn key(channel: &str) -> ChannelKey {
    ChannelKey::new("acct_t", channel)
}

fn member(client_id: &str) -> PresenceMember {
    PresenceMember { client_id: client_id.into(), user_id: Some(format!("user_{client_id}")), user_info: None }
}

fn frame(n: usize) -> Utf8Bytes {
    Utf8Bytes::from(json!({"type": "message", "n": n}).to_string())
}

async fn frames_reach_subscribers_in_publish_order(engine: BrokerEngine) {
    let mut socket = Socket::subscribed(&engine.hub, "reader", "room");
    for n in 0..200 {
        engine
            .broker
            .publish(ClusterEvent::Frame { key: key("room"), frame: Frames::native(frame(n)), position: None })
            .await
            .unwrap();
    }
    for n in 0..200 {
        assert_eq!(socket.frame().await["n"], n);
    }
    socket.silence().await;
}

async fn a_publish_counts_the_sockets_it_reached(engine: BrokerEngine) {
    let _one = Socket::subscribed(&engine.hub, "one", "room");
    let _two = Socket::subscribed(&engine.hub, "two", "room");
    let _elsewhere = Socket::subscribed(&engine.hub, "three", "other");
    let reached = engine
        .broker
        .publish(ClusterEvent::Frame { key: key("room"), frame: Frames::native(frame(0)), position: None })
        .await
        .unwrap();
    assert_eq!(reached, 2);
    let nobody = engine
        .broker
        .publish(ClusterEvent::Frame { key: key("empty"), frame: Frames::native(frame(0)), position: None })
        .await
        .unwrap();
    assert_eq!(nobody, 0);
}

async fn a_join_is_a_members_first_socket_and_a_leave_its_last(engine: BrokerEngine) {
    let broker = &engine.broker;
    assert!(broker.join(&key("room"), &member("alice")).await.unwrap());
    assert!(!broker.join(&key("room"), &member("alice")).await.unwrap(), "a second socket is no join");
    assert!(broker.join(&key("other"), &member("alice")).await.unwrap(), "channels are apart");
    assert!(!broker.leave(&key("room"), &member("alice")).await.unwrap(), "one socket is left");
    assert!(broker.leave(&key("room"), &member("alice")).await.unwrap());
    assert!(!broker.leave(&key("room"), &member("alice")).await.unwrap(), "a leave of nobody is no leave");
    assert_eq!(broker.members(&key("room")).await.unwrap(), []);
    assert_eq!(broker.members(&key("other")).await.unwrap(), [member("alice")]);
}

async fn members_are_listed_once_each_ordered_by_client_id(engine: BrokerEngine) {
    for client in ["carol", "alice", "bob", "alice"] {
        engine.broker.join(&key("room"), &member(client)).await.unwrap();
    }
    assert_eq!(engine.broker.members(&key("room")).await.unwrap(), [member("alice"), member("bob"), member("carol")]);
    assert_eq!(engine.broker.members(&key("empty")).await.unwrap(), []);
}

async fn the_subscriber_count_counts_subscribed_sockets(engine: BrokerEngine) {
    let one = Socket::subscribed(&engine.hub, "one", "room");
    let _two = Socket::subscribed(&engine.hub, "two", "room");
    assert_eq!(engine.broker.subscriber_count(&key("room")).await.unwrap(), 2);
    engine.hub.unsubscribe(&one.connection, "room");
    assert_eq!(engine.broker.subscriber_count(&key("room")).await.unwrap(), 1);
    assert_eq!(engine.broker.subscriber_count(&key("empty")).await.unwrap(), 0);
}

async fn a_revoked_token_closes_only_its_sockets(engine: BrokerEngine) {
    let first = Socket::open(&engine.hub, "alice", "jti_revoked");
    let second = Socket::open(&engine.hub, "alice", "jti_revoked");
    let mut other = Socket::open(&engine.hub, "alice", "jti_kept");
    let acted = engine.broker.publish(ClusterEvent::TokenRevoked { jti: "jti_revoked".into() }).await.unwrap();
    assert_eq!(acted, 2);
    assert_eq!(first.closed().await, CloseCode::TokenRevoked);
    assert_eq!(second.closed().await, CloseCode::TokenRevoked);
    assert!(tokio::time::timeout(Duration::from_millis(300), other.connection.closed()).await.is_err());
    other.silence().await;
}

async fn a_client_disconnect_closes_or_unsubscribes_that_client(engine: BrokerEngine) {
    let mut partly = Socket::subscribed(&engine.hub, "bob", "room");
    partly.subscribe(&engine.hub, "lobby");
    let event = |channel: Option<&str>| ClusterEvent::ClientDisconnected {
        account_id: "acct_t".into(),
        client_id: "bob".into(),
        channel: channel.map(str::to_owned),
    };
    assert_eq!(engine.broker.publish(event(Some("room"))).await.unwrap(), 1);
    let frame = partly.frame().await;
    assert_eq!((frame["type"].as_str(), frame["channel"].as_str()), (Some("unsubscribed"), Some("room")));
    assert_eq!(frame["reason"], "disconnected_by_server");
    assert!(!partly.connection.is_subscribed("room"));
    assert!(partly.connection.is_subscribed("lobby"));
    assert_eq!(engine.broker.publish(event(None)).await.unwrap(), 1);
    assert_eq!(partly.closed().await, CloseCode::DisconnectedByServer);
}

async fn a_deleted_channel_unsubscribes_every_subscriber(engine: BrokerEngine) {
    let mut one = Socket::subscribed(&engine.hub, "one", "doomed");
    let mut two = Socket::subscribed(&engine.hub, "two", "doomed");
    let acted = engine.broker.publish(ClusterEvent::ChannelDeleted { key: key("doomed") }).await.unwrap();
    assert_eq!(acted, 2);
    for socket in [&mut one, &mut two] {
        let frame = socket.frame().await;
        assert_eq!((frame["type"].as_str(), frame["reason"].as_str()), (Some("unsubscribed"), Some("channel_deleted")));
    }
    assert_eq!(engine.hub.subscriber_count(&key("doomed")), 0);
}

async fn the_engine_answers_ping(engine: BrokerEngine) {
    engine.broker.ping().await.unwrap();
}

/// Two Redis broker nodes sharing one prefix.
mod redis_cluster {
    use super::*;
    use crate::support::eventually;

    async fn two_nodes(overrides: Value) -> (RedisPrefix, BrokerEngine, BrokerEngine) {
        let prefix = RedisPrefix::create().await;
        let mut overrides = overrides;
        overrides["store"] = without_store()["store"].take();
        let a = BrokerEngine::redis(&prefix, overrides.clone()).await;
        let b = BrokerEngine::redis(&prefix, overrides).await;
        (prefix, a, b)
    }

    /// How many nodes Redis routes `channel`'s frames to.
    async fn routed_to(prefix: &RedisPrefix, channel: &str) -> i64 {
        use fred::prelude::*;
        let client = Builder::from_config(fred::prelude::Config::from_url(&prefix.url).unwrap()).build().unwrap();
        client.init().await.unwrap();
        let route = format!("{}:ch:{}:{channel}", prefix.prefix, key(channel).account_id);
        let counts: Vec<fred::types::Value> = client.pubsub_numsub(route).await.unwrap();
        let _ = client.quit().await;
        counts[1].clone().convert().unwrap()
    }

    #[tokio::test]
    async fn frames_published_on_one_node_reach_the_other_in_order() {
        let (prefix, a, b) = two_nodes(json!({})).await;
        let mut on_b = Socket::subscribed(&b.hub, "reader", "room");
        let mut on_a = Socket::subscribed(&a.hub, "local", "room");
        // A node hears a channel shortly after its first subscriber there; frames without
        // a position published before that are not caught up.
        eventually(PROMPTLY, || async { routed_to(&prefix, "room").await == 2 }).await;
        for n in 0..500 {
            a.broker
                .publish(ClusterEvent::Frame { key: key("room"), frame: Frames::native(frame(n)), position: None })
                .await
                .unwrap();
        }
        for n in 0..500 {
            assert_eq!(on_b.frame().await["n"], n);
            assert_eq!(on_a.frame().await["n"], n);
        }
        on_a.silence().await;
        on_b.silence().await;
    }

    #[tokio::test]
    async fn a_node_is_routed_a_channel_only_while_it_holds_a_subscriber_of_it() {
        let (prefix, a, b) = two_nodes(json!({})).await;
        let on_a = Socket::subscribed(&a.hub, "reader", "room");
        eventually(PROMPTLY, || async { routed_to(&prefix, "room").await == 1 }).await;
        let on_b = Socket::subscribed(&b.hub, "reader", "room");
        eventually(PROMPTLY, || async { routed_to(&prefix, "room").await == 2 }).await;
        for (hub, socket) in [(&a.hub, &on_a), (&b.hub, &on_b)] {
            assert!(hub.unsubscribe(&socket.connection, "room"));
        }
        eventually(PROMPTLY, || async { routed_to(&prefix, "room").await == 0 }).await;
        assert_eq!(routed_to(&prefix, "elsewhere").await, 0);
    }

    #[tokio::test]
    async fn broadcast_routing_sends_every_channel_to_every_node() {
        let (prefix, a, b) = two_nodes(json!({"redis_routing": "broadcast"})).await;
        let mut on_b = Socket::subscribed(&b.hub, "reader", "room");
        let frame_of = |n| ClusterEvent::Frame { key: key("room"), frame: Frames::native(frame(n)), position: None };
        a.broker.publish(frame_of(0)).await.unwrap();
        assert_eq!(on_b.frame().await["n"], 0, "no route was needed");
        assert_eq!(routed_to(&prefix, "room").await, 0, "the nodes listen through a pattern");
    }

    #[tokio::test]
    async fn subscriber_counts_and_publish_counts_span_both_nodes() {
        let (_prefix, a, b) = two_nodes(json!({})).await;
        let _on_a = Socket::subscribed(&a.hub, "one", "room");
        let _on_b = Socket::subscribed(&b.hub, "two", "room");
        let _also_b = Socket::subscribed(&b.hub, "three", "room");
        for node in [&a, &b] {
            eventually(PROMPTLY, || async { node.broker.subscriber_count(&key("room")).await.unwrap() == 3 }).await;
        }
        let reached = a
            .broker
            .publish(ClusterEvent::Frame { key: key("room"), frame: Frames::native(frame(0)), position: None })
            .await
            .unwrap();
        assert_eq!(reached, 3);
    }

    #[tokio::test]
    async fn presence_is_the_union_of_both_nodes_and_a_join_is_first_cluster_wide() {
        let (_prefix, a, b) = two_nodes(json!({})).await;
        assert!(a.broker.join(&key("room"), &member("alice")).await.unwrap());
        assert!(!b.broker.join(&key("room"), &member("alice")).await.unwrap(), "alice is already present on A");
        assert!(b.broker.join(&key("room"), &member("bob")).await.unwrap());
        for node in [&a, &b] {
            assert_eq!(node.broker.members(&key("room")).await.unwrap(), [member("alice"), member("bob")]);
        }
        assert!(!a.broker.leave(&key("room"), &member("alice")).await.unwrap(), "alice is still on B");
        assert!(b.broker.leave(&key("room"), &member("alice")).await.unwrap());
        assert_eq!(a.broker.members(&key("room")).await.unwrap(), [member("bob")]);
    }

    #[tokio::test]
    async fn concurrent_joins_of_one_member_on_both_nodes_make_exactly_one_join() {
        let (_prefix, a, b) = two_nodes(json!({})).await;
        for round in 0..20 {
            let (who, room) = (member(&format!("m{round}")), key("room"));
            let (on_a, on_b) = tokio::join!(a.broker.join(&room, &who), b.broker.join(&room, &who));
            assert_eq!(u8::from(on_a.unwrap()) + u8::from(on_b.unwrap()), 1, "round {round}");
            let (off_a, off_b) = tokio::join!(a.broker.leave(&room, &who), b.broker.leave(&room, &who));
            assert_eq!(u8::from(off_a.unwrap()) + u8::from(off_b.unwrap()), 1, "round {round}");
        }
    }

    #[tokio::test]
    async fn commands_reach_the_other_node_and_report_its_sockets() {
        let (_prefix, a, b) = two_nodes(json!({})).await;
        let revoked = Socket::open(&b.hub, "alice", "jti_x");
        let acted = a.broker.publish(ClusterEvent::TokenRevoked { jti: "jti_x".into() }).await.unwrap();
        assert_eq!(acted, 1, "B reported its socket");
        assert_eq!(revoked.closed().await, CloseCode::TokenRevoked);
        let mut subscribed = Socket::subscribed(&b.hub, "bob", "doomed");
        let acted = a.broker.publish(ClusterEvent::ChannelDeleted { key: key("doomed") }).await.unwrap();
        assert_eq!(acted, 1);
        assert_eq!(subscribed.frame().await["reason"], "channel_deleted");
    }

    #[tokio::test]
    async fn a_killed_nodes_members_vanish_within_the_expiry_and_their_leave_is_announced() {
        const EXPIRY: u64 = 2;
        let (_prefix, a, b) = two_nodes(json!({"node_expiry_seconds": EXPIRY})).await;
        let mut watcher = Socket::subscribed(&a.hub, "watcher", "room");
        assert!(a.broker.join(&key("room"), &member("alice")).await.unwrap());
        assert!(b.broker.join(&key("room"), &member("bob")).await.unwrap());
        assert!(!b.broker.join(&key("room"), &member("alice")).await.unwrap());
        b.kill.cancel();
        assert!(b.broker.leave(&key("room"), &member("bob")).await.is_err(), "a killed node says goodbye to nobody");
        let gone = eventually(Duration::from_secs(EXPIRY + 2), || async {
            a.broker.members(&key("room")).await.unwrap() == [member("alice")]
        })
        .await;
        let frame = watcher.frame().await;
        assert_eq!(
            (frame["type"].as_str(), frame["member"]["client_id"].as_str()),
            (Some("presence.leave"), Some("bob"))
        );
        eprintln!("a killed node's member vanished after {gone:?} (expiry {EXPIRY} s)");
        watcher.silence().await;
        // The bound holds in Redis; the second is for this test's polling on a loaded machine.
        assert!(gone <= Duration::from_secs(EXPIRY + 1), "{gone:?}");
    }
}
