//! One record as JSON (an object keyed by the file's column names) typed through a resolved
//! profile, the way `ingest::prepare` types a table row — without a table.

use crate::ingest::clean::{
    self, DateCell, DateOptions, Decimal, DecimalHint, NumCell, normalize_header,
};
use crate::profile::{Resolved, ResolvedCriteria};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A field of a record that cannot be used: the field (column) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field {field:?}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One criteria's values on a record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CritValues {
    /// NaN unless the criteria is a pair.
    pub lhs: f64,
    pub rhs: f64,
    pub diff: f64,
    pub tol: f64,
    /// The given difference of a pair, when the record has one (NaN when empty).
    pub given: Option<f64>,
}

/// A typed record: the canonical values `prepare` would give its row.
#[derive(Debug, Clone, PartialEq)]
pub struct Canonical {
    /// The record's own fields as text, in the order they came.
    pub fields: Vec<(String, String)>,
    pub key: String,
    pub date: Option<i32>,
    pub crit: Vec<CritValues>,
    pub within: Option<bool>,
    pub brk: Option<bool>,
    pub comment: Option<String>,
    /// Per `resolved.categoricals`, trimmed.
    pub cats: Vec<String>,
    /// Per `resolved.numeric`.
    pub nums: Vec<f64>,
    /// Per `resolved.extra_dates`.
    pub extra_dates: Vec<Option<i32>>,
    pub trade_date: Option<i32>,
    /// Data-quality findings.
    pub dq: Vec<String>,
}

/// How records of one profile are read.
#[derive(Debug, Clone)]
pub struct RecordReader {
    pub resolved: Resolved,
    pub decimals: u32,
    pub dates: DateOptions,
    pub mismatch_tolerance: f64,
    /// `[ingest] decimal`; None = per record, from its amounts (JSON numbers read with a point).
    pub decimal: Option<Decimal>,
    pub limits: RecordLimits,
}

/// Bounds on what one record may hold (a record may come from anyone who can reach the service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// Most fields in one record.
    pub max_fields: usize,
    /// Longest field value, in characters.
    pub max_chars: usize,
}

impl Default for RecordLimits {
    fn default() -> Self {
        RecordLimits {
            max_fields: 256,
            max_chars: 10_000,
        }
    }
}

/// Longest field name, in characters.
const MAX_NAME_CHARS: usize = 256;

/// The dates a record may carry: a reconciliation date outside these years is a typo or an
/// attack, and would make ages and gaps absurd.
const YEARS: std::ops::RangeInclusive<i32> = 1900..=2200;

/// Whether `name` is one breakdesk gives its own columns (`bd_*`, `f_*`, the result columns):
/// a client field by that name could be taken for them.
fn reserved_name(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase();
    n.starts_with("bd_")
        || n.starts_with("f_")
        || crate::pipeline::RESULT_COLUMNS.contains(&n.as_str())
}

/// `days` (since 1970-01-01) within [`YEARS`].
fn plausible(days: i32) -> bool {
    use chrono::Datelike;
    clean::days_to_date(days).is_some_and(|d| YEARS.contains(&d.year()))
}

/// The text of a JSON value as a cell would hold it.
fn cell_text(field: &str, v: &Value) -> Result<String, FieldError> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Array(_) | Value::Object(_) => Err(FieldError::new(
            field,
            "must be a string, a number or null, not a list or an object",
        )),
    }
}

