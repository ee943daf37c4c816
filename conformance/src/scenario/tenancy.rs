//! Tenancy on every operation that names another resource: a second account (the
//! zero-credit key's) names the funded account's token, client, channel and command, over
//! REST and WebSocket, and reaches none of them. Reading, revoking, disconnecting and
//! deleting are free, so these checks need no credit; the WebSocket ones and publishing
//! need the second account to pay, so they skip when it cannot (it has credit once the
//! credit checks completed its top-up with `--dev-checkout`).

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use serde_json::{Value, json};

use crate::context::Ctx;
use crate::http::Request;
use crate::report::Kind;
use crate::scenario::check;
use crate::scenario::live::{endpoint, field, issue_token, subscriber};
use crate::ws::Socket;

const KIND: Kind = Kind::Tenancy;

const REVOKE: &str = "tenancy/another account's token.revoke of a token is 404 and the socket stays";
const DISCONNECT: &str = "tenancy/another account's user.disconnect reaches none of this account's sockets";
const DELETE: &str = "tenancy/another account's channel.delete is 404 and the channel stays";
const PRESENCE: &str = "tenancy/another account's presence.get is 404";
const HISTORY: &str = "tenancy/another account's channel.history is 404";
const COMMAND: &str = "tenancy/another account's user.command.get is 404";
const SOCKET: &str = "tenancy/another account's socket can neither subscribe to nor publish in the channel";
const PUBLISH: &str = "tenancy/another account's publish and publish.batch (to the channel, or to its own of the same name) reach \
     none of the channel's subscribers";

const ALL: [&str; 8] = [REVOKE, DISCONNECT, DELETE, PRESENCE, HISTORY, COMMAND, SOCKET, PUBLISH];

/// The event the second account publishes.
const INTRUDER_EVENT: &str = "conformance.tenancy-publish";

pub(crate) async fn run(ctx: &Ctx) {
    let Some(other) = ctx.config.zero_credit_api_key.clone() else {
        for id in ALL {
            ctx.skip(id, KIND, "needs a second account: no zero-credit key given (--zero-credit-api-key)");
        }
        return;
    };
    let channel = ctx.name("tenant");
    if let Err(err) = ctx.create_channel(&channel, "presence").await {
        check(ctx, "tenancy/setup", KIND, async { Err(format!("creating channel {channel}: {err}")) }).await;
        return;
    }
    let bound = ctx.config.live_bound;
    let client = ctx.name("tenant-a");
    let mut socket = match subscriber(ctx, &channel, &client).await {
        Ok(socket) => socket,
        Err(err) => {
            check(ctx, "tenancy/setup", KIND, async { Err(format!("a subscriber of {channel}: {err}")) }).await;
            ctx.delete_channel(&channel).await;
            return;
        }
    };
    let as_other = |operation: &str, params: &[&str]| request_as(ctx, &other, operation, params);

    check(ctx, REVOKE, KIND, async {
        let token = issue_token(ctx, &ctx.name("tenant-b"), &channel).await?;
        let (mut victim, _) = Socket::connect(&endpoint(&token)?, &field(&token, "/token")?, bound).await?;
        for token_or_jti in [field(&token, "/jti")?, field(&token, "/token")?] {
            let request = as_other("realtime.token.revoke", &[]).json(&json!({"token_or_jti": token_or_jti}));
            ctx.expect("realtime.token.revoke", &request, 404, Some("NOT_FOUND")).await?;
        }
        victim.ping(bound).await.map_err(|err| format!("after another account's revoke: {err}"))?;
        victim.close(bound).await;
        Ok(())
    })
    .await;

    check(ctx, DISCONNECT, KIND, async {
        for body in [json!({"client_id": client}), json!({"client_id": client, "channel": channel})] {
            let request = as_other("realtime.user.disconnect", &[]).json(&body);
            let response = ctx.call("realtime.user.disconnect", &request).await?;
            let disconnected = response.json()["disconnected"].as_u64();
            if !(response.status == 404 || (response.status == 200 && disconnected == Some(0))) {
                return Err(format!(
                    "another account's user.disconnect {body} answered {} {}, expected 404 or disconnected 0",
                    response.status,
                    response.json()
                ));
            }
        }
        socket.ping(bound).await.map_err(|err| format!("after another account's disconnect: {err}"))?;
        Ok(())
    })
    .await;

    check(ctx, PRESENCE, KIND, async {
        let request = as_other("realtime.presence.get", &[&channel]);
        ctx.expect("realtime.presence.get", &request, 404, Some("NOT_FOUND")).await.map(drop)
    })
    .await;

    check(ctx, HISTORY, KIND, async {
        let request = as_other("realtime.channel.history", &[&channel]);
        ctx.expect("realtime.channel.history", &request, 404, Some("NOT_FOUND")).await.map(drop)
    })
    .await;

    check(ctx, COMMAND, KIND, command(ctx, &other)).await;

    match issue_other(ctx, &other, &channel).await {
        Err(reason) => ctx.skip(SOCKET, KIND, &reason),
        Ok(token) => check(ctx, SOCKET, KIND, foreign_socket(ctx, &token, &channel, &mut socket)).await,
    }
    let started = Instant::now();
    match foreign_publish(ctx, &other, &channel, &mut socket).await {
        Published::NoCredit => ctx.skip(
            PUBLISH,
            KIND,
            "the second account has no credit to publish (run with --dev-checkout to top it up)",
        ),
        Published::Checked(result) => ctx.record(PUBLISH, KIND, started, result),
    }
    // Last: a target that gets it wrong deletes the channel the other checks use.
    check(ctx, DELETE, KIND, async {
        let request = as_other("realtime.channel.delete", &[&channel]);
        ctx.expect("realtime.channel.delete", &request, 404, Some("NOT_FOUND")).await?;
        ctx.expect("realtime.channel.get", &ctx.request("realtime.channel.get", &[&channel]), 200, None).await?;
        socket.ping(bound).await
    })
    .await;

    socket.close(bound).await;
    ctx.delete_channel(&channel).await;
}

