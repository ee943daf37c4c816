//! `realtime-bench`: the bench binary; see the crate documentation for its subcommands.

use std::io::Write;

use clap::{Parser, Subcommand};
use realtime_bench::{baseline, fanout, publish, recovery, storm, suite, user};

#[derive(Parser)]
#[command(about = "Load generators, bare fan-out baseline and bench suite of the realtime workspace")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the bare fan-out baseline (and the do-nothing publish handler).
    Baseline {
        /// Address to listen on (loopback).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
    /// Run one fan-out measurement and print its result as JSON.
    Fanout(fanout::FanoutArgs),
    /// Run one REST publish measurement and print its result as JSON.
    Publish(publish::PublishArgs),
    /// Run one recovery measurement (subscribers catching up on missed messages) and print
    /// its result as JSON.
    Recovery(recovery::RecoveryArgs),
    /// Run one connection storm (N subscribers at once) and the mass disconnects of its
    /// subscribers under probing, and print the result as JSON.
    Storm(storm::StormArgs),
    /// Run the user-addressed messages measurements (reliable message latency, redelivery
    /// on connect, command round trip) and print their result as JSON.
    User(user::UserArgs),
    /// Run the bench scenarios and write the report (what `cargo xtask bench` runs).
    Suite(suite::SuiteArgs),
    /// Write a report again from its `report.json`, by this build's rules (saturation
    /// points, target checks), without running anything.
    Report {
        /// The `report.json` of an earlier run.
        #[arg(long, default_value = "target/bench/report.json")]
        from: std::path::PathBuf,
        /// Where the report goes (it may be the folder of `--from`).
        #[arg(long, default_value = "target/bench")]
        out_dir: std::path::PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Baseline { listen } => serve_baseline(listen),
        Command::Fanout(args) => print_json(&fanout::run(&args)?),
        Command::Publish(args) => print_json(&publish::run(&args)?),
        Command::Recovery(args) => print_json(&recovery::run(&args)?),
        Command::Storm(args) => print_json(&storm::run(&args)?),
        Command::User(args) => print_json(&user::run(&args)?),
        Command::Suite(args) => suite::run(&args),
        Command::Report { from, out_dir } => {
            println!("{}", realtime_bench::report::rerender(&from, &out_dir)?);
            Ok(())
        }
    }
}

fn serve_baseline(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    realtime_bench::raise_nofile_limit(1024)?;
    // One worker per CPU the process may run on (taskset narrows it to one).
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        println!("realtime-bench baseline listening on http://{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        baseline::serve(listener).await?;
        Ok(())
    })
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
