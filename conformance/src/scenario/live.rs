//! Live delivery over WebSocket: subscribe, REST publish received within a bound and in
//! order, presence that follows the sockets, and revoke, user.disconnect and
//! channel.delete acting on live sockets at once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::context::Ctx;
use crate::report::Kind;
use crate::ws::{Handshake, Socket, describe_close};

const KIND: Kind = Kind::Live;

const CONNECT: &str = "live/the token's endpoint accepts it (connected)";
const SUBSCRIBE: &str = "live/subscribe is acknowledged (subscribed)";
const DELIVERED: &str = "live/a REST publish reaches the subscriber";
const ORDER: &str = "live/events arrive in publish order";
const PRESENCE_GET: &str = "live/presence.get lists a subscribed member";
const CHANNEL_GET: &str = "live/channel.get counts the live subscriber";
const JOIN: &str = "live/presence.join reaches the other members";
const LEAVE: &str = "live/closing a socket removes its member (presence.leave)";
const DISCONNECT_CHANNEL: &str = "live/user.disconnect with channel unsubscribes and keeps the socket";
const DISCONNECT_ALL: &str = "live/user.disconnect closes the client's sockets (4004)";
const REVOKE: &str = "live/token.revoke closes the socket (4003)";
const REVOKED_REFUSED: &str = "live/a revoked token is refused";
const INVALID_REFUSED: &str = "live/an invalid token is refused";
const DELETE: &str = "live/channel.delete unsubscribes the subscribers (channel_deleted)";
const DELETED_404: &str = "live/publishing to a deleted channel is 404 NOT_FOUND";
const EVENT_TYPES: &str = "live/every frame type received is in event.types";
const FRAME_SCHEMA: &str = "live/every frame received matches the AsyncAPI ServerFrame schema";
const PUBLIC_OPEN: &str = "live/a public channel takes any token; a private one only a token that names it";

const ALL: [&str; 17] = [
    CONNECT,
    SUBSCRIBE,
    DELIVERED,
    ORDER,
    PRESENCE_GET,
    CHANNEL_GET,
    JOIN,
    LEAVE,
    DISCONNECT_CHANNEL,
    DISCONNECT_ALL,
    REVOKE,
    REVOKED_REFUSED,
    INVALID_REFUSED,
    DELETE,
    DELETED_404,
    EVENT_TYPES,
    PUBLIC_OPEN,
];

/// Close codes of the protocol that the checks expect.
const CLOSE_TOKEN_INVALID: u16 = 4001;
const CLOSE_TOKEN_REVOKED: u16 = 4003;
const CLOSE_DISCONNECTED: u16 = 4004;

