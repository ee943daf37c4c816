//! The latency plots, drawn as plain SVG (a few dozen lines instead of a plotting library
//! and its font stack): percentile curves, one panel per fan-out load and one curve per
//! target; and p99 against offered load, one line per target.

use std::fmt::Write as _;

use crate::report::{FanoutGroup, Sweep};
use crate::target::TargetKind;

const WIDTH: f64 = 760.0;
const PANEL_HEIGHT: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 45.0;
/// The x axis runs over "nines": 0 = p0, 1 = p90, 2 = p99, ..., and 5 stands for the maximum.
const MAX_NINES: f64 = 5.0;

fn color(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Realtime => "#d62728",
        TargetKind::Baseline => "#2ca02c",
        TargetKind::Nchan => "#1f77b4",
        TargetKind::Pusher => "#9467bd",
        TargetKind::Sockudo => "#ff7f0e",
    }
}

fn nines(quantile: f64) -> f64 {
    if quantile >= 1.0 { MAX_NINES } else { (-(1.0 - quantile).log10()).min(MAX_NINES - 0.5) }
}

/// An SVG document with a log-scale latency-by-percentile panel per group.
pub fn latency_plot(groups: &[&FanoutGroup]) -> String {
    let height = PANEL_HEIGHT * groups.len().max(1) as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
"#
    );
    for (i, group) in groups.iter().enumerate() {
        panel(&mut svg, group, i as f64 * PANEL_HEIGHT);
    }
    svg.push_str("</svg>\n");
    svg
}

struct Curve<'a> {
    label: &'a str,
    kind: TargetKind,
    points: &'a [(f64, f64)],
}

fn panel(svg: &mut String, group: &FanoutGroup, y0: f64) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = PANEL_HEIGHT - TOP - BOTTOM;
    let curves: Vec<Curve<'_>> = group
        .rows
        .iter()
        .filter_map(|r| r.median.as_ref().map(|m| Curve { label: &r.label, kind: r.kind, points: &m.curve }))
        .collect();
    let values = curves.iter().flat_map(|c| c.points.iter().map(|p| p.1)).filter(|v| *v > 0.0);
    // With no measured point (every target skipped or failed) the axes still get a range.
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let lo = if lo.is_finite() { lo.max(0.01) } else { 1.0 };
    let hi = values.fold(0.0, f64::max).max(lo * 10.0);
    let (log_lo, log_hi) = (lo.log10().floor(), hi.log10().ceil());
    let x = |q: f64| LEFT + nines(q) / MAX_NINES * plot_w;
    // Points below the lowest decade (a p0 of 0) sit on the axis.
    let y = |ms: f64| y0 + TOP + plot_h - (ms.max(10f64.powf(log_lo)).log10() - log_lo) / (log_hi - log_lo) * plot_h;

    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
        y0 + 22.0,
        escape(&group.title)
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>"##,
        y0 + TOP
    );
    for (label, q) in [("p0", 0.0), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999), ("p99.99", 0.9999), ("max", 1.0)] {
        let px = x(q);
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{}" x2="{px:.1}" y2="{}" stroke="#eee"/><text x="{px:.1}" y="{}" text-anchor="middle">{label}</text>"##,
            y0 + TOP,
            y0 + TOP + plot_h,
            y0 + TOP + plot_h + 16.0
        );
    }
    let mut decade = log_lo;
    while decade <= log_hi {
        let ms = 10f64.powf(decade);
        let py = y(ms);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{} ms</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            py + 4.0,
            trim(ms)
        );
        decade += 1.0;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">publish-to-receive latency by percentile (log scale)</text>"#,
        LEFT + plot_w / 2.0,
        y0 + PANEL_HEIGHT - 8.0
    );
    for (i, Curve { label, kind, points: curve }) in curves.iter().enumerate() {
        let points: Vec<String> = curve.iter().map(|&(q, ms)| format!("{:.1},{:.1}", x(q), y(ms))).collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            color(*kind),
            points.join(" ")
        );
        let ly = y0 + TOP + 14.0 + i as f64 * 18.0;
        let lx = LEFT + plot_w + 10.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 18.0,
            color(*kind),
            lx + 24.0,
            ly + 4.0,
            escape(label)
        );
    }
}

