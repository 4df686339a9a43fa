//! Isolation Forest (Liu, Ting & Zhou, 2008) with scikit-learn's semantics.
//!
//! # What it computes
//!
//! [`IsolationForest::fit`] grows `n_estimators` isolation trees. Each tree:
//!
//! * draws `max_samples` rows without replacement ([`MaxSamples::Auto`] = `min(256, n)`;
//!   a [`MaxSamples::Count`] above `n` is clamped to `n`, as scikit-learn does after a
//!   warning; a [`MaxSamples::Fraction`] `f` uses `floor(f · n)` rows);
//! * draws `max(1, floor(max_features · p))` of the `p` features without replacement
//!   (all of them for the default `max_features = 1.0`);
//! * grows to the depth limit `ceil(log2(max(max_samples, 2)))`. At each node a feature is
//!   drawn uniformly among the tree's features that are *not constant* within the node (if all
//!   are constant the node is a leaf), and a threshold uniformly in `[min, max)` of that feature
//!   within the node. Rows with `x <= threshold` go left. A node is a leaf when it holds at most
//!   one row or sits at the depth limit.
//!
//! The path length of a row in a tree is the number of edges from the root to its leaf plus
//! `c(leaf size)`, with `c` = [`average_path_length`]. [`IsolationForest::score_samples`]
//! returns scikit-learn's `score_samples`: `-2^(-E[h(x)] / c(max_samples))`, in `[-1, 0]`,
//! higher = more normal (`-0.5` everywhere when `max_samples = 1`, as in scikit-learn).
//! scikit-learn's `decision_function` is `score - offset` (offset `-0.5` for
//! `contamination="auto"`, see [`decision`]) and a row is an outlier when it is below zero.
//!
//! # Differences from scikit-learn
//!
//! * scikit-learn casts the input to `f32`; this implementation works in `f64` throughout, so
//!   values that differ only beyond `f32` precision (large amounts) are still told apart.
//! * scikit-learn treats a feature as constant in a node when `max - min <= 1e-7`; here a
//!   feature is constant when `max == min`, so features on tiny scales still split.
//! * NaN and infinite values are rejected (scikit-learn routes NaN to a random side).
//! * The random streams differ (ChaCha8 here, MT19937 there): the scores agree in
//!   distribution, not row for row; the golden tests compare seed-averaged rankings.
//!
//! # Reproducibility
//!
//! One seed per tree is drawn up front from `ChaCha8Rng::seed_from_u64(seed)`; each tree is
//! grown from its own `ChaCha8Rng`. Trees are grown and rows are scored in parallel with rayon,
//! and every row sums its trees' path lengths in tree order, so a seed gives bit-identical
//! forests and scores whatever the number of threads.
//!
//! # Attributions
//!
//! [`IsolationForest::score_with_attributions`] also tells *why* a row scores as it does: every
//! feature's share of the isolation the row gets on its paths, cuts near the root weighted more.
//!
//! In each tree, follow the row from the root. A split at depth `d` (root = 0) on feature `j`
//! that sends the row from a node holding `n` of the tree's training rows into a child holding
//! `n'` of them *cuts* `log2((n + 1) / (n' + 1))` bits (the `+ 1` counts the row itself, so a
//! row that was not in the tree's sample still gets finite weights): about 1 bit for an even
//! split, many bits when the row is cut off nearly alone. Feature `j` receives
//! `bits / (d + 1)`. The weights are summed over all trees and divided by their total, so a
//! row's shares add up to 1 (all zero when the row's paths hold no split, e.g. when every
//! training row was identical). Per tree, the bits of a path add up to
//! `log2((max_samples + 1) / (leaf size + 1))`, the row's total isolation.
//!
//! The bit factor matters: a share of merely depth-weighted split *counts* (`1 / (d + 1)` per
//! split) mostly measures which features the trees happened to draw above the row. On the
//! golden data it names the shifted feature of a one-feature outlier about as often as
//! chance (5 of 33 with 6 features); with the bit factor, 33 of 33.
//! [`top_attributions`] picks the largest shares.
//!
//! # Layout
//!
//! Every tree is stored as a complete binary tree of depth `max_depth` in heap order (children
//! of node `i` at `2i + 1` and `2i + 2`), all trees in one contiguous array. A leaf above the
//! depth limit is extended by pass-through nodes (threshold `f64::MAX`, so every finite value goes
//! left) down to the last level, where the leaf's path value `depth + c(size)` is stored. Scoring
//! then walks exactly `max_depth` levels with a branch-free child update, eight rows at a time,
//! tree after tree over blocks of rows that rayon spreads over the threads. That walk indexes
//! without bounds checks; the few facts it relies on (array sizes, every node's feature below
//! the number of columns) are checked once per call. The complete layout needs fewer than
//! `4 · max_samples` node slots per tree: about 8 KiB per tree for the default 256 rows.

