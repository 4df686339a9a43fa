//! The fields a rule, a severity threshold or a summary can read from a row: the table's
//! columns under short names, a few derived values, and the rules file's parameters.

use crate::expr::{Row, Value};
use crate::ingest::clean::slug;
use crate::ingest::prepare::crit_col;
use crate::profile::Resolved;
use crate::text::fmt_amount;
use polars::prelude::*;
use std::borrow::Cow;
use std::collections::HashMap;

/// A value from the rules file's `[params]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Num(f64),
    Text(String),
}

#[derive(Debug, Clone)]
enum Source {
    Column(String),
    /// A standard name the table does not have: always missing.
    Absent,
    Param(Param),
    AbsDifference,
    RelDifference,
    OutOfTolerance,
    Pow10Ratio,
}

/// Field names and where each comes from, for one table.
#[derive(Debug, Clone)]
pub struct Schema {
    names: Vec<String>,
    sources: Vec<Source>,
    index: HashMap<String, usize>,
    /// Canonical columns of every criteria: (diff, tol, lhs, rhs).
    criteria: Vec<(String, String, Option<String>, Option<String>)>,
}

/// The short field name of a table column.
fn field_name(column: &str) -> Option<String> {
    let renamed = match column {
        "bd_difference" => "difference".to_string(),
        "bd_within_tolerance" => "within_tolerance".to_string(),
        "bd_comment" => "comment".to_string(),
        "bd_dq" => "dq".to_string(),
        "bd_key" => "key".to_string(),
        "bd_date" => "date".to_string(),
        "bd_break" => "status_break".to_string(),
        "bd_row" => "row".to_string(),
        c if c.starts_with("bd_") => c["bd_".len()..].to_string(),
        c if c.starts_with("f_") => c["f_".len()..].to_string(),
        _ => return None,
    };
    Some(renamed)
}

impl Schema {
    /// The fields of `df` (columns of a feature or output table of `resolved`), plus `params`.
    pub fn new(df: &DataFrame, resolved: &Resolved, params: &[(String, Param)]) -> Schema {
        let mut s = Schema {
            names: Vec::new(),
            sources: Vec::new(),
            index: HashMap::new(),
            criteria: Vec::new(),
        };
        let has = |c: &str| df.column(c).is_ok();
        for c in &resolved.criteria {
            let (d, t) = (crit_col(&c.name, "diff"), crit_col(&c.name, "tol"));
            if has(&d) && has(&t) {
                let side = |p: &str| Some(crit_col(&c.name, p)).filter(|x| has(x));
                s.criteria.push((d, t, side("lhs"), side("rhs")));
            }
        }
        // Canonical, feature and detection columns first, then the file's own columns.
        let cols: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        for c in &cols {
            if let Some(n) = field_name(c) {
                s.add(n, Source::Column(c.clone()));
            }
        }
        if let Some((_, t, l, r)) = s.criteria.first().cloned() {
            s.add("tolerance".into(), Source::Column(t));
            if let (Some(l), Some(r)) = (l, r) {
                s.add("lhs".into(), Source::Column(l));
                s.add("rhs".into(), Source::Column(r));
            }
        }
        if let Some(h) = &resolved.status
            && has(h)
        {
            s.add("status".into(), Source::Column(h.clone()));
        }
        s.add("abs_difference".into(), Source::AbsDifference);
        s.add("rel_difference".into(), Source::RelDifference);
        s.add("out_of_tolerance".into(), Source::OutOfTolerance);
        s.add("pow10_ratio".into(), Source::Pow10Ratio);
        for (k, v) in params {
            s.add(k.clone(), Source::Param(v.clone()));
        }
        for c in &cols {
            if field_name(c).is_none() {
                s.add(slug(c), Source::Column(c.clone()));
            }
        }
        // `currency`: the row's currency, from the first column that holds one.
        if let Some(i) = [
            "cat_currency",
            "currency",
            "ccy",
            "currency_code",
            "sysa_ccy",
        ]
        .iter()
        .find_map(|n| s.lookup(n))
        {
            let src = s.sources[i].clone();
            s.add("currency".into(), src);
        }
        // Standard names every rule may use, missing when the table lacks them.
        for n in [
            "difference",
            "comment",
            "dq",
            "status",
            "lhs",
            "rhs",
            "tolerance",
            "score",
            "rank",
            "break_age",
            "days_since_last",
            "decision",
            "is_anomaly",
            "cluster",
            "top_features",
            "model_version",
            "currency",
        ]
        .into_iter()
        .chain(
            crate::break_runs::RUN_COLUMNS
                .iter()
                .map(|c| &c["bd_".len()..]),
        ) {
            s.add(n.to_string(), Source::Absent);
        }
        s
    }

