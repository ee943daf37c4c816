//! The bench report: medians of the runs, ratios to the baselines, the targets, and the
//! files `report.md`, `report.json` and `latency.svg`.

use serde::{Deserialize, Serialize};

use crate::fanout::FanoutResult;
use crate::publish::{PublishResult, PublishTarget};
use crate::recovery::RecoveryResult;
use crate::target::TargetKind;

/// Issue 19's target for the memory of an idle subscribed connection (round one's was 8).
const IDLE_KIB_TARGET: f64 = 6.0;

mod markdown;
mod storm;
mod sweep;
mod targets;
mod user;

pub use markdown::{markdown, write};
pub use storm::{DisconnectMedian, PROBE_LIMIT_MS, StormGroup, StormMedian, StormRow};
pub use sweep::{Known, P99_LIMIT_MS, Sweep, SweepPoint, SweepTarget};
pub use targets::targets;
pub use user::{UserGroup, UserMedian, UserRow};

/// Everything one `suite` invocation measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub generated_unix_secs: u64,
    pub quick: bool,
    pub runs_per_row: usize,
    /// How processes were placed on the 2 CPUs.
    pub pinning: String,
    pub fanout: Vec<FanoutGroup>,
    /// The offered-load sweep (its runs are groups of `fanout`).
    pub sweep: Option<Sweep>,
    pub publish: Option<PublishGroup>,
    /// Idle memory measured on its own (when the fan-out scenario did not run).
    pub idle_memory: Option<FanoutGroup>,
    pub multi_node: Option<FanoutGroup>,
    /// Multi-node routing (three nodes), and the cluster against one node.
    #[serde(default)]
    pub cluster: Option<crate::cluster::ClusterReport>,
    pub recovery: Option<RecoveryGroup>,
    pub user: Option<UserGroup>,
    /// The connection storm and the mass disconnects.
    #[serde(default)]
    pub storm: Option<StormGroup>,
    /// The fan-out over the Pusher protocol, ours against sockudo (only when asked).
    #[serde(default)]
    pub pusher: Vec<FanoutGroup>,
    pub targets: Vec<TargetCheck>,
    /// What made this run fail (errors, lost messages); figures never do.
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Measured,
    /// Measured, but with errors or lost messages.
    Failed,
    Skipped,
}

/// One load (N subscribers, P publishes at R/s) against every target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutGroup {
    pub title: String,
    pub subscribers: usize,
    pub publishes: u64,
    pub rate: f64,
    pub rows: Vec<FanoutRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutRow {
    pub kind: TargetKind,
    /// What the row is called in the tables.
    pub label: String,
    pub status: Status,
    pub reason: Option<String>,
    pub median: Option<FanoutMedian>,
    pub runs: Vec<FanoutResult>,
}

/// The median of each figure over a row's runs (lost: the worst run).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutMedian {
    pub delivered_per_sec: f64,
    /// Publishes answered per second (the offered rate when the server keeps up).
    pub publish_rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub first_subscriber_p50_ms: f64,
    pub fanout_complete_p99_ms: f64,
    pub publish_http_p50_ms: f64,
    /// How late the open-loop publisher sent, p99: near zero unless the load generator lagged.
    pub send_lag_p99_ms: f64,
    pub lost_worst: u64,
    pub publish_failures_worst: u64,
    pub server_cpu_secs: f64,
    pub server_cpu_us_per_frame: f64,
    pub loadgen_cpu_secs: f64,
    /// Share of the publish phase's wall time the server (and the load generator) spent on CPU.
    pub server_busy: f64,
    pub loadgen_busy: f64,
    pub idle_kib_per_conn: f64,
    pub connect_secs: f64,
    /// The percentile curve of the run whose p99 is the median, for the plot.
    pub curve: Vec<(f64, f64)>,
}

impl FanoutRow {
    pub fn skipped(kind: TargetKind, label: &str, reason: String) -> FanoutRow {
        FanoutRow {
            kind,
            label: label.to_owned(),
            status: Status::Skipped,
            reason: Some(reason),
            median: None,
            runs: vec![],
        }
    }

    /// A row from its runs and the errors of the runs that could not produce figures; lost
    /// messages make it fail.
    pub fn from_runs(kind: TargetKind, label: &str, runs: Vec<FanoutResult>, errors: Vec<String>) -> FanoutRow {
        FanoutRow::from_runs_with(kind, label, runs, errors, Lost::Error)
    }

    /// A row from its runs, with `lost` saying whether lost messages make it fail.
    pub fn from_runs_with(
        kind: TargetKind,
        label: &str,
        runs: Vec<FanoutResult>,
        mut errors: Vec<String>,
        lost: Lost,
    ) -> FanoutRow {
        for run in &runs {
            errors.extend(run_problems(run, lost));
        }
        let median = (!runs.is_empty()).then(|| fanout_median(&runs));
        let status = if errors.is_empty() { Status::Measured } else { Status::Failed };
        let reason = (!errors.is_empty()).then(|| errors.join("; "));
        FanoutRow { kind, label: label.to_owned(), status, reason, median, runs }
    }
}

