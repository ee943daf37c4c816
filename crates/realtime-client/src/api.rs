//! [`RealtimeApi`] for [`Client`]: the client implements the very trait the server does.
//!
//! This makes coverage a compile-time fact: an operation added to the trait does not
//! compile until the client can call it. It also lets a `Client` stand behind
//! [`realtime_api::router`], as a proxy to another server.
//!
//! The `Caller` argument is ignored: the client's API key decides who calls.

use async_trait::async_trait;
use realtime_api::{ApiError, ApiKey, Caller, IdempotencyKey, RealtimeApi, Reply};
use realtime_types::*;

use crate::client::Client;

#[async_trait]
impl RealtimeApi for Client {
    /// Asks the server whose key this is (`GET /v1/account` with `key`, not the client's key).
    async fn authenticate(&self, key: &ApiKey) -> Result<Caller, ApiError> {
        let account = self.with_api_key(key.expose()).account_get().await?;
        Ok(Caller { account_id: account.account_id })
    }

    async fn token_issue(
        &self,
        _caller: &Caller,
        idempotency_key: Option<IdempotencyKey>,
        request: TokenIssueRequest,
    ) -> Result<Reply<RealtimeToken>, ApiError> {
        Ok(self.token_issue_with(idempotency_key, request).await?)
    }

    async fn token_revoke(
        &self,
        _caller: &Caller,
        idempotency_key: Option<IdempotencyKey>,
        request: TokenRevokeRequest,
    ) -> Result<Reply<TokenRevoked>, ApiError> {
        Ok(self.token_revoke_with(idempotency_key, request).await?)
    }

    async fn channel_create(
        &self,
        _caller: &Caller,
        idempotency_key: Option<IdempotencyKey>,
        request: ChannelCreateRequest,
    ) -> Result<Reply<ChannelCreated>, ApiError> {
        Ok(self.channel_create_with(idempotency_key, request).await?)
    }

    async fn channel_get(&self, _caller: &Caller, channel: String) -> Result<Channel, ApiError> {
        Ok(Client::channel_get(self, &channel).await?)
    }

    async fn channel_list(&self, _caller: &Caller, query: ChannelListQuery) -> Result<ChannelList, ApiError> {
        Ok(Client::channel_list(self, query).await?)
    }

    async fn channel_delete(
        &self,
        _caller: &Caller,
        idempotency_key: Option<IdempotencyKey>,
        channel: String,
    ) -> Result<Reply<ChannelDeleted>, ApiError> {
        Ok(self.channel_delete_with(idempotency_key, &channel).await?)
    }

    async fn publish(
        &self,
        _caller: &Caller,
        idempotency_key: Option<IdempotencyKey>,
        request: PublishRequest,
    ) -> Result<Reply<Published>, ApiError> {
        Ok(self.publish_with(idempotency_key, request).await?)
    }

    async fn publish_batch(
        &self,
        _caller: &Caller,
        idempotency_key: Option<IdempotencyKey>,
        request: PublishBatchRequest,
    ) -> Result<Reply<BatchPublished>, ApiError> {
        Ok(self.publish_batch_with(idempotency_key, request).await?)
    }

    async fn presence_get(&self, _caller: &Caller, channel: String) -> Result<Presence, ApiError> {
        Ok(Client::presence_get(self, &channel).await?)
    }

    async fn auth_sign(
        &self,
        _caller: &Caller,
        idempotency_key: Option<IdempotencyKey>,
        request: AuthSignRequest,
    ) -> Result<Reply<VendorToken>, ApiError> {
        Ok(self.auth_sign_with(idempotency_key, request).await?)
    }

    async fn event_types(&self, _caller: &Caller) -> Result<EventTypes, ApiError> {
        Ok(Client::event_types(self).await?)
    }

    async fn user_disconnect(
        &self,
        _caller: &Caller,
        idempotency_key: Option<IdempotencyKey>,
        request: UserDisconnectRequest,
    ) -> Result<Reply<UserDisconnected>, ApiError> {
        Ok(self.user_disconnect_with(idempotency_key, request).await?)
    }

    async fn account_get(&self, _caller: &Caller) -> Result<Account, ApiError> {
        Ok(Client::account_get(self).await?)
    }

    async fn account_topup(
        &self,
        _caller: &Caller,
        idempotency_key: Option<IdempotencyKey>,
        request: TopupRequest,
    ) -> Result<Reply<Checkout>, ApiError> {
        Ok(self.account_topup_with(idempotency_key, request).await?)
    }
}
