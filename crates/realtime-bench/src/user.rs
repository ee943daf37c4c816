//! The user-addressed messages load generator (seed 002): three measurements, one after
//! the other, each with a user of its own on one account of our server.
//!
//! - **Reliable latency**: one connected client of the user; reliable messages sent one at
//!   a time, each timed from just before its `POST /v1/realtime/user/message/send` to the
//!   arrival of the `user.message` with its `message_id`. The client acks each on arrival.
//! - **Redelivery**: a backlog of reliable messages sent while the user is offline, then
//!   the user connects, timed until every message has arrived. The server redelivers a
//!   bounded number per connect (500), so a larger backlog takes several: the client acks
//!   the last message a connect brought and connects again, as a real client would have to.
//! - **Command round trip**: a connected client that answers every `user.command` at once
//!   with its data; commands sent one at a time, each timed from the REST call to its 200
//!   `answered` answer carrying that data.
//!
//! Every message is checked: it arrives once, in `sequence` order, with the sequence its
//! send answered, and once acked it does not come back on a later connect.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::latency::{self, Summary};
use crate::proc_stats;
use crate::target;
use crate::wsclient::WsClient;

mod check;

pub use check::Problems;
use check::{Checks, Notes, Seen, Tally};

const PING: &str = r#"{"type":"ping"}"#;

#[derive(Debug, Clone, clap::Args)]
pub struct UserArgs {
    /// Base URL of our server, `http://127.0.0.1:PORT`.
    #[arg(long)]
    pub base_url: String,
    /// Admin secret of our server (creates the bench account).
    #[arg(long, env = "REALTIME_BENCH_ADMIN_SECRET", hide_env_values = true)]
    pub admin_secret: Option<String>,
    /// Reliable messages sent to a connected client, one at a time, each timed.
    #[arg(long, default_value_t = 500)]
    pub messages: u64,
    /// Reliable messages sent while the user is offline, then redelivered on connect. The
    /// server refuses a user's 1,001st unacknowledged message.
    #[arg(long, default_value_t = 1000)]
    pub backlog: u64,
    /// Commands sent to the answering client, one at a time, each timed.
    #[arg(long, default_value_t = 200)]
    pub commands: u64,
    /// Messages and commands sent first and checked, but not timed.
    #[arg(long, default_value_t = 20)]
    pub warmup: u64,
    /// Longest wait for one REST answer, one connect, a message after the last send, or
    /// the whole redelivery.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
    /// No message or command of a measurement is sent after this many seconds of it.
    #[arg(long, default_value_t = 60)]
    pub max_secs: u64,
    /// Server processes whose CPU time is reported.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// Loopback address the clients connect from.
    #[arg(long, default_value = "127.0.0.1")]
    pub source_ip: Ipv4Addr,
}

/// The figures of one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserResult {
    pub reliable: ReliableLatency,
    pub redelivery: Redelivery,
    pub commands: CommandRoundTrip,
    /// Every problem of the three measurements.
    pub failures: u64,
    /// What went wrong, the first few.
    pub errors: Vec<String>,
}

/// Reliable messages to a connected client.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReliableLatency {
    pub messages_asked: u64,
    pub warmup: u64,
    /// Sends answered 200, warm-up included.
    pub sent: u64,
    /// Send call -> the `user.message` with its id, per timed message.
    pub latency: Summary,
    /// Send call -> its 200 answer, per timed message.
    pub answer: Summary,
    /// Timed messages that arrived before their send call answered.
    pub arrived_before_answer: u64,
    pub problems: Problems,
    /// Wall time of the sends, warm-up included.
    pub secs: f64,
    /// Server CPU seconds over the sends.
    pub server_cpu_secs: f64,
}

/// A backlog delivered on connect.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Redelivery {
    pub messages_asked: u64,
    /// Sends answered 200 while the user was offline.
    pub messages: u64,
    /// Wall time of those sends, one at a time.
    pub send_secs: f64,
    /// Connects it took for every message to arrive.
    pub connects: u64,
    /// Messages the first connect brought.
    pub first_connect: u64,
    /// From the start of the first connect to the arrival of the last message.
    pub all_arrived_ms: f64,
    /// Messages / `all_arrived_ms`.
    pub per_sec: f64,
    pub problems: Problems,
    /// Server CPU seconds from the first connect to the last arrival's ack.
    pub server_cpu_secs: f64,
}

