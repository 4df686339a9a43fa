//! Dense numbers without a subsystem: the row-major matrix every detector reads and the feature
//! builders write, and numpy's percentiles (by selection or of sorted values), which the
//! features, the routine explanations and the detectors share. A leaf: it imports nothing of
//! the crate.

use serde::{Deserialize, Serialize};

/// A dense row-major matrix of f64: the one input type of every detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// A matrix from row-major data; `data.len()` must be `rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Result<Matrix, String> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(format!(
                "matrix of {rows}×{cols} needs {} values, got {}",
                rows.saturating_mul(cols),
                data.len()
            ));
        }
        Ok(Matrix { rows, cols, data })
    }

    /// A matrix from columns of equal length (one copy).
    pub fn from_columns(columns: &[&[f64]]) -> Result<Matrix, String> {
        let cols = columns.len();
        let rows = columns.first().map_or(0, |c| c.len());
        if let Some((i, c)) = columns.iter().enumerate().find(|(_, c)| c.len() != rows) {
            return Err(format!(
                "column {i} has {} values, column 0 has {rows}",
                c.len()
            ));
        }
        let mut data = vec![0.0; rows * cols];
        for (j, c) in columns.iter().enumerate() {
            for (i, v) in c.iter().enumerate() {
                data[i * cols + j] = *v;
            }
        }
        Ok(Matrix { rows, cols, data })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }
    pub fn data(&self) -> &[f64] {
        &self.data
    }
    /// The rows at `idx`, in that order.
    /// This matrix's rows followed by `other`'s (same number of columns).
    pub fn stack(&self, other: &Matrix) -> Matrix {
        debug_assert_eq!(self.cols, other.cols);
        let mut data = Vec::with_capacity(self.data.len() + other.data.len());
        data.extend_from_slice(&self.data);
        data.extend_from_slice(&other.data);
        Matrix {
            rows: self.rows + other.rows,
            cols: self.cols,
            data,
        }
    }

    pub fn select_rows(&self, idx: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Matrix {
            rows: idx.len(),
            cols: self.cols,
            data,
        }
    }
    /// The first non-finite value in row-major order, as (row, column, value).
    pub fn first_non_finite(&self) -> Option<(usize, usize, f64)> {
        let cols = self.cols.max(1);
        self.data
            .iter()
            .position(|v| !v.is_finite())
            .map(|p| (p / cols, p % cols, self.data[p]))
    }

    /// One column, copied.
    pub fn column(&self, j: usize) -> Vec<f64> {
        (0..self.rows).map(|i| self.get(i, j)).collect()
    }

    /// Columns `from..to` (clamped to the matrix), copied in one pass over the rows.
    pub fn columns(&self, from: usize, to: usize) -> Vec<Vec<f64>> {
        let to = to.min(self.cols);
        let from = from.min(to);
        let mut out: Vec<Vec<f64>> = (from..to).map(|_| Vec::with_capacity(self.rows)).collect();
        if self.cols > 0 {
            for row in self.data.chunks_exact(self.cols) {
                for (c, v) in out.iter_mut().zip(&row[from..to]) {
                    c.push(*v);
                }
            }
        }
        out
    }
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