/// A token of the other account naming the funded account's channel, or why there is none.
async fn issue_other(ctx: &Ctx, other: &str, channel: &str) -> Result<Value, String> {
    let body =
        json!({"client_id": ctx.name("intruder"), "channels": [channel], "capabilities": ["subscribe", "publish"]});
    let request = request_as(ctx, other, "realtime.token.issue", &[]).json(&body);
    let response = ctx.call("realtime.token.issue", &request).await.map_err(|err| format!("issuing: {err}"))?;
    match response.status {
        200 => Ok(response.json()),
        402 => Err("the second account has no credit for a token (run with --dev-checkout to top it up)".to_owned()),
        status => Err(format!("the second account's token.issue answered {status}")),
    }
}

async fn foreign_socket(ctx: &Ctx, token: &Value, channel: &str, member: &mut Socket) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let (mut socket, _) = Socket::connect(&endpoint(token)?, &field(token, "/token")?, bound).await?;
    socket.send(&json!({"type": "subscribe", "channel": channel})).await?;
    let answer = socket.expect("an answer to subscribe", bound, |frame| frame["channel"] == json!(channel)).await?;
    if answer["type"] != "error" {
        return Err(format!("another account's socket subscribing to the channel was answered {answer}"));
    }
    socket
        .send(&json!({"type": "publish", "channel": channel, "event": "conformance.intruder", "data": {}, "request_id": "x"}))
        .await?;
    let answer = socket.expect("an answer to publish", bound, |frame| frame["request_id"] == "x").await?;
    socket.close(bound).await;
    if answer["type"] != "error" {
        return Err(format!("another account's socket publishing to the channel was answered {answer}"));
    }
    // Anything that reached the account's channel would arrive before the pong.
    member.ping(bound).await?;
    let leaked: Vec<&Value> = member
        .received
        .iter()
        .filter(|frame| frame["type"] == "message" || frame["type"] == "presence.join")
        .filter(|frame| frame.to_string().contains("intruder"))
        .collect();
    match leaked.first() {
        Some(frame) => Err(format!("another account's socket reached the channel: {frame}")),
        None => Ok(()),
    }
}

/// How the second account's publishes went.
enum Published {
    /// It cannot pay for a publish: nothing was checked.
    NoCredit,
    Checked(Result<(), String>),
}

/// The second account publishes (one message and a batch) to the funded account's channel,
/// which must be 404 `NOT_FOUND`, then to a channel of its own with the same name, which
/// must go through; the funded account's subscriber must receive none of it before a
/// message of its own account published after them.
///
/// The future is built on the heap in a frame of its own: a debug build keeps a stack slot
/// for every future a function builds, and a test thread's stack is 2 MiB.
fn foreign_publish<'a>(
    ctx: &'a Ctx,
    other: &'a str,
    channel: &'a str,
    member: &'a mut Socket,
) -> Pin<Box<dyn Future<Output = Published> + 'a>> {
    Box::pin(publish_as_other(ctx, other, channel, member))
}

