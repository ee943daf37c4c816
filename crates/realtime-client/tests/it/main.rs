//! The client against a real reference server on a loopback port: every operation, the
//! retry policy with one idempotency key, and the WebSocket subscriber.

mod operations;
mod proxy;
mod retry;
mod subscriber;
mod support;
