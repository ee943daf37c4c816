//! Durability through a restart (`--restart-command`, and `--kill-command` for an abrupt
//! kill): writes are answered, then a storm of keyed publishes is cut by the kill, and
//! after the restart every answered request is still there, every key replays the first
//! answer, the requests that got no answer go through once on retry, and nothing is
//! charged or published twice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::context::Ctx;
use crate::http::{Request, Response};
use crate::report::Kind;
use crate::scenario::check;
use crate::scenario::live::{endpoint, field};
use crate::ws::{Handshake, Socket};

const KIND: Kind = Kind::Durability;

const SURVIVED: &str = "durability/every answered write survives a restart of the target";
const REPLAYED: &str = "durability/every idempotency key replays its first answer after the restart";
const ONCE: &str = "durability/after the restart and the retries nothing is charged or published twice";

const ALL: [&str; 3] = [SURVIVED, REPLAYED, ONCE];

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
    let storm = storm(ctx, &before.channel).await;
    let storm = match storm {
        Ok(storm) => storm,
        Err(err) => {
            check(ctx, "durability/restart", KIND, async { Err(err) }).await;
            for id in ALL {
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
    let balance = ctx.balance(ctx.funded_key()).await?;
    let first = keyed(ctx, "realtime.publish", &ctx.name("durable-first"), &publish_body(&channel, 0));
    keyed_requests.push(answered(ctx, "realtime.publish", first).await?);
    let price = balance - ctx.balance(ctx.funded_key()).await?;
    Ok(Before { channel, keyed: keyed_requests, kept, revoked: revoked_token, price, balance })
}

fn publish_body(channel: &str, n: usize) -> Value {
    json!({"channel": channel, "event": "conformance.durable", "data": {"n": n}})
}

/// Keyed publishes from several workers while the target is killed and restarted; each
/// worker stops at its first unanswered request.
async fn storm(ctx: &Ctx, channel: &str) -> Result<Vec<Keyed>, String> {
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
        let restarted = ctx.restart_target().await;
        stop.store(true, Ordering::Relaxed);
        restarted
    };
    let (sent, restarted) = tokio::join!(join_all((0..WORKERS).map(worker)), restart);
    restarted?;
    Ok(sent.into_iter().flatten().collect())
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
