//! How many rows to flag: the contamination (expected share of anomalies) and the score offset
//! it implies.
//!
//! - `estimate` — the estimator of the original documents: the share of rows whose |difference|
//!   exceeds mean + 3·std of |difference| (sample std), clamped to [0.01, 0.5].
//! - `mad` — a robust variant: the share of rows whose difference lies more than k·1.4826·MAD
//!   from the median difference (k = 3 by default), clamped to [0.01, 0.5]. When most
//!   differences are exactly zero (MAD = 0), every non-zero difference counts.
//! - a fixed value in (0, 0.5].
//! - `auto` — no contamination: scikit-learn's fixed offset (−0.5 for Isolation Forest,
//!   −1.5 for LOF).
//!
//! With a contamination c, the offset is the 100·c-th percentile of the training scores (numpy's
//! linear interpolation), so that a share c of the training rows scores below it.

use super::scaler::percentile;
use serde::{Deserialize, Serialize};

pub const MIN_CONTAMINATION: f64 = 0.01;
pub const MAX_CONTAMINATION: f64 = 0.5;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Contamination {
    Auto,
    Estimate,
    Mad,
    Fixed(f64),
}

impl std::str::FromStr for Contamination {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Contamination::Auto),
            "estimate" => Ok(Contamination::Estimate),
            "mad" => Ok(Contamination::Mad),
            other => match other.parse::<f64>() {
                Ok(v) if v > 0.0 && v <= MAX_CONTAMINATION => Ok(Contamination::Fixed(v)),
                _ => Err(format!(
                    "contamination must be auto, estimate, mad or a number in (0, 0.5], found {s:?}"
                )),
            },
        }
    }
}

impl std::fmt::Display for Contamination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Contamination::Auto => f.write_str("auto"),
            Contamination::Estimate => f.write_str("estimate"),
            Contamination::Mad => f.write_str("mad"),
            Contamination::Fixed(v) => write!(f, "{v}"),
        }
    }
}

fn clamp(v: f64) -> f64 {
    if v.is_finite() {
        v.clamp(MIN_CONTAMINATION, MAX_CONTAMINATION)
    } else {
        MIN_CONTAMINATION
    }
}

/// The documents' estimator: share of |difference| above mean + 3·std (sample), clamped.
pub fn estimate_documents(diff: &[f64]) -> f64 {
    let a: Vec<f64> = diff
        .iter()
        .filter(|v| v.is_finite())
        .map(|v| v.abs())
        .collect();
    if a.len() < 2 {
        return MIN_CONTAMINATION;
    }
    let n = a.len() as f64;
    let mean = a.iter().sum::<f64>() / n;
    let var = a.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let threshold = mean + 3.0 * var.sqrt();
    clamp(a.iter().filter(|v| **v > threshold).count() as f64 / n)
}

/// The robust estimator: share of differences more than k·1.4826·MAD from the median, clamped.
pub fn estimate_mad(diff: &[f64], k: f64) -> f64 {
    let mut d: Vec<f64> = diff.iter().copied().filter(|v| v.is_finite()).collect();
    if d.is_empty() {
        return MIN_CONTAMINATION;
    }
    let n = d.len() as f64;
    // `d` then holds each difference's distance from the median (reordered).
    let (_, mad) = crate::linalg::median_mad(&mut d);
    let (dev, mad) = (d, mad * 1.4826);
    let out = if mad > 0.0 {
        dev.iter().filter(|v| **v > k * mad).count()
    } else {
        dev.iter().filter(|v| **v > 0.0).count()
    };
    clamp(out as f64 / n)
}

/// The contamination value a method gives on these differences (None for `auto`).
pub fn resolve(method: Contamination, diff: &[f64], mad_k: f64) -> Option<f64> {
    match method {
        Contamination::Auto => None,
        Contamination::Estimate => Some(estimate_documents(diff)),
        Contamination::Mad => Some(estimate_mad(diff, mad_k)),
        Contamination::Fixed(v) => Some(v),
    }
}

