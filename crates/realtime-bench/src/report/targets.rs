//! The targets, checked against the medians of a report (reported, never
//! asserted: these machines are shared and noisy).

use super::{
    FanoutGroup, FanoutMedian, IDLE_KIB_TARGET, Known, Report, Status, Sweep, SweepPoint, SweepTarget, TargetCheck,
    storm, thousands, user,
};
use crate::publish::PublishTarget;
use crate::target::TargetKind;

fn measured(group: &FanoutGroup, kind: TargetKind) -> Option<&FanoutMedian> {
    group.rows.iter().find(|r| r.kind == kind && r.status != Status::Skipped)?.median.as_ref()
}

/// Checks the targets of the issues: peak throughput over the sweep (without one, on the
/// largest load); p99 against nchan's at every load nchan kept up with; the saturation
/// point against nchan's and the bare baseline's; CPU per frame against the baseline's;
/// idle memory; the REST publish on both stores; a node's CPU under foreign traffic;
/// recovery, user messages, the storm and the Pusher face when they ran.
pub fn targets(report: &Report) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    // Throughput compares capacity: the peak over the sweep, whose highest loads offer
    // more than a target delivers; without a sweep, the largest load.
    let peak = |kind| report.sweep.as_ref()?.target(kind).map(|t| t.peak_delivered_per_sec);
    let largest = report
        .fanout
        .iter()
        .max_by(|a, b| (a.subscribers, a.rate).partial_cmp(&(b.subscribers, b.rate)).expect("rates are finite"));
    if let Some(sweep) = &report.sweep {
        let n = sweep.subscribers;
        let (ours, nchan, bare) = (peak(TargetKind::Realtime), peak(TargetKind::Nchan), peak(TargetKind::Baseline));
        let top = sweep.rates.last().copied().unwrap_or(0.0);
        checks.push(ratio_check(
            format!("peak delivered msg/s >= 1.5x nchan ({n} subs, sweep up to {top}/s)"),
            ours.zip(nchan).map(|(o, b)| o / b),
            |r| r >= 1.5,
        ));
        checks.push(ratio_check(
            format!("peak delivered msg/s >= 0.7x bare baseline ({n} subs, sweep up to {top}/s)"),
            ours.zip(bare).map(|(o, b)| o / b),
            |r| r >= 0.7,
        ));
    } else if let Some(group) = largest {
        let n = group.subscribers;
        let ours = measured(group, TargetKind::Realtime);
        let nchan = measured(group, TargetKind::Nchan);
        let bare = measured(group, TargetKind::Baseline);
        checks.push(ratio_check(
            format!("delivered msg/s >= 1.5x nchan ({n} subs, {}/s offered)", group.rate),
            ours.zip(nchan).map(|(o, b)| o.delivered_per_sec / b.delivered_per_sec),
            |r| r >= 1.5,
        ));
        checks.push(ratio_check(
            format!("delivered msg/s >= 0.7x bare baseline ({n} subs, {}/s offered)", group.rate),
            ours.zip(bare).map(|(o, b)| o.delivered_per_sec / b.delivered_per_sec),
            |r| r >= 0.7,
        ));
    }
    if let Some(sweep) = &report.sweep {
        checks.push(p99_at_every_load_nchan_kept_up_with(sweep));
        checks.push(saturation_check(sweep, TargetKind::Nchan, 1.5));
        checks.push(saturation_check(sweep, TargetKind::Baseline, 0.9));
        checks.push(cpu_per_frame_check(sweep));
    }
    let idle_group = report.idle_memory.as_ref().or_else(|| report.fanout.iter().max_by_key(|g| g.subscribers));
    if let Some(group) = idle_group {
        let idle = measured(group, TargetKind::Realtime).map(|m| m.idle_kib_per_conn);
        checks.push(TargetCheck {
            target: format!("idle memory <= {IDLE_KIB_TARGET} KiB/conn ({} conns)", group.subscribers),
            measured: idle.map_or_else(|| "not measured".to_owned(), |v| format!("{v:.2} KiB/conn")),
            met: idle.map(|v| v <= IDLE_KIB_TARGET),
        });
    }
    if let Some(group) = &report.publish {
        let rps = |kind| {
            group
                .rows
                .iter()
                .find(|r| r.kind == kind && r.status != Status::Skipped)?
                .median
                .as_ref()
                .map(|m| m.requests_per_sec)
        };
        checks.push(ratio_check(
            "REST publish req/s >= 0.4x bare axum handler".to_owned(),
            rps(PublishTarget::Realtime).zip(rps(PublishTarget::Noop)).map(|(o, b)| o / b),
            |r| r >= 0.4,
        ));
        checks.push(ratio_check(
            "REST publish on PostgreSQL req/s >= 0.4x bare axum handler".to_owned(),
            rps(PublishTarget::RealtimePostgres).zip(rps(PublishTarget::Noop)).map(|(o, b)| o / b),
            |r| r >= 0.4,
        ));
    }
    if let Some(cluster) = &report.cluster {
        let routed = cluster.routing.iter().find(|run| run.mode == "channel").and_then(|run| run.observer_growth());
        checks.push(TargetCheck {
            target: format!(
                "3 nodes: a node's CPU/s flat as traffic to channels it does not hold grows (<= {CLUSTER_FLAT}x)"
            ),
            measured: routed.map_or_else(
                || "not measured".to_owned(),
                |(rate, growth)| format!("{growth:.2}x at {rate} foreign publishes/s"),
            ),
            met: routed.map(|(_, growth)| growth <= CLUSTER_FLAT),
        });
    }
    if let Some(group) = &report.recovery {
        let target = format!(
            "recovery of {} missed messages: p99 from subscribe to the last recovered frame < 50 ms (one node)",
            thousands(group.messages)
        );
        // The p99 of the recoveries that succeeded says nothing of those that failed.
        let check = match (&group.recovery.median, group.recovery.status) {
            (Some(m), Status::Measured) => {
                TargetCheck { target, measured: format!("{:.2} ms", m.p99_ms), met: Some(m.p99_ms < 50.0) }
            }
            (Some(m), Status::Failed) => TargetCheck {
                target,
                measured: format!("{:.2} ms, but {} recoveries failed", m.p99_ms, m.failures),
                met: None,
            },
            (None, _) | (Some(_), Status::Skipped) => {
                TargetCheck { target, measured: "not measured".to_owned(), met: None }
            }
        };
        checks.push(check);
    }
    if let Some(group) = &report.user {
        checks.push(user::target(group));
    }
    if let Some(group) = &report.storm {
        checks.extend(storm::targets(group));
    }
    // The Pusher scenario's highest offered load compares capacity; memory is the same
    // measure at every load.
    let pusher_top = report.pusher.iter().max_by(|a, b| a.rate.total_cmp(&b.rate));
    if let Some(group) = pusher_top {
        let (ours, sockudo) = (measured(group, TargetKind::Pusher), measured(group, TargetKind::Sockudo));
        checks.push(ratio_check(
            format!(
                "Pusher protocol: delivered msg/s >= sockudo's ({} subs, {}/s offered)",
                group.subscribers, group.rate
            ),
            ours.zip(sockudo)
                .filter(|(_, s)| s.delivered_per_sec > 0.0)
                .map(|(o, s)| o.delivered_per_sec / s.delivered_per_sec),
            |r| r >= 1.0,
        ));
        checks.push(ratio_check(
            format!("Pusher protocol: idle KiB/conn <= sockudo's ({} conns)", group.subscribers),
            ours.zip(sockudo)
                .filter(|(_, s)| s.idle_kib_per_conn > 0.0)
                .map(|(o, s)| o.idle_kib_per_conn / s.idle_kib_per_conn),
            |r| r <= 1.0,
        ));
    }
    checks
}

