//! The publish load generator: REST publishes at a fixed concurrency, for a bounded
//! count and time, measuring requests per second and round-trip latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::latency::{self, Summary};
use crate::proc_stats;
use crate::target::{self, Endpoints, TargetKind};

/// Which endpoint takes the publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishTarget {
    /// Our `POST /v1/realtime/publish`: auth, idempotency key, metering, persistence.
    Realtime,
    /// The same on a server whose store is PostgreSQL (the load is the same).
    RealtimePostgres,
    /// The bare baseline's `POST /noop`, an axum handler that does nothing.
    Noop,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    #[arg(long, value_enum)]
    pub kind: PublishTarget,
    /// Base URL, `http://127.0.0.1:PORT`.
    #[arg(long)]
    pub base_url: String,
    /// Admin secret of our server (realtime only).
    #[arg(long, env = "REALTIME_BENCH_ADMIN_SECRET", hide_env_values = true)]
    pub admin_secret: Option<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Requests in all (after the warm-up).
    #[arg(long, default_value_t = 20_000)]
    pub requests: u64,
    /// Requests sent first and not measured.
    #[arg(long, default_value_t = 200)]
    pub warmup: u64,
    /// Stop after this many seconds even if not all requests were sent.
    #[arg(long, default_value_t = 15)]
    pub max_secs: u64,
    /// Server processes whose CPU time is reported.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishResult {
    pub kind: PublishTarget,
    pub concurrency: usize,
    pub ok: u64,
    pub failures: u64,
    pub requests_per_sec: f64,
    pub latency: Summary,
    pub server_cpu_secs: f64,
    pub loadgen_cpu_secs: f64,
    pub errors: Vec<String>,
}

pub fn run(args: &PublishArgs) -> anyhow::Result<PublishResult> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run_async(args))
}

struct Job {
    url: String,
    api_key: Option<String>,
    with_idempotency_key: bool,
    next: AtomicU64,
    end: u64,
    deadline: Instant,
}

async fn run_async(args: &PublishArgs) -> anyhow::Result<PublishResult> {
    let http =
        reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(args.concurrency).build()?;
    let (url, api_key) = match args.kind {
        PublishTarget::Noop => (format!("{}/noop", args.base_url), None),
        PublishTarget::Realtime | PublishTarget::RealtimePostgres => {
            let at = Endpoints {
                base_url: &args.base_url,
                sub_base_url: &args.base_url,
                admin_secret: args.admin_secret.as_deref(),
                pusher: None,
            };
            let prepared = target::prepare(TargetKind::Realtime, &at, 1, 1, &http).await?;
            (prepared.publish_url, prepared.api_key)
        }
    };
    let with_idempotency_key = args.kind != PublishTarget::Noop;
    let deadline = Instant::now() + Duration::from_secs(args.max_secs);

    let warmup = Arc::new(Job {
        url: url.clone(),
        api_key: api_key.clone(),
        with_idempotency_key,
        next: AtomicU64::new(0),
        end: args.warmup,
        deadline,
    });
    let _ = spread(&http, &warmup, args.concurrency).await;

    let server_cpu_start = proc_stats::sample(&args.server_pids).cpu_seconds;
    let loadgen_cpu_start = proc_stats::self_cpu_seconds();
    let start = Instant::now();
    let job = Arc::new(Job {
        url,
        api_key,
        with_idempotency_key,
        next: AtomicU64::new(args.warmup),
        end: args.warmup + args.requests,
        deadline,
    });
    let totals = spread(&http, &job, args.concurrency).await?;
    let elapsed = start.elapsed().as_secs_f64();
    Ok(PublishResult {
        kind: args.kind,
        concurrency: args.concurrency,
        ok: totals.ok,
        failures: totals.failures,
        requests_per_sec: totals.ok as f64 / elapsed,
        latency: Summary::of(&totals.latency),
        server_cpu_secs: proc_stats::sample(&args.server_pids).cpu_seconds - server_cpu_start,
        loadgen_cpu_secs: proc_stats::self_cpu_seconds() - loadgen_cpu_start,
        errors: totals.errors,
    })
}

struct Totals {
    ok: u64,
    failures: u64,
    latency: Histogram<u64>,
    errors: Vec<String>,
}

/// Runs `concurrency` workers over `job` and adds up what they saw.
async fn spread(http: &reqwest::Client, job: &Arc<Job>, concurrency: usize) -> anyhow::Result<Totals> {
    let workers: Vec<_> = (0..concurrency.max(1)).map(|_| tokio::spawn(worker(http.clone(), job.clone()))).collect();
    let mut totals = Totals { ok: 0, failures: 0, latency: latency::histogram(), errors: Vec::new() };
    for worker in workers {
        let part = worker.await.context("a publish worker panicked")?;
        totals.ok += part.ok;
        totals.failures += part.failures;
        totals.latency.add(&part.latency).context("merging histograms")?;
        totals.errors.extend(part.errors.into_iter().take(3usize.saturating_sub(totals.errors.len())));
    }
    Ok(totals)
}

async fn worker(http: reqwest::Client, job: Arc<Job>) -> Totals {
    let mut totals = Totals { ok: 0, failures: 0, latency: latency::histogram(), errors: Vec::new() };
    let body_of = |i: u64| match job.api_key {
        Some(_) => format!("{{\"channel\":\"{}\",\"event\":\"e\",\"data\":{{\"n\":{i}}}}}", target::CHANNEL),
        None => format!("{{\"data\":{{\"n\":{i}}}}}"),
    };
    loop {
        let i = job.next.fetch_add(1, Ordering::Relaxed);
        if i >= job.end || Instant::now() > job.deadline {
            return totals;
        }
        let mut request =
            http.post(&job.url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body_of(i));
        if let Some(key) = &job.api_key {
            request = request.bearer_auth(key);
        }
        if job.with_idempotency_key {
            request = request.header("Idempotency-Key", format!("bench-{i}"));
        }
        let start = Instant::now();
        let answer = request.send().await;
        let outcome = match answer {
            Ok(response) if response.status().is_success() => {
                response.bytes().await.map(|_| ()).map_err(|e| e.to_string())
            }
            Ok(response) => {
                let status = response.status();
                Err(format!("answered {status}: {}", response.text().await.unwrap_or_default()))
            }
            Err(e) => Err(e.to_string()),
        };
        latency::record(&mut totals.latency, start.elapsed().as_micros() as u64);
        match outcome {
            Ok(()) => totals.ok += 1,
            Err(e) => {
                totals.failures += 1;
                if totals.errors.len() < 3 {
                    totals.errors.push(e);
                }
            }
        }
    }
}
