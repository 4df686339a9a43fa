//! A trained model's identity and its fitness for a file.
//!
//! - **Identity:** a digest of the training rows (their number and content, see
//!   [`data_digest`]), combined with the schema fingerprint and the seed into the model id. Two
//!   models trained on different data never share a version.
//! - **Population:** what the training rows looked like, kept in the bundle: for the main features
//!   (the criteria's sides and sizes, the numeric columns) their deciles and the share of training
//!   rows in each bin; and a bottom-k sketch of the training accounts (the `k` smallest 64-bit
//!   FNV-1a hashes of their keys), which estimates the share of a file's accounts never seen.
//! - **Fitness** of a saved model for a file: enough training rows (`min_training_rows`), a
//!   population stability index (PSI) of every main feature at most `max_psi`, and at most
//!   `max_unseen_accounts` of the file's accounts unseen. Each failure is a sentence naming the
//!   number and the setting.

use super::matrix::Matrix;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Training accounts kept in the sketch.
pub const SKETCH_K: usize = 2048;
/// Bins of a main feature (deciles).
const BINS: usize = 10;
/// Floor of a bin's share in the PSI (an empty bin would make it infinite).
const PSI_FLOOR: f64 = 1e-4;

/// A digest (hex) of the training rows: their shape and every value, in row-major order. Each
/// block of rows gets a 128-bit fingerprint (two multiply–rotate lanes over the values' bits,
/// ~20 times faster than SHA-256 over a million rows), and SHA-256 combines the blocks'.
pub fn data_digest(x: &Matrix, extra: Option<&Matrix>) -> String {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 15;
    let block = |m: &Matrix, start: usize| -> [u8; 16] {
        let (mut a, mut b): (u64, u64) = (0x9e37_79b9_7f4a_7c15, 0xc2b2_ae3d_27d4_eb4f);
        for r in start..(start + CHUNK).min(m.rows()) {
            for v in m.row(r) {
                let w = v.to_bits();
                a = (a ^ w).wrapping_mul(0xff51_afd7_ed55_8ccd).rotate_left(31);
                b = (b.wrapping_add(w)).wrapping_mul(0xc4ce_b9fe_1a85_ec53) ^ (b >> 29);
            }
        }
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&a.to_le_bytes());
        out[8..].copy_from_slice(&b.to_le_bytes());
        out
    };
    let mut h = Sha256::new();
    for m in std::iter::once(x).chain(extra) {
        h.update(format!("{}x{}\n", m.rows(), m.cols()).as_bytes());
        let starts: Vec<usize> = (0..m.rows()).step_by(CHUNK).collect();
        let blocks: Vec<[u8; 16]> = starts.par_iter().map(|s| block(m, *s)).collect();
        for d in blocks {
            h.update(d);
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The model id: the schema fingerprint, the training data's digest and the seed.
pub fn model_id(fingerprint: &str, data_digest: &str, seed: u64) -> String {
    let mut h = Sha256::new();
    h.update(format!("{fingerprint}\n{data_digest}\n{seed}\n").as_bytes());
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 64-bit FNV-1a: stable across builds and platforms (the sketch is saved).
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One main feature's training distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureBins {
    pub name: String,
    /// Interior cut points (ascending, distinct): bin i holds values ≤ edges[i], the last bin
    /// the rest.
    pub edges: Vec<f64>,
    /// Share of the training rows in each bin (edges.len() + 1 of them).
    pub shares: Vec<f64>,
}

/// The training accounts' bottom-k sketch.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccountSketch {
    /// Distinct training accounts.
    pub accounts: usize,
    /// The smallest hashes (ascending), at most [`SKETCH_K`].
    pub hashes: Vec<u64>,
}

/// What the training rows looked like.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Population {
    pub features: Vec<FeatureBins>,
    pub accounts: AccountSketch,
}

/// The main features among `names`: the criteria's sides and sizes and the numeric columns.
pub fn main_features(names: &[String]) -> Vec<usize> {
    (0..names.len())
        .filter(|i| {
            let n = names[*i].as_str();
            !n.starts_with("f_change_")
                && !n.starts_with("f_roll_")
                && (n.starts_with("f_log_abs_")
                    || n.starts_with("f_num_")
                    || n.ends_with("_lhs")
                    || n.ends_with("_rhs"))
        })
        .collect()
}

fn bin_of(edges: &[f64], v: f64) -> usize {
    edges.partition_point(|e| *e < v)
}

