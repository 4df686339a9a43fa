//! Detecting a file's decimal separator from its amount columns.

use super::cells::text_col;
use super::{DecimalChoice, DecimalSource};
use crate::ingest::IngestError;
use crate::ingest::clean::{self, Decimal, DecimalHint, NumCell};
use crate::profile::Resolved;
use polars::prelude::*;

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
pub(super) fn detect_decimal(
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
pub(super) fn amount_headers(resolved: &Resolved) -> Vec<&str> {
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
