//! User-addressed messages (seed 002): realtime messages reach the user's live
//! connections only, reliable ones are delivered until acknowledged (across restarts),
//! and commands get the first client response or time out.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Env, PROMPTLY, Ws};

const SEND: &str = "/v1/realtime/user/message/send";
const COMMAND: &str = "/v1/realtime/user/command/send";

/// A connected socket of `user` (a token with that user id).
async fn device(env: &Env, user: &str, device: &str) -> Ws {
    let token = env
        .post("/v1/realtime/token/issue", json!({"client_id": format!("{user}-{device}"), "user_id": user}))
        .await
        .ok();
    Ws::connect(&token).await
}

async fn send(env: &Env, user: &str, delivery: &str, n: u64) -> Value {
    env.post(SEND, json!({"target_user_id": user, "delivery": delivery, "payload": {"n": n}, "sender_id": "backend_1"}))
        .await
        .ok()
}

/// The next `user.message` frames' payload numbers and delivery counts.
async fn received(ws: &mut Ws, count: usize) -> Vec<(u64, u64)> {
    let mut got = Vec::new();
    for _ in 0..count {
        let frame = ws.expect("user.message").await;
        got.push((frame["payload"]["n"].as_u64().unwrap(), frame["delivery_count"].as_u64().unwrap_or(0)));
    }
    got
}

#[tokio::test]
async fn a_realtime_message_reaches_every_device_of_the_user_and_is_lost_when_none_is_online() {
    let env = Env::start().await;
    let offline = send(&env, "alice", "realtime", 0).await;
    assert_eq!(offline["delivered"], 0, "nobody is online: delivered 0");
    assert_eq!(offline.get("sequence"), None, "nothing is stored");

    let mut phone = device(&env, "alice", "phone").await;
    let mut laptop = device(&env, "alice", "laptop").await;
    let mut other = device(&env, "bob", "phone").await;
    phone.expect_silence().await; // nothing was kept for later
    let sent = send(&env, "alice", "realtime", 1).await;
    assert_eq!(sent["delivered"], 2, "both devices");
    for ws in [&mut phone, &mut laptop] {
        let frame = ws.expect("user.message").await;
        assert_eq!((frame["payload"].clone(), frame["delivery"].clone()), (json!({"n": 1}), json!("realtime")));
        assert_eq!((frame["sender_type"].clone(), frame["sender_id"].clone()), (json!("server"), json!("backend_1")));
        assert_eq!(frame["message_id"], sent["message_id"]);
    }
    other.expect_silence().await;
}

#[tokio::test]
async fn reliable_messages_wait_for_an_offline_user_and_come_back_until_acknowledged() {
    let env = Env::start().await;
    let mut sent = Vec::new();
    for n in 1..=3 {
        let answer = send(&env, "carol", "reliable", n).await;
        assert_eq!((answer["delivered"].clone(), answer["sequence"].clone()), (json!(0), json!(n)));
        sent.push(answer);
    }
    let mut first = device(&env, "carol", "phone").await;
    assert_eq!(received(&mut first, 3).await, [(1, 1), (2, 1), (3, 1)], "on connect, in send order");
    drop(first);

    // Not acknowledged: everything comes back, counted as a redelivery.
    let mut second = device(&env, "carol", "phone").await;
    assert_eq!(received(&mut second, 3).await, [(1, 2), (2, 2), (3, 2)]);
    second.send(json!({"type": "ack", "message_id": sent[1]["message_id"]})).await;
    second.expect_silence().await;
    drop(second);

    // The ack covered messages 1 and 2, for every device of the user.
    let mut laptop = device(&env, "carol", "laptop").await;
    assert_eq!(received(&mut laptop, 1).await, [(3, 3)]);
    let live = send(&env, "carol", "reliable", 4).await;
    assert_eq!(live["delivered"], 1, "pushed at once to the live device");
    assert_eq!(received(&mut laptop, 1).await, [(4, 1)]);
    laptop.send(json!({"type": "ack", "message_id": live["message_id"]})).await;
    laptop.send(json!({"type": "ack", "message_id": "um_never_sent"})).await;
    let refused = laptop.expect("error").await;
    assert_eq!(refused["code"], "NOT_FOUND");
    drop(laptop);
    let mut done = device(&env, "carol", "phone").await;
    done.expect_silence().await;
}

