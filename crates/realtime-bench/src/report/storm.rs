//! The connection storm scenario in the report: the medians of its runs, its section with
//! the ratios to the bare baseline, and its targets.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{Lost, Status, TargetCheck, median, thousands};
use crate::storm::{DropMode, StormResult};
use crate::target::TargetKind;

/// The probes of a mass disconnect must get through in less than this.
pub const PROBE_LIMIT_MS: f64 = 1000.0;

/// N subscribers connecting at once, then dropped at once under probing, against every
/// target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StormGroup {
    pub subscribers: usize,
    pub probe_every_ms: u64,
    pub probe_secs: f64,
    /// Seconds the target's count is watched for zero.
    pub drain_secs: u64,
    pub rows: Vec<StormRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StormRow {
    pub kind: TargetKind,
    pub label: String,
    pub status: Status,
    pub reason: Option<String>,
    pub median: Option<StormMedian>,
    pub runs: Vec<StormResult>,
}

/// The median of each figure over the runs (failures: their sum; worst probe: the worst).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StormMedian {
    /// The first connect -> the last `subscribed`.
    pub all_subscribed_secs: f64,
    pub subscribe_p50_ms: f64,
    pub subscribe_p99_ms: f64,
    pub failures: usize,
    /// Failures that were timeouts (counted in `failures`).
    #[serde(default)]
    pub timeouts: usize,
    /// Connections turned away by a full accept queue (median; None when unreadable).
    pub listen_overflows: Option<f64>,
    pub disconnects: Vec<DisconnectMedian>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DisconnectMedian {
    pub mode: DropMode,
    /// Scheduled -> `subscribed`, over each run's probes.
    pub probe_p50_ms: f64,
    pub probe_p99_ms: f64,
    /// The slowest probe of any run.
    pub probe_worst_ms: f64,
    pub probe_failures: u64,
    /// How long the load generator took to close every socket.
    pub close_secs: f64,
    /// The first close -> the target's count at zero; None when a run's never got there.
    pub to_zero_secs: Option<f64>,
}

impl StormGroup {
    /// What failed, one line per failed row.
    pub fn failures(&self) -> Vec<String> {
        let failed = self.rows.iter().filter(|r| r.status == Status::Failed);
        failed.map(|r| format!("storm / {}: {}", r.label, r.reason.as_deref().unwrap_or("failed"))).collect()
    }
}

impl StormRow {
    pub fn skipped(kind: TargetKind, label: &str, reason: String) -> StormRow {
        StormRow {
            kind,
            label: label.to_owned(),
            status: Status::Skipped,
            reason: Some(reason),
            median: None,
            runs: vec![],
        }
    }

    /// A row from its runs and the errors of the runs that could not produce figures; a
    /// subscriber or a probe that was refused fails the row, a slow one never does, and
    /// one that timed out does when `timeouts` says so (a full storm may be past what a
    /// target absorbs; then they are its figures).
    pub fn from_runs(
        kind: TargetKind,
        label: &str,
        runs: Vec<StormResult>,
        mut errors: Vec<String>,
        timeouts: Lost,
    ) -> StormRow {
        let excused = |failures: u64, timed_out: u64| match timeouts {
            Lost::Error => failures,
            Lost::Figure => failures.saturating_sub(timed_out),
        };
        for run in &runs {
            let storms = [&run.storm, &run.second_storm];
            let subscribers: u64 = storms.iter().map(|s| excused(s.failures as u64, s.timeouts as u64)).sum();
            let probes: u64 = run.disconnects.iter().map(|d| excused(d.probe_failures, d.probe_timeouts)).sum();
            let unread = run.disconnects.iter().any(|d| d.last_count.is_none());
            if subscribers > 0 || probes > 0 || unread {
                let count = if unread { ", the connection count unread" } else { "" };
                errors.push(format!(
                    "{subscribers} subscribers and {probes} probes failed{count}: {}",
                    run.errors.join("; ")
                ));
            }
        }
        let timed: Vec<&StormResult> = runs.iter().filter(|r| r.storm.connected > 0).collect();
        let median = (!timed.is_empty()).then(|| storm_median(&timed));
        let status = if errors.is_empty() { Status::Measured } else { Status::Failed };
        let reason = (!errors.is_empty()).then(|| errors.join("; "));
        StormRow { kind, label: label.to_owned(), status, reason, median, runs }
    }
}

