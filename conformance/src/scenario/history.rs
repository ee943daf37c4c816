//! Stream positions, history and recovery: publish answers carry increasing positions,
//! history lists what was published in that order and pages, message frames carry the
//! same positions, a subscriber that comes back with its position receives exactly what
//! it missed, and one that cannot recover is told so.

use std::time::Instant;

use serde_json::{Value, json};

use crate::context::Ctx;
use crate::report::Kind;
use crate::scenario::live::{endpoint, field, issue_token};
use crate::ws::Socket;

const KIND: Kind = Kind::History;

const POSITIONS: &str = "history/publish answers carry consecutive offsets in one epoch";
const LISTED: &str = "history/channel.history lists what was published, in offset order";
const PAGED: &str = "history/channel.history pages with next_since, both directions";
const FRAMES: &str = "history/message frames carry the publish's position";
const RECOVERED: &str = "history/a subscriber back with its position receives exactly what it missed";
const REFUSED: &str = "history/a subscribe from another epoch says recovered: false with a reason";

const ALL: [&str; 6] = [POSITIONS, LISTED, PAGED, FRAMES, RECOVERED, REFUSED];

pub(crate) async fn run(ctx: &Ctx) {
    let started = Instant::now();
    let channel = ctx.name("history");
    if let Err(err) = ctx.create_channel(&channel, "public").await {
        ctx.record("history/setup", KIND, started, Err(format!("creating channel {channel}: {err}")));
        for id in ALL {
            ctx.skip(id, KIND, "the setup failed");
        }
        return;
    }

    let started = Instant::now();
    let published = async {
        let mut published = Vec::new();
        for n in 0..3 {
            published.push(publish(ctx, &channel, n).await?);
        }
        consecutive(&published)?;
        Ok(published)
    }
    .await;
    let published = match published {
        Ok(published) => {
            ctx.record(POSITIONS, KIND, started, Ok(()));
            published
        }
        Err(err) => {
            ctx.record(POSITIONS, KIND, started, Err(err));
            for id in [LISTED, PAGED, FRAMES, RECOVERED, REFUSED] {
                ctx.skip(id, KIND, "publishing did not give positions (see the positions check)");
            }
            ctx.delete_channel(&channel).await;
            return;
        }
    };
    let first = offset(&published[0]);

    let started = Instant::now();
    let result = async {
        let page = history(ctx, &channel, &format!("since={}", first - 1)).await?;
        let ids: Vec<&Value> =
            page["messages"].as_array().map(|m| m.iter().map(|m| &m["message_id"]).collect()).unwrap_or_default();
        let expected: Vec<&Value> = published.iter().map(|p| &p["message_id"]).collect();
        if ids != expected {
            return Err(format!("history since {} has message ids {ids:?}, published {expected:?}", first - 1));
        }
        if page["epoch"] != published[0]["epoch"] {
            return Err(format!("history's epoch is {}, the publishes' {}", page["epoch"], published[0]["epoch"]));
        }
        Ok(())
    }
    .await;
    ctx.record(LISTED, KIND, started, result);

    let started = Instant::now();
    let result = async {
        let one = history(ctx, &channel, &format!("since={}&limit=1", first - 1)).await?;
        let next = one["next_since"].as_u64().ok_or_else(|| format!("a one-message page has no next_since: {one}"))?;
        if one["messages"][0]["offset"] != json!(first) || next != first {
            return Err(format!("the first page of one is {one}, expected offset {first} and next_since {first}"));
        }
        let two = history(ctx, &channel, &format!("since={next}&limit=1")).await?;
        if two["messages"][0]["offset"] != json!(first + 1) {
            return Err(format!("the page after next_since {next} is {two}, expected offset {}", first + 1));
        }
        let newest = history(ctx, &channel, "direction=backward&limit=1").await?;
        if newest["messages"][0]["offset"] != json!(first + 2) {
            return Err(format!("backward from the newest gives {newest}, expected offset {}", first + 2));
        }
        Ok(())
    }
    .await;
    ctx.record(PAGED, KIND, started, result);

    let started = Instant::now();
    let socket = async {
        let mut socket = subscriber(ctx, &channel, None).await?.0;
        let answer = publish(ctx, &channel, 3).await?;
        let frame =
            socket.expect("the message frame", ctx.config.live_bound, |frame| frame["type"] == "message").await?;
        if frame["offset"] != answer["offset"] || frame["epoch"] != answer["epoch"] {
            return Err(format!(
                "the frame has position {}/{}, the publish answered {}/{}",
                frame["epoch"], frame["offset"], answer["epoch"], answer["offset"]
            ));
        }
        Ok((socket, frame))
    }
    .await;
    let seen = match socket {
        Ok((socket, frame)) => {
            ctx.record(FRAMES, KIND, started, Ok(()));
            socket.close(ctx.config.live_bound).await;
            Some(frame)
        }
        Err(err) => {
            ctx.record(FRAMES, KIND, started, Err(err));
            None
        }
    };

    let started = Instant::now();
    match seen {
        None => ctx.skip(RECOVERED, KIND, "no message frame was received (see the frames check)"),
        Some(seen) => {
            let result = async {
                let mut missed = Vec::new();
                for n in 4..6 {
                    missed.push(offset(&publish(ctx, &channel, n).await?));
                }
                let since = json!({"epoch": seen["epoch"], "offset": seen["offset"]});
                let (mut socket, subscribed) = subscriber(ctx, &channel, Some(since)).await?;
                if subscribed["recovered"] != json!(true) {
                    return Err(format!("`subscribed` is {subscribed}, expected recovered: true"));
                }
                let mut received = Vec::new();
                for _ in 0..missed.len() {
                    let frame = socket
                        .expect("a missed message", ctx.config.live_bound, |frame| frame["type"] == "message")
                        .await?;
                    received.push(offset(&frame));
                }
                if received != missed {
                    return Err(format!("received offsets {received:?}, missed {missed:?}"));
                }
                let live = offset(&publish(ctx, &channel, 6).await?);
                let next = socket
                    .expect("the next live message", ctx.config.live_bound, |frame| frame["type"] == "message")
                    .await?;
                socket.close(ctx.config.live_bound).await;
                if offset(&next) != live {
                    return Err(format!(
                        "after the missed messages came offset {}, expected the live {live}",
                        offset(&next)
                    ));
                }
                Ok(())
            }
            .await;
            ctx.record(RECOVERED, KIND, started, result);
        }
    }

    let started = Instant::now();
    let result = async {
        let since = json!({"epoch": "an-epoch-this-channel-never-had", "offset": 1});
        let (socket, subscribed) = subscriber(ctx, &channel, Some(since)).await?;
        socket.close(ctx.config.live_bound).await;
        if subscribed["recovered"] != json!(false) || !subscribed["recovery_failure"].is_string() {
            return Err(format!("`subscribed` is {subscribed}, expected recovered: false and a recovery_failure"));
        }
        Ok(())
    }
    .await;
    ctx.record(REFUSED, KIND, started, result);
    ctx.delete_channel(&channel).await;
}

