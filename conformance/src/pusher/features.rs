//! Pusher's later features, which not every Pusher-compatible server has: events sent to
//! a signed-in user (`#server-to-user-{id}`), cache channels (`cache-…`) and subscription
//! counting. A check whose feature the target shows no sign of (no
//! `pusher:signin_success`, no `pusher:cache_miss`, no `pusher_internal:subscription_count`)
//! skips and says so; a feature that answers must behave as Pusher documents it.

use std::time::Instant;

use serde_json::{Value, json};

use super::protocol::{Refused, connect, subscribe};
use super::{App, Forgery, Run, expect_status, signing, webhooks};
use crate::report::Kind;
use crate::ws::Socket;

const SEND_TO_USER: &str =
    "pusher-protocol/an event triggered to #server-to-user-{id} reaches the socket signed in as that user";
const OTHER_USER: &str = "pusher-protocol/subscribing to another user's #server-to-user- channel is refused";
const CACHE: &str = "pusher-protocol/a cache channel gives a new subscriber pusher:cache_miss, then its last event";
const COUNT: &str = "pusher-protocol/pusher_internal:subscription_count tells subscribers how many there are";
const CACHE_MISS_HOOK: &str = "pusher-webhook/cache_miss arrives signed when a subscriber finds a cache channel empty";
const COUNT_HOOK: &str = "pusher-webhook/subscription_count arrives signed when the count changes";

const NO_SIGNIN: &str = "the server did not answer pusher:signin with pusher:signin_success (no user authentication)";
const NO_CACHE: &str = "no pusher:cache_miss on an empty cache- channel: the server has no cache channels";
const NO_COUNT: &str = "no pusher_internal:subscription_count: subscription counting is off for this app \
                        (an app setting on Pusher; pusher.subscription_count on the reference server)";
const NO_RECEIVER: &str = "no webhook receiver (give --webhook-listen, see the README)";

pub(super) async fn run(run: &Run) {
    send_to_user(run).await;
    let started = Instant::now();
    match cache(run, &run.config.app).await {
        Ok(true) => run.record(CACHE, Kind::PusherProtocol, started, Ok(())),
        Ok(false) => run.skip(CACHE, Kind::PusherProtocol, NO_CACHE),
        Err(err) => run.record(CACHE, Kind::PusherProtocol, started, Err(err)),
    }
    let started = Instant::now();
    match count(run, &run.config.app).await {
        Ok(true) => run.record(COUNT, Kind::PusherProtocol, started, Ok(())),
        Ok(false) => run.skip(COUNT, Kind::PusherProtocol, NO_COUNT),
        Err(err) => run.record(COUNT, Kind::PusherProtocol, started, Err(err)),
    }

    let Some(hooks) = &run.config.webhooks else {
        for id in [CACHE_MISS_HOOK, COUNT_HOOK] {
            run.skip(id, Kind::PusherWebhook, NO_RECEIVER);
        }
        return;
    };
    let started = Instant::now();
    let channel = format!("cache-{}", run.name("hook-cache"));
    match miss(run, &hooks.app, &channel).await {
        Ok(true) => {
            let result = webhooks::expect(run, hooks, "cache_miss", |event| {
                event["name"] == "cache_miss" && event["channel"] == json!(channel)
            })
            .await;
            run.record(CACHE_MISS_HOOK, Kind::PusherWebhook, started, result);
        }
        Ok(false) => run.skip(CACHE_MISS_HOOK, Kind::PusherWebhook, NO_CACHE),
        Err(err) => run.record(CACHE_MISS_HOOK, Kind::PusherWebhook, started, Err(err)),
    }

    let started = Instant::now();
    let channel = run.name("hook-count");
    match counted(run, &hooks.app, &channel).await {
        Ok(Some(sockets)) => {
            let result = webhooks::expect(run, hooks, "subscription_count", |event| {
                event["name"] == "subscription_count"
                    && event["channel"] == json!(channel)
                    && event["subscription_count"] == json!(2)
            })
            .await;
            run.record(COUNT_HOOK, Kind::PusherWebhook, started, result);
            for socket in sockets {
                socket.close(run.config.live_bound).await;
            }
        }
        Ok(None) => run.skip(COUNT_HOOK, Kind::PusherWebhook, NO_COUNT),
        Err(err) => run.record(COUNT_HOOK, Kind::PusherWebhook, started, Err(err)),
    }
}

