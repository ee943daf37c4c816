//! [`Service`]: the domain core. It implements the contract's
//! [`RealtimeApi`](realtime_api::RealtimeApi) (in [`api`]) and serves the gateway, and it
//! is where business rules live: prices, idempotency, token lifetimes, vendor formats.
//! Stores and brokers only persist and move what it decides.

mod api;
mod idempotency;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use realtime_api::ApiError;
use realtime_types::ws::ServerFrame;
use realtime_types::{ErrorCode, FieldError, Published};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, BrokerError, ClusterEvent};
use crate::config::Config;
use crate::gateway::hub::{ChannelKey, Hub, encode};
use crate::secret::{Secret, random_bytes};
use crate::store::{MessageRow, Store, StoreError};
use crate::tokens::TokenKeys;

/// Everything a request or a socket needs; cheap to share behind an `Arc`.
pub struct Service {
    /// The configuration read at start.
    pub config: Config,
    /// The durable state.
    pub store: Arc<dyn Store>,
    /// How events cross nodes.
    pub broker: Arc<dyn Broker>,
    /// This node's sockets.
    pub hub: Arc<Hub>,
    /// Signs and verifies gateway tokens.
    pub tokens: TokenKeys,
    /// The URL clients reach this node at, without a trailing slash.
    pub public_url: String,
    /// Cancelled when the node shuts down gracefully: sockets close with 4200.
    pub shutdown: CancellationToken,
    /// Cancelled when the node is killed: sockets are dropped without a close frame.
    pub kill: CancellationToken,
    /// Per-account request budgets on this node; `None` when unlimited.
    pub rate_limiter: Option<RateLimiter>,
    /// This service, for work that must outlive the request that started it.
    pub this: std::sync::Weak<Service>,
    /// Accounts by API key hash. A key never changes account and keys are never deleted,
    /// so entries never go stale; the map is emptied when it reaches its bound.
    pub known_keys: std::sync::Mutex<std::collections::HashMap<[u8; 32], String>>,
}

/// Most API keys remembered by [`Service::known_keys`].
pub const KNOWN_KEYS_BOUND: usize = 10_000;

/// Request budgets keyed by account id.
pub type RateLimiter = governor::DefaultKeyedRateLimiter<String>;

/// The limiter `config` asks for.
pub fn rate_limiter(config: &crate::config::RateLimitConfig) -> Option<RateLimiter> {
    let rate = std::num::NonZeroU32::new(config.requests_per_second)?;
    let burst = std::num::NonZeroU32::new(config.burst).unwrap_or(rate);
    Some(governor::RateLimiter::dashmap(governor::Quota::per_second(rate).allow_burst(burst)))
}

/// The SHA-256 of an API key, as stored.
pub fn hash_api_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A new API key: the prefix and 160 bits from the OS random number generator.
pub fn new_api_key() -> String {
    format!("ifr_pk_proj_{}", hex::encode(random_bytes::<20>()))
}

/// A new id with a prefix, e.g. `acct_01JD…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::generate())
}

