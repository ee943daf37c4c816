//! The bench scenarios: which servers run under which load, how often, and in what
//! order. Every server is fresh for every run, pinned to CPU 0; every load generator is
//! a separate process pinned to CPU 1; the runs of the targets are interleaved, so that
//! the drift of a shared machine hits them alike.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::ValueEnum;
use serde::de::DeserializeOwned;

use crate::fanout::FanoutResult;
use crate::publish::{PublishResult, PublishTarget};
use crate::recovery::RecoveryResult;
use crate::report::{
    self, FanoutGroup, FanoutRow, HistoryCost, Lost, PublishRow, RecoveryGroup, RecoveryRow, Report, Status,
    StormGroup, Sweep,
};
use crate::servers::{self, CLIENT_CPU, OursConfig, Server};
use crate::target::TargetKind;

mod publish;
mod pusher;
mod storm;
mod user;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Every scenario below.
    All,
    /// N subscribers on one channel, open-loop publishes at a sweep of offered rates,
    /// against ours and the baselines.
    Fanout,
    /// REST publish throughput against a bare axum handler.
    Publish,
    /// Server RSS growth per idle subscribed connection.
    IdleMemory,
    /// Subscribers on node B, publishes to node A, through Redis.
    MultiNode,
    /// Three nodes, each with subscribers of its own channels: a node's CPU as the others'
    /// traffic grows, and the cluster against one node (not with --quick).
    Cluster,
    /// Subscribers recovering 1,000 missed messages, and the REST publish with the default
    /// history against one message per channel.
    Recovery,
    /// User-addressed messages: reliable message latency, redelivery of a backlog on
    /// connect, command round trips.
    User,
    /// N subscribers connecting at once, then dropped at once while probes connect,
    /// against ours and the baselines.
    Storm,
    /// The fan-out over the Pusher protocol (protocol-7 subscribers, signed HTTP API
    /// triggers), ours against sockudo. Only when asked: not part of `all`.
    Pusher,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SuiteArgs {
    /// The scenario to run.
    #[arg(value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// A smoke run: 1,000 subscribers, fewer publishes, one run per row.
    #[arg(long)]
    pub quick: bool,
    /// Runs per row (default 3, or 1 with --quick); the report shows the median.
    #[arg(long)]
    pub runs: Option<usize>,
    /// Where `realtime-server` is (default: beside this binary).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Where the report goes.
    #[arg(long, default_value = "target/bench")]
    pub out_dir: PathBuf,
    /// Offered publish rates of the fan-out sweep, comma-separated (default
    /// 2,5,10,15,20,30, or 5,20 with --quick).
    #[arg(long, value_delimiter = ',')]
    pub rates: Option<Vec<f64>>,
    /// Subscribers of the fan-out sweep (default 10,000, or 1,000 with --quick).
    #[arg(long)]
    pub sweep_subscribers: Option<usize>,
    /// Seconds of publishing at each offered rate of the sweep (default 10, or 5 with --quick).
    #[arg(long)]
    pub sweep_secs: Option<f64>,
}

/// One fan-out load.
#[derive(Debug, Clone, Copy)]
struct Load {
    subscribers: usize,
    publishes: u64,
    rate: f64,
}

/// The fan-out loads besides the sweep. 100/s at 1,000 subscribers offers more than
/// nchan's measured ceiling (about 100k delivered msg/s with one worker here), so that
/// delivered msg/s compares capacity and not only the offered load.
fn fanout_loads(quick: bool) -> Vec<Load> {
    if quick { vec![] } else { vec![Load { subscribers: 1000, publishes: 400, rate: 100.0 }] }
}

/// The offered-load sweep: every target at every rate, at one subscriber count.
#[derive(Debug, Clone)]
struct SweepPlan {
    subscribers: usize,
    rates: Vec<f64>,
    secs: f64,
}

impl SweepPlan {
    fn new(args: &SuiteArgs) -> SweepPlan {
        let (subscribers, rates, secs) = if args.quick {
            (1000, vec![5.0, 20.0], 5.0)
        } else {
            (10_000, vec![2.0, 5.0, 10.0, 15.0, 20.0, 30.0], 10.0)
        };
        let mut rates = args.rates.clone().unwrap_or(rates);
        rates.retain(|r| r.is_finite() && *r > 0.0);
        rates.sort_by(f64::total_cmp);
        rates.dedup();
        SweepPlan {
            subscribers: args.sweep_subscribers.unwrap_or(subscribers),
            rates,
            secs: args.sweep_secs.unwrap_or(secs).clamp(1.0, 120.0),
        }
    }

