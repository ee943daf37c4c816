//! The offered-load sweep: each target's figures at each offered publish rate, and the
//! saturation point, the highest load it keeps up with.

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
    /// The highest offered load that this one and every lower load kept up with (nothing
    /// lost, no error, p99 under the limit); None when even the lowest did not. A load
    /// that passes above one that failed is noise, not capacity.
    pub saturation_rate: Option<f64>,
    /// Every load offered was kept up with: the saturation point lies above the sweep.
    pub kept_up_with_all: bool,
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
                            kept_up_with_all: false,
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
        for target in &mut targets {
            target.saturation_rate = saturation(&target.points);
            target.kept_up_with_all = !target.points.is_empty() && target.points.iter().all(|p| p.kept_up);
            target.peak_delivered_per_sec = target.points.iter().map(|p| p.delivered_per_sec).fold(0.0, f64::max);
        }
        Sweep { subscribers, rates, p99_limit_ms: P99_LIMIT_MS, targets }
    }

    pub fn target(&self, kind: TargetKind) -> Option<&SweepTarget> {
        self.targets.iter().find(|t| t.kind == kind && !t.points.is_empty())
    }
}

/// The last offered load of the run of kept-up points that starts at the lowest load.
fn saturation(points: &[SweepPoint]) -> Option<f64> {
    points.iter().take_while(|p| p.kept_up).last().map(|p| p.rate)
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
    fn saturation_is_the_last_load_kept_up_with_from_the_lowest() {
        let groups = [
            group(10.0, vec![row(TargetKind::Realtime, 300.0, 0), row(TargetKind::Nchan, 10.0, 0)]),
            group(2.0, vec![row(TargetKind::Realtime, 5.0, 0), row(TargetKind::Nchan, 5.0, 0)]),
            group(5.0, vec![row(TargetKind::Realtime, 20.0, 0), row(TargetKind::Nchan, 8.0, 3)]),
        ];
        let sweep = Sweep::from_groups(10, &groups.iter().collect::<Vec<_>>());
        assert_eq!(sweep.rates, vec![2.0, 5.0, 10.0]);
        // ours: p99 over the limit at 10/s; nchan: lost messages at 5/s, so its pass at
        // 10/s does not count.
        assert_eq!(sweep.target(TargetKind::Realtime).unwrap().saturation_rate, Some(5.0));
        assert_eq!(sweep.target(TargetKind::Nchan).unwrap().saturation_rate, Some(2.0));
        assert!(!sweep.target(TargetKind::Nchan).unwrap().kept_up_with_all);
    }

    #[test]
    fn a_target_that_misses_the_lowest_load_has_no_saturation_point() {
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
