//! The binary body of a stored case (after its head, tag [`BIN_TAG`]): what a case is written as
//! since schema 5. JSON took most of the time of recording a run's cases (writing) and of
//! reading them back; this encoding is the fields in a fixed order, little-endian, texts with
//! their length first. The rarely set nested fields (the dispatches, the last decision) are
//! kept as JSON inside it. Cases written as JSON (schema 4 and before) are read as they are.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::*;

/// The first byte of a case whose body is binary (a JSON body's head starts with 1, a case
/// without a head with `{`).
pub(super) const BIN_TAG: u8 = 2;

/// A text or byte string that is absent.
const NONE: u32 = u32::MAX;

/// Tags of a row value: a JSON string (its text follows), or any other JSON value (its JSON
/// text follows).
const ROW_STRING: u8 = 0;
const ROW_JSON: u8 = 1;

pub(super) struct Writer(pub(super) Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn text(&mut self, t: &str) {
        self.bytes(t.as_bytes());
    }
    fn opt_text(&mut self, t: Option<&str>) {
        match t {
            Some(t) => self.text(t),
            None => self.u32(NONE),
        }
    }
    fn date(&mut self, d: NaiveDate) {
        self.0
            .extend_from_slice(&d.num_days_from_ce().to_le_bytes());
    }
    fn opt_date(&mut self, d: Option<NaiveDate>) {
        match d {
            Some(d) => {
                self.u8(1);
                self.date(d);
            }
            None => self.u8(0),
        }
    }
    fn opt_f64(&mut self, v: Option<f64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.f64(v);
            }
            None => self.u8(0),
        }
    }
    /// A timestamp at the precision JSON kept (milliseconds).
    fn time(&mut self, t: DateTime<Utc>) {
        self.i64(t.timestamp_millis());
    }
}

/// Reads what [`Writer`] wrote; every read checks the bounds.
struct Reader<'a> {
    bytes: &'a [u8],
}

type Bad = String;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        if n > self.bytes.len() {
            return Err(format!(
                "the case ends early ({n} bytes needed, {} left)",
                self.bytes.len()
            ));
        }
        let (a, b) = self.bytes.split_at(n);
        self.bytes = b;
        Ok(a)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Bad> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Bad> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Bad> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, Bad> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f64(&mut self) -> Result<f64, Bad> {
        Ok(f64::from_bits(self.u64()?))
    }
    fn flag(&mut self) -> Result<bool, Bad> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("a flag of {b}")),
        }
    }
    fn opt_bytes(&mut self) -> Result<Option<&'a [u8]>, Bad> {
        match self.u32()? {
            NONE => Ok(None),
            n => self.take(n as usize).map(Some),
        }
    }
    fn text(&mut self) -> Result<&'a str, Bad> {
        self.opt_text()?
            .ok_or_else(|| "an absent text where one is required".to_string())
    }
    fn opt_text(&mut self) -> Result<Option<&'a str>, Bad> {
        match self.opt_bytes()? {
            None => Ok(None),
            Some(b) => std::str::from_utf8(b)
                .map(Some)
                .map_err(|e| format!("a text that is not UTF-8: {e}")),
        }
    }
    fn date(&mut self) -> Result<NaiveDate, Bad> {
        let days = i32::from_le_bytes(self.array()?);
        NaiveDate::from_num_days_from_ce_opt(days).ok_or_else(|| format!("a date of day {days}"))
    }
    fn opt_date(&mut self) -> Result<Option<NaiveDate>, Bad> {
        if self.flag()? {
            self.date().map(Some)
        } else {
            Ok(None)
        }
    }
    fn opt_f64(&mut self) -> Result<Option<f64>, Bad> {
        if self.flag()? {
            self.f64().map(Some)
        } else {
            Ok(None)
        }
    }
    fn time(&mut self) -> Result<DateTime<Utc>, Bad> {
        let ms = i64::from_le_bytes(self.array()?);
        DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("a time of {ms} ms"))
    }
}

fn status_code(s: Status) -> u8 {
    Status::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8
}

fn status_of(b: u8) -> Result<Status, Bad> {
    Status::ALL
        .get(usize::from(b))
        .copied()
        .ok_or_else(|| format!("a status of {b}"))
}

/// The first byte of an outstanding marker's value that carries what the roll-forward reads of
/// its case ([`light_marker`]). A marker written before holds the case id alone, which never
/// starts with it (an id is UTF-8 text).
pub(super) const LIGHT_TAG: u8 = 0xFF;

