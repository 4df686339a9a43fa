//! `compute`: the canonical frame of history and current rows sorted by account and date, the
//! preset's expressions over it, the row-wise features, and the rows handed back in file order.

use super::*;

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
    let mut series = Vec::new();
    series_exprs(&plan, &mut exprs, &mut series, &mut out);
    add_series(&mut sorted0, &series, opts.window, opts.min_periods)?;
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
pub(super) struct Plan<'a> {
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
pub(super) struct Columns {
    names: Vec<String>,
    context: Vec<&'static str>,
    extra_out: Vec<String>,
}

/// A number column with nulls and NaN as 0.
pub(super) fn fnum(e: Expr) -> Expr {
    e.cast(DataType::Float64)
        .fill_null(lit(0.0))
        .fill_nan(lit(0.0))
}

/// One label encoder per categorical role, fitted on `fit_on`.
pub(super) fn fit_encoders(
    r: &crate::profile::Resolved,
    fit_on: &Prepared,
) -> Result<Vec<LabelEncoder>, FeatureError> {
    use rayon::prelude::*;
    r.categoricals
        .par_iter()
        .map(|role| {
            let src = format!("bd_cat_{}", role.slug);
            let ca = fit_on.df.column(src.as_str())?.str()?;
            Ok(LabelEncoder::fit(
                &role.slug,
                ca.iter().map(|v| v.unwrap_or("")),
            ))
        })
        .collect()
}

/// The canonical frame: history rows (when given) then current rows, numbered in file order,
/// with integer account ids and category codes; with the number of history rows kept and the
/// account ids.
pub(super) fn canonical_frame<'a>(
    current: &'a Prepared,
    history: Option<&'a Prepared>,
    encoders: &[LabelEncoder],
    has_date: bool,
) -> Result<(DataFrame, usize, PlHashMap<&'a str, u32>), FeatureError> {
    let cols = canonical(current);
    let mut ids: PlHashMap<&str, u32> = PlHashMap::new();
    // A table's account ids (numbered in the order met, shared by the tables) beside its
    // category codes.
    let ids_and_codes = |ids: &mut PlHashMap<&'a str, u32>,
                         p: &'a Prepared|
     -> Result<(Vec<u32>, Vec<Vec<f64>>), FeatureError> {
        use rayon::prelude::*;
        let (gid, codes) = rayon::join(
            || group_ids(ids, p),
            || {
                encoders
                    .par_iter()
                    .map(|enc| encode_column(p, enc))
                    .collect::<Result<Vec<_>, _>>()
            },
        );
        Ok((gid?, codes?))
    };
    let take = |p: &'_ Prepared,
                (gid, codes): (Vec<u32>, Vec<Vec<f64>>),
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
        for (enc, codes) in encoders.iter().zip(codes) {
            df.with_column(Column::new(format!("f_enc_{}", enc.name).into(), codes))?;
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
            let hg = ids_and_codes(&mut ids, h)?;
            let cg = ids_and_codes(&mut ids, current)?;
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
            let cg = ids_and_codes(&mut ids, current)?;
            // The file is its own history.
            (take(current, cg, true, 0)?, 0)
        }
    };
    frame.rechunk_mut();
    Ok((frame, history_rows, ids))
}

/// Sorted by account, then date, then file order (history before current on the same date).
pub(super) fn sort_frame(frame: DataFrame, has_date: bool) -> Result<DataFrame, FeatureError> {
    let groups = frame.column(GROUP)?.u32()?;
    let seqs = frame.column(SEQ)?.u64()?;
    let dates: Option<Vec<Option<i32>>> = if has_date {
        let d = frame.column("bd_date")?.to_physical_repr();
        Some(d.i32()?.iter().collect())
    } else {
        None
    };
    if groups.null_count() > 0 || seqs.null_count() > 0 {
        return Err(FeatureError::Mismatch(
            "internal: an account id or row number is missing".into(),
        ));
    }
    let order = sort_order(
        &groups.into_no_null_iter().collect::<Vec<u32>>(),
        dates.as_deref(),
        &seqs.into_no_null_iter().collect::<Vec<u64>>(),
    );
    let idx = IdxCa::from_vec("idx".into(), order);
    Ok(frame.take(&idx)?)
}