use crate::detect::matrix::Matrix;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The Euler–Mascheroni constant γ.
pub const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// scikit-learn's offset for `contamination="auto"`: `decision = score - OFFSET_AUTO`.
pub const OFFSET_AUTO: f64 = -0.5;

/// Threshold of a pass-through node: every finite value is `<=` it and goes left. A real split
/// threshold is always below the node's maximum, hence never `f64::MAX`.
const PASS: f64 = f64::MAX;

/// Rows handed to one rayon task when scoring.
const BLOCK_ROWS: usize = 512;
/// Rows walked through a tree together (independent walks interleave in the pipeline).
const LANES: usize = 8;
/// Version of the serialized layout.
const FORMAT: u32 = 1;

/// `c(n)`: the average path length of an unsuccessful search in a binary search tree of `n`
/// keys, which normalises path lengths. `c(n) = 2(ln(n−1) + γ) − 2(n−1)/n` for `n > 2`,
/// `c(2) = 1`, `c(0) = c(1) = 0` (scikit-learn's `_average_path_length`).
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

/// The depth limit of a tree grown on `max_samples` rows: `ceil(log2(max(max_samples, 2)))`.
pub fn max_depth_for(max_samples: usize) -> u32 {
    let m = max_samples.max(2);
    usize::BITS - (m - 1).leading_zeros()
}

/// scikit-learn's `decision_function` from `score_samples`: `score - offset`
/// (use [`OFFSET_AUTO`] for `contamination="auto"`); a row is an outlier when it is `< 0`.
pub fn decision(scores: &[f64], offset: f64) -> Vec<f64> {
    scores.iter().map(|s| s - offset).collect()
}

/// The `k` largest shares of one row's attributions as `(feature index, share)`, largest
/// first (ties by lower feature index). Features with a zero share are left out.
pub fn top_attributions(row_weights: &[f64], k: usize) -> Vec<(usize, f64)> {
    let mut v: Vec<(usize, f64)> = row_weights
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, w)| *w > 0.0)
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(k);
    v
}

/// How many rows each tree is grown on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum MaxSamples {
    /// `min(256, n)`.
    Auto,
    /// This many rows; more than `n` is clamped to `n`.
    Count(usize),
    /// `floor(fraction · n)` rows; the fraction must be in `(0, 1]`.
    Fraction(f64),
}

impl MaxSamples {
    /// The number of rows per tree for a training set of `n_rows` rows.
    pub fn resolve(&self, n_rows: usize) -> Result<usize, IForestError> {
        match *self {
            MaxSamples::Auto => Ok(n_rows.min(256)),
            MaxSamples::Count(0) => Err(IForestError::MaxSamplesCount),
            MaxSamples::Count(c) => Ok(c.min(n_rows)),
            MaxSamples::Fraction(f) => {
                if !(f > 0.0 && f <= 1.0) {
                    return Err(IForestError::MaxSamplesFraction { value: f });
                }
                // f ∈ (0, 1], so the product is finite and at most n_rows.
                let m = (f * n_rows as f64).floor() as usize;
                if m == 0 {
                    return Err(IForestError::MaxSamplesTooFew {
                        value: f,
                        rows: n_rows,
                    });
                }
                Ok(m.min(n_rows))
            }
        }
    }
}

