//! Recording a run's flagged records: opening, updating and bringing back cases.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};

use crate::store::{CaseReader, CaseTree, CaseTxn};

use super::codec::{
    EventNote, abort, append_event, append_event_note, break_prefix, case_head, decode_case,
    is_marker, load_case, write_case_with_row,
};
use super::roll::{recertify_if_moved, roll_opened};
use super::*;

impl<'s> Cases<'s> {
    /// For a record that opens no known break, the cleared case of the same account that it
    /// brings back (cleared at most `reopen_days` before the record's break began), if any.
    fn reappearing(
        &self,
        reader: &mut CaseReader<'_>,
        input: &BreakInput,
    ) -> Result<Option<String>, CaseError> {
        let mut best: Option<(NaiveDate, String)> = None;
        let prefix = break_prefix(&input.profile, &input.key);
        let entries = reader.scan(CaseTree::BreakIndex, &prefix)?;
        // A case marked outstanding has not cleared: it is not read (a store written before
        // the markers reads every case of the account, as it did).
        let open: HashSet<&[u8]> = entries
            .iter()
            .filter(|(k, _)| is_marker(k, prefix.len()))
            .map(|(_, id)| id.as_slice())
            .collect();
        for (k, id) in &entries {
            if is_marker(k, prefix.len()) || open.contains(id.as_slice()) {
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
    /// auto-resolution only when every record of its break is proposed. Writes go in transactions of
    /// `UPSERT_CHUNK` cases, each atomic and durable; a crash between two leaves the earlier
    /// ones, and running the same records again completes the rest (upserts are idempotent).
    pub fn upsert_batch_in(
        &self,
        inputs: &[BreakInput],
        auto_resolve: &[bool],
        cycle: Option<&Cycle>,
    ) -> Result<Vec<UpsertOutcome>, CaseError> {
        let (steps, of_input) = self.record_steps(inputs, auto_resolve, cycle, true)?;
        use rayon::prelude::*;
        let outcomes: Vec<UpsertOutcome> = steps
            .into_par_iter()
            .map(|step| match step {
                Step::Written(o) => Ok(*o),
                Step::Unchanged(_, bytes) => Ok(UpsertOutcome {
                    case: decode_case(&bytes)?,
                    change: Change::Unchanged,
                }),
            })
            .collect::<Result<_, CaseError>>()?;
        Ok(of_input.iter().map(|k| outcomes[*k].clone()).collect())
    }

    /// [`Cases::upsert_batch_in`] as a run records its flagged records: what each record did to
    /// its case, without the cases (an unchanged case is not decoded).
    pub fn record_batch(
        &self,
        inputs: &[BreakInput],
        auto_resolve: &[bool],
        cycle: Option<&Cycle>,
    ) -> Result<Vec<Recorded>, CaseError> {
        let (steps, of_input) = self.record_steps(inputs, auto_resolve, cycle, false)?;
        let recorded: Vec<Recorded> = steps
            .into_iter()
            .map(|step| match step {
                Step::Written(o) => Recorded::of(&o.case, o.change),
                Step::Unchanged(r, _) => r,
            })
            .collect();
        Ok(of_input.iter().map(|k| recorded[*k].clone()).collect())
    }

    /// The body of [`Cases::upsert_batch_in`] and [`Cases::record_batch`]: one step per case
    /// (an unchanged case's stored bytes kept when `keep` asks for them), and the step of each
    /// input.
    fn record_steps(
        &self,
        inputs: &[BreakInput],
        auto_resolve: &[bool],
        cycle: Option<&Cycle>,
        keep: bool,
    ) -> Result<(Vec<Step>, Vec<usize>), CaseError> {
        if inputs.len() != auto_resolve.len() {
            return Err(CaseError::Invalid(format!(
                "{} records but {} auto-resolve flags",
                inputs.len(),
                auto_resolve.len()
            )));
        }
        use rayon::prelude::*;
        let ids: Vec<String> = inputs
            .par_iter()
            .map(|input| {
                input.validate()?;
                Ok(case_id(&input.profile, &input.key, input.start_date))
            })
            .collect::<Result<_, CaseError>>()?;
        let Grouped {
            order,
            reps,
            earlier,
            proposed,
        } = group_by_case(inputs, &ids, auto_resolve);
        // The index buckets decoded once for the whole batch: by the reader of `prepare`, then
        // by each transaction in turn (each takes them back as it left them).
        let cache = crate::store::BucketCache::default();
        let prepared = self.prepare(inputs, &ids, &reps, &cache)?;
        let now = self.now();
        let roll = self.roll;
        let router = self.router.as_deref();
        let mut outcomes: Vec<Step> = Vec::with_capacity(reps.len());
        for (c, chunk) in reps.chunks(UPSERT_CHUNK).enumerate() {
            let base = c * UPSERT_CHUNK;
            let part = self.store.case_transaction_in(Some(&cache), |txn| {
                let mut part = Vec::with_capacity(chunk.len());
                for (j, &k) in chunk.iter().enumerate() {
                    let (fingerprint, reappear) = &prepared[base + j];
                    // The break's own case, already up to date: read from its head alone.
                    if let Some(bytes) = txn.get(CaseTree::Cases, ids[k].as_bytes())?
                        && let Some(head) = case_head(&bytes)
                        && (inputs[k].date < head.last_date
                            || inputs[k].has_fingerprint(head.fingerprint, fingerprint))
                    {
                        let r = Recorded {
                            id: ids[k].clone(),
                            ticket: head.ticket.to_string(),
                            status: head.status,
                            change: Change::Unchanged,
                        };
                        part.push(Step::Unchanged(r, if keep { bytes } else { Vec::new() }));
                        continue;
                    }
                    let (first, before) = earlier[ids[k].as_str()];
                    let history = Opening {
                        first: inputs[first].difference,
                        previous: before.map(|p| inputs[p].difference),
                    };
                    part.push(Step::Written(Box::new(upsert_one(
                        txn,
                        &inputs[k],
                        history,
                        proposed[ids[k].as_str()],
                        &ids[k],
                        fingerprint,
                        now,
                        &roll,
                        reappear.as_deref(),
                        router,
                        cycle,
                        keep,
                    )?)));
                }
                Ok(part)
            })?;
            outcomes.extend(part);
        }
        let at: HashMap<&str, usize> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let of_input = ids.iter().map(|id| at[id.as_str()]).collect();
        Ok((outcomes, of_input))
    }

    /// The fingerprint of each case's record (`reps`: the input each case is brought to), and
    /// the cleared case that the record of a break not yet stored brings back, if any.
    fn prepare(
        &self,
        inputs: &[BreakInput],
        ids: &[String],
        reps: &[usize],
        cache: &crate::store::BucketCache,
    ) -> Result<Vec<(String, Option<String>)>, CaseError> {
        use rayon::prelude::*;
        // Fingerprints (SHA-256 of each record), in parallel; then the cleared case a record of
        // an unknown break may bring back, read once through one reader.
        let fingerprints: Vec<String> = reps
            .par_iter()
            .map(|&k| inputs[k].fingerprint())
            .collect::<Result<_, CaseError>>()?;
        let mut reader = self.store.case_reader_in(Some(cache));
        let mut prepared: Vec<(String, Option<String>)> = Vec::with_capacity(reps.len());
        for (&k, fingerprint) in reps.iter().zip(fingerprints) {
            let reappear = if reader.contains(CaseTree::Cases, ids[k].as_bytes())? {
                None
            } else {
                self.reappearing(&mut reader, &inputs[k])?
            };
            prepared.push((fingerprint, reappear));
        }
        Ok(prepared)
    }
}

/// A batch's records grouped by case (`ids[k]` is the case of `inputs[k]`).
struct Grouped<'a> {
    /// The cases, in the order of their first record.
    order: Vec<&'a str>,
    /// The record each case (in `order`) is brought to.
    reps: Vec<usize>,
    /// Each case's first record, and the one before the record it is brought to (if any).
    earlier: HashMap<&'a str, (usize, Option<usize>)>,
    /// Whether the rules propose each case for auto-resolution.
    proposed: HashMap<&'a str, bool>,
}

/// Groups the records of a batch by case (see [`Grouped`]).
fn group_by_case<'a>(
    inputs: &[BreakInput],
    ids: &'a [String],
    auto_resolve: &[bool],
) -> Grouped<'a> {
    // The record each case is brought to: its latest (by date, then by position, as one
    // upsert after the other would leave it).
    let mut latest: HashMap<&str, usize> = HashMap::with_capacity(inputs.len());
    let mut order: Vec<&str> = Vec::new();
    for (k, id) in ids.iter().enumerate() {
        match latest.entry(id.as_str()) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(k);
                order.push(id.as_str());
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                if inputs[k].date >= inputs[*o.get()].date {
                    o.insert(k);
                }
            }
        }
    }
    let reps: Vec<usize> = order.iter().map(|id| latest[id]).collect();
    // What a case the batch opens keeps of its break's earlier records: the difference of
    // the first (its opening difference) and of the one before the latest.
    let mut earlier: HashMap<&str, (usize, Option<usize>)> = HashMap::with_capacity(reps.len());
    for (k, id) in ids.iter().enumerate() {
        let rep = latest[id.as_str()];
        let e = earlier.entry(id.as_str()).or_insert((k, None));
        if inputs[k].date < inputs[e.0].date {
            e.0 = k;
        }
        if k != rep && e.1.is_none_or(|p| inputs[k].date >= inputs[p].date) {
            e.1 = Some(k);
        }
    }
    // The rules propose a case for auto-resolution only when they propose every record of
    // its break: one unexplained record keeps it for review.
    let mut proposed: HashMap<&str, bool> = HashMap::with_capacity(reps.len());
    for (id, auto) in ids.iter().zip(auto_resolve) {
        *proposed.entry(id.as_str()).or_insert(true) &= *auto;
    }
    Grouped {
        order,
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
    let n = next_counter(txn, TICKET_COUNTER)?;
    let ticket = format!("BRK-{}-{n:06}", now.format("%Y%m%d"));
    if txn.get(CaseTree::Tickets, ticket.as_bytes())?.is_some() {
        return abort(CaseError::Corrupt {
            what: "ticket counter".into(),
            message: format!("ticket {ticket} is already taken"),
        });
    }
    txn.insert(CaseTree::Tickets, ticket.as_bytes(), id.as_bytes())?;
    let mut bk = break_prefix(&input.profile, &input.key);
    bk.extend_from_slice(input.start_date.to_string().as_bytes());
    txn.insert(CaseTree::BreakIndex, &bk, id.as_bytes())?;
    Ok(Case {
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
    })
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
    let mut bk = break_prefix(&input.profile, &input.key);
    bk.extend_from_slice(input.start_date.to_string().as_bytes());
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

/// What recording one record did: the case written (or, if unchanged, as it was read), or, for
/// an unchanged case, its head and (when asked for) its stored bytes.
enum Step {
    Written(Box<UpsertOutcome>),
    Unchanged(Recorded, Vec<u8>),
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

#[allow(clippy::too_many_arguments)]
fn upsert_one(
    txn: &CaseTxn<'_>,
    input: &BreakInput,
    opening: Opening,
    auto_resolve: bool,
    id: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
    roll: &RollParams,
    reappear: Option<&str>,
    router: Option<&crate::routing::Router>,
    cycle: Option<&Cycle>,
    keep: bool,
) -> TxResult<UpsertOutcome> {
    if let Some(case) = case_of_record(txn, input, id, reappear)? {
        return bring_up_to_date(txn, case, input, fingerprint, now, roll, keep);
    }
    open_case(
        txn,
        input,
        opening,
        auto_resolve,
        id,
        fingerprint,
        now,
        roll,
        router,
        cycle,
        keep,
    )
}

/// Brings the stored `case` of a record to it (unless the record is older or the same): a
/// cleared break that is back reappears for review, one that persists takes the record (and
/// goes back to review when its difference moved past `recertify_share`). The case returned
/// has the record's columns only when `keep` asks for them (it is written with them).
fn bring_up_to_date(
    txn: &CaseTxn<'_>,
    mut case: Case,
    input: &BreakInput,
    fingerprint: &str,
    now: DateTime<Utc>,
    roll: &RollParams,
    keep: bool,
) -> TxResult<UpsertOutcome> {
    // An older record (a past file run again) or the same record: nothing to do.
    if input.date < case.last_date || input.has_fingerprint(&case.fingerprint, fingerprint) {
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
    write_case_with_row(txn, &case, &input.row, false)?;
    if keep {
        case.row = input.row.clone();
    }
    Ok(UpsertOutcome { case, change })
}

/// Opens the case of a record of a new break: its ticket, its `create` event, its owner when
/// `router` gives one, proposed for auto-resolution when `auto_resolve` says so, and rolled
/// through `cycle` (when given) before it is written. The case returned has the record's
/// columns only when `keep` asks for them (it is written with them).
#[allow(clippy::too_many_arguments)]
fn open_case(
    txn: &CaseTxn<'_>,
    input: &BreakInput,
    opening: Opening,
    auto_resolve: bool,
    id: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
    roll: &RollParams,
    router: Option<&crate::routing::Router>,
    cycle: Option<&Cycle>,
    keep: bool,
) -> TxResult<UpsertOutcome> {
    let mut case =
        new_case_without_row(txn, input, id, fingerprint.to_string(), Origin::Model, now)?;
    case.first_difference = Some(opening.first);
    case.previous_difference = opening.previous.filter(|p| *p != input.difference);
    case.due = Some(roll.due(now.date_naive(), &case.severity));
    append_event(
        txn,
        &case,
        EventAction::Create,
        SYSTEM_USER,
        None,
        None,
        None,
        now,
    )?;
    let routed = crate::routing::RoutedCase {
        profile: &input.profile,
        key: &input.key,
        bucket: &input.bucket,
        severity: &input.severity,
        difference: input.difference,
        row: &input.row,
    };
    if let Some((owner, when)) = router.and_then(|r| r.owner_for(&routed)) {
        case.owner = Some(owner.to_string());
        append_event(
            txn,
            &case,
            EventAction::Assign,
            RULES_USER,
            None,
            Some(Status::PendingReview),
            Some(format!("{owner} (route: {when})")),
            now,
        )?;
    }
    if auto_resolve {
        let by = format!("rules:{}", input.bucket_rule);
        case.status = Status::AutoResolveProposed;
        case.proposed_by = Some(by.clone());
        append_event(
            txn,
            &case,
            EventAction::Propose,
            RULES_USER,
            None,
            Some(Status::PendingReview),
            Some(by),
            now,
        )?;
    }
    if let Some(cycle) = cycle {
        roll_opened(&mut case, cycle);
    }
    write_case_with_row(txn, &case, &input.row, true)?;
    if keep {
        case.row = input.row.clone();
    }
    Ok(UpsertOutcome {
        case,
        change: Change::Created,
    })
}
