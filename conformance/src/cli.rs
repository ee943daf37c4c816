//! The command line of the harness, shared by the binary and `cargo xtask conformance`.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};

use crate::pusher::{App, PusherConfig, WebhookReceiver, Webhooks};
use crate::{Config, Report};

/// Which contract a run certifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// This project's contract: the OpenAPI document and the WebSocket protocol.
    Realtime,
    /// Pusher Channels: its signed HTTP API, protocol 7 and webhooks, nothing else.
    Pusher,
}

/// Certify an implementation of the realtime contract (replay the documented examples and
/// the promised scenarios, and check every response against the OpenAPI document), or,
/// with `--profile pusher`, any Pusher-compatible server over Pusher's own protocol.
#[derive(Clone, Parser)]
#[command(name = "realtime-conformance", version)]
pub struct Invocation {
    /// The target, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "REALTIME_CONFORMANCE_BASE_URL")]
    pub base_url: String,
    /// Which contract to certify.
    #[arg(long, value_enum, default_value_t = Profile::Realtime)]
    pub profile: Profile,
    /// An API key of a funded account (realtime profile).
    #[arg(long, env = "REALTIME_CONFORMANCE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
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
    #[command(flatten)]
    pub pusher: PusherArgs,
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

/// The Pusher app to certify with `--profile pusher`.
#[derive(Clone, Debug, clap::Args)]
pub struct PusherArgs {
    /// The Pusher app id (pusher profile).
    #[arg(long, env = "REALTIME_CONFORMANCE_PUSHER_APP_ID")]
    pub app_id: Option<String>,
    /// The Pusher app key (pusher profile).
    #[arg(long, env = "REALTIME_CONFORMANCE_PUSHER_KEY")]
    pub key: Option<String>,
    /// The Pusher app secret (pusher profile).
    #[arg(long, env = "REALTIME_CONFORMANCE_PUSHER_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Receive the app's webhooks on this address, e.g. 127.0.0.1:9999 (pusher profile):
    /// configure the target to POST the app's webhooks to http://ADDRESS/pusher/webhooks.
    /// Without it the webhook checks are skipped.
    #[arg(long)]
    pub webhook_listen: Option<String>,
}

impl PusherArgs {
    /// The app these arguments name, or what is missing.
    pub fn app(&self) -> anyhow::Result<App> {
        match (&self.app_id, &self.key, &self.secret) {
            (Some(app_id), Some(key), Some(secret)) => {
                Ok(App { app_id: app_id.clone(), key: key.clone(), secret: secret.clone() })
            }
            _ => bail!("--profile pusher needs --app-id, --key and --secret"),
        }
    }

    /// The Pusher profile's configuration for `base_url`; binds the webhook receiver
    /// when asked (so it needs a runtime).
    pub async fn config(&self, base_url: &str, verbose: bool) -> anyhow::Result<PusherConfig> {
        let app = self.app()?;
        let mut config = PusherConfig::new(base_url, app.clone());
        if let Some(address) = &self.webhook_listen {
            let receiver =
                WebhookReceiver::bind(address).await.with_context(|| format!("listening for webhooks on {address}"))?;
            config.webhooks = Some(Webhooks { receiver, app });
        }
        config.progress = verbose;
        Ok(config)
    }
}

impl Invocation {
    /// The realtime profile's arguments, or what is missing for them.
    pub fn realtime(&self) -> anyhow::Result<Args> {
        let Some(api_key) = &self.api_key else { bail!("the realtime profile needs --api-key") };
        Ok(Args {
            base_url: self.base_url.clone(),
            api_key: api_key.clone(),
            zero_credit_api_key: self.zero_credit_api_key.clone(),
            dev_checkout: self.dev_checkout,
            spec: self.spec.clone(),
            junit: self.junit.clone(),
            json: self.json.clone(),
            verbose: self.verbose,
        })
    }
}

/// Runs the profile the invocation names; `Ok(false)` when a check failed.
pub async fn run_invocation(invocation: &Invocation) -> anyhow::Result<bool> {
    match invocation.profile {
        Profile::Realtime => run(&invocation.realtime()?).await,
        Profile::Pusher => {
            let config = invocation.pusher.config(&invocation.base_url, invocation.verbose).await?;
            let report = crate::pusher::run(&config).await?;
            print!("{}", report.render_table());
            write_reports(&report, invocation.junit.as_deref(), invocation.json.as_deref())?;
            Ok(report.passed())
        }
    }
}

/// The realtime profile's arguments (what `realtime conformance` passes).
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
    /// The target serves the reference dev checkout.
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

/// Runs the realtime profile, prints the table and writes the reports; `Ok(false)` when a
/// check failed.
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
