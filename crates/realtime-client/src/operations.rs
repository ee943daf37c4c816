//! One method per operation of the contract, with paths from the shared route table.
//!
//! Calls that change state come in two forms: `publish(request)` returns the body, and
//! `publish_with(key, request)` chooses the idempotency key and also tells whether the
//! answer was replayed. Without a key the request's `idempotency_key` field is used, or a
//! fresh ULID.

use realtime_api::operations as routes;
use realtime_api::{IdempotencyKey, Reply};
use realtime_types::*;

use crate::client::{Client, Target};
use crate::error::ClientError;

/// The key to send: the one given, else the body's `idempotency_key` (if valid).
fn key_of(given: Option<IdempotencyKey>, body: Option<&str>) -> Option<IdempotencyKey> {
    given.or_else(|| body.and_then(|key| IdempotencyKey::parse(key).ok()))
}

impl Client {
    /// `realtime.token.issue`: a client token for the WebSocket gateway.
    pub async fn token_issue(&self, request: TokenIssueRequest) -> Result<RealtimeToken, ClientError> {
        self.token_issue_with(None, request).await.map(|reply| reply.body)
    }

    /// `realtime.token.issue` with a chosen idempotency key.
    pub async fn token_issue_with(
        &self,
        key: Option<IdempotencyKey>,
        request: TokenIssueRequest,
    ) -> Result<Reply<RealtimeToken>, ClientError> {
        let key = key_of(key, request.idempotency_key.as_deref());
        self.write(routes::TOKEN_ISSUE, Target::Plain, key, Some(&request)).await
    }

    /// `realtime.token.revoke`: revoke a token by the token or its `jti`.
    pub async fn token_revoke(&self, request: TokenRevokeRequest) -> Result<TokenRevoked, ClientError> {
        self.token_revoke_with(None, request).await.map(|reply| reply.body)
    }

    /// `realtime.token.revoke` with a chosen idempotency key.
    pub async fn token_revoke_with(
        &self,
        key: Option<IdempotencyKey>,
        request: TokenRevokeRequest,
    ) -> Result<Reply<TokenRevoked>, ClientError> {
        let key = key_of(key, request.idempotency_key.as_deref());
        self.write(routes::TOKEN_REVOKE, Target::Plain, key, Some(&request)).await
    }

    /// `realtime.channel.create`: create a channel (or get the existing one of that type).
    pub async fn channel_create(&self, request: ChannelCreateRequest) -> Result<ChannelCreated, ClientError> {
        self.channel_create_with(None, request).await.map(|reply| reply.body)
    }

    /// `realtime.channel.create` with a chosen idempotency key.
    pub async fn channel_create_with(
        &self,
        key: Option<IdempotencyKey>,
        request: ChannelCreateRequest,
    ) -> Result<Reply<ChannelCreated>, ClientError> {
        let key = key_of(key, request.idempotency_key.as_deref());
        self.write(routes::CHANNEL_CREATE, Target::Plain, key, Some(&request)).await
    }

    /// `realtime.channel.get`: a channel and its live state.
    pub async fn channel_get(&self, channel: &str) -> Result<Channel, ClientError> {
        self.read(routes::CHANNEL_GET, Target::Channel(channel)).await
    }

    /// `realtime.channel.history`: a page of a channel's retained messages.
    pub async fn channel_history(&self, channel: &str, query: HistoryQuery) -> Result<History, ClientError> {
        let mut pairs = Vec::new();
        if let Some(since) = query.since {
            pairs.push(("since", since.to_string()));
        }
        if let Some(limit) = query.limit {
            pairs.push(("limit", limit.to_string()));
        }
        if let Some(direction) = query.direction {
            let direction = match direction {
                Direction::Forward => "forward",
                Direction::Backward => "backward",
            };
            pairs.push(("direction", direction.to_owned()));
        }
        self.read(routes::CHANNEL_HISTORY, Target::ChannelQuery(channel, pairs)).await
    }

    /// `realtime.channel.list`: one page of channels; see [`Client::channel_list_all`].
    pub async fn channel_list(&self, query: ChannelListQuery) -> Result<ChannelList, ClientError> {
        let mut pairs = Vec::new();
        if let Some(cursor) = query.cursor {
            pairs.push(("cursor", cursor));
        }
        if let Some(limit) = query.limit {
            pairs.push(("limit", limit.to_string()));
        }
        self.read(routes::CHANNEL_LIST, Target::Query(pairs)).await
    }

