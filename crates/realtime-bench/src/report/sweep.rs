//! The offered-load sweep: each target's figures at each offered publish rate, and the
//! saturation point, the highest load it keeps up with (the definition: the
//! highest offered load delivered with nothing lost and p99 under the limit).

use serde::{Deserialize, Serialize};

use super::{FanoutGroup, Status};
use crate::target::TargetKind;

/// A load is kept up with when nothing is lost and p99 is under this.
pub const P99_LIMIT_MS: f64 = 250.0;

/// Every target at every offered load, at one subscriber count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sweep {
    pub subscribers: usize,
    /// Offered publishes per second, ascending.
    pub rates: Vec<f64>,
    pub p99_limit_ms: f64,
    pub targets: Vec<SweepTarget>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepTarget {
    pub kind: TargetKind,
    pub label: String,
    /// Why the target was not measured, when it was not.
    pub skipped: Option<String>,
    pub points: Vec<SweepPoint>,
    /// The highest offered load kept up with (nothing lost, no error, p99 under the
    /// limit); None when no load was. A lower load missed on the way is shown beside it
    /// ([`SweepTarget::missed_below_saturation`]): noise, or a cliff, for a reader to see.
    pub saturation_rate: Option<f64>,
    /// The highest load offered was kept up with: the saturation point is that load or
    /// more, beyond what the sweep measures.
    #[serde(alias = "kept_up_with_all")]
    pub saturates_above_sweep: bool,
    /// The most delivered msg/s at any load of the sweep: capacity, once a load exceeds it.
    pub peak_delivered_per_sec: f64,
}

/// The medians of one target at one offered load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepPoint {
    pub rate: f64,
    pub status: Status,
    pub delivered_per_sec: f64,
    /// Publishes answered per second.
    pub publish_rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub lost_worst: u64,
    pub publish_failures_worst: u64,
    pub server_cpu_us_per_frame: f64,
    /// Nothing lost, no publish failed, no error, p99 under the limit.
    pub kept_up: bool,
}

impl Sweep {
    /// The sweep from its groups (one per offered load, every target in each).
    pub fn from_groups(subscribers: usize, groups: &[&FanoutGroup]) -> Sweep {
        let mut groups = groups.to_vec();
        groups.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let rates = groups.iter().map(|g| g.rate).collect();
        let mut targets: Vec<SweepTarget> = Vec::new();
        for group in &groups {
            for row in &group.rows {
                let index = match targets.iter().position(|t| t.kind == row.kind) {
                    Some(i) => i,
                    None => {
                        targets.push(SweepTarget {
                            kind: row.kind,
                            label: row.label.clone(),
                            skipped: None,
                            points: Vec::new(),
                            saturation_rate: None,
                            saturates_above_sweep: false,
                            peak_delivered_per_sec: 0.0,
                        });
                        targets.len() - 1
                    }
                };
                let target = &mut targets[index];
                match (&row.median, row.status) {
                    (Some(m), status) => target.points.push(SweepPoint {
                        rate: group.rate,
                        status,
                        delivered_per_sec: m.delivered_per_sec,
                        publish_rate: m.publish_rate,
                        p50_ms: m.p50_ms,
                        p99_ms: m.p99_ms,
                        p999_ms: m.p999_ms,
                        lost_worst: m.lost_worst,
                        publish_failures_worst: m.publish_failures_worst,
                        server_cpu_us_per_frame: m.server_cpu_us_per_frame,
                        kept_up: status == Status::Measured
                            && m.lost_worst == 0
                            && m.publish_failures_worst == 0
                            && m.p99_ms < P99_LIMIT_MS,
                    }),
                    (None, _) => {
                        target.skipped.get_or_insert_with(|| row.reason.clone().unwrap_or_default());
                    }
                }
            }
        }
        let mut sweep = Sweep { subscribers, rates, p99_limit_ms: P99_LIMIT_MS, targets };
        sweep.settle();
        sweep
    }

    /// Works out what follows from the points: each target's saturation point, whether it
    /// lies above the sweep, its peak. (Also run on a report read back from its JSON, so
    /// that it is rendered by the rules of this build.)
    pub fn settle(&mut self) {
        for target in &mut self.targets {
            target.saturation_rate = saturation(&target.points);
            target.saturates_above_sweep = target.points.last().is_some_and(|p| p.kept_up);
            target.peak_delivered_per_sec = target.points.iter().map(|p| p.delivered_per_sec).fold(0.0, f64::max);
        }
    }

    pub fn target(&self, kind: TargetKind) -> Option<&SweepTarget> {
        self.targets.iter().find(|t| t.kind == kind && !t.points.is_empty())
    }
}

/// How far a ratio of two saturation points is known: a target that kept up with the
/// highest load offered saturates at that load or above it, so a ratio with it is a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Exactly,
    AtLeast,
    AtMost,
    /// Both saturate above the sweep: the ratio measures nothing.
    Neither,
}

