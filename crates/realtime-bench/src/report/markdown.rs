//! `report.md` (and the files written beside it): the report's tables and targets as
//! Markdown.

use std::fmt::Write as _;
use std::path::Path;

use super::{
    FanoutGroup, FanoutRow, Known, PublishGroup, PublishRow, RecoveryGroup, Report, Status, Sweep, storm, thousands,
    user,
};
use crate::publish::PublishTarget;
use crate::target::TargetKind;

/// Writes `report.md`, `report.json`, `latency.svg` and (with a sweep) `latency-vs-load.svg`
/// into `dir`; returns the markdown.
pub fn write(report: &Report, dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir)?;
    let md = markdown(report);
    std::fs::write(dir.join("report.md"), &md)?;
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(report)?)?;
    let mut groups: Vec<&FanoutGroup> = report.fanout.iter().collect();
    groups.extend(report.multi_node.iter());
    groups.extend(report.pusher.iter());
    std::fs::write(dir.join("latency.svg"), crate::svg::latency_plot(&groups))?;
    if let Some(sweep) = &report.sweep {
        std::fs::write(dir.join(LOAD_PLOT), crate::svg::load_plot(sweep))?;
    }
    Ok(md)
}

const LOAD_PLOT: &str = "latency-vs-load.svg";

/// The report as Markdown: one section per scenario, then the targets.
pub fn markdown(report: &Report) -> String {
    let mut md = String::new();
    let mode = if report.quick { "quick (smoke run: figures are indicative)" } else { "full" };
    let _ = writeln!(md, "# realtime bench\n");
    let _ = writeln!(
        md,
        "Mode: {mode}; {} run(s) per row, median shown (lost: worst run). {}. Loopback only.\n",
        report.runs_per_row, report.pinning
    );
    if let Some(sweep) = &report.sweep {
        sweep_section(&mut md, sweep);
    }
    if !report.fanout.is_empty() {
        let _ = writeln!(md, "Percentile curves of every fan-out load: [latency.svg](latency.svg).\n");
    }
    for group in &report.fanout {
        fanout_section(&mut md, group);
    }
    if let Some(group) = &report.idle_memory {
        fanout_section(&mut md, group);
    }
    if let Some(group) = &report.multi_node {
        fanout_section(&mut md, group);
    }
    if let Some(cluster) = &report.cluster {
        crate::cluster::markdown(&mut md, cluster);
    }
    if let Some(group) = &report.publish {
        publish_section(&mut md, group);
    }
    if let Some(group) = &report.recovery {
        recovery_section(&mut md, group);
    }
    if let Some(group) = &report.user {
        user::section(&mut md, group);
    }
    if let Some(group) = &report.storm {
        storm::section(&mut md, group);
    }
    if !report.pusher.is_empty() {
        let _ = writeln!(
            md,
            "The Pusher scenario: the same fan-out over Pusher's protocol 7. Subscribers connect to \
             `/app/{{key}}?protocol=7`, wait for `pusher:connection_established`, subscribe to one public \
             channel and parse every event frame as JSON; the open-loop publisher sends signed HTTP API \
             triggers (`POST /apps/{{app_id}}/events`) whose data string carries the sequence number and \
             the scheduled time. Ours and sockudo get the same app and the same load; idle KiB/conn is the \
             server's RSS growth over the subscribed, idle connections.\n"
        );
    }
    for group in &report.pusher {
        fanout_section(&mut md, group);
    }
    if !report.targets.is_empty() {
        let _ = writeln!(md, "## Targets (reported, never asserted)\n");
        let _ = writeln!(md, "| target | measured | |\n|---|---|---|");
        for check in &report.targets {
            let verdict = match check.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "n/a",
            };
            let _ = writeln!(md, "| {} | {} | {verdict} |", check.target, check.measured);
        }
        md.push('\n');
    }
    if report.failures.is_empty() {
        let _ = writeln!(md, "Result: no errors, no lost messages.");
    } else {
        let _ = writeln!(md, "Result: FAILED");
        for failure in &report.failures {
            let _ = writeln!(md, "- {failure}");
        }
    }
    md
}

