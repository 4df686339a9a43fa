//! Each account's own normal: which breaks are routine for their account, and how far an
//! unexplained break sits from what the account usually shows.
//!
//! Many breaks are routine for their account: a reconciling item carried at the same amount
//! record after record, a side that books every posting one record late, a month-end accrual that
//! comes back every month. For every record out of tolerance, this module looks at the account's
//! earlier records (at most `window` of them, oldest first) and tries the explanations the
//! profile allows:
//!
//! - **standing item**: the same difference (within the record's tolerance) was carried on at
//!   least `standing_records` earlier records;
//! - **recurring**: the same difference came back after clearing: an earlier, separate run of
//!   breaks had it (within `recurring_exact` of it), or had one of the same sign within
//!   `recurring_share` at the same point of the month (last or first business day);
//! - **habitual lag**: one side today equals the other side on the previous record, and at least
//!   `lag_records` of the account's earlier movements (and half of them) were taken that way;
//! - **reversal**: the previous record's break was routine and today's difference undoes it.
//!
//! Each explanation predicts a difference; the one closest to today's wins (a prediction of 0,
//! "matched", is always there). The *residual* is today's difference minus that prediction: zero
//! for a routine break, the whole difference for a break on an account that normally matches,
//! and the change for a standing item that moved. A break is **routine** when its residual is
//! within tolerance. The *own z* of an unexplained break measures its residual against the
//! account's earlier residuals: |r − median| / max(1.4826·MAD, tolerance, 0.01, `level_floor` ×
//! the account's balance level), once the account has `min_history` earlier records.
//!
//! Everything here looks only at earlier records, so one record scored on its own (the service)
//! gets what the batch gives it, provided at least `2 × window + 1` earlier records are kept.

use serde::{Deserialize, Serialize};

/// Why a break is routine for its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Reason {
    Standing,
    Recurring,
    Lag,
    Reversal,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::Standing,
        Reason::Recurring,
        Reason::Lag,
        Reason::Reversal,
    ];

    /// The name written in outputs (`routine` column) and summaries.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Standing => "standing item",
            Reason::Recurring => "recurring",
            Reason::Lag => "habitual lag",
            Reason::Reversal => "reversal",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The code kept in a numeric column (0 = not routine).
    pub fn code(&self) -> u8 {
        match self {
            Reason::Standing => 1,
            Reason::Recurring => 2,
            Reason::Lag => 3,
            Reason::Reversal => 4,
        }
    }

    pub fn from_code(c: u8) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == c)
    }
}

/// Which explanations a profile allows (its `[routine]` table, read with the profile).
pub use crate::profile::Patterns;

/// The thresholds of the explanations (`[features]` of the config) and the profile's patterns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub patterns: Patterns,
    /// Earlier records looked at.
    pub window: usize,
    /// Records an amount must have been carried on to be a standing item.
    pub standing_records: usize,
    /// Relative closeness of a recurring break at the same point of the month.
    pub recurring_share: f64,
    /// Relative closeness of a recurring break anywhere.
    pub recurring_exact: f64,
    /// Earlier movements taken one record late before a lag is a habit.
    pub lag_records: usize,
    /// Share of the earlier movements that must have been taken late.
    pub lag_share: f64,
    /// Earlier records needed before the own z is computed.
    pub min_history: usize,
    /// Floor of the own z's scale as a share of the account's balance level.
    pub level_floor: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            patterns: Patterns::default(),
            window: 60,
            standing_records: 5,
            recurring_share: 0.25,
            recurring_exact: 0.005,
            lag_records: 3,
            lag_share: 0.5,
            min_history: 5,
            level_floor: 1e-6,
        }
    }
}

/// One record of an account, as the explanations read it: the first criteria.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rec {
    /// Days since 1970-01-01 (NaN without a date).
    pub day: f64,
    /// The two sides (NaN when the criteria has none).
    pub lhs: f64,
    pub rhs: f64,
    pub diff: f64,
    pub tol: f64,
    /// Another criteria is out of tolerance on this record (then no explanation of the first
    /// one makes the record routine).
    pub other_break: bool,
}

/// What the explanations say of one record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Own {
    /// The difference the best explanation predicts (0 when none applies).
    pub expected: f64,
    /// `diff − expected`.
    pub residual: f64,
    /// Set when the record is a break and its residual is within tolerance.
    pub routine: Option<Reason>,
    /// The own z of the residual (0 within tolerance, for routine breaks and without enough
    /// history).
    pub own_z: f64,
    /// Earlier records looked at.
    pub history: usize,
    /// Routine by a pattern of the account (standing, recurring, lag), reversals left aside.
    pub base_routine: bool,
}

