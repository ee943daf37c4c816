//! A small in-test implementation of the API: enough to drive the router, nothing more.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use std::sync::atomic::{AtomicU64, Ordering};

use realtime_api::idempotency::memory::MemoryIdempotencyStore;
use realtime_api::{ApiError, ApiKey, Caller, Idempotency, RealtimeApi, SharedApi};
use realtime_types::*;

/// The one key the double accepts.
pub(crate) const KEY: &str = "ifr_pk_proj_test";

pub(crate) fn api() -> SharedApi {
    Arc::new(Double::default())
}

/// The router over a fresh double, with idempotency keys kept in memory.
pub(crate) fn router() -> axum::Router {
    router_over(api())
}

/// The router over `api`, with idempotency keys kept in memory.
pub(crate) fn router_over(api: SharedApi) -> axum::Router {
    let idempotency =
        Idempotency::new(Arc::new(MemoryIdempotencyStore::default()), std::time::Duration::from_secs(3600));
    realtime_api::router(api, idempotency)
}

/// Publishes number their messages, so a test can tell a replay from a second effect;
/// publishing to `slow` takes half a second, and the first publish to `flaky` fails.
#[derive(Default)]
pub(crate) struct Double {
    pub(crate) publishes: AtomicU64,
    flaky_attempts: AtomicU64,
}

fn published(channel: &str, number: u64) -> Published {
    Published {
        message_id: format!("m{number}"),
        epoch: "e".into(),
        offset: number,
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
    async fn token_issue(&self, _: &Caller, _: TokenIssueRequest) -> Result<RealtimeToken, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn token_revoke(&self, _: &Caller, _: TokenRevokeRequest) -> Result<TokenRevoked, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn channel_create(&self, _: &Caller, _: ChannelCreateRequest) -> Result<ChannelCreated, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn channel_get(&self, _: &Caller, channel: String) -> Result<Channel, ApiError> {
        Err(ApiError::not_found(format!("{channel} does not exist")))
    }
    async fn channel_list(&self, _: &Caller, _: ChannelListQuery) -> Result<ChannelList, ApiError> {
        Ok(ChannelList { channels: Vec::new(), next_cursor: None })
    }
    async fn channel_delete(&self, _: &Caller, _: String) -> Result<ChannelDeleted, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn channel_history(&self, _: &Caller, channel: String, _: HistoryQuery) -> Result<History, ApiError> {
        Err(ApiError::not_found(format!("{channel} does not exist")))
    }
    async fn publish(&self, _: &Caller, request: PublishRequest) -> Result<Published, ApiError> {
        match request.channel.as_str() {
            "slow" => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            "flaky" if self.flaky_attempts.fetch_add(1, Ordering::SeqCst) == 0 => {
                return Err(ApiError::unavailable("the double fails once"));
            }
            _ => {}
        }
        let number = self.publishes.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(published(&request.channel, number))
    }
    async fn publish_batch(&self, _: &Caller, _: PublishBatchRequest) -> Result<BatchPublished, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn presence_get(&self, _: &Caller, _: String) -> Result<Presence, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn auth_sign(&self, _: &Caller, _: AuthSignRequest) -> Result<VendorToken, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn event_types(&self, _: &Caller) -> Result<EventTypes, ApiError> {
        Ok(EventTypes { types: EventType::ALL.to_vec() })
    }
    async fn user_disconnect(&self, _: &Caller, _: UserDisconnectRequest) -> Result<UserDisconnected, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn user_message_send(&self, _: &Caller, _: UserMessageSendRequest) -> Result<UserMessageSent, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn user_command_send(&self, _: &Caller, _: UserCommandSendRequest) -> Result<UserCommand, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn user_command_get(&self, _: &Caller, _: String) -> Result<UserCommand, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn account_get(&self, _: &Caller) -> Result<Account, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
    async fn account_topup(&self, _: &Caller, _: TopupRequest) -> Result<Checkout, ApiError> {
        Err(ApiError::internal("not used by these tests"))
    }
}
