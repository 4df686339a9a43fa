//! How cases, events and their indexes are stored: encoding, heads, markers and prefixes.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Deserialize;

use crate::store::{CaseReader, CaseTree, CaseTxn, CaseWrite, TxError};

use super::binary::{self, BIN_TAG, RowRef};

use super::*;

// ---------------------------------------------------------------------------------------------
// Transaction steps

pub(super) fn abort<T>(e: CaseError) -> TxResult<T> {
    Err(TxError::Abort(e))
}

pub(super) fn decode<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    what: &str,
) -> Result<T, CaseError> {
    serde_json::from_slice(bytes).map_err(|e| CaseError::Corrupt {
        what: what.to_string(),
        message: e.to_string(),
    })
}

pub(super) fn load_case(txn: &CaseTxn<'_>, id: &str) -> TxResult<Option<Case>> {
    match txn.get(CaseTree::Cases, id.as_bytes())? {
        Some(bytes) => decode_case(&bytes).map(Some).map_err(TxError::Abort),
        None => Ok(None),
    }
}

/// A stored case starts with its head: what recording the same record again reads, so that an
/// unchanged case is not decoded. A tag, the head's length (u16 LE), then the fingerprint, the
/// latest record's date (days from CE, i32 LE), the ticket and the status, each text with its
/// length (u16 LE) first; then the case: binary ([`binary`], tag [`BIN_TAG`], written since
/// schema 5) or JSON (tag `HEAD_TAG`, schema 4). A case stored without a head (written before
/// heads existed) is JSON alone, and starts with `{`.
const HEAD_TAG: u8 = 1;

/// What [`case_head`] reads.
pub(super) struct Head<'a> {
    pub(super) fingerprint: &'a str,
    pub(super) last_date: NaiveDate,
    pub(super) ticket: &'a str,
    pub(super) status: Status,
}

/// The stored bytes of a case: its head, then its binary body.
#[cfg(test)]
pub(super) fn case_bytes(case: &Case) -> Result<Vec<u8>, serde_json::Error> {
    case_bytes_with_row(case, RowRef::Map(&case.row))
}

/// [`case_bytes`] of `case` with `row` as its record's columns.
pub(super) fn case_bytes_with_row(
    case: &Case,
    row: RowRef<'_>,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut w = binary::Writer(Vec::with_capacity(1024));
    write_head(&mut w.0, BIN_TAG, case);
    binary::write_case_body(&mut w, case, row)?;
    Ok(w.0)
}

/// The bytes schema 4 stored a case as (head, then JSON): what older stores hold.
#[cfg(test)]
pub(super) fn case_bytes_json(case: &Case) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    write_head(&mut out, HEAD_TAG, case);
    out.extend_from_slice(&serde_json::to_vec(case)?);
    Ok(out)
}

/// Appends `tag` and the head of `case` to `out`. The texts are short (a fingerprint, a ticket,
/// a status); one too long for a head leaves the head empty (unreadable as a head: the case is
/// then decoded whole).
fn write_head(out: &mut Vec<u8>, tag: u8, case: &Case) {
    out.extend_from_slice(&[tag, 0, 0]);
    if [&case.fingerprint, &case.ticket]
        .iter()
        .any(|t| t.len() > 1024)
    {
        return;
    }
    let start = out.len();
    let text = |out: &mut Vec<u8>, t: &str| {
        out.extend_from_slice(&(t.len() as u16).to_le_bytes());
        out.extend_from_slice(t.as_bytes());
    };
    text(out, &case.fingerprint);
    out.extend_from_slice(&case.last_date.num_days_from_ce().to_le_bytes());
    text(out, &case.ticket);
    text(out, case.status.as_str());
    let n = (out.len() - start) as u16;
    out[start - 2..start].copy_from_slice(&n.to_le_bytes());
}

/// A text of a case head (its length, u16 LE, first), taken from the front of `head`.
fn take_text<'a>(head: &mut &'a [u8]) -> Option<&'a str> {
    let (n, tail) = head.split_first_chunk::<2>()?;
    let n = usize::from(u16::from_le_bytes(*n));
    let t = std::str::from_utf8(tail.get(..n)?).ok()?;
    *head = &tail[n..];
    Some(t)
}

pub(super) fn decode_case(bytes: &[u8]) -> Result<Case, CaseError> {
    decode_case_as(bytes, false)
}