#[tokio::test]
async fn a_reliable_message_answered_before_a_kill_arrives_after_the_restart() {
    let env = Env::start().await;
    let sent = send(&env, "dave", "reliable", 7).await;
    assert_eq!(sent["delivered"], 0);
    let Env { server, key, http, dir } = env;
    server.kill();
    let server = realtime_server::testing::TestServer::reopen(dir.path(), key.clone()).await.unwrap();
    let env = Env { server, key, http, dir };
    let mut phone = device(&env, "dave", "phone").await;
    let frame = phone.expect("user.message").await;
    assert_eq!((frame["message_id"].clone(), frame["payload"].clone()), (sent["message_id"].clone(), json!({"n": 7})));
}

#[tokio::test]
async fn a_command_returns_the_first_response_of_any_device() {
    let env = Env::start().await;
    let mut phone = device(&env, "erin", "phone").await;
    let mut laptop = device(&env, "erin", "laptop").await;
    let (http, url, key) = (env.http.clone(), env.url(COMMAND), env.key.clone());
    let call = tokio::spawn(async move {
        let body =
            json!({"target_user_id": "erin", "type": "CLIENT_SERVER:CREATE_CANVAS", "data": {"w": 3}, "timeout": 10});
        http.post(url).bearer_auth(key).json(&body).send().await.unwrap().json::<Value>().await.unwrap()
    });
    let on_phone = phone.expect("user.command").await;
    let on_laptop = laptop.expect("user.command").await;
    assert_eq!(on_phone["command_id"], on_laptop["command_id"]);
    assert_eq!(
        (on_phone["command"].clone(), on_phone["data"].clone()),
        (json!("CLIENT_SERVER:CREATE_CANVAS"), json!({"w": 3}))
    );
    let command_id = on_phone["command_id"].clone();
    laptop.send(json!({"type": "command.response", "command_id": command_id, "data": {"canvas": "c1"}})).await;
    let answer = call.await.unwrap();
    assert_eq!((answer["status"].clone(), answer["response"].clone()), (json!("answered"), json!({"canvas": "c1"})));
    phone.send(json!({"type": "command.response", "command_id": command_id, "data": {"canvas": "late"}})).await;
    assert_eq!(phone.expect("error").await["code"], "CONFLICT", "the first response won");
    let read = env.get(&format!("/v1/realtime/user/command/get/{}", command_id.as_str().unwrap())).await.ok();
    assert_eq!(read["response"], json!({"canvas": "c1"}));
}

#[tokio::test]
async fn a_command_nobody_answers_times_out_no_earlier_than_asked() {
    let env = Env::start().await;
    let mut phone = device(&env, "frank", "phone").await;
    let started = Instant::now();
    let timed_out =
        env.post(COMMAND, json!({"target_user_id": "frank", "type": "PING", "data": {}, "timeout": 1})).await;
    let took = started.elapsed();
    timed_out.problem(504, "COMMAND_TIMEOUT");
    assert!(took >= Duration::from_secs(1), "not before the timeout: {took:?}");
    assert!(took < Duration::from_millis(1100), "within 100 ms after it: {took:?}");
    let command = phone.expect("user.command").await;
    let read =
        env.get(&format!("/v1/realtime/user/command/get/{}", command["command_id"].as_str().unwrap())).await.ok();
    assert_eq!(read["status"], "expired");
}

#[tokio::test]
async fn a_command_to_an_offline_user_is_refused_at_once_and_charges_nothing() {
    let env = Env::start().await;
    let before = env.balance(&env.key).await;
    let started = Instant::now();
    let refused = env.post(COMMAND, json!({"target_user_id": "nobody", "type": "PING", "data": {}})).await;
    refused.problem(409, "USER_OFFLINE");
    assert!(started.elapsed() < PROMPTLY, "at once, not after a wait");
    assert_eq!(env.balance(&env.key).await, before);
}

