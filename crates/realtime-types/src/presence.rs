//! `realtime.presence.get`: who is live on a presence channel.

use serde::{Deserialize, Serialize};

/// One present client. Several sockets of one client count once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresenceMember {
    /// The client id of the member's token; for a member that joined through the Pusher
    /// protocol, its `user_id`.
    pub client_id: String,
    /// The user id of the member's token, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// For a member that joined through the Pusher protocol: the `user_info` of its
    /// signed `channel_data`, as other members see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub user_info: Option<serde_json::Value>,
}

/// The live members of a channel, ordered by `client_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"channel": "room-42", "members": [{"client_id": "user_42", "user_id": "user_42"}], "count": 1})))]
pub struct Presence {
    /// The channel.
    pub channel: String,
    /// The members; empty for a channel that is not a presence channel.
    pub members: Vec<PresenceMember>,
    /// `members.len()`.
    pub count: u32,
}
