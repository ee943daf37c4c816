//! Certifies an implementation of the realtime contract, over HTTP and WebSocket only.
//!
//! The harness knows the target through two things: a base URL with API keys, and the
//! committed OpenAPI document. It never links the server's crates, so it certifies any
//! implementation the same way it certifies ours. Its Pusher profile ([`pusher`]) knows
//! a Pusher-compatible target through a base URL and an app (id, key, secret) alone.
//!
//! Layout:
//! - [`spec`]: the document, its operations and a response validator per status.
//! - [`protocol`]: the AsyncAPI document and a validator of the frames a gateway sends.
//! - [`curl`] and [`examples`]: the documented curl examples, kept as data in
//!   `conformance/examples/`, parsed and bound to the run's state.
//! - `scenario/`: the checks, one module per kind (examples, idempotency, credit, auth,
//!   live, negative), run in that order by [`run`].
//! - [`pusher`]: the Pusher profile, which certifies any Pusher-compatible server over
//!   Pusher's signed HTTP API, protocol 7 and webhooks only.
//! - [`report`]: the verdict as a table, JUnit XML and JSON.

pub mod cli;
pub mod curl;
pub mod examples;
pub mod http;
pub mod protocol;
pub mod pusher;
pub mod report;
pub mod spec;

mod context;
mod scenario;
mod ws;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use thiserror::Error;

pub use report::{Check, Kind, Outcome, Report, Summary};

/// What to certify and how.
#[derive(Clone)]
pub struct Config {
    /// The target, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// A key of a funded account.
    pub api_key: String,
    /// A key of an account with a zero balance, for the 402 path; without it those
    /// checks are skipped.
    pub zero_credit_api_key: Option<String>,
    /// Whether the target serves the reference dev checkout (`POST <checkout_url>/complete`),
    /// so the harness can complete a top-up and retry. It credits the zero-credit account.
    pub dev_checkout: bool,
    /// The OpenAPI document to check against; the committed one when `None`.
    pub spec: Option<PathBuf>,
    /// How long one HTTP request may take.
    pub request_timeout: Duration,
    /// How long a live event may take to arrive over WebSocket.
    pub live_bound: Duration,
    /// Print each check to stderr as it finishes.
    pub progress: bool,
}

impl Config {
    /// A configuration with the default bounds.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Config {
        Config {
            base_url: base_url.into(),
            api_key: api_key.into(),
            zero_credit_api_key: None,
            dev_checkout: false,
            spec: None,
            request_timeout: Duration::from_secs(10),
            live_bound: Duration::from_secs(5),
            progress: false,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // API keys are secrets: never print them.
        f.debug_struct("Config")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("zero_credit_api_key", &self.zero_credit_api_key.as_ref().map(|_| "<redacted>"))
            .field("dev_checkout", &self.dev_checkout)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// Why a run could not start (a failing check is not an error: it is in the report).
#[derive(Debug, Error)]
pub enum RunError {
    /// The OpenAPI document cannot be read.
    #[error("cannot read the OpenAPI document {path}")]
    ReadSpec {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The OpenAPI document cannot be used.
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    /// The example data is broken.
    #[error(transparent)]
    Examples(#[from] examples::ExamplesError),
    /// The HTTP client cannot be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Runs every check against the target and returns the verdict.
pub async fn run(config: &Config) -> Result<Report, RunError> {
    let started = Instant::now();
    let spec = match &config.spec {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| RunError::ReadSpec { path: path.clone(), source })?;
            spec::Spec::load(&text)?
        }
        None => spec::Spec::committed()?,
    };
    let examples = examples::Example::documented()?;
    let target = http::Target::new(&config.base_url, config.request_timeout).map_err(RunError::Client)?;
    let ctx = context::Ctx::new(config.clone(), spec, target);
    scenario::examples::run(&ctx, &examples).await;
    scenario::idempotency::run(&ctx).await;
    scenario::credit::run(&ctx).await;
    scenario::auth::run(&ctx).await;
    scenario::live::run(&ctx).await;
    scenario::history::run(&ctx).await;
    scenario::messaging::run(&ctx).await;
    scenario::negative::run(&ctx).await;
    let mut report = ctx.into_report();
    report.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(report)
}
