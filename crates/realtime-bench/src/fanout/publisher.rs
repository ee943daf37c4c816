//! The open-loop publisher of the fan-out: publish n is sent at its scheduled time from
//! a task of its own, on a thread of its own, never waiting on the answer before it.

use super::*;

pub(super) struct PublishOutcome {
    pub(super) published: u64,
    pub(super) failures: u64,
    /// The scheduled time of each answered publish (0 for the others).
    pub(super) sent_ns: Vec<u64>,
    pub(super) first_scheduled_ns: u64,
    /// When the first and the last answer of a successful publish arrived.
    pub(super) first_answer_ns: u64,
    pub(super) last_answer_ns: u64,
    pub(super) http: Histogram<u64>,
    pub(super) send_lag: Histogram<u64>,
    pub(super) errors: Vec<String>,
}

impl PublishOutcome {
    pub(super) fn new(publishes: u64) -> PublishOutcome {
        PublishOutcome {
            published: 0,
            failures: 0,
            sent_ns: vec![0; publishes as usize],
            first_scheduled_ns: 0,
            first_answer_ns: u64::MAX,
            last_answer_ns: 0,
            http: latency::histogram(),
            send_lag: latency::histogram(),
            errors: Vec::new(),
        }
    }

    fn error(&mut self, message: String) {
        if self.errors.len() < 3 {
            self.errors.push(message);
        }
    }
}

/// Runs the publisher on a thread of its own, so its timer and its send timestamps
/// are not held up by the subscribers' work.
pub(super) async fn publish_from_thread(prepared: &Prepared, args: &FanoutArgs) -> anyhow::Result<PublishOutcome> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let prepared = Arc::new(prepared.clone());
    let (publishes, rate, pad) = (args.publishes, args.rate, Arc::<str>::from("x".repeat(args.pad_bytes)));
    let limit = Duration::from_secs(args.deadline_secs);
    std::thread::Builder::new().name("publisher".into()).spawn(move || {
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(publish(prepared, publishes, rate, pad, limit)));
        let _ = tx.send(result);
    })?;
    rx.await.context("the publisher thread died")?
}

/// Nanoseconds after the first publish's scheduled time at which publish `seq` is due.
pub(super) fn scheduled_offset_ns(seq: u64, rate: f64) -> u64 {
    (seq as f64 * 1e9 / rate.max(0.001)) as u64
}

/// One publish's fate, reported by its task.
pub(super) struct Sent {
    seq: u64,
    scheduled_ns: u64,
    sent_ns: u64,
    answered_ns: u64,
    outcome: Result<(), String>,
}

/// The open-loop publisher: publish `seq` is due at `seq / rate` s after the first, each
/// is sent from a task of its own, and the body carries the scheduled time.
pub(super) async fn publish(
    prepared: Arc<Prepared>,
    publishes: u64,
    rate: f64,
    pad: Arc<str>,
    limit: Duration,
) -> anyhow::Result<PublishOutcome> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let mut out = PublishOutcome::new(publishes);
    let mut tasks = tokio::task::JoinSet::new();
    let start = tokio::time::Instant::now();
    let origin_ns = now_ns();
    out.first_scheduled_ns = origin_ns;
    for seq in 0..publishes {
        let offset = scheduled_offset_ns(seq, rate);
        if Duration::from_nanos(offset) > limit {
            out.errors.push(format!("publisher stopped at its time limit after {seq} publishes"));
            break;
        }
        tokio::time::sleep_until(start + Duration::from_nanos(offset)).await;
        let scheduled_ns = origin_ns + offset;
        tasks.spawn(send_one(http.clone(), prepared.clone(), seq, scheduled_ns, pad.clone()));
    }
    while let Some(joined) = tasks.join_next().await {
        let sent = joined.context("a publish task panicked")?;
        latency::record(&mut out.send_lag, sent.sent_ns.saturating_sub(sent.scheduled_ns) / 1000);
        latency::record(&mut out.http, sent.answered_ns.saturating_sub(sent.sent_ns) / 1000);
        match sent.outcome {
            Ok(()) => {
                out.first_answer_ns = out.first_answer_ns.min(sent.answered_ns);
                out.last_answer_ns = out.last_answer_ns.max(sent.answered_ns);
                out.published += 1;
                out.sent_ns[sent.seq as usize] = sent.scheduled_ns;
            }
            Err(message) => {
                out.failures += 1;
                out.error(message);
            }
        }
    }
    Ok(out)
}

pub(super) async fn send_one(
    http: reqwest::Client,
    prepared: Arc<Prepared>,
    seq: u64,
    scheduled_ns: u64,
    pad: Arc<str>,
) -> Sent {
    let body = target::publish_body(prepared.kind, seq, scheduled_ns, &pad);
    let url = match &prepared.pusher {
        Some(app) => {
            let query = app.signed_query(&app.events_path(), body.as_bytes(), pusher::unix_now());
            format!("{}?{query}", prepared.publish_url)
        }
        None => prepared.publish_url.clone(),
    };
    let sent_ns = now_ns();
    let mut request = http.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
    if let Some(key) = &prepared.api_key {
        request = request.bearer_auth(key);
    }
    let outcome = match request.send().await {
        // Reading the body keeps the connection reusable.
        Ok(response) if response.status().is_success() => {
            response.bytes().await.map(drop).map_err(|e| format!("publish: {e}"))
        }
        Ok(response) => {
            let status = response.status();
            Err(format!("publish answered {status}: {}", response.text().await.unwrap_or_default()))
        }
        Err(e) => Err(format!("publish: {e}")),
    };
    Sent { seq, scheduled_ns, sent_ns, answered_ns: now_ns(), outcome }
}
