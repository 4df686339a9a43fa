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
use std::collections::HashMap;

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

#[derive(Debug, Clone)]
pub struct FeatureOptions {
    pub preset: Preset,
    pub window: usize,
    pub min_periods: usize,
    /// The thresholds of each account's own normal (the patterns come from the profile).
    pub routine: crate::routine::Params,
}

impl FeatureOptions {
    pub fn from_config(c: &crate::config::FeatureConfig) -> Result<FeatureOptions, String> {
        Ok(FeatureOptions {
            preset: c.preset.parse()?,
            window: c.rolling_window,
            min_periods: c.rolling_min_periods,
            routine: routine_params(c),
        })
    }
}

/// The own-normal thresholds of a `[features]` table.
pub fn routine_params(c: &crate::config::FeatureConfig) -> crate::routine::Params {
    crate::routine::Params {
        patterns: crate::routine::Patterns::default(),
        window: c.routine_window,
        standing_records: c.standing_records,
        recurring_share: c.recurring_share,
        recurring_exact: c.recurring_exact,
        lag_records: c.lag_records,
        lag_share: c.lag_share,
        min_history: c.own_min_history,
        level_floor: c.own_level_floor,
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
            .collect::<std::collections::HashSet<_>>()
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
    Ok(df
        .column(name)?
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// Integer account ids for `bd_key`, shared across the tables given (same key → same id).
fn group_ids<'a>(
    map: &mut HashMap<&'a str, u32>,
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
    let mut cache: HashMap<&str, f64> = HashMap::new();
    Ok(ca
        .iter()
        .map(|v| {
            let v = v.unwrap_or("");
            *cache.entry(v).or_insert_with(|| enc.encode(v))
        })
        .collect())
}

/// Computes the features of `current`, with `history` (if any) as context. Without history the
/// current file is its own history: encoders and robust statistics are fitted on it.
pub fn compute(
    current: &Prepared,
    history: Option<&Prepared>,
    opts: &FeatureOptions,
) -> Result<FeatureSet, FeatureError> {
    let r = &current.resolved;
    let has_date = r.date.is_some();
    let has_keys = !r.keys.is_empty();
    // Each account's own normal needs a difference and something to order the account's
    // records by; the account preset reads the primary difference's unexplained part instead
    // of the difference itself.
    let own = !r.criteria.is_empty() && (has_keys || has_date);
    let plan = Plan {
        r,
        opts,
        has_date,
        has_keys,
        acc: own && opts.preset == Preset::Account,
    };

    // Label encoders, fitted on the training rows: the history, or the file itself.
    let encoders = fit_encoders(r, history.unwrap_or(current))?;
    let (frame, history_rows, ids) = canonical_frame(current, history, &encoders, has_date)?;
    let mut sorted0 = sort_frame(frame, has_date)?;
    if own {
        let mut params = opts.routine;
        params.patterns = r.profile.routine;
        add_own_columns(&mut sorted0, r, has_date, &params)?;
    }

    let mut out = Columns::default();
    let mut exprs = Vec::new();
    series_exprs(&plan, &mut exprs, &mut out);
    if opts.preset.has_break_features() {
        break_exprs(&plan, &mut exprs, &mut out);
    }
    let mut sorted = sorted0.lazy().with_columns(exprs).collect()?;
    add_row_features(&plan, &mut sorted, &mut out)?;

    // The status column says "break" for routine breaks too: the account preset leaves it out.
    let status_slug = r.status.as_ref().and_then(|h| {
        r.categoricals
            .iter()
            .find(|c| &c.header == h)
            .map(|c| c.slug.clone())
    });
    for enc in &encoders {
        if plan.acc && status_slug.as_deref() == Some(enc.name.as_str()) {
            continue;
        }
        out.names.push(format!("f_enc_{}", enc.name));
    }
    if own {
        out.extra_out.extend(
            [
                OWN_EXPECTED,
                OWN_RESIDUAL,
                OWN_ROUTINE_CODE,
                OWN_Z,
                IS_BREAK,
            ]
            .iter()
            .map(|s| s.to_string()),
        );
    }
    add_run_context(&plan, &mut sorted, &mut out)?;
    if out.names.is_empty() {
        return Err(FeatureError::Mismatch(format!(
            "profile {} gives {} nothing to score: it has no criteria, numeric, date or categorical columns there",
            r.profile.name, current.source
        )));
    }
    let history_features = match history {
        Some(_) => Some(history_features(&sorted, &out, &ids, history)?),
        None => None,
    };
    let mut df = current_features(current, sorted, &out, history)?;
    if own {
        add_routine_text(&mut df)?;
    }
    Ok(FeatureSet {
        df,
        names: out.names,
        encoders,
        preset: opts.preset,
        history_rows,
        history: history_features,
    })
}

/// What shapes a file's features: its profile's resolved columns and the options.
struct Plan<'a> {
    r: &'a crate::profile::Resolved,
    opts: &'a FeatureOptions,
    has_date: bool,
    has_keys: bool,
    /// The account preset: the first criteria's unexplained part stands for its difference.
    acc: bool,
}

impl Plan<'_> {
    /// The first criteria: the one the break features, ages and own normal read.
    fn primary(&self) -> Option<&crate::profile::ResolvedCriteria> {
        self.r.criteria.first()
    }

    /// A criteria's difference column and feature stem: for the first criteria under the
    /// account preset, its unexplained part.
    fn diff_of(&self, i: usize, c: &crate::profile::ResolvedCriteria) -> (String, String) {
        if self.acc && i == 0 {
            (OWN_RESIDUAL.to_string(), format!("{}_residual", c.name))
        } else {
            (crit_col(&c.name, "diff"), format!("{}_diff", c.name))
        }
    }
}

