//! [`Service`]: the domain core. It implements the contract's
//! [`RealtimeApi`](realtime_api::RealtimeApi) (in [`api`]) and serves the gateway, and it
//! is where business rules live: prices, token lifetimes, vendor formats, which refusal
//! wins. Stores and brokers only persist and move what it decides; idempotency is the
//! contract crate's, and the service only seals each effect's answer with it.

mod api;
pub mod messaging;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use realtime_api::ApiError;
use realtime_api::idempotency::Sealer;
use realtime_types::ws::{CloseCode, ServerFrame};
use realtime_types::{ErrorCode, FieldError, Position, Published};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, BrokerError, ClusterEvent};
use crate::config::Config;
use crate::hub::tap::Activity;
use crate::hub::{ChannelKey, Closing, Connection, Frames, Hub, Protocol};
use crate::secret::{Secret, random_bytes};
use crate::store::{MessageRow, MessagesRefused, Retention, SealOf, Store, StoreError};
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
    /// The tasks of this node's WebSockets: a graceful stop waits for their goodbyes (a
    /// process that exits first cuts its sockets, and clients see 1006, not 4200).
    pub sockets: tokio_util::task::TaskTracker,
    /// Per-account request budgets on this node; `None` when unlimited.
    pub rate_limiter: Option<RateLimiter>,
    /// Accounts by API key hash. A key never changes account and keys are never deleted,
    /// so entries never go stale; the map is emptied when it reaches its bound.
    pub known_keys: std::sync::Mutex<std::collections::HashMap<[u8; 32], String>>,
    /// What this node counts.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

/// The largest balance an account may hold, in micro-USD ($1,000,000,000): far beyond any
/// real account, and far from `i64::MAX`, so no sum of a balance and a credit overflows.
pub const MAX_BALANCE: i64 = 1_000_000_000_000_000;

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

/// A message to publish, and what the Pusher face needs to know of its sender.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The channel.
    pub channel: String,
    /// The event name.
    pub event: String,
    /// The payload.
    pub data: serde_json::Value,
    /// The Pusher socket that must not receive it (a trigger's `socket_id`, the sender of
    /// a client event).
    pub except: Option<String>,
    /// The user who sent a client event on a presence channel, for Pusher sockets.
    pub user_id: Option<String>,
}

impl From<(String, String, serde_json::Value)> for Outgoing {
    fn from((channel, event, data): (String, String, serde_json::Value)) -> Self {
        Outgoing { channel, event, data, except: None, user_id: None }
    }
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

    /// Where accounts add credit: the dev checkout's page for people when this node serves
    /// it, the `account.topup` operation otherwise.
    pub fn topup_url(&self) -> String {
        match self.config.dev_checkout {
            true => format!("{}/checkout", self.public_url),
            false => format!("{}/v1/account/topup", self.public_url),
        }
    }

    /// Creates an account with `balance` micro-USD; returns its id and API key (shown once).
    pub async fn create_account(&self, balance: i64) -> Result<(String, String), ApiError> {
        let account_id = new_id("acct");
        let key = new_api_key();
        self.store.create_account(&account_id, &hash_api_key(&key), balance).await.map_err(|e| self.store_error(e))?;
        Ok((account_id, key))
    }

    /// Registers a new connection of either protocol in the hub. One that arrives while
    /// the node stops is asked to end at once; those registered before are ended by
    /// [`end_connections_on_stop`], so a connection's task needs no watch of its own on
    /// the node's stop (on the hot path, every frame would poll it).
    pub fn register(&self, connection: &Arc<Connection>) {
        self.hub.connect(connection.clone());
        if let Some(closing) = self.stopping() {
            connection.end(closing);
        }
    }

    /// How connections end once the node stops: dropped without a word when it was
    /// killed, closed with 4200 when it stops gracefully; `None` while it runs.
    fn stopping(&self) -> Option<Closing> {
        if self.kill.is_cancelled() {
            Some(Closing::Vanish)
        } else if self.shutdown.is_cancelled() {
            Some(Closing::With(CloseCode::ServerShutdown, SHUTTING_DOWN.to_owned()))
        } else {
            None
        }
    }

    /// Counts a closed socket of either protocol by its code, and the frames it will
    /// never get, and logs it (code, reason, how long it was open); never a token or key.
    pub fn connection_closed(&self, connection: &Connection, code: u16, reason: &str, open_for: std::time::Duration) {
        self.metrics.socket_closed(code);
        let (why, dropped) = connection.retire();
        self.metrics.frames_dropped(why, dropped);
        let protocol = match connection.protocol {
            Protocol::Native => "native",
            Protocol::Pusher(_) => "pusher",
        };
        tracing::info!(
            connection_id = connection.id,
            account_id = %connection.account_id,
            protocol,
            code,
            reason,
            seconds = open_for.as_secs(),
            "connection closed"
        );
        self.hub.taps.activity(&connection.account_id, || Activity::Disconnected {
            client_id: connection.client_id.clone(),
            connection_id: connection.id,
            code,
            reason: reason.to_owned(),
        });
    }

