//! CPU time and resident memory of processes, read from `/proc`.

use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};
use serde::Serialize;

/// CPU seconds (user + system) and resident set size of one or more processes, summed.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcSample {
    pub cpu_seconds: f64,
    pub rss_kib: u64,
}

/// Sums CPU time and RSS over `pids`; a process that is gone counts as zero.
pub fn sample(pids: &[u32]) -> ProcSample {
    let mut total = ProcSample::default();
    for &pid in pids {
        total.cpu_seconds += cpu_seconds(&format!("/proc/{pid}/stat")).unwrap_or(0.0);
        total.rss_kib += rss_kib(pid).unwrap_or(0);
    }
    total
}

/// CPU seconds this process (all its threads) has used so far.
pub fn self_cpu_seconds() -> f64 {
    cpu_seconds("/proc/self/stat").unwrap_or(0.0)
}

fn cpu_seconds(stat_path: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(stat_path).with_context(|| format!("reading {stat_path}"))?;
    let ticks = parse_stat_ticks(&stat)?;
    Ok(ticks as f64 / clock_ticks_per_second() as f64)
}

/// utime + stime from a `/proc/<pid>/stat` line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat_ticks(stat: &str) -> anyhow::Result<u64> {
    let Some(close) = stat.rfind(')') else { bail!("malformed stat line: {stat}") };
    // After ") " come fields 3 (state), 4 (ppid), ...; utime is field 14, stime 15.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let (Some(utime), Some(stime)) = (fields.get(11), fields.get(12)) else { bail!("short stat line: {stat}") };
    Ok(utime.parse::<u64>()? + stime.parse::<u64>()?)
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).context("no VmRSS line")
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `CLK_TCK`, asked of `getconf` once (100 on every Linux we know of, the fallback).
fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// The direct children of `pid` (for nginx: the workers of the master).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_are_counted_after_the_command_name() {
        let line = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat_ticks(line).unwrap(), 300);
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        assert_eq!(parse_vm_rss("Name:\tx\nVmRSS:\t   1234 kB\nThreads:\t1\n"), Some(1234));
    }

    #[test]
    fn this_process_has_a_sample() {
        let s = sample(&[std::process::id()]);
        assert!(s.rss_kib > 0);
    }
}