/// The value of `case`'s outstanding marker: [`LIGHT_TAG`], then the fields a run's roll-forward
/// and its summary read of an outstanding case (id, ticket, profile, key, status, dates,
/// difference and bucket), so that a run reads none of its profile's outstanding cases.
pub(super) fn light_marker(case: &Case) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(
        64 + case.id.len() + case.ticket.len() + case.profile.len() + case.key.len(),
    ));
    w.u8(LIGHT_TAG);
    w.text(&case.id);
    w.text(&case.ticket);
    w.text(&case.profile);
    w.text(&case.key);
    w.u8(status_code(case.status));
    w.date(case.start_date);
    w.date(case.last_date);
    w.opt_date(case.seen_to);
    w.opt_date(case.cleared_on);
    w.f64(case.difference);
    w.text(&case.bucket);
    w.0
}

/// The case an outstanding marker's value describes, with only what [`light_marker`] keeps
/// (the other fields empty, zero or the epoch); None for a marker that names the id alone.
pub(super) fn read_light_marker(value: &[u8]) -> Option<Result<Case, Bad>> {
    let (&LIGHT_TAG, rest) = value.split_first()? else {
        return None;
    };
    let r = &mut Reader { bytes: rest };
    let mut read = || -> Result<Case, Bad> {
        let s = |t: &str| t.to_string();
        let id = s(r.text()?);
        let ticket = s(r.text()?);
        let profile = s(r.text()?);
        let key = s(r.text()?);
        let status = status_of(r.u8()?)?;
        let start_date = r.date()?;
        let last_date = r.date()?;
        let seen_to = r.opt_date()?;
        let cleared_on = r.opt_date()?;
        let difference = r.f64()?;
        let bucket = s(r.text()?);
        if !r.bytes.is_empty() {
            return Err(format!("{} bytes after the marker's fields", r.bytes.len()));
        }
        Ok(Case {
            id,
            ticket,
            profile,
            key,
            start_date,
            last_date,
            origin: Origin::Model,
            status,
            bucket,
            bucket_rule: String::new(),
            confidence: 0.0,
            severity: String::new(),
            summary: String::new(),
            score: 0.0,
            rank: 0,
            difference,
            model_version: String::new(),
            proposed_by: None,
            jira_key: None,
            dispatched: false,
            dispatches: Vec::new(),
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            row: serde_json::Map::new(),
            last_decision: None,
            fingerprint: String::new(),
            judged_difference: None,
            first_difference: None,
            previous_difference: None,
            cleared_on,
            seen_to,
            owner: None,
            due: None,
        })
    };
    Some(read())
}

/// Appends the binary body of `case` to `w`, with `row` as its record's columns (the case's
/// own, or the record's when the case is written without a copy of them).
pub(super) fn write_case_body(
    w: &mut Writer,
    case: &Case,
    row: RowRef<'_>,
) -> Result<(), serde_json::Error> {
    w.text(&case.id);
    w.text(&case.ticket);
    w.text(&case.profile);
    w.text(&case.key);
    w.date(case.start_date);
    w.date(case.last_date);
    w.u8(match case.origin {
        Origin::Model => 0,
        Origin::Analyst => 1,
    });
    w.u8(status_code(case.status));
    w.text(&case.bucket);
    w.text(&case.bucket_rule);
    w.f64(case.confidence);
    w.text(&case.severity);
    w.text(&case.summary);
    w.f64(case.score);
    w.u64(case.rank);
    w.f64(case.difference);
    w.text(&case.model_version);
    w.opt_text(case.proposed_by.as_deref());
    w.opt_text(case.jira_key.as_deref());
    w.u8(u8::from(case.dispatched));
    if case.dispatches.is_empty() {
        w.u32(NONE);
    } else {
        w.bytes(&serde_json::to_vec(&case.dispatches)?);
    }
    w.time(case.created_at);
    w.time(case.updated_at);
    row.write(w)?;
    match &case.last_decision {
        Some(d) => w.bytes(&serde_json::to_vec(d)?),
        None => w.u32(NONE),
    }
    w.text(&case.fingerprint);
    w.opt_f64(case.judged_difference);
    w.opt_f64(case.first_difference);
    w.opt_f64(case.previous_difference);
    w.opt_date(case.cleared_on);
    w.opt_date(case.seen_to);
    w.opt_text(case.owner.as_deref());
    w.opt_date(case.due);
    Ok(())
}

