//! The handlers of every operation, the route table, and the router built from them.
//!
//! Handlers only extract, delegate to [`RealtimeApi`](crate::RealtimeApi) and map the
//! result; they hold no logic. Their doc comments become the operations' summaries and
//! descriptions in the document.

#![allow(deprecated)] // The seed-000 aliases are deprecated on purpose, and registered here.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use realtime_types::*;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Authenticated, ChannelPath, IdempotencyHeader, ValidJson, ValidQuery, merge_idempotency_keys};
use crate::responses::{BadQuery, Billable, ChannelNotFound, DeleteErrors, ReadErrors, TokenNotFound, WriteErrors};
use crate::{ApiError, Reply, SharedApi};

/// One operation of the contract: how the router serves it and how clients call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationRoute {
    /// The operationId (the capability name).
    pub id: &'static str,
    /// The HTTP method, upper case.
    pub method: &'static str,
    /// The path template, with `{channel}` where a channel name goes.
    pub path: &'static str,
    /// True for the seed-000 SDK aliases.
    pub deprecated: bool,
}

macro_rules! operations {
    ($($name:ident = $id:literal, $method:literal, $path:literal, $deprecated:literal;)*) => {
        $(
            #[doc = concat!("`", $id, "`: `", $method, " ", $path, "`")]
            pub const $name: OperationRoute = OperationRoute { id: $id, method: $method, path: $path, deprecated: $deprecated };
        )*
        /// Every operation the router serves; a test holds this table equal to the document.
        pub const OPERATIONS: &[OperationRoute] = &[$($name),*];
    };
}

operations! {
    TOKEN_ISSUE = "realtime.token.issue", "POST", "/v1/realtime/token/issue", false;
    TOKEN_REVOKE = "realtime.token.revoke", "POST", "/v1/realtime/token/revoke", false;
    CHANNEL_CREATE = "realtime.channel.create", "POST", "/v1/realtime/channel/create", false;
    CHANNEL_GET = "realtime.channel.get", "GET", "/v1/realtime/channel/get/{channel}", false;
    CHANNEL_LIST = "realtime.channel.list", "GET", "/v1/realtime/channel/list", false;
    CHANNEL_DELETE = "realtime.channel.delete", "DELETE", "/v1/realtime/channel/delete/{channel}", false;
    PUBLISH = "realtime.publish", "POST", "/v1/realtime/publish", false;
    PUBLISH_BATCH = "realtime.publish.batch", "POST", "/v1/realtime/publish/batch", false;
    PRESENCE_GET = "realtime.presence.get", "GET", "/v1/realtime/presence/get/{channel}", false;
    AUTH_SIGN = "realtime.auth.sign", "POST", "/v1/realtime/auth/sign", false;
    EVENT_TYPES = "realtime.event.types", "GET", "/v1/realtime/event/types", false;
    USER_DISCONNECT = "realtime.user.disconnect", "POST", "/v1/realtime/user/disconnect", false;
    ACCOUNT_GET = "account.get", "GET", "/v1/account", false;
    ACCOUNT_TOPUP = "account.topup", "POST", "/v1/account/topup", false;
    TOKEN_ISSUE_ALIAS = "realtime.token.issue.alias", "POST", "/v1/realtime/token", true;
    CHANNEL_CREATE_ALIAS = "realtime.channel.create.alias", "POST", "/v1/realtime/channels", true;
    PRESENCE_GET_ALIAS = "realtime.presence.get.alias", "GET", "/v1/realtime/channels/{channel}/presence", true;
}

/// The router of every operation, over any implementation of the API, with
/// problem+json answers for unknown paths and methods.
pub fn router(api: SharedApi) -> axum::Router {
    let (router, _) = openapi_router().split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(api)
        .layer(axum::middleware::from_fn(crate::error::attach_request_id))
}

