//! Per-account series helpers: changes and rolling statistics within an account, each account's
//! own normal (routine breaks, residual, own z), the robust z and the age of a run of breaks.

use super::*;

/// A feature that reads the earlier records of the same account, computed natively over rows
/// sorted by account and date (see [`add_series`]).
#[derive(Debug, Clone)]
pub(super) enum SeriesFeature {
    /// `src` − the previous record's `src` of the same account (0 on an account's first record).
    Change { src: String, name: String },
    /// Rolling mean and sample standard deviation (ddof = 1) of `src` over the last `window`
    /// records of the same account; 0 below `min_periods` records (and the std below 2).
    Rolling {
        src: String,
        mean: String,
        std: String,
    },
}

impl SeriesFeature {
    /// The columns it adds, in order.
    pub(super) fn names(&self) -> Vec<String> {
        match self {
            SeriesFeature::Change { name, .. } => vec![name.clone()],
            SeriesFeature::Rolling { mean, std, .. } => vec![mean.clone(), std.clone()],
        }
    }
}

/// Adds `features` to rows sorted by account (then date), one feature per core at a time.
///
/// The arithmetic is that of the expressions it replaced, step for step, so the values are the
/// same to the bit: the window's sum adds each earlier record of the account (0 for a record of
/// another account) in order, its mean is the sum over the count, and its std is two-pass
/// (squared deviations from the window's mean), so large balances keep their precision. Missing
/// and NaN results are 0.
pub(super) fn add_series(
    sorted: &mut DataFrame,
    features: &[SeriesFeature],
    window: usize,
    min_periods: usize,
) -> Result<(), FeatureError> {
    use rayon::prelude::*;
    if features.is_empty() {
        return Ok(());
    }
    let groups: Vec<u32> = sorted.column(GROUP)?.u32()?.into_no_null_iter().collect();
    let computed: Vec<Vec<(String, Vec<f64>)>> = features
        .par_iter()
        .map(|f| -> Result<_, FeatureError> {
            Ok(match f {
                SeriesFeature::Change { src, name } => {
                    let x = column_f64(sorted, src)?;
                    vec![(name.clone(), change(&groups, &x))]
                }
                SeriesFeature::Rolling { src, mean, std } => {
                    let x = column_f64(sorted, src)?;
                    let (m, s) = rolling_mean_std(&groups, &x, window, min_periods);
                    vec![(mean.clone(), m), (std.clone(), s)]
                }
            })
        })
        .collect::<Result<_, _>>()?;
    for (name, v) in computed.into_iter().flatten() {
        sorted.with_column(Column::new(name.into(), v))?;
    }
    Ok(())
}

/// NaN as 0 (a missing result).
fn or_zero(v: f64) -> f64 {
    if v.is_nan() { 0.0 } else { v }
}

/// x − the previous x of the same account, for rows sorted by account (0 on an account's first
/// record, and where either value is missing).
pub(super) fn change(groups: &[u32], x: &[f64]) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            if i >= 1 && groups[i] == groups[i - 1] {
                or_zero(x[i] - x[i - 1])
            } else {
                0.0
            }
        })
        .collect()
}

/// Rolling mean and sample standard deviation over the last `window` records of the same
/// account (see [`SeriesFeature::Rolling`]).
pub(super) fn rolling_mean_std(
    groups: &[u32],
    x: &[f64],
    window: usize,
    min_periods: usize,
) -> (Vec<f64>, Vec<f64>) {
    let w = window.max(1);
    let min = min_periods.max(1) as f64;
    let n = x.len();
    let (mut means, mut stds) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let same = |i: usize, k: usize| i >= k && groups[i] == groups[i - k];
    for i in 0..n {
        let mut sum = x[i];
        let mut count = 1.0;
        for k in 1..w {
            let s = same(i, k);
            sum += if s { x[i - k] } else { 0.0 };
            count += if s { 1.0 } else { 0.0 };
        }
        let mean = sum / count;
        let dev = |v: f64| (v - mean) * (v - mean);
        let mut ss = dev(x[i]);
        for k in 1..w {
            ss += if same(i, k) { dev(x[i - k]) } else { 0.0 };
        }
        means.push(if count >= min { or_zero(mean) } else { 0.0 });
        stds.push(if count >= min && count >= 2.0 {
            or_zero((ss / (count - 1.0)).sqrt())
        } else {
            0.0
        });
    }
    (means, stds)
}

