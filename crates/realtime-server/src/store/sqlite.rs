//! The embedded store: one SQLite file in WAL mode.
//!
//! SQLite has one writer at a time. Every write goes through a pool of exactly one
//! connection, so writers queue fairly in the pool instead of contending for SQLite's
//! lock (whose busy handler sleeps and retries); writing transactions still start with
//! `BEGIN IMMEDIATE` so they never have to upgrade. Reads use their own pool and are not
//! blocked by the writer in WAL mode. The hot writes (recording published messages,
//! claiming and sealing idempotency keys) are jobs of a group writer: concurrent ones
//! share a transaction (see [`super::group_commit`]).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use realtime_types::{ChannelType, Direction, Position};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool, Transaction};

use super::*;

mod apps;
mod idempotency;
mod messages;
mod replies;
mod users;
mod writer;

use writer::SqliteWriter;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Reads.
    pool: SqlitePool,
    /// Writes: one connection.
    writer: SqlitePool,
    /// Writes that share transactions, on a connection of their own that takes the
    /// writing connection's turn.
    group: SqliteWriter,
    /// The directory of a scratch database (`sqlite::memory:`), removed with the store.
    _scratch: Option<std::sync::Arc<tempfile::TempDir>>,
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `url` and applies the migrations.
    /// `sqlite::memory:` is a scratch database in a file of its own, removed when the
    /// store is dropped (the group writer needs a file to open a second connection on).
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let mut options = SqliteConnectOptions::from_str(url)?;
        let mut scratch = None;
        if is_in_memory(url) {
            let directory = tempfile::Builder::new().prefix("realtime-scratch-").tempdir()?;
            options = SqliteConnectOptions::new().filename(directory.path().join("scratch.db"));
            scratch = Some(std::sync::Arc::new(directory));
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT.to_string())
            .foreign_keys(true);
        // The group writer takes the writing connection once per batch: no ping each time
        // (a file's connection does not go stale).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&writer).await?;
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options.clone()).await?;
        let group = SqliteWriter::start(options.get_filename(), writer.clone())?;
        Ok(SqliteStore { pool, writer, group, _scratch: scratch })
    }

    async fn write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// The pages the WAL grows by before a commit copies them into the database (SQLite's
/// default is 1,000). A checkpoint writes each page once however often it changed, and the
/// pages publishes change are few and hot (the account, the channel, the tails of the
/// messages and keys): at 4,000 (a WAL of 16 MiB), checkpoints took 3.7% of the REST
/// publish's CPU instead of 6.4%.
const WAL_AUTOCHECKPOINT: i64 = 4000;

/// Whether `url` names SQLite's in-memory database.
fn is_in_memory(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    rest.starts_with(":memory:") || rest.contains("mode=memory")
}

fn time(text: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|error| StoreError::Internal(sqlx::Error::Decode(Box::new(error))))
}

fn text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// An offset as the engine stores it (a signed 64-bit integer).
fn stored(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}

/// An offset read back from the engine.
fn offset(stored: i64) -> StoreResult<u64> {
    u64::try_from(stored).map_err(|error| StoreError::Internal(sqlx::Error::Decode(Box::new(error))))
}

fn channel_type(text: &str) -> StoreResult<ChannelType> {
    match text {
        "public" => Ok(ChannelType::Public),
        "private" => Ok(ChannelType::Private),
        "presence" => Ok(ChannelType::Presence),
        other => Err(StoreError::Internal(sqlx::Error::Decode(format!("unknown channel type {other:?}").into()))),
    }
}

