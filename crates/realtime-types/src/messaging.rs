//! User-addressed messages (seed 002): `realtime.user.message.send`,
//! `realtime.user.command.send` and `realtime.user.command.get`.
//!
//! A user is every live connection whose token carries that `user_id`, on any node.
//! - **realtime** messages go to the user's live connections and are lost when there is
//!   none; nothing is stored.
//! - **reliable** messages are stored in the user's stream before the call answers, pushed
//!   at once to the live connections, and delivered again (in send order, with a higher
//!   `delivery_count`) on every connect until the user acks them. One cursor per user:
//!   an `ack` from any of the user's devices covers that message and every earlier one,
//!   for all of them. At-least-once: a client dedupes by `message_id`, and acks in
//!   `sequence` order (a live message can arrive among the ones redelivered on connect;
//!   acking it first would acknowledge earlier ones not yet read).
//! - **commands** ask the user's live connections for an answer; the first response
//!   wins.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a user message is delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Fire and forget: to the live connections only.
    #[default]
    Realtime,
    /// At least once: stored, and delivered until acknowledged.
    Reliable,
}

/// Who sent a user message or command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SenderType {
    /// A backend, through the REST API.
    #[default]
    Server,
    /// A client.
    Client,
}

/// Send a message to a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "target_user_id": "user_123", "delivery": "reliable",
    "payload": {"type": "test-reliable", "data": {"text": "Hello, Reliable World!"}},
    "sender_type": "server", "sender_id": "backend_1"
})))]
pub struct UserMessageSendRequest {
    /// The user: every live connection whose token carries this `user_id`.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_\-.:@|]+$", example = "user_123")
    )]
    pub target_user_id: String,
    /// `realtime` (default) or `reliable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// Any JSON value, at most 10240 bytes; its shape is the application's.
    pub payload: serde_json::Value,
    /// `server` (default) or `client`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_type: Option<SenderType>,
    /// Who sent it, for the recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_\-.:@|]+$"))]
    pub sender_id: Option<String>,
    /// Same as the `Idempotency-Key` header; both given and different is a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255, pattern = r"^[!-~]+$"))]
    pub idempotency_key: Option<String>,
}

/// A sent user message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "message_id": "um_01JD2Q7W3M5X8Y9Z0A1B2C3D4E", "target_user_id": "user_123", "delivery": "reliable",
    "delivered": 2, "sequence": 7
})))]
pub struct UserMessageSent {
    /// The message's id; a reliable message is acknowledged with it.
    pub message_id: String,
    /// The user.
    pub target_user_id: String,
    /// How it is delivered.
    pub delivery: Delivery,
    /// How many live connections (on every node) it was pushed to now.
    pub delivered: u32,
    /// For a reliable message: its place in the user's stream (1, 2, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

/// Send a command to a user and (by default) wait for the first response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "target_user_id": "user_123", "type": "CLIENT_SERVER:CREATE_CANVAS", "data": {"text": "Hello, Command World!"},
    "sender_type": "server", "sender_id": "backend_1", "wait_for_response": true, "timeout": 30
})))]
pub struct UserCommandSendRequest {
    /// The user.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_\-.:@|]+$", example = "user_123")
    )]
    pub target_user_id: String,
    /// The command's type, for the client.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub command_type: String,
    /// Any JSON value, at most 10240 bytes.
    pub data: serde_json::Value,
    /// `server` (default) or `client`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_type: Option<SenderType>,
    /// Who sent it, for the recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_\-.:@|]+$"))]
    pub sender_id: Option<String>,
    /// Wait for the response (default true); else answer at once with the command, to be
    /// read later with `realtime.user.command.get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_response: Option<bool>,
    /// Seconds the command can be answered, 1-1800 (default 1800, as the seed's SDK). The
    /// HTTP call waits at most `COMMAND_MAX_WAIT_SECONDS` (25) of them: past that it
    /// answers 504 `COMMAND_TIMEOUT`, and the response, if one comes before the command
    /// expires, is read with `realtime.user.command.get`.
    #[serde(default, deserialize_with = "crate::integer::option_u32", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1800))]
    pub timeout: Option<u32>,
    /// Same as the `Idempotency-Key` header; both given and different is a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255, pattern = r"^[!-~]+$"))]
    pub idempotency_key: Option<String>,
}

/// Where a command stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Sent; no response yet.
    Pending,
    /// A client responded; `response` holds it.
    Answered,
    /// Its timeout passed without a response.
    Expired,
}

/// A command and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "command_id": "cmd_01JD2Q7W3M5X8Y9Z0A1B2C3D4E", "target_user_id": "user_123",
    "type": "CLIENT_SERVER:CREATE_CANVAS", "status": "answered", "response": {"canvas_id": "c1"},
    "expires_at": "2026-11-22T12:30:00Z"
})))]
pub struct UserCommand {
    /// The command's id.
    pub command_id: String,
    /// The user.
    pub target_user_id: String,
    /// The command's type.
    #[serde(rename = "type")]
    pub command_type: String,
    /// Where it stands.
    pub status: CommandStatus,
    /// The first client response, when answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<serde_json::Value>,
    /// When it can no longer be answered.
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub expires_at: DateTime<Utc>,
}