impl RecordReader {
    /// The decimal separator of one record's amounts: the setting, or (auto) the one its amount
    /// fields read with only (a JSON number counts as a decimal point); a record whose amounts
    /// could be read either way to different values is refused, asking for the setting.
    fn record_decimal(
        &self,
        fields: &[(String, String)],
        by_name: &HashMap<String, usize>,
        numbers: &[bool],
    ) -> Result<Decimal, FieldError> {
        if let Some(d) = self.decimal {
            return Ok(d);
        }
        let r = &self.resolved;
        let mut headers: Vec<&str> = Vec::new();
        for c in &r.criteria {
            headers.extend(c.lhs.as_deref());
            headers.extend(c.rhs.as_deref());
            headers.extend(c.difference.as_deref());
            headers.extend(c.tolerance_column.as_deref());
        }
        headers.extend(r.numeric.iter().map(|n| n.header.as_str()));
        let (mut point, mut comma, mut ambiguous) = (false, None, None);
        for h in headers {
            let Some(&i) = by_name.get(&normalize_header(h)) else {
                continue;
            };
            if numbers[i] {
                point = true;
                continue;
            }
            match clean::decimal_hint(&fields[i].1) {
                DecimalHint::Point => point = true,
                DecimalHint::Comma => comma = comma.or(Some(h)),
                DecimalHint::Ambiguous => ambiguous = ambiguous.or(Some((h, &fields[i].1))),
                DecimalHint::Neutral => {}
            }
        }
        match (point, comma, ambiguous) {
            (true, Some(h), _) => Err(FieldError::new(
                h,
                "reads only with a decimal comma while other amounts of the record read with a decimal point; set [ingest] decimal",
            )),
            (false, Some(_), _) => Ok(Decimal::Comma),
            (false, None, Some((h, v))) => Err(FieldError::new(
                h,
                format!(
                    "{v:?} reads differently with a decimal point and a decimal comma; send amounts as JSON numbers or set [ingest] decimal = \".\" or \",\""
                ),
            )),
            _ => Ok(Decimal::Point),
        }
    }

    /// A reader typing records as `prepare` types a file's rows under `opts` (its key slots
    /// aside).
    pub fn new(resolved: Resolved, opts: &crate::ingest::prepare::PrepareOptions) -> RecordReader {
        RecordReader {
            resolved,
            decimals: opts.decimals,
            dates: opts.dates.clone(),
            mismatch_tolerance: opts.mismatch_tolerance,
            decimal: opts.decimal,
            limits: RecordLimits::default(),
        }
    }

    /// The same reader with other bounds on a record.
    pub fn with_limits(mut self, limits: RecordLimits) -> RecordReader {
        self.limits = limits;
        self
    }

    /// The columns a record must have (keys, date, amounts, categoricals, numeric features).
    pub fn required_fields(&self) -> Vec<String> {
        let r = &self.resolved;
        let mut out: Vec<String> = r.key_names();
        out.extend(r.date.iter().cloned());
        for c in &r.criteria {
            match (&c.lhs, &c.rhs) {
                (Some(l), Some(rr)) => {
                    out.push(l.clone());
                    out.push(rr.clone());
                }
                _ => out.extend(c.difference.iter().cloned()),
            }
        }
        out.extend(r.categoricals.iter().map(|c| c.header.clone()));
        out.extend(r.numeric.iter().map(|c| c.header.clone()));
        out.dedup();
        out
    }

    /// Types one record. Field names are matched ignoring case, spaces and underscores.
    pub fn read(&self, record: &Map<String, Value>) -> Result<Canonical, FieldError> {
        let Fields {
            fields,
            by_name,
            numbers,
        } = self.fields(record)?;
        let r = &self.resolved;
        let decimal = self.record_decimal(&fields, &by_name, &numbers)?;
        let cells = Cells {
            fields: &fields,
            by_name: &by_name,
            numbers: &numbers,
            decimal,
            decimals: self.decimals,
        };
        let mut dq = Vec::new();
        let key = self.key(&cells)?;
        let date = self.date(&cells)?;
        let mut crit = Vec::with_capacity(r.criteria.len());
        for c in &r.criteria {
            crit.push(self.criteria(c, &cells, &mut dq)?);
        }
        let within = crit.first().map(|c| c.diff.abs() <= c.tol + 1e-9);
        let brk = match &r.status {
            Some(h) => Some(r.is_break_status(cells.get(h).unwrap_or(""))),
            None => within.map(|w| !w),
        };
        let comment = r
            .comment
            .as_ref()
            .map(|h| clean::clean_comment(cells.get(h).unwrap_or("")));
        let mut cats = Vec::with_capacity(r.categoricals.len());
        for role in &r.categoricals {
            cats.push(cells.need(&role.header)?.trim().to_string());
        }
        let nums = self.numeric(&cells)?;
        let (extra_dates, trade_date) = self.extra_dates(&cells, &mut dq)?;
        Ok(Canonical {
            fields,
            key,
            date,
            crit,
            within,
            brk,
            comment,
            cats,
            nums,
            extra_dates,
            trade_date,
            dq,
        })
    }

