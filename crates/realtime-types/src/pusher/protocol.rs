//! Pusher's WebSocket protocol 7: the events a client sends and the server answers.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{CLIENT_EVENT_PREFIX, USER_ID_MAX_LEN, USER_INFO_MAX_BYTES, data_text};

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
    /// `pusher_internal:watchlist_events`: users of the signed-in user's watchlist came
    /// online or went offline; pusher-js emits each on `pusher.user.watchlist`.
    WatchlistEvents {
        /// In order: what happened, and to whom.
        events: Vec<(WatchlistChange, Vec<String>)>,
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

/// What a watchlist event says of its users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchlistChange {
    /// `online`: a socket signed in as each is connected.
    Online,
    /// `offline`: the last such socket is gone.
    Offline,
}

impl WatchlistChange {
    /// The event's name.
    pub fn name(self) -> &'static str {
        match self {
            WatchlistChange::Online => "online",
            WatchlistChange::Offline => "offline",
        }
    }
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
            ServerEvent::WatchlistEvents { events } => {
                let events: Vec<Value> = events
                    .iter()
                    .map(|(change, user_ids)| serde_json::json!({"name": change.name(), "user_ids": user_ids}))
                    .collect();
                Wire {
                    event: "pusher_internal:watchlist_events",
                    channel: None,
                    data: Some(twice(serde_json::json!({ "events": events }))),
                    user_id: None,
                }
            }
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
    /// 4302: the watchlist holds more user ids than allowed (the rest were dropped).
    WatchlistLimit,
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
            CloseCode::WatchlistLimit => 4302,
        }
    }
}
