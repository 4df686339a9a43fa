//! Typing a raw table through a resolved profile: canonical `bd_*` columns beside the original
//! ones, a rejects report for rows that cannot be used, and data-quality findings for rows that
//! can be used but carry a problem (e.g. a given difference that disagrees with LHS − RHS).
//!
//! Canonical columns (names fixed, whatever the file calls them):
//! - `bd_row`: the record's row number as a spreadsheet shows it (header = 1).
//! - `bd_key`: the key values joined with `|` (zero padding kept).
//! - `bd_date`: the record date.
//! - `bd_<criteria>_lhs`, `bd_<criteria>_rhs`: the two sides (pairs only).
//! - `bd_<criteria>_diff`: lhs − rhs (pairs) or the difference column.
//! - `bd_<criteria>_given`: the given difference of a pair, when the file has one.
//! - `bd_<criteria>_tol`: the tolerance: max(abs, rel·max(|lhs|,|rhs|), tolerance column).
//! - `bd_difference`, `bd_within_tolerance`: the first criteria's difference and its check.
//! - `bd_break`: the status says break (or, without a status column, the difference is out of tolerance).
//! - `bd_comment`: the comment without wrappers.
//! - `bd_cat_<name>`: categorical values; `bd_num_<name>`: extra numeric features;
//!   `bd_date_<name>`: extra dates; `bd_trade_date`: the date a break's age counts from.
//! - `bd_dq`: data-quality findings of the row, `; `-separated (empty when none).

use super::clean::{self, DateCell, DateOptions, Decimal, DecimalHint, NumCell};
use super::{IngestError, ROW_COL, RawTable};
use crate::profile::Resolved;
use polars::prelude::*;
use std::collections::HashMap;

/// One rejected cell: the row is left out of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub source: String,
    /// The record's row as a spreadsheet shows it (header = 1); for a CSV file, its line.
    pub row: u32,
    pub column: String,
    pub value: String,
    pub reason: String,
    /// Workbooks: the sheet and cell (`Sheet1!F3`).
    pub cell: Option<String>,
}

/// The decimal separator a file's amounts were read with, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DecimalChoice {
    pub decimal: Decimal,
    pub how: DecimalSource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DecimalSource {
    /// `[ingest] decimal` says so.
    Setting,
    /// Detected: these amount columns read only this way.
    Detected(Vec<String>),
    /// No amount reads differently either way.
    NoEvidence,
}

impl DecimalChoice {
    /// For the run summary: `decimal comma (1.234,56), detected from GL Balance, IHub Balance`.
    pub fn describe(&self) -> String {
        let how = match &self.how {
            DecimalSource::Setting => "set by [ingest] decimal".to_string(),
            DecimalSource::Detected(cols) => format!("detected from {}", cols.join(", ")),
            DecimalSource::NoEvidence => "no amount reads differently either way".to_string(),
        };
        format!("{}, {how}", self.decimal.describe())
    }
}

#[derive(Debug, Clone)]
pub struct PrepareOptions {
    pub decimals: u32,
    pub dates: DateOptions,
    pub mismatch_tolerance: f64,
    /// Key slots (positions in the profile's keys + optional keys) to build `bd_key` from;
    /// None = every key the file has. Used to align a history file with the current one.
    pub key_slots: Option<Vec<usize>>,
    /// `[ingest] decimal`: None = detected per file.
    pub decimal: Option<Decimal>,
}

impl PrepareOptions {
    pub fn from_config(c: &crate::config::IngestConfig) -> PrepareOptions {
        PrepareOptions {
            decimals: c.amount_decimals,
            dates: DateOptions::from_config(c),
            mismatch_tolerance: c.difference_mismatch_tolerance,
            key_slots: None,
            decimal: Decimal::from_setting(&c.decimal).unwrap_or(None),
        }
    }
}

/// A typed table: original columns plus canonical ones, rejected rows removed.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub df: DataFrame,
    pub resolved: Resolved,
    pub rejects: Vec<Reject>,
    pub total_rows: usize,
    pub rejected_rows: usize,
    pub dq_rows: usize,
    pub source: String,
    /// Generic profile: the numeric columns chosen (headers).
    pub numeric_columns: Vec<String>,
    /// Blank lines (or rows with every cell empty) skipped while reading.
    pub blank_rows: usize,
    pub decimal: DecimalChoice,
}

pub fn crit_col(criteria: &str, part: &str) -> String {
    format!("bd_{criteria}_{part}")
}

/// Accumulates per-row outcomes while columns are parsed one after the other.
struct Rows<'a> {
    n: usize,
    source: &'a str,
    /// Workbooks: each column's letters by header (for the cell of a reject).
    cells: Option<(&'a str, HashMap<&'a str, String>)>,
    row_numbers: Vec<u32>,
    rejected: Vec<bool>,
    rejects: Vec<Reject>,
    dq: Vec<Vec<String>>,
}

