//! What one reconciliation cycle found and what it did to the cases: the run summary each run
//! stores and reports (`run`'s summary, the service's `GET /runs/latest`, the email report's
//! cycle lines). Built by the drivers (the cycle module re-exports it), read by dispatch.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{Case, Change, RollOutcome, UpsertOutcome};

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
            if c.cleared_on.is_some() || c.status == super::Status::Cleared {
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
}
