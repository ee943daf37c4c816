//! The recovery load generator: a backlog of messages published in batches to one
//! channel, then subscribers coming back one at a time with `since` the position just
//! before it. Each recovery is timed from sending `subscribe` to receiving the message
//! with the last offset, and checked: `recovered: true`, every offset once and in order,
//! and nothing after the last.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::latency::{self, Summary};
use crate::proc_stats;
use crate::target::{self, Endpoints, TargetKind};
use crate::wsclient::WsClient;

/// Messages per batch publish: the most the contract takes at once.
const BATCH: u64 = 100;

#[derive(Debug, Clone, clap::Args)]
pub struct RecoveryArgs {
    /// Base URL of our server, `http://127.0.0.1:PORT`.
    #[arg(long)]
    pub base_url: String,
    /// Admin secret of our server (creates the bench account).
    #[arg(long, env = "REALTIME_BENCH_ADMIN_SECRET", hide_env_values = true)]
    pub admin_secret: Option<String>,
    /// Messages published before the subscribers come back, all recovered by each. The
    /// server replays at most 1,000 and must retain as many (`history_per_channel`).
    #[arg(long, default_value_t = 1000)]
    pub messages: u64,
    /// Measured recoveries, one after the other, each on a connection of its own.
    #[arg(long, default_value_t = 30)]
    pub repetitions: usize,
    /// Recoveries run first and checked, but not timed.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Bytes of padding in each message's data.
    #[arg(long, default_value_t = 32)]
    pub pad_bytes: usize,
    /// Longest wait for one recovery, connection included.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
    /// No recovery starts after this many seconds of recoveries.
    #[arg(long, default_value_t = 60)]
    pub max_secs: u64,
    /// Server processes whose CPU time is reported.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// Loopback address the subscribers connect from.
    #[arg(long, default_value = "127.0.0.1")]
    pub source_ip: Ipv4Addr,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryResult {
    /// Messages each recovery replays.
    pub messages: u64,
    pub repetitions_asked: usize,
    /// Measured recoveries attempted (fewer than asked when the time limit came first).
    pub repetitions: usize,
    pub warmup: usize,
    /// Recoveries (warm-up included) that were refused, cut short, timed out, or had a
    /// missing, repeated or out-of-order offset.
    pub failures: u64,
    /// `subscribe` sent -> the message with the last offset received, per recovery.
    pub latency: Summary,
    /// `subscribe` sent -> `subscribed` received, per recovery.
    pub subscribed: Summary,
    /// The longest wait between two consecutive frames of a recovery, per recovery: a
    /// stall (a timer, a lock) shows as one long pause, a busy CPU as many short ones.
    pub longest_pause: Summary,
    /// Messages replayed per second by the median recovery: messages / p50.
    pub replayed_per_sec: f64,
    /// Wall time of the batch publishes of the backlog.
    pub publish_secs: f64,
    /// Server CPU seconds over the measured recoveries.
    pub server_cpu_secs: f64,
    /// This load generator's CPU seconds over the measured recoveries.
    pub loadgen_cpu_secs: f64,
    /// Wall time of the measured recoveries, connections included.
    pub recoveries_secs: f64,
    /// What went wrong, the first few.
    pub errors: Vec<String>,
}

pub fn run(args: &RecoveryArgs) -> anyhow::Result<RecoveryResult> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run_async(args))
}

/// Where the backlog lies in the channel's stream: offsets `since + 1 ..= last` of `epoch`.
#[derive(Debug, Clone)]
struct Backlog {
    epoch: String,
    since: u64,
    last: u64,
}

/// One recovery's times, from sending `subscribe`.
struct Timing {
    subscribed: Duration,
    last: Duration,
    longest_pause: Duration,
}

