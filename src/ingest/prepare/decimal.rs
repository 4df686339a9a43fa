//! Detecting a file's decimal separator from its amount columns.

use super::cells::{par_slices, text_col};
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

impl Hints {
    /// The hints of `v`, a value after those counted so far.
    fn add(&mut self, v: &str) {
        let (count, example) = match clean::decimal_hint(v) {
            DecimalHint::Neutral => return,
            DecimalHint::Point => (&mut self.point, &mut self.point_example),
            DecimalHint::Comma => (&mut self.comma, &mut self.comma_example),
            DecimalHint::Ambiguous => (&mut self.ambiguous, &mut self.ambiguous_example),
        };
        *count += 1;
        example.get_or_insert_with(|| v.to_string());
    }

    /// These hints followed by those of later values.
    fn then(mut self, later: Hints) -> Hints {
        self.point += later.point;
        self.comma += later.comma;
        self.ambiguous += later.ambiguous;
        self.point_example = self.point_example.or(later.point_example);
        self.comma_example = self.comma_example.or(later.comma_example);
        self.ambiguous_example = self.ambiguous_example.or(later.ambiguous_example);
        self
    }
}

/// The hints of a column's values, counted on every core over slices of its rows (each example
/// is the first in the column's order).
fn hints_of(ca: &StringChunked) -> Hints {
    par_slices(ca, |part| {
        let mut t = Hints::default();
        for v in part.iter().flatten() {
            t.add(v);
        }
        t
    })
    .into_iter()
    .fold(Hints::default(), Hints::then)
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
    use rayon::prelude::*;
    let mut distinct: Vec<&str> = Vec::with_capacity(headers.len());
    for h in headers {
        if !distinct.contains(h) {
            distinct.push(h);
        }
    }
    let per_column: Vec<(&str, Hints)> = distinct
        .par_iter()
        .map(|h| Ok((*h, hints_of(text_col(df, h)?))))
        .collect::<Result<_, IngestError>>()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Counted over slices on every core, a column's hints are those counted one value after
    /// another: the same totals, and each example the first in the column's order.
    #[test]
    fn hints_counted_in_slices_are_those_counted_in_order() {
        let n = 200_000;
        let values: Vec<Option<String>> = (0..n)
            .map(|i| match i % 7 {
                0 => None,
                1 => Some(format!("{i}")),
                2 if i > 150_000 => Some(format!("{},5", i % 1000)),
                3 if i > 70_000 => Some(format!("{}.25", i % 1000)),
                4 if i > 131_000 => Some(format!("1,{:03}", i % 1000)),
                _ => Some("abc".into()),
            })
            .collect();
        let ca = StringChunked::new("a".into(), &values);
        let mut serial = Hints::default();
        for v in values.iter().flatten() {
            serial.add(v);
        }
        let parallel = hints_of(&ca);
        assert!(serial.point > 0 && serial.comma > 0 && serial.ambiguous > 0);
        assert_eq!(
            (parallel.point, parallel.comma, parallel.ambiguous),
            (serial.point, serial.comma, serial.ambiguous)
        );
        assert_eq!(parallel.point_example, serial.point_example);
        assert_eq!(parallel.comma_example, serial.comma_example);
        assert_eq!(parallel.ambiguous_example, serial.ambiguous_example);
        assert_eq!(parallel.point_example.as_deref(), Some("3.25"));
    }
}
