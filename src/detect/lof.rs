//! Local Outlier Factor, reproducing scikit-learn's `LocalOutlierFactor` (Euclidean metric).
//!
//! ## What is computed (scikit-learn 1.9, `sklearn/neighbors/_lof.py`)
//! - `n_neighbors_ = max(1, min(n_neighbors, n_samples − 1))`, the effective k.
//! - Fit: for each training row a, its k nearest neighbours N(a) among the *other* training rows
//!   (the row itself is excluded by index, as scikit-learn's `kneighbors(X=None)` does, so exact
//!   duplicates of a are neighbours at distance 0).
//! - `k_distance(b)` = distance from b to its k-th neighbour.
//! - `reach_dist(a, b) = max(k_distance(b), d(a, b))`.
//! - `lrd(a) = 1 / (mean_{b∈N(a)} reach_dist(a, b) + 1e-10)`; the 1e-10 keeps groups of more
//!   than k identical rows finite (their lrd is 1e10).
//! - `LOF(a) = mean_{b∈N(a)} lrd(b) / lrd(a)`; [`LocalOutlierFactor::negative_outlier_factor`]
//!   is −LOF per training row (scikit-learn's `negative_outlier_factor_`). Higher = more normal.
//! - Novelty ([`LocalOutlierFactor::score_samples`]): the k nearest *training* rows of each new
//!   row (nothing excluded), reach-distances against the training k-distances, the new row's
//!   lrd as above, score = −mean(lrd_train[N(x)]) / lrd(x).
//! - Offset ([`LocalOutlierFactor::offset`]): contamination "auto" (None) → −1.5; a share c →
//!   `numpy.percentile(negative_outlier_factor_, 100·c)` (linear interpolation).
//!
//! ## Agreement with scikit-learn
//! Distances are computed like scikit-learn's KD tree (sequential sum of squared differences,
//! then square root), means are summed in numpy's pairwise order and neighbours are taken in
//! ascending distance, so on data without distance ties the results are bit-identical to
//! scikit-learn's whenever scikit-learn uses its KD tree, which `algorithm="auto"` does for at
//! most 15 features and `n_neighbors < n_samples / 2` (checked on the golden fixtures). Otherwise
//! scikit-learn uses brute force with distances from the expansion ‖x‖² − 2x·y + ‖y‖²: on
//! ordinary data that differs in the last bits only (the golden tests allow 1e-9, relative above
//! 1, absolute below), but the distance between two *identical* rows comes out as a small
//! positive number (seen: 4e-6) instead of 0, so with more than 15 features scikit-learn's
//! default scores for duplicated rows and their neighbours are far from the exact values that
//! this crate (and scikit-learn with `algorithm="kd_tree"`) computes.
//!
//! ## Ties and duplicates
//! When several rows lie at exactly the k-th neighbour distance, only some of them belong to
//! N(a). This crate takes the ones with the lowest row index (see [`super::kdtree`]), a
//! deterministic rule. scikit-learn takes whichever its KD tree happens to reach first (or, with
//! the brute algorithm, what its partial sort leaves), then drops the query row itself, or the
//! first neighbour when the row is not among its k+1 nearest (more than k duplicates). The
//! k-distances are the same either way (they are distances, not choices), but `reach_dist`
//! depends on which tied rows are chosen through their own k-distances, so lrd and LOF may
//! differ from scikit-learn's when tied rows are not interchangeable. Tied rows that are exact
//! copies of each other are interchangeable (same k-distance, same lrd), so duplicates alone do
//! not cause differences: only ties between *different* points at the same distance do.
//!
//! ## Serialization
//! The fitted model serializes the reference rows, their k-distances, lrds and LOF scores, and
//! the effective k. Floats are written as exact decimal strings (shortest round-trip form),
//! because serde_json's default float parser may be off by one ulp; plain JSON numbers are
//! accepted on input as well. The k-d tree is not serialized: it is rebuilt (deterministically,
//! so scores are bit-identical) on the first [`LocalOutlierFactor::score_samples`] after loading,
//! or explicitly by [`LocalOutlierFactor::rebuild_index`], which also validates a loaded model.

