//! Recording a run's flagged records: opening, updating and bringing back cases.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};

use crate::store::{CaseReader, CaseTree, CaseTxn, CaseWrite, TxError};

use super::binary::RowRef;
use super::codec::{
    EventNote, abort, append_event_note, break_prefix, case_bytes_with_row, case_event_key,
    case_head, case_writes, decode_case, event_of, is_marker, load_case, write_case_with_row,
};
use super::roll::{recertify_if_moved, roll_opened};
use super::*;

impl<'s> Cases<'s> {
    /// For a record that opens no known break, the cleared case of the same account that it
    /// brings back (cleared at most `reopen_days` before the record's break began), if any.
    /// `entries`: the break index entries of the record's account (under `prefix_len` bytes of
    /// [`break_prefix`]).
    fn reappearing(
        &self,
        reader: &mut CaseReader<'_>,
        input: &BreakInput,
        prefix_len: usize,
        entries: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Option<String>, CaseError> {
        let mut best: Option<(NaiveDate, String)> = None;
        let prefix = prefix_len;
        // A case marked outstanding has not cleared: it is not read (a store written before
        // the markers reads every case of the account, as it did).
        let open: HashSet<&[u8]> = entries
            .iter()
            .filter(|(k, _)| is_marker(k, prefix))
            .map(|(k, _)| {
                super::codec::marker_case_id(k, prefix + super::codec::OUTSTANDING_TAG.len())
            })
            .collect();
        for (k, id) in entries {
            if is_marker(k, prefix) || open.contains(id.as_slice()) {
                continue;
            }
            let id = String::from_utf8(id.clone()).map_err(|e| CaseError::Corrupt {
                what: "break index entry".into(),
                message: e.to_string(),
            })?;
            let Some(bytes) = reader.get(CaseTree::Cases, id.as_bytes())? else {
                continue;
            };
            let case: Case = decode_case(&bytes)?;
            let Some(on) = case.cleared_on else { continue };
            let gap = (input.start_date - on).num_days();
            if on <= input.start_date
                && gap <= self.roll.reopen_days
                && best.as_ref().is_none_or(|(d, _)| on > *d)
            {
                best = Some((on, id));
            }
        }
        Ok(best.map(|(_, id)| id))
    }

    // ----- writes ------------------------------------------------------------------------------

    /// Records a flagged record: opens the break's case if it has none (status `PendingReview`,
    /// or `AutoResolveProposed` proposed by `rules:<bucket_rule>` when `auto_resolve` says the
    /// bucket's rules propose it), otherwise brings the case to the record's date and numbers
    /// (its status is untouched). Idempotent: the same record again writes nothing.
    pub fn upsert(
        &self,
        input: &BreakInput,
        auto_resolve: bool,
    ) -> Result<UpsertOutcome, CaseError> {
        let mut out = self.upsert_batch(std::slice::from_ref(input), &[auto_resolve])?;
        out.pop()
            .ok_or_else(|| CaseError::Invalid("an upsert of one record returned nothing".into()))
    }

    /// [`Cases::upsert`] for many records (a run's flagged records). `auto_resolve[i]` goes with
    /// `inputs[i]`. Outcomes are in input order.
    pub fn upsert_batch(
        &self,
        inputs: &[BreakInput],
        auto_resolve: &[bool],
    ) -> Result<Vec<UpsertOutcome>, CaseError> {
        self.upsert_batch_in(inputs, auto_resolve, None)
    }

    /// [`Cases::upsert_batch`] of the flagged records of `cycle` (a file's run): a case the
    /// batch opens is also rolled forward through the cycle as it is written (it takes the
    /// latest date of its break, or notes that the cycle saw the break end), so that
    /// [`Cases::roll_forward_over`] has nothing left to write for it.
    ///
    /// Each case is written once: the records of one break (the same case) are folded into its
    /// latest, and every one of them gets that record's outcome. A case opens proposed for
    /// auto-resolution only when every record of its break is proposed.
    ///
    /// One reader first finds the cases already up to date (their stored heads read on every
    /// core); they are not written. The others are written in transactions of `UPSERT_CHUNK`
    /// cases, each atomic and durable; a crash between two leaves the earlier ones, and running
    /// the same records again completes the rest (upserts are idempotent). In a transaction,
    /// the cases to open are numbered (tickets, events) in order, built and encoded on every
    /// core, and their index entries put into their buckets on every core.
    pub fn upsert_batch_in(
        &self,
        inputs: &[BreakInput],
        auto_resolve: &[bool],
        cycle: Option<&Cycle>,
    ) -> Result<Vec<UpsertOutcome>, CaseError> {
        self.upsert_records(inputs, None, auto_resolve, cycle)
    }

    /// [`Cases::upsert_batch_in`] of records whose columns are given encoded (`rows[i]` goes
    /// with `inputs[i]`, whose own `row` must be empty): what a run's own records are.
    pub fn upsert_rows_in(
        &self,
        inputs: &[BreakInput],
        rows: &[EncodedRow],
        auto_resolve: &[bool],
        cycle: Option<&Cycle>,
    ) -> Result<Vec<UpsertOutcome>, CaseError> {
        self.upsert_records(inputs, Some(rows), auto_resolve, cycle)
    }

    fn upsert_records(
        &self,
        inputs: &[BreakInput],
        rows: Option<&[EncodedRow]>,
        auto_resolve: &[bool],
        cycle: Option<&Cycle>,
    ) -> Result<Vec<UpsertOutcome>, CaseError> {
        let (steps, of_input) =
            self.record_steps(inputs, rows, auto_resolve, cycle, true, false)?;
        use rayon::prelude::*;
        let outcomes: Vec<UpsertOutcome> = steps
            .into_par_iter()
            .map(|step| match step {
                Step::Written(o) => Ok(*o),
                Step::Unchanged(_, bytes) => Ok(UpsertOutcome {
                    case: decode_case(&bytes)?,
                    change: Change::Unchanged,
                }),
                // Not made when the cases are kept.
                Step::Recorded(r, _) => Err(CaseError::Invalid(format!(
                    "case {} was recorded without being kept",
                    r.id
                ))),
            })
            .collect::<Result<_, CaseError>>()?;
        Ok(per_input(outcomes, &of_input))
    }

    /// [`Cases::upsert_batch_in`] as a run records its flagged records: what each record did to
    /// its case, without the cases (an unchanged case is not decoded).
    pub fn record_batch(
        &self,
        inputs: &[BreakInput],
        auto_resolve: &[bool],
        cycle: Option<&Cycle>,
    ) -> Result<Vec<Recorded>, CaseError> {
        Ok(self
            .record_records(inputs, None, auto_resolve, cycle, false)?
            .0)
    }

    /// [`Cases::record_batch`] of records whose columns are given encoded (`rows[i]` goes with
    /// `inputs[i]`, whose own `row` must be empty): a run's own records, whose columns are
    /// encoded once, as they are read, and written into their cases as they are.
    pub fn record_rows(
        &self,
        inputs: &[BreakInput],
        rows: &[EncodedRow],
        auto_resolve: &[bool],
        cycle: Option<&Cycle>,
    ) -> Result<Vec<Recorded>, CaseError> {
        Ok(self
            .record_records(inputs, Some(rows), auto_resolve, cycle, false)?
            .0)
    }

    /// [`Cases::record_rows`], also returning the cases the batch wrote (opened, updated or
    /// brought back), brief ([`Cases::outstanding_briefs`]: without their records' columns and
    /// dispatches) and as they were stored: what [`Cases::outstanding_briefs_knowing`] needs
    /// not read back. The cases it found up to date are not among them.
    pub fn record_rows_briefly(
        &self,
        inputs: &[BreakInput],
        rows: &[EncodedRow],
        auto_resolve: &[bool],
        cycle: Option<&Cycle>,
    ) -> Result<(Vec<Recorded>, Vec<Case>), CaseError> {
        self.record_records(inputs, Some(rows), auto_resolve, cycle, true)
    }

    fn record_records(
        &self,
        inputs: &[BreakInput],
        rows: Option<&[EncodedRow]>,
        auto_resolve: &[bool],
        cycle: Option<&Cycle>,
        briefs: bool,
    ) -> Result<(Vec<Recorded>, Vec<Case>), CaseError> {
        let (steps, of_input) =
            self.record_steps(inputs, rows, auto_resolve, cycle, false, briefs)?;
        use rayon::prelude::*;
        let (recorded, written): (Vec<Recorded>, Vec<Option<Case>>) = steps
            .into_par_iter()
            .map(|step| match step {
                Step::Written(o) => {
                    let r = Recorded::of(&o.case, o.change);
                    // A case found up to date inside the transaction was not written.
                    let written = briefs && o.change != Change::Unchanged;
                    (
                        r,
                        written.then(|| {
                            let mut case = o.case;
                            super::roll::briefly(&mut case);
                            case
                        }),
                    )
                }
                Step::Unchanged(r, _) => (r, None),
                Step::Recorded(r, case) => (r, case.map(|c| *c)),
            })
            .unzip();
        Ok((
            per_input(recorded, &of_input),
            written.into_iter().flatten().collect(),
        ))
    }

    /// The body of [`Cases::upsert_batch_in`] and [`Cases::record_batch`]: one step per case
    /// (an unchanged case's stored bytes kept when `keep` asks for them), and the step of each
    /// input.
    fn record_steps(
        &self,
        inputs: &[BreakInput],
        rows: Option<&[EncodedRow]>,
        auto_resolve: &[bool],
        cycle: Option<&Cycle>,
        keep: bool,
        briefs: bool,
    ) -> Result<(Vec<Step>, Vec<usize>), CaseError> {
        if inputs.len() != auto_resolve.len() {
            return Err(CaseError::Invalid(format!(
                "{} records but {} auto-resolve flags",
                inputs.len(),
                auto_resolve.len()
            )));
        }
        if let Some(rows) = rows {
            if rows.len() != inputs.len() {
                return Err(CaseError::Invalid(format!(
                    "{} records but {} encoded rows",
                    inputs.len(),
                    rows.len()
                )));
            }
            if let Some(i) = inputs.iter().find(|i| !i.row.is_empty()) {
                return Err(CaseError::Invalid(format!(
                    "break {}/{}: its columns are given twice",
                    i.profile, i.key
                )));
            }
        }
        let row_of = |k: usize| row_at(inputs, rows, k);
        use rayon::prelude::*;
        let ids: Vec<String> = inputs
            .par_iter()
            .map(|input| {
                input.validate()?;
                Ok(case_id(&input.profile, &input.key, input.start_date))
            })
            .collect::<Result<_, CaseError>>()?;
        let Grouped {
            case_of,
            reps,
            earlier,
            proposed,
        } = group_by_case(inputs, &ids, auto_resolve);
        // The index buckets decoded once for the whole batch: by the reader of `prepare`, then
        // by each transaction in turn (each takes them back as it left them).
        let cache = crate::store::BucketCache::default();
        let prepared = self.prepare(inputs, rows, &ids, &reps, &cache, keep)?;
        let now = self.now();
        let roll = self.roll;
        let router = self.router.as_deref();
        // The cases found up to date by the reader are not written: only the others go through
        // the transactions.
        let mut steps: Vec<Option<Step>> = Vec::with_capacity(reps.len());
        let mut to_write: Vec<(usize, ToWrite)> = Vec::new();
        for (j, p) in prepared.into_iter().enumerate() {
            match p {
                Prepared::Unchanged(step) => steps.push(Some(step)),
                Prepared::ToWrite(p) => {
                    steps.push(None);
                    to_write.push((j, p));
                }
            }
        }
        let chunks = to_write.chunks(UPSERT_CHUNK).len();
        for (c, chunk) in to_write.chunks(UPSERT_CHUNK).enumerate() {
            // The last transaction gives no buckets back: there is no one to take them.
            let cache = if c + 1 == chunks {
                cache.last()
            } else {
                cache.clone()
            };
            let part = self.store.case_transaction_in(Some(&cache), |txn| {
                let mut part: Vec<Option<Step>> = Vec::with_capacity(chunk.len());
                // The cases this transaction opens: numbered here in order, then built on
                // every core and written.
                let mut planned: Vec<Planned> = Vec::new();
                // Which cases are stored, and for the others which case their break index
                // entry names (a break joined to a case that reappeared): looked up on every
                // core first.
                let chunk_ids: Vec<&[u8]> = chunk
                    .iter()
                    .map(|(j, _)| ids[reps[*j]].as_bytes())
                    .collect();
                let stored = txn.has_cases(&chunk_ids)?;
                let starts: Vec<Vec<u8>> = chunk
                    .par_iter()
                    .zip(&stored)
                    .filter(|(_, s)| !**s)
                    .map(|((j, _), _)| break_start_key(&inputs[reps[*j]]))
                    .collect();
                let mut joined = txn.get_many(CaseTree::BreakIndex, &starts)?.into_iter();
                for ((j, p), stored) in chunk.iter().zip(stored) {
                    let k = reps[*j];
                    let input = &inputs[k];
                    // A break not stored, whose index entry names no other case, and that
                    // brings no cleared case back: a case to open.
                    let fresh = !stored
                        && joined
                            .next()
                            .flatten()
                            .is_none_or(|named| named == ids[k].as_bytes())
                        && p.reappear.is_none();
                    if !fresh {
                        // The break's own case, already up to date (written since the reader
                        // looked): read from its head alone.
                        if let Some(bytes) = txn.get(CaseTree::Cases, ids[k].as_bytes())?
                            && let Some(head) = case_head(&bytes)
                            && (input.date < head.last_date
                                || input.has_fingerprint_with(
                                    row_of(k),
                                    head.fingerprint,
                                    &p.fingerprint,
                                ))
                        {
                            let r = Recorded {
                                id: ids[k].clone(),
                                ticket: head.ticket.to_string(),
                                status: head.status,
                                change: Change::Unchanged,
                            };
                            part.push(Some(Step::Unchanged(
                                r,
                                if keep { bytes } else { Vec::new() },
                            )));
                            continue;
                        }
                        if let Some(case) =
                            case_of_record(txn, input, &ids[k], p.reappear.as_deref())?
                        {
                            let o = bring_up_to_date(
                                txn,
                                case,
                                (input, row_of(k)),
                                &p.fingerprint,
                                now,
                                &roll,
                                keep,
                            )?;
                            part.push(Some(Step::Written(Box::new(o))));
                            continue;
                        }
                    }
                    let (first, before) = earlier[*j];
                    let opening = Opening {
                        first: inputs[first].difference,
                        previous: before.map(|p| inputs[p].difference),
                    };
                    let auto = proposed[*j];
                    planned.push(plan_opening(
                        txn,
                        (part.len(), k),
                        &p.fingerprint,
                        opening,
                        auto,
                        (input, row_of(k)),
                        router,
                    )?);
                    part.push(None);
                }
                let opened: Vec<Opened> = planned
                    .par_iter()
                    .map(|p| {
                        build_opening(
                            p,
                            (&inputs[p.k], row_of(p.k)),
                            &ids[p.k],
                            now,
                            &roll,
                            cycle,
                            (keep, briefs),
                        )
                    })
                    .collect::<Result<_, CaseError>>()
                    .map_err(TxError::Abort)?;
                let applied = apply_openings(txn, opened)?;
                for (p, step) in planned.iter().zip(applied) {
                    part[p.at] = Some(step);
                }
                part.into_iter()
                    .map(|s| {
                        s.ok_or_else(|| {
                            TxError::Abort(CaseError::Invalid(
                                "a case of the batch was not recorded".into(),
                            ))
                        })
                    })
                    .collect::<Result<Vec<Step>, _>>()
            })?;
            for (&(j, _), step) in chunk.iter().zip(part) {
                steps[j] = Some(step);
            }
        }
        let outcomes: Vec<Step> = steps
            .into_iter()
            .map(|s| {
                s.ok_or_else(|| CaseError::Invalid("a case of the batch was not recorded".into()))
            })
            .collect::<Result<_, CaseError>>()?;
        Ok((outcomes, case_of))
    }

    /// What one reader finds of each case of a batch (`reps`: the input each case is brought
    /// to) before anything is written: whether the break's own case already holds the record
    /// (or a later one), and otherwise the record's fingerprint and the cleared case that the
    /// record of a break not yet stored brings back, if any.
    ///
    /// The fingerprints are computed, the cases' slots looked up, and the stored cases' pages
    /// decoded and their heads checked on every core.
    fn prepare(
        &self,
        inputs: &[BreakInput],
        rows: Option<&[EncodedRow]>,
        ids: &[String],
        reps: &[usize],
        cache: &crate::store::BucketCache,
        keep: bool,
    ) -> Result<Vec<Prepared>, CaseError> {
        use rayon::prelude::*;
        let rep_ids: Vec<&[u8]> = reps.iter().map(|&k| ids[k].as_bytes()).collect();
        let mut reader = self.store.case_reader_in(Some(cache));
        let slots = reader.case_slots(&rep_ids)?;
        let fingerprints = reps
            .par_iter()
            .map(|&k| inputs[k].fingerprint_with(row_at(inputs, rows, k)))
            .collect::<Result<Vec<String>, CaseError>>()?;
        let unchanged = reader.par_map_cases(&rep_ids, &slots, |j, bytes| {
            let k = reps[j];
            let head = case_head(bytes)?;
            let same = inputs[k].date < head.last_date
                || inputs[k].has_fingerprint_with(
                    row_at(inputs, rows, k),
                    head.fingerprint,
                    &fingerprints[j],
                );
            same.then(|| {
                let r = Recorded {
                    id: ids[k].clone(),
                    ticket: head.ticket.to_string(),
                    status: head.status,
                    change: Change::Unchanged,
                };
                Step::Unchanged(r, if keep { bytes.to_vec() } else { Vec::new() })
            })
        })?;
        // The account's break index entries of each record of a break not yet stored: the
        // cleared cases it may bring back.
        let prefixes: Vec<Option<Vec<u8>>> = reps
            .par_iter()
            .zip(&slots)
            .map(|(&k, slot)| {
                slot.is_none()
                    .then(|| break_prefix(&inputs[k].profile, &inputs[k].key))
            })
            .collect();
        let wanted: Vec<&Vec<u8>> = prefixes.iter().flatten().collect();
        let mut scanned = reader.scan_many(CaseTree::BreakIndex, &wanted)?.into_iter();
        let mut prepared: Vec<Prepared> = Vec::with_capacity(reps.len());
        for (((&k, fingerprint), prefix), unchanged) in
            reps.iter().zip(fingerprints).zip(&prefixes).zip(unchanged)
        {
            if let Some(step) = unchanged.flatten() {
                prepared.push(Prepared::Unchanged(step));
                continue;
            }
            let reappear = match prefix {
                None => None,
                Some(prefix) => {
                    let entries = scanned.next().unwrap_or_default();
                    if entries.is_empty() {
                        None
                    } else {
                        self.reappearing(&mut reader, &inputs[k], prefix.len(), &entries)?
                    }
                }
            };
            prepared.push(Prepared::ToWrite(ToWrite {
                fingerprint,
                reappear,
            }));
        }
        Ok(prepared)
    }
}

/// What the reader of a batch found of one case (see [`Cases::prepare`]).
enum Prepared {
    /// The break's own case already holds the record (or a later one): nothing to write.
    Unchanged(Step),
    ToWrite(ToWrite),
}

/// A case to write: its record's fingerprint, and the cleared case the record brings back.
struct ToWrite {
    fingerprint: String,
    reappear: Option<String>,
}

/// A batch's records grouped by case (`ids[k]` is the case of `inputs[k]`); the cases are
/// numbered in the order of their first record.
struct Grouped {
    /// The case of each record.
    case_of: Vec<usize>,
    /// The record each case is brought to: its latest (by date, then by position, as one
    /// upsert after the other would leave it).
    reps: Vec<usize>,
    /// Each case's first record, and the one before the record it is brought to (if any).
    earlier: Vec<(usize, Option<usize>)>,
    /// Whether the rules propose each case for auto-resolution.
    proposed: Vec<bool>,
}

/// Groups the records of a batch by case (see [`Grouped`]).
fn group_by_case(inputs: &[BreakInput], ids: &[String], auto_resolve: &[bool]) -> Grouped {
    let mut number: HashMap<&str, usize> = HashMap::with_capacity(inputs.len());
    let mut case_of: Vec<usize> = Vec::with_capacity(inputs.len());
    let mut reps: Vec<usize> = Vec::new();
    for (k, id) in ids.iter().enumerate() {
        let j = *number.entry(id.as_str()).or_insert_with(|| {
            reps.push(k);
            reps.len() - 1
        });
        if inputs[k].date >= inputs[reps[j]].date {
            reps[j] = k;
        }
        case_of.push(j);
    }
    // What a case the batch opens keeps of its break's earlier records: the difference of
    // the first (its opening difference) and of the one before the latest.
    let mut earlier: Vec<(usize, Option<usize>)> = vec![(usize::MAX, None); reps.len()];
    // The rules propose a case for auto-resolution only when they propose every record of
    // its break: one unexplained record keeps it for review.
    let mut proposed: Vec<bool> = vec![true; reps.len()];
    for (k, &j) in case_of.iter().enumerate() {
        let e = &mut earlier[j];
        if e.0 == usize::MAX || inputs[k].date < inputs[e.0].date {
            e.0 = k;
        }
        if k != reps[j] && e.1.is_none_or(|p| inputs[k].date >= inputs[p].date) {
            e.1 = Some(k);
        }
        proposed[j] &= auto_resolve[k];
    }
    Grouped {
        case_of,
        reps,
        earlier,
        proposed,
    }
}

/// A new case (ticket assigned and indexed; not yet written), status `PendingReview`.
pub(super) fn new_case(
    txn: &CaseTxn<'_>,
    input: &BreakInput,
    id: &str,
    fingerprint: String,
    origin: Origin,
    now: DateTime<Utc>,
) -> TxResult<Case> {
    let mut case = new_case_without_row(txn, input, id, fingerprint, origin, now)?;
    case.row = input.row.clone();
    Ok(case)
}

/// [`new_case`] without a copy of the record's columns (its `row` is empty): for a case written
/// with the record's own ([`write_case_with_row`]).
fn new_case_without_row(
    txn: &CaseTxn<'_>,
    input: &BreakInput,
    id: &str,
    fingerprint: String,
    origin: Origin,
    now: DateTime<Utc>,
) -> TxResult<Case> {
    let ticket = ticket_of(now, next_counter(txn, TICKET_COUNTER)?);
    index_ticket_and_break(txn, input, id, &ticket)?;
    Ok(case_fields(input, id, ticket, fingerprint, origin, now))
}

/// The ticket numbered `n` of a case opened at `now`.
fn ticket_of(now: DateTime<Utc>, n: u64) -> String {
    format!("BRK-{}-{n:06}", now.format("%Y%m%d"))
}

/// Indexes a new case `id` by its ticket (which no other case may hold) and its break's start.
fn index_ticket_and_break(
    txn: &CaseTxn<'_>,
    input: &BreakInput,
    id: &str,
    ticket: &str,
) -> TxResult<()> {
    if txn.get(CaseTree::Tickets, ticket.as_bytes())?.is_some() {
        return abort(ticket_taken(ticket));
    }
    txn.insert(CaseTree::Tickets, ticket.as_bytes(), id.as_bytes())?;
    txn.insert(CaseTree::BreakIndex, &break_start_key(input), id.as_bytes())?;
    Ok(())
}

/// A ticket the counter hands out that a case already holds: the counter went back.
fn ticket_taken(ticket: &str) -> CaseError {
    CaseError::Corrupt {
        what: "ticket counter".into(),
        message: format!("ticket {ticket} is already taken"),
    }
}

/// The break index key of a record's break: its profile, key and start date.
fn break_start_key(input: &BreakInput) -> Vec<u8> {
    let mut bk = break_prefix(&input.profile, &input.key);
    bk.extend_from_slice(input.start_date.to_string().as_bytes());
    bk
}

/// A new case of `input` with its ticket, status `PendingReview`, without the record's columns.
fn case_fields(
    input: &BreakInput,
    id: &str,
    ticket: String,
    fingerprint: String,
    origin: Origin,
    now: DateTime<Utc>,
) -> Case {
    Case {
        id: id.to_string(),
        ticket,
        profile: input.profile.clone(),
        key: input.key.clone(),
        start_date: input.start_date,
        last_date: input.date,
        origin,
        status: Status::PendingReview,
        bucket: input.bucket.clone(),
        bucket_rule: input.bucket_rule.clone(),
        confidence: input.confidence,
        severity: input.severity.clone(),
        summary: input.summary.clone(),
        score: input.score,
        rank: input.rank,
        difference: input.difference,
        model_version: input.model_version.clone(),
        proposed_by: None,
        jira_key: None,
        dispatched: false,
        dispatches: Vec::new(),
        created_at: now,
        updated_at: now,
        row: serde_json::Map::new(),
        last_decision: None,
        fingerprint,
        judged_difference: None,
        first_difference: Some(input.difference),
        previous_difference: None,
        cleared_on: None,
        seen_to: None,
        owner: None,
        due: None,
    }
}

/// The stored case a record belongs to: the break's own case, the case its break was joined to
/// when it reappeared, or the cleared case it brings back (`reappear`, still cleared).
fn case_of_record(
    txn: &CaseTxn<'_>,
    input: &BreakInput,
    id: &str,
    reappear: Option<&str>,
) -> TxResult<Option<Case>> {
    if let Some(case) = load_case(txn, id)? {
        return Ok(Some(case));
    }
    let bk = break_start_key(input);
    if let Some(joined) = txn.get(CaseTree::BreakIndex, &bk)? {
        let joined = String::from_utf8_lossy(&joined).into_owned();
        if joined != id
            && let Some(case) = load_case(txn, &joined)?
        {
            return Ok(Some(case));
        }
    }
    if let Some(rid) = reappear
        && let Some(case) = load_case(txn, rid)?
        && case.cleared_on.is_some()
    {
        txn.insert(CaseTree::BreakIndex, &bk, rid.as_bytes())?;
        return Ok(Some(case));
    }
    Ok(None)
}

/// The outcome of each input (`of_input[i]`: the case of input `i`): the case's own outcome
/// for its last input, a copy for the others.
pub(super) fn per_input<T: Clone>(outcomes: Vec<T>, of_input: &[usize]) -> Vec<T> {
    let mut left = vec![0usize; outcomes.len()];
    for &k in of_input {
        left[k] += 1;
    }
    let mut outcomes: Vec<Option<T>> = outcomes.into_iter().map(Some).collect();
    of_input
        .iter()
        .filter_map(|&k| {
            left[k] -= 1;
            if left[k] == 0 {
                outcomes[k].take()
            } else {
                outcomes[k].clone()
            }
        })
        .collect()
}

/// What recording one record did: the case written (or, if unchanged, as it was read), or, for
/// an unchanged case, its head and (when asked for) its stored bytes.
enum Step {
    Written(Box<UpsertOutcome>),
    Unchanged(Recorded, Vec<u8>),
    /// A case written and not kept: what was recorded, and the case briefly when asked for.
    Recorded(Recorded, Option<Box<Case>>),
}

impl Step {
    /// The ticket of the case.
    fn ticket(&self) -> &str {
        match self {
            Step::Written(o) => &o.case.ticket,
            Step::Unchanged(r, _) | Step::Recorded(r, _) => &r.ticket,
        }
    }
}

/// The differences of a break's records before the one a new case is opened with (the
/// records of one batch, folded into its latest).
#[derive(Clone, Copy)]
struct Opening {
    /// The difference of the break's first record.
    first: f64,
    /// The difference of the record before the latest, if there was one.
    previous: Option<f64>,
}

/// Brings the stored `case` of a record to it (unless the record is older or the same): a
/// cleared break that is back reappears for review, one that persists takes the record (and
/// goes back to review when its difference moved past `recertify_share`). The case returned
/// has the record's columns only when `keep` asks for them (it is written with them).
fn bring_up_to_date(
    txn: &CaseTxn<'_>,
    mut case: Case,
    (input, row): (&BreakInput, RowRef<'_>),
    fingerprint: &str,
    now: DateTime<Utc>,
    roll: &RollParams,
    keep: bool,
) -> TxResult<UpsertOutcome> {
    // An older record (a past file run again) or the same record: nothing to do.
    if input.date < case.last_date
        || input.has_fingerprint_with(row, &case.fingerprint, fingerprint)
    {
        return Ok(UpsertOutcome {
            case,
            change: Change::Unchanged,
        });
    }
    let record = serde_json::json!({
        "date": input.date.to_string(),
        "difference": input.difference,
    });
    let mut change = Change::Updated;
    match case.cleared_on {
        Some(on) if input.date > on || input.start_date != case.start_date => {
            change = Change::Reappeared;
            // The break is back: the same case, to be reviewed again.
            let from = case.status;
            let reason = if input.start_date != case.start_date {
                format!(
                    "cleared on {on}, a break again from {} (within {} days)",
                    input.start_date, roll.reopen_days
                )
            } else {
                format!("cleared on {on}, in break again on {}", input.date)
            };
            case.refresh_from(input, fingerprint.to_string());
            case.start_date = input.start_date;
            case.cleared_on = None;
            case.status = Status::PendingReview;
            case.last_decision = None;
            case.proposed_by = None;
            append_event_note(
                txn,
                &case,
                EventNote::system(EventAction::Reappeared, from, reason, record),
                now,
            )?;
        }
        _ => {
            case.refresh_from(input, fingerprint.to_string());
            if recertify_if_moved(txn, &mut case, roll.recertify_share, record, now)? {
                change = Change::Recertified;
            }
        }
    }
    case.due = Some(roll.due(case.created_at.date_naive(), &case.severity));
    case.updated_at = now;
    write_case_with_row(txn, &case, row, false)?;
    if keep {
        case.row = row.to_map().map_err(TxError::Abort)?;
    }
    Ok(UpsertOutcome { case, change })
}

/// A case a batch opens (the record `k`, at `at` among the transaction's steps): numbered in
/// the transaction, in order, by [`plan_opening`], then built off it by [`build_opening`] and
/// written by [`apply_opening`].
struct Planned<'a> {
    at: usize,
    k: usize,
    fingerprint: &'a str,
    opening: Opening,
    /// Proposed for auto-resolution by the bucket's rules.
    auto: bool,
    ticket: u64,
    /// The number of its first event (the others follow).
    first_event: u64,
    /// The owner the routing rules give it, and the route's condition.
    owner: Option<(String, String)>,
}

/// Hands out the ticket and event numbers of a case to open (its `create` event, its `assign`
/// event when `router` gives it an owner, its `propose` event when the rules propose it), in
/// the order one case after the other would take them.
/// `(at, k)`: the case's place among the transaction's steps, and its record.
fn plan_opening<'a>(
    txn: &CaseTxn<'_>,
    (at, k): (usize, usize),
    fingerprint: &'a str,
    opening: Opening,
    auto: bool,
    (input, row): (&BreakInput, RowRef<'_>),
    router: Option<&crate::routing::Router>,
) -> TxResult<Planned<'a>> {
    let ticket = next_counter(txn, TICKET_COUNTER)?;
    let owner = match router {
        None => None,
        Some(router) => {
            // The routing rules read the record's columns as a map.
            let decoded;
            let row = match row {
                RowRef::Map(m) => m,
                RowRef::Encoded(_) => {
                    decoded = row.to_map().map_err(TxError::Abort)?;
                    &decoded
                }
            };
            let routed = crate::routing::RoutedCase {
                profile: &input.profile,
                key: &input.key,
                bucket: &input.bucket,
                severity: &input.severity,
                difference: input.difference,
                row,
            };
            router
                .owner_for(&routed)
                .map(|(owner, when)| (owner.to_string(), when.to_string()))
        }
    };
    let first_event = next_counter(txn, EVENT_COUNTER)?;
    for _ in 0..u64::from(owner.is_some()) + u64::from(auto) {
        next_counter(txn, EVENT_COUNTER)?;
    }
    Ok(Planned {
        at,
        k,
        fingerprint,
        opening,
        auto,
        ticket,
        first_event,
        owner,
    })
}