    /// One load per rate, each publishing for `secs` (at least 10 publishes).
    fn loads(&self) -> Vec<Load> {
        let publishes = |rate: f64| ((rate * self.secs).ceil() as u64).max(10);
        self.rates
            .iter()
            .map(|&rate| Load { subscribers: self.subscribers, publishes: publishes(rate), rate })
            .collect()
    }
}

/// The targets of the fan-out, sweep and idle-memory scenarios.
const FANOUT_KINDS: [TargetKind; 3] = [TargetKind::Realtime, TargetKind::Baseline, TargetKind::Nchan];

const PUBLISH_CONCURRENCY: usize = 16;

/// Messages each recovery replays: the figure, and the most the server replays.
const RECOVERY_MESSAGES: u64 = 1000;

struct Suite {
    bench_bin: PathBuf,
    ours_bin: PathBuf,
    /// sockudo, when it is installed.
    sockudo_bin: Option<PathBuf>,
    work: PathBuf,
    runs: usize,
    quick: bool,
    next_source: u32,
}

pub fn run(args: &SuiteArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // The servers started from here inherit the raised limit.
    let sweep_plan = SweepPlan::new(args);
    let most_subscribers =
        fanout_loads(args.quick).iter().map(|l| l.subscribers).max().unwrap_or(0).max(sweep_plan.subscribers);
    crate::raise_nofile_limit(most_subscribers.max(10_000) as u64 + 100)?;
    let bench_bin = std::env::current_exe()?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => bench_bin.parent().context("the bench binary has no directory")?.to_path_buf(),
    };
    let work = args.out_dir.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut suite = Suite {
        bench_bin,
        ours_bin: bin_dir.join("realtime-server"),
        sockudo_bin: servers::sockudo_binary(bin_dir.parent()),
        work,
        runs: args.runs.unwrap_or(if args.quick { 1 } else { 3 }).max(1),
        quick: args.quick,
        // Each load generator connects from its own 127.0.0.x; starting at a varying x
        // keeps a previous invocation's TIME_WAIT sockets out of the way too.
        next_source: (seconds % 200) as u32,
    };
    let pinning = if servers::has_taskset() {
        "Servers pinned to CPU 0, load generators to CPU 1 (taskset)"
    } else {
        "No taskset: processes not pinned"
    };
    let mut report = Report {
        generated_unix_secs: seconds,
        quick: args.quick,
        runs_per_row: suite.runs,
        pinning: pinning.to_owned(),
        fanout: Vec::new(),
        sweep: None,
        publish: None,
        idle_memory: None,
        multi_node: None,
        cluster: None,
        recovery: None,
        user: None,
        storm: None,
        pusher: Vec::new(),
        targets: Vec::new(),
        failures: Vec::new(),
    };
    let wants = |s: Scenario| args.scenario == Scenario::All || args.scenario == s;
    if wants(Scenario::Fanout) {
        let fixed: Vec<(String, Load)> = fanout_loads(args.quick)
            .into_iter()
            .map(|load| {
                let title = format!(
                    "Fan-out: {} subscribers, {} publishes at {}/s offered ({} msgs)",
                    load.subscribers,
                    load.publishes,
                    load.rate,
                    load.subscribers as u64 * load.publishes
                );
                (title, load)
            })
            .collect();
        report.fanout.extend(suite.fanout_groups(&fixed, &FANOUT_KINDS, Lost::Error));
        let sweep: Vec<(String, Load)> = sweep_plan
            .loads()
            .into_iter()
            .map(|load| {
                let title = format!(
                    "Sweep: {} subscribers, {}/s offered ({} publishes, {} msgs)",
                    report::thousands(load.subscribers as u64),
                    load.rate,
                    load.publishes,
                    report::thousands(load.subscribers as u64 * load.publishes)
                );
                (title, load)
            })
            .collect();
        // Past a target's saturation point, lost messages are what the sweep measures; a
        // quick run offers loads far below it, so there they are an error.
        let lost = if args.quick { Lost::Error } else { Lost::Figure };
        let groups = suite.fanout_groups(&sweep, &FANOUT_KINDS, lost);
        report.sweep = Some(Sweep::from_groups(sweep_plan.subscribers, &groups.iter().collect::<Vec<_>>()));
        report.fanout.extend(groups);
    }
    if args.scenario == Scenario::IdleMemory {
        let subscribers = if args.quick { 1000 } else { 10_000 };
        let load = Load { subscribers, publishes: 0, rate: 1.0 };
        let title = format!("Idle memory: {subscribers} subscribed connections");
        report.idle_memory = suite.fanout_groups(&[(title, load)], &FANOUT_KINDS, Lost::Error).pop();
    }
    if args.scenario == Scenario::Pusher {
        report.pusher = suite.pusher_groups();
    }
    if wants(Scenario::Publish) {
        report.publish = Some(suite.publish_group());
    }
    if wants(Scenario::MultiNode) {
        report.multi_node = Some(suite.multi_node());
    }
    if wants(Scenario::Cluster) && !args.quick {
        report.cluster = Some(suite.cluster());
    }
    if wants(Scenario::Recovery) {
        report.recovery = Some(suite.recovery_group());
    }
    if wants(Scenario::User) {
        report.user = Some(suite.user_group());
    }
    // The storm is in the full run and on its own (`storm --quick`); the quick run of all
    // scenarios, CI's smoke test, leaves it out for time.
    if args.scenario == Scenario::Storm || (args.scenario == Scenario::All && !args.quick) {
        report.storm = Some(suite.storm_group());
    }

    report.targets = report::targets(&report);
    report.failures = failures(&report);
    let md = report::write(&report, &args.out_dir)?;
    println!("{md}");
    println!(
        "bench: wrote {0}/report.md, {0}/report.json, {0}/latency.svg, {0}/latency-vs-load.svg in {1:.0} s",
        args.out_dir.display(),
        started.elapsed().as_secs_f64()
    );
    if !report.failures.is_empty() {
        anyhow::bail!("bench: {} row(s) had errors or lost messages", report.failures.len());
    }
    Ok(())
}

