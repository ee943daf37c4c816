//! `cargo xtask conformance`: certifies the reference server (no `--base-url`) or any target.
//!
//! Without `--base-url` it builds `realtime-server`, starts it on a free loopback port with
//! an SQLite file in a temporary directory, provisions a funded and a zero-credit account
//! through the admin API, runs the harness with the dev checkout, and stops the server.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use realtime_conformance::{Config, cli};
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
    #[arg(long, requires = "api_key")]
    base_url: Option<String>,
    /// An API key of a funded account of the target.
    #[arg(long, requires = "base_url")]
    api_key: Option<String>,
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
    let passed = match (&args.base_url, &args.api_key) {
        (Some(base_url), Some(api_key)) => {
            let mut config = Config::new(base_url, api_key);
            config.zero_credit_api_key = args.zero_credit_api_key.clone();
            config.dev_checkout = args.dev_checkout;
            runtime.block_on(certify(&args, config))?
        }
        _ => certify_reference_server(&args, &runtime)?,
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
    print!("{}", report.render_table());
    cli::write_reports(&report, args.junit.as_deref(), args.json.as_deref())?;
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
        let funded = create_account(&server.base_url, &admin_secret, FUNDED_BALANCE).await?;
        let zero = create_account(&server.base_url, &admin_secret, 0).await?;
        let mut config = Config::new(&server.base_url, funded);
        config.zero_credit_api_key = Some(zero);
        config.dev_checkout = true;
        certify(args, config).await
    });
    if result.is_err() {
        server.print_log_tail();
    }
    drop(server);
    result
}

/// `POST /admin/v1/accounts`: a new account with `balance`; returns its API key.
async fn create_account(base_url: &str, admin_secret: &str, balance: i64) -> anyhow::Result<String> {
    let response = reqwest::Client::new()
        .post(format!("{base_url}/admin/v1/accounts"))
        .bearer_auth(admin_secret)
        .json(&json!({ "balance": balance }))
        .send()
        .await
        .context("POST /admin/v1/accounts")?;
    let status = response.status();
    let body: Value = response.json().await.context("reading the admin response")?;
    if !status.is_success() {
        bail!("POST /admin/v1/accounts: {status}: {body}");
    }
    body["api_key"].as_str().map(str::to_owned).context("the admin response has no api_key")
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
