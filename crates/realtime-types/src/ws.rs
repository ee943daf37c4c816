//! The WebSocket protocol of the gateway: JSON text frames, one enum per direction.
//!
//! A client connects to the `endpoint` of its token with `?token=<jwt>` (or an
//! `Authorization: Bearer` header), receives [`ServerFrame::Connected`], then sends
//! [`ClientFrame`]s. Every frame is an object whose `type` names the variant. The AsyncAPI
//! document in `openapi/` is generated from these types.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::history::{Position, RecoveryFailure};
use crate::presence::PresenceMember;
use crate::problem::ErrorCode;

/// A frame sent by a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Subscribe to a channel the token allows (needs `subscribe`; presence channels
    /// also add the client to the member set when the token has `presence`).
    Subscribe {
        /// The channel name.
        channel: String,
        /// The position of the last message the client saw on this channel: the server
        /// first replays every message after it (at most `RECOVERY_MAX_MESSAGES`), then
        /// goes on live, with no gap and no duplicate, and says `recovered: true`; or
        /// says `recovered: false` with a reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Position>,
    },
    /// Stop receiving a channel's events (and leave its presence set).
    Unsubscribe {
        /// The channel name.
        channel: String,
    },
    /// Publish an event (needs `publish`; metered like a REST publish).
    Publish {
        /// The channel name.
        channel: String,
        /// The event name, as in the REST publish.
        event: String,
        /// Any JSON value, at most 10240 bytes.
        data: serde_json::Value,
        /// Echoed in the `published` or `error` answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// A heartbeat; the server answers `pong`. Any frame counts as a sign of life.
    Ping {},
    /// Acknowledges a reliable `user.message`, and with it every earlier one (by
    /// `sequence`) of the user, so ack in `sequence` order:
    /// none of them is delivered again, to any of the user's connections.
    Ack {
        /// The `message_id` of the `user.message`.
        message_id: String,
    },
    /// Sends a message to a user (needs `message`; metered like the REST call). The
    /// server answers `user.message.sent`, or `error`, echoing `request_id`.
    #[serde(rename = "user.message.send")]
    SendUserMessage {
        /// The user.
        target_user_id: String,
        /// `realtime` (default) or `reliable`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delivery: Option<crate::Delivery>,
        /// Any JSON value, at most 10240 bytes.
        payload: serde_json::Value,
        /// Echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// Sends a command to a user (needs `message`; metered like the REST call). The
    /// server answers `user.command.done` once a client responds or the wait ends (at
    /// most 25 s), or `error`, echoing `request_id`; other frames go on meanwhile.
    #[serde(rename = "user.command.send")]
    SendUserCommand {
        /// The user.
        target_user_id: String,
        /// The command's type.
        command: String,
        /// Any JSON value, at most 10240 bytes.
        data: serde_json::Value,
        /// Seconds the command can be answered, 1-1800 (default 1800).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<u32>,
        /// Echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// Answers a `user.command`; the first response wins, later ones get an `error`.
    #[serde(rename = "command.response")]
    CommandResponse {
        /// The `command_id` of the `user.command`.
        command_id: String,
        /// Any JSON value, at most 10240 bytes.
        data: serde_json::Value,
    },
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribeReason {
    /// The client asked for it.
    Requested,
    /// The channel was deleted.
    ChannelDeleted,
    /// `user.disconnect` with this channel.
    DisconnectedByServer,
}

/// A frame sent by the server. Its `type` values are exactly `realtime.event.types`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ServerFrame {
    /// The first frame of every connection.
    #[serde(rename = "connected")]
    Connected {
        /// This connection's id.
        connection_id: String,
        /// The token's client id.
        client_id: String,
        /// The token's user id, when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
        /// When the token expires; the socket is closed with 4002 then.
        #[serde(serialize_with = "crate::time::rfc3339")]
        expires_at: DateTime<Utc>,
        /// Send a frame (a `ping` will do) at least this often; after
        /// `heartbeat_timeout_seconds` of silence the server closes with 4201.
        heartbeat_interval_seconds: u32,
        /// Silence after which the server drops the connection.
        heartbeat_timeout_seconds: u32,
    },
    /// A subscription succeeded.
    #[serde(rename = "subscribed")]
    Subscribed {
        /// The channel.
        channel: String,
        /// For presence channels, the members at subscription time; empty otherwise.
        members: Vec<PresenceMember>,
        /// The subscription delivers every message after this position, in offset order:
        /// the `since` asked for when it recovered, else the channel's latest position.
        position: Position,
        /// Whether the messages after `since` are replayed; absent without `since`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
        /// Why they are not, when `recovered` is false.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovery_failure: Option<RecoveryFailure>,
    },
    /// A subscription ended.
    #[serde(rename = "unsubscribed")]
    Unsubscribed {
        /// The channel.
        channel: String,
        /// Why.
        reason: UnsubscribeReason,
    },
    /// An event published to a subscribed channel, in offset order per channel.
    #[serde(rename = "message")]
    Message {
        /// The channel.
        channel: String,
        /// The publish's `message_id`.
        message_id: String,
        /// The channel's epoch.
        epoch: String,
        /// The message's offset in the epoch: one more than the previous message's. A
        /// subscriber that sees a larger step missed messages (they can be read with
        /// `realtime.channel.history`, or recovered by subscribing again with `since`).
        offset: u64,
        /// The event name.
        event: String,
        /// The event payload.
        data: serde_json::Value,
        /// When it was published.
        #[serde(serialize_with = "crate::time::rfc3339")]
        published_at: DateTime<Utc>,
    },
    /// A client joined a presence channel this connection is subscribed to.
    #[serde(rename = "presence.join")]
    PresenceJoin {
        /// The channel.
        channel: String,
        /// Who joined.
        member: PresenceMember,
    },
    /// A client's last socket left a presence channel this connection is subscribed to.
    #[serde(rename = "presence.leave")]
    PresenceLeave {
        /// The channel.
        channel: String,
        /// Who left.
        member: PresenceMember,
    },
    /// A `publish` frame was accepted.
    #[serde(rename = "published")]
    Published {
        /// The `request_id` of the publish frame.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        /// The new message's id.
        message_id: String,
        /// The channel's epoch.
        epoch: String,
        /// The new message's offset.
        offset: u64,
        /// How many connections it was handed to.
        delivered: u32,
    },
    /// A client frame was refused; the connection stays open.
    #[serde(rename = "error")]
    Error {
        /// The same codes as the REST problems.
        code: ErrorCode,
        /// For people.
        message: String,
        /// The channel concerned, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
        /// The `request_id` of the refused frame, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// The answer to `ping`.
    #[serde(rename = "pong")]
    Pong {},
    /// A message to this connection's user (its token's `user_id`).
    #[serde(rename = "user.message")]
    UserMessage {
        /// The message's id; acknowledge a reliable one with an `ack` frame.
        message_id: String,
        /// `realtime` or `reliable`.
        delivery: crate::Delivery,
        /// The application's payload.
        payload: serde_json::Value,
        /// `server` or `client`.
        sender_type: crate::SenderType,
        /// Who sent it, when given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender_id: Option<String>,
        /// When it was sent.
        #[serde(serialize_with = "crate::time::rfc3339")]
        sent_at: DateTime<Utc>,
        /// For a reliable message: its place in the user's stream.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence: Option<u64>,
        /// For a reliable message: how many times it has been delivered, this time
        /// included (more than 1 is a redelivery).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delivery_count: Option<u32>,
    },
    /// A `user.message.send` was accepted.
    #[serde(rename = "user.message.sent")]
    UserMessageSent {
        /// The `request_id` of the send.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        /// The message's id.
        message_id: String,
        /// How many of the user's live connections it was pushed to.
        delivered: u32,
        /// For a reliable message: its place in the user's stream.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence: Option<u64>,
    },
    /// What became of a `user.command.send`: answered (with the response), or still
    /// pending when the wait ended (read it later with `realtime.user.command.get`).
    #[serde(rename = "user.command.done")]
    UserCommandDone {
        /// The `request_id` of the send.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        /// The command's id.
        command_id: String,
        /// `answered`, or `pending` when no response came within the wait.
        status: crate::CommandStatus,
        /// The first response, when answered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response: Option<serde_json::Value>,
    },
    /// A command to this connection's user; answer it with a `command.response` frame.
    #[serde(rename = "user.command")]
    UserCommand {
        /// The command's id.
        command_id: String,
        /// The command's type (the `type` of `realtime.user.command.send`).
        command: String,
        /// Its data.
        data: serde_json::Value,
        /// `server` or `client`.
        sender_type: crate::SenderType,
        /// Who sent it, when given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender_id: Option<String>,
        /// When it can no longer be answered.
        #[serde(serialize_with = "crate::time::rfc3339")]
        expires_at: DateTime<Utc>,
    },
    /// Sent just before the server closes the socket with `code`.
    #[serde(rename = "disconnecting")]
    Disconnecting {
        /// The WebSocket close code that follows.
        code: CloseCode,
        /// For people.
        reason: String,
    },
}

impl ServerFrame {
    /// The event type of this frame.
    pub fn event_type(&self) -> crate::EventType {
        use crate::EventType;
        match self {
            ServerFrame::Connected { .. } => EventType::Connected,
            ServerFrame::Subscribed { .. } => EventType::Subscribed,
            ServerFrame::Unsubscribed { .. } => EventType::Unsubscribed,
            ServerFrame::Message { .. } => EventType::Message,
            ServerFrame::PresenceJoin { .. } => EventType::PresenceJoin,
            ServerFrame::PresenceLeave { .. } => EventType::PresenceLeave,
            ServerFrame::Published { .. } => EventType::Published,
            ServerFrame::Error { .. } => EventType::Error,
            ServerFrame::Pong {} => EventType::Pong,
            ServerFrame::UserMessage { .. } => EventType::UserMessage,
            ServerFrame::UserCommand { .. } => EventType::UserCommand,
            ServerFrame::UserMessageSent { .. } => EventType::UserMessageSent,
            ServerFrame::UserCommandDone { .. } => EventType::UserCommandDone,
            ServerFrame::Disconnecting { .. } => EventType::Disconnecting,
        }
    }
}

/// WebSocket close codes of the gateway. 4000-4099: do not reconnect with the same token;
/// 4100-4199: reconnect after a backoff; 4200-4299: reconnect at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(into = "u16", try_from = "u16")]
pub enum CloseCode {
    /// 4001: the token is missing, malformed, badly signed or for another purpose.
    TokenInvalid,
    /// 4002: the token expired; get a fresh one.
    TokenExpired,
    /// 4003: the token was revoked.
    TokenRevoked,
    /// 4004: `user.disconnect` cut this client; do not reconnect on your own.
    DisconnectedByServer,
    /// 4005: the client broke the protocol (a binary frame, or a frame over 64 KiB);
    /// a text frame that is not a client frame only gets an `error` frame.
    ProtocolError,
    /// 4006: the token already has the most live connections allowed.
    ConnectionLimit,
    /// 4100: the client read too slowly and its outbound queue filled up.
    SlowConsumer,
    /// 4101: the server cannot serve the connection now (its store is unreachable);
    /// reconnect after a backoff.
    TryAgainLater,
    /// 4200: the server is shutting down.
    ServerShutdown,
    /// 4201: no frame arrived within the heartbeat timeout.
    HeartbeatTimeout,
}

impl CloseCode {
    /// Every close code.
    pub const ALL: [CloseCode; 10] = [
        CloseCode::TokenInvalid,
        CloseCode::TokenExpired,
        CloseCode::TokenRevoked,
        CloseCode::DisconnectedByServer,
        CloseCode::ProtocolError,
        CloseCode::ConnectionLimit,
        CloseCode::SlowConsumer,
        CloseCode::TryAgainLater,
        CloseCode::ServerShutdown,
        CloseCode::HeartbeatTimeout,
    ];

    /// The numeric code sent in the close frame.
    pub const fn code(self) -> u16 {
        match self {
            CloseCode::TokenInvalid => 4001,
            CloseCode::TokenExpired => 4002,
            CloseCode::TokenRevoked => 4003,
            CloseCode::DisconnectedByServer => 4004,
            CloseCode::ProtocolError => 4005,
            CloseCode::ConnectionLimit => 4006,
            CloseCode::SlowConsumer => 4100,
            CloseCode::TryAgainLater => 4101,
            CloseCode::ServerShutdown => 4200,
            CloseCode::HeartbeatTimeout => 4201,
        }
    }

    /// What the code means, for people and for the AsyncAPI document.
    pub const fn meaning(self) -> &'static str {
        match self {
            CloseCode::TokenInvalid => "the token is missing, malformed, badly signed or for another purpose",
            CloseCode::TokenExpired => "the token expired; connect again with a fresh token",
            CloseCode::TokenRevoked => "the token was revoked",
            CloseCode::DisconnectedByServer => "realtime.user.disconnect cut this client; do not reconnect on your own",
            CloseCode::ProtocolError => "the client broke the protocol (a binary frame, or a frame over 64 KiB)",
            CloseCode::ConnectionLimit => "the token already holds the most live connections allowed",
            CloseCode::SlowConsumer => "the client read too slowly and its outbound queue filled up",
            CloseCode::TryAgainLater => "the server cannot serve the connection now; reconnect after a backoff",
            CloseCode::ServerShutdown => "the server is shutting down; reconnect",
            CloseCode::HeartbeatTimeout => "no frame arrived within the heartbeat timeout; reconnect",
        }
    }

    /// Whether a client may reconnect on its own after this close.
    pub const fn may_reconnect(self) -> bool {
        self.code() >= 4100
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.code()
    }
}

impl TryFrom<u16> for CloseCode {
    type Error = String;

    fn try_from(value: u16) -> Result<Self, Self::Error> {
        CloseCode::ALL
            .into_iter()
            .find(|code| code.code() == value)
            .ok_or_else(|| format!("{value} is not a close code of this protocol"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(schema: &serde_json::Value) -> Vec<String> {
        schema["oneOf"]
            .as_array()
            .expect("a tagged enum is a oneOf")
            .iter()
            .map(|variant| variant["properties"]["type"]["const"].as_str().expect("each variant has a type").to_owned())
            .collect()
    }

    #[test]
    fn server_frame_types_are_exactly_the_event_types() {
        let schema = serde_json::to_value(schemars::schema_for!(ServerFrame)).unwrap();
        let expected: Vec<String> = crate::EventType::ALL
            .iter()
            .map(|t| serde_json::to_value(t).unwrap().as_str().unwrap().to_owned())
            .collect();
        assert_eq!(tags(&schema), expected);
    }

    #[test]
    fn close_codes_round_trip_through_their_numbers() {
        for code in CloseCode::ALL {
            assert_eq!(CloseCode::try_from(code.code()), Ok(code));
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(code.code()));
        }
        assert!(CloseCode::try_from(1000).is_err());
    }

    #[test]
    fn client_frames_are_parsed_from_their_documented_json() {
        let frame: ClientFrame = serde_json::from_str(r#"{"type":"subscribe","channel":"room-42"}"#).unwrap();
        assert_eq!(frame, ClientFrame::Subscribe { channel: "room-42".into(), since: None });
        let resuming: ClientFrame =
            serde_json::from_str(r#"{"type":"subscribe","channel":"room-42","since":{"epoch":"ch_1","offset":7}}"#)
                .unwrap();
        let since = Some(crate::Position { epoch: "ch_1".into(), offset: 7 });
        assert_eq!(resuming, ClientFrame::Subscribe { channel: "room-42".into(), since });
        let ping: ClientFrame = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(ping, ClientFrame::Ping {});
    }
}
