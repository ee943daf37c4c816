//! The project's workflow in one place: `cargo xtask <command>`.
//!
//! Each command lives in its own module; commands with many options parse their own
//! arguments, so this file only routes.

mod bench;
mod ci;
mod clients;
mod conformance;
mod openapi;
mod schemathesis;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Workflow tasks of the realtime workspace")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the generated contract documents to `openapi/` (or check them with --check).
    Openapi {
        /// Fail with a diff instead of writing when the committed documents are stale.
        #[arg(long)]
        check: bool,
    },
    /// Certify an implementation of the contract (the reference server when no --base-url).
    #[command(disable_help_flag = true)]
    Conformance {
        /// Options of the harness; see `cargo xtask conformance --help`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Fuzz the reference server against the OpenAPI document with Schemathesis (bounded).
    #[command(disable_help_flag = true)]
    Schemathesis {
        /// Options for `st run`, after ours (they win); e.g. `-- --max-examples 500`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Generate TypeScript types from the contract and type-check the example client.
    Clients,
    /// Run the benchmarks and write target/bench/report.{md,json}.
    #[command(disable_help_flag = true)]
    Bench {
        /// Options of the bench; see `cargo xtask bench --help`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Everything CI checks: fmt, clippy, tests, drift, conformance, schemathesis, lint, clients, bench.
    Ci,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Openapi { check } => openapi::run(check),
        Command::Conformance { args } => conformance::run(args),
        Command::Schemathesis { args } => schemathesis::run(args),
        Command::Clients => clients::run(),
        Command::Bench { args } => bench::run(args),
        Command::Ci => ci::run(),
    }
}
