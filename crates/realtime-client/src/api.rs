//! [`RealtimeApi`] for [`Client`]: the client implements the very trait the server does.
//!
//! This makes coverage a compile-time fact: an operation added to the trait does not
//! compile until the client can call it. It also lets a `Client` stand behind the
//! contract's router (`realtime_api::router`, with the `router` feature), as a proxy to
//! another server; the router's own idempotency then covers the proxy, and each
//! state-changing call goes upstream with a fresh idempotency key of its own, so that the
//! client's retries of it are safe too.
//!
//! The `Caller` argument is ignored: the client's API key decides who calls.

use async_trait::async_trait;
use realtime_api::{ApiError, ApiKey, Caller, RealtimeApi};
use realtime_types::*;

use crate::client::Client;

#[async_trait]
impl RealtimeApi for Client {
    /// Asks the server whose key this is (`GET /v1/account` with `key`, not the client's key).
    async fn authenticate(&self, key: &ApiKey) -> Result<Caller, ApiError> {
        let account = self.with_api_key(key.expose()).account_get().await?;
        Ok(Caller { account_id: account.account_id })
    }

    async fn token_issue(&self, _caller: &Caller, request: TokenIssueRequest) -> Result<RealtimeToken, ApiError> {
        Ok(Client::token_issue(self, request).await?)
    }

    async fn token_revoke(&self, _caller: &Caller, request: TokenRevokeRequest) -> Result<TokenRevoked, ApiError> {
        Ok(Client::token_revoke(self, request).await?)
    }

    async fn channel_create(
        &self,
        _caller: &Caller,
        request: ChannelCreateRequest,
    ) -> Result<ChannelCreated, ApiError> {
        Ok(Client::channel_create(self, request).await?)
    }

    async fn channel_get(&self, _caller: &Caller, channel: String) -> Result<Channel, ApiError> {
        Ok(Client::channel_get(self, &channel).await?)
    }

    async fn channel_list(&self, _caller: &Caller, query: ChannelListQuery) -> Result<ChannelList, ApiError> {
        Ok(Client::channel_list(self, query).await?)
    }

    async fn channel_delete(&self, _caller: &Caller, channel: String) -> Result<ChannelDeleted, ApiError> {
        Ok(Client::channel_delete(self, &channel).await?)
    }

    async fn channel_history(
        &self,
        _caller: &Caller,
        channel: String,
        query: HistoryQuery,
    ) -> Result<History, ApiError> {
        Ok(Client::channel_history(self, &channel, query).await?)
    }

    async fn publish(&self, _caller: &Caller, request: PublishRequest) -> Result<Published, ApiError> {
        Ok(Client::publish(self, request).await?)
    }

    async fn publish_batch(&self, _caller: &Caller, request: PublishBatchRequest) -> Result<BatchPublished, ApiError> {
        Ok(Client::publish_batch(self, request).await?)
    }

    async fn presence_get(&self, _caller: &Caller, channel: String) -> Result<Presence, ApiError> {
        Ok(Client::presence_get(self, &channel).await?)
    }

    async fn auth_sign(&self, _caller: &Caller, request: AuthSignRequest) -> Result<VendorToken, ApiError> {
        Ok(Client::auth_sign(self, request).await?)
    }

    async fn event_types(&self, _caller: &Caller) -> Result<EventTypes, ApiError> {
        Ok(Client::event_types(self).await?)
    }

    async fn user_disconnect(
        &self,
        _caller: &Caller,
        request: UserDisconnectRequest,
    ) -> Result<UserDisconnected, ApiError> {
        Ok(Client::user_disconnect(self, request).await?)
    }

    async fn user_message_send(
        &self,
        _caller: &Caller,
        request: UserMessageSendRequest,
    ) -> Result<UserMessageSent, ApiError> {
        Ok(Client::user_message_send(self, request).await?)
    }

    async fn user_command_send(
        &self,
        _caller: &Caller,
        request: UserCommandSendRequest,
    ) -> Result<UserCommand, ApiError> {
        Ok(Client::user_command_send(self, request).await?)
    }

    async fn user_command_get(&self, _caller: &Caller, command_id: String) -> Result<UserCommand, ApiError> {
        Ok(Client::user_command_get(self, &command_id).await?)
    }

    async fn account_get(&self, _caller: &Caller) -> Result<Account, ApiError> {
        Ok(Client::account_get(self).await?)
    }

    async fn account_topup(&self, _caller: &Caller, request: TopupRequest) -> Result<Checkout, ApiError> {
        Ok(Client::account_topup(self, request).await?)
    }
}
