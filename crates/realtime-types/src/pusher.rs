//! The Pusher-compatible face: the wire formats of Pusher Channels' HTTP API and of its
//! WebSocket protocol 7, as the official libraries (pusher-js, the `pusher` server
//! packages) send and expect them. Pusher's documentation is the contract here, so these
//! types are not in this server's OpenAPI document.
//!
//! Two quirks of the protocol shape everything below. Server events carry their `data`
//! as a JSON-encoded *string* (an object encoded twice), except `pusher:error` and the
//! ping and pong, whose data is an object. And clients send `pusher:subscribe` data as
//! an object, whose `channel_data` is a string that a presence signature covers byte for
//! byte, so it is kept exactly as received.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest event `data`, in bytes (413 beyond).
pub const DATA_MAX_BYTES: usize = 10 * 1024;
/// Most channels one trigger names.
pub const TRIGGER_MAX_CHANNELS: usize = 100;
/// Most events in one batch trigger.
pub const BATCH_MAX_EVENTS: usize = 10;
/// Longest event name, in bytes (what the official server libraries enforce).
pub const EVENT_NAME_MAX_LEN: usize = 200;
/// Longest presence `user_id`.
pub const USER_ID_MAX_LEN: usize = 128;
/// Largest presence `user_info`, as JSON, in bytes.
pub const USER_INFO_MAX_BYTES: usize = 1024;
/// Most members of one presence channel.
pub const PRESENCE_MAX_MEMBERS: usize = 100;
/// How far `auth_timestamp` may be from the server's clock, in seconds.
pub const TIMESTAMP_SKEW_SECONDS: i64 = 600;
/// Event name prefixes a server may not trigger: the protocol's own events.
pub const RESERVED_EVENT_PREFIXES: [&str; 2] = ["pusher:", "pusher_internal:"];
/// The prefix of the events clients send each other.
pub const CLIENT_EVENT_PREFIX: &str = "client-";
/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u32 = 7;
/// How long a cache channel's last event is given to new subscribers, in seconds.
pub const CACHE_TTL_SECONDS: i64 = 30 * 60;
/// The oldest protocol version it accepts (pusher-js has sent 7 since 2017).
pub const PROTOCOL_MIN_VERSION: u32 = 5;
/// The prefix of a user's channel: `#server-to-user-{user_id}` carries the events sent to
/// the sockets signed in as that user (`sendToUser`).
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// The user a `#server-to-user-{user_id}` channel is for, if `channel` is one.
pub fn server_to_user(channel: &str) -> Option<&str> {
    channel.strip_prefix(SERVER_TO_USER_PREFIX)
}

/// Checks the user id of a send to user: the characters of a channel name, as the server
/// libraries check, and at most as long as a channel name.
pub fn check_user_id(user_id: &str) -> Result<(), String> {
    crate::validate::check_channel_name(user_id).map_err(|why| format!("invalid user id {user_id:?}: {why}"))
}

/// What a channel's name makes it on the Pusher face.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// Anyone with the app key may subscribe.
    Public,
    /// `private-`: subscribing needs a signature.
    Private,
    /// `private-encrypted-`: private, and the server relays ciphertext it cannot read.
    Encrypted,
    /// `presence-`: private, and subscribers form a member set.
    Presence,
}

impl ChannelKind {
    /// The kind of the channel `name`.
    pub fn of(name: &str) -> ChannelKind {
        if name.starts_with("private-encrypted-") {
            ChannelKind::Encrypted
        } else if name.starts_with("private-") {
            ChannelKind::Private
        } else if name.starts_with("presence-") {
            ChannelKind::Presence
        } else {
            ChannelKind::Public
        }
    }

