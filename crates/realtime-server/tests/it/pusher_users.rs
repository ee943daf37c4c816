//! Events sent to a user: a trigger to `#server-to-user-{id}` (what `sendToUser` sends) and
//! `POST /apps/{app_id}/users/{id}/events` reach the sockets signed in as the user that
//! subscribed to their user channel, and no other; a socket may subscribe only to its own.

use realtime_server::pusher::signing::user_auth;
use realtime_server::secret::Secret;
use serde_json::json;

use crate::pusher_support::{App, PusherSocket};
use crate::support::Env;

/// A socket signed in as `user_id`, subscribed to its user channel as pusher-js does.
async fn signed_in(env: &Env, app: &App, user_id: &str) -> PusherSocket {
    let mut socket = PusherSocket::connect(env, &app.key).await;
    sign_in(&mut socket, app, user_id).await;
    socket.subscribe(&format!("#server-to-user-{user_id}"), None, None).await;
    socket
}

pub(crate) async fn sign_in(socket: &mut PusherSocket, app: &App, user_id: &str) {
    let user_data = json!({"id": user_id}).to_string();
    let auth = user_auth(&app.key, &Secret::new(app.secret.clone()), &socket.socket_id, &user_data);
    socket.send("pusher:signin", None, json!({"auth": auth, "user_data": user_data})).await;
    socket.expect("pusher:signin_success").await;
}

#[tokio::test]
async fn an_event_sent_to_a_user_reaches_every_socket_signed_in_as_that_user_and_no_other() {
    let env = Env::start().await;
    let app = App::dev();
    let mut phone = signed_in(&env, &app, "u1").await;
    let mut laptop = signed_in(&env, &app, "u1").await;
    let mut other = signed_in(&env, &app, "u2").await;

    // As the server libraries' sendToUser / send_to_user send it.
    app.trigger(&env, &["#server-to-user-u1"], "greeting", "{\"text\":\"hi\"}").await.ok();
    for socket in [&mut phone, &mut laptop] {
        let event = socket.expect("greeting").await;
        assert_eq!(event["channel"], "#server-to-user-u1");
        assert_eq!(event["raw_data"], "{\"text\":\"hi\"}");
    }
    other.expect_silence().await;

    // And through the user's events endpoint.
    let sent = app.post(&env, "/users/u2/events", json!({"name": "greeting", "data": "hello"})).await;
    assert_eq!(sent.ok(), json!({}));
    assert_eq!(other.expect("greeting").await["raw_data"], "hello");
    phone.expect_silence().await;
}

#[tokio::test]
async fn a_socket_may_subscribe_only_to_the_user_channel_of_the_user_it_signed_in_as() {
    let env = Env::start().await;
    let app = App::dev();
    let mut socket = PusherSocket::connect(&env, &app.key).await;
    socket.send("pusher:subscribe", None, json!({"channel": "#server-to-user-u1"})).await;
    let refused = socket.expect("pusher:subscription_error").await;
    assert_eq!(refused["data"]["status"], 403, "not signed in: {refused}");

    sign_in(&mut socket, &app, "u1").await;
    socket.send("pusher:subscribe", None, json!({"channel": "#server-to-user-u2"})).await;
    let refused = socket.expect("pusher:subscription_error").await;
    assert_eq!(refused["data"]["status"], 403, "another user's channel: {refused}");
    app.trigger(&env, &["#server-to-user-u2"], "secret", "x").await.ok();
    socket.expect_silence().await;

    socket.subscribe("#server-to-user-u1", None, None).await;
    app.trigger(&env, &["#server-to-user-u1"], "mine", "x").await.ok();
    socket.expect("mine").await;
}

#[tokio::test]
async fn sending_to_a_user_is_charged_like_a_trigger_and_refused_when_not_covered() {
    let env = Env::start().await;
    let (app, api_key) = App::create(&env, 10).await;
    let mut socket = signed_in(&env, &app, "u1").await;

    app.post(&env, "/users/u1/events", json!({"name": "e", "data": "1"})).await.ok();
    socket.expect("e").await;
    assert_eq!(env.balance(&api_key).await, 0, "charged as one trigger event");

    let refused = app.post(&env, "/users/u1/events", json!({"name": "e", "data": "2"})).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let refused = app.trigger(&env, &["#server-to-user-u1"], "e", "3").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    socket.expect_silence().await;
}

#[tokio::test]
async fn a_send_to_user_with_a_bad_user_id_or_event_name_is_a_400() {
    let env = Env::start().await;
    let app = App::dev();
    let bad_user = app.trigger(&env, &["#server-to-user-a b"], "e", "1").await;
    assert_eq!(bad_user.status, 400, "{}", bad_user.body);
    let empty_user = app.trigger(&env, &["#server-to-user-"], "e", "1").await;
    assert_eq!(empty_user.status, 400, "{}", empty_user.body);
    let reserved = app.post(&env, "/users/u1/events", json!({"name": "pusher:x", "data": "1"})).await;
    assert_eq!(reserved.status, 400, "{}", reserved.body);
    let other_hash = app.trigger(&env, &["#other"], "e", "1").await;
    assert_eq!(other_hash.status, 400, "{}", other_hash.body);
}

#[tokio::test]
async fn a_batch_may_mix_user_channels_and_channels() {
    let env = Env::start().await;
    let app = App::dev();
    let mut user = signed_in(&env, &app, "u1").await;
    let mut room = PusherSocket::connect(&env, &app.key).await;
    room.subscribe("room", None, None).await;
    let batch = json!({"batch": [
        {"channel": "#server-to-user-u1", "name": "to-user", "data": "1"},
        {"channel": "room", "name": "to-room", "data": "2"},
    ]});
    app.post(&env, "/batch_events", batch).await.ok();
    assert_eq!(user.expect("to-user").await["raw_data"], "1");
    assert_eq!(room.expect("to-room").await["raw_data"], "2");
    user.expect_silence().await;
}