fn storm_median(runs: &[&StormResult]) -> StormMedian {
    let m = |f: &dyn Fn(&StormResult) -> f64| median(runs.iter().map(|&r| f(r)).collect());
    let disconnects = [DropMode::Reset, DropMode::CloseFrame]
        .into_iter()
        .filter_map(|mode| {
            let of: Vec<_> = runs.iter().filter_map(|r| r.disconnects.iter().find(|d| d.mode == mode)).collect();
            if of.is_empty() {
                return None;
            }
            let m = |f: &dyn Fn(&crate::storm::DisconnectFigures) -> f64| median(of.iter().map(|&d| f(d)).collect());
            let zeros: Option<Vec<f64>> = of.iter().map(|d| d.to_zero_secs).collect();
            Some(DisconnectMedian {
                mode,
                probe_p50_ms: m(&|d| d.probe.p50_ms),
                probe_p99_ms: m(&|d| d.probe.p99_ms),
                probe_worst_ms: of.iter().map(|d| d.probe.max_ms).fold(0.0, f64::max),
                probe_failures: of.iter().map(|d| d.probe_failures).sum(),
                close_secs: m(&|d| d.close_secs),
                to_zero_secs: zeros.map(median),
            })
        })
        .collect();
    StormMedian {
        all_subscribed_secs: m(&|r| r.storm.all_subscribed_secs),
        subscribe_p50_ms: m(&|r| r.storm.subscribe.p50_ms),
        subscribe_p99_ms: m(&|r| r.storm.subscribe.p99_ms),
        failures: runs.iter().map(|r| r.storm.failures).sum(),
        timeouts: runs.iter().map(|r| r.storm.timeouts).sum(),
        listen_overflows: runs
            .iter()
            .map(|r| r.storm.listen_overflows.map(|n| n as f64))
            .collect::<Option<_>>()
            .map(median),
        disconnects,
    }
}

fn row_median(group: &StormGroup, kind: TargetKind) -> Option<&StormMedian> {
    group.rows.iter().find(|r| r.kind == kind && r.status != Status::Skipped)?.median.as_ref()
}

/// The storm beside the bare baseline and nchan (the issue sets no figure for it), and
/// the mass disconnect's worst probe under [`PROBE_LIMIT_MS`].
pub(super) fn targets(group: &StormGroup) -> Vec<TargetCheck> {
    let n = thousands(group.subscribers as u64);
    let ours = row_median(group, TargetKind::Realtime);
    let vs = |kind| {
        let other = row_median(group, kind).filter(|m| m.all_subscribed_secs > 0.0);
        match ours.zip(other) {
            Some((o, b)) => format!("{:.2}x", o.all_subscribed_secs / b.all_subscribed_secs),
            None => "not measured".to_owned(),
        }
    };
    let storm = TargetCheck {
        target: format!("connection storm: time until {n} subscribed, beside the bare baseline and nchan"),
        measured: match ours {
            Some(o) => format!(
                "{:.2} s{}; ours / bare baseline {}, ours / nchan {}",
                o.all_subscribed_secs,
                match o.failures {
                    0 => String::new(),
                    f => format!(" ({f} never subscribed)"),
                },
                vs(TargetKind::Baseline),
                vs(TargetKind::Nchan)
            ),
            None => "not measured".to_owned(),
        },
        met: None,
    };
    let target = format!("mass disconnect of {n}: new connects delayed < 1 s (worst probe, either way of leaving)");
    let worst = ours.map(|o| o.disconnects.iter().map(|d| d.probe_worst_ms).fold(0.0, f64::max));
    let failed = ours.is_some_and(|o| o.disconnects.iter().any(|d| d.probe_failures > 0));
    let disconnect = match worst {
        Some(_) if failed => TargetCheck { target, measured: "some probes failed".to_owned(), met: Some(false) },
        Some(w) if ours.is_some_and(|o| !o.disconnects.is_empty()) => {
            TargetCheck { target, measured: format!("{w:.0} ms"), met: Some(w < PROBE_LIMIT_MS) }
        }
        _ => TargetCheck { target, measured: "not measured".to_owned(), met: None },
    };
    vec![storm, disconnect]
}