/// The columns a feature computation hands on: the features (in a stable order), the run
/// context for the rules, and the other output columns (read by the rules and severity).
#[derive(Default)]
struct Columns {
    names: Vec<String>,
    context: Vec<&'static str>,
    extra_out: Vec<String>,
}

/// A number column with nulls and NaN as 0.
fn fnum(e: Expr) -> Expr {
    e.cast(DataType::Float64)
        .fill_null(lit(0.0))
        .fill_nan(lit(0.0))
}

/// One label encoder per categorical role, fitted on `fit_on`.
fn fit_encoders(
    r: &crate::profile::Resolved,
    fit_on: &Prepared,
) -> Result<Vec<LabelEncoder>, FeatureError> {
    let mut encoders = Vec::new();
    for role in &r.categoricals {
        let src = format!("bd_cat_{}", role.slug);
        let ca = fit_on.df.column(src.as_str())?.str()?;
        encoders.push(LabelEncoder::fit(
            &role.slug,
            ca.iter().map(|v| v.unwrap_or("")),
        ));
    }
    Ok(encoders)
}

/// The canonical frame: history rows (when given) then current rows, numbered in file order,
/// with integer account ids and category codes; with the number of history rows kept and the
/// account ids.
fn canonical_frame<'a>(
    current: &'a Prepared,
    history: Option<&'a Prepared>,
    encoders: &[LabelEncoder],
    has_date: bool,
) -> Result<(DataFrame, usize, HashMap<&'a str, u32>), FeatureError> {
    let cols = canonical(current);
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let take = |p: &'_ Prepared,
                gid: Vec<u32>,
                is_hist: bool,
                offset: usize|
     -> Result<DataFrame, FeatureError> {
        let mut df = p.df.select(cols.iter().map(|c| c.as_str()))?;
        let n = df.height();
        df.with_column(Column::new(
            SEQ.into(),
            (offset as u64..(offset + n) as u64).collect::<Vec<u64>>(),
        ))?;
        df.with_column(Column::new(IS_HIST.into(), vec![is_hist; n]))?;
        df.with_column(Column::new(GROUP.into(), gid))?;
        for enc in encoders {
            df.with_column(Column::new(
                format!("f_enc_{}", enc.name).into(),
                encode_column(p, enc)?,
            ))?;
        }
        Ok(df)
    };
    let (mut frame, history_rows) = match history {
        Some(h) => {
            let missing: Vec<&String> = cols
                .iter()
                .filter(|c| h.df.column(c.as_str()).is_err())
                .collect();
            if !missing.is_empty() {
                return Err(FeatureError::Mismatch(format!(
                    "the history file {} lacks columns the current file {} has (canonical: {}); both must fit the same profile",
                    h.source,
                    current.source,
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let hg = group_ids(&mut ids, h)?;
            let cg = group_ids(&mut ids, current)?;
            let mut hist = take(h, hg, true, 0)?;
            let n = hist.height();
            let mut cur = take(current, cg, false, n)?;
            // The same record in both files: the current one wins.
            if has_date {
                let cur_ids: std::collections::HashSet<(u32, i32)> =
                    group_date_pairs(&cur)?.collect();
                let keep: Vec<bool> = group_date_pairs(&hist)?
                    .map(|kd| !cur_ids.contains(&kd))
                    .collect();
                if keep.iter().any(|k| !k) {
                    hist = hist.filter(&BooleanChunked::from_iter_values(
                        "k".into(),
                        keep.into_iter(),
                    ))?;
                }
            }
            let hn = hist.height();
            cur.vstack_mut(&hist)?;
            (cur, hn)
        }
        None => {
            let cg = group_ids(&mut ids, current)?;
            // The file is its own history.
            (take(current, cg, true, 0)?, 0)
        }
    };
    frame.rechunk_mut();
    Ok((frame, history_rows, ids))
}

/// Sorted by account, then date, then file order (history before current on the same date).
fn sort_frame(frame: DataFrame, has_date: bool) -> Result<DataFrame, FeatureError> {
    let mut by: Vec<&str> = vec![GROUP];
    if has_date {
        by.push("bd_date");
    }
    by.push(SEQ);
    Ok(frame
        .lazy()
        .sort(by, SortMultipleOptions::default().with_multithreaded(true))
        .collect()?)
}

/// The seed preset's features: days since the last record, the criteria values and differences,
/// their changes and rolling statistics, calendar parts and numeric columns.
fn series_exprs(plan: &Plan<'_>, exprs: &mut Vec<Expr>, out: &mut Columns) {
    let r = plan.r;
    let mut push = |e: Expr, name: String| {
        exprs.push(e.alias(name.as_str()));
        out.names.push(name);
    };
    if plan.has_date {
        let d = col("bd_date").cast(DataType::Int32);
        push(fnum(within_group_diff(d)), "f_days_since_last".into());
    }
    // Criteria columns: both sides of a pair, or the difference of a difference-only criteria.
    let mut series_cols: Vec<(String, String)> = Vec::new(); // (canonical column, feature stem)
    for c in &r.criteria {
        if c.is_pair() {
            for side in ["lhs", "rhs"] {
                series_cols.push((crit_col(&c.name, side), format!("{}_{side}", c.name)));
            }
        }
    }
    let diff_cols: Vec<(String, String)> = r
        .criteria
        .iter()
        .enumerate()
        .map(|(i, c)| plan.diff_of(i, c))
        .collect();
    for (i, c) in r.criteria.iter().enumerate() {
        if !c.is_pair() {
            series_cols.push(plan.diff_of(i, c));
        }
    }
    // Raw values.
    for (src, stem) in series_cols.iter().chain(
        diff_cols
            .iter()
            .filter(|(s, _)| !series_cols.iter().any(|(x, _)| x == s)),
    ) {
        push(fnum(col(src.as_str())), format!("f_{stem}"));
    }
    // Changes (of each criteria column and of each difference).
    let mut change_src: Vec<(String, String)> = series_cols.clone();
    for d in &diff_cols {
        if !change_src.iter().any(|(s, _)| s == &d.0) {
            change_src.push(d.clone());
        }
    }
    if plan.has_keys || plan.has_date {
        for (src, stem) in &change_src {
            push(
                fnum(within_group_diff(col(src.as_str()))),
                format!("f_change_{stem}"),
            );
        }
        for (src, stem) in &series_cols {
            let (mean, std) =
                rolling_mean_std(col(src.as_str()), plan.opts.window, plan.opts.min_periods);
            push(fnum(mean), format!("f_roll_mean_{stem}"));
            push(fnum(std), format!("f_roll_std_{stem}"));
        }
    }
    if plan.has_date {
        push(
            fnum(col("bd_date").dt().weekday().cast(DataType::Int32) - lit(1)),
            "f_weekday".into(),
        );
        push(fnum(col("bd_date").dt().month()), "f_month".into());
    }
    for role in &r.numeric {
        let src = format!("bd_num_{}", role.slug);
        push(fnum(col(src.as_str())), format!("f_num_{}", role.slug));
    }
    if plan.acc
        && let Some(c) = plan.primary()
    {
        // The difference's own change, as the seed and breaks presets have it (an output
        // column, not a feature).
        let name = format!("f_change_{}_diff", c.name);
        exprs.push(
            fnum(within_group_diff(col(crit_col(&c.name, "diff").as_str()))).alias(name.as_str()),
        );
        out.extra_out.push(name);
    }
}

/// The breaks and account presets' features: relative difference, sign agreement and
/// magnitude ratio of the sides, signed log of each difference and its out-of-tolerance flag.
fn break_exprs(plan: &Plan<'_>, exprs: &mut Vec<Expr>, out: &mut Columns) {
    let acc = plan.acc;
    let mut push = |e: Expr, name: String| {
        exprs.push(e.alias(name.as_str()));
        out.names.push(name);
    };
    if let Some(c) = plan.primary() {
        let d = if acc {
            col(OWN_RESIDUAL)
        } else {
            col("bd_difference")
        };
        let tol = col(crit_col(&c.name, "tol").as_str());
        let scale = if c.is_pair() {
            emax(
                col(crit_col(&c.name, "lhs").as_str()).abs(),
                col(crit_col(&c.name, "rhs").as_str()).abs(),
            )
        } else {
            tol.clone()
        };
        let rel = if acc {
            "f_rel_residual"
        } else {
            "f_rel_difference"
        };
        push(fnum(d.clone() / emax(scale, lit(1.0))), rel.into());
        if c.is_pair() {
            let l = col(crit_col(&c.name, "lhs").as_str());
            let rr = col(crit_col(&c.name, "rhs").as_str());
            push(
                when((l.clone() * rr.clone()).lt(lit(0.0)))
                    .then(lit(-1.0))
                    .otherwise(lit(1.0)),
                "f_sign_agreement".into(),
            );
            let tiny = lit(0.005);
            push(
                fnum(
                    when(
                        l.clone()
                            .abs()
                            .gt(tiny.clone())
                            .and(rr.clone().abs().gt(tiny)),
                    )
                    .then((l.abs() / rr.abs()).log(lit(10.0)))
                    .otherwise(lit(0.0)),
                ),
                "f_magnitude_ratio".into(),
            );
        }
    }
    for (i, c) in plan.r.criteria.iter().enumerate() {
        let (src, stem) = plan.diff_of(i, c);
        let d = col(src.as_str());
        let tol = col(crit_col(&c.name, "tol").as_str());
        push(
            fnum(
                when(d.clone().lt(lit(0.0)))
                    .then(lit(-1.0))
                    .otherwise(lit(1.0))
                    * d.clone().abs().log1p()
                    / lit(std::f64::consts::LN_10),
            ),
            format!("f_log_abs_{stem}"),
        );
        let oot = if acc && i == 0 {
            format!("f_out_of_tol_{}_residual", c.name)
        } else {
            format!("f_out_of_tol_{}", c.name)
        };
        push(
            when(d.abs().gt(tol + lit(1e-9)))
                .then(lit(1.0))
                .otherwise(lit(0.0)),
            oot,
        );
    }
}

/// The features computed row by row over the sorted frame: the robust z of the difference
/// against the account's history, the break's age (and the unexplained run's), the own z.
fn add_row_features(
    plan: &Plan<'_>,
    sorted: &mut DataFrame,
    out: &mut Columns,
) -> Result<(), FeatureError> {
    let (acc, has_date) = (plan.acc, plan.has_date);
    let breaks = plan.opts.preset.has_break_features();
    // Robust z-score of the difference (its unexplained part under the account preset) against
    // the account's own history.
    if breaks && let Some(c) = plan.primary() {
        let (src, name) = if acc {
            (OWN_RESIDUAL, "f_robust_z_residual")
        } else {
            ("bd_difference", "f_robust_z")
        };
        let z = robust_z(sorted, src, &crit_col(&c.name, "tol"))?;
        sorted.with_column(Column::new(name.into(), z))?;
        out.names.push(name.into());
    }
    // Break age: days since the current run of out-of-tolerance records began (0 when within
    // tolerance), or days since the trade date when the profile has one. Under the account
    // preset it is an output column, and the feature is the age of the unexplained run.
    if let Some(c) = plan.primary() {
        let age = if sorted.column("bd_trade_date").is_ok() && has_date {
            let d = column_f64(sorted, "bd_date")?;
            let t = column_f64(sorted, "bd_trade_date")?;
            d.iter()
                .zip(&t)
                .map(|(d, t)| if t.is_finite() { (d - t).max(0.0) } else { 0.0 })
                .collect::<Vec<f64>>()
        } else {
            let within: Vec<bool> = sorted
                .column("bd_within_tolerance")?
                .bool()?
                .iter()
                .map(|v| v.unwrap_or(true))
                .collect();
            run_age(sorted, &within, has_date)?
        };
        sorted.with_column(Column::new("f_break_age".into(), age))?;
        if !breaks {
            // Not a feature of the seed preset, but the age of each break is reported.
            out.extra_out.push("f_break_age".into());
        } else if acc {
            out.extra_out.push("f_break_age".into());
            let tol = column_f64(sorted, &crit_col(&c.name, "tol"))?;
            let res = column_f64(sorted, OWN_RESIDUAL)?;
            let within: Vec<bool> = res
                .iter()
                .zip(&tol)
                .map(|(d, t)| {
                    let t = if t.is_finite() { *t } else { 0.0 };
                    !(d.is_finite() && d.abs() > t + 1e-9)
                })
                .collect();
            let age = run_age(sorted, &within, has_date)?;
            sorted.with_column(Column::new("f_unexplained_age".into(), age))?;
            out.names.push("f_unexplained_age".into());
        } else {
            out.names.push("f_break_age".into());
        }
    }
    if acc {
        // How unusual the unexplained part is for the account itself.
        let z: Vec<f64> = column_f64(sorted, OWN_Z)?
            .iter()
            .map(|z| if z.is_finite() { z.ln_1p() } else { 0.0 })
            .collect();
        sorted.with_column(Column::new("f_own_z".into(), z))?;
        out.names.push("f_own_z".into());
    }
    Ok(())
}

/// Run context for the root-cause rules (not a feature: it looks at the records that follow).
fn add_run_context(
    plan: &Plan<'_>,
    sorted: &mut DataFrame,
    out: &mut Columns,
) -> Result<(), FeatureError> {
    let r = plan.r;
    if r.criteria.is_empty() || !(plan.has_keys || plan.has_date) {
        return Ok(());
    }
    let groups: Vec<u32> = sorted.column(GROUP)?.u32()?.into_no_null_iter().collect();
    let days = if plan.has_date {
        column_f64(sorted, "bd_date")?
    } else {
        (0..sorted.height()).map(|i| i as f64).collect()
    };
    type Sides = Option<(Vec<f64>, Vec<f64>)>;
    let mut values: Vec<(Vec<f64>, Vec<f64>, Sides)> = Vec::new();
    for c in &r.criteria {
        let sides = if c.is_pair() {
            Some((
                column_f64(sorted, &crit_col(&c.name, "lhs"))?,
                column_f64(sorted, &crit_col(&c.name, "rhs"))?,
            ))
        } else {
            None
        };
        values.push((
            column_f64(sorted, &crit_col(&c.name, "diff"))?,
            column_f64(sorted, &crit_col(&c.name, "tol"))?,
            sides,
        ));
    }
    let crit: Vec<crate::runs::CriteriaValues<'_>> = values
        .iter()
        .map(|(d, t, s)| crate::runs::CriteriaValues {
            diff: d,
            tol: t,
            sides: s.as_ref().map(|(l, r)| (l.as_slice(), r.as_slice())),
        })
        .collect();
    let cols = crate::runs::run_context(&groups, &days, plan.has_date, &crit);
    for (name, v) in crate::runs::RUN_COLUMNS.iter().zip(cols) {
        sorted.with_column(Column::new((*name).into(), v))?;
        out.context.push(name);
    }
    Ok(())
}

/// The history rows' features, in file order (the training rows when a history was given),
/// with the difference for the contamination estimators and the date and key to match the
/// analysts' labels.
fn history_features(
    sorted: &DataFrame,
    out: &Columns,
    ids: &HashMap<&str, u32>,
    history: Option<&Prepared>,
) -> Result<HistoryFeatures, FeatureError> {
    let mut cols: Vec<Expr> = out.names.iter().map(|n| col(n.as_str())).collect();
    for c in [
        "bd_difference",
        "bd_date",
        OWN_ROUTINE_CODE,
        IS_BREAK,
        OWN_Z,
        OWN_RESIDUAL,
    ] {
        if sorted.column(c).is_ok() {
            cols.push(col(c));
        }
    }
    cols.push(col(GROUP));
    let mut df = sorted
        .clone()
        .lazy()
        .filter(col(SEQ).lt(lit(history_rows_offset(history) as u64)))
        .sort([SEQ], SortMultipleOptions::default())
        .select(cols)
        .collect()?;
    let mut key_of = vec![""; ids.len()];
    for (k, g) in ids {
        if let Some(slot) = key_of.get_mut(*g as usize) {
            *slot = k;
        }
    }
    let keys: StringChunked = df
        .column(GROUP)?
        .u32()?
        .iter()
        .map(|g| g.and_then(|g| key_of.get(g as usize).copied()))
        .collect();
    df.with_column(keys.into_column().with_name("bd_key".into()))?;
    let _ = df.drop_in_place(GROUP)?;
    Ok(HistoryFeatures { df })
}

/// The current rows back in file order, joined to the full current table.
fn current_features(
    current: &Prepared,
    sorted: DataFrame,
    out: &Columns,
    history: Option<&Prepared>,
) -> Result<DataFrame, FeatureError> {
    let feats = sorted
        .lazy()
        .filter(col(SEQ).gt_eq(lit(history_rows_offset(history) as u64)))
        .sort([SEQ], SortMultipleOptions::default())
        .select(
            out.names
                .iter()
                .map(|n| col(n.as_str()))
                .chain(out.context.iter().map(|n| col(*n)))
                .chain(out.extra_out.iter().map(|n| col(n.as_str())))
                .collect::<Vec<_>>(),
        )
        .collect()?;
    if feats.height() != current.df.height() {
        return Err(FeatureError::Mismatch(format!(
            "internal: {} feature rows for {} current rows",
            feats.height(),
            current.df.height()
        )));
    }
    let mut df = current.df.clone();
    for c in feats.into_columns() {
        df.with_column(c)?;
    }
    Ok(df)
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
        let mut cache: HashMap<&str, f64> = HashMap::new();
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
pub fn matrix(
    df: &DataFrame,
    names: &[String],
) -> Result<crate::detect::matrix::Matrix, FeatureError> {
    use rayon::prelude::*;
    let cols: Vec<Float64Chunked> = names
        .iter()
        .map(|n| -> Result<Float64Chunked, FeatureError> {
            let c = df.column(n.as_str())?.cast(&DataType::Float64)?;
            Ok(c.f64()?.rechunk().into_owned())
        })
        .collect::<Result<_, _>>()?;
    // Columns with nulls (none after feature computation, but be safe) are copied with NaN.
    let owned: Vec<Option<Vec<f64>>> = cols
        .iter()
        .map(|c| (c.null_count() > 0).then(|| c.iter().map(|v| v.unwrap_or(f64::NAN)).collect()))
        .collect();
    let refs: Vec<&[f64]> = cols
        .iter()
        .zip(&owned)
        .map(|(c, o)| match o {
            Some(v) => Ok(v.as_slice()),
            None => c.cont_slice().map_err(FeatureError::Polars),
        })
        .collect::<Result<_, _>>()?;
    let rows = df.height();
    let width = refs.len();
    let mut data = vec![0.0; rows * width];
    if width > 0 {
        const BLOCK: usize = 8192;
        data.par_chunks_mut(BLOCK * width)
            .enumerate()
            .for_each(|(b, chunk)| {
                let start = b * BLOCK;
                for (j, col) in refs.iter().enumerate() {
                    for (r, row) in chunk.chunks_mut(width).enumerate() {
                        row[j] = col[start + r];
                    }
                }
            });
    }
    crate::detect::matrix::Matrix::new(rows, width, data).map_err(FeatureError::Mismatch)
}

/// Rows are sorted by account: true where the row `k` places earlier is of the same account.
fn same_group(k: i64) -> Expr {
    col(GROUP)
        .eq(col(GROUP).shift(lit(k)))
        .fill_null(lit(false))
}

/// x − previous x of the same account (null on an account's first record).
fn within_group_diff(x: Expr) -> Expr {
    when(same_group(1))
        .then(x.clone() - x.shift(lit(1)))
        .otherwise(lit(NULL))
}

/// Rolling mean and sample standard deviation (ddof = 1) over the last `window` records of the
/// same account, null below `min_periods` records (and the std below 2). Written as masked
/// shifts of the account-sorted column, which is much faster than a window per account; the std
/// is two-pass (deviations from the window mean), so large balances keep their precision.
fn rolling_mean_std(x: Expr, window: usize, min_periods: usize) -> (Expr, Expr) {
    let w = window.max(1) as i64;
    let mut sum = x.clone();
    let mut count = lit(1.0);
    for k in 1..w {
        sum = sum
            + when(same_group(k))
                .then(x.clone().shift(lit(k)))
                .otherwise(lit(0.0));
        count = count + same_group(k).cast(DataType::Float64);
    }
    let mean = sum / count.clone();
    let dev = |v: Expr| (v - mean.clone()).pow(2);
    let mut ss = dev(x.clone());
    for k in 1..w {
        ss = ss
            + when(same_group(k))
                .then(dev(x.clone().shift(lit(k))))
                .otherwise(lit(0.0));
    }
    let min = lit(min_periods.max(1) as f64);
    let mean_out = when(count.clone().gt_eq(min.clone()))
        .then(mean.clone())
        .otherwise(lit(NULL));
    let std_out = when(count.clone().gt_eq(min).and(count.clone().gt_eq(lit(2.0))))
        .then((ss / (count - lit(1.0))).sqrt())
        .otherwise(lit(NULL));
    (mean_out, std_out)
}

/// The larger of two expressions, row by row.
fn emax(a: Expr, b: Expr) -> Expr {
    when(a.clone().gt_eq(b.clone())).then(a).otherwise(b)
}

/// Current rows are numbered after every history row (before duplicates were dropped).
fn history_rows_offset(history: Option<&Prepared>) -> usize {
    history.map(|h| h.df.height()).unwrap_or(0)
}

fn group_date_pairs(df: &DataFrame) -> Result<impl Iterator<Item = (u32, i32)> + '_, FeatureError> {
    let g = df.column(GROUP)?.u32()?;
    let d = df.column("bd_date")?.to_physical_repr();
    let d: Vec<Option<i32>> = d.i32()?.iter().collect();
    Ok(g.iter()
        .zip(d)
        .map(|(g, d)| (g.unwrap_or(0), d.unwrap_or(i32::MIN))))
}

/// Adds the own-normal columns ([`OWN_EXPECTED`], [`OWN_RESIDUAL`], [`OWN_ROUTINE_CODE`],
/// [`OWN_Z`]) and [`IS_BREAK`] to rows sorted by account and date: each account's records go
/// through [`crate::routine::explain`], accounts in parallel.
fn add_own_columns(
    sorted: &mut DataFrame,
    r: &crate::profile::Resolved,
    has_date: bool,
    params: &crate::routine::Params,
) -> Result<(), FeatureError> {
    use rayon::prelude::*;
    let n = sorted.height();
    let groups: Vec<u32> = sorted.column(GROUP)?.u32()?.into_no_null_iter().collect();
    let days = if has_date {
        column_f64(sorted, "bd_date")?
    } else {
        vec![f64::NAN; n]
    };
    let crit: Vec<(Vec<f64>, Vec<f64>)> = r
        .criteria
        .iter()
        .map(|c| {
            Ok((
                column_f64(sorted, &crit_col(&c.name, "diff"))?,
                column_f64(sorted, &crit_col(&c.name, "tol"))?,
            ))
        })
        .collect::<Result<_, FeatureError>>()?;
    let Some(first) = r.criteria.first() else {
        return Ok(());
    };
    let (lhs, rhs) = if first.is_pair() {
        (
            column_f64(sorted, &crit_col(&first.name, "lhs"))?,
            column_f64(sorted, &crit_col(&first.name, "rhs"))?,
        )
    } else {
        (vec![f64::NAN; n], vec![f64::NAN; n])
    };
    let oot = |i: usize, (d, t): &(Vec<f64>, Vec<f64>)| {
        let t = if t[i].is_finite() { t[i] } else { 0.0 };
        d[i].is_finite() && d[i].abs() > t + 1e-9
    };
    let recs: Vec<crate::routine::Rec> = (0..n)
        .map(|i| crate::routine::Rec {
            day: days[i],
            lhs: lhs[i],
            rhs: rhs[i],
            diff: crit[0].0[i],
            tol: crit[0].1[i],
            other_break: crit[1..].iter().any(|c| oot(i, c)),
        })
        .collect();
    let is_break: Vec<bool> = (0..n).map(|i| crit.iter().any(|c| oot(i, c))).collect();
    // Account boundaries.
    let mut bounds = Vec::new();
    let mut start = 0;
    for i in 1..=n {
        if i == n || groups[i] != groups[start] {
            bounds.push((start, i));
            start = i;
        }
    }
    let parts: Vec<Vec<crate::routine::Own>> = bounds
        .par_iter()
        .map(|(a, b)| crate::routine::explain(&recs[*a..*b], params))
        .collect();
    let mut expected = Vec::with_capacity(n);
    let mut residual = Vec::with_capacity(n);
    let mut code = Vec::with_capacity(n);
    let mut z = Vec::with_capacity(n);
    for o in parts.iter().flatten() {
        expected.push(o.expected);
        residual.push(o.residual);
        code.push(o.routine.map_or(0u8, |r| r.code()) as u32);
        z.push(o.own_z);
    }
    sorted.with_column(Column::new(OWN_EXPECTED.into(), expected))?;
    sorted.with_column(Column::new(OWN_RESIDUAL.into(), residual))?;
    sorted.with_column(Column::new(OWN_ROUTINE_CODE.into(), code))?;
    sorted.with_column(Column::new(OWN_Z.into(), z))?;
    sorted.with_column(Column::new(IS_BREAK.into(), is_break))?;
    Ok(())
}

/// Replaces [`OWN_ROUTINE_CODE`] by [`OWN_ROUTINE`] (the reason as text).
fn add_routine_text(df: &mut DataFrame) -> Result<(), FeatureError> {
    let codes = df.column(OWN_ROUTINE_CODE)?.u32()?.clone();
    let text: StringChunked = codes
        .iter()
        .map(|c| {
            Some(
                c.and_then(|c| crate::routine::Reason::from_code(c as u8))
                    .map_or("", |r| r.as_str()),
            )
        })
        .collect();
    df.with_column(text.into_column().with_name(OWN_ROUTINE.into()))?;
    let _ = df.drop_in_place(OWN_ROUTINE_CODE)?;
    Ok(())
}

/// For rows sorted by account: (d − median) / max(1.4826·MAD, tolerance, 0.01), with the median
/// and MAD of the account's history rows (0 when the account has none), clipped to ±10,000.
fn robust_z(sorted: &DataFrame, diff_col: &str, tol_col: &str) -> Result<Vec<f64>, FeatureError> {
    use crate::detect::scaler::percentile_select;
    let groups: Vec<u32> = sorted.column(GROUP)?.u32()?.into_no_null_iter().collect();
    let hist: Vec<bool> = sorted
        .column(IS_HIST)?
        .bool()?
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect();
    let d = column_f64(sorted, diff_col)?;
    let tol = column_f64(sorted, tol_col)?;
    let mut out = vec![0.0; d.len()];
    let mut start = 0;
    let mut buf: Vec<f64> = Vec::new();
    while start < d.len() {
        let mut end = start + 1;
        while end < d.len() && groups[end] == groups[start] {
            end += 1;
        }
        buf.clear();
        buf.extend(
            (start..end)
                .filter(|i| hist[*i] && d[*i].is_finite())
                .map(|i| d[i]),
        );
        let (med, mad) = if buf.is_empty() {
            (0.0, 0.0)
        } else {
            let med = percentile_select(&mut buf, 50.0);
            for v in buf.iter_mut() {
                *v = (*v - med).abs();
            }
            (med, percentile_select(&mut buf, 50.0))
        };
        for i in start..end {
            let t = if tol[i].is_finite() { tol[i] } else { 0.0 };
            let scale = (mad * 1.4826).max(t.max(0.01));
            let z = (d[i] - med) / scale;
            out[i] = if z.is_finite() {
                z.clamp(-1e4, 1e4)
            } else {
                0.0
            };
        }
        start = end;
    }
    Ok(out)
}

/// For rows sorted by group and date: days (or records, without dates) since the current run of
/// out-of-tolerance differences (`within` false) began; 0 for rows within tolerance.
fn run_age(sorted: &DataFrame, within: &[bool], has_date: bool) -> Result<Vec<f64>, FeatureError> {
    let groups = sorted.column(GROUP)?.u32()?;
    let dates: Vec<f64> = if has_date {
        column_f64(sorted, "bd_date")?
    } else {
        (0..sorted.height()).map(|i| i as f64).collect()
    };
    let mut out = Vec::with_capacity(sorted.height());
    let mut prev_group: Option<u32> = None;
    let mut run_start: Option<f64> = None;
    for ((g, w), d) in groups.iter().zip(within.iter()).zip(dates) {
        if prev_group != g {
            run_start = None;
            prev_group = g;
        }
        if *w {
            run_start = None;
            out.push(0.0);
        } else {
            let s = *run_start.get_or_insert(d);
            out.push(d - s);
        }
    }
    Ok(out)
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
        let opts = PrepareOptions::from_config(&crate::config::Config::defaults().ingest);
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
    fn label_encoder_sorted_with_unseen_fallback() {
        let e = LabelEncoder::fit("x", ["b", "a", "c", "a"].into_iter());
        assert_eq!(e.classes, vec!["a", "b", "c"]);
        assert_eq!(e.encode("c"), 2.0);
        assert_eq!(e.encode("zzz"), -1.0);
    }
}
