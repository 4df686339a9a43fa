//! The reconciliation cycle: what one file (or one service record) says about each account, how
//! the case store rolls forward through it, and the run summary that reports both.
//!
//! A cycle is built from the current rows of a file ([`cycle_of`]): each account's records in
//! date order, each a break or not, with the difference and the date its run of breaks began.
//! [`crate::cases::Cases::roll_forward`] then sorts every case of the profile into persisting,
//! cleared or absent, and [`RunSummary`] counts it all.

use std::collections::{BTreeMap, HashSet};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cases::{Absent, Case, Change, Cycle, RollOutcome, UpsertOutcome};

/// The cycle of `df` (current rows with `bd_key`, `bd_date`, the break flag, `bd_difference`
/// and `f_break_age`), or `None` when the profile has no notion of a break (no tolerance and no
/// status) or no dates. `absent` is `[cases] absent`.
pub fn cycle_of(df: &DataFrame, profile: &str, absent: Absent) -> Option<Cycle> {
    let mut b = CycleBuilder::new(profile, absent);
    b.push(df)?;
    Some(b.finish())
}

/// A cycle built from the current rows of a file in pieces (the parts of a bounded-memory run),
/// as [`cycle_of`] builds it from the whole.
pub struct CycleBuilder {
    cycle: Cycle,
    absent: Absent,
    rows: usize,
    breaks_only: bool,
}

impl CycleBuilder {
    pub fn new(profile: &str, absent: Absent) -> CycleBuilder {
        CycleBuilder {
            cycle: Cycle {
                profile: profile.to_string(),
                ..Cycle::default()
            },
            absent,
            rows: 0,
            breaks_only: true,
        }
    }

    /// Adds the rows of `df`; `None` when it lacks what a cycle needs (keys, dates, a notion of
    /// a break).
    pub fn push(&mut self, df: &DataFrame) -> Option<()> {
        let n = df.height();
        let keys = df.column("bd_key").ok()?.str().ok()?.clone();
        let dates = df
            .column("bd_date")
            .ok()?
            .cast(&DataType::Int32)
            .ok()?
            .i32()
            .ok()?
            .clone();
        let out: Vec<bool> = if let Ok(c) = df.column("bd_break") {
            c.bool().ok()?.iter().map(|v| v.unwrap_or(false)).collect()
        } else {
            df.column("bd_within_tolerance")
                .ok()?
                .bool()
                .ok()?
                .iter()
                .map(|v| !v.unwrap_or(true))
                .collect()
        };
        let diff = crate::features::column_f64(df, "bd_difference").unwrap_or(vec![f64::NAN; n]);
        let age = crate::features::column_f64(df, "f_break_age").unwrap_or(vec![0.0; n]);
        self.rows += n;
        self.breaks_only &= out.iter().all(|b| *b);
        for i in 0..n {
            if let (Some(key), Some(d)) = (keys.get(i), dates.get(i)) {
                self.cycle.push_day(key, d, out[i], diff[i], age[i]);
            }
        }
        // A bounded run pushes one part at a time, and a part holds its accounts whole: their
        // records are complete, so no room is kept for more.
        for recs in self.cycle.records.values_mut() {
            recs.shrink_to_fit();
        }
        Some(())
    }

    pub fn finish(mut self) -> Cycle {
        self.cycle.absent_clears = match self.absent {
            Absent::Cleared => true,
            Absent::Unchanged => false,
            Absent::Auto => self.rows > 0 && self.breaks_only,
        };
        self.cycle.seal();
        self.cycle
    }
}

/// A count and total |difference| under one name (a bucket, an age band).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub name: String,
    pub cases: usize,
    pub abs_difference: f64,
}

