//! Patterns: KMeans through linfa-clustering — one seeded k-means++ run, fitted on a sample of at
//! most `sample` rows, then every row assigned to its nearest centroid (in parallel).
//!
//! Choosing k (`k = 0` in the config means "choose"): for k = 2..=k_max, fit on a sample of at
//! most 5,000 rows and compute the simplified silhouette — for each sampled row
//! (b − a) / max(a, b), where a is the distance to its own centroid and b to the nearest other
//! centroid — and take the k with the highest mean. Ties go to the smaller k.

use super::matrix::Matrix;
use linfa::prelude::*;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::Array2;
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_xoshiro::Xoshiro256Plus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("clustering needs at least 2 rows, got {0}")]
    TooFew(usize),
    #[error("KMeans failed: {0}")]
    KMeans(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterParams {
    /// Number of clusters; 0 = choose by the simplified silhouette.
    pub k: usize,
    pub k_max: usize,
    /// At most this many rows are used to fit.
    pub sample: usize,
    pub max_iterations: u64,
    pub seed: u64,
}

impl Default for ClusterParams {
    fn default() -> Self {
        ClusterParams {
            k: 0,
            k_max: 8,
            sample: 100_000,
            max_iterations: 100,
            seed: 42,
        }
    }
}

/// Fitted centroids (in the scaled feature space the detector sees).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Centroids {
    pub k: usize,
    pub dims: usize,
    /// Row-major k × dims.
    #[serde(with = "super::exact::vec")]
    pub values: Vec<f64>,
    /// Mean simplified silhouette on the fit sample (quality indicator).
    #[serde(with = "super::exact::scalar")]
    pub silhouette: f64,
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

impl Centroids {
    fn centroid(&self, c: usize) -> &[f64] {
        &self.values[c * self.dims..(c + 1) * self.dims]
    }

    /// Nearest centroid of one row, and the distances to the nearest and second nearest.
    fn nearest(&self, row: &[f64]) -> (usize, f64, f64) {
        let mut best = (0, f64::INFINITY);
        let mut second = f64::INFINITY;
        for c in 0..self.k {
            let d = sq_dist(row, self.centroid(c));
            if d < best.1 {
                second = best.1;
                best = (c, d);
            } else if d < second {
                second = d;
            }
        }
        (best.0, best.1.sqrt(), second.sqrt())
    }

    /// Assigns every row to its nearest centroid, in parallel.
    pub fn assign(&self, x: &Matrix) -> Vec<usize> {
        (0..x.rows())
            .into_par_iter()
            .with_min_len(4096)
            .map(|i| self.nearest(x.row(i)).0)
            .collect()
    }

    fn silhouette(&self, x: &Matrix) -> f64 {
        if self.k < 2 || x.rows() == 0 {
            return 0.0;
        }
        // Each row's value in parallel, summed in row order: a parallel sum's order (and so its
        // last bits) depends on how the threads split the work, and the model must not.
        let each: Vec<f64> = (0..x.rows())
            .into_par_iter()
            .map(|i| {
                let (_, a, b) = self.nearest(x.row(i));
                let m = a.max(b);
                if m > 0.0 { (b - a) / m } else { 0.0 }
            })
            .collect();
        each.iter().sum::<f64>() / x.rows() as f64
    }
}

/// The largest scaled value the clustering sees: k-means++ sums squared distances over the
/// sample, which overflows to infinity (and its weighted draw panics) once values reach about
/// 1e150. A row this many inter-quartile ranges out is placed at the bound instead.
const CLUSTER_BOUND: f64 = 1e100;

/// A sample of at most `n` rows of `x`, each value within ±[`CLUSTER_BOUND`] (NaN as 0).
fn subsample(x: &Matrix, n: usize, seed: u64) -> Matrix {
    let mut m = if x.rows() <= n {
        x.clone()
    } else {
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        let mut idx = sample(&mut rng, x.rows(), n).into_vec();
        idx.sort_unstable();
        x.select_rows(&idx)
    };
    if m.data()
        .iter()
        .any(|v| !(-CLUSTER_BOUND..=CLUSTER_BOUND).contains(v))
    {
        let data = m
            .data()
            .iter()
            .map(|v| {
                if v.is_nan() {
                    0.0
                } else {
                    v.clamp(-CLUSTER_BOUND, CLUSTER_BOUND)
                }
            })
            .collect();
        m = Matrix::new(m.rows(), m.cols(), data).unwrap_or(m);
    }
    m
}

fn fit_k(x: &Matrix, k: usize, p: &ClusterParams) -> Result<Centroids, ClusterError> {
    let arr = Array2::from_shape_vec((x.rows(), x.cols()), x.data().to_vec())
        .map_err(|e| ClusterError::KMeans(e.to_string()))?;
    let ds = DatasetBase::from(arr);
    let rng = Xoshiro256Plus::seed_from_u64(p.seed);
    let model = KMeans::params_with_rng(k, rng)
        .n_runs(1)
        .init_method(KMeansInit::KMeansPlusPlus)
        .max_n_iterations(p.max_iterations)
        .tolerance(1e-4)
        .fit(&ds)
        .map_err(|e| ClusterError::KMeans(e.to_string()))?;
    let c = model.centroids();
    let mut out = Centroids {
        k,
        dims: x.cols(),
        values: c.iter().copied().collect(),
        silhouette: 0.0,
    };
    out.silhouette = out.silhouette(x);
    Ok(out)
}

/// Fits the centroids on (a sample of) `x`.
pub fn fit(x: &Matrix, p: &ClusterParams) -> Result<Centroids, ClusterError> {
    if x.rows() < 2 {
        return Err(ClusterError::TooFew(x.rows()));
    }
    let fit_sample = subsample(x, p.sample.max(2), p.seed);
    if p.k > 0 {
        return fit_k(&fit_sample, p.k.min(fit_sample.rows()), p);
    }
    let choose_sample = subsample(&fit_sample, 5_000, p.seed ^ 0x5eed);
    let k_max = p.k_max.max(2).min(choose_sample.rows());
    let mut best: Option<Centroids> = None;
    for k in 2..=k_max {
        let c = fit_k(&choose_sample, k, p)?;
        if best
            .as_ref()
            .is_none_or(|b| c.silhouette > b.silhouette + 1e-12)
        {
            best = Some(c);
        }
    }
    let k = best.map_or(2, |b| b.k);
    fit_k(&fit_sample, k, p)
}

/// One cluster's summary in original units.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterSummary {
    pub cluster: usize,
    pub size: usize,
    pub anomalies: usize,
    pub anomaly_share: f64,
    pub mean_difference: f64,
    pub median_difference: f64,
    pub total_abs_difference: f64,
    /// Accounts (keys) with the most rows in the cluster, with their counts.
    pub top_accounts: Vec<(String, usize)>,
}

