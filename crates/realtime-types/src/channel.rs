//! `realtime.channel.*`: channels are explicit resources of an account.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth_sign::Vendor;

/// Who may subscribe to a channel and whether it tracks presence. A token's `channels`
/// list limits what it may publish to, and what private and presence channels it may
/// subscribe to; any token of the account may subscribe to a public channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChannelType {
    /// Any token of the account with the `subscribe` capability may subscribe, whether
    /// or not its `channels` list names the channel.
    #[default]
    Public,
    /// Only tokens whose `channels` list names it (or that have no list) may subscribe;
    /// Pusher clients need a signed `auth`.
    Private,
    /// Like private, and subscribers with the `presence` capability form its member set.
    Presence,
}

impl ChannelType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelType::Public => "public",
            ChannelType::Private => "private",
            ChannelType::Presence => "presence",
        }
    }
}

/// Create a channel. Creating an existing channel with the same type returns it; with
/// another type it is a 409 `CONFLICT`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"name": "room-42", "type": "presence"})))]
pub struct ChannelCreateRequest {
    /// The channel name: 1-164 bytes of `A-Z a-z 0-9 _ - = @ , . ;`.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 164, pattern = r"^[A-Za-z0-9_\-=@,.;]+$", example = "room-42")
    )]
    pub name: String,
    /// Defaults to `public`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub channel_type: Option<ChannelType>,
    /// Same as the `Idempotency-Key` header; both given and different is a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255, pattern = r"^[!-~]+$"))]
    pub idempotency_key: Option<String>,
}

/// A channel that exists (newly created or already there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"channel_id": "ch_01JD2Q7W3M5X8Y9Z0A1B2C3D4E", "name": "room-42", "type": "presence", "created": true})))]
pub struct ChannelCreated {
    /// The channel's unique id.
    pub channel_id: String,
    /// The channel name.
    pub name: String,
    /// The channel type.
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    /// False when the channel already existed with this type.
    pub created: bool,
}

/// A channel and its live state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "channel_id": "ch_01JD2Q7W3M5X8Y9Z0A1B2C3D4E", "name": "room-42", "type": "presence",
    "vendor": "realtime", "created_at": "2026-11-22T12:00:00Z",
    "member_count": 2, "subscriber_count": 3, "last_published_at": "2026-11-22T12:01:00Z"
})))]
pub struct Channel {
    /// The channel's unique id.
    pub channel_id: String,
    /// The channel name.
    pub name: String,
    /// The channel type.
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    /// The protocol face the channel was created through.
    pub vendor: Vendor,
    /// When the channel was created.
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// Distinct present clients; only for presence channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_count: Option<u32>,
    /// Live sockets subscribed to the channel.
    pub subscriber_count: u32,
    /// When the last event was published; absent before the first.
    #[serde(serialize_with = "crate::time::option_rfc3339", default, skip_serializing_if = "Option::is_none")]
    pub last_published_at: Option<DateTime<Utc>>,
}

/// A channel name as the document describes it where a list of names is sent (the
/// wire carries a plain string): 1-164 bytes of `A-Z a-z 0-9 _ - = @ , . ;`.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(min_length = 1, max_length = 164, pattern = r"^[A-Za-z0-9_\-=@,.;]+$", example = "room-42")]
pub struct ChannelName(pub String);

/// Paging of `channel.list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ChannelListQuery {
    /// The `next_cursor` of the previous page. Any unpadded base64url string is a position
    /// in the list; only a `next_cursor` means "the next page".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        param(max_length = 512, pattern = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$")
    )]
    pub cursor: Option<String>,
    /// Page size, 1-100; defaults to 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
}

/// One page of channels, ordered by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelList {
    /// The channels of this page.
    pub channels: Vec<Channel>,
    /// Pass as `cursor` to get the next page; absent on the last page. Stays correct while
    /// channels are created and deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What became of a deleted channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeleteStatus {
    /// The channel is gone and its subscribers were unsubscribed.
    Deleted,
}

/// The outcome of `channel.delete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"channel": "room-42", "deleted": true, "status": "deleted", "unsubscribed": 3})))]
pub struct ChannelDeleted {
    /// The channel name.
    pub channel: String,
    /// Always true.
    pub deleted: bool,
    /// Always `deleted`.
    pub status: DeleteStatus,
    /// How many live subscriptions were ended.
    pub unsubscribed: u32,
}