async fn publish(ctx: &Ctx, channel: &str, n: u64) -> Result<Value, String> {
    let request =
        ctx.request("realtime.publish", &[]).json(&json!({"channel": channel, "event": "e", "data": {"n": n}}));
    Ok(ctx.expect("realtime.publish", &request, 200, None).await?.json())
}

async fn history(ctx: &Ctx, channel: &str, query: &str) -> Result<Value, String> {
    let mut request = ctx.request("realtime.channel.history", &[channel]);
    request.path = format!("{}?{query}", request.path);
    Ok(ctx.expect("realtime.channel.history", &request, 200, None).await?.json())
}

fn offset(value: &Value) -> u64 {
    value["offset"].as_u64().unwrap_or(0)
}

fn consecutive(published: &[Value]) -> Result<(), String> {
    for pair in published.windows(2) {
        if pair[1]["epoch"] != pair[0]["epoch"] || offset(&pair[1]) != offset(&pair[0]) + 1 {
            return Err(format!(
                "consecutive publishes answered {}/{} then {}/{}",
                pair[0]["epoch"], pair[0]["offset"], pair[1]["epoch"], pair[1]["offset"]
            ));
        }
    }
    if published.first().is_some_and(|first| offset(first) == 0) {
        return Err("offsets count from 1".to_owned());
    }
    Ok(())
}

/// A socket subscribed to `channel`, from `since` when given, with its `subscribed` frame.
async fn subscriber(ctx: &Ctx, channel: &str, since: Option<Value>) -> Result<(Socket, Value), String> {
    let bound = ctx.config.live_bound;
    let token = issue_token(ctx, &ctx.name("reader"), channel).await?;
    let (mut socket, _) = Socket::connect(&endpoint(&token)?, &field(&token, "/token")?, bound).await?;
    let mut frame = json!({"type": "subscribe", "channel": channel});
    if let Some(since) = since {
        frame["since"] = since;
    }
    socket.send(&frame).await?;
    let subscribed = socket
        .expect(&format!("`subscribed` to {channel}"), bound, |frame| {
            frame["type"] == "subscribed" && frame["channel"] == json!(channel)
        })
        .await?;
    Ok((socket, subscribed))
}