/// What counts as flat for a node's CPU/s under growing foreign traffic: the CPU/s of
/// these nodes is a few hundredths of a second, where a scheduler's noise moves it by a
/// fifth.
const CLUSTER_FLAT: f64 = 1.25;

/// Our figure over another target's at each offered load both were measured at and
/// `compared` accepts, as (load, ratio).
fn ratios_at_each_load(
    sweep: &Sweep,
    other: TargetKind,
    compared: fn(&SweepPoint, &SweepPoint) -> bool,
    figure: fn(&SweepPoint) -> f64,
) -> Vec<(f64, f64)> {
    let points = |kind| sweep.target(kind).map(|t| t.points.as_slice()).unwrap_or_default();
    points(TargetKind::Realtime)
        .iter()
        .filter_map(|o| Some((o, points(other).iter().find(|p| p.rate == o.rate)?)))
        .filter(|(o, p)| compared(o, p) && figure(p) > 0.0)
        .map(|(o, p)| (o.rate, figure(o) / figure(p)))
        .collect()
}

/// A check that the worst of `ratios` is at most `at_most`, showing every ratio.
fn worst_ratio_check(target: String, ratios: &[(f64, f64)], at_most: f64, none: &str) -> TargetCheck {
    let Some(&(rate, worst)) = ratios.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else {
        return TargetCheck { target, measured: none.to_owned(), met: None };
    };
    let each: Vec<String> = ratios.iter().map(|(rate, r)| format!("{rate}/s {r:.2}x")).collect();
    TargetCheck {
        target,
        measured: format!("worst {worst:.2}x at {rate}/s ({})", each.join(", ")),
        met: Some(worst <= at_most),
    }
}

