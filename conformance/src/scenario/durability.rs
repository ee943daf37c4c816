//! Durability through a restart (`--restart-command`, and `--kill-command` for an abrupt
//! kill): writes are answered, then a storm of keyed publishes is cut by the kill, and
//! after the restart every answered request is still there, every key replays the first
//! answer, the requests that got no answer go through once on retry, and nothing is
//! charged or published twice.
//!
//! A subscribed socket stays open across each restart. A graceful one (`--restart-command`
//! alone, or `--stop-command` before it) must announce itself with `disconnecting` and
//! close the socket with 4200; a kill may drop it, but never leave it half-open. With
//! `--stop-command` and `--kill-command` both, the target is restarted gracefully once
//! before the storm's kill.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::context::{Ctx, RESTART_TIMEOUT, Restart};
use crate::http::{Request, Response};
use crate::report::Kind;
use crate::scenario::check;
use crate::scenario::live::{endpoint, field, issue_token, subscribe};
use crate::ws::{Handshake, Socket, describe_close};

const KIND: Kind = Kind::Durability;

const SURVIVED: &str = "durability/every answered write survives a restart of the target";
const REPLAYED: &str = "durability/every idempotency key replays its first answer after the restart";
const ONCE: &str = "durability/after the restart and the retries nothing is charged or published twice";
const GRACEFUL: &str =
    "durability/a graceful restart sends a subscribed socket `disconnecting` and closes it with 4200";
const KILLED: &str = "durability/a subscribed socket open across the kill is dropped or still served, not half-open";

const ALL: [&str; 5] = [GRACEFUL, KILLED, SURVIVED, REPLAYED, ONCE];

/// Publishing workers during the kill, and the most publishes each sends.
const WORKERS: usize = 4;
const MAX_PER_WORKER: usize = 150;
/// How long the storm runs before the target is killed.
const BEFORE_KILL: Duration = Duration::from_millis(300);

/// A keyed request and what it got.
struct Keyed {
    operation: &'static str,
    request: Request,
    answer: Option<Response>,
}

pub(crate) async fn run(ctx: &Ctx) {
    if ctx.config.restart_command.is_none() {
        for id in ALL {
            ctx.skip(id, KIND, "no --restart-command given: the target cannot be restarted");
        }
        return;
    }
    let before = match setup(ctx).await {
        Ok(before) => before,
        Err(err) => {
            check(ctx, "durability/setup", KIND, async { Err(err) }).await;
            return;
        }
    };
    let killed = ctx.config.kill_command.is_some();
    if killed && ctx.config.stop_command.is_some() {
        // A graceful restart of its own first; the storm's is the kill.
        let started = Instant::now();
        let (result, restarted) = graceful_first(ctx, &before.channel, &before.graceful).await;
        ctx.record(GRACEFUL, KIND, started, result);
        if let Err(err) = restarted {
            check(ctx, "durability/restart", KIND, async { Err(err) }).await;
            for id in [KILLED, SURVIVED, REPLAYED, ONCE] {
                ctx.skip(id, KIND, "the target did not come back");
            }
            return;
        }
    } else if killed {
        ctx.skip(GRACEFUL, KIND, "the target is killed, not stopped: give --stop-command for a graceful restart too");
    } else {
        ctx.skip(KILLED, KIND, "no --kill-command given: the target is restarted gracefully");
    }
    let (how, socket_check) = if killed { (Restart::Kill, KILLED) } else { (Restart::Graceful, GRACEFUL) };
    let socket = subscribed(ctx, &before.across, &before.channel).await;
    let storm = match socket {
        Ok(mut socket) => {
            let (socket_result, storm) = storm_across(ctx, &mut socket, &before.channel, how).await;
            check(ctx, socket_check, KIND, async { socket_result }).await;
            storm
        }
        Err(err) => {
            check(ctx, socket_check, KIND, async { Err(format!("a subscriber before the restart: {err}")) }).await;
            storm(ctx, &before.channel, how).await
        }
    };
    let storm = match storm {
        Ok(storm) => storm,
        Err(err) => {
            check(ctx, "durability/restart", KIND, async { Err(err) }).await;
            for id in [SURVIVED, REPLAYED, ONCE] {
                ctx.skip(id, KIND, "the target did not come back");
            }
            return;
        }
    };
    check(ctx, SURVIVED, KIND, survived(ctx, &before, &storm)).await;
    let mut all = before.keyed;
    all.extend(storm);
    check(ctx, REPLAYED, KIND, replayed(ctx, &mut all)).await;
    check(ctx, ONCE, KIND, once(ctx, &before.channel, before.price, before.balance, &all)).await;
    ctx.delete_channel(&before.channel).await;
}

