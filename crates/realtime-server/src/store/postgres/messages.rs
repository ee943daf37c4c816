//! Recording published messages on PostgreSQL: a job of the group writer, so concurrent
//! publishes share a transaction and one WAL flush (see [`crate::store::group_commit`]).

use realtime_types::Position;
use sqlx::{PgConnection, Postgres, Row};

use super::{PostgresStore, commit_seal, debit, offset, stored};
use crate::store::group_commit::Later;
use crate::store::{MessageRow, MessagesRefused, Retention, SealOf, StoreError, StoreResult};

/// See [`crate::store::Channels::record_messages`].
pub(super) async fn record(
    store: &PostgresStore,
    account_id: &str,
    messages: &[MessageRow],
    price: i64,
    retention: Retention,
    seal: SealOf,
) -> StoreResult<Vec<Position>> {
    // Owned by each run of the job (it may run twice, see `group_commit`).
    let inputs = std::sync::Arc::new((account_id.to_owned(), messages.to_vec(), seal));
    store
        .group
        .run(account_id, move |connection, later| {
            let inputs = inputs.clone();
            Box::pin(async move {
                let (account, messages, seal) = &*inputs;
                let positions = write(connection, later, account, messages, price, retention).await?;
                commit_seal(connection, seal(&positions).as_ref()).await?;
                Ok(positions)
            })
        })
        .await
}