/// Hyper-parameters of [`IsolationForest::fit`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IForestParams {
    /// Number of trees (≥ 1).
    pub n_estimators: usize,
    /// Rows per tree.
    pub max_samples: MaxSamples,
    /// Fraction in `(0, 1]` of the features each tree may split on:
    /// `max(1, floor(max_features · p))` of them, drawn without replacement per tree.
    pub max_features: f64,
    /// Master seed.
    pub seed: u64,
}

impl Default for IForestParams {
    fn default() -> Self {
        IForestParams {
            n_estimators: 200,
            max_samples: MaxSamples::Auto,
            max_features: 1.0,
            seed: 42,
        }
    }
}

impl IForestParams {
    fn validate(&self) -> Result<(), IForestError> {
        if self.n_estimators == 0 {
            return Err(IForestError::NoEstimators);
        }
        if !(self.max_features > 0.0 && self.max_features <= 1.0) {
            return Err(IForestError::MaxFeatures(self.max_features));
        }
        // Range checks that do not depend on the number of rows.
        self.max_samples.resolve(usize::MAX).map(|_| ())
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum IForestError {
    #[error("cannot fit an isolation forest on an empty matrix ({rows} rows × {cols} columns)")]
    EmptyMatrix { rows: usize, cols: usize },
    #[error(
        "value {value} at row {row}, column {col} is not a finite number; \
         the isolation forest needs finite values (impute or drop it first)"
    )]
    NonFinite { row: usize, col: usize, value: f64 },
    #[error("n_estimators must be at least 1, got 0")]
    NoEstimators,
    #[error("max_samples must be at least 1 row, got 0")]
    MaxSamplesCount,
    #[error("max_samples as a fraction must be in (0, 1], got {value}")]
    MaxSamplesFraction { value: f64 },
    #[error("max_samples = {value} of {rows} rows selects no row; use a larger fraction")]
    MaxSamplesTooFew { value: f64, rows: usize },
    #[error("max_features must be a fraction in (0, 1], got {0}")]
    MaxFeatures(f64),
    #[error(
        "feature count mismatch: the forest was fitted on {expected} features, \
         the input has {got}"
    )]
    FeatureMismatch { expected: usize, got: usize },
    #[error("{0} features is more than the isolation forest supports (2^32 - 1)")]
    TooManyFeatures(usize),
    #[error(
        "a forest of {n_estimators} trees grown on {max_samples} rows each does not fit in \
         memory; use fewer trees or a smaller max_samples"
    )]
    ForestTooLarge {
        n_estimators: usize,
        max_samples: usize,
    },
    #[error("invalid saved isolation forest: {0}")]
    InvalidModel(String),
}

/// An internal node: rows with `x[feature] <= threshold` go left.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    threshold: f64,
    feature: u32,
}

const PASS_NODE: Node = Node {
    threshold: PASS,
    feature: 0,
};

impl Node {
    #[inline(always)]
    fn is_split(&self) -> bool {
        self.threshold != PASS
    }
}

/// A fitted isolation forest. Serializes (serde) into a self-checking layout with thresholds
/// stored as exact bit patterns, so a round trip gives bit-identical scores.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "ForestRepr", try_from = "ForestRepr")]
pub struct IsolationForest {
    params: IForestParams,
    n_features: usize,
    max_samples: usize,
    depth: u32,
    /// `n_estimators × (2^depth − 1)` internal nodes, tree after tree, heap order.
    nodes: Vec<Node>,
    /// `n_estimators × 2^depth` path values `depth + c(size)` of the last level.
    leaves: Vec<f64>,
    /// `n_estimators × (2^(depth+1) − 1)` training rows reaching every heap position
    /// (internal nodes then last level); used by the attributions only.
    counts: Vec<u32>,
}

/// Finds the first non-finite value, in row-major order.
fn check_finite(x: &Matrix) -> Result<(), IForestError> {
    match x.first_non_finite() {
        None => Ok(()),
        Some((row, col, value)) => Err(IForestError::NonFinite { row, col, value }),
    }
}

/// Min and max of feature `f` over the rows `idx` (non-empty).
fn min_max(data: &[f64], cols: usize, idx: &[usize], f: usize) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for &r in idx {
        let v = data[r * cols + f];
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo, hi)
}

