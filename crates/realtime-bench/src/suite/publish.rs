//! The REST publish scenario: ours on SQLite and on PostgreSQL against the bare axum
//! handler, a fresh server (and database) per run.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;

use super::{PUBLISH_CONCURRENCY, Suite, run_json};
use crate::publish::{PublishResult, PublishTarget};
use crate::report::{PublishGroup, PublishRow};
use crate::servers::{self, CLIENT_CPU, Server};
use crate::target::TargetKind;

impl Suite {
    pub(super) fn publish_group(&mut self) -> PublishGroup {
        let requests = if self.quick { 2000 } else { 20_000 };
        let kinds = [PublishTarget::Realtime, PublishTarget::RealtimePostgres, PublishTarget::Noop];
        let label = |kind| match kind {
            PublishTarget::Realtime => "realtime POST /v1/realtime/publish (SQLite)",
            PublishTarget::RealtimePostgres => "realtime POST /v1/realtime/publish (PostgreSQL)",
            PublishTarget::Noop => "bare axum handler (does nothing)",
        };
        let missing = |kind| match kind {
            PublishTarget::Realtime => self.unavailable(TargetKind::Realtime),
            PublishTarget::RealtimePostgres => self.unavailable(TargetKind::Realtime).or_else(postgres_unavailable),
            PublishTarget::Noop => None,
        };
        let missing: Vec<Option<String>> = kinds.iter().map(|&kind| missing(kind)).collect();
        let mut runs: Vec<(Vec<PublishResult>, Vec<String>)> = kinds.iter().map(|_| (vec![], vec![])).collect();
        for run in 0..self.runs {
            for (k, &kind) in kinds.iter().enumerate() {
                if missing[k].is_some() {
                    continue;
                }
                eprintln!("bench: publish: {} run {}/{}", label(kind), run + 1, self.runs);
                match self.publish_once(kind, requests, run) {
                    Ok(result) => runs[k].0.push(result),
                    Err(e) => runs[k].1.push(format!("{e:#}")),
                }
            }
        }
        let rows = kinds
            .iter()
            .zip(runs)
            .zip(missing)
            .map(|((&kind, (results, errors)), missing)| match missing {
                Some(reason) => PublishRow::skipped(kind, label(kind), reason),
                None => PublishRow::from_runs(kind, label(kind), results, errors),
            })
            .collect();
        PublishGroup { concurrency: PUBLISH_CONCURRENCY, requests, rows }
    }

    fn publish_once(&mut self, kind: PublishTarget, requests: u64, run: usize) -> anyhow::Result<PublishResult> {
        let server = match kind {
            PublishTarget::Realtime => self.start(TargetKind::Realtime, &format!("publish-realtime-{run}"))?,
            PublishTarget::RealtimePostgres => {
                let url = fresh_postgres_database(&format!("realtime_bench_publish_{run}"))?;
                self.start_ours(&format!("publish-postgres-{run}"), &[("REALTIME_STORE", url)])?
            }
            PublishTarget::Noop => self.start(TargetKind::Baseline, &format!("publish-noop-{run}"))?,
        };
        self.run_publish_loadgen(&server, kind, requests)
    }

    pub(super) fn run_publish_loadgen(
        &self,
        server: &Server,
        kind: PublishTarget,
        requests: u64,
    ) -> anyhow::Result<PublishResult> {
        let mut command = servers::pinned(CLIENT_CPU, &self.bench_bin);
        command
            .arg("publish")
            .arg("--kind")
            .arg(kind.to_possible_value().expect("every kind is a value").get_name())
            .arg("--base-url")
            .arg(&server.base_url)
            .arg("--concurrency")
            .arg(PUBLISH_CONCURRENCY.to_string())
            .arg("--requests")
            .arg(requests.to_string());
        for pid in server.pids() {
            command.arg("--server-pid").arg(pid.to_string());
        }
        if let Some(secret) = &server.admin_secret {
            command.env("REALTIME_BENCH_ADMIN_SECRET", secret);
        }
        run_json(command, Duration::from_secs(60)).with_context(|| format!("server log: {}", server.log_tail()))
    }
}

/// The PostgreSQL of this machine (127.0.0.1:5432, user postgres), as the tests use it.
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

/// Why the PostgreSQL rows cannot run here, if they cannot.
fn postgres_unavailable() -> Option<String> {
    let answered = Command::new("psql")
        .args([POSTGRES, "-qAtc", "SELECT 1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    (!answered).then(|| format!("skipped: no PostgreSQL answers psql at {POSTGRES}"))
}

/// Drops and creates database `name`; returns its URL.
fn fresh_postgres_database(name: &str) -> anyhow::Result<String> {
    for statement in [format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), format!("CREATE DATABASE {name}")] {
        let status = Command::new("psql")
            .args([POSTGRES, "-qc", &statement])
            .status()
            .with_context(|| format!("running psql for {statement:?}"))?;
        anyhow::ensure!(status.success(), "psql failed on {statement:?}");
    }
    Ok(format!("{POSTGRES}/{name}"))
}