/// Commands to a client that answers at once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CommandRoundTrip {
    pub commands_asked: u64,
    pub warmup: u64,
    /// Commands answered 200 `answered` with the client's response, warm-up included.
    pub answered: u64,
    /// Command call -> its 200 `answered` answer, per timed command.
    pub latency: Summary,
    pub problems: Problems,
    /// Wall time of the commands, warm-up included.
    pub secs: f64,
    /// Server CPU seconds over the commands.
    pub server_cpu_secs: f64,
}

pub fn run(args: &UserArgs) -> anyhow::Result<UserResult> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: &UserArgs) -> anyhow::Result<UserResult> {
    ensure!(args.messages > 0 && args.backlog > 0 && args.commands > 0, "every count must be at least 1");
    let limit = Duration::from_secs(args.timeout_secs);
    // A command call waits up to `limit` for its answer on the server, then answers.
    let http = reqwest::Client::builder().timeout(limit + Duration::from_secs(5)).build()?;
    let secret = args.admin_secret.as_deref().context("--admin-secret is needed")?;
    let api_key = target::create_account(&http, &args.base_url, secret).await?;
    let bench = Bench { http, base_url: &args.base_url, api_key, source_ip: args.source_ip, limit };

    let mut notes = Notes::default();
    let reliable = reliable_latency(&bench, args, &mut notes).await.context("reliable latency")?;
    let redelivery = redelivery(&bench, args, &mut notes).await.context("redelivery")?;
    let commands = command_round_trip(&bench, args, &mut notes).await.context("command round trip")?;
    let failures = reliable.problems.total() + redelivery.problems.total() + commands.problems.total();
    Ok(UserResult { reliable, redelivery, commands, failures, errors: notes.0 })
}

/// How to reach the server under test.
struct Bench<'a> {
    http: reqwest::Client,
    base_url: &'a str,
    api_key: String,
    source_ip: Ipv4Addr,
    limit: Duration,
}

/// A reliable message as its send answered.
struct Sent {
    /// Its place among the measurement's sends, warm-up first.
    n: u64,
    message_id: String,
    sequence: u64,
    start: Instant,
    answered: Duration,
}

impl Bench<'_> {
    /// The WebSocket URL of a new token of `user`.
    async fn token(&self, user: &str) -> anyhow::Result<String> {
        let claims = json!({ "client_id": user, "user_id": user, "ttl_seconds": 3600 });
        target::token_url(&self.http, self.base_url, &self.api_key, &claims).await.context("issuing a user token")
    }

    /// A new connection of the user `url` is a token of, past its `connected` frame.
    async fn connect(&self, url: &str) -> anyhow::Result<WsClient> {
        let connect = async {
            let mut ws = WsClient::connect(url, self.source_ip).await.context("connect")?;
            let first = ws.next_message().await?;
            ensure!(check::is_connected(&first), "expected a connected frame: {}", String::from_utf8_lossy(&first));
            Ok(ws)
        };
        tokio::time::timeout(self.limit, connect)
            .await
            .with_context(|| format!("no connected frame within {} s", self.limit.as_secs()))?
    }

    /// A POST answered 200, and its JSON body.
    async fn post(&self, path: &str, idempotency_key: String, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(&self.api_key)
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let text = response.text().await.with_context(|| format!("POST {path}: reading the answer"))?;
        ensure!(status == reqwest::StatusCode::OK, "POST {path} answered {status}: {text}");
        serde_json::from_str(&text).with_context(|| format!("POST {path}: parsing the answer {text}"))
    }

    /// Sends reliable message `n` of a measurement to `user`.
    async fn send_reliable(&self, user: &str, n: u64) -> anyhow::Result<Sent> {
        let start = Instant::now();
        let body = json!({ "target_user_id": user, "delivery": "reliable", "payload": { "n": n } });
        let answer = self.post("/v1/realtime/user/message/send", format!("bench-{user}-{n}"), &body).await?;
        let answered = start.elapsed();
        let message_id = answer["message_id"].as_str().with_context(|| format!("no message_id in {answer}"))?;
        let sequence = answer["sequence"].as_u64().with_context(|| format!("no sequence in {answer}"))?;
        Ok(Sent { n, message_id: message_id.to_owned(), sequence, start, answered })
    }

    /// Sends command `n` to `user` and checks that it was answered with its own data.
    async fn send_command(&self, user: &str, n: u64) -> anyhow::Result<()> {
        let data = json!({ "n": n });
        let timeout = self.limit.as_secs().max(1);
        let body = json!({ "target_user_id": user, "type": "bench", "data": data, "timeout": timeout });
        let answer = self.post("/v1/realtime/user/command/send", format!("bench-{user}-{n}"), &body).await?;
        ensure!(
            answer["status"] == "answered" && answer["response"] == data,
            "command {n} was answered {answer}, not with its data"
        );
        Ok(())
    }
}