/// A threshold uniform in `[lo, hi)` (`lo < hi`, both finite).
fn draw_threshold(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    let u: f64 = rng.r#gen();
    let mut t = lo + u * (hi - lo);
    if !t.is_finite() {
        // hi - lo overflowed: interpolate without forming the difference.
        t = lo * (1.0 - u) + hi * u;
    }
    if !(t >= lo && t < hi) {
        // Rounding reached hi (scikit-learn does the same) or left the interval.
        t = lo;
    }
    t
}

/// Moves the rows going left (`x[f] <= t`) to the front; returns how many there are.
fn partition(data: &[f64], cols: usize, idx: &mut [usize], f: usize, t: f64) -> usize {
    let mut left = 0;
    for j in 0..idx.len() {
        if data[idx[j] * cols + f] <= t {
            idx.swap(left, j);
            left += 1;
        }
    }
    left
}

/// A node of the tree under construction.
struct Pending {
    pos: usize,
    depth: u32,
    start: usize,
    end: usize,
    /// Features not yet known to be constant in this node.
    candidates: Vec<u32>,
}

/// One tree's slots in the forest's arrays.
struct TreeSlots<'a> {
    nodes: &'a mut [Node],
    leaves: &'a mut [f64],
    counts: &'a mut [u32],
}

/// Grows one tree into its slots: `nodes` pre-filled with pass-through nodes, `leaves` and
/// `counts` with zeros.
fn grow_tree(
    x: &Matrix,
    max_samples: usize,
    n_tree_features: usize,
    depth: u32,
    seed: u64,
    out: TreeSlots<'_>,
) {
    let TreeSlots {
        nodes,
        leaves,
        counts,
    } = out;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (n, p) = (x.rows(), x.cols());
    let data = x.data();
    let candidates: Vec<u32> = if n_tree_features < p {
        let mut f: Vec<u32> = rand::seq::index::sample(&mut rng, p, n_tree_features)
            .into_iter()
            .map(|i| i as u32)
            .collect();
        f.sort_unstable();
        f
    } else {
        (0..p as u32).collect()
    };
    let mut idx: Vec<usize> = if max_samples < n {
        rand::seq::index::sample(&mut rng, n, max_samples).into_vec()
    } else {
        (0..n).collect()
    };
    let n_internal = nodes.len();
    let mut stack = vec![Pending {
        pos: 0,
        depth: 0,
        start: 0,
        end: idx.len(),
        candidates,
    }];
    while let Some(mut node) = stack.pop() {
        let size = node.end - node.start;
        counts[node.pos] = u32::try_from(size).unwrap_or(u32::MAX);
        let mut split = None;
        if node.depth < depth && size > 1 {
            let rows = &idx[node.start..node.end];
            while !node.candidates.is_empty() {
                let j = rng.gen_range(0..node.candidates.len());
                let f = node.candidates[j] as usize;
                let (lo, hi) = min_max(data, p, rows, f);
                if hi > lo {
                    split = Some((f, lo, hi));
                    break;
                }
                // Constant here, hence in every descendant too.
                node.candidates.swap_remove(j);
            }
        }
        match split {
            None => {
                let mut pos = node.pos;
                for _ in node.depth..depth {
                    pos = 2 * pos + 1;
                    counts[pos] = counts[node.pos];
                }
                leaves[pos - n_internal] = f64::from(node.depth) + average_path_length(size);
            }
            Some((f, lo, hi)) => {
                let t = draw_threshold(&mut rng, lo, hi);
                nodes[node.pos] = Node {
                    threshold: t,
                    feature: f as u32,
                };
                let mid = node.start + partition(data, p, &mut idx[node.start..node.end], f, t);
                stack.push(Pending {
                    pos: 2 * node.pos + 2,
                    depth: node.depth + 1,
                    start: mid,
                    end: node.end,
                    candidates: node.candidates.clone(),
                });
                stack.push(Pending {
                    pos: 2 * node.pos + 1,
                    depth: node.depth + 1,
                    start: node.start,
                    end: mid,
                    candidates: node.candidates,
                });
            }
        }
    }
}