/// An SVG document with p99 (log scale) against offered publishes/s, one line per target
/// of the sweep; a hollow point lost messages, and the dashed line is the p99 limit of the
/// saturation point.
pub fn load_plot(sweep: &Sweep) -> String {
    let height = PANEL_HEIGHT + 40.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = height - TOP - BOTTOM;
    let points = || sweep.targets.iter().flat_map(|t| t.points.iter());
    let values = points().map(|p| p.p99_ms).chain([sweep.p99_limit_ms]).filter(|v| *v > 0.0);
    // With no measured point (every target skipped or failed) the axes still get a range.
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let lo = if lo.is_finite() { lo.max(0.01) } else { 1.0 };
    let hi = values.fold(0.0, f64::max).max(lo * 10.0);
    let (log_lo, log_hi) = (lo.log10().floor(), hi.log10().ceil());
    let max_rate = sweep.rates.iter().copied().fold(1.0, f64::max);
    let x = |rate: f64| LEFT + rate / max_rate * plot_w;
    let y = |ms: f64| TOP + plot_h - (ms.max(10f64.powf(log_lo)).log10() - log_lo) / (log_hi - log_lo) * plot_h;

    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="22" font-size="14" font-weight="bold">p99 latency against offered load: {} subscribers, open-loop publisher</text>
<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>
"##,
        crate::report::thousands(sweep.subscribers as u64)
    );
    for &rate in &sweep.rates {
        let px = x(rate);
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#eee"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 16.0,
            trim(rate)
        );
    }
    let mut decade = log_lo;
    while decade <= log_hi {
        let ms = 10f64.powf(decade);
        let py = y(ms);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{} ms</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            py + 4.0,
            trim(ms)
        );
        decade += 1.0;
    }
    let limit = y(sweep.p99_limit_ms);
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{limit:.1}" x2="{}" y2="{limit:.1}" stroke="#555" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" text-anchor="end" fill="#555">p99 limit {} ms</text>"##,
        LEFT + plot_w,
        LEFT + plot_w - 4.0,
        limit - 4.0,
        trim(sweep.p99_limit_ms)
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">offered publishes/s (p99 from the scheduled send, log scale; hollow: messages lost)</text>"#,
        LEFT + plot_w / 2.0,
        height - 8.0
    );
    for (i, target) in sweep.targets.iter().filter(|t| !t.points.is_empty()).enumerate() {
        let colour = color(target.kind);
        let line: Vec<String> = target.points.iter().map(|p| format!("{:.1},{:.1}", x(p.rate), y(p.p99_ms))).collect();
        let _ =
            writeln!(svg, r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#, line.join(" "));
        for p in &target.points {
            let fill = if p.lost_worst > 0 { "white" } else { colour };
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{fill}" stroke="{colour}" stroke-width="2"/>"#,
                x(p.rate),
                y(p.p99_ms)
            );
        }
        let at_least = if target.saturates_above_sweep { ">= " } else { "" };
        let saturation =
            target.saturation_rate.map_or_else(|| "none".to_owned(), |r| format!("{at_least}{}/s", trim(r)));
        let ly = TOP + 14.0 + i as f64 * 34.0;
        let lx = LEFT + plot_w + 10.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text><text x="{}" y="{}" font-size="11">saturation: {saturation}</text>"#,
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(&target.label),
            lx + 24.0,
            ly + 18.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn trim(ms: f64) -> String {
    if ms >= 1.0 { format!("{ms:.0}") } else { format!("{ms}") }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Status, SweepPoint, SweepTarget};

    fn point(rate: f64, p99_ms: f64, lost_worst: u64) -> SweepPoint {
        SweepPoint {
            rate,
            status: Status::Measured,
            delivered_per_sec: 0.0,
            publish_rate: rate,
            p50_ms: p99_ms,
            p99_ms,
            p999_ms: p99_ms,
            lost_worst,
            publish_failures_worst: 0,
            server_cpu_us_per_frame: 0.0,
            kept_up: lost_worst == 0,
        }
    }

    #[test]
    fn load_plot_has_a_line_per_measured_target_and_marks_lost_points() {
        let target = |kind, points: Vec<SweepPoint>| SweepTarget {
            kind,
            label: format!("{kind:?}"),
            skipped: None,
            saturation_rate: Some(2.0),
            saturates_above_sweep: false,
            peak_delivered_per_sec: 0.0,
            points,
        };
        let sweep = Sweep {
            subscribers: 1000,
            rates: vec![2.0, 5.0],
            p99_limit_ms: 250.0,
            targets: vec![
                target(TargetKind::Realtime, vec![point(2.0, 3.0, 0), point(5.0, 900.0, 7)]),
                target(TargetKind::Baseline, vec![point(2.0, 2.0, 0), point(5.0, 4.0, 0)]),
                target(TargetKind::Nchan, vec![]),
            ],
        };
        let svg = load_plot(&sweep);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches(r##"fill="white" stroke="#d62728""##).count(), 1);
        assert!(svg.contains("p99 limit 250 ms"), "{svg}");
    }

    #[test]
    fn a_group_without_a_measured_row_is_drawn_with_empty_axes() {
        let skipped = |kind| crate::report::FanoutRow::skipped(kind, "skipped", "not installed".to_owned());
        let group = FanoutGroup {
            title: "nothing measured".to_owned(),
            subscribers: 10,
            publishes: 1,
            rate: 1.0,
            rows: vec![skipped(TargetKind::Pusher), skipped(TargetKind::Sockudo)],
        };
        let svg = latency_plot(&[&group]);
        assert_eq!(svg.matches("<polyline").count(), 0);
        assert!(svg.ends_with("</svg>\n"), "{svg}");
    }
}
