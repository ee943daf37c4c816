//! The Pusher profile: certifies any Pusher-compatible server over Pusher's own wire
//! protocol only (its signed HTTP API, protocol 7 over WebSocket, and its webhooks),
//! never over this project's native API.
//!
//! - `signing`: request signatures, channel authorizations and webhook signatures,
//!   written from Pusher's documentation.
//! - `http_api`: triggers, batches and the signing refusals.
//! - `protocol`: sockets, subscriptions, exclusion, presence, client events, and the
//!   HTTP API's channel list, channel info and presence users while sockets are there.
//! - `channels`: encrypted channels (relayed as triggered; refused in a trigger to
//!   several channels), a trigger's `info`, and `terminate_connections`.
//! - `closes`: the codes a client can provoke: 4006-4008 (protocol version), 4301 (client
//!   event rate limit) and 4201 (no pong; only when the target's activity timeout is at
//!   most 10 s, else skipped with the reason).
//! - `receiver`: [`WebhookReceiver`], a small HTTP server on a local port that keeps what
//!   it is sent.
//! - `webhooks`: the signed webhooks the receiver must get.
//! - `features`: what only some servers have (events sent to a user, cache channels,
//!   subscription counting), skipped with the reason when the target shows none of it.

mod channels;
mod closes;
mod features;
mod http_api;
mod protocol;
mod receiver;
pub(crate) mod signing;
mod webhooks;

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::RunError;
use crate::http::{Request, Response, Target};
use crate::report::{Kind, Outcome, Report};

pub use receiver::{Delivery, WebhookReceiver};

/// A Pusher app of the target: its numeric id, public key and secret.
#[derive(Clone)]
pub struct App {
    /// The app id, e.g. `1`.
    pub app_id: String,
    /// The public key.
    pub key: String,
    /// The secret that signs requests, authorizations and webhooks.
    pub secret: String,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never prints.
        f.debug_struct("App").field("app_id", &self.app_id).field("key", &self.key).finish_non_exhaustive()
    }
}

/// Where the target's webhooks are received, and the app that sends them.
#[derive(Debug, Clone)]
pub struct Webhooks {
    /// A receiver the target POSTs this app's webhooks to.
    pub receiver: WebhookReceiver,
    /// The app whose `webhook_url` is the receiver's URL.
    pub app: App,
}

/// What to certify with the Pusher profile.
#[derive(Debug, Clone)]
pub struct PusherConfig {
    /// The target, e.g. `http://127.0.0.1:8080`; sockets go to its `ws://` twin.
    pub base_url: String,
    /// The app every check but the webhook ones uses.
    pub app: App,
    /// The webhook receiver; without it the webhook checks are skipped.
    pub webhooks: Option<Webhooks>,
    /// How long one HTTP request may take.
    pub request_timeout: Duration,
    /// How long a live event may take to arrive over WebSocket.
    pub live_bound: Duration,
    /// How long a webhook may take to arrive.
    pub webhook_bound: Duration,
    /// Print each check to stderr as it finishes.
    pub progress: bool,
    /// Where the run's names come from: the same seed gives the same names.
    pub seed: u64,
}

impl PusherConfig {
    /// A configuration with the default bounds and no webhook receiver.
    pub fn new(base_url: impl Into<String>, app: App) -> PusherConfig {
        PusherConfig {
            base_url: base_url.into(),
            app,
            webhooks: None,
            request_timeout: Duration::from_secs(10),
            live_bound: Duration::from_secs(5),
            webhook_bound: Duration::from_secs(15),
            progress: false,
            seed: crate::context::random_seed(),
        }
    }
}

/// Runs every check of the Pusher profile against the target and returns the verdict.
pub async fn run(config: &PusherConfig) -> Result<Report, RunError> {
    let started = Instant::now();
    let target = Target::new(&config.base_url, config.request_timeout).map_err(RunError::Client)?;
    let run = Run::new(config.clone(), target);
    // The app's credentials: a signed channel list is answered (401, 403 or 404 refuse
    // them, and then the run does not start).
    let probe = run.signed(&run.config.app, "GET", "/channels", &[], None, Forgery::None);
    crate::preflight::answered(&run.target, &probe, "--app-id/--key/--secret", "a signed GET /apps/{app_id}/channels")
        .await
        .map_err(|error| match error {
            RunError::NotServed { what, status, .. } => RunError::KeyRefused {
                credential: "--app-id/--key/--secret",
                what,
                status,
                body: "no such app".to_owned(),
            },
            other => other,
        })?;
    run.journal.clone().scope(checks(&run)).await;
    let mut report = run.report.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    report.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(report)
}