fn fanout_section(md: &mut String, group: &FanoutGroup) {
    let _ = writeln!(md, "## {}\n", group.title);
    let _ = writeln!(
        md,
        "| target | delivered msg/s | publishes/s answered | p50 ms | p99 ms | p99.9 ms | max ms | first sub p50 ms | fan-out done p99 ms | publish HTTP p50 ms | send lag p99 ms | lost | server CPU s (busy) | server CPU µs/frame | loadgen CPU s (busy) | idle KiB/conn |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &group.rows {
        match (&row.median, row.status) {
            (Some(m), status) => {
                let flag = if status == Status::Failed { " (FAILED)" } else { "" };
                let _ = writeln!(
                    md,
                    "| {}{flag} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.2} ({:.0}%) | {:.2} | {:.2} ({:.0}%) | {:.2} |",
                    row.label,
                    m.delivered_per_sec,
                    m.publish_rate,
                    m.p50_ms,
                    m.p99_ms,
                    m.p999_ms,
                    m.max_ms,
                    m.first_subscriber_p50_ms,
                    m.fanout_complete_p99_ms,
                    m.publish_http_p50_ms,
                    m.send_lag_p99_ms,
                    m.lost_worst,
                    m.server_cpu_secs,
                    m.server_busy * 100.0,
                    m.server_cpu_us_per_frame,
                    m.loadgen_cpu_secs,
                    m.loadgen_busy * 100.0,
                    m.idle_kib_per_conn,
                );
            }
            (None, _) => {
                let _ = writeln!(md, "| {} | {} |||||||||||||||", row.label, row.reason.as_deref().unwrap_or(""));
            }
        }
    }
    md.push('\n');
    for row in group.rows.iter().filter(|r| r.status == Status::Failed && r.median.is_some()) {
        let _ = writeln!(md, "- {}: {}", row.label, row.reason.as_deref().unwrap_or(""));
    }
    ratio_lines(md, group);
}

fn ratio_lines(md: &mut String, group: &FanoutGroup) {
    let Some(ours) = group.rows.iter().find(|r| r.kind.is_ours()).and_then(|r| r.median.as_ref()) else {
        return;
    };
    let others: Vec<&FanoutRow> = group.rows.iter().filter(|r| !r.kind.is_ours() && r.median.is_some()).collect();
    if others.is_empty() {
        return;
    }
    let _ = writeln!(md, "Ratios, ours / other (delivered: higher is better; the rest: lower is better):\n");
    let _ = writeln!(
        md,
        "| vs | delivered msg/s | p50 | p99 | p99.9 | server CPU | server CPU/frame | idle KiB/conn |\n|---|---|---|---|---|---|---|---|"
    );
    for other in others {
        let b = other.median.as_ref().expect("filtered on median");
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            other.label,
            ratio(ours.delivered_per_sec, b.delivered_per_sec),
            ratio(ours.p50_ms, b.p50_ms),
            ratio(ours.p99_ms, b.p99_ms),
            ratio(ours.p999_ms, b.p999_ms),
            ratio(ours.server_cpu_secs, b.server_cpu_secs),
            ratio(ours.server_cpu_us_per_frame, b.server_cpu_us_per_frame),
            ratio(ours.idle_kib_per_conn, b.idle_kib_per_conn),
        );
    }
    md.push('\n');
}