async fn run_async(args: &RecoveryArgs) -> anyhow::Result<RecoveryResult> {
    ensure!(args.messages > 0, "--messages must be at least 1");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let at = Endpoints {
        base_url: &args.base_url,
        sub_base_url: &args.base_url,
        admin_secret: args.admin_secret.as_deref(),
        pusher: None,
    };
    let prepared = target::prepare(TargetKind::Realtime, &at, 1, 1, &http).await?;
    let api_key = prepared.api_key.context("the realtime target has no API key")?;
    let ws_url = prepared.ws_urls.first().context("the realtime target has no WebSocket URL")?.clone();

    let publish_start = Instant::now();
    let pad = "x".repeat(args.pad_bytes);
    let backlog = publish_backlog(&http, &args.base_url, &api_key, args.messages, &pad).await?;
    let publish_secs = publish_start.elapsed().as_secs_f64();

    let limit = Duration::from_secs(args.timeout_secs);
    let mut failures = 0;
    let mut errors = Vec::new();
    let mut failed = |error: anyhow::Error| {
        failures += 1;
        // The first few kinds of failure say what went wrong; more copies would not.
        let error = format!("{error:#}");
        if errors.len() < 3 && !errors.contains(&error) {
            errors.push(error);
        }
    };
    for _ in 0..args.warmup {
        if let Err(error) = recover(&ws_url, args.source_ip, &backlog, limit).await {
            failed(error);
        }
    }

    let (mut to_last, mut to_subscribed, mut pauses) =
        (latency::histogram(), latency::histogram(), latency::histogram());
    let server_cpu_start = proc_stats::sample(&args.server_pids).cpu_seconds;
    let loadgen_cpu_start = proc_stats::self_cpu_seconds();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.max_secs);
    let mut attempted = 0;
    while attempted < args.repetitions && Instant::now() < deadline {
        attempted += 1;
        match recover(&ws_url, args.source_ip, &backlog, limit).await {
            Ok(timing) => {
                latency::record(&mut to_last, timing.last.as_micros() as u64);
                latency::record(&mut to_subscribed, timing.subscribed.as_micros() as u64);
                latency::record(&mut pauses, timing.longest_pause.as_micros() as u64);
            }
            Err(error) => failed(error),
        }
    }
    let recoveries_secs = start.elapsed().as_secs_f64();
    let server_cpu_secs = proc_stats::sample(&args.server_pids).cpu_seconds - server_cpu_start;
    let loadgen_cpu_secs = proc_stats::self_cpu_seconds() - loadgen_cpu_start;

    let latency = Summary::of(&to_last);
    let replayed_per_sec = if latency.p50_ms > 0.0 { args.messages as f64 / (latency.p50_ms / 1000.0) } else { 0.0 };
    Ok(RecoveryResult {
        messages: args.messages,
        repetitions_asked: args.repetitions,
        repetitions: attempted,
        warmup: args.warmup,
        failures,
        latency,
        subscribed: Summary::of(&to_subscribed),
        longest_pause: Summary::of(&pauses),
        replayed_per_sec,
        publish_secs,
        server_cpu_secs,
        loadgen_cpu_secs,
        recoveries_secs,
        errors,
    })
}

/// The answer to a batch publish, as far as the bench reads it.
#[derive(Deserialize)]
struct BatchAnswer {
    messages: Vec<PublishedAt>,
}

#[derive(Deserialize)]
struct PublishedAt {
    epoch: String,
    offset: u64,
}

/// Publishes `messages` messages in batches and returns where they lie; they must be
/// consecutive, which they are with one publisher on a fresh channel.
async fn publish_backlog(
    http: &reqwest::Client,
    base_url: &str,
    api_key: &str,
    messages: u64,
    pad: &str,
) -> anyhow::Result<Backlog> {
    let url = format!("{base_url}/v1/realtime/publish/batch");
    let mut backlog: Option<Backlog> = None;
    let mut sent = 0;
    while sent < messages {
        let count = BATCH.min(messages - sent);
        let batch: Vec<_> = (sent..sent + count)
            .map(|n| json!({ "channel": target::CHANNEL, "event": "e", "data": { "n": n, "pad": pad } }))
            .collect();
        let response = http
            .post(&url)
            .bearer_auth(api_key)
            .header("Idempotency-Key", format!("bench-recovery-{sent}"))
            .json(&json!({ "messages": batch }))
            .send()
            .await
            .context("publishing a batch")?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("publish/batch answered {status}: {text}");
        }
        let answer: BatchAnswer =
            serde_json::from_str(&text).with_context(|| format!("parsing the publish/batch answer: {text}"))?;
        ensure!(
            answer.messages.len() as u64 == count,
            "publish/batch answered {} positions for {count}",
            answer.messages.len()
        );
        for position in answer.messages {
            let backlog = backlog.get_or_insert_with(|| Backlog {
                epoch: position.epoch.clone(),
                since: position.offset.saturating_sub(1),
                last: position.offset.saturating_sub(1),
            });
            ensure!(
                position.epoch == backlog.epoch && position.offset == backlog.last + 1,
                "publish/batch gave position {}/{} after {}/{}",
                position.epoch,
                position.offset,
                backlog.epoch,
                backlog.last
            );
            backlog.last = position.offset;
        }
        sent += count;
    }
    backlog.context("no message was published")
}