/// Whether lost messages (and failed publishes) are an error of the run or its figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    Error,
    /// An offered load past a target's saturation point may lose messages, or answer
    /// publishes too late (nchan answers after its fan-out): the sweep reports both and
    /// finds the saturation point from them.
    Figure,
}

/// What is wrong with a run: anything that is an error, never a slow figure.
fn run_problems(run: &FanoutResult, lost: Lost) -> Vec<String> {
    let mut problems = Vec::new();
    if run.connect_failures > 0 {
        problems.push(format!("{} of {} subscribers failed to connect", run.connect_failures, run.subscribers));
    }
    if run.publish_failures > 0 && lost == Lost::Error {
        problems.push(format!("{} publishes failed", run.publish_failures));
    }
    if run.lost > 0 && lost == Lost::Error {
        problems.push(format!("{} of {} messages lost", run.lost, run.expected));
    }
    if run.disconnects > 0 {
        problems.push(format!("{} subscribers disconnected", run.disconnects));
    }
    if !problems.is_empty() || run.published < run.publishes_asked {
        problems.extend(run.errors.iter().cloned());
    }
    problems
}

fn fanout_median(runs: &[FanoutResult]) -> FanoutMedian {
    let m = |f: fn(&FanoutResult) -> f64| median(runs.iter().map(f).collect());
    let p99 = m(|r| r.latency.p99_ms);
    let typical = runs
        .iter()
        .min_by(|a, b| (a.latency.p99_ms - p99).abs().total_cmp(&(b.latency.p99_ms - p99).abs()))
        .expect("runs is not empty");
    FanoutMedian {
        delivered_per_sec: m(|r| r.delivered_per_sec),
        publish_rate: m(|r| r.publish_rate),
        p50_ms: m(|r| r.latency.p50_ms),
        p99_ms: p99,
        p999_ms: m(|r| r.latency.p999_ms),
        max_ms: m(|r| r.latency.max_ms),
        first_subscriber_p50_ms: m(|r| r.first_subscriber.p50_ms),
        fanout_complete_p99_ms: m(|r| r.fanout_complete.p99_ms),
        publish_http_p50_ms: m(|r| r.publish_http.p50_ms),
        send_lag_p99_ms: m(|r| r.send_lag.p99_ms),
        lost_worst: runs.iter().map(|r| r.lost).max().unwrap_or(0),
        publish_failures_worst: runs.iter().map(|r| r.publish_failures).max().unwrap_or(0),
        server_cpu_secs: m(|r| r.server_cpu_secs),
        server_cpu_us_per_frame: m(|r| r.server_cpu_us_per_frame),
        loadgen_cpu_secs: m(|r| r.loadgen_cpu_secs),
        server_busy: m(|r| busy(r.server_cpu_secs, r.publish_phase_secs)),
        loadgen_busy: m(|r| busy(r.loadgen_cpu_secs, r.publish_phase_secs)),
        idle_kib_per_conn: m(|r| r.idle_kib_per_conn),
        connect_secs: m(|r| r.connect_secs),
        curve: typical.latency.curve.clone(),
    }
}

fn busy(cpu: f64, wall: f64) -> f64 {
    if wall > 0.0 { cpu / wall } else { 0.0 }
}

/// The REST publish scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishGroup {
    pub concurrency: usize,
    pub requests: u64,
    pub rows: Vec<PublishRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishRow {
    pub kind: PublishTarget,
    pub label: String,
    pub status: Status,
    pub reason: Option<String>,
    pub median: Option<PublishMedian>,
    pub runs: Vec<PublishResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishMedian {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub server_cpu_secs: f64,
    pub loadgen_cpu_secs: f64,
}

impl PublishRow {
    pub fn skipped(kind: PublishTarget, label: &str, reason: String) -> PublishRow {
        PublishRow {
            kind,
            label: label.to_owned(),
            status: Status::Skipped,
            reason: Some(reason),
            median: None,
            runs: vec![],
        }
    }

    pub fn from_runs(
        kind: PublishTarget,
        label: &str,
        runs: Vec<PublishResult>,
        mut errors: Vec<String>,
    ) -> PublishRow {
        for run in &runs {
            if run.failures > 0 {
                errors.push(format!(
                    "{} of {} requests failed: {}",
                    run.failures,
                    run.ok + run.failures,
                    run.errors.join("; ")
                ));
            }
        }
        let median = (!runs.is_empty()).then(|| {
            let m = |f: fn(&PublishResult) -> f64| median(runs.iter().map(f).collect());
            PublishMedian {
                requests_per_sec: m(|r| r.requests_per_sec),
                p50_ms: m(|r| r.latency.p50_ms),
                p99_ms: m(|r| r.latency.p99_ms),
                server_cpu_secs: m(|r| r.server_cpu_secs),
                loadgen_cpu_secs: m(|r| r.loadgen_cpu_secs),
            }
        });
        let status = if errors.is_empty() { Status::Measured } else { Status::Failed };
        let reason = (!errors.is_empty()).then(|| errors.join("; "));
        PublishRow { kind, label: label.to_owned(), status, reason, median, runs }
    }
}

/// The recovery scenario: subscribers catching up on missed messages, and what keeping
/// history costs the REST publish.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryGroup {
    /// Messages each recovery replays.
    pub messages: u64,
    /// Measured recoveries per run.
    pub repetitions: usize,
    /// The `history_per_channel` the recovery runs' server keeps (enough for the backlog).
    pub history_per_channel: u64,
    pub recovery: RecoveryRow,
    pub history_cost: HistoryCost,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryRow {
    pub label: String,
    pub status: Status,
    pub reason: Option<String>,
    pub median: Option<RecoveryMedian>,
    pub runs: Vec<RecoveryResult>,
}

/// The median of each figure over the runs (failures: their sum).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryMedian {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub subscribed_p50_ms: f64,
    /// The p99 of each recovery's longest wait between two of its frames.
    pub longest_pause_p99_ms: f64,
    pub replayed_per_sec: f64,
    pub recoveries: usize,
    pub failures: u64,
    pub server_cpu_secs: f64,
}