/// What was answered before the storm.
struct Before {
    channel: String,
    keyed: Vec<Keyed>,
    /// A token that must still connect, and one that must stay revoked.
    kept: Value,
    revoked: Value,
    /// The tokens of the sockets open across the graceful restart and the storm's
    /// (issued before the balance is read: a token may cost).
    graceful: Value,
    across: Value,
    /// The price of one publish, and the balance before the storm's publishes.
    price: i64,
    balance: i64,
}

fn keyed(ctx: &Ctx, operation: &'static str, key: &str, body: &Value) -> Request {
    ctx.request(operation, &[]).header("Idempotency-Key", key).json(body)
}

async fn answered(ctx: &Ctx, operation: &'static str, request: Request) -> Result<Keyed, String> {
    let response = ctx.expect(operation, &request, 200, None).await?;
    Ok(Keyed { operation, request, answer: Some(response) })
}

async fn setup(ctx: &Ctx) -> Result<Before, String> {
    let channel = ctx.name("durable");
    let create =
        keyed(ctx, "realtime.channel.create", &ctx.name("durable-create"), &json!({"name": channel, "type": "public"}));
    let mut keyed_requests = vec![answered(ctx, "realtime.channel.create", create).await?];
    let token_body = json!({"client_id": ctx.name("durable-a"), "channels": [channel], "ttl_seconds": 600});
    let token = keyed(ctx, "realtime.token.issue", &ctx.name("durable-token"), &token_body);
    let token = answered(ctx, "realtime.token.issue", token).await?;
    let kept = token.answer.as_ref().map(Response::json).unwrap_or_default();
    keyed_requests.push(token);
    let revoked = keyed(ctx, "realtime.token.issue", &ctx.name("durable-revoked"), &token_body);
    let revoked = answered(ctx, "realtime.token.issue", revoked).await?;
    let revoked_token = revoked.answer.as_ref().map(Response::json).unwrap_or_default();
    keyed_requests.push(revoked);
    let revoke =
        ctx.request("realtime.token.revoke", &[]).json(&json!({"token_or_jti": field(&revoked_token, "/jti")?}));
    ctx.expect("realtime.token.revoke", &revoke, 200, None).await?;
    let graceful = issue_token(ctx, &ctx.name("durable-graceful"), &channel).await?;
    let across = issue_token(ctx, &ctx.name("durable-across"), &channel).await?;
    let balance = ctx.balance(ctx.funded_key()).await?;
    let first = keyed(ctx, "realtime.publish", &ctx.name("durable-first"), &publish_body(&channel, 0));
    keyed_requests.push(answered(ctx, "realtime.publish", first).await?);
    let price = balance - ctx.balance(ctx.funded_key()).await?;
    Ok(Before { channel, keyed: keyed_requests, kept, revoked: revoked_token, graceful, across, price, balance })
}

fn publish_body(channel: &str, n: usize) -> Value {
    json!({"channel": channel, "event": "conformance.durable", "data": {"n": n}})
}

/// Keyed publishes from several workers while the target is killed (or stopped) and
/// restarted; each worker stops at its first unanswered request.
async fn storm(ctx: &Ctx, channel: &str, how: Restart) -> Result<Vec<Keyed>, String> {
    let stop = AtomicBool::new(false);
    let worker = |w: usize| {
        let stop = &stop;
        async move {
            let mut sent = Vec::new();
            for i in 0..MAX_PER_WORKER {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let n = 1 + w * MAX_PER_WORKER + i;
                let request = keyed(
                    ctx,
                    "realtime.publish",
                    &ctx.name(&format!("durable-storm-{w}-{i}")),
                    &publish_body(channel, n),
                );
                let answer = ctx.target.send(&request).await.ok().filter(|response| response.status == 200);
                let done = answer.is_none();
                sent.push(Keyed { operation: "realtime.publish", request, answer });
                if done {
                    break;
                }
            }
            sent
        }
    };
    let restart = async {
        tokio::time::sleep(BEFORE_KILL).await;
        let restarted = ctx.restart_target(how).await;
        stop.store(true, Ordering::Relaxed);
        restarted
    };
    let (sent, restarted) = tokio::join!(join_all((0..WORKERS).map(worker)), restart);
    restarted?;
    Ok(sent.into_iter().flatten().collect())
}