/// The rows' order by account, then date (missing dates first), then row number: a counting
/// sort by account, which keeps the frame's order within an account, then each account's rows
/// sorted by date and number where they are not in that order already (row numbers are unique,
/// so the order is total).
pub(super) fn sort_order(
    groups: &[u32],
    dates: Option<&[Option<i32>]>,
    seqs: &[u64],
) -> Vec<IdxSize> {
    use rayon::prelude::*;
    let n = groups.len();
    let key = |i: &IdxSize| {
        let i = *i as usize;
        (dates.and_then(|d| d[i]), seqs[i])
    };
    let k = groups.iter().map(|g| *g as usize + 1).max().unwrap_or(0);
    if k > n {
        // Account ids are numbered densely from 0; sparse ones are sorted as they come.
        let mut order: Vec<IdxSize> = (0..n as IdxSize).collect();
        order.par_sort_unstable_by_key(|i| (groups[*i as usize], key(i)));
        return order;
    }
    let mut start = vec![0usize; k + 1];
    for g in groups {
        start[*g as usize + 1] += 1;
    }
    for i in 0..k {
        start[i + 1] += start[i];
    }
    let mut next = start.clone();
    let mut order: Vec<IdxSize> = vec![0; n];
    for (i, g) in groups.iter().enumerate() {
        let slot = &mut next[*g as usize];
        order[*slot] = i as IdxSize;
        *slot += 1;
    }
    // Each account's rows, split at its boundaries, sorted in parallel.
    let mut slices: Vec<&mut [IdxSize]> = Vec::with_capacity(k);
    let mut rest: &mut [IdxSize] = &mut order;
    for w in start.windows(2) {
        let (part, tail) = rest.split_at_mut(w[1] - w[0]);
        slices.push(part);
        rest = tail;
    }
    slices.into_par_iter().with_min_len(256).for_each(|s| {
        if !s.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
            s.sort_unstable_by_key(key);
        }
    });
    order
}

/// The seed preset's features: days since the last record, the criteria values and differences,
/// their changes and rolling statistics, calendar parts and numeric columns.
///
/// The features that read earlier records of the account (changes, rolling statistics, days
/// since the last record) are left in `series`, computed natively by [`add_series`]; the others
/// are expressions. Either way each feature's name takes its place in `out` in this order.
pub(super) fn series_exprs(
    plan: &Plan<'_>,
    exprs: &mut Vec<Expr>,
    series: &mut Vec<SeriesFeature>,
    out: &mut Columns,
) {
    let r = plan.r;
    let mut names: Vec<String> = Vec::new();
    let mut push = |names: &mut Vec<String>, e: Expr, name: String| {
        exprs.push(e.alias(name.as_str()));
        names.push(name);
    };
    let mut native = |names: &mut Vec<String>, f: SeriesFeature| {
        names.extend(f.names());
        series.push(f);
    };
    if plan.has_date {
        native(
            &mut names,
            SeriesFeature::Change {
                src: "bd_date".into(),
                name: "f_days_since_last".into(),
            },
        );
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
        push(&mut names, fnum(col(src.as_str())), format!("f_{stem}"));
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
            native(
                &mut names,
                SeriesFeature::Change {
                    src: src.clone(),
                    name: format!("f_change_{stem}"),
                },
            );
        }
        for (src, stem) in &series_cols {
            native(
                &mut names,
                SeriesFeature::Rolling {
                    src: src.clone(),
                    mean: format!("f_roll_mean_{stem}"),
                    std: format!("f_roll_std_{stem}"),
                },
            );
        }
    }
    if plan.has_date {
        push(
            &mut names,
            fnum(col("bd_date").dt().weekday().cast(DataType::Int32) - lit(1)),
            "f_weekday".into(),
        );
        push(
            &mut names,
            fnum(col("bd_date").dt().month()),
            "f_month".into(),
        );
    }
    for role in &r.numeric {
        let src = format!("bd_num_{}", role.slug);
        push(
            &mut names,
            fnum(col(src.as_str())),
            format!("f_num_{}", role.slug),
        );
    }
    out.names.extend(names);
    if plan.acc
        && let Some(c) = plan.primary()
    {
        // The difference's own change, as the seed and breaks presets have it (an output
        // column, not a feature).
        let name = format!("f_change_{}_diff", c.name);
        series.push(SeriesFeature::Change {
            src: crit_col(&c.name, "diff"),
            name: name.clone(),
        });
        out.extra_out.push(name);
    }
}