    /// Every channel, following `next_cursor` for at most `max_pages` pages.
    pub async fn channel_list_all(&self, max_pages: usize) -> Result<Vec<Channel>, ClientError> {
        let mut channels = Vec::new();
        let mut cursor = None;
        for _ in 0..max_pages {
            let page = self
                .channel_list(ChannelListQuery { cursor, limit: Some(realtime_types::limits::PAGE_MAX_LIMIT) })
                .await?;
            channels.extend(page.channels);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(channels)
    }

    /// `realtime.channel.delete`: delete a channel and unsubscribe its subscribers.
    pub async fn channel_delete(&self, channel: &str) -> Result<ChannelDeleted, ClientError> {
        self.channel_delete_with(None, channel).await.map(|reply| reply.body)
    }

    /// `realtime.channel.delete` with a chosen idempotency key.
    pub async fn channel_delete_with(
        &self,
        key: Option<IdempotencyKey>,
        channel: &str,
    ) -> Result<Reply<ChannelDeleted>, ClientError> {
        self.write::<(), _>(routes::CHANNEL_DELETE, Target::Channel(channel), key, None).await
    }

    /// `realtime.publish`: publish an event to a channel.
    pub async fn publish(&self, request: PublishRequest) -> Result<Published, ClientError> {
        self.publish_with(None, request).await.map(|reply| reply.body)
    }

    /// `realtime.publish` with a chosen idempotency key.
    pub async fn publish_with(
        &self,
        key: Option<IdempotencyKey>,
        request: PublishRequest,
    ) -> Result<Reply<Published>, ClientError> {
        let key = key_of(key, request.idempotency_key.as_deref());
        self.write(routes::PUBLISH, Target::Plain, key, Some(&request)).await
    }

    /// `realtime.publish.batch`: publish 1-100 events at once, all or nothing.
    pub async fn publish_batch(&self, request: PublishBatchRequest) -> Result<BatchPublished, ClientError> {
        self.publish_batch_with(None, request).await.map(|reply| reply.body)
    }

    /// `realtime.publish.batch` with a chosen idempotency key.
    pub async fn publish_batch_with(
        &self,
        key: Option<IdempotencyKey>,
        request: PublishBatchRequest,
    ) -> Result<Reply<BatchPublished>, ClientError> {
        let key = key_of(key, request.idempotency_key.as_deref());
        self.write(routes::PUBLISH_BATCH, Target::Plain, key, Some(&request)).await
    }

    /// `realtime.presence.get`: the live members of a channel.
    pub async fn presence_get(&self, channel: &str) -> Result<Presence, ClientError> {
        self.read(routes::PRESENCE_GET, Target::Channel(channel)).await
    }

    /// `realtime.auth.sign`: a vendor-native channel authorization.
    pub async fn auth_sign(&self, request: AuthSignRequest) -> Result<VendorToken, ClientError> {
        self.auth_sign_with(None, request).await.map(|reply| reply.body)
    }

    /// `realtime.auth.sign` with a chosen idempotency key.
    pub async fn auth_sign_with(
        &self,
        key: Option<IdempotencyKey>,
        request: AuthSignRequest,
    ) -> Result<Reply<VendorToken>, ClientError> {
        let key = key_of(key, request.idempotency_key.as_deref());
        self.write(routes::AUTH_SIGN, Target::Plain, key, Some(&request)).await
    }

    /// `realtime.event.types`: the event types a subscriber can receive.
    pub async fn event_types(&self) -> Result<EventTypes, ClientError> {
        self.read(routes::EVENT_TYPES, Target::Plain).await
    }

    /// `realtime.user.disconnect`: close a client's sockets, or unsubscribe it from a channel.
    pub async fn user_disconnect(&self, request: UserDisconnectRequest) -> Result<UserDisconnected, ClientError> {
        self.user_disconnect_with(None, request).await.map(|reply| reply.body)
    }

    /// `realtime.user.disconnect` with a chosen idempotency key.
    pub async fn user_disconnect_with(
        &self,
        key: Option<IdempotencyKey>,
        request: UserDisconnectRequest,
    ) -> Result<Reply<UserDisconnected>, ClientError> {
        let key = key_of(key, request.idempotency_key.as_deref());
        self.write(routes::USER_DISCONNECT, Target::Plain, key, Some(&request)).await
    }

    /// `realtime.user.message.send`: a realtime or reliable message to a user.
    pub async fn user_message_send(&self, request: UserMessageSendRequest) -> Result<UserMessageSent, ClientError> {
        self.user_message_send_with(None, request).await.map(|reply| reply.body)
    }

    /// `realtime.user.message.send` with a chosen idempotency key.
    pub async fn user_message_send_with(
        &self,
        key: Option<IdempotencyKey>,
        request: UserMessageSendRequest,
    ) -> Result<Reply<UserMessageSent>, ClientError> {
        let key = key_of(key, request.idempotency_key.as_deref());
        self.write(routes::USER_MESSAGE_SEND, Target::Plain, key, Some(&request)).await
    }

    /// `realtime.user.command.send`: a command to a user; by default waits for its
    /// response (a timeout is `ErrorCode::CommandTimeout`).
    pub async fn user_command_send(&self, request: UserCommandSendRequest) -> Result<UserCommand, ClientError> {
        self.user_command_send_with(None, request).await.map(|reply| reply.body)
    }

    /// `realtime.user.command.send` with a chosen idempotency key.
    pub async fn user_command_send_with(
        &self,
        key: Option<IdempotencyKey>,
        request: UserCommandSendRequest,
    ) -> Result<Reply<UserCommand>, ClientError> {
        let key = key_of(key, request.idempotency_key.as_deref());
        self.write(routes::USER_COMMAND_SEND, Target::Plain, key, Some(&request)).await
    }

    /// `realtime.user.command.get`: where a command stands.
    pub async fn user_command_get(&self, command_id: &str) -> Result<UserCommand, ClientError> {
        self.read(routes::USER_COMMAND_GET, Target::Channel(command_id)).await
    }

    /// `account.get`: the calling account and its balance.
    pub async fn account_get(&self) -> Result<Account, ClientError> {
        self.read(routes::ACCOUNT_GET, Target::Plain).await
    }

    /// `account.topup`: start a top-up; pay at the returned `checkout_url`.
    pub async fn account_topup(&self, request: TopupRequest) -> Result<Checkout, ClientError> {
        self.account_topup_with(None, request).await.map(|reply| reply.body)
    }

    /// `account.topup` with a chosen idempotency key.
    pub async fn account_topup_with(
        &self,
        key: Option<IdempotencyKey>,
        request: TopupRequest,
    ) -> Result<Reply<Checkout>, ClientError> {
        let key = key_of(key, request.idempotency_key.as_deref());
        self.write(routes::ACCOUNT_TOPUP, Target::Plain, key, Some(&request)).await
    }
}
