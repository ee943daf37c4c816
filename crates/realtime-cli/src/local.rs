//! The commands that run server-side code in this process: `serve` and `conformance`.

use realtime_conformance::cli::Args as HarnessArgs;
use realtime_server::testing::TestServer;

use crate::cli::ConformanceArgs;
use crate::settings::Settings;

/// `realtime serve`: the reference server, exactly as the `realtime-server` binary runs it.
pub(crate) async fn serve(server_config: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    // Another subscriber may already be set when embedded; then keep that one.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REALTIME_LOG")
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let config = realtime_server::Config::load(server_config.as_deref())?;
    realtime_server::serve(config).await
}

/// `realtime conformance`: the harness against the configured server, or against a fresh
/// reference server in a temporary directory with `--reference`.
pub(crate) async fn conformance(settings: &Settings, args: ConformanceArgs) -> anyhow::Result<()> {
    let mut harness = HarnessArgs {
        base_url: settings.url.clone(),
        api_key: String::new(),
        zero_credit_api_key: args.zero_credit_api_key,
        dev_checkout: args.dev_checkout,
        spec: args.spec,
        junit: args.junit,
        json: args.report_json,
        verbose: args.verbose,
    };
    let passed = if args.reference {
        let dir = tempfile::tempdir()?;
        let server = TestServer::start(dir.path()).await?;
        eprintln!("conformance: certifying a reference server at {}", server.base_url());
        harness.base_url = server.base_url();
        harness.api_key = server.api_key();
        harness.zero_credit_api_key = Some(server.create_account(0).await?);
        harness.dev_checkout = true;
        let outcome = realtime_conformance::cli::run(&harness).await;
        server.stop().await?;
        outcome?
    } else {
        let Some(api_key) = settings.api_key.clone() else {
            anyhow::bail!("conformance needs an API key of the target (--api-key), or --reference");
        };
        harness.api_key = api_key;
        realtime_conformance::cli::run(&harness).await?
    };
    anyhow::ensure!(passed, "the target does not conform: see the failed checks above");
    Ok(())
}
