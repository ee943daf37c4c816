//! Tests of the contract crate: the committed document, the router and the document agree,
//! and every rejection is problem+json.

mod constraints;
mod contract;
mod double;
mod idempotency;
mod problems;
