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
//! - `scenario/`: the checks, one module per kind, run in the order of [`run`];
//!   `statuses` provokes the documented statuses and codes the others leave.
//! - [`pusher`]: the Pusher profile, which certifies any Pusher-compatible server over
//!   Pusher's signed HTTP API, protocol 7 and webhooks only.
//! - `journal`: what each check sent and received (recorded by the HTTP client and the
//!   WebSocket client, so no scenario records by hand): a failure's reproduction, and
//!   the run's [`coverage`] of the documented statuses, codes, frames and close codes.
//! - `preflight`: before any check, the target answers and takes the keys, or the run
//!   does not start (exit 2).
//! - [`report`]: the verdict as a table, JUnit XML and JSON.
//! - [`cli`]: the flags every front end shares, and the exit status (0 passed, 1 a check
//!   failed, 2 the run could not start).

pub mod cli;
pub mod coverage;
pub mod curl;
pub mod examples;
pub mod http;
pub mod protocol;
pub mod pusher;
pub mod report;
pub mod spec;

mod context;
mod journal;
mod preflight;
mod scenario;
mod ws;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use thiserror::Error;

pub use context::random_seed;
pub use report::{Check, Evidence, Kind, Outcome, Report, Summary};

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
    /// Where the run's names come from: the same seed gives the same names.
    pub seed: u64,
    /// Starts the target again (`sh -c`), or restarts it when there is no kill command;
    /// the durability checks skip without it.
    pub restart_command: Option<String>,
    /// Kills the target abruptly (`sh -c`, e.g. `kill -9 …`) before the restart command.
    pub kill_command: Option<String>,
    /// Stops the target gracefully (`sh -c`, e.g. `kill -TERM …` and a wait) before the
    /// restart command; with a kill command, the durability checks restart it gracefully
    /// once before the kill.
    pub stop_command: Option<String>,
    /// A reachable documented cell the run did not provoke fails the run (the
    /// `coverage/…` check).
    pub require_full_coverage: bool,
    /// Run only the checks of these kinds (all when empty); the coverage then covers less.
    pub only: Vec<Kind>,
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
            seed: random_seed(),
            restart_command: None,
            kill_command: None,
            stop_command: None,
            require_full_coverage: false,
            only: Vec::new(),
        }
    }

    /// Whether the target is restarted gracefully at least once: by the restart command
    /// alone, or by the stop command before it.
    pub fn graceful_restart(&self) -> bool {
        self.restart_command.is_some() && (self.kill_command.is_none() || self.stop_command.is_some())
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
            .field("seed", &self.seed)
            .field("restart_command", &self.restart_command)
            .field("kill_command", &self.kill_command)
            .field("stop_command", &self.stop_command)
            .field("require_full_coverage", &self.require_full_coverage)
            .field("only", &self.only)
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
    /// Nothing answers at the base URL.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// What was requested.
        url: String,
        /// The transport failure (connection refused, DNS, timeout, ...).
        reason: String,
    },
    /// Something answers at the base URL, but not this API.
    #[error("{url} does not serve the API: {what} answered {status}")]
    NotServed {
        /// The base URL.
        url: String,
        /// The request, e.g. `GET /v1/account`.
        what: String,
        /// Its status.
        status: u16,
    },
    /// The target refuses a key or an app's credentials.
    #[error("the key is refused: {what} answered {status} to {credential}{}", body_note(.body))]
    KeyRefused {
        /// Which credential, e.g. `--api-key`.
        credential: &'static str,
        /// The request, e.g. `GET /v1/account`.
        what: String,
        /// Its status.
        status: u16,
        /// The response body.
        body: String,
    },
}

fn body_note(body: &str) -> String {
    if body.is_empty() { String::new() } else { format!(": {body}") }
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
    preflight::realtime(&target, config).await?;
    let ctx = context::Ctx::new(config.clone(), spec, target);
    let ctx = ctx.journal.clone().scope(scenarios(ctx, examples)).await;
    let mut report = ctx.into_report();
    report.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(report)
}

/// The future `make` builds, on the heap.
fn on_heap<F: std::future::Future>(make: impl FnOnce() -> F) -> std::pin::Pin<Box<F>> {
    Box::pin(make())
}

/// Every scenario, in order, within the run's journal.
async fn scenarios(ctx: context::Ctx, examples: Vec<examples::Example>) -> context::Ctx {
    let runs = |kind: Kind| ctx.config.only.is_empty() || ctx.config.only.contains(&kind);
    // Each scenario runs when its kind is selected, in this order. Its future is built on
    // the heap in a frame of its own: a debug build keeps a stack slot for every future a
    // function builds, and these would add up past a test thread's 2 MiB of stack.
    macro_rules! scenario {
        ($kind:expr, $run:expr) => {
            if runs($kind) {
                on_heap(|| $run).await;
            }
        };
    }
    // The heartbeat check waits out the target's timeout while the others run.
    let heartbeat = match runs(Kind::Protocol) {
        true => Some(scenario::socket::Heartbeat::start(&ctx).await),
        false => None,
    };
    scenario!(Kind::Example, scenario::examples::run(&ctx, &examples));
    scenario!(Kind::Idempotency, scenario::idempotency::run(&ctx));
    // Before credit: its 402 checks need the zero-credit account still without credit.
    scenario!(Kind::Statuses, scenario::statuses::run(&ctx));
    scenario!(Kind::Credit, scenario::credit::run(&ctx));
    scenario!(Kind::Auth, scenario::auth::run(&ctx));
    scenario!(Kind::Live, scenario::live::run(&ctx));
    scenario!(Kind::History, scenario::history::run(&ctx));
    scenario!(Kind::Messaging, scenario::messaging::run(&ctx));
    scenario!(Kind::Protocol, scenario::socket::run(&ctx));
    scenario!(Kind::Scope, scenario::scope::run(&ctx));
    scenario!(Kind::Reads, scenario::reads::run(&ctx));
    scenario!(Kind::Atomicity, scenario::atomicity::run(&ctx));
    scenario!(Kind::Tenancy, scenario::tenancy::run(&ctx));
    scenario!(Kind::Negative, scenario::negative::run(&ctx));
    // Before the restart, which would cut the silent socket.
    if let Some(heartbeat) = heartbeat {
        heartbeat.finish(&ctx).await;
    }
    scenario!(Kind::Durability, scenario::durability::run(&ctx));
    // Last: it spends an account's request budget.
    scenario!(Kind::Limits, scenario::limits::run(&ctx));
    ctx
}
