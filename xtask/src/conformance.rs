//! `cargo xtask conformance`: certifies the reference server (no `--base-url`) or any target.
//!
//! Without `--base-url` it builds `realtime-server`, starts it on a free loopback port with
//! an SQLite file in a temporary directory, provisions a funded and a zero-credit account
//! through the admin API, runs the harness with the dev checkout, and stops the server.
//!
//! With `--profile pusher` it certifies a Pusher-compatible server over Pusher's own wire
//! protocol: the target's app given with `--app-id`, `--key` and `--secret`, or, without
//! `--base-url`, the reference server's dev app (id 1) and, for the webhook checks, a new
//! account's app whose `webhook_url` is a receiver on a free loopback port.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use realtime_conformance::cli::{self, Profile, PusherArgs};
use realtime_conformance::pusher::{App, PusherConfig, WebhookReceiver, Webhooks};
use realtime_conformance::{Config, Report};
use serde_json::{Value, json};

/// How long the server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The funded account's balance, in micro-USD ($2, what a new console account gets).
const FUNDED_BALANCE: i64 = 2_000_000;

/// Certify an implementation of the realtime contract. With no --base-url, the reference
/// server is built, started on embedded defaults in a temporary directory, and certified.
#[derive(Parser)]
#[command(name = "cargo xtask conformance")]
struct Args {
    /// The target to certify; the reference server when omitted.
    #[arg(long)]
    base_url: Option<String>,
    /// Which contract to certify: `realtime` (this project's) or `pusher` (Pusher Channels
    /// over its own wire protocol only).
    #[arg(long, value_enum, default_value_t = Profile::Realtime)]
    profile: Profile,
    /// An API key of a funded account of the target (realtime profile).
    #[arg(long, requires = "base_url")]
    api_key: Option<String>,
    /// The app to certify (pusher profile with --base-url: --app-id, --key, --secret;
    /// the reference server's dev app otherwise).
    #[command(flatten)]
    pusher: PusherArgs,
    /// An API key of an account with a zero balance (for the 402 path).
    #[arg(long, requires = "base_url")]
    zero_credit_api_key: Option<String>,
    /// The target serves the reference dev checkout (always on for the reference server).
    #[arg(long)]
    dev_checkout: bool,
    /// The OpenAPI document to check against (default: the committed one).
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Write a JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print each check as it finishes.
    #[arg(long, short)]
    verbose: bool,
}

pub(crate) fn run(args: Vec<String>) -> anyhow::Result<()> {
    let args = Args::parse_from(std::iter::once("cargo xtask conformance".to_owned()).chain(args));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let passed = match (&args.base_url, args.profile) {
        (Some(base_url), Profile::Realtime) => {
            let Some(api_key) = &args.api_key else { bail!("--base-url needs --api-key (realtime profile)") };
            let mut config = Config::new(base_url, api_key);
            config.zero_credit_api_key = args.zero_credit_api_key.clone();
            config.dev_checkout = args.dev_checkout;
            runtime.block_on(certify(&args, config))?
        }
        (Some(base_url), Profile::Pusher) => runtime.block_on(async {
            let config = args.pusher.config(base_url, args.verbose).await?;
            certify_pusher(&args, config).await
        })?,
        (None, _) => {
            let pusher = &args.pusher;
            let given = [&pusher.app_id, &pusher.key, &pusher.secret, &pusher.webhook_listen];
            if given.iter().any(|value| value.is_some()) {
                bail!("--app-id, --key, --secret and --webhook-listen name a target: give --base-url too");
            }
            certify_reference_server(&args, &runtime)?
        }
    };
    if !passed {
        // The report already says what failed; an error here would only add a backtrace.
        eprintln!("the target does not conform: see the failed checks above");
        std::process::exit(1);
    }
    Ok(())
}

async fn certify(args: &Args, mut config: Config) -> anyhow::Result<bool> {
    config.spec = args.spec.clone();
    config.progress = args.verbose;
    let report = realtime_conformance::run(&config).await?;
    finish(args, &report)
}

async fn certify_pusher(args: &Args, config: PusherConfig) -> anyhow::Result<bool> {
    let report = realtime_conformance::pusher::run(&config).await?;
    finish(args, &report)
}

fn finish(args: &Args, report: &Report) -> anyhow::Result<bool> {
    print!("{}", report.render_table());
    cli::write_reports(report, args.junit.as_deref(), args.json.as_deref())?;
    Ok(report.passed())
}

fn certify_reference_server(args: &Args, runtime: &tokio::runtime::Runtime) -> anyhow::Result<bool> {
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
    let server = Server::start(&binary, dir.path(), &admin_secret)?;
    eprintln!("realtime-server is listening on {} (data in {})", server.base_url, dir.path().display());
    let result = runtime.block_on(async {
        match args.profile {
            Profile::Realtime => {
                let (_, funded) = create_account(&server.base_url, &admin_secret, FUNDED_BALANCE).await?;
                let (_, zero) = create_account(&server.base_url, &admin_secret, 0).await?;
                let mut config = Config::new(&server.base_url, funded);
                config.zero_credit_api_key = Some(zero);
                config.dev_checkout = true;
                certify(args, config).await
            }
            Profile::Pusher => {
                let mut config = PusherConfig::new(&server.base_url, dev_pusher_app());
                config.webhooks = Some(webhook_app(&server.base_url, &admin_secret).await?);
                config.progress = args.verbose;
                certify_pusher(args, config).await
            }
        }
    });
    if result.is_err() {
        server.print_log_tail();
    }
    drop(server);
    result
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

/// The reference server as a child process; killed when dropped.
struct Server {
    child: Child,
    base_url: String,
    log: PathBuf,
}

impl Server {
    fn start(binary: &Path, dir: &Path, admin_secret: &str) -> anyhow::Result<Server> {
        let log = dir.join("server.log");
        let stderr = std::fs::File::create(&log).context("creating the server log")?;
        let mut child = Command::new(binary)
            .current_dir(dir)
            .env("REALTIME_LISTEN", "127.0.0.1:0")
            .env("REALTIME_STORE", format!("sqlite://{}", dir.join("realtime.db").display()))
            .env("REALTIME_ADMIN_SECRET", admin_secret)
            .env_remove("REALTIME_PUBLIC_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout of the server")?;
        let (lines, received) = mpsc::channel();
        // Reads the server's stdout until it ends; only the address line is wanted.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server { child, base_url: String::new(), log };
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match received.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.split("listening on ").nth(1) {
                        server.base_url = url.trim().to_owned();
                        return Ok(server);
                    }
                }
                Err(_) => {
                    server.print_log_tail();
                    bail!("realtime-server did not print its address within {START_TIMEOUT:?}");
                }
            }
        }
    }

    fn print_log_tail(&self) {
        if let Ok(text) = std::fs::read_to_string(&self.log) {
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- last lines of the server log ---");
            for line in &lines[lines.len().saturating_sub(30)..] {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}