/// Room for an event's JSON (a `create` event takes about 300 bytes).
const EVENT_BYTES: usize = 384;

/// What opening a case writes: the case (without the record's columns, returned), its ticket
/// (which no other case may hold), and its writes (ticket and break index entries, events, the
/// case with the record's columns and its outstanding marker).
struct Opened {
    step: Step,
    writes: Vec<CaseWrite>,
}

/// Builds the case a record of a new break opens, with the numbers [`plan_opening`] gave it:
/// its `create` event, its owner (with an `assign` event), proposed for auto-resolution (with a
/// `propose` event) when the rules propose it, and rolled through `cycle` (when given).
fn build_opening(
    p: &Planned<'_>,
    (input, row): (&BreakInput, RowRef<'_>),
    id: &str,
    now: DateTime<Utc>,
    roll: &RollParams,
    cycle: Option<&Cycle>,
    (keep, brief): (bool, bool),
) -> Result<Opened, CaseError> {
    let ticket = ticket_of(now, p.ticket);
    let mut case = case_fields(
        input,
        id,
        ticket,
        p.fingerprint.to_string(),
        Origin::Model,
        now,
    );
    case.first_difference = Some(p.opening.first);
    case.previous_difference = p.opening.previous.filter(|x| *x != input.difference);
    case.due = Some(roll.due(now.date_naive(), &case.severity));
    let mut events = Vec::with_capacity(3);
    let mut seq = p.first_event;
    let mut event = |case: &Case, note: EventNote<'_>| -> Result<(), CaseError> {
        let mut json = Vec::with_capacity(EVENT_BYTES);
        serde_json::to_writer(&mut json, &event_of(seq, case, note, now))
            .map_err(|e| CaseError::Invalid(e.to_string()))?;
        events.push((seq, json));
        seq += 1;
        Ok(())
    };
    event(
        &case,
        EventNote::by(EventAction::Create, SYSTEM_USER, None, None),
    )?;
    if let Some((owner, when)) = &p.owner {
        case.owner = Some(owner.clone());
        event(
            &case,
            EventNote::by(
                EventAction::Assign,
                RULES_USER,
                Some(Status::PendingReview),
                Some(format!("{owner} (route: {when})")),
            ),
        )?;
    }
    if p.auto {
        let by = format!("rules:{}", input.bucket_rule);
        case.status = Status::AutoResolveProposed;
        case.proposed_by = Some(by.clone());
        event(
            &case,
            EventNote::by(
                EventAction::Propose,
                RULES_USER,
                Some(Status::PendingReview),
                Some(by),
            ),
        )?;
    }
    if let Some(cycle) = cycle {
        roll_opened(&mut case, cycle);
    }
    let bytes = case_bytes_with_row(&case, row).map_err(|e| CaseError::Invalid(e.to_string()))?;
    let id = case.id.as_bytes();
    let mut writes: Vec<CaseWrite> = Vec::with_capacity(4 + 2 * events.len());
    writes.push(CaseWrite::put(
        CaseTree::Tickets,
        case.ticket.as_bytes().to_vec(),
        id.to_vec(),
    ));
    writes.push(CaseWrite::put(
        CaseTree::BreakIndex,
        break_start_key(input),
        id.to_vec(),
    ));
    for (seq, json) in events {
        writes.push(CaseWrite::put(
            CaseTree::Events,
            seq.to_be_bytes().to_vec(),
            json,
        ));
        writes.push(CaseWrite::put(
            CaseTree::CaseEvents,
            case_event_key(&case.id, seq),
            Vec::new(),
        ));
    }
    case_writes(&case, bytes, true, &mut writes)?;
    // The case itself only when it is kept (with the record's columns).
    let step = if keep {
        case.row = row.to_map()?;
        Step::Written(Box::new(UpsertOutcome {
            case,
            change: Change::Created,
        }))
    } else {
        let r = Recorded::of(&case, Change::Created);
        Step::Recorded(
            r,
            brief.then(|| {
                super::roll::briefly(&mut case);
                Box::new(case)
            }),
        )
    };
    Ok(Opened { step, writes })
}