fn shares(edges: &[f64], values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut counts = vec![0usize; edges.len() + 1];
    let mut n = 0usize;
    for v in values.filter(|v| v.is_finite()) {
        counts[bin_of(edges, v)] += 1;
        n += 1;
    }
    counts
        .into_iter()
        .map(|c| if n > 0 { c as f64 / n as f64 } else { 0.0 })
        .collect()
}

fn column(x: &Matrix, j: usize) -> impl Iterator<Item = f64> + '_ {
    (0..x.rows()).map(move |r| x.row(r)[j])
}

/// The population of training rows `x` (features `names`) of the accounts `keys`.
pub fn population(x: &Matrix, names: &[String], keys: &[&str]) -> Population {
    use rayon::prelude::*;
    let features = main_features(names)
        .into_par_iter()
        .map(|j| {
            // The deciles from at most ~65,000 evenly spaced rows; the shares from every row.
            let step = x.rows().div_ceil(1 << 16).max(1);
            let mut v: Vec<f64> = (0..x.rows())
                .step_by(step)
                .map(|r| x.row(r)[j])
                .filter(|v| v.is_finite())
                .collect();
            v.sort_by(f64::total_cmp);
            let mut edges: Vec<f64> = Vec::new();
            if !v.is_empty() {
                for b in 1..BINS {
                    let e = v[(b * (v.len() - 1)) / BINS];
                    if edges.last().is_none_or(|l| e > *l) {
                        edges.push(e);
                    }
                }
            }
            let shares = shares(&edges, column(x, j));
            FeatureBins {
                name: names[j].clone(),
                edges,
                shares,
            }
        })
        .collect();
    let mut hashes: Vec<u64> = keys.par_iter().map(|k| fnv1a(k)).collect();
    hashes.par_sort_unstable();
    hashes.dedup();
    let accounts = hashes.len();
    hashes.truncate(SKETCH_K);
    Population {
        features,
        accounts: AccountSketch { accounts, hashes },
    }
}

/// Population stability index of `now` against `base` (shares of the same bins).
pub fn psi(base: &[f64], now: &[f64]) -> f64 {
    base.iter()
        .zip(now)
        .map(|(b, n)| {
            let (b, n) = (b.max(PSI_FLOOR), n.max(PSI_FLOOR));
            (n - b) * (n / b).ln()
        })
        .sum()
}

/// The thresholds of a saved model's fitness.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitnessParams {
    pub min_training_rows: usize,
    pub max_psi: f64,
    pub max_unseen_accounts: f64,
}

