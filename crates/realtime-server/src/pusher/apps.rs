//! Pusher apps: numeric id, public key and secret, belonging to an account. Created
//! through the admin API (and `realtime account pusher-app`), with given credentials (to
//! move an app from Pusher without touching its clients) or generated ones; listed
//! without their secrets, given a new secret, changed (the app's settings: subscription
//! counting, batched webhooks) and deleted there too. The secret is kept
//! as it is (signatures are HMACs made with it), compared only through the constant-time
//! checks of [`super::signing`], and printed by no `Debug`.

use chrono::Utc;
use realtime_api::ApiError;
use realtime_types::{FieldError, Rejection, Validate};
use serde::{Deserialize, Serialize};

use crate::secret::{Secret, random_bytes};
use crate::service::Service;
use crate::store::{AppRow, AppSettings, AppSettingsChange};

/// A new app.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    /// The account the app belongs to.
    pub account_id: String,
    /// A numeric id (the Pusher libraries refuse others); generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<u64>,
    /// The public key; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The secret; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Where the app's webhooks go (an http or https URL); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

impl std::fmt::Debug for NewApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApp")
            .field("account_id", &self.account_id)
            .field("app_id", &self.app_id)
            .field("key", &self.key)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("webhook_url", &self.webhook_url)
            .finish()
    }
}

/// Characters of app keys: what fits in a URL path segment unescaped.
fn is_key(key: &str) -> bool {
    (1..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// An absolute http or https URL with a host. An https receiver's certificate is checked
/// against the system's authorities (and those of `SSL_CERT_FILE`, when it is set).
fn is_webhook_url(url: &str) -> bool {
    url.len() <= 2048
        && reqwest::Url::parse(url).is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
}

impl Validate for NewApp {
    fn validate(&self) -> Result<(), Rejection> {
        let mut errors = Vec::new();
        if self.app_id == Some(0) || self.app_id.is_some_and(|id| id > i64::MAX as u64) {
            errors.push(FieldError::new("/app_id", "must be a positive 63-bit integer"));
        }
        if self.key.as_deref().is_some_and(|key| !is_key(key)) {
            errors.push(FieldError::new("/key", "must be 1-64 characters of A-Z a-z 0-9 - _ ."));
        }
        if self.secret.as_deref().is_some_and(|secret| !(8..=128).contains(&secret.len())) {
            errors.push(FieldError::new("/secret", "must be 8-128 characters"));
        }
        if self.webhook_url.as_deref().is_some_and(|url| !is_webhook_url(url)) {
            errors
                .push(FieldError::new("/webhook_url", "must be an http:// or https:// URL of at most 2048 characters"));
        }
        match errors.is_empty() {
            true => Ok(()),
            false => Err(Rejection::Invalid(errors)),
        }
    }
}

/// A new app as the admin API takes it: [`NewApp`] and the app's settings.
#[derive(Debug, Deserialize)]
pub struct CreateApp {
    /// The app.
    #[serde(flatten)]
    pub app: NewApp,
    /// Whether its channels' subscribers are counted (`pusher_internal:subscription_count`
    /// and its webhook); off when absent, as on Pusher.
    #[serde(default)]
    pub subscription_count: bool,
    /// Whether its webhooks due together go in one request; off when absent, as on Pusher.
    #[serde(default)]
    pub batch_webhooks: bool,
}

impl Validate for CreateApp {
    fn validate(&self) -> Result<(), Rejection> {
        self.app.validate()
    }
}

/// A change of an app's settings; what is absent stays.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppUpdate {
    /// Subscription counting on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_count: Option<bool>,
    /// Batched webhooks on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_webhooks: Option<bool>,
}

impl Validate for AppUpdate {
    fn validate(&self) -> Result<(), Rejection> {
        Ok(())
    }
}

/// A created app; the secret is shown here and to the admin API only.
#[derive(Deserialize, Serialize)]
pub struct CreatedApp {
    /// The account.
    pub account_id: String,
    /// The numeric id.
    pub app_id: u64,
    /// The public key.
    pub key: String,
    /// The secret.
    pub secret: String,
    /// Where its webhooks go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

/// A created app and its settings, as the admin API answers.
#[derive(Debug, Deserialize, Serialize)]
pub struct CreatedWithSettings {
    /// The app (its secret shown here only).
    #[serde(flatten)]
    pub app: CreatedApp,
    /// Whether its channels' subscribers are counted.
    pub subscription_count: bool,
    /// Whether its webhooks due together go in one request.
    pub batch_webhooks: bool,
}

impl std::fmt::Debug for CreatedApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApp")
            .field("account_id", &self.account_id)
            .field("app_id", &self.app_id)
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .field("webhook_url", &self.webhook_url)
            .finish()
    }
}

