//! `realtime-server [--config FILE]`: runs a node (see `realtime_server::Config`).

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut config_file: Option<PathBuf> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config_file = args.next().map(PathBuf::from),
            "--help" | "-h" => {
                println!(
                    "usage: realtime-server [--config FILE]\n\nSettings: defaults < FILE (or ./realtime.toml) < REALTIME_* variables.\n\n{}",
                    realtime_server::config::DEFAULTS
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}; see --help"),
        }
    }
    let config = realtime_server::Config::load(config_file.as_deref())?;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        realtime_server::config::LogFormat::Json => logs.json().init(),
        realtime_server::config::LogFormat::Text => logs.init(),
    }
    tokio::runtime::Runtime::new()?.block_on(realtime_server::serve(config))
}
