//! Median, min, max and count of a set of samples.

use serde_json::{Map, Value};

/// A summary of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
    pub(crate) trials: usize,
}

impl Summary {
    /// `None` for no samples.
    pub(crate) fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: v[0],
            max: v[n - 1],
            mean: v.iter().sum::<f64>() / n as f64,
            trials: n,
        })
    }

    /// Adds `median_<unit>`, `min_<unit>`, `max_<unit>` and `trials` to `o`.
    pub(crate) fn put(&self, o: &mut Map<String, Value>, unit: &str) {
        o.insert(format!("median_{unit}"), round(self.median).into());
        o.insert(format!("min_{unit}"), round(self.min).into());
        o.insert(format!("max_{unit}"), round(self.max).into());
        o.insert("trials".into(), self.trials.into());
    }

    /// `median M (min A, max B, N trials)` with `prec` decimals.
    pub(crate) fn text(&self, unit: &str, prec: usize) -> String {
        format!(
            "median {:.p$} {unit} (min {:.p$}, max {:.p$}, {} trials)",
            self.median,
            self.min,
            self.max,
            self.trials,
            p = prec
        )
    }
}

/// Rounds to 4 decimals (JSON stays readable).
pub(crate) fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The `q`-quantile (0..=1) of sorted samples (nearest rank).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_quantiles() {
        assert_eq!(Summary::of(&[]), None);
        let s = Summary::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.trials), (2.5, 1.0, 10.0, 4));
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        let mut o = Map::new();
        s.put(&mut o, "ms");
        assert_eq!(o["median_ms"], 2.5);
        assert_eq!(o["trials"], 4);
    }
}
