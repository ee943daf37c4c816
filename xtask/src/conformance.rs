//! `cargo xtask conformance`: certifies the reference server (no `--base-url`) or any target.
//!
//! It takes the harness's own flags ([`realtime_conformance::cli::Flags`]). Without
//! `--base-url` it builds `realtime-server`, starts it on a loopback port chosen once with
//! an SQLite file in a temporary directory, provisions a funded and a zero-credit account
//! through the admin API, runs the harness with the dev checkout, and stops the server.
//! The server is started by a small generated script that writes its pid file, so the
//! harness can stop it (SIGTERM, a graceful stop whose sockets close with 4200), kill it
//! (`kill -9`) and start it again on the same port and data: those are its
//! `--stop-command`, `--kill-command` and `--restart-command` unless `--no-restart` is
//! given. It requires full coverage (`--require-full-coverage`) when every kind runs.
//!
//! With `--profile pusher` it certifies a Pusher-compatible server over Pusher's own wire
//! protocol: the target's app given with `--app-id`, `--key` and `--secret`, or, without
//! `--base-url`, the reference server's dev app (id 1) and, for the webhook checks, a new
//! account's app whose `webhook_url` is a receiver on a free loopback port.
//!
//! Exit status: 0 every check passed, 1 a check failed, 2 the run could not start.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use realtime_conformance::cli::{self, Flags, Profile, Usage};
use realtime_conformance::pusher::{App, WebhookReceiver, Webhooks};
use serde_json::{Value, json};

/// How long the server may take to answer after a start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The funded account's balance, in micro-USD ($2, what a new console account gets).
const FUNDED_BALANCE: i64 = 2_000_000;

/// Certify an implementation of the realtime contract. With no --base-url, the reference
/// server is built, started on embedded defaults in a temporary directory, and certified.
/// Exit status: 0 every check passed, 1 a check failed, 2 the run could not start.
#[derive(Parser)]
#[command(name = "cargo xtask conformance")]
struct Args {
    #[command(flatten)]
    flags: Flags,
    /// With the reference server: do not let the harness kill and restart it (the
    /// durability checks are then skipped).
    #[arg(long)]
    no_restart: bool,
}

pub(crate) fn run(args: Vec<String>) -> anyhow::Result<()> {
    let args = Args::parse_from(std::iter::once("cargo xtask conformance".to_owned()).chain(args));
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|runtime| match &args.flags.base_url {
            Some(_) => runtime.block_on(args.flags.run()),
            None => certify_reference_server(&args, &runtime),
        });
    // `exit_code` says why a run did not pass; an error returned here would only repeat it.
    let _ = cli::exit_code(&outcome);
    match outcome {
        Ok(true) => Ok(()),
        Ok(false) => std::process::exit(1),
        Err(_) => std::process::exit(2),
    }
}

fn certify_reference_server(args: &Args, runtime: &tokio::runtime::Runtime) -> anyhow::Result<bool> {
    if args.flags.pusher.any() || args.flags.api_key.is_some() || args.flags.zero_credit_api_key.is_some() {
        bail!(Usage(
            "--api-key, --zero-credit-api-key, --app-id, --key, --secret and --webhook-listen name a target: \
             give --base-url too"
                .to_owned()
        ));
    }
    let root = workspace_root();
    eprintln!("building realtime-server ...");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "realtime-server"])
        .current_dir(&root)
        .status()
        .context("running cargo build -p realtime-server")?;
    if !status.success() {
        bail!("cargo build -p realtime-server failed");
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let binary = target_dir.join("debug").join(format!("realtime-server{}", std::env::consts::EXE_SUFFIX));
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let admin_secret = format!("conformance-admin-{}", std::process::id());
    let server = Server::prepare(&binary, dir.path(), &admin_secret)?;
    let result = server.start(runtime).and_then(|()| {
        eprintln!("realtime-server is listening on {} (data in {})", server.base_url, dir.path().display());
        runtime.block_on(certify(args, &server, &admin_secret))
    });
    // The server's own account of a run that did not pass (a start that failed after a
    // restart shows only here).
    if !matches!(result, Ok(true)) {
        server.print_log_tail();
    }
    drop(server);
    result
}

async fn certify(args: &Args, server: &Server, admin_secret: &str) -> anyhow::Result<bool> {
    let flags = &args.flags;
    match flags.profile {
        Profile::Realtime => {
            let (_, funded) = create_account(&server.base_url, admin_secret, FUNDED_BALANCE).await?;
            let (_, zero) = create_account(&server.base_url, admin_secret, 0).await?;
            let mut config = flags.config(&server.base_url, &funded);
            config.zero_credit_api_key = Some(zero);
            config.dev_checkout = true;
            if !args.no_restart && flags.restart_command.is_none() {
                // One graceful restart (the shutdown close 4200), then the kill.
                config.stop_command = Some(server.stop_command());
                config.kill_command = Some(server.kill_command());
                config.restart_command = Some(server.start_command());
            }
            // The reference server provokes every reachable cell; a run of some kinds does not.
            config.require_full_coverage |= flags.only.is_empty();
            flags.certify(&config).await
        }
        Profile::Pusher => {
            let mut config = flags.pusher_config(&server.base_url, dev_pusher_app()).await?;
            config.webhooks = Some(webhook_app(&server.base_url, admin_secret).await?);
            flags.certify_pusher(&config).await
        }
    }
}

