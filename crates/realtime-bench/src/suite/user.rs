//! The user-addressed messages scenario: the `user` load generator against a fresh node
//! of ours per run.

use std::time::Duration;

use anyhow::Context;

use super::{Suite, run_json};
use crate::report::{UserGroup, UserRow};
use crate::servers::{self, CLIENT_CPU};
use crate::target::TargetKind;
use crate::user::UserResult;

/// The counts of one run of the load generator.
struct Counts {
    messages: u64,
    backlog: u64,
    commands: u64,
    warmup: u64,
}

impl Counts {
    fn new(quick: bool) -> Counts {
        if quick {
            // The backlog still passes the 500 messages a connect brings, so the quick
            // run reconnects too.
            Counts { messages: 100, backlog: 600, commands: 50, warmup: 10 }
        } else {
            // The backlog is the most unacknowledged messages the server keeps for a user.
            Counts { messages: 500, backlog: 1000, commands: 200, warmup: 20 }
        }
    }
}

impl Suite {
    /// Reliable message latency, redelivery on connect and command round trips.
    pub(super) fn user_group(&mut self) -> UserGroup {
        let counts = Counts::new(self.quick);
        let label = "realtime, one node";
        let row = match self.unavailable(TargetKind::Realtime) {
            Some(reason) => UserRow::skipped(label, reason),
            None => {
                let (mut results, mut errors) = (Vec::new(), Vec::new());
                for run in 0..self.runs {
                    eprintln!("bench: user-addressed messages: {label} run {}/{}", run + 1, self.runs);
                    match self.user_once(&counts, run) {
                        Ok(result) => results.push(result),
                        Err(e) => errors.push(format!("{e:#}")),
                    }
                }
                UserRow::from_runs(label, results, errors)
            }
        };
        UserGroup {
            messages: counts.messages,
            backlog: counts.backlog,
            commands: counts.commands,
            warmup: counts.warmup,
            row,
        }
    }

    fn user_once(&mut self, counts: &Counts, run: usize) -> anyhow::Result<UserResult> {
        let server = self.start_ours(&format!("user-{run}"), &[])?;
        let mut command = servers::pinned(CLIENT_CPU, &self.bench_bin);
        command
            .arg("user")
            .arg("--base-url")
            .arg(&server.base_url)
            .arg("--messages")
            .arg(counts.messages.to_string())
            .arg("--backlog")
            .arg(counts.backlog.to_string())
            .arg("--commands")
            .arg(counts.commands.to_string())
            .arg("--warmup")
            .arg(counts.warmup.to_string())
            .arg("--max-secs")
            .arg("30")
            .arg("--source-ip")
            .arg(self.source_ip());
        for pid in server.pids() {
            command.arg("--server-pid").arg(pid.to_string());
        }
        if let Some(secret) = &server.admin_secret {
            command.env("REALTIME_BENCH_ADMIN_SECRET", secret);
        }
        run_json(command, Duration::from_secs(150)).with_context(|| format!("server log: {}", server.log_tail()))
    }
}
