//! What every scenario shares: the target, the document, the run's id and the report.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::Config;
use crate::coverage::{Coverage, Observed};
use crate::http::{Request, Response, Target};
use crate::journal::{self, Journal};
use crate::report::{Kind, Outcome, Report};
use crate::spec::Spec;

/// How long a restarted target may take to answer again.
pub(crate) const RESTART_TIMEOUT: Duration = Duration::from_secs(60);

/// How the target goes down before `--restart-command` brings it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restart {
    /// `--stop-command`, or no command of its own when the restart command restarts it.
    Graceful,
    /// `--kill-command`.
    Kill,
}

/// The check `--require-full-coverage` adds.
pub(crate) const FULL_COVERAGE: &str = "coverage/the run provoked every documented cell a client can reach";

/// The shared state of one run.
pub(crate) struct Ctx {
    pub(crate) config: Config,
    pub(crate) spec: Spec,
    pub(crate) target: Target,
    /// A short id that makes this run's channel and client names unique (from the seed).
    pub(crate) run_id: String,
    /// What the checks sent and received since the last verdict.
    pub(crate) journal: Journal,
    observed: Mutex<Observed>,
    report: Mutex<Report>,
}

impl Ctx {
    pub(crate) fn new(config: Config, spec: Spec, target: Target) -> Ctx {
        let run_id = run_id(config.seed);
        let report = Report { base_url: target.base_url().to_owned(), seed: config.seed, ..Report::default() };
        Ctx {
            config,
            spec,
            target,
            run_id,
            journal: Journal::default(),
            observed: Mutex::new(Observed::default()),
            report: Mutex::new(report),
        }
    }

    /// The verdict, with the coverage of everything the run sent and received.
    pub(crate) fn into_report(self) -> Report {
        // Cleanup after the last check still counts for coverage.
        self.observe(&self.journal.take());
        self.observe(&self.journal.take_background());
        let observed = self.observed.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut report = self.report.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        let coverage = Coverage::compute(&self.spec, &observed, self.config.graceful_restart());
        if self.config.require_full_coverage {
            let outcome = match coverage.uncovered.as_slice() {
                [] => Outcome::Pass,
                uncovered => {
                    let names: Vec<&str> = uncovered.iter().take(10).map(|cell| cell.cell.as_str()).collect();
                    let more = uncovered.len().saturating_sub(names.len());
                    Outcome::Fail(format!(
                        "{} reachable documented cells were not provoked ({:.1}% covered): {}{}",
                        uncovered.len(),
                        coverage.percent(),
                        names.join(", "),
                        if more > 0 { format!(" and {more} more (see the coverage below)") } else { String::new() }
                    ))
                }
            };
            report.push(FULL_COVERAGE, Kind::Coverage, outcome, Duration::ZERO);
        }
        report.coverage = Some(coverage);
        report
    }

    fn observe(&self, entries: &[journal::Entry]) {
        let mut observed = self.observed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        observed.add(&self.spec, self.target.base_url(), entries);
    }

    /// The API keys of the run and the shell variables a reproduction names them by.
    fn secrets(&self) -> Vec<(&str, &str)> {
        let mut secrets = vec![(self.config.api_key.as_str(), "REALTIME_API_KEY")];
        if let Some(zero) = &self.config.zero_credit_api_key {
            secrets.push((zero.as_str(), "REALTIME_ZERO_CREDIT_API_KEY"));
        }
        secrets
    }

    /// A name unique to this run, e.g. `conf-k3x9a2b1-idem`.
    pub(crate) fn name(&self, suffix: &str) -> String {
        format!("conf-{}-{suffix}", self.run_id)
    }

    pub(crate) fn funded_key(&self) -> &str {
        &self.config.api_key
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
        self.observe(&entries);
        let evidence = match &outcome {
            Outcome::Fail(mismatch) => {
                // A mismatch of `Ctx::expect` starts with its operation: show that request.
                let operation = mismatch.split_once(':').map(|(head, _)| head).unwrap_or_default();
                let base_url = self.target.base_url();
                journal::evidence(&entries, &self.secrets(), |exchange| {
                    let path = exchange.request.path.strip_prefix(base_url).unwrap_or_default();
                    self.spec.resolve(&exchange.request.method, path).is_some_and(|op| op.id == operation)
                })
            }
            Outcome::Pass | Outcome::Skip(_) => None,
        };
        crate::report::record(&self.report, self.config.progress, id, kind, outcome, took, evidence);
    }