/// A server frame, as far as the bench reads it.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    epoch: Option<&'a str>,
    offset: Option<u64>,
    recovered: Option<bool>,
}

/// What a frame was to the recovery that received it.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Subscribed,
    Message,
    Pong,
    /// A frame the recovery does not look at.
    Other,
}

/// The checks of one recovery, frame by frame: `subscribed` with `recovered: true`
/// first, then every offset of the backlog once and in order, then no message at all.
struct Replay<'a> {
    backlog: &'a Backlog,
    subscribed: bool,
    due: u64,
}

impl Replay<'_> {
    fn new(backlog: &Backlog) -> Replay<'_> {
        Replay { backlog, subscribed: false, due: backlog.since + 1 }
    }

    /// Whether the message with the last offset has arrived.
    fn complete(&self) -> bool {
        self.due > self.backlog.last
    }

    /// Takes the next frame; an error says how the recovery failed.
    fn take(&mut self, bytes: &[u8]) -> anyhow::Result<Seen> {
        let lossy = || String::from_utf8_lossy(bytes);
        let frame: Incoming<'_> =
            serde_json::from_slice(bytes).with_context(|| format!("parsing a frame: {}", lossy()))?;
        match frame.kind {
            "subscribed" => {
                ensure!(!self.subscribed, "a second subscribed frame: {}", lossy());
                ensure!(frame.recovered == Some(true), "not recovered: {}", lossy());
                self.subscribed = true;
                Ok(Seen::Subscribed)
            }
            "message" => {
                ensure!(self.subscribed, "a message before the subscribed frame: {}", lossy());
                ensure!(frame.epoch == Some(self.backlog.epoch.as_str()), "a message of another epoch: {}", lossy());
                let offset = frame.offset.context("a message without an offset")?;
                ensure!(!self.complete(), "offset {offset} arrived after the last one, {}", self.backlog.last);
                // A repeat, a reordering and a gap all show as an offset that is not the due one.
                ensure!(offset == self.due, "offset {offset} arrived when {} was due", self.due);
                self.due += 1;
                Ok(Seen::Message)
            }
            "pong" => Ok(Seen::Pong),
            "error" => bail!("error frame: {}", lossy()),
            _ => Ok(Seen::Other),
        }
    }
}

/// One recovery on a connection of its own, within `limit`.
async fn recover(url: &str, source_ip: Ipv4Addr, backlog: &Backlog, limit: Duration) -> anyhow::Result<Timing> {
    tokio::time::timeout(limit, recover_unbounded(url, source_ip, backlog))
        .await
        .with_context(|| format!("no complete recovery within {} s", limit.as_secs()))?
}