#[tokio::test]
async fn a_command_without_waiting_is_pending_until_read_answered() {
    let env = Env::start().await;
    let mut phone = device(&env, "gina", "phone").await;
    let pending = env
        .post(COMMAND, json!({"target_user_id": "gina", "type": "SYNC", "data": {}, "wait_for_response": false}))
        .await
        .ok();
    assert_eq!(pending["status"], "pending");
    let id = pending["command_id"].as_str().unwrap().to_owned();
    let command = phone.expect("user.command").await;
    phone.send(json!({"type": "command.response", "command_id": command["command_id"], "data": true})).await;
    crate::support::eventually(PROMPTLY, || async {
        env.get(&format!("/v1/realtime/user/command/get/{id}")).await.ok()["status"] == "answered"
    })
    .await;
    env.get("/v1/realtime/user/command/get/cmd_unknown").await.problem(404, "NOT_FOUND");
}

/// A connected socket of `user` with these capabilities.
async fn device_with(env: &Env, user: &str, device: &str, capabilities: &[&str]) -> Ws {
    let body = json!({"client_id": format!("{user}-{device}"), "user_id": user, "capabilities": capabilities});
    let token = env.post("/v1/realtime/token/issue", body).await.ok();
    Ws::connect(&token).await
}

#[tokio::test]
async fn a_client_with_the_message_capability_sends_to_a_user_as_itself_and_is_metered() {
    let env = Env::start().await;
    let mut bob = device(&env, "bob", "phone").await;
    let mut alice = device_with(&env, "alice", "app", &["subscribe", "message"]).await;
    let before = env.balance(&env.key).await;
    alice
        .send(json!({"type": "user.message.send", "target_user_id": "bob", "payload": {"hi": 1}, "request_id": "m1"}))
        .await;
    let sent = alice.expect("user.message.sent").await;
    assert_eq!((sent["request_id"].clone(), sent["delivered"].clone()), (json!("m1"), json!(1)));
    let frame = bob.expect("user.message").await;
    assert_eq!(frame["payload"], json!({"hi": 1}));
    assert_eq!((frame["sender_type"].clone(), frame["sender_id"].clone()), (json!("client"), json!("alice-app")));
    assert_eq!(env.balance(&env.key).await, before - 10, "metered like the REST send");

    let mut plain = device(&env, "carl", "phone").await;
    plain.send(json!({"type": "user.message.send", "target_user_id": "bob", "payload": 1, "request_id": "m2"})).await;
    let refused = plain.expect("error").await;
    assert_eq!((refused["code"].clone(), refused["request_id"].clone()), (json!("FORBIDDEN"), json!("m2")));
}

#[tokio::test]
async fn a_client_command_is_answered_while_its_socket_goes_on() {
    let env = Env::start().await;
    let mut bob = device(&env, "bob", "phone").await;
    let mut alice = device_with(&env, "alice", "app", &["message"]).await;
    alice
        .send(json!({"type": "user.command.send", "target_user_id": "bob", "command": "ASK", "data": {"q": 1}, "request_id": "c1"}))
        .await;
    let command = bob.expect("user.command").await;
    assert_eq!((command["sender_type"].clone(), command["sender_id"].clone()), (json!("client"), json!("alice-app")));
    // The sender's socket is not held up while the command waits.
    alice.send(json!({"type": "ping"})).await;
    alice.expect("pong").await;
    bob.send(json!({"type": "command.response", "command_id": command["command_id"], "data": {"a": 2}})).await;
    let done = alice.expect("user.command.done").await;
    assert_eq!(done["request_id"], "c1");
    assert_eq!((done["status"].clone(), done["response"].clone()), (json!("answered"), json!({"a": 2})));
    alice.send(json!({"type": "user.command.send", "target_user_id": "nobody", "command": "ASK", "data": 1, "request_id": "c2"})).await;
    let refused = alice.expect("error").await;
    assert_eq!((refused["code"].clone(), refused["request_id"].clone()), (json!("USER_OFFLINE"), json!("c2")));
}