/// The app every fresh reference server gives its dev account (`vendors.pusher`).
fn dev_pusher_app() -> App {
    App { app_id: "1".to_owned(), key: "dev-pusher-key".to_owned(), secret: "dev-pusher-secret".to_owned() }
}

/// A webhook receiver on a free loopback port, and a new funded account's Pusher app
/// whose `webhook_url` is that receiver (`POST /admin/v1/pusher/apps`).
async fn webhook_app(base_url: &str, admin_secret: &str) -> anyhow::Result<Webhooks> {
    let receiver = WebhookReceiver::bind("127.0.0.1:0").await.context("starting the webhook receiver")?;
    let (account_id, _) = create_account(base_url, admin_secret, FUNDED_BALANCE).await?;
    let body = json!({ "account_id": account_id, "webhook_url": receiver.url() });
    let app = admin_post(base_url, admin_secret, "/admin/v1/pusher/apps", &body).await?;
    let field = |name: &str| -> anyhow::Result<String> {
        match &app[name] {
            Value::String(text) => Ok(text.clone()),
            Value::Number(number) => Ok(number.to_string()),
            _ => bail!("the admin response has no {name}"),
        }
    };
    let app = App { app_id: field("app_id")?, key: field("key")?, secret: field("secret")? };
    Ok(Webhooks { receiver, app })
}

/// `POST /admin/v1/accounts`: a new account with `balance`; returns its id and API key.
async fn create_account(base_url: &str, admin_secret: &str, balance: i64) -> anyhow::Result<(String, String)> {
    let body = admin_post(base_url, admin_secret, "/admin/v1/accounts", &json!({ "balance": balance })).await?;
    let account_id = body["account_id"].as_str().context("the admin response has no account_id")?;
    let api_key = body["api_key"].as_str().context("the admin response has no api_key")?;
    Ok((account_id.to_owned(), api_key.to_owned()))
}

/// A call of the admin API; returns the JSON answer.
async fn admin_post(base_url: &str, admin_secret: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
    let response = reqwest::Client::new()
        .post(format!("{base_url}{path}"))
        .bearer_auth(admin_secret)
        .json(body)
        .send()
        .await
        .with_context(|| format!("POST {path}"))?;
    let status = response.status();
    let body: Value = response.json().await.context("reading the admin response")?;
    if !status.is_success() {
        bail!("POST {path}: {status}: {body}");
    }
    Ok(body)
}

/// The reference server, run in the background by a generated script that writes its
/// pid file, so that it can be killed and started again on the same port and data.
/// Whatever pid the file holds is killed when this is dropped (also on a panic).
struct Server {
    base_url: String,
    dir: PathBuf,
    log: PathBuf,
    pid_file: PathBuf,
}

/// The reference server's heartbeat (interval, timeout) in seconds: short, so that the
/// heartbeat check (close 4201) waits 20 s rather than the default 60 s.
const HEARTBEAT: (u32, u32) = (8, 20);
/// Its Pusher activity and pong timeouts in seconds: short, so that the Pusher profile's
/// 4201 check (a silent socket is pinged, then closed) runs, in 5 s.
const PUSHER_ACTIVITY: (u32, u32) = (3, 2);
/// Its request budget per account (per second, burst): low enough for the harness to drive
/// past it on loopback (the rate-limit check), high enough for every other check.
const RATE_LIMIT: (u32, u32) = (200, 400);