/// [`decode_case`] without the record's columns and the dispatch history (what
/// [`crate::cases::roll::briefly`] leaves of a case): a binary case skips them as it reads.
pub(super) fn decode_brief_case(bytes: &[u8]) -> Result<Case, CaseError> {
    decode_case_as(bytes, true)
}

fn decode_case_as(bytes: &[u8], brief: bool) -> Result<Case, CaseError> {
    let mut case = match bytes {
        [tag @ (HEAD_TAG | BIN_TAG), a, b, rest @ ..] => {
            let n = usize::from(u16::from_le_bytes([*a, *b]));
            let body = rest.get(n..).unwrap_or(&[]);
            if *tag == HEAD_TAG {
                decode(body, "case")
            } else {
                let read = if brief {
                    binary::read_brief_case_body(body)
                } else {
                    binary::read_case_body(body)
                };
                read.map_err(|message| CaseError::Corrupt {
                    what: "case".into(),
                    message,
                })
            }
        }
        _ => decode(bytes, "case"),
    }?;
    if brief {
        super::roll::briefly(&mut case);
    }
    Ok(case)
}

/// The head of a stored case; None for a case stored without one, or one that cannot be read
/// (the case is then decoded whole, which reports the damage).
pub(super) fn case_head(bytes: &[u8]) -> Option<Head<'_>> {
    let [HEAD_TAG | BIN_TAG, a, b, rest @ ..] = bytes else {
        return None;
    };
    let mut head = rest.get(..usize::from(u16::from_le_bytes([*a, *b])))?;
    let fingerprint = take_text(&mut head)?;
    let (days, tail) = head.split_first_chunk::<4>()?;
    let last_date = NaiveDate::from_num_days_from_ce_opt(i32::from_le_bytes(*days))?;
    head = tail;
    let ticket = take_text(&mut head)?;
    let status = take_text(&mut head)?.parse().ok()?;
    Some(Head {
        fingerprint,
        last_date,
        ticket,
        status,
    })
}

/// The case of a case id or ticket, or `NotFound`.
pub(super) fn load_ref(txn: &CaseTxn<'_>, reference: &str) -> TxResult<Case> {
    let not_found = || {
        TxError::Abort(CaseError::NotFound {
            reference: reference.to_string(),
        })
    };
    let id = if is_ticket(reference) {
        let bytes = txn
            .get(CaseTree::Tickets, reference.as_bytes())?
            .ok_or_else(not_found)?;
        String::from_utf8(bytes).or_else(|e| {
            abort(CaseError::Corrupt {
                what: format!("ticket index entry {reference}"),
                message: e.to_string(),
            })
        })?
    } else {
        reference.to_string()
    };
    load_case(txn, &id)?.ok_or_else(not_found)
}

/// The next value of a counter (the first is 1).
pub(crate) fn next_counter(txn: &CaseTxn<'_>, name: &[u8]) -> TxResult<u64> {
    if let Some(last) = txn.counter(name) {
        txn.set_counter(name, last + 1);
        return Ok(last + 1);
    }
    let last = match txn.get(CaseTree::Seq, name)? {
        None => 0,
        Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(b) => u64::from_be_bytes(b),
            Err(_) => {
                return abort(CaseError::Corrupt {
                    what: format!("counter {}", String::from_utf8_lossy(name)),
                    message: format!("{} bytes, expected 8", bytes.len()),
                });
            }
        },
    };
    let next = last + 1;
    txn.set_counter(name, next);
    Ok(next)
}

/// Writes the case, its training label (or removes it while undecided) and its outstanding
/// marker (or removes it once the break cleared).
pub(super) fn put_case(txn: &CaseTxn<'_>, case: &Case) -> TxResult<()> {
    write_case(txn, case, false)
}

/// [`put_case`]; a `fresh` case (written for the first time) has no marker or label to remove.
pub(super) fn write_case(txn: &CaseTxn<'_>, case: &Case, fresh: bool) -> TxResult<()> {
    write_case_with_row(txn, case, RowRef::Map(&case.row), fresh)
}

/// [`write_case`] of `case` with `row` as its record's columns (a case built without a copy of
/// the record's columns is written with the record's).
pub(super) fn write_case_with_row(
    txn: &CaseTxn<'_>,
    case: &Case,
    row: RowRef<'_>,
    fresh: bool,
) -> TxResult<()> {
    let bytes =
        case_bytes_with_row(case, row).or_else(|e| abort(CaseError::Invalid(e.to_string())))?;
    write_case_bytes(txn, case, bytes, fresh)
}

