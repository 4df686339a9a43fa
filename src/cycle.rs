//! The reconciliation cycle: what one file (or one service record) says about each account, how
//! the case store rolls forward through it, and the run summary that reports both (kept in
//! [`crate::cases`], which dispatch may read, and re-exported here).
//!
//! A cycle is built from the current rows of a file ([`cycle_of`]): each account's records in
//! date order, each a break or not, with the difference and the date its run of breaks began.
//! [`crate::cases::Cases::roll_forward`] then sorts every case of the profile into persisting,
//! cleared or absent, and [`RunSummary`] counts it all.

use polars::prelude::*;

use crate::cases::{Absent, Cycle};

/// The run summary lives with the cases (dispatch reads it too); its users name it here.
pub use crate::cases::{RunSummary, Tally, age_band, age_band_names};

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
        // The columns are walked in order (reading a chunked column at a row looks up its
        // chunk), and a day made a date once for the rows of that day that follow it.
        let mut day: Option<(i32, Option<chrono::NaiveDate>)> = None;
        for (i, (key, d)) in keys.iter().zip(dates.iter()).enumerate() {
            let (Some(key), Some(d)) = (key, d) else {
                continue;
            };
            let date = match day {
                Some((at, date)) if at == d => date,
                _ => {
                    let date = crate::cases::date_of_day(d);
                    day = Some((d, date));
                    date
                }
            };
            if let Some(date) = date {
                self.cycle.push_date(key, date, out[i], diff[i], age[i]);
            }
        }
        // A bounded run pushes one part at a time, and a part holds its accounts whole: their
        // records are complete, so no room is kept for more.
        for recs in self.cycle.records.values_mut() {
            recs.shrink_to_fit();
        }
        Some(())
    }

    /// The columns of `df` that [`CycleBuilder::push`] reads (sharing their data): what a
    /// builder elsewhere needs of a table.
    pub fn columns(df: &DataFrame) -> DataFrame {
        let cols: Vec<Column> = CYCLE_COLUMNS
            .iter()
            .filter_map(|name| df.column(name).ok().cloned())
            .collect();
        DataFrame::new(df.height(), cols).unwrap_or_default()
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

/// The columns a cycle is built from.
const CYCLE_COLUMNS: [&str; 6] = [
    "bd_key",
    "bd_date",
    "bd_break",
    "bd_within_tolerance",
    "bd_difference",
    "f_break_age",
];

/// A cycle built on a thread of its own from the pieces sent to it ([`CycleBuilder`]), while
/// the sender goes on with the next piece.
pub struct CycleFeed {
    /// The builder's thread and what it is sent; None: built on the caller's thread (no
    /// thread could be started).
    thread: Option<(
        std::sync::mpsc::SyncSender<DataFrame>,
        std::thread::JoinHandle<Option<Cycle>>,
    )>,
    here: CycleBuilder,
    /// Whether every piece had what a cycle needs (and reached the builder).
    whole: bool,
}

impl CycleFeed {
    pub fn start(profile: &str, absent: Absent) -> CycleFeed {
        // A piece is handed over when the builder takes it (the one before is added by then):
        // one piece is held at a time.
        let (tx, rx) = std::sync::mpsc::sync_channel::<DataFrame>(0);
        let name = profile.to_string();
        let thread = std::thread::Builder::new()
            .name("breakdesk-cycle".into())
            .spawn(move || {
                let mut b = CycleBuilder::new(&name, absent);
                let mut whole = true;
                for piece in rx {
                    whole &= b.push(&piece).is_some();
                }
                whole.then(|| b.finish())
            })
            .ok()
            .map(|h| (tx, h));
        CycleFeed {
            thread,
            here: CycleBuilder::new(profile, absent),
            whole: true,
        }
    }

    /// Adds the rows of `df` (its columns [`CycleBuilder::columns`] names).
    pub fn push(&mut self, df: &DataFrame) {
        let piece = CycleBuilder::columns(df);
        match &self.thread {
            Some((tx, _)) => self.whole &= tx.send(piece).is_ok(),
            None => self.whole &= self.here.push(&piece).is_some(),
        }
    }

    /// The cycle of every piece, or None when a piece lacked what a cycle needs.
    pub fn finish(self) -> Option<Cycle> {
        match self.thread {
            Some((tx, built)) => {
                drop(tx);
                let cycle = built.join().ok().flatten();
                cycle.filter(|_| self.whole)
            }
            None => self.whole.then(|| self.here.finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Pieces sent to the feed's thread make the cycle the whole table makes, and a piece
    /// without what a cycle needs leaves no cycle, as a whole table without it does.
    #[test]
    fn a_cycle_fed_piece_by_piece_is_the_whole_tables() {
        let n = 5_000usize;
        let keys: Vec<String> = (0..n).map(|i| format!("acct-{}", i % 37)).collect();
        let df = df!(
            "bd_key" => keys,
            "bd_date" => (0..n).map(|i| 19_000 + (i % 11) as i32).collect::<Vec<_>>(),
            "bd_within_tolerance" => (0..n).map(|i| i % 5 != 0).collect::<Vec<_>>(),
            "bd_difference" => (0..n).map(|i| i as f64 * 0.5).collect::<Vec<_>>(),
            "f_break_age" => (0..n).map(|i| (i % 4) as f64).collect::<Vec<_>>(),
            "other" => vec![1i32; n],
        )
        .unwrap();
        let whole = cycle_of(&df, "gl_ihub", Absent::Auto).unwrap();
        let mut feed = CycleFeed::start("gl_ihub", Absent::Auto);
        for at in (0..n).step_by(1_300) {
            feed.push(&df.slice(at as i64, 1_300));
        }
        let fed = feed.finish().unwrap();
        assert_eq!(fed.profile, whole.profile);
        assert_eq!(fed.dates, whole.dates);
        assert_eq!(fed.records, whole.records);
        assert_eq!(fed.absent_clears, whole.absent_clears);
        assert_eq!(
            CycleBuilder::columns(&df).width(),
            5,
            "the cycle's columns alone"
        );

        let mut feed = CycleFeed::start("gl_ihub", Absent::Auto);
        feed.push(&df.slice(0, 100));
        feed.push(&df.drop("bd_date").unwrap());
        assert!(feed.finish().is_none());
    }
}