pub(crate) async fn run(ctx: &Ctx) {
    let started = Instant::now();
    let channel = ctx.name("live");
    if let Err(err) = ctx.create_channel(&channel, "presence").await {
        ctx.record("live/setup", KIND, started, Err(format!("creating presence channel {channel}: {err}")));
        for id in ALL {
            ctx.skip(id, KIND, "the setup failed");
        }
        return;
    }
    let bound = ctx.config.live_bound;
    let client_a = ctx.name("a");
    let client_b = ctx.name("b");
    let client_c = ctx.name("c");
    let mut received: Vec<Value> = Vec::new();
    let mut disconnect_all_done = false;

    let started = Instant::now();
    let connected = async {
        let token = issue_token(ctx, &client_a, &channel).await?;
        let (socket, connected) = Socket::connect(&endpoint(&token)?, &field(&token, "/token")?, bound).await?;
        if connected["client_id"] != json!(client_a) {
            return Err(format!("`connected` has client_id {}, the token is for {client_a}", connected["client_id"]));
        }
        Ok(socket)
    }
    .await;
    let mut a = record_keep(ctx, CONNECT, started, connected);

    let started = Instant::now();
    if let Some(socket) = a.as_mut() {
        let result = subscribe(socket, &channel, bound).await;
        let failed = result.is_err();
        ctx.record(SUBSCRIBE, KIND, started, result);
        if failed {
            a = None;
        }
    } else {
        ctx.skip(SUBSCRIBE, KIND, "no connected socket (see the connect check)");
    }

    match a.as_mut() {
        None => {
            for id in [DELIVERED, ORDER, PRESENCE_GET, CHANNEL_GET, JOIN, LEAVE, DISCONNECT_CHANNEL] {
                ctx.skip(id, KIND, "no subscribed socket (see the connect and subscribe checks)");
            }
        }
        Some(socket) => {
            let started = Instant::now();
            let result = delivered(ctx, socket, &channel).await;
            ctx.record(DELIVERED, KIND, started, result);

            let started = Instant::now();
            let result = in_order(ctx, socket, &channel).await;
            ctx.record(ORDER, KIND, started, result);

            let started = Instant::now();
            let result = async {
                let members = presence_members(ctx, &channel).await?;
                if members.contains(&client_a) {
                    Ok(())
                } else {
                    Err(format!("members are {members:?}, expected {client_a} (subscribed with `presence`)"))
                }
            }
            .await;
            ctx.record(PRESENCE_GET, KIND, started, result);

            let started = Instant::now();
            let result = async {
                let response =
                    ctx.call("realtime.channel.get", &ctx.request("realtime.channel.get", &[&channel])).await?;
                let body = response.json();
                let subscribers = body["subscriber_count"].as_u64().unwrap_or(0);
                let members = body["member_count"].as_u64().unwrap_or(0);
                if response.status != 200 || subscribers < 1 || members < 1 {
                    return Err(format!(
                        "status {}, subscriber_count {}, member_count {} with one live subscribed member",
                        response.status, body["subscriber_count"], body["member_count"]
                    ));
                }
                Ok(())
            }
            .await;
            ctx.record(CHANNEL_GET, KIND, started, result);

            let started = Instant::now();
            let joined = async {
                let token = issue_token(ctx, &client_b, &channel).await?;
                let (mut b, _) = Socket::connect(&endpoint(&token)?, &field(&token, "/token")?, bound).await?;
                subscribe(&mut b, &channel, bound).await?;
                socket
                    .expect(&format!("presence.join of {client_b}"), bound, |frame| {
                        frame["type"] == "presence.join" && frame["member"]["client_id"] == json!(client_b)
                    })
                    .await?;
                Ok((b, token))
            }
            .await;
            let b = record_keep(ctx, JOIN, started, joined);

            let started = Instant::now();
            match b {
                None => ctx.skip(LEAVE, KIND, "the second member did not join"),
                Some((b, token_b)) => {
                    received.extend(b.close(bound).await);
                    let result = left(ctx, socket, &channel, &client_b).await;
                    ctx.record(LEAVE, KIND, started, result);

                    let started = Instant::now();
                    let result = disconnect_all(ctx, &token_b, &client_b, &channel, &mut received).await;
                    ctx.record(DISCONNECT_ALL, KIND, started, result);
                    disconnect_all_done = true;
                }
            }

            let started = Instant::now();
            let result = async {
                let request = ctx
                    .request("realtime.user.disconnect", &[])
                    .json(&json!({"client_id": client_a, "channel": channel}));
                ctx.expect("realtime.user.disconnect", &request, 200, None).await?;
                socket
                    .expect("`unsubscribed` with reason disconnected_by_server", bound, |frame| {
                        frame["type"] == "unsubscribed"
                            && frame["channel"] == json!(channel)
                            && frame["reason"] == "disconnected_by_server"
                    })
                    .await?;
                socket.ping(bound).await?;
                // Subscribe again for the channel.delete check.
                subscribe(socket, &channel, bound).await
            }
            .await;
            ctx.record(DISCONNECT_CHANNEL, KIND, started, result);
        }
    }
    if !disconnect_all_done {
        let started = Instant::now();
        let result = async {
            let token = issue_token(ctx, &client_b, &channel).await?;
            disconnect_all(ctx, &token, &client_b, &channel, &mut received).await
        }
        .await;
        ctx.record(DISCONNECT_ALL, KIND, started, result);
    }

    let started = Instant::now();
    let revoked = revoke(ctx, &client_c, &channel, &mut received).await;
    let token_c = revoked.as_ref().ok().cloned();
    ctx.record(REVOKE, KIND, started, revoked.map(drop));

    let started = Instant::now();
    match token_c {
        None => ctx.skip(REVOKED_REFUSED, KIND, "the revoke check failed"),
        Some(token) => {
            let result = refused(&token, &[CLOSE_TOKEN_REVOKED, CLOSE_TOKEN_INVALID], bound, &mut received).await;
            ctx.record(REVOKED_REFUSED, KIND, started, result);
        }
    }

    let started = Instant::now();
    let result = async {
        // A well-formed endpoint from a fresh token, with a token that is not one.
        let token = issue_token(ctx, &ctx.name("d"), &channel).await?;
        let mut forged = token.clone();
        forged["token"] = json!("not-a-token");
        refused(&forged, &[CLOSE_TOKEN_INVALID], bound, &mut received).await
    }
    .await;
    ctx.record(INVALID_REFUSED, KIND, started, result);

    match a.as_mut() {
        None => {
            ctx.skip(DELETE, KIND, "no subscribed socket (see the connect and subscribe checks)");
        }
        Some(socket) => {
            let started = Instant::now();
            let result = async {
                let request = ctx.request("realtime.channel.delete", &[&channel]);
                ctx.expect("realtime.channel.delete", &request, 200, None).await?;
                socket
                    .expect("`unsubscribed` with reason channel_deleted", bound, |frame| {
                        frame["type"] == "unsubscribed"
                            && frame["channel"] == json!(channel)
                            && frame["reason"] == "channel_deleted"
                    })
                    .await?;
                socket.ping(bound).await
            }
            .await;
            ctx.record(DELETE, KIND, started, result);
        }
    }

    let started = Instant::now();
    let result = async {
        if a.is_none() {
            ctx.delete_channel(&channel).await;
        }
        let request = ctx
            .request("realtime.publish", &[])
            .json(&json!({"channel": channel, "event": "conformance.after-delete", "data": {}}));
        ctx.expect("realtime.publish", &request, 404, Some("NOT_FOUND")).await.map(drop)
    }
    .await;
    ctx.record(DELETED_404, KIND, started, result);

    if let Some(socket) = a {
        received.extend(socket.close(bound).await);
    }

    let started = Instant::now();
    let result = async {
        let response = ctx.expect("realtime.event.types", &ctx.request("realtime.event.types", &[]), 200, None).await?;
        let types: BTreeSet<String> = response.json()["types"]
            .as_array()
            .map(|types| types.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let seen: BTreeSet<String> =
            received.iter().map(|frame| frame["type"].as_str().unwrap_or("<no type>").to_owned()).collect();
        let unknown: Vec<&String> = seen.difference(&types).collect();
        if seen.is_empty() {
            return Err("no frame was received at all".to_owned());
        }
        if !unknown.is_empty() {
            return Err(format!("frames of type {unknown:?} are not in event.types {types:?}"));
        }
        Ok(())
    }
    .await;
    ctx.record(EVENT_TYPES, KIND, started, result);

    let started = Instant::now();
    let result = public_and_private(ctx).await;
    ctx.record(PUBLIC_OPEN, KIND, started, result);

    let started = Instant::now();
    let result = crate::protocol::FrameValidator::committed().and_then(|validator| {
        if received.is_empty() {
            return Err("no frame was received at all".to_owned());
        }
        for frame in &received {
            validator.check(frame).map_err(|violation| format!("frame {frame} breaks the protocol: {violation}"))?;
        }
        Ok(())
    });
    ctx.record(FRAME_SCHEMA, KIND, started, result);
}

/// Records a check whose success yields something later checks need.
fn record_keep<T>(ctx: &Ctx, id: &str, started: Instant, result: Result<T, String>) -> Option<T> {
    match result {
        Ok(value) => {
            ctx.record(id, KIND, started, Ok(()));
            Some(value)
        }
        Err(err) => {
            ctx.record(id, KIND, started, Err(err));
            None
        }
    }
}

/// Issues a token with the funded key for `client_id` on `channel`, allowed to subscribe,
/// publish and be present.
pub(crate) async fn issue_token(ctx: &Ctx, client_id: &str, channel: &str) -> Result<Value, String> {
    issue(
        ctx,
        &json!({
            "client_id": client_id,
            "channels": [channel],
            "capabilities": ["subscribe", "publish", "presence"],
            "ttl_seconds": 600,
        }),
    )
    .await
}

/// Issues a token with the funded key as `body` asks; returns the answer.
pub(crate) async fn issue(ctx: &Ctx, body: &Value) -> Result<Value, String> {
    let request = ctx.request("realtime.token.issue", &[]).json(body);
    Ok(ctx.expect("realtime.token.issue", &request, 200, None).await?.json())
}

/// A connected socket subscribed to `channel` for a new client (used by other scenarios).
pub(crate) async fn subscriber(ctx: &Ctx, channel: &str, client_id: &str) -> Result<Socket, String> {
    let token = issue_token(ctx, client_id, channel).await?;
    let (mut socket, _) = Socket::connect(&endpoint(&token)?, &field(&token, "/token")?, ctx.config.live_bound).await?;
    subscribe(&mut socket, channel, ctx.config.live_bound).await?;
    Ok(socket)
}

pub(crate) fn endpoint(token: &Value) -> Result<String, String> {
    field(token, "/endpoint")
}

pub(crate) fn field(value: &Value, pointer: &str) -> Result<String, String> {
    value.pointer(pointer).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("no {pointer} in {value}"))
}

