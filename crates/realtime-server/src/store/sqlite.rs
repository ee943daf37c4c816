//! The embedded store: one SQLite file in WAL mode.
//!
//! SQLite has one writer at a time. Every write goes through a pool of exactly one
//! connection, so writers queue fairly in the pool instead of contending for SQLite's
//! lock (whose busy handler sleeps and retries); writing transactions still start with
//! `BEGIN IMMEDIATE` so they never have to upgrade. Reads use their own pool and are not
//! blocked by the writer in WAL mode.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use realtime_types::ChannelType;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use super::*;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Reads.
    pool: SqlitePool,
    /// Writes: one connection.
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `url` and applies the migrations.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        sqlx::migrate!("migrations/sqlite").run(&writer).await?;
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        Ok(SqliteStore { pool, writer })
    }

    async fn write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

fn time(text: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|error| StoreError::Internal(sqlx::Error::Decode(Box::new(error))))
}

fn text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
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
    })
}

/// Debits `price` inside `tx`, or reports the balance that does not cover it.
async fn debit(tx: &mut Transaction<'static, Sqlite>, account_id: &str, price: i64) -> StoreResult<()> {
    if price == 0 {
        return Ok(());
    }
    let updated = sqlx::query("UPDATE accounts SET balance = balance - ?1 WHERE account_id = ?2 AND balance >= ?1")
        .bind(price)
        .bind(account_id)
        .execute(&mut **tx)
        .await?;
    if updated.rows_affected() == 1 {
        return Ok(());
    }
    let balance: i64 = sqlx::query_scalar("SELECT balance FROM accounts WHERE account_id = ?1")
        .bind(account_id)
        .fetch_optional(&mut **tx)
        .await?
        .unwrap_or(0);
    Err(StoreError::InsufficientCredit { balance, required: price })
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

    async fn charge(&self, account_id: &str, price: i64) -> StoreResult<()> {
        let mut tx = self.write().await?;
        debit(&mut tx, account_id, price).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_checkout(&self, checkout: &CheckoutRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO checkouts (checkout_id, account_id, amount, completed, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&checkout.checkout_id)
        .bind(&checkout.account_id)
        .bind(checkout.amount)
        .bind(checkout.completed)
        .bind(text(checkout.expires_at))
        .execute(&self.writer)
        .await?;
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

    async fn complete_checkout(&self, checkout_id: &str, now: DateTime<Utc>) -> StoreResult<Completion> {
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
        sqlx::query("UPDATE checkouts SET completed = 1 WHERE checkout_id = ?1 AND completed = 0")
            .bind(checkout_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE accounts SET balance = balance + ?1 WHERE account_id = ?2")
            .bind(amount)
            .bind(&account_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Completion::Credited)
    }
}

#[async_trait]
impl Channels for SqliteStore {
    async fn create_channel(&self, channel: &ChannelRow, price: i64) -> StoreResult<(ChannelRow, bool)> {
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

    async fn delete_channel(&self, account_id: &str, name: &str) -> StoreResult<bool> {
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
        tx.commit().await?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn record_messages(
        &self,
        account_id: &str,
        messages: &[MessageRow],
        price: i64,
        keep: u32,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        // Credit first: a call the balance does not cover is refused as such, whatever
        // else is wrong with it (the transaction undoes the debit on any later refusal).
        debit(&mut tx, account_id, price).await?;
        for (index, message) in messages.iter().enumerate() {
            let updated = sqlx::query("UPDATE channels SET last_published_at = ?3 WHERE account_id = ?1 AND name = ?2")
                .bind(account_id)
                .bind(&message.channel)
                .bind(text(message.published_at))
                .execute(&mut *tx)
                .await?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::ChannelNotFound { index });
            }
        }
        for message in messages {
            sqlx::query(
                "INSERT INTO messages (account_id, channel, message_id, event, data, published_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(account_id)
            .bind(&message.channel)
            .bind(&message.message_id)
            .bind(&message.event)
            .bind(&message.data)
            .bind(text(message.published_at))
            .execute(&mut *tx)
            .await?;
        }
        let channels: std::collections::BTreeSet<&str> = messages.iter().map(|m| m.channel.as_str()).collect();
        for channel in channels {
            // The newest `keep` stay: everything older than the keep-th newest goes. The
            // primary key (account, channel, message_id) makes this a short index walk.
            sqlx::query(
                "DELETE FROM messages WHERE account_id = ?1 AND channel = ?2 AND message_id < \
                 (SELECT message_id FROM messages WHERE account_id = ?1 AND channel = ?2 \
                  ORDER BY message_id DESC LIMIT 1 OFFSET ?3)",
            )
            .bind(account_id)
            .bind(channel)
            .bind(i64::from(keep.max(1)) - 1)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl Tokens for SqliteStore {
    async fn record_token(&self, token: &TokenRow, price: i64) -> StoreResult<()> {
        let mut tx = self.write().await?;
        debit(&mut tx, &token.account_id, price).await?;
        sqlx::query("INSERT INTO tokens (jti, account_id, client_id, expires_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(&token.jti)
            .bind(&token.account_id)
            .bind(&token.client_id)
            .bind(text(token.expires_at))
            .execute(&mut *tx)
            .await?;
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
impl Idempotency for SqliteStore {
    async fn claim(
        &self,
        scope: &IdempotencyScope<'_>,
        fingerprint: &str,
        now: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> StoreResult<Claim> {
        let lease_until = text(now + chrono::Duration::seconds(super::LEASE_SECONDS));
        // The common case, a new key, is one statement; only a key seen before needs the
        // transaction below to decide between replay, in-flight, mismatch and takeover.
        let inserted = sqlx::query(
            "INSERT INTO idempotency (account_id, operation, key, fingerprint, response, created_at, lease_until) \
             VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6) ON CONFLICT (account_id, operation, key) DO NOTHING",
        )
        .bind(scope.account_id)
        .bind(scope.operation)
        .bind(scope.key)
        .bind(fingerprint)
        .bind(text(now))
        .bind(&lease_until)
        .execute(&self.writer)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Owned);
        }
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "SELECT fingerprint, response, created_at, lease_until FROM idempotency \
             WHERE account_id = ?1 AND operation = ?2 AND key = ?3",
        )
        .bind(scope.account_id)
        .bind(scope.operation)
        .bind(scope.key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = row {
            let created_at = time(row.try_get("created_at")?)?;
            if created_at >= since {
                let stored: String = row.try_get("fingerprint")?;
                if stored != fingerprint {
                    return Ok(Claim::Mismatch);
                }
                if let Some(response) = row.try_get::<Option<String>, _>("response")? {
                    return Ok(Claim::Replay(response));
                }
                if time(row.try_get("lease_until")?)? > now {
                    return Ok(Claim::InFlight);
                }
            }
        }
        sqlx::query(
            "INSERT INTO idempotency (account_id, operation, key, fingerprint, response, created_at, lease_until) \
             VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6) \
             ON CONFLICT (account_id, operation, key) DO UPDATE SET \
             fingerprint = excluded.fingerprint, response = NULL, created_at = excluded.created_at, \
             lease_until = excluded.lease_until",
        )
        .bind(scope.account_id)
        .bind(scope.operation)
        .bind(scope.key)
        .bind(fingerprint)
        .bind(text(now))
        .bind(lease_until)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Claim::Owned)
    }

    async fn finish(&self, scope: &IdempotencyScope<'_>, response: &str) -> StoreResult<()> {
        sqlx::query("UPDATE idempotency SET response = ?4 WHERE account_id = ?1 AND operation = ?2 AND key = ?3")
            .bind(scope.account_id)
            .bind(scope.operation)
            .bind(scope.key)
            .bind(response)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn release(&self, scope: &IdempotencyScope<'_>) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM idempotency WHERE account_id = ?1 AND operation = ?2 AND key = ?3 AND response IS NULL",
        )
        .bind(scope.account_id)
        .bind(scope.operation)
        .bind(scope.key)
        .execute(&self.writer)
        .await?;
        Ok(())
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

    async fn purge(&self, idempotency_before: DateTime<Utc>, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut deleted = 0;
        for (statement, cutoff) in [
            ("DELETE FROM idempotency WHERE created_at < ?1", idempotency_before),
            ("DELETE FROM tokens WHERE expires_at < ?1", now),
            ("DELETE FROM checkouts WHERE expires_at < ?1", now),
        ] {
            deleted += sqlx::query(statement).bind(text(cutoff)).execute(&self.writer).await?.rows_affected();
        }
        Ok(deleted)
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
