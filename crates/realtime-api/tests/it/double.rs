//! A small in-test implementation of the API: enough to drive the router, nothing more.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use realtime_api::{ApiError, ApiKey, Caller, IdempotencyKey, RealtimeApi, Reply, SharedApi};
use realtime_types::*;

/// The one key the double accepts.
pub(crate) const KEY: &str = "ifr_pk_proj_test";

pub(crate) fn api() -> SharedApi {
    Arc::new(Double)
}

struct Double;

fn published(channel: &str, idempotency_key: Option<IdempotencyKey>) -> Published {
    Published {
        message_id: idempotency_key.map_or_else(|| "m1".to_owned(), |k| format!("m-{}", k.as_str())),
        channel: channel.to_owned(),
        event: "e".into(),
        published_at: Utc::now(),
        delivered: 0,
        status: "published".into(),
    }
}

#[async_trait]
impl RealtimeApi for Double {
    async fn authenticate(&self, key: &ApiKey) -> Result<Caller, ApiError> {
        if key.expose() == KEY {
            Ok(Caller { account_id: "acct_test".into() })
        } else {
            Err(ApiError::unauthenticated("unknown key"))
        }
    }
    async fn token_issue(
        &self,
        _: &Caller,
        _: Option<IdempotencyKey>,
        _: TokenIssueRequest,
    ) -> Result<Reply<RealtimeToken>, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn token_revoke(
        &self,
        _: &Caller,
        _: Option<IdempotencyKey>,
        _: TokenRevokeRequest,
    ) -> Result<Reply<TokenRevoked>, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn channel_create(
        &self,
        _: &Caller,
        _: Option<IdempotencyKey>,
        _: ChannelCreateRequest,
    ) -> Result<Reply<ChannelCreated>, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn channel_get(&self, _: &Caller, channel: String) -> Result<Channel, ApiError> {
        Err(ApiError::not_found(format!("{channel} does not exist")))
    }
    async fn channel_list(&self, _: &Caller, _: ChannelListQuery) -> Result<ChannelList, ApiError> {
        Ok(ChannelList { channels: Vec::new(), next_cursor: None })
    }
    async fn channel_delete(
        &self,
        _: &Caller,
        _: Option<IdempotencyKey>,
        _: String,
    ) -> Result<Reply<ChannelDeleted>, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn publish(
        &self,
        _: &Caller,
        key: Option<IdempotencyKey>,
        request: PublishRequest,
    ) -> Result<Reply<Published>, ApiError> {
        Ok(Reply::fresh(published(&request.channel, key)))
    }
    async fn publish_batch(
        &self,
        _: &Caller,
        _: Option<IdempotencyKey>,
        _: PublishBatchRequest,
    ) -> Result<Reply<BatchPublished>, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn presence_get(&self, _: &Caller, _: String) -> Result<Presence, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn auth_sign(
        &self,
        _: &Caller,
        _: Option<IdempotencyKey>,
        _: AuthSignRequest,
    ) -> Result<Reply<VendorToken>, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn event_types(&self, _: &Caller) -> Result<EventTypes, ApiError> {
        Ok(EventTypes { types: EventType::ALL.to_vec() })
    }
    async fn user_disconnect(
        &self,
        _: &Caller,
        _: Option<IdempotencyKey>,
        _: UserDisconnectRequest,
    ) -> Result<Reply<UserDisconnected>, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn account_get(&self, _: &Caller) -> Result<Account, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn account_topup(
        &self,
        _: &Caller,
        _: Option<IdempotencyKey>,
        _: TopupRequest,
    ) -> Result<Reply<Checkout>, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
}
