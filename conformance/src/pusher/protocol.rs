//! Protocol 7 over WebSocket (`/app/{key}?protocol=7`), with the HTTP API reads that need
//! live sockets: the channel list, channel info and presence users.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{App, Run, expect_status, signing};
use crate::report::Kind;
use crate::ws::{Handshake, Socket, describe_close};

const KIND: Kind = Kind::PusherProtocol;

const ESTABLISHED: &str = "pusher-protocol/connection_established has an N.N socket_id and activity_timeout";
const PING: &str = "pusher-protocol/pusher:ping is answered with pusher:pong";
const PUBLIC: &str = "pusher-protocol/a public subscriber receives a triggered event";
const EXCLUDED: &str = "pusher-protocol/a trigger with socket_id skips that socket only";
const PRIVATE: &str = "pusher-protocol/a private subscription with a valid signature succeeds";
const PRIVATE_REFUSED: &str = "pusher-protocol/a private subscription with a wrong signature is refused";
const CLIENT_EVENT: &str = "pusher-protocol/a client event on a private channel reaches the other subscriber";
const NOT_ECHOED: &str = "pusher-protocol/a client event is not echoed to its sender";
const PRESENCE: &str = "pusher-protocol/a presence subscription lists its member";
const MEMBER_ADDED: &str = "pusher-protocol/member_added reaches the other member";
const MEMBER_REMOVED: &str = "pusher-protocol/member_removed reaches the other member";
const UNKNOWN_KEY: &str = "pusher-protocol/an unknown app key is closed with 4001";

const CHANNEL_INFO: &str = "pusher-http/channel info reports occupied and subscription_count";
const CHANNEL_LIST: &str = "pusher-http/the channel list with filter_by_prefix lists the occupied channels";
const USERS: &str = "pusher-http/presence users lists the members";

/// Pusher's close code for an unknown app key.
const CLOSE_APP_DOES_NOT_EXIST: u16 = 4001;

const SUCCEEDED: &str = "pusher_internal:subscription_succeeded";

/// A connected socket, its id and the activity timeout it was given.
struct Client {
    socket: Socket,
    socket_id: String,
    activity_timeout: u64,
}

/// Connects with the run's app key.
async fn connect_client(run: &Run) -> Result<Client, String> {
    let (socket, data) = connect(run, &run.config.app.key).await?;
    let socket_id = data["socket_id"].as_str().unwrap_or_default().to_owned();
    let activity_timeout = data["activity_timeout"].as_u64().unwrap_or(0);
    Ok(Client { socket, socket_id, activity_timeout })
}

