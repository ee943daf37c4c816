//! [`IdempotencyStore`] on SQLite. Every write is a job of the group writer: a request's
//! key is claimed, and its answer stored, in the same transactions as other requests'.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use realtime_api::ApiError;
use realtime_api::idempotency::{Fingerprint, IdempotencyStore, Lease, Record, Scope};
use rusqlite::{Connection, params};

use super::writer::engine_error;
use super::{SqliteStore, text, time};
use crate::store::StoreResult;

/// Writes a new key (the common case) or one past retention in one statement; only a
/// retained record is read back, in the same transaction. One write: a job of a single
/// statement.
pub(super) fn claim(
    connection: &Connection,
    scope: &Scope,
    record: &Record,
    retained_since: DateTime<Utc>,
) -> StoreResult<Option<Record>> {
    let written = connection
        .prepare_cached(
            "INSERT INTO idempotency (account_id, operation, key, fingerprint, response, created_at, lease_until, \
             lease_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (account_id, operation, key) DO UPDATE \
             SET fingerprint = excluded.fingerprint, response = excluded.response, created_at = excluded.created_at, \
             lease_until = excluded.lease_until, lease_id = excluded.lease_id WHERE idempotency.created_at < ?9",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                scope.account_id,
                scope.operation,
                scope.key.as_str(),
                record.fingerprint.as_str(),
                record.answer,
                text(record.created_at),
                text(record.lease.until),
                record.lease.id,
                text(retained_since),
            ])
        })
        .map_err(engine_error)?;
    if written == 1 {
        return Ok(None);
    }
    let (fingerprint, answer, created_at, lease_until, lease_id) = connection
        .prepare_cached(
            "SELECT fingerprint, response, created_at, lease_until, lease_id FROM idempotency \
             WHERE account_id = ?1 AND operation = ?2 AND key = ?3",
        )
        .and_then(|mut select| {
            select.query_row(params![scope.account_id, scope.operation, scope.key.as_str()], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                ))
            })
        })
        .map_err(engine_error)?;
    Ok(Some(Record {
        fingerprint: Fingerprint::from_stored(fingerprint),
        answer,
        created_at: time(&created_at)?,
        lease: Lease { id: lease_id, until: time(&lease_until)? },
    }))
}

/// Runs one statement that changes a key's record: `?1` to `?3` are the scope, `values`
/// the parameters after them. Returns the rows it changed.
async fn change(
    store: &SqliteStore,
    scope: &Scope,
    sql: &'static str,
    values: Vec<Option<String>>,
) -> StoreResult<usize> {
    let scope = scope.clone();
    store
        .group
        .run_single_statement(&scope.account_id.clone(), move |connection| {
            let key =
                [scope.account_id.as_str(), scope.operation, scope.key.as_str()].map(|part| Some(part.to_owned()));
            let parameters = rusqlite::params_from_iter(key.iter().chain(&values));
            connection.prepare_cached(sql).and_then(|mut statement| statement.execute(parameters)).map_err(engine_error)
        })
        .await
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn insert(
        &self,
        scope: &Scope,
        record: &Record,
        retained_since: DateTime<Utc>,
    ) -> Result<Option<Record>, ApiError> {
        let account = scope.account_id.clone();
        let (scope, record) = (scope.clone(), record.clone());
        let claimed = self
            .group
            .run_single_statement(&account, move |connection| claim(connection, &scope, &record, retained_since))
            .await?;
        Ok(claimed)
    }

    async fn replace(&self, scope: &Scope, expected: &str, record: &Record) -> Result<bool, ApiError> {
        let sql = "UPDATE idempotency SET fingerprint = ?5, response = ?6, created_at = ?7, lease_until = ?8, \
                   lease_id = ?9 WHERE account_id = ?1 AND operation = ?2 AND key = ?3 AND lease_id = ?4 \
                   AND response IS NULL";
        let values = vec![
            Some(expected.to_owned()),
            Some(record.fingerprint.as_str().to_owned()),
            record.answer.clone(),
            Some(text(record.created_at)),
            Some(text(record.lease.until)),
            Some(record.lease.id.clone()),
        ];
        Ok(change(self, scope, sql, values).await? == 1)
    }

    async fn finish(&self, scope: &Scope, lease: &str, answer: &str) -> Result<(), ApiError> {
        let sql = "UPDATE idempotency SET response = ?5 WHERE account_id = ?1 AND operation = ?2 AND key = ?3 \
                   AND lease_id = ?4";
        change(self, scope, sql, vec![Some(lease.to_owned()), Some(answer.to_owned())]).await?;
        Ok(())
    }

    async fn release(&self, scope: &Scope, lease: &str) -> Result<(), ApiError> {
        let sql = "DELETE FROM idempotency WHERE account_id = ?1 AND operation = ?2 AND key = ?3 \
                   AND lease_id = ?4 AND response IS NULL";
        change(self, scope, sql, vec![Some(lease.to_owned())]).await?;
        Ok(())
    }
}