impl Service {
    /// The WebSocket endpoint of this node.
    pub fn endpoint(&self) -> String {
        let ws = if let Some(rest) = self.public_url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.public_url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.public_url.clone()
        };
        format!("{ws}/v1/realtime/ws")
    }

    /// Where accounts add credit.
    pub fn topup_url(&self) -> String {
        format!("{}/v1/account/topup", self.public_url)
    }

    /// Creates an account with `balance` micro-USD; returns its id and API key (shown once).
    pub async fn create_account(&self, balance: i64) -> Result<(String, String), ApiError> {
        let account_id = new_id("acct");
        let key = new_api_key();
        self.store.create_account(&account_id, &hash_api_key(&key), balance).await.map_err(|e| self.store_error(e))?;
        Ok((account_id, key))
    }

    /// Spends one request of the account's budget, or says when to retry.
    pub fn check_rate(&self, account_id: &str) -> Result<(), ApiError> {
        use governor::clock::{Clock, DefaultClock};
        let Some(limiter) = &self.rate_limiter else { return Ok(()) };
        limiter.check_key(&account_id.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let seconds = u32::try_from(wait.as_secs()).unwrap_or(u32::MAX).saturating_add(1);
            ApiError::new(ErrorCode::RateLimited, format!("too many requests for this account; retry in {seconds} s"))
                .with_retry_after(seconds)
        })
    }

    /// Turns a store failure into the problem the client sees.
    pub fn store_error(&self, error: StoreError) -> ApiError {
        match error {
            StoreError::InsufficientCredit { balance, required } => {
                ApiError::insufficient_credit("this operation", balance, required, self.topup_url())
            }
            StoreError::ChannelNotFound { index } => {
                let mut error = ApiError::not_found(format!("the channel of message {index} does not exist"));
                error = error.with_field(FieldError::new(format!("/messages/{index}/channel"), "does not exist"));
                error
            }
            StoreError::Unavailable(cause) => ApiError::unavailable(cause),
            StoreError::Internal(cause) => ApiError::internal(cause),
        }
    }

    /// Like [`store_error`](Self::store_error), naming the billable `operation` in a 402.
    pub fn charge_error(&self, operation: &str, error: StoreError) -> ApiError {
        match error {
            StoreError::InsufficientCredit { balance, required } => {
                ApiError::insufficient_credit(operation, balance, required, self.topup_url())
            }
            other => self.store_error(other),
        }
    }

    /// Turns a broker failure into the problem the client sees.
    pub fn broker_error(&self, error: BrokerError) -> ApiError {
        ApiError::unavailable(error)
    }

    /// Refuses with 503 before any effect when the broker is unreachable, so an outage
    /// never leaves a recorded and charged effect behind a failed answer.
    pub async fn require_broker(&self) -> Result<(), ApiError> {
        self.broker.ping().await.map_err(|e| self.broker_error(e))
    }

    /// Hands an event to the broker after its effect is committed. Should the broker fail
    /// in between (it answered the ping a moment ago), the effect stands and the failure
    /// is logged: answering 503 would invite a retry that repeats the effect and the charge.
    pub async fn announce(&self, event: ClusterEvent) -> u32 {
        match self.broker.publish(event).await {
            Ok(count) => count,
            Err(error) => {
                tracing::error!(%error, "an effect was committed but could not be announced to the cluster");
                0
            }
        }
    }

    /// Records and fans out messages of one account, in order; charges each. The one
    /// path of REST publishes, batches and client publishes.
    pub async fn publish_messages(
        &self,
        account_id: &str,
        messages: Vec<(String, String, serde_json::Value)>,
    ) -> Result<Vec<Published>, ApiError> {
        let now: DateTime<Utc> = Utc::now();
        // One monotonic generator per call: the ids of a batch sort in publish order even
        // within one millisecond.
        let mut ids = ulid::Generator::new();
        let rows: Vec<MessageRow> = messages
            .iter()
            .map(|(channel, event, data)| MessageRow {
                message_id: ids.generate().unwrap_or_else(|_| ulid::Ulid::generate()).to_string(),
                channel: channel.clone(),
                event: event.clone(),
                data: data.to_string(),
                published_at: now,
            })
            .collect();
        let price = self.config.prices.publish * rows.len() as i64;
        let single = rows.len() == 1;
        // The store reports a balance that does not cover the price before a missing
        // channel, so a billable call the balance does not cover is always a 402.
        self.require_broker().await?;
        self.store.record_messages(account_id, &rows, price, self.config.history_per_channel).await.map_err(
            |error| match error {
                StoreError::ChannelNotFound { .. } if single => {
                    ApiError::not_found(format!("channel {:?} does not exist; create it first", rows[0].channel))
                        .with_field(FieldError::new("/channel", "does not exist"))
                }
                other => self.charge_error("publishing", other),
            },
        )?;
        let mut published = Vec::with_capacity(rows.len());
        for (row, (_, _, data)) in rows.into_iter().zip(messages) {
            let frame = encode(&ServerFrame::Message {
                channel: row.channel.clone(),
                message_id: row.message_id.clone(),
                event: row.event.clone(),
                data,
                published_at: row.published_at,
            });
            let key = ChannelKey::new(account_id, &row.channel);
            let delivered = self.announce(ClusterEvent::Frame { key, frame }).await;
            published.push(Published {
                message_id: row.message_id,
                channel: row.channel,
                event: row.event,
                published_at: row.published_at,
                delivered,
                status: "published".to_owned(),
            });
        }
        Ok(published)
    }

    /// The token signing secret: configured, or generated once and kept in the store so
    /// tokens survive restarts and are shared by every node.
    pub async fn token_secret(config: &Config, store: &dyn Store) -> anyhow::Result<Secret> {
        if let Some(secret) = &config.token_secret {
            return Ok(secret.clone());
        }
        let value = store.init_setting("token_secret", Secret::generate().expose()).await?;
        Ok(Secret::new(value))
    }
}

/// A refusal of a frame sent over a socket.
pub fn frame_error(code: ErrorCode, message: impl Into<String>, channel: Option<String>) -> ServerFrame {
    ServerFrame::Error { code, message: message.into(), channel, request_id: None }
}
