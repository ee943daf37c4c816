//! The handlers of every operation, and the router built from them.
//!
//! Handlers only extract, delegate to [`RealtimeApi`](crate::RealtimeApi) (state-changing
//! ones through [`Idempotency`]) and map the result; they hold no logic. Their doc
//! comments become the operations' summaries and descriptions in the document.

#![allow(deprecated)] // The seed-000 aliases are deprecated on purpose, and registered here.

use std::future::Future;

use axum::Json;
use axum::extract::State;
use realtime_types::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::documented_errors::{
    BadQuery, Billable, ChannelNotFound, CommandNotFound, CommandTimeout, DeleteErrors, ReadErrors, TokenNotFound,
    WriteErrors,
};
use crate::extract::{Authenticated, ChannelPath, IdPath, IdempotencyHeader, Keyed, ValidQuery};
use crate::operations::{self, OperationRoute};
use crate::{ApiError, Caller, Idempotency, Reply, SharedApi};

/// What the router serves: an implementation of the API, and where the idempotency keys
/// of its state-changing operations live.
#[derive(Clone)]
pub struct App {
    /// The implementation.
    pub api: SharedApi,
    /// Idempotent execution of every `POST` and `DELETE`.
    pub idempotency: Idempotency,
}

impl App {
    /// Runs a state-changing operation: once per idempotency key, through `effect`.
    async fn write<R, T, F, Fut>(
        &self,
        caller: Caller,
        operation: OperationRoute,
        keyed: Keyed<R>,
        effect: F,
    ) -> Result<Reply<T>, ApiError>
    where
        F: FnOnce(SharedApi, Caller, R) -> Fut,
        Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let Keyed { request, key, fingerprint } = keyed;
        let run = effect(self.api.clone(), caller.clone(), request);
        self.idempotency.run(&caller, operation.id, key, fingerprint, run).await
    }
}

/// The router of every operation, over any implementation of the API, with
/// problem+json answers for unknown paths and methods.
pub fn router(api: SharedApi, idempotency: Idempotency) -> axum::Router {
    let (router, _) = openapi_router().split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(App { api, idempotency })
        .layer(axum::middleware::from_fn(crate::response::attach_request_id))
}

/// The routes and their document, registered together.
pub(crate) fn openapi_router() -> OpenApiRouter<App> {
    OpenApiRouter::with_openapi(crate::doc::base())
        .routes(routes!(token_issue))
        .routes(routes!(token_revoke))
        .routes(routes!(channel_create))
        .routes(routes!(channel_get))
        .routes(routes!(channel_list))
        .routes(routes!(channel_delete))
        .routes(routes!(channel_history))
        .routes(routes!(publish))
        .routes(routes!(publish_batch))
        .routes(routes!(presence_get))
        .routes(routes!(auth_sign))
        .routes(routes!(event_types))
        .routes(routes!(user_disconnect))
        .routes(routes!(user_message_send))
        .routes(routes!(user_command_send))
        .routes(routes!(user_command_get))
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

/// Issue a client token for the WebSocket gateway.
///
/// The token is limited to `channels` (all channels of the account when omitted) and
/// `capabilities` (default `subscribe`); its lifetime is clamped to `MAX_TTL_SECONDS`.
/// Connect to `endpoint` with it. Billable. An idempotent replay returns the same token,
/// even when it has been revoked since (the gateway then refuses it with 4003).
#[utoipa::path(post, path = "/v1/realtime/token/issue", operation_id = "realtime.token.issue", tag = "token",
    request_body = TokenIssueRequest,
    responses((status = 200, description = "The token.", body = RealtimeToken),
        Billable, WriteErrors),
    security(("bearer" = [])))]
async fn token_issue(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    keyed: Keyed<TokenIssueRequest>,
) -> Result<Reply<RealtimeToken>, ApiError> {
    app.write(caller, operations::TOKEN_ISSUE, keyed, |api, caller, request| async move {
        api.token_issue(&caller, request).await
    })
    .await
}

/// Issue a client token (deprecated SDK path).
///
/// The path the SDKs use; identical to `POST /v1/realtime/token/issue`.
#[deprecated = "use POST /v1/realtime/token/issue"]
#[utoipa::path(post, path = "/v1/realtime/token", operation_id = "realtime.token.issue.alias", tag = "token",
    request_body = TokenIssueRequest,
    responses((status = 200, description = "The token.", body = RealtimeToken),
        Billable, WriteErrors),
    security(("bearer" = [])))]