/// When a client acks the reliable messages it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acks {
    /// Each as it arrives.
    Each,
    /// Later, the last one (which covers every earlier one).
    Later,
}

fn ack(message_id: &str) -> String {
    json!({ "type": "ack", "message_id": message_id }).to_string()
}

/// Reads frames until `pong`, taking messages into `tally`.
async fn until_pong(ws: &mut WsClient, tally: &mut Tally, acks: Acks, checks: &mut Checks) -> anyhow::Result<()> {
    loop {
        let bytes = ws.next_message().await?;
        match tally.take(&bytes, Instant::now()) {
            Ok(Seen::Pong) => return Ok(()),
            Ok(Seen::Message { message_id, fresh: true }) if acks == Acks::Each => {
                ws.send_text(&ack(&message_id)).await?;
            }
            Ok(_) => {}
            Err(error) => checks.bad_frame(&error),
        }
    }
}

/// Waits until the server has handled every frame sent before (it handles a connection's
/// frames in order, so its `pong` comes after), taking and acking what arrives meanwhile.
async fn settle(ws: &mut WsClient, tally: &mut Tally, limit: Duration, checks: &mut Checks) -> anyhow::Result<()> {
    ws.send_text(PING).await?;
    tokio::time::timeout(limit, until_pong(ws, tally, Acks::Each, checks)).await.context("no pong")?
}

/// Counts the messages a new connection of the user receives: after its acks, none should
/// come back.
async fn check_left_over(bench: &Bench<'_>, url: &str, checks: &mut Checks) {
    let count = async {
        let mut ws = bench.connect(url).await?;
        let mut tally = Tally::default();
        settle(&mut ws, &mut tally, bench.limit, checks).await?;
        anyhow::Ok(tally.len() as u64 + tally.duplicated())
    };
    match count.await.context("checking that acked messages stay acked") {
        Ok(left) => checks.problems.unacked_left = left,
        Err(error) => checks.bad_frame(&error),
    }
}

fn server_cpu(args: &UserArgs) -> f64 {
    proc_stats::sample(&args.server_pids).cpu_seconds
}

async fn reliable_latency(bench: &Bench<'_>, args: &UserArgs, notes: &mut Notes) -> anyhow::Result<ReliableLatency> {
    let user = "bench-reliable";
    let url = bench.token(user).await?;
    let mut ws = bench.connect(&url).await?;
    let (mut tally, mut reader) = (Tally::default(), Checks::default());
    let (done, sent_count) = oneshot::channel();
    let cpu_start = server_cpu(args);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.max_secs);
    let sender = async {
        let (mut sent, mut checks) = (Vec::new(), Checks::default());
        for n in 0..args.warmup + args.messages {
            if Instant::now() > deadline {
                break;
            }
            match bench.send_reliable(user, n).await {
                Ok(message) => sent.push(message),
                Err(error) => checks.failed_call(&error),
            }
        }
        let _ = done.send(sent.len());
        (sent, checks)
    };
    let receiver = receive_acking(&mut ws, &mut tally, sent_count, bench.limit, &mut reader);
    let ((sent, sender_checks), received) = tokio::join!(sender, receiver);
    let secs = start.elapsed().as_secs_f64();
    let server_cpu_secs = server_cpu(args) - cpu_start;
    let mut checks = reader;
    checks.absorb(sender_checks);
    let settled = match received {
        Ok(()) => settle(&mut ws, &mut tally, bench.limit, &mut checks).await,
        Err(error) => Err(error),
    };
    if let Err(error) = settled {
        checks.bad_frame(&error);
    }
    drop(ws);
    check_left_over(bench, &url, &mut checks).await;

    let (mut to_arrival, mut to_answer) = (latency::histogram(), latency::histogram());
    let mut arrived_before_answer = 0;
    for message in sent.iter().filter(|m| m.n >= args.warmup) {
        latency::record(&mut to_answer, micros(message.answered));
        if let Some(at) = tally.arrival(&message.message_id) {
            let waited = at.saturating_duration_since(message.start);
            latency::record(&mut to_arrival, micros(waited));
            arrived_before_answer += u64::from(waited < message.answered);
        }
    }
    let problems = checks.with_tally(&tally, answered(&sent), notes);
    Ok(ReliableLatency {
        messages_asked: args.messages,
        warmup: args.warmup,
        sent: sent.len() as u64,
        latency: Summary::of(&to_arrival),
        answer: Summary::of(&to_answer),
        arrived_before_answer,
        problems,
        secs,
        server_cpu_secs,
    })
}

