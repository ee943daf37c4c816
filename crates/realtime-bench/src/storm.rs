//! The connection storm load generator: N subscribers connecting at once to one channel,
//! timed from the first connect to the last `subscribed`; then the N dropped at once while
//! a probe connects and subscribes every 20 ms, and the target's own connection count
//! ([`gauge`]) is watched until it reaches zero.
//!
//! A run drops the storm's subscribers twice: first with TCP resets (no close frame, as
//! when a network or a load balancer cuts them), then, after a second storm that only sets
//! the stage, with close frames (every client leaving politely at once). A probe is timed
//! from its *scheduled* time to its `subscribed`, so a late probe counts its lateness, as
//! the fan-out publisher does; probes run on a thread of their own, so closing ten
//! thousand sockets here does not delay them.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::fanout;
use crate::latency::{self, Summary};
use crate::target::{self, Endpoints, Prepared, TargetKind};
use crate::wsclient::WsClient;

mod gauge;

pub use gauge::Gauge;

/// Longest wait for one subscriber of the storm, connect to `subscribed`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait for one probe; a probe that takes longer has failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What to run, against which target.
#[derive(Debug, Clone, clap::Args)]
pub struct StormArgs {
    /// The kind of server: realtime, baseline or nchan.
    #[arg(long, value_enum)]
    pub kind: TargetKind,
    /// Base URL of the target, `http://127.0.0.1:PORT`.
    #[arg(long)]
    pub base_url: String,
    /// Admin secret of our server (realtime target only).
    #[arg(long, env = "REALTIME_BENCH_ADMIN_SECRET", hide_env_values = true)]
    pub admin_secret: Option<String>,
    /// Subscribers of the storm, all on one channel.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Connections in flight at once, connect to `subscribed` (default: the whole storm).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Milliseconds between two probes.
    #[arg(long, default_value_t = 20)]
    pub probe_every_ms: u64,
    /// Seconds of probing, from the mass disconnect on.
    #[arg(long, default_value_t = 3.0)]
    pub probe_secs: f64,
    /// Longest wait for the target's connection count to reach zero.
    #[arg(long, default_value_t = 30)]
    pub drain_secs: u64,
    /// Subscribers per token (our server limits connections per token).
    #[arg(long, default_value_t = 100)]
    pub subs_per_token: usize,
    /// Loopback address the subscribers and probes connect from.
    #[arg(long, default_value = "127.0.0.1")]
    pub source_ip: Ipv4Addr,
    /// Hard limit on the whole run.
    #[arg(long, default_value_t = 180)]
    pub deadline_secs: u64,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StormResult {
    pub kind: TargetKind,
    pub subscribers: usize,
    pub concurrency: usize,
    /// The first storm, on a fresh server.
    pub storm: StormFigures,
    /// The second storm, which sets the stage for the close frames.
    #[serde(default)]
    pub second_storm: StormFigures,
    /// One per way of dropping the storm's subscribers.
    pub disconnects: Vec<DisconnectFigures>,
    /// What went wrong, the first few.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StormFigures {
    pub connected: usize,
    pub failures: usize,
    /// Failures that were a timeout, not a refusal or an error.
    #[serde(default)]
    pub timeouts: usize,
    /// The first connect started -> the last `subscribed` received.
    pub all_subscribed_secs: f64,
    /// Per subscriber: its connect started -> its `subscribed` (for the baseline and nchan,
    /// which subscribe on the upgrade: the `101`).
    pub subscribe: Summary,
    /// Connections the kernel turned away during the storm because the target's accept
    /// queue was full (`TcpExt: ListenOverflows`, machine-wide); each waits for a SYN
    /// retransmit, one second or more.
    #[serde(default)]
    pub listen_overflows: Option<u64>,
}

/// How the storm's subscribers leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropMode {
    /// A TCP reset each, no close frame.
    Reset,
    /// A close frame (1000) each, then the socket closed.
    CloseFrame,
}

