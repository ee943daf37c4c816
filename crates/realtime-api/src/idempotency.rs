//! Idempotent execution of the contract's state-changing operations, written once for
//! every implementation.
//!
//! A request with an idempotency key runs through [`Idempotency::run`]:
//!
//! 1. The key is claimed in an [`IdempotencyStore`] with a [`Record`] holding the request's
//!    [`Fingerprint`] and a [`Lease`]. A key seen before decides the answer instead
//!    ([`decide`]): the stored answer is replayed, a different request is refused with 422
//!    `IDEMPOTENCY_KEY_REUSED`, a request still running gets 409 `IDEMPOTENCY_KEY_IN_USE`,
//!    and a lease whose holder stopped renewing it (it died) is taken over.
//! 2. The effect runs in a task of its own, so a request cancelled half-way (client gone,
//!    timeout, shutdown) can never split an effect from its stored answer.
//! 3. A 2xx answer is stored; any other answer releases the key, so a corrected retry
//!    (after a top-up, say) goes through.
//!
//! **Crash safety** needs one more step from an implementation with durable effects: the
//! transaction that commits an effect also commits the answer known at that moment,
//! through [`Seal::current`]. Then no process death can leave an effect without its
//! answer: after a restart the key replays (the effect committed) or is free (it did not).
//! The seal is conditional on the lease, so a request whose key was taken over cannot
//! commit its effect a second time. An implementation that does not seal still gets
//! correct idempotency for everything but a crash between its commit and the answer.
//!
//! **Claiming at the seal** ([`Idempotency::claiming_at_seal`], see [`at_seal`]) saves the
//! claim's own write for operations whose effect commits only through its seal: the seal
//! writes the key's record itself, in the effect's transaction, or finds the record of the
//! request that holds the key and rolls the effect back; the answer is then decided from
//! that record as in step 1.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use realtime_types::ErrorCode;
use realtime_types::validate::check_idempotency_key;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::{ApiError, Caller, Reply};

mod at_seal;
pub mod memory;

pub use at_seal::Claim;

/// How long a running request holds its key before another request may take it over.
/// A live request keeps it by renewing it every third of this; a request whose process
/// died loses it at most this long after its last renewal.
pub const LEASE: Duration = Duration::from_secs(10);

/// An idempotency key: 1-255 visible ASCII characters, scoped per account and operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks and wraps a key.
    pub fn parse(raw: &str) -> Result<Self, String> {
        check_idempotency_key(raw)?;
        Ok(IdempotencyKey(raw.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a key is scoped to: one account and one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The account of the caller.
    pub account_id: String,
    /// The operation id.
    pub operation: &'static str,
    /// The key.
    pub key: IdempotencyKey,
}

/// What identifies a request apart from its key: the SHA-256 of its canonical JSON with
/// the `idempotency_key` field left out, so the header and the field name one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of a request body (objects are hashed with sorted keys, so field
    /// order does not matter).
    pub fn of(request: &impl Serialize) -> Fingerprint {
        let mut value = serde_json::to_value(request).expect("requests serialise");
        if let Some(object) = value.as_object_mut() {
            object.remove("idempotency_key");
        }
        let canonical = serde_json::to_vec(&value).expect("values serialise");
        Fingerprint(hex::encode(Sha256::digest(canonical)))
    }

    /// A fingerprint as stored.
    pub fn from_stored(text: String) -> Fingerprint {
        Fingerprint(text)
    }

    /// The text to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A claim on a key by one running request: its id fences out every other request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Unique per claim.
    pub id: String,
    /// When the holder is presumed dead unless it renewed the lease.
    pub until: DateTime<Utc>,
}

impl Lease {
    fn new(now: DateTime<Utc>) -> Lease {
        Lease { id: ulid::Ulid::generate().to_string(), until: now + LEASE }
    }
}

/// An idempotency record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The request the key was first used with.
    pub fingerprint: Fingerprint,
    /// The JSON of the 2xx answer, once there is one (possibly sealed with the effect
    /// before the final answer was known).
    pub answer: Option<String>,
    /// When the key was first used; records older than the retention are ignored.
    pub created_at: DateTime<Utc>,
    /// The claim of the request that runs or ran under this key.
    pub lease: Lease,
}

