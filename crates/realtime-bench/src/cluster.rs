//! Multi-node routing: does a node's work grow with the traffic of channels it does not
//! hold?
//!
//! Three nodes of ours on loopback share one SQLite file and one Redis; each holds
//! subscribers of its own channels only. Node C (the observer) gets a fixed publish rate
//! to its own channels; the publishes to A's and B's channels (foreign to C, sent to the
//! node holding them) grow step by step. With routing (`redis_routing = "channel"`) C's
//! CPU per second should stay flat; with `broadcast` (every node hears every frame, as
//! before routing) it grows with the cluster's traffic. Then the same publishes over the
//! same channels and subscribers go to the three nodes and to one node alone (in-memory
//! broker): delivered msg/s and server CPU per delivered message, cluster against one
//! node. Every node runs pinned to the same CPU (as every server of the bench), so the
//! figures compare work, not the parallelism of separate machines.
//!
//! Bounded: two clusters of four steps of [`STEP_SECS`], then two runs of
//! [`SCALE_SECS`]; about a minute and a half.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Semaphore, watch};

use crate::proc_stats;
use crate::servers::{self, OursConfig, Server};
use crate::target;
use crate::wsclient::{Frame, WsClient};

const NODES: usize = 3;
const CHANNELS_PER_NODE: usize = 4;
const SUBSCRIBERS_PER_CHANNEL: usize = 25;
/// Publishes per second to the observer's own channels, at every step.
const OWN_RATE: f64 = 20.0;
/// Publishes per second to the other nodes' channels, step by step.
const FOREIGN_RATES: [f64; 4] = [0.0, 200.0, 400.0, 800.0];
const STEP_SECS: f64 = 5.0;
/// Publishes per second over every channel, for the cluster against one node.
const SCALE_RATE: f64 = 300.0;
const SCALE_SECS: f64 = 6.0;
/// Publishes in flight at most (the publishers never wait for an answer to send the next).
const IN_FLIGHT: usize = 64;
/// The observer: its own traffic is fixed, everyone else's grows.
const OBSERVER: usize = 2;

/// What this scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterReport {
    pub title: String,
    /// Why it did not run, when it did not.
    pub skipped: Option<String>,
    /// One cluster per routing mode (`channel`, `broadcast`).
    pub routing: Vec<RoutingRun>,
    pub scale: Option<Scale>,
    /// Errors and lost messages: they fail the bench.
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoutingRun {
    /// `redis_routing` of the nodes.
    pub mode: String,
    pub steps: Vec<Step>,
}

impl RoutingRun {
    /// The observer's (C's) CPU per second at the highest foreign rate over its CPU per
    /// second with none, and that rate: 1 is flat, the target.
    pub fn observer_growth(&self) -> Option<(f64, f64)> {
        let (first, last) = (self.steps.first()?, self.steps.last()?);
        let cpu = |step: &Step| step.cpu_per_sec.get(OBSERVER).copied();
        Some((last.foreign_rate, cpu(last)? / cpu(first)?.max(1e-9)))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Publishes per second offered to A's and B's channels (foreign to C).
    pub foreign_rate: f64,
    /// CPU seconds per second of each node (A, B, C).
    pub cpu_per_sec: Vec<f64>,
    /// Messages delivered per second on each node.
    pub delivered_per_sec: Vec<f64>,
}

/// The same load on three nodes and on one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scale {
    pub offered_publishes_per_sec: f64,
    pub one_node: Throughput,
    pub cluster: Throughput,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    pub delivered_per_sec: f64,
    /// CPU seconds per second, summed over the nodes.
    pub cpu_per_sec: f64,
    /// Server CPU microseconds per delivered message.
    pub cpu_us_per_delivered: f64,
}

/// Where the binaries are and where the nodes keep their files.
pub struct Plan<'a> {
    pub ours_bin: &'a Path,
    pub work: PathBuf,
    pub admin_secret: String,
    /// Redis key prefixes start with it (one per cluster).
    pub prefix: String,
}