/// Why a saved model does not fit the rows `x` (features `names`) of the accounts `keys`: one
/// sentence per problem, empty when it fits.
pub fn check(
    training_rows: usize,
    population: Option<&Population>,
    x: &Matrix,
    names: &[String],
    keys: &[&str],
    p: &FitnessParams,
) -> Vec<String> {
    let mut problems = Vec::new();
    if training_rows < p.min_training_rows {
        problems.push(format!(
            "trained on {training_rows} rows, fewer than [detect] min_training_rows ({})",
            p.min_training_rows
        ));
    }
    let Some(pop) = population else {
        return problems;
    };
    // The feature whose distribution moved most.
    let mut worst: Option<(f64, &str)> = None;
    for f in &pop.features {
        let Some(j) = names.iter().position(|n| *n == f.name) else {
            continue;
        };
        let now = shares(&f.edges, column(x, j));
        let v = psi(&f.shares, &now);
        if worst.is_none_or(|(w, _)| v > w) {
            worst = Some((v, &f.name));
        }
    }
    if let Some((v, name)) = worst
        && v > p.max_psi
    {
        problems.push(format!(
            "the file's population differs from the training rows (population stability index {v:.2} on {name}, above [detect] max_psi {})",
            p.max_psi
        ));
    }
    // Unseen accounts, estimated on the file's accounts whose hash falls within the sketch.
    let sketch = &pop.accounts;
    if !sketch.hashes.is_empty() && !keys.is_empty() {
        let full = sketch.accounts <= sketch.hashes.len();
        let limit = sketch.hashes.last().copied().unwrap_or(u64::MAX);
        let mut mine: Vec<u64> = keys.iter().map(|k| fnv1a(k)).collect();
        mine.sort_unstable();
        mine.dedup();
        let considered: Vec<u64> = mine.into_iter().filter(|h| full || *h <= limit).collect();
        if !considered.is_empty() {
            let unseen = considered
                .iter()
                .filter(|h| sketch.hashes.binary_search(h).is_err())
                .count();
            let share = unseen as f64 / considered.len() as f64;
            if share > p.max_unseen_accounts {
                problems.push(format!(
                    "{:.0} % of the file's accounts were never seen in training (above [detect] max_unseen_accounts {:.0} %)",
                    100.0 * share,
                    100.0 * p.max_unseen_accounts
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(cols: &[Vec<f64>]) -> Matrix {
        let rows = cols[0].len();
        let mut data = Vec::new();
        for r in 0..rows {
            for c in cols {
                data.push(c[r]);
            }
        }
        Matrix::new(rows, cols.len(), data).unwrap()
    }

    fn params() -> FitnessParams {
        FitnessParams {
            min_training_rows: 100,
            max_psi: 0.25,
            max_unseen_accounts: 0.5,
        }
    }

    #[test]
    fn the_digest_follows_every_value_and_the_shape() {
        let a = matrix(&[vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]);
        let b = matrix(&[vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.5]]);
        assert_eq!(data_digest(&a, None), data_digest(&a.clone(), None));
        assert_ne!(data_digest(&a, None), data_digest(&b, None));
        assert_ne!(data_digest(&a, None), data_digest(&a, Some(&b)));
        let id = model_id("fp", &data_digest(&a, None), 42);
        assert_eq!(id.len(), 24);
        assert_ne!(id, model_id("fp", &data_digest(&b, None), 42));
        assert_ne!(id, model_id("fp", &data_digest(&a, None), 43));
    }

    #[test]
    fn a_model_fits_its_own_population_and_not_another() {
        let names: Vec<String> = vec!["f_balance_lhs".into(), "f_weekday".into()];
        assert_eq!(main_features(&names), vec![0]);
        let n = 2000;
        let train = matrix(&[
            (0..n).map(|i| (i % 100) as f64 * 10.0).collect(),
            (0..n).map(|i| (i % 5) as f64).collect(),
        ]);
        let keys: Vec<String> = (0..n).map(|i| format!("A{}", i % 300)).collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let pop = population(&train, &names, &key_refs);
        assert_eq!(pop.accounts.accounts, 300);
        // The same population: fit.
        assert!(check(n, Some(&pop), &train, &names, &key_refs, &params()).is_empty());
        // Too few training rows.
        let p = check(18, Some(&pop), &train, &names, &key_refs, &params());
        assert!(p[0].contains("trained on 18 rows"), "{p:?}");
        // Balances a hundred times larger, other accounts: two problems.
        let other = matrix(&[
            (0..n).map(|i| (i % 100) as f64 * 1000.0).collect(),
            (0..n).map(|i| (i % 5) as f64).collect(),
        ]);
        let keys2: Vec<String> = (0..n).map(|i| format!("B{}", i % 300)).collect();
        let refs2: Vec<&str> = keys2.iter().map(String::as_str).collect();
        let p = check(n, Some(&pop), &other, &names, &refs2, &params());
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("population stability index"), "{p:?}");
        assert!(p[0].contains("f_balance_lhs"), "{p:?}");
        assert!(p[1].contains("100 % of the file's accounts"), "{p:?}");
    }

    #[test]
    fn the_sketch_estimates_unseen_accounts_beyond_k() {
        let names: Vec<String> = vec!["f_x".into()];
        let n = 20_000;
        let train = matrix(&[(0..n).map(|i| i as f64).collect()]);
        let keys: Vec<String> = (0..n).map(|i| format!("K{i}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let pop = population(&train, &names, &refs);
        assert_eq!(pop.accounts.hashes.len(), SKETCH_K);
        // Half of a file's accounts are new: estimated near 50 %.
        let mixed: Vec<String> = (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    format!("K{i}")
                } else {
                    format!("N{i}")
                }
            })
            .collect();
        let refs: Vec<&str> = mixed.iter().map(String::as_str).collect();
        let p = FitnessParams {
            max_unseen_accounts: 0.4,
            ..params()
        };
        let problems = check(n, Some(&pop), &train, &names, &refs, &p);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let share: f64 = problems[0].split(" %").next().unwrap().parse().unwrap();
        assert!((40.0..60.0).contains(&share), "{share}");
    }

    #[test]
    fn psi_is_zero_for_equal_shares_and_grows_with_the_shift() {
        assert_eq!(psi(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
        assert!(psi(&[0.5, 0.5], &[0.6, 0.4]) < 0.1);
        assert!(psi(&[0.5, 0.5], &[0.99, 0.01]) > 1.0);
    }
}
