//! `cargo xtask schemathesis`: a bounded Schemathesis run of the reference server against
//! the committed OpenAPI document.
//!
//! It builds `realtime-server`, starts it on a free loopback port with an SQLite file in a
//! temporary directory, provisions an account through the admin API with a balance no run
//! can spend, and runs `st run` with every phase (examples, coverage, fuzzing, stateful,
//! which follows the document's links) and every check. The run is bounded by a fixed
//! number of examples per operation and a fixed seed, so it is the same run each time; its
//! JUnit report goes to `target/schemathesis/junit.xml`. Options after `--` go to `st run`
//! and win over ours (`cargo xtask schemathesis -- --max-examples 500 --seed 7`).
//!
//! Schemathesis comes from the virtual environment `.ci/run` makes (`target/ci-python`),
//! or from `PATH`. The kinds of failure the run drops are written in
//! `schemathesis_hooks.py`, with why (and in the README, as caveats).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::openapi::workspace_root;

/// Test cases per operation and phase: with the seed below, the whole run is 3,111 cases
/// and takes 65 to 105 s on a 2-core machine (the less, the less else it runs).
const MAX_EXAMPLES: &str = "75";
/// A fixed seed: the same cases every run, so a failure reproduces.
const SEED: &str = "20261130";
/// How long the server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The fuzzed account's balance in micro-USD ($1,000,000): far more than any run spends,
/// so billable operations are tested past the credit check (402 has its own tests).
const BALANCE: i64 = 1_000_000_000_000;

pub(crate) fn run(extra: Vec<String>) -> anyhow::Result<()> {
    let root = workspace_root();
    let st = find_schemathesis(&root)?;
    let binary = build_server(&root)?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let admin_secret = format!("schemathesis-admin-{}", std::process::id());
    let server = Server::start(&binary, dir.path(), &admin_secret)?;
    eprintln!("realtime-server is listening on {} (data in {})", server.base_url, dir.path().display());
    let passed = match fuzz(&root, &st, &server, &admin_secret, dir.path(), &extra) {
        Ok(passed) => passed,
        Err(error) => {
            server.print_log_tail();
            return Err(error);
        }
    };
    drop(server);
    if !passed {
        // Schemathesis has printed each failure with its curl reproduction and the summary;
        // an error here would only add a backtrace.
        eprintln!("schemathesis found failures: see the summary above");
        std::process::exit(1);
    }
    Ok(())
}

/// Runs `st run` against the server, in `workdir`; `Ok(false)` when it found failures.
fn fuzz(
    root: &Path,
    st: &Path,
    server: &Server,
    admin_secret: &str,
    workdir: &Path,
    extra: &[String],
) -> anyhow::Result<bool> {
    let api_key = create_account(&server.base_url, admin_secret)?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let report_dir = target.join("schemathesis");
    let junit = report_dir.join("junit.xml");
    let authorization = format!("Authorization: Bearer {api_key}");
    let mut command = Command::new(st);
    command
        .arg("run")
        .arg(root.join("openapi/realtime.openapi.json"))
        .args(["--url", &server.base_url])
        .args(["--header", &authorization])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--checks", "all"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", SEED])
        // No example database: the seed alone decides the cases, and nothing is written
        // into the checkout.
        .args(["--generation-database", "none"])
        // One worker: Schemathesis's workers are threads, which gain little under the GIL,
        // and CPython 3.11's parser is not safe to run from two at once (hypothesis's
        // lambda descriptions failed a coverage case with "AST constructor recursion depth
        // mismatch", a tool error that fails the run).
        .args(["--workers", "1"])
        .args(["--report", "junit"])
        .arg("--report-dir")
        .arg(&report_dir)
        .arg("--report-junit-path")
        .arg(&junit)
        .args(extra)
        // The one filter of the run, and the reasons for it, are in this file.
        .env("SCHEMATHESIS_HOOKS", root.join("xtask/src/schemathesis_hooks.py"))
        // Schemathesis reads a `schemathesis.toml` of its working directory and writes its
        // own state there: the temporary directory has neither to share.
        .current_dir(workdir);
    std::fs::create_dir_all(&report_dir).with_context(|| format!("creating {}", report_dir.display()))?;
    println!(
        "schemathesis: {} run openapi/realtime.openapi.json --url {} (seed {SEED})",
        st.display(),
        server.base_url
    );
    let started = Instant::now();
    let status = command.status().with_context(|| format!("starting {}", st.display()))?;
    println!("schemathesis: finished in {:.0?}; JUnit report: {}", started.elapsed(), junit.display());
    Ok(status.success())
}

/// `target/ci-python/bin/st`, where `.ci/run` installs it, or `st` on `PATH`.
fn find_schemathesis(root: &Path) -> anyhow::Result<PathBuf> {
    let venv = root.join("target/ci-python/bin/st");
    if venv.is_file() {
        return Ok(venv);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|dir| dir.join("st")).find(|st| st.is_file()))
        .unwrap_or_default();
    on_path.with_context(|| {
        format!(
            "Schemathesis is not installed: neither {} nor `st` on PATH exists. `.ci/run` installs it \
             (schemathesis==4.32.5, in the target/ci-python virtual environment)",
            venv.display()
        )
    })
}

fn build_server(root: &Path) -> anyhow::Result<PathBuf> {
    eprintln!("building realtime-server ...");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "realtime-server"])
        .current_dir(root)
        .status()
        .context("running cargo build -p realtime-server")?;
    if !status.success() {
        bail!("cargo build -p realtime-server failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    Ok(target.join("debug").join(format!("realtime-server{}", std::env::consts::EXE_SUFFIX)))
}

/// `POST /admin/v1/accounts`: a new account with [`BALANCE`]; returns its API key.
fn create_account(base_url: &str, admin_secret: &str) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("{base_url}/admin/v1/accounts"))
            .bearer_auth(admin_secret)
            .json(&json!({ "balance": BALANCE }))
            .send()
            .await
            .context("POST /admin/v1/accounts")?;
        let status = response.status();
        let body: Value = response.json().await.context("reading the admin response")?;
        if !status.is_success() {
            bail!("POST /admin/v1/accounts: {status}: {body}");
        }
        body["api_key"].as_str().map(str::to_owned).context("the admin response has no api_key")
    })
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
        // Reads the server's stdout until it ends (a closed pipe would fail the server's
        // later prints); only the address line is wanted.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut server = Server { child, base_url: String::new(), log };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
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
        crate::conformance::print_log_tail(&self.log);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
