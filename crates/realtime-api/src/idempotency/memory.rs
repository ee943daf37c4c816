//! [`MemoryIdempotencyStore`]: records in this process's memory, for tests and for an
//! implementation that keeps nothing across restarts (a proxy, say).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{IdempotencyStore, Record, Scope};
use crate::ApiError;

/// Records by (account, operation, key), behind one lock.
#[derive(Debug, Default)]
pub struct MemoryIdempotencyStore {
    records: Mutex<HashMap<(String, &'static str, String), Record>>,
}

fn id(scope: &Scope) -> (String, &'static str, String) {
    (scope.account_id.clone(), scope.operation, scope.key.as_str().to_owned())
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn insert(
        &self,
        scope: &Scope,
        record: &Record,
        retained_since: DateTime<Utc>,
    ) -> Result<Option<Record>, ApiError> {
        let mut records = self.records.lock().expect("records lock");
        match records.get(&id(scope)) {
            Some(existing) if existing.created_at >= retained_since => Ok(Some(existing.clone())),
            Some(_) | None => {
                records.insert(id(scope), record.clone());
                Ok(None)
            }
        }
    }

    async fn replace(&self, scope: &Scope, expected: &str, record: &Record) -> Result<bool, ApiError> {
        let mut records = self.records.lock().expect("records lock");
        match records.get_mut(&id(scope)) {
            Some(existing) if existing.lease.id == expected && existing.answer.is_none() => {
                *existing = record.clone();
                Ok(true)
            }
            Some(_) | None => Ok(false),
        }
    }

    async fn finish(&self, scope: &Scope, lease: &str, answer: &str) -> Result<(), ApiError> {
        let mut records = self.records.lock().expect("records lock");
        if let Some(existing) = records.get_mut(&id(scope))
            && existing.lease.id == lease
        {
            existing.answer = Some(answer.to_owned());
        }
        Ok(())
    }

    async fn release(&self, scope: &Scope, lease: &str) -> Result<(), ApiError> {
        let mut records = self.records.lock().expect("records lock");
        if records.get(&id(scope)).is_some_and(|existing| existing.lease.id == lease && existing.answer.is_none()) {
            records.remove(&id(scope));
        }
        Ok(())
    }
}