fn failures(report: &Report) -> Vec<String> {
    let fanout_groups = report.fanout.iter().chain(&report.idle_memory).chain(&report.multi_node).chain(&report.pusher);
    let fanout_rows = fanout_groups.flat_map(|g| {
        g.rows
            .iter()
            .filter(|r| r.status == Status::Failed)
            .map(move |r| format!("{} / {}: {}", g.title, r.label, r.reason.as_deref().unwrap_or("failed")))
    });
    let publish_rows = report.publish.iter().flat_map(|g| {
        g.rows
            .iter()
            .filter(|r| r.status == Status::Failed)
            .map(|r| format!("publish / {}: {}", r.label, r.reason.as_deref().unwrap_or("failed")))
    });
    let recovery_rows = report.recovery.iter().flat_map(|g| {
        let cost = [&g.history_cost.default_history, &g.history_cost.minimal_history];
        std::iter::once((g.recovery.status, &g.recovery.label, &g.recovery.reason))
            .chain(cost.into_iter().map(|r| (r.status, &r.label, &r.reason)))
            .filter(|(status, ..)| *status == Status::Failed)
            .map(|(_, label, reason)| format!("recovery / {label}: {}", reason.as_deref().unwrap_or("failed")))
    });
    let user_rows = report
        .user
        .iter()
        .map(|g| &g.row)
        .filter(|r| r.status == Status::Failed)
        .map(|r| format!("user-addressed messages / {}: {}", r.label, r.reason.as_deref().unwrap_or("failed")));
    let cluster_rows = report.cluster.iter().flat_map(|c| c.failures.clone());
    let storm_rows = report.storm.iter().flat_map(StormGroup::failures);
    fanout_rows
        .chain(publish_rows)
        .chain(recovery_rows)
        .chain(user_rows)
        .chain(cluster_rows)
        .chain(storm_rows)
        .collect()
}

impl Suite {
    fn source_ip(&mut self) -> String {
        self.next_source += 1;
        format!("127.0.0.{}", 2 + self.next_source % 250)
    }