    /// The record's fields as text, within the limits, under names that are neither reserved
    /// nor the same column twice.
    fn fields(&self, record: &Map<String, Value>) -> Result<Fields, FieldError> {
        let limits = self.limits;
        if record.len() > limits.max_fields {
            return Err(FieldError::new(
                "record",
                format!(
                    "the record has {} fields; at most {} are accepted ([service] max_record_fields)",
                    record.len(),
                    limits.max_fields
                ),
            ));
        }
        let mut fields = Vec::with_capacity(record.len());
        let mut by_name: HashMap<String, usize> = HashMap::with_capacity(record.len());
        // JSON numbers are written with a decimal point whatever the setting.
        let mut numbers: Vec<bool> = Vec::with_capacity(record.len());
        for (k, v) in record {
            if k.chars().count() > MAX_NAME_CHARS {
                let short: String = k.chars().take(40).collect();
                return Err(FieldError::new(
                    format!("{short}…"),
                    format!("a field name longer than {MAX_NAME_CHARS} characters"),
                ));
            }
            if reserved_name(k) {
                return Err(FieldError::new(
                    k.as_str(),
                    "is a name breakdesk gives its own columns (bd_*, f_*, score, bucket, case_id, …); rename the field",
                ));
            }
            let text = cell_text(k, v)?;
            if text.chars().count() > limits.max_chars {
                return Err(FieldError::new(
                    k.as_str(),
                    format!(
                        "is longer than {} characters ([service] max_field_chars)",
                        limits.max_chars
                    ),
                ));
            }
            if let Some(i) = by_name.insert(normalize_header(k), fields.len()) {
                let first: &(String, String) = &fields[i];
                return Err(FieldError::new(
                    k.as_str(),
                    format!("names the same column as {:?}", first.0),
                ));
            }
            fields.push((k.clone(), text));
            numbers.push(v.is_number());
        }
        Ok(Fields {
            fields,
            by_name,
            numbers,
        })
    }

    /// Keys: trimmed values joined with `|`.
    fn key(&self, cells: &Cells<'_>) -> Result<String, FieldError> {
        let r = &self.resolved;
        let mut key = String::new();
        let mut all_empty = true;
        let mut empty_required = None;
        for (k, (slot, h)) in r.keys.iter().enumerate() {
            let v = cells.need(h)?.trim();
            if !v.is_empty() {
                all_empty = false;
            } else if *slot < r.profile.keys.len() && empty_required.is_none() {
                empty_required = Some(h);
            }
            if k > 0 {
                key.push('|');
            }
            key.push_str(v);
        }
        if !r.keys.is_empty() && all_empty {
            return Err(FieldError::new(
                r.key_names().join("+"),
                "every key is empty; the record identifies no account",
            ));
        }
        if let Some(h) = empty_required {
            return Err(FieldError::new(
                h.as_str(),
                "is empty; a key is needed to match the record to its account",
            ));
        }
        Ok(key)
    }