fn sweep_section(md: &mut String, sweep: &Sweep) {
    let _ = writeln!(md, "## Offered-load sweep: {} subscribers\n", thousands(sweep.subscribers as u64));
    let _ = writeln!(
        md,
        "An open-loop publisher: publish n is scheduled n/rate s after the first and sent from a task of its own, \
         never waiting on an earlier answer, so every target is offered the same load however slowly it answers. \
         Latency runs from the *scheduled* time to the receipt, so a publish sent late counts its lateness \
         (coordinated omission, as wrk2 counts it). Server CPU per frame: the server's CPU time during publishing \
         and draining over the messages delivered. A target keeps up with a load when nothing is lost, nothing \
         failed and p99 < {} ms; its saturation point is the highest load it kept up with (a lower load it \
         missed is named beside it).\n",
        sweep.p99_limit_ms
    );
    let _ = writeln!(md, "![p99 against offered load]({LOAD_PLOT})\n");
    let _ = writeln!(
        md,
        "| target | offered/s | delivered msg/s | publishes/s answered | p50 ms | p99 ms | p99.9 ms | lost | server CPU µs/frame | kept up |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for target in &sweep.targets {
        if let Some(reason) = &target.skipped
            && target.points.is_empty()
        {
            let _ = writeln!(md, "| {} | {reason} |||||||||", target.label);
            continue;
        }
        for p in &target.points {
            let flag = if p.status == Status::Failed { " (FAILED)" } else { "" };
            let _ = writeln!(
                md,
                "| {}{flag} | {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {} |",
                target.label,
                p.rate,
                p.delivered_per_sec,
                p.publish_rate,
                p.p50_ms,
                p.p99_ms,
                p.p999_ms,
                p.lost_worst,
                p.server_cpu_us_per_frame,
                match (p.kept_up, p.publish_failures_worst) {
                    (true, _) => "yes".to_owned(),
                    (false, 0) => "no".to_owned(),
                    (false, n) => format!("no ({n} publishes failed)"),
                }
            );
        }
    }
    md.push('\n');
    let _ = writeln!(
        md,
        "| target | saturation point | delivered msg/s there | server CPU µs/frame there | peak delivered msg/s |\n|---|---|---|---|---|"
    );
    for target in sweep.targets.iter().filter(|t| !t.points.is_empty()) {
        let at = target.saturation_rate.and_then(|r| target.points.iter().find(|p| p.rate == r));
        match at {
            Some(p) => {
                let mut above = String::new();
                if target.saturates_above_sweep {
                    above.push_str(" or more (kept up with the highest load offered)");
                }
                let missed = target.missed_below_saturation();
                if !missed.is_empty() {
                    let missed: Vec<String> = missed.iter().map(|r| format!("{r}/s")).collect();
                    above.push_str(&format!(" (missed {} below it)", missed.join(", ")));
                }
                let _ = writeln!(
                    md,
                    "| {} | {}/s{above} | {:.0} | {:.2} | {:.0} |",
                    target.label, p.rate, p.delivered_per_sec, p.server_cpu_us_per_frame, target.peak_delivered_per_sec
                );
            }
            None => {
                let _ = writeln!(
                    md,
                    "| {} | below the lowest load offered | | | {:.0} |",
                    target.label, target.peak_delivered_per_sec
                );
            }
        }
    }
    md.push('\n');
    let Some(ours) = sweep.target(TargetKind::Realtime) else { return };
    for other in sweep.targets.iter().filter(|t| t.kind != TargetKind::Realtime && !t.points.is_empty()) {
        if let Some((ratio, known)) = ours.saturation_ratio(other) {
            let bound = match known {
                Known::Exactly => "",
                Known::AtLeast => " or more",
                Known::AtMost => " or less",
                Known::Neither => " (both kept up with the highest load: not a measure of capacity)",
            };
            let _ = writeln!(md, "- Saturation point, ours / {}: {ratio:.2}x{bound}", other.label);
        }
        let _ = writeln!(
            md,
            "- Peak delivered msg/s, ours / {}: {}",
            other.label,
            ratio(ours.peak_delivered_per_sec, other.peak_delivered_per_sec)
        );
    }
    md.push('\n');
}

fn ratio(ours: f64, other: f64) -> String {
    if other > 0.0 { format!("{:.2}x", ours / other) } else { "-".to_owned() }
}

fn publish_section(md: &mut String, group: &PublishGroup) {
    let _ = writeln!(
        md,
        "## REST publish: {} requests at concurrency {}\n\n| handler | req/s | p50 ms | p99 ms | server CPU s | loadgen CPU s |\n|---|---|---|---|---|---|",
        group.requests, group.concurrency
    );
    publish_rows(md, &group.rows.iter().collect::<Vec<_>>());
    let rps = |kind| group.rows.iter().find(|r| r.kind == kind)?.median.as_ref().map(|m| m.requests_per_sec);
    for (ours, store) in [(PublishTarget::Realtime, "SQLite"), (PublishTarget::RealtimePostgres, "PostgreSQL")] {
        if let (Some(ours), Some(noop)) = (rps(ours), rps(PublishTarget::Noop)) {
            let _ = writeln!(md, "Ours on {store} / bare handler: {} of the requests per second.\n", ratio(ours, noop));
        }
    }
}

/// The rows of a publish table, then what went wrong in the failed ones.
fn publish_rows(md: &mut String, rows: &[&PublishRow]) {
    for row in rows {
        match &row.median {
            Some(m) => {
                let flag = if row.status == Status::Failed { " (FAILED)" } else { "" };
                let _ = writeln!(
                    md,
                    "| {}{flag} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
                    row.label, m.requests_per_sec, m.p50_ms, m.p99_ms, m.server_cpu_secs, m.loadgen_cpu_secs
                );
            }
            None => {
                let _ = writeln!(md, "| {} | {} ||||", row.label, row.reason.as_deref().unwrap_or(""));
            }
        }
    }
    md.push('\n');
    for row in rows.iter().filter(|r| r.status == Status::Failed && r.median.is_some()) {
        let _ = writeln!(md, "- {}: {}", row.label, row.reason.as_deref().unwrap_or(""));
    }
}

