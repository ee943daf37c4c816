//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure: fmt,
//! clippy, the contract drift check, the client's dependencies, the tests, conformance
//! (this contract, then the Pusher profile), a bounded Schemathesis run against the
//! document, the Redocly lint, the generated TypeScript clients and a bench smoke run.

use std::process::Command;

use anyhow::{Context, bail};

use crate::openapi::workspace_root;

pub(crate) fn run() -> anyhow::Result<()> {
    step("fmt", "cargo", &["fmt", "--all", "--check"])?;
    step("clippy", "cargo", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    step("openapi drift", "cargo", &["xtask", "openapi", "--check"])?;
    // Built alone, the contract crate compiles without its router, and the client with it.
    step("lean contract", "cargo", &["check", "-p", "realtime-api", "-p", "realtime-client"])?;
    client_compiles_no_server_framework()?;
    step("tests", "cargo", &["test", "--workspace"])?;
    step("conformance", "cargo", &["xtask", "conformance"])?;
    step("conformance (pusher)", "cargo", &["xtask", "conformance", "--profile", "pusher"])?;
    step("schemathesis", "cargo", &["xtask", "schemathesis"])?;
    step("lint", "npx", &["--yes", "@redocly/cli@2.77.0", "lint", "openapi/realtime.openapi.json"])?;
    step("generated clients", "cargo", &["xtask", "clients"])?;
    // A smoke run on the debug build: it fails on errors and lost messages, never on figures.
    step("bench smoke", "cargo", &["xtask", "bench", "--quick", "--profile", "dev"])?;
    println!("ci: all checks passed");
    Ok(())
}

/// The client's users compile neither axum nor utoipa: the trait and the route table it
/// is checked against come from `realtime-api` without its `router` feature.
fn client_compiles_no_server_framework() -> anyhow::Result<()> {
    println!("ci: client dependencies: cargo tree -p realtime-client -e normal");
    let output = Command::new("cargo")
        .args(["tree", "-p", "realtime-client", "-e", "normal", "--prefix", "none"])
        .current_dir(workspace_root())
        .output()
        .context("starting cargo tree")?;
    if !output.status.success() {
        bail!("ci: cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let heavy: Vec<&str> =
        tree.lines().filter(|line| line.starts_with("axum ") || line.starts_with("utoipa")).collect();
    if !heavy.is_empty() {
        bail!("ci: realtime-client depends on {heavy:?}; keep the router out of its dependencies");
    }
    Ok(())
}

fn step(name: &str, program: &str, args: &[&str]) -> anyhow::Result<()> {
    println!("ci: {name}: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .env("INSTA_UPDATE", "no")
        .env("REDOCLY_TELEMETRY", "off")
        .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
        .status()
        .with_context(|| format!("starting {program}"))?;
    if !status.success() {
        bail!("ci: {name} failed ({status})");
    }
    Ok(())
}