/// Attempts at a free generated app id before giving up.
const ID_ATTEMPTS: usize = 5;

/// A generated app id: seven to nine digits, like Pusher's.
fn generated_id() -> u64 {
    1_000_000 + u64::from_le_bytes(random_bytes::<8>()) % 999_000_000
}

/// Creates an app of an existing account; 404 without the account, 409 when the id or
/// key is taken.
pub async fn create(service: &Service, request: NewApp) -> Result<CreatedApp, ApiError> {
    let account = service.store.account(&request.account_id).await.map_err(|e| service.store_error(e))?;
    if account.is_none() {
        return Err(ApiError::not_found(format!("no account {:?}", request.account_id)));
    }
    let key = request.key.clone().unwrap_or_else(|| hex::encode(random_bytes::<10>()));
    let secret = request.secret.clone().unwrap_or_else(|| hex::encode(random_bytes::<20>()));
    let attempts = if request.app_id.is_some() { 1 } else { ID_ATTEMPTS };
    for _ in 0..attempts {
        let app = AppRow {
            app_id: request.app_id.unwrap_or_else(generated_id),
            account_id: request.account_id.clone(),
            key: key.clone(),
            secret: Secret::new(secret.clone()),
            created_at: Utc::now(),
            webhook_url: request.webhook_url.clone(),
        };
        if service.store.create_app(&app).await.map_err(|e| service.store_error(e))? {
            if app.webhook_url.is_some() {
                service.hub.lifecycle.add_account(&app.account_id);
            }
            return Ok(CreatedApp {
                account_id: app.account_id,
                app_id: app.app_id,
                key,
                secret,
                webhook_url: app.webhook_url,
            });
        }
        if service.store.app_by_key(&key).await.map_err(|e| service.store_error(e))?.is_some() {
            return Err(ApiError::conflict("an app with this key exists"));
        }
    }
    Err(ApiError::conflict("an app with this id exists"))
}

/// An app as the admin API lists it: everything but its secret.
#[derive(Debug, Deserialize, Serialize)]
pub struct AppSummary {
    /// The account.
    pub account_id: String,
    /// The numeric id.
    pub app_id: u64,
    /// The public key.
    pub key: String,
    /// Where its webhooks go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// When it was created.
    pub created_at: chrono::DateTime<Utc>,
    /// Whether its channels' subscribers are counted.
    pub subscription_count: bool,
    /// Whether its webhooks due together go in one request.
    pub batch_webhooks: bool,
}

impl AppSummary {
    fn new(app: AppRow, settings: AppSettings) -> AppSummary {
        AppSummary {
            account_id: app.account_id,
            app_id: app.app_id,
            key: app.key,
            webhook_url: app.webhook_url,
            created_at: app.created_at,
            subscription_count: settings.subscription_count,
            batch_webhooks: settings.batch_webhooks,
        }
    }
}

/// The apps of an account, oldest first.
#[derive(Debug, Deserialize, Serialize)]
pub struct AppList {
    /// The apps.
    pub apps: Vec<AppSummary>,
}

/// The token id every socket of an app counts as in the hub. A Pusher socket has no token:
/// its app's credentials admitted it, so deleting the app revokes this id, which closes
/// the app's sockets on every node. (`#` is in no token id the server issues.)
pub fn credential_id(app_id: u64) -> String {
    format!("#pusher-app-{app_id}")
}