impl IsolationForest {
    /// Grows the forest on the rows of `x` (finite values, at least one row and one column).
    pub fn fit(x: &Matrix, params: &IForestParams) -> Result<Self, IForestError> {
        params.validate()?;
        let (n, p) = (x.rows(), x.cols());
        if n == 0 || p == 0 {
            return Err(IForestError::EmptyMatrix { rows: n, cols: p });
        }
        if p > u32::MAX as usize {
            return Err(IForestError::TooManyFeatures(p));
        }
        check_finite(x)?;
        let max_samples = params.max_samples.resolve(n)?;
        let n_tree_features = ((params.max_features * p as f64).floor() as usize).clamp(1, p);
        let depth = max_depth_for(max_samples);
        let n_internal = (1usize << depth) - 1;
        let n_leaves = n_internal + 1;

        let too_large = || IForestError::ForestTooLarge {
            n_estimators: params.n_estimators,
            max_samples,
        };
        let alloc_err = |_| too_large();
        let n_trees = params.n_estimators;
        let mut nodes = Vec::new();
        let mut leaves = Vec::new();
        let mut counts = Vec::new();
        nodes
            .try_reserve_exact(n_trees.checked_mul(n_internal).ok_or_else(too_large)?)
            .map_err(alloc_err)?;
        leaves
            .try_reserve_exact(n_trees.checked_mul(n_leaves).ok_or_else(too_large)?)
            .map_err(alloc_err)?;
        counts
            .try_reserve_exact(n_trees.checked_mul(2 * n_leaves).ok_or_else(too_large)?)
            .map_err(alloc_err)?;
        let mut master = ChaCha8Rng::seed_from_u64(params.seed);
        let mut seeds = Vec::new();
        seeds.try_reserve_exact(n_trees).map_err(alloc_err)?;
        seeds.extend((0..n_trees).map(|_| master.next_u64()));
        nodes.resize(n_trees * n_internal, PASS_NODE);
        leaves.resize(n_trees * n_leaves, 0.0);
        counts.resize(n_trees * (n_internal + n_leaves), 0u32);
        nodes
            .par_chunks_mut(n_internal)
            .zip(leaves.par_chunks_mut(n_leaves))
            .zip(counts.par_chunks_mut(n_internal + n_leaves))
            .zip(seeds.par_iter())
            .for_each(|(((tn, tl), tc), &seed)| {
                let slots = TreeSlots {
                    nodes: tn,
                    leaves: tl,
                    counts: tc,
                };
                grow_tree(x, max_samples, n_tree_features, depth, seed, slots);
            });
        Ok(IsolationForest {
            params: params.clone(),
            n_features: p,
            max_samples,
            depth,
            nodes,
            leaves,
            counts,
        })
    }

    /// Number of features the forest was fitted on (and scores).
    pub fn n_features(&self) -> usize {
        self.n_features
    }
    /// Rows each tree was grown on, after resolving [`MaxSamples`] and clamping.
    pub fn max_samples_used(&self) -> usize {
        self.max_samples
    }
    /// Number of trees.
    pub fn n_estimators(&self) -> usize {
        self.params.n_estimators
    }
    /// Depth limit of every tree: `ceil(log2(max(max_samples_used, 2)))`.
    pub fn max_depth(&self) -> u32 {
        self.depth
    }
    /// The parameters the forest was fitted with.
    pub fn params(&self) -> &IForestParams {
        &self.params
    }

    fn n_internal(&self) -> usize {
        (1usize << self.depth) - 1
    }

    #[cfg(test)]
    fn trees(&self) -> impl Iterator<Item = (&[Node], &[f64])> {
        let ni = self.n_internal();
        self.nodes
            .chunks_exact(ni)
            .zip(self.leaves.chunks_exact(ni + 1))
    }

    fn check_input(&self, x: &Matrix) -> Result<(), IForestError> {
        if x.cols() != self.n_features {
            return Err(IForestError::FeatureMismatch {
                expected: self.n_features,
                got: x.cols(),
            });
        }
        check_finite(x)
    }

    /// The score from the sum over all trees of a row's path lengths.
    #[inline]
    fn score_from_sum(&self, sum: f64) -> f64 {
        let c = average_path_length(self.max_samples);
        if c == 0.0 {
            // One row per tree: scikit-learn scores every row as 2^-1.
            return -0.5;
        }
        let mean = sum / self.params.n_estimators as f64;
        -(-mean / c).exp2()
    }

