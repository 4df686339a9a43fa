//! Run context: for rows sorted by account and date, the run of consecutive out-of-tolerance
//! records each row belongs to, described by what the root-cause rules need (how it started,
//! how long it lasted, whether it closed, how the difference evolved).
//!
//! A run starts at the first record of an account whose difference (on any criteria) is out of
//! tolerance and ends before the next record within tolerance. Its measures use the criteria
//! that was out of tolerance on the run's first record, and the records that *follow* in the
//! batch: a run still open at the end of the data has `closed = 0`.
//!
//! The columns (`bd_run_*`, NaN on rows within tolerance):
//! - `pos`: 0-based position of the record in its run; `len`: records in the run;
//! - `closed`: 1 when a record within tolerance follows; `days`: days from the run's first record
//!   to the record that closed it (or to its last record when open);
//! - `d0`: the difference on the first record; `dlhs0` / `drhs0`: how much each side moved on
//!   that record (NaN without a previous record or without two sides);
//! - `const`: 1 when every difference of the run equals `d0` within tolerance;
//! - `lhs_moves`: 1 when the left side changed during the run (after its first record);
//! - `rhs_frozen`: 1 when the run has at least two records and the right side did not change;
//! - `linear`: 1 when the run has at least three records and the k-th difference is k·`d0`;
//! - `proportional`: 1 when every difference is the same share of the left side as on day one.

/// Names of the columns, in the order [`run_context`] returns them.
pub const RUN_COLUMNS: [&str; 12] = [
    "bd_run_pos",
    "bd_run_len",
    "bd_run_closed",
    "bd_run_days",
    "bd_run_d0",
    "bd_run_dlhs0",
    "bd_run_drhs0",
    "bd_run_const",
    "bd_run_lhs_moves",
    "bd_run_rhs_frozen",
    "bd_run_linear",
    "bd_run_proportional",
];

/// One criteria's columns over the sorted rows.
pub struct CriteriaValues<'a> {
    pub diff: &'a [f64],
    pub tol: &'a [f64],
    /// Both sides, for pairs.
    pub sides: Option<(&'a [f64], &'a [f64])>,
}

fn out_of_tol(c: &CriteriaValues<'_>, i: usize) -> bool {
    let t = if c.tol[i].is_finite() { c.tol[i] } else { 0.0 };
    c.diff[i].is_finite() && c.diff[i].abs() > t + 1e-9
}

