//! Latency statistics: median, p95 and geometric mean.

use serde::{Deserialize, Serialize};

/// Summary of the timed repetitions of one query on one engine (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub runs: usize,
    pub median: f64,
    pub p95: f64,
    pub min: f64,
    pub max: f64,
}

/// The `q`-quantile (0..=1) of `values` by linear interpolation between the
/// closest ranks (the definition of numpy's default). `None` when empty or
/// when a value is not finite.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Median, p95, min and max of `values`.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    Some(Summary {
        runs: values.len(),
        median: quantile(values, 0.5)?,
        p95: quantile(values, 0.95)?,
        min: quantile(values, 0.0)?,
        max: quantile(values, 1.0)?,
    })
}

/// Geometric mean of positive values; `None` when empty or when a value is
/// not strictly positive.
pub fn geomean(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return None;
    }
    let log_sum: f64 = values.iter().map(|v| v.ln()).sum();
    Some((log_sum / values.len() as f64).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[4.0, 1.0, 2.0, 3.0], 0.5), Some(2.5));
    }

    #[test]
    fn p95_interpolates_like_numpy() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        // numpy.percentile(range(1, 21), 95) == 19.05
        let p95 = quantile(&v, 0.95).unwrap();
        assert!((p95 - 19.05).abs() < 1e-12, "{p95}");
        assert_eq!(quantile(&[7.0], 0.95), Some(7.0));
    }

    #[test]
    fn empty_or_invalid_input_gives_none() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[1.0, f64::NAN], 0.5), None);
        assert_eq!(quantile(&[1.0], 1.5), None);
        assert_eq!(summarize(&[]), None);
        assert_eq!(geomean(&[]), None);
        assert_eq!(geomean(&[1.0, 0.0]), None);
    }

    #[test]
    fn geometric_mean() {
        let g = geomean(&[1.0, 4.0, 16.0]).unwrap();
        assert!((g - 4.0).abs() < 1e-12);
        let g = geomean(&[0.5, 2.0]).unwrap();
        assert!((g - 1.0).abs() < 1e-12);
    }

    #[test]
    fn summary_fields() {
        let s = summarize(&[0.3, 0.1, 0.2]).unwrap();
        assert_eq!(s.runs, 3);
        assert_eq!(s.median, 0.2);
        assert_eq!(s.min, 0.1);
        assert_eq!(s.max, 0.3);
    }
}