impl SweepTarget {
    /// This target's saturation point over `other`'s, and how far the ratio is known;
    /// None when either kept up with no load.
    pub fn saturation_ratio(&self, other: &SweepTarget) -> Option<(f64, Known)> {
        let ratio = self.saturation_rate? / other.saturation_rate?;
        let known = match (self.saturates_above_sweep, other.saturates_above_sweep) {
            (true, true) => Known::Neither,
            (true, false) => Known::AtLeast,
            (false, true) => Known::AtMost,
            (false, false) => Known::Exactly,
        };
        Some((ratio, known))
    }

    /// The loads below the saturation point that were not kept up with.
    pub fn missed_below_saturation(&self) -> Vec<f64> {
        let below = self.saturation_rate.unwrap_or(f64::NEG_INFINITY);
        self.points.iter().filter(|p| !p.kept_up && p.rate < below).map(|p| p.rate).collect()
    }
}

/// The highest offered load kept up with.
fn saturation(points: &[SweepPoint]) -> Option<f64> {
    points.iter().filter(|p| p.kept_up).map(|p| p.rate).max_by(f64::total_cmp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{FanoutMedian, FanoutRow};

    fn row(kind: TargetKind, p99_ms: f64, lost: u64) -> FanoutRow {
        let median = FanoutMedian {
            delivered_per_sec: 1000.0,
            publish_rate: 1.0,
            p50_ms: p99_ms / 2.0,
            p99_ms,
            p999_ms: p99_ms,
            max_ms: p99_ms,
            first_subscriber_p50_ms: 0.0,
            fanout_complete_p99_ms: 0.0,
            publish_http_p50_ms: 0.0,
            send_lag_p99_ms: 0.0,
            lost_worst: lost,
            publish_failures_worst: 0,
            server_cpu_secs: 0.0,
            server_cpu_us_per_frame: 0.0,
            server_busy: 0.0,
            loadgen_busy: 0.0,
            loadgen_cpu_secs: 0.0,
            idle_kib_per_conn: 0.0,
            connect_secs: 0.0,
            curve: vec![],
        };
        FanoutRow {
            kind,
            label: format!("{kind:?}"),
            status: Status::Measured,
            reason: None,
            median: Some(median),
            runs: vec![],
        }
    }

    fn group(rate: f64, rows: Vec<FanoutRow>) -> FanoutGroup {
        FanoutGroup { title: format!("{rate}/s"), subscribers: 10, publishes: 10, rate, rows }
    }

    #[test]
    fn saturation_is_the_highest_load_kept_up_with_and_the_misses_below_it_are_listed() {
        let groups = [
            group(10.0, vec![row(TargetKind::Realtime, 300.0, 0), row(TargetKind::Nchan, 10.0, 0)]),
            group(2.0, vec![row(TargetKind::Realtime, 5.0, 0), row(TargetKind::Nchan, 5.0, 0)]),
            group(5.0, vec![row(TargetKind::Realtime, 20.0, 0), row(TargetKind::Nchan, 8.0, 3)]),
        ];
        let sweep = Sweep::from_groups(10, &groups.iter().collect::<Vec<_>>());
        assert_eq!(sweep.rates, vec![2.0, 5.0, 10.0]);
        // ours: p99 over the limit at 10/s; nchan: lost messages at 5/s, kept up at 10/s.
        let (ours, nchan) = (sweep.target(TargetKind::Realtime).unwrap(), sweep.target(TargetKind::Nchan).unwrap());
        assert_eq!(ours.saturation_rate, Some(5.0));
        assert!(ours.missed_below_saturation().is_empty());
        assert_eq!(nchan.saturation_rate, Some(10.0));
        assert_eq!(nchan.missed_below_saturation(), vec![5.0]);
        assert!(nchan.saturates_above_sweep);
        assert!(!ours.saturates_above_sweep);
    }

    #[test]
    fn a_target_that_misses_every_load_has_no_saturation_point() {
        let groups = [group(2.0, vec![row(TargetKind::Baseline, 900.0, 0)])];
        let sweep = Sweep::from_groups(10, &groups.iter().collect::<Vec<_>>());
        assert_eq!(sweep.target(TargetKind::Baseline).unwrap().saturation_rate, None);
    }

    #[test]
    fn a_load_with_failed_publishes_is_not_kept_up_with() {
        let mut failing = row(TargetKind::Nchan, 10.0, 0);
        failing.median.as_mut().expect("the row has a median").publish_failures_worst = 3;
        let groups = [group(2.0, vec![failing])];
        let sweep = Sweep::from_groups(10, &groups.iter().collect::<Vec<_>>());
        let nchan = sweep.target(TargetKind::Nchan).unwrap();
        assert!(!nchan.points[0].kept_up);
        assert_eq!(nchan.saturation_rate, None);
    }
}
