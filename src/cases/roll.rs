//! The daily roll-forward of breaks from one reconciliation cycle to the next.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{CaseTree, CaseTxn, TxError};

use super::codec::{
    EventNote, OUTSTANDING_INDEXED, OUTSTANDING_TAG, append_event_note, break_prefix,
    decode_brief_case, decode_case, load_case, outstanding_in, outstanding_marker, put_case,
    ticket_number,
};
use super::*;

/// How breaks roll forward from one reconciliation cycle to the next (`[cases]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RollParams {
    /// A cleared break that comes back within this many days of clearing reopens its case;
    /// later it is a new case.
    pub reopen_days: i64,
    /// A decided case whose difference moves by more than this share of the difference judged
    /// (or changes sign) goes back to review.
    pub recertify_share: f64,
    /// Days from a case's opening to its due date, by severity: low, medium, high, critical
    /// (an unknown severity takes medium's).
    pub sla_days: [u32; 4],
}

impl Default for RollParams {
    fn default() -> Self {
        RollParams {
            reopen_days: 5,
            recertify_share: 0.10,
            sla_days: [10, 5, 2, 1],
        }
    }
}

/// What an open case whose account is missing from a file means (`[cases] absent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Absent {
    /// Cleared when the file lists only breaks (as a trades break report does); otherwise
    /// nothing changes.
    #[default]
    Auto,
    /// Always cleared.
    Cleared,
    /// Never changed.
    Unchanged,
}

impl std::str::FromStr for Absent {
    type Err = String;
    fn from_str(s: &str) -> Result<Absent, String> {
        match s {
            "auto" => Ok(Absent::Auto),
            "cleared" => Ok(Absent::Cleared),
            "unchanged" => Ok(Absent::Unchanged),
            _ => Err(format!(
                "must be \"auto\", \"cleared\" or \"unchanged\", found {s:?}"
            )),
        }
    }
}

/// How a run's cases are opened, owned and rolled forward (`[cases]`, parsed).
#[derive(Clone, Debug)]
pub struct CaseOptions {
    pub roll: RollParams,
    pub absent: Absent,
    /// Upper bounds (days, ascending) of the age bands of the run summary.
    pub age_bands: Vec<u32>,
    /// The owners of new cases (`[[cases.routes]]`, compiled).
    pub router: std::sync::Arc<crate::routing::Router>,
}

impl Default for CaseOptions {
    /// As `config/default.toml` sets `[cases]`: no routes.
    fn default() -> Self {
        CaseOptions {
            roll: RollParams::default(),
            absent: Absent::Auto,
            age_bands: vec![1, 5, 30],
            router: std::sync::Arc::default(),
        }
    }
}

impl RollParams {
    /// The due date of a case of `severity` opened on `opened`.
    pub fn due(&self, opened: NaiveDate, severity: &str) -> NaiveDate {
        let [low, medium, high, critical] = self.sla_days;
        let days = match severity.trim().to_ascii_lowercase().as_str() {
            "low" => low,
            "high" => high,
            "critical" => critical,
            _ => medium,
        };
        opened + chrono::Duration::days(i64::from(days))
    }
}

/// One record of an account in a reconciliation cycle (a file or a service record), as
/// [`Cases::roll_forward`] needs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CycleRecord {
    /// The record's date.
    pub date: NaiveDate,
    /// Whether the record is a break (out of tolerance, or a break status).
    pub out: bool,
    /// The difference between the books.
    pub difference: f64,
    /// For a break, the date its run of out-of-tolerance records began.
    pub start: NaiveDate,
}

/// A reconciliation cycle: what one file (or record) says about each account.
#[derive(Clone, Debug, Default)]
pub struct Cycle {
    /// The profile of the file.
    pub profile: String,
    /// Each account's records in this cycle, by key, in date order.
    pub records: HashMap<String, Vec<CycleRecord>>,
    /// The distinct dates of the file, ascending (the as-of date is the last).
    pub dates: Vec<NaiveDate>,
    /// Whether an account missing from the file has cleared (a report that lists only breaks,
    /// such as a trades break report) rather than being absent (nothing changes).
    pub absent_clears: bool,
    /// Cases opened by this cycle itself: new, neither persisting nor cleared by it (the next
    /// cycle tells whether they cleared); they take the cycle's latest date while they persist.
    pub opened: std::collections::HashSet<String>,
    /// Only the cases of the cycle's own accounts are looked at (a service record): found
    /// through the break index instead of reading every case of the profile.
    pub keyed: bool,
}