fn channel_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<ChannelRow> {
    Ok(ChannelRow {
        channel_id: row.try_get("channel_id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        channel_type: channel_type(row.try_get("channel_type")?)?,
        created_at: time(row.try_get("created_at")?)?,
        last_published_at: row.try_get::<Option<String>, _>("last_published_at")?.as_deref().map(time).transpose()?,
        last_offset: offset(row.try_get("last_offset")?)?,
    })
}

/// A debit that happens only when the balance covers it (`?1` the price, `?2` the
/// account); run through sqlx here and through rusqlite by the group writer.
const DEBIT: &str = "UPDATE accounts SET balance = balance - ?1 WHERE account_id = ?2 AND balance >= ?1";

/// The balance of account `?1`.
const BALANCE: &str = "SELECT balance FROM accounts WHERE account_id = ?1";

/// Stores the answer of the request that holds the key (`?1`-`?3` the scope, `?4` its
/// lease, `?5` the answer), unless it has one.
const SEAL: &str = "UPDATE idempotency SET response = ?5 WHERE account_id = ?1 AND operation = ?2 AND key = ?3 \
                    AND lease_id = ?4 AND response IS NULL";

/// Debits `price` inside `tx`, or reports the balance that does not cover it.
async fn debit(tx: &mut SqliteConnection, account_id: &str, price: i64) -> StoreResult<()> {
    if price == 0 {
        return Ok(());
    }
    let updated = sqlx::query(DEBIT).bind(price).bind(account_id).execute(&mut *tx).await?;
    if updated.rows_affected() == 1 {
        return Ok(());
    }
    let balance: i64 = sqlx::query_scalar(BALANCE).bind(account_id).fetch_optional(&mut *tx).await?.unwrap_or(0);
    Err(StoreError::InsufficientCredit { balance, required: price })
}

/// Commits the answer of the idempotent request in `tx`, or fails when the request no
/// longer holds its key (the transaction then rolls back with the effect).
async fn commit_seal(tx: &mut SqliteConnection, seal: Option<&Seal>) -> StoreResult<()> {
    let Some(seal) = seal else { return Ok(()) };
    if seal.claim.is_some() {
        // Only the group writer's jobs (`record_messages`) write a claim with their seal.
        return Err(StoreError::Internal(sqlx::Error::Protocol(format!(
            "{} cannot claim its key at its seal on SQLite",
            seal.scope.operation
        ))));
    }
    let sealed = sqlx::query(SEAL)
        .bind(&seal.scope.account_id)
        .bind(seal.scope.operation)
        .bind(seal.scope.key.as_str())
        .bind(&seal.lease)
        .bind(&seal.answer)
        .execute(&mut *tx)
        .await?;
    if sealed.rows_affected() == 1 { Ok(()) } else { Err(StoreError::LeaseLost) }
}

#[async_trait]
impl Accounts for SqliteStore {
    async fn create_account(&self, account_id: &str, key_hash: &[u8; 32], balance: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO accounts (account_id, key_hash, balance, created_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(account_id)
            .bind(key_hash.as_slice())
            .bind(balance)
            .bind(text(Utc::now()))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn account_by_key_hash(&self, key_hash: &[u8; 32]) -> StoreResult<Option<AccountRow>> {
        let row = sqlx::query("SELECT account_id, balance FROM accounts WHERE key_hash = ?1")
            .bind(key_hash.as_slice())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok(AccountRow { account_id: row.try_get("account_id")?, balance: row.try_get("balance")? }))
            .transpose()
    }

    async fn account(&self, account_id: &str) -> StoreResult<Option<AccountRow>> {
        let row = sqlx::query("SELECT account_id, balance FROM accounts WHERE account_id = ?1")
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok(AccountRow { account_id: row.try_get("account_id")?, balance: row.try_get("balance")? }))
            .transpose()
    }

    async fn is_empty(&self) -> StoreResult<bool> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts").fetch_one(&self.pool).await?;
        Ok(count == 0)
    }

    async fn charge(&self, account_id: &str, price: i64, seal: Option<&Seal>) -> StoreResult<()> {
        let mut tx = self.write().await?;
        debit(&mut tx, account_id, price).await?;
        commit_seal(&mut tx, seal).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_checkout(&self, checkout: &CheckoutRow, seal: Option<&Seal>) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO checkouts (checkout_id, account_id, amount, completed, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&checkout.checkout_id)
        .bind(&checkout.account_id)
        .bind(checkout.amount)
        .bind(checkout.completed)
        .bind(text(checkout.expires_at))
        .execute(&mut *tx)
        .await?;
        commit_seal(&mut tx, seal).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn checkout(&self, checkout_id: &str) -> StoreResult<Option<CheckoutRow>> {
        let row = sqlx::query(
            "SELECT checkout_id, account_id, amount, completed, expires_at FROM checkouts WHERE checkout_id = ?1",
        )
        .bind(checkout_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(CheckoutRow {
                checkout_id: row.try_get("checkout_id")?,
                account_id: row.try_get("account_id")?,
                amount: row.try_get("amount")?,
                completed: row.try_get("completed")?,
                expires_at: time(row.try_get("expires_at")?)?,
            })
        })
        .transpose()
    }

    async fn complete_checkout(
        &self,
        checkout_id: &str,
        now: DateTime<Utc>,
        max_balance: i64,
    ) -> StoreResult<Completion> {
        let mut tx = self.write().await?;
        let row = sqlx::query("SELECT account_id, amount, completed, expires_at FROM checkouts WHERE checkout_id = ?1")
            .bind(checkout_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(Completion::NotFound) };
        if row.try_get::<bool, _>("completed")? {
            return Ok(Completion::AlreadyCompleted);
        }
        if time(row.try_get("expires_at")?)? < now {
            return Ok(Completion::Expired);
        }
        let account_id: String = row.try_get("account_id")?;
        let amount: i64 = row.try_get("amount")?;
        let credited =
            sqlx::query("UPDATE accounts SET balance = balance + ?1 WHERE account_id = ?2 AND balance <= ?3 - ?1")
                .bind(amount)
                .bind(&account_id)
                .bind(max_balance)
                .execute(&mut *tx)
                .await?;
        if credited.rows_affected() == 0 {
            return Ok(Completion::OverLimit);
        }
        sqlx::query("UPDATE checkouts SET completed = 1 WHERE checkout_id = ?1 AND completed = 0")
            .bind(checkout_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Completion::Credited)
    }
}

