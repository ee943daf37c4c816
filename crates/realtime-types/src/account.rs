//! `GET /v1/account` and `account.topup`: credit, in integer micro-USD.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The calling account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"account_id": "acct_01JD2Q7W3M5X8Y9Z0A1B2C3D4E", "balance": 2000000, "currency": "USD", "topup_url": "/v1/account/topup"})))]
pub struct Account {
    /// The account's id.
    pub account_id: String,
    /// Credit left, in micro-USD (1 USD = 1,000,000).
    pub balance: i64,
    /// Always `USD`.
    pub currency: String,
    /// Where to add credit.
    pub topup_url: String,
}

/// Add credit to the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"amount": 5000000})))]
pub struct TopupRequest {
    /// Amount in micro-USD, from 1,000,000 ($1) to 1,000,000,000 ($1,000).
    #[serde(deserialize_with = "crate::integer::u64")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1000000, maximum = 1000000000))]
    pub amount: u64,
    /// Same as the `Idempotency-Key` header; both given and different is a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255, pattern = r"^[!-~]+$"))]
    pub idempotency_key: Option<String>,
}

/// Where a checkout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CheckoutStatus {
    /// Waiting for the payer to complete it at `checkout_url`.
    Pending,
    /// Paid; the amount was credited once.
    Completed,
}

/// A checkout: open `checkout_url` to pay; the account is credited when it completes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"checkout_id": "co_01JD2Q7W3M5X8Y9Z0A1B2C3D4E", "checkout_url": "http://127.0.0.1:8080/checkout/co_01JD2Q7W3M5X8Y9Z0A1B2C3D4E", "amount": 5000000, "status": "pending", "expires_at": "2026-11-23T12:00:00Z"})))]
pub struct Checkout {
    /// The checkout's id.
    pub checkout_id: String,
    /// The page where the payer completes the checkout.
    pub checkout_url: String,
    /// Amount in micro-USD.
    pub amount: u64,
    /// Where it stands.
    pub status: CheckoutStatus,
    /// After this the checkout can no longer be completed.
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub expires_at: DateTime<Utc>,
}
