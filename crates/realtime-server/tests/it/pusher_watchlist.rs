//! The watchlist over raw protocol 7 sockets: a socket that signs in with a `watchlist`
//! hears which watched users are online now, then each one's first socket coming and last
//! socket going (not every socket), and nothing of users it does not watch; a watchlist
//! of more than 100 ids keeps the first 100 and is answered with `pusher:error` 4302; and
//! on two nodes a user signing in on one is online for a watcher on the other.

use realtime_server::pusher::signing::user_auth;
use realtime_server::secret::Secret;
use serde_json::{Value, json};

use crate::pusher_cluster::Pair;
use crate::pusher_support::{App, PusherSocket};
use crate::pusher_users::sign_in;
use crate::support::Env;

/// Signs in with `user_data` as it is.
async fn sign_in_with(socket: &mut PusherSocket, app: &App, user_data: &Value) {
    let user_data = user_data.to_string();
    let auth = user_auth(&app.key, &Secret::new(app.secret.clone()), &socket.socket_id, &user_data);
    socket.send("pusher:signin", None, json!({"auth": auth, "user_data": user_data})).await;
    socket.expect("pusher:signin_success").await;
}

/// The events of the next frame, which must be `pusher_internal:watchlist_events`.
async fn watchlist_events(socket: &mut PusherSocket) -> Value {
    socket.expect("pusher_internal:watchlist_events").await["data"]["events"].clone()
}

async fn online(base_url: &str, app: &App, user_id: &str) -> PusherSocket {
    let mut socket = PusherSocket::connect_to(base_url, &app.key).await;
    sign_in(&mut socket, app, user_id).await;
    socket
}

#[tokio::test]
async fn a_watcher_hears_who_is_online_then_each_watched_user_coming_and_going() {
    let env = Env::start().await;
    let app = App::dev();
    let base = env.server.base_url();
    let u1 = online(&base, &app, "u1").await;

    let mut watcher = PusherSocket::connect(&env, &app.key).await;
    sign_in_with(&mut watcher, &app, &json!({"id": "me", "watchlist": ["u1", "u2"]})).await;
    assert_eq!(
        watchlist_events(&mut watcher).await,
        json!([{"name": "online", "user_ids": ["u1"]}, {"name": "offline", "user_ids": ["u2"]}])
    );

    let phone = online(&base, &app, "u2").await;
    assert_eq!(watchlist_events(&mut watcher).await, json!([{"name": "online", "user_ids": ["u2"]}]));
    // A second socket of an online user, and a user nobody watches, change nothing.
    let laptop = online(&base, &app, "u2").await;
    let _stranger = online(&base, &app, "u3").await;
    watcher.expect_silence().await;
    drop(phone);
    watcher.expect_silence().await;
    drop(laptop);
    assert_eq!(watchlist_events(&mut watcher).await, json!([{"name": "offline", "user_ids": ["u2"]}]));
    drop(u1);
    assert_eq!(watchlist_events(&mut watcher).await, json!([{"name": "offline", "user_ids": ["u1"]}]));

    // A socket signed in without a watchlist hears none of it.
    let mut plain = online(&base, &app, "u4").await;
    let _back = online(&base, &app, "u1").await;
    assert_eq!(watchlist_events(&mut watcher).await, json!([{"name": "online", "user_ids": ["u1"]}]));
    plain.expect_silence().await;
}

#[tokio::test]
async fn a_watchlist_of_more_than_100_ids_keeps_the_first_100_and_is_answered_with_4302() {
    let env = Env::start().await;
    let app = App::dev();
    let ids: Vec<String> = (0..101).map(|n| format!("u{n}")).collect();
    let mut watcher = PusherSocket::connect(&env, &app.key).await;
    sign_in_with(&mut watcher, &app, &json!({"id": "me", "watchlist": ids})).await;
    let events = watchlist_events(&mut watcher).await;
    assert_eq!(events[0]["name"], "offline");
    assert_eq!(events[0]["user_ids"].as_array().unwrap().len(), 100);
    assert_eq!(events[0]["user_ids"][99], "u99");
    let error = watcher.expect("pusher:error").await;
    assert_eq!(error["data"]["code"], 4302, "{error}");

    // Still signed in and watching: the 101st is not watched, the 100th is.
    let _last = online(&env.server.base_url(), &app, "u100").await;
    watcher.expect_silence().await;
    let _kept = online(&env.server.base_url(), &app, "u99").await;
    assert_eq!(watchlist_events(&mut watcher).await, json!([{"name": "online", "user_ids": ["u99"]}]));
}

#[tokio::test]
async fn a_user_signing_in_on_one_node_is_online_for_a_watcher_on_the_other() {
    let pair = Pair::start().await;
    let app = App::dev();
    let mut watcher = PusherSocket::connect_to(&pair.b.base_url(), &app.key).await;
    sign_in_with(&mut watcher, &app, &json!({"id": "me", "watchlist": ["u1"]})).await;
    assert_eq!(watchlist_events(&mut watcher).await, json!([{"name": "offline", "user_ids": ["u1"]}]));

    let u1 = online(&pair.a.base_url(), &app, "u1").await;
    assert_eq!(watchlist_events(&mut watcher).await, json!([{"name": "online", "user_ids": ["u1"]}]));
    drop(u1);
    assert_eq!(watchlist_events(&mut watcher).await, json!([{"name": "offline", "user_ids": ["u1"]}]));
}
