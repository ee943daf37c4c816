//! The connection storm scenario: the `storm` load generator against a fresh server of
//! each target per run, the targets interleaved in each run.

use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;

use super::{FANOUT_KINDS, Suite, run_json};
use crate::report::{Lost, StormGroup, StormRow};
use crate::servers::{self, CLIENT_CPU};
use crate::storm::StormResult;

/// The size of one run of the load generator.
struct Plan {
    subscribers: usize,
    probe_every_ms: u64,
    probe_secs: f64,
    drain_secs: u64,
    /// The load generator's own limit; the suite kills it a little later.
    deadline_secs: u64,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan { subscribers: 500, probe_every_ms: 20, probe_secs: 1.0, drain_secs: 10, deadline_secs: 60 }
        } else {
            Plan { subscribers: 10_000, probe_every_ms: 20, probe_secs: 3.0, drain_secs: 30, deadline_secs: 180 }
        }
    }
}

impl Suite {
    /// The storm and the mass disconnects against ours, the bare baseline and nchan.
    pub(super) fn storm_group(&mut self) -> StormGroup {
        let plan = Plan::new(self.quick);
        let mut runs: Vec<(Vec<StormResult>, Vec<String>)> = FANOUT_KINDS.iter().map(|_| (vec![], vec![])).collect();
        for run in 0..self.runs {
            for (k, &kind) in FANOUT_KINDS.iter().enumerate() {
                if self.unavailable(kind).is_some() {
                    continue;
                }
                eprintln!(
                    "bench: storm of {} subscribers: {} run {}/{}",
                    plan.subscribers,
                    kind.label(),
                    run + 1,
                    self.runs
                );
                match self.storm_once(kind, &plan, run) {
                    Ok(result) => runs[k].0.push(result),
                    Err(e) => runs[k].1.push(format!("{e:#}")),
                }
            }
        }
        // Past what a target absorbs, a full storm's connects time out: its figures then; a
        // quick storm is far below that, so there a timeout is an error.
        let timeouts = if self.quick { Lost::Error } else { Lost::Figure };
        let rows = FANOUT_KINDS
            .iter()
            .zip(runs)
            .map(|(&kind, (results, errors))| match self.unavailable(kind) {
                Some(reason) => StormRow::skipped(kind, kind.label(), reason),
                None => StormRow::from_runs(kind, kind.label(), results, errors, timeouts),
            })
            .collect();
        StormGroup {
            subscribers: plan.subscribers,
            probe_every_ms: plan.probe_every_ms,
            probe_secs: plan.probe_secs,
            drain_secs: plan.drain_secs,
            rows,
        }
    }

    fn storm_once(&mut self, kind: crate::target::TargetKind, plan: &Plan, run: usize) -> anyhow::Result<StormResult> {
        let server = self.start(kind, &format!("storm-{kind:?}-{run}").to_lowercase())?;
        let mut command = servers::pinned(CLIENT_CPU, &self.bench_bin);
        command
            .arg("storm")
            .arg("--kind")
            .arg(kind.to_possible_value().expect("every kind is a value").get_name())
            .arg("--base-url")
            .arg(&server.base_url)
            .arg("--subscribers")
            .arg(plan.subscribers.to_string())
            .arg("--probe-every-ms")
            .arg(plan.probe_every_ms.to_string())
            .arg("--probe-secs")
            .arg(plan.probe_secs.to_string())
            .arg("--drain-secs")
            .arg(plan.drain_secs.to_string())
            .arg("--deadline-secs")
            .arg(plan.deadline_secs.to_string())
            .arg("--source-ip")
            .arg(self.source_ip());
        if let Some(secret) = &server.admin_secret {
            command.env("REALTIME_BENCH_ADMIN_SECRET", secret);
        }
        run_json(command, Duration::from_secs(plan.deadline_secs + 30))
            .with_context(|| format!("server log: {}", server.log_tail()))
    }
}