pub(super) fn section(md: &mut String, group: &StormGroup) {
    let n = thousands(group.subscribers as u64);
    let _ = writeln!(md, "## Connection storm and mass disconnect: {n} subscribers\n");
    let _ = writeln!(
        md,
        "**Storm**: {n} subscribers of one channel start connecting at once (one load generator thread, no \
         limit on connections in flight), each timed from its connect to its `subscribed` (the baseline and \
         nchan subscribe on the upgrade: the `101`); all subscribed: the first connect to the last \
         `subscribed`; a subscriber with no `subscribed` within 30 s has failed (timed out: a figure of a full \
         storm, an error of a quick one). **Mass disconnect**: the {n} are then dropped at once, by TCP \
         resets (no close frame); after a second storm, by close frames. From the first close, a probe connects and subscribes every \
         {} ms for {} s, each timed from its *scheduled* time (so a probe held up anywhere counts it); to \
         zero: the first close -> the target's own connection count (our `realtime_connections`, the \
         baseline's receivers, nchan's stub status) at zero, the probes open then aside, watched for {} s. \
         Probes run on a thread of their own, on the load generator's CPU, which also closes the sockets: \
         the closing time is shown.\n",
        group.probe_every_ms, group.probe_secs, group.drain_secs
    );
    let _ = writeln!(
        md,
        "| target | all subscribed s | subscribe p50 ms | subscribe p99 ms | failed, all runs | accept queue overflows |\n|---|---|---|---|---|---|"
    );
    for row in &group.rows {
        match &row.median {
            Some(m) => {
                let flag = if row.status == Status::Failed { " (FAILED)" } else { "" };
                let _ = writeln!(
                    md,
                    "| {}{flag} | {:.2} | {:.1} | {:.1} | {} | {} |",
                    row.label,
                    m.all_subscribed_secs,
                    m.subscribe_p50_ms,
                    m.subscribe_p99_ms,
                    match m.timeouts {
                        0 => m.failures.to_string(),
                        t => format!("{} ({t} timed out)", m.failures),
                    },
                    m.listen_overflows.map_or_else(|| "-".to_owned(), |n| format!("{n:.0}"))
                );
            }
            None => {
                let _ = writeln!(md, "| {} | {} |||||", row.label, row.reason.as_deref().unwrap_or(""));
            }
        }
    }
    md.push('\n');
    let _ = writeln!(
        md,
        "Accept queue overflows: SYNs the kernel dropped because the target had not accepted earlier \
         connections yet (machine-wide counter); each such connect waits for a retransmit, 1 s or more, \
         which is what a storm's p99 mostly shows when they are not zero.\n"
    );
    let _ = writeln!(
        md,
        "| target | dropped by | probe p50 ms | probe p99 ms | worst probe ms, any run | probes failed, all runs | to zero s | closing s |\n|---|---|---|---|---|---|---|---|"
    );
    for row in group.rows.iter() {
        let Some(m) = &row.median else { continue };
        for d in &m.disconnects {
            let to_zero =
                d.to_zero_secs.map_or_else(|| format!("not within {} s", group.drain_secs), |s| format!("{s:.2}"));
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {} | {to_zero} | {:.2} |",
                row.label,
                d.mode.label(),
                d.probe_p50_ms,
                d.probe_p99_ms,
                d.probe_worst_ms,
                d.probe_failures,
                d.close_secs
            );
        }
    }
    md.push('\n');
    for row in group.rows.iter().filter(|r| r.status == Status::Failed && r.median.is_some()) {
        let _ = writeln!(md, "- {}: {}", row.label, row.reason.as_deref().unwrap_or(""));
    }
    ratio_lines(md, group);
}

