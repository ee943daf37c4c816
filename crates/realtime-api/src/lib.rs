//! The realtime API as a Rust trait, and the HTTP face built from any implementation of it.
//!
//! Without features this crate is what every party to the contract shares:
//!
//! - [`RealtimeApi`]: one async method per operation, typed request in,
//!   `Result<typed response, ApiError>` out. Methods are pure domain methods: validation
//!   and idempotency happen before they are called, once for every implementation.
//! - [`ApiError`]: the one error type, a problem with a stable code.
//! - [`operations`]: the route table (method and path of every operation).
//! - [`idempotency`]: idempotent execution over a small [`IdempotencyStore`] trait.
//!
//! With the `router` feature it adds the HTTP face: the handlers in [`routes`] carry
//! `#[utoipa::path]` attributes, [`router`] registers them with utoipa-axum's `routes!`,
//! and [`openapi`] is what that registration produces. A route therefore cannot exist
//! without being in the document, and the committed `openapi/realtime.openapi.json` is
//! held equal to [`openapi`] by a test. [`extract`] holds the extractors whose rejections
//! are problem+json; `ApiError` becomes a response in exactly one place.
//!
//! An implementation never builds an HTTP response: it returns values, this crate maps them.

#[cfg(feature = "router")]
pub mod asyncapi;
#[cfg(feature = "router")]
mod doc;
#[cfg(feature = "router")]
mod documented_errors;
pub mod error;
#[cfg(feature = "router")]
pub mod extract;
pub mod idempotency;
pub mod operations;
#[cfg(feature = "router")]
mod response;
#[cfg(feature = "router")]
pub mod routes;

use std::sync::Arc;

use async_trait::async_trait;
use realtime_types::*;

#[cfg(feature = "router")]
pub use asyncapi::{asyncapi, asyncapi_json};
#[cfg(feature = "router")]
pub use doc::{openapi, openapi_json};
pub use error::ApiError;
pub use idempotency::{Idempotency, IdempotencyKey, IdempotencyStore};
pub use operations::{OPERATIONS, OperationRoute};
#[cfg(feature = "router")]
pub use routes::router;

/// The authenticated caller of a request.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account the API key belongs to; every operation is scoped to it.
    pub account_id: String,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller").field("account_id", &self.account_id).finish()
    }
}

/// A bearer API key as sent by a client. Never printed.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a raw key.
    pub fn new(raw: impl Into<String>) -> Self {
        ApiKey(raw.into())
    }

    /// The raw key, for hashing. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// The answer to a state-changing call: the body, and whether it was replayed from an
/// earlier request with the same idempotency key (the router then sets
/// `Idempotent-Replayed: true`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<T> {
    /// The response body.
    pub body: T,
    /// True when this is the stored response of an earlier request.
    pub replayed: bool,
}

impl<T> Reply<T> {
    /// A fresh (not replayed) answer.
    pub fn fresh(body: T) -> Self {
        Reply { body, replayed: false }
    }

    /// A replayed answer.
    pub fn replayed(body: T) -> Self {
        Reply { body, replayed: true }
    }
}

/// The shared handle the router holds.
pub type SharedApi = Arc<dyn RealtimeApi>;

/// Every operation of the contract. Requests arrive validated against the documented
/// limits ([`realtime_types::Validate`]), and state-changing ones arrive through
/// [`Idempotency::run`]: an implementation sees each keyed request once, and makes it
/// crash-safe by committing [`idempotency::Seal::current`] with its effect.
#[async_trait]
pub trait RealtimeApi: Send + Sync + 'static {
    /// Resolves an API key to its caller; an unknown key is `ApiError::unauthenticated`.
    async fn authenticate(&self, key: &ApiKey) -> Result<Caller, ApiError>;

    /// `realtime.token.issue`
    async fn token_issue(&self, caller: &Caller, request: TokenIssueRequest) -> Result<RealtimeToken, ApiError>;
    /// `realtime.token.revoke`
    async fn token_revoke(&self, caller: &Caller, request: TokenRevokeRequest) -> Result<TokenRevoked, ApiError>;
    /// `realtime.channel.create`
    async fn channel_create(&self, caller: &Caller, request: ChannelCreateRequest) -> Result<ChannelCreated, ApiError>;
    /// `realtime.channel.get`
    async fn channel_get(&self, caller: &Caller, channel: String) -> Result<Channel, ApiError>;
    /// `realtime.channel.list`
    async fn channel_list(&self, caller: &Caller, query: ChannelListQuery) -> Result<ChannelList, ApiError>;
    /// `realtime.channel.delete`
    async fn channel_delete(&self, caller: &Caller, channel: String) -> Result<ChannelDeleted, ApiError>;
    /// `realtime.channel.history`
    async fn channel_history(&self, caller: &Caller, channel: String, query: HistoryQuery)
    -> Result<History, ApiError>;
    /// `realtime.publish`
    async fn publish(&self, caller: &Caller, request: PublishRequest) -> Result<Published, ApiError>;
    /// `realtime.publish.batch`
    async fn publish_batch(&self, caller: &Caller, request: PublishBatchRequest) -> Result<BatchPublished, ApiError>;
    /// `realtime.presence.get`
    async fn presence_get(&self, caller: &Caller, channel: String) -> Result<Presence, ApiError>;
    /// `realtime.auth.sign`
    async fn auth_sign(&self, caller: &Caller, request: AuthSignRequest) -> Result<VendorToken, ApiError>;
    /// `realtime.event.types`
    async fn event_types(&self, caller: &Caller) -> Result<EventTypes, ApiError>;
    /// `realtime.user.disconnect`
    async fn user_disconnect(
        &self,
        caller: &Caller,
        request: UserDisconnectRequest,
    ) -> Result<UserDisconnected, ApiError>;
    /// `realtime.user.message.send`
    async fn user_message_send(
        &self,
        caller: &Caller,
        request: UserMessageSendRequest,
    ) -> Result<UserMessageSent, ApiError>;
    /// `realtime.user.command.send`
    async fn user_command_send(
        &self,
        caller: &Caller,
        request: UserCommandSendRequest,
    ) -> Result<UserCommand, ApiError>;
    /// `realtime.user.command.get`
    async fn user_command_get(&self, caller: &Caller, command_id: String) -> Result<UserCommand, ApiError>;
    /// `account.get`
    async fn account_get(&self, caller: &Caller) -> Result<Account, ApiError>;
    /// `account.topup`
    async fn account_topup(&self, caller: &Caller, request: TopupRequest) -> Result<Checkout, ApiError>;
}
