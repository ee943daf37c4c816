//! The WebSocket protocol itself: a client's `publish` answered with its `request_id`,
//! malformed frames answered without closing, and every close code the AsyncAPI document
//! names that a client can provoke: 4001 (covered by `live`), 4002 token expiry, 4003 and
//! 4004 (covered by `live`), 4005 protocol violations, 4006 the per-token connection
//! limit, 4100 a slow consumer and 4201 heartbeat silence.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::context::Ctx;
use crate::report::Kind;
use crate::scenario::check;
use crate::scenario::live::{endpoint, field, issue, subscribe};
use crate::ws::{Handshake, Socket, describe_close};

const KIND: Kind = Kind::Protocol;

const CLIENT_PUBLISH: &str = "protocol/a client publish is answered `published` with its request_id and delivered";
const CLIENT_REFUSED: &str =
    "protocol/a refused client publish is an `error` with its request_id; the socket stays open";
const MALFORMED: &str = "protocol/malformed and unknown frames are answered BAD_REQUEST; the socket stays open";
const CLIENT_MESSAGE: &str = "protocol/a client's user.message.send is answered `user.message.sent` and delivered";
const CLIENT_COMMAND: &str =
    "protocol/a client's user.command.send gets the other client's response in `user.command.done`";
const BINARY: &str = "protocol/a binary frame closes the socket (4005)";
const OVERSIZED: &str = "protocol/a frame over 64 KiB closes the socket (4005)";
const EXPIRY: &str = "protocol/a live socket is closed when its token expires (4002)";
const EXPIRED: &str = "protocol/an expired token is refused (4002)";
const LIMIT: &str = "protocol/a token's connections past the limit are closed (4006)";
const SLOW: &str = "protocol/a client that does not read is cut as a slow consumer (4100)";
const HEARTBEAT: &str = "protocol/a silent socket is closed after the heartbeat timeout (4201)";

const CLOSE_EXPIRED: u16 = 4002;
const CLOSE_PROTOCOL: u16 = 4005;
const CLOSE_CONNECTION_LIMIT: u16 = 4006;
const CLOSE_SLOW_CONSUMER: u16 = 4100;
const CLOSE_HEARTBEAT: u16 = 4201;

/// The largest client frame the document allows.
const MAX_CLIENT_FRAME: usize = 64 * 1024;
/// How many sockets one token may open before the harness calls the limit missing.
const CONNECTION_PROBE: usize = 64;
/// A heartbeat timeout longer than this is not waited for (the check skips and says why).
const HEARTBEAT_WAIT_MAX: u64 = 40;
/// A slow consumer: at most this many batches of 100 messages of about 9 KB each (36 MB)
/// are published at a socket that reads nothing.
const SLOW_BATCHES: usize = 40;

pub(crate) async fn run(ctx: &Ctx) {
    let channel = ctx.name("proto");
    if let Err(err) = ctx.create_channel(&channel, "public").await {
        check(ctx, "protocol/setup", KIND, async { Err(format!("creating channel {channel}: {err}")) }).await;
        return;
    }
    check(ctx, CLIENT_PUBLISH, KIND, client_publish(ctx, &channel)).await;
    check(ctx, CLIENT_REFUSED, KIND, client_publish_refused(ctx, &channel)).await;
    check(ctx, MALFORMED, KIND, malformed(ctx, &channel)).await;
    check(ctx, CLIENT_MESSAGE, KIND, client_message(ctx)).await;
    check(ctx, CLIENT_COMMAND, KIND, client_command(ctx)).await;
    check(ctx, BINARY, KIND, violation(ctx, &channel, Violation::Binary)).await;
    check(ctx, OVERSIZED, KIND, violation(ctx, &channel, Violation::Oversized)).await;
    check(ctx, EXPIRY, KIND, expiry(ctx, &channel)).await;
    check(ctx, EXPIRED, KIND, expired(ctx, &channel)).await;
    check(ctx, LIMIT, KIND, connection_limit(ctx, &channel)).await;
    let started = Instant::now();
    match slow_consumer(ctx, &channel).await {
        Ok(result) => ctx.record(SLOW, KIND, started, result),
        Err(reason) => ctx.skip(SLOW, KIND, &reason),
    }
    ctx.delete_channel(&channel).await;
}