/// The breaks and account presets' features: relative difference, sign agreement and
/// magnitude ratio of the sides, signed log of each difference and its out-of-tolerance flag.
pub(super) fn break_exprs(plan: &Plan<'_>, exprs: &mut Vec<Expr>, out: &mut Columns) {
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
pub(super) fn add_row_features(
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
pub(super) fn add_run_context(
    plan: &Plan<'_>,
    sorted: &mut DataFrame,
    out: &mut Columns,
) -> Result<(), FeatureError> {
    let r = plan.r;
    if r.criteria.is_empty() || !(plan.has_keys || plan.has_date) {
        return Ok(());
    }
    let groups: Vec<u32> = sorted.column(GROUP)?.u32()?.into_no_null_iter().collect();
    // The columns read, on every core: the date, then each criteria's difference, tolerance
    // and (for a pair) sides.
    let mut names: Vec<String> = Vec::new();
    if plan.has_date {
        names.push("bd_date".into());
    }
    for c in &r.criteria {
        names.push(crit_col(&c.name, "diff"));
        names.push(crit_col(&c.name, "tol"));
        if c.is_pair() {
            names.push(crit_col(&c.name, "lhs"));
            names.push(crit_col(&c.name, "rhs"));
        }
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut cols = columns_f64(sorted, &names)?.into_iter();
    let mut next = || cols.next().unwrap_or_default();
    let days = if plan.has_date {
        next()
    } else {
        (0..sorted.height()).map(|i| i as f64).collect()
    };
    type Sides = Option<(Vec<f64>, Vec<f64>)>;
    let mut values: Vec<(Vec<f64>, Vec<f64>, Sides)> = Vec::new();
    for c in &r.criteria {
        let (diff, tol) = (next(), next());
        let sides = c.is_pair().then(|| (next(), next()));
        values.push((diff, tol, sides));
    }
    let crit: Vec<crate::break_runs::CriteriaValues<'_>> = values
        .iter()
        .map(|(d, t, s)| crate::break_runs::CriteriaValues {
            diff: d,
            tol: t,
            sides: s.as_ref().map(|(l, r)| (l.as_slice(), r.as_slice())),
        })
        .collect();
    let cols = crate::break_runs::run_context(&groups, &days, plan.has_date, &crit);
    for (name, v) in crate::break_runs::RUN_COLUMNS.iter().zip(cols) {
        sorted.with_column(Column::new((*name).into(), v))?;
        out.context.push(name);
    }
    Ok(())
}

/// The columns `names` of the sorted rows whose `SEQ` falls in `seqs`, put back in `SEQ` order
/// by one gather (SEQ numbers every row once, so its inverse is the order). Rows of `seqs` the
/// frame does not have (a history record the current file replaced) are left out.
fn in_file_order(
    sorted: &DataFrame,
    names: &[PlSmallStr],
    seqs: std::ops::Range<u64>,
) -> Result<DataFrame, FeatureError> {
    let span = usize::try_from(seqs.end - seqs.start).unwrap_or(usize::MAX);
    let mut at: Vec<IdxSize> = vec![IdxSize::MAX; span];
    for (i, s) in sorted.column(SEQ)?.u64()?.into_no_null_iter().enumerate() {
        if seqs.contains(&s) {
            at[(s - seqs.start) as usize] = i as IdxSize;
        }
    }
    at.retain(|i| *i != IdxSize::MAX);
    let idx = IdxCa::from_vec("idx".into(), at);
    Ok(sorted.select(names.iter().cloned())?.take(&idx)?)
}

/// The history rows' features, in file order (the training rows when a history was given),
/// with the difference for the contamination estimators and the date and key to match the
/// analysts' labels.
pub(super) fn history_features(
    sorted: &DataFrame,
    out: &Columns,
    ids: &PlHashMap<&str, u32>,
    history: Option<&Prepared>,
) -> Result<HistoryFeatures, FeatureError> {
    let mut names: Vec<PlSmallStr> = out.names.iter().map(|n| n.as_str().into()).collect();
    for c in [
        "bd_difference",
        "bd_date",
        OWN_ROUTINE_CODE,
        IS_BREAK,
        OWN_Z,
        OWN_RESIDUAL,
    ] {
        if sorted.column(c).is_ok() {
            names.push(c.into());
        }
    }
    names.push(GROUP.into());
    let hist_rows = history_rows_offset(history) as u64;
    let mut df = in_file_order(sorted, &names, 0..hist_rows)?;
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
pub(super) fn current_features(
    current: &Prepared,
    sorted: DataFrame,
    out: &Columns,
    history: Option<&Prepared>,
) -> Result<DataFrame, FeatureError> {
    let names: Vec<PlSmallStr> = out
        .names
        .iter()
        .map(|n| n.as_str().into())
        .chain(out.context.iter().map(|n| (*n).into()))
        .chain(out.extra_out.iter().map(|n| n.as_str().into()))
        .collect();
    let first = history_rows_offset(history) as u64;
    let feats = in_file_order(&sorted, &names, first..first + current.df.height() as u64)?;
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
