//! Patterns: KMeans through linfa-clustering — one seeded k-means++ run, fitted on a sample of at
//! most `sample` rows, then every row assigned to its nearest centroid (in parallel).
//!
//! Choosing k (`k = 0` in the config means "choose"): for k = 2..=k_max, fit on a sample of at
//! most 5,000 rows and compute the simplified silhouette — for each sampled row
//! (b − a) / max(a, b), where a is the distance to its own centroid and b to the nearest other
//! centroid — and take the k with the highest mean. Ties go to the smaller k.

use super::matrix::Matrix;
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

/// Centroids laid out for a row's squared distances to all of them in one pass: blocks of
/// `width` centroids (2, 4 or 8: the fewest that hold k, at most 8), coordinate-major within a
/// block. Each centroid's sum still adds its coordinates' squared differences one after the
/// other from the first, as a one-at-a-time sum does (so the same bits), but the sums of a
/// block are independent and run side by side instead of waiting on each other's additions.
struct Lanes {
    k: usize,
    dims: usize,
    width: usize,
    /// `width * dims` values per block; value `j * width + l` of block `b` is coordinate `j` of
    /// centroid `b * width + l` (0 past the last centroid).
    blocks: Vec<f64>,
}

impl Lanes {
    /// `values`: row-major k × dims.
    fn new(values: &[f64], k: usize, dims: usize) -> Lanes {
        let width = match k {
            0..=2 => 2,
            3..=4 => 4,
            _ => 8,
        };
        let mut blocks = vec![0.0; k.div_ceil(width) * width * dims];
        for (c, centroid) in values.chunks_exact(dims.max(1)).take(k).enumerate() {
            let block = (c / width) * width * dims;
            for (j, v) in centroid.iter().enumerate() {
                blocks[block + j * width + c % width] = *v;
            }
        }
        Lanes {
            k,
            dims,
            width,
            blocks,
        }
    }

    /// The squared distance from `row` to each centroid, into `out` (k values).
    fn distances(&self, row: &[f64], out: &mut [f64]) {
        if self.dims == 0 {
            out[..self.k].fill(0.0);
            return;
        }
        let blocks = self.blocks.chunks_exact(self.width * self.dims);
        for (block, out) in blocks.zip(out[..self.k].chunks_mut(self.width)) {
            match self.width {
                2 => block_distances::<2>(block, row, out),
                4 => block_distances::<4>(block, row, out),
                _ => block_distances::<8>(block, row, out),
            }
        }
    }

    /// The nearest centroid to `row` (the first of equally near ones) and the squared distances
    /// to it and to the second nearest (infinite with one centroid); `buf` holds k values.
    fn nearest(&self, row: &[f64], buf: &mut [f64]) -> (usize, f64, f64) {
        self.distances(row, buf);
        let mut best = (0, f64::INFINITY);
        let mut second = f64::INFINITY;
        for (c, d) in buf[..self.k].iter().enumerate() {
            if *d < best.1 {
                second = best.1;
                best = (c, *d);
            } else if *d < second {
                second = *d;
            }
        }
        (best.0, best.1, second)
    }
}

impl Centroids {
    fn lanes(&self) -> Lanes {
        Lanes::new(&self.values, self.k, self.dims)
    }

    /// Assigns every row to its nearest centroid, in parallel.
    pub fn assign(&self, x: &Matrix) -> Vec<usize> {
        let lanes = self.lanes();
        (0..x.rows())
            .into_par_iter()
            .with_min_len(4096)
            .map_init(
                || vec![0.0; self.k],
                |buf, i| lanes.nearest(x.row(i), buf).0,
            )
            .collect()
    }