/// Appends a record's columns: their number, then each one's name and value (a text, or any
/// other JSON value as its JSON text).
fn write_row(
    w: &mut Writer,
    row: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), serde_json::Error> {
    w.u32(row.len() as u32);
    for (k, v) in row {
        w.text(k);
        match v {
            serde_json::Value::String(s) => {
                w.u8(ROW_STRING);
                w.text(s);
            }
            other => {
                w.u8(ROW_JSON);
                w.bytes(&serde_json::to_vec(other)?);
            }
        }
    }
    Ok(())
}

/// A record's columns written by [`write_row`].
fn read_row(r: &mut Reader<'_>) -> Result<serde_json::Map<String, serde_json::Value>, Bad> {
    let n = r.u32()? as usize;
    let mut row = serde_json::Map::new();
    for _ in 0..n {
        let k = r.text()?.to_string();
        let v = match r.u8()? {
            ROW_STRING => serde_json::Value::String(r.text()?.to_string()),
            ROW_JSON => serde_json::from_slice(r.opt_bytes()?.unwrap_or(b"null"))
                .map_err(|e| format!("its row's {k}: {e}"))?,
            b => return Err(format!("a row value tagged {b}")),
        };
        row.insert(k, v);
    }
    Ok(row)
}

/// Reads past a record's columns written by [`write_row`], checking them as [`read_row`] does
/// without building them.
fn skip_row(r: &mut Reader<'_>) -> Result<(), Bad> {
    let n = r.u32()? as usize;
    for _ in 0..n {
        let k = r.text()?;
        match r.u8()? {
            ROW_STRING => {
                r.text()?;
            }
            ROW_JSON => {
                serde_json::from_slice::<serde::de::IgnoredAny>(r.opt_bytes()?.unwrap_or(b"null"))
                    .map_err(|e| format!("its row's {k}: {e}"))?;
            }
            b => return Err(format!("a row value tagged {b}")),
        }
    }
    Ok(())
}

/// A record's columns encoded as a case stores them ([`write_row`]): made once, from the
/// record's cells or read back from the merge's spill, and written into its case as they are,
/// without a map of them being built and encoded again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EncodedRow(Vec<u8>);

impl EncodedRow {
    /// The encoding of `row`.
    pub fn of_map(row: &serde_json::Map<String, serde_json::Value>) -> Result<Self, CaseError> {
        let mut w = Writer(Vec::new());
        write_row(&mut w, row).map_err(|e| CaseError::Invalid(e.to_string()))?;
        Ok(EncodedRow(w.0))
    }

    /// The encoding of a row of text cells, given as (column, value) in ascending order of
    /// the column's name: the order of a map of them, so the bytes are those of
    /// [`EncodedRow::of_map`] of that map. A name that does not come after the one before is
    /// an error.
    pub fn of_texts<'a>(
        cells: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, CaseError> {
        let n = u32::try_from(cells.len())
            .map_err(|_| CaseError::Invalid("a record with too many columns".into()))?;
        let mut w = Writer(Vec::with_capacity(256));
        w.u32(n);
        let mut last: Option<&str> = None;
        for (k, v) in cells {
            if last.is_some_and(|l| l >= k) {
                return Err(CaseError::Invalid(format!(
                    "a record's columns out of order: {k:?} after {:?}",
                    last.unwrap_or_default()
                )));
            }
            last = Some(k);
            w.text(k);
            w.u8(ROW_STRING);
            w.text(v);
        }
        Ok(EncodedRow(w.0))
    }

    /// The encoded columns at the start of `bytes` (checked as [`read_row`] checks them), and
    /// the bytes after them.
    fn split_from(bytes: &[u8]) -> Result<(Self, &[u8]), Bad> {
        let r = &mut Reader { bytes };
        skip_row(r)?;
        let used = bytes.len() - r.bytes.len();
        Ok((EncodedRow(bytes[..used].to_vec()), r.bytes))
    }

    /// The columns as a map.
    pub fn to_map(&self) -> Result<serde_json::Map<String, serde_json::Value>, CaseError> {
        let r = &mut Reader { bytes: &self.0 };
        read_row(r).map_err(|e| CaseError::Invalid(format!("a record's encoded columns: {e}")))
    }

