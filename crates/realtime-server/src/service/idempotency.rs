//! Idempotent execution: the same key and request replay the first 2xx answer, with no
//! second effect and no second charge.

use std::future::Future;
use std::sync::Arc;

use chrono::Utc;
use realtime_api::{ApiError, Caller, IdempotencyKey, Reply};
use realtime_types::ErrorCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::Service;
use crate::store::{Claim, IdempotencyScope};

/// The fingerprint of a request: SHA-256 of its JSON with the idempotency key left out
/// (callers clear it), so the header and the body field name the same request.
pub(super) fn fingerprint(request: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(request).expect("requests serialise");
    hex::encode(Sha256::digest(bytes))
}

impl Service {
    /// Runs `effect` once per (account, operation, key). Without a key it just runs.
    /// Only successes are stored: a 402, 4xx or 5xx releases the key so a corrected
    /// retry (after a top-up, say) goes through.
    ///
    /// Once the key is claimed, the effect and the storing of its answer run in a task of
    /// their own: a request cancelled half-way (client gone, timeout, shutdown) can then
    /// never leave a committed effect without its stored answer, which a retry would
    /// otherwise repeat after the lease.
    pub(super) async fn idempotent<T, F, Fut>(
        &self,
        caller: &Caller,
        operation: &'static str,
        key: Option<IdempotencyKey>,
        fingerprint: String,
        effect: F,
    ) -> Result<Reply<T>, ApiError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce(Arc<Service>) -> Fut,
        Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
    {
        let service = self.this.upgrade().ok_or_else(|| ApiError::unavailable("the node is shutting down"))?;
        let Some(key) = key else { return effect(service).await.map(Reply::fresh) };
        let scope = IdempotencyScope { account_id: &caller.account_id, operation, key: key.as_str() };
        let now = Utc::now();
        let since = now - chrono::Duration::hours(i64::from(self.config.idempotency_ttl_hours));
        let claim = self.store.claim(&scope, &fingerprint, now, since).await.map_err(|e| self.store_error(e))?;
        match claim {
            Claim::Replay(body) => serde_json::from_str(&body).map(Reply::replayed).map_err(ApiError::internal),
            Claim::InFlight => Err(ApiError::new(
                ErrorCode::IdempotencyKeyInUse,
                "a request with this Idempotency-Key is still being processed; retry shortly",
            )
            .with_retry_after(1)),
            Claim::Mismatch => Err(ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used with a different request; use a new key",
            )),
            Claim::Owned => {
                let account_id = caller.account_id.clone();
                let key = key.as_str().to_owned();
                let run = effect(service.clone());
                let task = tokio::spawn(async move {
                    let scope = IdempotencyScope { account_id: &account_id, operation, key: &key };
                    let result = run.await;
                    match &result {
                        Ok(body) => {
                            let stored = match serde_json::to_string(body) {
                                Ok(text) => service.store.finish(&scope, &text).await.map_err(|e| e.to_string()),
                                Err(error) => Err(error.to_string()),
                            };
                            if let Err(error) = stored {
                                tracing::error!(%error, operation, "idempotent response not stored");
                            }
                        }
                        Err(_) => {
                            if let Err(error) = service.store.release(&scope).await {
                                tracing::error!(%error, operation, "idempotency key not released");
                            }
                        }
                    }
                    result
                });
                task.await.map_err(ApiError::internal)?.map(Reply::fresh)
            }
        }
    }
}
