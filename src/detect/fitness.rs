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
//! - **Chance.** A file of a few rows drawn from the very training population differs from it by
//!   chance: 20 rows give a PSI near 1 on their own, and one unseen account among two is 50 %.
//!   So a file is said to differ only beyond what its size explains: its PSI must exceed
//!   `max_psi` by the 99.9 % point of the PSI of a sample of its size from the training rows
//!   (n·PSI is about χ² with bins − 1 degrees of freedom, the sampling of the training shares
//!   added), its shares are smoothed (half a row per bin, so an empty bin of a small file is not
//!   read as a share of zero), and the lower 99.9 % bound of its unseen share (Wilson) must
//!   exceed `max_unseen_accounts`. A file without rows has no population to compare.

use super::matrix::{Matrix, Unscaled};
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
pub fn data_digest(x: Unscaled<'_>, extra: Option<&Matrix>) -> String {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 15;
    let block = |m: Unscaled<'_>, start: usize| -> [u8; 16] {
        let (mut a, mut b): (u64, u64) = (0x9e37_79b9_7f4a_7c15, 0xc2b2_ae3d_27d4_eb4f);
        m.for_each_in_rows(start, (start + CHUNK).min(m.rows()), |v| {
            let w = v.to_bits();
            a = (a ^ w).wrapping_mul(0xff51_afd7_ed55_8ccd).rotate_left(31);
            b = (b.wrapping_add(w)).wrapping_mul(0xc4ce_b9fe_1a85_ec53) ^ (b >> 29);
        });
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&a.to_le_bytes());
        out[8..].copy_from_slice(&b.to_le_bytes());
        out
    };
    let mut h = Sha256::new();
    for m in std::iter::once(x).chain(extra.map(Unscaled::Rows)) {
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
    let (counts, n) = counts(edges, values);
    counts
        .into_iter()
        .map(|c| if n > 0 { c as f64 / n as f64 } else { 0.0 })
        .collect()
}

/// The number of finite `values` in each bin of `edges`, and their total.
fn counts(edges: &[f64], values: impl Iterator<Item = f64>) -> (Vec<usize>, usize) {
    let mut counts = vec![0usize; edges.len() + 1];
    let mut n = 0usize;
    for v in values.filter(|v| v.is_finite()) {
        counts[bin_of(edges, v)] += 1;
        n += 1;
    }
    (counts, n)
}

/// The 99.9 % points of χ² with 1 to 9 degrees of freedom (a feature has at most ten bins).
const CHI2_999: [f64; 9] = [
    10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877,
];

/// The standard normal's one-sided 99.9 % point.
const Z_999: f64 = 3.090;

/// What the PSI of `n` rows over `bins` bins may reach by chance (99.9 %) against the shares
/// of `training_rows` rows of the same population.
pub fn psi_allowance(bins: usize, n: usize, training_rows: usize) -> f64 {
    if bins < 2 || n == 0 {
        return 0.0;
    }
    let q = CHI2_999[(bins - 2).min(CHI2_999.len() - 1)];
    q * (1.0 / n as f64 + 1.0 / training_rows.max(1) as f64)
}

/// The shares of `counts` (of `n` rows) smoothed by half a row per bin.
fn smoothed(counts: &[usize], n: usize) -> Vec<f64> {
    let total = n as f64 + 0.5 * counts.len() as f64;
    counts.iter().map(|c| (*c as f64 + 0.5) / total).collect()
}

/// The lower 99.9 % (Wilson) bound of a share of `hits` among `n`.
pub fn share_lower_bound(hits: usize, n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    let p = hits as f64 / n;
    let z2 = Z_999 * Z_999;
    let centre = p + z2 / (2.0 * n);
    let spread = Z_999 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).max(0.0)
}

fn column(x: &Matrix, j: usize) -> impl Iterator<Item = f64> + '_ {
    (0..x.rows()).map(move |r| x.row(r)[j])
}