/// What one reconciliation cycle found and what it did to the cases (`run`'s summary, the
/// service's `GET /runs/latest`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub profile: String,
    /// The file's latest date.
    pub as_of: Option<String>,
    /// When the run ended (UTC, RFC 3339).
    pub at: String,
    /// The file the run read (empty for the service).
    pub file: String,
    pub rows: usize,
    /// Rows within tolerance (not breaks).
    pub matched: usize,
    pub breaks: usize,
    /// Breaks the model flagged as unusual.
    pub flagged: usize,
    /// Breaks routine for their account (quiet).
    pub routine: usize,
    pub new_cases: usize,
    pub persisting: usize,
    pub cleared: usize,
    pub reappeared: usize,
    pub recertified: usize,
    /// Cases whose account was not in the file (nothing changed).
    pub absent: usize,
    /// Cases of the profile still outstanding after the run (not cleared).
    pub outstanding: usize,
    /// Outstanding cases and their total |difference| by bucket, largest total first.
    pub by_bucket: Vec<Tally>,
    /// Outstanding cases and their total |difference| by age band.
    pub by_age: Vec<Tally>,
}

/// The names of the age bands of `bounds` (ascending upper bounds in days): `[1, 5, 30]` gives
/// `0-1`, `2-5`, `6-30`, `>30`.
pub fn age_band_names(bounds: &[u32]) -> Vec<String> {
    let mut names = Vec::with_capacity(bounds.len() + 1);
    let mut lo = 0u32;
    for b in bounds {
        names.push(format!("{lo}-{b}"));
        lo = b.saturating_add(1);
    }
    names.push(match bounds.last() {
        Some(b) => format!(">{b}"),
        None => "all".to_string(),
    });
    names
}

/// The band of an age in days (an index into [`age_band_names`]).
pub fn age_band(bounds: &[u32], days: i64) -> usize {
    bounds
        .iter()
        .position(|b| days <= i64::from(*b))
        .unwrap_or(bounds.len())
}

impl RunSummary {
    /// Counts the upserts of the run's flagged records and the roll-forward.
    pub fn count_cases(&mut self, upserts: &[UpsertOutcome], roll: &RollOutcome) {
        self.count_changes(upserts.iter().map(|o| (o.case.id.as_str(), o.change)), roll);
    }

    /// [`RunSummary::count_cases`] over each record's case id and change.
    pub fn count_changes<'a>(
        &mut self,
        changes: impl Iterator<Item = (&'a str, Change)>,
        roll: &RollOutcome,
    ) {
        let mut seen: HashSet<&str> = HashSet::new();
        for (id, change) in changes {
            if !seen.insert(id) && change != Change::Reappeared {
                continue;
            }
            match change {
                Change::Created => self.new_cases += 1,
                Change::Reappeared => self.reappeared += 1,
                Change::Recertified => self.recertified += 1,
                Change::Updated | Change::Unchanged => {}
            }
        }
        self.persisting = roll.persisting;
        self.cleared = roll.cleared;
        self.recertified += roll.recertified;
        self.absent = roll.absent;
    }

    /// Tallies the outstanding cases (those not cleared) by bucket and age band.
    pub fn tally(&mut self, cases: &[Case], bounds: &[u32]) {
        let names = age_band_names(bounds);
        let mut by_age: Vec<Tally> = names
            .into_iter()
            .map(|name| Tally {
                name,
                ..Tally::default()
            })
            .collect();
        let mut by_bucket: BTreeMap<&str, Tally> = BTreeMap::new();
        self.outstanding = 0;
        for c in cases {
            if c.cleared_on.is_some() || c.status == crate::cases::Status::Cleared {
                continue;
            }
            self.outstanding += 1;
            let d = if c.difference.is_finite() {
                c.difference.abs()
            } else {
                0.0
            };
            let t = &mut by_age[age_band(bounds, c.age_days())];
            t.cases += 1;
            t.abs_difference += d;
            let t = by_bucket.entry(c.bucket.as_str()).or_insert_with(|| Tally {
                name: c.bucket.clone(),
                ..Tally::default()
            });
            t.cases += 1;
            t.abs_difference += d;
        }
        let mut by_bucket: Vec<Tally> = by_bucket.into_values().collect();
        by_bucket.sort_by(|a, b| {
            b.abs_difference
                .total_cmp(&a.abs_difference)
                .then_with(|| a.name.cmp(&b.name))
        });
        self.by_bucket = by_bucket;
        self.by_age = by_age;
    }