/// Receives messages and acks each as it arrives, until as many as `sent_count` says
/// were sent have arrived, or no more came for `grace` after it said so.
async fn receive_acking(
    ws: &mut WsClient,
    tally: &mut Tally,
    mut sent_count: oneshot::Receiver<usize>,
    grace: Duration,
    checks: &mut Checks,
) -> anyhow::Result<()> {
    let mut expected = None;
    let mut give_up = Instant::now();
    loop {
        if expected.is_some_and(|n| tally.len() >= n) {
            return Ok(());
        }
        tokio::select! {
            bytes = ws.next_message() => match tally.take(&bytes?, Instant::now()) {
                Ok(Seen::Message { message_id, fresh: true }) => {
                    ws.send_text(&ack(&message_id)).await?;
                    give_up = Instant::now() + grace;
                }
                Ok(_) => {}
                Err(error) => checks.bad_frame(&error),
            },
            count = &mut sent_count, if expected.is_none() => {
                expected = Some(count.unwrap_or(0));
                give_up = Instant::now() + grace;
            }
            () = tokio::time::sleep_until(give_up.into()), if expected.is_some() => return Ok(()),
        }
    }
}

async fn redelivery(bench: &Bench<'_>, args: &UserArgs, notes: &mut Notes) -> anyhow::Result<Redelivery> {
    let user = "bench-redelivery";
    let url = bench.token(user).await?;
    let mut checks = Checks::default();
    let send_start = Instant::now();
    let send_deadline = send_start + Duration::from_secs(args.max_secs);
    let mut sent = Vec::new();
    for n in 0..args.backlog {
        if Instant::now() > send_deadline {
            break;
        }
        match bench.send_reliable(user, n).await {
            Ok(message) => sent.push(message),
            Err(error) => checks.failed_call(&error),
        }
    }
    let send_secs = send_start.elapsed().as_secs_f64();
    if sent.windows(2).any(|pair| pair[1].sequence <= pair[0].sequence) {
        checks.out_of_order(&anyhow::anyhow!("the sends answered sequences that do not rise in send order"));
    }

    let cpu_start = server_cpu(args);
    let start = Instant::now();
    let deadline = start + bench.limit;
    let mut tally = Tally::default();
    let (mut connects, mut first_connect) = (0, 0);
    while tally.len() < sent.len() {
        let before = tally.len();
        let connect = async {
            let mut ws = bench.connect(&url).await?;
            // The server redelivers before it reads any frame, so the pong comes after the
            // last message this connect brings.
            ws.send_text(PING).await?;
            until_pong(&mut ws, &mut tally, Acks::Later, &mut checks).await?;
            // The last message's ack covers every earlier one, and lets the next connect
            // bring the messages after it.
            if tally.len() > before
                && let Some(last) = tally.last().map(str::to_owned)
            {
                ws.send_text(&ack(&last)).await?;
                settle(&mut ws, &mut tally, bench.limit, &mut checks).await?;
            }
            anyhow::Ok(())
        };
        let outcome = tokio::time::timeout_at(deadline.into(), connect).await;
        connects += 1;
        let brought = (tally.len() - before) as u64;
        if connects == 1 {
            first_connect = brought;
        }
        match outcome {
            Ok(Ok(())) if brought > 0 => {}
            Ok(Ok(())) => break,
            Ok(Err(error)) => {
                checks.bad_frame(&error);
                break;
            }
            Err(_) => {
                let error = anyhow::anyhow!("not every message was redelivered within {} s", bench.limit.as_secs());
                checks.bad_frame(&error);
                break;
            }
        }
    }
    let all_arrived = tally.last_arrival().map_or(Duration::ZERO, |at| at.saturating_duration_since(start));
    let server_cpu_secs = server_cpu(args) - cpu_start;

    check_left_over(bench, &url, &mut checks).await;
    let problems = checks.with_tally(&tally, answered(&sent), notes);
    let all_arrived_ms = all_arrived.as_secs_f64() * 1000.0;
    let complete = problems.missing == 0 && !sent.is_empty();
    Ok(Redelivery {
        messages_asked: args.backlog,
        messages: sent.len() as u64,
        send_secs,
        connects,
        first_connect,
        all_arrived_ms,
        per_sec: if complete && all_arrived_ms > 0.0 { sent.len() as f64 / all_arrived.as_secs_f64() } else { 0.0 },
        problems,
        server_cpu_secs,
    })
}