    fn scratch(&self, name: &str) -> PathBuf {
        let dir = self.work.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Why a target cannot be run here, if it cannot.
    fn unavailable(&self, kind: TargetKind) -> Option<String> {
        match kind {
            TargetKind::Realtime if !self.ours_bin.is_file() => Some(format!(
                "skipped: no realtime-server binary at {} (the reference server is not built)",
                self.ours_bin.display()
            )),
            TargetKind::Nchan if !servers::nchan_installed() => Some(servers::NCHAN_MISSING.to_owned()),
            TargetKind::Pusher => self.unavailable(TargetKind::Realtime),
            TargetKind::Sockudo if self.sockudo_bin.is_none() => Some(servers::SOCKUDO_MISSING.to_owned()),
            TargetKind::Realtime | TargetKind::Baseline | TargetKind::Nchan | TargetKind::Sockudo => None,
        }
    }

    fn start(&self, kind: TargetKind, name: &str) -> anyhow::Result<Server> {
        match kind {
            TargetKind::Realtime => self.start_ours(name, &[]),
            TargetKind::Baseline => servers::start_baseline(&self.bench_bin, &self.scratch(name)),
            TargetKind::Nchan => servers::start_nchan(&self.scratch(name)),
            TargetKind::Pusher => self.start_ours(name, &pusher::ours_env()),
            TargetKind::Sockudo => {
                let binary = self.sockudo_bin.as_deref().context(servers::SOCKUDO_MISSING)?;
                servers::start_sockudo(binary, &self.scratch(name), &crate::pusher::PusherApp::default())
            }
        }
    }

    /// Our server with extra environment (its configuration).
    fn start_ours(&self, name: &str, env: &[(&str, String)]) -> anyhow::Result<Server> {
        let dir = self.scratch(name);
        servers::start_ours(&OursConfig {
            binary: &self.ours_bin,
            dir: &dir,
            name: "realtime-server",
            admin_secret: &admin_secret(),
            env,
        })
    }

    /// One group per load; each run goes over every load and, at each, every target, so
    /// that the drift of a shared machine hits the targets alike.
    fn fanout_groups(&mut self, loads: &[(String, Load)], kinds: &[TargetKind], lost: Lost) -> Vec<FanoutGroup> {
        type Runs = (Vec<FanoutResult>, Vec<String>);
        let mut runs: Vec<Vec<Runs>> = loads.iter().map(|_| kinds.iter().map(|_| (vec![], vec![])).collect()).collect();
        for run in 0..self.runs {
            for ((title, load), load_runs) in loads.iter().zip(&mut runs) {
                for (k, &kind) in kinds.iter().enumerate() {
                    if self.unavailable(kind).is_some() {
                        continue;
                    }
                    eprintln!("bench: {title}: {} run {}/{}", kind.label(), run + 1, self.runs);
                    match self.fanout_once(kind, *load, run) {
                        Ok(result) => load_runs[k].0.push(result),
                        Err(e) => load_runs[k].1.push(format!("{e:#}")),
                    }
                }
            }
        }
        loads
            .iter()
            .zip(runs)
            .map(|((title, load), load_runs)| {
                let rows = kinds
                    .iter()
                    .zip(load_runs)
                    .map(|(&kind, (results, errors))| match self.unavailable(kind) {
                        Some(reason) => FanoutRow::skipped(kind, kind.label(), reason),
                        None => FanoutRow::from_runs_with(kind, kind.label(), results, errors, lost),
                    })
                    .collect();
                FanoutGroup {
                    title: title.clone(),
                    subscribers: load.subscribers,
                    publishes: load.publishes,
                    rate: load.rate,
                    rows,
                }
            })
            .collect()
    }

    fn fanout_once(&mut self, kind: TargetKind, load: Load, run: usize) -> anyhow::Result<FanoutResult> {
        let server = self.start(kind, &format!("{kind:?}-{}-{}-{run}", load.subscribers, load.rate).to_lowercase())?;
        let result = self.run_fanout_loadgen(&server, None, load);
        result.with_context(|| format!("server log: {}", server.log_tail()))
    }

    fn run_fanout_loadgen(
        &mut self,
        publish_to: &Server,
        subscribe_to: Option<&Server>,
        load: Load,
    ) -> anyhow::Result<FanoutResult> {
        let kind = publish_to.kind;
        let mut command = servers::pinned(CLIENT_CPU, &self.bench_bin);
        command
            .arg("fanout")
            .arg("--kind")
            .arg(kind.to_possible_value().expect("every kind is a value").get_name())
            .arg("--base-url")
            .arg(&publish_to.base_url)
            .arg("--subscribers")
            .arg(load.subscribers.to_string())
            .arg("--publishes")
            .arg(load.publishes.to_string())
            .arg("--rate")
            .arg(load.rate.to_string())
            .arg("--source-ip")
            .arg(self.source_ip());
        if let Some(node) = subscribe_to {
            command.arg("--sub-base-url").arg(&node.base_url);
        }
        for server in std::iter::once(publish_to).chain(subscribe_to) {
            for pid in server.pids() {
                command.arg("--server-pid").arg(pid.to_string());
            }
        }
        if let Some(secret) = &publish_to.admin_secret {
            command.env("REALTIME_BENCH_ADMIN_SECRET", secret);
        }
        run_json(command, Duration::from_secs(330))
    }

    /// Recoveries of [`RECOVERY_MESSAGES`] missed messages, and the REST publish with the
    /// default history beside one message per channel; the three are interleaved in
    /// each run.
    fn recovery_group(&mut self) -> RecoveryGroup {
        let repetitions = if self.quick { 10 } else { 30 };
        let requests = if self.quick { 1000 } else { 10_000 };
        let label = "realtime, one node";
        let (default_label, minimal_label) = ("realtime, default history", "realtime, REALTIME_HISTORY_PER_CHANNEL=1");
        let mut recoveries: (Vec<RecoveryResult>, Vec<String>) = (vec![], vec![]);
        let mut default_runs: (Vec<PublishResult>, Vec<String>) = (vec![], vec![]);
        let mut minimal_runs: (Vec<PublishResult>, Vec<String>) = (vec![], vec![]);
        let ours_missing = self.unavailable(TargetKind::Realtime);
        for run in 0..self.runs {
            if ours_missing.is_some() {
                break;
            }
            eprintln!("bench: recovery: {label} run {}/{}", run + 1, self.runs);
            match self.recovery_once(repetitions, run) {
                Ok(result) => recoveries.0.push(result),
                Err(e) => recoveries.1.push(format!("{e:#}")),
            }
            for (history, runs, name) in
                [(None, &mut default_runs, default_label), (Some(1), &mut minimal_runs, minimal_label)]
            {
                eprintln!("bench: recovery: publish cost of history: {name} run {}/{}", run + 1, self.runs);
                match self.history_publish_once(history, requests, run) {
                    Ok(result) => runs.0.push(result),
                    Err(e) => runs.1.push(format!("{e:#}")),
                }
            }
        }
        let (recovery, default_history, minimal_history) = match ours_missing {
            Some(reason) => (
                RecoveryRow::skipped(label, reason.clone()),
                PublishRow::skipped(PublishTarget::Realtime, default_label, reason.clone()),
                PublishRow::skipped(PublishTarget::Realtime, minimal_label, reason),
            ),
            None => (
                RecoveryRow::from_runs(label, recoveries.0, recoveries.1),
                PublishRow::from_runs(PublishTarget::Realtime, default_label, default_runs.0, default_runs.1),
                PublishRow::from_runs(PublishTarget::Realtime, minimal_label, minimal_runs.0, minimal_runs.1),
            ),
        };
        RecoveryGroup {
            messages: RECOVERY_MESSAGES,
            repetitions,
            history_per_channel: RECOVERY_MESSAGES,
            recovery,
            history_cost: HistoryCost::new(PUBLISH_CONCURRENCY, requests, default_history, minimal_history),
        }
    }

    fn recovery_once(&mut self, repetitions: usize, run: usize) -> anyhow::Result<RecoveryResult> {
        // The server must keep the whole backlog for it to be recovered.
        let env = [("REALTIME_HISTORY_PER_CHANNEL", RECOVERY_MESSAGES.to_string())];
        let server = self.start_ours(&format!("recovery-{run}"), &env)?;
        let mut command = servers::pinned(CLIENT_CPU, &self.bench_bin);
        command
            .arg("recovery")
            .arg("--base-url")
            .arg(&server.base_url)
            .arg("--messages")
            .arg(RECOVERY_MESSAGES.to_string())
            .arg("--repetitions")
            .arg(repetitions.to_string())
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
        run_json(command, Duration::from_secs(60)).with_context(|| format!("server log: {}", server.log_tail()))
    }

    /// The REST publish against our server keeping `history_per_channel` messages per
    /// channel (its default when `None`).
    fn history_publish_once(
        &mut self,
        history: Option<u32>,
        requests: u64,
        run: usize,
    ) -> anyhow::Result<PublishResult> {
        let env: Vec<(&str, String)> =
            history.map(|n| ("REALTIME_HISTORY_PER_CHANNEL", n.to_string())).into_iter().collect();
        let name = format!("history-{}-{run}", history.map_or_else(|| "default".to_owned(), |n| n.to_string()));
        let server = self.start_ours(&name, &env)?;
        self.run_publish_loadgen(&server, PublishTarget::Realtime, requests)
    }

    /// Two nodes of ours sharing one store and a Redis broker: subscribers on B,
    /// publishes to A.
    fn multi_node(&mut self) -> FanoutGroup {
        let load = if self.quick {
            Load { subscribers: 1000, publishes: 100, rate: 20.0 }
        } else {
            Load { subscribers: 1000, publishes: 400, rate: 100.0 }
        };
        let title = format!(
            "Multi-node: {} subscribers on node B, {} publishes to node A at {}/s asked, Redis broker",
            load.subscribers, load.publishes, load.rate
        );
        let label = "realtime, 2 nodes";
        let group = |row| FanoutGroup {
            title: title.clone(),
            subscribers: load.subscribers,
            publishes: load.publishes,
            rate: load.rate,
            rows: vec![row],
        };
        if let Some(reason) = self.unavailable(TargetKind::Realtime) {
            return group(FanoutRow::skipped(TargetKind::Realtime, label, reason));
        }
        if !servers::redis_reachable() {
            return group(FanoutRow::skipped(
                TargetKind::Realtime,
                label,
                "skipped: no Redis answers on 127.0.0.1:6379".to_owned(),
            ));
        }
        let (mut results, mut errors) = (Vec::new(), Vec::new());
        for run in 0..self.runs {
            eprintln!("bench: {title}: run {}/{}", run + 1, self.runs);
            match self.multi_node_once(load, run) {
                Ok(result) if result.connected > 0 && result.published > 0 && result.received == 0 => {
                    return group(FanoutRow::skipped(
                        TargetKind::Realtime,
                        label,
                        "skipped: node B received none of node A's publishes (the server does not relay through REALTIME_BROKER yet)".to_owned(),
                    ));
                }
                Ok(result) => results.push(result),
                Err(e) if format!("{e:#}").contains("unsupported broker") => {
                    return group(FanoutRow::skipped(
                        TargetKind::Realtime,
                        label,
                        format!("skipped: the server does not support REALTIME_BROKER=redis:// ({e:#})"),
                    ));
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        group(FanoutRow::from_runs(TargetKind::Realtime, label, results, errors))
    }

    /// Three nodes routing channels through Redis ([`crate::cluster`]).
    fn cluster(&mut self) -> crate::cluster::ClusterReport {
        let secret = admin_secret();
        crate::cluster::run(&crate::cluster::Plan {
            ours_bin: &self.ours_bin,
            work: self.scratch("cluster"),
            prefix: format!("bench_{}", secret.trim_start_matches("bench-admin-").replace('-', "_")),
            admin_secret: secret,
        })
    }

    fn multi_node_once(&mut self, load: Load, run: usize) -> anyhow::Result<FanoutResult> {
        let dir = self.scratch(&format!("multi-node-{run}"));
        let secret = admin_secret();
        // Both nodes share the SQLite file (WAL works across processes on one host) and
        // a Redis key prefix of this run's own.
        let env = [
            ("REALTIME_BROKER", "redis://127.0.0.1:6379".to_owned()),
            ("REALTIME_REDIS_PREFIX", format!("bench_{}", secret.trim_start_matches("bench-admin-").replace('-', "_"))),
        ];
        let node = |name| OursConfig { binary: &self.ours_bin, dir: &dir, name, admin_secret: &secret, env: &env };
        let a = servers::start_ours(&node("node-a"))?;
        let b = servers::start_ours(&node("node-b"))?;
        self.run_fanout_loadgen(&a, Some(&b), load)
            .with_context(|| format!("node A log: {} / node B log: {}", a.log_tail(), b.log_tail()))
    }
}

/// A throwaway admin secret for one server; it never leaves this machine's loopback.
fn admin_secret() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("bench-admin-{nanos:x}-{:x}", std::process::id())
}

/// Runs a load generator and parses the JSON it prints; kills it after `limit`.
fn run_json<T: DeserializeOwned>(mut command: Command, limit: Duration) -> anyhow::Result<T> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("starting {command:?}"))?;
    let stdout = read_all(child.stdout.take().expect("stdout is piped"));
    let stderr = read_all(child.stderr.take().expect("stderr is piped"));
    let until = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("the load generator ran over {} s and was killed", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        anyhow::bail!("the load generator failed ({status}): {}", stderr.trim());
    }
    serde_json::from_str(stdout.trim()).with_context(|| format!("parsing the load generator's output: {stdout}"))
}

fn read_all(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = from.read_to_string(&mut text);
        text
    })
}
