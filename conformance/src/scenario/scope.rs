//! What a token allows: its channel list and its capabilities, enforced at subscribe and
//! at publish, and its lifetime clamped to the documented maximum, visible in the
//! issue's `expires_at` and in `connected`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::context::Ctx;
use crate::report::Kind;
use crate::scenario::check;
use crate::scenario::live::{endpoint, field, issue, subscribe};
use crate::ws::Socket;

const KIND: Kind = Kind::Scope;

const SUBSCRIBE_OUTSIDE: &str = "scope/subscribing to a private channel outside the token's list is FORBIDDEN";
const PUBLISH_OUTSIDE: &str = "scope/publishing to a channel outside the token's list is FORBIDDEN";
const NO_SUBSCRIBE: &str = "scope/a token without `subscribe` cannot subscribe";
const NO_PUBLISH: &str = "scope/a token without `publish` cannot publish";
const NO_PRESENCE: &str = "scope/a token without `presence` subscribes without becoming a member";
const TTL_CLAMP: &str = "scope/a TTL over the maximum is clamped, in expires_at and in `connected`";
const ALL_CHANNELS: &str = "scope/a token without a channel list reaches every channel of the account";

/// The longest token lifetime the document allows (`MAX_TTL_SECONDS`).
const MAX_TTL_SECONDS: i64 = 86_400;

pub(crate) async fn run(ctx: &Ctx) {
    let (inside, outside, present) = (ctx.name("scope-in"), ctx.name("scope-out"), ctx.name("scope-presence"));
    for (name, kind) in [(&inside, "private"), (&outside, "private"), (&present, "presence")] {
        if let Err(err) = ctx.create_channel(name, kind).await {
            check(ctx, "scope/setup", KIND, async { Err(format!("creating channel {name}: {err}")) }).await;
            return;
        }
    }
    check(ctx, SUBSCRIBE_OUTSIDE, KIND, async {
        let mut socket = connect(ctx, &inside, &["subscribe", "publish"], None).await?;
        refused(&mut socket, json!({"type": "subscribe", "channel": outside}), &outside, ctx).await
    })
    .await;
    check(ctx, PUBLISH_OUTSIDE, KIND, async {
        let mut socket = connect(ctx, &inside, &["subscribe", "publish"], None).await?;
        let frame = json!({"type": "publish", "channel": outside, "event": "conformance.scope", "data": {}});
        refused(&mut socket, frame, &outside, ctx).await
    })
    .await;
    check(ctx, NO_SUBSCRIBE, KIND, async {
        let mut socket = connect(ctx, &inside, &["publish"], None).await?;
        refused(&mut socket, json!({"type": "subscribe", "channel": inside}), &inside, ctx).await
    })
    .await;
    check(ctx, NO_PUBLISH, KIND, async {
        let mut socket = connect(ctx, &inside, &["subscribe"], None).await?;
        let frame = json!({"type": "publish", "channel": inside, "event": "conformance.scope", "data": {}});
        refused(&mut socket, frame, &inside, ctx).await
    })
    .await;
    check(ctx, NO_PRESENCE, KIND, no_presence(ctx, &present)).await;
    check(ctx, TTL_CLAMP, KIND, ttl_clamp(ctx, &inside)).await;
    check(ctx, ALL_CHANNELS, KIND, async {
        let token = issue(ctx, &json!({"client_id": ctx.name("everywhere"), "capabilities": ["subscribe"]})).await?;
        let bound = ctx.config.live_bound;
        let (mut socket, _) = Socket::connect(&endpoint(&token)?, &field(&token, "/token")?, bound).await?;
        for channel in [&inside, &outside] {
            subscribe(&mut socket, channel, bound).await?;
        }
        socket.close(bound).await;
        Ok(())
    })
    .await;
    for channel in [inside, outside, present] {
        ctx.delete_channel(&channel).await;
    }
}

/// A socket of a token for `channel` with `capabilities`.
async fn connect(ctx: &Ctx, channel: &str, capabilities: &[&str], ttl: Option<u32>) -> Result<Socket, String> {
    let token = issue(
        ctx,
        &json!({
            "client_id": ctx.name("scoped"),
            "channels": [channel],
            "capabilities": capabilities,
            "ttl_seconds": ttl.unwrap_or(600),
        }),
    )
    .await?;
    Ok(Socket::connect(&endpoint(&token)?, &field(&token, "/token")?, ctx.config.live_bound).await?.0)
}

/// Sends `frame` about `channel` and expects an `error` FORBIDDEN for it; the socket
/// stays served.
async fn refused(socket: &mut Socket, frame: Value, channel: &str, ctx: &Ctx) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    socket.send(&frame).await?;
    let answer = socket
        .expect(&format!("an answer about {channel}"), bound, |answer| {
            answer["channel"] == json!(channel) && answer["type"] != "presence.join"
        })
        .await?;
    if answer["type"] != "error" || answer["code"] != "FORBIDDEN" {
        return Err(format!("{frame} was answered {answer}, expected an `error` FORBIDDEN"));
    }
    socket.ping(bound).await
}

async fn no_presence(ctx: &Ctx, channel: &str) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let mut socket = connect(ctx, channel, &["subscribe"], None).await?;
    subscribe(&mut socket, channel, bound).await?;
    let request = ctx.request("realtime.presence.get", &[channel]);
    let members = ctx.expect("realtime.presence.get", &request, 200, None).await?.json();
    socket.close(bound).await;
    match members["members"].as_array() {
        Some(members) if members.is_empty() => Ok(()),
        _ => Err(format!("presence.get lists {members} for a subscriber whose token lacks `presence`")),
    }
}

async fn ttl_clamp(ctx: &Ctx, channel: &str) -> Result<(), String> {
    let asked = 10 * MAX_TTL_SECONDS;
    let before = now_seconds();
    let token = issue(
        ctx,
        &json!({"client_id": ctx.name("forever"), "channels": [channel], "capabilities": ["subscribe"], "ttl_seconds": asked}),
    )
    .await?;
    let expires_at = token["expires_at"].as_str().ok_or_else(|| format!("the token has no expires_at: {token}"))?;
    let expires = parse_rfc3339(expires_at)?;
    let slack = 60;
    if expires > before + MAX_TTL_SECONDS + slack || expires < before + MAX_TTL_SECONDS - slack {
        return Err(format!(
            "asked for {asked} s, the token expires at {expires_at}: expected about {MAX_TTL_SECONDS} s from now"
        ));
    }
    let (socket, connected) =
        Socket::connect(&endpoint(&token)?, &field(&token, "/token")?, ctx.config.live_bound).await?;
    socket.close(Duration::from_secs(1)).await;
    let announced = connected["expires_at"].as_str().map(parse_rfc3339).transpose()?;
    if announced != Some(expires) {
        return Err(format!("`connected` says expires_at {}, the token {expires_at}", connected["expires_at"]));
    }
    Ok(())
}

fn now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Seconds since the epoch of an RFC 3339 date-time.
fn parse_rfc3339(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp())
        .map_err(|err| format!("{text:?} is not an RFC 3339 date-time: {err}"))
}
