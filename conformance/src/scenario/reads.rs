//! Reads that are easy to get subtly wrong: `channel.list` walked page by page while
//! channels come and go, `delivered` counting the live subscribers, the members in the
//! `subscribed` frame of a presence channel, and `member_count` counting members once.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::context::{Ctx, encode_segment};
use crate::report::Kind;
use crate::scenario::check;
use crate::scenario::live::{endpoint, field, issue, subscribe, subscriber};
use crate::ws::Socket;

const KIND: Kind = Kind::Reads;

const PAGES: &str = "reads/channel.list pages are complete, ordered by name and stable while channels change";
const DELIVERED: &str = "reads/publish counts `delivered` as the live subscribers";
const SNAPSHOT: &str = "reads/the `subscribed` frame of a presence channel lists the members already there";
const MEMBER_COUNT: &str = "reads/member_count counts each member once";

/// How many channels the pagination check creates.
const LISTED: usize = 7;
/// The most pages the walk may take before it is called endless.
const MAX_PAGES: usize = 200;

pub(crate) async fn run(ctx: &Ctx) {
    check(ctx, PAGES, KIND, pages(ctx)).await;
    check(ctx, DELIVERED, KIND, delivered(ctx)).await;
    check(ctx, SNAPSHOT, KIND, snapshot(ctx)).await;
    check(ctx, MEMBER_COUNT, KIND, member_count(ctx)).await;
}

