//! Latency histograms (microseconds, HDR) and the summaries the reports print.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency a histogram holds: 10 minutes, far beyond any bounded run.
const MAX_MICROS: u64 = 600_000_000;

/// The quantiles of the plotted percentile curve (1.0 is the maximum).
pub const CURVE_QUANTILES: [f64; 12] = [0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0];

/// A new histogram of microseconds with 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid")
}

/// Records `micros`, clamped into the histogram's range.
pub fn record(hist: &mut Histogram<u64>, micros: u64) {
    hist.saturating_record(micros.clamp(1, MAX_MICROS));
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// (quantile, ms) points of the percentile curve, for the plot.
    pub curve: Vec<(f64, f64)>,
}

impl Summary {
    pub fn of(hist: &Histogram<u64>) -> Summary {
        if hist.is_empty() {
            return Summary::default();
        }
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        Summary {
            count: hist.len(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: hist.max() as f64 / 1000.0,
            curve: CURVE_QUANTILES.iter().map(|&q| (q, ms(q))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reports_milliseconds() {
        let mut h = histogram();
        for us in 1..=1000 {
            record(&mut h, us * 10);
        }
        let s = Summary::of(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 5.0).abs() < 0.01, "{}", s.p50_ms);
        assert!((s.max_ms - 10.0).abs() < 0.01, "{}", s.max_ms);
        assert_eq!(s.curve.len(), CURVE_QUANTILES.len());
    }
}