impl RecoveryRow {
    pub fn skipped(label: &str, reason: String) -> RecoveryRow {
        RecoveryRow {
            label: label.to_owned(),
            status: Status::Skipped,
            reason: Some(reason),
            median: None,
            runs: vec![],
        }
    }

    /// A row from its runs and the errors of the runs that could not produce figures.
    pub fn from_runs(label: &str, runs: Vec<RecoveryResult>, mut errors: Vec<String>) -> RecoveryRow {
        for run in &runs {
            if run.failures > 0 {
                errors.push(format!(
                    "{} of {} recoveries failed: {}",
                    run.failures,
                    run.repetitions + run.warmup,
                    run.errors.join("; ")
                ));
            }
        }
        // A run whose every recovery failed has no figures to take the median of.
        let timed: Vec<&RecoveryResult> = runs.iter().filter(|r| r.latency.count > 0).collect();
        let median = (!timed.is_empty()).then(|| {
            let m = |f: fn(&RecoveryResult) -> f64| median(timed.iter().map(|&r| f(r)).collect());
            RecoveryMedian {
                p50_ms: m(|r| r.latency.p50_ms),
                p99_ms: m(|r| r.latency.p99_ms),
                max_ms: m(|r| r.latency.max_ms),
                subscribed_p50_ms: m(|r| r.subscribed.p50_ms),
                longest_pause_p99_ms: m(|r| r.longest_pause.p99_ms),
                replayed_per_sec: m(|r| r.replayed_per_sec),
                recoveries: runs.iter().map(|r| r.latency.count as usize).sum(),
                failures: runs.iter().map(|r| r.failures).sum(),
                server_cpu_secs: m(|r| r.server_cpu_secs),
            }
        });
        let status = if errors.is_empty() { Status::Measured } else { Status::Failed };
        let reason = (!errors.is_empty()).then(|| errors.join("; "));
        RecoveryRow { label: label.to_owned(), status, reason, median, runs }
    }
}

/// The REST publish against our server keeping its default history, and keeping one
/// message per channel (the least it keeps: history cannot be switched off).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryCost {
    pub concurrency: usize,
    pub requests: u64,
    pub default_history: PublishRow,
    pub minimal_history: PublishRow,
    /// Requests per second with the default history / with the minimal one.
    pub ratio: Option<f64>,
}

impl HistoryCost {
    pub fn new(concurrency: usize, requests: u64, default_history: PublishRow, minimal_history: PublishRow) -> Self {
        let rps = |row: &PublishRow| row.median.as_ref().map(|m| m.requests_per_sec);
        let ratio = rps(&default_history).zip(rps(&minimal_history)).filter(|&(_, b)| b > 0.0).map(|(a, b)| a / b);
        HistoryCost { concurrency, requests, default_history, minimal_history, ratio }
    }
}

/// One of the targets, checked against the medians (never asserted anywhere).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetCheck {
    pub target: String,
    pub measured: String,
    /// None when a side of the comparison was not measured.
    pub met: Option<bool>,
}

pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 }
}

/// Reads a report back from its JSON and writes it again into `dir` by this build's
/// rules (the sweep's saturation points, the target checks), without running anything.
pub fn rerender(json: &std::path::Path, dir: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(json).map_err(|e| anyhow::anyhow!("reading {}: {e}", json.display()))?;
    let mut report: Report = serde_json::from_str(&text)?;
    if let Some(sweep) = &mut report.sweep {
        sweep.settle();
    }
    report.targets = targets(&report);
    write(&report, dir)
}

/// `1000` -> `1,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