/// [`write_case_with_row`] of a case already encoded (`bytes`, from [`case_bytes_with_row`]).
pub(super) fn write_case_bytes(
    txn: &CaseTxn<'_>,
    case: &Case,
    bytes: Vec<u8>,
    fresh: bool,
) -> TxResult<()> {
    let mut writes = Vec::with_capacity(3);
    case_writes(case, bytes, fresh, &mut writes).map_err(TxError::Abort)?;
    txn.write_batch(writes)?;
    Ok(())
}

/// What writing `case` (stored as `bytes`) writes, added to `out`: the case, its outstanding
/// marker (or its removal once the break cleared) and its training label (or its removal while
/// undecided). A `fresh` case (written for the first time) has no marker or label to remove.
pub(super) fn case_writes(
    case: &Case,
    bytes: Vec<u8>,
    fresh: bool,
    out: &mut Vec<CaseWrite>,
) -> Result<(), CaseError> {
    let id = case.id.as_bytes();
    out.push(CaseWrite::put(CaseTree::Cases, id.to_vec(), bytes));
    let marker = outstanding_marker(&case.profile, &case.key, &case.id);
    if case.outstanding() {
        out.push(CaseWrite::put(
            CaseTree::BreakIndex,
            marker,
            super::binary::light_marker(case),
        ));
    } else if !fresh {
        out.push(CaseWrite::remove(CaseTree::BreakIndex, marker));
    }
    match case.status.label() {
        Some(label) => {
            let l = Label {
                case_id: case.id.clone(),
                profile: case.profile.clone(),
                key: case.key.clone(),
                date: case.last_date,
                start_date: Some(case.start_date),
                label,
                origin: case.origin,
                difference: case.judged_difference.or(Some(case.difference)),
            };
            let json = serde_json::to_vec(&l).map_err(|e| CaseError::Invalid(e.to_string()))?;
            out.push(CaseWrite::put(CaseTree::Feedback, id.to_vec(), json));
        }
        None if fresh => {}
        None => out.push(CaseWrite::remove(CaseTree::Feedback, id.to_vec())),
    }
    Ok(())
}

/// Appends an event about `case` (in its current state, `to` = its status) and returns its
/// sequence number.
#[allow(clippy::too_many_arguments)]
pub(super) fn append_event(
    txn: &CaseTxn<'_>,
    case: &Case,
    action: EventAction,
    user: &str,
    role: Option<Role>,
    from: Option<Status>,
    reason: Option<String>,
    at: DateTime<Utc>,
) -> TxResult<u64> {
    let ev = EventNote {
        action,
        user,
        role,
        from,
        reason,
        record: None,
    };
    append_event_note(txn, case, ev, at)
}

/// What an event says besides the case and the time (see [`Event`]).
pub(super) struct EventNote<'a> {
    pub(super) action: EventAction,
    pub(super) user: &'a str,
    pub(super) role: Option<Role>,
    pub(super) from: Option<Status>,
    pub(super) reason: Option<String>,
    pub(super) record: Option<serde_json::Value>,
}

impl<'a> EventNote<'a> {
    /// An event by `user` (breakdesk's own: no role) without a record.
    pub(super) fn by(
        action: EventAction,
        user: &'a str,
        from: Option<Status>,
        reason: Option<String>,
    ) -> EventNote<'a> {
        EventNote {
            action,
            user,
            role: None,
            from,
            reason,
            record: None,
        }
    }
}

impl EventNote<'static> {
    /// An event the cycle records as the system user: a case moved `from` a status, why, and
    /// the record that moved it.
    pub(super) fn system(
        action: EventAction,
        from: Status,
        reason: String,
        record: serde_json::Value,
    ) -> EventNote<'static> {
        EventNote {
            action,
            user: SYSTEM_USER,
            role: None,
            from: Some(from),
            reason: Some(reason),
            record: Some(record),
        }
    }
}

/// [`append_event`] with the event given as an [`EventNote`] (which may carry a record).
pub(super) fn append_event_note(
    txn: &CaseTxn<'_>,
    case: &Case,
    note: EventNote<'_>,
    at: DateTime<Utc>,
) -> TxResult<u64> {
    let seq = next_counter(txn, EVENT_COUNTER)?;
    let event = event_of(seq, case, note, at);
    txn.insert_later(
        CaseTree::Events,
        &seq.to_be_bytes(),
        std::sync::Arc::new(move || serde_json::to_vec(&event).map_err(|e| e.to_string())),
    )?;
    txn.insert(CaseTree::CaseEvents, &case_event_key(&case.id, seq), b"")?;
    Ok(seq)
}

