//! The checks, one module per kind, each run against the target in a fixed order.

pub(crate) mod auth;
pub(crate) mod credit;
pub(crate) mod examples;
pub(crate) mod history;
pub(crate) mod idempotency;
pub(crate) mod live;
pub(crate) mod messaging;
pub(crate) mod negative;
