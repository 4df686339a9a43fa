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
            .map(|mut col| centre_and_scale(&mut col))
            .unzip();
        RobustScaler { center, scale }
    }

    /// The scaler [`RobustScaler::fit`] gives on the matrix of `n` columns, from the columns
    /// themselves, fetched by `column` (and reordered by the percentiles) on every core: a
    /// caller that holds its features column by column is spared the copy out of the matrix.
    pub fn fit_columns<E: Send>(
        n: usize,
        column: impl Fn(usize) -> Result<Vec<f64>, E> + Sync,
    ) -> Result<RobustScaler, E> {
        let each: Vec<(f64, f64)> = (0..n)
            .into_par_iter()
            .map(|j| column(j).map(|mut col| centre_and_scale(&mut col)))
            .collect::<Result<_, E>>()?;
        let (center, scale) = each.into_iter().unzip();
        Ok(RobustScaler { center, scale })
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

/// One column's centre (median) and scale (inter-quartile range, 1 when it is (near) zero);
/// `col` is reordered.
fn centre_and_scale(col: &mut [f64]) -> (f64, f64) {
    let q = percentiles_select(col, &[50.0, 75.0, 25.0]);
    let (median, iqr) = (q[0], q[1] - q[2]);
    // scikit-learn's _handle_zeros_in_scale: a (near) zero range scales by 1.
    let scale = if iqr.abs() < 10.0 * f64::EPSILON || !iqr.is_finite() {
        1.0
    } else {
        iqr
    };
    (median, scale)
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
    fn fitted_on_its_columns_it_is_the_scaler_of_their_matrix() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (rows, cols) = (1_001, 19);
        let data: Vec<f64> = (0..rows * cols)
            .map(|i| match i % cols {
                // A constant column, one with missing values, one of few distinct values.
                0 => 4.0,
                1 if i % 7 == 0 => f64::NAN,
                2 => f64::from(rng.gen_range(0..3)),
                _ => rng.r#gen::<f64>() * 100.0 - 50.0,
            })
            .collect();
        let x = Matrix::new(rows, cols, data).unwrap();
        let by_matrix = RobustScaler::fit(&x);
        let by_columns =
            RobustScaler::fit_columns(cols, |j| Ok::<_, ()>(x.columns(j, j + 1).remove(0)))
                .unwrap();
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&by_columns.center), bits(&by_matrix.center));
        assert_eq!(bits(&by_columns.scale), bits(&by_matrix.scale));
        assert_eq!(by_matrix.scale[0], 1.0);
        assert_eq!(
            RobustScaler::fit_columns(3, |j| if j == 1 { Err(j) } else { Ok(vec![1.0]) }),
            Err(1)
        );
    }
}