    /// The reconciliation date (None when the profile has none).
    fn date(&self, cells: &Cells<'_>) -> Result<Option<i32>, FieldError> {
        let date = match &self.resolved.date {
            Some(h) => {
                let raw = cells.need(h)?;
                match clean::parse_date(raw, &self.dates) {
                    DateCell::Date(d) if !plausible(d) => {
                        return Err(FieldError::new(
                            h,
                            format!(
                                "{raw:?} is outside the years {}–{} a reconciliation date may have",
                                YEARS.start(),
                                YEARS.end()
                            ),
                        ));
                    }
                    DateCell::Date(d) => Some(d),
                    DateCell::Empty => return Err(FieldError::new(h, "date is empty")),
                    DateCell::Placeholder => {
                        return Err(FieldError::new(
                            h,
                            format!(
                                "{raw:?} is a placeholder date (means missing); the record cannot be placed in time"
                            ),
                        ));
                    }
                    DateCell::Invalid => {
                        return Err(FieldError::new(
                            h,
                            format!(
                                "{raw:?} is not a date (accepted: 2024-04-30, 4/30/2024, 04-30-2024, Excel serial numbers, 30-Apr-2024)"
                            ),
                        ));
                    }
                }
            }
            None => None,
        };
        Ok(date)
    }

    /// One criteria's values: a pair's sides and their difference, or a difference alone; the
    /// tolerance raised by the record's tolerance column.
    fn criteria(
        &self,
        c: &ResolvedCriteria,
        cells: &Cells<'_>,
        dq: &mut Vec<String>,
    ) -> Result<CritValues, FieldError> {
        let mut v = if let (Some(l), Some(rr)) = (&c.lhs, &c.rhs) {
            self.pair(c, l, rr, cells, dq)?
        } else {
            let h = c.difference.as_deref().unwrap_or(c.name.as_str());
            let diff = cells.amount(h, false, dq)?;
            if !diff.is_finite() {
                return Err(FieldError::new(h, format!("{diff} is not a finite number")));
            }
            CritValues {
                lhs: f64::NAN,
                rhs: f64::NAN,
                diff,
                tol: c.abs_tolerance.max(c.rel_tolerance * 0.0),
                given: None,
            }
        };
        if let Some(t) = &c.tolerance_column
            && let Some(raw) = cells.get(t)
        {
            match cells.parse(raw, t) {
                NumCell::Value(x) if x.is_finite() => v.tol = v.tol.max(x.abs()),
                NumCell::Value(_) => {
                    dq.push(format!("{t} not finite ({raw:?}), profile tolerance used"))
                }
                NumCell::Empty => {}
                NumCell::Invalid => {
                    dq.push(format!("{t} unreadable ({raw:?}), profile tolerance used"))
                }
            }
        }
        Ok(v)
    }

    /// A pair criteria's values: its sides (`l`, `rr`), their difference, and the given one.
    fn pair(
        &self,
        c: &ResolvedCriteria,
        l: &str,
        rr: &str,
        cells: &Cells<'_>,
        dq: &mut Vec<String>,
    ) -> Result<CritValues, FieldError> {
        let lhs = cells.amount(l, true, dq)?;
        let rhs = cells.amount(rr, true, dq)?;
        let diff = clean::round_to(lhs - rhs, self.decimals);
        if !diff.is_finite() {
            return Err(FieldError::new(
                l,
                format!("difference is not finite: {l} - {rr} = {lhs:e} - {rhs:e} overflows"),
            ));
        }
        let given = match &c.difference {
            Some(g) => {
                let gv = match cells.get(g) {
                    Some(raw) => match cells.parse(raw, g) {
                        NumCell::Value(x) => x,
                        NumCell::Empty => f64::NAN,
                        NumCell::Invalid => {
                            return Err(FieldError::new(g, format!("{raw:?} is not a number")));
                        }
                    },
                    None => f64::NAN,
                };
                if gv.is_finite() && (gv - diff).abs() > self.mismatch_tolerance {
                    dq.push(format!(
                        "{g} {gv} disagrees with {l} - {rr} = {diff}; using {diff}"
                    ));
                }
                Some(gv)
            }
            None => None,
        };
        Ok(CritValues {
            lhs,
            rhs,
            diff,
            tol: c
                .abs_tolerance
                .max(c.rel_tolerance * lhs.abs().max(rhs.abs())),
            given,
        })
    }

