//! The dev checkout the reference server serves for `account.topup`: a page with a pay
//! button for people, and `POST /checkout/{id}/complete` for tests. Completing credits
//! the account exactly once, however often it is completed.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use realtime_api::ApiError;
use realtime_types::CheckoutStatus;
use serde::{Deserialize, Serialize};

use crate::service::{MAX_BALANCE, Service};
use crate::store::Completion;

/// The checkout routes; none unless `dev_checkout` is on.
pub fn router(service: Arc<Service>) -> Router {
    if !service.config.dev_checkout {
        return Router::new();
    }
    Router::new()
        .route("/checkout/{checkout_id}", get(page))
        .route("/checkout/{checkout_id}/complete", post(complete))
        .with_state(service)
}

/// The outcome of completing a checkout.
#[derive(Debug, Serialize, Deserialize)]
pub struct Completed {
    /// The checkout.
    pub checkout_id: String,
    /// Always `completed`.
    pub status: CheckoutStatus,
    /// True when this call credited the account; false when an earlier one did.
    pub credited: bool,
    /// Micro-USD.
    pub amount: i64,
}

async fn page(State(service): State<Arc<Service>>, Path(checkout_id): Path<String>) -> Result<Html<String>, ApiError> {
    let checkout = service
        .store
        .checkout(&checkout_id)
        .await
        .map_err(|e| service.store_error(e))?
        .ok_or_else(|| ApiError::not_found("no such checkout"))?;
    let dollars = checkout.amount as f64 / 1_000_000.0;
    let body = if checkout.completed {
        format!(
            "<h1>Paid</h1><p id=state data-state=paid><strong>${dollars:.2}</strong> of credit was added to \
             the account. You can close this page.</p>"
        )
    } else {
        format!(
            "<h1>Dev checkout</h1><p id=state data-state=pending>Add <strong>${dollars:.2}</strong> of credit.</p>\
             <form method=post action=\"/checkout/{checkout_id}/complete\"><button type=submit>Pay</button></form>"
        )
    };
    Ok(Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>Dev checkout</title></head><body>{body}\
         <p>This page is the reference server's stand-in for a payment provider.</p></body></html>"
    )))
}

/// Whether the caller is a browser submitting the page's form (it is then sent back to
/// the page, which shows the paid state); API callers get JSON.
fn from_a_browser(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

async fn complete(
    State(service): State<Arc<Service>>,
    Path(checkout_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let completion = service
        .store
        .complete_checkout(&checkout_id, Utc::now(), MAX_BALANCE)
        .await
        .map_err(|e| service.store_error(e))?;
    let credited = match completion {
        Completion::Credited => true,
        Completion::AlreadyCompleted => false,
        Completion::Expired => return Err(ApiError::conflict("the checkout expired; start a new top-up")),
        Completion::NotFound => return Err(ApiError::not_found("no such checkout")),
        Completion::OverLimit => {
            return Err(ApiError::conflict(format!(
                "crediting this checkout would take the balance past the maximum of {MAX_BALANCE} micro-USD"
            )));
        }
    };
    let checkout = service.store.checkout(&checkout_id).await.map_err(|e| service.store_error(e))?;
    let amount = checkout.map_or(0, |c| c.amount);
    if from_a_browser(&headers) {
        return Ok(Redirect::to(&format!("/checkout/{checkout_id}")).into_response());
    }
    Ok(Json(Completed { checkout_id, status: CheckoutStatus::Completed, credited, amount }).into_response())
}