/// Where idempotency records live. Every method is one atomic step, across every node
/// that shares the store.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Inserts `record` unless the scope has a record created at or after
    /// `retained_since` (an older one is overwritten); returns that record instead.
    async fn insert(
        &self,
        scope: &Scope,
        record: &Record,
        retained_since: DateTime<Utc>,
    ) -> Result<Option<Record>, ApiError>;
    /// Replaces the scope's record with `record` when the record still holds lease
    /// `expected` and has no answer; false otherwise (another request got there first, or
    /// the effect sealed its answer).
    async fn replace(&self, scope: &Scope, expected: &str, record: &Record) -> Result<bool, ApiError>;
    /// Stores `answer` in the scope's record when it holds lease `lease`, replacing an
    /// answer sealed earlier.
    async fn finish(&self, scope: &Scope, lease: &str, answer: &str) -> Result<(), ApiError>;
    /// Deletes the scope's record when it holds lease `lease` and has no answer.
    async fn release(&self, scope: &Scope, lease: &str) -> Result<(), ApiError>;
}

/// What a key seen before means for a new request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Replay this answer.
    Replay(String),
    /// The key was used with another request: 422.
    Mismatch,
    /// A live request holds the key: 409.
    InFlight,
    /// The holder died before its effect committed (its lease ran out): run again.
    TakeOver,
}

/// Decides what `existing`, a retained record of the key, means for a request with
/// `fingerprint` at `now`.
pub fn decide(existing: &Record, fingerprint: &Fingerprint, now: DateTime<Utc>) -> Decision {
    if &existing.fingerprint != fingerprint {
        return Decision::Mismatch;
    }
    if let Some(answer) = &existing.answer {
        return Decision::Replay(answer.clone());
    }
    if existing.lease.until > now { Decision::InFlight } else { Decision::TakeOver }
}

/// The answer to commit with an effect, in the same transaction, for the idempotent
/// request running in this task.
#[derive(Debug, Clone)]
pub struct Seal {
    /// The key's scope.
    pub scope: Scope,
    /// The lease the record must still hold; if it does not, the effect must not commit.
    pub lease: String,
    /// The answer as known when the effect commits.
    pub answer: String,
    /// The key's record to write with the answer, when the request claimed no key before
    /// its effect ([`Idempotency::claiming_at_seal`]); `None` when it holds the key already.
    pub claim: Option<Claim>,
}

/// The idempotent request a task runs for.
#[derive(Debug, Clone)]
struct Running {
    scope: Scope,
    lease: String,
    claim: Option<Claim>,
}

tokio::task_local! {
    static RUNNING: Running;
}

impl Seal {
    /// The seal of the idempotent request running in this task, with `answer`; `None` when
    /// the task runs no idempotent request (no key, or not through [`Idempotency::run`]).
    pub fn current(answer: &impl Serialize) -> Option<Seal> {
        Sealer::current().map(|sealer| sealer.seal(answer))
    }
}

/// What seals an answer for the idempotent request running in the task that took it:
/// for an answer known only later, somewhere the task's request cannot be read (a store's
/// writer thread, say). [`Seal::current`] is this with the answer at hand.
#[derive(Debug, Clone)]
pub struct Sealer(Running);

impl Sealer {
    /// The sealer of the idempotent request running in this task; `None` when the task
    /// runs no idempotent request.
    pub fn current() -> Option<Sealer> {
        RUNNING.try_with(Running::clone).ok().map(Sealer)
    }

    /// The seal of `answer` for that request.
    pub fn seal(&self, answer: &impl Serialize) -> Seal {
        let answer = serde_json::to_string(answer).expect("answers serialise");
        Seal { scope: self.0.scope.clone(), lease: self.0.lease.clone(), answer, claim: self.0.claim.clone() }
    }
}

/// Runs requests idempotently over a store.
#[derive(Clone)]
pub struct Idempotency {
    store: Arc<dyn IdempotencyStore>,
    retention: chrono::Duration,
    claimed_at_seal: &'static [&'static str],
}

impl Idempotency {
    /// Keys are kept in `store` for `retention`.
    pub fn new(store: Arc<dyn IdempotencyStore>, retention: Duration) -> Idempotency {
        let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        Idempotency { store, retention, claimed_at_seal: &[] }
    }

