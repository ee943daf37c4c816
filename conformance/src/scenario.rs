//! The checks, one module per kind, each run against the target in a fixed order.

pub(crate) mod atomicity;
pub(crate) mod auth;
pub(crate) mod credit;
pub(crate) mod durability;
pub(crate) mod examples;
pub(crate) mod history;
pub(crate) mod idempotency;
pub(crate) mod limits;
pub(crate) mod live;
pub(crate) mod messaging;
pub(crate) mod negative;
pub(crate) mod reads;
pub(crate) mod scope;
pub(crate) mod socket;
pub(crate) mod statuses;
pub(crate) mod tenancy;

use std::future::Future;
use std::time::Instant;

use crate::context::Ctx;
use crate::report::Kind;

/// Runs one check and records its outcome under `id`.
pub(crate) async fn check(ctx: &Ctx, id: &str, kind: Kind, body: impl Future<Output = Result<(), String>>) {
    let started = Instant::now();
    let result = body.await;
    ctx.record(id, kind, started, result);
}