/// The date `day` days after 1970-01-01 (None when there is no such date).
pub fn date_of_day(day: i32) -> Option<NaiveDate> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    epoch.checked_add_signed(chrono::Duration::days(i64::from(day)))
}

impl Cycle {
    /// Adds a record of `key` on `day` (days since 1970-01-01), a break or not, `age` days
    /// after its break began (the break age; a negative, absurd or missing age counts as 0).
    /// A record without a key or with an impossible day is left out. Call [`Cycle::seal`] after
    /// the last one.
    pub fn push_day(&mut self, key: &str, day: i32, out: bool, difference: f64, age: f64) {
        if let Some(date) = date_of_day(day) {
            self.push_date(key, date, out, difference, age);
        }
    }

    /// [`Cycle::push_day`] of a record on `date`.
    pub fn push_date(&mut self, key: &str, date: NaiveDate, out: bool, difference: f64, age: f64) {
        if key.is_empty() {
            return;
        }
        let days = if age.is_finite() && (0.0..1e6).contains(&age) {
            age.round() as i64
        } else {
            0
        };
        let record = CycleRecord {
            date,
            out,
            difference,
            // Most records are no break, of age 0.
            start: if days == 0 {
                date
            } else {
                date - chrono::Duration::days(days)
            },
        };
        // Most records are of an account already seen: no key copied for them.
        match self.records.get_mut(key) {
            Some(recs) => recs.push(record),
            None => {
                self.records.insert(key.to_string(), vec![record]);
            }
        }
        if self.dates.last() != Some(&date) {
            // A file has few distinct dates: when the list is full they are put in order and
            // deduplicated (room doubles only when that frees less than half), so that a file in
            // account order does not keep one date per row.
            if self.dates.len() == self.dates.capacity() && self.dates.len() >= 1024 {
                self.dates.sort_unstable();
                self.dates.dedup();
                if self.dates.len() > self.dates.capacity() / 2 {
                    self.dates.reserve(self.dates.capacity());
                }
            }
            self.dates.push(date);
        }
    }

    /// Puts each account's records and the cycle's dates in order (after the last push).
    pub fn seal(&mut self) {
        for recs in self.records.values_mut() {
            recs.sort_by_key(|r| r.date);
        }
        self.dates.sort_unstable();
        self.dates.dedup();
    }

    /// The cycle's as-of date (its latest date).
    pub fn as_of(&self) -> Option<NaiveDate> {
        self.dates.last().copied()
    }

    /// The first date of the cycle after `d`.
    fn next_date(&self, d: NaiveDate) -> Option<NaiveDate> {
        let i = self.dates.partition_point(|x| *x <= d);
        self.dates.get(i).copied()
    }
}

/// What [`Cases::roll_forward`] found for the open and decided cases of a profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollOutcome {
    /// Cases whose break is still out of tolerance in this cycle (not opened by it).
    pub persisting: usize,
    /// Cases whose break cleared in this cycle.
    pub cleared: usize,
    /// Decided cases sent back to review because their difference moved.
    pub recertified: usize,
    /// Cases whose account is not in this cycle (nothing changed).
    pub absent: usize,
}

/// What happens to one case in a cycle.
enum Roll {
    Absent,
    /// Seen, nothing newer than the case (counted as persisting when still out).
    Seen {
        out: bool,
    },
    Persist(CycleRecord),
    Clear {
        on: NaiveDate,
        record: serde_json::Value,
        reason: String,
    },
}

/// Drops what a brief case leaves out ([`Cases::outstanding_briefs`]).
pub(super) fn briefly(case: &mut Case) {
    case.row = serde_json::Map::new();
    case.dispatches = Vec::new();
}

/// How much of each outstanding case [`Cases::read_outstanding`] gives.
#[derive(Clone, Copy)]
enum Reading {
    /// Every field.
    Whole,
    /// Without the record's columns and the dispatch history.
    Brief,
    /// What the outstanding markers carry.
    Light,
}