    fn silhouette(&self, x: &Matrix) -> f64 {
        if self.k < 2 || x.rows() == 0 {
            return 0.0;
        }
        // Each row's value in parallel, summed in row order: a parallel sum's order (and so its
        // last bits) depends on how the threads split the work, and the model must not.
        let lanes = self.lanes();
        let each: Vec<f64> = (0..x.rows())
            .into_par_iter()
            .map_init(
                || vec![0.0; self.k],
                |buf, i| {
                    let (_, a, b) = lanes.nearest(x.row(i), buf);
                    let (a, b) = (a.sqrt(), b.sqrt());
                    let m = a.max(b);
                    if m > 0.0 { (b - a) / m } else { 0.0 }
                },
            )
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
    if k == 0 || k > x.rows() {
        return Err(ClusterError::KMeans(format!(
            "cannot fit {k} clusters on {} rows",
            x.rows()
        )));
    }
    if p.max_iterations == 0 {
        return Err(ClusterError::KMeans(
            "max_iterations must be at least 1".into(),
        ));
    }
    let mut out = Centroids {
        k,
        dims: x.cols(),
        values: kmeans(x, k, p.seed, p.max_iterations, KMEANS_TOLERANCE),
        silhouette: 0.0,
    };
    out.silhouette = out.silhouette(x);
    Ok(out)
}

/// How far (Euclidean, over every centroid's coordinates) the centroids may still move in an
/// iteration for the fit to count as converged.
const KMEANS_TOLERANCE: f64 = 1e-4;

/// One seeded k-means run on the rows of `x`: k-means++ seeding, then Lloyd's iterations in
/// which each centroid becomes the mean of its rows and of itself (the "m_k-means" update),
/// until the centroids move less than `tolerance` or `max_iterations` have run. Returns the
/// centroids, row-major k × cols.
///
/// This is linfa-clustering's `KMeans` (one run, k-means++, squared Euclidean distances)
/// computed operation for operation on the matrix's rows, so that a model fitted by either has
/// the same centroids to the last bit (a test compares them); without its per-element array
/// views, a fit on 100,000 rows takes a fraction of the time.
fn kmeans(x: &Matrix, k: usize, seed: u64, max_iterations: u64, tolerance: f64) -> Vec<f64> {
    use rand::distributions::{Distribution, WeightedIndex};
    let (n, d) = (x.rows(), x.cols());
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    let mut centroids = vec![0.0; k * d];
    // k-means++: the first centroid drawn uniformly, each next one with a probability
    // proportional to a row's squared distance to the nearest centroid so far.
    let first = WeightedIndex::new(std::iter::repeat_n(1.0f64, n))
        .map(|w| w.sample(&mut rng))
        .unwrap_or(0);
    centroids[..d].copy_from_slice(x.row(first));
    let mut dists = vec![0.0f64; n];
    for c in 1..k {
        let seeded = Lanes::new(&centroids, c, d);
        dists.par_iter_mut().enumerate().for_each_init(
            || vec![0.0; c],
            |buf, (i, dist)| *dist = closest_centroid(&seeded, x.row(i), buf).1,
        );
        // All distances zero (every row is a centroid already): any row will do.
        let next = WeightedIndex::new(dists.iter())
            .map(|w| w.sample(&mut rng))
            .unwrap_or(0);
        centroids[c * d..(c + 1) * d].copy_from_slice(x.row(next));
    }
    let mut members = vec![0usize; n];
    let mut iterations = 0;
    loop {
        let current = Lanes::new(&centroids, k, d);
        members.par_iter_mut().enumerate().for_each_init(
            || vec![0.0; k],
            |buf, (i, m)| *m = closest_centroid(&current, x.row(i), buf).0,
        );
        // Each centroid's rows summed in row order, then the centroid itself, over their count.
        let mut next = vec![0.0f64; k * d];
        let mut counts = vec![1usize; k];
        for (i, &m) in members.iter().enumerate() {
            for (s, v) in next[m * d..(m + 1) * d].iter_mut().zip(x.row(i)) {
                *s += *v;
            }
            counts[m] += 1;
        }
        for (s, c) in next.iter_mut().zip(&centroids) {
            *s += *c;
        }
        for (row, count) in next.chunks_mut(d.max(1)).zip(&counts) {
            let count = *count as f64;
            for s in row {
                *s /= count;
            }
        }
        let moved = centroids
            .iter()
            .zip(&next)
            .fold(0.0f64, |acc, (a, b)| {
                let diff = a - b;
                acc + diff * diff
            })
            .sqrt();
        centroids = next;
        iterations += 1;
        if moved < tolerance || iterations == max_iterations {
            return centroids;
        }
    }
}

/// The squared distances from `row` to the `L` centroids of one block of [`Lanes`], into `out`
/// (as many as it holds).
fn block_distances<const L: usize>(block: &[f64], row: &[f64], out: &mut [f64]) {
    let mut acc = [0.0f64; L];
    for (coords, v) in block.chunks_exact(L).zip(row) {
        for (a, c) in acc.iter_mut().zip(coords) {
            let diff = c - v;
            *a += diff * diff;
        }
    }
    let n = out.len().min(L);
    out[..n].copy_from_slice(&acc[..n]);
}

/// The index of the centroid nearest to `row` and its squared distance, the first of equally
/// near ones; `buf` holds one value per centroid.
fn closest_centroid(centroids: &Lanes, row: &[f64], buf: &mut [f64]) -> (usize, f64) {
    centroids.distances(row, buf);
    let mut best = (0, buf[0]);
    for (i, dist) in buf[..centroids.k].iter().enumerate().skip(1) {
        if *dist < best.1 {
            best = (i, *dist);
        }
    }
    best
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

    /// linfa-clustering's `KMeans` with the settings this module's k-means reproduces.
    fn linfa_centroids(x: &Matrix, k: usize, seed: u64, max_iterations: u64) -> Vec<f64> {
        use linfa::prelude::*;
        use linfa_clustering::{KMeans, KMeansInit};
        let arr = ndarray::Array2::from_shape_vec((x.rows(), x.cols()), x.data().to_vec()).unwrap();
        let ds = linfa::DatasetBase::from(arr);
        let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
            .n_runs(1)
            .init_method(KMeansInit::KMeansPlusPlus)
            .max_n_iterations(max_iterations)
            .tolerance(KMEANS_TOLERANCE)
            .fit(&ds)
            .unwrap();
        model.centroids().iter().copied().collect()
    }

    #[test]
    fn kmeans_has_linfa_clusterings_centroids_to_the_last_bit() {
        use rand::Rng;
        let mut cases = vec![blobs(4), blobs(5)];
        // Overlapping clouds in 7 dimensions, with repeated rows and a column that never
        // varies: ties in the nearest centroid and zero draws in the seeding.
        let mut rng = Xoshiro256Plus::seed_from_u64(9);
        let mut data = Vec::new();
        for i in 0..3_000 {
            let centre = (i % 4) as f64 * 1.5;
            for j in 0..7 {
                data.push(if j == 3 {
                    2.0
                } else {
                    centre + rng.r#gen::<f64>() * 3.0 - (j as f64) * 0.1
                });
            }
        }
        data.extend_from_within(0..7 * 500);
        cases.push(Matrix::new(3_500, 7, data).unwrap());
        // Fewer distinct rows than clusters.
        cases.push(
            Matrix::new(
                6,
                2,
                vec![1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0],
            )
            .unwrap(),
        );
        let mut compared = 0;
        for x in &cases {
            for k in 2..=8.min(x.rows()) {
                for (seed, iterations) in [(42, 100), (7, 3), (1234, 1)] {
                    let ours = kmeans(x, k, seed, iterations, KMEANS_TOLERANCE);
                    let theirs = linfa_centroids(x, k, seed, iterations);
                    assert_eq!(ours.len(), theirs.len());
                    for (a, b) in ours.iter().zip(&theirs) {
                        assert_eq!(
                            a.to_bits(),
                            b.to_bits(),
                            "k {k}, seed {seed}: {ours:?} vs {theirs:?}"
                        );
                    }
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 3 * (7 + 7 + 7 + 5));
    }

    #[test]
    fn a_fit_without_iterations_or_with_more_clusters_than_rows_is_an_error() {
        let x = blobs(6);
        let p = ClusterParams {
            k: 3,
            max_iterations: 0,
            ..Default::default()
        };
        assert!(
            matches!(fit(&x, &p), Err(ClusterError::KMeans(m)) if m.contains("max_iterations"))
        );
        assert!(fit_k(&x, 601, &ClusterParams::default()).is_err());
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