/// The population of training rows `x` (features `names`) of the accounts `keys`.
pub fn population(x: Unscaled<'_>, names: &[String], keys: &[&str]) -> Population {
    use rayon::prelude::*;
    let features = main_features(names)
        .into_par_iter()
        .map(|j| {
            // The deciles from at most ~65,000 evenly spaced rows; the shares from every row.
            let step = x.rows().div_ceil(1 << 16).max(1);
            let mut v: Vec<f64> = (0..x.rows())
                .step_by(step)
                .map(|r| x.get(r, j))
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
            let shares = match x {
                Unscaled::Rows(m) => shares(&edges, column(m, j)),
                Unscaled::Columns { columns, .. } => shares(&edges, columns[j].iter().copied()),
            };
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
    // A file without rows has no population to compare.
    if x.rows() == 0 {
        return problems;
    }
    // The feature whose distribution moved most beyond what the file's size explains.
    let mut worst: Option<(f64, f64, usize, &str)> = None;
    for f in &pop.features {
        let Some(j) = names.iter().position(|n| *n == f.name) else {
            continue;
        };
        let (counts, n) = counts(&f.edges, column(x, j));
        if n == 0 {
            continue;
        }
        let v = psi(&f.shares, &smoothed(&counts, n));
        let allowance = psi_allowance(counts.len(), n, training_rows);
        if worst.is_none_or(|(w, a, _, _)| v - allowance > w - a) {
            worst = Some((v, allowance, n, &f.name));
        }
    }
    if let Some((v, allowance, n, name)) = worst
        && v > p.max_psi + allowance
    {
        let chance = if allowance >= 0.005 {
            format!(", plus {allowance:.2} for chance at {n} rows against {training_rows}")
        } else {
            String::new()
        };
        problems.push(format!(
            "the file's population differs from the training rows (population stability index {v:.2} on {name}, above [detect] max_psi {}{chance})",
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
            // A few accounts say little: the share must be above the setting beyond chance.
            if share_lower_bound(unseen, considered.len()) > p.max_unseen_accounts {
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
        assert_eq!(
            data_digest((&a).into(), None),
            data_digest((&a.clone()).into(), None)
        );
        assert_ne!(
            data_digest((&a).into(), None),
            data_digest((&b).into(), None)
        );
        assert_ne!(
            data_digest((&a).into(), None),
            data_digest((&a).into(), Some(&b))
        );
        let id = model_id("fp", &data_digest((&a).into(), None), 42);
        assert_eq!(id.len(), 24);
        assert_ne!(id, model_id("fp", &data_digest((&b).into(), None), 42));
        assert_ne!(id, model_id("fp", &data_digest((&a).into(), None), 43));
    }

    #[test]
    fn the_columns_give_the_digest_and_population_of_their_matrix() {
        // More rows than one digest block, values of every kind.
        let n = 70_000;
        let cols: Vec<Vec<f64>> = vec![
            (0..n).map(|i| (i % 977) as f64 * 1.25 - 300.0).collect(),
            (0..n).map(|i| (i % 7) as f64).collect(),
            (0..n)
                .map(|i| match i % 11 {
                    0 => f64::NAN,
                    1 => -0.0,
                    _ => (i as f64).sqrt(),
                })
                .collect(),
        ];
        let m = matrix(&cols);
        let refs: Vec<&[f64]> = cols.iter().map(Vec::as_slice).collect();
        let by_columns = Unscaled::Columns {
            rows: n,
            columns: &refs,
        };
        let extra = matrix(&[vec![1.0, 2.0], vec![3.0, 4.0], vec![5.0, 6.0]]);
        for extra in [None, Some(&extra)] {
            assert_eq!(
                data_digest(by_columns, extra),
                data_digest((&m).into(), extra)
            );
        }
        let names: Vec<String> = vec!["f_balance_lhs".into(), "f_x".into(), "f_y".into()];
        let keys: Vec<String> = (0..n).map(|i| format!("k{}", i % 300)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (a, b) = (
            population(by_columns, &names, &keys),
            population((&m).into(), &names, &keys),
        );
        assert_eq!(a, b);
        assert!(!a.features.is_empty());
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
        let pop = population((&train).into(), &names, &key_refs);
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
        let pop = population((&train).into(), &names, &refs);
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

    /// A deterministic stream of numbers in [0, 1) (xorshift).
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn a_small_sample_of_the_training_population_fits_and_a_shift_does_not() {
        // Training: 20,000 rows of 2,000 accounts, balances spread over five orders of
        // magnitude, and a difference that is zero for most rows (tied deciles).
        let names: Vec<String> = vec!["f_balance_lhs".into(), "f_log_abs_balance_diff".into()];
        assert_eq!(main_features(&names).len(), 2);
        let n = 20_000;
        let mut u = uniform(7);
        let mut balance = Vec::with_capacity(n);
        let mut diff = Vec::with_capacity(n);
        for _ in 0..n {
            balance.push(10f64.powf(2.0 + 5.0 * u()));
            diff.push(if u() < 0.8 { 0.0 } else { 100.0 * u() });
        }
        let train = matrix(&[balance.clone(), diff.clone()]);
        let keys: Vec<String> = (0..n).map(|i| format!("A{}", i % 2000)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let pop = population((&train).into(), &names, &refs);
        let sample = |rows: &[usize], scale: f64| -> (Matrix, Vec<&str>) {
            let m = matrix(&[
                rows.iter().map(|r| balance[*r] * scale).collect(),
                rows.iter().map(|r| diff[*r]).collect(),
            ]);
            (m, rows.iter().map(|r| refs[*r]).collect())
        };
        // Samples of the training rows themselves, from none to a thousand rows: a false alarm
        // at most once in a hundred draws (each check is at 99.9 % per feature).
        let mut draw = uniform(11);
        for size in [0usize, 1, 3, 10, 20, 50, 200, 1000] {
            let mut alarms = Vec::new();
            for _ in 0..100 {
                let rows: Vec<usize> = (0..size)
                    .map(|_| ((draw() * n as f64) as usize).min(n - 1))
                    .collect();
                let (m, k) = sample(&rows, 1.0);
                let p = check(n, Some(&pop), &m, &names, &k, &params());
                if !p.is_empty() {
                    alarms.push(p);
                }
            }
            assert!(alarms.len() <= 1, "{size} rows: {alarms:?}");
        }
        // The same accounts with balances a thousand times larger: another population, said
        // so from 20 rows on; three times larger, from 1,000 rows.
        for (size, scale) in [(20usize, 1000.0), (200, 1000.0), (1000, 3.0)] {
            let rows: Vec<usize> = (0..size).map(|i| i * 7 % n).collect();
            let (m, k) = sample(&rows, scale);
            let p = check(n, Some(&pop), &m, &names, &k, &params());
            assert!(
                p.len() == 1
                    && p[0].contains("population stability index")
                    && p[0].contains("f_balance_lhs"),
                "{size} rows ×{scale}: {p:?}"
            );
        }
        // Accounts never seen: ten new ones are enough to say so, two are not.
        for (size, said) in [(2usize, false), (10, true), (200, true)] {
            let fresh: Vec<String> = (0..size).map(|i| format!("N{i}")).collect();
            let k: Vec<&str> = fresh.iter().map(String::as_str).collect();
            let rows: Vec<usize> = (0..size).map(|i| i * 13 % n).collect();
            let (m, _) = sample(&rows, 1.0);
            let p = check(n, Some(&pop), &m, &names, &k, &params());
            assert_eq!(
                p.iter().any(|s| s.contains("never seen in training")),
                said,
                "{size} new accounts: {p:?}"
            );
        }
    }

    #[test]
    fn the_allowances_shrink_with_the_sample() {
        assert_eq!(psi_allowance(10, 0, 1000), 0.0);
        assert_eq!(psi_allowance(1, 50, 1000), 0.0);
        let small = psi_allowance(10, 20, 100_000);
        let large = psi_allowance(10, 100_000, 100_000);
        assert!(small > 1.0 && large < 0.001, "{small} {large}");
        assert!(psi_allowance(3, 100, 1000) < psi_allowance(10, 100, 1000));
        assert_eq!(share_lower_bound(0, 0), 0.0);
        assert_eq!(share_lower_bound(0, 50), 0.0);
        assert!(share_lower_bound(1, 1) < 0.2);
        let many = share_lower_bound(9_000, 10_000);
        assert!((0.88..0.9).contains(&many), "{many}");
    }

    #[test]
    fn psi_is_zero_for_equal_shares_and_grows_with_the_shift() {
        assert_eq!(psi(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
        assert!(psi(&[0.5, 0.5], &[0.6, 0.4]) < 0.1);
        assert!(psi(&[0.5, 0.5], &[0.99, 0.01]) > 1.0);
    }
}
