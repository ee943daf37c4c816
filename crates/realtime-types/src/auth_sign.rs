//! `realtime.auth.sign`: vendor-native channel authorization for browser and mobile clients.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::token::Capability;

/// A realtime protocol: this server's own, or a vendor whose client libraries it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Vendor {
    /// This server's own WebSocket protocol (see the AsyncAPI document).
    Realtime,
    /// Pusher Channels (protocol 7).
    Pusher,
    /// Ably (token requests).
    Ably,
    /// Liveblocks (access tokens).
    Liveblocks,
}

/// Sign a channel authorization for a client.
///
/// Pusher signs only the first channel and needs `socket_id` (and `channel_data` for a
/// `presence-` channel); Ably and Liveblocks sign every channel; `realtime` returns a
/// token of this server's own gateway. `ttl_seconds` is clamped to `MAX_TTL_SECONDS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"client_id": "user_42", "channels": ["private-room-42"], "vendor": "pusher", "socket_id": "1234.5678"})))]
pub struct AuthSignRequest {
    /// The client the authorization is bound to.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_\-.:@|]+$", example = "user_42")
    )]
    pub client_id: String,
    /// The channels to authorize (1-100); Pusher signs only the first.
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Vec<crate::channel::ChannelName>, min_items = 1, max_items = 100)
    )]
    pub channels: Vec<String>,
    /// What to grant; defaults to `["subscribe"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_items = 4))]
    pub capabilities: Option<Vec<Capability>>,
    /// The protocol to sign for; defaults to the server's configured vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Vendor>,
    /// Lifetime in seconds (Ably, Liveblocks, realtime); clamped to 86400.
    #[serde(default, deserialize_with = "crate::integer::option_u32", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4294967295_i64, format = Int64))]
    pub ttl_seconds: Option<u32>,
    /// Pusher only, required: the client's socket id, e.g. `1234.5678`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]+\.[0-9]+$", max_length = 64, example = "1234.5678"))]
    pub socket_id: Option<String>,
    /// Pusher presence channels only, required there: the member's `user_id` and
    /// `user_info`, signed exactly as returned in the response's `channel_data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub channel_data: Option<serde_json::Map<String, serde_json::Value>>,
    /// Same as the `Idempotency-Key` header; both given and different is a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255, pattern = r"^[!-~]+$"))]
    pub idempotency_key: Option<String>,
}

/// An Ably TokenRequest, signed with the configured Ably key.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AblyTokenRequest {
    /// `<appId>.<keyId>`.
    pub key_name: String,
    /// Lifetime in milliseconds.
    pub ttl: u64,
    /// Canonical capability JSON, e.g. `{"room-42":["subscribe"]}`.
    pub capability: String,
    /// The client id.
    pub client_id: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// A random string of at least 16 characters.
    pub nonce: String,
    /// base64(HMAC-SHA256(key secret, the documented string to sign)).
    pub mac: String,
}

/// A signed authorization in the requested vendor's own format.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "vendor", rename_all = "snake_case")]
pub enum VendorToken {
    /// A gateway token of this server.
    Realtime {
        /// A JWT for the WebSocket gateway.
        token: String,
        /// When it expires.
        #[serde(serialize_with = "crate::time::rfc3339")]
        expires_at: DateTime<Utc>,
    },
    /// A Pusher channel authorization. The whole answer is what pusher-js's
    /// `channelAuthorization` endpoint returns: it reads `auth` and `channel_data` and
    /// ignores the rest, so an app's backend can hand it back as it is.
    Pusher {
        /// `<app key>:<hex HMAC-SHA256(secret, socket_id:channel[:channel_data])>`.
        token: String,
        /// The same as `token`, under the name pusher-js reads.
        auth: String,
        /// The channel that was signed (the first one).
        channel: String,
        /// For presence channels: the exact JSON string that was signed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel_data: Option<String>,
    },
    /// An Ably TokenRequest, to exchange for a token at Ably.
    Ably {
        /// The TokenRequest as a JSON string.
        token: String,
        /// The same TokenRequest as an object.
        token_request: AblyTokenRequest,
    },
    /// A Liveblocks access token.
    Liveblocks {
        /// A JWT with `perms` per channel.
        token: String,
        /// When it expires.
        #[serde(serialize_with = "crate::time::rfc3339")]
        expires_at: DateTime<Utc>,
    },
}

impl VendorToken {
    /// The vendor this token is for.
    pub fn vendor(&self) -> Vendor {
        match self {
            VendorToken::Realtime { .. } => Vendor::Realtime,
            VendorToken::Pusher { .. } => Vendor::Pusher,
            VendorToken::Ably { .. } => Vendor::Ably,
            VendorToken::Liveblocks { .. } => Vendor::Liveblocks,
        }
    }
}

/// Hides the `mac`, which proves knowledge of the Ably key secret.
impl std::fmt::Debug for AblyTokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AblyTokenRequest")
            .field("key_name", &self.key_name)
            .field("ttl", &self.ttl)
            .field("capability", &self.capability)
            .field("client_id", &self.client_id)
            .field("timestamp", &self.timestamp)
            .field("nonce", &self.nonce)
            .field("mac", &"<redacted>")
            .finish()
    }
}

/// Hides every variant's `token`: each one lets its holder in (the Ably one carries the
/// `mac`).
impl std::fmt::Debug for VendorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VendorToken::Realtime { token: _, expires_at } => {
                f.debug_struct("Realtime").field("token", &"<redacted>").field("expires_at", expires_at).finish()
            }
            VendorToken::Pusher { token: _, auth: _, channel, channel_data } => f
                .debug_struct("Pusher")
                .field("token", &"<redacted>")
                .field("auth", &"<redacted>")
                .field("channel", channel)
                .field("channel_data", channel_data)
                .finish(),
            VendorToken::Ably { token: _, token_request } => {
                f.debug_struct("Ably").field("token", &"<redacted>").field("token_request", token_request).finish()
            }
            VendorToken::Liveblocks { token: _, expires_at } => {
                f.debug_struct("Liveblocks").field("token", &"<redacted>").field("expires_at", expires_at).finish()
            }
        }
    }
}