impl Rows<'_> {
    fn reject(&mut self, i: usize, column: &str, value: Option<&str>, reason: String) {
        self.rejected[i] = true;
        let row = self.row_numbers[i];
        let cell = self.cells.as_ref().and_then(|(sheet, letters)| {
            letters
                .get(column)
                .map(|l| format!("{}!{l}{row}", super::xlsx::sheet_ref(sheet)))
        });
        self.rejects.push(Reject {
            source: self.source.to_string(),
            row,
            column: column.to_string(),
            value: value.unwrap_or("").to_string(),
            reason,
            cell,
        });
    }
    fn finding(&mut self, i: usize, text: String) {
        self.dq[i].push(text);
    }
}

fn text_col<'a>(df: &'a DataFrame, name: &str) -> Result<&'a StringChunked, IngestError> {
    df.column(name)
        .and_then(|c| c.str())
        .map_err(|e| IngestError::Data {
            file: String::new(),
            message: format!("column {name:?}: {e}"),
        })
}

/// How amounts are read: decimals kept and the decimal separator.
#[derive(Clone, Copy)]
struct Num {
    decimals: u32,
    decimal: Decimal,
}

impl Num {
    fn parse(self, v: &str) -> NumCell {
        clean::parse_number_with(v, self.decimals, self.decimal)
    }
    fn invalid_reason(self, v: &str) -> String {
        if is_formula_error(v) {
            "formula error in the workbook cell".into()
        } else {
            match self.decimal {
                Decimal::Point => "not a number".into(),
                Decimal::Comma => "not a number with a decimal comma (1.234,56)".into(),
            }
        }
    }
}

/// Excel's formula error values (`#DIV/0!`, `#N/A`, ...), as a workbook cell's text holds them.
fn is_formula_error(v: &str) -> bool {
    matches!(
        v.trim(),
        "#DIV/0!"
            | "#N/A"
            | "#NAME?"
            | "#NULL!"
            | "#NUM!"
            | "#REF!"
            | "#VALUE!"
            | "#GETTING_DATA"
            | "#DATA!"
            | "#SPILL!"
            | "#CALC!"
    )
}