pub(super) async fn run(run: &Run) {
    let app = &run.config.app;
    let bound = run.config.live_bound;
    let public = run.name("public");
    let private = format!("private-{}", run.name("private"));
    let presence = format!("presence-{}", run.name("presence"));

    let started = Instant::now();
    let result = async {
        let client = connect_client(run).await?;
        if !is_socket_id(&client.socket_id) {
            return Err(format!("socket_id is {:?}, expected digits.digits", client.socket_id));
        }
        if client.activity_timeout == 0 {
            return Err("activity_timeout is missing or 0, expected a positive number of seconds".to_owned());
        }
        Ok(client)
    }
    .await;
    // The second socket is a setup step: the first one shows whether connecting works.
    let second = match &result {
        Ok(_) => connect_client(run).await.map_err(|err| format!("a second socket could not connect: {err}")),
        Err(_) => Err("no socket could connect (see the connection_established check)".to_owned()),
    };
    let Some(mut a) = keep(run, ESTABLISHED, started, result) else {
        for id in [
            PING,
            PUBLIC,
            EXCLUDED,
            PRIVATE,
            PRIVATE_REFUSED,
            CLIENT_EVENT,
            NOT_ECHOED,
            PRESENCE,
            MEMBER_ADDED,
            MEMBER_REMOVED,
        ] {
            run.skip(id, KIND, "no socket could connect (see the connection_established check)");
        }
        for id in [CHANNEL_INFO, CHANNEL_LIST, USERS] {
            run.skip(id, Kind::PusherHttp, "no socket could connect (see the connection_established check)");
        }
        unknown_key(run).await;
        return;
    };
    let (mut b, no_second) = match second {
        Ok(client) => (Some(client), String::new()),
        Err(why) => (None, why),
    };

    let started = Instant::now();
    let result = async {
        a.socket.send(&json!({"event": "pusher:ping", "data": {}})).await?;
        a.socket.expect("pusher:pong", bound, |frame| frame["event"] == "pusher:pong").await.map(drop)
    }
    .await;
    run.record(PING, KIND, started, result);

    let started = Instant::now();
    let result = async {
        subscribe(&mut a.socket, &public, None, None, bound).await?;
        let data = "{\"n\":1}";
        trigger(run, &public, "conformance-public", data, None).await?;
        let frame = next_event(&mut a.socket, &public, bound).await?;
        if frame["event"] != "conformance-public" || frame["data"] != json!(data) {
            return Err(format!("received {frame}, expected conformance-public with data {data:?}"));
        }
        Ok(())
    }
    .await;
    let public_ok = result.is_ok();
    run.record(PUBLIC, KIND, started, result);

    let started = Instant::now();
    let mut excluded_ok = false;
    match (public_ok, b.as_mut()) {
        (false, _) => run.skip(EXCLUDED, KIND, "the public subscription failed (see its check)"),
        (true, None) => run.skip(EXCLUDED, KIND, &no_second),
        (true, Some(other)) => {
            let result = async {
                subscribe(&mut other.socket, &public, None, None, bound).await?;
                trigger(run, &public, "conformance-excluded", "{}", Some(&a.socket_id)).await?;
                let frame = next_event(&mut other.socket, &public, bound)
                    .await
                    .map_err(|err| format!("the other subscriber: {err}"))?;
                if frame["event"] != "conformance-excluded" {
                    return Err(format!("the other subscriber received {frame}, expected conformance-excluded"));
                }
                // The excluded socket's next event must be the one that follows, not the excluded one.
                trigger(run, &public, "conformance-marker", "{}", None).await?;
                let frame = next_event(&mut a.socket, &public, bound).await?;
                if frame["event"] != "conformance-marker" {
                    return Err(format!(
                        "the excluded socket received {}, expected only the next event",
                        frame["event"]
                    ));
                }
                Ok(())
            }
            .await;
            excluded_ok = result.is_ok();
            run.record(EXCLUDED, KIND, started, result);
        }
    }

    let started = Instant::now();
    if excluded_ok {
        let result = async {
            let path = format!("/channels/{public}");
            let response = run.api("GET", &path, &[("info", "subscription_count")], None).await?;
            let body = expect_status(&format!("GET {path}?info=subscription_count"), &response, 200)?;
            if body["occupied"] != json!(true) || body["subscription_count"] != json!(2) {
                return Err(format!("GET {path}: {body}, expected occupied true and subscription_count 2"));
            }
            let nobody = run.name("nobody");
            let path = format!("/channels/{nobody}");
            let response = run.api("GET", &path, &[], None).await?;
            let body = expect_status(&format!("GET {path}"), &response, 200)?;
            if body["occupied"] != json!(false) {
                return Err(format!("GET {path} (a channel nobody is subscribed to): {body}, expected occupied false"));
            }
            Ok(())
        }
        .await;
        run.record(CHANNEL_INFO, Kind::PusherHttp, started, result);
    } else {
        run.skip(CHANNEL_INFO, Kind::PusherHttp, "two sockets did not subscribe (see the socket_id exclusion check)");
    }

    let started = Instant::now();
    let result = async {
        let auth = signing::channel_auth(app, &a.socket_id, &private, None);
        subscribe(&mut a.socket, &private, Some(auth), None, bound).await.map(drop).map_err(String::from)
    }
    .await;
    let private_ok = result.is_ok();
    run.record(PRIVATE, KIND, started, result);

    let started = Instant::now();
    match b.as_mut() {
        None => run.skip(PRIVATE_REFUSED, KIND, &no_second),
        Some(other) => {
            let result = async {
                let wrong = App { secret: "not-the-secret-of-this-app".to_owned(), ..app.clone() };
                let auth = signing::channel_auth(&wrong, &other.socket_id, &private, None);
                match subscribe(&mut other.socket, &private, Some(auth), None, bound).await {
                    Ok(_) => Err(format!("{SUCCEEDED} for a signature made with another secret")),
                    Err(Refused::Refused(_)) => Ok(()),
                    Err(Refused::Other(err)) => Err(err),
                }
            }
            .await;
            run.record(PRIVATE_REFUSED, KIND, started, result);
        }
    }

    let started = Instant::now();
    let mut client_event_ok = false;
    match (private_ok, b.as_mut()) {
        (false, _) => run.skip(CLIENT_EVENT, KIND, "the private subscription failed (see its check)"),
        (true, None) => run.skip(CLIENT_EVENT, KIND, &no_second),
        (true, Some(other)) => {
            let result = async {
                let auth = signing::channel_auth(app, &other.socket_id, &private, None);
                subscribe(&mut other.socket, &private, Some(auth), None, bound).await?;
                let data = json!({"text": "hello"});
                a.socket.send(&json!({"event": "client-conformance", "channel": private, "data": data})).await?;
                let frame = next_event(&mut other.socket, &private, bound).await?;
                if frame["event"] != "client-conformance" || data_of(&frame) != data {
                    return Err(format!("received {frame}, expected client-conformance with data {data}"));
                }
                Ok(())
            }
            .await;
            client_event_ok = result.is_ok();
            run.record(CLIENT_EVENT, KIND, started, result);
        }
    }

    let started = Instant::now();
    if client_event_ok {
        let result = async {
            trigger(run, &private, "conformance-marker", "{}", None).await?;
            let frame = next_event(&mut a.socket, &private, bound).await?;
            if frame["event"] != "conformance-marker" {
                return Err(format!("the sender received {}, expected only the next event", frame["event"]));
            }
            Ok(())
        }
        .await;
        run.record(NOT_ECHOED, KIND, started, result);
    } else {
        run.skip(NOT_ECHOED, KIND, "no client event was delivered (see its check)");
    }

    let user_a = run.name("user-a");
    let user_b = run.name("user-b");
    let started = Instant::now();
    let result = async {
        let joined = join(&mut a, app, &presence, &user_a, bound).await?;
        let ids = joined["presence"]["ids"].as_array().cloned().unwrap_or_default();
        if !ids.contains(&json!(user_a)) || joined["presence"]["count"] != json!(1) {
            return Err(format!("{SUCCEEDED} has {joined}, expected presence with ids [{user_a}] and count 1"));
        }
        Ok(())
    }
    .await;
    let presence_ok = result.is_ok();
    run.record(PRESENCE, KIND, started, result);

    let started = Instant::now();
    let mut added_ok = false;
    match (presence_ok, b.as_mut()) {
        (false, _) => run.skip(MEMBER_ADDED, KIND, "the presence subscription failed (see its check)"),
        (true, None) => run.skip(MEMBER_ADDED, KIND, &no_second),
        (true, Some(other)) => {
            let result = async {
                join(other, app, &presence, &user_b, bound).await?;
                let frame = a
                    .socket
                    .expect("pusher_internal:member_added", bound, |frame| {
                        frame["event"] == "pusher_internal:member_added" && frame["channel"] == json!(presence)
                    })
                    .await?;
                let data = data_of(&frame);
                if data["user_id"] != json!(user_b) || data["user_info"] != json!({"name": user_b}) {
                    return Err(format!("member_added has {data}, expected user_id {user_b} and its user_info"));
                }
                Ok(())
            }
            .await;
            added_ok = result.is_ok();
            run.record(MEMBER_ADDED, KIND, started, result);
        }
    }

    let started = Instant::now();
    if presence_ok {
        let result = async {
            let prefix = format!("presence-conf-{}", run.run_id);
            let response = run.api("GET", "/channels", &[("filter_by_prefix", &prefix)], None).await?;
            let body = expect_status(&format!("GET /channels?filter_by_prefix={prefix}"), &response, 200)?;
            let Some(channels) = body["channels"].as_object() else {
                return Err(format!("GET /channels: {body}, expected an object `channels`"));
            };
            if !channels.contains_key(&presence) {
                return Err(format!("GET /channels: {body} does not list the occupied {presence}"));
            }
            if let Some(other) = channels.keys().find(|name| !name.starts_with(&prefix)) {
                return Err(format!("GET /channels?filter_by_prefix={prefix} lists {other}"));
            }
            Ok(())
        }
        .await;
        run.record(CHANNEL_LIST, Kind::PusherHttp, started, result);
    } else {
        run.skip(CHANNEL_LIST, Kind::PusherHttp, "the presence subscription failed (see its check)");
    }

    let started = Instant::now();
    if added_ok {
        let result = async {
            let path = format!("/channels/{presence}/users");
            let response = run.api("GET", &path, &[], None).await?;
            let body = expect_status(&format!("GET {path}"), &response, 200)?;
            let ids: BTreeSet<&str> = body["users"]
                .as_array()
                .map(|users| users.iter().filter_map(|user| user["id"].as_str()).collect())
                .unwrap_or_default();
            let expected = BTreeSet::from([user_a.as_str(), user_b.as_str()]);
            if ids != expected {
                return Err(format!("GET {path}: {body}, expected the users {expected:?}"));
            }
            Ok(())
        }
        .await;
        run.record(USERS, Kind::PusherHttp, started, result);
    } else {
        run.skip(USERS, Kind::PusherHttp, "the second member did not join (see the member_added check)");
    }

    let started = Instant::now();
    match b.take().filter(|_| added_ok) {
        None => run.skip(MEMBER_REMOVED, KIND, "the second member did not join (see the member_added check)"),
        Some(other) => {
            let result = async {
                other.socket.close(bound).await;
                // Pusher may wait a few seconds before it decides a member is gone.
                let wait = bound.max(Duration::from_secs(10));
                let frame = a
                    .socket
                    .expect("pusher_internal:member_removed", wait, |frame| {
                        frame["event"] == "pusher_internal:member_removed" && frame["channel"] == json!(presence)
                    })
                    .await?;
                if data_of(&frame)["user_id"] != json!(user_b) {
                    return Err(format!("member_removed has {}, expected user_id {user_b}", data_of(&frame)));
                }
                Ok(())
            }
            .await;
            run.record(MEMBER_REMOVED, KIND, started, result);
        }
    }
    if let Some(other) = b {
        other.socket.close(bound).await;
    }
    a.socket.close(bound).await;

    unknown_key(run).await;
}

