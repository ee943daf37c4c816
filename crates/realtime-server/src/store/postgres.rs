//! The shared store of several nodes: PostgreSQL.
//!
//! Every guarantee of the store traits holds across nodes because it is the database's:
//! a debit is one conditional `UPDATE` (the row lock orders concurrent debits), an effect
//! and its debit commit in one transaction, and an idempotency claim is one
//! `INSERT … ON CONFLICT DO UPDATE … WHERE` (a takeover one conditional `UPDATE`), so
//! two nodes racing for one key are ordered by PostgreSQL, not by a lock of either node.
//! Transactions run at the default READ COMMITTED level; each statement that decides
//! something locks the rows it decides on.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use realtime_types::{ChannelType, Direction, Position};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Postgres, Row};

use super::*;

mod apps;
mod idempotency;
mod messages;
mod users;

use super::group_commit::GroupWriter;

/// How long a request waits for a pooled connection before the store reports itself
/// unavailable (the REST side answers 503 then).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The hot writes (recording messages, idempotency keys), batched per transaction.
    group: GroupWriter<Postgres>,
}

impl PostgresStore {
    /// Connects to the database at `url` and applies the migrations (nodes starting
    /// together are serialised by the migrator's advisory lock).
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool =
            PgPoolOptions::new().max_connections(16).acquire_timeout(ACQUIRE_TIMEOUT).connect_with(options).await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let group = GroupWriter::start(pool.clone(), "BEGIN");
        Ok(PostgresStore { pool, group })
    }

    /// Closes the pool's connections (tests drop their database afterwards).
    pub async fn close(&self) {
        self.pool.close().await;
    }
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

