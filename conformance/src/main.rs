//! `realtime-conformance`: certifies the implementation behind a base URL.

use std::process::ExitCode;

use clap::Parser;
use realtime_conformance::cli::Invocation;

fn main() -> ExitCode {
    let args = Invocation::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(realtime_conformance::cli::run_invocation(&args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
