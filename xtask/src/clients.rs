//! `cargo xtask clients`: proves that generators in other languages work on the contract.
//!
//! It installs the pinned `openapi-typescript` and `typescript@5` from the committed
//! `package.json` / `package-lock.json` in `crates/realtime-client/typescript`, generates
//! TypeScript types from the committed `openapi/realtime.openapi.json` into that
//! directory's `node_modules/@realtime/contract/` (never committed), and type-checks the
//! committed `example.ts`, which calls three operations through `fetch`, with
//! `tsc --noEmit --strict`. A contract change that breaks generated clients fails here.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::openapi::workspace_root;

pub(crate) fn run() -> anyhow::Result<()> {
    let root = workspace_root();
    let dir = root.join("crates/realtime-client/typescript");
    let spec = root.join("openapi/realtime.openapi.json");
    anyhow::ensure!(spec.exists(), "{} is missing; run `cargo xtask openapi`", spec.display());

    if Command::new("npm").arg("--version").output().is_err() {
        bail!("clients: `npm` was not found; install Node.js 20 or later to check the generated TypeScript client");
    }
    step(
        "install pinned openapi-typescript and typescript",
        &dir,
        "npm",
        &["install", "--no-audit", "--no-fund", "--prefer-offline"],
    )?;

    let generated = dir.join("node_modules/@realtime/contract");
    std::fs::create_dir_all(&generated).with_context(|| format!("creating {}", generated.display()))?;
    std::fs::write(
        generated.join("package.json"),
        "{\n  \"name\": \"@realtime/contract\",\n  \"private\": true,\n  \"types\": \"index.d.ts\"\n}\n",
    )
    .context("writing the generated package's package.json")?;
    let spec_arg = spec.to_string_lossy().into_owned();
    let output_arg = generated.join("index.d.ts").to_string_lossy().into_owned();
    step("generate TypeScript types", &dir, "node_modules/.bin/openapi-typescript", &[&spec_arg, "-o", &output_arg])?;

    step(
        "type-check example.ts",
        &dir,
        "node_modules/.bin/tsc",
        &["--noEmit", "--strict", "--target", "es2022", "--lib", "es2022,dom", "--module", "commonjs", "example.ts"],
    )?;
    println!("clients: the TypeScript types generated from the contract compile the example client");
    Ok(())
}

fn step(name: &str, dir: &Path, program: &str, args: &[&str]) -> anyhow::Result<()> {
    println!("clients: {name}: {program} {}", args.join(" "));
    let program_path = if program.contains('/') { dir.join(program) } else { program.into() };
    let status = Command::new(&program_path)
        .args(args)
        .current_dir(dir)
        .status()
        .with_context(|| format!("starting {}", program_path.display()))?;
    if !status.success() {
        bail!("clients: {name} failed ({status})");
    }
    Ok(())
}