/// The routes and their document, registered together.
pub(crate) fn openapi_router() -> OpenApiRouter<SharedApi> {
    OpenApiRouter::with_openapi(crate::doc::base())
        .routes(routes!(token_issue))
        .routes(routes!(token_revoke))
        .routes(routes!(channel_create))
        .routes(routes!(channel_get))
        .routes(routes!(channel_list))
        .routes(routes!(channel_delete))
        .routes(routes!(publish))
        .routes(routes!(publish_batch))
        .routes(routes!(presence_get))
        .routes(routes!(auth_sign))
        .routes(routes!(event_types))
        .routes(routes!(user_disconnect))
        .routes(routes!(account_get))
        .routes(routes!(account_topup))
        .routes(routes!(token_issue_alias))
        .routes(routes!(channel_create_alias))
        .routes(routes!(presence_get_alias))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no operation has this path; see /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "this path does not accept this method")
}

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        let mut response = (StatusCode::OK, Json(self.body)).into_response();
        if self.replayed {
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}

/// Issue a client token for the WebSocket gateway.
///
/// The token is limited to `channels` (all channels of the account when omitted) and
/// `capabilities` (default `subscribe`); its lifetime is clamped to `MAX_TTL_SECONDS`.
/// Connect to `endpoint` with it. Billable. An idempotent replay returns the same token,
/// even when it has been revoked since (the gateway then refuses it with 4003).
#[utoipa::path(post, path = "/v1/realtime/token/issue", operation_id = "realtime.token.issue", tag = "token",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body replay the first response.")),
    request_body = TokenIssueRequest,
    responses((status = 200, description = "The token.", body = RealtimeToken,
        headers(("Idempotent-Replayed" = bool, description = "`true` when this is the stored response of an earlier request."))),
        Billable, WriteErrors),
    security(("bearer" = [])))]
async fn token_issue(
    State(api): State<SharedApi>,
    Authenticated(caller): Authenticated,
    IdempotencyHeader(header): IdempotencyHeader,
    ValidJson(request): ValidJson<TokenIssueRequest>,
) -> Result<Reply<RealtimeToken>, ApiError> {
    let key = merge_idempotency_keys(header, request.idempotency_key.as_deref())?;
    api.token_issue(&caller, key, request).await
}

/// Issue a client token (deprecated SDK path).
///
/// The path the SDKs use; identical to `POST /v1/realtime/token/issue`.
#[deprecated = "use POST /v1/realtime/token/issue"]
#[utoipa::path(post, path = "/v1/realtime/token", operation_id = "realtime.token.issue.alias", tag = "token",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body replay the first response.")),
    request_body = TokenIssueRequest,
    responses((status = 200, description = "The token.", body = RealtimeToken,
        headers(("Idempotent-Replayed" = bool, description = "`true` when this is the stored response of an earlier request."))),
        Billable, WriteErrors),
    security(("bearer" = [])))]
async fn token_issue_alias(
    state: State<SharedApi>,
    caller: Authenticated,
    header: IdempotencyHeader,
    body: ValidJson<TokenIssueRequest>,
) -> Result<Reply<RealtimeToken>, ApiError> {
    token_issue(state, caller, header, body).await
}

/// Revoke a token.
///
/// By the whole token or its `jti`. Every live socket using the token is closed at once
/// with close code 4003, and the token is refused until it expires. Revoking twice is not
/// an error.
#[utoipa::path(post, path = "/v1/realtime/token/revoke", operation_id = "realtime.token.revoke", tag = "token",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body replay the first response.")),
    request_body = TokenRevokeRequest,
    responses((status = 200, description = "The token is revoked.", body = TokenRevoked,
        headers(("Idempotent-Replayed" = bool, description = "`true` when this is the stored response of an earlier request."))),
        TokenNotFound, WriteErrors),
    security(("bearer" = [])))]
async fn token_revoke(
    State(api): State<SharedApi>,
    Authenticated(caller): Authenticated,
    IdempotencyHeader(header): IdempotencyHeader,
    ValidJson(request): ValidJson<TokenRevokeRequest>,
) -> Result<Reply<TokenRevoked>, ApiError> {
    let key = merge_idempotency_keys(header, request.idempotency_key.as_deref())?;
    api.token_revoke(&caller, key, request).await
}