    /// Whether `name` is a cache channel (`cache-`, `private-cache-`,
    /// `private-encrypted-cache-`, `presence-cache-`), whose last event a new subscriber
    /// gets.
    pub fn is_cache(name: &str) -> bool {
        ["cache-", "private-cache-", "private-encrypted-cache-", "presence-cache-"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
    }

    /// Whether subscribing needs a signature.
    pub fn needs_auth(self) -> bool {
        match self {
            ChannelKind::Public => false,
            ChannelKind::Private | ChannelKind::Encrypted | ChannelKind::Presence => true,
        }
    }
}

/// Checks a channel name: this server's channel names, which are Pusher's (1-164 bytes of
/// `A-Z a-z 0-9 _ - = @ , . ;`); `#` names such as `#server-to-user-` are not channels
/// one may trigger to or subscribe to.
pub fn check_channel_name(name: &str) -> Result<(), String> {
    crate::validate::check_channel_name(name)
}

/// Checks the name of a triggered event.
pub fn check_event_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the event name must not be empty".into());
    }
    if name.len() > EVENT_NAME_MAX_LEN {
        return Err(format!("the event name must be at most {EVENT_NAME_MAX_LEN} bytes"));
    }
    if RESERVED_EVENT_PREFIXES.iter().any(|prefix| name.starts_with(prefix)) {
        return Err("event names starting with pusher: or pusher_internal: are reserved".into());
    }
    Ok(())
}

/// Checks a socket id: two runs of digits joined by a dot, e.g. `1234.5678`.
pub fn check_socket_id(socket_id: &str) -> Result<(), String> {
    let valid = socket_id.split_once('.').is_some_and(|(left, right)| {
        !left.is_empty()
            && !right.is_empty()
            && left.bytes().all(|b| b.is_ascii_digit())
            && right.bytes().all(|b| b.is_ascii_digit())
    });
    match valid {
        true => Ok(()),
        false => Err(format!("invalid socket id {socket_id:?}: expected digits.digits")),
    }
}

/// The `data` of a triggered event: Pusher sends a string. Other JSON is taken as its
/// JSON text, as lenient servers do.
pub fn data_text(data: &Value) -> String {
    match data {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

// --- HTTP API ---------------------------------------------------------------------------

/// `POST /apps/{app_id}/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerRequest {
    /// The event name.
    pub name: String,
    /// The payload; a string (the libraries send JSON text).
    pub data: Value,
    /// The channels (1-100); or `channel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// One channel; or `channels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The socket that must not receive the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<String>,
    /// Comma-separated attributes to return per channel: `user_count`, `subscription_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
}

/// One event of `POST /apps/{app_id}/batch_events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEvent {
    /// The event name.
    pub name: String,
    /// The payload.
    pub data: Value,
    /// The channel.
    pub channel: String,
    /// The socket that must not receive the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<String>,
    /// As for a trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
}

/// `POST /apps/{app_id}/batch_events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// Up to 10 events.
    pub batch: Vec<BatchEvent>,
}

/// `POST /apps/{app_id}/users/{user_id}/events`: an event for the sockets signed in as
/// the user, as a trigger to `#server-to-user-{user_id}` is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserEventRequest {
    /// The event name.
    pub name: String,
    /// The payload; a string (the libraries send JSON text).
    pub data: Value,
}

/// Attributes of one channel, as the HTTP API reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelAttributes {
    /// Whether anyone is subscribed (channel info only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupied: Option<bool>,
    /// Distinct users of a presence channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_count: Option<u32>,
    /// Subscribed sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_count: Option<u32>,
    /// A cache channel's last event, while it is kept (channel info with `info=cache`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachedEvent>,
}

/// The `cache` attribute of a cache channel: its last event's data and how long it is
/// still kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedEvent {
    /// The event's data, as a string.
    pub data: String,
    /// Seconds it is still given to new subscribers.
    pub ttl: u64,
}

/// The answer of a trigger: `{}`, or the attributes asked for with `info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggerResponse {
    /// Per channel, when `info` asked for attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<std::collections::BTreeMap<String, ChannelAttributes>>,
}

