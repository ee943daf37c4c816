//! `realtime.presence.get`: who is live on a presence channel.

use serde::{Deserialize, Serialize};

/// One present client. Several sockets of one client count once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresenceMember {
    /// The client id of the member's token.
    pub client_id: String,
    /// The user id of the member's token, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
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