impl Server {
    /// Chooses the port and writes the start and kill scripts into `dir`.
    fn prepare(binary: &Path, dir: &Path, admin_secret: &str) -> anyhow::Result<Server> {
        // A free port now; the server binds it at each start (a fixed port survives restarts).
        let port = restart_safe_port()?;
        let server = Server {
            base_url: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
            log: dir.join("server.log"),
            pid_file: dir.join("server.pid"),
        };
        let start = format!(
            "#!/bin/sh\n\
             # Starts the reference server in the background and writes its pid file.\n\
             cd {dir}\n\
             unset REALTIME_PUBLIC_URL\n\
             # An error at start prints as its message and causes, not a backtrace that\n\
             # would push them out of the log tail printed when a check fails.\n\
             export RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0\n\
             REALTIME_LISTEN=127.0.0.1:{port} \\\n\
             REALTIME_STORE={store} \\\n\
             REALTIME_ADMIN_SECRET={admin_secret} \\\n\
             REALTIME_GATEWAY__HEARTBEAT_INTERVAL_SECONDS={heartbeat_interval} \\\n\
             REALTIME_GATEWAY__HEARTBEAT_TIMEOUT_SECONDS={heartbeat_timeout} \\\n\
             REALTIME_RATE_LIMIT__REQUESTS_PER_SECOND={rate} \\\n\
             REALTIME_RATE_LIMIT__BURST={burst} \\\n\
             REALTIME_PUSHER__SUBSCRIPTION_COUNT=true \\\n\
             REALTIME_PUSHER__ACTIVITY_TIMEOUT_SECONDS={activity_timeout} \\\n\
             REALTIME_PUSHER__PONG_TIMEOUT_SECONDS={pong_timeout} \\\n\
             {binary} </dev/null >>{stdout} 2>>{log} &\n\
             echo $! >{pid}\n",
            dir = quote(dir),
            heartbeat_interval = HEARTBEAT.0,
            heartbeat_timeout = HEARTBEAT.1,
            activity_timeout = PUSHER_ACTIVITY.0,
            pong_timeout = PUSHER_ACTIVITY.1,
            rate = RATE_LIMIT.0,
            burst = RATE_LIMIT.1,
            store = quote(Path::new(&format!("sqlite://{}", dir.join("realtime.db").display()))),
            binary = quote(binary),
            stdout = quote(&dir.join("server.stdout")),
            log = quote(&server.log),
            pid = quote(&server.pid_file),
        );
        // Waits, as the stop does, until the process is gone: a start while the killed
        // process still exits could find its port still bound (seen once in CI: the
        // restart's server exited at start, and the check waited a minute for it).
        let kill = format!(
            "#!/bin/sh\n\
             # Kills the reference server abruptly and waits until it has exited.\n\
             pid=\"$(cat {pid})\"\n\
             kill -9 \"$pid\" || exit 1\n\
             n=0\n\
             while kill -0 \"$pid\" 2>/dev/null && ! grep -q '^State:.*Z' /proc/\"$pid\"/status 2>/dev/null; do\n\
             \x20 n=$((n + 1)); [ \"$n\" -gt 300 ] && exit 1\n\
             \x20 sleep 0.05\n\
             done\n",
            pid = quote(&server.pid_file)
        );
        // A graceful stop takes at most 10 s (`RunningServer::stop`); the wait is bounded
        // above that, and a zombie (exited, not yet reaped) counts as stopped.
        let stop = format!(
            "#!/bin/sh\n\
             # Stops the reference server gracefully and waits until it has exited.\n\
             pid=\"$(cat {pid})\"\n\
             kill -TERM \"$pid\" || exit 1\n\
             n=0\n\
             while kill -0 \"$pid\" 2>/dev/null && ! grep -q '^State:.*Z' /proc/\"$pid\"/status 2>/dev/null; do\n\
             \x20 n=$((n + 1)); [ \"$n\" -gt 300 ] && exit 1\n\
             \x20 sleep 0.05\n\
             done\n",
            pid = quote(&server.pid_file)
        );
        std::fs::write(dir.join("start.sh"), start).context("writing start.sh")?;
        std::fs::write(dir.join("stop.sh"), stop).context("writing stop.sh")?;
        std::fs::write(dir.join("kill.sh"), kill).context("writing kill.sh")?;
        Ok(server)
    }

    fn start_command(&self) -> String {
        format!("sh {}", quote(&self.dir.join("start.sh")))
    }

    fn stop_command(&self) -> String {
        format!("sh {}", quote(&self.dir.join("stop.sh")))
    }

    fn kill_command(&self) -> String {
        format!("sh {}", quote(&self.dir.join("kill.sh")))
    }

    /// Runs the start script and waits until the base URL answers.
    fn start(&self, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
        let status = Command::new("sh").arg("-c").arg(self.start_command()).status().context("running start.sh")?;
        if !status.success() {
            bail!("start.sh ended with {status}");
        }
        runtime.block_on(async {
            let client = reqwest::Client::new();
            let deadline = Instant::now() + START_TIMEOUT;
            let url = format!("{}/v1/realtime/event/types", self.base_url);
            while client.get(&url).send().await.is_err() {
                if Instant::now() >= deadline {
                    bail!("realtime-server did not answer on {} within {START_TIMEOUT:?}", self.base_url);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        })
    }

    fn print_log_tail(&self) {
        print_log_tail(&self.log);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
        }
    }
}

/// A free loopback port below Linux's ephemeral range (32768-60999 by default). While the
/// server is down between a stop and a start, any process's outgoing connection or
/// `bind(0)` may take a port of that range (a connection to the port itself included), and
/// the restarted server could not bind it; ports below it are handed out to no one.
fn restart_safe_port() -> anyhow::Result<u16> {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos()
        ^ std::process::id();
    for attempt in 0..64u32 {
        let port = 20_000 + u16::try_from(seed.wrapping_add(attempt.wrapping_mul(7919)) % 12_000).unwrap_or(0);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("choosing a loopback port")?;
    Ok(listener.local_addr().context("choosing a loopback port")?.port())
}

/// Prints the last lines of a server's log (when it failed to start or a run failed).
pub(crate) fn print_log_tail(log: &Path) {
    if let Ok(text) = std::fs::read_to_string(log) {
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("--- last lines of the server log ---");
        for line in &lines[lines.len().saturating_sub(30)..] {
            eprintln!("{line}");
        }
    }
}

/// A path as one single-quoted shell word.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}
