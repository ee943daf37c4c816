//! `cargo xtask bench`: builds the server and the bench binary, then runs the bench suite.
//!
//! The scenarios, the servers they start and the report live in `crates/realtime-bench`
//! (`realtime-bench suite`); this command only builds and hands over.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use clap::Parser;

use crate::openapi::workspace_root;

/// Fan-out, publish, idle-memory, multi-node, recovery, user-addressed messages and connection
/// storm figures, beside baselines measured in the same run; and, when asked, the fan-out over
/// the Pusher protocol against sockudo.
#[derive(Parser)]
#[command(name = "cargo xtask bench")]
struct Args {
    /// all, fanout, publish, idle-memory, multi-node, cluster, recovery, user, storm, or pusher
    /// (ours and sockudo over the Pusher protocol; not part of all).
    #[arg(default_value = "all")]
    scenario: String,
    /// A smoke run (a sweep of 2 offered loads at 1,000 subscribers, fewer publishes, one run
    /// per row): under 3 minutes, fails only on errors or lost messages.
    #[arg(long)]
    quick: bool,
    /// Runs per row (default 3, 1 with --quick); the report shows the median.
    #[arg(long)]
    runs: Option<usize>,
    /// Offered publish rates of the fan-out sweep, comma-separated (default 2,5,10,15,20,30,
    /// or 5,20 with --quick).
    #[arg(long)]
    rates: Option<String>,
    /// Subscribers of the fan-out sweep (default 10,000, or 1,000 with --quick).
    #[arg(long)]
    sweep_subscribers: Option<usize>,
    /// Seconds of publishing at each offered rate (default 10, or 5 with --quick).
    #[arg(long)]
    sweep_secs: Option<f64>,
    /// Cargo profile of the binaries; `dev` skips the release build (figures then mean little).
    #[arg(long, default_value = "release")]
    profile: String,
}

pub(crate) fn run(args: Vec<String>) -> anyhow::Result<()> {
    let args = Args::parse_from(std::iter::once("cargo xtask bench".to_owned()).chain(args));
    let root = workspace_root();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let profile_dir = if args.profile == "dev" { "debug" } else { args.profile.as_str() };
    let bin_dir = target_dir.join(profile_dir);

    println!("bench: cargo build --profile {} -p realtime-server -p realtime-bench", args.profile);
    let status = Command::new(env!("CARGO"))
        .args(["build", "--profile", &args.profile, "-p", "realtime-server", "-p", "realtime-bench"])
        .current_dir(&root)
        .status()
        .context("starting cargo build")?;
    if !status.success() {
        bail!("bench: the build failed ({status})");
    }

    let mut suite = Command::new(bin_dir.join("realtime-bench"));
    suite
        .arg("suite")
        .arg(&args.scenario)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out-dir")
        .arg(target_dir.join("bench"))
        .current_dir(&root);
    if args.quick {
        suite.arg("--quick");
    }
    if let Some(runs) = args.runs {
        suite.arg("--runs").arg(runs.to_string());
    }
    if let Some(rates) = &args.rates {
        suite.arg("--rates").arg(rates);
    }
    if let Some(subscribers) = args.sweep_subscribers {
        suite.arg("--sweep-subscribers").arg(subscribers.to_string());
    }
    if let Some(secs) = args.sweep_secs {
        suite.arg("--sweep-secs").arg(secs.to_string());
    }
    let status = suite.status().context("starting realtime-bench suite")?;
    if !status.success() {
        bail!("bench: the suite failed ({status})");
    }
    Ok(())
}