    fn add(&mut self, name: String, source: Source) {
        if name.is_empty() || self.index.contains_key(&name) {
            return;
        }
        self.index.insert(name.clone(), self.names.len());
        self.names.push(name);
        self.sources.push(source);
    }

    /// The index of a field.
    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

#[derive(Debug, Clone)]
enum Data {
    Missing,
    Num(Vec<f64>),
    Text(Vec<String>),
    Param(Param),
}

/// Materialised fields for a set of rows of a table.
pub struct Facts {
    data: Vec<Data>,
    rows: usize,
}

fn num_column(df: &DataFrame, name: &str, rows: &[usize]) -> Option<Vec<f64>> {
    let c = df.column(name).ok()?;
    let c = match c.dtype() {
        DataType::Boolean => c.cast(&DataType::Float64).ok()?,
        d if d.is_primitive_numeric() => c.cast(&DataType::Float64).ok()?,
        _ => return None,
    };
    let ca = c.f64().ok()?;
    Some(
        rows.iter()
            .map(|r| ca.get(*r).unwrap_or(f64::NAN))
            .collect(),
    )
}

fn text_column(df: &DataFrame, name: &str, rows: &[usize]) -> Option<Vec<String>> {
    let c = df.column(name).ok()?;
    let c = c.cast(&DataType::String).ok()?;
    let ca = c.str().ok()?;
    Some(
        rows.iter()
            .map(|r| ca.get(*r).unwrap_or("").to_string())
            .collect(),
    )
}

impl Facts {
    /// Reads the fields `used` (indices into `schema`) for `rows` of `df`; other fields are missing.
    pub fn build(df: &DataFrame, rows: &[usize], schema: &Schema, used: &[usize]) -> Facts {
        let mut data: Vec<Data> = vec![Data::Missing; schema.names.len()];
        let col_data = |c: &str| -> Data {
            if let Some(v) = num_column(df, c, rows) {
                Data::Num(v)
            } else if let Some(v) = text_column(df, c, rows) {
                Data::Text(v)
            } else {
                Data::Missing
            }
        };
        let num_of = |c: Option<&String>| c.and_then(|c| num_column(df, c, rows));
        let primary = schema.criteria.first();
        for &i in used {
            data[i] = match &schema.sources[i] {
                Source::Column(c) => col_data(c),
                Source::Absent => Data::Missing,
                Source::Param(p) => Data::Param(p.clone()),
                Source::AbsDifference => match num_column(df, "bd_difference", rows) {
                    Some(v) => Data::Num(v.into_iter().map(f64::abs).collect()),
                    None => Data::Missing,
                },
                Source::RelDifference => {
                    let d = num_column(df, "bd_difference", rows);
                    let l = num_of(primary.and_then(|p| p.2.as_ref()));
                    let r = num_of(primary.and_then(|p| p.3.as_ref()));
                    match (d, l, r) {
                        (Some(d), Some(l), Some(r)) => Data::Num(
                            (0..rows.len())
                                .map(|k| d[k] / l[k].abs().max(r[k].abs()).max(1.0))
                                .collect(),
                        ),
                        (Some(d), _, _) => {
                            Data::Num(d.iter().map(|v| v / v.abs().max(1.0)).collect())
                        }
                        _ => Data::Missing,
                    }
                }
                Source::OutOfTolerance => {
                    let mut out = vec![0.0; rows.len()];
                    for (d, t, _, _) in &schema.criteria {
                        if let (Some(d), Some(t)) =
                            (num_column(df, d, rows), num_column(df, t, rows))
                        {
                            for k in 0..rows.len() {
                                let tol = if t[k].is_finite() { t[k] } else { 0.0 };
                                if d[k].is_finite() && d[k].abs() > tol + 1e-9 {
                                    out[k] = 1.0;
                                }
                            }
                        }
                    }
                    Data::Num(out)
                }
                Source::Pow10Ratio => {
                    let l = num_of(primary.and_then(|p| p.2.as_ref()));
                    let r = num_of(primary.and_then(|p| p.3.as_ref()));
                    let t = num_of(primary.map(|p| &p.1));
                    match (l, r, t) {
                        (Some(l), Some(r), Some(t)) => Data::Num(
                            (0..rows.len())
                                .map(|k| pow10_ratio(l[k], r[k], t[k]))
                                .collect(),
                        ),
                        _ => Data::Missing,
                    }
                }
            };
        }
        Facts {
            data,
            rows: rows.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// One row, for expressions.
    pub fn row(&self, k: usize) -> FactRow<'_> {
        FactRow { facts: self, k }
    }

    /// A field's number on row `k` (NaN when missing or text that is not a number).
    pub fn num(&self, field: usize, k: usize) -> f64 {
        match &self.data[field] {
            Data::Num(v) => v[k],
            Data::Text(v) => v[k].trim().parse().unwrap_or(f64::NAN),
            Data::Param(Param::Num(v)) => *v,
            _ => f64::NAN,
        }
    }

    /// A field's text on row `k` ("" when missing; numbers formatted for people).
    pub fn text(&self, field: usize, k: usize) -> String {
        self.text_ref(field, k).into_owned()
    }

    /// [`Facts::text`], borrowed where the field holds text.
    pub fn text_ref(&self, field: usize, k: usize) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match &self.data[field] {
            Data::Num(v) => Cow::Owned(fmt_amount(v[k])),
            Data::Text(v) => Cow::Borrowed(v[k].as_str()),
            Data::Param(Param::Num(v)) => Cow::Owned(fmt_amount(*v)),
            Data::Param(Param::Text(t)) => Cow::Borrowed(t.as_str()),
            Data::Missing => Cow::Borrowed(""),
        }
    }

