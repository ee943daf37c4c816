//! Recording published messages on SQLite: a job of the group writer, so concurrent
//! publishes share a transaction.

use realtime_types::Position;
use sqlx::{Row, SqliteConnection};

use super::{SqliteStore, commit_seal, debit, offset, stored, text};
use crate::store::{MessageRow, MessagesRefused, Retention, SealOf, StoreError, StoreResult};

/// See [`crate::store::Channels::record_messages`].
pub(super) async fn record(
    store: &SqliteStore,
    account_id: &str,
    messages: &[MessageRow],
    price: i64,
    retention: Retention,
    seal: &SealOf<'_>,
) -> StoreResult<Vec<Position>> {
    let (account, messages) = (account_id.to_owned(), messages.to_vec());
    store
        .group
        .run_sealed(account_id, seal, move |hand_over| {
            move |connection| {
                Box::pin(async move {
                    let positions = write(connection, &account, &messages, price, retention).await?;
                    let seal = hand_over.exchange(&positions).await?;
                    commit_seal(connection, seal.as_ref()).await?;
                    Ok(positions)
                })
            }
        })
        .await
}

/// Debits, numbers, inserts and trims; every reason to refuse is found before giving up.
async fn write(
    connection: &mut SqliteConnection,
    account_id: &str,
    messages: &[MessageRow],
    price: i64,
    retention: Retention,
) -> StoreResult<Vec<Position>> {
    let mut refused = MessagesRefused { insufficient_credit: None, missing_channel: None };
    match debit(connection, account_id, price).await {
        Ok(()) => {}
        Err(StoreError::InsufficientCredit { balance, required }) => {
            refused.insufficient_credit = Some((balance, required));
        }
        Err(other) => return Err(other),
    }
    let mut positions = Vec::with_capacity(messages.len());
    for (index, message) in messages.iter().enumerate() {
        let next = sqlx::query(
            "UPDATE channels SET last_published_at = ?3, last_offset = last_offset + 1 \
             WHERE account_id = ?1 AND name = ?2 RETURNING channel_id, last_offset",
        )
        .bind(account_id)
        .bind(&message.channel)
        .bind(text(message.published_at))
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
    for (message, position) in messages.iter().zip(&positions) {
        sqlx::query(
            "INSERT INTO messages (account_id, channel, message_id, event, data, published_at, stream_offset) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(account_id)
        .bind(&message.channel)
        .bind(&message.message_id)
        .bind(&message.event)
        .bind(&message.data)
        .bind(text(message.published_at))
        .bind(stored(position.offset))
        .execute(&mut *connection)
        .await?;
    }
    let mut newest: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for (message, position) in messages.iter().zip(&positions) {
        newest.insert(message.channel.as_str(), position.offset);
    }
    for (channel, last) in newest {
        // The newest `retention.messages` stay, and none older than the age limit. Both
        // cut a prefix of the channel's stream (offsets grow with publish time), so the
        // delete is one range of the (account, channel, offset) index: up to the first
        // message young enough, found by walking from the oldest (usually at once). The
        // periodic purge catches what a clock that went back left behind.
        let oldest_kept = last.saturating_sub(u64::from(retention.messages.max(1))) + 1;
        sqlx::query(
            "DELETE FROM messages WHERE account_id = ?1 AND channel = ?2 AND stream_offset < MAX(?3, COALESCE(( \
             SELECT stream_offset FROM messages WHERE account_id = ?1 AND channel = ?2 AND published_at >= ?4 \
             ORDER BY stream_offset LIMIT 1), ?5))",
        )
        .bind(account_id)
        .bind(channel)
        .bind(stored(oldest_kept))
        .bind(text(retention.published_after))
        .bind(stored(last + 1))
        .execute(&mut *connection)
        .await?;
    }
    Ok(positions)
}