/// Parses an amount column. Empty cells become `empty_as` (None = reject).
fn parse_amounts(
    rows: &mut Rows,
    df: &DataFrame,
    header: &str,
    num: Num,
    on_empty: OnEmpty,
) -> Result<Vec<f64>, IngestError> {
    let ca = text_col(df, header)?;
    let mut out = Vec::with_capacity(rows.n);
    for (i, v) in ca.iter().enumerate() {
        let parsed = num.parse(v.unwrap_or(""));
        out.push(match parsed {
            NumCell::Value(x) => x,
            NumCell::Empty => match on_empty {
                OnEmpty::Zero => 0.0,
                OnEmpty::ZeroWithFinding => {
                    rows.finding(i, format!("{header} empty, read as 0"));
                    0.0
                }
                OnEmpty::Nan => f64::NAN,
                OnEmpty::Reject => {
                    rows.reject(i, header, v, "empty value".into());
                    f64::NAN
                }
            },
            NumCell::Invalid => {
                let reason = num.invalid_reason(v.unwrap_or(""));
                rows.reject(i, header, v, reason);
                f64::NAN
            }
        });
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum OnEmpty {
    Zero,
    ZeroWithFinding,
    Nan,
    Reject,
}

/// Parses a date column; `required` dates reject empty, placeholder and invalid cells, other
/// dates read those as missing (invalid ones with a finding).
fn parse_dates(
    rows: &mut Rows,
    df: &DataFrame,
    header: &str,
    opts: &DateOptions,
    required: bool,
) -> Result<Vec<Option<i32>>, IngestError> {
    let ca = text_col(df, header)?;
    let mut cache: HashMap<&str, DateCell> = HashMap::new();
    let mut out = Vec::with_capacity(rows.n);
    for (i, v) in ca.iter().enumerate() {
        let s = v.unwrap_or("");
        let cell = *cache.entry(s).or_insert_with(|| clean::parse_date(s, opts));
        out.push(match cell {
            DateCell::Date(d) => Some(d),
            DateCell::Empty | DateCell::Placeholder if !required => None,
            DateCell::Empty => {
                rows.reject(i, header, v, "date is empty".into());
                None
            }
            DateCell::Placeholder => {
                rows.reject(
                    i,
                    header,
                    v,
                    "placeholder date (means missing); the row cannot be placed in time".into(),
                );
                None
            }
            DateCell::Invalid if required => {
                rows.reject(
                    i,
                    header,
                    v,
                    "not a date (accepted: 2024-04-30, 4/30/2024, 04-30-2024, Excel serial numbers, 30-Apr-2024)".into(),
                );
                None
            }
            DateCell::Invalid => {
                rows.finding(i, format!("{header} unreadable ({s:?}), read as missing"));
                None
            }
        });
    }
    Ok(out)
}

/// A date column from day numbers.
pub(crate) fn date_column(name: &str, v: Vec<Option<i32>>) -> Column {
    Int32Chunked::from_iter_options(name.into(), v.into_iter())
        .into_date()
        .into_column()
}

/// Columns of a generic file whose non-empty values are all numbers.
fn numeric_columns(raw: &RawTable, num: Num) -> Result<Vec<String>, IngestError> {
    let mut out = Vec::new();
    for h in &raw.header {
        let ca = text_col(&raw.df, h)?;
        let mut seen = false;
        let all = ca.iter().flatten().all(|v| match num.parse(v) {
            NumCell::Value(_) => {
                seen = true;
                true
            }
            NumCell::Empty => true,
            NumCell::Invalid => false,
        });
        if all && seen {
            out.push(h.clone());
        }
    }
    Ok(out)
}

/// What one amount column says about the decimal separator.
#[derive(Default)]
struct Hints {
    point: usize,
    comma: usize,
    ambiguous: usize,
    point_example: Option<String>,
    comma_example: Option<String>,
    ambiguous_example: Option<String>,
}

/// Detects the decimal separator of a file from its amount columns: a column whose values read
/// with one separator and not the other (and none the other way round) decides; columns that
/// decide differently, or a file where no column decides but some value reads both ways to
/// different amounts (`1,234`), are refused with a message asking for `[ingest] decimal`.
fn detect_decimal(
    df: &DataFrame,
    source: &str,
    headers: &[&str],
) -> Result<DecimalChoice, IngestError> {
    let mut per_column: Vec<(&str, Hints)> = Vec::with_capacity(headers.len());
    for h in headers {
        if per_column.iter().any(|(c, _)| c == h) {
            continue;
        }
        let ca = text_col(df, h)?;
        let mut t = Hints::default();
        for v in ca.iter().flatten() {
            match clean::decimal_hint(v) {
                DecimalHint::Neutral => {}
                DecimalHint::Point => {
                    t.point += 1;
                    t.point_example.get_or_insert_with(|| v.to_string());
                }
                DecimalHint::Comma => {
                    t.comma += 1;
                    t.comma_example.get_or_insert_with(|| v.to_string());
                }
                DecimalHint::Ambiguous => {
                    t.ambiguous += 1;
                    t.ambiguous_example.get_or_insert_with(|| v.to_string());
                }
            }
        }
        per_column.push((h, t));
    }
    let ex = |e: &Option<String>| e.clone().unwrap_or_default();
    let point: Vec<&(&str, Hints)> = per_column
        .iter()
        .filter(|(_, t)| t.point > 0 && t.comma == 0)
        .collect();
    let comma: Vec<&(&str, Hints)> = per_column
        .iter()
        .filter(|(_, t)| t.comma > 0 && t.point == 0)
        .collect();
    let ask = "set [ingest] decimal = \".\" (1,234.56) or \",\" (1.234,56)";
    match (point.is_empty(), comma.is_empty()) {
        (false, true) => Ok(DecimalChoice {
            decimal: Decimal::Point,
            how: DecimalSource::Detected(point.iter().map(|(h, _)| h.to_string()).collect()),
        }),
        (true, false) => Ok(DecimalChoice {
            decimal: Decimal::Comma,
            how: DecimalSource::Detected(comma.iter().map(|(h, _)| h.to_string()).collect()),
        }),
        (false, false) => Err(IngestError::Data {
            file: source.to_string(),
            message: format!(
                "the amount columns disagree on the decimal separator: {} reads with a decimal comma ({:?}), {} with a decimal point ({:?}); {ask}",
                comma[0].0,
                ex(&comma[0].1.comma_example),
                point[0].0,
                ex(&point[0].1.point_example)
            ),
        }),
        (true, true) => {
            if let Some((h, t)) = per_column.iter().find(|(_, t)| t.point > 0 && t.comma > 0) {
                return Err(IngestError::Data {
                    file: source.to_string(),
                    message: format!(
                        "cannot tell the decimal separator: column {h} has values that read only with a decimal point ({:?}) and values that read only with a decimal comma ({:?}); {ask}",
                        ex(&t.point_example),
                        ex(&t.comma_example)
                    ),
                });
            }
            if let Some((h, t)) = per_column.iter().find(|(_, t)| t.ambiguous > 0) {
                let v = ex(&t.ambiguous_example);
                let as_point = clean::parse_number_with(&v, 12, Decimal::Point);
                let as_comma = clean::parse_number_with(&v, 12, Decimal::Comma);
                let show = |c: NumCell| match c {
                    NumCell::Value(x) => x.to_string(),
                    _ => "?".into(),
                };
                return Err(IngestError::Data {
                    file: source.to_string(),
                    message: format!(
                        "cannot tell the decimal separator: no amount reads only one way, and {h} {v:?} reads as {} with a decimal point or {} with a decimal comma; {ask}",
                        show(as_point),
                        show(as_comma)
                    ),
                });
            }
            Ok(DecimalChoice {
                decimal: Decimal::Point,
                how: DecimalSource::NoEvidence,
            })
        }
    }
}

/// The amount columns of a resolved profile (the decimal separator is detected from them).
fn amount_headers(resolved: &Resolved) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in &resolved.criteria {
        out.extend(c.lhs.as_deref());
        out.extend(c.rhs.as_deref());
        out.extend(c.difference.as_deref());
        out.extend(c.tolerance_column.as_deref());
    }
    out.extend(resolved.numeric.iter().map(|r| r.header.as_str()));
    out
}

/// Types `raw` through `resolved`.
pub fn prepare(
    raw: &RawTable,
    resolved: &Resolved,
    opts: &PrepareOptions,
) -> Result<Prepared, IngestError> {
    let df = &raw.df;
    let n = df.height();
    let data_err = |e: PolarsError| IngestError::Data {
        file: raw.source.clone(),
        message: e.to_string(),
    };
    let row_numbers: Vec<u32> = df
        .column(ROW_COL)
        .and_then(|c| c.cast(&DataType::UInt32))
        .map_err(data_err)?
        .u32()
        .map_err(data_err)?
        .into_no_null_iter()
        .collect();
    let cells = raw.sheet.as_ref().map(|sh| {
        let letters: HashMap<&str, String> = raw
            .header
            .iter()
            .enumerate()
            .map(|(j, h)| {
                (
                    h.as_str(),
                    super::xlsx::column_letters(sh.first_col + j as u32),
                )
            })
            .collect();
        (sh.name.as_str(), letters)
    });
    let mut rows = Rows {
        n,
        source: &raw.source,
        cells,
        row_numbers,
        rejected: vec![false; n],
        rejects: Vec::new(),
        dq: vec![Vec::new(); n],
    };
    let mut cols: Vec<Column> = Vec::new();
    let with_file = |e: IngestError| match e {
        IngestError::Data { message, .. } => IngestError::Data {
            file: raw.source.clone(),
            message,
        },
        other => other,
    };

    // The decimal separator: set, or detected from the amount columns.
    let decimal = match opts.decimal {
        Some(d) => DecimalChoice {
            decimal: d,
            how: DecimalSource::Setting,
        },
        None => {
            let mut headers = amount_headers(resolved);
            if resolved.profile.numeric_auto && resolved.numeric.is_empty() {
                headers = raw.header.iter().map(String::as_str).collect();
            }
            detect_decimal(df, &raw.source, &headers)?
        }
    };
    let num = Num {
        decimals: opts.decimals,
        decimal: decimal.decimal,
    };

    // Keys.
    let keys: Vec<&String> = resolved
        .keys
        .iter()
        .filter(|(slot, _)| opts.key_slots.as_ref().is_none_or(|s| s.contains(slot)))
        .map(|(_, h)| h)
        .collect();
    if !keys.is_empty() {
        // Trimmed key values joined with `|`, built through one reused buffer.
        let cas: Vec<&StringChunked> = keys
            .iter()
            .map(|h| text_col(df, h))
            .collect::<Result<_, _>>()
            .map_err(with_file)?;
        let mut iters: Vec<_> = cas.iter().map(|c| c.iter()).collect();
        let mut builder = StringChunkedBuilder::new("bd_key".into(), n);
        let mut buf = String::new();
        let names: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        // Keys the profile requires (optional ones, such as Currency, may be empty).
        let required: Vec<bool> = resolved
            .keys
            .iter()
            .filter(|(slot, _)| opts.key_slots.as_ref().is_none_or(|s| s.contains(slot)))
            .map(|(slot, _)| *slot < resolved.profile.keys.len())
            .collect();
        let mut empty_required: Vec<usize> = Vec::new();
        for i in 0..n {
            buf.clear();
            let mut all_empty = true;
            empty_required.clear();
            for (k, it) in iters.iter_mut().enumerate() {
                let v = it.next().flatten().unwrap_or("").trim();
                if !v.is_empty() {
                    all_empty = false;
                } else if required[k] {
                    empty_required.push(k);
                }
                if k > 0 {
                    buf.push('|');
                }
                buf.push_str(v);
            }
            if all_empty {
                rows.reject(
                    i,
                    &names.join("+"),
                    None,
                    "every key column is empty; the record identifies no account".into(),
                );
            } else {
                for &k in &empty_required {
                    rows.reject(
                        i,
                        names[k],
                        None,
                        "a key column is empty; the record cannot be matched to its account".into(),
                    );
                }
            }
            builder.append_value(&buf);
        }
        cols.push(builder.finish().into_column());
    }

    // Date.
    if let Some(h) = &resolved.date {
        let d = parse_dates(&mut rows, df, h, &opts.dates, true).map_err(with_file)?;
        cols.push(date_column("bd_date", d));
    }

    // Criteria.
    let mut primary: Option<(Vec<f64>, Vec<f64>)> = None;
    for c in &resolved.criteria {
        let (diff, scale) = if let (Some(l), Some(r)) = (&c.lhs, &c.rhs) {
            let lhs = parse_amounts(&mut rows, df, l, num, OnEmpty::ZeroWithFinding)
                .map_err(with_file)?;
            let rhs = parse_amounts(&mut rows, df, r, num, OnEmpty::ZeroWithFinding)
                .map_err(with_file)?;
            let diff: Vec<f64> = lhs
                .iter()
                .zip(&rhs)
                .map(|(a, b)| clean::round_to(a - b, opts.decimals))
                .collect();
            // Amounts near the limits of f64 (1e308 and -1e308) overflow when subtracted.
            for i in 0..n {
                if diff[i].is_infinite() {
                    let (lv, rv) = (lhs[i], rhs[i]);
                    let raw_l = text_col(df, l)
                        .ok()
                        .and_then(|c| c.get(i))
                        .unwrap_or("")
                        .to_string();
                    rows.reject(
                        i,
                        l,
                        Some(&raw_l),
                        format!("difference is not finite: {l} - {r} = {lv:e} - {rv:e} overflows"),
                    );
                }
            }
            if let Some(g) = &c.difference {
                let given =
                    parse_amounts(&mut rows, df, g, num, OnEmpty::Nan).map_err(with_file)?;
                for i in 0..n {
                    let (gv, dv) = (given[i], diff[i]);
                    if gv.is_finite() && (gv - dv).abs() > opts.mismatch_tolerance {
                        rows.finding(
                            i,
                            format!("{g} {gv} disagrees with {l} - {r} = {dv}; using {dv}"),
                        );
                    }
                }
                cols.push(Column::new(crit_col(&c.name, "given").into(), given));
            }
            let scale: Vec<f64> = lhs
                .iter()
                .zip(&rhs)
                .map(|(a, b)| a.abs().max(b.abs()))
                .collect();
            cols.push(Column::new(crit_col(&c.name, "lhs").into(), lhs));
            cols.push(Column::new(crit_col(&c.name, "rhs").into(), rhs));
            (diff, scale)
        } else {
            let h = c
                .difference
                .as_ref()
                .expect("resolved criteria has a difference");
            let diff = parse_amounts(&mut rows, df, h, num, OnEmpty::Zero).map_err(with_file)?;
            (diff, vec![0.0; n])
        };
        let mut tol: Vec<f64> = scale
            .iter()
            .map(|s| c.abs_tolerance.max(c.rel_tolerance * s))
            .collect();
        if let Some(t) = &c.tolerance_column {
            let ca = text_col(df, t).map_err(with_file)?;
            for (i, v) in ca.iter().enumerate() {
                match num.parse(v.unwrap_or("")) {
                    NumCell::Value(x) => tol[i] = tol[i].max(x.abs()),
                    NumCell::Empty => {}
                    NumCell::Invalid => rows.finding(
                        i,
                        format!(
                            "{t} unreadable ({:?}), profile tolerance used",
                            v.unwrap_or("")
                        ),
                    ),
                }
            }
        }
        if primary.is_none() {
            primary = Some((diff.clone(), tol.clone()));
        }
        cols.push(Column::new(crit_col(&c.name, "diff").into(), diff));
        cols.push(Column::new(crit_col(&c.name, "tol").into(), tol));
    }
    let within: Option<Vec<bool>> = primary
        .as_ref()
        .map(|(d, t)| d.iter().zip(t).map(|(d, t)| d.abs() <= *t + 1e-9).collect());
    if let Some((d, _)) = primary {
        cols.push(Column::new("bd_difference".into(), d));
    }
    if let Some(w) = &within {
        cols.push(Column::new("bd_within_tolerance".into(), w.clone()));
    }

    // Status → break flag.
    if let Some(h) = &resolved.status {
        let ca = text_col(df, h).map_err(with_file)?;
        let flags: Vec<bool> = ca
            .iter()
            .map(|v| resolved.is_break_status(v.unwrap_or("")))
            .collect();
        cols.push(Column::new("bd_break".into(), flags));
    } else if let Some(w) = &within {
        cols.push(Column::new(
            "bd_break".into(),
            w.iter().map(|x| !x).collect::<Vec<bool>>(),
        ));
    }

    // Comment: cleaned once per distinct value, and only copied where cleaning changed it.
    if let Some(h) = &resolved.comment {
        let ca = text_col(df, h).map_err(with_file)?;
        let mut cleaned: Vec<String> = Vec::new();
        let mut cache: HashMap<&str, Option<usize>> = HashMap::new();
        let mut changed: Vec<Option<usize>> = Vec::with_capacity(n);
        for v in ca.iter() {
            let s = v.unwrap_or("");
            let slot = *cache.entry(s).or_insert_with(|| {
                let c = clean::clean_comment(s);
                (c != s).then(|| {
                    cleaned.push(c);
                    cleaned.len() - 1
                })
            });
            changed.push(slot);
        }
        let values = ca.iter().zip(&changed).map(|(v, slot)| match slot {
            Some(k) => cleaned[*k].as_str(),
            None => v.unwrap_or(""),
        });
        cols.push(StringChunked::from_iter_values("bd_comment".into(), values).into_column());
    }

    // Categoricals.
    for role in &resolved.categoricals {
        let ca = text_col(df, &role.header).map_err(with_file)?;
        let name = format!("bd_cat_{}", role.slug);
        let needs_trim = ca
            .iter()
            .any(|v| v.is_some_and(|v| v.len() != v.trim().len()));
        if needs_trim {
            let v: Vec<String> = ca
                .iter()
                .map(|v| v.unwrap_or("").trim().to_string())
                .collect();
            cols.push(Column::new(name.into(), v));
        } else {
            // Already clean: share the original column's buffers instead of copying them.
            cols.push(ca.clone().with_name(name.into()).into_column());
        }
    }

    // Extra numeric features (generic: detected when none are listed).
    let mut numeric = resolved.numeric.clone();
    if resolved.profile.numeric_auto && numeric.is_empty() {
        numeric = numeric_columns(raw, num)?
            .into_iter()
            .map(|h| crate::profile::Role {
                slug: clean::slug(&h),
                header: h,
            })
            .collect();
        if numeric.is_empty() {
            return Err(IngestError::Data {
                file: raw.source.clone(),
                message: format!(
                    "the generic profile found no numeric column to score (columns: {}); list them with --columns",
                    raw.header.join(", ")
                ),
            });
        }
    }
    let strict_numeric = resolved.profile.numeric_auto;
    for role in &numeric {
        let on_empty = if strict_numeric {
            OnEmpty::Reject
        } else {
            OnEmpty::Nan
        };
        let v = parse_amounts(&mut rows, df, &role.header, num, on_empty).map_err(with_file)?;
        cols.push(Column::new(format!("bd_num_{}", role.slug).into(), v));
    }

    // Extra dates and the trade date.
    for role in &resolved.extra_dates {
        let d = parse_dates(&mut rows, df, &role.header, &opts.dates, false).map_err(with_file)?;
        if resolved.trade_date.as_deref() == Some(role.header.as_str()) {
            cols.push(date_column("bd_trade_date", d.clone()));
        }
        cols.push(date_column(&format!("bd_date_{}", role.slug), d));
    }

    // Findings.
    let dq_rows = rows
        .dq
        .iter()
        .zip(&rows.rejected)
        .filter(|(f, r)| !f.is_empty() && !**r)
        .count();
    let dq: Vec<String> = rows.dq.iter().map(|f| f.join("; ")).collect();
    cols.push(Column::new("bd_dq".into(), dq));

    let mut out = df.clone();
    for c in cols {
        out.with_column(c).map_err(data_err)?;
    }
    // Rows the reader already rejected (a record with more or fewer fields than the header) come
    // first in the report and count as rows of the file.
    let rejected_rows = rows.rejected.iter().filter(|r| **r).count() + raw.rejects.len();
    let mut rejects = raw.rejects.clone();
    rejects.append(&mut rows.rejects);
    if rejected_rows > 0 {
        let keep =
            BooleanChunked::from_iter_values("keep".into(), rows.rejected.iter().map(|r| !r));
        out = out.filter(&keep).map_err(data_err)?;
    }
    // The resolved profile carries the numeric columns actually used (detected for `generic`).
    let mut resolved = resolved.clone();
    resolved.numeric = numeric.clone();
    Ok(Prepared {
        df: out,
        resolved,
        rejects,
        total_rows: n + raw.rejects.len(),
        rejected_rows,
        dq_rows,
        source: raw.source.clone(),
        numeric_columns: numeric.iter().map(|r| r.header.clone()).collect(),
        blank_rows: raw.blank_rows,
        decimal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;

    fn raw(header: &[&str], rows: &[&[&str]]) -> RawTable {
        let mut cols = vec![Column::new(
            ROW_COL.into(),
            (0..rows.len()).map(|i| i as u32 + 2).collect::<Vec<u32>>(),
        )];
        for (j, h) in header.iter().enumerate() {
            let v: Vec<Option<&str>> = rows
                .iter()
                .map(|r| Some(r[j]).filter(|s| !s.is_empty()))
                .collect();
            cols.push(Column::new((*h).into(), v));
        }
        RawTable::new(
            DataFrame::new_infer_height(cols).unwrap(),
            header.iter().map(|s| s.to_string()).collect(),
            "t.csv".into(),
        )
    }

    fn opts() -> PrepareOptions {
        PrepareOptions::from_config(&crate::config::Config::defaults().ingest)
    }

    const GL: [&str; 8] = [
        "Asofdate",
        "Company",
        "Account",
        "AU",
        "Match Status",
        "GL Balance",
        "IHub balance",
        "Balance difference",
    ];

    fn prep(rows: &[&[&str]]) -> Prepared {
        let r = raw(&GL, rows);
        let res = Profile::builtin("gl_ihub")
            .unwrap()
            .resolve(&r.header, "t.csv", &[])
            .unwrap();
        prepare(&r, &res, &opts()).unwrap()
    }

    fn f64s(df: &DataFrame, c: &str) -> Vec<f64> {
        df.column(c)
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect()
    }
    fn strs(df: &DataFrame, c: &str) -> Vec<String> {
        df.column(c)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|s| s.unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn mixed_dates_noise_and_zero_padded_keys() {
        let p = prep(&[
            &[
                "4/30/2024",
                "00000",
                "1001",
                "0042",
                "Match",
                "20000.009999999998",
                "20000.01",
                "0",
            ],
            &[
                "2024-05-01",
                "00000",
                "1001",
                "0042",
                "Break",
                "100",
                "90",
                "10",
            ],
            &["45414", "00100", "1001", "0042", "Match", "1", "1", ""],
            &[
                "05-03-2024",
                "00100",
                "1001",
                "0042",
                "Match",
                "1",
                "1",
                "0",
            ],
        ]);
        assert_eq!(p.rejected_rows, 0);
        let dates: Vec<i32> =
            p.df.column("bd_date")
                .unwrap()
                .to_physical_repr()
                .i32()
                .unwrap()
                .into_no_null_iter()
                .collect();
        let d = |y, m, dd| clean::ymd_to_days(y, m, dd).unwrap();
        assert_eq!(
            dates,
            vec![d(2024, 4, 30), d(2024, 5, 1), d(2024, 5, 2), d(2024, 5, 3)]
        );
        assert_eq!(strs(&p.df, "bd_key")[0], "00000|1001|0042");
        assert_eq!(
            strs(&p.df, "Company")[0],
            "00000",
            "original column untouched"
        );
        assert_eq!(f64s(&p.df, "bd_balance_lhs")[0], 20000.01);
        assert_eq!(f64s(&p.df, "bd_difference"), vec![0.0, 10.0, 0.0, 0.0]);
        let brk: Vec<bool> =
            p.df.column("bd_break")
                .unwrap()
                .bool()
                .unwrap()
                .iter()
                .map(|v| v.unwrap())
                .collect();
        assert_eq!(brk, vec![false, true, false, false]);
        assert_eq!(p.dq_rows, 0);
    }

    #[test]
    fn disagreeing_difference_is_a_finding_not_a_reject() {
        let p = prep(&[&["2024-05-01", "1", "2", "3", "Break", "100", "90", "12"]]);
        assert_eq!(p.rejected_rows, 0);
        assert_eq!(p.dq_rows, 1);
        assert_eq!(f64s(&p.df, "bd_difference"), vec![10.0], "derived wins");
        assert_eq!(f64s(&p.df, "bd_balance_given"), vec![12.0], "given kept");
        let dq = strs(&p.df, "bd_dq");
        assert!(
            dq[0].contains("Balance difference 12 disagrees"),
            "{}",
            dq[0]
        );
    }

    #[test]
    fn bad_rows_go_to_rejects_with_row_column_value_reason() {
        let p = prep(&[
            &["2024-05-01", "1", "2", "3", "Match", "1", "1", "0"],
            &["1900-01-01", "1", "2", "3", "Match", "1", "1", "0"],
            &["2024-05-02", "1", "2", "3", "Match", "abc", "1", "0"],
            &["someday", "1", "2", "3", "Match", "1", "1", "0"],
            &["2024-05-03", "", "", "", "Match", "1", "1", "0"],
            &["2024-05-04", "1", "2", "3", "Break", "", "5", ""],
        ]);
        assert_eq!(p.total_rows, 6);
        assert_eq!(p.rejected_rows, 4);
        assert_eq!(p.df.height(), 2);
        let by_row: HashMap<u32, &Reject> = p.rejects.iter().map(|r| (r.row, r)).collect();
        assert_eq!(by_row[&3].column, "Asofdate");
        assert!(by_row[&3].reason.contains("placeholder"));
        assert_eq!(by_row[&4].column, "GL Balance");
        assert_eq!(by_row[&4].value, "abc");
        assert_eq!(by_row[&4].reason, "not a number");
        assert_eq!(by_row[&5].value, "someday");
        assert!(by_row[&6].reason.contains("every key column is empty"));
        // An empty side is read as 0 and noted.
        assert_eq!(f64s(&p.df, "bd_difference"), vec![0.0, -5.0]);
        assert!(strs(&p.df, "bd_dq")[1].contains("GL Balance empty, read as 0"));
        let kept: Vec<u32> =
            p.df.column(ROW_COL)
                .unwrap()
                .u32()
                .unwrap()
                .into_no_null_iter()
                .collect();
        assert_eq!(kept, vec![2, 7]);
    }

    #[test]
    fn trades_tolerance_columns_and_extra_dates() {
        let header = [
            "TRADEID",
            "MatchStatus",
            "RECONDATE",
            "TRADE_DATE",
            "SETTLE DATE",
            "QUANTITY",
            "PRICE",
            "QUANTITYDIFFERENCE",
            "PRICE DIFFERENCE",
            "PRICE TOLERANCE",
            "QUANTITY TOLERANCE",
            "COMMENT",
            "SYSA_BOOK",
        ];
        let r = raw(
            &header,
            &[
                &[
                    "T1",
                    "Price_Break",
                    "2024-05-02",
                    "4/30/2024",
                    "1900-01-01",
                    "1000",
                    "99.5",
                    "",
                    "0.004",
                    "0.01",
                    "0",
                    "[{\"factor rounding\"}]",
                    "BK1",
                ],
                &[
                    "T2",
                    "SYSA_Only",
                    "2024-05-02",
                    "2024-05-01",
                    "2024-05-03",
                    "500",
                    "101",
                    "500",
                    "",
                    "0.01",
                    "1",
                    "",
                    "",
                ],
            ],
        );
        let res = Profile::builtin("trades")
            .unwrap()
            .resolve(&r.header, "t.csv", &[])
            .unwrap();
        assert_eq!(
            res.criteria.len(),
            2,
            "ORIGINAL FACE DIFFERENCE is optional"
        );
        let p = prepare(&r, &res, &opts()).unwrap();
        assert_eq!(p.rejected_rows, 0);
        assert_eq!(f64s(&p.df, "bd_price_tol"), vec![0.01, 0.01]);
        assert_eq!(f64s(&p.df, "bd_quantity_diff"), vec![0.0, 500.0]);
        assert_eq!(f64s(&p.df, "bd_difference"), vec![0.0, 500.0]);
        assert_eq!(strs(&p.df, "bd_comment")[0], "factor rounding");
        let settle = p.df.column("bd_date_settle_date").unwrap();
        assert_eq!(
            settle.null_count(),
            1,
            "placeholder settle date read as missing"
        );
        assert!(p.df.column("bd_trade_date").is_ok());
        assert_eq!(strs(&p.df, "SYSA_BOOK"), vec!["BK1", ""], "carried through");
    }

    #[test]
    fn generic_detects_numeric_columns() {
        let r = raw(
            &["id", "x", "y", "label"],
            &[
                &["a", "1", "2.5", "n"],
                &["b", "3", "", "y"],
                &["c", "1e3", "4", "n"],
            ],
        );
        let res = Profile::builtin("generic")
            .unwrap()
            .resolve(&r.header, "g.csv", &[])
            .unwrap();
        let p = prepare(&r, &res, &opts()).unwrap();
        assert_eq!(p.numeric_columns, vec!["x", "y"]);
        let roles: Vec<&str> = p.resolved.numeric.iter().map(|r| r.slug.as_str()).collect();
        assert_eq!(
            roles,
            vec!["x", "y"],
            "detected columns become the profile's numeric roles"
        );
        // An empty value in a scored generic column cannot be scored: rejected.
        assert_eq!(p.rejected_rows, 1);
        assert_eq!(f64s(&p.df, "bd_num_x"), vec![1.0, 1000.0]);
    }
}
