//! RobustScaler with scikit-learn's semantics: centre = median, scale = inter-quartile range
//! (25th–75th percentile, numpy's linear interpolation), a zero range scales by 1.

use super::matrix::Matrix;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustScaler {
    #[serde(with = "super::exact::vec")]
    pub center: Vec<f64>,
    #[serde(with = "super::exact::vec")]
    pub scale: Vec<f64>,
}

/// numpy's `percentile(values, q)` with the default linear interpolation; `sorted` ascending.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = (q / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// numpy's `percentile(values, q)` (linear interpolation) of unsorted values, by selection
/// (O(n)) rather than a full sort.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    percentile_select(&mut v, q)
}

/// `percentile` that reorders `v` in place instead of copying it.
pub fn percentile_select(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let pos = (q / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let frac = pos - lo as f64;
    let (_, lo_v, right) = v.select_nth_unstable_by(lo, f64::total_cmp);
    let lo_v = *lo_v;
    if frac == 0.0 || right.is_empty() {
        return lo_v;
    }
    // The next order statistic is the smallest value of the right part.
    let hi_v = right.iter().copied().fold(f64::INFINITY, f64::min);
    lo_v + (hi_v - lo_v) * frac
}

impl RobustScaler {
    /// Fits every column in parallel.
    pub fn fit(x: &Matrix) -> RobustScaler {
        let (center, scale): (Vec<f64>, Vec<f64>) = (0..x.cols())
            .into_par_iter()
            .map(|j| {
                let mut col = x.column(j);
                let median = percentile_select(&mut col, 50.0);
                let iqr = percentile_select(&mut col, 75.0) - percentile_select(&mut col, 25.0);
                // scikit-learn's _handle_zeros_in_scale: a (near) zero range scales by 1.
                let scale = if iqr.abs() < 10.0 * f64::EPSILON || !iqr.is_finite() {
                    1.0
                } else {
                    iqr
                };
                (median, scale)
            })
            .unzip();
        RobustScaler { center, scale }
    }

    pub fn transform(&self, x: &Matrix) -> Result<Matrix, String> {
        if x.cols() != self.center.len() {
            return Err(format!(
                "the scaler was fitted on {} features, got {}",
                self.center.len(),
                x.cols()
            ));
        }
        let cols = x.cols();
        let mut data = x.data().to_vec();
        if cols > 0 {
            data.par_chunks_mut(cols * 4096).for_each(|chunk| {
                for row in chunk.chunks_mut(cols) {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = (*v - self.center[j]) / self.scale[j];
                    }
                }
            });
        }
        Matrix::new(x.rows(), cols, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden() -> serde_json::Value {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden/scaler.json");
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn f64s(v: &serde_json::Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    #[test]
    fn matches_scikit_learn_robust_scaler() {
        let g = golden();
        let rows: Vec<Vec<f64>> = g["X"].as_array().unwrap().iter().map(f64s).collect();
        let x = Matrix::new(rows.len(), rows[0].len(), rows.concat()).unwrap();
        let s = RobustScaler::fit(&x);
        for (a, b) in s.center.iter().zip(f64s(&g["center"])) {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                "center {a} vs {b}"
            );
        }
        for (a, b) in s.scale.iter().zip(f64s(&g["scale"])) {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                "scale {a} vs {b}"
            );
        }
        assert_eq!(s.scale[2], 1.0, "constant column scales by 1");
        let t = s.transform(&x).unwrap();
        let expected: Vec<f64> = g["transformed"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(f64s)
            .collect();
        for (a, b) in t.data().iter().zip(expected) {
            assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
        }
        assert!(
            s.transform(&Matrix::new(1, 2, vec![0.0; 2]).unwrap())
                .is_err()
        );
    }

    #[test]
    fn selection_percentile_equals_sorted_percentile() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for n in [1usize, 2, 3, 10, 101, 1000] {
            let v: Vec<f64> = (0..n)
                .map(|_| (rng.r#gen::<f64>() * 10.0).round())
                .collect();
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.0, 1.0, 12.3, 25.0, 50.0, 75.0, 99.0, 100.0] {
                assert_eq!(
                    percentile(&v, q),
                    percentile_sorted(&sorted, q),
                    "n={n} q={q}"
                );
            }
        }
    }

    #[test]
    fn percentile_is_numpy_linear() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.5);
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 25.0), 1.75);
        assert_eq!(percentile(&[5.0], 10.0), 5.0);
        assert!(percentile(&[], 10.0).is_nan());
    }
}
