//! A user's connections on two nodes: user-addressed messages and commands reach them
//! wherever they are, and only the nodes holding them hear their frames.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use realtime_server::RunningServer;
use serde_json::{Value, json};

use super::Cluster;
use crate::engines::PrivateRedis;
use crate::support::{PROMPTLY, Ws, eventually};

impl Cluster {
    /// The users whose frames Redis routes to some node (`P:us:<account>:<user>`), by
    /// user id, with how many nodes subscribe to each.
    async fn user_routes(&self) -> BTreeMap<String, i64> {
        self.routes_of("us").await
    }

    /// A socket on `node` for `user_id`, connected.
    async fn user_socket(&self, node: &RunningServer, client_id: &str, user_id: &str) -> Ws {
        let body = json!({"client_id": client_id, "user_id": user_id});
        let mut token = self.post(&self.a, "/v1/realtime/token/issue", body).await.ok();
        token["endpoint"] = json!(format!("ws://{}/v1/realtime/ws", node.addr));
        Ws::connect(&token).await
    }

    /// Sends `user_id` a user message through `node`; returns the answer.
    async fn message_user(&self, node: &RunningServer, user_id: &str, delivery: &str, payload: Value) -> Value {
        let body = json!({"target_user_id": user_id, "delivery": delivery, "payload": payload});
        self.post(node, "/v1/realtime/user/message/send", body).await.ok()
    }
}

#[tokio::test]
async fn a_command_sent_on_node_a_is_answered_by_a_client_on_node_b() {
    let cluster = Cluster::start().await;
    let mut tablet = cluster.user_socket(cluster.b(), "tablet", "ivy").await;
    let (http, url, key) =
        (cluster.http.clone(), format!("{}/v1/realtime/user/command/send", cluster.a.base_url()), cluster.key.clone());
    let call = tokio::spawn(async move {
        let body = json!({"target_user_id": "ivy", "type": "SNAPSHOT", "data": {}, "timeout": 10});
        http.post(url).bearer_auth(key).json(&body).send().await.unwrap().json::<Value>().await.unwrap()
    });
    let command = tablet.expect("user.command").await;
    tablet.send(json!({"type": "command.response", "command_id": command["command_id"], "data": {"from": "b"}})).await;
    let answer = call.await.unwrap();
    assert_eq!((answer["status"].clone(), answer["response"].clone()), (json!("answered"), json!({"from": "b"})));
}

#[tokio::test]
async fn a_reliable_message_sent_on_a_node_that_then_dies_reaches_the_user_on_the_other() {
    let mut cluster = Cluster::start().await;
    let sent = cluster.message_user(cluster.b(), "jo", "reliable", json!(1)).await;
    assert_eq!(sent["delivered"], 0, "jo is offline");
    cluster.b.take().expect("node B runs").kill();
    let mut phone = cluster.user_socket(&cluster.a, "jo-phone", "jo").await;
    let frame = phone.expect("user.message").await;
    assert_eq!((frame["message_id"].clone(), frame["payload"].clone()), (sent["message_id"].clone(), json!(1)));
}

#[tokio::test]
async fn a_reliable_message_sent_while_a_node_s_subscription_was_cut_reaches_its_connection_when_it_returns() {
    let redis = PrivateRedis::start().await;
    let cluster = Cluster::start_on(&redis.url()).await;
    let mut phone = cluster.user_socket(cluster.b(), "kim-phone", "kim").await;
    eventually(PROMPTLY, || async { cluster.user_routes().await.get("kim") == Some(&1) }).await;
    let cut = redis.cut_subscribers().await;
    assert!(cut >= 2, "both nodes' subscribers were cut");
    let sent = cluster.message_user(&cluster.a, "kim", "reliable", json!("during the cut")).await;
    assert_eq!(sent["delivered"], 0, "B's subscription is down: nobody heard it");
    // B's subscriber reconnects 500 ms later, and hands the phone what it missed.
    let frame = phone.next(Duration::from_secs(5)).await.expect("the message, redelivered");
    assert_eq!((&frame["type"], &frame["message_id"]), (&json!("user.message"), &sent["message_id"]), "{frame}");
    assert_eq!(frame["payload"], "during the cut");
    // A counts B's deliveries through B's reply to A's inbox: A's subscriber must be back too.
    eventually(PROMPTLY, || async { redis.subscribers().await as i64 >= cut }).await;
    let after = cluster.message_user(&cluster.a, "kim", "reliable", json!("after")).await;
    assert_eq!(after["delivered"], 1, "routed to B again");
    assert_eq!(phone.expect("user.message").await["payload"], "after");
}

#[tokio::test]
async fn a_user_s_frames_are_routed_only_to_the_nodes_holding_its_connections() {
    let cluster = Cluster::start().await;
    let mut ivy = cluster.user_socket(cluster.b(), "ivy-tablet", "ivy").await;
    let mut max_a = cluster.user_socket(&cluster.a, "max-phone", "max").await;
    let mut max_b = cluster.user_socket(cluster.b(), "max-laptop", "max").await;
    // Routes open before a connection is told it is connected.
    let expected: BTreeMap<String, i64> = [("ivy", 1), ("max", 2)].map(|(u, n)| (u.into(), n)).into();
    assert_eq!(cluster.user_routes().await, expected);

    for n in 0..10 {
        assert_eq!(cluster.message_user(&cluster.a, "ivy", "realtime", json!(n)).await["delivered"], 1);
        assert_eq!(cluster.message_user(cluster.b(), "max", "realtime", json!(n)).await["delivered"], 2);
    }
    for (socket, who) in [(&mut ivy, "ivy"), (&mut max_a, "max on A"), (&mut max_b, "max on B")] {
        for n in 0..10 {
            assert_eq!(socket.expect("user.message").await["payload"], n, "{who}");
        }
        socket.expect_silence().await;
    }

    // A user's route on a node ends shortly after its last connection there leaves.
    ivy.close().await;
    max_a.close().await;
    let expected: BTreeMap<String, i64> = [("max", 1)].map(|(u, n)| (u.into(), n)).into();
    eventually(PROMPTLY, || async { cluster.user_routes().await == expected }).await;
    assert_eq!(cluster.message_user(&cluster.a, "ivy", "realtime", json!("late")).await["delivered"], 0);
    assert_eq!(cluster.message_user(&cluster.a, "max", "realtime", json!("last")).await["delivered"], 1);
    assert_eq!(max_b.expect("user.message").await["payload"], "last");
}

#[tokio::test]
async fn a_connection_opened_on_one_node_while_another_sends_reliable_messages_gets_every_one() {
    let cluster = Arc::new(Cluster::start().await);
    let total = 40u64;
    let sender = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            for n in 1..=total {
                cluster.message_user(&cluster.a, "jo", "reliable", json!(n)).await;
            }
        })
    };
    // jo connects on B while A sends: what was sent before is read from the store, what
    // is sent after arrives live, and nothing falls between the two.
    let mut phone = cluster.user_socket(cluster.b(), "jo-phone", "jo").await;
    let mut received = BTreeSet::new();
    while received.len() < total as usize {
        let Some(frame) = phone.next(PROMPTLY).await else { break };
        assert_eq!(frame["type"], "user.message", "{frame}");
        received.insert(frame["payload"].as_u64().unwrap());
    }
    sender.await.unwrap();
    assert_eq!(received, (1..=total).collect::<BTreeSet<u64>>(), "every reliable message on the first connection");
}
