//! The latency plot: one panel per fan-out load, one percentile curve per target, drawn
//! as plain SVG (a few dozen lines instead of a plotting library and its font stack).

use std::fmt::Write as _;

use crate::report::FanoutGroup;
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
    let lo = values.clone().fold(f64::INFINITY, f64::min).max(0.01);
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

fn trim(ms: f64) -> String {
    if ms >= 1.0 { format!("{ms:.0}") } else { format!("{ms}") }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