/// The answer of a batch trigger: `{}`, or one entry per event when any asked for `info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// In the order of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Vec<ChannelAttributes>>,
}

/// `GET /apps/{app_id}/channels`: the occupied channels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelsResponse {
    /// By name.
    pub channels: std::collections::BTreeMap<String, ChannelAttributes>,
}

/// One user of `GET /apps/{app_id}/channels/{channel}/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user id.
    pub id: String,
}

/// `GET /apps/{app_id}/channels/{channel}/users`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersResponse {
    /// The presence channel's users.
    pub users: Vec<User>,
}

/// The body of every refusal of the HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// For people.
    pub error: String,
    /// Where to add credit, when the account's balance does not cover the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topup_url: Option<String>,
}

// --- WebSocket protocol 7 ---------------------------------------------------------------

/// The member data of a presence subscription, as its signature covers it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelData {
    /// The user id (a JSON number is taken as its decimal text).
    pub user_id: String,
    /// What other members see of the user.
    pub user_info: Option<Value>,
}

impl ChannelData {
    /// Reads a presence `channel_data` string.
    pub fn parse(text: &str) -> Result<ChannelData, String> {
        let value: Value = serde_json::from_str(text).map_err(|_| "channel_data is not JSON".to_owned())?;
        let user_id = match value.get("user_id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            _ => return Err("channel_data must hold a user_id".into()),
        };
        if user_id.len() > USER_ID_MAX_LEN {
            return Err(format!("user_id must be at most {USER_ID_MAX_LEN} characters"));
        }
        let user_info = value.get("user_info").cloned();
        if user_info.as_ref().is_some_and(|info| info.to_string().len() > USER_INFO_MAX_BYTES) {
            return Err(format!("user_info must be at most {USER_INFO_MAX_BYTES} bytes"));
        }
        Ok(ChannelData { user_id, user_info })
    }
}

/// A frame a client sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `pusher:ping`: answered with `pusher:pong`.
    Ping,
    /// `pusher:pong`: the answer to the server's ping.
    Pong,
    /// `pusher:subscribe`.
    Subscribe {
        /// The channel.
        channel: String,
        /// `<key>:<signature>` for private and presence channels.
        auth: Option<String>,
        /// For presence channels, the member data exactly as signed.
        channel_data: Option<String>,
    },
    /// `pusher:unsubscribe`.
    Unsubscribe {
        /// The channel.
        channel: String,
    },
    /// `pusher:signin` (user authentication).
    Signin {
        /// `<key>:<signature>` of `<socket_id>::user::<user_data>`.
        auth: String,
        /// The user data exactly as signed.
        user_data: String,
    },
    /// A `client-` event for the other subscribers of a channel.
    Client {
        /// The event name, `client-…`.
        event: String,
        /// The channel.
        channel: String,
        /// The payload as sent.
        data: Value,
    },
    /// Any other `pusher:` event, which this server does not know.
    Unknown {
        /// The event name.
        event: String,
    },
}

/// The envelope every client frame has.
#[derive(Deserialize)]
struct RawClientEvent {
    event: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    data: Value,
}

