//! A typed client of the realtime contract, and a WebSocket subscriber that stays connected.
//!
//! - [`Client`]: one async method per operation, with the request and response types of
//!   `realtime-types` and the paths of the route table the server's router is built from.
//!   It implements [`realtime_api::RealtimeApi`], the trait the server implements, so a
//!   new operation cannot exist without a client method.
//! - [`ClientError`]: a problem+json answer, a transport failure, or an answer that does
//!   not match the contract.
//! - [`RetryPolicy`]: network failures, 5xx and 429 are retried with backoff, reusing the
//!   first attempt's `Idempotency-Key`.
//! - [`pusher_webhook::verify`]: checks a Pusher webhook's key, signature and age.
//! - [`Subscriber`]: the WebSocket gateway as a `Stream` of [`SubscriberEvent`]s, with
//!   heartbeats, reconnection and re-subscription.
//!
//! `https://` servers and `wss://` sockets work as `http://` and `ws://` do: TLS by rustls,
//! trusting the system's certificate authorities, and those of the PEM file
//! `SSL_CERT_FILE` names when it is set.
//!
//! ```no_run
//! # async fn demo() -> Result<(), realtime_client::ClientError> {
//! use realtime_client::Client;
//! use realtime_types::PublishRequest;
//!
//! let client = Client::new("http://127.0.0.1:8080", "ifr_pk_proj_…")?;
//! let published = client
//!     .publish(PublishRequest {
//!         channel: "room-42".into(),
//!         event: "message".into(),
//!         data: serde_json::json!({"text": "hi"}),
//!         idempotency_key: None,
//!     })
//!     .await?;
//! println!("{} delivered to {}", published.message_id, published.delivered);
//! # Ok(()) }
//! ```

mod api;
mod client;
mod error;
mod operations;
pub mod pusher_webhook;
mod retry;
pub mod subscriber;

pub use client::{Client, ClientBuilder};
pub use error::ClientError;
pub use realtime_api::{IdempotencyKey, Reply};
pub use retry::RetryPolicy;
pub use subscriber::{Disconnect, ReconnectPolicy, SubscribeError, Subscriber, SubscriberEvent};