pub(crate) async fn subscribe(socket: &mut Socket, channel: &str, bound: Duration) -> Result<(), String> {
    socket.send(&json!({"type": "subscribe", "channel": channel})).await?;
    socket
        .expect(&format!("`subscribed` to {channel}"), bound, |frame| {
            frame["type"] == "subscribed" && frame["channel"] == json!(channel)
        })
        .await
        .map(drop)
}

async fn publish(ctx: &Ctx, channel: &str, event: &str, data: Value) -> Result<String, String> {
    let request = ctx.request("realtime.publish", &[]).json(&json!({"channel": channel, "event": event, "data": data}));
    let response = ctx.expect("realtime.publish", &request, 200, None).await?;
    response.str_field("/message_id").ok_or_else(|| "the publish response has no message_id".to_owned())
}

async fn delivered(ctx: &Ctx, socket: &mut Socket, channel: &str) -> Result<(), String> {
    let data = json!({"text": "hi", "n": 0});
    let sent = Instant::now();
    let id = publish(ctx, channel, "conformance.live", data.clone()).await?;
    let bound = ctx.config.live_bound;
    let frame = socket.expect(&format!("message {id}"), bound, |frame| frame["type"] == "message").await?;
    let expected =
        json!({"type": "message", "channel": channel, "message_id": id, "event": "conformance.live", "data": data});
    crate::examples::contains(&frame, &expected, "")
        .map_err(|err| format!("the first message frame differs: {err}"))?;
    if frame["published_at"].as_str().is_none() {
        return Err("the message frame has no published_at".to_owned());
    }
    if sent.elapsed() > bound {
        return Err(format!("the message took {:?}, more than {bound:?}", sent.elapsed()));
    }
    Ok(())
}

