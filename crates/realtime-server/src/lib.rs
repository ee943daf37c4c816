//! The reference implementation of the realtime contract.
//!
//! Modules from the bottom up; each imports only those before it (a test holds this):
//!
//! - [`secret`], [`config`], [`logging`], [`metrics`]: secrets that never print; the
//!   configuration, read once; how logs are written; what the node counts.
//! - [`tokens`], [`vendors`]: token and signature formats.
//! - [`store`]: durable state behind small traits (SQLite embedded, PostgreSQL for
//!   several nodes); effects commit with their idempotent answers.
//! - [`hub`]: this node's live connections and the fan-out to them.
//! - [`broker`]: how events and presence cross nodes (in-memory for one node, Redis for
//!   several).
//! - [`service`]: the domain core; implements `realtime_api::RealtimeApi`.
//! - [`gateway`]: the WebSocket gateway.
//! - [`pusher`]: the Pusher-compatible face (Pusher's HTTP API and protocol 7), beside
//!   the gateway.
//! - [`admin`], [`checkout`], [`docs`], [`console`]: the reference server's own routes
//!   outside the contract (the debug console among them).
//! - [`server`]: start, serve and stop a node.
//! - [`testing`]: a server on a loopback port for tests, here and in other crates.

pub mod admin;
pub mod broker;
pub mod checkout;
pub mod config;
pub mod console;
pub mod docs;
pub mod gateway;
pub mod hub;
pub mod logging;
pub mod metrics;
pub mod pusher;
pub mod secret;
pub mod server;
pub mod service;
pub mod store;
pub mod testing;
pub mod tokens;
pub mod vendors;

pub use config::Config;
pub use server::RunningServer;

/// Runs a node until Ctrl-C or SIGTERM. Prints the listening address and, on first
/// start, the dev account's API key (once, on stdout, never in the logs; it is stored
/// only hashed); a later start logs how to get another key.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let server = RunningServer::start(config).await?;
    println!("realtime-server listening on {}", server.base_url());
    if let Some(key) = &server.dev_api_key {
        println!(
            "dev account created with ${:.2} credit; dev api key: {key}",
            server.service.config.dev_account_credit as f64 / 1e6
        );
        println!("(shown once: the server keeps only its hash) to use it with the CLI and the examples:");
        println!("export REALTIME_API_KEY={key}");
    } else {
        // A log line, not a bare print: in JSON mode stderr holds only JSON lines.
        tracing::info!(
            "the dev account was created on an earlier start, which printed its key; for another key, \
             set admin_secret and run `realtime account create`"
        );
    }
    server.run_until_signal().await
}