impl ClientEvent {
    /// Reads a client frame; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<ClientEvent, String> {
        let raw: RawClientEvent =
            serde_json::from_str(text).map_err(|_| "a frame must be a JSON object with an event".to_owned())?;
        // Some clients encode `data` twice, as the server does.
        let data = match raw.data {
            Value::String(text) if text.starts_with('{') => serde_json::from_str(&text).unwrap_or(Value::String(text)),
            other => other,
        };
        let field = |name: &str| data.get(name).and_then(Value::as_str).map(str::to_owned);
        match raw.event.as_str() {
            "pusher:ping" => Ok(ClientEvent::Ping),
            "pusher:pong" => Ok(ClientEvent::Pong),
            "pusher:subscribe" => Ok(ClientEvent::Subscribe {
                channel: field("channel").ok_or("pusher:subscribe needs data.channel")?,
                auth: field("auth").filter(|auth| !auth.is_empty()),
                channel_data: field("channel_data"),
            }),
            "pusher:unsubscribe" => Ok(ClientEvent::Unsubscribe {
                channel: field("channel").ok_or("pusher:unsubscribe needs data.channel")?,
            }),
            "pusher:signin" => Ok(ClientEvent::Signin {
                auth: field("auth").ok_or("pusher:signin needs data.auth")?,
                user_data: field("user_data").ok_or("pusher:signin needs data.user_data")?,
            }),
            event if event.starts_with(CLIENT_EVENT_PREFIX) => Ok(ClientEvent::Client {
                event: raw.event.clone(),
                channel: raw.channel.ok_or("a client event needs a channel")?,
                data,
            }),
            _ => Ok(ClientEvent::Unknown { event: raw.event }),
        }
    }
}

/// The member list of a presence channel in `subscription_succeeded`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PresenceData {
    /// The user ids.
    pub ids: Vec<String>,
    /// Each user's info (`null` when it has none).
    pub hash: Map<String, Value>,
    /// `ids.len()`.
    pub count: usize,
}

/// A frame the server sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// The first frame of a connection.
    ConnectionEstablished {
        /// `N.N`, unique in the cluster.
        socket_id: String,
        /// Seconds of silence after which the client pings.
        activity_timeout: u32,
    },
    /// An error; the connection stays open unless a close follows.
    Error {
        /// A close code of the 4000-4302 ranges, or none.
        code: Option<u16>,
        /// For people.
        message: String,
    },
    /// `pusher:ping`.
    Ping,
    /// `pusher:pong`.
    Pong,
    /// `pusher_internal:subscription_succeeded`.
    SubscriptionSucceeded {
        /// The channel.
        channel: String,
        /// The members, on presence channels.
        presence: Option<PresenceData>,
    },
    /// `pusher:subscription_error`: the subscription was refused.
    SubscriptionError {
        /// The channel.
        channel: String,
        /// Why.
        error: String,
        /// An HTTP-like status: 401 for a bad signature, 400 for a bad request.
        status: u16,
    },
    /// `pusher_internal:member_added`: a user's first socket joined.
    MemberAdded {
        /// The channel.
        channel: String,
        /// The user.
        user_id: String,
        /// Its info.
        user_info: Option<Value>,
    },
    /// `pusher_internal:member_removed`: a user's last socket left.
    MemberRemoved {
        /// The channel.
        channel: String,
        /// The user.
        user_id: String,
    },
    /// `pusher:cache_miss`: a cache channel has no last event to give.
    CacheMiss {
        /// The channel.
        channel: String,
    },
    /// `pusher_internal:subscription_count`: the sockets subscribed to a channel (when
    /// subscription counting is on); pusher-js emits it as `pusher:subscription_count`.
    SubscriptionCount {
        /// The channel.
        channel: String,
        /// The sockets subscribed.
        count: u32,
    },
    /// `pusher:signin_success`.
    SigninSuccess {
        /// The signed user data.
        user_data: String,
    },
    /// An event of a channel: triggered, published natively, or a client event.
    Event {
        /// The channel.
        channel: String,
        /// The event name.
        event: String,
        /// The payload as a string.
        data: String,
        /// On presence channels, the user who sent a client event.
        user_id: Option<String>,
    },
}

/// The shape of every server frame on the wire.
#[derive(Serialize)]
struct Wire<'a> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
}

