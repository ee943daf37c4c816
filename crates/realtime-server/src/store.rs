//! The durable state of the server behind small traits, one per concern.
//!
//! Each method is one atomic step: either all of its effect (and its debit) happens, or
//! none of it. Methods that commit an effect take the [`Seal`] of the idempotent request
//! they run for, and commit its answer in the same transaction (or nothing, when the
//! request's key was taken over). Backends hold SQL only: names, limits, prices,
//! signatures and which refusal wins are decided by the service, and idempotency
//! decisions by `realtime_api::idempotency`. The embedded backend is [`sqlite`]; several
//! nodes share a PostgreSQL backend.

mod apps;
mod frames;
pub mod group_commit;
pub mod postgres;
pub mod sqlite;
pub mod timed;
mod users;

pub use users::{AnswerOutcome, CommandRow, UserMessageRow, Users};

pub use apps::{AppRow, AppSettings, AppSettingsChange, Apps, WebhookRow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use realtime_api::IdempotencyStore;
pub use realtime_api::idempotency::Seal;
use realtime_api::idempotency::{Claim, Record};
use realtime_types::{ChannelType, Direction, Position};

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The account's balance does not cover `required`; nothing was changed.
    #[error("insufficient credit: balance {balance}, required {required}")]
    InsufficientCredit {
        /// The balance at the time of the attempt.
        balance: i64,
        /// The price.
        required: i64,
    },
    /// Messages were not recorded, for every reason given; nothing was changed.
    #[error("messages not recorded: {0:?}")]
    MessagesRefused(MessagesRefused),
    /// The idempotency key of the request was taken over by another request (this one was
    /// presumed dead); nothing was changed.
    #[error("the idempotency lease was lost")]
    LeaseLost,
    /// The user has `maximum` unacknowledged reliable messages; nothing was changed.
    #[error("the user's backlog is full")]
    BacklogFull {
        /// The most unacknowledged messages a user may have.
        maximum: u64,
    },
    /// Crediting would take the balance past the maximum; nothing was changed.
    #[error("the balance would exceed {maximum}")]
    BalanceLimit {
        /// The largest balance an account may hold.
        maximum: i64,
    },
    /// The engine is unreachable or refused the operation.
    #[error("store unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else (corrupt row, failed migration).
    #[error("store failure")]
    Internal(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(error)
            }
            sqlx::Error::Database(ref database) if is_transient(database.code().as_deref()) => {
                StoreError::Unavailable(error)
            }
            other => StoreError::Internal(other),
        }
    }
}

/// Makes the seal to commit with recorded messages from their positions. A store's writer
/// calls it wherever it runs (another task, another thread), so it owns what it reads:
/// see [`realtime_api::idempotency::Sealer`].
pub type SealOf = Box<dyn Fn(&[Position]) -> Option<Seal> + Send + Sync>;

/// How much of a channel's stream is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest messages kept per channel (at least 1).
    pub messages: u32,
    /// Messages published before this are dropped.
    pub published_after: DateTime<Utc>,
}

/// Why [`Channels::record_messages`] refused: every reason that held, so that the
/// service decides which one the caller hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessagesRefused {
    /// `(balance, price)` when the balance does not cover the price.
    pub insufficient_credit: Option<(i64, i64)>,
    /// The index of the first message whose channel does not exist.
    pub missing_channel: Option<usize>,
}

/// Database error codes that mean "not now" rather than "never": PostgreSQL's
/// connection exceptions (08…), shutdown (57P01-57P03), too many connections (53300) and
/// serialization failures and deadlocks (40001, 40P01); SQLite's busy and locked (5, 6).
fn is_transient(code: Option<&str>) -> bool {
    code.is_some_and(|code| {
        code.starts_with("08")
            || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01" | "5" | "6" | "517" | "261")
    })
}

/// What [`Store::purge`] deletes: everything of each kind from before its cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Idempotency records created before this.
    pub idempotency: DateTime<Utc>,
    /// Tokens, checkouts and commands that expired before this (a revoked token past its
    /// expiry is refused for its expiry anyway).
    pub expired: DateTime<Utc>,
    /// Channel messages published before this (history's age limit, for idle channels).
    pub messages: DateTime<Utc>,
    /// Unacknowledged reliable user messages sent before this.
    pub user_messages: DateTime<Utc>,
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// `acct_<ulid>`.
    pub account_id: String,
    /// Credit in micro-USD.
    pub balance: i64,
}