/// The larger of two expressions, row by row.
pub(super) fn emax(a: Expr, b: Expr) -> Expr {
    when(a.clone().gt_eq(b.clone())).then(a).otherwise(b)
}

/// Current rows are numbered after every history row (before duplicates were dropped).
pub(super) fn history_rows_offset(history: Option<&Prepared>) -> usize {
    history.map(|h| h.df.height()).unwrap_or(0)
}

pub(super) fn group_date_pairs(
    df: &DataFrame,
) -> Result<impl Iterator<Item = (u32, i32)> + '_, FeatureError> {
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
pub(super) fn add_own_columns(
    sorted: &mut DataFrame,
    r: &crate::profile::Resolved,
    has_date: bool,
    params: &crate::routine::Params,
) -> Result<(), FeatureError> {
    use rayon::prelude::*;
    let n = sorted.height();
    let Some(first) = r.criteria.first() else {
        return Ok(());
    };
    let groups: Vec<u32> = sorted.column(GROUP)?.u32()?.into_no_null_iter().collect();
    // The columns read, on every core: the date, the first criteria's sides, then each
    // criteria's difference and tolerance.
    let mut names: Vec<String> = Vec::new();
    if has_date {
        names.push("bd_date".into());
    }
    if first.is_pair() {
        names.push(crit_col(&first.name, "lhs"));
        names.push(crit_col(&first.name, "rhs"));
    }
    for c in &r.criteria {
        names.push(crit_col(&c.name, "diff"));
        names.push(crit_col(&c.name, "tol"));
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut cols = columns_f64(sorted, &names)?.into_iter();
    let nan = || vec![f64::NAN; n];
    let days = if has_date {
        cols.next().unwrap_or_else(nan)
    } else {
        nan()
    };
    let (lhs, rhs) = if first.is_pair() {
        (
            cols.next().unwrap_or_else(nan),
            cols.next().unwrap_or_else(nan),
        )
    } else {
        (nan(), nan())
    };
    let mut crit: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    while let (Some(d), Some(t)) = (cols.next(), cols.next()) {
        crit.push((d, t));
    }
    let oot = |i: usize, (d, t): &(Vec<f64>, Vec<f64>)| {
        let t = if t[i].is_finite() { t[i] } else { 0.0 };
        d[i].is_finite() && d[i].abs() > t + 1e-9
    };
    // Slices of whole accounts on every core; each account's records explained in turn.
    type OwnColumns = (Vec<f64>, Vec<f64>, Vec<u32>, Vec<f64>, Vec<bool>);
    let parts: Vec<OwnColumns> = crate::break_runs::account_slices(&groups, 1 << 15)
        .into_par_iter()
        .map(|range| {
            let recs: Vec<crate::routine::Rec> = range
                .clone()
                .map(|i| crate::routine::Rec {
                    day: days[i],
                    lhs: lhs[i],
                    rhs: rhs[i],
                    diff: crit[0].0[i],
                    tol: crit[0].1[i],
                    other_break: crit[1..].iter().any(|c| oot(i, c)),
                })
                .collect();
            let len = range.len();
            let mut out: OwnColumns = (
                Vec::with_capacity(len),
                Vec::with_capacity(len),
                Vec::with_capacity(len),
                Vec::with_capacity(len),
                range
                    .clone()
                    .map(|i| crit.iter().any(|c| oot(i, c)))
                    .collect(),
            );
            let g = &groups[range];
            let mut a = 0;
            while a < len {
                let mut b = a + 1;
                while b < len && g[b] == g[a] {
                    b += 1;
                }
                for o in crate::routine::explain(&recs[a..b], params) {
                    out.0.push(o.expected);
                    out.1.push(o.residual);
                    out.2.push(o.routine.map_or(0u8, |r| r.code()) as u32);
                    out.3.push(o.own_z);
                }
                a = b;
            }
            out
        })
        .collect();
    let mut expected = Vec::with_capacity(n);
    let mut residual = Vec::with_capacity(n);
    let mut code = Vec::with_capacity(n);
    let mut z = Vec::with_capacity(n);
    let mut is_break = Vec::with_capacity(n);
    for p in &parts {
        expected.extend_from_slice(&p.0);
        residual.extend_from_slice(&p.1);
        code.extend_from_slice(&p.2);
        z.extend_from_slice(&p.3);
        is_break.extend_from_slice(&p.4);
    }
    sorted.with_column(Column::new(OWN_EXPECTED.into(), expected))?;
    sorted.with_column(Column::new(OWN_RESIDUAL.into(), residual))?;
    sorted.with_column(Column::new(OWN_ROUTINE_CODE.into(), code))?;
    sorted.with_column(Column::new(OWN_Z.into(), z))?;
    sorted.with_column(Column::new(IS_BREAK.into(), is_break))?;
    Ok(())
}

/// Replaces [`OWN_ROUTINE_CODE`] by [`OWN_ROUTINE`] (the reason as text).
pub(super) fn add_routine_text(df: &mut DataFrame) -> Result<(), FeatureError> {
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
pub(super) fn robust_z(
    sorted: &DataFrame,
    diff_col: &str,
    tol_col: &str,
) -> Result<Vec<f64>, FeatureError> {
    let groups: Vec<u32> = sorted.column(GROUP)?.u32()?.into_no_null_iter().collect();
    let hist: Vec<bool> = sorted
        .column(IS_HIST)?
        .bool()?
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect();
    let d = column_f64(sorted, diff_col)?;
    let tol = column_f64(sorted, tol_col)?;
    Ok(per_account(&groups, |range, out| {
        let first = range.start;
        let mut start = first;
        let mut buf: Vec<f64> = Vec::new();
        while start < range.end {
            let mut end = start + 1;
            while end < range.end && groups[end] == groups[start] {
                end += 1;
            }
            buf.clear();
            buf.extend(
                (start..end)
                    .filter(|i| hist[*i] && d[*i].is_finite())
                    .map(|i| d[i]),
            );
            let (med, mad) = crate::linalg::median_mad(&mut buf);
            for i in start..end {
                let t = if tol[i].is_finite() { tol[i] } else { 0.0 };
                let scale = (mad * 1.4826).max(t.max(0.01));
                let z = (d[i] - med) / scale;
                out[i - first] = if z.is_finite() {
                    z.clamp(-1e4, 1e4)
                } else {
                    0.0
                };
            }
            start = end;
        }
    }))
}

/// A column for rows sorted by account, filled by `f` on slices of whole accounts (each given
/// its rows and its part of the column), on every core.
pub(super) fn per_account(
    groups: &[u32],
    f: impl Fn(std::ops::Range<usize>, &mut [f64]) + Sync,
) -> Vec<f64> {
    use rayon::prelude::*;
    let mut out = vec![0.0; groups.len()];
    let mut parts: Vec<(std::ops::Range<usize>, &mut [f64])> = Vec::new();
    let mut rest: &mut [f64] = &mut out;
    for r in crate::break_runs::account_slices(groups, 1 << 15) {
        let (part, tail) = rest.split_at_mut(r.len());
        parts.push((r, part));
        rest = tail;
    }
    parts.into_par_iter().for_each(|(r, part)| f(r, part));
    out
}

/// For rows sorted by group and date: days (or records, without dates) since the current run of
/// out-of-tolerance differences (`within` false) began; 0 for rows within tolerance.
pub(super) fn run_age(
    sorted: &DataFrame,
    within: &[bool],
    has_date: bool,
) -> Result<Vec<f64>, FeatureError> {
    let groups: Vec<u32> = sorted.column(GROUP)?.u32()?.into_no_null_iter().collect();
    let dates: Vec<f64> = if has_date {
        column_f64(sorted, "bd_date")?
    } else {
        (0..sorted.height()).map(|i| i as f64).collect()
    };
    Ok(per_account(&groups, |range, out| {
        let first = range.start;
        let mut run_start: Option<f64> = None;
        for i in range {
            if i > first && groups[i] != groups[i - 1] {
                run_start = None;
            }
            out[i - first] = if within[i] {
                run_start = None;
                0.0
            } else {
                dates[i] - *run_start.get_or_insert(dates[i])
            };
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::super::compute::fnum;
    use super::*;

    /// The polars expressions the native series replaced: the record `k` rows above, when of
    /// the same account, by masked shifts of the account-sorted column.
    fn same_group(k: usize) -> Expr {
        col(format!("same_{k}").as_str())
    }

    fn expr_change(x: Expr) -> Expr {
        fnum(
            when(same_group(1))
                .then(x.clone() - x.shift(lit(1)))
                .otherwise(lit(NULL)),
        )
    }

    fn expr_rolling(x: Expr, window: usize, min_periods: usize) -> (Expr, Expr) {
        let mut sum = x.clone();
        let mut count = lit(1.0);
        for k in 1..window {
            sum = sum
                + when(same_group(k))
                    .then(x.clone().shift(lit(k as i64)))
                    .otherwise(lit(0.0));
            count = count + same_group(k).cast(DataType::Float64);
        }
        let mean = sum / count.clone();
        let dev = |v: Expr| (v - mean.clone()).pow(2);
        let mut ss = dev(x.clone());
        for k in 1..window {
            ss = ss
                + when(same_group(k))
                    .then(dev(x.clone().shift(lit(k as i64))))
                    .otherwise(lit(0.0));
        }
        let min = lit(min_periods as f64);
        let mean_out = when(count.clone().gt_eq(min.clone()))
            .then(mean)
            .otherwise(lit(NULL));
        let std_out = when(count.clone().gt_eq(min).and(count.clone().gt_eq(lit(2.0))))
            .then((ss / (count - lit(1.0))).sqrt())
            .otherwise(lit(NULL));
        (fnum(mean_out), fnum(std_out))
    }

    /// Changes and rolling statistics computed natively are, to the bit, what the expressions
    /// give: over accounts of one to nine records, large balances, signed zeros, NaN and
    /// missing values, for several windows.
    #[test]
    fn native_series_are_the_expressions_to_the_bit() {
        let mut groups: Vec<u32> = Vec::new();
        let mut x: Vec<Option<f64>> = Vec::new();
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for g in 0..3_000u32 {
            for _ in 0..=(next() % 9) {
                groups.push(g);
                x.push(match next() % 20 {
                    0 => None,
                    1 => Some(f64::NAN),
                    2 => Some(-0.0),
                    3 => Some(9.0e15 + (next() % 1000) as f64 * 0.01),
                    _ => Some((next() % 2_000_000) as f64 / 100.0 - 10_000.0),
                });
            }
        }
        let n = groups.len();
        let xs: Vec<f64> = x.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        for (window, min_periods) in [(3, 1), (2, 1), (5, 3), (1, 1)] {
            let mut df =
                DataFrame::new_infer_height(vec![Column::new("x".into(), x.clone())]).unwrap();
            for k in 1..window.max(2) {
                let same: Vec<bool> = (0..n)
                    .map(|i| i >= k && groups[i] == groups[i - k])
                    .collect();
                df.with_column(Column::new(format!("same_{k}").into(), same))
                    .unwrap();
            }
            let (m, s) = expr_rolling(col("x"), window, min_periods);
            let want = df
                .lazy()
                .with_columns([
                    expr_change(col("x")).alias("change"),
                    m.alias("mean"),
                    s.alias("std"),
                ])
                .collect()
                .unwrap();
            let (mean, std) = rolling_mean_std(&groups, &xs, window, min_periods);
            for (name, got) in [
                ("change", change(&groups, &xs)),
                ("mean", mean),
                ("std", std),
            ] {
                let want = column_f64(&want, name).unwrap();
                for i in 0..n {
                    assert_eq!(
                        got[i].to_bits(),
                        want[i].to_bits(),
                        "{name} (window {window}, min {min_periods}) row {i}: {} vs {}",
                        got[i],
                        want[i]
                    );
                }
            }
        }
    }
}