impl ServerEvent {
    /// The frame's JSON text.
    pub fn to_json(&self) -> String {
        // Data encoded twice, as the protocol wants for every event but errors and pings.
        let twice = |value: Value| Value::String(value.to_string());
        let wire = match self {
            ServerEvent::ConnectionEstablished { socket_id, activity_timeout } => Wire {
                event: "pusher:connection_established",
                channel: None,
                data: Some(twice(serde_json::json!({"socket_id": socket_id, "activity_timeout": activity_timeout}))),
                user_id: None,
            },
            ServerEvent::Error { code, message } => Wire {
                event: "pusher:error",
                channel: None,
                data: Some(serde_json::json!({"code": code, "message": message})),
                user_id: None,
            },
            ServerEvent::Ping => {
                Wire { event: "pusher:ping", channel: None, data: Some(Value::Object(Map::new())), user_id: None }
            }
            ServerEvent::Pong => {
                Wire { event: "pusher:pong", channel: None, data: Some(Value::Object(Map::new())), user_id: None }
            }
            ServerEvent::SubscriptionSucceeded { channel, presence } => Wire {
                event: "pusher_internal:subscription_succeeded",
                channel: Some(channel),
                data: Some(twice(match presence {
                    Some(presence) => serde_json::json!({ "presence": presence }),
                    None => Value::Object(Map::new()),
                })),
                user_id: None,
            },
            ServerEvent::SubscriptionError { channel, error, status } => Wire {
                event: "pusher:subscription_error",
                channel: Some(channel),
                data: Some(serde_json::json!({"type": "AuthError", "error": error, "status": status})),
                user_id: None,
            },
            ServerEvent::MemberAdded { channel, user_id, user_info } => Wire {
                event: "pusher_internal:member_added",
                channel: Some(channel),
                data: Some(twice(serde_json::json!({"user_id": user_id, "user_info": user_info}))),
                user_id: None,
            },
            ServerEvent::MemberRemoved { channel, user_id } => Wire {
                event: "pusher_internal:member_removed",
                channel: Some(channel),
                data: Some(twice(serde_json::json!({ "user_id": user_id }))),
                user_id: None,
            },
            ServerEvent::CacheMiss { channel } => {
                Wire { event: "pusher:cache_miss", channel: Some(channel), data: None, user_id: None }
            }
            ServerEvent::SubscriptionCount { channel, count } => Wire {
                event: "pusher_internal:subscription_count",
                channel: Some(channel),
                data: Some(twice(serde_json::json!({ "subscription_count": count }))),
                user_id: None,
            },
            ServerEvent::SigninSuccess { user_data } => Wire {
                event: "pusher:signin_success",
                channel: None,
                data: Some(serde_json::json!({ "user_data": user_data })),
                user_id: None,
            },
            ServerEvent::Event { channel, event, data, user_id } => Wire {
                event,
                channel: Some(channel),
                data: Some(Value::String(data.clone())),
                user_id: user_id.as_deref(),
            },
        };
        serde_json::to_string(&wire).expect("frames serialise")
    }
}

/// What a frame of this server's own fan-out is to a Pusher socket, if anything: a
/// message is a channel event (its `data` as a string: a string as it is, other JSON as
/// its text, so a Pusher trigger's data reaches Pusher sockets byte for byte), a presence
/// join or leave is a member added or removed (keyed by the member's client id, which is
/// the user id of Pusher members). `user_id` names the sender of a client event.
pub fn event_of(frame: &crate::ws::ServerFrame, user_id: Option<&str>) -> Option<ServerEvent> {
    use crate::ws::ServerFrame;
    match frame {
        ServerFrame::Message { channel, event, data, .. } => Some(ServerEvent::Event {
            channel: channel.clone(),
            event: event.clone(),
            data: data_text(data),
            user_id: user_id.map(str::to_owned),
        }),
        ServerFrame::PresenceJoin { channel, member } => Some(ServerEvent::MemberAdded {
            channel: channel.clone(),
            user_id: member.client_id.clone(),
            user_info: member.user_info.clone(),
        }),
        ServerFrame::PresenceLeave { channel, member } => {
            Some(ServerEvent::MemberRemoved { channel: channel.clone(), user_id: member.client_id.clone() })
        }
        // Everything else answers or addresses one socket of this server's own protocol.
        _ => None,
    }
}