async fn unknown_key(run: &Run) {
    let started = Instant::now();
    let result = async {
        let key = run.name("no-such-key");
        let url = run.socket_url(&key);
        match Socket::open(&url, &url, run.config.live_bound).await? {
            Handshake::Rejected(status) => {
                Err(format!("the upgrade was refused with HTTP {status}; expected a socket closed with 4001"))
            }
            Handshake::Open(mut socket) => match socket.expect_close(run.config.live_bound).await? {
                (Some(CLOSE_APP_DOES_NOT_EXIST), _) => Ok(()),
                (code, reason) => {
                    Err(format!("the socket closed with {}, expected 4001", describe_close(code, &reason)))
                }
            },
        }
    }
    .await;
    run.record(UNKNOWN_KEY, KIND, started, result);
}

/// Records a check whose success yields a value, and keeps the value.
fn keep<T>(run: &Run, id: &str, started: Instant, result: Result<T, String>) -> Option<T> {
    match result {
        Ok(value) => {
            run.record(id, KIND, started, Ok(()));
            Some(value)
        }
        Err(mismatch) => {
            run.record(id, KIND, started, Err(mismatch));
            None
        }
    }
}

/// Opens a socket for `key` and waits for `pusher:connection_established`; returns its data.
pub(super) async fn connect(run: &Run, key: &str) -> Result<(Socket, Value), String> {
    let url = run.socket_url(key);
    let bound = run.config.live_bound;
    match Socket::open(&url, &url, bound).await? {
        Handshake::Rejected(status) => Err(format!("the WebSocket upgrade of {url} was refused with HTTP {status}")),
        Handshake::Open(mut socket) => {
            let frame = socket
                .expect("pusher:connection_established", bound, |frame| {
                    frame["event"] == "pusher:connection_established"
                })
                .await?;
            Ok((*socket, data_of(&frame)))
        }
    }
}