/// A token for `client` on `channel` with `capabilities` and `ttl_seconds`.
async fn token(ctx: &Ctx, client: &str, channel: &str, capabilities: &[&str], ttl: u32) -> Result<Value, String> {
    issue(ctx, &json!({"client_id": client, "channels": [channel], "capabilities": capabilities, "ttl_seconds": ttl}))
        .await
}

async fn connect(token: &Value, bound: Duration) -> Result<Socket, String> {
    Ok(Socket::connect(&endpoint(token)?, &field(token, "/token")?, bound).await?.0)
}

async fn client_publish(ctx: &Ctx, channel: &str) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let reader = token(ctx, &ctx.name("reader"), channel, &["subscribe"], 600).await?;
    let writer = token(ctx, &ctx.name("writer"), channel, &["publish"], 600).await?;
    let mut reader = connect(&reader, bound).await?;
    subscribe(&mut reader, channel, bound).await?;
    let mut writer = connect(&writer, bound).await?;
    let data = json!({"over": "the socket"});
    writer
        .send(&json!({"type": "publish", "channel": channel, "event": "conformance.ws", "data": data, "request_id": "r-1"}))
        .await?;
    let answer = writer
        .expect("the answer to publish r-1", bound, |frame| frame["type"] == "published" || frame["type"] == "error")
        .await?;
    if answer["type"] != "published" || answer["request_id"] != "r-1" {
        return Err(format!("publish with request_id r-1 was answered {answer}, expected `published` with r-1"));
    }
    if answer["delivered"].as_u64() != Some(1) {
        return Err(format!("`published` says delivered {} with one subscriber", answer["delivered"]));
    }
    let message = reader.expect("the client's message", bound, |frame| frame["type"] == "message").await?;
    let expected =
        json!({"channel": channel, "event": "conformance.ws", "data": data, "message_id": answer["message_id"]});
    crate::examples::contains(&message, &expected, "")
        .map_err(|err| format!("the delivered message differs: {err}"))?;
    reader.close(bound).await;
    writer.close(bound).await;
    Ok(())
}

async fn client_publish_refused(ctx: &Ctx, channel: &str) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let listener = token(ctx, &ctx.name("listener"), channel, &["subscribe"], 600).await?;
    let mut socket = connect(&listener, bound).await?;
    socket
        .send(
            &json!({"type": "publish", "channel": channel, "event": "conformance.ws", "data": {}, "request_id": "r-2"}),
        )
        .await?;
    let answer = socket
        .expect("the answer to publish r-2", bound, |frame| frame["type"] == "published" || frame["type"] == "error")
        .await?;
    if answer["type"] != "error" || answer["code"] != "FORBIDDEN" || answer["request_id"] != "r-2" {
        return Err(format!(
            "a publish by a token without the publish capability was answered {answer}, expected an `error` FORBIDDEN with request_id r-2"
        ));
    }
    socket.ping(bound).await.map_err(|err| format!("after the refusal: {err}"))?;
    socket.close(bound).await;
    Ok(())
}

async fn malformed(ctx: &Ctx, channel: &str) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let token = token(ctx, &ctx.name("sloppy"), channel, &["subscribe"], 600).await?;
    let mut socket = connect(&token, bound).await?;
    let frames = [
        "this is not JSON".to_owned(),
        json!({"type": "no.such.frame"}).to_string(),
        json!({"type": "subscribe"}).to_string(),
        json!(["subscribe", channel]).to_string(),
    ];
    for text in frames {
        socket.send_text(text.clone()).await?;
        let answer = socket
            .expect(&format!("an answer to {text}"), bound, |frame| frame["type"] == "error")
            .await
            .map_err(|err| format!("after the frame {text}: {err}"))?;
        if answer["code"] != "BAD_REQUEST" {
            return Err(format!("the frame {text} was answered {answer}, expected an `error` BAD_REQUEST"));
        }
    }
    socket.ping(bound).await.map_err(|err| format!("after the malformed frames: {err}"))?;
    socket.close(bound).await;
    Ok(())
}

/// A socket of `user` whose token may send user-addressed messages.
async fn user_socket(ctx: &Ctx, user: &str) -> Result<Socket, String> {
    let token = issue(
        ctx,
        &json!({"client_id": format!("{user}-device"), "user_id": user, "capabilities": ["message"], "ttl_seconds": 600}),
    )
    .await?;
    connect(&token, ctx.config.live_bound).await
}

