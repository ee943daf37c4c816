//! The HTTP API's rules that need live sockets beyond a plain trigger: encrypted channels
//! (relayed as they are, and refused in a trigger to several channels), the `info` of a
//! trigger's answer, and `terminate_connections`.

use std::time::Instant;

use serde_json::{Value, json};

use super::protocol::{connect, subscribe};
use super::{Run, expect_status, signing};
use crate::report::Kind;
use crate::ws::{Socket, describe_close};

const ENCRYPTED_SEVERAL: &str =
    "pusher-http/a trigger of one event to several channels including a private-encrypted- one is 400";
const ENCRYPTED_RELAY: &str =
    "pusher-protocol/an event on a private-encrypted- channel reaches its subscriber exactly as triggered";
const TRIGGER_INFO: &str = "pusher-http/a trigger with info=user_count,subscription_count answers them per channel";
const TERMINATE: &str = "pusher-http/terminate_connections closes the sockets signed in as the user";

const NO_SIGNIN: &str = "the server did not answer pusher:signin with pusher:signin_success (no user authentication)";

pub(super) async fn run(run: &Run) {
    let started = Instant::now();
    let result = encrypted_several(run).await;
    run.record(ENCRYPTED_SEVERAL, Kind::PusherHttp, started, result);
    let started = Instant::now();
    let result = encrypted_relay(run).await;
    run.record(ENCRYPTED_RELAY, Kind::PusherProtocol, started, result);
    let started = Instant::now();
    let result = trigger_info(run).await;
    run.record(TRIGGER_INFO, Kind::PusherHttp, started, result);
    let started = Instant::now();
    match terminate(run).await {
        Ok(true) => run.record(TERMINATE, Kind::PusherHttp, started, Ok(())),
        Ok(false) => run.skip(TERMINATE, Kind::PusherHttp, NO_SIGNIN),
        Err(err) => run.record(TERMINATE, Kind::PusherHttp, started, Err(err)),
    }
}

/// A socket of the run's app and its socket id.
async fn open(run: &Run) -> Result<(Socket, String), String> {
    let (socket, data) = connect(run, &run.config.app.key).await?;
    Ok((socket, data["socket_id"].as_str().unwrap_or_default().to_owned()))
}

/// Subscribes `socket` to a private, encrypted or presence `channel` with a valid
/// signature (and, on a presence channel, as `user_id`).
async fn join(
    run: &Run,
    socket: &mut Socket,
    socket_id: &str,
    channel: &str,
    user_id: Option<&str>,
) -> Result<(), String> {
    let channel_data = user_id.map(|user_id| json!({"user_id": user_id}).to_string());
    let auth = signing::channel_auth(&run.config.app, socket_id, channel, channel_data.as_deref());
    let bound = run.config.live_bound;
    subscribe(socket, channel, Some(auth), channel_data.as_deref(), bound).await.map(drop).map_err(String::from)
}

/// Pusher refuses one event for several channels when one is encrypted: each encrypted
/// channel has its own key, so one payload cannot be meant for all of them.
async fn encrypted_several(run: &Run) -> Result<(), String> {
    let channels = [run.name("plain"), format!("private-encrypted-{}", run.name("vault"))];
    let body = json!({"name": "conformance-secret", "channels": channels, "data": "{\"ciphertext\":\"AA==\",\"nonce\":\"AA==\"}"});
    let response = run.api("POST", "/events", &[], Some(&body)).await?;
    expect_status("POST /events to a public and a private-encrypted- channel", &response, 400).map(drop)
}

/// What a subscriber of an encrypted channel receives is the `data` the server library
/// sent, byte for byte: the server neither decrypts nor re-encodes it.
async fn encrypted_relay(run: &Run) -> Result<(), String> {
    let channel = format!("private-encrypted-{}", run.name("sealed"));
    let (mut socket, socket_id) = open(run).await?;
    let result = async {
        join(run, &mut socket, &socket_id, &channel, None).await?;
        // As pusher-http-node sends it: {"nonce", "ciphertext"} in base64, as a string.
        let data =
            "{\"nonce\":\"c2l4dGVlbiBieXRlcyBvZiBub25jZSE=\",\"ciphertext\":\"Y29uZm9ybWFuY2UgY2lwaGVydGV4dA==\"}";
        let body = json!({"name": "conformance-sealed", "channel": channel, "data": data});
        let response = run.api("POST", "/events", &[], Some(&body)).await?;
        expect_status("POST /events to a private-encrypted- channel", &response, 200)?;
        let frame = socket
            .expect(&format!("conformance-sealed on {channel}"), run.config.live_bound, |frame| {
                frame["event"] == "conformance-sealed"
            })
            .await?;
        match frame["data"] == json!(data) {
            true => Ok(()),
            false => Err(format!("received data {}, expected exactly the string triggered, {data:?}", frame["data"])),
        }
    }
    .await;
    socket.close(run.config.live_bound).await;
    result
}