    /// Calls `count` with the number of columns, then `cell` with each column's name and
    /// value: a string's text, or another value's JSON text.
    pub(super) fn visit(
        &self,
        count: &mut dyn FnMut(usize),
        cell: &mut dyn FnMut(&str, Cell<'_>),
    ) -> Result<(), CaseError> {
        let bad = |e: Bad| CaseError::Invalid(format!("a record's encoded columns: {e}"));
        let r = &mut Reader { bytes: &self.0 };
        let n = r.u32().map_err(bad)? as usize;
        count(n);
        for _ in 0..n {
            let k = r.text().map_err(bad)?;
            match r.u8().map_err(bad)? {
                ROW_STRING => cell(k, Cell::Text(r.text().map_err(bad)?)),
                ROW_JSON => cell(
                    k,
                    Cell::Json(r.opt_bytes().map_err(bad)?.unwrap_or(b"null")),
                ),
                b => return Err(bad(format!("a row value tagged {b}"))),
            }
        }
        Ok(())
    }
}

/// One column's value of an [`EncodedRow`].
pub(super) enum Cell<'a> {
    /// A string.
    Text(&'a str),
    /// Any other JSON value, as its JSON text.
    Json(&'a [u8]),
}

/// A record's columns: as a map, or encoded.
#[derive(Clone, Copy, Debug)]
pub(super) enum RowRef<'a> {
    Map(&'a serde_json::Map<String, serde_json::Value>),
    Encoded(&'a EncodedRow),
}

impl RowRef<'_> {
    /// Appends the columns to `w` as [`write_row`] writes them.
    pub(super) fn write(self, w: &mut Writer) -> Result<(), serde_json::Error> {
        match self {
            RowRef::Map(m) => write_row(w, m),
            RowRef::Encoded(e) => {
                w.0.extend_from_slice(&e.0);
                Ok(())
            }
        }
    }

    /// The columns as a map.
    pub(super) fn to_map(self) -> Result<serde_json::Map<String, serde_json::Value>, CaseError> {
        match self {
            RowRef::Map(m) => Ok(m.clone()),
            RowRef::Encoded(e) => e.to_map(),
        }
    }
}

/// Appends `input` to `out` in a binary form [`decode_input`] reads back exactly (the merge's
/// spilled case inputs: faster to write and read than JSON).
pub fn encode_input(input: &BreakInput, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    encode_input_fields(input, RowRef::Map(&input.row), out)
}

/// [`encode_input`] of a record whose columns are `row` (its own `row` must be empty): what
/// [`decode_input_row`] reads back.
pub fn encode_input_row(
    input: &BreakInput,
    row: &EncodedRow,
    out: &mut Vec<u8>,
) -> Result<(), CaseError> {
    if !input.row.is_empty() {
        return Err(CaseError::Invalid(format!(
            "break {}/{}: its columns are given twice",
            input.profile, input.key
        )));
    }
    encode_input_fields(input, RowRef::Encoded(row), out)
        .map_err(|e| CaseError::Invalid(e.to_string()))
}

fn encode_input_fields(
    input: &BreakInput,
    row: RowRef<'_>,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    let BreakInput {
        profile,
        key,
        start_date,
        date,
        bucket,
        bucket_rule,
        confidence,
        severity,
        summary,
        score,
        rank,
        difference,
        model_version,
        row: _,
    } = input;
    let mut w = Writer(std::mem::take(out));
    w.text(profile);
    w.text(key);
    w.date(*start_date);
    w.date(*date);
    w.text(bucket);
    w.text(bucket_rule);
    w.f64(*confidence);
    w.text(severity);
    w.text(summary);
    w.f64(*score);
    w.u64(*rank);
    w.f64(*difference);
    w.text(model_version);
    let written = row.write(&mut w);
    *out = w.0;
    written
}

/// The input [`encode_input`] wrote as `bytes` (all of them).
pub fn decode_input(bytes: &[u8]) -> Result<BreakInput, String> {
    let r = &mut Reader { bytes };
    let mut input = read_input_fields(r)?;
    input.row = read_row(r)?;
    input_ends(r)?;
    Ok(input)
}

/// The input [`encode_input_row`] (or [`encode_input`]) wrote as `bytes` (all of them), its
/// columns kept encoded (checked as [`decode_input`] checks them) and its own `row` empty.
pub fn decode_input_row(bytes: &[u8]) -> Result<(BreakInput, EncodedRow), String> {
    let r = &mut Reader { bytes };
    let input = read_input_fields(r)?;
    let (row, rest) = EncodedRow::split_from(r.bytes)?;
    r.bytes = rest;
    input_ends(r)?;
    Ok((input, row))
}

/// The fields of an input before its columns (its `row` left empty).
fn read_input_fields(r: &mut Reader<'_>) -> Result<BreakInput, Bad> {
    let s = |t: &str| t.to_string();
    Ok(BreakInput {
        profile: s(r.text()?),
        key: s(r.text()?),
        start_date: r.date()?,
        date: r.date()?,
        bucket: s(r.text()?),
        bucket_rule: s(r.text()?),
        confidence: r.f64()?,
        severity: s(r.text()?),
        summary: s(r.text()?),
        score: r.f64()?,
        rank: r.u64()?,
        difference: r.f64()?,
        model_version: s(r.text()?),
        row: serde_json::Map::new(),
    })
}

/// Nothing is left after an input.
fn input_ends(r: &Reader<'_>) -> Result<(), Bad> {
    if r.bytes.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} bytes after the end of a case input",
            r.bytes.len()
        ))
    }
}