async fn in_order(ctx: &Ctx, socket: &mut Socket, channel: &str) -> Result<(), String> {
    let mut sent = Vec::new();
    for n in 1..=5 {
        sent.push(publish(ctx, channel, "conformance.order", json!({"n": n})).await?);
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + ctx.config.live_bound;
    while got.len() < sent.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = socket.expect("the next message", left, |frame| frame["type"] == "message").await?;
        got.push(frame["message_id"].as_str().unwrap_or_default().to_owned());
    }
    if got != sent {
        return Err(format!("received {got:?}, published {sent:?}"));
    }
    Ok(())
}

async fn presence_members(ctx: &Ctx, channel: &str) -> Result<Vec<String>, String> {
    let request = ctx.request("realtime.presence.get", &[channel]);
    let response = ctx.expect("realtime.presence.get", &request, 200, None).await?;
    Ok(response.json()["members"]
        .as_array()
        .map(|members| members.iter().filter_map(|m| m["client_id"].as_str()).map(str::to_owned).collect())
        .unwrap_or_default())
}

async fn left(ctx: &Ctx, socket: &mut Socket, channel: &str, client: &str) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    socket
        .expect(&format!("presence.leave of {client}"), bound, |frame| {
            frame["type"] == "presence.leave" && frame["member"]["client_id"] == json!(client)
        })
        .await?;
    // The leave event came first; presence.get may trail it by a little on a cluster.
    let deadline = Instant::now() + bound;
    for _ in 0..50 {
        let members = presence_members(ctx, channel).await?;
        if !members.iter().any(|member| member == client) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("presence.get still lists {client} {bound:?} after its socket closed"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("presence.get still lists {client} after its socket closed"))
}