/// A trigger's `info` answers, per channel, the attributes asked for (`user_count` on
/// presence channels only), counted after the event was handled.
async fn trigger_info(run: &Run) -> Result<(), String> {
    let presence = format!("presence-{}", run.name("info"));
    let public = run.name("info-public");
    let (mut socket, socket_id) = open(run).await?;
    let result = async {
        join(run, &mut socket, &socket_id, &presence, Some("conformance-member")).await?;
        subscribe(&mut socket, &public, None, None, run.config.live_bound).await.map_err(String::from)?;
        let body = json!({
            "name": "conformance-info", "channels": [presence, public], "data": "{}",
            "info": "user_count,subscription_count",
        });
        let response = run.api("POST", "/events", &[], Some(&body)).await?;
        let answer = expect_status("POST /events with info", &response, 200)?;
        let expected = json!({
            presence.clone(): {"user_count": 1, "subscription_count": 1},
            public.clone(): {"subscription_count": 1},
        });
        // The attributes asked for, and `user_count` only where it means something; other
        // fields a server adds (sockudo's `acknowledgement_id`) are its own business.
        let channels = answer["channels"].as_object();
        let same_channels = channels.is_some_and(|channels| channels.len() == 2);
        let attributes_match = expected.as_object().into_iter().flatten().all(|(channel, attributes)| {
            let given = &answer["channels"][channel];
            let no_user_count_on_public = *channel != public || given.get("user_count").is_none();
            no_user_count_on_public
                && attributes.as_object().into_iter().flatten().all(|(name, value)| &given[name] == value)
        });
        match same_channels && attributes_match {
            true => Ok(()),
            false => Err(format!("answered {answer}, expected {{\"channels\": {expected}}} (other fields allowed)")),
        }
    }
    .await;
    socket.close(run.config.live_bound).await;
    result
}

/// Signs a socket in as a user of this run, then terminates the user's connections:
/// `Ok(false)` when the target has no user authentication.
async fn terminate(run: &Run) -> Result<bool, String> {
    let bound = run.config.live_bound;
    let user_id = run.name("terminated");
    let (mut socket, socket_id) = open(run).await?;
    let (mut bystander, _) = open(run).await?;
    let user_data = json!({"id": user_id}).to_string();
    let auth = signing::user_auth(&run.config.app, &socket_id, &user_data);
    socket.send(&json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}})).await?;
    let answer = socket
        .expect("an answer to pusher:signin", bound, |frame| {
            frame["event"] == "pusher:signin_success" || frame["event"] == "pusher:error"
        })
        .await;
    if !answer.is_ok_and(|frame| frame["event"] == "pusher:signin_success") {
        socket.close(bound).await;
        bystander.close(bound).await;
        return Ok(false);
    }
    let response = run.api("POST", &format!("/users/{user_id}/terminate_connections"), &[], Some(&json!({}))).await?;
    expect_status("POST /users/{id}/terminate_connections", &response, 200)?;
    let (code, reason) = socket.expect_close(bound).await.map_err(|err| format!("the signed-in socket: {err}"))?;
    if !code.is_some_and(|code| (4000..4100).contains(&code)) {
        bystander.close(bound).await;
        return Err(format!(
            "the signed-in socket ended with {}, expected a 4000-4099 close (Pusher's \"do not reconnect\")",
            describe_close(code, &reason)
        ));
    }
    // A socket not signed in as the user stays.
    let alive = bystander.send(&json!({"event": "pusher:ping", "data": {}})).await;
    let pong = match alive {
        Ok(()) => bystander.expect("pusher:pong", bound, |frame: &Value| frame["event"] == "pusher:pong").await,
        Err(err) => Err(err),
    };
    bystander.close(bound).await;
    pong.map(|_| true).map_err(|err| format!("another socket of the app was cut too: {err}"))
}