/// Create a channel.
///
/// Idempotent by name: creating an existing channel with the same type returns it with
/// `created: false` (and is not charged); with another type it is a 409 `CONFLICT`.
/// Billable when a channel is created.
#[utoipa::path(post, path = "/v1/realtime/channel/create", operation_id = "realtime.channel.create", tag = "channel",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body replay the first response.")),
    request_body = ChannelCreateRequest,
    responses((status = 200, description = "The channel.", body = ChannelCreated,
        headers(("Idempotent-Replayed" = bool, description = "`true` when this is the stored response of an earlier request."))),
        Billable, WriteErrors),
    security(("bearer" = [])))]
async fn channel_create(
    State(api): State<SharedApi>,
    Authenticated(caller): Authenticated,
    IdempotencyHeader(header): IdempotencyHeader,
    ValidJson(request): ValidJson<ChannelCreateRequest>,
) -> Result<Reply<ChannelCreated>, ApiError> {
    let key = merge_idempotency_keys(header, request.idempotency_key.as_deref())?;
    api.channel_create(&caller, key, request).await
}

/// Create a channel (deprecated SDK path).
///
/// The path the SDKs use; identical to `POST /v1/realtime/channel/create`.
#[deprecated = "use POST /v1/realtime/channel/create"]
#[utoipa::path(post, path = "/v1/realtime/channels", operation_id = "realtime.channel.create.alias", tag = "channel",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body replay the first response.")),
    request_body = ChannelCreateRequest,
    responses((status = 200, description = "The channel.", body = ChannelCreated,
        headers(("Idempotent-Replayed" = bool, description = "`true` when this is the stored response of an earlier request."))),
        Billable, WriteErrors),
    security(("bearer" = [])))]
async fn channel_create_alias(
    state: State<SharedApi>,
    caller: Authenticated,
    header: IdempotencyHeader,
    body: ValidJson<ChannelCreateRequest>,
) -> Result<Reply<ChannelCreated>, ApiError> {
    channel_create(state, caller, header, body).await
}

/// Get a channel.
///
/// With its live state: `subscriber_count` (sockets), `member_count` (presence channels)
/// and `last_published_at`.
#[utoipa::path(get, path = "/v1/realtime/channel/get/{channel}", operation_id = "realtime.channel.get", tag = "channel",
    params(("channel" = String, Path, description = "The channel name.", max_length = 164)),
    responses((status = 200, description = "The channel.", body = Channel), ChannelNotFound, ReadErrors),
    security(("bearer" = [])))]
async fn channel_get(
    State(api): State<SharedApi>,
    Authenticated(caller): Authenticated,
    ChannelPath(channel): ChannelPath,
) -> Result<Json<Channel>, ApiError> {
    api.channel_get(&caller, channel).await.map(Json)
}

/// List the account's channels.
///
/// Ordered by name, a page at a time; pass `next_cursor` back as `cursor` for the next
/// page. The cursor stays correct while channels are created and deleted.
#[utoipa::path(get, path = "/v1/realtime/channel/list", operation_id = "realtime.channel.list", tag = "channel",
    params(ChannelListQuery),
    responses((status = 200, description = "A page of channels.", body = ChannelList), BadQuery, ReadErrors),
    security(("bearer" = [])))]
async fn channel_list(
    State(api): State<SharedApi>,
    Authenticated(caller): Authenticated,
    ValidQuery(query): ValidQuery<ChannelListQuery>,
) -> Result<Json<ChannelList>, ApiError> {
    api.channel_list(&caller, query).await.map(Json)
}

/// Delete a channel.
///
/// Every subscriber receives `unsubscribed` with reason `channel_deleted` and stops
/// receiving its events; the name can be created again afterwards.
#[utoipa::path(delete, path = "/v1/realtime/channel/delete/{channel}", operation_id = "realtime.channel.delete", tag = "channel",
    params(("channel" = String, Path, description = "The channel name.", max_length = 164),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key replays the first response.")),
    responses((status = 200, description = "The channel is deleted.", body = ChannelDeleted,
        headers(("Idempotent-Replayed" = bool, description = "`true` when this is the stored response of an earlier request."))),
        DeleteErrors),
    security(("bearer" = [])))]
