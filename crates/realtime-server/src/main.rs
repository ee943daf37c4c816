//! `realtime-server [check-config] [--config FILE]`: runs a node, or only checks its
//! configuration (see `realtime_server::Config`).

use std::path::PathBuf;

/// glibc's malloc and free were 15% of the REST publish's CPU.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut config_file: Option<PathBuf> = None;
    let mut check_only = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => match args.next() {
                Some(path) => config_file = Some(PathBuf::from(path)),
                None => anyhow::bail!("--config needs a file; see --help"),
            },
            "check-config" => check_only = true,
            "--help" | "-h" => {
                println!(
                    "usage: realtime-server [check-config] [--config FILE]\n\n\
                     check-config: check the settings and exit (0 when they are valid).\n\n\
                     Settings: defaults < FILE (or ./realtime.toml) < REALTIME_* variables (`__` separates\n\
                     sections: REALTIME_GATEWAY__OUTBOUND_QUEUE=64). Unknown keys are refused.\n\
                     Unset, console and dev_checkout are on only when listen is a loopback address (as by\n\
                     default): a server listening on a reachable address serves neither unless told.\n\n{}",
                    realtime_server::config::help_table()
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}; see --help"),
        }
    }
    let config = realtime_server::Config::load(config_file.as_deref())?;
    if check_only {
        println!("the settings are valid");
        return Ok(());
    }
    realtime_server::logging::init(&config)?;
    tokio::runtime::Runtime::new()?.block_on(realtime_server::serve(config))
}
