//! [`IdempotencyStore`] on PostgreSQL. Every write is a job of the group writer: a
//! request's key is claimed, and its answer stored, in the same transactions (and WAL
//! flushes) as other requests'.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use realtime_api::ApiError;
use realtime_api::idempotency::{Fingerprint, IdempotencyStore, Lease, Record, Scope};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::PostgresStore;
use crate::store::{StoreError, StoreResult};

fn read_record(row: &PgRow) -> StoreResult<Record> {
    Ok(Record {
        fingerprint: Fingerprint::from_stored(row.try_get("fingerprint")?),
        answer: row.try_get("response")?,
        created_at: row.try_get("created_at")?,
        lease: Lease { id: row.try_get("lease_id")?, until: row.try_get("lease_until")? },
    })
}

/// Two nodes racing for a new key are ordered by the unique index: one writes, the
/// other's conflict clause finds the row (and writes only over a record past retention).
/// One write: a job of a single statement.
pub(super) async fn claim(
    connection: &mut PgConnection,
    scope: &Scope,
    record: &Record,
    retained_since: DateTime<Utc>,
) -> StoreResult<Option<Record>> {
    loop {
        let written = sqlx::query(
            "INSERT INTO idempotency (account_id, operation, key, fingerprint, response, created_at, lease_until, \
             lease_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (account_id, operation, key) DO UPDATE \
             SET fingerprint = excluded.fingerprint, response = excluded.response, created_at = excluded.created_at, \
             lease_until = excluded.lease_until, lease_id = excluded.lease_id WHERE idempotency.created_at < $9",
        )
        .bind(&scope.account_id)
        .bind(scope.operation)
        .bind(scope.key.as_str())
        .bind(record.fingerprint.as_str())
        .bind(&record.answer)
        .bind(record.created_at)
        .bind(record.lease.until)
        .bind(&record.lease.id)
        .bind(retained_since)
        .execute(&mut *connection)
        .await?;
        if written.rows_affected() == 1 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT fingerprint, response, created_at, lease_until, lease_id FROM idempotency \
             WHERE account_id = $1 AND operation = $2 AND key = $3",
        )
        .bind(&scope.account_id)
        .bind(scope.operation)
        .bind(scope.key.as_str())
        .fetch_optional(&mut *connection)
        .await?;
        // None: released in between, so the key is free now; write again.
        if let Some(row) = row {
            return Ok(Some(read_record(&row)?));
        }
    }
}

#[async_trait]
impl IdempotencyStore for PostgresStore {
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
            .run_single_statement(&account, move |connection| {
                let (scope, record) = (scope.clone(), record.clone());
                Box::pin(async move { claim(connection, &scope, &record, retained_since).await })
            })
            .await?;
        Ok(claimed)
    }

    async fn replace(&self, scope: &Scope, expected: &str, record: &Record) -> Result<bool, ApiError> {
        let account = scope.account_id.clone();
        let (scope, expected, record) = (scope.clone(), expected.to_owned(), record.clone());
        let replaced = self
            .group
            .run_single_statement(&account, move |connection| {
                let (scope, expected, record) = (scope.clone(), expected.clone(), record.clone());
                Box::pin(async move {
                    let replaced = sqlx::query(
                        "UPDATE idempotency SET fingerprint = $5, response = $6, created_at = $7, lease_until = $8, \
                         lease_id = $9 WHERE account_id = $1 AND operation = $2 AND key = $3 AND lease_id = $4 \
                         AND response IS NULL",
                    )
                    .bind(&scope.account_id)
                    .bind(scope.operation)
                    .bind(scope.key.as_str())
                    .bind(&expected)
                    .bind(record.fingerprint.as_str())
                    .bind(&record.answer)
                    .bind(record.created_at)
                    .bind(record.lease.until)
                    .bind(&record.lease.id)
                    .execute(connection)
                    .await?;
                    Ok::<_, StoreError>(replaced.rows_affected() == 1)
                })
            })
            .await?;
        Ok(replaced)
    }

    async fn finish(&self, scope: &Scope, lease: &str, answer: &str) -> Result<(), ApiError> {
        let account = scope.account_id.clone();
        let (scope, lease, answer) = (scope.clone(), lease.to_owned(), answer.to_owned());
        self.group
            .run_single_statement(&account, move |connection| {
                let (scope, lease, answer) = (scope.clone(), lease.clone(), answer.clone());
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE idempotency SET response = $5 WHERE account_id = $1 AND operation = $2 AND key = $3 \
                         AND lease_id = $4",
                    )
                    .bind(&scope.account_id)
                    .bind(scope.operation)
                    .bind(scope.key.as_str())
                    .bind(&lease)
                    .bind(&answer)
                    .execute(connection)
                    .await?;
                    Ok::<_, StoreError>(())
                })
            })
            .await?;
        Ok(())
    }

    async fn release(&self, scope: &Scope, lease: &str) -> Result<(), ApiError> {
        let account = scope.account_id.clone();
        let (scope, lease) = (scope.clone(), lease.to_owned());
        self.group
            .run_single_statement(&account, move |connection| {
                let (scope, lease) = (scope.clone(), lease.clone());
                Box::pin(async move {
                    sqlx::query(
                        "DELETE FROM idempotency WHERE account_id = $1 AND operation = $2 AND key = $3 \
                         AND lease_id = $4 AND response IS NULL",
                    )
                    .bind(&scope.account_id)
                    .bind(scope.operation)
                    .bind(scope.key.as_str())
                    .bind(&lease)
                    .execute(connection)
                    .await?;
                    Ok::<_, StoreError>(())
                })
            })
            .await?;
        Ok(())
    }
}
