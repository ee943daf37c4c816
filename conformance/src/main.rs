//! `realtime-conformance`: certifies the implementation behind a base URL.
//! Exit status: 0 every check passed, 1 a check failed, 2 the run could not start.

use std::process::ExitCode;

use clap::Parser;
use realtime_conformance::cli::{Invocation, exit_code};

fn main() -> ExitCode {
    let invocation = Invocation::parse();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| anyhow::anyhow!("cannot start the async runtime: {err}"))
        .and_then(|runtime| runtime.block_on(invocation.flags.run()));
    exit_code(&outcome)
}