async fn client_message(ctx: &Ctx) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let (from, to) = (ctx.name("ws-sender"), ctx.name("ws-recipient"));
    let mut sender = user_socket(ctx, &from).await?;
    let mut recipient = user_socket(ctx, &to).await?;
    let payload = json!({"hello": "over the socket"});
    sender
        .send(&json!({"type": "user.message.send", "target_user_id": to, "payload": payload, "request_id": "m-1"}))
        .await?;
    let answer = sender.expect("the answer to m-1", bound, |frame| frame["request_id"] == "m-1").await?;
    if answer["type"] != "user.message.sent" || answer["delivered"].as_u64().unwrap_or(0) < 1 {
        return Err(format!("user.message.send m-1 was answered {answer}, expected `user.message.sent` delivered 1"));
    }
    let message = recipient.expect("the user.message", bound, |frame| frame["type"] == "user.message").await?;
    if message["payload"] != payload || message["message_id"] != answer["message_id"] {
        return Err(format!("the recipient got {message} for {answer}"));
    }
    if message["sender_type"] != "client" || message["sender_id"] != json!(format!("{from}-device")) {
        return Err(format!("the user.message names its sender {} {}", message["sender_type"], message["sender_id"]));
    }
    sender.close(bound).await;
    recipient.close(bound).await;
    Ok(())
}

async fn client_command(ctx: &Ctx) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let (from, to) = (ctx.name("ws-caller"), ctx.name("ws-callee"));
    let mut caller = user_socket(ctx, &from).await?;
    let mut callee = user_socket(ctx, &to).await?;
    caller
        .send(&json!({
            "type": "user.command.send", "target_user_id": to, "command": "conformance.add",
            "data": {"a": 2, "b": 3}, "timeout": 10, "request_id": "c-1",
        }))
        .await?;
    let command = callee.expect("the user.command", bound, |frame| frame["type"] == "user.command").await?;
    if command["command"] != "conformance.add" || command["data"] != json!({"a": 2, "b": 3}) {
        return Err(format!("the callee got {command}"));
    }
    callee.send(&json!({"type": "command.response", "command_id": command["command_id"], "data": {"sum": 5}})).await?;
    let done = caller.expect("the answer to c-1", bound, |frame| frame["request_id"] == "c-1").await?;
    caller.close(bound).await;
    callee.close(bound).await;
    if done["type"] != "user.command.done" || done["status"] != "answered" || done["response"] != json!({"sum": 5}) {
        return Err(format!(
            "user.command.send c-1 was answered {done}, expected `user.command.done` with the response"
        ));
    }
    if done["command_id"] != command["command_id"] {
        return Err(format!(
            "`user.command.done` names {}, the command was {}",
            done["command_id"], command["command_id"]
        ));
    }
    Ok(())
}

enum Violation {
    Binary,
    Oversized,
}

async fn violation(ctx: &Ctx, channel: &str, violation: Violation) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let token = token(ctx, &ctx.name("rude"), channel, &["subscribe"], 600).await?;
    let mut socket = connect(&token, bound).await?;
    // A send may fail once the server has closed; the close code is what counts.
    let _ = match violation {
        Violation::Binary => socket.send_binary(b"{\"type\":\"ping\"}".to_vec()).await,
        Violation::Oversized => {
            let padding = "x".repeat(MAX_CLIENT_FRAME + 1024);
            socket.send_text(json!({"type": "ping", "padding": padding}).to_string()).await
        }
    };
    expect_close_code(&mut socket, CLOSE_PROTOCOL, bound).await
}

async fn expect_close_code(socket: &mut Socket, expected: u16, bound: Duration) -> Result<(), String> {
    let (code, reason) = socket.expect_close(bound).await?;
    if code != Some(expected) {
        return Err(format!("the socket ended with {}, expected close code {expected}", describe_close(code, &reason)));
    }
    Ok(())
}

async fn expiry(ctx: &Ctx, channel: &str) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let token = token(ctx, &ctx.name("brief"), channel, &["subscribe"], 2).await?;
    let mut socket = connect(&token, bound).await?;
    subscribe(&mut socket, channel, bound).await?;
    let disconnecting = socket.expect("`disconnecting` before the close", Duration::from_secs(2) + bound, |frame| {
        frame["type"] == "disconnecting"
    });
    let frame = disconnecting.await?;
    if frame["code"] != json!(CLOSE_EXPIRED) {
        return Err(format!("`disconnecting` announced {frame}, expected code {CLOSE_EXPIRED}"));
    }
    expect_close_code(&mut socket, CLOSE_EXPIRED, bound).await
}