/// The case of a binary body written by [`write_case_body`].
pub(super) fn read_case_body(bytes: &[u8]) -> Result<Case, Bad> {
    read_case_body_as(bytes, false)
}

/// [`read_case_body`] without the record's columns and the dispatch history (left empty, as
/// [`crate::cases::Cases::outstanding_briefs`] gives them): they are checked as the whole
/// decoding checks them, but not built.
pub(super) fn read_brief_case_body(bytes: &[u8]) -> Result<Case, Bad> {
    read_case_body_as(bytes, true)
}

fn read_case_body_as(bytes: &[u8], brief: bool) -> Result<Case, Bad> {
    let r = &mut Reader { bytes };
    let s = |t: &str| t.to_string();
    let id = s(r.text()?);
    let ticket = s(r.text()?);
    let profile = s(r.text()?);
    let key = s(r.text()?);
    let start_date = r.date()?;
    let last_date = r.date()?;
    let origin = match r.u8()? {
        0 => Origin::Model,
        1 => Origin::Analyst,
        b => return Err(format!("an origin of {b}")),
    };
    let status = status_of(r.u8()?)?;
    let bucket = s(r.text()?);
    let bucket_rule = s(r.text()?);
    let confidence = r.f64()?;
    let severity = s(r.text()?);
    let summary = s(r.text()?);
    let score = r.f64()?;
    let rank = r.u64()?;
    let difference = r.f64()?;
    let model_version = s(r.text()?);
    let proposed_by = r.opt_text()?.map(s);
    let jira_key = r.opt_text()?.map(s);
    let dispatched = r.flag()?;
    let dispatches = match r.opt_bytes()? {
        None => Vec::new(),
        Some(b) if brief => {
            serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(b)
                .map_err(|e| format!("its dispatches: {e}"))?;
            Vec::new()
        }
        Some(b) => serde_json::from_slice(b).map_err(|e| format!("its dispatches: {e}"))?,
    };
    let created_at = r.time()?;
    let updated_at = r.time()?;
    let row = if brief {
        skip_row(r)?;
        serde_json::Map::new()
    } else {
        read_row(r)?
    };
    let last_decision = match r.opt_bytes()? {
        None => None,
        Some(b) => Some(serde_json::from_slice(b).map_err(|e| format!("its last decision: {e}"))?),
    };
    let fingerprint = s(r.text()?);
    let case = Case {
        id,
        ticket,
        profile,
        key,
        start_date,
        last_date,
        origin,
        status,
        bucket,
        bucket_rule,
        confidence,
        severity,
        summary,
        score,
        rank,
        difference,
        model_version,
        proposed_by,
        jira_key,
        dispatched,
        dispatches,
        created_at,
        updated_at,
        row,
        last_decision,
        fingerprint,
        judged_difference: r.opt_f64()?,
        first_difference: r.opt_f64()?,
        previous_difference: r.opt_f64()?,
        cleared_on: r.opt_date()?,
        seen_to: r.opt_date()?,
        owner: r.opt_text()?.map(s),
        due: r.opt_date()?,
    };
    if !r.bytes.is_empty() {
        return Err(format!("{} bytes after the case", r.bytes.len()));
    }
    Ok(case)
}