fn tol_of(r: &Rec) -> f64 {
    if r.tol.is_finite() {
        r.tol.max(0.0)
    } else {
        0.0
    }
}

fn out_of_tol(r: &Rec) -> bool {
    r.diff.is_finite() && r.diff.abs() > tol_of(r) + 1e-9
}

/// Where a day sits in its month: 1 = last business day, 2 = first business day, 0 = neither.
fn month_point(day: f64) -> u8 {
    use chrono::{Datelike, Weekday};
    if !day.is_finite() {
        return 0;
    }
    let Some(d) = crate::ingest::clean::days_to_date(day as i32) else {
        return 0;
    };
    let weekend = |x: chrono::NaiveDate| matches!(x.weekday(), Weekday::Sat | Weekday::Sun);
    let step = |x: chrono::NaiveDate, fwd: bool| {
        let mut n = x;
        loop {
            n = match if fwd { n.succ_opt() } else { n.pred_opt() } {
                Some(v) => v,
                None => return x,
            };
            if !weekend(n) {
                return n;
            }
        }
    };
    if step(d, true).month() != d.month() {
        1
    } else if step(d, false).month() != d.month() {
        2
    } else {
        0
    }
}

/// Explains every record of one account, oldest first.
pub fn explain(recs: &[Rec], p: &Params) -> Vec<Own> {
    let mut out: Vec<Own> = Vec::with_capacity(recs.len());
    let mut buf: Vec<f64> = Vec::new();
    let points: Vec<u8> = if p.patterns.recurring {
        recs.iter().map(|r| month_point(r.day)).collect()
    } else {
        Vec::new()
    };
    for t in 0..recs.len() {
        let own = explain_one(recs, &out, &points, t, p, &mut buf);
        out.push(own);
    }
    out
}

/// How many earlier records [`explain_last`] needs to give what [`explain`] gives.
pub fn reach(p: &Params) -> usize {
    2 * p.window.max(1) + 3
}

/// Explains the last record of `recs` (the account's earlier records before it), as
/// [`explain`] would.
pub fn explain_last(recs: &[Rec], p: &Params) -> Option<Own> {
    // The records the last one's explanation and own z can reach: its window, the window of
    // each of those (and the record before it, for lags and reversals).
    let reach = reach(p);
    let start = recs.len().saturating_sub(reach);
    explain(&recs[start..], p).pop()
}

fn explain_one(
    recs: &[Rec],
    done: &[Own],
    points: &[u8],
    t: usize,
    p: &Params,
    buf: &mut Vec<f64>,
) -> Own {
    let me = &recs[t];
    let lo = t.saturating_sub(p.window.max(1));
    let history = t - lo;
    let d = me.diff;
    let tol = tol_of(me);
    if !out_of_tol(me) || !d.is_finite() {
        return Own {
            expected: 0.0,
            residual: if d.is_finite() { d } else { 0.0 },
            routine: None,
            own_z: 0.0,
            history,
            base_routine: false,
        };
    }
    let mut best = Best {
        d,
        abs: d.abs(),
        expected: 0.0,
        reason: None,
    };
    if p.patterns.standing && p.standing_records > 0 && history >= p.standing_records {
        standing(&recs[lo..t], tol, p, buf, &mut best);
    }
    if p.patterns.lag && t > 0 && me.lhs.is_finite() && me.rhs.is_finite() {
        lag(recs, lo, t, p, &mut best);
    }
    if p.patterns.recurring && best.abs > tol {
        recurring(recs, points, lo, t, tol, p, &mut best);
    }

    // Explained by the account's own patterns (before reversals, so that a reversal depends on
    // one earlier record only).
    let base_routine = best.reason.is_some() && best.abs <= tol + 1e-9 && !me.other_break;

    // Reversal of a break on the previous record that its patterns explained.
    if p.patterns.reversal && t > 0 && best.abs > tol {
        let prev = &recs[t - 1];
        if done[t - 1].base_routine && out_of_tol(prev) {
            best.consider(-prev.diff, Reason::Reversal);
        }
    }

    let (abs_res, expected, reason) = (best.abs, best.expected, best.reason);
    let residual = d - expected;
    let routine = if abs_res <= tol + 1e-9 && !me.other_break {
        reason
    } else {
        None
    };
    let own_z = if routine.is_some() || history < p.min_history.max(1) {
        0.0
    } else {
        own_z(&done[lo..t], &recs[lo..=t], residual, tol, p, buf)
    };
    Own {
        expected,
        residual,
        routine,
        own_z,
        history,
        base_routine,
    }
}