/// A socket of `app`, and its socket id.
async fn open(run: &Run, app: &App) -> Result<(Socket, String), String> {
    let (socket, data) = connect(run, &app.key).await?;
    let socket_id = data["socket_id"].as_str().unwrap_or_default().to_owned();
    Ok((socket, socket_id))
}

/// Triggers `name` to `channel` as `app`.
async fn trigger(run: &Run, app: &App, channel: &str, name: &str, data: &str) -> Result<(), String> {
    let body = json!({"name": name, "channels": [channel], "data": data});
    let request = run.signed(app, "POST", "/events", &[], Some(&body), Forgery::None);
    let response = run.target.send(&request).await?;
    expect_status(&format!("POST /events to {channel}"), &response, 200).map(drop)
}

/// The first frame for `channel` that is not `subscription_count`, within the live bound.
async fn next_on(socket: &mut Socket, run: &Run, channel: &str) -> Result<Value, String> {
    socket
        .expect(&format!("a frame on {channel}"), run.config.live_bound, |frame| {
            frame["channel"] == json!(channel) && frame["event"] != "pusher_internal:subscription_count"
        })
        .await
}

/// Signs in as `user_id`: `Ok(false)` when the server does not answer with
/// `pusher:signin_success`.
async fn sign_in(run: &Run, socket: &mut Socket, socket_id: &str, user_id: &str) -> Result<bool, String> {
    let app = &run.config.app;
    let user_data = json!({"id": user_id}).to_string();
    let auth = signing::user_auth(app, socket_id, &user_data);
    socket.send(&json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}})).await?;
    let answer = socket
        .expect("an answer to pusher:signin", run.config.live_bound, |frame| {
            frame["event"] == "pusher:signin_success" || frame["event"] == "pusher:error"
        })
        .await;
    Ok(answer.is_ok_and(|frame| frame["event"] == "pusher:signin_success"))
}

async fn send_to_user(run: &Run) {
    let kind = Kind::PusherProtocol;
    let bound = run.config.live_bound;
    let user_id = run.name("user");
    let own = format!("#server-to-user-{user_id}");
    let started = Instant::now();
    let (mut socket, socket_id) = match open(run, &run.config.app).await {
        Ok(opened) => opened,
        Err(err) => {
            run.record(SEND_TO_USER, kind, started, Err(err));
            run.skip(OTHER_USER, kind, "no socket could connect (see the send-to-user check)");
            return;
        }
    };
    match sign_in(run, &mut socket, &socket_id, &user_id).await {
        Ok(true) => {}
        Ok(false) => {
            run.skip(SEND_TO_USER, kind, NO_SIGNIN);
            run.skip(OTHER_USER, kind, NO_SIGNIN);
            socket.close(bound).await;
            return;
        }
        Err(err) => {
            run.record(SEND_TO_USER, kind, started, Err(err));
            run.skip(OTHER_USER, kind, "the sign-in failed (see the send-to-user check)");
            return;
        }
    }
    let result = async {
        subscribe(&mut socket, &own, None, None, bound)
            .await
            .map_err(|refused| format!("subscribing to its own {own}: {}", String::from(refused)))?;
        let data = "{\"to\":\"the user\"}";
        trigger(run, &run.config.app, &own, "conformance-to-user", data).await?;
        let frame = next_on(&mut socket, run, &own).await?;
        if frame["event"] != "conformance-to-user" || frame["data"] != json!(data) {
            return Err(format!("received {frame}, expected conformance-to-user with data {data:?}"));
        }
        Ok(())
    }
    .await;
    run.record(SEND_TO_USER, kind, started, result);

    let started = Instant::now();
    let other = format!("#server-to-user-{}", run.name("someone-else"));
    let result = match subscribe(&mut socket, &other, None, None, bound).await {
        Ok(_) => Err(format!("a socket signed in as {user_id} was subscribed to {other}")),
        Err(Refused::Refused(_)) => Ok(()),
        Err(Refused::Other(err)) => Err(format!("subscribing to {other}: {err}, expected a refusal")),
    };
    run.record(OTHER_USER, kind, started, result);
    socket.close(bound).await;
}