/// How a signed request is spoiled on purpose.
/// Every check of the profile, in order.
async fn checks(run: &Run) {
    http_api::run(run).await;
    protocol::run(run).await;
    channels::run(run).await;
    closes::run(run).await;
    webhooks::run(run).await;
    features::run(run).await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forgery {
    /// Signed as the documentation says.
    None,
    /// Signed with another secret.
    Signature,
    /// Signed correctly, an hour in the past.
    StaleTimestamp,
    /// Signed correctly over a `body_md5` of another body.
    BodyMd5,
}

/// The shared state of one run of the profile.
pub(crate) struct Run {
    pub(crate) config: PusherConfig,
    pub(crate) target: Target,
    run_id: String,
    journal: crate::journal::Journal,
    report: Mutex<Report>,
}

impl Run {
    fn new(config: PusherConfig, target: Target) -> Run {
        let report = Report { base_url: target.base_url().to_owned(), seed: config.seed, ..Report::default() };
        let run_id = crate::context::run_id(config.seed);
        Run { config, target, run_id, journal: crate::journal::Journal::default(), report: Mutex::new(report) }
    }

    /// A channel or user name unique to this run, e.g. `conf-k3x9a2b1-room`.
    pub(crate) fn name(&self, suffix: &str) -> String {
        format!("conf-{}-{suffix}", self.run_id)
    }

    /// Records the outcome of a check that started at `started`.
    pub(crate) fn record(&self, id: &str, kind: Kind, started: Instant, result: Result<(), String>) {
        let outcome = match result {
            Ok(()) => Outcome::Pass,
            Err(mismatch) => Outcome::Fail(mismatch),
        };
        self.push(id, kind, outcome, started.elapsed());
    }

    /// Records a check that could not run, and why.
    pub(crate) fn skip(&self, id: &str, kind: Kind, reason: &str) {
        self.push(id, kind, Outcome::Skip(reason.to_owned()), Duration::ZERO);
    }

    fn push(&self, id: &str, kind: Kind, outcome: Outcome, took: Duration) {
        let entries = self.journal.take();
        let evidence = match &outcome {
            Outcome::Fail(_) => crate::journal::evidence(&entries, &[], |_| false),
            Outcome::Pass | Outcome::Skip(_) => None,
        };
        crate::report::record(&self.report, self.config.progress, id, kind, outcome, took, evidence);
    }

    /// A request to `/apps/{app_id}{rest}` signed for `app`, with `params` besides the
    /// signing ones and an optional JSON body, spoiled as `forgery` says.
    pub(crate) fn signed(
        &self,
        app: &App,
        method: &str,
        rest: &str,
        params: &[(&str, &str)],
        body: Option<&Value>,
        forgery: Forgery,
    ) -> Request {
        let path = format!("/apps/{}{rest}", app.app_id);
        let bytes = body.map(|body| body.to_string().into_bytes()).unwrap_or_default();
        let now = unix_now();
        let timestamp = if forgery == Forgery::StaleTimestamp { now - 3600 } else { now };
        let mut all = signing::auth_params(app, &bytes, timestamp);
        if forgery == Forgery::BodyMd5 {
            for (key, value) in &mut all {
                if key == "body_md5" {
                    *value = signing::body_md5(b"another body");
                }
            }
        }
        all.extend(params.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
        let secret = if forgery == Forgery::Signature { "not-the-secret-of-this-app" } else { app.secret.as_str() };
        let query = signing::signed_query(secret, method, &path, &all);
        let request = Request::new(method, format!("{path}?{query}"));
        match body {
            Some(_) => request.header("Content-Type", "application/json").raw(bytes),
            None => request,
        }
    }

    /// Sends a correctly signed request for the run's app.
    pub(crate) async fn api(
        &self,
        method: &str,
        rest: &str,
        params: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Response, String> {
        self.target.send(&self.signed(&self.config.app, method, rest, params, body, Forgery::None)).await
    }

    /// The socket URL of an app key, protocol 7.
    pub(crate) fn socket_url(&self, key: &str) -> String {
        let base = self.target.base_url();
        let ws = match base.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", base.strip_prefix("http://").unwrap_or(base)),
        };
        format!("{ws}/app/{}?protocol=7&client=conformance&version=1", crate::context::encode_segment(key))
    }
}

/// The status is `status` and the body is JSON; returns the body.
pub(crate) fn expect_status(what: &str, response: &Response, status: u16) -> Result<Value, String> {
    if response.status != status {
        return Err(format!(
            "{what}: status {}, expected {status}: {}",
            response.status,
            crate::spec::snippet(&response.body)
        ));
    }
    Ok(response.json())
}

/// Unix seconds now.
fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}