use super::exact;
use super::kdtree::{DEFAULT_LEAF_SIZE, KdTree};
use super::matrix::Matrix;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use thiserror::Error;

/// scikit-learn's guard against a zero mean reach-distance.
const LRD_EPS: f64 = 1e-10;
/// Rows scored per neighbour search in `score_samples`.
const SCORE_BLOCK_ROWS: usize = 1 << 16;
/// scikit-learn's offset for contamination "auto".
pub const AUTO_OFFSET: f64 = -1.5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LofParams {
    /// Requested number of neighbours k (scikit-learn's default is 20); clamped to n − 1.
    pub n_neighbors: usize,
}

impl Default for LofParams {
    fn default() -> Self {
        LofParams { n_neighbors: 20 }
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum LofError {
    #[error("LOF needs at least 2 rows to fit, got {0}")]
    TooFewRows(usize),
    #[error("LOF needs at least one feature column, got 0")]
    NoColumns,
    #[error("n_neighbors must be at least 1, got 0")]
    ZeroNeighbors,
    #[error("non-finite value {value} at row {row}, column {col} (0-based)")]
    NonFinite { row: usize, col: usize, value: f64 },
    #[error("column count mismatch: the LOF model was fitted on {expected} columns, got {got}")]
    ColumnMismatch { expected: usize, got: usize },
    #[error("invalid LOF model: {0}")]
    InvalidModel(String),
    #[error(
        "the distance from row {row} (0-based) to its neighbours overflows: values this far apart (around 1e154 or more) cannot be compared by distance"
    )]
    DistanceOverflow { row: usize },
}

/// A fitted Local Outlier Factor model: the reference rows and what novelty scoring needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalOutlierFactor {
    /// Effective k (`n_neighbors_`).
    n_neighbors: usize,
    /// k as requested.
    requested_neighbors: usize,
    #[serde(with = "exact::matrix")]
    reference: Matrix,
    #[serde(with = "exact::vec")]
    k_distance: Vec<f64>,
    #[serde(with = "exact::vec")]
    lrd: Vec<f64>,
    #[serde(with = "exact::vec")]
    negative_outlier_factor: Vec<f64>,
    /// Built by `fit`; after deserialization rebuilt on first use.
    #[serde(skip)]
    tree: OnceLock<KdTree>,
}

/// The first non-finite value of `x`, as an error naming its row and column.
fn check_finite(x: &Matrix) -> Result<(), LofError> {
    match x.first_non_finite() {
        None => Ok(()),
        Some((row, col, value)) => Err(LofError::NonFinite { row, col, value }),
    }
}

/// `numpy.mean` of a 1-D slice: numpy's pairwise summation (8 accumulators below 128 values),
/// then division by the length. Same bits as numpy for the same order of values.
pub fn numpy_mean(a: &[f64]) -> f64 {
    pairwise_sum(a) / a.len() as f64
}

fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &v in a {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let full = n - n % 8;
        let mut i = 8;
        while i < full {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[full..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// `numpy.percentile(values, q)` with the default "linear" method (NaN if `values` is empty).
/// `q` is in percent; values of `q` outside [0, 100] give the minimum or maximum.
pub fn percentile_linear(values: &[f64], q: f64) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let quantile = q / 100.0;
    let virtual_index = (n - 1) as f64 * quantile;
    if virtual_index >= (n - 1) as f64 {
        return v[n - 1];
    }
    if virtual_index < 0.0 {
        return v[0];
    }
    let prev = virtual_index.floor();
    let gamma = virtual_index - prev;
    // In range: 0 <= prev < n - 1.
    let i = prev as usize;
    let (a, b) = (v[i], v[i + 1]);
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

impl LocalOutlierFactor {
    /// Fits on the rows of `x` and computes the LOF of every training row.
    pub fn fit(x: &Matrix, params: &LofParams) -> Result<Self, LofError> {
        let n = x.rows();
        if params.n_neighbors == 0 {
            return Err(LofError::ZeroNeighbors);
        }
        if n < 2 {
            return Err(LofError::TooFewRows(n));
        }
        if x.cols() == 0 {
            return Err(LofError::NoColumns);
        }
        check_finite(x)?;
        let k = params.n_neighbors.min(n - 1).max(1);

        let tree = KdTree::build(x.data(), x.cols(), DEFAULT_LEAF_SIZE);
        let nb = tree.knn_all(k);
        if nb.k != k {
            return Err(LofError::InvalidModel(format!(
                "neighbour search returned {} neighbours, expected {k}",
                nb.k
            )));
        }

        let k_distance: Vec<f64> = (0..n).map(|i| nb.distances_of(i)[k - 1]).collect();
        if let Some(row) = k_distance.iter().position(|d| !d.is_finite()) {
            return Err(LofError::DistanceOverflow { row });
        }
        let lrd: Vec<f64> = (0..n)
            .into_par_iter()
            .map_init(
                || vec![0.0; k],
                |buf, i| {
                    local_reachability_density(
                        nb.distances_of(i),
                        nb.indices_of(i),
                        &k_distance,
                        buf,
                    )
                },
            )
            .collect();
        let negative_outlier_factor: Vec<f64> = (0..n)
            .into_par_iter()
            .map_init(
                || vec![0.0; k],
                |buf, i| negative_lof(lrd[i], nb.indices_of(i), &lrd, buf),
            )
            .collect();

        let model = LocalOutlierFactor {
            n_neighbors: k,
            requested_neighbors: params.n_neighbors,
            reference: x.clone(),
            k_distance,
            lrd,
            negative_outlier_factor,
            tree: OnceLock::new(),
        };
        // A fresh OnceLock: `set` cannot fail.
        let _ = model.tree.set(tree);
        // What is saved must load: the same checks as a loaded model.
        model.check_model()?;
        Ok(model)
    }

    /// −LOF of each training row (scikit-learn's `negative_outlier_factor_`); about −1 for
    /// inliers, lower for outliers.
    pub fn negative_outlier_factor(&self) -> &[f64] {
        &self.negative_outlier_factor
    }

    /// The effective number of neighbours (`n_neighbors_`).
    pub fn n_neighbors(&self) -> usize {
        self.n_neighbors
    }

    /// The number of neighbours that was requested.
    pub fn requested_neighbors(&self) -> usize {
        self.requested_neighbors
    }

    /// The reference (training) rows.
    pub fn reference(&self) -> &Matrix {
        &self.reference
    }

    /// k-distance of each training row.
    pub fn k_distances(&self) -> &[f64] {
        &self.k_distance
    }

    /// Local reachability density of each training row.
    pub fn lrd(&self) -> &[f64] {
        &self.lrd
    }

    /// The score threshold: None (contamination "auto") → −1.5; Some(c) → the 100·c-th
    /// percentile of [`Self::negative_outlier_factor`] (numpy's linear interpolation), so that
    /// a share c of training rows scores below it. `c` is not range-checked here.
    pub fn offset(&self, contamination: Option<f64>) -> f64 {
        match contamination {
            None => AUTO_OFFSET,
            Some(c) => percentile_linear(&self.negative_outlier_factor, 100.0 * c),
        }
    }

    /// Checks a (deserialized) model for consistency, then builds its k-d tree if it has none.
    pub fn rebuild_index(&self) -> Result<(), LofError> {
        self.index().map(|_| ())
    }

    fn index(&self) -> Result<&KdTree, LofError> {
        if let Some(t) = self.tree.get() {
            return Ok(t);
        }
        self.check_model()?;
        Ok(self.tree.get_or_init(|| {
            KdTree::build(
                self.reference.data(),
                self.reference.cols(),
                DEFAULT_LEAF_SIZE,
            )
        }))
    }

    fn check_model(&self) -> Result<(), LofError> {
        let n = self.reference.rows();
        let bad = |m: String| Err(LofError::InvalidModel(m));
        if n < 2 || self.reference.cols() == 0 {
            return bad(format!(
                "reference data is {}×{}, needs at least 2 rows and 1 column",
                n,
                self.reference.cols()
            ));
        }
        if self.n_neighbors == 0 || self.n_neighbors > n - 1 {
            return bad(format!(
                "n_neighbors {} is not in 1..={} for {n} reference rows",
                self.n_neighbors,
                n - 1
            ));
        }
        for (name, v) in [
            ("k_distance", &self.k_distance),
            ("lrd", &self.lrd),
            ("negative_outlier_factor", &self.negative_outlier_factor),
        ] {
            if v.len() != n {
                return bad(format!("{name} has {} values for {n} rows", v.len()));
            }
            if let Some(p) = v.iter().position(|x| !x.is_finite()) {
                return bad(format!("{name}[{p}] is not finite"));
            }
        }
        check_finite(&self.reference)
            .map_err(|e| LofError::InvalidModel(format!("reference data: {e}")))
    }

    /// Novelty scores of new rows against the reference rows: −LOF, higher = more normal
    /// (scikit-learn's `score_samples` with `novelty=True`). A row identical to a reference row
    /// is scored as new, i.e. that reference row counts among its neighbours.
    pub fn score_samples(&self, x: &Matrix) -> Result<Vec<f64>, LofError> {
        if x.cols() != self.reference.cols() {
            return Err(LofError::ColumnMismatch {
                expected: self.reference.cols(),
                got: x.cols(),
            });
        }
        check_finite(x)?;
        let tree = self.index()?;
        let k = self.n_neighbors;
        let dim = x.cols();
        let mut out = Vec::with_capacity(x.rows());
        // Blocks bound the memory of the neighbour lists (block × k distances and indices).
        for block in x.data().chunks(SCORE_BLOCK_ROWS * dim) {
            let nb = tree.knn_batch(block, k);
            if nb.k != k {
                return Err(LofError::InvalidModel(format!(
                    "neighbour search returned {} neighbours, expected {k}",
                    nb.k
                )));
            }
            let rows = block.len() / dim;
            let scores: Vec<f64> = (0..rows)
                .into_par_iter()
                .map_init(
                    || vec![0.0; k],
                    |buf, i| {
                        let idx = nb.indices_of(i);
                        let lrd_x = local_reachability_density(
                            nb.distances_of(i),
                            idx,
                            &self.k_distance,
                            buf,
                        );
                        negative_lof(lrd_x, idx, &self.lrd, buf)
                    },
                )
                .collect();
            out.extend(scores);
        }
        Ok(out)
    }
}

/// `1 / (mean(max(d(a, b), k_distance(b))) + 1e-10)` over the neighbours b (ascending order).
fn local_reachability_density(
    dist: &[f64],
    idx: &[usize],
    k_distance: &[f64],
    buf: &mut [f64],
) -> f64 {
    for ((r, &d), &b) in buf.iter_mut().zip(dist).zip(idx) {
        *r = d.max(k_distance[b]);
    }
    1.0 / (numpy_mean(buf) + LRD_EPS)
}

/// `−mean(lrd(b) / lrd(a))` over the neighbours b.
fn negative_lof(lrd_a: f64, idx: &[usize], lrd: &[f64], buf: &mut [f64]) -> f64 {
    for (r, &b) in buf.iter_mut().zip(idx) {
        *r = lrd[b] / lrd_a;
    }
    -numpy_mean(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::kdtree::brute_knn;
    use serde_json::Value;

    const TOL: f64 = 1e-9;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= TOL * b.abs().max(1.0)
    }

    fn golden(name: &str) -> Value {
        let p = format!("{}/tests/data/golden/{name}", env!("CARGO_MANIFEST_DIR"));
        let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {p}: {e}"));
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("parse {p}: {e}"))
    }

    fn floats(v: &Value) -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("float"))
            .collect()
    }

    fn matrix(v: &Value) -> Matrix {
        let rows: Vec<Vec<f64>> = v.as_array().expect("rows").iter().map(floats).collect();
        let cols = rows.first().map_or(0, |r| r.len());
        Matrix::new(rows.len(), cols, rows.concat()).expect("matrix")
    }

    fn assert_all_close(got: &[f64], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let mut worst = 0.0f64;
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(close(*a, *b), "{what}[{i}]: {a} vs scikit-learn {b}");
            worst = worst.max((a - b).abs() / b.abs().max(1.0));
        }
        eprintln!(
            "{what}: {} values, worst scaled difference {worst:e}",
            got.len()
        );
    }

    fn usize_of(v: &Value) -> usize {
        v.as_u64().expect("integer") as usize
    }

    #[test]
    fn golden_fit_matches_scikit_learn() {
        let g = golden("lof_fit.json");
        let x = matrix(&g["X"]);
        for case in g["cases"].as_array().expect("cases") {
            let k = usize_of(&case["n_neighbors"]);
            let m = LocalOutlierFactor::fit(&x, &LofParams { n_neighbors: k }).expect("fit");
            assert_eq!(m.n_neighbors(), usize_of(&case["n_neighbors_"]));
            assert_all_close(
                m.negative_outlier_factor(),
                &floats(&case["negative_outlier_factor"]),
                &format!("fit k={k} negative_outlier_factor"),
            );
            assert_all_close(
                m.k_distances(),
                &floats(&case["k_distance"]),
                &format!("fit k={k} k_distance"),
            );
            assert_all_close(m.lrd(), &floats(&case["lrd"]), &format!("fit k={k} lrd"));
            for off in case["offsets"].as_array().expect("offsets") {
                let c = off["contamination"].as_f64().expect("c");
                let want = off["offset"].as_f64().expect("offset");
                assert!(close(m.offset(Some(c)), want), "offset c={c}");
            }
            assert_eq!(m.offset(None), -1.5);
        }
    }

    #[test]
    fn golden_novelty_matches_scikit_learn() {
        let g = golden("lof_novelty.json");
        let train = matrix(&g["X_train"]);
        let new = matrix(&g["X_new"]);
        let k = usize_of(&g["n_neighbors"]);
        let m = LocalOutlierFactor::fit(&train, &LofParams { n_neighbors: k }).expect("fit");
        let got = m.score_samples(&new).expect("score");
        assert_all_close(&got, &floats(&g["score_samples"]), "novelty score_samples");
        assert_all_close(
            m.negative_outlier_factor(),
            &floats(&g["negative_outlier_factor"]),
            "novelty training negative_outlier_factor",
        );
    }

    #[test]
    fn golden_small_n_matches_scikit_learn() {
        let g = golden("lof_small_n.json");
        for case in g["cases"].as_array().expect("cases") {
            let x = matrix(&case["X"]);
            let k = usize_of(&case["n_neighbors"]);
            let m = LocalOutlierFactor::fit(&x, &LofParams { n_neighbors: k }).expect("fit");
            assert_eq!(m.n_neighbors(), usize_of(&case["n_neighbors_"]));
            let what = format!("small n={} k={k}", x.rows());
            assert_all_close(
                m.negative_outlier_factor(),
                &floats(&case["negative_outlier_factor"]),
                &what,
            );
            let new = matrix(&case["X_new"]);
            assert_all_close(
                &m.score_samples(&new).expect("score"),
                &floats(&case["score_samples"]),
                &format!("{what} novelty"),
            );
        }
    }

    /// Duplicates: every score is finite, and equal to scikit-learn's on the rows whose LOF
    /// does not depend on how ties are broken (all rows of this fixture, which the generator
    /// checks: at every k-th-distance boundary the tied rows are exact copies of each other).
    #[test]
    fn golden_duplicates_match_scikit_learn() {
        let g = golden("lof_duplicates.json");
        let x = matrix(&g["X"]);
        let new = matrix(&g["X_new"]);
        for case in g["cases"].as_array().expect("cases") {
            let k = usize_of(&case["n_neighbors"]);
            let m = LocalOutlierFactor::fit(&x, &LofParams { n_neighbors: k }).expect("fit");
            let nof = m.negative_outlier_factor();
            assert!(nof.iter().all(|v| v.is_finite()), "k={k}: non-finite LOF");
            assert!(m.lrd().iter().all(|v| v.is_finite()));
            let want = floats(&case["negative_outlier_factor"]);
            let unambiguous: Vec<bool> = case["unambiguous"]
                .as_array()
                .expect("mask")
                .iter()
                .map(|b| b.as_bool().expect("bool"))
                .collect();
            let mut checked = 0;
            for i in 0..x.rows() {
                if unambiguous[i] {
                    assert!(
                        close(nof[i], want[i]),
                        "k={k} row {i}: {} vs {}",
                        nof[i],
                        want[i]
                    );
                    checked += 1;
                }
            }
            assert_eq!(checked, usize_of(&case["n_unambiguous"]));
            assert_eq!(
                checked,
                x.rows(),
                "fixture is meant to be fully unambiguous"
            );
            // The copies of the big group score exactly like scikit-learn: −1.
            let scores = m.score_samples(&new).expect("score");
            assert!(scores.iter().all(|v| v.is_finite()));
            assert_all_close(
                &scores,
                &floats(&case["score_samples"]),
                &format!("duplicates k={k} novelty"),
            );
        }
    }

    #[test]
    fn golden_wide_matches_scikit_learn() {
        let g = golden("lof_wide.json");
        // Continuous rows: scikit-learn's default (brute force) agrees to rounding.
        let c = &g["continuous"];
        let x = matrix(&c["X"]);
        let k = usize_of(&c["n_neighbors"]);
        let m = LocalOutlierFactor::fit(&x, &LofParams { n_neighbors: k }).expect("fit");
        assert_all_close(
            m.negative_outlier_factor(),
            &floats(&c["negative_outlier_factor"]),
            "wide continuous fit",
        );
        assert_all_close(
            &m.score_samples(&matrix(&c["X_new"])).expect("score"),
            &floats(&c["score_samples"]),
            "wide continuous novelty",
        );
        // Duplicates: equal to scikit-learn's exact algorithm (kd_tree). Its default there
        // (brute force) can put identical rows at a small positive distance, and then differs
        // near the duplicated rows; the fixture records on how many rows (the generator's
        // count, same tolerance), and this checks that count.
        let d = &g["duplicates"];
        let x = matrix(&d["X"]);
        let m = LocalOutlierFactor::fit(&x, &LofParams { n_neighbors: 20 }).expect("fit");
        let nof = m.negative_outlier_factor();
        assert!(nof.iter().all(|v| v.is_finite()));
        assert_all_close(
            nof,
            &floats(&d["negative_outlier_factor"]),
            "wide duplicates",
        );
        let brute = floats(&d["sklearn_default_negative_outlier_factor"]);
        let differing = nof
            .iter()
            .zip(&brute)
            .filter(|(a, b)| !close(**a, **b))
            .count();
        assert_eq!(differing, usize_of(&d["n_default_differs"]));
        eprintln!("wide duplicates: scikit-learn's default (brute) differs on {differing} rows");
    }

    /// Brute-force LOF straight from the definitions (same tie rule), on data with many ties.
    fn brute_lof(x: &Matrix, k: usize) -> Vec<f64> {
        let n = x.rows();
        let d = x.cols();
        let nb: Vec<Vec<(f64, usize)>> = (0..n)
            .map(|i| brute_knn(x.data(), d, x.row(i), k, Some(i)))
            .collect();
        let kd: Vec<f64> = nb.iter().map(|v| v[k - 1].0.sqrt()).collect();
        let lrd: Vec<f64> = nb
            .iter()
            .map(|v| {
                let r: Vec<f64> = v.iter().map(|&(d2, b)| d2.sqrt().max(kd[b])).collect();
                1.0 / (r.iter().sum::<f64>() / k as f64 + 1e-10)
            })
            .collect();
        (0..n)
            .map(|i| -nb[i].iter().map(|&(_, b)| lrd[b] / lrd[i]).sum::<f64>() / k as f64)
            .collect()
    }

    fn grid_data(n: usize, d: usize, seed: u64) -> Matrix {
        let mut s = seed;
        let data = (0..n * d)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) % 7) as f64 - 3.0
            })
            .collect();
        Matrix::new(n, d, data).expect("matrix")
    }

    #[test]
    fn agrees_with_brute_force_definition_on_ties() {
        for (n, d, k) in [(200, 2, 5), (150, 3, 20), (60, 1, 10)] {
            let x = grid_data(n, d, n as u64);
            let m = LocalOutlierFactor::fit(&x, &LofParams { n_neighbors: k }).expect("fit");
            let want = brute_lof(&x, k);
            for (i, (a, b)) in m.negative_outlier_factor().iter().zip(&want).enumerate() {
                assert!(a.is_finite());
                assert!(
                    (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                    "row {i}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn identical_rows_are_finite() {
        let x = Matrix::new(50, 3, vec![2.5; 150]).expect("matrix");
        let m = LocalOutlierFactor::fit(&x, &LofParams::default()).expect("fit");
        assert!(m.negative_outlier_factor().iter().all(|&v| v == -1.0));
        assert!(m.lrd().iter().all(|&v| v == 1.0 / 1e-10));
        let s = m
            .score_samples(&Matrix::new(2, 3, vec![2.5, 2.5, 2.5, 3.0, 2.5, 2.5]).expect("m"))
            .expect("score");
        assert_eq!(s[0], -1.0);
        assert!(
            s[1].is_finite() && s[1] < -1e6,
            "a point off a duplicate pile: {}",
            s[1]
        );
    }

    #[test]
    fn two_rows() {
        let x = Matrix::new(2, 2, vec![0.0, 0.0, 3.0, 4.0]).expect("matrix");
        let m = LocalOutlierFactor::fit(&x, &LofParams::default()).expect("fit");
        assert_eq!(m.n_neighbors(), 1);
        assert_eq!(m.k_distances(), &[5.0, 5.0]);
        assert_eq!(m.negative_outlier_factor(), &[-1.0, -1.0]);
    }

    #[test]
    fn input_errors() {
        let p = LofParams::default();
        let one = Matrix::new(1, 2, vec![1.0, 2.0]).expect("m");
        assert_eq!(
            LocalOutlierFactor::fit(&one, &p).unwrap_err(),
            LofError::TooFewRows(1)
        );
        let empty = Matrix::new(0, 3, vec![]).expect("m");
        assert_eq!(
            LocalOutlierFactor::fit(&empty, &p).unwrap_err(),
            LofError::TooFewRows(0)
        );
        let no_cols = Matrix::new(5, 0, vec![]).expect("m");
        assert_eq!(
            LocalOutlierFactor::fit(&no_cols, &p).unwrap_err(),
            LofError::NoColumns
        );
        let x = Matrix::new(3, 2, vec![1.0, 2.0, 3.0, f64::NAN, 5.0, 6.0]).expect("m");
        let e = LocalOutlierFactor::fit(&x, &p).unwrap_err();
        assert!(matches!(e, LofError::NonFinite { row: 1, col: 1, .. }));
        assert!(e.to_string().contains("row 1, column 1"), "{e}");
        let x = Matrix::new(3, 2, vec![1.0, 2.0, 3.0, 4.0, f64::INFINITY, 6.0]).expect("m");
        assert!(matches!(
            LocalOutlierFactor::fit(&x, &p).unwrap_err(),
            LofError::NonFinite { row: 2, col: 0, .. }
        ));
        let good = Matrix::new(3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 7.0]).expect("m");
        assert_eq!(
            LocalOutlierFactor::fit(&good, &LofParams { n_neighbors: 0 }).unwrap_err(),
            LofError::ZeroNeighbors
        );
        let m = LocalOutlierFactor::fit(&good, &p).expect("fit");
        let wide = Matrix::new(1, 3, vec![0.0; 3]).expect("m");
        let e = m.score_samples(&wide).unwrap_err();
        assert_eq!(
            e,
            LofError::ColumnMismatch {
                expected: 2,
                got: 3
            }
        );
        assert!(e.to_string().contains("2 columns, got 3"), "{e}");
        let nan = Matrix::new(2, 2, vec![0.0, 0.0, 0.0, f64::NAN]).expect("m");
        assert!(matches!(
            m.score_samples(&nan).unwrap_err(),
            LofError::NonFinite { row: 1, col: 1, .. }
        ));
        let none = Matrix::new(0, 2, vec![]).expect("m");
        assert!(m.score_samples(&none).expect("empty").is_empty());
    }

    #[test]
    fn distances_that_overflow_are_refused_at_fit_not_at_load() {
        // Finite values 1e300 apart: the squared distance overflows. The fit used to succeed with
        // an infinite k-distance, saving a model that could not be loaded.
        let x = Matrix::new(4, 1, vec![1e300, -1e300, 0.0, 1.0]).expect("m");
        let e = LocalOutlierFactor::fit(&x, &LofParams { n_neighbors: 1 }).unwrap_err();
        assert!(matches!(e, LofError::DistanceOverflow { .. }), "{e}");
        assert!(e.to_string().contains("overflows"), "{e}");
        let x = Matrix::new(4, 1, vec![1e150, -1e150, 0.0, 1.0]).expect("m");
        let m = LocalOutlierFactor::fit(&x, &LofParams { n_neighbors: 2 }).expect("fit");
        let back: LocalOutlierFactor =
            serde_json::from_str(&serde_json::to_string(&m).expect("json")).expect("loads");
        assert_eq!(back.k_distances(), m.k_distances());
    }

    #[test]
    fn serde_round_trip_gives_identical_scores() {
        let g = golden("lof_novelty.json");
        let train = matrix(&g["X_train"]);
        let new = matrix(&g["X_new"]);
        let m = LocalOutlierFactor::fit(&train, &LofParams::default()).expect("fit");
        let json = serde_json::to_string(&m).expect("serialize");
        let back: LocalOutlierFactor = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back.reference(), m.reference());
        assert_eq!(back.k_distances(), m.k_distances());
        assert_eq!(back.lrd(), m.lrd());
        assert_eq!(back.negative_outlier_factor(), m.negative_outlier_factor());
        assert_eq!(back.n_neighbors(), m.n_neighbors());
        let a = m.score_samples(&new).expect("score");
        let b = back.score_samples(&new).expect("score after load");
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // Plain numbers are accepted too.
        let mut v: Value = serde_json::from_str(&json).expect("value");
        v["lrd"] = serde_json::json!(m.lrd());
        let plain: LocalOutlierFactor = serde_json::from_value(v).expect("plain numbers");
        assert!(plain.rebuild_index().is_ok());
    }

    #[test]
    fn tampered_model_is_an_error_not_a_panic() {
        let x = grid_data(30, 2, 3);
        let m = LocalOutlierFactor::fit(&x, &LofParams { n_neighbors: 5 }).expect("fit");
        let mut v: Value = serde_json::to_value(&m).expect("value");
        v["lrd"] = serde_json::json!([1.0, 2.0]);
        let bad: LocalOutlierFactor = serde_json::from_value(v).expect("parses");
        assert!(matches!(
            bad.rebuild_index(),
            Err(LofError::InvalidModel(_))
        ));
        let q = Matrix::new(1, 2, vec![0.0, 0.0]).expect("m");
        assert!(matches!(
            bad.score_samples(&q),
            Err(LofError::InvalidModel(_))
        ));
        let mut v: Value = serde_json::to_value(&m).expect("value");
        v["reference"]["rows"] = serde_json::json!(31);
        let e = serde_json::from_value::<LocalOutlierFactor>(v).unwrap_err();
        assert!(e.to_string().contains("needs"), "{e}");
        let mut v: Value = serde_json::to_value(&m).expect("value");
        v["k_distance"][0] = serde_json::json!("not a number");
        assert!(serde_json::from_value::<LocalOutlierFactor>(v).is_err());
        let mut v: Value = serde_json::to_value(&m).expect("value");
        v["n_neighbors"] = serde_json::json!(30);
        let bad: LocalOutlierFactor = serde_json::from_value(v).expect("parses");
        assert!(matches!(
            bad.score_samples(&q),
            Err(LofError::InvalidModel(_))
        ));
    }

    #[test]
    fn numpy_helpers() {
        assert_eq!(percentile_linear(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.5);
        assert_eq!(percentile_linear(&[4.0, 1.0, 3.0, 2.0], 25.0), 1.75);
        assert_eq!(percentile_linear(&[5.0], 10.0), 5.0);
        assert_eq!(percentile_linear(&[1.0, 2.0], 100.0), 2.0);
        assert_eq!(percentile_linear(&[1.0, 2.0], 0.0), 1.0);
        assert!(percentile_linear(&[], 10.0).is_nan());
        let v: Vec<f64> = (0..300).map(|i| (i as f64 * 0.37).sin()).collect();
        let seq: f64 = v.iter().sum::<f64>() / 300.0;
        assert!((numpy_mean(&v) - seq).abs() < 1e-15);
        assert_eq!(numpy_mean(&[1.0, 2.0, 3.0]), 2.0);
    }
}