async fn channel_delete(
    State(api): State<SharedApi>,
    Authenticated(caller): Authenticated,
    IdempotencyHeader(key): IdempotencyHeader,
    ChannelPath(channel): ChannelPath,
) -> Result<Reply<ChannelDeleted>, ApiError> {
    api.channel_delete(&caller, key, channel).await
}

/// Publish an event to a channel.
///
/// Every subscriber of the channel receives it, in publish order, with the returned
/// `message_id`; `delivered` counts the connections it was handed to. Billable.
#[utoipa::path(post, path = "/v1/realtime/publish", operation_id = "realtime.publish", tag = "publish",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body replay the first response.")),
    request_body = PublishRequest,
    responses((status = 200, description = "The event is published.", body = Published,
        headers(("Idempotent-Replayed" = bool, description = "`true` when this is the stored response of an earlier request."))),
        Billable, ChannelNotFound, WriteErrors),
    security(("bearer" = [])))]
async fn publish(
    State(api): State<SharedApi>,
    Authenticated(caller): Authenticated,
    IdempotencyHeader(header): IdempotencyHeader,
    ValidJson(request): ValidJson<PublishRequest>,
) -> Result<Reply<Published>, ApiError> {
    let key = merge_idempotency_keys(header, request.idempotency_key.as_deref())?;
    api.publish(&caller, key, request).await
}

/// Publish several events at once.
///
/// All or nothing: one bad message (or unknown channel) rejects the batch, and the
/// problem's `errors[].pointer` names its index. Each message is charged.
#[utoipa::path(post, path = "/v1/realtime/publish/batch", operation_id = "realtime.publish.batch", tag = "publish",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body replay the first response.")),
    request_body = PublishBatchRequest,
    responses((status = 200, description = "Every event is published.", body = BatchPublished,
        headers(("Idempotent-Replayed" = bool, description = "`true` when this is the stored response of an earlier request."))),
        Billable, ChannelNotFound, WriteErrors),
    security(("bearer" = [])))]
async fn publish_batch(
    State(api): State<SharedApi>,
    Authenticated(caller): Authenticated,
    IdempotencyHeader(header): IdempotencyHeader,
    ValidJson(request): ValidJson<PublishBatchRequest>,
) -> Result<Reply<BatchPublished>, ApiError> {
    let key = merge_idempotency_keys(header, request.idempotency_key.as_deref())?;
    api.publish_batch(&caller, key, request).await
}

/// Get the live members of a channel.
///
/// Exactly the clients with a live socket subscribed with the `presence` capability;
/// several sockets of one client count once. Empty for non-presence channels.
#[utoipa::path(get, path = "/v1/realtime/presence/get/{channel}", operation_id = "realtime.presence.get", tag = "presence",
    params(("channel" = String, Path, description = "The channel name.", max_length = 164)),
    responses((status = 200, description = "The members.", body = Presence), ChannelNotFound, ReadErrors),
    security(("bearer" = [])))]
async fn presence_get(
    State(api): State<SharedApi>,
    Authenticated(caller): Authenticated,
    ChannelPath(channel): ChannelPath,
) -> Result<Json<Presence>, ApiError> {
    api.presence_get(&caller, channel).await.map(Json)
}

/// Get the live members of a channel (deprecated SDK path).
///
/// The path the SDKs use; identical to `GET /v1/realtime/presence/get/{channel}`.
#[deprecated = "use GET /v1/realtime/presence/get/{channel}"]
#[utoipa::path(get, path = "/v1/realtime/channels/{channel}/presence", operation_id = "realtime.presence.get.alias", tag = "presence",
    params(("channel" = String, Path, description = "The channel name.", max_length = 164)),
    responses((status = 200, description = "The members.", body = Presence), ChannelNotFound, ReadErrors),
    security(("bearer" = [])))]
async fn presence_get_alias(
    state: State<SharedApi>,
    caller: Authenticated,
    channel: ChannelPath,
) -> Result<Json<Presence>, ApiError> {
    presence_get(state, caller, channel).await
}

