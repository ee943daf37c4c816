//! The command line of the harness, shared by the binary and `cargo xtask conformance`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

use crate::{Config, Report};

/// Certify an implementation of the realtime contract: replay the documented examples and
/// the promised scenarios, and check every response against the OpenAPI document.
#[derive(Clone, Parser)]
#[command(name = "realtime-conformance", version)]
pub struct Args {
    /// The target, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "REALTIME_CONFORMANCE_BASE_URL")]
    pub base_url: String,
    /// An API key of a funded account.
    #[arg(long, env = "REALTIME_CONFORMANCE_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// An API key of an account with a zero balance (for the 402 path; skipped without it).
    #[arg(long, env = "REALTIME_CONFORMANCE_ZERO_CREDIT_API_KEY", hide_env_values = true)]
    pub zero_credit_api_key: Option<String>,
    /// The target serves the reference dev checkout: complete top-ups with
    /// `POST <checkout_url>/complete` (this credits the zero-credit account).
    #[arg(long)]
    pub dev_checkout: bool,
    /// The OpenAPI document to check against (default: the committed one).
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write a JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Print each check as it finishes.
    #[arg(long, short)]
    pub verbose: bool,
}

impl Args {
    /// The harness configuration these arguments describe.
    pub fn config(&self) -> Config {
        let mut config = Config::new(&self.base_url, &self.api_key);
        config.zero_credit_api_key = self.zero_credit_api_key.clone();
        config.dev_checkout = self.dev_checkout;
        config.spec = self.spec.clone();
        config.progress = self.verbose;
        config
    }
}

/// Runs the harness, prints the table and writes the reports; `Ok(false)` when a check failed.
pub async fn run(args: &Args) -> anyhow::Result<bool> {
    let report = crate::run(&args.config()).await?;
    print!("{}", report.render_table());
    write_reports(&report, args.junit.as_deref(), args.json.as_deref())?;
    Ok(report.passed())
}

/// Writes the JUnit and JSON reports where asked.
pub fn write_reports(
    report: &Report,
    junit: Option<&std::path::Path>,
    json: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    if let Some(path) = junit {
        std::fs::write(path, report.render_junit()).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = json {
        std::fs::write(path, report.render_json()).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
