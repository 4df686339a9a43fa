//! Per-account features over time, as polars expressions over the records of each key sorted by
//! date. History rows give the current rows their context (change since the last historical
//! record, rolling statistics across the boundary, the account's own normal range); only the
//! current rows come out.
//!
//! Presets:
//! - `seed` — the feature set of the original reconciliation documents: the criteria values and
//!   differences, days since the previous record, change of each criteria column and of the
//!   difference, rolling mean and rolling sample standard deviation (window 3, min 1 observation,
//!   NaN → 0) of each criteria column, weekday (Monday = 0) and month, and label encodings of the
//!   categorical columns fitted on the training rows (unseen values → −1).
//! - `breaks` — seed plus what makes breaks stand out: relative difference, signed log of each
//!   difference, out-of-tolerance flags, robust z-score of the difference against the account's own
//!   history (median / 1.4826·MAD, floored at the tolerance), sign agreement of the two sides,
//!   log10 ratio of the two sides' magnitudes, and the break's age in days.

use crate::ingest::prepare::{Prepared, crit_col};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

mod compute;
mod series;

pub use compute::compute;
use series::*;

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("feature computation failed: {0}")]
    Polars(#[from] PolarsError),
    #[error("{0}")]
    Mismatch(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preset {
    Seed,
    Breaks,
    Account,
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "seed" => Ok(Preset::Seed),
            "breaks" => Ok(Preset::Breaks),
            "account" => Ok(Preset::Account),
            _ => Err(format!(
                "unknown feature preset {s:?}: use \"seed\", \"breaks\" or \"account\""
            )),
        }
    }
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Seed, Preset::Breaks, Preset::Account];

    pub fn as_str(&self) -> &'static str {
        match self {
            Preset::Seed => "seed",
            Preset::Breaks => "breaks",
            Preset::Account => "account",
        }
    }

    /// Whether the preset adds the break features (`breaks` and `account`).
    pub fn has_break_features(&self) -> bool {
        matches!(self, Preset::Breaks | Preset::Account)
    }
}

/// How the features are computed (`[features]`, parsed).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureOptions {
    pub preset: Preset,
    /// Records in the rolling window of the account features, and the fewest it needs.
    pub window: usize,
    pub min_periods: usize,
    /// The thresholds of each account's own normal (the patterns come from the profile).
    pub routine: crate::routine::Params,
}

impl Default for FeatureOptions {
    /// As `config/default.toml` sets `[features]`.
    fn default() -> Self {
        FeatureOptions {
            preset: Preset::Account,
            window: 3,
            min_periods: 1,
            routine: crate::routine::Params::default(),
        }
    }
}

/// The columns of each account's own normal, in the sorted frame and the output
/// (see [`crate::routine`]): the predicted and unexplained parts of the first criteria's
/// difference, the routine reason's code, the own z and the earlier records looked at.
pub const OWN_EXPECTED: &str = "bd_expected";
pub const OWN_RESIDUAL: &str = "bd_residual";
pub const OWN_ROUTINE_CODE: &str = "bd_routine_code";
pub const OWN_Z: &str = "bd_own_z";
/// The routine reason as text (empty when the row is not a routine break), in the output.
pub const OWN_ROUTINE: &str = "bd_routine";
/// 1 when any criteria is out of tolerance (the row is a break), in the output.
pub const IS_BREAK: &str = "bd_out_of_tolerance";

/// Label encoding of one categorical column, fitted on training rows: the sorted distinct
/// values map to 0, 1, 2, …; a value not seen in training maps to −1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelEncoder {
    pub name: String,
    pub classes: Vec<String>,
}

impl LabelEncoder {
    pub fn fit<'a>(name: &str, values: impl Iterator<Item = &'a str>) -> LabelEncoder {
        let mut classes: Vec<String> = values
            .collect::<PlHashSet<_>>()
            .into_iter()
            .map(str::to_string)
            .collect();
        classes.sort();
        LabelEncoder {
            name: name.to_string(),
            classes,
        }
    }

    pub fn encode(&self, v: &str) -> f64 {
        self.classes
            .binary_search_by(|c| c.as_str().cmp(v))
            .map(|i| i as f64)
            .unwrap_or(-1.0)
    }
}