async fn recover_unbounded(url: &str, source_ip: Ipv4Addr, backlog: &Backlog) -> anyhow::Result<Timing> {
    let mut ws = WsClient::connect(url, source_ip).await.context("connect")?;
    let first = ws.next_message().await?;
    let connected = serde_json::from_slice::<Incoming<'_>>(&first).is_ok_and(|frame| frame.kind == "connected");
    ensure!(connected, "expected a connected frame: {}", String::from_utf8_lossy(&first));
    let subscribe = json!({
        "type": "subscribe",
        "channel": target::CHANNEL,
        "since": { "epoch": backlog.epoch, "offset": backlog.since },
    })
    .to_string();

    let mut replay = Replay::new(backlog);
    let start = Instant::now();
    ws.send_text(&subscribe).await?;
    let mut subscribed = None;
    let (mut previous, mut longest_pause) = (start.elapsed(), Duration::ZERO);
    while !replay.complete() {
        let seen = replay.take(&ws.next_message().await?)?;
        let now = start.elapsed();
        if seen == Seen::Subscribed {
            subscribed = Some(now);
        } else {
            longest_pause = longest_pause.max(now - previous);
        }
        previous = now;
    }
    let last = start.elapsed();
    let subscribed = subscribed.context("no subscribed frame")?;

    // The server answers a ping after whatever it queued before it, so a message between
    // the last offset and the pong would be one too many.
    ws.send_text(r#"{"type":"ping"}"#).await?;
    while replay.take(&ws.next_message().await?)? != Seen::Pong {}
    Ok(Timing { subscribed, last, longest_pause })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog() -> Backlog {
        Backlog { epoch: "ch_1".to_owned(), since: 10, last: 12 }
    }

    const SUBSCRIBED: &str = r#"{"type":"subscribed","channel":"bench","members":[],"position":{"epoch":"ch_1","offset":10},"recovered":true}"#;

    fn message(offset: u64) -> String {
        format!(
            r#"{{"type":"message","channel":"bench","message_id":"m{offset}","epoch":"ch_1","offset":{offset},"event":"e","data":{{"n":1}},"published_at":"2026-01-01T00:00:00Z"}}"#
        )
    }

    fn take_all(replay: &mut Replay<'_>, frames: &[String]) -> anyhow::Result<()> {
        frames.iter().try_for_each(|frame| replay.take(frame.as_bytes()).map(drop))
    }

    #[test]
    fn every_offset_once_in_order_completes_the_recovery() {
        let backlog = backlog();
        let mut replay = Replay::new(&backlog);
        assert_eq!(replay.take(SUBSCRIBED.as_bytes()).unwrap(), Seen::Subscribed);
        assert_eq!(replay.take(message(11).as_bytes()).unwrap(), Seen::Message);
        assert!(!replay.complete());
        assert_eq!(replay.take(message(12).as_bytes()).unwrap(), Seen::Message);
        assert!(replay.complete());
        assert_eq!(replay.take(br#"{"type":"pong"}"#).unwrap(), Seen::Pong);
    }

    #[test]
    fn a_repeated_or_skipped_offset_fails_the_recovery() {
        let backlog = backlog();
        let repeated = take_all(&mut Replay::new(&backlog), &[SUBSCRIBED.to_owned(), message(11), message(11)]);
        assert_eq!(repeated.unwrap_err().to_string(), "offset 11 arrived when 12 was due");
        let skipped = take_all(&mut Replay::new(&backlog), &[SUBSCRIBED.to_owned(), message(12)]);
        assert_eq!(skipped.unwrap_err().to_string(), "offset 12 arrived when 11 was due");
    }

    #[test]
    fn a_message_after_the_last_offset_fails_the_recovery() {
        let backlog = backlog();
        let frames = [SUBSCRIBED.to_owned(), message(11), message(12), message(12)];
        let error = take_all(&mut Replay::new(&backlog), &frames).unwrap_err();
        assert_eq!(error.to_string(), "offset 12 arrived after the last one, 12");
    }

    #[test]
    fn a_refused_recovery_or_a_message_before_subscribed_fails() {
        let backlog = backlog();
        let refused = SUBSCRIBED.replace(r#""recovered":true"#, r#""recovered":false,"recovery_failure":"too_old""#);
        let error = Replay::new(&backlog).take(refused.as_bytes()).unwrap_err();
        assert!(error.to_string().starts_with("not recovered: "), "{error}");
        let error = Replay::new(&backlog).take(message(11).as_bytes()).unwrap_err();
        assert!(error.to_string().starts_with("a message before the subscribed frame"), "{error}");
    }
}
