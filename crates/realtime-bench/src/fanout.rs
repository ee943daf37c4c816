//! The fan-out load generator: N WebSocket subscribers on one channel and an open-loop
//! publisher posting over HTTP at scheduled times.
//!
//! Publish `seq` is scheduled at `seq / rate` seconds after the first and sent in a task of
//! its own, never waiting on the answer to an earlier one, so a server that answers slowly
//! is still offered the load asked for. Every received message's latency is its receive
//! time minus the *scheduled* time the publisher wrote into it (one monotonic clock, since
//! publisher and subscribers share this process): a publish that went out late because the
//! publisher fell behind counts its lateness, as wrk2 counts coordinated omission.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};

use crate::latency::{self, Summary};
use crate::proc_stats;
use crate::pusher::{self, Inbound, PusherApp};
use crate::target::{self, Endpoints, Prepared, TargetKind};
use crate::wsclient::{Frame, WsClient};

mod publisher;

use self::publisher::{PublishOutcome, publish_from_thread};

/// What to run, against which target.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// The kind of server.
    #[arg(long, value_enum)]
    pub kind: TargetKind,
    /// Base URL of publishes and setup, `http://127.0.0.1:PORT`.
    #[arg(long)]
    pub base_url: String,
    /// Base URL the subscribers use (default: --base-url).
    #[arg(long)]
    pub sub_base_url: Option<String>,
    /// Admin secret of our server (realtime target only).
    #[arg(long, env = "REALTIME_BENCH_ADMIN_SECRET", hide_env_values = true)]
    pub admin_secret: Option<String>,
    /// WebSocket subscribers on the one channel.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Messages to publish (0: only connect, measure idle memory, and leave).
    #[arg(long, default_value_t = 200)]
    pub publishes: u64,
    /// Publishes per second offered (open loop: sent on schedule, however slow the answers).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Bytes of padding in each message's data.
    #[arg(long, default_value_t = 32)]
    pub pad_bytes: usize,
    /// Server processes whose CPU time and RSS are reported (repeat for several).
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// Loopback address the subscribers connect from; a fresh one per run keeps the
    /// previous runs' TIME_WAIT sockets out of the way.
    #[arg(long, default_value = "127.0.0.1")]
    pub source_ip: Ipv4Addr,
    /// WebSocket handshakes in flight at once.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Subscribers per token (our server limits connections per token).
    #[arg(long, default_value_t = 100)]
    pub subs_per_token: usize,
    /// Idle time after the last subscription, before the RSS is read.
    #[arg(long, default_value_t = 2000)]
    pub settle_ms: u64,
    /// Longest wait for stragglers after the last publish.
    #[arg(long, default_value_t = 15)]
    pub drain_secs: u64,
    /// Hard limit on the whole run.
    #[arg(long, default_value_t = 300)]
    pub deadline_secs: u64,
    /// The app of the Pusher-protocol targets.
    #[command(flatten)]
    pub pusher: PusherApp,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutResult {
    pub kind: TargetKind,
    pub subscribers: usize,
    pub connected: usize,
    pub connect_failures: usize,
    pub connect_secs: f64,
    pub publishes_asked: u64,
    pub rate_asked: f64,
    pub published: u64,
    pub publish_failures: u64,
    /// Publishes answered per second, between the first and the last successful answer.
    pub publish_rate: f64,
    /// Round trip of the publish request, from its actual send.
    pub publish_http: Summary,
    /// How late each publish went out after its scheduled time (the publisher's own lag).
    pub send_lag: Summary,
    pub expected: u64,
    pub received: u64,
    /// Messages a subscriber received twice.
    pub duplicates: u64,
    /// Messages that arrived after a later one on the same subscriber (concurrent publishes
    /// may reach the server in another order than they were scheduled); not lost.
    pub reordered: u64,
    pub lost: u64,
    /// Messages received per second, from the first publish sent to the last receipt.
    pub delivered_per_sec: f64,
    /// Publish scheduled -> message received, over every (subscriber, message) pair.
    pub latency: Summary,
    /// Per publish: scheduled -> the first subscriber has it.
    pub first_subscriber: Summary,
    /// Per publish: scheduled -> the last subscriber has it.
    pub fanout_complete: Summary,
    pub disconnects: u64,
    pub server_rss_before_kib: u64,
    pub server_rss_idle_kib: u64,
    pub server_rss_after_kib: u64,
    /// Server RSS growth per idle subscribed connection.
    pub idle_kib_per_conn: f64,
    /// Server CPU seconds during the publish phase (publishing and draining).
    pub server_cpu_secs: f64,
    /// Server CPU microseconds per delivered frame (unique messages received) in that phase.
    pub server_cpu_us_per_frame: f64,
    /// This load generator's CPU seconds during the publish phase.
    pub loadgen_cpu_secs: f64,
    /// Wall time of the publish phase; CPU seconds near it mean a saturated CPU.
    pub publish_phase_secs: f64,
    pub loadgen_cpu_total_secs: f64,
    pub errors: Vec<String>,
}

