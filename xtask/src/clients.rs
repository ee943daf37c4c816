//! `cargo xtask clients`: builds and tests the TypeScript client, `@realtime/client`, in
//! `crates/realtime-client/typescript`.
//!
//! In order, stopping at the first failure:
//! 1. installs the pinned dev dependencies from the committed `package-lock.json` (only
//!    when `node_modules` is missing or older than the lock file);
//! 2. generates `src/generated/` (never committed) from the committed
//!    `openapi/realtime.openapi.json` and `openapi/realtime.asyncapi.json`;
//! 3. type-checks and builds the package and its tests with `tsc --strict`, so a contract
//!    change the package does not follow (a renamed field, a new close code or frame type)
//!    fails here;
//! 4. runs the unit tests with Node's test runner (they also fail when an operation of the
//!    contract has no method, or the generated files are stale);
//! 5. builds the reference server (`cargo build -p realtime-server`) and runs the
//!    end-to-end tests against it, in Node and in headless Chromium (`/usr/bin/chromium`,
//!    Debian's, driven by `playwright-core`; `.ci/run` installs it);
//! 6. prints the minified size of the bundle.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::openapi::workspace_root;

/// The browser the end-to-end tests drive; nothing is downloaded at run time.
const CHROMIUM: &str = "/usr/bin/chromium";

pub(crate) fn run() -> anyhow::Result<()> {
    let root = workspace_root();
    let dir = root.join("crates/realtime-client/typescript");
    for document in ["realtime.openapi.json", "realtime.asyncapi.json"] {
        let path = root.join("openapi").join(document);
        anyhow::ensure!(path.exists(), "{} is missing; run `cargo xtask openapi`", path.display());
    }
    check_node()?;
    if !Path::new(CHROMIUM).exists() {
        bail!(
            "clients: the browser tests need Debian's Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does)"
        );
    }

    if needs_install(&dir) {
        step(
            "install the pinned dev dependencies",
            &dir,
            "npm",
            &["ci", "--no-audit", "--no-fund", "--prefer-offline"],
        )?;
    }
    step("generate types from the committed contract", &dir, "node", &["scripts/generate.mjs"])?;
    step("type-check and build the package", &dir, "node_modules/.bin/tsc", &["-p", "tsconfig.json"])?;
    step("type-check and build the tests", &dir, "node_modules/.bin/tsc", &["-p", "tsconfig.test.json"])?;
    let unit = test_files(&dir, "build/test/unit")?;
    let mut args = vec!["--test"];
    args.extend(unit.iter().map(String::as_str));
    step("unit tests", &dir, "node", &args)?;

    step("build the reference server", &root, env!("CARGO"), &["build", "-p", "realtime-server"])?;
    let server = target_dir(&root).join("debug/realtime-server");
    println!("clients: end-to-end tests in Node and in headless Chromium against {}", server.display());
    let status = Command::new("node")
        .args(["--experimental-websocket", "--test", "--test-concurrency=1"])
        .args(test_files(&dir, "build/test/e2e")?)
        .current_dir(&dir)
        .env("REALTIME_SERVER_BIN", &server)
        .env("CHROMIUM", CHROMIUM)
        .status()
        .context("starting node")?;
    if !status.success() {
        bail!("clients: end-to-end tests failed ({status})");
    }
    step("bundle size", &dir, "node", &["scripts/size.mjs"])?;
    println!("clients: @realtime/client builds from the contract and passes its tests in Node and in Chromium");
    Ok(())
}

/// Node.js 20 or later, and npm.
fn check_node() -> anyhow::Result<()> {
    let install = "install Node.js 20 or later (.ci/run does)";
    let output =
        Command::new("node").arg("--version").output().with_context(|| format!("clients: no `node`; {install}"))?;
    let version = String::from_utf8_lossy(&output.stdout);
    let major: u32 = version.trim().trim_start_matches('v').split('.').next().unwrap_or("").parse().unwrap_or(0);
    if major < 20 {
        bail!("clients: node {} is too old; {install}", version.trim());
    }
    if Command::new("npm").arg("--version").output().is_err() {
        bail!("clients: no `npm`; {install}");
    }
    Ok(())
}

/// Whether `node_modules` is missing or older than the lock file it was installed from.
fn needs_install(dir: &Path) -> bool {
    let modified = |path: PathBuf| std::fs::metadata(path).and_then(|meta| meta.modified()).ok();
    match (modified(dir.join("node_modules/.package-lock.json")), modified(dir.join("package-lock.json"))) {
        (Some(installed), Some(locked)) => installed < locked,
        _ => true,
    }
}

/// The compiled test files (`*.test.js`) of `dir/under`, sorted; not the helpers beside them.
fn test_files(dir: &Path, under: &str) -> anyhow::Result<Vec<String>> {
    let entries = std::fs::read_dir(dir.join(under)).with_context(|| format!("reading {under}"))?;
    let mut files = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".test.js") {
            files.push(format!("{under}/{name}"));
        }
    }
    anyhow::ensure!(!files.is_empty(), "clients: no tests in {under}");
    files.sort();
    Ok(files)
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn step(name: &str, dir: &Path, program: &str, args: &[&str]) -> anyhow::Result<()> {
    println!("clients: {name}: {program} {}", args.join(" "));
    let program_path = if program.starts_with("node_modules/") { dir.join(program) } else { program.into() };
    let status = Command::new(&program_path)
        .args(args)
        .current_dir(dir)
        // playwright-core never downloads a browser; this keeps anything else from trying.
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .status()
        .with_context(|| format!("starting {}", program_path.display()))?;
    if !status.success() {
        bail!("clients: {name} failed ({status})");
    }
    Ok(())
}
