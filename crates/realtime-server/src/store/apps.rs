//! [`Apps`]: the Pusher apps of accounts, the credentials of the Pusher-compatible face.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::secret::Secret;

/// A Pusher app as stored. Its secret is kept as it is (request signatures are checked
/// with it), and never prints.
#[derive(Debug, Clone)]
pub struct AppRow {
    /// The numeric app id the Pusher libraries put in their paths.
    pub app_id: u64,
    /// The account whose channels, credit and presence the app uses.
    pub account_id: String,
    /// The public key clients connect with; unique.
    pub key: String,
    /// Signs HTTP API requests and channel authorizations.
    pub secret: Secret,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Pusher apps.
#[async_trait]
pub trait Apps: Send + Sync {
    /// Creates the app; false, and nothing changed, when its id or key is taken.
    async fn create_app(&self, app: &AppRow) -> StoreResult<bool>;
    /// The app, by id.
    async fn app(&self, app_id: u64) -> StoreResult<Option<AppRow>>;
    /// The app, by key.
    async fn app_by_key(&self, key: &str) -> StoreResult<Option<AppRow>>;
    /// The account's apps, oldest first.
    async fn apps_of(&self, account_id: &str) -> StoreResult<Vec<AppRow>>;
}

/// An app id as the engines store it (a signed 64-bit integer).
pub(super) fn stored_app_id(app_id: u64) -> i64 {
    i64::try_from(app_id).unwrap_or(i64::MAX)
}

/// An app id read back from an engine.
pub(super) fn app_id_of(stored: i64) -> StoreResult<u64> {
    u64::try_from(stored).map_err(|error| super::StoreError::Internal(sqlx::Error::Decode(Box::new(error))))
}
