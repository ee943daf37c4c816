//! The dev checkout the reference server serves for `account.topup`: a page with a pay
//! button for people, and `POST /checkout/{id}/complete` for tests. Completing credits
//! the account exactly once, however often it is completed.
//!
//! With the dev checkout on, a 402's `topup_url` is `GET /checkout`, a page where a person
//! types their API key and an amount; it calls `account.topup` and goes on to the
//! checkout's page. Every route here is outside the contract, so none is under `/v1`
//! (where the document says what each path answers: `GET /v1/account/topup` is a 405).

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
        .route("/checkout", get(topup_page))
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

/// `GET /checkout`: the top-up page, where a 402's `topup_url` leads.
async fn topup_page() -> Html<&'static str> {
    Html(TOPUP_PAGE)
}

/// The top-up page. The key stays in the page: it goes only into the `Authorization`
/// header of the `account.topup` call, whose checkout the browser then opens.
const TOPUP_PAGE: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Add credit</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}label{display:block;margin:.5rem 0}
#state[data-state=error]{color:#a33}</style></head><body>
<h1>Add credit</h1>
<form id="topup">
<label>API key <input id="key" type="password" autocomplete="off" required></label>
<label>Amount (USD) <input id="amount" type="number" min="1" max="1000" step="1" value="10" required></label>
<button type="submit">Continue to payment</button>
</form>
<p id="state" data-state="ready"></p>
<p>The key stays in this page: it is sent only in the <code>Authorization</code> header of the top-up call.
This is the reference server's dev checkout, a stand-in for a payment provider.</p>
<script>
"use strict";
document.getElementById("topup").addEventListener("submit", async (event) => {
  event.preventDefault();
  const state = document.getElementById("state");
  const key = document.getElementById("key").value.trim();
  const amount = Math.round(Number(document.getElementById("amount").value) * 1e6);
  state.dataset.state = "working";
  state.textContent = "Starting the checkout";
  const response = await fetch("/v1/account/topup", {
    method: "POST",
    headers: { authorization: "Bearer " + key, "content-type": "application/json" },
    body: JSON.stringify({ amount }),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    state.dataset.state = "error";
    state.textContent = (body && body.detail) || ("HTTP " + response.status);
    return;
  }
  location.assign(body.checkout_url);
});
</script></body></html>"#;

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