/// Where `case` stands in `cycle`.
fn roll_of(case: &Case, cycle: &Cycle) -> Roll {
    // What the store has already seen of the account.
    let seen = case
        .seen_to
        .map_or(case.last_date, |s| s.max(case.last_date));
    let Some(recs) = cycle.records.get(&case.key) else {
        return match cycle.as_of() {
            Some(as_of) if cycle.absent_clears && as_of > seen => Roll::Clear {
                on: as_of,
                record: serde_json::json!({ "date": as_of.to_string(), "dropped_out": true }),
                reason: format!("dropped out of the report of {as_of}"),
            },
            _ => Roll::Absent,
        };
    };
    let later = &recs[recs.partition_point(|r| r.date <= seen)..];
    if let Some(r) = later.iter().find(|r| !r.out || r.start != case.start_date) {
        let why = if r.out {
            format!("a new break began on {}", r.start)
        } else {
            format!("back within tolerance on {}", r.date)
        };
        return Roll::Clear {
            on: r.date,
            record: serde_json::json!({
                "date": r.date.to_string(),
                "difference": r.difference,
                "within_tolerance": !r.out,
            }),
            reason: why,
        };
    }
    let Some(last) = later.last().or(recs.last()) else {
        return Roll::Absent;
    };
    // A breaks-only report: the account's last break record is older than the report.
    if cycle.absent_clears
        && let Some(next) = cycle.next_date(last.date)
        && last.date >= case.last_date
        && next > seen
    {
        return Roll::Clear {
            on: next,
            record: serde_json::json!({ "date": next.to_string(), "dropped_out": true }),
            reason: format!("dropped out of the report of {next}"),
        };
    }
    if later.is_empty() {
        Roll::Seen { out: last.out }
    } else {
        Roll::Persist(*last)
    }
}

/// Rolls a case that `cycle` opens forward through it, as [`Cases::roll_forward_over`] would:
/// while its break persists the case takes the break's latest record; when the cycle saw the
/// break end, the case notes how far the cycle saw (the next cycle decides whether it cleared,
/// so that one file's anomalies stay reviewable).
pub(super) fn roll_opened(case: &mut Case, cycle: &Cycle) {
    match roll_of(case, cycle) {
        Roll::Persist(r) => {
            case.last_date = r.date;
            if case.difference != r.difference {
                case.previous_difference = Some(case.difference);
            }
            case.difference = r.difference;
        }
        Roll::Clear { .. } => {
            if let Some(as_of) = cycle.as_of()
                && case.seen_to.is_none_or(|s| s < as_of)
            {
                case.seen_to = Some(as_of);
            }
        }
        Roll::Absent | Roll::Seen { .. } => {}
    }
}

/// The ids of `cases` that `cycle` changes; the absent and already-seen ones are counted in
/// `out`.
fn to_write(cases: &[Case], cycle: &Cycle, out: &mut RollOutcome) -> Vec<String> {
    let mut ids = Vec::new();
    for case in cases.iter().filter(|c| c.outstanding()) {
        let opened = cycle.opened.contains(&case.id);
        match roll_of(case, cycle) {
            Roll::Absent => out.absent += 1,
            Roll::Seen { out: brk } => {
                if brk && !opened {
                    out.persisting += 1;
                }
            }
            Roll::Clear { .. } if opened && case.seen_to >= cycle.as_of() => {}
            Roll::Persist(_) | Roll::Clear { .. } => ids.push(case.id.clone()),
        }
    }
    ids
}

/// Why a decided case must be reviewed again when its difference goes from `judged` to `now`,
/// if it must.
fn recertify_reason(judged: f64, now: f64, share: f64) -> Option<String> {
    if !judged.is_finite() || !now.is_finite() {
        return None;
    }
    if judged != 0.0 && now != 0.0 && judged.signum() != now.signum() {
        return Some(format!(
            "the difference changed sign: {} when decided, {} now",
            crate::text::fmt_amount(judged),
            crate::text::fmt_amount(now)
        ));
    }
    let moved = (now - judged).abs();
    if moved > share * judged.abs() + 1e-9 {
        let pct = if judged != 0.0 {
            format!("{:+.1}%", (now - judged) / judged.abs() * 100.0)
        } else {
            "from zero".to_string()
        };
        return Some(format!(
            "the difference moved from {} when decided to {} ({pct}, more than {:.0}%)",
            crate::text::fmt_amount(judged),
            crate::text::fmt_amount(now),
            share * 100.0
        ));
    }
    None
}

/// Sends a decided `case` back to review when its difference moved past `share` of the one
/// judged, with a `recertified` event. Returns whether it did.
pub(super) fn recertify_if_moved(
    txn: &CaseTxn<'_>,
    case: &mut Case,
    share: f64,
    record: serde_json::Value,
    now: DateTime<Utc>,
) -> TxResult<bool> {
    if !case.status.is_decided() {
        return Ok(false);
    }
    let judged = case.judged_difference.unwrap_or(case.difference);
    let Some(reason) = recertify_reason(judged, case.difference, share) else {
        return Ok(false);
    };
    let from = case.status;
    case.status = Status::PendingReview;
    case.last_decision = None;
    case.proposed_by = None;
    append_event_note(
        txn,
        case,
        EventNote::system(EventAction::Recertified, from, reason, record),
        now,
    )?;
    Ok(true)
}

