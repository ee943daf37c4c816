//! User-addressed messages (seed 002): realtime messages reach the user's live
//! connections and nothing is kept for an offline user; reliable ones wait for the user,
//! come back until acknowledged, and not after; commands are answered by the user's
//! client, time out, and are refused at once for an offline user.

use std::time::Instant;

use serde_json::{Value, json};

use crate::context::Ctx;
use crate::report::Kind;
use crate::scenario::live::{endpoint, field};
use crate::ws::Socket;

const KIND: Kind = Kind::Messaging;

const OFFLINE_REALTIME: &str = "messaging/a realtime message to an offline user reaches nobody and is not kept";
const LIVE_REALTIME: &str = "messaging/a realtime message reaches the user's live connection";
const OFFLINE_RELIABLE: &str = "messaging/reliable messages to an offline user arrive on connect, in order";
const REDELIVERED: &str = "messaging/unacknowledged messages come back with a higher delivery_count";
const ACKED: &str = "messaging/acknowledged messages are not delivered again";
const ANSWERED: &str = "messaging/a command returns the client's response";
const TIMEOUT: &str = "messaging/a command nobody answers is 504 COMMAND_TIMEOUT";
const OFFLINE_COMMAND: &str = "messaging/a command to an offline user is 409 USER_OFFLINE at once";

const SEND: &str = "realtime.user.message.send";
const COMMAND: &str = "realtime.user.command.send";