/// The closest explanation of a break's difference `d` so far: |residual|, the expected
/// amount, and the pattern.
struct Best {
    d: f64,
    abs: f64,
    expected: f64,
    reason: Option<Reason>,
}

impl Best {
    /// `expected` by `reason`, kept when it leaves a smaller residual.
    fn consider(&mut self, expected: f64, reason: Reason) {
        let r = (self.d - expected).abs();
        if expected.is_finite() && r < self.abs {
            (self.abs, self.expected, self.reason) = (r, expected, Some(reason));
        }
    }
}

fn close(a: f64, b: f64, slack: f64) -> bool {
    (a - b).abs() <= slack + 1e-9
}

/// Standing items: amounts carried on at least `standing_records` of the earlier records.
fn standing(earlier: &[Rec], tol: f64, p: &Params, buf: &mut Vec<f64>, best: &mut Best) {
    buf.clear();
    buf.extend(earlier.iter().filter(|r| out_of_tol(r)).map(|r| r.diff));
    if buf.len() < p.standing_records {
        return;
    }
    buf.sort_by(f64::total_cmp);
    let mut i = 0;
    while i < buf.len() {
        let mut j = i + 1;
        while j < buf.len() && close(buf[j], buf[i], tol) {
            j += 1;
        }
        if j - i >= p.standing_records {
            // The amount of the group: its middle value.
            best.consider(buf[i + (j - i) / 2], Reason::Standing);
        }
        i = j;
    }
}

/// Habitual lag, either side behind the other by one record.
fn lag(recs: &[Rec], lo: usize, t: usize, p: &Params, best: &mut Best) {
    let (me, prev) = (&recs[t], &recs[t - 1]);
    for lhs_leads in [true, false] {
        // (the leading side, the lagging side) of a record.
        let lead = |r: &Rec| {
            if lhs_leads {
                (r.lhs, r.rhs)
            } else {
                (r.rhs, r.lhs)
            }
        };
        let (mut moves, mut late) = (0usize, 0usize);
        for s in lo.max(1)..t {
            let (l1, _) = lead(&recs[s - 1]);
            let (l2, f2) = lead(&recs[s]);
            let stol = tol_of(&recs[s]);
            if (l2 - l1).abs() > stol + 1e-9 {
                moves += 1;
                if close(f2, l1, stol) {
                    late += 1;
                }
            }
        }
        if late >= p.lag_records.max(1) && late as f64 >= p.lag_share * moves as f64 {
            let (lead_prev, _) = lead(prev);
            let (lead_now, _) = lead(me);
            // The lagging side should hold the leading side's previous value.
            let expected = if lhs_leads {
                lead_now - lead_prev
            } else {
                lead_prev - lead_now
            };
            best.consider(expected, Reason::Lag);
        }
    }
}

/// Recurring: an earlier, separate run of breaks with the same difference.
fn recurring(
    recs: &[Rec],
    points: &[u8],
    lo: usize,
    t: usize,
    tol: f64,
    p: &Params,
    best: &mut Best,
) {
    let d = best.d;
    let mut separated = false;
    for s in (lo..t).rev() {
        let r = &recs[s];
        if !out_of_tol(r) {
            separated = true;
            continue;
        }
        if !separated || r.diff.signum() != d.signum() {
            continue;
        }
        let size = r.diff.abs().max(d.abs());
        let rel = (r.diff - d).abs() / size;
        let same_point = points[s] != 0 && points[s] == points[t];
        if rel <= p.recurring_exact
            || close(r.diff, d, tol)
            || (same_point && rel <= p.recurring_share)
        {
            // The amount is one the account had before: explained as it is.
            best.consider(d, Reason::Recurring);
            break;
        }
    }
}