/// Locks, debits, numbers and inserts, and has the batch trim.
async fn write(
    connection: &mut PgConnection,
    later: &mut Later<Postgres>,
    account_id: &str,
    messages: &[MessageRow],
    price: i64,
    retention: Retention,
) -> StoreResult<Vec<Position>> {
    if let [message] = messages {
        return write_one(connection, later, account_id, message, price, retention)
            .await
            .map(|position| vec![position]);
    }
    // Every reason to refuse is found before giving up (the job's savepoint undoes what
    // it changed). Every writer takes the account row before any channel row, so the
    // lock order is fixed; with a price of 0 the row is locked all the same, so that
    // batches of two nodes never hold one account's channels in two orders.
    if price == 0 {
        sqlx::query("SELECT account_id FROM accounts WHERE account_id = $1 FOR UPDATE")
            .bind(account_id)
            .fetch_optional(&mut *connection)
            .await?;
    }
    let mut refused = MessagesRefused { insufficient_credit: None, missing_channel: None };
    match debit(connection, account_id, price).await {
        Ok(()) => {}
        Err(StoreError::InsufficientCredit { balance, required }) => {
            refused.insufficient_credit = Some((balance, required));
        }
        Err(other) => return Err(other),
    }
    // Lock the batch's channels in name order: two batches naming the same channels
    // in different orders then queue instead of deadlocking. The channel row's lock
    // also orders the offsets of racing publishes on any node. One channel (a publish)
    // is locked in the same order by its update below: one round trip fewer.
    let mut names: Vec<&str> = messages.iter().map(|m| m.channel.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.len() > 1 {
        sqlx::query("SELECT name FROM channels WHERE account_id = $1 AND name = ANY($2) ORDER BY name FOR UPDATE")
            .bind(account_id)
            .bind(&names)
            .fetch_all(&mut *connection)
            .await?;
    }
    // Each message is numbered and inserted in one statement (one round trip): a refusal
    // found after some were inserted rolls them back with the job's savepoint.
    let mut positions = Vec::with_capacity(messages.len());
    for (index, message) in messages.iter().enumerate() {
        let next = sqlx::query(
            "WITH next AS (UPDATE channels SET last_published_at = $3, last_offset = last_offset + 1 \
             WHERE account_id = $1 AND name = $2 RETURNING channel_id, last_offset), \
             inserted AS (INSERT INTO messages (account_id, channel, message_id, event, data, published_at, \
             stream_offset) SELECT $1, $2, $4, $5, $6, $3, last_offset FROM next) \
             SELECT channel_id, last_offset FROM next",
        )
        .bind_message(account_id, message)
        .fetch_optional(&mut *connection)
        .await?;
        let Some(next) = next else {
            refused.missing_channel = Some(index);
            break;
        };
        positions.push(Position { epoch: next.try_get("channel_id")?, offset: offset(next.try_get("last_offset")?)? });
    }
    if refused.insufficient_credit.is_some() || refused.missing_channel.is_some() {
        return Err(StoreError::MessagesRefused(refused));
    }
    let mut newest: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for (message, position) in messages.iter().zip(&positions) {
        newest.insert(message.channel.as_str(), position.offset);
    }
    for (channel, last) in newest {
        trim_later(later, account_id, channel, last, retention);
    }
    Ok(positions)
}

/// [`write`] for one message, the common publish: the debit (which locks the account row
/// first, at any price), the numbering and the insert in one statement, one round trip
/// where there were two or three. Only a refusal reads more, to report every reason.
async fn write_one(
    connection: &mut PgConnection,
    later: &mut Later<Postgres>,
    account_id: &str,
    message: &MessageRow,
    price: i64,
    retention: Retention,
) -> StoreResult<Position> {
    let written = sqlx::query(
        "WITH debited AS (UPDATE accounts SET balance = balance - $7 WHERE account_id = $1 AND balance >= $7 \
         RETURNING account_id), \
         next AS (UPDATE channels SET last_published_at = $3, last_offset = last_offset + 1 \
         WHERE account_id = $1 AND name = $2 AND EXISTS (SELECT 1 FROM debited) RETURNING channel_id, last_offset), \
         inserted AS (INSERT INTO messages (account_id, channel, message_id, event, data, published_at, \
         stream_offset) SELECT $1, $2, $4, $5, $6, $3, last_offset FROM next) \
         SELECT EXISTS (SELECT 1 FROM debited) AS debited, next.channel_id, next.last_offset \
         FROM (SELECT 1) AS one LEFT JOIN next ON true",
    )
    .bind_message(account_id, message)
    .bind(price)
    .fetch_one(&mut *connection)
    .await?;
    let debited: bool = written.try_get("debited")?;
    let epoch: Option<String> = written.try_get("channel_id")?;
    let last_offset: Option<i64> = written.try_get("last_offset")?;
    if let (true, Some(epoch), Some(last_offset)) = (debited, epoch, last_offset) {
        let position = Position { epoch, offset: offset(last_offset)? };
        trim_later(later, account_id, &message.channel, position.offset, retention);
        return Ok(position);
    }
    let mut refused = MessagesRefused { insufficient_credit: None, missing_channel: None };
    if !debited {
        let balance: i64 = sqlx::query_scalar("SELECT balance FROM accounts WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(&mut *connection)
            .await?
            .unwrap_or(0);
        refused.insufficient_credit = Some((balance, price));
    }
    let channel_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM channels WHERE account_id = $1 AND name = $2)")
            .bind(account_id)
            .bind(&message.channel)
            .fetch_one(&mut *connection)
            .await?;
    if !channel_exists {
        refused.missing_channel = Some(0);
    }
    Err(StoreError::MessagesRefused(refused))
}

/// Has the batch trim `channel`'s history once its newest message is at `last`.
fn trim_later(later: &mut Later<Postgres>, account_id: &str, channel: &str, last: u64, retention: Retention) {
    let (account_id, channel) = (account_id.to_owned(), channel.to_owned());
    let key = format!("trim {account_id} {channel}");
    later.last_of(
        key,
        Box::new(move |connection| {
            Box::pin(async move { trim(connection, &account_id, &channel, last, retention).await })
        }),
    );
}

/// Trims the history of a channel whose newest message is at offset `last`: the newest
/// `retention.messages` stay, and none older than the age limit; one range of the
/// (account, channel, offset) index, as on SQLite (see there).
async fn trim(
    connection: &mut PgConnection,
    account_id: &str,
    channel: &str,
    last: u64,
    retention: Retention,
) -> StoreResult<()> {
    let oldest_kept = last.saturating_sub(u64::from(retention.messages.max(1))) + 1;
    sqlx::query(
        "DELETE FROM messages WHERE account_id = $1 AND channel = $2 AND stream_offset < GREATEST($3, COALESCE(( \
         SELECT stream_offset FROM messages WHERE account_id = $1 AND channel = $2 AND published_at >= $4 \
         ORDER BY stream_offset LIMIT 1), $5))",
    )
    .bind(account_id)
    .bind(channel)
    .bind(stored(oldest_kept))
    .bind(retention.published_after)
    .bind(stored(last + 1))
    .execute(connection)
    .await?;
    Ok(())
}

/// The parameters of a statement that numbers and inserts a message: `$1` the account,
/// `$2` the channel, `$3` the time, `$4` to `$6` the message id, event and data.
trait BindMessage<'q> {
    fn bind_message(self, account_id: &'q str, message: &'q MessageRow) -> Self;
}

impl<'q> BindMessage<'q> for sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    fn bind_message(self, account_id: &'q str, message: &'q MessageRow) -> Self {
        self.bind(account_id)
            .bind(&message.channel)
            .bind(message.published_at)
            .bind(&message.message_id)
            .bind(&message.event)
            .bind(&message.data)
    }
}