/// Our p99 over nchan's at every offered load nchan kept up with: latencies compare only
/// at the same offered load, and past a target's saturation they measure its queue.
fn p99_at_every_load_nchan_kept_up_with(sweep: &Sweep) -> TargetCheck {
    let ratios = ratios_at_each_load(sweep, TargetKind::Nchan, |_, nchan| nchan.kept_up, |p| p.p99_ms);
    worst_ratio_check(
        format!("p99 <= nchan's at every offered load nchan kept up with ({} subs)", sweep.subscribers),
        &ratios,
        1.0,
        "nchan kept up with no load",
    )
}

/// Our server CPU per delivered frame over the bare baseline's at every offered load both
/// kept up with (past saturation both fill their core, and the figure measures batching).
fn cpu_per_frame_check(sweep: &Sweep) -> TargetCheck {
    let ratios = ratios_at_each_load(
        sweep,
        TargetKind::Baseline,
        |ours, bare| ours.kept_up && bare.kept_up,
        |p| p.server_cpu_us_per_frame,
    );
    worst_ratio_check(
        format!(
            "server CPU per delivered frame <= 1.1x bare baseline's, at every load both kept up with ({} subs)",
            sweep.subscribers
        ),
        &ratios,
        1.1,
        "no load both kept up with",
    )
}

/// Our saturation point over `other`'s, at least `at_least`. A target that kept up with
/// the highest load saturates above the sweep, so a ratio with it is a bound: the verdict
/// is given only when the bound decides it.
fn saturation_check(sweep: &Sweep, other: TargetKind, at_least: f64) -> TargetCheck {
    let target = format!("saturation point >= {at_least}x {}'s ({} subs)", other.label(), sweep.subscribers);
    let (Some(ours), Some(theirs)) = (sweep.target(TargetKind::Realtime), sweep.target(other)) else {
        return TargetCheck { target, measured: "not measured".to_owned(), met: None };
    };
    let shown = |t: &SweepTarget| match t.saturation_rate {
        Some(rate) if t.saturates_above_sweep => format!("{rate}/s or more"),
        Some(rate) => format!("{rate}/s"),
        None => "none".to_owned(),
    };
    let measured = format!("{} vs {}", shown(ours), shown(theirs));
    let Some((ratio, known)) = ours.saturation_ratio(theirs) else {
        // One of the two kept up with no load: ours wins only when it kept up with some.
        let met = theirs.saturation_rate.is_none() && ours.saturation_rate.is_some();
        return TargetCheck { target, measured, met: Some(met) };
    };
    let met = match known {
        Known::Exactly => Some(ratio >= at_least),
        Known::AtLeast => (ratio >= at_least).then_some(true),
        Known::AtMost => (ratio < at_least).then_some(false),
        Known::Neither => None,
    };
    TargetCheck { target, measured: format!("{measured}: {ratio:.2}x"), met }
}