/// The answers of a socket watched across a restart, and of the restart.
type Across<'a, T> = Pin<Box<dyn Future<Output = (Result<(), String>, Result<T, String>)> + 'a>>;

/// A graceful restart with a subscribed socket open across it. Built on the heap in a frame
/// of its own (so is [`storm_across`]): a debug build keeps a stack slot for every future
/// a function builds, and a test thread's stack is 2 MiB.
fn graceful_first<'a>(ctx: &'a Ctx, channel: &'a str, token: &'a Value) -> Across<'a, ()> {
    Box::pin(async move {
        let mut socket = match subscribed(ctx, token, channel).await {
            Ok(socket) => socket,
            Err(err) => return (Err(format!("a subscriber before the restart: {err}")), Ok(())),
        };
        let restart = async {
            tokio::time::sleep(BEFORE_KILL).await;
            ctx.restart_target(Restart::Graceful).await
        };
        across(ctx, &mut socket, Restart::Graceful, restart).await
    })
}

/// A socket of `token` subscribed to `channel`.
async fn subscribed(ctx: &Ctx, token: &Value, channel: &str) -> Result<Socket, String> {
    let bound = ctx.config.live_bound;
    let (mut socket, _) = Socket::connect(&endpoint(token)?, &field(token, "/token")?, bound).await?;
    subscribe(&mut socket, channel, bound).await?;
    Ok(socket)
}

/// The storm, with a subscribed socket open across its restart.
fn storm_across<'a>(ctx: &'a Ctx, socket: &'a mut Socket, channel: &'a str, how: Restart) -> Across<'a, Vec<Keyed>> {
    Box::pin(across(ctx, socket, how, storm(ctx, channel, how)))
}

/// Runs `restart` (which restarts the target and says whether it came back, with what
/// else it did) while watching `socket`, subscribed before it: after a graceful restart it
/// must have received `disconnecting` with 4200 and then the close 4200; after a kill it
/// may have ended any way, or still be served, but not be open and mute. Returns the
/// socket's verdict and the restart's outcome.
async fn across<T>(
    ctx: &Ctx,
    socket: &mut Socket,
    how: Restart,
    restart: impl Future<Output = Result<T, String>>,
) -> (Result<(), String>, Result<T, String>) {
    let bound = ctx.config.live_bound;
    let restarted = Notify::new();
    let restart = async {
        let outcome = restart.await;
        restarted.notify_one();
        outcome
    };
    // The socket is read while the target stops: a server that waits for the client's
    // answer to its close frame is not kept waiting.
    let watch = async {
        let ended = {
            let ended = async {
                match how {
                    Restart::Graceful => goodbye(socket, RESTART_TIMEOUT + bound).await,
                    Restart::Kill => socket.expect_close(RESTART_TIMEOUT + bound).await.map(drop),
                }
            };
            tokio::select! {
                result = ended => Some(result),
                () = async { restarted.notified().await; tokio::time::sleep(bound).await } => None,
            }
        };
        match (ended, how) {
            (Some(result), _) => result,
            (None, Restart::Graceful) => Err(format!(
                "the socket subscribed before the graceful restart got no `disconnecting` and no close within \
                 {bound:?} of the target answering again"
            )),
            (None, Restart::Kill) => socket
                .ping(bound)
                .await
                .map_err(|err| format!("the socket open across the kill is neither closed nor served: {err}")),
        }
    };
    let (socket_result, outcome) = tokio::join!(watch, restart);
    (socket_result, outcome)
}

/// A graceful stop's goodbye: `disconnecting` with code 4200, then the close 4200.
async fn goodbye(socket: &mut Socket, bound: Duration) -> Result<(), String> {
    let frame = socket
        .expect("a `disconnecting` frame before the graceful stop's close", bound, |frame| {
            frame["type"] == "disconnecting"
        })
        .await?;
    if frame["code"] != 4200 {
        return Err(format!("a graceful stop announced {frame}, expected `disconnecting` with code 4200"));
    }
    match socket.expect_close(bound).await? {
        (Some(4200), _) => Ok(()),
        (code, reason) => {
            Err(format!("a graceful stop closed the socket with {}, expected 4200", describe_close(code, &reason)))
        }
    }
}