/// Why a subscription did not succeed.
pub(super) enum Refused {
    /// The server refused it (`pusher:subscription_error` or `pusher:error`).
    Refused(Value),
    /// Anything else: the socket closed, nothing came.
    Other(String),
}

impl From<Refused> for String {
    fn from(refused: Refused) -> String {
        match refused {
            Refused::Refused(frame) => format!("the subscription was refused: {frame}"),
            Refused::Other(err) => err,
        }
    }
}

impl From<String> for Refused {
    fn from(err: String) -> Refused {
        Refused::Other(err)
    }
}

/// Subscribes and waits for the answer; returns the data of `subscription_succeeded`.
pub(super) async fn subscribe(
    socket: &mut Socket,
    channel: &str,
    auth: Option<String>,
    channel_data: Option<&str>,
    bound: Duration,
) -> Result<Value, Refused> {
    let mut data = json!({"channel": channel});
    if let Some(auth) = auth {
        data["auth"] = json!(auth);
    }
    if let Some(channel_data) = channel_data {
        data["channel_data"] = json!(channel_data);
    }
    socket.send(&json!({"event": "pusher:subscribe", "data": data})).await?;
    let frame = socket
        .expect(&format!("an answer to subscribing to {channel}"), bound, |frame| {
            let event = frame["event"].as_str().unwrap_or_default();
            event == "pusher:error"
                || (frame["channel"] == json!(channel) && (event == SUCCEEDED || event == "pusher:subscription_error"))
        })
        .await?;
    match frame["event"].as_str() {
        Some(SUCCEEDED) => Ok(data_of(&frame)),
        _ => Err(Refused::Refused(frame)),
    }
}