/// Runs one fan-out measurement; it builds its own runtimes (one thread for the
/// subscribers, one for the publisher).
pub fn run(args: &FanoutArgs) -> anyhow::Result<FanoutResult> {
    now_ns();
    crate::raise_nofile_limit(args.subscribers as u64 + 64)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let deadline = Duration::from_secs(args.deadline_secs);
    let result = runtime.block_on(async {
        tokio::time::timeout(deadline, run_subscribers(args))
            .await
            .with_context(|| format!("the run passed its deadline of {}s", args.deadline_secs))?
    });
    // Dropping the runtime closes the sockets of any task still running.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Nanoseconds on this process's monotonic clock.
pub fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// What every subscriber task adds to; the runtime has one thread, so the lock is
/// never contended.
struct Shared {
    latency: Histogram<u64>,
    received: u64,
    duplicates: u64,
    reordered: u64,
    first_recv_ns: Vec<u64>,
    last_recv_ns: Vec<u64>,
    latest_recv_ns: u64,
    disconnects: u64,
    errors: Vec<String>,
}

impl Shared {
    fn error(&mut self, message: String) {
        // The first few say what went wrong; thousands of copies would not.
        if self.errors.len() < 5 {
            self.errors.push(message);
        }
    }
}

#[derive(Default)]
struct Progress {
    ready: AtomicUsize,
    failed: AtomicUsize,
}

async fn run_subscribers(args: &FanoutArgs) -> anyhow::Result<FanoutResult> {
    let started_cpu = proc_stats::self_cpu_seconds();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let sub_base = args.sub_base_url.as_deref().unwrap_or(&args.base_url);
    let endpoints = Endpoints {
        base_url: &args.base_url,
        sub_base_url: sub_base,
        admin_secret: args.admin_secret.as_deref(),
        pusher: Some(&args.pusher),
    };
    let prepared = target::prepare(args.kind, &endpoints, args.subscribers, args.subs_per_token, &http).await?;

    let before = proc_stats::sample(&args.server_pids);
    let shared = Arc::new(Mutex::new(Shared {
        latency: latency::histogram(),
        received: 0,
        duplicates: 0,
        reordered: 0,
        first_recv_ns: vec![u64::MAX; args.publishes as usize],
        last_recv_ns: vec![0; args.publishes as usize],
        latest_recv_ns: 0,
        disconnects: 0,
        errors: Vec::new(),
    }));
    let progress = Arc::new(Progress::default());
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);

    let connect_start = Instant::now();
    let mut tasks = Vec::with_capacity(args.subscribers);
    for i in 0..args.subscribers {
        let sub = Subscriber {
            url: prepared.ws_urls[i % prepared.ws_urls.len()].clone(),
            kind: args.kind,
            source_ip: args.source_ip,
            publishes: args.publishes,
            shared: shared.clone(),
            progress: progress.clone(),
            stop: stop_rx.clone(),
        };
        tasks.push(tokio::spawn(sub.run(gate.clone())));
    }
    loop {
        let done = progress.ready.load(Ordering::Relaxed) + progress.failed.load(Ordering::Relaxed);
        if done >= args.subscribers {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_secs = connect_start.elapsed().as_secs_f64();
    let connected = progress.ready.load(Ordering::Relaxed);
    let connect_failures = progress.failed.load(Ordering::Relaxed);

    tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
    let idle = proc_stats::sample(&args.server_pids);

    let server_cpu_start = proc_stats::sample(&args.server_pids).cpu_seconds;
    let loadgen_cpu_start = proc_stats::self_cpu_seconds();
    let phase_start = Instant::now();
    let outcome = if args.publishes > 0 && connected > 0 {
        publish_from_thread(&prepared, args).await?
    } else {
        PublishOutcome::new(0)
    };
    let expected = outcome.published * connected as u64;
    drain(&shared, expected, Duration::from_secs(args.drain_secs)).await;
    let server_cpu_end = proc_stats::sample(&args.server_pids).cpu_seconds;
    let loadgen_cpu_end = proc_stats::self_cpu_seconds();
    let phase_secs = phase_start.elapsed().as_secs_f64();
    let after = proc_stats::sample(&args.server_pids);

    let _ = stop_tx.send(true);
    for task in tasks {
        // Each task returns at once on stop; the timeout only guards a stuck socket.
        let _ = tokio::time::timeout(Duration::from_millis(200), task).await;
    }

    let shared = shared.lock().expect("no task panics while holding the lock");
    let unique = shared.received - shared.duplicates;
    let server_cpu_secs = server_cpu_end - server_cpu_start;
    let mut first = latency::histogram();
    let mut complete = latency::histogram();
    for (seq, &sent) in outcome.sent_ns.iter().enumerate() {
        if sent == 0 || shared.first_recv_ns[seq] == u64::MAX {
            continue;
        }
        latency::record(&mut first, shared.first_recv_ns[seq].saturating_sub(sent) / 1000);
        latency::record(&mut complete, shared.last_recv_ns[seq].saturating_sub(sent) / 1000);
    }
    let delivery_secs = shared.latest_recv_ns.saturating_sub(outcome.first_scheduled_ns) as f64 / 1e9;
    let mut errors = outcome.errors.clone();
    errors.extend(shared.errors.iter().cloned());
    Ok(FanoutResult {
        kind: args.kind,
        subscribers: args.subscribers,
        connected,
        connect_failures,
        connect_secs,
        publishes_asked: args.publishes,
        rate_asked: args.rate,
        published: outcome.published,
        publish_failures: outcome.failures,
        publish_rate: rate(
            outcome.published.saturating_sub(1),
            outcome.last_answer_ns.saturating_sub(outcome.first_answer_ns),
        ),
        publish_http: Summary::of(&outcome.http),
        send_lag: Summary::of(&outcome.send_lag),
        expected,
        received: shared.received,
        duplicates: shared.duplicates,
        reordered: shared.reordered,
        lost: expected.saturating_sub(unique),
        delivered_per_sec: if delivery_secs > 0.0 { unique as f64 / delivery_secs } else { 0.0 },
        latency: Summary::of(&shared.latency),
        first_subscriber: Summary::of(&first),
        fanout_complete: Summary::of(&complete),
        disconnects: shared.disconnects,
        server_rss_before_kib: before.rss_kib,
        server_rss_idle_kib: idle.rss_kib,
        server_rss_after_kib: after.rss_kib,
        idle_kib_per_conn: if connected > 0 {
            idle.rss_kib.saturating_sub(before.rss_kib) as f64 / connected as f64
        } else {
            0.0
        },
        server_cpu_secs,
        server_cpu_us_per_frame: if unique > 0 { server_cpu_secs * 1e6 / unique as f64 } else { 0.0 },
        loadgen_cpu_secs: loadgen_cpu_end - loadgen_cpu_start,
        publish_phase_secs: phase_secs,
        loadgen_cpu_total_secs: loadgen_cpu_end - started_cpu,
        errors,
    })
}

fn rate(count: u64, nanos: u64) -> f64 {
    if nanos == 0 { 0.0 } else { count as f64 / (nanos as f64 / 1e9) }
}

/// Waits until every expected message has arrived, nothing has arrived for 3 s, or
/// `limit` has passed.
async fn drain(shared: &Mutex<Shared>, expected: u64, limit: Duration) {
    let start = Instant::now();
    let mut last_count = u64::MAX;
    let mut last_change = Instant::now();
    while start.elapsed() < limit {
        let unique = {
            let s = shared.lock().expect("no task panics while holding the lock");
            s.received - s.duplicates
        };
        if unique >= expected {
            return;
        }
        if unique != last_count {
            last_count = unique;
            last_change = Instant::now();
        } else if last_change.elapsed() > Duration::from_secs(3) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Subscriber {
    url: String,
    kind: TargetKind,
    source_ip: Ipv4Addr,
    /// Publishes of the run: the size of the set of sequence numbers seen.
    publishes: u64,
    shared: Arc<Mutex<Shared>>,
    progress: Arc<Progress>,
    stop: watch::Receiver<bool>,
}

impl Subscriber {
    async fn run(mut self, gate: Arc<Semaphore>) {
        let permit = gate.acquire_owned().await;
        let connected =
            tokio::time::timeout(Duration::from_secs(30), connect(&self.url, self.source_ip, self.kind)).await;
        drop(permit);
        let (mut ws, heartbeat) = match connected {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return self.fail(format!("connect: {e:#}")),
            Err(_) => return self.fail("connect: no subscription within 30s".to_owned()),
        };
        self.progress.ready.fetch_add(1, Ordering::Relaxed);

        let mut ping = tokio::time::interval(heartbeat.unwrap_or(Duration::from_secs(3600)));
        ping.tick().await;
        let mut seen = Seen::new(self.publishes);
        loop {
            let mut pong = None;
            let mut pusher_pong = false;
            loop {
                match ws.next_frame() {
                    Ok(Some(Frame::Message(data))) => pusher_pong |= self.on_frame(data, &mut seen),
                    Ok(Some(Frame::Ping(data))) => pong = Some(data.to_vec()),
                    Ok(Some(Frame::Pong)) => {}
                    Ok(Some(Frame::Close(code))) => {
                        return self.disconnected(format!("closed by the server (code {code:?})"));
                    }
                    Ok(None) => break,
                    Err(e) => return self.disconnected(format!("read: {e:#}")),
                }
            }
            if let Some(data) = pong
                && let Err(e) = ws.send_pong(&data).await
            {
                return self.disconnected(format!("pong: {e}"));
            }
            if pusher_pong && let Err(e) = ws.send_text(pusher::PONG).await {
                return self.disconnected(format!("pusher:pong: {e}"));
            }
            tokio::select! {
                _ = self.stop.changed() => return,
                read = ws.fill() => match read {
                    Ok(0) => return self.disconnected("the server closed the connection".to_owned()),
                    Ok(_) => {}
                    Err(e) => return self.disconnected(format!("read: {e}")),
                },
                _ = ping.tick(), if heartbeat.is_some() => {
                    let ping = if self.kind.is_pusher() { pusher::PING } else { r#"{"type":"ping"}"# };
                    if let Err(e) = ws.send_text(ping).await {
                        return self.disconnected(format!("ping: {e}"));
                    }
                }
            }
        }
    }

    /// Counts a frame; true when it is a `pusher:ping`, which wants a `pusher:pong`.
    fn on_frame(&self, frame: &[u8], seen: &mut Seen) -> bool {
        let now = now_ns();
        let mut shared = self.shared.lock().expect("no task panics while holding the lock");
        let fields = if self.kind.is_pusher() {
            match pusher::inbound(frame) {
                Inbound::Bench { seq, sent_ns } => Some((seq, sent_ns)),
                Inbound::Ping => return true,
                Inbound::Error(message) => {
                    shared.error(message);
                    None
                }
                Inbound::Established { .. } | Inbound::Subscribed | Inbound::Other => None,
            }
        } else {
            target::bench_fields(frame)
        };
        let Some((seq, sent)) = fields else {
            if memchr::memmem::find(frame, b"\"type\":\"error\"").is_some() {
                shared.error(format!("error frame: {}", String::from_utf8_lossy(frame)));
            }
            return false;
        };
        latency::record(&mut shared.latency, now.saturating_sub(sent) / 1000);
        shared.received += 1;
        match seen.insert(seq) {
            Arrival::InOrder => {}
            Arrival::Reordered => shared.reordered += 1,
            Arrival::Duplicate => shared.duplicates += 1,
        }
        shared.latest_recv_ns = shared.latest_recv_ns.max(now);
        if let Some(first) = shared.first_recv_ns.get_mut(seq as usize) {
            *first = (*first).min(now);
        }
        if let Some(last) = shared.last_recv_ns.get_mut(seq as usize) {
            *last = (*last).max(now);
        }
        false
    }

    fn fail(&self, message: String) {
        self.progress.failed.fetch_add(1, Ordering::Relaxed);
        self.shared.lock().expect("no task panics while holding the lock").error(message);
    }

    fn disconnected(&self, message: String) {
        if *self.stop.borrow() {
            return;
        }
        let mut shared = self.shared.lock().expect("no task panics while holding the lock");
        shared.disconnects += 1;
        shared.error(message);
    }
}

/// Opens the connection (from `source_ip`) and, for our server and the Pusher-protocol
/// targets, does the subscribe handshake; returns the heartbeat interval the server asks for.
pub(crate) async fn connect(
    url: &str,
    source_ip: Ipv4Addr,
    kind: TargetKind,
) -> anyhow::Result<(WsClient, Option<Duration>)> {
    let mut ws = WsClient::connect(url, source_ip).await?;
    match kind {
        TargetKind::Baseline | TargetKind::Nchan => Ok((ws, None)),
        TargetKind::Realtime => {
            let connected: serde_json::Value = serde_json::from_slice(&ws.next_message().await?)?;
            if connected["type"] != "connected" {
                bail!("expected a connected frame, got {connected}");
            }
            let heartbeat = connected["heartbeat_interval_seconds"].as_u64().unwrap_or(25).max(1);
            let subscribe = serde_json::json!({ "type": "subscribe", "channel": target::CHANNEL }).to_string();
            ws.send_text(&subscribe).await?;
            loop {
                let frame: serde_json::Value = serde_json::from_slice(&ws.next_message().await?)?;
                match frame["type"].as_str() {
                    Some("subscribed") => break,
                    Some("error") => bail!("subscribe refused: {frame}"),
                    _ => {}
                }
            }
            Ok((ws, Some(Duration::from_secs(heartbeat))))
        }
        TargetKind::Pusher | TargetKind::Sockudo => {
            // A server over its connection quota may accept the socket and close it at
            // once: next_message fails then, and the subscriber counts as not connected.
            let activity_timeout = loop {
                match pusher::inbound(&ws.next_message().await?) {
                    Inbound::Established { activity_timeout } => break activity_timeout,
                    Inbound::Error(message) => bail!("refused: {message}"),
                    Inbound::Ping => ws.send_text(pusher::PONG).await?,
                    Inbound::Subscribed | Inbound::Bench { .. } | Inbound::Other => {}
                }
            };
            ws.send_text(&pusher::subscribe_frame()).await?;
            loop {
                match pusher::inbound(&ws.next_message().await?) {
                    Inbound::Subscribed => break,
                    Inbound::Error(message) => bail!("subscribe refused: {message}"),
                    Inbound::Ping => ws.send_text(pusher::PONG).await?,
                    Inbound::Established { .. } | Inbound::Bench { .. } | Inbound::Other => {}
                }
            }
            Ok((ws, Some(Duration::from_secs(activity_timeout))))
        }
    }
}

/// The sequence numbers one subscriber has received: a bit per publish of the run.
struct Seen {
    bits: Vec<u64>,
    highest: Option<u64>,
}

#[derive(Debug, PartialEq, Eq)]
enum Arrival {
    InOrder,
    /// First seen, but after a later sequence number.
    Reordered,
    Duplicate,
}

impl Seen {
    fn new(publishes: u64) -> Seen {
        Seen { bits: vec![0; publishes.div_ceil(64) as usize], highest: None }
    }

    fn insert(&mut self, seq: u64) -> Arrival {
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        // A sequence number beyond the run's publishes is not ours to count twice.
        if let Some(w) = self.bits.get_mut(word) {
            if *w & bit != 0 {
                return Arrival::Duplicate;
            }
            *w |= bit;
        }
        let reordered = self.highest.is_some_and(|h| seq < h);
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        if reordered { Arrival::Reordered } else { Arrival::InOrder }
    }
}

#[cfg(test)]
mod tests {
    use super::publisher::scheduled_offset_ns;
    use super::*;

    #[test]
    fn publishes_are_scheduled_at_the_offered_rate() {
        assert_eq!(scheduled_offset_ns(0, 20.0), 0);
        assert_eq!(scheduled_offset_ns(1, 20.0), 50_000_000);
        assert_eq!(scheduled_offset_ns(30, 15.0), 2_000_000_000);
    }

    #[test]
    fn a_late_sequence_number_is_reordered_and_a_repeat_is_a_duplicate() {
        let mut seen = Seen::new(100);
        assert_eq!(seen.insert(0), Arrival::InOrder);
        assert_eq!(seen.insert(2), Arrival::InOrder);
        assert_eq!(seen.insert(1), Arrival::Reordered);
        assert_eq!(seen.insert(2), Arrival::Duplicate);
        assert_eq!(seen.insert(1), Arrival::Duplicate);
        assert_eq!(seen.insert(99), Arrival::InOrder);
    }
}