/// The median of `values` and their median absolute deviation from it, (0, 0) when empty.
/// `values` is reordered and then holds the deviations.
pub fn median_mad(values: &mut [f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let med = percentile_select(values, 50.0);
    for v in values.iter_mut() {
        *v = (*v - med).abs();
    }
    (med, percentile_select(values, 50.0))
}

/// [`percentile_select`] for every `q` of `qs` (same values, in the same order), by nested
/// selection: each search runs only between the order statistics already placed, so the
/// quartiles cost about two selections instead of three. `v` is reordered.
pub fn percentiles_select(v: &mut [f64], qs: &[f64]) -> Vec<f64> {
    if v.is_empty() {
        return vec![f64::NAN; qs.len()];
    }
    let n = v.len();
    // Positions whose order statistic is in place, ascending.
    let mut fixed: Vec<usize> = Vec::with_capacity(2 * qs.len());
    qs.iter()
        .map(|q| {
            let pos = (q / 100.0).clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let frac = pos - lo as f64;
            let end = place(v, &mut fixed, lo);
            let lo_v = v[lo];
            if frac == 0.0 || lo + 1 >= n {
                return lo_v;
            }
            // The next order statistic: the smallest value between `lo` and the next placed one.
            let hi_v = if lo + 1 < end {
                v[lo + 1..end].iter().copied().fold(f64::INFINITY, f64::min)
            } else {
                v[end]
            };
            lo_v + (hi_v - lo_v) * frac
        })
        .collect()
}

/// Puts the order statistic `t` in place, selecting only within the segment between the
/// placed positions around it; returns the next placed position after `t` (or `v.len()`).
fn place(v: &mut [f64], fixed: &mut Vec<usize>, t: usize) -> usize {
    let k = fixed.partition_point(|&p| p < t);
    let end = fixed.get(k).copied().unwrap_or(v.len());
    if end == t {
        return fixed.get(k + 1).copied().unwrap_or(v.len());
    }
    let start = if k == 0 { 0 } else { fixed[k - 1] + 1 };
    v[start..end].select_nth_unstable_by(t - start, f64::total_cmp);
    fixed.insert(k, t);
    end
}

/// `percentile` that reorders `v` in place instead of copying it.
pub fn percentile_select(v: &mut [f64], q: f64) -> f64 {
    percentiles_select(v, &[q])[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_selection_equal_those_of_the_sorted_values() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for n in [1usize, 2, 3, 4, 5, 7, 10, 101, 1000] {
            for dup in [false, true] {
                let v: Vec<f64> = (0..n)
                    .map(|_| {
                        let x: f64 = rng.gen_range(-50.0..50.0);
                        if dup { x.round() } else { x }
                    })
                    .collect();
                let qs = [50.0, 75.0, 25.0, 0.0, 100.0, 90.0, 50.0, 12.5];
                let mut sorted = v.clone();
                sorted.sort_by(f64::total_cmp);
                let expected: Vec<f64> =
                    qs.iter().map(|q| percentile_sorted(&sorted, *q)).collect();
                let mut w = v.clone();
                assert_eq!(percentiles_select(&mut w, &qs), expected, "n {n} dup {dup}");
            }
        }
        assert!(percentiles_select(&mut [], &[50.0])[0].is_nan());
    }

    #[test]
    fn columns_copies_a_range_in_row_order() {
        let m = Matrix::new(3, 3, (0..9).map(f64::from).collect()).unwrap();
        assert_eq!(
            m.columns(1, 9),
            vec![vec![1.0, 4.0, 7.0], vec![2.0, 5.0, 8.0]]
        );
        assert!(m.columns(3, 5).is_empty());
    }

    #[test]
    fn from_columns_is_row_major() {
        let m = Matrix::from_columns(&[&[1.0, 2.0], &[3.0, 4.0]]).unwrap();
        assert_eq!(m.row(0), &[1.0, 3.0]);
        assert_eq!(m.row(1), &[2.0, 4.0]);
        assert_eq!(m.column(1), vec![3.0, 4.0]);
        assert_eq!(m.select_rows(&[1]).row(0), &[2.0, 4.0]);
        assert!(Matrix::from_columns(&[&[1.0], &[1.0, 2.0]]).is_err());
        assert!(Matrix::new(2, 2, vec![0.0; 3]).is_err());
        assert_eq!(m.first_non_finite(), None);
        let bad = Matrix::new(2, 2, vec![1.0, 2.0, 3.0, f64::NAN]).unwrap();
        let (r, c, v) = bad.first_non_finite().unwrap();
        assert_eq!((r, c), (1, 1));
        assert!(v.is_nan());
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