async fn token_issue_alias(
    state: State<App>,
    caller: Authenticated,
    keyed: Keyed<TokenIssueRequest>,
) -> Result<Reply<RealtimeToken>, ApiError> {
    token_issue(state, caller, keyed).await
}

/// Revoke a token.
///
/// By the whole token or its `jti`. Every live socket using the token is closed at once
/// with close code 4003, and the token is refused until it expires. Revoking twice is not
/// an error.
#[utoipa::path(post, path = "/v1/realtime/token/revoke", operation_id = "realtime.token.revoke", tag = "token",
    request_body = TokenRevokeRequest,
    responses((status = 200, description = "The token is revoked.", body = TokenRevoked),
        TokenNotFound, WriteErrors),
    security(("bearer" = [])))]
async fn token_revoke(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    keyed: Keyed<TokenRevokeRequest>,
) -> Result<Reply<TokenRevoked>, ApiError> {
    app.write(caller, operations::TOKEN_REVOKE, keyed, |api, caller, request| async move {
        api.token_revoke(&caller, request).await
    })
    .await
}

/// Create a channel.
///
/// Idempotent by name: creating an existing channel with the same type returns it with
/// `created: false` (and is not charged); with another type it is a 409 `CONFLICT`.
/// Billable when a channel is created.
#[utoipa::path(post, path = "/v1/realtime/channel/create", operation_id = "realtime.channel.create", tag = "channel",
    request_body = ChannelCreateRequest,
    responses((status = 200, description = "The channel.", body = ChannelCreated),
        Billable, WriteErrors),
    security(("bearer" = [])))]
async fn channel_create(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    keyed: Keyed<ChannelCreateRequest>,
) -> Result<Reply<ChannelCreated>, ApiError> {
    app.write(caller, operations::CHANNEL_CREATE, keyed, |api, caller, request| async move {
        api.channel_create(&caller, request).await
    })
    .await
}

/// Create a channel (deprecated SDK path).
///
/// The path the SDKs use; identical to `POST /v1/realtime/channel/create`.
#[deprecated = "use POST /v1/realtime/channel/create"]
#[utoipa::path(post, path = "/v1/realtime/channels", operation_id = "realtime.channel.create.alias", tag = "channel",
    request_body = ChannelCreateRequest,
    responses((status = 200, description = "The channel.", body = ChannelCreated),
        Billable, WriteErrors),
    security(("bearer" = [])))]
async fn channel_create_alias(
    state: State<App>,
    caller: Authenticated,
    keyed: Keyed<ChannelCreateRequest>,
) -> Result<Reply<ChannelCreated>, ApiError> {
    channel_create(state, caller, keyed).await
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
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    ChannelPath(channel): ChannelPath,
) -> Result<Json<Channel>, ApiError> {
    app.api.channel_get(&caller, channel).await.map(Json)
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
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    ValidQuery(query): ValidQuery<ChannelListQuery>,
) -> Result<Json<ChannelList>, ApiError> {
    app.api.channel_list(&caller, query).await.map(Json)
}

/// Delete a channel.
///
/// Every subscriber receives `unsubscribed` with reason `channel_deleted` and stops
/// receiving its events; the name can be created again afterwards.
#[utoipa::path(delete, path = "/v1/realtime/channel/delete/{channel}", operation_id = "realtime.channel.delete", tag = "channel",
    params(("channel" = String, Path, description = "The channel name.", max_length = 164)),
    responses((status = 200, description = "The channel is deleted.", body = ChannelDeleted),
        DeleteErrors),
    security(("bearer" = [])))]
async fn channel_delete(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    IdempotencyHeader(key): IdempotencyHeader,
    ChannelPath(channel): ChannelPath,
) -> Result<Reply<ChannelDeleted>, ApiError> {
    let keyed = Keyed::new(channel, key);
    app.write(caller, operations::CHANNEL_DELETE, keyed, |api, caller, channel| async move {
        api.channel_delete(&caller, channel).await
    })
    .await
}

