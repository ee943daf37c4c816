//! How a node writes its logs: the one set-up of `tracing` from the `log` and `log_format`
//! settings, for the `realtime-server` binary and `realtime serve` alike.

use anyhow::Context;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Writes logs to stderr as `config.log` (a `tracing` filter, checked by
/// [`Config::validate`]) and `config.log_format` say. A program that embeds the server
/// and has set a subscriber of its own keeps that one.
pub fn init(config: &Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log).with_context(|| format!("log = {:?}", config.log))?;
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // Setting fails only when a subscriber is set already, and then that one writes.
    let _ = match config.log_format {
        LogFormat::Json => logs.json().try_init(),
        LogFormat::Text => logs.try_init(),
    };
    Ok(())
}