    /// The summary as lines for a terminal.
    pub fn lines(&self) -> Vec<String> {
        let fmt = crate::text::fmt_amount;
        let mut out = vec![format!(
            "cycle {}{}: {} rows, {} matched, {} breaks ({} routine), {} flagged",
            self.profile,
            self.as_of
                .as_deref()
                .map(|d| format!(" as of {d}"))
                .unwrap_or_default(),
            self.rows,
            self.matched,
            self.breaks,
            self.routine,
            self.flagged
        )];
        out.push(format!(
            "cases: {} new, {} persisting, {} cleared, {} reappeared, {} recertified; {} outstanding",
            self.new_cases,
            self.persisting,
            self.cleared,
            self.reappeared,
            self.recertified,
            self.outstanding
        ));
        let join = |ts: &[Tally]| -> String {
            ts.iter()
                .filter(|t| t.cases > 0)
                .map(|t| format!("{} {} ({})", t.name, t.cases, fmt(t.abs_difference)))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if self.outstanding > 0 {
            out.push(format!("outstanding by age (days): {}", join(&self.by_age)));
            out.push(format!("outstanding by bucket: {}", join(&self.by_bucket)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_bands_cover_every_age_once() {
        let b = [1, 5, 30];
        assert_eq!(age_band_names(&b), ["0-1", "2-5", "6-30", ">30"]);
        let bands: Vec<usize> = [0, 1, 2, 5, 6, 30, 31, 400]
            .iter()
            .map(|d| age_band(&b, *d))
            .collect();
        assert_eq!(bands, [0, 0, 1, 1, 2, 2, 3, 3]);
    }

    #[test]
    fn a_file_of_breaks_only_means_absent_accounts_cleared() {
        let df = df!(
            "bd_key" => ["a", "a", "b"],
            "bd_date" => [19_000i32, 19_001, 19_000],
            "bd_break" => [true, true, true],
            "bd_difference" => [5.0, 6.0, 7.0],
            "f_break_age" => [0.0, 1.0, 0.0],
        )
        .unwrap();
        let c = cycle_of(&df, "trades", Absent::Auto).unwrap();
        assert!(c.absent_clears);
        assert_eq!(c.dates.len(), 2);
        let a = &c.records["a"];
        assert_eq!(a[1].start, a[0].date, "the run began on the first record");
        assert!(
            !cycle_of(&df, "trades", Absent::Unchanged)
                .unwrap()
                .absent_clears
        );
        let df2 = df!(
            "bd_key" => ["a", "b"],
            "bd_date" => [19_000i32, 19_000],
            "bd_break" => [true, false],
            "bd_difference" => [5.0, 0.0],
            "f_break_age" => [0.0, 0.0],
        )
        .unwrap();
        assert!(
            !cycle_of(&df2, "gl_ihub", Absent::Auto)
                .unwrap()
                .absent_clears
        );
        assert!(
            cycle_of(&df2, "gl_ihub", Absent::Cleared)
                .unwrap()
                .absent_clears
        );
    }

    #[test]
    fn a_file_in_account_order_keeps_its_dates_distinct_as_they_come() {
        // 3,000 accounts × 30 days, account by account: the date changes on every row.
        let mut c = crate::cases::Cycle::default();
        for a in 0..3_000 {
            let key = format!("acct-{a}");
            for d in 0..30 {
                c.push_day(&key, 19_000 + d, d % 7 == 0, f64::from(d), 0.0);
            }
            // Never more than a little slack beyond the distinct dates.
            assert!(
                c.dates.len() <= 1024 + 4 * 30,
                "{} dates held",
                c.dates.len()
            );
        }
        c.seal();
        let want: Vec<chrono::NaiveDate> = (0..30)
            .map(|d| {
                chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                    + chrono::Duration::days(19_000 + d)
            })
            .collect();
        assert_eq!(c.dates, want);
        assert_eq!(c.as_of(), want.last().copied());
        assert_eq!(c.records.len(), 3_000);
        assert!(c.records.values().all(|r| r.len() == 30));
    }
}