/// Subscribes a socket of `app` to the empty cache channel `channel`: whether it got
/// `pusher:cache_miss`.
async fn miss(run: &Run, app: &App, channel: &str) -> Result<bool, String> {
    let (mut socket, _) = open(run, app).await?;
    subscribe(&mut socket, channel, None, None, run.config.live_bound).await.map_err(String::from)?;
    let missed = next_on(&mut socket, run, channel).await.is_ok_and(|frame| frame["event"] == "pusher:cache_miss");
    socket.close(run.config.live_bound).await;
    Ok(missed)
}

/// The cache channel check: false when the target shows no cache channels.
async fn cache(run: &Run, app: &App) -> Result<bool, String> {
    let channel = format!("cache-{}", run.name("cache"));
    if !miss(run, app, &channel).await? {
        return Ok(false);
    }
    {
        let data = "{\"score\":\"1-0\"}";
        trigger(run, app, &channel, "conformance-cached", data).await?;
        let (mut late, _) = open(run, app).await?;
        subscribe(&mut late, &channel, None, None, run.config.live_bound).await.map_err(String::from)?;
        let frame = next_on(&mut late, run, &channel).await?;
        late.close(run.config.live_bound).await;
        if frame["event"] != "conformance-cached" || frame["data"] != json!(data) {
            return Err(format!("a new subscriber first received {frame}, expected the last event conformance-cached"));
        }
        Ok(true)
    }
}

/// Two sockets of `app` on `channel`: they, once a `subscription_count` of 2 reached the
/// first; `None` when no count came at all.
async fn counted(run: &Run, app: &App, channel: &str) -> Result<Option<Vec<Socket>>, String> {
    let bound = run.config.live_bound;
    let (mut first, _) = open(run, app).await?;
    subscribe(&mut first, channel, None, None, bound).await.map_err(String::from)?;
    let (mut second, _) = open(run, app).await?;
    subscribe(&mut second, channel, None, None, bound).await.map_err(String::from)?;
    let is_count =
        |frame: &Value| frame["event"] == "pusher_internal:subscription_count" && frame["channel"] == json!(channel);
    let mut last = None;
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let Ok(frame) = first.expect("pusher_internal:subscription_count", remaining, is_count).await else { break };
        let count = count_of(&frame);
        last = Some(count);
        if count == Some(2) {
            return Ok(Some(vec![first, second]));
        }
    }
    match last {
        None => Ok(None),
        Some(count) => Err(format!("the first subscriber's last subscription_count was {count:?}, expected 2")),
    }
}

/// The `subscription_count` of a `pusher_internal:subscription_count` frame.
fn count_of(frame: &Value) -> Option<u64> {
    let data = match &frame["data"] {
        Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        other => other.clone(),
    };
    data["subscription_count"].as_u64()
}

/// The subscription count check: false when the target sends no counts.
async fn count(run: &Run, app: &App) -> Result<bool, String> {
    let Some(sockets) = counted(run, app, &run.name("counted")).await? else { return Ok(false) };
    for socket in sockets {
        socket.close(run.config.live_bound).await;
    }
    Ok(true)
}