fn ratio_check(target: String, ratio: Option<f64>, ok: fn(f64) -> bool) -> TargetCheck {
    TargetCheck {
        target,
        measured: ratio.map_or_else(|| "not measured".to_owned(), |r| format!("{r:.2}x")),
        met: ratio.map(ok),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::P99_LIMIT_MS;

    /// A sweep point: kept up with when `kept_up`, with this p99 and CPU per frame.
    fn point(rate: f64, kept_up: bool, p99_ms: f64, cpu_us: f64) -> SweepPoint {
        SweepPoint {
            rate,
            status: Status::Measured,
            delivered_per_sec: rate * 1000.0,
            publish_rate: rate,
            p50_ms: p99_ms / 2.0,
            p99_ms,
            p999_ms: p99_ms,
            lost_worst: 0,
            publish_failures_worst: 0,
            server_cpu_us_per_frame: cpu_us,
            kept_up,
        }
    }

    fn sweep(targets: Vec<(TargetKind, Vec<SweepPoint>)>) -> Sweep {
        let mut sweep = Sweep {
            subscribers: 10,
            rates: vec![2.0, 5.0, 10.0],
            p99_limit_ms: P99_LIMIT_MS,
            targets: targets
                .into_iter()
                .map(|(kind, points)| SweepTarget {
                    kind,
                    label: format!("{kind:?}"),
                    skipped: None,
                    points,
                    saturation_rate: None,
                    saturates_above_sweep: false,
                    peak_delivered_per_sec: 0.0,
                })
                .collect(),
        };
        sweep.settle();
        sweep
    }

    #[test]
    fn p99_is_compared_at_every_load_nchan_kept_up_with_and_the_worst_decides() {
        let sweep = sweep(vec![
            (
                TargetKind::Realtime,
                vec![point(2.0, true, 90.0, 1.0), point(5.0, true, 120.0, 1.0), point(10.0, true, 100.0, 1.0)],
            ),
            (
                TargetKind::Nchan,
                vec![point(2.0, true, 100.0, 1.0), point(5.0, true, 100.0, 1.0), point(10.0, false, 900.0, 1.0)],
            ),
        ]);
        let check = p99_at_every_load_nchan_kept_up_with(&sweep);
        assert_eq!(check.measured, "worst 1.20x at 5/s (2/s 0.90x, 5/s 1.20x)");
        assert_eq!(check.met, Some(false));
    }

    #[test]
    fn cpu_per_frame_is_compared_where_both_kept_up() {
        let sweep = sweep(vec![
            (
                TargetKind::Realtime,
                vec![point(2.0, true, 1.0, 10.5), point(5.0, true, 1.0, 9.0), point(10.0, false, 1.0, 20.0)],
            ),
            (
                TargetKind::Baseline,
                vec![point(2.0, true, 1.0, 10.0), point(5.0, false, 1.0, 1.0), point(10.0, true, 1.0, 5.0)],
            ),
        ]);
        let check = cpu_per_frame_check(&sweep);
        assert_eq!(check.measured, "worst 1.05x at 2/s (2/s 1.05x)");
        assert_eq!(check.met, Some(true));
    }

    #[test]
    fn a_saturation_point_above_the_sweep_is_a_bound_that_decides_only_one_way() {
        let kept = |rates: &[f64]| rates.iter().map(|&r| point(r, r < 6.0, 1.0, 1.0)).collect::<Vec<_>>();
        let all = |rates: &[f64]| rates.iter().map(|&r| point(r, true, 1.0, 1.0)).collect::<Vec<_>>();
        // Ours saturates at 5/s, the baseline at 10/s or more: 0.5x or less, missed.
        let capped = sweep(vec![
            (TargetKind::Realtime, kept(&[2.0, 5.0, 10.0])),
            (TargetKind::Baseline, all(&[2.0, 5.0, 10.0])),
        ]);
        let check = saturation_check(&capped, TargetKind::Baseline, 0.9);
        assert_eq!(check.measured, "5/s vs 10/s or more: 0.50x");
        assert_eq!(check.met, Some(false));
        // Both above the sweep: no verdict.
        let both = sweep(vec![(TargetKind::Realtime, all(&[2.0, 10.0])), (TargetKind::Baseline, all(&[2.0, 10.0]))]);
        assert_eq!(saturation_check(&both, TargetKind::Baseline, 0.9).met, None);
        // Ours above the sweep at 10/s, nchan at 5/s: 2x or more, met.
        let ahead =
            sweep(vec![(TargetKind::Realtime, all(&[2.0, 5.0, 10.0])), (TargetKind::Nchan, kept(&[2.0, 5.0, 10.0]))]);
        assert_eq!(saturation_check(&ahead, TargetKind::Nchan, 1.5).met, Some(true));
    }
}