async fn publish_as_other(ctx: &Ctx, other: &str, channel: &str, member: &mut Socket) -> Published {
    let message = |n: u32| json!({"channel": channel, "event": INTRUDER_EVENT, "data": {"tenant": "other", "n": n}});
    let publish = request_as(ctx, other, "realtime.publish", &[]).json(&message(1));
    let batch =
        request_as(ctx, other, "realtime.publish.batch", &[]).json(&json!({"messages": [message(2), message(3)]}));
    for (operation, request) in [("realtime.publish", &publish), ("realtime.publish.batch", &batch)] {
        let response = match ctx.call(operation, request).await {
            Ok(response) => response,
            Err(err) => return Published::Checked(Err(err)),
        };
        if response.status == 402 {
            return Published::NoCredit;
        }
        if let Err(err) = crate::context::expect_status(operation, &response, 404, Some("NOT_FOUND")) {
            return Published::Checked(Err(format!("another account publishing to the channel: {err}")));
        }
    }
    // The second account's own channel of the same name: channel names are per account.
    let create =
        request_as(ctx, other, "realtime.channel.create", &[]).json(&json!({"name": channel, "type": "public"}));
    match ctx.call("realtime.channel.create", &create).await {
        Ok(response) if response.status == 402 => return Published::NoCredit,
        Ok(response) if response.status == 200 => {}
        Ok(response) => {
            return Published::Checked(Err(format!(
                "another account creating its own channel named {channel} answered {}: {}",
                response.status,
                response.json()
            )));
        }
        Err(err) => return Published::Checked(Err(err)),
    }
    let own = async {
        ctx.expect("realtime.publish", &publish, 200, None).await?;
        ctx.expect("realtime.publish.batch", &batch, 200, None).await?;
        Ok::<(), String>(())
    }
    .await;
    // Deleted before anything else: the channel.delete check that follows must find none.
    let delete = request_as(ctx, other, "realtime.channel.delete", &[channel]);
    let deleted = ctx.expect("realtime.channel.delete", &delete, 200, None).await;
    if let Err(err) = own {
        return Published::Checked(Err(format!("another account publishing to its own channel of that name: {err}")));
    }
    if let Err(err) = deleted {
        return Published::Checked(Err(format!("another account deleting its own channel of that name: {err}")));
    }
    Published::Checked(nothing_arrived(ctx, channel, member).await)
}

/// A message of the funded account published last, then a ping: anything of the second
/// account's that reached the channel arrives before them.
async fn nothing_arrived(ctx: &Ctx, channel: &str, member: &mut Socket) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let fence = ctx
        .request("realtime.publish", &[])
        .json(&json!({"channel": channel, "event": "conformance.fence", "data": {}}));
    ctx.expect("realtime.publish", &fence, 200, None).await?;
    member
        .expect("the account's own message published after the other account's", bound, |frame| {
            frame["type"] == "message" && frame["event"] == "conformance.fence"
        })
        .await?;
    member.ping(bound).await?;
    let leaked: Vec<&Value> =
        member.received.iter().filter(|frame| frame.to_string().contains(INTRUDER_EVENT)).collect();
    match leaked.first() {
        Some(frame) => Err(format!(
            "{} frames of another account's publishes reached the channel's subscriber; the first: {frame}",
            leaked.len()
        )),
        None => Ok(()),
    }
}

/// A command sent by the funded account without waiting, looked up by the other account.
async fn command(ctx: &Ctx, other: &str) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let user = ctx.name("tenant-user");
    let request = ctx
        .request("realtime.token.issue", &[])
        .json(&json!({"client_id": format!("{user}-device"), "user_id": user, "ttl_seconds": 600}));
    let token = ctx.expect("realtime.token.issue", &request, 200, None).await?.json();
    let (socket, _) = Socket::connect(&endpoint(&token)?, &field(&token, "/token")?, bound).await?;
    let body = json!({"target_user_id": user, "type": "conformance.ping", "data": {}, "wait_for_response": false});
    let request = ctx.request("realtime.user.command.send", &[]).json(&body);
    let sent = ctx.call("realtime.user.command.send", &request).await;
    socket.close(bound).await;
    let sent = sent?;
    let command_id = sent.str_field("/command_id").ok_or_else(|| format!("no command_id in {}", sent.json()))?;
    let own = ctx.request("realtime.user.command.get", &[&command_id]);
    ctx.expect("realtime.user.command.get", &own, 200, None).await?;
    let foreign = request_as(ctx, other, "realtime.user.command.get", &[&command_id]);
    ctx.expect("realtime.user.command.get", &foreign, 404, Some("NOT_FOUND")).await.map(drop)
}

/// A request for `operation` with `key` instead of the funded key.
fn request_as(ctx: &Ctx, key: &str, operation: &str, params: &[&str]) -> Request {
    let method = ctx.spec.operation(operation).map(|op| op.method.clone()).unwrap_or_else(|| "GET".to_owned());
    Request::new(&method, ctx.path(operation, params)).bearer(key)
}