impl DropMode {
    pub fn label(self) -> &'static str {
        match self {
            DropMode::Reset => "TCP resets",
            DropMode::CloseFrame => "close frames",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DisconnectFigures {
    pub mode: DropMode,
    pub dropped: usize,
    /// How long this client took to close every socket.
    pub close_secs: f64,
    pub probes: u64,
    pub probe_failures: u64,
    /// Probe failures that were a timeout.
    #[serde(default)]
    pub probe_timeouts: u64,
    /// Per probe: its scheduled time -> its `subscribed`.
    pub probe: Summary,
    /// The first close -> the target's count at zero (the probes open then aside); None
    /// when it was not there within the drain limit.
    pub to_zero_secs: Option<f64>,
    /// The count the target gave last.
    pub last_count: Option<u64>,
}

/// Runs the storm and both mass disconnects; it builds its own runtime (one thread for
/// the subscribers, and one for the probes of each disconnect).
pub fn run(args: &StormArgs) -> anyhow::Result<StormResult> {
    // The storm's sockets, the probes', and the HTTP client's.
    crate::raise_nofile_limit(args.subscribers as u64 + 512)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let deadline = Duration::from_secs(args.deadline_secs);
    let result = runtime.block_on(async {
        tokio::time::timeout(deadline, run_async(args))
            .await
            .with_context(|| format!("the run passed its deadline of {}s", args.deadline_secs))?
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn run_async(args: &StormArgs) -> anyhow::Result<StormResult> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let endpoints = Endpoints {
        base_url: &args.base_url,
        sub_base_url: &args.base_url,
        admin_secret: args.admin_secret.as_deref(),
        pusher: None,
    };
    let gauge = Gauge::new(args.kind, &args.base_url)?;
    let prepared = target::prepare(args.kind, &endpoints, args.subscribers, args.subs_per_token, &http).await?;
    gauge.read(&http).await.context("reading the target's connection count before the storm")?;
    let concurrency = args.concurrency.unwrap_or(args.subscribers).clamp(1, args.subscribers.max(1));

    let first = storm(&prepared, args, concurrency).await;
    let mut errors = first.errors;
    let mut disconnects = Vec::new();
    let (figures, problems) = mass_disconnect(first.clients, DropMode::Reset, &prepared, args, &gauge, &http).await;
    disconnects.push(figures);
    errors.extend(problems);

    let second = storm(&prepared, args, concurrency).await;
    let second_storm = second.figures.clone();
    if second.figures.failures > 0 {
        errors.push(format!("second storm: {} of {} failed", second.figures.failures, args.subscribers));
        errors.extend(second.errors);
    }
    let (figures, problems) =
        mass_disconnect(second.clients, DropMode::CloseFrame, &prepared, args, &gauge, &http).await;
    disconnects.push(figures);
    errors.extend(problems);
    errors.truncate(8);
    Ok(StormResult {
        kind: args.kind,
        subscribers: args.subscribers,
        concurrency,
        storm: first.figures,
        second_storm,
        disconnects,
        errors,
    })
}

/// The subscribers of one storm, still connected.
struct Storm {
    clients: Vec<WsClient>,
    figures: StormFigures,
    errors: Vec<String>,
}

/// When each subscriber started connecting and got its `subscribed`, from one origin.
#[derive(Debug, Default)]
pub struct Span {
    first_start: Option<Duration>,
    last_end: Option<Duration>,
}

impl Span {
    pub fn add(&mut self, start: Duration, end: Duration) {
        self.first_start = Some(self.first_start.map_or(start, |s| s.min(start)));
        self.last_end = Some(self.last_end.map_or(end, |e| e.max(end)));
    }

    /// The first start -> the last end; zero when nothing was added.
    pub fn secs(&self) -> f64 {
        match (self.first_start, self.last_end) {
            (Some(start), Some(end)) => end.saturating_sub(start).as_secs_f64(),
            _ => 0.0,
        }
    }
}

async fn storm(prepared: &Prepared, args: &StormArgs, concurrency: usize) -> Storm {
    let gate = Arc::new(Semaphore::new(concurrency));
    let overflows_before = listen_overflows();
    let origin = Instant::now();
    let mut tasks = Vec::with_capacity(args.subscribers);
    for i in 0..args.subscribers {
        let url = prepared.ws_urls[i % prepared.ws_urls.len()].clone();
        let (gate, kind, source_ip) = (gate.clone(), args.kind, args.source_ip);
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            let start = origin.elapsed();
            let connected = tokio::time::timeout(CONNECT_TIMEOUT, fanout::connect(&url, source_ip, kind)).await;
            match connected {
                Ok(Ok((ws, _))) => Ok((ws, start, origin.elapsed())),
                Ok(Err(e)) => Err(Failure::Refused(format!("connect: {e:#}"))),
                Err(_) => {
                    Err(Failure::TimedOut(format!("connect: no subscription within {} s", CONNECT_TIMEOUT.as_secs())))
                }
            }
        }));
    }
    let mut clients = Vec::with_capacity(args.subscribers);
    let mut span = Span::default();
    let mut subscribe = latency::histogram();
    let (mut failures, mut timeouts, mut errors) = (0, 0, Vec::new());
    for task in tasks {
        let outcome = task.await.unwrap_or_else(|e| Err(Failure::Refused(format!("subscriber task: {e}"))));
        match outcome {
            Ok((ws, start, end)) => {
                span.add(start, end);
                latency::record(&mut subscribe, end.saturating_sub(start).as_micros() as u64);
                clients.push(ws);
            }
            Err(failure) => {
                failures += 1;
                timeouts += usize::from(matches!(failure, Failure::TimedOut(_)));
                if errors.len() < 3 {
                    errors.push(failure.into_message());
                }
            }
        }
    }
    let figures = StormFigures {
        connected: clients.len(),
        failures,
        timeouts,
        all_subscribed_secs: span.secs(),
        subscribe: Summary::of(&subscribe),
        listen_overflows: overflows_before.zip(listen_overflows()).map(|(before, after)| after.saturating_sub(before)),
    };
    Storm { clients, figures, errors }
}

/// Why a subscriber or a probe did not get its `subscribed`.
enum Failure {
    /// Not within the time allowed: a figure of a storm past what the target absorbs.
    TimedOut(String),
    /// Refused, cut or garbled: an error.
    Refused(String),
}

impl Failure {
    fn into_message(self) -> String {
        match self {
            Failure::TimedOut(message) | Failure::Refused(message) => message,
        }
    }
}

/// The kernel's count of connections refused by a full accept queue, if it can be read.
fn listen_overflows() -> Option<u64> {
    tcp_ext(&std::fs::read_to_string("/proc/net/netstat").ok()?, "ListenOverflows")
}

/// A `TcpExt:` counter of `/proc/net/netstat`: a line of names, then a line of values.
fn tcp_ext(netstat: &str, name: &str) -> Option<u64> {
    let mut lines = netstat.lines().filter(|line| line.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let at = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// Drops every client at once while probes connect, and watches the target's count.
async fn mass_disconnect(
    clients: Vec<WsClient>,
    mode: DropMode,
    prepared: &Prepared,
    args: &StormArgs,
    gauge: &Gauge,
    http: &reqwest::Client,
) -> (DisconnectFigures, Vec<String>) {
    let mut errors = Vec::new();
    // The last few subscribers' work (their registration, a first frame) is done before
    // the probes start.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let every = Duration::from_millis(args.probe_every_ms.max(1));
    let count = ((args.probe_secs.max(0.0) * 1000.0) as u64 / every.as_millis().max(1) as u64).max(1);
    let open = Arc::new(AtomicI64::new(0));
    let start = Instant::now() + Duration::from_millis(20);
    let probes = Probes {
        urls: prepared.ws_urls.clone(),
        kind: args.kind,
        source_ip: args.source_ip,
        every,
        count,
        start,
        open: open.clone(),
    };
    let probe_thread = std::thread::spawn(move || probes.run());

    tokio::time::sleep_until(start.into()).await;
    let dropped = clients.len();
    let closing = Instant::now();
    match mode {
        DropMode::Reset => {
            for ws in clients {
                let _ = ws.reset();
            }
        }
        DropMode::CloseFrame => {
            for ws in &clients {
                let _ = ws.send_close(1000).await;
            }
            drop(clients);
        }
    }
    let close_secs = closing.elapsed().as_secs_f64();

    let limit = Duration::from_secs(args.drain_secs);
    let (mut to_zero_secs, mut last_count) = (None, None);
    while closing.elapsed() < limit {
        let open_before = open.load(Ordering::Relaxed);
        match gauge.read(http).await {
            Ok(n) => {
                last_count = Some(n);
                let probes_open = open_before.max(open.load(Ordering::Relaxed)).max(0) as u64;
                if n <= probes_open {
                    to_zero_secs = Some(closing.elapsed().as_secs_f64());
                    break;
                }
            }
            Err(e) if errors.is_empty() => errors.push(format!("{}: {e:#}", mode.label())),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let outcome = probe_thread.join().unwrap_or_else(|_| ProbeOutcome::failed(count, "the probe thread panicked"));
    if outcome.failures > 0 {
        errors.push(format!(
            "{}: {} of {} probes failed: {}",
            mode.label(),
            outcome.failures,
            count,
            outcome.errors.join("; ")
        ));
    }
    let figures = DisconnectFigures {
        mode,
        dropped,
        close_secs,
        probes: count,
        probe_failures: outcome.failures,
        probe_timeouts: outcome.timeouts,
        probe: Summary::of(&outcome.latency),
        to_zero_secs,
        last_count,
    };
    (figures, errors)
}

/// A probe every `every` from `start` on: connect, subscribe, reset.
struct Probes {
    urls: Vec<String>,
    kind: TargetKind,
    source_ip: Ipv4Addr,
    every: Duration,
    count: u64,
    start: Instant,
    /// Probes connecting or connected now (the target's count includes them).
    open: Arc<AtomicI64>,
}

struct ProbeOutcome {
    latency: hdrhistogram::Histogram<u64>,
    failures: u64,
    timeouts: u64,
    errors: Vec<String>,
}

impl ProbeOutcome {
    fn failed(count: u64, why: &str) -> ProbeOutcome {
        ProbeOutcome { latency: latency::histogram(), failures: count, timeouts: 0, errors: vec![why.to_owned()] }
    }
}

impl Probes {
    fn run(self) -> ProbeOutcome {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(self.probe()),
            Err(e) => ProbeOutcome::failed(self.count, &format!("the probes' runtime: {e}")),
        }
    }

    async fn probe(self) -> ProbeOutcome {
        let mut tasks = Vec::with_capacity(self.count as usize);
        for i in 0..self.count {
            let at = self.start + self.every * i as u32;
            tokio::time::sleep_until(at.into()).await;
            let url = self.urls[i as usize % self.urls.len()].clone();
            let (open, kind, source_ip) = (self.open.clone(), self.kind, self.source_ip);
            // Each probe in a task of its own: a slow one never holds up the next.
            tasks.push(tokio::spawn(async move {
                open.fetch_add(1, Ordering::Relaxed);
                let connected = tokio::time::timeout(PROBE_TIMEOUT, fanout::connect(&url, source_ip, kind)).await;
                let took = at.elapsed();
                let outcome = match connected {
                    Ok(Ok((ws, _))) => {
                        let _ = ws.reset();
                        Ok(took)
                    }
                    Ok(Err(e)) => Err(Failure::Refused(format!("probe: {e:#}"))),
                    Err(_) => {
                        Err(Failure::TimedOut(format!("probe: no subscription within {} s", PROBE_TIMEOUT.as_secs())))
                    }
                };
                // The target may count a reset socket a little longer than the probe does.
                tokio::time::sleep(Duration::from_millis(100)).await;
                open.fetch_sub(1, Ordering::Relaxed);
                outcome
            }));
        }
        let mut outcome = ProbeOutcome { latency: latency::histogram(), failures: 0, timeouts: 0, errors: Vec::new() };
        for task in tasks {
            match task.await.unwrap_or_else(|e| Err(Failure::Refused(format!("probe task: {e}")))) {
                Ok(took) => latency::record(&mut outcome.latency, took.as_micros() as u64),
                Err(failure) => {
                    outcome.failures += 1;
                    outcome.timeouts += u64::from(matches!(failure, Failure::TimedOut(_)));
                    if outcome.errors.len() < 3 {
                        outcome.errors.push(failure.into_message());
                    }
                }
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcp_ext_counter_is_read_under_its_name() {
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 4710 4711\n\
                       IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(tcp_ext(netstat, "ListenOverflows"), Some(4710));
        assert_eq!(tcp_ext(netstat, "Nope"), None);
    }

    #[test]
    fn the_storm_lasts_from_the_first_connect_to_the_last_subscription() {
        let ms = Duration::from_millis;
        let mut span = Span::default();
        assert_eq!(span.secs(), 0.0);
        span.add(ms(5), ms(40));
        span.add(ms(2), ms(30));
        span.add(ms(9), ms(1502));
        assert!((span.secs() - 1.5).abs() < 1e-9, "{}", span.secs());
    }
}
