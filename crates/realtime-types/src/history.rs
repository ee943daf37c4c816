//! A channel's stream: every message has a [`Position`] (an offset within an epoch), its
//! recent messages are readable (`realtime.channel.history`), and a subscriber that comes
//! back with the last position it saw recovers what it missed.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A message's place in its channel's stream.
///
/// Offsets count a channel's messages from 1, in the order the store accepted them, which
/// is the order every subscriber receives them in. The epoch names one life of the
/// channel: it changes when continuity is lost (the channel was deleted and created
/// again), and offsets of different epochs are not comparable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"epoch": "ch_01JD2Q7W3M5X8Y9Z0A1B2C3D4E", "offset": 42})))]
#[serde(deny_unknown_fields)]
pub struct Position {
    /// The channel's epoch.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub epoch: String,
    /// The offset within the epoch; 0 is the position before the first message.
    pub offset: u64,
}

/// Why a subscription did not recover the messages after the position it asked for. The
/// client should reload the channel's state and go on from the `position` it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecoveryFailure {
    /// The channel's epoch is not the one of the position (it was deleted and created again).
    EpochChanged,
    /// Messages after the position are no longer retained.
    TooOld,
    /// More messages were missed than one recovery replays (`RECOVERY_MAX_MESSAGES`).
    TooMany,
    /// The position is ahead of the channel (it was never given by this server).
    Unknown,
}

/// Which way `realtime.channel.history` reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Oldest first, from after `since`.
    #[default]
    Forward,
    /// Newest first, from before `since` (from the newest when absent).
    Backward,
}

/// The query of `realtime.channel.history`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// An offset to page from, exclusive: forward reads the messages after it, backward
    /// the messages before it. Pass the previous page's `next_since` to go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 0, maximum = 9223372036854775807_i64))]
    pub since: Option<u64>,
    /// Page size, 1-100; defaults to 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
    /// `forward` (default) or `backward`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(inline))]
    pub direction: Option<Direction>,
}

/// One retained message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryMessage {
    /// The publish's `message_id`.
    pub message_id: String,
    /// Its offset in the channel's epoch.
    pub offset: u64,
    /// The event name.
    pub event: String,
    /// The payload.
    pub data: serde_json::Value,
    /// When it was published.
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub published_at: DateTime<Utc>,
}

/// A page of a channel's retained messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "channel": "room-42", "epoch": "ch_01JD2Q7W3M5X8Y9Z0A1B2C3D4E", "latest_offset": 2,
    "messages": [{"message_id": "01JD2Q7W3M5X8Y9Z0A1B2C3D4E", "offset": 2, "event": "message",
                  "data": {"text": "hi"}, "published_at": "2026-11-22T12:01:00Z"}]
})))]
pub struct History {
    /// The channel.
    pub channel: String,
    /// The channel's epoch; every offset here is in it.
    pub epoch: String,
    /// The offset of the channel's newest message (0 when it has none).
    pub latest_offset: u64,
    /// The messages of this page, in the direction asked for.
    pub messages: Vec<HistoryMessage>,
    /// Pass as `since` (with the same direction) for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_since: Option<u64>,
}