    /// Per `resolved.numeric`: the numeric features' values.
    fn numeric(&self, cells: &Cells<'_>) -> Result<Vec<f64>, FieldError> {
        let r = &self.resolved;
        let mut nums = Vec::with_capacity(r.numeric.len());
        for role in &r.numeric {
            let h = role.header.as_str();
            let raw = cells.need(h)?;
            nums.push(match cells.parse(raw, h) {
                NumCell::Value(x) if !x.is_finite() => {
                    return Err(FieldError::new(
                        h,
                        format!("{raw:?} is not a finite number"),
                    ));
                }
                NumCell::Value(x) => x,
                NumCell::Empty if r.profile.numeric_auto => {
                    return Err(FieldError::new(h, "is empty"));
                }
                NumCell::Empty => f64::NAN,
                NumCell::Invalid => {
                    return Err(FieldError::new(h, format!("{raw:?} is not a number")));
                }
            });
        }
        Ok(nums)
    }

    /// Per `resolved.extra_dates`, and the trade date among them.
    fn extra_dates(
        &self,
        cells: &Cells<'_>,
        dq: &mut Vec<String>,
    ) -> Result<(Vec<Option<i32>>, Option<i32>), FieldError> {
        let r = &self.resolved;
        let mut extra_dates = Vec::with_capacity(r.extra_dates.len());
        let mut trade_date = None;
        for role in &r.extra_dates {
            let raw = cells.get(&role.header).unwrap_or("");
            let d = match clean::parse_date(raw, &self.dates) {
                DateCell::Date(d) if !plausible(d) => {
                    return Err(FieldError::new(
                        role.header.as_str(),
                        format!(
                            "{raw:?} is outside the years {}–{} a date may have here",
                            YEARS.start(),
                            YEARS.end()
                        ),
                    ));
                }
                DateCell::Date(d) => Some(d),
                DateCell::Empty | DateCell::Placeholder => None,
                DateCell::Invalid => {
                    dq.push(format!(
                        "{} unreadable ({raw:?}), read as missing",
                        role.header
                    ));
                    None
                }
            };
            if r.trade_date.as_deref() == Some(role.header.as_str()) {
                trade_date = d;
            }
            extra_dates.push(d);
        }
        Ok((extra_dates, trade_date))
    }
}

/// A record's fields as read: their text, in the order they came, and where each name is.
struct Fields {
    fields: Vec<(String, String)>,
    by_name: HashMap<String, usize>,
    /// Whether each field was a JSON number.
    numbers: Vec<bool>,
}

/// Looking a record's fields up by column name and reading their numbers.
struct Cells<'a> {
    fields: &'a [(String, String)],
    by_name: &'a HashMap<String, usize>,
    numbers: &'a [bool],
    /// The record's decimal separator ([`RecordReader::record_decimal`]).
    decimal: Decimal,
    decimals: u32,
}

impl<'a> Cells<'a> {
    fn parse(&self, raw: &str, h: &str) -> NumCell {
        let is_number = self
            .by_name
            .get(&normalize_header(h))
            .is_some_and(|i| self.numbers[*i]);
        let d = if is_number {
            Decimal::Point
        } else {
            self.decimal
        };
        clean::parse_number_with(raw, self.decimals, d)
    }

    fn get(&self, header: &str) -> Option<&'a str> {
        self.by_name
            .get(&normalize_header(header))
            .map(|i| self.fields[*i].1.as_str())
    }

    fn need(&self, header: &str) -> Result<&'a str, FieldError> {
        self.get(header)
            .ok_or_else(|| FieldError::new(header, "is missing"))
    }

    /// An empty amount reads as 0, with a finding when `finding`.
    fn amount(&self, h: &str, finding: bool, dq: &mut Vec<String>) -> Result<f64, FieldError> {
        let raw = self.need(h)?;
        match self.parse(raw, h) {
            NumCell::Value(x) => Ok(x),
            NumCell::Empty => {
                if finding {
                    dq.push(format!("{h} empty, read as 0"));
                }
                Ok(0.0)
            }
            NumCell::Invalid => Err(FieldError::new(h, format!("{raw:?} is not a number"))),
        }
    }
}
