//! Latency histograms: recorded in microseconds, merged across connections
//! and shards, summarised in milliseconds.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The largest value recorded, in microseconds (one hour); larger ones are
/// clamped to it.
const MAX_MICROS: u64 = 3_600_000_000;

/// A histogram of microseconds with three significant digits.
#[allow(
    clippy::expect_used,
    reason = "constant bounds, which the constructor accepts (low >= 1, high >= 2 * low, 3 digits)"
)]
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// Records `micros`, clamped to the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, micros: u64) {
    histogram.saturating_record(micros.clamp(1, MAX_MICROS));
}

/// The recorded values as (value, count) pairs: how a shard sends its
/// histogram to the parent, which adds them back with [`merge_pairs`].
pub fn to_pairs(histogram: &Histogram<u64>) -> Vec<(u64, u64)> {
    histogram
        .iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Adds the pairs of [`to_pairs`] into `histogram`.
pub fn merge_pairs(histogram: &mut Histogram<u64>, pairs: &[(u64, u64)]) {
    for &(value, count) in pairs {
        // Values come from a histogram with the same bounds.
        let _ = histogram.record_n(value.clamp(1, MAX_MICROS), count);
    }
}

/// A distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many values.
    pub count: u64,
    /// The mean.
    pub mean: f64,
    /// The median.
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The 99.9th percentile.
    pub p999: f64,
    /// The largest value.
    pub max: f64,
}

impl Summary {
    /// Summarises a histogram of microseconds.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| round3(micros as f64 / 1000.0);
        Self {
            count: histogram.len(),
            mean: round3(histogram.mean() / 1000.0),
            p50: ms(histogram.value_at_quantile(0.5)),
            p90: ms(histogram.value_at_quantile(0.9)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// Rounds to three decimals (microseconds, for values in milliseconds).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::{Summary, merge_pairs, new_histogram, record, to_pairs};

    #[test]
    fn pairs_round_trip_and_merge() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        for v in 1..=1000 {
            record(&mut a, v);
            record(&mut b, v * 1000);
        }
        record(&mut b, u64::MAX);
        let mut merged = new_histogram();
        merge_pairs(&mut merged, &to_pairs(&a));
        merge_pairs(&mut merged, &to_pairs(&b));
        assert_eq!(merged.len(), 2001);
        let summary = Summary::of(&merged);
        assert_eq!(summary.count, 2001);
        assert!((summary.p50 - 1.0).abs() < 0.01, "{summary:?}");
        assert!(summary.max >= 3_599_000.0, "{summary:?}");
        let single = Summary::of(&a);
        assert!((single.p99 - 0.99).abs() < 0.002, "{single:?}");
        assert_eq!(Summary::of(&new_histogram()).count, 0);
    }
}
