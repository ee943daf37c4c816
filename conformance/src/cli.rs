//! The command line of the harness: one set of flags ([`Flags`]) that the
//! `realtime-conformance` binary, `cargo xtask conformance` and `realtime conformance`
//! all flatten into theirs, and the exit status they share (0 every check passed, 1 a
//! check failed, 2 the run could not start, bad usage included).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};

use crate::pusher::{App, PusherConfig, WebhookReceiver, Webhooks};
use crate::{Config, Kind, Report};

/// Which contract a run certifies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// This project's contract: the OpenAPI document and the WebSocket protocol.
    #[default]
    Realtime,
    /// Pusher Channels: its signed HTTP API, protocol 7 and webhooks, nothing else.
    Pusher,
}

/// Certify an implementation of the realtime contract (replay the documented examples and
/// the promised scenarios, and check every response against the OpenAPI document), or,
/// with `--profile pusher`, any Pusher-compatible server over Pusher's own protocol.
/// Exit status: 0 every check passed, 1 a check failed, 2 the run could not start.
#[derive(Clone, Parser)]
#[command(name = "realtime-conformance", version)]
pub struct Invocation {
    #[command(flatten)]
    pub flags: Flags,
}

/// The flags of a run, the same in every front end. No `Debug`: it holds API keys.
#[derive(Clone, Default, clap::Args)]
pub struct Flags {
    /// The target, e.g. http://127.0.0.1:8080 (`cargo xtask conformance`: the reference
    /// server when omitted; `realtime conformance`: --url when omitted).
    #[arg(long, env = "REALTIME_CONFORMANCE_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,
    /// Which contract to certify.
    #[arg(long, value_enum, default_value_t = Profile::Realtime)]
    pub profile: Profile,
    /// An API key of a funded account (realtime profile).
    #[arg(long, env = "REALTIME_CONFORMANCE_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<String>,
    /// An API key of an account with a zero balance (for the 402 path; skipped without it).
    #[arg(long, env = "REALTIME_CONFORMANCE_ZERO_CREDIT_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub zero_credit_api_key: Option<String>,
    /// The target serves the reference dev checkout: complete top-ups with
    /// `POST <checkout_url>/complete` (this credits the zero-credit account).
    #[arg(long)]
    pub dev_checkout: bool,
    /// The OpenAPI document to check against (default: the committed one).
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    #[command(flatten)]
    pub pusher: PusherArgs,
    /// Where the run's channel and client names come from: the same seed gives the same
    /// names [default: random, printed in the report].
    #[arg(long, value_name = "U64")]
    pub seed: Option<u64>,
    /// Starts the target again after --kill-command, or restarts it when there is none
    /// (run with `sh -c`); the durability checks are skipped without it.
    #[arg(long, value_name = "COMMAND")]
    pub restart_command: Option<String>,
    /// Kills the target abruptly, e.g. `kill -9 $(cat server.pid)` (run with `sh -c`).
    #[arg(long, value_name = "COMMAND", requires = "restart_command")]
    pub kill_command: Option<String>,
    /// Stops the target gracefully and waits until it has stopped, e.g.
    /// `kill -TERM $(cat server.pid)` and a wait (run with `sh -c`); --restart-command
    /// starts it again. With --kill-command too, the durability checks restart the target
    /// gracefully once (its sockets must close with 4200) before the kill.
    #[arg(long, value_name = "COMMAND", requires = "restart_command")]
    pub stop_command: Option<String>,
    /// Fail the run when a documented cell a client can reach was not provoked (the
    /// `coverage` check); `cargo xtask conformance` sets it for the reference server.
    #[arg(long)]
    pub require_full_coverage: bool,
    /// Run only the checks of these kinds, e.g. `--only protocol,tenancy` (realtime
    /// profile; the coverage then covers less): example, idempotency, statuses, credit,
    /// auth, live, history, messaging, protocol, scope, reads, atomicity, tenancy,
    /// negative, durability, limits.
    #[arg(long, value_name = "KINDS", value_delimiter = ',', value_parser = parse_kind)]
    pub only: Vec<Kind>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a JSON report here.
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
    /// Print each check as it finishes.
    #[arg(long, short)]
    pub verbose: bool,
}