    /// Takes the target down as `how` says (`--kill-command`, or `--stop-command` when
    /// given), starts it again (`--restart-command`; a graceful restart on its own when
    /// there is no stop command), each with `sh -c`, and waits up to a minute until its
    /// base URL answers.
    pub(crate) async fn restart_target(&self, how: Restart) -> Result<(), String> {
        let Some(restart) = &self.config.restart_command else {
            return Err("no --restart-command given".to_owned());
        };
        let down = match how {
            Restart::Kill => self.config.kill_command.as_ref(),
            Restart::Graceful => self.config.stop_command.as_ref(),
        };
        if let Some(down) = down {
            shell(down).await?;
        }
        shell(restart).await?;
        let deadline = Instant::now() + RESTART_TIMEOUT;
        loop {
            let probe = Request::new("GET", self.path("realtime.event.types", &[])).bearer(self.funded_key());
            if self.target.send(&probe).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("the target did not answer within {RESTART_TIMEOUT:?} of {restart:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The path of an operation with its template parameters filled in.
    pub(crate) fn path(&self, operation: &str, params: &[&str]) -> String {
        let template = self.spec.operation(operation).map(|op| op.path.clone()).unwrap_or_default();
        let mut params = params.iter();
        template
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    params.next().map(|value| encode_segment(value)).unwrap_or_default()
                } else {
                    segment.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// A request for an operation, with the funded key.
    pub(crate) fn request(&self, operation: &str, params: &[&str]) -> Request {
        let method = self.spec.operation(operation).map(|op| op.method.clone()).unwrap_or_else(|| "GET".to_owned());
        Request::new(&method, self.path(operation, params)).bearer(self.funded_key())
    }

    /// Sends a request for `operation` and checks the response against the document.
    pub(crate) async fn call(&self, operation: &str, request: &Request) -> Result<Response, String> {
        let response = self.target.send(request).await?;
        self.conforms(operation, &response)?;
        Ok(response)
    }

    /// Checks a response against the document's declaration for `operation`.
    pub(crate) fn conforms(&self, operation: &str, response: &Response) -> Result<(), String> {
        let op = self.spec.operation(operation).ok_or_else(|| format!("the document has no operation {operation}"))?;
        self.spec.check_response(op, response.status, response.content_type(), &response.body)
    }

    /// Sends a request, then checks the status (and the problem code) first, and the
    /// document's declaration second.
    pub(crate) async fn expect(
        &self,
        operation: &str,
        request: &Request,
        status: u16,
        code: Option<&str>,
    ) -> Result<Response, String> {
        let response = self.target.send(request).await?;
        expect_status(operation, &response, status, code)?;
        self.conforms(operation, &response)?;
        Ok(response)
    }

    /// `GET /v1/account` with `key`: the balance in micro-USD.
    pub(crate) async fn balance(&self, key: &str) -> Result<i64, String> {
        let request = Request::new("GET", self.path("account.get", &[])).bearer(key);
        let response = self.expect("account.get", &request, 200, None).await?;
        response
            .json()
            .get("balance")
            .and_then(Value::as_i64)
            .ok_or_else(|| "account has no integer balance".to_owned())
    }

    /// Creates a channel with the funded key; a setup step, so only its success matters.
    pub(crate) async fn create_channel(&self, name: &str, kind: &str) -> Result<(), String> {
        let request = self.request("realtime.channel.create", &[]).json(&json!({"name": name, "type": kind}));
        self.expect("realtime.channel.create", &request, 200, None).await.map(drop)
    }

    /// Deletes a channel with the funded key, ignoring the outcome (cleanup).
    pub(crate) async fn delete_channel(&self, name: &str) {
        let _ = self.target.send(&self.request("realtime.channel.delete", &[name])).await;
        self.journal.set_aside_last();
    }
}

/// Runs `command` with `sh -c`; a failure says how it ended.
async fn shell(command: &str) -> Result<(), String> {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .await
        .map_err(|err| format!("running {command:?}: {err}"))?;
    if status.success() { Ok(()) } else { Err(format!("{command:?} ended with {status}")) }
}

/// A seed for a run that was given none.
pub fn random_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    mix(u64::try_from(nanos % u128::from(u64::MAX)).unwrap_or_default() ^ u64::from(std::process::id()))
}

/// A short id that makes a run's channel and client names unique; the same seed gives
/// the same id.
pub(crate) fn run_id(seed: u64) -> String {
    base36(u128::from(mix(seed)) % 36u128.pow(8))
}

/// SplitMix64's finaliser: nearby seeds give unrelated ids.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The status is `status` and, when given, the problem code is `code`.
pub(crate) fn expect_status(
    operation: &str,
    response: &Response,
    status: u16,
    code: Option<&str>,
) -> Result<(), String> {
    if response.status != status {
        let what = match response.problem_code() {
            Some(code) => format!(" ({code})"),
            None => String::new(),
        };
        return Err(format!(
            "{operation}: status {}{what}, expected {status}{}: {}",
            response.status,
            code.map(|c| format!(" {c}")).unwrap_or_default(),
            crate::spec::snippet(&response.body)
        ));
    }
    if let Some(code) = code {
        let got = response.problem_code();
        if got.as_deref() != Some(code) {
            return Err(format!("{operation}: problem code {got:?}, expected {code}"));
        }
    }
    Ok(())
}

/// Percent-encodes a path segment (everything outside the unreserved set).
pub(crate) fn encode_segment(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn base36(mut n: u128) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}
