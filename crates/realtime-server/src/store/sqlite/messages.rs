//! Recording published messages on SQLite: a job of the group writer, so concurrent
//! publishes share a transaction (see [`super::writer`]).

use realtime_types::Position;
use rusqlite::{Connection, OptionalExtension, params};

use super::writer::{Later, engine_error};
use super::{BALANCE, DEBIT, SEAL, SqliteStore, offset, stored, text};
use crate::store::{MessageRow, MessagesRefused, Retention, Seal, SealOf, StoreError, StoreResult, claimed};

/// See [`crate::store::Channels::record_messages`].
pub(super) async fn record(
    store: &SqliteStore,
    account_id: &str,
    messages: &[MessageRow],
    price: i64,
    retention: Retention,
    seal: SealOf,
) -> StoreResult<Vec<Position>> {
    let (account, messages) = (account_id.to_owned(), messages.to_vec());
    store
        .group
        .run(account_id, move |connection, later| {
            let positions = write(connection, later, &account, &messages, price, retention)?;
            commit_seal(connection, seal(&positions).as_ref())?;
            Ok(positions)
        })
        .await
}

/// Debits, numbers and inserts, and has the batch trim; every reason to refuse is found
/// before giving up.
fn write(
    connection: &Connection,
    later: &mut Later,
    account_id: &str,
    messages: &[MessageRow],
    price: i64,
    retention: Retention,
) -> StoreResult<Vec<Position>> {
    let mut refused = MessagesRefused { insufficient_credit: None, missing_channel: None };
    match debit(connection, account_id, price) {
        Ok(()) => {}
        Err(StoreError::InsufficientCredit { balance, required }) => {
            refused.insufficient_credit = Some((balance, required));
        }
        Err(other) => return Err(other),
    }
    let mut positions = Vec::with_capacity(messages.len());
    let mut next_offset = connection
        .prepare_cached(
            "UPDATE channels SET last_published_at = ?3, last_offset = last_offset + 1 \
             WHERE account_id = ?1 AND name = ?2 RETURNING channel_id, last_offset",
        )
        .map_err(engine_error)?;
    for (index, message) in messages.iter().enumerate() {
        let next = next_offset
            .query_row(params![account_id, message.channel, text(message.published_at)], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .optional()
            .map_err(engine_error)?;
        let Some((epoch, last_offset)) = next else {
            refused.missing_channel = Some(index);
            break;
        };
        positions.push(Position { epoch, offset: offset(last_offset)? });
    }
    if refused.insufficient_credit.is_some() || refused.missing_channel.is_some() {
        return Err(StoreError::MessagesRefused(refused));
    }
    let mut insert = connection
        .prepare_cached(
            "INSERT INTO messages (account_id, channel, message_id, event, data, published_at, stream_offset) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(engine_error)?;
    for (message, position) in messages.iter().zip(&positions) {
        insert
            .execute(params![
                account_id,
                message.channel,
                message.message_id,
                message.event,
                message.data,
                text(message.published_at),
                stored(position.offset),
            ])
            .map_err(engine_error)?;
    }
    let mut newest: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for (message, position) in messages.iter().zip(&positions) {
        newest.insert(message.channel.as_str(), position.offset);
    }
    for (channel, last) in newest {
        let (account_id, channel) = (account_id.to_owned(), channel.to_owned());
        let key = format!("trim {account_id} {channel}");
        later.last_of(key, Box::new(move |connection| trim(connection, &account_id, &channel, last, retention)));
    }
    Ok(positions)
}

/// Trims the history of a channel whose newest message is at offset `last`: the newest
/// `retention.messages` stay, and none older than the age limit. Both cut a prefix of the
/// channel's stream (offsets grow with publish time), so the delete is one range of the
/// (account, channel, offset) index: up to the first message young enough, found by
/// walking from the oldest (usually at once). The periodic purge catches what a clock that
/// went back left behind.
fn trim(connection: &Connection, account_id: &str, channel: &str, last: u64, retention: Retention) -> StoreResult<()> {
    let oldest_kept = last.saturating_sub(u64::from(retention.messages.max(1))) + 1;
    connection
        .prepare_cached(
            "DELETE FROM messages WHERE account_id = ?1 AND channel = ?2 AND stream_offset < MAX(?3, COALESCE(( \
             SELECT stream_offset FROM messages WHERE account_id = ?1 AND channel = ?2 AND published_at >= ?4 \
             ORDER BY stream_offset LIMIT 1), ?5))",
        )
        .and_then(|mut trim| {
            trim.execute(params![
                account_id,
                channel,
                stored(oldest_kept),
                text(retention.published_after),
                stored(last + 1)
            ])
        })
        .map(|_| ())
        .map_err(engine_error)
}

/// Debits `price`, or reports the balance that does not cover it.
fn debit(connection: &Connection, account_id: &str, price: i64) -> StoreResult<()> {
    if price == 0 {
        return Ok(());
    }
    let updated = connection
        .prepare_cached(DEBIT)
        .and_then(|mut debit| debit.execute(params![price, account_id]))
        .map_err(engine_error)?;
    if updated == 1 {
        return Ok(());
    }
    let balance: Option<i64> = connection
        .prepare_cached(BALANCE)
        .and_then(|mut balance| balance.query_row(params![account_id], |row| row.get(0)).optional())
        .map_err(engine_error)?;
    Err(StoreError::InsufficientCredit { balance: balance.unwrap_or(0), required: price })
}

/// Commits the answer of the idempotent request, or fails when the request no longer
/// holds its key (its job then rolls back with the effect). A request that claimed no key
/// writes its record here, or learns which request holds the key.
fn commit_seal(connection: &Connection, seal: Option<&Seal>) -> StoreResult<()> {
    let Some(seal) = seal else { return Ok(()) };
    if let Some(claim) = &seal.claim {
        let record = claim.record(&seal.answer);
        return claimed(
            claim,
            &seal.answer,
            super::idempotency::claim(connection, &seal.scope, &record, claim.retained_since())?,
        );
    }
    let sealed = connection
        .prepare_cached(SEAL)
        .and_then(|mut seal_it| {
            seal_it.execute(params![
                seal.scope.account_id,
                seal.scope.operation,
                seal.scope.key.as_str(),
                seal.lease,
                seal.answer
            ])
        })
        .map_err(engine_error)?;
    if sealed == 1 { Ok(()) } else { Err(StoreError::LeaseLost) }
}