/// Summaries per cluster from the assignments, flags, differences and account keys.
pub fn summarize(
    k: usize,
    assignment: &[usize],
    flags: &[bool],
    difference: &[f64],
    keys: &[&str],
    top: usize,
) -> Vec<ClusterSummary> {
    use rayon::prelude::*;
    // One cluster on each core at a time.
    (0..k)
        .into_par_iter()
        .map(|c| {
            let idx: Vec<usize> = (0..assignment.len())
                .filter(|i| assignment[*i] == c)
                .collect();
            let mut diffs: Vec<f64> = idx
                .iter()
                .map(|i| difference.get(*i).copied().unwrap_or(0.0))
                .collect();
            diffs.sort_by(f64::total_cmp);
            let anomalies = idx.iter().filter(|i| flags.get(**i) == Some(&true)).count();
            let mut counts: std::collections::HashMap<&str, usize> = Default::default();
            for i in &idx {
                if let Some(k) = keys.get(*i) {
                    *counts.entry(k).or_default() += 1;
                }
            }
            let top_accounts: Vec<(String, usize)> = counts
                .into_iter()
                .map(|(k, n)| (k.to_string(), n))
                .collect();
            ClusterSummary::of(c, anomalies, &diffs, top_accounts, top)
        })
        .collect()
}

