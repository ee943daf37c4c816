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
    /// Where its webhooks go (`None`: it has none).
    pub webhook_url: Option<String>,
}

/// The settings a Pusher app turns on in Pusher's dashboard; all off by default, as there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppSettings {
    /// Its channels' subscribers are counted (`pusher_internal:subscription_count` and
    /// the `subscription_count` webhook).
    pub subscription_count: bool,
    /// Its webhooks due together go in one request (`events` holds several).
    pub batch_webhooks: bool,
}

/// A change of an app's settings; `None` keeps a setting as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppSettingsChange {
    /// Subscription counting on or off.
    pub subscription_count: Option<bool>,
    /// Batched webhooks on or off.
    pub batch_webhooks: Option<bool>,
}

/// A webhook waiting in the outbox: the exact body to send (kept across retries, so its
/// `time_ms` stays the creation time the receivers check).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRow {
    /// Unique id.
    pub webhook_id: String,
    /// The app whose URL and secret it goes with.
    pub app_id: u64,
    /// The JSON body, `{"time_ms": …, "events": [ … ]}`.
    pub body: String,
    /// When it was created, in milliseconds since the epoch.
    pub created_ms: i64,
    /// Not sent before this time (milliseconds since the epoch).
    pub due_ms: i64,
    /// Attempts that failed so far.
    pub attempts: u32,
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
    /// The accounts that have an app with a webhook URL.
    async fn webhook_accounts(&self) -> StoreResult<Vec<String>>;
    /// Replaces the app's secret; the app as it is now, `None` when there is no such app.
    /// Every later read sees only the new secret.
    async fn rotate_app_secret(&self, app_id: u64, secret: &Secret) -> StoreResult<Option<AppRow>>;
    /// Deletes the app, its settings and the webhooks still waiting in its outbox,
    /// together; the app as it was, `None` when there was no such app.
    async fn delete_app(&self, app_id: u64) -> StoreResult<Option<AppRow>>;
    /// Changes the app's settings (what `change` leaves `None` stays); the settings as
    /// they are now, `None`, and nothing changed, when there is no such app.
    async fn change_app_settings(&self, app_id: u64, change: AppSettingsChange) -> StoreResult<Option<AppSettings>>;
    /// The app's settings (the defaults for an app never changed, or none).
    async fn app_settings(&self, app_id: u64) -> StoreResult<AppSettings>;
    /// The apps whose subscription counting is on, as (app id, account id), by app id.
    async fn counting_apps(&self) -> StoreResult<Vec<(u64, String)>>;

    /// Puts `webhook` in the outbox, under `cancel_key` when it is a removal that a
    /// later addition may cancel. When `cancels` names the key of a removal of the same
    /// app still waiting (never tried, not being sent), that removal is deleted instead
    /// and nothing is added: false.
    async fn enqueue_webhook(
        &self,
        webhook: &WebhookRow,
        cancel_key: Option<&str>,
        cancels: Option<&str>,
    ) -> StoreResult<bool>;
    /// Up to `limit` webhooks due at `now_ms` that nobody is sending, claimed until
    /// `claimed_until_ms` (a node that dies while sending leaves them to another).
    async fn claim_webhooks(&self, now_ms: i64, claimed_until_ms: i64, limit: u32) -> StoreResult<Vec<WebhookRow>>;
    /// Removes a webhook that was delivered or given up.
    async fn finish_webhook(&self, webhook_id: &str) -> StoreResult<()>;
    /// Records a failed attempt; the webhook is due again at `due_ms`.
    async fn retry_webhook(&self, webhook_id: &str, due_ms: i64) -> StoreResult<()>;
}

/// An app id as the engines store it (a signed 64-bit integer).
pub(super) fn stored_app_id(app_id: u64) -> i64 {
    i64::try_from(app_id).unwrap_or(i64::MAX)
}

/// An app id read back from an engine.
pub(super) fn app_id_of(stored: i64) -> StoreResult<u64> {
    u64::try_from(stored).map_err(|error| super::StoreError::Internal(sqlx::Error::Decode(Box::new(error))))
}