pub const TITLE: &str = "Multi-node routing: 3 nodes, each with subscribers of its own channels only";

/// Runs the scenario; never fails (errors are in the report).
pub fn run(plan: &Plan<'_>) -> ClusterReport {
    let mut report = ClusterReport {
        title: TITLE.to_owned(),
        skipped: None,
        routing: Vec::new(),
        scale: None,
        failures: Vec::new(),
    };
    if !plan.ours_bin.is_file() {
        report.skipped = Some(format!("skipped: no realtime-server binary at {}", plan.ours_bin.display()));
        return report;
    }
    if !servers::redis_reachable() {
        report.skipped = Some("skipped: no Redis answers on 127.0.0.1:6379".to_owned());
        return report;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            report.failures.push(format!("cluster: no runtime: {error}"));
            return report;
        }
    };
    for mode in ["channel", "broadcast"] {
        eprintln!("bench: {TITLE}: redis_routing = {mode}");
        match runtime.block_on(routing_run(plan, mode)) {
            Ok((run, lost)) => {
                if lost > 0 {
                    report.failures.push(format!("cluster ({mode}): {lost} messages lost"));
                }
                report.routing.push(run);
            }
            Err(error) => report.failures.push(format!("cluster ({mode}): {error:#}")),
        }
    }
    eprintln!("bench: {TITLE}: the same load on 3 nodes and on 1");
    match runtime.block_on(scale(plan)) {
        Ok((scale, lost)) => {
            if lost > 0 {
                report.failures.push(format!("cluster against one node: {lost} messages lost"));
            }
            report.scale = Some(scale);
        }
        Err(error) => report.failures.push(format!("cluster against one node: {error:#}")),
    }
    report
}

/// Nodes sharing a store (and, when several, a Redis prefix of their own).
fn start_nodes(plan: &Plan<'_>, name: &str, count: usize, mode: Option<&str>) -> anyhow::Result<Vec<Server>> {
    let dir = plan.work.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let mut env = Vec::new();
    if let Some(mode) = mode {
        env.push(("REALTIME_BROKER", "redis://127.0.0.1:6379".to_owned()));
        env.push(("REALTIME_REDIS_PREFIX", format!("{}_{name}", plan.prefix)));
        env.push(("REALTIME_REDIS_ROUTING", mode.to_owned()));
    }
    (0..count)
        .map(|n| {
            let name = format!("node-{n}");
            servers::start_ours(&OursConfig {
                binary: plan.ours_bin,
                dir: &dir,
                name: &name,
                admin_secret: &plan.admin_secret,
                env: &env,
            })
        })
        .collect()
}

/// The channels and their subscribers, each on the node that holds it.
struct Setup {
    http: reqwest::Client,
    api_key: String,
    /// Per node: the base URL and its channels.
    nodes: Vec<(String, Vec<String>)>,
    /// Messages received per node.
    received: Vec<Arc<AtomicU64>>,
    stop: watch::Sender<bool>,
}

impl Setup {
    async fn new(servers: &[Server], admin_secret: &str, holders: usize) -> anyhow::Result<Setup> {
        let http = reqwest::Client::new();
        let api_key = target::create_account(&http, &servers[0].base_url, admin_secret).await?;
        let (stop, stopped) = watch::channel(false);
        let mut setup = Setup { http, api_key, nodes: Vec::new(), received: Vec::new(), stop };
        for holder in 0..holders {
            let server = &servers[holder % servers.len()];
            let channels: Vec<String> = (0..CHANNELS_PER_NODE).map(|c| format!("n{holder}-c{c}")).collect();
            let received = Arc::new(AtomicU64::new(0));
            for channel in &channels {
                setup.create_channel(&server.base_url, channel).await?;
                let claims =
                    json!({"client_id": format!("reader-{holder}"), "channels": [channel], "ttl_seconds": 3600});
                let url = target::token_url(&setup.http, &server.base_url, &setup.api_key, &claims).await?;
                let source = Ipv4Addr::new(127, 0, 1, 2 + holder as u8);
                for _ in 0..SUBSCRIBERS_PER_CHANNEL {
                    let ws = subscribe(&url, source, channel).await?;
                    tokio::spawn(read(ws, received.clone(), stopped.clone()));
                }
            }
            setup.nodes.push((server.base_url.clone(), channels));
            setup.received.push(received);
        }
        // A route starts a Redis round trip after its node's first subscriber.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(setup)
    }