/// Rolls the cases of `chunk` (ids) forward through `cycle` in one transaction, as
/// [`Cases::roll_forward_over`] does: what happened to them, and the cases written.
fn roll_chunk(
    txn: &CaseTxn<'_>,
    chunk: &[String],
    cycle: &Cycle,
    now: DateTime<Utc>,
    share: f64,
) -> TxResult<(RollOutcome, Vec<Case>)> {
    let mut part = RollOutcome::default();
    let mut cases = Vec::new();
    for id in chunk {
        let Some(case) = load_case(txn, id)? else {
            continue;
        };
        if case.status == Status::Cleared || case.cleared_on.is_some() {
            continue;
        }
        if let Some(case) = roll_case(txn, case, cycle, now, share, &mut part)? {
            cases.push(case);
        }
    }
    Ok((part, cases))
}

/// Rolls one stored case that has not cleared forward through `cycle`, counted in `part`:
/// the case, if it was written.
fn roll_case(
    txn: &CaseTxn<'_>,
    mut case: Case,
    cycle: &Cycle,
    now: DateTime<Utc>,
    share: f64,
    part: &mut RollOutcome,
) -> TxResult<Option<Case>> {
    let opened = cycle.opened.contains(&case.id);
    let written = match roll_of(&case, cycle) {
        Roll::Absent => {
            part.absent += 1;
            None
        }
        Roll::Seen { out } => {
            if out && !opened {
                part.persisting += 1;
            }
            None
        }
        Roll::Persist(r) => {
            if !opened {
                part.persisting += 1;
            }
            case.last_date = r.date;
            if case.difference != r.difference {
                case.previous_difference = Some(case.difference);
            }
            case.difference = r.difference;
            case.updated_at = now;
            let record = serde_json::json!({
                "date": r.date.to_string(),
                "difference": r.difference,
            });
            if recertify_if_moved(txn, &mut case, share, record, now)? {
                part.recertified += 1;
            }
            put_case(txn, &case)?;
            Some(case)
        }
        // A case this cycle opened is new: the next cycle says whether it
        // cleared (so one file's anomalies stay reviewable).
        Roll::Clear { .. } if opened => {
            if let Some(as_of) = cycle.as_of()
                && case.seen_to.is_none_or(|s| s < as_of)
            {
                case.seen_to = Some(as_of);
                put_case(txn, &case)?;
                Some(case)
            } else {
                None
            }
        }
        Roll::Clear { on, record, reason } => {
            part.cleared += 1;
            let from = case.status;
            case.cleared_on = Some(on);
            if case.status.is_open() {
                case.status = Status::Cleared;
                case.last_decision = None;
            }
            case.updated_at = now;
            append_event_note(
                txn,
                &case,
                EventNote::system(EventAction::Cleared, from, reason, record),
                now,
            )?;
            put_case(txn, &case)?;
            Some(case)
        }
    };
    Ok(written)
}

impl<'s> Cases<'s> {
    /// Rolls the profile's cases forward through `cycle` (call it after the cycle's flagged
    /// records were upserted): a case whose account came back within tolerance (or dropped out
    /// of a breaks-only report) has cleared — an undecided one becomes `Cleared`, a decided one
    /// keeps its decision and records the date; a case whose break persists takes the latest
    /// date and difference, and a decided one whose difference moved past `recertify_share`
    /// goes back to review. Accounts not in the cycle change nothing. Each change is an event,
    /// written durably in chunked transactions.
    pub fn roll_forward(&self, cycle: &Cycle) -> Result<RollOutcome, CaseError> {
        let mut cases = if cycle.keyed && !cycle.absent_clears {
            self.outstanding_cases_of(cycle)?
        } else {
            self.list(&CaseFilter {
                profile: Some(cycle.profile.clone()),
                ..CaseFilter::default()
            })?
        };
        self.roll_forward_over(cycle, &mut cases)
    }