/// How unusual `residual` is for the account: its distance from the median of the earlier
/// residuals, in robust standard deviations (1.4826 × MAD, floored at the tolerance, 0.01 and
/// a share of the account's level over `window`, the records up to this one).
fn own_z(
    earlier: &[Own],
    window: &[Rec],
    residual: f64,
    tol: f64,
    p: &Params,
    buf: &mut Vec<f64>,
) -> f64 {
    use crate::linalg::percentile_select;
    buf.clear();
    buf.extend(earlier.iter().map(|o| o.residual).filter(|v| v.is_finite()));
    if buf.is_empty() {
        return 0.0;
    }
    let (med, mad) = crate::linalg::median_mad(buf);
    buf.clear();
    buf.extend(
        window
            .iter()
            .map(|r| r.lhs.abs().max(r.rhs.abs()))
            .filter(|v| v.is_finite()),
    );
    let level = if buf.is_empty() {
        0.0
    } else {
        percentile_select(buf, 50.0)
    };
    let scale = (1.4826 * mad).max(tol).max(0.01).max(p.level_floor * level);
    let z = (residual - med).abs() / scale;
    if z.is_finite() { z.min(1e6) } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> f64 {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        (chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap() - epoch).num_days() as f64
    }

    /// Business days from 2024-01-02.
    fn days(n: usize) -> Vec<f64> {
        let mut out = Vec::new();
        let mut d = chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        while out.len() < n {
            use chrono::Datelike;
            if !matches!(d.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun) {
                out.push((d - epoch).num_days() as f64);
            }
            d = d.succ_opt().unwrap();
        }
        out
    }

    fn rec(day: f64, lhs: f64, rhs: f64) -> Rec {
        Rec {
            day,
            lhs,
            rhs,
            diff: lhs - rhs,
            tol: 0.01,
            other_break: false,
        }
    }

    /// A GL balance that moves by irregular amounts on most days.
    fn gl(n: usize) -> Vec<f64> {
        let mut x: u64 = 12345;
        let mut bal = 100_000.0;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let step = (x >> 33) % 5000;
                if !step.is_multiple_of(4) {
                    bal += step as f64 - 2400.0 + (x >> 50) as f64 / 1e4;
                }
                bal
            })
            .collect()
    }

    #[test]
    fn month_points() {
        assert_eq!(month_point(day(2024, 1, 31)), 1);
        assert_eq!(month_point(day(2024, 2, 1)), 2);
        assert_eq!(month_point(day(2024, 2, 15)), 0);
        // Friday 2024-05-31 is the last business day; Monday 2024-06-03 the first.
        assert_eq!(month_point(day(2024, 5, 31)), 1);
        assert_eq!(month_point(day(2024, 6, 3)), 2);
        assert_eq!(month_point(f64::NAN), 0);
    }

    #[test]
    fn a_standing_item_becomes_routine_and_its_move_does_not() {
        let p = Params::default();
        let g = gl(30);
        let ds = days(30);
        let mut recs: Vec<Rec> = (0..30).map(|i| rec(ds[i], g[i], g[i] - 1234.5)).collect();
        // On day 25 the standing item moves by 800.
        recs[25].rhs -= 800.0;
        recs[25].diff = recs[25].lhs - recs[25].rhs;
        let own = explain(&recs, &p);
        // The first five records are not yet a standing item.
        for o in &own[..5] {
            assert_eq!(o.routine, None);
        }
        for (i, o) in own.iter().enumerate().skip(5) {
            if i == 25 {
                assert_eq!(o.routine, None, "the moved item is not routine");
                assert!((o.residual - 800.0).abs() < 1e-6, "{o:?}");
                assert!(o.own_z > 100.0, "{o:?}");
            } else {
                assert_eq!(o.routine, Some(Reason::Standing), "record {i}: {o:?}");
                assert!(o.residual.abs() < 1e-6);
                assert_eq!(o.own_z, 0.0);
            }
        }
    }

    #[test]
    fn a_habitual_lag_is_routine_until_the_lag_stops_clearing() {
        let p = Params::default();
        let g = gl(40);
        let ds = days(40);
        let mut recs: Vec<Rec> = (0..40)
            .map(|i| rec(ds[i], g[i], if i == 0 { g[0] } else { g[i - 1] }))
            .collect();
        // From record 30 the sub-ledger stops updating.
        for i in 30..40 {
            recs[i].rhs = recs[29].rhs;
            recs[i].diff = recs[i].lhs - recs[i].rhs;
        }
        let own = explain(&recs, &p);
        let lag_breaks: Vec<usize> = (10..30).filter(|i| out_of_tol(&recs[*i])).collect();
        assert!(lag_breaks.len() > 10);
        for &i in &lag_breaks {
            assert_eq!(
                own[i].routine,
                Some(Reason::Lag),
                "record {i}: {:?}",
                own[i]
            );
        }
        // From then on the lag does not clear.
        let stuck: Vec<usize> = (30..40)
            .filter(|i| out_of_tol(&recs[*i]) && own[*i].routine.is_none())
            .collect();
        assert!(stuck.len() >= 7, "{stuck:?} {:?}", &own[30..]);
        assert!(
            stuck.iter().all(|i| own[*i].own_z > 3.0),
            "{:?}",
            &own[30..]
        );
    }

    #[test]
    fn a_month_end_accrual_recurs_and_its_first_occurrence_is_unexplained() {
        let p = Params::default();
        let ds = days(70);
        let recs: Vec<Rec> = ds
            .iter()
            .map(|d| {
                let accrual = if month_point(*d) == 1 {
                    // 5,000 give or take 4 %.
                    5_000.0 * (1.0 + 0.04 * ((*d as i64 % 3) as f64 - 1.0))
                } else {
                    0.0
                };
                rec(*d, 10_000.0 + accrual, 10_000.0)
            })
            .collect();
        let own = explain(&recs, &p);
        let ends: Vec<usize> = (0..recs.len()).filter(|i| out_of_tol(&recs[*i])).collect();
        assert_eq!(ends.len(), 3, "three month ends in 70 business days");
        assert_eq!(own[ends[0]].routine, None);
        assert!(own[ends[0]].own_z > 100.0);
        assert_eq!(own[ends[1]].routine, Some(Reason::Recurring));
        assert_eq!(own[ends[2]].routine, Some(Reason::Recurring));
    }

    #[test]
    fn a_break_on_an_account_that_matches_is_unusual_for_it() {
        let p = Params::default();
        let ds = days(20);
        let g = gl(20);
        let mut recs: Vec<Rec> = (0..20).map(|i| rec(ds[i], g[i], g[i])).collect();
        // A missing entry of 700 for four records.
        for r in recs.iter_mut().take(16).skip(12) {
            r.rhs -= 700.0;
            r.diff = r.lhs - r.rhs;
        }
        let own = explain(&recs, &p);
        for o in &own[12..16] {
            assert_eq!(o.routine, None, "{o:?}");
            assert!(o.own_z > 1000.0, "{o:?}");
        }
        for o in own.iter().take(12) {
            assert_eq!(o.own_z, 0.0);
            assert_eq!(o.residual, 0.0);
        }
    }

    #[test]
    fn a_reversal_is_routine_only_after_a_routine_break() {
        let p = Params::default();
        let ds = days(30);
        // 500 on records 5 and 20 (the second recurs); -400 then -500 on the next records.
        let diff = |t: usize| match t {
            5 | 20 => 500.0,
            6 => -400.0,
            21 => -500.0,
            _ => 0.0,
        };
        let recs: Vec<Rec> = (0..30)
            .map(|t| rec(ds[t], 10_000.0 + diff(t), 10_000.0))
            .collect();
        let own = explain(&recs, &p);
        assert_eq!(own[5].routine, None, "first occurrence");
        assert_eq!(own[6].routine, None, "after an unexplained break");
        assert!(own[6].own_z > 100.0, "{:?}", own[6]);
        assert_eq!(own[20].routine, Some(Reason::Recurring));
        assert_eq!(own[21].routine, Some(Reason::Reversal));
        assert_eq!(own[21].residual, 0.0);
        // Switched off, the reversal is a break again.
        let off = Params {
            patterns: Patterns {
                reversal: false,
                ..Patterns::default()
            },
            ..p
        };
        assert_eq!(explain(&recs, &off)[21].routine, None);
    }

    #[test]
    fn another_criteria_out_of_tolerance_keeps_the_break() {
        let p = Params::default();
        let ds = days(12);
        let mut recs: Vec<Rec> = (0..12).map(|i| rec(ds[i], 500.0, 400.0)).collect();
        recs[10].other_break = true;
        let own = explain(&recs, &p);
        assert_eq!(own[9].routine, Some(Reason::Standing));
        assert_eq!(own[10].routine, None);
        assert_eq!(own[11].routine, Some(Reason::Standing));
    }

    #[test]
    fn patterns_can_be_switched_off() {
        let p = Params {
            patterns: Patterns {
                standing: false,
                recurring: false,
                lag: false,
                reversal: false,
            },
            ..Params::default()
        };
        let ds = days(12);
        let recs: Vec<Rec> = (0..12).map(|i| rec(ds[i], 500.0, 400.0)).collect();
        assert!(explain(&recs, &p).iter().all(|o| o.routine.is_none()));
    }

    #[test]
    fn the_last_record_alone_is_explained_as_in_the_batch() {
        let p = Params {
            window: 10,
            ..Params::default()
        };
        let ds = days(80);
        let g = gl(80);
        let recs: Vec<Rec> = (0..80)
            .map(|i| {
                let standing = if i % 17 < 12 { 300.0 } else { 0.0 };
                rec(
                    ds[i],
                    g[i],
                    if i % 5 == 0 {
                        g[i] - 40.0
                    } else {
                        g[i] - standing
                    },
                )
            })
            .collect();
        let all = explain(&recs, &p);
        for t in 0..recs.len() {
            let one = explain_last(&recs[..=t], &p).unwrap();
            assert_eq!(one, all[t], "record {t}");
        }
    }
}