async fn expired(ctx: &Ctx, channel: &str) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let token = token(ctx, &ctx.name("stale"), channel, &["subscribe"], 1).await?;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    match Socket::handshake(&endpoint(&token)?, &field(&token, "/token")?, bound).await? {
        Handshake::Rejected(status) => {
            Err(format!("the upgrade was refused with HTTP {status}, expected close code {CLOSE_EXPIRED}"))
        }
        Handshake::Open(mut socket) => {
            let (code, reason) = socket.expect_close(bound).await?;
            if socket.received.iter().any(|frame| frame["type"] == "connected") {
                return Err("an expired token was served (`connected`)".to_owned());
            }
            match code {
                Some(CLOSE_EXPIRED) => Ok(()),
                _ => Err(format!(
                    "the socket ended with {}, expected close code {CLOSE_EXPIRED}",
                    describe_close(code, &reason)
                )),
            }
        }
    }
}

async fn connection_limit(ctx: &Ctx, channel: &str) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let token = token(ctx, &ctx.name("crowd"), channel, &["subscribe"], 600).await?;
    let mut open = Vec::new();
    let result = async {
        for n in 1..=CONNECTION_PROBE {
            match Socket::handshake(&endpoint(&token)?, &field(&token, "/token")?, bound).await? {
                Handshake::Rejected(status) => {
                    return Err(format!(
                        "connection {n} was refused with HTTP {status}, expected close code {CLOSE_CONNECTION_LIMIT}"
                    ));
                }
                Handshake::Open(mut socket) => {
                    let first = socket
                        .expect("`connected` or `disconnecting`", bound, |frame| {
                            frame["type"] == "connected" || frame["type"] == "disconnecting"
                        })
                        .await
                        .map_err(|err| format!("connection {n}: {err}"))?;
                    if first["type"] == "connected" {
                        open.push(socket);
                        continue;
                    }
                    let (code, reason) = socket.expect_close(bound).await?;
                    let announced = first["code"] == json!(CLOSE_CONNECTION_LIMIT);
                    return match code {
                        Some(CLOSE_CONNECTION_LIMIT) if n > 1 && announced => Ok(()),
                        _ => Err(format!(
                            "connection {n} was announced {first} and ended with {}, expected close code {CLOSE_CONNECTION_LIMIT}",
                            describe_close(code, &reason)
                        )),
                    };
                }
            }
        }
        Err(format!(
            "{CONNECTION_PROBE} connections of one token were all served; the document promises a limit (4006)"
        ))
    }
    .await;
    for socket in open {
        socket.close(bound).await;
    }
    result
}

