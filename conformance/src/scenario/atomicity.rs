//! All or nothing: a batch refused because of one message publishes none of them, charges
//! nothing, and leaves the channel's history as it was.

use serde_json::{Value, json};

use crate::context::Ctx;
use crate::report::Kind;
use crate::scenario::check;
use crate::scenario::live::subscriber;

const KIND: Kind = Kind::Atomicity;

const UNKNOWN_CHANNEL: &str =
    "atomicity/a batch with one unknown channel is 404, publishes nothing and charges nothing";
const INVALID_MESSAGE: &str =
    "atomicity/a batch with one invalid message is 422, publishes nothing and charges nothing";

pub(crate) async fn run(ctx: &Ctx) {
    let channel = ctx.name("atomic");
    if let Err(err) = ctx.create_channel(&channel, "public").await {
        check(ctx, "atomicity/setup", KIND, async { Err(format!("creating channel {channel}: {err}")) }).await;
        return;
    }
    let missing = ctx.name("atomic-missing");
    check(
        ctx,
        UNKNOWN_CHANNEL,
        KIND,
        refused_batch(ctx, &channel, json!({"channel": missing, "event": "e", "data": {}}), 404),
    )
    .await;
    let invalid = json!({"channel": channel, "event": "", "data": {}});
    check(ctx, INVALID_MESSAGE, KIND, refused_batch(ctx, &channel, invalid, 422)).await;
    ctx.delete_channel(&channel).await;
}

/// Sends a batch of two good messages to `channel` around `bad`; expects `status`, no
/// message at a live subscriber, the same balance and the same history.
async fn refused_batch(ctx: &Ctx, channel: &str, bad: Value, status: u16) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let mut socket = subscriber(ctx, channel, &ctx.name("atomic-reader")).await?;
    let history_before = history(ctx, channel).await?;
    let balance_before = ctx.balance(ctx.funded_key()).await?;
    let good = |n: u64| json!({"channel": channel, "event": "conformance.atomic", "data": {"n": n}});
    let request = ctx.request("realtime.publish.batch", &[]).json(&json!({"messages": [good(1), bad, good(2)]}));
    let response = ctx.expect("realtime.publish.batch", &request, status, None).await?;
    let pointer = response.json()["errors"][0]["pointer"].clone();
    if status == 422 && pointer.as_str().is_none_or(|pointer| !pointer.starts_with("/messages/1")) {
        return Err(format!("the problem's errors[0].pointer is {pointer}, expected it to name /messages/1"));
    }
    // Anything published would arrive before the answer to a ping.
    socket.ping(bound).await?;
    let frames = socket.close(bound).await;
    if let Some(frame) = frames.iter().find(|frame| frame["type"] == "message") {
        return Err(format!("a refused batch delivered {frame}"));
    }
    let balance_after = ctx.balance(ctx.funded_key()).await?;
    if balance_after != balance_before {
        return Err(format!("a refused batch changed the balance from {balance_before} to {balance_after}"));
    }
    let history_after = history(ctx, channel).await?;
    if history_after != history_before {
        return Err(format!("a refused batch changed the history: {history_before} then {history_after}"));
    }
    Ok(())
}

async fn history(ctx: &Ctx, channel: &str) -> Result<Value, String> {
    let request = ctx.request("realtime.channel.history", &[channel]);
    Ok(ctx.expect("realtime.channel.history", &request, 200, None).await?.json()["messages"].clone())
}