/// Read a channel's recent messages.
///
/// Every message has a position: an `offset` that counts the channel's messages from 1
/// in the order subscribers receive them, within an `epoch` that changes when the channel
/// is deleted and created again. Forward (the default) reads oldest first from after
/// `since`; backward reads newest first from before `since`. Pass `next_since` back for
/// the next page. How many messages are kept, and for how long, is the server's
/// retention (the reference server: the newest 1000 per channel, for 24 hours, so that
/// a recovery of `RECOVERY_MAX_MESSAGES` can be served).
#[utoipa::path(get, path = "/v1/realtime/channel/history/{channel}", operation_id = "realtime.channel.history", tag = "channel",
    params(("channel" = String, Path, description = "The channel name.", max_length = 164), HistoryQuery),
    responses((status = 200, description = "A page of the channel's messages.", body = History), ChannelNotFound, BadQuery, ReadErrors),
    security(("bearer" = [])))]
async fn channel_history(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    ChannelPath(channel): ChannelPath,
    ValidQuery(query): ValidQuery<HistoryQuery>,
) -> Result<Json<History>, ApiError> {
    app.api.channel_history(&caller, channel, query).await.map(Json)
}

/// Publish an event to a channel.
///
/// Every subscriber of the channel receives it, in publish order, with the returned
/// `message_id`; `delivered` counts the connections it was handed to. Billable.
#[utoipa::path(post, path = "/v1/realtime/publish", operation_id = "realtime.publish", tag = "publish",
    request_body = PublishRequest,
    responses((status = 200, description = "The event is published.", body = Published),
        Billable, ChannelNotFound, WriteErrors),
    security(("bearer" = [])))]
async fn publish(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    keyed: Keyed<PublishRequest>,
) -> Result<Reply<Published>, ApiError> {
    app.write(
        caller,
        operations::PUBLISH,
        keyed,
        |api, caller, request| async move { api.publish(&caller, request).await },
    )
    .await
}

/// Publish several events at once.
///
/// All or nothing: one bad message (or unknown channel) rejects the batch, and the
/// problem's `errors[].pointer` names its index. Each message is charged.
#[utoipa::path(post, path = "/v1/realtime/publish/batch", operation_id = "realtime.publish.batch", tag = "publish",
    request_body = PublishBatchRequest,
    responses((status = 200, description = "Every event is published.", body = BatchPublished),
        Billable, ChannelNotFound, WriteErrors),
    security(("bearer" = [])))]
async fn publish_batch(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    keyed: Keyed<PublishBatchRequest>,
) -> Result<Reply<BatchPublished>, ApiError> {
    app.write(caller, operations::PUBLISH_BATCH, keyed, |api, caller, request| async move {
        api.publish_batch(&caller, request).await
    })
    .await
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
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    ChannelPath(channel): ChannelPath,
) -> Result<Json<Presence>, ApiError> {
    app.api.presence_get(&caller, channel).await.map(Json)
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
    state: State<App>,
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
    request_body = AuthSignRequest,
    responses((status = 200, description = "The signed authorization.", body = VendorToken),
        Billable, WriteErrors),
    security(("bearer" = [])))]
async fn auth_sign(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    keyed: Keyed<AuthSignRequest>,
) -> Result<Reply<VendorToken>, ApiError> {
    app.write(caller, operations::AUTH_SIGN, keyed, |api, caller, request| async move {
        api.auth_sign(&caller, request).await
    })
    .await
}

/// List the event types a subscriber can receive.
///
/// A closed set: exactly the `type`s of the frames the WebSocket gateway sends.
#[utoipa::path(get, path = "/v1/realtime/event/types", operation_id = "realtime.event.types", tag = "event",
    responses((status = 200, description = "The event types.", body = EventTypes), ReadErrors),
    security(("bearer" = [])))]
async fn event_types(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
) -> Result<Json<EventTypes>, ApiError> {
    app.api.event_types(&caller).await.map(Json)
}

/// Disconnect a client.
///
/// Closes every live socket of `client_id` with close code 4004, or with `channel` only
/// unsubscribes it from that channel (reason `disconnected_by_server`). Unknown clients
/// give `disconnected: 0`.
#[utoipa::path(post, path = "/v1/realtime/user/disconnect", operation_id = "realtime.user.disconnect", tag = "user",
    request_body = UserDisconnectRequest,
    responses((status = 200, description = "What was cut.", body = UserDisconnected),
        ChannelNotFound, WriteErrors),
    security(("bearer" = [])))]
