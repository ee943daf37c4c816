//! `realtime.publish` and `realtime.publish.batch`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Publish one event to a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"channel": "room-42", "event": "message", "data": {"text": "hi"}})))]
pub struct PublishRequest {
    /// An existing channel of the account.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 164, pattern = r"^[A-Za-z0-9_\-=@,.;]+$", example = "room-42")
    )]
    pub channel: String,
    /// The event name: 1-200 bytes of `A-Z a-z 0-9 _ - . :`, not starting with `pusher:`,
    /// `pusher_internal:` or `realtime:`.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^(?!pusher:|pusher_internal:|realtime:)[A-Za-z0-9_\-.:]+$",
            example = "message"
        )
    )]
    pub event: String,
    /// Any JSON value, at most 10240 bytes as compact JSON (larger is a 413).
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value, example = json!({"text": "hi"})))]
    pub data: serde_json::Value,
    /// Same as the `Idempotency-Key` header; both given and different is a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255, pattern = r"^[!-~]+$"))]
    pub idempotency_key: Option<String>,
}

/// A published event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "message_id": "01JD2Q7W3M5X8Y9Z0A1B2C3D4E", "channel": "room-42", "epoch": "ch_01JD2Q7W3M5X8Y9Z0A1B2C3D4E",
    "offset": 7, "event": "message", "published_at": "2026-11-22T12:01:00Z", "delivered": 3, "status": "published"
})))]
pub struct Published {
    /// Unique (a ULID); subscribers receive it with the event. Ids sort by time to the
    /// millisecond only: the order of a channel's messages is their `offset`.
    pub message_id: String,
    /// The channel.
    pub channel: String,
    /// The channel's epoch (see `Position`).
    pub epoch: String,
    /// The message's offset in the epoch: the order subscribers receive it in.
    pub offset: u64,
    /// The event name.
    pub event: String,
    /// When the event was accepted.
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub published_at: DateTime<Utc>,
    /// How many connections (on every node) the event was handed to.
    pub delivered: u32,
    /// Always `published`.
    pub status: String,
}

/// One message of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchMessage {
    /// An existing channel of the account.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 164, pattern = r"^[A-Za-z0-9_\-=@,.;]+$"))]
    pub channel: String,
    /// The event name, as in `publish`.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^(?!pusher:|pusher_internal:|realtime:)[A-Za-z0-9_\-.:]+$"
        )
    )]
    pub event: String,
    /// Any JSON value, at most 10240 bytes as compact JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub data: serde_json::Value,
}

/// Publish 1-100 messages at once. All or nothing: one bad message rejects the batch
/// (its index is in the problem's `errors[].pointer`), and each message is charged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"messages": [{"channel": "room-42", "event": "message", "data": {"text": "hi"}}]})))]
pub struct PublishBatchRequest {
    /// The messages, published in this order.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub messages: Vec<BatchMessage>,
    /// Same as the `Idempotency-Key` header; both given and different is a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255, pattern = r"^[!-~]+$"))]
    pub idempotency_key: Option<String>,
}

/// The outcome of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchPublished {
    /// How many messages were published (all of them).
    pub published: u32,
    /// One entry per message, in request order.
    pub messages: Vec<Published>,
}