impl ClusterSummary {
    /// The summary of cluster `cluster`: `anomalies` of its rows flagged, their differences
    /// `sorted` (ascending), and its accounts with their row counts, of which the `top` most
    /// frequent are kept (ties by name).
    pub fn of(
        cluster: usize,
        anomalies: usize,
        sorted: &[f64],
        mut accounts: Vec<(String, usize)>,
        top: usize,
    ) -> ClusterSummary {
        accounts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        accounts.truncate(top);
        let size = sorted.len();
        let share = |v: f64| if size > 0 { v / size as f64 } else { 0.0 };
        ClusterSummary {
            cluster,
            size,
            anomalies,
            anomaly_share: share(anomalies as f64),
            mean_difference: share(sorted.iter().sum::<f64>()),
            median_difference: if size > 0 {
                super::scaler::percentile_sorted(sorted, 50.0)
            } else {
                0.0
            },
            total_abs_difference: sorted.iter().map(|d| d.abs()).sum(),
            top_accounts: accounts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(seed: u64) -> Matrix {
        use rand::Rng;
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        let centers = [[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]];
        let mut data = Vec::new();
        for c in centers {
            for _ in 0..200 {
                data.push(c[0] + rng.r#gen::<f64>() - 0.5);
                data.push(c[1] + rng.r#gen::<f64>() - 0.5);
            }
        }
        Matrix::new(600, 2, data).unwrap()
    }

    #[test]
    fn chooses_three_for_three_blobs_and_assigns_them() {
        let x = blobs(1);
        let c = fit(&x, &ClusterParams::default()).unwrap();
        assert_eq!(c.k, 3, "silhouette picks k = 3");
        assert!(c.silhouette > 0.8, "{}", c.silhouette);
        let a = c.assign(&x);
        for blob in 0..3 {
            let first = a[blob * 200];
            assert!(a[blob * 200..(blob + 1) * 200].iter().all(|v| *v == first));
        }
        assert_eq!(
            a.iter().collect::<std::collections::HashSet<_>>().len(),
            3,
            "each blob its own cluster"
        );
    }

    #[test]
    fn seeded_and_sampled_fit_is_reproducible() {
        let x = blobs(2);
        let p = ClusterParams {
            k: 3,
            sample: 100,
            ..Default::default()
        };
        assert_eq!(fit(&x, &p).unwrap(), fit(&x, &p).unwrap());
        assert!(fit(&Matrix::new(1, 2, vec![0.0, 0.0]).unwrap(), &p).is_err());
    }

    #[test]
    fn extreme_values_are_clustered_instead_of_panicking() {
        // Scaled values near 1e300 overflowed k-means++'s squared distances to infinity, and its
        // weighted draw panicked.
        let mut x = blobs(3);
        let mut data = x.data().to_vec();
        data[0] = 1e300;
        data[3] = -1e300;
        data[5] = f64::INFINITY;
        x = Matrix::new(x.rows(), x.cols(), data).unwrap();
        let c = fit(&x, &ClusterParams::default()).unwrap();
        assert!(c.values.iter().all(|v| v.is_finite()));
        assert_eq!(c.assign(&x).len(), x.rows());
    }

    #[test]
    fn summaries_in_original_units() {
        let s = summarize(
            2,
            &[0, 0, 1, 1, 1],
            &[true, false, false, false, true],
            &[10.0, 0.0, -1.0, -2.0, -300.0],
            &["A", "A", "B", "C", "B"],
            2,
        );
        assert_eq!(s[0].size, 2);
        assert_eq!(s[0].anomaly_share, 0.5);
        assert_eq!(s[0].mean_difference, 5.0);
        assert_eq!(s[1].median_difference, -2.0);
        assert_eq!(s[1].total_abs_difference, 303.0);
        assert_eq!(s[1].top_accounts[0], ("B".to_string(), 2));
    }
}
