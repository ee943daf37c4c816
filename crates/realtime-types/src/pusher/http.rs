//! Pusher's HTTP API: triggers, batches, send to user, and the channel queries' answers.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