    /// The account of an API key this node has authenticated lately (no store lookup).
    pub fn known_account(&self, key: &str) -> Option<String> {
        self.known_keys.lock().expect("known keys lock").get(&hash_api_key(key)).cloned()
    }

    /// Tells the account's console viewers that `operation` was refused with 402.
    pub fn refused_for_credit(&self, account_id: &str, operation: &str) {
        self.hub.taps.activity(account_id, || Activity::InsufficientCredit { operation: operation.to_owned() });
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
                self.insufficient_credit("this operation", balance, required)
            }
            StoreError::MessagesRefused(refused) => self.messages_refused("publishing", refused, false),
            StoreError::LeaseLost => realtime_api::idempotency::lease_lost(),
            StoreError::BacklogFull { maximum } => ApiError::new(
                ErrorCode::BacklogFull,
                format!("the user has {maximum} unacknowledged reliable messages; a client must ack some first"),
            ),
            StoreError::BalanceLimit { maximum } => {
                ApiError::conflict(format!("the balance would exceed the maximum of {maximum} micro-USD"))
            }
            StoreError::Unavailable(cause) => ApiError::unavailable(cause),
            StoreError::Internal(cause) => ApiError::internal(cause),
        }
    }

    /// Like [`store_error`](Self::store_error), naming the billable `operation` in a 402.
    pub fn charge_error(&self, operation: &str, error: StoreError) -> ApiError {
        match error {
            StoreError::InsufficientCredit { balance, required } => {
                self.insufficient_credit(operation, balance, required)
            }
            other => self.store_error(other),
        }
    }

    /// The problem for messages the store refused: a balance that does not cover the price
    /// is reported before a missing channel, so a billable call the balance does not cover
    /// is always a 402.
    fn messages_refused(&self, operation: &str, refused: MessagesRefused, single: bool) -> ApiError {
        match refused {
            MessagesRefused { insufficient_credit: Some((balance, required)), .. } => {
                self.insufficient_credit(operation, balance, required)
            }
            MessagesRefused { insufficient_credit: None, missing_channel: Some(index) } => {
                let pointer = if single { "/channel".to_owned() } else { format!("/messages/{index}/channel") };
                ApiError::not_found(format!("the channel of message {index} does not exist; create it first"))
                    .with_field(FieldError::new(pointer, "does not exist"))
            }
            MessagesRefused { insufficient_credit: None, missing_channel: None } => {
                ApiError::internal("the store refused messages without a reason")
            }
        }
    }

    /// The 402 for an operation the balance does not cover: the one place a refusal for
    /// credit is made, so it is counted once whichever face asked (REST, a socket publish,
    /// a Pusher trigger, which answers it as a 403).
    fn insufficient_credit(&self, operation: &str, balance: i64, required: i64) -> ApiError {
        self.metrics.insufficient_credit.inc();
        ApiError::insufficient_credit(operation, balance, required, self.topup_url())
    }

    /// Counts credit charged by this node.
    pub fn charged(&self, price: i64) {
        self.metrics.credit_charged.inc_by(u64::try_from(price).unwrap_or(0));
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

    /// Records and fans out messages of one account, in order; charges each. The path of
    /// client publishes over a socket (no idempotency key there).
    pub async fn publish_messages(
        &self,
        account_id: &str,
        messages: Vec<impl Into<Outgoing> + Send>,
    ) -> Result<Vec<Published>, ApiError> {
        let messages: Vec<Outgoing> = messages.into_iter().map(Into::into).collect();
        let rows = message_rows(&messages);
        self.record_and_fan_out(account_id, messages, rows, Box::new(|_| None)).await
    }

    /// [`Service::publish_messages`] for an idempotent request: `answer` makes its answer
    /// from the messages as recorded, before their fan-out (`delivered` 0), and that
    /// answer is committed with the messages (see `realtime_api::idempotency`).
    pub async fn publish_sealed<A: serde::Serialize>(
        &self,
        account_id: &str,
        messages: Vec<impl Into<Outgoing> + Send>,
        answer: impl Fn(&[Published]) -> A + Send + Sync + 'static,
    ) -> Result<Vec<Published>, ApiError> {
        let messages: Vec<Outgoing> = messages.into_iter().map(Into::into).collect();
        let rows = message_rows(&messages);
        // Made here, where the request runs: the store seals wherever its writer runs.
        let seal: SealOf = match Sealer::current() {
            Some(sealer) => {
                let rows = rows.clone();
                Box::new(move |positions| Some(sealer.seal(&answer(&published_of(&rows, positions)))))
            }
            None => Box::new(|_| None),
        };
        self.record_and_fan_out(account_id, messages, rows, seal).await
    }

    /// The one path of REST publishes, batches and client publishes.
    async fn record_and_fan_out(
        &self,
        account_id: &str,
        messages: Vec<Outgoing>,
        rows: Arc<[MessageRow]>,
        seal: SealOf,
    ) -> Result<Vec<Published>, ApiError> {
        let now = rows.first().map_or_else(Utc::now, |row| row.published_at);
        let price = price_of(self.config.prices.publish, rows.len())?;
        let retention = Retention {
            messages: self.config.history_per_channel,
            published_after: now
                - chrono::Duration::seconds(i64::try_from(self.config.history_max_age_seconds).unwrap_or(i64::MAX)),
        };
        self.require_broker().await?;
        let positions = self.store.record_messages(account_id, &rows, price, retention, seal).await.map_err(
            |error| match error {
                StoreError::MessagesRefused(refused) => self.messages_refused("publishing", refused, rows.len() == 1),
                other => self.store_error(other),
            },
        )?;
        let mut published = published_of(&rows, &positions);
        for ((message, position), outgoing) in published.iter_mut().zip(positions).zip(messages) {
            let key = ChannelKey::new(account_id, &message.channel);
            if !self.broker.has_audience(&key) {
                continue;
            }
            let frame = ServerFrame::Message {
                channel: message.channel.clone(),
                message_id: message.message_id.clone(),
                epoch: position.epoch.clone(),
                offset: position.offset,
                event: message.event.clone(),
                data: outgoing.data,
                published_at: message.published_at,
            };
            let frame = Frames::of(&frame, outgoing.user_id.as_deref(), outgoing.except.as_deref());
            let event = ClusterEvent::Frame { key, frame, position: Some(position) };
            message.delivered = self.announce(event).await;
            self.metrics.frames_delivered.inc_by(u64::from(message.delivered));
        }
        self.metrics.messages_published.inc_by(published.len() as u64);
        self.charged(price);
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

/// The rows recording `messages`, stamped now, with ids in publish order.
fn message_rows(messages: &[Outgoing]) -> Arc<[MessageRow]> {
    let now: DateTime<Utc> = Utc::now();
    // One monotonic generator per call: the ids of a batch sort in publish order even
    // within one millisecond.
    let mut ids = ulid::Generator::new();
    messages
        .iter()
        .map(|message| MessageRow {
            message_id: ids.generate().unwrap_or_else(|_| ulid::Ulid::generate()).to_string(),
            offset: 0,
            channel: message.channel.clone(),
            event: message.event.clone(),
            data: message.data.to_string(),
            published_at: now,
        })
        .collect()
}

/// The messages of `rows` as recorded at `positions`, before their fan-out.
fn published_of(rows: &[MessageRow], positions: &[Position]) -> Vec<Published> {
    rows.iter()
        .zip(positions)
        .map(|(row, position)| Published {
            message_id: row.message_id.clone(),
            channel: row.channel.clone(),
            epoch: position.epoch.clone(),
            offset: position.offset,
            event: row.event.clone(),
            published_at: row.published_at,
            delivered: 0,
            status: "published".to_owned(),
        })
        .collect()
}

/// The price of `count` operations at `price` each, refused when it cannot be counted.
pub fn price_of(price: i64, count: usize) -> Result<i64, ApiError> {
    i64::try_from(count)
        .ok()
        .and_then(|count| price.checked_mul(count))
        .ok_or_else(|| ApiError::new(ErrorCode::PayloadTooLarge, "the price of this request cannot be counted"))
}

/// A refusal of a frame sent over a socket.
pub fn frame_error(code: ErrorCode, message: impl Into<String>, channel: Option<String>) -> ServerFrame {
    ServerFrame::Error { code, message: message.into(), channel, request_id: None }
}

/// The reason sockets are closed with when the node stops gracefully.
const SHUTTING_DOWN: &str = "the server is shutting down";

/// Ends every connection when the node stops: closed with 4200 on a graceful stop,
/// dropped without a word when it is killed. A connection registering meanwhile sees the
/// stop for itself ([`Service::register`]).
pub async fn end_connections_on_stop(service: Arc<Service>) {
    tokio::select! {
        () = service.shutdown.cancelled() => {}
        () = service.kill.cancelled() => {}
    }
    if let Some(closing) = service.stopping() {
        service.hub.end_all(closing);
    }
}