fn recovery_section(md: &mut String, group: &RecoveryGroup) {
    let row = &group.recovery;
    let _ = writeln!(
        md,
        "## Recovery: {} missed messages, {} recoveries per run, one at a time\n",
        thousands(group.messages),
        group.repetitions
    );
    let _ = writeln!(
        md,
        "Each recovery is a fresh connection subscribing with `since` the position just before the {} messages \
         (published in batches of 100; the server keeps `history_per_channel` = {}). Timed from sending \
         `subscribe` to receiving the message with the last offset; checked: `recovered: true`, every offset \
         once and in order, nothing after the last. With {} recoveries per run, p99 is close to the maximum. \
         Longest pause: a recovery's longest wait between two of its frames (one long pause is a stall, a \
         busy CPU makes many short ones).\n",
        thousands(group.messages),
        group.history_per_channel,
        group.repetitions
    );
    let _ = writeln!(
        md,
        "| server | p50 ms | p99 ms | max ms | replayed msg/s (at p50) | subscribed p50 ms | longest pause p99 ms | recoveries | failed | server CPU s |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    match &row.median {
        Some(m) => {
            let flag = if row.status == Status::Failed { " (FAILED)" } else { "" };
            let _ = writeln!(
                md,
                "| {}{flag} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {} | {} | {:.2} |\n",
                row.label,
                m.p50_ms,
                m.p99_ms,
                m.max_ms,
                m.replayed_per_sec,
                m.subscribed_p50_ms,
                m.longest_pause_p99_ms,
                m.recoveries,
                m.failures,
                m.server_cpu_secs
            );
        }
        None => {
            let _ = writeln!(md, "| {} | {} |||||||||\n", row.label, row.reason.as_deref().unwrap_or(""));
        }
    }
    if row.status == Status::Failed && row.median.is_some() {
        let _ = writeln!(md, "- {}: {}\n", row.label, row.reason.as_deref().unwrap_or(""));
    }

    let cost = &group.history_cost;
    let _ = writeln!(
        md,
        "### Publish cost of history: {} REST publishes at concurrency {}\n\n| server | req/s | p50 ms | p99 ms | server CPU s | loadgen CPU s |\n|---|---|---|---|---|---|",
        cost.requests, cost.concurrency
    );
    publish_rows(md, &[&cost.default_history, &cost.minimal_history]);
    if let Some(ratio) = cost.ratio {
        let _ = writeln!(
            md,
            "Default history / one message per channel: {ratio:.2}x of the requests per second (history cannot be switched off).\n"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{SweepPoint, SweepTarget};

    #[test]
    fn sweep_table_rows_have_as_many_cells_as_their_header() {
        let point = SweepPoint {
            rate: 2.0,
            status: Status::Measured,
            delivered_per_sec: 20.0,
            publish_rate: 2.0,
            p50_ms: 1.0,
            p99_ms: 2.0,
            p999_ms: 3.0,
            lost_worst: 0,
            publish_failures_worst: 0,
            server_cpu_us_per_frame: 5.0,
            kept_up: true,
        };
        let target = |kind, label: &str, points: Vec<SweepPoint>, skipped: Option<String>| SweepTarget {
            kind,
            label: label.to_owned(),
            skipped,
            saturation_rate: points.first().map(|p| p.rate),
            saturates_above_sweep: !points.is_empty(),
            peak_delivered_per_sec: 20.0,
            points,
        };
        let sweep = Sweep {
            subscribers: 10,
            rates: vec![2.0],
            p99_limit_ms: 250.0,
            targets: vec![
                target(TargetKind::Realtime, "realtime", vec![point.clone()], None),
                target(TargetKind::Baseline, "bare", vec![SweepPoint { kept_up: false, ..point }], None),
                target(TargetKind::Nchan, "nchan", vec![], Some("not installed".to_owned())),
            ],
        };
        let mut md = String::new();
        sweep_section(&mut md, &sweep);
        for table in md.split("\n\n").filter(|block| block.starts_with('|')) {
            let cells: Vec<usize> = table.lines().map(|line| line.matches('|').count()).collect();
            assert!(cells.iter().all(|&c| c == cells[0]), "{table}");
        }
        assert!(md.contains("| realtime | 2/s or more (kept up with the highest load offered) |"), "{md}");
    }
}
