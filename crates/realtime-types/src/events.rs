//! `realtime.event.types`: the closed set of events a subscriber can receive.

use serde::{Deserialize, Serialize};

/// The `type` of every frame the gateway can send to a client; exactly the variants of
/// [`crate::ws::ServerFrame`] (a test keeps them equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventType {
    /// The connection is open and authenticated.
    #[serde(rename = "connected")]
    Connected,
    /// A subscription succeeded.
    #[serde(rename = "subscribed")]
    Subscribed,
    /// A subscription ended (asked for, channel deleted, or disconnected by the server).
    #[serde(rename = "unsubscribed")]
    Unsubscribed,
    /// An event published to a subscribed channel.
    #[serde(rename = "message")]
    Message,
    /// A client joined a subscribed presence channel.
    #[serde(rename = "presence.join")]
    PresenceJoin,
    /// A client left a subscribed presence channel.
    #[serde(rename = "presence.leave")]
    PresenceLeave,
    /// A publish sent over the socket was accepted.
    #[serde(rename = "published")]
    Published,
    /// A frame sent over the socket was refused.
    #[serde(rename = "error")]
    Error,
    /// The answer to a `ping`.
    #[serde(rename = "pong")]
    Pong,
    /// A message to the connection's user.
    #[serde(rename = "user.message")]
    UserMessage,
    /// A user message sent over the socket was accepted.
    #[serde(rename = "user.message.sent")]
    UserMessageSent,
    /// A command sent over the socket was answered, or its wait ended.
    #[serde(rename = "user.command.done")]
    UserCommandDone,
    /// A command to the connection's user.
    #[serde(rename = "user.command")]
    UserCommand,
    /// The server is about to close the socket, and why (the close code follows).
    #[serde(rename = "disconnecting")]
    Disconnecting,
}

impl EventType {
    /// Every event type, in declaration order.
    pub const ALL: [EventType; 14] = [
        EventType::Connected,
        EventType::Subscribed,
        EventType::Unsubscribed,
        EventType::Message,
        EventType::PresenceJoin,
        EventType::PresenceLeave,
        EventType::Published,
        EventType::Error,
        EventType::Pong,
        EventType::UserMessage,
        EventType::UserMessageSent,
        EventType::UserCommandDone,
        EventType::UserCommand,
        EventType::Disconnecting,
    ];
}

/// The event types a subscriber can receive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventTypes {
    /// Every event type, once.
    pub types: Vec<EventType>,
}