/// Writes the cases [`build_opening`] built, all at once (see [`CaseTxn::write_batch`]); their
/// tickets must be free. Returns what each did.
fn apply_openings(txn: &CaseTxn<'_>, opened: Vec<Opened>) -> TxResult<Vec<Step>> {
    let tickets: Vec<&[u8]> = opened.iter().map(|o| o.step.ticket().as_bytes()).collect();
    let taken = txn.get_many(CaseTree::Tickets, &tickets)?;
    if let Some((o, _)) = opened.iter().zip(&taken).find(|(_, t)| t.is_some()) {
        return abort(ticket_taken(o.step.ticket()));
    }
    drop(tickets);
    let mut writes = Vec::with_capacity(opened.len());
    let mut steps = Vec::with_capacity(opened.len());
    for o in opened {
        writes.push(o.writes);
        steps.push(o.step);
    }
    txn.write_batch(writes.into_iter().flatten())?;
    Ok(steps)
}

/// The columns of record `k`: its own, or `rows[k]` when the columns are given encoded.
fn row_at<'a>(inputs: &'a [BreakInput], rows: Option<&'a [EncodedRow]>, k: usize) -> RowRef<'a> {
    match rows {
        Some(rows) => RowRef::Encoded(&rows[k]),
        None => RowRef::Map(&inputs[k].row),
    }
}
