//! Per-row outcomes (rejects, findings) and the parsing of amount and date columns.

use super::Reject;
use crate::ingest::clean::{self, DateCell, DateOptions, Decimal, NumCell};
use crate::ingest::{IngestError, RawTable};
use polars::prelude::*;
use std::collections::HashMap;

/// Where a row's outcomes are reported: the file, each row's number and (workbooks) each
/// column's letters.
pub(super) struct RowPlace<'a> {
    pub(super) source: &'a str,
    /// Workbooks: each column's letters by header (for the cell of a reject).
    pub(super) cells: Option<(&'a str, HashMap<&'a str, String>)>,
    pub(super) row_numbers: Vec<u32>,
}

/// The per-row outcomes (rejects, findings) of one step, as its columns are parsed; the steps'
/// outcomes are put together in step order at the end.
pub(super) struct Rows<'a> {
    place: &'a RowPlace<'a>,
    /// The rows rejected, with each reject (a row may have several).
    pub(super) rejects: Vec<(usize, Reject)>,
    /// Each finding's row and text, in the order found.
    pub(super) findings: Vec<(usize, String)>,
}

impl<'a> Rows<'a> {
    pub(super) fn new(place: &'a RowPlace<'a>) -> Rows<'a> {
        Rows {
            place,
            rejects: Vec::new(),
            findings: Vec::new(),
        }
    }
    pub(super) fn reject(&mut self, i: usize, column: &str, value: Option<&str>, reason: String) {
        let row = self.place.row_numbers[i];
        let cell = self.place.cells.as_ref().and_then(|(sheet, letters)| {
            letters
                .get(column)
                .map(|l| format!("{}!{l}{row}", crate::ingest::xlsx::sheet_ref(sheet)))
        });
        self.rejects.push((
            i,
            Reject {
                source: self.place.source.to_string(),
                row,
                column: column.to_string(),
                value: value.unwrap_or("").to_string(),
                reason,
                cell,
            },
        ));
    }
    pub(super) fn finding(&mut self, i: usize, text: String) {
        self.findings.push((i, text));
    }
}

/// `f` of each slice of `ca`'s rows, on every core, in the rows' order.
pub(super) fn par_slices<T: Send>(
    ca: &StringChunked,
    f: impl Fn(&StringChunked) -> T + Sync,
) -> Vec<T> {
    par_ranges(ca.len(), |r| f(&ca.slice(r.start as i64, r.len())))
}

/// `f` of each range of `n` rows (64Ki rows each), on every core, in the rows' order.
pub(super) fn par_ranges<T: Send>(
    n: usize,
    f: impl Fn(std::ops::Range<usize>) -> T + Sync,
) -> Vec<T> {
    use rayon::prelude::*;
    const SLICE: usize = 1 << 16;
    (0..n.div_ceil(SLICE))
        .into_par_iter()
        .map(|k| f(k * SLICE..((k + 1) * SLICE).min(n)))
        .collect()
}

pub(super) fn text_col<'a>(
    df: &'a DataFrame,
    name: &str,
) -> Result<&'a StringChunked, IngestError> {
    df.column(name)
        .and_then(|c| c.str())
        .map_err(|e| IngestError::Data {
            file: String::new(),
            message: format!("column {name:?}: {e}"),
        })
}

/// How amounts are read: decimals kept and the decimal separator.
#[derive(Clone, Copy)]
pub(super) struct Num {
    pub(super) decimals: u32,
    pub(super) decimal: Decimal,
}

impl Num {
    pub(super) fn parse(self, v: &str) -> NumCell {
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
pub(super) fn parse_amounts(
    rows: &mut Rows,
    df: &DataFrame,
    header: &str,
    num: Num,
    on_empty: OnEmpty,
) -> Result<Vec<f64>, IngestError> {
    use rayon::prelude::*;
    let ca = text_col(df, header)?;
    // The cells are parsed on every core; what is not a number is handled after, in row order.
    let cells: Vec<Option<&str>> = ca.iter().collect();
    let parsed: Vec<NumCell> = cells
        .par_iter()
        .with_min_len(1 << 14)
        .map(|v| num.parse(v.unwrap_or("")))
        .collect();
    let mut out = Vec::with_capacity(ca.len());
    for (i, (v, parsed)) in cells.into_iter().zip(parsed).enumerate() {
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
pub(super) enum OnEmpty {
    Zero,
    ZeroWithFinding,
    Nan,
    Reject,
}

/// Parses a date column; `required` dates reject empty, placeholder and invalid cells, other
/// dates read those as missing (invalid ones with a finding).
pub(super) fn parse_dates(
    rows: &mut Rows,
    df: &DataFrame,
    header: &str,
    opts: &DateOptions,
    required: bool,
) -> Result<Vec<Option<i32>>, IngestError> {
    let ca = text_col(df, header)?;
    let mut cache: PlHashMap<&str, DateCell> = PlHashMap::new();
    let mut out = Vec::with_capacity(ca.len());
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
pub(super) fn numeric_columns(raw: &RawTable, num: Num) -> Result<Vec<String>, IngestError> {
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
