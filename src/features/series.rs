//! Per-account series helpers: changes and rolling statistics within an account, each account's
//! own normal (routine breaks, residual, own z), the robust z and the age of a run of breaks.

use super::*;

/// Rows are sorted by account: true where the row `k` places earlier is of the same account.
pub(super) fn same_group(k: i64) -> Expr {
    col(same_group_name(k).as_str())
}

/// The column [`add_same_group`] adds for `k`.
fn same_group_name(k: i64) -> String {
    format!("bd_same_group_{k}")
}

/// Adds to rows sorted by account, for k in 1..window, whether the record k rows above is of
/// the same account (read by [`same_group`]).
pub(super) fn add_same_group(sorted: &mut DataFrame, window: usize) -> Result<(), FeatureError> {
    let groups: Vec<u32> = sorted.column(GROUP)?.u32()?.into_no_null_iter().collect();
    for k in 1..window.max(2) {
        let same: BooleanChunked = (0..groups.len())
            .map(|i| i >= k && groups[i] == groups[i - k])
            .collect();
        sorted.with_column(
            same.into_column()
                .with_name(same_group_name(k as i64).into()),
        )?;
    }
    Ok(())
}

/// x − previous x of the same account (null on an account's first record).
pub(super) fn within_group_diff(x: Expr) -> Expr {
    when(same_group(1))
        .then(x.clone() - x.shift(lit(1)))
        .otherwise(lit(NULL))
}

/// Rolling mean and sample standard deviation (ddof = 1) over the last `window` records of the
/// same account, null below `min_periods` records (and the std below 2). Written as masked
/// shifts of the account-sorted column, which is much faster than a window per account; the std
/// is two-pass (deviations from the window mean), so large balances keep their precision.
pub(super) fn rolling_mean_std(x: Expr, window: usize, min_periods: usize) -> (Expr, Expr) {
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
        let (med, mad) = crate::linalg::median_mad(&mut buf);
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
pub(super) fn run_age(
    sorted: &DataFrame,
    within: &[bool],
    has_date: bool,
) -> Result<Vec<f64>, FeatureError> {
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