/// Joins a presence channel as `user_id` (with `{"name": user_id}` as its user_info).
async fn join(client: &mut Client, app: &App, channel: &str, user_id: &str, bound: Duration) -> Result<Value, String> {
    let channel_data = json!({"user_id": user_id, "user_info": {"name": user_id}}).to_string();
    let auth = signing::channel_auth(app, &client.socket_id, channel, Some(&channel_data));
    subscribe(&mut client.socket, channel, Some(auth), Some(&channel_data), bound).await.map_err(String::from)
}

/// Triggers an event through the HTTP API.
async fn trigger(run: &Run, channel: &str, name: &str, data: &str, socket_id: Option<&str>) -> Result<(), String> {
    let mut body = json!({"name": name, "channel": channel, "data": data});
    if let Some(socket_id) = socket_id {
        body["socket_id"] = json!(socket_id);
    }
    let response = run.api("POST", "/events", &[], Some(&body)).await?;
    expect_status(&format!("POST /events ({name})"), &response, 200).map(drop)
}

/// The next event of `channel` that is not one of the protocol's own.
async fn next_event(socket: &mut Socket, channel: &str, bound: Duration) -> Result<Value, String> {
    socket
        .expect(&format!("an event on {channel}"), bound, |frame| {
            let event = frame["event"].as_str().unwrap_or_default();
            frame["channel"] == json!(channel)
                && !event.starts_with("pusher:")
                && !event.starts_with("pusher_internal:")
        })
        .await
}

/// A frame's `data`, decoded when it is a JSON string (Pusher double-encodes it).
fn data_of(frame: &Value) -> Value {
    match &frame["data"] {
        Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone())),
        other => other.clone(),
    }
}

/// `digits.digits`, as Pusher's socket ids are.
fn is_socket_id(id: &str) -> bool {
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    id.split_once('.').is_some_and(|(a, b)| digits(a) && digits(b))
}
