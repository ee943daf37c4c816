//! Claiming a key at the seal: the key's record is written with the effect, in its
//! transaction, instead of by a write of its own before it.
//!
//! A request claimed before its effect pays two writes more than its effect: the claim,
//! and the final answer after it. For an operation whose effect writes nothing durable
//! before its seal (a publish), the seal can carry the claim: the store writes the
//! request's record with the sealed answer (the same insert as [`IdempotencyStore::insert`],
//! new keys and keys past retention only), or finds the record of the request that holds
//! the key, reports it through [`Claim::held_by`] and rolls the effect back. A concurrent
//! duplicate is fenced by the same unique key as a claim is, one transaction later.
//!
//! The final answer (counts known only after the effect) is then stored as for any
//! request, unless it is the sealed answer, before the request is answered: until then a
//! retry replays the sealed answer, and once answered, a retry replays the answer given, a
//! kill of the process in between included.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Decision, Idempotency, IdempotencyStore, RUNNING, Record, Running, Scope, answer_of, decide, key_in_use};
use crate::{ApiError, Reply};

/// The record a request that claimed no key writes with its seal, and what its store found
/// when writing it.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The request's record, without its answer.
    record: Record,
    retained_since: DateTime<Utc>,
    outcome: Arc<Mutex<Outcome>>,
}

/// What became of a claim at the seal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// No seal wrote it (yet).
    Unwritten,
    /// The seal wrote the record, with this answer (it is committed when the effect is).
    Written { sealed: String },
    /// Another request holds the key: this is its record.
    HeldBy(Record),
}

impl Claim {
    /// The claim of `record` (a fresh one, without an answer), over records created before
    /// `retained_since`.
    pub fn new(record: Record, retained_since: DateTime<Utc>) -> Claim {
        Claim { record, retained_since, outcome: Arc::new(Mutex::new(Outcome::Unwritten)) }
    }

    /// The record to write: the request's, with the sealed `answer`.
    pub fn record(&self, answer: &str) -> Record {
        Record { answer: Some(answer.to_owned()), ..self.record.clone() }
    }

    /// A record created before this may be written over (it is past retention).
    pub fn retained_since(&self) -> DateTime<Utc> {
        self.retained_since
    }

    /// The store wrote the record, with the `sealed` answer, in the effect's transaction.
    pub fn written(&self, sealed: &str) {
        *self.outcome.lock().expect("claim lock") = Outcome::Written { sealed: sealed.to_owned() };
    }

    /// The store found `record`, another request's, holding the key: the effect must not
    /// commit (the store fails it with the lease lost).
    pub fn held_by(&self, record: Record) {
        *self.outcome.lock().expect("claim lock") = Outcome::HeldBy(record);
    }

    /// The record of the request that held the key, when the store found one.
    pub fn holder(&self) -> Option<Record> {
        match self.outcome() {
            Outcome::HeldBy(record) => Some(record),
            Outcome::Unwritten | Outcome::Written { .. } => None,
        }
    }

    fn outcome(&self) -> Outcome {
        self.outcome.lock().expect("claim lock").clone()
    }
}

impl Idempotency {
    /// [`Idempotency::run`] for an operation claimed at its seal.
    pub(super) async fn run_claiming_at_seal<T, Fut>(
        &self,
        scope: Scope,
        record: Record,
        retained_since: DateTime<Utc>,
        effect: Fut,
    ) -> Result<Reply<T>, ApiError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
    {
        let claim = Claim::new(record.clone(), retained_since);
        let running = Running { scope: scope.clone(), lease: record.lease.id.clone(), claim: Some(claim.clone()) };
        let store = self.store.clone();
        let task = tokio::spawn(RUNNING.scope(running, async move {
            let result = effect.await;
            match claim.outcome() {
                Outcome::HeldBy(holder) => return answer_after(store.as_ref(), &scope, &holder, &record).await,
                Outcome::Written { sealed } => {
                    if let Ok(body) = &result {
                        let stored = match serde_json::to_string(body) {
                            // The record holds this answer already (a publish nobody
                            // received, say): a second write would change nothing.
                            Ok(answer) if answer == sealed => Ok(()),
                            Ok(answer) => store.finish(&scope, &record.lease.id, &answer).await,
                            Err(error) => Err(ApiError::internal(error)),
                        };
                        if let Err(error) = stored {
                            tracing::error!(%error, operation = scope.operation, "idempotency record not updated");
                        }
                    }
                }
                // An operation listed by mistake: nothing claimed its key, so a retry would
                // run it again. Said loudly; nothing written now could fence that retry.
                Outcome::Unwritten if result.is_ok() => {
                    tracing::error!(operation = scope.operation, "an operation claimed at its seal succeeded unsealed");
                }
                Outcome::Unwritten => {}
            }
            result.map(Reply::fresh)
        }));
        task.await.map_err(ApiError::internal)?
    }
}

/// The answer to a request whose seal found `holder` holding the key: a replay or a
/// refusal. A holder that died before its effect (its lease ran out, no answer) is
/// released, so that a retry runs afresh.
async fn answer_after<T: DeserializeOwned>(
    store: &dyn IdempotencyStore,
    scope: &Scope,
    holder: &Record,
    record: &Record,
) -> Result<Reply<T>, ApiError> {
    match decide(holder, &record.fingerprint, Utc::now()) {
        Decision::TakeOver => {
            store.release(scope, &holder.lease.id).await?;
            Err(key_in_use())
        }
        settled => answer_of(settled),
    }
}