async fn survived(ctx: &Ctx, before: &Before, storm: &[Keyed]) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    ctx.expect("realtime.channel.get", &ctx.request("realtime.channel.get", &[&before.channel]), 200, None).await?;
    let history = history(ctx, &before.channel).await?;
    let answered_ids = before
        .keyed
        .iter()
        .chain(storm)
        .filter(|k| k.operation == "realtime.publish")
        .filter_map(|k| k.answer.as_ref().and_then(|answer| answer.str_field("/message_id")));
    let kept: Vec<String> = history.iter().filter_map(|m| m["message_id"].as_str().map(str::to_owned)).collect();
    let lost: Vec<String> = answered_ids.filter(|id| !kept.contains(id)).collect();
    if !lost.is_empty() {
        return Err(format!("{} answered publishes are not in the history after the restart: {lost:?}", lost.len()));
    }
    let (socket, _) = Socket::connect(&endpoint(&before.kept)?, &field(&before.kept, "/token")?, bound)
        .await
        .map_err(|err| format!("a token issued before the restart: {err}"))?;
    socket.close(bound).await;
    match Socket::handshake(&endpoint(&before.revoked)?, &field(&before.revoked, "/token")?, bound).await? {
        Handshake::Rejected(_) => Ok(()),
        Handshake::Open(mut socket) => {
            let _ = socket.expect_close(bound).await;
            if socket.received.iter().any(|frame| frame["type"] == "connected") {
                Err("a token revoked before the restart was served after it".to_owned())
            } else {
                Ok(())
            }
        }
    }
}

/// Sends every key again: answered ones must replay their answer; the others (cut by the
/// kill) must now be answered, and are kept for the count.
async fn replayed(ctx: &Ctx, all: &mut [Keyed]) -> Result<(), String> {
    let mut mismatches = Vec::new();
    for keyed in all.iter_mut() {
        let again = ctx.expect(keyed.operation, &keyed.request, 200, None).await?;
        match &keyed.answer {
            Some(first) => {
                let replay = again.header("idempotent-replayed") == Some("true");
                if !replay || again.json() != first.json() {
                    mismatches.push(format!(
                        "{} {}: first {} then {} (Idempotent-Replayed: {:?})",
                        keyed.operation,
                        idempotency_key(&keyed.request),
                        first.json(),
                        again.json(),
                        again.header("idempotent-replayed")
                    ));
                }
            }
            None => keyed.answer = Some(again),
        }
    }
    match mismatches.first() {
        None => Ok(()),
        Some(first) => Err(format!("{} keys did not replay after the restart; the first: {first}", mismatches.len())),
    }
}

async fn once(ctx: &Ctx, channel: &str, price: i64, balance_before: i64, all: &[Keyed]) -> Result<(), String> {
    let publishes: Vec<&Keyed> = all.iter().filter(|k| k.operation == "realtime.publish").collect();
    let history = history(ctx, channel).await?;
    let mut ids: Vec<&str> = history.iter().filter_map(|m| m["message_id"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    if history.len() != publishes.len() || ids.len() != publishes.len() {
        return Err(format!(
            "{} keyed publishes (each answered once), and the history holds {} messages ({} distinct ids)",
            publishes.len(),
            history.len(),
            ids.len()
        ));
    }
    let balance = ctx.balance(ctx.funded_key()).await?;
    let charged = balance_before - balance;
    let expected = price * i64::try_from(publishes.len()).unwrap_or(i64::MAX);
    if charged != expected {
        return Err(format!(
            "{} publishes at {price} each should cost {expected}; the balance went down by {charged}",
            publishes.len()
        ));
    }
    Ok(())
}

/// Every message of the channel's history, oldest first.
async fn history(ctx: &Ctx, channel: &str) -> Result<Vec<Value>, String> {
    let mut messages = Vec::new();
    let mut since: Option<u64> = None;
    for _ in 0..50 {
        let mut request = ctx.request("realtime.channel.history", &[channel]);
        let since_query = since.map(|s| format!("&since={s}")).unwrap_or_default();
        request.path = format!("{}?limit=100{since_query}", request.path);
        let page = ctx.expect("realtime.channel.history", &request, 200, None).await?.json();
        let batch = page["messages"].as_array().cloned().unwrap_or_default();
        let done = batch.is_empty();
        messages.extend(batch);
        match page["next_since"].as_u64() {
            Some(next) if !done && Some(next) != since => since = Some(next),
            _ => return Ok(messages),
        }
    }
    Err("channel.history did not end within 50 pages".to_owned())
}

fn idempotency_key(request: &Request) -> &str {
    request.headers.iter().find(|(name, _)| name == "Idempotency-Key").map_or("", |(_, value)| value.as_str())
}