/// Ours over the bare baseline of the same run: lower is better for every figure.
fn ratio_lines(md: &mut String, group: &StormGroup) {
    let (Some(o), Some(b)) = (row_median(group, TargetKind::Realtime), row_median(group, TargetKind::Baseline)) else {
        return;
    };
    let r = |ours: f64, base: f64| if base > 0.0 { format!("{:.2}x", ours / base) } else { "-".to_owned() };
    let _ = writeln!(md, "Ratios, ours / bare baseline (lower is better):\n");
    let _ = writeln!(md, "| figure | ratio |\n|---|---|");
    let _ = writeln!(md, "| all subscribed | {} |", r(o.all_subscribed_secs, b.all_subscribed_secs));
    let _ = writeln!(md, "| subscribe p50 | {} |", r(o.subscribe_p50_ms, b.subscribe_p50_ms));
    let _ = writeln!(md, "| subscribe p99 | {} |", r(o.subscribe_p99_ms, b.subscribe_p99_ms));
    for d in &o.disconnects {
        let Some(base) = b.disconnects.iter().find(|x| x.mode == d.mode) else { continue };
        let label = d.mode.label();
        let _ = writeln!(md, "| {label}: probe p99 | {} |", r(d.probe_p99_ms, base.probe_p99_ms));
        let _ = writeln!(md, "| {label}: worst probe | {} |", r(d.probe_worst_ms, base.probe_worst_ms));
        if let (Some(ours), Some(base)) = (d.to_zero_secs, base.to_zero_secs) {
            let _ = writeln!(md, "| {label}: to zero | {} |", r(ours, base));
        }
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Summary;
    use crate::storm::{DisconnectFigures, StormFigures};

    fn run(kind: TargetKind, all_secs: f64, worst_probe_ms: f64, probe_failures: u64) -> StormResult {
        let probe = Summary {
            count: 150,
            p50_ms: 2.0,
            p99_ms: worst_probe_ms / 2.0,
            max_ms: worst_probe_ms,
            ..Summary::default()
        };
        let disconnect = |mode| DisconnectFigures {
            mode,
            dropped: 100,
            close_secs: 0.1,
            probes: 150,
            probe_failures,
            probe_timeouts: probe_failures,
            probe: probe.clone(),
            to_zero_secs: Some(0.5),
            last_count: Some(0),
        };
        StormResult {
            kind,
            subscribers: 100,
            concurrency: 100,
            storm: StormFigures {
                connected: 100,
                all_subscribed_secs: all_secs,
                subscribe: Summary { count: 100, p50_ms: 10.0, p99_ms: 20.0, ..Summary::default() },
                listen_overflows: Some(3),
                ..StormFigures::default()
            },
            second_storm: StormFigures { connected: 100, ..StormFigures::default() },
            disconnects: vec![disconnect(DropMode::Reset), disconnect(DropMode::CloseFrame)],
            errors: vec![],
        }
    }

    fn group(ours: Vec<StormResult>, baseline: Vec<StormResult>) -> StormGroup {
        StormGroup {
            subscribers: 100,
            probe_every_ms: 20,
            probe_secs: 3.0,
            drain_secs: 30,
            rows: vec![
                StormRow::from_runs(TargetKind::Realtime, "realtime", ours, vec![], Lost::Error),
                StormRow::from_runs(TargetKind::Baseline, "bare baseline", baseline, vec![], Lost::Error),
                StormRow::skipped(TargetKind::Nchan, "nchan", "not installed".to_owned()),
            ],
        }
    }

    #[test]
    fn the_storm_is_the_median_run_and_the_worst_probe_the_worst_of_any_run() {
        let r = TargetKind::Realtime;
        let g = group(
            vec![run(r, 3.0, 100.0, 0), run(r, 1.0, 1200.0, 0), run(r, 2.0, 50.0, 0)],
            vec![run(TargetKind::Baseline, 1.0, 80.0, 0)],
        );
        let m = g.rows[0].median.as_ref().unwrap();
        assert_eq!(m.all_subscribed_secs, 2.0);
        assert_eq!(m.disconnects[0].probe_worst_ms, 1200.0);
        assert_eq!(m.disconnects[0].probe_p99_ms, 50.0);
        let checks = targets(&g);
        assert_eq!(checks[0].measured, "2.00 s; ours / bare baseline 2.00x, ours / nchan not measured");
        assert_eq!(checks[0].met, None);
        assert_eq!((checks[1].measured.as_str(), checks[1].met), ("1200 ms", Some(false)));
    }

    #[test]
    fn a_timed_out_subscriber_fails_a_quick_row_and_is_a_figure_of_a_full_one() {
        let mut timed_out = run(TargetKind::Realtime, 30.0, 10.0, 0);
        (timed_out.storm.failures, timed_out.storm.timeouts) = (3, 3);
        let row = |lost| StormRow::from_runs(TargetKind::Realtime, "realtime", vec![timed_out.clone()], vec![], lost);
        assert_eq!(row(Lost::Error).status, Status::Failed);
        let full = row(Lost::Figure);
        assert_eq!(full.status, Status::Measured);
        assert_eq!(full.median.as_ref().map(|m| (m.failures, m.timeouts)), Some((3, 3)));
        let mut refused = timed_out.clone();
        refused.storm.timeouts = 2;
        let row = StormRow::from_runs(TargetKind::Realtime, "realtime", vec![refused], vec![], Lost::Figure);
        assert_eq!(row.status, Status::Failed);
    }

    #[test]
    fn a_failed_probe_fails_the_row_and_misses_the_target() {
        let g = group(vec![run(TargetKind::Realtime, 1.0, 10.0, 2)], vec![]);
        assert_eq!(g.rows[0].status, Status::Failed);
        assert_eq!(targets(&g)[1].met, Some(false));
        let mut md = String::new();
        section(&mut md, &g);
        for table in md.split("\n\n").filter(|block| block.starts_with('|')) {
            let cells: Vec<usize> = table.lines().map(|line| line.matches('|').count()).collect();
            assert!(cells.iter().all(|&c| c == cells[0]), "{table}");
        }
    }
}
