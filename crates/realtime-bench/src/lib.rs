//! Load generators, the bare fan-out baseline and the bench suite behind `cargo xtask bench`.
//!
//! The binary `realtime-bench` has one subcommand per piece: `baseline` serves the bare
//! fan-out server, `fanout`, `publish`, `recovery`, `storm` and `user` are the load
//! generators (each prints one JSON result; `fanout` also speaks the Pusher protocol, see
//! [`pusher`]), `suite` starts the servers, runs the scenarios and writes the report, and
//! `report` writes a report again from its `report.json` by this build's rules (the
//! saturation points and the target checks), without running anything.

pub mod baseline;
pub mod cluster;
pub mod fanout;
pub mod latency;
pub mod proc_stats;
pub mod publish;
pub mod pusher;
pub mod recovery;
pub mod report;
pub mod servers;
pub mod storm;
pub mod suite;
pub mod svg;
pub mod target;
pub mod user;
pub mod wsclient;

/// Raises the soft open-file limit to the hard one and checks that `needed` fit.
pub fn raise_nofile_limit(needed: u64) -> anyhow::Result<()> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)?;
    if limit < needed {
        anyhow::bail!("the open-file limit is {limit}, and this run needs {needed}");
    }
    Ok(())
}