    /// The outstanding cases of the cycle's own accounts, read through their markers.
    pub fn outstanding_cases_of(&self, cycle: &Cycle) -> Result<Vec<Case>, CaseError> {
        let mut keys: Vec<&String> = cycle.records.keys().collect();
        keys.sort();
        let mut reader = self.store.case_reader();
        let mut bytes = Vec::new();
        for key in keys {
            for id in outstanding_in(&mut reader, &cycle.profile, key)? {
                if let Some(b) = reader.get(CaseTree::Cases, id.as_bytes())? {
                    bytes.push(b);
                }
            }
        }
        drop(reader);
        use rayon::prelude::*;
        bytes.par_iter().map(|b| decode_case(b)).collect()
    }

    /// The outstanding cases of `profile` (not cleared), read through their markers, in ticket
    /// order: what a file's cycle rolls forward and its summary tallies. Cleared cases, which
    /// accumulate run after run, are not read.
    pub fn outstanding_cases(&self, profile: &str) -> Result<Vec<Case>, CaseError> {
        self.read_outstanding(profile, Reading::Whole, Vec::new())
    }

    /// [`Cases::outstanding_cases`] without what rolling them forward and tallying them never
    /// reads (the record's snapshot, the dispatch history), so that a profile with hundreds of
    /// thousands of outstanding cases is held in a fraction of the memory. Rolled forward with
    /// [`Cases::roll_forward_over`], the cases it writes come back without them too.
    pub fn outstanding_briefs(&self, profile: &str) -> Result<Vec<Case>, CaseError> {
        self.read_outstanding(profile, Reading::Brief, Vec::new())
    }

    /// [`Cases::outstanding_briefs`] given cases `known` as they are stored, brief (those a
    /// batch just wrote: [`Cases::record_rows_briefly`]): the markers say which cases are
    /// outstanding, and only those not known are read and decoded. A known case whose marker
    /// is gone (it cleared) is left out, as reading would.
    pub fn outstanding_briefs_knowing(
        &self,
        profile: &str,
        known: Vec<Case>,
    ) -> Result<Vec<Case>, CaseError> {
        self.read_outstanding(profile, Reading::Brief, known)
    }

    /// [`Cases::outstanding_briefs_knowing`] of what a run's roll-forward and its summary read
    /// only: the id, ticket, profile, key, status, dates, difference and bucket of each case
    /// (its other fields empty, zero or the epoch), taken from the outstanding markers
    /// themselves, so that no case is read. A case whose marker was written before the markers
    /// carried them (or cannot be read) is read briefly, as [`Cases::outstanding_briefs`] does.
    /// The `known` cases are given as they are.
    pub fn outstanding_light_knowing(
        &self,
        profile: &str,
        known: Vec<Case>,
    ) -> Result<Vec<Case>, CaseError> {
        self.read_outstanding(profile, Reading::Light, known)
    }