/// The offset: the 100·c-th percentile of the training scores, or the detector's `auto` offset.
pub fn offset(train_scores: &[f64], contamination: Option<f64>, auto_offset: f64) -> f64 {
    match contamination {
        None => auto_offset,
        Some(c) => percentile(train_scores, 100.0 * c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_methods_and_rejects_bad_values() {
        assert_eq!("auto".parse(), Ok(Contamination::Auto));
        assert_eq!("estimate".parse(), Ok(Contamination::Estimate));
        assert_eq!("mad".parse(), Ok(Contamination::Mad));
        assert_eq!("0.05".parse(), Ok(Contamination::Fixed(0.05)));
        for bad in ["0", "0.6", "-1", "x", "nan"] {
            assert!(bad.parse::<Contamination>().is_err(), "{bad}");
        }
    }

    #[test]
    fn documents_estimator_counts_beyond_mean_plus_three_std() {
        // 98 zeros, a small and a large difference: mean + 3·std of |d| ≈ 201 + 3·2000, so only
        // the large one is above.
        let mut d = vec![0.0; 98];
        d.push(100.0);
        d.push(-20_000.0);
        let a: Vec<f64> = d.iter().map(|v: &f64| v.abs()).collect();
        let mean = a.iter().sum::<f64>() / 100.0;
        let sd = (a.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 99.0).sqrt();
        let expected = a.iter().filter(|v| **v > mean + 3.0 * sd).count() as f64 / 100.0;
        assert_eq!(expected, 0.01);
        assert_eq!(estimate_documents(&d), 0.01);
        // Clamped at both ends.
        assert_eq!(estimate_documents(&[1.0; 50]), MIN_CONTAMINATION);
        assert_eq!(estimate_documents(&[]), MIN_CONTAMINATION);
    }

    #[test]
    fn mad_estimator_is_robust_and_handles_zero_mad() {
        // Mostly exact matches: every non-zero difference counts.
        let mut d = vec![0.0; 90];
        d.extend([5.0; 10]);
        assert!((estimate_mad(&d, 3.0) - 0.10).abs() < 1e-12);
        // A continuous spread: values beyond 3·1.4826·MAD from the median.
        let d: Vec<f64> = (0..100).map(|i| i as f64).chain([1e6, -1e6]).collect();
        assert!((estimate_mad(&d, 3.0) - 2.0 / 102.0).abs() < 1e-12);
        assert_eq!(estimate_mad(&[1e9; 3], 3.0), MIN_CONTAMINATION);
        let many: Vec<f64> = (0..10).map(|i| if i < 8 { 0.0 } else { 1.0 }).collect();
        assert_eq!(estimate_mad(&many, 3.0), 0.2);
        let half: Vec<f64> = (0..10)
            .map(|i| if i < 2 { 0.0 } else { i as f64 * 1e3 })
            .collect();
        assert!(estimate_mad(&half, 0.0) <= MAX_CONTAMINATION);
    }

    #[test]
    fn offset_matches_numpy_percentile_golden() {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden/offset.json");
        let g: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        let scores: Vec<f64> = g["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for case in g["cases"].as_array().unwrap() {
            let c = case["contamination"].as_f64().unwrap();
            let expected = case["offset"].as_f64().unwrap();
            let got = offset(&scores, Some(c), -0.5);
            assert!((got - expected).abs() < 1e-12, "c={c}: {got} vs {expected}");
            // A share c of the training rows scores strictly below the offset (up to ties).
            let below = scores.iter().filter(|s| **s < got).count() as f64 / scores.len() as f64;
            assert!(
                (below - c).abs() <= 1.0 / scores.len() as f64 + 1e-12,
                "c={c} below={below}"
            );
        }
        assert_eq!(offset(&scores, None, -0.5), -0.5);
        assert_eq!(offset(&scores, None, -1.5), -1.5);
    }
}