async fn disconnect_all(
    ctx: &Ctx,
    token: &Value,
    client: &str,
    channel: &str,
    received: &mut Vec<Value>,
) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let (mut socket, _) = Socket::connect(&endpoint(token)?, &field(token, "/token")?, bound).await?;
    subscribe(&mut socket, channel, bound).await?;
    let request = ctx.request("realtime.user.disconnect", &[]).json(&json!({"client_id": client}));
    let response = ctx.expect("realtime.user.disconnect", &request, 200, None).await?;
    let result = socket.expect_close(bound).await;
    received.append(&mut socket.received);
    let (code, reason) = result?;
    if code != Some(CLOSE_DISCONNECTED) {
        return Err(format!(
            "the socket ended with {}, expected close code {CLOSE_DISCONNECTED}",
            describe_close(code, &reason)
        ));
    }
    if response.json()["disconnected"].as_u64().unwrap_or(0) < 1 {
        return Err(format!("user.disconnect reported disconnected = {}", response.json()["disconnected"]));
    }
    Ok(())
}

/// Revokes a live socket's token by jti; returns the token for the refusal check.
async fn revoke(ctx: &Ctx, client: &str, channel: &str, received: &mut Vec<Value>) -> Result<Value, String> {
    let bound = ctx.config.live_bound;
    let token = issue_token(ctx, client, channel).await?;
    let (mut socket, _) = Socket::connect(&endpoint(&token)?, &field(&token, "/token")?, bound).await?;
    let request = ctx.request("realtime.token.revoke", &[]).json(&json!({"token_or_jti": field(&token, "/jti")?}));
    ctx.expect("realtime.token.revoke", &request, 200, None).await?;
    let result = socket.expect_close(bound).await;
    received.append(&mut socket.received);
    let (code, reason) = result?;
    if code != Some(CLOSE_TOKEN_REVOKED) {
        return Err(format!(
            "the socket ended with {}, expected close code {CLOSE_TOKEN_REVOKED}",
            describe_close(code, &reason)
        ));
    }
    Ok(token)
}

/// Connecting with `token` is refused: the upgrade fails with a 4xx, or the socket is
/// closed with one of `codes` without being served.
async fn refused(token: &Value, codes: &[u16], bound: Duration, received: &mut Vec<Value>) -> Result<(), String> {
    match Socket::handshake(&endpoint(token)?, &field(token, "/token")?, bound).await? {
        Handshake::Rejected(status) if (400..500).contains(&status) => Ok(()),
        Handshake::Rejected(status) => Err(format!("the upgrade was refused with HTTP {status}, expected a 4xx")),
        Handshake::Open(mut socket) => {
            let result = socket.expect_close(bound).await;
            let served = socket.received.iter().any(|frame| frame["type"] == "connected");
            received.append(&mut socket.received);
            let (code, reason) = result?;
            match code {
                Some(code) if codes.contains(&code) && !served => Ok(()),
                Some(code) if codes.contains(&code) => {
                    Err(format!("the socket was served (`connected`) before it was closed with {code}"))
                }
                _ => Err(format!(
                    "the socket ended with {}, expected close code {codes:?}",
                    describe_close(code, &reason)
                )),
            }
        }
    }
}

/// A token that names neither channel may subscribe to the public one, not the private one.
async fn public_and_private(ctx: &Ctx) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let (open, closed) = (ctx.name("open"), ctx.name("closed"));
    ctx.create_channel(&open, "public").await?;
    ctx.create_channel(&closed, "private").await?;
    let token = issue_token(ctx, &ctx.name("stranger"), &ctx.name("elsewhere")).await?;
    let (mut socket, _) = Socket::connect(&endpoint(&token)?, &field(&token, "/token")?, bound).await?;
    let result = async {
        socket.send(&json!({"type": "subscribe", "channel": open})).await?;
        socket
            .expect(&format!("`subscribed` to the public {open}"), bound, |frame| {
                frame["channel"] == json!(open) && (frame["type"] == "subscribed" || frame["type"] == "error")
            })
            .await
            .and_then(|frame| match frame["type"].as_str() {
                Some("subscribed") => Ok(()),
                _ => Err(format!("subscribing to a public channel the token does not name was refused: {frame}")),
            })?;
        socket.send(&json!({"type": "subscribe", "channel": closed})).await?;
        let frame = socket
            .expect(&format!("an answer about the private {closed}"), bound, |frame| frame["channel"] == json!(closed))
            .await?;
        if frame["type"] != "error" || frame["code"] != "FORBIDDEN" {
            return Err(format!("a private channel the token does not name answered {frame}, expected FORBIDDEN"));
        }
        Ok(())
    }
    .await;
    socket.close(bound).await;
    ctx.delete_channel(&open).await;
    ctx.delete_channel(&closed).await;
    result
}