    fn read_outstanding(
        &self,
        profile: &str,
        how: Reading,
        known: Vec<Case>,
    ) -> Result<Vec<Case>, CaseError> {
        self.index_outstanding()?;
        let prefix = break_prefix(profile, "");
        let prefix = &prefix[..prefix.len() - 1];
        let tag = [&[0u8][..], OUTSTANDING_TAG].concat();
        let mut known: HashMap<Vec<u8>, Case> = known
            .into_iter()
            .map(|c| (c.id.as_bytes().to_vec(), c))
            .collect();
        let mut ids = Vec::new();
        let mut cases: Vec<Case> = Vec::new();
        for kv in self.store.case_scan(CaseTree::BreakIndex, prefix)? {
            let (k, value) = kv?;
            let Some(at) = memchr::memmem::find(&k[prefix.len()..], &tag) else {
                continue;
            };
            let id = super::codec::marker_case_id(&k, prefix.len() + at + tag.len());
            if let Some(case) = known.remove(id) {
                cases.push(case);
                continue;
            }
            let light = match how {
                Reading::Light => super::binary::read_light_marker(&value)
                    .and_then(Result::ok)
                    .filter(|c| c.id.as_bytes() == id),
                _ => None,
            };
            match light {
                Some(case) => cases.push(case),
                // Written before the markers carried the fields, unreadable, or naming another
                // case than its key: the case is read.
                None => ids.push(id.to_vec()),
            }
        }
        drop(known);
        // Their slots looked up and their pages read and decoded on every core, page by
        // page: the stored bytes of every outstanding case are never all in memory at once.
        let reader = self.store.case_reader();
        let slots = reader.case_slots(&ids)?;
        let decode = match how {
            Reading::Whole => decode_case,
            Reading::Brief | Reading::Light => decode_brief_case,
        };
        let decoded = reader.par_map_cases(&ids, &slots, |k, bytes| match decode(bytes) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(
                    case_id = %String::from_utf8_lossy(&ids[k]),
                    error = %e,
                    "unreadable case left out"
                );
                None
            }
        })?;
        drop(reader);
        cases.extend(decoded.into_iter().filter_map(Option::flatten));
        cases.retain(|c| c.profile == profile && c.outstanding());
        cases.sort_by_cached_key(|c| (ticket_number(&c.ticket), c.ticket.clone()));
        Ok(cases)
    }

    /// [`Cases::roll_forward`] over `cases` as already read (every case of the profile, or the
    /// outstanding cases of the cycle's accounts); the cases it writes are replaced in `cases`
    /// by what was stored, so the caller need not read them all again.
    pub fn roll_forward_over(
        &self,
        cycle: &Cycle,
        cases: &mut [Case],
    ) -> Result<RollOutcome, CaseError> {
        let mut out = RollOutcome::default();
        // Only the cases the cycle changes are written (in transactions that check again):
        // absent and already-seen cases cost no write.
        let candidates = to_write(cases, cycle, &mut out);
        if candidates.is_empty() {
            return Ok(out);
        }
        let now = self.now();
        let share = self.roll.recertify_share;
        // Where each case to write is in `cases`: what was stored replaces it after each
        // transaction (brief cases stay brief).
        let at: HashMap<&str, usize> = {
            let wanted: std::collections::HashSet<&str> =
                candidates.iter().map(String::as_str).collect();
            cases
                .iter()
                .enumerate()
                .filter(|(_, c)| wanted.contains(c.id.as_str()))
                .map(|(i, c)| (c.id.as_str(), i))
                .collect()
        };
        let mut replace: Vec<(usize, Case)> = Vec::new();
        for chunk in candidates.chunks(UPSERT_CHUNK) {
            let (part, cases) = self
                .store
                .case_transaction(|txn| roll_chunk(txn, chunk, cycle, now, share))?;
            for c in cases {
                if let Some(i) = at.get(c.id.as_str()) {
                    replace.push((*i, c));
                }
            }
            out.persisting += part.persisting;
            out.cleared += part.cleared;
            out.recertified += part.recertified;
            out.absent += part.absent;
        }
        drop(at);
        for (i, mut now) in replace {
            if cases[i].row.is_empty() && cases[i].dispatches.is_empty() {
                briefly(&mut now);
            }
            cases[i] = now;
        }
        Ok(out)
    }

    /// Whether [`Cases::roll_forward`] of a keyed `cycle` (a service record) would write:
    /// read-only, so that a record that changes no case stays off the blocking threads.
    pub fn roll_writes(&self, cycle: &Cycle) -> Result<bool, CaseError> {
        let cases = self.outstanding_cases_of(cycle)?;
        Ok(!to_write(&cases, cycle, &mut RollOutcome::default()).is_empty())
    }

    /// The ids of the cases of one account that have not cleared, in break order.
    /// Read from the outstanding markers: no case is decoded (a store written before the
    /// markers existed is indexed by [`Cases::index_outstanding`] first).
    pub fn outstanding_of(&self, profile: &str, key: &str) -> Result<Vec<String>, CaseError> {
        outstanding_in(&mut self.store.case_reader(), profile, key)
    }

    /// Gives every stored case its outstanding marker, once per store (stores written before
    /// the markers existed); later writes keep the markers up to date. Returns how many cases
    /// were marked.
    pub fn index_outstanding(&self) -> Result<usize, CaseError> {
        if self
            .store
            .case_get(CaseTree::Seq, OUTSTANDING_INDEXED)?
            .is_some()
        {
            return Ok(0);
        }
        let (all, _) = self.list_readable(&CaseFilter::default())?;
        let open: Vec<&Case> = all.iter().filter(|c| c.outstanding()).collect();
        for chunk in open.chunks(UPSERT_CHUNK) {
            self.store.case_transaction(|txn| {
                for c in chunk {
                    txn.insert(
                        CaseTree::BreakIndex,
                        &outstanding_marker(&c.profile, &c.key, &c.id),
                        &super::binary::light_marker(c),
                    )?;
                }
                Ok::<(), TxError<CaseError>>(())
            })?;
        }
        self.store.case_transaction(|txn| {
            txn.insert(CaseTree::Seq, OUTSTANDING_INDEXED, b"1")?;
            Ok::<(), TxError<CaseError>>(())
        })?;
        Ok(open.len())
    }
}