    async fn create_channel(&self, base_url: &str, name: &str) -> anyhow::Result<()> {
        let answer = self
            .http
            .post(format!("{base_url}/v1/realtime/channel/create"))
            .bearer_auth(&self.api_key)
            .json(&json!({"name": name, "type": "public"}))
            .send()
            .await?;
        anyhow::ensure!(answer.status().is_success(), "channel/create answered {}", answer.status());
        Ok(())
    }

    /// Publishes at `rate` per second for `secs` to `targets` (node, channel) in turn,
    /// on schedule; returns the publishes answered with success.
    async fn publish(&self, targets: &[(String, String)], rate: f64, secs: f64) -> anyhow::Result<u64> {
        if rate <= 0.0 || targets.is_empty() {
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            return Ok(0);
        }
        let total = (rate * secs) as u64;
        let gate = Arc::new(Semaphore::new(IN_FLIGHT));
        let ok = Arc::new(AtomicU64::new(0));
        let started = tokio::time::Instant::now();
        for n in 0..total {
            tokio::time::sleep_until(started + Duration::from_secs_f64(n as f64 / rate)).await;
            let permit = gate.clone().acquire_owned().await?;
            let (base_url, channel) = &targets[n as usize % targets.len()];
            let request = self
                .http
                .post(format!("{base_url}/v1/realtime/publish"))
                .bearer_auth(&self.api_key)
                .body(format!(r#"{{"channel":"{channel}","event":"e","data":{{"n":{n},"pad":"{PAD}"}}}}"#))
                .header("content-type", "application/json");
            let ok = ok.clone();
            tokio::spawn(async move {
                if request.send().await.is_ok_and(|answer| answer.status().is_success()) {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                drop(permit);
            });
        }
        let _ = gate.acquire_many(IN_FLIGHT as u32).await?;
        Ok(ok.load(Ordering::Relaxed))
    }

    fn targets(&self, holders: &[usize]) -> Vec<(String, String)> {
        let mut targets = Vec::new();
        for c in 0..CHANNELS_PER_NODE {
            for &holder in holders {
                let (base_url, channels) = &self.nodes[holder];
                targets.push((base_url.clone(), channels[c].clone()));
            }
        }
        targets
    }

    fn received(&self) -> Vec<u64> {
        self.received.iter().map(|count| count.load(Ordering::Relaxed)).collect()
    }

    /// Waits (at most 5 s) until `expected` messages arrived in all, and returns how many
    /// are missing.
    async fn lost(&self, expected: u64) -> u64 {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let received: u64 = self.received().iter().sum();
            if received >= expected || Instant::now() > until {
                return expected.saturating_sub(received);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A few hundred bytes, as a typical event.
const PAD: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

async fn subscribe(url: &str, source: Ipv4Addr, channel: &str) -> anyhow::Result<WsClient> {
    let mut ws = WsClient::connect(url, source).await?;
    let connected = ws.next_message().await?;
    anyhow::ensure!(connected.starts_with(br#"{"type":"connected""#), "no connected frame");
    ws.send_text(&json!({"type": "subscribe", "channel": channel}).to_string()).await?;
    let subscribed = ws.next_message().await?;
    anyhow::ensure!(
        subscribed.starts_with(br#"{"type":"subscribed""#),
        "subscribe answered {}",
        String::from_utf8_lossy(&subscribed)
    );
    Ok(ws)
}

/// Counts the messages a socket receives until the run stops.
async fn read(mut ws: WsClient, received: Arc<AtomicU64>, mut stop: watch::Receiver<bool>) {
    loop {
        let mut pong = None;
        loop {
            match ws.next_frame() {
                Ok(Some(Frame::Message(data))) => {
                    if data.starts_with(br#"{"type":"message""#) {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Some(Frame::Ping(data))) => pong = Some(data.to_vec()),
                Ok(Some(Frame::Pong)) => {}
                Ok(Some(Frame::Close(_))) | Err(_) => return,
                Ok(None) => break,
            }
        }
        if let Some(data) = pong
            && ws.send_pong(&data).await.is_err()
        {
            return;
        }
        tokio::select! {
            _ = stop.changed() => return,
            read = ws.fill() => if !matches!(read, Ok(n) if n > 0) { return },
        }
    }
}

fn cpu(servers: &[Server]) -> Vec<f64> {
    servers.iter().map(|server| proc_stats::sample(server.pids()).cpu_seconds).collect()
}

/// One cluster in `mode`: the observer's CPU as the other nodes' traffic grows. Returns
/// the steps and the messages lost.
async fn routing_run(plan: &Plan<'_>, mode: &str) -> anyhow::Result<(RoutingRun, u64)> {
    let servers = start_nodes(plan, &format!("cluster-{mode}"), NODES, Some(mode))?;
    let setup = Setup::new(&servers, &plan.admin_secret, NODES).await.context("setting up the cluster")?;
    let own = setup.targets(&[OBSERVER]);
    let foreign = setup.targets(&[0, 1]);
    let mut steps = Vec::new();
    let mut expected = 0;
    for foreign_rate in FOREIGN_RATES {
        let (cpu_before, received_before, started) = (cpu(&servers), setup.received(), Instant::now());
        let (own_ok, foreign_ok) = tokio::try_join!(
            setup.publish(&own, OWN_RATE, STEP_SECS),
            setup.publish(&foreign, foreign_rate, STEP_SECS)
        )?;
        expected += (own_ok + foreign_ok) * SUBSCRIBERS_PER_CHANNEL as u64;
        let elapsed = started.elapsed().as_secs_f64();
        let cpu_after = cpu(&servers);
        let cpu_per_sec = cpu_after.iter().zip(&cpu_before).map(|(after, before)| (after - before) / elapsed);
        let received = setup.received().into_iter().zip(&received_before).map(|(after, before)| after - before);
        steps.push(Step {
            foreign_rate,
            cpu_per_sec: cpu_per_sec.collect(),
            delivered_per_sec: received.map(|n| n as f64 / elapsed).collect(),
        });
    }
    let lost = setup.lost(expected).await;
    Ok((RoutingRun { mode: mode.to_owned(), steps }, lost))
}

/// The same channels, subscribers and publishes on three nodes and on one.
async fn scale(plan: &Plan<'_>) -> anyhow::Result<(Scale, u64)> {
    let (cluster, cluster_lost) = throughput(plan, start_nodes(plan, "scale-cluster", NODES, Some("channel"))?).await?;
    let (one_node, one_lost) = throughput(plan, start_nodes(plan, "scale-one", 1, None)?).await?;
    Ok((Scale { offered_publishes_per_sec: SCALE_RATE, one_node, cluster }, cluster_lost + one_lost))
}

/// [`SCALE_RATE`] publishes per second over every channel of `servers`; returns what
/// they delivered and the messages lost.
async fn throughput(plan: &Plan<'_>, servers: Vec<Server>) -> anyhow::Result<(Throughput, u64)> {
    let setup = Setup::new(&servers, &plan.admin_secret, NODES).await.context("setting up")?;
    let every = setup.targets(&(0..NODES).collect::<Vec<_>>());
    let (cpu_before, started) = (cpu(&servers), Instant::now());
    let published = setup.publish(&every, SCALE_RATE, SCALE_SECS).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_seconds: f64 = cpu(&servers).iter().zip(&cpu_before).map(|(after, before)| after - before).sum();
    let delivered: u64 = setup.received().iter().sum();
    let lost = setup.lost(published * SUBSCRIBERS_PER_CHANNEL as u64).await;
    let throughput = Throughput {
        delivered_per_sec: delivered as f64 / elapsed,
        cpu_per_sec: cpu_seconds / elapsed,
        cpu_us_per_delivered: cpu_seconds * 1e6 / (delivered.max(1) as f64),
    };
    Ok((throughput, lost))
}

/// The report's section.
pub fn markdown(md: &mut String, report: &ClusterReport) {
    use std::fmt::Write as _;
    let _ = writeln!(md, "## {}\n", report.title);
    if let Some(reason) = &report.skipped {
        let _ = writeln!(md, "{reason}\n");
        return;
    }
    let _ = writeln!(
        md,
        "{CHANNELS_PER_NODE} channels per node, {SUBSCRIBERS_PER_CHANNEL} subscribers each, on the node holding \
         it; one SQLite file and one Redis; every node on the same CPU; one run. Node C gets {OWN_RATE} \
         publishes/s to its own channels; A's and B's channels (foreign to C) get the rate in the first \
         column, {STEP_SECS} s per step. Target: C's CPU/s flat.\n"
    );
    for run in &report.routing {
        let _ = writeln!(md, "`redis_routing = \"{}\"`:\n", run.mode);
        let _ = writeln!(
            md,
            "| foreign publishes/s | A CPU/s | B CPU/s | C CPU/s | A+B delivered/s | C delivered/s |\n|---|---|---|---|---|---|"
        );
        for step in &run.steps {
            let cpu = |n: usize| step.cpu_per_sec.get(n).copied().unwrap_or(0.0);
            let delivered = |n: usize| step.delivered_per_sec.get(n).copied().unwrap_or(0.0);
            let _ = writeln!(
                md,
                "| {} | {:.3} | {:.3} | {:.3} | {:.0} | {:.0} |",
                step.foreign_rate,
                cpu(0),
                cpu(1),
                cpu(OBSERVER),
                delivered(0) + delivered(1),
                delivered(OBSERVER)
            );
        }
        if let Some((foreign_rate, growth)) = run.observer_growth() {
            let _ = writeln!(md, "\nC's CPU/s at {foreign_rate} foreign publishes/s against none: x{growth:.2}.\n");
        }
    }
    if let Some(scale) = &report.scale {
        let _ = writeln!(
            md,
            "The same {} publishes/s over all {} channels ({} subscribers), on 3 nodes (routed) and on 1 \
             (in-memory broker):\n",
            scale.offered_publishes_per_sec,
            NODES * CHANNELS_PER_NODE,
            NODES * CHANNELS_PER_NODE * SUBSCRIBERS_PER_CHANNEL
        );
        let _ = writeln!(md, "| | delivered msg/s | server CPU/s | CPU µs per delivered |\n|---|---|---|---|");
        for (label, row) in [("3 nodes", &scale.cluster), ("1 node", &scale.one_node)] {
            let _ = writeln!(
                md,
                "| {label} | {:.0} | {:.3} | {:.1} |",
                row.delivered_per_sec, row.cpu_per_sec, row.cpu_us_per_delivered
            );
        }
        let _ = writeln!(
            md,
            "\nCluster against one node: delivered x{:.2}, CPU per delivered message x{:.2}.\n",
            scale.cluster.delivered_per_sec / scale.one_node.delivered_per_sec.max(1e-9),
            scale.cluster.cpu_us_per_delivered / scale.one_node.cpu_us_per_delivered.max(1e-9)
        );
    }
}