/// Computes the run columns ([`RUN_COLUMNS`]) for rows sorted by `groups` then date.
/// `days` is the record's date as a day number (or its position when the data has no dates).
/// With `dated`, an account whose records stop before the batch's last date has dropped out of
/// the report: its last run counts as closed on the next date of the batch (break files list
/// only the records in break, so a trade that matched simply disappears).
pub fn run_context(
    groups: &[u32],
    days: &[f64],
    dated: bool,
    criteria: &[CriteriaValues<'_>],
) -> Vec<Vec<f64>> {
    let n = groups.len();
    // The batch's distinct dates, in order (a few dozen distinct values among the rows).
    let mut batch_days: Vec<f64> = if dated {
        days.iter()
            .filter(|d| d.is_finite())
            .map(|d| (d + 0.0).to_bits())
            .collect::<polars::prelude::PlHashSet<u64>>()
            .into_iter()
            .map(f64::from_bits)
            .collect()
    } else {
        Vec::new()
    };
    batch_days.sort_by(f64::total_cmp);
    let next_batch_day = |d: f64| -> Option<f64> {
        let i = batch_days.partition_point(|x| *x <= d);
        batch_days.get(i).copied()
    };
    if criteria.is_empty() {
        return (0..RUN_COLUMNS.len()).map(|_| vec![f64::NAN; n]).collect();
    }
    // Runs never cross accounts: slices of whole accounts on every core, put together after.
    use rayon::prelude::*;
    let parts: Vec<Vec<Vec<f64>>> = account_slices(groups, 1 << 15)
        .into_par_iter()
        .map(|r| runs_in(r, groups, days, criteria, &next_batch_day))
        .collect();
    (0..RUN_COLUMNS.len())
        .into_par_iter()
        .map(|c| {
            let mut v = Vec::with_capacity(n);
            for p in &parts {
                v.extend_from_slice(&p[c]);
            }
            v
        })
        .collect()
}

/// Ranges of rows sorted by account, of at least `min` rows each (the last may be shorter),
/// each ending where an account ends.
pub fn account_slices(groups: &[u32], min: usize) -> Vec<std::ops::Range<usize>> {
    let n = groups.len();
    let mut out = Vec::with_capacity(n / min.max(1) + 1);
    let mut start = 0;
    while start < n {
        let mut end = (start + min.max(1)).min(n);
        while end < n && groups[end] == groups[end - 1] {
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

/// The run columns of the rows `range` (whole accounts), indexed from the range's start.
fn runs_in(
    range: std::ops::Range<usize>,
    groups: &[u32],
    days: &[f64],
    criteria: &[CriteriaValues<'_>],
    next_batch_day: &(dyn Fn(f64) -> Option<f64> + Sync),
) -> Vec<Vec<f64>> {
    let (first, n) = (range.start, range.end);
    let mut out: Vec<Vec<f64>> = (0..RUN_COLUMNS.len())
        .map(|_| vec![f64::NAN; n - first])
        .collect();
    // The criteria out of tolerance on each row (the first one), if any.
    let which: Vec<Option<usize>> = (first..n)
        .map(|i| criteria.iter().position(|c| out_of_tol(c, i)))
        .collect();
    let mut i = first;
    while i < n {
        let Some(ci) = which[i - first] else {
            i += 1;
            continue;
        };
        let a = i;
        let mut b = a + 1;
        while b < n && groups[b] == groups[a] && which[b - first].is_some() {
            b += 1;
        }
        let c = &criteria[ci];
        let tol_at = |k: usize| if c.tol[k].is_finite() { c.tol[k] } else { 0.0 };
        let prev = (a > 0 && groups[a - 1] == groups[a]).then(|| a - 1);
        let len = b - a;
        let followed = b < n && groups[b] == groups[a];
        let dropped = if followed {
            None
        } else {
            next_batch_day(days[b - 1])
        };
        let closed = followed || dropped.is_some();
        let end_day = if followed {
            days[b]
        } else {
            dropped.unwrap_or(days[b - 1])
        };
        let d0 = c.diff[a];
        let (dlhs0, drhs0) = match (c.sides, prev) {
            (Some((l, r)), Some(p)) => (l[a] - l[p], r[a] - r[p]),
            _ => (f64::NAN, f64::NAN),
        };
        let constant = (a..b).all(|k| (c.diff[k] - d0).abs() <= tol_at(k) + 1e-9);
        let (lhs_moves, rhs_frozen, proportional) = match c.sides {
            Some((l, r)) => {
                let moves = (a + 1..b).any(|k| (l[k] - l[k - 1]).abs() > 1e-9);
                let frozen = len >= 2 && (a + 1..b).all(|k| (r[k] - r[a]).abs() <= tol_at(k));
                let share = if l[a].abs() > 1e-9 {
                    d0 / l[a]
                } else {
                    f64::NAN
                };
                let prop = share.is_finite()
                    && (a..b).all(|k| {
                        (c.diff[k] - l[k] * share).abs() <= tol_at(k) + 1e-4 * c.diff[k].abs()
                    });
                (moves, frozen, prop)
            }
            None => (false, false, false),
        };
        let linear = len >= 3
            && d0.abs() > 0.0
            && (a..b).all(|k| {
                let want = d0 * (k - a + 1) as f64;
                (c.diff[k] - want).abs() <= tol_at(k).max(want.abs() * 1e-3) + 1e-9
            });
        let flag = |v: bool| if v { 1.0 } else { 0.0 };
        for k in a..b {
            let vals = [
                (k - a) as f64,
                len as f64,
                flag(closed),
                end_day - days[a],
                d0,
                dlhs0,
                drhs0,
                flag(constant),
                flag(lhs_moves),
                flag(rhs_frozen),
                flag(linear),
                flag(proportional),
            ];
            for (col, v) in out.iter_mut().zip(vals) {
                col[k - first] = v;
            }
        }
        i = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(out: &[Vec<f64>], name: &str) -> Vec<f64> {
        let i = RUN_COLUMNS.iter().position(|c| *c == name).unwrap();
        out[i].clone()
    }

    /// Many accounts, sliced across the cores: each account's run columns are those of the
    /// account computed alone, and no slice ends inside an account.
    #[test]
    fn runs_computed_on_slices_of_accounts_are_each_accounts_own() {
        let (accounts, per) = (9_000u32, 7usize);
        let n = accounts as usize * per;
        let groups: Vec<u32> = (0..n).map(|i| (i / per) as u32).collect();
        let days: Vec<f64> = (0..n).map(|i| (i % per) as f64).collect();
        let lhs: Vec<f64> = (0..n).map(|i| 100.0 + ((i * 37) % 11) as f64).collect();
        let rhs: Vec<f64> = (0..n)
            .map(|i| if (i * 13) % 5 < 2 { lhs[i] } else { 100.0 })
            .collect();
        let diff: Vec<f64> = lhs.iter().zip(&rhs).map(|(l, r)| l - r).collect();
        let tol = vec![0.5; n];
        let crit = |a: usize, b: usize| CriteriaValues {
            diff: &diff[a..b],
            tol: &tol[a..b],
            sides: Some((&lhs[a..b], &rhs[a..b])),
        };
        let slices = account_slices(&groups, 1 << 15);
        assert!(slices.len() > 1);
        for r in &slices {
            assert!(r.end == n || groups[r.end] != groups[r.end - 1]);
        }
        let all = run_context(&groups, &days, false, &[crit(0, n)]);
        assert!(all[0].iter().any(|v| v.is_finite()));
        for g in [0usize, 4_681, 8_999] {
            let (a, b) = (g * per, (g + 1) * per);
            let own = run_context(&groups[a..b], &days[a..b], false, &[crit(a, b)]);
            for (c, name) in RUN_COLUMNS.iter().enumerate() {
                let (x, y) = (&all[c][a..b], &own[c]);
                assert!(
                    x.iter()
                        .zip(y)
                        .all(|(x, y)| x == y || (x.is_nan() && y.is_nan())),
                    "account {g}, {name}: {x:?} vs {y:?}"
                );
            }
        }
    }

    #[test]
    fn timing_run_closes_and_reports_its_start() {
        // One account: within, then GL moves by 50 and IHub follows two days later.
        let groups = [0, 0, 0, 0, 0];
        let days = [0.0, 1.0, 2.0, 3.0, 4.0];
        let lhs = [100.0, 150.0, 170.0, 170.0, 170.0];
        let rhs = [100.0, 100.0, 120.0, 170.0, 170.0];
        let diff: Vec<f64> = lhs.iter().zip(&rhs).map(|(l, r)| l - r).collect();
        let tol = [0.01; 5];
        let c = CriteriaValues {
            diff: &diff,
            tol: &tol,
            sides: Some((&lhs, &rhs)),
        };
        let out = run_context(&groups, &days, true, &[c]);
        let pos = col(&out, "bd_run_pos");
        assert!(pos[0].is_nan() && pos[3].is_nan() && pos[4].is_nan());
        assert_eq!(&pos[1..3], &[0.0, 1.0]);
        assert_eq!(col(&out, "bd_run_len")[2], 2.0);
        assert_eq!(col(&out, "bd_run_closed")[1], 1.0);
        assert_eq!(col(&out, "bd_run_days")[1], 2.0);
        assert_eq!(col(&out, "bd_run_d0")[2], 50.0);
        assert_eq!(col(&out, "bd_run_dlhs0")[2], 50.0);
        assert_eq!(col(&out, "bd_run_drhs0")[2], 0.0);
        assert_eq!(col(&out, "bd_run_const")[1], 1.0);
        assert_eq!(col(&out, "bd_run_lhs_moves")[1], 1.0);
        assert_eq!(col(&out, "bd_run_rhs_frozen")[1], 0.0);
        assert_eq!(col(&out, "bd_run_linear")[1], 0.0);
    }

    #[test]
    fn stale_drift_and_open_runs() {
        // Account 0: IHub frozen at 100 while GL moves (stale), open at the end of data.
        // Account 1: difference grows 5, 10, 15 (drift), then clears.
        let groups = [0, 0, 0, 0, 1, 1, 1, 1, 1];
        let days = [1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 2.0, 3.0, 4.0];
        let lhs = [
            100.0, 110.0, 125.0, 140.0, 1000.0, 1005.0, 1013.0, 1020.0, 1020.0,
        ];
        let rhs = [
            100.0, 100.0, 100.0, 100.0, 1000.0, 1000.0, 1003.0, 1005.0, 1020.0,
        ];
        let diff: Vec<f64> = lhs.iter().zip(&rhs).map(|(l, r)| l - r).collect();
        let tol = [0.01; 9];
        let c = CriteriaValues {
            diff: &diff,
            tol: &tol,
            sides: Some((&lhs, &rhs)),
        };
        let out = run_context(&groups, &days, true, &[c]);
        assert_eq!(col(&out, "bd_run_closed")[1], 0.0, "open at end of data");
        assert_eq!(col(&out, "bd_run_days")[1], 2.0);
        assert_eq!(col(&out, "bd_run_rhs_frozen")[1], 1.0);
        assert_eq!(col(&out, "bd_run_lhs_moves")[1], 1.0);
        assert_eq!(col(&out, "bd_run_const")[1], 0.0);
        assert_eq!(col(&out, "bd_run_linear")[5], 1.0);
        assert_eq!(col(&out, "bd_run_len")[5], 3.0);
        assert_eq!(col(&out, "bd_run_closed")[5], 1.0);
        assert_eq!(col(&out, "bd_run_rhs_frozen")[5], 0.0);
        // Runs never cross accounts.
        assert!(col(&out, "bd_run_pos")[4].is_nan());
        assert_eq!(col(&out, "bd_run_pos")[5], 0.0);
    }

    #[test]
    fn second_criteria_starts_a_run_and_proportional_share() {
        let groups = [0, 0, 0];
        let days = [0.0, 1.0, 2.0];
        let q = [0.0, 0.0, 0.0];
        let qt = [0.0; 3];
        let lhs = [200.0, 400.0, 300.0];
        let rhs = [198.0, 396.0, 297.0];
        let diff: Vec<f64> = lhs.iter().zip(&rhs).map(|(l, r)| l - r).collect();
        let tol = [0.001; 3];
        let out = run_context(
            &groups,
            &days,
            true,
            &[
                CriteriaValues {
                    diff: &q,
                    tol: &qt,
                    sides: None,
                },
                CriteriaValues {
                    diff: &diff,
                    tol: &tol,
                    sides: Some((&lhs, &rhs)),
                },
            ],
        );
        assert_eq!(col(&out, "bd_run_len")[0], 3.0);
        assert_eq!(col(&out, "bd_run_proportional")[2], 1.0);
        assert_eq!(col(&out, "bd_run_d0")[2], 2.0);
        assert!(col(&out, "bd_run_dlhs0")[0].is_nan(), "no previous record");
    }

    #[test]
    fn a_record_that_drops_out_of_the_report_closes_its_run() {
        // Trade 0 is in break on days 0-1 and gone on day 2; trade 1 is in break through day 2.
        let groups = [0, 0, 1, 1, 1];
        let days = [0.0, 1.0, 0.0, 1.0, 2.0];
        let diff = [5.0; 5];
        let tol = [0.0; 5];
        let c = || CriteriaValues {
            diff: &diff,
            tol: &tol,
            sides: None,
        };
        let out = run_context(&groups, &days, true, &[c()]);
        assert_eq!(col(&out, "bd_run_closed")[0], 1.0);
        assert_eq!(col(&out, "bd_run_days")[0], 2.0);
        assert_eq!(
            col(&out, "bd_run_closed")[2],
            0.0,
            "still in break on the last date"
        );
        assert_eq!(col(&out, "bd_run_days")[2], 2.0);
        // Without dates nothing can drop out.
        let out = run_context(&groups, &days, false, &[c()]);
        assert_eq!(col(&out, "bd_run_closed")[0], 0.0);
    }
}