/// One page of `channel.list`: the names, and the cursor of the next page.
async fn page(ctx: &Ctx, limit: usize, cursor: Option<&str>) -> Result<(Vec<String>, Option<String>), String> {
    let cursor = cursor.map(|c| format!("&cursor={}", encode_segment(c))).unwrap_or_default();
    let path = format!("{}?limit={limit}{cursor}", ctx.path("realtime.channel.list", &[]));
    let request = crate::http::Request::new("GET", path).bearer(ctx.funded_key());
    let body = ctx.expect("realtime.channel.list", &request, 200, None).await?.json();
    let names: Vec<String> = body["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .map(str::to_owned)
        .collect();
    if names.len() > limit {
        return Err(format!("a page asked with limit={limit} has {} channels", names.len()));
    }
    Ok((names, body["next_cursor"].as_str().map(str::to_owned)))
}

async fn pages(ctx: &Ctx) -> Result<(), String> {
    let names: Vec<String> = (0..=LISTED).map(|n| ctx.name(&format!("page-{n}"))).collect();
    // The last name is created during the walk; the one before it is deleted during it.
    for name in &names[..LISTED] {
        ctx.create_channel(name, "public").await?;
    }
    let result = walk(ctx, &names).await;
    for name in &names {
        ctx.delete_channel(name).await;
    }
    result
}

async fn walk(ctx: &Ctx, names: &[String]) -> Result<(), String> {
    // Size the pages so that the account's other channels cannot make the walk endless.
    let mut total = 0;
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let (page, next) = page(ctx, 100, cursor.as_deref()).await?;
        total += page.len();
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let limit = (total / 40).clamp(2, 100);
    let (deleted, created) = (&names[LISTED - 1], &names[LISTED]);
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    for n in 0..MAX_PAGES {
        let (page, next) = page(ctx, limit, cursor.as_deref()).await?;
        if next.is_some() && page.is_empty() {
            return Err(format!("page {n} is empty but has a next_cursor"));
        }
        seen.extend(page);
        if n == 0 {
            ctx.delete_channel(deleted).await;
            ctx.create_channel(created, "public").await?;
        }
        match next {
            Some(next) => cursor = Some(next),
            None => return verify(&seen, &names[..LISTED - 1], limit),
        }
    }
    Err(format!("channel.list did not end within {MAX_PAGES} pages of {limit}"))
}

/// Names strictly ascending (so none twice), and every channel that lived through the walk
/// listed.
fn verify(seen: &[String], lived: &[String], limit: usize) -> Result<(), String> {
    if let Some(pair) = seen.windows(2).find(|pair| pair[0] >= pair[1]) {
        return Err(format!(
            "walking with limit={limit}: {:?} is listed after {:?}; pages must be ordered by name with no repeats",
            pair[1], pair[0]
        ));
    }
    let missing: Vec<&String> = lived.iter().filter(|name| !seen.contains(name)).collect();
    if !missing.is_empty() {
        return Err(format!("walking with limit={limit}, the channels {missing:?} were never listed"));
    }
    Ok(())
}

async fn delivered(ctx: &Ctx) -> Result<(), String> {
    let channel = ctx.name("delivered");
    ctx.create_channel(&channel, "public").await?;
    let bound = ctx.config.live_bound;
    let mut sockets = Vec::new();
    let mut counts = Vec::new();
    for n in 0..3 {
        if n > 0 {
            sockets.push(subscriber(ctx, &channel, &ctx.name(&format!("count-{n}"))).await?);
        }
        let request = ctx
            .request("realtime.publish", &[])
            .json(&json!({"channel": channel, "event": "conformance.count", "data": {"n": n}}));
        let answer = ctx.expect("realtime.publish", &request, 200, None).await?.json();
        counts.push(answer["delivered"].clone());
    }
    for socket in sockets {
        socket.close(bound).await;
    }
    ctx.delete_channel(&channel).await;
    if counts != [json!(0), json!(1), json!(2)] {
        return Err(format!("with 0, 1 and 2 subscribers, delivered was {counts:?}"));
    }
    Ok(())
}

async fn snapshot(ctx: &Ctx) -> Result<(), String> {
    let channel = ctx.name("snapshot");
    ctx.create_channel(&channel, "presence").await?;
    let bound = ctx.config.live_bound;
    let first = ctx.name("first");
    let early = subscriber(ctx, &channel, &first).await?;
    let late = issue_member(ctx, &channel, &ctx.name("second")).await?;
    let (mut socket, _) = Socket::connect(&endpoint(&late)?, &field(&late, "/token")?, bound).await?;
    socket.send(&json!({"type": "subscribe", "channel": channel})).await?;
    let subscribed = socket
        .expect("`subscribed` to the presence channel", bound, |frame| {
            frame["type"] == "subscribed" && frame["channel"] == json!(channel)
        })
        .await?;
    socket.close(bound).await;
    early.close(bound).await;
    ctx.delete_channel(&channel).await;
    let members: Vec<&str> = subscribed["members"]
        .as_array()
        .ok_or_else(|| format!("the `subscribed` frame of a presence channel has no members: {subscribed}"))?
        .iter()
        .filter_map(|member| member["client_id"].as_str())
        .collect();
    if !members.contains(&first.as_str()) {
        return Err(format!("the `subscribed` frame lists {members:?}, without {first} who was already there"));
    }
    Ok(())
}

async fn issue_member(ctx: &Ctx, channel: &str, client: &str) -> Result<Value, String> {
    issue(
        ctx,
        &json!({"client_id": client, "channels": [channel], "capabilities": ["subscribe", "presence"], "ttl_seconds": 600}),
    )
    .await
}

async fn member_count(ctx: &Ctx) -> Result<(), String> {
    let channel = ctx.name("members");
    ctx.create_channel(&channel, "presence").await?;
    let bound = ctx.config.live_bound;
    // Two members, one of them on two sockets.
    let twice = ctx.name("twice");
    let token = issue_member(ctx, &channel, &twice).await?;
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let (mut socket, _) = Socket::connect(&endpoint(&token)?, &field(&token, "/token")?, bound).await?;
        subscribe(&mut socket, &channel, bound).await?;
        sockets.push(socket);
    }
    sockets.push(subscriber(ctx, &channel, &ctx.name("once")).await?);
    let request = ctx.request("realtime.channel.get", &[&channel]);
    let body = ctx.expect("realtime.channel.get", &request, 200, None).await?.json();
    let request = ctx.request("realtime.presence.get", &[&channel]);
    let presence = ctx.expect("realtime.presence.get", &request, 200, None).await?.json();
    for socket in sockets {
        socket.close(bound).await;
    }
    ctx.delete_channel(&channel).await;
    let mut listed: BTreeMap<String, usize> = BTreeMap::new();
    for member in presence["members"].as_array().into_iter().flatten() {
        *listed.entry(member["client_id"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
    }
    if body["subscriber_count"] != json!(3) || body["member_count"] != json!(2) {
        return Err(format!(
            "with three sockets of two members, channel.get says subscriber_count {} and member_count {}",
            body["subscriber_count"], body["member_count"]
        ));
    }
    if listed.len() != 2 || listed.values().any(|count| *count != 1) {
        return Err(format!("presence.get lists {listed:?}: each of the two members once expected"));
    }
    Ok(())
}