async fn command_round_trip(bench: &Bench<'_>, args: &UserArgs, notes: &mut Notes) -> anyhow::Result<CommandRoundTrip> {
    let user = "bench-commands";
    let url = bench.token(user).await?;
    let mut ws = bench.connect(&url).await?;
    let mut answerer = Checks::default();
    let (stop, stopped) = oneshot::channel::<()>();
    let cpu_start = server_cpu(args);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.max_secs);
    let sender = async {
        let (mut round_trips, mut answered, mut checks) = (latency::histogram(), 0, Checks::default());
        for n in 0..args.warmup + args.commands {
            if Instant::now() > deadline {
                break;
            }
            let sent_at = Instant::now();
            match bench.send_command(user, n).await {
                Ok(()) => {
                    answered += 1;
                    if n >= args.warmup {
                        latency::record(&mut round_trips, micros(sent_at.elapsed()));
                    }
                }
                Err(error) => checks.failed_call(&error),
            }
        }
        drop(stop);
        (round_trips, answered, checks)
    };
    let answering = answer_commands(&mut ws, stopped, &mut answerer);
    let ((round_trips, answered, sender_checks), answering) = tokio::join!(sender, answering);
    let secs = start.elapsed().as_secs_f64();
    let server_cpu_secs = server_cpu(args) - cpu_start;
    let mut checks = answerer;
    checks.absorb(sender_checks);
    if let Err(error) = answering {
        checks.bad_frame(&error);
    }
    // No reliable message is sent to this user: the tally is only the answerer's.
    let problems = checks.with_tally(&Tally::default(), [], notes);
    Ok(CommandRoundTrip {
        commands_asked: args.commands,
        warmup: args.warmup,
        answered,
        latency: Summary::of(&round_trips),
        problems,
        secs,
        server_cpu_secs,
    })
}

/// Answers every `user.command` at once with its own data, until `stopped`.
async fn answer_commands(
    ws: &mut WsClient,
    mut stopped: oneshot::Receiver<()>,
    checks: &mut Checks,
) -> anyhow::Result<()> {
    let mut tally = Tally::default();
    loop {
        tokio::select! {
            bytes = ws.next_message() => match tally.take(&bytes?, Instant::now()) {
                Ok(Seen::Command { command_id, data }) => {
                    let response = json!({ "type": "command.response", "command_id": command_id, "data": data });
                    ws.send_text(&response.to_string()).await?;
                }
                Ok(_) => {}
                Err(error) => checks.bad_frame(&error),
            },
            _ = &mut stopped => return Ok(()),
        }
    }
}

/// The id and answered sequence of each message sent.
fn answered(sent: &[Sent]) -> impl Iterator<Item = (&str, u64)> {
    sent.iter().map(|message| (message.message_id.as_str(), message.sequence))
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