fn channel_row(row: &PgRow) -> StoreResult<ChannelRow> {
    Ok(ChannelRow {
        channel_id: row.try_get("channel_id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        channel_type: channel_type(row.try_get("channel_type")?)?,
        created_at: row.try_get("created_at")?,
        last_published_at: row.try_get("last_published_at")?,
        last_offset: offset(row.try_get("last_offset")?)?,
    })
}

fn account_row(row: &PgRow) -> StoreResult<AccountRow> {
    Ok(AccountRow { account_id: row.try_get("account_id")?, balance: row.try_get("balance")? })
}

/// Debits `price` inside `tx`, or reports the balance that does not cover it. The
/// conditional update locks the account row, so concurrent debits on any node queue.
async fn debit(tx: &mut PgConnection, account_id: &str, price: i64) -> StoreResult<()> {
    if price == 0 {
        return Ok(());
    }
    let updated = sqlx::query("UPDATE accounts SET balance = balance - $1 WHERE account_id = $2 AND balance >= $1")
        .bind(price)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() == 1 {
        return Ok(());
    }
    let balance: i64 = sqlx::query_scalar("SELECT balance FROM accounts WHERE account_id = $1")
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or(0);
    Err(StoreError::InsufficientCredit { balance, required: price })
}

/// Commits the answer of the idempotent request in `tx`, or fails when the request no
/// longer holds its key (the transaction then rolls back with the effect). A request that
/// claimed no key writes its record here, or learns which request holds the key.
async fn commit_seal(tx: &mut PgConnection, seal: Option<&Seal>) -> StoreResult<()> {
    let Some(seal) = seal else { return Ok(()) };
    if let Some(claim) = &seal.claim {
        let record = claim.record(&seal.answer);
        return claimed(
            claim,
            &seal.answer,
            idempotency::claim(tx, &seal.scope, &record, claim.retained_since()).await?,
        );
    }
    let sealed = sqlx::query(
        "UPDATE idempotency SET response = $5 WHERE account_id = $1 AND operation = $2 AND key = $3 \
         AND lease_id = $4 AND response IS NULL",
    )
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
impl Accounts for PostgresStore {
    async fn create_account(&self, account_id: &str, key_hash: &[u8; 32], balance: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO accounts (account_id, key_hash, balance, created_at) VALUES ($1, $2, $3, $4)")
            .bind(account_id)
            .bind(key_hash.as_slice())
            .bind(balance)
            .bind(Utc::now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn account_by_key_hash(&self, key_hash: &[u8; 32]) -> StoreResult<Option<AccountRow>> {
        let row = sqlx::query("SELECT account_id, balance FROM accounts WHERE key_hash = $1")
            .bind(key_hash.as_slice())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(account_row).transpose()
    }

    async fn account(&self, account_id: &str) -> StoreResult<Option<AccountRow>> {
        let row = sqlx::query("SELECT account_id, balance FROM accounts WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(account_row).transpose()
    }

    async fn is_empty(&self) -> StoreResult<bool> {
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts)").fetch_one(&self.pool).await?;
        Ok(!any)
    }

    async fn charge(&self, account_id: &str, price: i64, seal: Option<&Seal>) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        debit(&mut tx, account_id, price).await?;
        commit_seal(&mut tx, seal).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_checkout(&self, checkout: &CheckoutRow, seal: Option<&Seal>) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO checkouts (checkout_id, account_id, amount, completed, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&checkout.checkout_id)
        .bind(&checkout.account_id)
        .bind(checkout.amount)
        .bind(checkout.completed)
        .bind(checkout.expires_at)
        .execute(&mut *tx)
        .await?;
        commit_seal(&mut tx, seal).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn checkout(&self, checkout_id: &str) -> StoreResult<Option<CheckoutRow>> {
        let row = sqlx::query(
            "SELECT checkout_id, account_id, amount, completed, expires_at FROM checkouts WHERE checkout_id = $1",
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
                expires_at: row.try_get("expires_at")?,
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
        let mut tx = self.pool.begin().await?;
        // The row lock makes a second completion (on this node or another) wait and then
        // see `completed`.
        let row = sqlx::query(
            "SELECT account_id, amount, completed, expires_at FROM checkouts WHERE checkout_id = $1 FOR UPDATE",
        )
        .bind(checkout_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(Completion::NotFound) };
        if row.try_get::<bool, _>("completed")? {
            return Ok(Completion::AlreadyCompleted);
        }
        if row.try_get::<DateTime<Utc>, _>("expires_at")? < now {
            return Ok(Completion::Expired);
        }
        let account_id: String = row.try_get("account_id")?;
        let amount: i64 = row.try_get("amount")?;
        let credited =
            sqlx::query("UPDATE accounts SET balance = balance + $1 WHERE account_id = $2 AND balance <= $3 - $1")
                .bind(amount)
                .bind(&account_id)
                .bind(max_balance)
                .execute(&mut *tx)
                .await?;
        if credited.rows_affected() == 0 {
            return Ok(Completion::OverLimit);
        }
        sqlx::query("UPDATE checkouts SET completed = TRUE WHERE checkout_id = $1")
            .bind(checkout_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Completion::Credited)
    }
}

#[async_trait]
impl Channels for PostgresStore {
    async fn create_channel(
        &self,
        channel: &ChannelRow,
        price: i64,
        seal: Option<&Seal>,
    ) -> StoreResult<(ChannelRow, bool)> {
        let mut tx = self.pool.begin().await?;
        // A concurrent create of the same name waits on the unique index here and then
        // does nothing, so only the creator is charged.
        let inserted = sqlx::query(
            "INSERT INTO channels (account_id, name, channel_id, channel_type, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, name) DO NOTHING",
        )
        .bind(&channel.account_id)
        .bind(&channel.name)
        .bind(&channel.channel_id)
        .bind(channel.channel_type.as_str())
        .bind(channel.created_at)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            let row = sqlx::query("SELECT * FROM channels WHERE account_id = $1 AND name = $2")
                .bind(&channel.account_id)
                .bind(&channel.name)
                .fetch_one(&mut *tx)
                .await?;
            return Ok((channel_row(&row)?, false));
        }
        debit(&mut tx, &channel.account_id, price).await?;
        commit_seal(&mut tx, seal).await?;
        tx.commit().await?;
        Ok((channel.clone(), true))
    }

    async fn channel(&self, account_id: &str, name: &str) -> StoreResult<Option<ChannelRow>> {
        let row = sqlx::query("SELECT * FROM channels WHERE account_id = $1 AND name = $2")
            .bind(account_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(channel_row).transpose()
    }

    async fn list_channels(&self, account_id: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<ChannelRow>> {
        // `COLLATE "C"` orders by bytes, as SQLite does, whatever the database's locale.
        let rows = sqlx::query(
            "SELECT * FROM channels WHERE account_id = $1 AND name COLLATE \"C\" > $2 \
             ORDER BY name COLLATE \"C\" LIMIT $3",
        )
        .bind(account_id)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(channel_row).collect()
    }

    async fn delete_channel(&self, account_id: &str, name: &str, seal: Option<&Seal>) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM channels WHERE account_id = $1 AND name = $2")
            .bind(account_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM messages WHERE account_id = $1 AND channel = $2")
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
                "SELECT * FROM messages WHERE account_id = $1 AND channel = $2 AND stream_offset > $3 \
                 ORDER BY stream_offset ASC LIMIT $4"
            }
            Direction::Backward => {
                "SELECT * FROM messages WHERE account_id = $1 AND channel = $2 AND stream_offset < $3 \
                 ORDER BY stream_offset DESC LIMIT $4"
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
                    published_at: row.try_get("published_at")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl Tokens for PostgresStore {
    async fn record_token(&self, token: &TokenRow, price: i64, seal: Option<&Seal>) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        debit(&mut tx, &token.account_id, price).await?;
        sqlx::query("INSERT INTO tokens (jti, account_id, client_id, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(&token.jti)
            .bind(&token.account_id)
            .bind(&token.client_id)
            .bind(token.expires_at)
            .execute(&mut *tx)
            .await?;
        commit_seal(&mut tx, seal).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn token(&self, account_id: &str, jti: &str) -> StoreResult<Option<TokenRow>> {
        let row = sqlx::query("SELECT * FROM tokens WHERE account_id = $1 AND jti = $2")
            .bind(account_id)
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(TokenRow {
                jti: row.try_get("jti")?,
                account_id: row.try_get("account_id")?,
                client_id: row.try_get("client_id")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    async fn revoke_token(&self, account_id: &str, jti: &str) -> StoreResult<()> {
        sqlx::query("UPDATE tokens SET revoked = TRUE WHERE account_id = $1 AND jti = $2")
            .bind(account_id)
            .bind(jti)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> StoreResult<bool> {
        let revoked: Option<bool> = sqlx::query_scalar("SELECT revoked FROM tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        Ok(revoked.unwrap_or(false))
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn purge(&self, cutoffs: &Cutoffs) -> StoreResult<u64> {
        let mut deleted = 0;
        for (statement, cutoff) in [
            ("DELETE FROM idempotency WHERE created_at < $1", cutoffs.idempotency),
            ("DELETE FROM tokens WHERE expires_at < $1", cutoffs.expired),
            ("DELETE FROM checkouts WHERE expires_at < $1", cutoffs.expired),
            ("DELETE FROM commands WHERE expires_at < $1", cutoffs.expired),
            ("DELETE FROM messages WHERE published_at < $1", cutoffs.messages),
            ("DELETE FROM user_messages WHERE sent_at < $1", cutoffs.user_messages),
        ] {
            deleted += sqlx::query(statement).bind(cutoff).execute(&self.pool).await?.rows_affected();
        }
        Ok(deleted)
    }

    async fn release_all_leases(&self) -> StoreResult<u64> {
        let deleted = sqlx::query("DELETE FROM idempotency WHERE response IS NULL").execute(&self.pool).await?;
        Ok(deleted.rows_affected())
    }

    async fn init_setting(&self, name: &str, value: &str) -> StoreResult<String> {
        // Two nodes starting together race here; the conflict makes the loser read the
        // winner's value.
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        let value: String =
            sqlx::query_scalar("SELECT value FROM settings WHERE name = $1").bind(name).fetch_one(&self.pool).await?;
        Ok(value)
    }
}