/// Floods a socket that reads nothing; the outer `Err` is why the check could not decide
/// (the flood outlasted the target's heartbeat timeout on a slow machine).
async fn slow_consumer(ctx: &Ctx, channel: &str) -> Result<Result<(), String>, String> {
    let bound = ctx.config.live_bound;
    let setup = async {
        let token = token(ctx, &ctx.name("sleepy"), channel, &["subscribe"], 600).await?;
        // A small receive buffer: the kernel holds little of what the client does not read.
        let handshake = Socket::handshake_small(&endpoint(&token)?, &field(&token, "/token")?, bound, 4096).await?;
        let mut socket = match handshake {
            Handshake::Open(socket) => *socket,
            Handshake::Rejected(status) => return Err(format!("the upgrade was refused with HTTP {status}")),
        };
        let connected = socket.expect("a `connected` frame", bound, |frame| frame["type"] == "connected").await?;
        subscribe(&mut socket, channel, bound).await?;
        Ok((socket, connected["heartbeat_timeout_seconds"].as_u64().unwrap_or(u64::MAX)))
    };
    let (mut socket, heartbeat_timeout) = match setup.await {
        Ok(setup) => setup,
        Err(err) => return Ok(Err(err)),
    };
    // The socket is neither read nor written from now on (a frame the server never reads
    // would turn its close into a reset): the kernel's buffers fill, then the server's queue.
    let flood = Instant::now();
    let data = json!({"padding": "x".repeat(9000)});
    let messages: Vec<Value> =
        (0..100).map(|_| json!({"channel": channel, "event": "conformance.flood", "data": data})).collect();
    let body = json!({"messages": messages});
    let mut published = 0;
    for _ in 0..SLOW_BATCHES {
        let request = ctx.request("realtime.publish.batch", &[]).json(&body);
        let response = match ctx.call("realtime.publish.batch", &request).await {
            Ok(response) if response.status == 200 => response,
            Ok(response) => return Ok(Err(format!("publish.batch answered {} while flooding", response.status))),
            Err(err) => return Ok(Err(err)),
        };
        published += 100;
        let delivered: u64 = response.json()["messages"]
            .as_array()
            .map(|messages| messages.iter().filter_map(|m| m["delivered"].as_u64()).sum())
            .unwrap_or(0);
        // The target stops handing messages to a socket it has cut.
        if delivered == 0 {
            break;
        }
    }
    let flooded = flood.elapsed();
    let (code, reason) = match socket.expect_close(bound).await {
        Ok(closed) => closed,
        Err(err) => {
            return Ok(Err(format!("after {published} messages of 9 KB to a socket that reads nothing: {err}")));
        }
    };
    if code == Some(CLOSE_HEARTBEAT) && flooded.as_secs() >= heartbeat_timeout {
        return Err(format!(
            "the flood of {published} messages took {flooded:.1?}, longer than the target's heartbeat timeout \
             ({heartbeat_timeout} s): the harness could not fill the socket in time"
        ));
    }
    if code != Some(CLOSE_SLOW_CONSUMER) {
        return Ok(Err(format!(
            "after {published} messages to a socket that reads nothing it ended with {}, expected close code {CLOSE_SLOW_CONSUMER}",
            describe_close(code, &reason)
        )));
    }
    Ok(Ok(()))
}

/// Connects with `token`, says nothing, and expects 4201 within the announced timeout;
/// the outer `Err` is why the check cannot run against this target.
async fn silent(token: Value, bound: Duration) -> Result<Result<(), String>, String> {
    let connect = async { Socket::connect(&endpoint(&token)?, &field(&token, "/token")?, bound).await };
    let (mut socket, connected) = match connect.await {
        Ok(connected) => connected,
        Err(err) => return Ok(Err(err)),
    };
    let Some(timeout) = connected["heartbeat_timeout_seconds"].as_u64() else {
        return Ok(Err(format!("`connected` has no heartbeat_timeout_seconds: {connected}")));
    };
    if timeout > HEARTBEAT_WAIT_MAX {
        return Err(format!(
            "the heartbeat timeout is {timeout} s, longer than the {HEARTBEAT_WAIT_MAX} s the harness waits"
        ));
    }
    Ok(expect_close_code(&mut socket, CLOSE_HEARTBEAT, Duration::from_secs(timeout) + bound).await)
}

/// The heartbeat check waits for the target's timeout, so it starts with the run and is
/// collected at its end.
pub(crate) struct Heartbeat {
    task: Option<JoinHandle<Result<Result<(), String>, String>>>,
    setup: Option<String>,
}

impl Heartbeat {
    /// Connects a socket that will say nothing, in the background.
    pub(crate) async fn start(ctx: &Ctx) -> Heartbeat {
        let bound = ctx.config.live_bound;
        let channel = ctx.name("silent");
        let token = match token(ctx, &ctx.name("silent"), &channel, &["subscribe"], 600).await {
            Ok(token) => token,
            Err(err) => return Heartbeat { task: None, setup: Some(err) },
        };
        let task = tokio::spawn(ctx.journal.background(silent(token, bound)));
        Heartbeat { task: Some(task), setup: None }
    }

    /// Waits for the silent socket's end and records the check.
    pub(crate) async fn finish(self, ctx: &Ctx) {
        let started = Instant::now();
        match (self.task, self.setup) {
            (Some(task), _) => match task.await {
                Ok(Ok(result)) => ctx.record(HEARTBEAT, KIND, started, result),
                Ok(Err(reason)) => ctx.skip(HEARTBEAT, KIND, &reason),
                Err(panic) => ctx.record(HEARTBEAT, KIND, started, Err(format!("the check panicked: {panic}"))),
            },
            (None, setup) => ctx.record(HEARTBEAT, KIND, started, Err(setup.unwrap_or_default())),
        }
    }
}