/// The apps of an existing account (404 without it); secrets are not shown.
pub async fn list(service: &Service, account_id: &str) -> Result<AppList, ApiError> {
    let account = service.store.account(account_id).await.map_err(|e| service.store_error(e))?;
    if account.is_none() {
        return Err(ApiError::not_found(format!("no account {account_id:?}")));
    }
    let apps = service.store.apps_of(account_id).await.map_err(|e| service.store_error(e))?;
    let mut summaries = Vec::with_capacity(apps.len());
    for app in apps {
        let settings = service.store.app_settings(app.app_id).await.map_err(|e| service.store_error(e))?;
        summaries.push(AppSummary::new(app, settings));
    }
    Ok(AppList { apps: summaries })
}

/// Creates an app with its settings (see [`create`]).
pub async fn create_with(service: &Service, request: CreateApp) -> Result<CreatedWithSettings, ApiError> {
    let app = create(service, request.app).await?;
    let wanted = AppSettings { subscription_count: request.subscription_count, batch_webhooks: request.batch_webhooks };
    let settings = match wanted == AppSettings::default() {
        true => wanted,
        false => {
            let change = AppSettingsChange {
                subscription_count: Some(wanted.subscription_count),
                batch_webhooks: Some(wanted.batch_webhooks),
            };
            change_settings(service, app.app_id, change).await?
        }
    };
    Ok(CreatedWithSettings {
        app,
        subscription_count: settings.subscription_count,
        batch_webhooks: settings.batch_webhooks,
    })
}

/// Changes the app's settings (404 without the app); the app as it is now. Every node
/// starts or stops counting its channels within [`super::counts::SETTINGS_EVERY`];
/// batching applies to the webhooks sent from then on.
pub async fn update(service: &Service, app_id: u64, update: AppUpdate) -> Result<AppSummary, ApiError> {
    let change =
        AppSettingsChange { subscription_count: update.subscription_count, batch_webhooks: update.batch_webhooks };
    let settings = change_settings(service, app_id, change).await?;
    let app = service.store.app(app_id).await.map_err(|e| service.store_error(e))?.ok_or_else(|| no_app(app_id))?;
    Ok(AppSummary::new(app, settings))
}

async fn change_settings(service: &Service, app_id: u64, change: AppSettingsChange) -> Result<AppSettings, ApiError> {
    let changed = service.store.change_app_settings(app_id, change).await.map_err(|e| service.store_error(e))?;
    changed.ok_or_else(|| no_app(app_id))
}

/// Gives the app a new generated secret, shown only in the answer (404 without the app).
/// Signatures made with the old one are refused from the answer on, on every node: the
/// HTTP API and channel and user authorization read the app's secret from the store for
/// each request.
pub async fn rotate(service: &Service, app_id: u64) -> Result<CreatedApp, ApiError> {
    let secret = hex::encode(random_bytes::<20>());
    let stored = Secret::new(secret.clone());
    let app = service
        .store
        .rotate_app_secret(app_id, &stored)
        .await
        .map_err(|e| service.store_error(e))?
        .ok_or_else(|| no_app(app_id))?;
    tracing::info!(app_id, account_id = %app.account_id, "pusher app secret rotated");
    Ok(CreatedApp { account_id: app.account_id, app_id, key: app.key, secret, webhook_url: app.webhook_url })
}

/// Deletes the app (404 without it): its HTTP API and key are refused at once, the
/// webhooks still in its outbox are dropped, and its sockets on every node close with
/// 4001 (the app does not exist), which pusher-js does not retry. The account and its
/// channels stay. Refused with 503 before anything changes while the broker, which must
/// carry the close to the other nodes, is unreachable.
pub async fn delete(service: &Service, app_id: u64) -> Result<(), ApiError> {
    service.require_broker().await?;
    let deleted = service.store.delete_app(app_id).await.map_err(|e| service.store_error(e))?;
    let app = deleted.ok_or_else(|| no_app(app_id))?;
    let closed = service.announce(crate::broker::ClusterEvent::TokenRevoked { jti: credential_id(app_id) }).await;
    tracing::info!(app_id, account_id = %app.account_id, closed, "pusher app deleted");
    Ok(())
}

fn no_app(app_id: u64) -> ApiError {
    ApiError::not_found(format!("no Pusher app {app_id}"))
}