    /// scikit-learn's `score_samples`: `-2^(-E[h(x)] / c(max_samples))` per row, in `[-1, 0]`,
    /// higher = more normal.
    pub fn score_samples(&self, x: &Matrix) -> Result<Vec<f64>, IForestError> {
        self.check_input(x)?;
        let walker = Walker::new(self)?;
        let cols = self.n_features;
        let data = x.data();
        let mut out = vec![0.0; x.rows()];
        out.par_chunks_mut(BLOCK_ROWS)
            .enumerate()
            .for_each(|(b, out)| {
                let start = b * BLOCK_ROWS * cols;
                walker.path_sums::<false>(
                    &data[start..start + out.len() * cols],
                    out,
                    &[],
                    &mut [],
                );
                for s in out.iter_mut() {
                    *s = self.score_from_sum(*s);
                }
            });
        Ok(out)
    }

    /// The weight each heap position adds to the feature of its parent's split when a row
    /// steps into it: `log2((n_parent + 1) / (n_child + 1)) / (d + 1)` with `d` the parent's
    /// depth (0 at the root position and wherever the parent is a pass-through node).
    fn cut_weights(&self) -> Vec<f64> {
        let ni = self.n_internal();
        let npos = 2 * ni + 1;
        let mut w = vec![0.0; self.counts.len()];
        for ((nodes, counts), w) in self
            .nodes
            .chunks_exact(ni)
            .zip(self.counts.chunks_exact(npos))
            .zip(w.chunks_exact_mut(npos))
        {
            for (parent, node) in nodes.iter().enumerate() {
                if !node.is_split() {
                    continue;
                }
                // Depth of the parent: heap positions 2^d − 1 … 2^(d+1) − 2.
                let d = (parent + 1).ilog2();
                let n_parent = f64::from(counts[parent]) + 1.0;
                for child in [2 * parent + 1, 2 * parent + 2] {
                    let bits = (n_parent / (f64::from(counts[child]) + 1.0)).log2();
                    w[child] = bits / f64::from(d + 1);
                }
            }
        }
        w
    }

    /// Scores (bit-identical to [`score_samples`](Self::score_samples)) and, per row, every
    /// feature's share of the isolation the row gets on its paths, cuts near the root weighted
    /// more: `attributions[row][j]`, summing to 1 per row (see the module docs).
    pub fn score_with_attributions(
        &self,
        x: &Matrix,
    ) -> Result<(Vec<f64>, Vec<Vec<f64>>), IForestError> {
        self.check_input(x)?;
        let walker = Walker::new(self)?;
        let cut = self.cut_weights();
        let cols = self.n_features;
        let data = x.data();
        let mut scores = vec![0.0; x.rows()];
        let mut attributions = vec![Vec::new(); x.rows()];
        scores
            .par_chunks_mut(BLOCK_ROWS)
            .zip(attributions.par_chunks_mut(BLOCK_ROWS))
            .enumerate()
            .for_each(|(b, (out, attr_out))| {
                let start = b * BLOCK_ROWS * cols;
                let mut attr = vec![0.0; out.len() * cols];
                walker.path_sums::<true>(
                    &data[start..start + out.len() * cols],
                    out,
                    &cut,
                    &mut attr,
                );
                for ((s, a), row_attr) in out
                    .iter_mut()
                    .zip(attr_out.iter_mut())
                    .zip(attr.chunks_exact(cols))
                {
                    *s = self.score_from_sum(*s);
                    let total: f64 = row_attr.iter().sum();
                    *a = if total > 0.0 {
                        row_attr.iter().map(|v| v / total).collect()
                    } else {
                        vec![0.0; cols]
                    };
                }
            });
        Ok((scores, attributions))
    }
}

/// The trees of a forest, checked once so that walking them needs no bounds checks: every tree
/// has `2^depth − 1` internal nodes, `2^depth` leaves and `2^(depth+1) − 1` cut weights, and
/// every node's feature is below `cols`.
struct Walker<'a> {
    nodes: &'a [Node],
    leaves: &'a [f64],
    n_internal: usize,
    depth: u32,
    cols: usize,
}