    /// Claims the keys of `operations` at their seal instead of before their effect: one
    /// write fewer per request, in the effect's transaction. Only for operations whose
    /// effect writes nothing durable before its seal, seals on every success, and whose
    /// store writes [`Seal::claim`] (see [`at_seal`]).
    pub fn claiming_at_seal(self, operations: &'static [&'static str]) -> Idempotency {
        Idempotency { claimed_at_seal: operations, ..self }
    }

    /// Runs `effect` once per (account, operation, key); without a key it just runs.
    pub async fn run<T, Fut>(
        &self,
        caller: &Caller,
        operation: &'static str,
        key: Option<IdempotencyKey>,
        fingerprint: Fingerprint,
        effect: Fut,
    ) -> Result<Reply<T>, ApiError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
    {
        // In a task of its own even without a key: a request dropped half-way (client gone,
        // timeout) must not split an effect from what follows it (a message from its
        // fan-out, say).
        let Some(key) = key else { return tokio::spawn(effect).await.map_err(ApiError::internal)?.map(Reply::fresh) };
        let scope = Scope { account_id: caller.account_id.clone(), operation, key };
        let now = Utc::now();
        let record = Record { fingerprint, answer: None, created_at: now, lease: Lease::new(now) };
        let retained_since = now - self.retention;
        if self.claimed_at_seal.contains(&operation) {
            return self.run_claiming_at_seal(scope, record, retained_since, effect).await;
        }
        let mut existing = self.store.insert(&scope, &record, retained_since).await?;
        // Two rounds at most: a takeover that loses a race reads the winner's record.
        for _ in 0..2 {
            let Some(seen) = existing else { break };
            match decide(&seen, &record.fingerprint, now) {
                Decision::TakeOver => {
                    if self.store.replace(&scope, &seen.lease.id, &record).await? {
                        existing = None;
                        break;
                    }
                    existing = self.store.insert(&scope, &record, retained_since).await?;
                }
                settled => return answer_of(settled),
            }
        }
        if existing.is_some() {
            return Err(key_in_use());
        }
        let running = Running { scope: scope.clone(), lease: record.lease.id.clone(), claim: None };
        let store = self.store.clone();
        let task = tokio::spawn(RUNNING.scope(running, async move {
            let result = {
                let renew = keep_leased(store.as_ref(), &scope, record.clone());
                tokio::pin!(renew);
                tokio::pin!(effect);
                tokio::select! {
                    result = &mut effect => result,
                    () = &mut renew => effect.await,
                }
            };
            let lease = record.lease.id.as_str();
            let stored = match &result {
                Ok(body) => match serde_json::to_string(body) {
                    Ok(answer) => store.finish(&scope, lease, &answer).await,
                    Err(error) => Err(ApiError::internal(error)),
                },
                Err(_) => store.release(&scope, lease).await,
            };
            if let Err(error) = stored {
                tracing::error!(%error, operation, "idempotency record not updated");
            }
            result
        }));
        task.await.map_err(ApiError::internal)?.map(Reply::fresh)
    }
}

/// Renews the lease every third of [`LEASE`] while the effect runs; returns when a
/// renewal fails (the record was sealed or taken over), leaving the effect to finish.
async fn keep_leased(store: &dyn IdempotencyStore, scope: &Scope, mut record: Record) {
    loop {
        tokio::time::sleep(LEASE / 3).await;
        let renewed =
            Record { lease: Lease { id: record.lease.id.clone(), until: Utc::now() + LEASE }, ..record.clone() };
        match store.replace(scope, &record.lease.id, &renewed).await {
            Ok(true) => record = renewed,
            Ok(false) => return,
            // The store may be back before the lease runs out: keep trying until then.
            Err(_) if Utc::now() < record.lease.until => continue,
            Err(_) => return,
        }
    }
}

/// The answer of a request whose key another request used first, as `decision` says:
/// a replay or a refusal (a takeover is the caller's to make).
fn answer_of<T: DeserializeOwned>(decision: Decision) -> Result<Reply<T>, ApiError> {
    match decision {
        Decision::Replay(answer) => serde_json::from_str(&answer).map(Reply::replayed).map_err(ApiError::internal),
        Decision::Mismatch => Err(key_reused()),
        Decision::InFlight | Decision::TakeOver => Err(key_in_use()),
    }
}

fn key_reused() -> ApiError {
    ApiError::new(
        ErrorCode::IdempotencyKeyReused,
        "this Idempotency-Key was used with a different request; use a new key",
    )
}

fn key_in_use() -> ApiError {
    ApiError::new(
        ErrorCode::IdempotencyKeyInUse,
        "a request with this Idempotency-Key is still being processed; retry shortly",
    )
    .with_retry_after(1)
}

/// The answer when an effect could not commit because its key was taken over by another
/// request (its holder was presumed dead): the other request's answer is the one that counts.
pub fn lease_lost() -> ApiError {
    key_in_use()
}
