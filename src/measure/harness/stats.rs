//! Sample statistics: median, spread and noise.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub median_s: f64,
    pub p10_s: f64,
    pub p90_s: f64,
    pub min_s: f64,
    pub mean_s: f64,
    /// Coefficient of variation: standard deviation ÷ mean.
    pub cv: f64,
}

/// Percentile by linear interpolation between order statistics; `sorted` must be ascending.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl Summary {
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len() as f64;
        let mean = s.iter().sum::<f64>() / n;
        let var = s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        Some(Summary {
            n: s.len(),
            median_s: percentile(&s, 0.5),
            p10_s: percentile(&s, 0.1),
            p90_s: percentile(&s, 0.9),
            min_s: s[0],
            mean_s: mean,
            cv: if mean > 0.0 { var.sqrt() / mean } else { 0.0 },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_samples() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.median_s, s.min_s, s.mean_s), (3.0, 1.0, 3.0));
        assert!((s.p10_s - 1.4).abs() < 1e-12 && (s.p90_s - 4.6).abs() < 1e-12);
        assert!((s.cv - (2.5f64).sqrt() / 3.0).abs() < 1e-12);
        assert!(Summary::of(&[]).is_none());
    }
}