impl<'a> Walker<'a> {
    fn new(f: &'a IsolationForest) -> Result<Self, IForestError> {
        let ni = f.n_internal();
        let cols = f.n_features;
        let n_trees = f.params.n_estimators;
        // The node features are checked by `fit` and on deserialization; the walk (per call,
        // as small as one row in the service) only checks the shapes.
        let ok = cols > 0 && f.nodes.len() == n_trees * ni && f.leaves.len() == n_trees * (ni + 1);
        if !ok {
            // Unreachable for a forest made by `fit` or deserialization, which check all this.
            return Err(IForestError::InvalidModel(
                "inconsistent tree arrays".to_string(),
            ));
        }
        Ok(Walker {
            nodes: &f.nodes,
            leaves: &f.leaves,
            n_internal: ni,
            depth: f.depth,
            cols,
        })
    }

    /// Adds to `acc[i]` the path lengths of row `i` of the row-major `block` in every tree, tree
    /// after tree (so the sums do not depend on how rows are split among threads). With
    /// `ATTR`, also adds the cut weight (`cut`, see `cut_weights`) of every step to
    /// `attr[i·cols + j]`, `j` the feature of the node stepped out of.
    fn path_sums<const ATTR: bool>(
        &self,
        block: &[f64],
        acc: &mut [f64],
        cut: &[f64],
        attr: &mut [f64],
    ) {
        let (ni, cols) = (self.n_internal, self.cols);
        let npos = 2 * ni + 1;
        assert_eq!(block.len(), acc.len() * cols, "block of whole rows");
        if ATTR {
            assert_eq!(
                cut.len() * (ni + 1),
                self.leaves.len() * npos,
                "cut weights"
            );
            assert_eq!(attr.len(), block.len(), "attribution buffer");
        }
        for (t, (nodes, leaves)) in self
            .nodes
            .chunks_exact(ni)
            .zip(self.leaves.chunks_exact(ni + 1))
            .enumerate()
        {
            let cut_t: &[f64] = if ATTR {
                &cut[t * npos..(t + 1) * npos]
            } else {
                &[]
            };
            let mut groups = block.chunks_exact(cols * LANES);
            let mut sums = acc.chunks_exact_mut(LANES);
            let mut row = 0;
            for (g, s) in (&mut groups).zip(&mut sums) {
                let attr_g: &mut [f64] = if ATTR {
                    &mut attr[row * cols..(row + LANES) * cols]
                } else {
                    &mut []
                };
                let mut pos = [0usize; LANES];
                for _ in 0..self.depth {
                    for (k, p) in pos.iter_mut().enumerate() {
                        // SAFETY: before level `l < depth`, `*p <= 2^(l+1) − 2 < 2^depth − 1 =
                        // nodes.len()`, so `child < 2^(depth+1) − 1 = npos`; every
                        // `node.feature < cols` (checked in `Walker::new`) and
                        // `g.len() == attr_g.len() == LANES · cols` (with ATTR).
                        let node = unsafe { *nodes.get_unchecked(*p) };
                        let j = k * cols + node.feature as usize;
                        let v = unsafe { *g.get_unchecked(j) };
                        let child = 2 * *p + 1 + usize::from(v > node.threshold);
                        if ATTR {
                            unsafe { *attr_g.get_unchecked_mut(j) += *cut_t.get_unchecked(child) };
                        }
                        *p = child;
                    }
                }
                for (s, p) in s.iter_mut().zip(pos) {
                    *s += leaves[p - ni];
                }
                row += LANES;
            }
            for (r, s) in groups
                .remainder()
                .chunks_exact(cols)
                .zip(sums.into_remainder())
            {
                let mut p = 0usize;
                for _ in 0..self.depth {
                    let node = nodes[p];
                    let child = 2 * p + 1 + usize::from(r[node.feature as usize] > node.threshold);
                    if ATTR {
                        attr[row * cols + node.feature as usize] += cut_t[child];
                    }
                    p = child;
                }
                *s += leaves[p - ni];
                row += 1;
            }
        }
    }
}

