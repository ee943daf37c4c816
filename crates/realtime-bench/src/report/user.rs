//! The user-addressed messages scenario in the report: the medians of its runs, its
//! section and its target.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{Status, TargetCheck, median, thousands};
use crate::user::{Problems, UserResult};

/// Reliable messages to a connected client, a backlog redelivered on connect, and
/// commands, against one node of ours.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserGroup {
    /// Reliable messages timed per run.
    pub messages: u64,
    /// Reliable messages sent while the user is offline, per run.
    pub backlog: u64,
    /// Commands timed per run.
    pub commands: u64,
    /// Messages and commands sent first in each run, and not timed.
    pub warmup: u64,
    pub row: UserRow,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRow {
    pub label: String,
    pub status: Status,
    pub reason: Option<String>,
    pub median: Option<UserMedian>,
    pub runs: Vec<UserResult>,
}

/// The median of each figure over the runs (failures: their sum; connects: the most).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserMedian {
    pub reliable_p50_ms: f64,
    pub reliable_p99_ms: f64,
    pub reliable_max_ms: f64,
    /// Send call -> its 200 answer.
    pub reliable_answer_p50_ms: f64,
    /// Share of the timed messages that arrived before their send call answered.
    pub arrived_before_answer: f64,
    pub redelivery_ms: f64,
    pub redelivered_per_sec: f64,
    pub redelivery_connects: u64,
    /// Messages the first connect of a redelivery brought.
    pub first_connect: u64,
    pub command_p50_ms: f64,
    pub command_p99_ms: f64,
    pub command_max_ms: f64,
    /// Server CPU milliseconds per reliable message sent to the connected client (its ack
    /// included) and per command.
    pub server_cpu_ms_per_message: f64,
    pub server_cpu_ms_per_command: f64,
    pub failures: u64,
}

impl UserRow {
    pub fn skipped(label: &str, reason: String) -> UserRow {
        UserRow { label: label.to_owned(), status: Status::Skipped, reason: Some(reason), median: None, runs: vec![] }
    }

    /// A row from its runs and the errors of the runs that could not produce figures.
    pub fn from_runs(label: &str, runs: Vec<UserResult>, mut errors: Vec<String>) -> UserRow {
        for run in &runs {
            if run.failures > 0 {
                let parts = [
                    ("reliable", &run.reliable.problems),
                    ("redelivery", &run.redelivery.problems),
                    ("commands", &run.commands.problems),
                ];
                let counts: Vec<String> = parts
                    .iter()
                    .filter(|(_, problems)| problems.total() > 0)
                    .map(|(name, problems)| format!("{name}: {}", describe(problems)))
                    .collect();
                let mut problem = counts.join("; ");
                if !run.errors.is_empty() {
                    problem = format!("{problem} ({})", run.errors.join("; "));
                }
                errors.push(problem);
            }
        }
        // A run that timed nothing has no figures to take the median of.
        let timed: Vec<&UserResult> =
            runs.iter().filter(|r| r.reliable.latency.count > 0 && r.commands.latency.count > 0).collect();
        let median = (!timed.is_empty()).then(|| {
            let m = |f: fn(&UserResult) -> f64| median(timed.iter().map(|&r| f(r)).collect());
            UserMedian {
                reliable_p50_ms: m(|r| r.reliable.latency.p50_ms),
                reliable_p99_ms: m(|r| r.reliable.latency.p99_ms),
                reliable_max_ms: m(|r| r.reliable.latency.max_ms),
                reliable_answer_p50_ms: m(|r| r.reliable.answer.p50_ms),
                arrived_before_answer: m(|r| {
                    r.reliable.arrived_before_answer as f64 / r.reliable.latency.count.max(1) as f64
                }),
                redelivery_ms: m(|r| r.redelivery.all_arrived_ms),
                redelivered_per_sec: m(|r| r.redelivery.per_sec),
                redelivery_connects: runs.iter().map(|r| r.redelivery.connects).max().unwrap_or(0),
                first_connect: runs.iter().map(|r| r.redelivery.first_connect).min().unwrap_or(0),
                command_p50_ms: m(|r| r.commands.latency.p50_ms),
                command_p99_ms: m(|r| r.commands.latency.p99_ms),
                command_max_ms: m(|r| r.commands.latency.max_ms),
                server_cpu_ms_per_message: m(|r| per(r.reliable.server_cpu_secs, r.reliable.sent)),
                server_cpu_ms_per_command: m(|r| per(r.commands.server_cpu_secs, r.commands.answered)),
                failures: runs.iter().map(|r| r.failures).sum(),
            }
        });
        let status = if errors.is_empty() { Status::Measured } else { Status::Failed };
        let reason = (!errors.is_empty()).then(|| errors.join("; "));
        UserRow { label: label.to_owned(), status, reason, median, runs }
    }
}

/// Milliseconds of `secs` per one of `count`.
fn per(secs: f64, count: u64) -> f64 {
    if count > 0 { secs * 1000.0 / count as f64 } else { 0.0 }
}

/// `2 missing, 1 duplicated`: the counts that are not zero.
fn describe(problems: &Problems) -> String {
    let counts = [
        (problems.failed_calls, "failed calls"),
        (problems.missing, "missing"),
        (problems.duplicated, "duplicated"),
        (problems.out_of_order, "out of order"),
        (problems.bad_frames, "bad frames or connections"),
        (problems.unacked_left, "back after their ack"),
    ];
    let parts: Vec<String> = counts.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
    parts.join(", ")
}

