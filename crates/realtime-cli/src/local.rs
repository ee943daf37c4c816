//! The commands that run server-side code in this process: `serve` and `conformance`.

use realtime_conformance::cli::{Flags, Profile, Usage, exit_code};
use realtime_server::testing::TestServer;

use crate::cli::ConformanceArgs;
use crate::settings::Settings;

/// `realtime serve`: the reference server, exactly as the `realtime-server` binary runs it
/// (its settings, its logs).
pub(crate) async fn serve(server_config: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    // Settings the server refuses are a configuration mistake: exit code 2.
    let config = realtime_server::Config::load(server_config.as_deref())
        .map_err(|error| crate::output::UsageError(format!("{error:#}")))?;
    realtime_server::logging::init(&config)?;
    realtime_server::serve(config).await
}

/// `realtime conformance`: the harness against --base-url (or the configured server), or
/// against a fresh reference server in a temporary directory with `--reference`. Ends the
/// process with the harness's exit status: 0 passed, 1 a check failed, 2 not started.
pub(crate) async fn conformance(settings: &Settings, args: ConformanceArgs) -> anyhow::Result<()> {
    let mut flags = args.flags;
    let outcome = if args.reference {
        reference(&flags).await
    } else {
        flags.base_url = Some(flags.base_url.take().unwrap_or_else(|| settings.url.clone()));
        flags.api_key = flags.api_key.take().or_else(|| settings.api_key.clone());
        match (&flags.api_key, flags.profile) {
            (None, Profile::Realtime) => Err(anyhow::Error::new(Usage(
                "conformance needs an API key of the target (--api-key), or --reference".to_owned(),
            ))),
            _ => flags.run().await,
        }
    };
    let _ = exit_code(&outcome);
    match outcome {
        Ok(true) => Ok(()),
        Ok(false) => std::process::exit(1),
        Err(_) => std::process::exit(2),
    }
}

/// Certifies a reference server started in this process in a temporary directory.
async fn reference(flags: &Flags) -> anyhow::Result<bool> {
    if flags.profile == Profile::Pusher {
        anyhow::bail!(Usage(
            "--reference certifies the realtime profile; use cargo xtask conformance --profile pusher".to_owned()
        ));
    }
    let dir = tempfile::tempdir()?;
    // A short heartbeat timeout, so the 4201 check waits 10 s rather than a minute, and a
    // request budget the harness can drive past on loopback (the rate-limit checks).
    let overrides = serde_json::json!({
        "gateway": {"heartbeat_interval_seconds": 4, "heartbeat_timeout_seconds": 10},
        "rate_limit": {"requests_per_second": 200, "burst": 400},
    });
    let server = TestServer::start_with(dir.path(), overrides).await?;
    eprintln!("conformance: certifying a reference server at {}", server.base_url());
    let mut config = flags.config(&server.base_url(), &server.api_key());
    config.zero_credit_api_key = Some(server.create_account(0).await?);
    config.dev_checkout = true;
    let outcome = flags.certify(&config).await;
    server.stop().await?;
    outcome
}