/// The current rows with their features.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    /// Original columns, canonical `bd_*` columns and `f_*` features, in the current file's row order.
    pub df: DataFrame,
    /// The feature columns, in a stable order.
    pub names: Vec<String>,
    pub encoders: Vec<LabelEncoder>,
    pub preset: Preset,
    /// Rows of history used as context.
    pub history_rows: usize,
    /// The history rows' features (file order), when a history was given: the training rows.
    pub history: Option<HistoryFeatures>,
}

/// Features of the history rows, for training.
#[derive(Debug, Clone)]
pub struct HistoryFeatures {
    /// The feature columns (`FeatureSet::names`) plus `bd_difference` when the profile has one.
    pub df: DataFrame,
}

const SEQ: &str = "bd_seq";
const IS_HIST: &str = "bd_is_history";
const GROUP: &str = "bd_group";

/// Numeric canonical columns of a prepared table that features are computed from (text columns
/// stay out of the sorted frame: accounts become integer ids, categories their codes).
fn canonical(p: &Prepared) -> Vec<String> {
    p.df.columns()
        .iter()
        .filter(|c| c.name().starts_with("bd_") && !matches!(c.dtype(), DataType::String))
        .map(|c| c.name().to_string())
        .collect()
}

/// One numeric column as f64 (NaN for nulls).
pub fn column_f64(df: &DataFrame, name: &str) -> Result<Vec<f64>, FeatureError> {
    let c = df.column(name)?.cast(&DataType::Float64)?;
    let ca = c.f64()?;
    if ca.null_count() == 0 {
        // Without nulls: each chunk's values copied as they are.
        let mut out = Vec::with_capacity(ca.len());
        for arr in ca.downcast_iter() {
            out.extend_from_slice(arr.values());
        }
        return Ok(out);
    }
    Ok(ca.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

/// [`column_f64`] of each of `names`, on every core.
pub fn columns_f64(df: &DataFrame, names: &[&str]) -> Result<Vec<Vec<f64>>, FeatureError> {
    use rayon::prelude::*;
    names.par_iter().map(|n| column_f64(df, n)).collect()
}

/// Integer account ids for `bd_key`, shared across the tables given (same key → same id).
fn group_ids<'a>(
    map: &mut PlHashMap<&'a str, u32>,
    p: &'a Prepared,
) -> Result<Vec<u32>, FeatureError> {
    let Ok(keys) = p.df.column("bd_key") else {
        return Ok(vec![0; p.df.height()]);
    };
    let keys = keys.str()?;
    Ok(keys
        .iter()
        .map(|k| {
            let next = map.len() as u32;
            *map.entry(k.unwrap_or("")).or_insert(next)
        })
        .collect())
}

/// Codes of one categorical column under an encoder.
fn encode_column(p: &Prepared, enc: &LabelEncoder) -> Result<Vec<f64>, FeatureError> {
    let src = format!("bd_cat_{}", enc.name);
    let ca = p.df.column(src.as_str())?.str()?;
    let mut cache: PlHashMap<&str, f64> = PlHashMap::new();
    Ok(ca
        .iter()
        .map(|v| {
            let v = v.unwrap_or("");
            *cache.entry(v).or_insert_with(|| enc.encode(v))
        })
        .collect())
}

/// Re-encodes the current rows' categorical features with given encoders (a saved model's), so
/// that a category means the same number as when the model was trained.
pub fn apply_encoders(fs: &mut FeatureSet, encoders: &[LabelEncoder]) -> Result<(), FeatureError> {
    for enc in encoders {
        let src = format!("bd_cat_{}", enc.name);
        let name = format!("f_enc_{}", enc.name);
        // Only the encodings that are features (the account preset leaves the status out).
        if !fs.names.contains(&name) {
            continue;
        }
        let Ok(ca) = fs.df.column(src.as_str()).and_then(|c| c.str().cloned()) else {
            continue;
        };
        let mut cache: PlHashMap<&str, f64> = PlHashMap::new();
        let codes: Vec<f64> = ca
            .iter()
            .map(|v| {
                let v = v.unwrap_or("");
                *cache.entry(v).or_insert_with(|| enc.encode(v))
            })
            .collect();
        fs.df
            .with_column(Column::new(name.as_str().into(), codes))?;
    }
    fs.encoders = encoders.to_vec();
    Ok(())
}

/// The feature columns of a table as a row-major matrix (one copy), in `names` order, filled in
/// parallel blocks of rows straight from the columns' buffers.
pub fn matrix(df: &DataFrame, names: &[String]) -> Result<crate::linalg::Matrix, FeatureError> {
    matrix_mapped(df, names, None)
}

/// [`matrix`] scaled as it is built: each value `v` of column `j` becomes
/// `(v - center[j]) / scale[j]`, the same operations (and bits) as a robust scaler's transform
/// of the matrix, without writing the matrix first.
pub fn matrix_scaled(
    df: &DataFrame,
    names: &[String],
    center: &[f64],
    scale: &[f64],
) -> Result<crate::linalg::Matrix, FeatureError> {
    if center.len() != names.len() || scale.len() != names.len() {
        return Err(FeatureError::Mismatch(format!(
            "the scaler has {} columns, the features {}",
            center.len(),
            names.len()
        )));
    }
    matrix_mapped(df, names, Some((center, scale)))
}

fn matrix_mapped(
    df: &DataFrame,
    names: &[String],
    scaling: Option<(&[f64], &[f64])>,
) -> Result<crate::linalg::Matrix, FeatureError> {
    let cols = FeatureColumns::of(df, names)?;
    matrix_of_columns(&cols.slices()?, df.height(), scaling)
}

/// The feature columns `names` of a table as f64, each in one piece (nulls as NaN): what the
/// matrix is gathered from, also read as they are ([`FeatureColumns::slices`]).
pub struct FeatureColumns {
    cols: Vec<Float64Chunked>,
    /// A copy of each column with nulls (none after feature computation, but be safe).
    owned: Vec<Option<Vec<f64>>>,
}

impl FeatureColumns {
    pub fn of(df: &DataFrame, names: &[String]) -> Result<FeatureColumns, FeatureError> {
        let cols: Vec<Float64Chunked> = names
            .iter()
            .map(|n| -> Result<Float64Chunked, FeatureError> {
                let c = df.column(n.as_str())?.cast(&DataType::Float64)?;
                Ok(c.f64()?.rechunk().into_owned())
            })
            .collect::<Result<_, _>>()?;
        let owned = cols
            .iter()
            .map(|c| {
                (c.null_count() > 0).then(|| c.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
            })
            .collect();
        Ok(FeatureColumns { cols, owned })
    }

    /// Each column's values.
    pub fn slices(&self) -> Result<Vec<&[f64]>, FeatureError> {
        self.cols
            .iter()
            .zip(&self.owned)
            .map(|(c, o)| match o {
                Some(v) => Ok(v.as_slice()),
                None => c.cont_slice().map_err(FeatureError::Polars),
            })
            .collect()
    }
}

/// The row-major matrix of `rows` rows of the columns `refs`, each value `v` of column `j`
/// scaled to `(v - center[j]) / scale[j]` with `scaling`.
pub fn matrix_of_columns(
    refs: &[&[f64]],
    rows: usize,
    scaling: Option<(&[f64], &[f64])>,
) -> Result<crate::linalg::Matrix, FeatureError> {
    use rayon::prelude::*;
    if let Some(c) = refs.iter().find(|c| c.len() != rows) {
        return Err(FeatureError::Mismatch(format!(
            "a feature column has {} values for {rows} rows",
            c.len()
        )));
    }
    if let Some((center, scale)) = scaling
        && (center.len() != refs.len() || scale.len() != refs.len())
    {
        return Err(FeatureError::Mismatch(format!(
            "the scaler has {} columns, the features {}",
            center.len(),
            refs.len()
        )));
    }
    let width = refs.len();
    let mut data = vec![0.0; rows * width];
    if width > 0 {
        const BLOCK: usize = 8192;
        data.par_chunks_mut(BLOCK * width)
            .enumerate()
            .for_each(|(b, chunk)| {
                let start = b * BLOCK;
                for (j, col) in refs.iter().enumerate() {
                    let rows = chunk.chunks_mut(width).enumerate();
                    match scaling {
                        None => rows.for_each(|(r, row)| row[j] = col[start + r]),
                        Some((center, scale)) => {
                            let (c, s) = (center[j], scale[j]);
                            rows.for_each(|(r, row)| row[j] = (col[start + r] - c) / s)
                        }
                    }
                }
            });
    }
    crate::linalg::Matrix::new(rows, width, data).map_err(FeatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ingest::prepare::{PrepareOptions, prepare};
    use crate::ingest::{ROW_COL, RawTable};
    use crate::profile::Profile;

    const H: [&str; 8] = [
        "As of Date",
        "Company",
        "Account",
        "AU",
        "Match Status",
        "GL Balance",
        "IHub Balance",
        "Balance Difference",
    ];

    fn table(rows: &[[&str; 8]], source: &str) -> Prepared {
        let mut cols = vec![Column::new(
            ROW_COL.into(),
            (0..rows.len()).map(|i| i as u32 + 2).collect::<Vec<u32>>(),
        )];
        for (j, h) in H.iter().enumerate() {
            let v: Vec<&str> = rows.iter().map(|r| r[j]).collect();
            cols.push(Column::new((*h).into(), v));
        }
        let raw = RawTable::new(
            DataFrame::new_infer_height(cols).unwrap(),
            H.iter().map(|s| s.to_string()).collect(),
            source.into(),
        );
        let res = Profile::builtin("gl_ihub")
            .unwrap()
            .resolve(&raw.header, source, &[])
            .unwrap();
        let opts = PrepareOptions::default();
        prepare(&raw, &res, &opts).unwrap()
    }

    fn opts(preset: Preset) -> FeatureOptions {
        FeatureOptions {
            preset,
            window: 3,
            min_periods: 1,
            routine: crate::routine::Params::default(),
        }
    }

    fn col_f64(fs: &FeatureSet, name: &str) -> Vec<f64> {
        fs.df
            .column(name)
            .unwrap_or_else(|_| panic!("no column {name}; have {:?}", fs.names))
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect()
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
        }
    }

    // Account A on Mon 2024-04-29, Tue 04-30, Thu 05-02; account B interleaved, in file order
    // that is not sorted, to check grouping, sorting and the return to file order.
    fn sample() -> Prepared {
        table(
            &[
                ["2024-04-30", "001", "1", "9", "Break", "110", "100", "10"],
                ["2024-04-29", "002", "1", "9", "Match", "50", "50", "0"],
                ["2024-04-29", "001", "1", "9", "Match", "100", "100", "0"],
                ["2024-05-02", "001", "1", "9", "Match", "105", "105", "0"],
                ["2024-05-06", "002", "1", "9", "Match", "-50", "50", "-100"],
            ],
            "cur.csv",
        )
    }

    #[test]
    fn seed_features_match_hand_computed_values() {
        let fs = compute(&sample(), None, &opts(Preset::Seed)).unwrap();
        // File order: A(04-30), B(04-29), A(04-29), A(05-02), B(05-06).
        close(
            &col_f64(&fs, "f_days_since_last"),
            &[1.0, 0.0, 0.0, 2.0, 7.0],
        );
        close(
            &col_f64(&fs, "f_balance_lhs"),
            &[110.0, 50.0, 100.0, 105.0, -50.0],
        );
        close(
            &col_f64(&fs, "f_balance_diff"),
            &[10.0, 0.0, 0.0, 0.0, -100.0],
        );
        close(
            &col_f64(&fs, "f_change_balance_lhs"),
            &[10.0, 0.0, 0.0, -5.0, -100.0],
        );
        close(
            &col_f64(&fs, "f_change_balance_rhs"),
            &[0.0, 0.0, 0.0, 5.0, 0.0],
        );
        close(
            &col_f64(&fs, "f_change_balance_diff"),
            &[10.0, 0.0, 0.0, -10.0, -100.0],
        );
        // Rolling mean over (100), (100,110), (100,110,105); B: (50), (50,-50).
        close(
            &col_f64(&fs, "f_roll_mean_balance_lhs"),
            &[105.0, 50.0, 100.0, 105.0, 0.0],
        );
        // Sample std: one value → 0; (100,110) → 7.0710678; (100,110,105) → 5; (50,-50) → 70.710678.
        close(
            &col_f64(&fs, "f_roll_std_balance_lhs"),
            &[50f64.sqrt(), 0.0, 0.0, 5.0, 5000f64.sqrt()],
        );
        // Monday = 0.
        close(&col_f64(&fs, "f_weekday"), &[1.0, 0.0, 0.0, 3.0, 0.0]);
        close(&col_f64(&fs, "f_month"), &[4.0, 4.0, 4.0, 5.0, 5.0]);
        // Label encodings fitted on the file itself: companies 001 → 0, 002 → 1.
        close(&col_f64(&fs, "f_enc_company"), &[0.0, 1.0, 0.0, 0.0, 1.0]);
        close(
            &col_f64(&fs, "f_enc_match_status"),
            &[0.0, 1.0, 1.0, 1.0, 1.0],
        );
        // Original columns come through, in file order.
        let companies: Vec<&str> = fs
            .df
            .column("Company")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap())
            .collect();
        assert_eq!(companies, vec!["001", "002", "001", "001", "002"]);
        assert!(fs.names.iter().all(|n| n.starts_with("f_")));
        assert_eq!(fs.preset, Preset::Seed);
    }

    #[test]
    fn history_gives_context_and_fits_encoders() {
        let hist = table(
            &[
                ["2024-04-25", "001", "1", "9", "Match", "90", "90", "0"],
                ["2024-04-26", "001", "1", "9", "Match", "95", "95", "0"],
                // The same record as in the current file: the current one wins.
                ["2024-04-29", "001", "1", "9", "Match", "1", "1", "0"],
            ],
            "hist.csv",
        );
        let cur = table(
            &[
                ["2024-04-29", "001", "1", "9", "Match", "100", "100", "0"],
                ["2024-04-30", "003", "1", "9", "Break", "7", "0", "7"],
            ],
            "cur.csv",
        );
        let fs = compute(&cur, Some(&hist), &opts(Preset::Seed)).unwrap();
        assert_eq!(fs.df.height(), 2, "only current rows come out");
        assert_eq!(
            fs.history_rows, 2,
            "the duplicate history record is dropped"
        );
        // Change since the last historical record (95 on Friday 04-26), 3 days earlier.
        close(&col_f64(&fs, "f_change_balance_lhs"), &[5.0, 0.0]);
        close(&col_f64(&fs, "f_days_since_last"), &[3.0, 0.0]);
        // Rolling window crosses the boundary: (90, 95, 100).
        close(&col_f64(&fs, "f_roll_mean_balance_lhs"), &[95.0, 7.0]);
        // Encoders are fitted on history only: company 003 and status Break are unseen → −1.
        close(&col_f64(&fs, "f_enc_company"), &[0.0, -1.0]);
        close(&col_f64(&fs, "f_enc_match_status"), &[0.0, -1.0]);
        assert_eq!(fs.encoders[0].classes, vec!["001"]);
    }

    #[test]
    fn breaks_preset_features() {
        let p = table(
            &[
                ["2024-04-29", "001", "1", "9", "Match", "100", "100", "0"],
                ["2024-04-30", "001", "1", "9", "Match", "100", "100", "0"],
                ["2024-05-01", "001", "1", "9", "Break", "100", "-100", "200"],
                ["2024-05-03", "001", "1", "9", "Break", "1000", "100", "900"],
                ["2024-05-06", "001", "1", "9", "Match", "100", "100", "0"],
            ],
            "cur.csv",
        );
        let fs = compute(&p, None, &opts(Preset::Breaks)).unwrap();
        close(
            &col_f64(&fs, "f_rel_difference"),
            &[0.0, 0.0, 2.0, 0.9, 0.0],
        );
        close(
            &col_f64(&fs, "f_sign_agreement"),
            &[1.0, 1.0, -1.0, 1.0, 1.0],
        );
        close(
            &col_f64(&fs, "f_magnitude_ratio"),
            &[0.0, 0.0, 0.0, 1.0, 0.0],
        );
        close(
            &col_f64(&fs, "f_out_of_tol_balance"),
            &[0.0, 0.0, 1.0, 1.0, 0.0],
        );
        // The break starts 05-01 and is still open on 05-03: age 0 then 2 days.
        close(&col_f64(&fs, "f_break_age"), &[0.0, 0.0, 0.0, 2.0, 0.0]);
        // Median difference 0, MAD 0 → the scale floors at 0.01 (tolerance 0.01).
        close(
            &col_f64(&fs, "f_robust_z"),
            &[0.0, 0.0, 10000.0, 10000.0, 0.0],
        );
        let log = col_f64(&fs, "f_log_abs_balance_diff");
        assert!((log[2] - 201f64.log10()).abs() < 1e-9, "{log:?}");
        assert!(
            fs.names.contains(&"f_days_since_last".to_string()),
            "seed included"
        );
        assert!(
            fs.names.iter().all(|n| fs.df.column(n.as_str()).is_ok()),
            "every feature is output"
        );
    }

    #[test]
    fn rows_are_ordered_by_account_date_and_number() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for (n, accounts, dense) in [
            (0, 1, true),
            (1, 1, true),
            (500, 7, true),
            (3000, 40, false),
        ] {
            let groups: Vec<u32> = (0..n)
                .map(|_| {
                    let g = rng.gen_range(0..accounts);
                    if dense { g } else { g * 1_000_003 }
                })
                .collect();
            // Dates out of order within accounts, repeated, some missing.
            let dates: Vec<Option<i32>> = (0..n)
                .map(|_| (rng.gen_range(0..10) > 0).then(|| rng.gen_range(-3..20)))
                .collect();
            // Unique row numbers in no particular order (a history stacked after the file).
            let mut seqs: Vec<u64> = (0..n as u64).collect();
            seqs.rotate_left(n / 3);
            let mut expected: Vec<IdxSize> = (0..n as IdxSize).collect();
            expected.sort_by_key(|i| {
                let i = *i as usize;
                (groups[i], dates[i], seqs[i])
            });
            assert_eq!(
                compute::sort_order(&groups, Some(&dates), &seqs),
                expected,
                "{n} rows of {accounts} accounts"
            );
            let mut expected: Vec<IdxSize> = (0..n as IdxSize).collect();
            expected.sort_by_key(|i| (groups[*i as usize], seqs[*i as usize]));
            assert_eq!(compute::sort_order(&groups, None, &seqs), expected);
        }
    }

    #[test]
    fn label_encoder_sorted_with_unseen_fallback() {
        let e = LabelEncoder::fit("x", ["b", "a", "c", "a"].into_iter());
        assert_eq!(e.classes, vec!["a", "b", "c"]);
        assert_eq!(e.encode("c"), 2.0);
        assert_eq!(e.encode("zzz"), -1.0);
    }
}