pub(crate) async fn run(ctx: &Ctx) {
    let user = ctx.name("user");
    let bound = ctx.config.live_bound;

    let started = Instant::now();
    let result = async {
        let sent = send(ctx, &user, "realtime", 0).await?;
        if sent["delivered"] != json!(0) {
            return Err(format!("delivered is {} with nobody online", sent["delivered"]));
        }
        let mut socket = connect(ctx, &user).await?;
        // Anything kept for the user would come before the answer to a ping.
        socket.ping(bound).await?;
        let frames = socket.close(bound).await;
        match frames.iter().find(|frame| frame["type"] == "user.message") {
            Some(frame) => Err(format!("an offline realtime message was kept and delivered later: {frame}")),
            None => Ok(()),
        }
    }
    .await;
    ctx.record(OFFLINE_REALTIME, KIND, started, result);

    let started = Instant::now();
    let result = async {
        let mut socket = connect(ctx, &user).await?;
        let sent = send(ctx, &user, "realtime", 1).await?;
        let frame = socket.expect("the user.message", bound, |frame| frame["type"] == "user.message").await?;
        socket.close(bound).await;
        if frame["message_id"] != sent["message_id"] || frame["payload"] != json!({"n": 1}) {
            return Err(format!("received {frame} for the message {sent}"));
        }
        if sent["delivered"].as_u64().unwrap_or(0) < 1 {
            return Err(format!("delivered is {} with the user online", sent["delivered"]));
        }
        Ok(())
    }
    .await;
    ctx.record(LIVE_REALTIME, KIND, started, result);

    let reliable_user = ctx.name("reliable");
    let started = Instant::now();
    let sent = async {
        let mut sent = Vec::new();
        for n in 1..=2 {
            sent.push(send(ctx, &reliable_user, "reliable", n).await?);
        }
        let mut socket = connect(ctx, &reliable_user).await?;
        let first = received(&mut socket, ctx, 2).await?;
        socket.close(bound).await;
        let ids: Vec<&Value> = first.iter().map(|frame| &frame["message_id"]).collect();
        let expected: Vec<&Value> = sent.iter().map(|answer| &answer["message_id"]).collect();
        if ids != expected {
            return Err(format!("on connect received {ids:?}, sent {expected:?}"));
        }
        Ok((sent, first))
    }
    .await;
    let sent = match sent {
        Ok((sent, first)) => {
            ctx.record(OFFLINE_RELIABLE, KIND, started, Ok(()));
            Some((sent, first))
        }
        Err(err) => {
            ctx.record(OFFLINE_RELIABLE, KIND, started, Err(err));
            None
        }
    };

    let started = Instant::now();
    match &sent {
        None => {
            ctx.skip(REDELIVERED, KIND, "reliable messages did not arrive (see the previous check)");
            ctx.skip(ACKED, KIND, "reliable messages did not arrive (see the previous check)");
        }
        Some((sent, first)) => {
            let result = async {
                let mut socket = connect(ctx, &reliable_user).await?;
                let again = received(&mut socket, ctx, 2).await?;
                for (before, after) in first.iter().zip(&again) {
                    let (was, is) = (before["delivery_count"].as_u64(), after["delivery_count"].as_u64());
                    if after["message_id"] != before["message_id"] || is <= was {
                        socket.close(bound).await;
                        return Err(format!(
                            "redelivered {after} after {before}: same id and a higher delivery_count expected"
                        ));
                    }
                }
                socket.send(&json!({"type": "ack", "message_id": sent[1]["message_id"]})).await?;
                socket.ping(bound).await?;
                socket.close(bound).await;
                Ok(())
            }
            .await;
            ctx.record(REDELIVERED, KIND, started, result);

            let started = Instant::now();
            let result = async {
                let mut socket = connect(ctx, &reliable_user).await?;
                socket.ping(bound).await?;
                let frames = socket.close(bound).await;
                match frames.iter().find(|frame| frame["type"] == "user.message") {
                    Some(frame) => Err(format!("an acknowledged message came back: {frame}")),
                    None => Ok(()),
                }
            }
            .await;
            ctx.record(ACKED, KIND, started, result);
        }
    }

    let command_user = ctx.name("commanded");
    let started = Instant::now();
    let result = async {
        let mut socket = connect(ctx, &command_user).await?;
        let request = ctx.request(COMMAND, &[]).json(
            &json!({"target_user_id": command_user, "type": "CONFORMANCE:ECHO", "data": {"x": 1}, "timeout": 10}),
        );
        let call = ctx.expect(COMMAND, &request, 200, None);
        let answer = async {
            let command = socket.expect("the user.command", bound, |frame| frame["type"] == "user.command").await?;
            socket
                .send(&json!({"type": "command.response", "command_id": command["command_id"], "data": {"echo": command["data"]}}))
                .await
        };
        let (response, answered) = tokio::join!(call, answer);
        answered?;
        let body = response?.json();
        socket.close(bound).await;
        if body["status"] != "answered" || body["response"] != json!({"echo": {"x": 1}}) {
            return Err(format!("the command answered {body}, expected the client's response"));
        }
        Ok(())
    }
    .await;
    ctx.record(ANSWERED, KIND, started, result);

    let started = Instant::now();
    let result = async {
        let socket = connect(ctx, &command_user).await?;
        let request = ctx
            .request(COMMAND, &[])
            .json(&json!({"target_user_id": command_user, "type": "CONFORMANCE:SILENT", "data": {}, "timeout": 1}));
        let response = ctx.expect(COMMAND, &request, 504, Some("COMMAND_TIMEOUT")).await;
        socket.close(bound).await;
        response.map(drop)
    }
    .await;
    ctx.record(TIMEOUT, KIND, started, result);

    let started = Instant::now();
    let result = async {
        let request = ctx
            .request(COMMAND, &[])
            .json(&json!({"target_user_id": ctx.name("absent"), "type": "CONFORMANCE:PING", "data": {}}));
        let asked = Instant::now();
        ctx.expect(COMMAND, &request, 409, Some("USER_OFFLINE")).await?;
        if asked.elapsed() > bound {
            return Err(format!("the refusal took {:?}: an offline user is refused at once", asked.elapsed()));
        }
        Ok(())
    }
    .await;
    ctx.record(OFFLINE_COMMAND, KIND, started, result);
}

async fn send(ctx: &Ctx, user: &str, delivery: &str, n: u64) -> Result<Value, String> {
    let request =
        ctx.request(SEND, &[]).json(&json!({"target_user_id": user, "delivery": delivery, "payload": {"n": n}}));
    Ok(ctx.expect(SEND, &request, 200, None).await?.json())
}

/// A connected socket of `user` (a token with its user id).
pub(crate) async fn connect(ctx: &Ctx, user: &str) -> Result<Socket, String> {
    let request = ctx.request("realtime.token.issue", &[]).json(&json!({
        "client_id": format!("{user}-device"),
        "user_id": user,
        "ttl_seconds": 600,
    }));
    let token = ctx.expect("realtime.token.issue", &request, 200, None).await?.json();
    let (socket, _) = Socket::connect(&endpoint(&token)?, &field(&token, "/token")?, ctx.config.live_bound).await?;
    Ok(socket)
}

/// The next `count` `user.message` frames.
async fn received(socket: &mut Socket, ctx: &Ctx, count: usize) -> Result<Vec<Value>, String> {
    let mut frames = Vec::new();
    for _ in 0..count {
        frames.push(
            socket.expect("a user.message", ctx.config.live_bound, |frame| frame["type"] == "user.message").await?,
        );
    }
    Ok(frames)
}