/// The serialized form of [`IsolationForest`]; floats of the trees travel as IEEE-754 bit
/// patterns so that no JSON float parser can change them.
#[derive(Serialize, Deserialize)]
struct ForestRepr {
    format: u32,
    params: IForestParams,
    n_features: usize,
    max_samples_used: usize,
    max_depth: u32,
    /// Feature of every internal node, tree after tree, heap order.
    features: Vec<u32>,
    /// `f64::to_bits` of every internal node's threshold (`f64::MAX` = pass-through).
    threshold_bits: Vec<u64>,
    /// `f64::to_bits` of every last-level path value `depth + c(size)`.
    leaf_bits: Vec<u64>,
    /// Training rows reaching every heap position, tree after tree.
    counts: Vec<u32>,
}

impl From<IsolationForest> for ForestRepr {
    fn from(f: IsolationForest) -> Self {
        ForestRepr {
            format: FORMAT,
            n_features: f.n_features,
            max_samples_used: f.max_samples,
            max_depth: f.depth,
            features: f.nodes.iter().map(|n| n.feature).collect(),
            threshold_bits: f.nodes.iter().map(|n| n.threshold.to_bits()).collect(),
            leaf_bits: f.leaves.iter().map(|v| v.to_bits()).collect(),
            counts: f.counts,
            params: f.params,
        }
    }
}

impl TryFrom<ForestRepr> for IsolationForest {
    type Error = IForestError;

    fn try_from(r: ForestRepr) -> Result<Self, Self::Error> {
        let bad = |m: String| Err(IForestError::InvalidModel(m));
        if r.format != FORMAT {
            return bad(format!("format {} (expected {FORMAT})", r.format));
        }
        r.params.validate()?;
        if r.n_features == 0 || r.n_features > u32::MAX as usize {
            return bad(format!("n_features = {}", r.n_features));
        }
        if r.max_samples_used == 0 {
            return bad("max_samples_used = 0".into());
        }
        if r.max_depth != max_depth_for(r.max_samples_used) {
            return bad(format!(
                "max_depth {} does not match max_samples_used {}",
                r.max_depth, r.max_samples_used
            ));
        }
        let n_trees = r.params.n_estimators;
        let n_internal = 1usize
            .checked_shl(r.max_depth)
            .map(|v| v - 1)
            .filter(|v| *v < usize::MAX / 2);
        let sizes = n_internal
            .and_then(|ni| Some((n_trees.checked_mul(ni)?, n_trees.checked_mul(ni + 1)?)));
        let Some((n_nodes, n_leaves)) = sizes else {
            return bad(format!("max_depth {} is too large", r.max_depth));
        };
        if r.features.len() != n_nodes
            || r.threshold_bits.len() != n_nodes
            || r.leaf_bits.len() != n_leaves
            || r.counts.len() != n_nodes + n_leaves
        {
            return bad(format!(
                "{n_trees} trees of depth {} need {n_nodes} nodes and {n_leaves} leaves, \
                 got {} features, {} thresholds, {} leaves and {} counts",
                r.max_depth,
                r.features.len(),
                r.threshold_bits.len(),
                r.leaf_bits.len(),
                r.counts.len()
            ));
        }
        if let Some(f) = r.features.iter().find(|f| **f as usize >= r.n_features) {
            return bad(format!("a node splits on feature {f} of {}", r.n_features));
        }
        let nodes: Vec<Node> = r
            .features
            .iter()
            .zip(&r.threshold_bits)
            .map(|(&feature, &t)| Node {
                threshold: f64::from_bits(t),
                feature,
            })
            .collect();
        if nodes.iter().any(|n| n.threshold.is_nan()) {
            return bad("a threshold is NaN".into());
        }
        let leaves: Vec<f64> = r.leaf_bits.iter().map(|b| f64::from_bits(*b)).collect();
        if leaves.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return bad("a leaf path length is negative or not finite".into());
        }
        Ok(IsolationForest {
            params: r.params,
            n_features: r.n_features,
            max_samples: r.max_samples_used,
            depth: r.max_depth,
            nodes,
            leaves,
            counts: r.counts,
        })
    }
}

#[cfg(test)]
mod tests;
