//! `realtime.token.issue` and `realtime.token.revoke`: client tokens for the WebSocket gateway.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a token allows its holder to do on a channel. A closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Receive the channel's events.
    Subscribe,
    /// Publish events to the channel from the WebSocket (metered like a REST publish).
    Publish,
    /// Join the presence set of presence channels.
    Presence,
    /// Send user messages and commands to the account's users from the WebSocket
    /// (metered like the REST calls; the sender is the connection's client).
    Message,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 4] =
        [Capability::Subscribe, Capability::Publish, Capability::Presence, Capability::Message];
}

/// Issue a client token limited to channels and capabilities.
///
/// `client_id` and `user_id` are both accepted: the documented examples send `client_id`,
/// the capability table lists `user_id`. When only one is given the other defaults to it.
/// When `channels` is omitted the token allows every channel of the account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"client_id": "user_42", "channels": ["room-42"], "capabilities": ["subscribe", "presence"], "ttl_seconds": 3600})))]
pub struct TokenIssueRequest {
    /// The id of the user the connection belongs to; user-addressed messages and
    /// `presence` use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 128, min_length = 1, pattern = r"^[A-Za-z0-9_\-.:@|]+$", example = "user_42")
    )]
    pub user_id: Option<String>,
    /// The id of the client; `user.disconnect` addresses it. Defaults to `user_id`, or to a
    /// generated `anon_…` id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 128, min_length = 1, pattern = r"^[A-Za-z0-9_\-.:@|]+$", example = "user_42")
    )]
    pub client_id: Option<String>,
    /// The channels the token may use; omitted means every channel of the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<Vec<crate::channel::ChannelName>>, max_items = 100, example = json!(["room-42"]))
    )]
    pub channels: Option<Vec<String>>,
    /// What the token allows; defaults to `["subscribe"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_items = 4))]
    pub capabilities: Option<Vec<Capability>>,
    /// Lifetime in seconds; defaults to 3600, and values above `MAX_TTL_SECONDS` (86400)
    /// are clamped to it.
    #[serde(default, deserialize_with = "crate::integer::option_u32", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4294967295_i64, format = Int64, example = 3600))]
    pub ttl_seconds: Option<u32>,
    /// Same as the `Idempotency-Key` header; both given and different is a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255, pattern = r"^[!-~]+$"))]
    pub idempotency_key: Option<String>,
}

/// A signed client token and where to use it. Its `Debug` hides the token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyXzQyIn0.sig",
    "client_id": "user_42",
    "user_id": "user_42",
    "jti": "01JD2Q7W3M5X8Y9Z0A1B2C3D4E",
    "expires_at": "2026-11-22T13:00:00Z",
    "endpoint": "ws://127.0.0.1:8080/v1/realtime/ws",
    "channels": ["room-42"],
    "capabilities": ["subscribe", "presence"]
})))]
pub struct RealtimeToken {
    /// The token (a JWT); pass it to the `endpoint` as `?token=` or `Authorization: Bearer`.
    pub token: String,
    /// The client id the token is bound to.
    pub client_id: String,
    /// The user id the token is bound to, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The token's unique id, usable with `token.revoke`.
    pub jti: String,
    /// When the token stops working; a live socket using it is closed then.
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// The WebSocket URL to connect to.
    pub endpoint: String,
    /// The channels the token allows; absent when it allows every channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// The capabilities the token grants.
    pub capabilities: Vec<Capability>,
}

/// Revoke a token, by the token itself or by its `jti`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"token_or_jti": "01JD2Q7W3M5X8Y9Z0A1B2C3D4E"})))]
pub struct TokenRevokeRequest {
    /// The whole token, or its `jti`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 4096))]
    pub token_or_jti: String,
    /// Same as the `Idempotency-Key` header; both given and different is a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255, pattern = r"^[!-~]+$"))]
    pub idempotency_key: Option<String>,
}

/// The outcome of a revocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"revoked": true, "jti": "01JD2Q7W3M5X8Y9Z0A1B2C3D4E", "disconnected": 1})))]
pub struct TokenRevoked {
    /// Always true: the token is refused from now on (revoking twice is not an error).
    pub revoked: bool,
    /// The revoked token's id.
    pub jti: String,
    /// How many live sockets using the token were closed.
    pub disconnected: u32,
}

impl std::fmt::Debug for RealtimeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealtimeToken")
            .field("token", &"<redacted>")
            .field("client_id", &self.client_id)
            .field("user_id", &self.user_id)
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .field("endpoint", &self.endpoint)
            .field("channels", &self.channels)
            .field("capabilities", &self.capabilities)
            .finish()
    }
}

/// Hides `token_or_jti`, which may be a whole token rather than its `jti`.
impl std::fmt::Debug for TokenRevokeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRevokeRequest")
            .field("token_or_jti", &"<redacted>")
            .field("idempotency_key", &self.idempotency_key)
            .finish()
    }
}
