//! The Pusher face on two nodes sharing one PostgreSQL database and one Redis prefix: a
//! trigger on one node reaches the Pusher sockets of the other (but the excluded one),
//! and presence, client events, events sent to a user and subscription counts cross
//! nodes.

use realtime_server::{Config, RunningServer};
use serde_json::json;

use crate::engines::{PgDatabase, RedisPrefix};
use crate::pusher_support::{App, PusherSocket};
use crate::pusher_users::sign_in;

/// Two nodes and their engines; the dev account and its Pusher app were created by `a`.
pub(crate) struct Pair {
    pub(crate) a: RunningServer,
    pub(crate) b: RunningServer,
    _redis: RedisPrefix,
    _database: PgDatabase,
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.a.service.kill.cancel();
        self.b.service.kill.cancel();
    }
}

async fn node(database: &PgDatabase, redis: &RedisPrefix, pusher: &serde_json::Value) -> RunningServer {
    let config = Config::with(json!({
        "listen": "127.0.0.1:0",
        "admin_secret": realtime_server::testing::ADMIN_SECRET,
        "store": database.url,
        "broker": redis.url,
        "redis_prefix": redis.prefix,
        "pusher": pusher,
    }))
    .unwrap();
    RunningServer::start(config).await.unwrap()
}

impl Pair {
    pub(crate) async fn start() -> Pair {
        Pair::start_with(json!({})).await
    }

    /// Two nodes with these `pusher` settings.
    pub(crate) async fn start_with(pusher: serde_json::Value) -> Pair {
        let database = PgDatabase::create().await;
        let redis = RedisPrefix::create().await;
        let a = node(&database, &redis, &pusher).await;
        let b = node(&database, &redis, &pusher).await;
        Pair { a, b, _redis: redis, _database: database }
    }
}

/// A socket of node `base_url` on a presence channel as `user_id`.
async fn member(base_url: &str, channel: &str, user_id: &str) -> PusherSocket {
    let app = App::dev();
    let mut socket = PusherSocket::connect_to(base_url, &app.key).await;
    let data = json!({"user_id": user_id}).to_string();
    let auth = app.auth(&socket.socket_id.clone(), channel, Some(&data));
    socket.subscribe(channel, Some(auth), Some(&data)).await;
    socket
}

#[tokio::test]
async fn a_trigger_on_one_node_reaches_the_other_node_s_sockets_but_the_excluded_one() {
    let pair = Pair::start().await;
    let app = App::dev();
    let mut reader = PusherSocket::connect_to(&pair.b.base_url(), &app.key).await;
    let mut excluded = PusherSocket::connect_to(&pair.b.base_url(), &app.key).await;
    reader.subscribe("room", None, None).await;
    excluded.subscribe("room", None, None).await;

    let body = json!({"name": "e", "data": "from a", "channel": "room", "socket_id": excluded.socket_id});
    let answer = app.request_to(&pair.a.base_url(), "POST", "/events", &[], Some(&body), None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    assert_eq!(reader.expect("e").await["raw_data"], "from a");
    excluded.expect_silence().await;
}

#[tokio::test]
async fn presence_and_client_events_cross_nodes() {
    let pair = Pair::start().await;
    let mut on_a = member(&pair.a.base_url(), "presence-hall", "u1").await;
    let mut on_b = member(&pair.b.base_url(), "presence-hall", "u2").await;
    let added = on_a.expect("pusher_internal:member_added").await;
    assert_eq!(added["data"]["user_id"], "u2");

    on_b.send("client-wave", Some("presence-hall"), json!({"hand": "left"})).await;
    let wave = on_a.expect("client-wave").await;
    assert_eq!(wave["user_id"], "u2");
    on_b.expect_silence().await;

    let users =
        App::dev().request_to(&pair.b.base_url(), "GET", "/channels/presence-hall/users", &[], None, None).await;
    assert_eq!(users.body, json!({"users": [{"id": "u1"}, {"id": "u2"}]}));
    drop(on_b);
    assert_eq!(on_a.expect("pusher_internal:member_removed").await["data"]["user_id"], "u2");
}

#[tokio::test]
async fn an_event_sent_to_a_user_on_one_node_reaches_the_user_s_sockets_on_the_other() {
    let pair = Pair::start().await;
    let app = App::dev();
    let mut on_b = PusherSocket::connect_to(&pair.b.base_url(), &app.key).await;
    sign_in(&mut on_b, &app, "u1").await;
    on_b.subscribe("#server-to-user-u1", None, None).await;

    let body = json!({"name": "e", "data": "from a", "channels": ["#server-to-user-u1"]});
    let answer = app.request_to(&pair.a.base_url(), "POST", "/events", &[], Some(&body), None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(on_b.expect("e").await["raw_data"], "from a");
}

#[tokio::test]
async fn the_subscription_count_is_the_cluster_s() {
    let pair = Pair::start_with(json!({"subscription_count": true})).await;
    let app = App::dev();
    let mut on_a = PusherSocket::connect_to(&pair.a.base_url(), &app.key).await;
    on_a.subscribe("room", None, None).await;
    let mut on_b = PusherSocket::connect_to(&pair.b.base_url(), &app.key).await;
    on_b.subscribe("room", None, None).await;
    for socket in [&mut on_a, &mut on_b] {
        crate::pusher_counts::expect_count(socket, "room", 2).await;
    }
    drop(on_b);
    crate::pusher_counts::expect_count(&mut on_a, "room", 1).await;
}