/// Pusher's WebSocket close codes (and `pusher:error` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 4001: no app has this key.
    AppDoesNotExist,
    /// 4003: the app is disabled.
    AppDisabled,
    /// 4004: the app is over its connection quota.
    OverConnectionQuota,
    /// 4005: the path is not `/app/{key}`.
    PathNotFound,
    /// 4006: the protocol version is not a number.
    InvalidVersion,
    /// 4007: the protocol version is not supported.
    UnsupportedProtocolVersion,
    /// 4008: the client sent no protocol version.
    NoProtocolVersion,
    /// 4009: the connection is not authorized (a bad frame, or a failed sign-in).
    Unauthorized,
    /// 4100: over capacity, or too slow to read its frames; reconnect after a backoff.
    OverCapacity,
    /// 4200: generic; reconnect at once (the server is shutting down).
    ReconnectImmediately,
    /// 4201: the client did not answer a ping.
    PongNotReceived,
    /// 4202: closed after inactivity.
    ClosedAfterInactivity,
    /// 4301: the client sent client events too fast.
    ClientEventRateLimit,
}

impl CloseCode {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::AppDoesNotExist => 4001,
            CloseCode::AppDisabled => 4003,
            CloseCode::OverConnectionQuota => 4004,
            CloseCode::PathNotFound => 4005,
            CloseCode::InvalidVersion => 4006,
            CloseCode::UnsupportedProtocolVersion => 4007,
            CloseCode::NoProtocolVersion => 4008,
            CloseCode::Unauthorized => 4009,
            CloseCode::OverCapacity => 4100,
            CloseCode::ReconnectImmediately => 4200,
            CloseCode::PongNotReceived => 4201,
            CloseCode::ClosedAfterInactivity => 4202,
            CloseCode::ClientEventRateLimit => 4301,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_events_encode_their_data_twice_except_errors() {
        let established = ServerEvent::ConnectionEstablished { socket_id: "1.2".into(), activity_timeout: 120 };
        assert_eq!(
            established.to_json(),
            r#"{"event":"pusher:connection_established","data":"{\"activity_timeout\":120,\"socket_id\":\"1.2\"}"}"#
        );
        let error = ServerEvent::Error { code: Some(4009), message: "no".into() };
        assert_eq!(error.to_json(), r#"{"event":"pusher:error","data":{"code":4009,"message":"no"}}"#);
        let event = ServerEvent::Event {
            channel: "presence-a".into(),
            event: "client-x".into(),
            data: "{\"a\":1}".into(),
            user_id: Some("u1".into()),
        };
        assert_eq!(event.to_json(), r#"{"event":"client-x","channel":"presence-a","data":"{\"a\":1}","user_id":"u1"}"#);
    }

    #[test]
    fn subscribe_keeps_channel_data_exactly_as_sent() {
        let text = r#"{"event":"pusher:subscribe","data":{"channel":"presence-a","auth":"k:s","channel_data":"{\"user_id\": \"u1\"}"}}"#;
        assert_eq!(
            ClientEvent::parse(text).unwrap(),
            ClientEvent::Subscribe {
                channel: "presence-a".into(),
                auth: Some("k:s".into()),
                channel_data: Some("{\"user_id\": \"u1\"}".into()),
            }
        );
    }

    #[test]
    fn channel_data_takes_numeric_user_ids_as_text() {
        let data = ChannelData::parse(r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#).unwrap();
        assert_eq!(data.user_id, "10");
        assert!(ChannelData::parse(r#"{"user_info":{}}"#).is_err());
    }

    #[test]
    fn socket_ids_are_two_runs_of_digits() {
        assert!(check_socket_id("1234.5678").is_ok());
        for bad in ["1234", ".5", "1.", "a.b", "1.2.3", ""] {
            assert!(check_socket_id(bad).is_err(), "{bad}");
        }
    }
}
