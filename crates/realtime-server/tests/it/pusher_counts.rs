//! Pusher's subscription counting, on with `pusher.subscription_count`: subscribers of
//! non-presence channels hear `pusher_internal:subscription_count` when the number of
//! subscribed sockets changes, webhook apps get the `subscription_count` webhook, and the
//! channel info and list report `subscription_count`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::pusher_support::{App, PusherSocket};
use crate::support::Env;

async fn counting() -> Env {
    Env::start_with(json!({"pusher": {"subscription_count": true}})).await
}

/// Reads until a `pusher_internal:subscription_count` of `channel` says `count`.
pub(crate) async fn expect_count(socket: &mut PusherSocket, channel: &str, count: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut seen: Vec<Value> = Vec::new();
    while tokio::time::Instant::now() < deadline {
        let Some(event) = socket.next(Duration::from_secs(1)).await else { continue };
        if event["event"] == "pusher_internal:subscription_count"
            && event["channel"] == channel
            && event["data"]["subscription_count"] == count
        {
            return;
        }
        seen.push(event);
    }
    panic!("no subscription_count {count} on {channel}; saw {seen:?}");
}

#[tokio::test]
async fn subscribers_hear_the_subscription_count_when_it_changes() {
    let env = counting().await;
    let app = App::dev();
    let mut first = PusherSocket::connect(&env, &app.key).await;
    first.subscribe("room", None, None).await;
    expect_count(&mut first, "room", 1).await;
    let mut second = PusherSocket::connect(&env, &app.key).await;
    second.subscribe("room", None, None).await;
    expect_count(&mut first, "room", 2).await;
    expect_count(&mut second, "room", 2).await;

    drop(second);
    expect_count(&mut first, "room", 1).await;
    first.expect_silence().await;
}

#[tokio::test]
async fn presence_channels_count_members_not_subscriptions() {
    let env = counting().await;
    let app = App::dev();
    let mut socket = PusherSocket::connect(&env, &app.key).await;
    let data = json!({"user_id": "u1"}).to_string();
    let auth = app.auth(&socket.socket_id.clone(), "presence-room", Some(&data));
    socket.subscribe("presence-room", Some(auth), Some(&data)).await;
    assert!(socket.next(Duration::from_secs(1)).await.is_none(), "no count on a presence channel");
}

#[tokio::test]
async fn without_the_setting_no_count_is_sent() {
    let env = Env::start().await;
    let app = App::dev();
    let mut socket = PusherSocket::connect(&env, &app.key).await;
    socket.subscribe("room", None, None).await;
    assert!(socket.next(Duration::from_secs(1)).await.is_none());
}

#[tokio::test]
async fn the_channel_list_reports_subscription_counts() {
    let env = counting().await;
    let app = App::dev();
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let mut socket = PusherSocket::connect(&env, &app.key).await;
        socket.subscribe("counted-room", None, None).await;
        sockets.push(socket);
    }
    let listed = app.get(&env, "/channels", &[("filter_by_prefix", "counted-"), ("info", "subscription_count")]).await;
    assert_eq!(listed.ok(), json!({"channels": {"counted-room": {"subscription_count": 2}}}));
}