/// The Pusher app to certify with `--profile pusher`.
#[derive(Clone, Debug, Default, clap::Args)]
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
    /// Whether any of the app's flags is given.
    pub fn any(&self) -> bool {
        [&self.app_id, &self.key, &self.secret, &self.webhook_listen].iter().any(|value| value.is_some())
    }

    /// The app these arguments name, or what is missing.
    pub fn app(&self) -> anyhow::Result<App> {
        match (&self.app_id, &self.key, &self.secret) {
            (Some(app_id), Some(key), Some(secret)) => {
                Ok(App { app_id: app_id.clone(), key: key.clone(), secret: secret.clone() })
            }
            _ => bail!(Usage("--profile pusher needs --app-id, --key and --secret".to_owned())),
        }
    }
}

/// A mistake on the command line: the run does not start (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

impl Flags {
    /// The seed of this run: `--seed`, or a random one.
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or_else(crate::random_seed)
    }

    /// The realtime profile's configuration for a target and its funded key.
    pub fn config(&self, base_url: &str, api_key: &str) -> Config {
        let mut config = Config::new(base_url, api_key);
        config.zero_credit_api_key = self.zero_credit_api_key.clone();
        config.dev_checkout = self.dev_checkout;
        config.spec = self.spec.clone();
        config.progress = self.verbose;
        config.seed = self.seed();
        config.restart_command = self.restart_command.clone();
        config.kill_command = self.kill_command.clone();
        config.stop_command = self.stop_command.clone();
        config.require_full_coverage = self.require_full_coverage;
        config.only = self.only.clone();
        config
    }

    /// The Pusher profile's configuration for a target and an app; binds the webhook
    /// receiver when `--webhook-listen` is given (so it needs a runtime).
    pub async fn pusher_config(&self, base_url: &str, app: App) -> anyhow::Result<PusherConfig> {
        let mut config = PusherConfig::new(base_url, app.clone());
        if let Some(address) = &self.pusher.webhook_listen {
            let receiver =
                WebhookReceiver::bind(address).await.with_context(|| format!("listening for webhooks on {address}"))?;
            config.webhooks = Some(Webhooks { receiver, app });
        }
        config.progress = self.verbose;
        config.seed = self.seed();
        Ok(config)
    }

    /// Certifies the target these flags name (`--base-url` with `--api-key`, or with the
    /// app for `--profile pusher`); `Ok(false)` when a check failed.
    pub async fn run(&self) -> anyhow::Result<bool> {
        let Some(base_url) = &self.base_url else { bail!(Usage("--base-url is required".to_owned())) };
        match self.profile {
            Profile::Realtime => {
                let Some(api_key) = &self.api_key else {
                    bail!(Usage("the realtime profile needs --api-key".to_owned()))
                };
                self.certify(&self.config(base_url, api_key)).await
            }
            Profile::Pusher => {
                let config = self.pusher_config(base_url, self.pusher.app()?).await?;
                self.certify_pusher(&config).await
            }
        }
    }

    /// Runs the realtime profile with `config`, prints the table and writes the reports.
    pub async fn certify(&self, config: &Config) -> anyhow::Result<bool> {
        eprintln!("conformance: certifying {} with seed {}", config.base_url, config.seed);
        let report = crate::run(config).await?;
        self.finish(&report)
    }

    /// Runs the Pusher profile with `config`, prints the table and writes the reports.
    pub async fn certify_pusher(&self, config: &PusherConfig) -> anyhow::Result<bool> {
        eprintln!("conformance: certifying {} (pusher profile) with seed {}", config.base_url, config.seed);
        let report = crate::pusher::run(config).await?;
        self.finish(&report)
    }

    fn finish(&self, report: &Report) -> anyhow::Result<bool> {
        print!("{}", report.render_table());
        write_reports(report, self.junit.as_deref(), self.report_json.as_deref())?;
        Ok(report.passed())
    }
}

/// The exit status of a run, after saying why it did not pass: 0 every check passed, 1
/// a check failed, 2 the run could not start.
pub fn exit_code(outcome: &anyhow::Result<bool>) -> ExitCode {
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("the target does not conform: see the failed checks above");
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("error: the run could not start: {error:#}");
            ExitCode::from(2)
        }
    }
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

/// A kind of check named as in the report, e.g. `protocol`.
fn parse_kind(name: &str) -> Result<Kind, String> {
    let selectable = |kind: &Kind| !kind.is_pusher() && *kind != Kind::Coverage;
    Kind::ALL.into_iter().filter(selectable).find(|kind| kind.as_str() == name).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL.iter().filter(|kind| selectable(kind)).map(|kind| kind.as_str()).collect();
        format!("no kind {name:?}; one of {}", names.join(", "))
    })
}
