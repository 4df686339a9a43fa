//! RobustScaler with scikit-learn's semantics: centre = median, scale = inter-quartile range
//! (25th–75th percentile, numpy's linear interpolation), a zero range scales by 1.

use super::matrix::Matrix;
pub use crate::linalg::{percentile, percentile_select, percentile_sorted, percentiles_select};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustScaler {
    #[serde(with = "super::exact::vec")]
    pub center: Vec<f64>,
    #[serde(with = "super::exact::vec")]
    pub scale: Vec<f64>,
}

impl RobustScaler {
    /// Fits groups of columns in parallel, each group copied out of the row-major matrix in
    /// one pass (a column at a time would read the whole matrix once per column).
    pub fn fit(x: &Matrix) -> RobustScaler {
        const GROUP: usize = 8;
        let (center, scale): (Vec<f64>, Vec<f64>) = (0..x.cols().div_ceil(GROUP))
            .into_par_iter()
            .flat_map_iter(|g| x.columns(g * GROUP, (g + 1) * GROUP))
            .map(|mut col| {
                let q = percentiles_select(&mut col, &[50.0, 75.0, 25.0]);
                let (median, iqr) = (q[0], q[1] - q[2]);
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
        let mut data = vec![0.0; x.data().len()];
        if cols > 0 {
            data.par_chunks_mut(cols * 4096)
                .zip(x.data().par_chunks(cols * 4096))
                .for_each(|(out, chunk)| {
                    for (o, row) in out.chunks_mut(cols).zip(chunk.chunks(cols)) {
                        for (j, (o, v)) in o.iter_mut().zip(row).enumerate() {
                            *o = (*v - self.center[j]) / self.scale[j];
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
}