async fn user_disconnect(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    keyed: Keyed<UserDisconnectRequest>,
) -> Result<Reply<UserDisconnected>, ApiError> {
    app.write(caller, operations::USER_DISCONNECT, keyed, |api, caller, request| async move {
        api.user_disconnect(&caller, request).await
    })
    .await
}

/// Send a message to a user.
///
/// To every live connection whose token carries `target_user_id`, on any node, as a
/// `user.message` frame. `realtime` (the default) is fire and forget: `delivered` says how
/// many connections got it, and it is lost when there is none. `reliable` is at least
/// once: it is stored before this call answers, pushed now, and delivered again on every
/// connect of the user, in send order and with a rising `delivery_count`, until a client
/// acks it (an `ack` covers that message and every earlier one, for all of the user's
/// devices). Reliable messages are kept 7 days; a user with 1000 unacknowledged ones
/// gets no more (409 `BACKLOG_FULL`). Billable.
#[utoipa::path(post, path = "/v1/realtime/user/message/send", operation_id = "realtime.user.message.send", tag = "user",
    request_body = UserMessageSendRequest,
    responses((status = 200, description = "The message was sent.", body = UserMessageSent), Billable, WriteErrors),
    security(("bearer" = [])))]
async fn user_message_send(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    keyed: Keyed<UserMessageSendRequest>,
) -> Result<Reply<UserMessageSent>, ApiError> {
    app.write(caller, operations::USER_MESSAGE_SEND, keyed, |api, caller, request| async move {
        api.user_message_send(&caller, request).await
    })
    .await
}

/// Send a command to a user.
///
/// To the user's live connections as a `user.command` frame; the first `command.response`
/// from any of them answers it. A user without a live connection is a 409
/// `USER_OFFLINE` at once. With `wait_for_response` (the default) this call returns the
/// command answered, or after at most 25 seconds (or its `timeout`, when shorter) a 504
/// `COMMAND_TIMEOUT`; without, it returns the pending command at once. Billable.
#[utoipa::path(post, path = "/v1/realtime/user/command/send", operation_id = "realtime.user.command.send", tag = "user",
    request_body = UserCommandSendRequest,
    responses((status = 200, description = "The command, answered or pending.", body = UserCommand), Billable, CommandTimeout, WriteErrors),
    security(("bearer" = [])))]
async fn user_command_send(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    keyed: Keyed<UserCommandSendRequest>,
) -> Result<Reply<UserCommand>, ApiError> {
    app.write(caller, operations::USER_COMMAND_SEND, keyed, |api, caller, request| async move {
        api.user_command_send(&caller, request).await
    })
    .await
}

/// Get a command.
///
/// Where it stands: pending, answered (with the first response) or expired.
#[utoipa::path(get, path = "/v1/realtime/user/command/get/{command_id}", operation_id = "realtime.user.command.get", tag = "user",
    params(("command_id" = String, Path, description = "The command's id.", max_length = 64)),
    responses((status = 200, description = "The command.", body = UserCommand), CommandNotFound, ReadErrors),
    security(("bearer" = [])))]
async fn user_command_get(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    IdPath(command_id): IdPath,
) -> Result<Json<UserCommand>, ApiError> {
    app.api.user_command_get(&caller, command_id).await.map(Json)
}

/// Get the calling account and its balance.
#[utoipa::path(get, path = "/v1/account", operation_id = "account.get", tag = "account",
    responses((status = 200, description = "The account.", body = Account), ReadErrors),
    security(("bearer" = [])))]
async fn account_get(State(app): State<App>, Authenticated(caller): Authenticated) -> Result<Json<Account>, ApiError> {
    app.api.account_get(&caller).await.map(Json)
}

/// Start a top-up.
///
/// Returns a checkout; the account is credited, exactly once, when the payer completes
/// it at `checkout_url`.
#[utoipa::path(post, path = "/v1/account/topup", operation_id = "account.topup", tag = "account",
    request_body = TopupRequest,
    responses((status = 200, description = "The checkout to complete.", body = Checkout),
        WriteErrors),
    security(("bearer" = [])))]
async fn account_topup(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    keyed: Keyed<TopupRequest>,
) -> Result<Reply<Checkout>, ApiError> {
    app.write(caller, operations::ACCOUNT_TOPUP, keyed, |api, caller, request| async move {
        api.account_topup(&caller, request).await
    })
    .await
}