/// A channel as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    /// `ch_<ulid>`.
    pub channel_id: String,
    /// The account it belongs to.
    pub account_id: String,
    /// Its name, unique per account.
    pub name: String,
    /// Its type.
    pub channel_type: ChannelType,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When the last message was recorded.
    pub last_published_at: Option<DateTime<Utc>>,
    /// The offset of its newest message (0 before the first); its epoch is `channel_id`.
    pub last_offset: u64,
}

impl ChannelRow {
    /// The channel's latest position.
    pub fn position(&self) -> Position {
        Position { epoch: self.channel_id.clone(), offset: self.last_offset }
    }
}

/// A message to record.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    /// The ULID.
    pub message_id: String,
    /// Its offset in the channel's stream: assigned by the store when recorded (ignored
    /// on the way in), read back by [`Channels::history`].
    pub offset: u64,
    /// The channel name.
    pub channel: String,
    /// The event name.
    pub event: String,
    /// The payload, as JSON text.
    pub data: String,
    /// When it was accepted.
    pub published_at: DateTime<Utc>,
}

/// An issued token, kept so it can be revoked by `jti`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// The token id.
    pub jti: String,
    /// The account that issued it.
    pub account_id: String,
    /// Its client id.
    pub client_id: String,
    /// When it expires; revocations are kept until then.
    pub expires_at: DateTime<Utc>,
}

/// A top-up waiting for payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRow {
    /// `co_<ulid>`.
    pub checkout_id: String,
    /// The account to credit.
    pub account_id: String,
    /// Micro-USD.
    pub amount: i64,
    /// Whether it was completed (and credited).
    pub completed: bool,
    /// When it can no longer be completed.
    pub expires_at: DateTime<Utc>,
}

/// The outcome of completing a checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The account was credited now.
    Credited,
    /// It was completed before; nothing changed.
    AlreadyCompleted,
    /// It expired before completion; nothing changed.
    Expired,
    /// Crediting it would take the balance past the maximum; nothing changed.
    OverLimit,
    /// No such checkout.
    NotFound,
}

/// Accounts, their keys and their credit.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Creates an account whose API key hashes to `key_hash`.
    async fn create_account(&self, account_id: &str, key_hash: &[u8; 32], balance: i64) -> StoreResult<()>;
    /// The account whose key hashes to `key_hash`.
    async fn account_by_key_hash(&self, key_hash: &[u8; 32]) -> StoreResult<Option<AccountRow>>;
    /// The account, by id.
    async fn account(&self, account_id: &str) -> StoreResult<Option<AccountRow>>;
    /// True when no account exists yet (first start).
    async fn is_empty(&self) -> StoreResult<bool>;
    /// Debits `price` when the balance covers it; atomic.
    async fn charge(&self, account_id: &str, price: i64, seal: Option<&Seal>) -> StoreResult<()>;
    /// Records a checkout.
    async fn create_checkout(&self, checkout: &CheckoutRow, seal: Option<&Seal>) -> StoreResult<()>;
    /// The checkout, by id.
    async fn checkout(&self, checkout_id: &str) -> StoreResult<Option<CheckoutRow>>;
    /// Marks the checkout completed and credits its account, exactly once, atomically,
    /// unless the balance would then exceed `max_balance`.
    async fn complete_checkout(
        &self,
        checkout_id: &str,
        now: DateTime<Utc>,
        max_balance: i64,
    ) -> StoreResult<Completion>;
}