/// The target on the command round trip (reported, never asserted).
pub(super) fn target(group: &UserGroup) -> TargetCheck {
    let target = "command round trip p99 < 20 ms on loopback with one node".to_owned();
    // The p99 of the commands that were answered says nothing of those that were not.
    match (&group.row.median, group.row.status) {
        (Some(m), Status::Measured) => {
            TargetCheck { target, measured: format!("{:.2} ms", m.command_p99_ms), met: Some(m.command_p99_ms < 20.0) }
        }
        (Some(m), Status::Failed) => TargetCheck {
            target,
            measured: format!("{:.2} ms, but the runs had {} failures", m.command_p99_ms, m.failures),
            met: None,
        },
        (None, _) | (Some(_), Status::Skipped) => {
            TargetCheck { target, measured: "not measured".to_owned(), met: None }
        }
    }
}

pub(super) fn section(md: &mut String, group: &UserGroup) {
    let row = &group.row;
    let _ = writeln!(md, "## User-addressed messages: one node, one connection per user\n");
    let _ = writeln!(
        md,
        "Three measurements per run, each with a user of its own. **Reliable**: {} reliable messages sent one \
         at a time (after {} untimed), each timed from just before `POST /v1/realtime/user/message/send` to the \
         arrival of the `user.message` with its `message_id`; the client acks each as it arrives. \
         **Redelivery**: {} reliable messages sent while the user is offline, then timed from the start of \
         the connect to the arrival of the last; the server redelivers a bounded number per connect, so the \
         client acks the last message of each connect and connects again. **Commands**: {} commands sent \
         one at a time to a client that answers each at once, timed from the call to its 200 `answered` \
         answer. Checked: every message once, in `sequence` order, with the sequence its send answered, none \
         back after its ack; every command answered with its client's response. Every call sends an \
         `Idempotency-Key`.\n",
        thousands(group.messages),
        group.warmup,
        thousands(group.backlog),
        thousands(group.commands)
    );
    let Some(m) = &row.median else {
        let _ = writeln!(md, "{}: {}\n", row.label, row.reason.as_deref().unwrap_or(""));
        return;
    };
    let flag = if row.status == Status::Failed { " (FAILED)" } else { "" };
    let _ =
        writeln!(md, "| {}{flag} | p50 ms | p99 ms | max ms | server CPU ms each |\n|---|---|---|---|---|", row.label);
    let _ = writeln!(
        md,
        "| reliable message: send -> `user.message` | {:.2} | {:.2} | {:.2} | {:.2} |",
        m.reliable_p50_ms, m.reliable_p99_ms, m.reliable_max_ms, m.server_cpu_ms_per_message
    );
    let _ = writeln!(
        md,
        "| command: call -> 200 `answered` | {:.2} | {:.2} | {:.2} | {:.2} |\n",
        m.command_p50_ms, m.command_p99_ms, m.command_max_ms, m.server_cpu_ms_per_command
    );
    let _ = writeln!(
        md,
        "{:.0}% of the reliable messages arrived before their send call answered (its answer: p50 {:.2} ms).\n",
        m.arrived_before_answer * 100.0,
        m.reliable_answer_p50_ms
    );
    let _ = writeln!(
        md,
        "| redelivery of {} | all arrived ms | msg/s | connects | first connect brought |\n|---|---|---|---|---|",
        thousands(group.backlog)
    );
    let _ = writeln!(
        md,
        "| {}{flag} | {:.2} | {:.0} | {} | {} |\n",
        row.label, m.redelivery_ms, m.redelivered_per_sec, m.redelivery_connects, m.first_connect
    );
    if row.status == Status::Failed {
        let _ = writeln!(md, "- {}, {} failures: {}\n", row.label, m.failures, row.reason.as_deref().unwrap_or(""));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Summary;

    fn run(command_p99_ms: f64, missing: u64) -> UserResult {
        let timed = |p99_ms| Summary { count: 100, p50_ms: 0.5, p99_ms, max_ms: p99_ms, ..Summary::default() };
        let mut run = UserResult::default();
        run.reliable.latency = timed(2.0);
        run.commands.latency = timed(command_p99_ms);
        run.redelivery.problems.missing = missing;
        run.failures = missing;
        run
    }

    fn group(runs: Vec<UserResult>) -> UserGroup {
        UserGroup {
            messages: 100,
            backlog: 10,
            commands: 100,
            warmup: 0,
            row: UserRow::from_runs("ours", runs, vec![]),
        }
    }

    #[test]
    fn the_target_is_judged_on_the_median_command_p99() {
        let check = target(&group(vec![run(3.0, 0), run(30.0, 0), run(5.0, 0)]));
        assert_eq!((check.measured.as_str(), check.met), ("5.00 ms", Some(true)));
        let check = target(&group(vec![run(25.0, 0)]));
        assert_eq!(check.met, Some(false));
    }

    #[test]
    fn a_run_with_a_problem_fails_the_row_and_leaves_the_target_unjudged() {
        let group = group(vec![run(3.0, 0), run(3.0, 2)]);
        assert_eq!(group.row.status, Status::Failed);
        assert_eq!(group.row.reason.as_deref(), Some("redelivery: 2 missing"));
        assert_eq!(target(&group).met, None);
    }
}
