//! Pusher's error and close codes that a client can provoke: a bad protocol version
//! (4006, 4007, 4008), client events over the rate limit (4301), and a socket that does
//! not answer the server's `pusher:ping` (4201). A code may come as a close frame or as
//! the `code` of a `pusher:error`, as the protocol allows both.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::protocol::{connect, subscribe};
use super::{Run, signing};
use crate::report::Kind;
use crate::ws::{Handshake, Socket, describe_close};

const KIND: Kind = Kind::PusherProtocol;

const INVALID_VERSION: &str = "pusher-protocol/a protocol version that is not a number is refused with 4006";
const UNSUPPORTED_VERSION: &str = "pusher-protocol/an unsupported protocol version is refused with 4007";
const NO_VERSION: &str = "pusher-protocol/a connection without a protocol version is refused with 4008";
const RATE_LIMIT: &str = "pusher-protocol/client events past the rate limit are refused with 4301";
const PONG_TIMEOUT: &str = "pusher-protocol/a socket that does not answer pusher:ping is closed with 4201";

/// Client events sent in one burst: twice Pusher's 10 per second.
const BURST: usize = 20;
/// Longest activity timeout the 4201 check waits for (it waits for two of them).
const MAX_ACTIVITY_TIMEOUT: u64 = 10;
/// What the 4201 check allows the server for its pong wait (Pusher's is 30 s).
const PONG_WAIT: Duration = Duration::from_secs(30);

pub(super) async fn run(run: &Run) {
    for (id, query, code) in [
        (INVALID_VERSION, "protocol=seven", 4006),
        (UNSUPPORTED_VERSION, "protocol=1", 4007),
        (NO_VERSION, "client=conformance", 4008),
    ] {
        let started = Instant::now();
        let result = refused_with(run, query, code).await;
        run.record(id, KIND, started, result);
    }
    let started = Instant::now();
    let result = rate_limit(run).await;
    run.record(RATE_LIMIT, KIND, started, result);
    let started = Instant::now();
    match pong_timeout(run).await {
        Ok(None) => run.record(PONG_TIMEOUT, KIND, started, Ok(())),
        Ok(Some(skipped)) => run.skip(PONG_TIMEOUT, KIND, &skipped),
        Err(err) => run.record(PONG_TIMEOUT, KIND, started, Err(err)),
    }
}

/// Whether `frame` is a `pusher:error` with `code`.
fn is_error(frame: &Value, code: u16) -> bool {
    if frame["event"] != "pusher:error" {
        return false;
    }
    let data = match &frame["data"] {
        Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        other => other.clone(),
    };
    data["code"] == json!(code)
}

/// Reads `socket` until `pusher:error` with `code` or a close with `code`; other frames
/// are allowed before it.
async fn until_code(socket: &mut Socket, code: u16, bound: Duration) -> Result<(), String> {
    let what = format!("pusher:error {code} (or close {code})");
    match socket.expect(&what, bound, |frame| is_error(frame, code)).await {
        Ok(_) => Ok(()),
        Err(err) if err.contains(&format!("(close code {code}")) => Ok(()),
        Err(err) => Err(err),
    }
}

/// Opens `/app/{key}?{query}`: refused with `code`, and never `connection_established`.
async fn refused_with(run: &Run, query: &str, code: u16) -> Result<(), String> {
    let url = run.socket_url(&run.config.app.key);
    let url = format!("{}?{query}", url.split_once('?').map_or(url.as_str(), |(path, _)| path));
    let mut socket = match Socket::open(&url, &url, run.config.live_bound).await? {
        Handshake::Open(socket) => socket,
        Handshake::Rejected(status) => {
            return Err(format!("the upgrade was refused with HTTP {status}, expected {code}"));
        }
    };
    let (closed, reason) = socket.expect_close(run.config.live_bound).await?;
    if socket.received.iter().any(|frame| frame["event"] == "pusher:connection_established") {
        return Err(format!("the connection was established, expected a refusal with {code}"));
    }
    let told = socket.received.iter().any(|frame| is_error(frame, code));
    match (closed == Some(code), told) {
        (true, _) => Ok(()),
        (false, true) => {
            Err(format!("pusher:error {code} came, then the socket ended with {}", describe_close(closed, &reason)))
        }
        (false, false) => Err(format!("the socket ended with {}, expected {code}", describe_close(closed, &reason))),
    }
}

/// Sends a burst of client events on a private channel: the ones past the limit are
/// refused with 4301.
async fn rate_limit(run: &Run) -> Result<(), String> {
    let bound = run.config.live_bound;
    let channel = format!("private-{}", run.name("chatty"));
    let (mut socket, data) = connect(run, &run.config.app.key).await?;
    let socket_id = data["socket_id"].as_str().unwrap_or_default().to_owned();
    let result = async {
        let auth = signing::channel_auth(&run.config.app, &socket_id, &channel, None);
        subscribe(&mut socket, &channel, Some(auth), None, bound).await.map_err(String::from)?;
        for n in 0..BURST {
            let frame = json!({"event": "client-conformance-burst", "channel": channel, "data": {"n": n}});
            socket.send(&frame).await?;
        }
        until_code(&mut socket, 4301, bound).await
    }
    .await;
    socket.close(bound).await;
    result
}

/// Stays silent: after its activity timeout the server pings, and closes with 4201 when
/// no pong comes. `Ok(Some(why))` when the target's activity timeout is too long to wait.
async fn pong_timeout(run: &Run) -> Result<Option<String>, String> {
    let (mut socket, data) = connect(run, &run.config.app.key).await?;
    let activity = data["activity_timeout"].as_u64().unwrap_or(0);
    if activity == 0 || activity > MAX_ACTIVITY_TIMEOUT {
        socket.close(run.config.live_bound).await;
        return Ok(Some(format!(
            "activity_timeout is {activity} s: this check waits only when it is at most {MAX_ACTIVITY_TIMEOUT} s \
             (on the reference server: pusher.activity_timeout_seconds)"
        )));
    }
    let bound = Duration::from_secs(activity) + PONG_WAIT + run.config.live_bound;
    let (code, reason) = socket.expect_close(bound).await.map_err(|err| format!("the silent socket: {err}"))?;
    let pinged = socket.received.iter().any(|frame| frame["event"] == "pusher:ping");
    match (pinged, code) {
        (true, Some(4201)) => Ok(None),
        (true, _) => {
            Err(format!("after pusher:ping the socket ended with {}, expected 4201", describe_close(code, &reason)))
        }
        (false, _) => Err(format!("the socket ended with {} before any pusher:ping", describe_close(code, &reason))),
    }
}
