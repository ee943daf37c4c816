//! The admin API (`/admin/v1/…`): provisioning accounts from outside, guarded by the
//! configured admin secret. It is not part of the public contract.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, post};
use axum::{Json, Router};
use realtime_api::ApiError;
use realtime_api::extract::{ValidJson, ValidQuery};
use realtime_types::{FieldError, Rejection, Validate};
use serde::{Deserialize, Serialize};

use crate::pusher::apps::{AppList, AppSummary, AppUpdate, CreateApp, CreatedApp, CreatedWithSettings};
use crate::service::{MAX_BALANCE, Service};

/// The admin routes; none when no admin secret is configured.
pub fn router(service: Arc<Service>) -> Router {
    if service.config.admin_secret.is_none() {
        return Router::new();
    }
    Router::new()
        .route("/admin/v1/accounts", post(create_account))
        .route("/admin/v1/pusher/apps", post(create_pusher_app).get(list_pusher_apps))
        .route("/admin/v1/pusher/apps/{app_id}", delete(delete_pusher_app).patch(update_pusher_app))
        .route("/admin/v1/pusher/apps/{app_id}/rotate", post(rotate_pusher_app))
        .with_state(service)
}

/// A new account.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Starting credit in micro-USD (0 is allowed).
    pub balance: i64,
}

impl Validate for NewAccount {
    fn validate(&self) -> Result<(), Rejection> {
        if self.balance < 0 {
            return Err(Rejection::Invalid(vec![FieldError::new("/balance", "must not be negative")]));
        }
        if self.balance > MAX_BALANCE {
            return Err(Rejection::Invalid(vec![FieldError::new(
                "/balance",
                format!("must be at most {MAX_BALANCE} micro-USD"),
            )]));
        }
        Ok(())
    }
}

/// The created account; the key is shown only here.
#[derive(Deserialize, Serialize)]
pub struct CreatedAccount {
    /// The account id.
    pub account_id: String,
    /// Its API key.
    pub api_key: String,
    /// Its credit.
    pub balance: i64,
}

impl std::fmt::Debug for CreatedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedAccount")
            .field("account_id", &self.account_id)
            .field("api_key", &"<redacted>")
            .field("balance", &self.balance)
            .finish()
    }
}

fn check_admin(service: &Service, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    match &service.config.admin_secret {
        Some(secret) if secret.matches(presented) => Ok(()),
        _ => Err(ApiError::unauthenticated("the admin API needs `Authorization: Bearer <admin secret>`")),
    }
}

/// The admin secret, checked before anything else of the request is looked at.
struct Admin;

impl axum::extract::FromRequestParts<Arc<Service>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        service: &Arc<Service>,
    ) -> Result<Self, ApiError> {
        check_admin(service, &parts.headers).map(|()| Admin)
    }
}

async fn create_account(
    State(service): State<Arc<Service>>,
    _admin: Admin,
    ValidJson(request): ValidJson<NewAccount>,
) -> Result<Json<CreatedAccount>, ApiError> {
    let (account_id, api_key) = service.create_account(request.balance).await?;
    Ok(Json(CreatedAccount { account_id, api_key, balance: request.balance }))
}

/// A Pusher app for an account (see `pusher::apps`); the secret is shown in the answer.
async fn create_pusher_app(
    State(service): State<Arc<Service>>,
    _admin: Admin,
    ValidJson(request): ValidJson<CreateApp>,
) -> Result<Json<CreatedWithSettings>, ApiError> {
    Ok(Json(crate::pusher::apps::create_with(&service, request).await?))
}

/// Whose apps to list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppsOf {
    /// The account.
    pub account_id: String,
}

impl Validate for AppsOf {
    fn validate(&self) -> Result<(), Rejection> {
        Ok(())
    }
}

/// The account's Pusher apps, without their secrets.
async fn list_pusher_apps(
    State(service): State<Arc<Service>>,
    _admin: Admin,
    ValidQuery(query): ValidQuery<AppsOf>,
) -> Result<Json<AppList>, ApiError> {
    Ok(Json(crate::pusher::apps::list(&service, &query.account_id).await?))
}

/// An app id from the path; anything else names no app.
fn app_id(segment: &str) -> Result<u64, ApiError> {
    segment.parse().map_err(|_| ApiError::not_found(format!("no Pusher app {segment:?}")))
}

/// A new secret for the app, shown once in the answer; the old one is refused at once.
async fn rotate_pusher_app(
    State(service): State<Arc<Service>>,
    _admin: Admin,
    Path(app): Path<String>,
) -> Result<Json<CreatedApp>, ApiError> {
    Ok(Json(crate::pusher::apps::rotate(&service, app_id(&app)?).await?))
}

/// Deletes the app; its sockets close with 4001.
async fn delete_pusher_app(
    State(service): State<Arc<Service>>,
    _admin: Admin,
    Path(app): Path<String>,
) -> Result<StatusCode, ApiError> {
    crate::pusher::apps::delete(&service, app_id(&app)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the app's settings (subscription counting).
async fn update_pusher_app(
    State(service): State<Arc<Service>>,
    _admin: Admin,
    Path(app): Path<String>,
    ValidJson(update): ValidJson<AppUpdate>,
) -> Result<Json<AppSummary>, ApiError> {
    Ok(Json(crate::pusher::apps::update(&service, app_id(&app)?, update).await?))
}
