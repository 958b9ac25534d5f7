//! Latency statistics for the load generator.
//!
//! Percentiles use the nearest-rank method on the full sorted sample (no
//! histogram buckets, no interpolation): every reported figure is a latency that
//! was actually observed, which is what a p99 target is about.

use serde::Serialize;

/// The `p`-th percentile (0 < p <= 100) of an ascending `sorted` slice, by nearest
/// rank: the smallest value such that at least `p`% of the sample is <= it.
/// `None` for an empty slice or a `p` outside (0, 100].
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    // Float-to-int `as` saturates; rank is in 1..=len after the clamp.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).copied()
}

/// Microseconds to milliseconds, rounded to two decimals for reports.
pub fn micros_to_ms(micros: u32) -> f64 {
    (f64::from(micros) / 10.0).round() / 100.0
}

/// p50 and p99 in milliseconds of a latency sample in microseconds (sorted here).
/// Both are 0.0 for an empty sample, which the error count then explains.
pub fn summarize(mut latencies_us: Vec<u32>) -> (f64, f64) {
    latencies_us.sort_unstable();
    let at = |p| percentile(&latencies_us, p).map_or(0.0, micros_to_ms);
    (at(50.0), at(99.0))
}

/// A delivery-delay sample, summarised: how many, and p50 / p99 / max in ms.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct DelaySummary {
    pub deliveries: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl DelaySummary {
    /// Summarises `delays_us` (sorted here) by nearest rank; all zero when empty.
    pub fn of(mut delays_us: Vec<u32>) -> Self {
        delays_us.sort_unstable();
        let at = |p| percentile(&delays_us, p).map_or(0.0, micros_to_ms);
        Self {
            deliveries: delays_us.len(),
            p50_ms: at(50.0),
            p99_ms: at(99.0),
            max_ms: at(100.0),
        }
    }

    /// The p99, unless nothing was delivered (no delivery is a failure, not a 0 ms delay).
    pub fn measured_p99(&self) -> Option<f64> {
        (self.deliveries > 0).then_some(self.p99_ms)
    }
}

/// The median of a small sample (e.g. start-up times); `None` when empty.
/// For an even count this is the mean of the two middle values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => sorted.get(mid).copied(),
        _ => Some((sorted.get(mid - 1)? + sorted.get(mid)?) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_of_empty_sample_is_none() {
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn percentile_rejects_out_of_range_p() {
        assert_eq!(percentile(&[1, 2, 3], 0.0), None);
        assert_eq!(percentile(&[1, 2, 3], 100.5), None);
        assert_eq!(percentile(&[1, 2, 3], f64::NAN), None);
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(50));
        assert_eq!(percentile(&sorted, 99.0), Some(99));
        assert_eq!(percentile(&sorted, 100.0), Some(100));
        assert_eq!(percentile(&sorted, 0.5), Some(1));
        // Rank 0.99 * 10 = 9.9 rounds up to the 10th value, not interpolated.
        let ten = [10, 20, 30, 40, 50, 60, 70, 80, 90, 1000];
        assert_eq!(percentile(&ten, 99.0), Some(1000));
        assert_eq!(percentile(&ten, 50.0), Some(50));
    }

    #[test]
    fn percentile_of_single_value_is_that_value() {
        assert_eq!(percentile(&[7], 1.0), Some(7));
        assert_eq!(percentile(&[7], 99.0), Some(7));
    }

    #[test]
    fn summarize_sorts_and_converts_to_ms() {
        let mut sample: Vec<u32> = (1..=100).map(|i| i * 100).collect();
        sample.reverse();
        assert_eq!(summarize(sample), (5.0, 9.9));
        assert_eq!(summarize(Vec::new()), (0.0, 0.0));
    }

    #[test]
    fn micros_round_to_two_decimals() {
        assert_eq!(micros_to_ms(1234), 1.23);
        assert_eq!(micros_to_ms(1235), 1.24);
        assert_eq!(micros_to_ms(0), 0.0);
    }

    #[test]
    fn delay_summary_uses_nearest_rank_and_max() {
        let delays: Vec<u32> = (1..=1000).rev().map(|i| i * 10).collect();
        let summary = DelaySummary::of(delays);
        assert_eq!(summary.deliveries, 1000);
        assert_eq!(
            (summary.p50_ms, summary.p99_ms, summary.max_ms),
            (5.0, 9.9, 10.0)
        );
        assert_eq!(summary.measured_p99(), Some(9.9));
        let empty = DelaySummary::of(Vec::new());
        assert_eq!((empty.deliveries, empty.p99_ms), (0, 0.0));
        assert_eq!(empty.measured_p99(), None);
    }

    #[test]
    fn median_of_odd_and_even_samples() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[30.0, 10.0, 20.0]), Some(20.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