    /// Whether the field holds a value on row `k`.
    pub fn present(&self, field: usize, k: usize) -> bool {
        match &self.data[field] {
            Data::Num(v) => v[k].is_finite(),
            Data::Text(v) => !v[k].is_empty(),
            Data::Param(_) => true,
            Data::Missing => false,
        }
    }
}

/// One row of [`Facts`].
pub struct FactRow<'a> {
    facts: &'a Facts,
    k: usize,
}

impl Row for FactRow<'_> {
    fn get(&self, field: usize) -> Value<'_> {
        match self.facts.data.get(field) {
            Some(Data::Num(v)) => Value::Num(v[self.k]),
            Some(Data::Text(v)) => Value::Str(Cow::Borrowed(v[self.k].as_str())),
            Some(Data::Param(Param::Num(v))) => Value::Num(*v),
            Some(Data::Param(Param::Text(t))) => Value::Str(Cow::Borrowed(t.as_str())),
            _ => Value::Missing,
        }
    }
}

/// k when lhs = rhs·10^k for a non-zero integer k, allowing the rounding of the smaller side
/// (to the tolerance's unit) and 0.2% relative noise; else 0.
pub fn pow10_ratio(lhs: f64, rhs: f64, tol: f64) -> f64 {
    let (a, b) = (lhs.abs(), rhs.abs());
    if !(a.is_finite() && b.is_finite()) || a <= 0.0 || b <= 0.0 || lhs.signum() != rhs.signum() {
        return 0.0;
    }
    let k = (a / b).log10().round();
    if k == 0.0 || k.abs() > 12.0 {
        return 0.0;
    }
    let scaled = b * 10f64.powi(k as i32);
    let unit = if tol.is_finite() && tol > 0.0 {
        tol
    } else {
        0.0
    };
    // The smaller side was rounded to `unit`: its error grows by 10^k when scaled up.
    let slack = unit * 10f64.powi(k.max(0.0) as i32) + 0.002 * a;
    if (scaled - a).abs() <= slack { k } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow10_ratio_allows_rounding_of_the_smaller_side() {
        assert_eq!(pow10_ratio(1500.0, 150.0, 0.01), 1.0);
        assert_eq!(pow10_ratio(150.0, 1500.0, 0.01), -1.0);
        // 123.45 / 1000 rounded to cents = 0.12: error 0.00345 · 1000 = 3.45 ≤ 0.01 · 1000.
        assert_eq!(pow10_ratio(123.45, 0.12, 0.01), 3.0);
        assert_eq!(pow10_ratio(1500.0, 149.0, 0.01), 0.0);
        assert_eq!(pow10_ratio(1500.0, -150.0, 0.01), 0.0, "opposite signs");
        assert_eq!(pow10_ratio(1500.0, 1500.0, 0.01), 0.0);
        assert_eq!(pow10_ratio(0.0, 10.0, 0.01), 0.0);
    }
}