/// Sign a vendor-native channel authorization.
///
/// For Pusher (`key:signature` over `socket_id:channel[:channel_data]`, first channel
/// only), Ably (a TokenRequest), Liveblocks (an access token) or this server's own
/// gateway. Billable.
#[utoipa::path(post, path = "/v1/realtime/auth/sign", operation_id = "realtime.auth.sign", tag = "auth",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body replay the first response.")),
    request_body = AuthSignRequest,
    responses((status = 200, description = "The signed authorization.", body = VendorToken,
        headers(("Idempotent-Replayed" = bool, description = "`true` when this is the stored response of an earlier request."))),
        Billable, WriteErrors),
    security(("bearer" = [])))]
async fn auth_sign(
    State(api): State<SharedApi>,
    Authenticated(caller): Authenticated,
    IdempotencyHeader(header): IdempotencyHeader,
    ValidJson(request): ValidJson<AuthSignRequest>,
) -> Result<Reply<VendorToken>, ApiError> {
    let key = merge_idempotency_keys(header, request.idempotency_key.as_deref())?;
    api.auth_sign(&caller, key, request).await
}

/// List the event types a subscriber can receive.
///
/// A closed set: exactly the `type`s of the frames the WebSocket gateway sends.
#[utoipa::path(get, path = "/v1/realtime/event/types", operation_id = "realtime.event.types", tag = "event",
    responses((status = 200, description = "The event types.", body = EventTypes), ReadErrors),
    security(("bearer" = [])))]
async fn event_types(
    State(api): State<SharedApi>,
    Authenticated(caller): Authenticated,
) -> Result<Json<EventTypes>, ApiError> {
    api.event_types(&caller).await.map(Json)
}

/// Disconnect a client.
///
/// Closes every live socket of `client_id` with close code 4004, or with `channel` only
/// unsubscribes it from that channel (reason `disconnected_by_server`). Unknown clients
/// give `disconnected: 0`.
#[utoipa::path(post, path = "/v1/realtime/user/disconnect", operation_id = "realtime.user.disconnect", tag = "user",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body replay the first response.")),
    request_body = UserDisconnectRequest,
    responses((status = 200, description = "What was cut.", body = UserDisconnected,
        headers(("Idempotent-Replayed" = bool, description = "`true` when this is the stored response of an earlier request."))),
        ChannelNotFound, WriteErrors),
    security(("bearer" = [])))]
async fn user_disconnect(
    State(api): State<SharedApi>,
    Authenticated(caller): Authenticated,
    IdempotencyHeader(header): IdempotencyHeader,
    ValidJson(request): ValidJson<UserDisconnectRequest>,
) -> Result<Reply<UserDisconnected>, ApiError> {
    let key = merge_idempotency_keys(header, request.idempotency_key.as_deref())?;
    api.user_disconnect(&caller, key, request).await
}

/// Get the calling account and its balance.
#[utoipa::path(get, path = "/v1/account", operation_id = "account.get", tag = "account",
    responses((status = 200, description = "The account.", body = Account), ReadErrors),
    security(("bearer" = [])))]
async fn account_get(
    State(api): State<SharedApi>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Account>, ApiError> {
    api.account_get(&caller).await.map(Json)
}

/// Start a top-up.
///
/// Returns a checkout; the account is credited, exactly once, when the payer completes
/// it at `checkout_url`.
#[utoipa::path(post, path = "/v1/account/topup", operation_id = "account.topup", tag = "account",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body replay the first response.")),
    request_body = TopupRequest,
    responses((status = 200, description = "The checkout to complete.", body = Checkout,
        headers(("Idempotent-Replayed" = bool, description = "`true` when this is the stored response of an earlier request."))),
        WriteErrors),
    security(("bearer" = [])))]
async fn account_topup(
    State(api): State<SharedApi>,
    Authenticated(caller): Authenticated,
    IdempotencyHeader(header): IdempotencyHeader,
    ValidJson(request): ValidJson<TopupRequest>,
) -> Result<Reply<Checkout>, ApiError> {
    let key = merge_idempotency_keys(header, request.idempotency_key.as_deref())?;
    api.account_topup(&caller, key, request).await
}