/// The event number `seq` about `case` (in its current state, `to` = its status).
pub(super) fn event_of(seq: u64, case: &Case, note: EventNote<'_>, at: DateTime<Utc>) -> Event {
    let EventNote {
        action,
        user,
        role,
        from,
        reason,
        record,
    } = note;
    Event {
        seq,
        at,
        user: user.to_string(),
        role,
        case_id: case.id.clone(),
        ticket: case.ticket.clone(),
        action,
        from,
        to: Some(case.status),
        reason,
        model_version: case.model_version.clone(),
        record,
    }
}

/// The key of event `seq` among the events of `case_id`.
pub(super) fn case_event_key(case_id: &str, seq: u64) -> Vec<u8> {
    let mut k = case_events_prefix(case_id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Reads a case inside a transaction (for the outbox).
pub(crate) fn load_case_txn(txn: &CaseTxn<'_>, case_id: &str) -> TxResult<Option<Case>> {
    load_case(txn, case_id)
}

pub(super) fn is_ticket(reference: &str) -> bool {
    reference.starts_with("BRK-")
}

/// The sequence number of a ticket (`BRK-YYYYMMDD-NNNNNN` → NNNNNN).
pub(super) fn ticket_number(ticket: &str) -> u64 {
    ticket
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

pub(super) fn break_prefix(profile: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(profile.len() + key.len() + 2);
    k.extend_from_slice(profile.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k
}

/// Marks, in the break index, the cases that have not cleared: `profile NUL key NUL ~open~ id`
/// (after the account's break dates, which are digits), so that a record finds its account's
/// outstanding cases without reading the others.
pub(super) const OUTSTANDING_TAG: &[u8] = b"~open~";

/// The ids of the outstanding cases of one account, from its markers (read through `reader`).
pub(super) fn outstanding_in(
    reader: &mut CaseReader<'_>,
    profile: &str,
    key: &str,
) -> Result<Vec<String>, CaseError> {
    let prefix = outstanding_prefix(profile, key);
    reader
        .scan(CaseTree::BreakIndex, &prefix)?
        .into_iter()
        .map(|(k, _)| {
            String::from_utf8(marker_case_id(&k, prefix.len()).to_vec()).map_err(|e| {
                CaseError::Corrupt {
                    what: "outstanding marker".into(),
                    message: e.to_string(),
                }
            })
        })
        .collect()
}

fn outstanding_prefix(profile: &str, key: &str) -> Vec<u8> {
    let mut k = break_prefix(profile, key);
    k.extend_from_slice(OUTSTANDING_TAG);
    k
}

pub(super) fn outstanding_marker(profile: &str, key: &str, case_id: &str) -> Vec<u8> {
    let mut k = outstanding_prefix(profile, key);
    k.extend_from_slice(case_id.as_bytes());
    k
}

/// The case id of an outstanding marker (its key, which `prefix_len` bytes of
/// [`outstanding_prefix`] start): what follows the prefix. The marker's value describes the
/// case ([`super::binary::light_marker`]; the id alone in a store written before).
pub(super) fn marker_case_id(marker: &[u8], prefix_len: usize) -> &[u8] {
    marker.get(prefix_len..).unwrap_or_default()
}

/// Whether a break index entry under `prefix` is an outstanding marker (not a break start).
pub(super) fn is_marker(entry_key: &[u8], prefix_len: usize) -> bool {
    entry_key
        .get(prefix_len..)
        .is_some_and(|rest| rest.starts_with(OUTSTANDING_TAG))
}

/// The seq-tree flag set once every stored case has its outstanding marker.
pub(super) const OUTSTANDING_INDEXED: &[u8] = b"outstanding_indexed";

pub(super) fn case_events_prefix(case_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(case_id.len() + 9);
    k.extend_from_slice(case_id.as_bytes());
    k.push(0);
    k
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Dates as `YYYY-MM-DD`.
pub(super) mod date_format {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(d)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Optional dates as `YYYY-MM-DD`.
pub(super) mod opt_date_format {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(d),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// Timestamps as RFC 3339 UTC with milliseconds (`2024-05-01T09:30:00.000Z`).
pub(crate) mod time_format {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}
