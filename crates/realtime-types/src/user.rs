//! `realtime.user.disconnect`: cut a client's live sockets.

use serde::{Deserialize, Serialize};

/// Disconnect a client, or with `channel` only unsubscribe it from that channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"client_id": "user_42"})))]
pub struct UserDisconnectRequest {
    /// The client id whose sockets to act on.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_\-.:@|]+$", example = "user_42")
    )]
    pub client_id: String,
    /// Only unsubscribe the client from this channel; the sockets stay open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 164, pattern = r"^[A-Za-z0-9_\-=@,.;]+$"))]
    pub channel: Option<String>,
    /// Same as the `Idempotency-Key` header; both given and different is a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255, pattern = r"^[!-~]+$"))]
    pub idempotency_key: Option<String>,
}

/// The outcome of a disconnect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"disconnected": 2})))]
pub struct UserDisconnected {
    /// How many sockets were closed (or, with `channel`, unsubscribed).
    pub disconnected: u32,
}