/// Channels and their recent messages.
#[async_trait]
pub trait Channels: Send + Sync {
    /// Creates the channel and debits `price` in one transaction (sealed); when a channel
    /// of that name exists, returns it (with `false`), charges and seals nothing.
    async fn create_channel(
        &self,
        channel: &ChannelRow,
        price: i64,
        seal: Option<&Seal>,
    ) -> StoreResult<(ChannelRow, bool)>;
    /// The channel, by account and name.
    async fn channel(&self, account_id: &str, name: &str) -> StoreResult<Option<ChannelRow>>;
    /// Up to `limit` channels with names after `after`, ordered by name (keyset paging,
    /// so pages stay correct while channels come and go).
    async fn list_channels(&self, account_id: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<ChannelRow>>;
    /// Deletes the channel and its messages; false when it did not exist.
    async fn delete_channel(&self, account_id: &str, name: &str, seal: Option<&Seal>) -> StoreResult<bool>;
    /// Records messages in order and debits `price` in one transaction; each message gets
    /// the next offset of its channel, and the positions are returned in the messages'
    /// order. The transaction also commits the seal that `seal` makes of the positions.
    /// Every channel keeps what `retention` says. When the balance does not cover `price`
    /// or a channel does not exist, nothing is recorded and
    /// [`StoreError::MessagesRefused`] says which.
    async fn record_messages(
        &self,
        account_id: &str,
        messages: &[MessageRow],
        price: i64,
        retention: Retention,
        seal: SealOf,
    ) -> StoreResult<Vec<Position>>;
    /// Up to `limit` retained messages of a channel, in `direction` from the offset
    /// `since` (exclusive; from the start or the newest when absent).
    async fn history(
        &self,
        account_id: &str,
        channel: &str,
        since: Option<u64>,
        limit: u32,
        direction: Direction,
    ) -> StoreResult<Vec<MessageRow>>;
}

/// Issued and revoked tokens.
#[async_trait]
pub trait Tokens: Send + Sync {
    /// Records an issued token and debits `price` in one transaction.
    async fn record_token(&self, token: &TokenRow, price: i64, seal: Option<&Seal>) -> StoreResult<()>;
    /// The token, by id and issuing account.
    async fn token(&self, account_id: &str, jti: &str) -> StoreResult<Option<TokenRow>>;
    /// Marks the token revoked (idempotent).
    async fn revoke_token(&self, account_id: &str, jti: &str) -> StoreResult<()>;
    /// Whether the token was revoked.
    async fn is_revoked(&self, jti: &str) -> StoreResult<bool>;
}

/// Every store concern, plus settings and health.
#[async_trait]
pub trait Store: Accounts + Channels + Tokens + Users + Apps + IdempotencyStore {
    /// Whether the engine answers.
    async fn ping(&self) -> StoreResult<()>;
    /// A server setting (e.g. the generated token secret).
    async fn setting(&self, name: &str) -> StoreResult<Option<String>>;
    /// Sets a setting unless it is set; returns the value that is set afterwards.
    async fn init_setting(&self, name: &str, value: &str) -> StoreResult<String>;
    /// Deletes what no longer matters, each by its cutoff (see [`Cutoffs`]); returns the
    /// rows deleted.
    async fn purge(&self, cutoffs: &Cutoffs) -> StoreResult<u64>;
    /// Deletes every idempotency record without an answer: their requests' effects never
    /// committed. Only for a single node starting, when no request can be running.
    async fn release_all_leases(&self) -> StoreResult<u64>;
}

/// Opens the store named by `url`.
pub async fn open(url: &str) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        return Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(std::sync::Arc::new(postgres::PostgresStore::open(url).await?));
    }
    anyhow::bail!(
        "unsupported store {:?}: use sqlite://<file> or postgres://<user>@<host>/<database>",
        crate::config::redact_url(url)
    )
}

impl From<StoreError> for realtime_api::ApiError {
    /// The problem for failures of the idempotency records; the service maps the others.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => realtime_api::ApiError::unavailable(cause),
            StoreError::LeaseLost => realtime_api::idempotency::lease_lost(),
            other => realtime_api::ApiError::internal(other),
        }
    }
}

/// What a seal that claims its key found when writing the key's record: nobody (the record
/// is written, with the effect and the `sealed` answer) or `holder`, another request's
/// record (the effect must not commit: its job fails with [`StoreError::LeaseLost`]).
fn claimed(claim: &Claim, sealed: &str, holder: Option<Record>) -> StoreResult<()> {
    match holder {
        None => {
            claim.written(sealed);
            Ok(())
        }
        Some(holder) => {
            claim.held_by(holder);
            Err(StoreError::LeaseLost)
        }
    }
}
