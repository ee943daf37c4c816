//! Pusher apps: numeric id, public key and secret, belonging to an account. Created
//! through the admin API (and `realtime pusher-app create`), with given credentials (to
//! move an app from Pusher without touching its clients) or generated ones.

use chrono::Utc;
use realtime_api::ApiError;
use realtime_types::{FieldError, Rejection, Validate};
use serde::{Deserialize, Serialize};

use crate::secret::{Secret, random_bytes};
use crate::service::Service;
use crate::store::AppRow;

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
    /// Where the app's webhooks go (an http URL); none when absent.
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

/// An absolute http URL with a host. (The server is built without TLS: an https
/// receiver goes behind a proxy; see the README.)
fn is_webhook_url(url: &str) -> bool {
    url.len() <= 2048 && reqwest::Url::parse(url).is_ok_and(|url| url.scheme() == "http" && url.has_host())
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
            errors.push(FieldError::new("/webhook_url", "must be an http:// URL of at most 2048 characters"));
        }
        match errors.is_empty() {
            true => Ok(()),
            false => Err(Rejection::Invalid(errors)),
        }
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