#[async_trait]
impl Channels for SqliteStore {
    async fn create_channel(
        &self,
        channel: &ChannelRow,
        price: i64,
        seal: Option<&Seal>,
    ) -> StoreResult<(ChannelRow, bool)> {
        let mut tx = self.write().await?;
        let existing = sqlx::query("SELECT * FROM channels WHERE account_id = ?1 AND name = ?2")
            .bind(&channel.account_id)
            .bind(&channel.name)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = existing {
            return Ok((channel_row(&row)?, false));
        }
        debit(&mut tx, &channel.account_id, price).await?;
        sqlx::query(
            "INSERT INTO channels (account_id, name, channel_id, channel_type, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&channel.account_id)
        .bind(&channel.name)
        .bind(&channel.channel_id)
        .bind(channel.channel_type.as_str())
        .bind(text(channel.created_at))
        .execute(&mut *tx)
        .await?;
        commit_seal(&mut tx, seal).await?;
        tx.commit().await?;
        Ok((channel.clone(), true))
    }

    async fn channel(&self, account_id: &str, name: &str) -> StoreResult<Option<ChannelRow>> {
        let row = sqlx::query("SELECT * FROM channels WHERE account_id = ?1 AND name = ?2")
            .bind(account_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(channel_row).transpose()
    }

    async fn list_channels(&self, account_id: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<ChannelRow>> {
        let rows = sqlx::query("SELECT * FROM channels WHERE account_id = ?1 AND name > ?2 ORDER BY name LIMIT ?3")
            .bind(account_id)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(channel_row).collect()
    }

    async fn delete_channel(&self, account_id: &str, name: &str, seal: Option<&Seal>) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let deleted = sqlx::query("DELETE FROM channels WHERE account_id = ?1 AND name = ?2")
            .bind(account_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM messages WHERE account_id = ?1 AND channel = ?2")
            .bind(account_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 1 {
            commit_seal(&mut tx, seal).await?;
        }
        tx.commit().await?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn record_messages(
        &self,
        account_id: &str,
        messages: &[MessageRow],
        price: i64,
        retention: Retention,
        seal: SealOf,
    ) -> StoreResult<Vec<Position>> {
        messages::record(self, account_id, messages, price, retention, seal).await
    }

    async fn history(
        &self,
        account_id: &str,
        channel: &str,
        since: Option<u64>,
        limit: u32,
        direction: Direction,
    ) -> StoreResult<Vec<MessageRow>> {
        let query = match direction {
            Direction::Forward => {
                "SELECT * FROM messages WHERE account_id = ?1 AND channel = ?2 AND stream_offset > ?3 \
                 ORDER BY stream_offset ASC LIMIT ?4"
            }
            Direction::Backward => {
                "SELECT * FROM messages WHERE account_id = ?1 AND channel = ?2 AND stream_offset < ?3 \
                 ORDER BY stream_offset DESC LIMIT ?4"
            }
        };
        let bound = match (direction, since) {
            (_, Some(since)) => stored(since),
            (Direction::Forward, None) => 0,
            (Direction::Backward, None) => i64::MAX,
        };
        let rows = sqlx::query(query)
            .bind(account_id)
            .bind(channel)
            .bind(bound)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(MessageRow {
                    message_id: row.try_get("message_id")?,
                    offset: offset(row.try_get("stream_offset")?)?,
                    channel: row.try_get("channel")?,
                    event: row.try_get("event")?,
                    data: row.try_get("data")?,
                    published_at: time(row.try_get("published_at")?)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl Tokens for SqliteStore {
    async fn record_token(&self, token: &TokenRow, price: i64, seal: Option<&Seal>) -> StoreResult<()> {
        let mut tx = self.write().await?;
        debit(&mut tx, &token.account_id, price).await?;
        sqlx::query("INSERT INTO tokens (jti, account_id, client_id, expires_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(&token.jti)
            .bind(&token.account_id)
            .bind(&token.client_id)
            .bind(text(token.expires_at))
            .execute(&mut *tx)
            .await?;
        commit_seal(&mut tx, seal).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn token(&self, account_id: &str, jti: &str) -> StoreResult<Option<TokenRow>> {
        let row = sqlx::query("SELECT * FROM tokens WHERE account_id = ?1 AND jti = ?2")
            .bind(account_id)
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(TokenRow {
                jti: row.try_get("jti")?,
                account_id: row.try_get("account_id")?,
                client_id: row.try_get("client_id")?,
                expires_at: time(row.try_get("expires_at")?)?,
            })
        })
        .transpose()
    }

    async fn revoke_token(&self, account_id: &str, jti: &str) -> StoreResult<()> {
        sqlx::query("UPDATE tokens SET revoked = 1 WHERE account_id = ?1 AND jti = ?2")
            .bind(account_id)
            .bind(jti)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> StoreResult<bool> {
        let revoked: Option<bool> = sqlx::query_scalar("SELECT revoked FROM tokens WHERE jti = ?1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        Ok(revoked.unwrap_or(false))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE name = ?1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn purge(&self, cutoffs: &Cutoffs) -> StoreResult<u64> {
        let mut deleted = 0;
        for (statement, cutoff) in [
            ("DELETE FROM idempotency WHERE created_at < ?1", cutoffs.idempotency),
            ("DELETE FROM tokens WHERE expires_at < ?1", cutoffs.expired),
            ("DELETE FROM checkouts WHERE expires_at < ?1", cutoffs.expired),
            ("DELETE FROM commands WHERE expires_at < ?1", cutoffs.expired),
            ("DELETE FROM messages WHERE published_at < ?1", cutoffs.messages),
            ("DELETE FROM user_messages WHERE sent_at < ?1", cutoffs.user_messages),
        ] {
            deleted += sqlx::query(statement).bind(text(cutoff)).execute(&self.writer).await?.rows_affected();
        }
        Ok(deleted)
    }

    async fn release_all_leases(&self) -> StoreResult<u64> {
        let deleted = sqlx::query("DELETE FROM idempotency WHERE response IS NULL").execute(&self.writer).await?;
        Ok(deleted.rows_affected())
    }

    async fn init_setting(&self, name: &str, value: &str) -> StoreResult<String> {
        sqlx::query("INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(&self.writer)
            .await?;
        let value: String =
            sqlx::query_scalar("SELECT value FROM settings WHERE name = ?1").bind(name).fetch_one(&self.pool).await?;
        Ok(value)
    }
}
