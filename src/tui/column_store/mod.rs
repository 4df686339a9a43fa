//! The column store behind the anomaly table: the columns shown, extracted once from the
//! analysis into plain vectors (numbers as `f64`, text dictionary-encoded), and the operations
//! the table needs at a million rows — a visible-row permutation (`Vec<u32>`), parallel sort on
//! one column, filter through [`crate::expr`], and search — none of which touches polars.

mod column;
mod frame;
#[cfg(test)]
mod tests;

pub use column::{Column, Data, Kind, TextCol, format_num};
pub(crate) use frame::filter_name;
pub use frame::{Known, short_status};

use crate::expr::{Expr, Row, Value};
use rayon::prelude::*;
use std::borrow::Cow;

/// Words a filter may use unquoted as values (`status = pending`, `severity = high`).
const BARE_WORDS: [&str; 10] = [
    "pending", "accepted", "rejected", "proposed", "approved", "returned", "low", "medium", "high",
    "critical",
];

/// The table's data: columns of equal length, the first `frozen` of which stay in place when
/// the others scroll sideways.
#[derive(Debug, Clone, Default)]
pub struct ColumnStore {
    pub cols: Vec<Column>,
    pub rows: usize,
    pub frozen: usize,
    /// Whether each row was flagged by the detector.
    pub flagged: Vec<bool>,
    pub known: Known,
}

impl ColumnStore {
    pub fn col(&self, i: Option<usize>) -> Option<&Column> {
        i.and_then(|i| self.cols.get(i))
    }

    /// The text of a known text column at `row` ("" when absent).
    pub fn text(&self, i: Option<usize>, row: usize) -> &str {
        self.col(i).map_or("", |c| c.text_at(row))
    }

    /// The number of a known numeric column at `row`.
    pub fn num(&self, i: Option<usize>, row: usize) -> Option<f64> {
        self.col(i).and_then(|c| c.num_at(row))
    }

    /// Sets one row's text in a text column.
    pub fn set_text(&mut self, col: usize, row: usize, v: &str) {
        if let Some(Column {
            data: Data::Text(t),
            ..
        }) = self.cols.get_mut(col)
        {
            t.set(row, v);
        }
    }

    /// The field names a filter may use.
    pub fn fields(&self) -> Vec<&str> {
        self.cols.iter().map(|c| c.field.as_str()).collect()
    }

    /// Compiles a filter expression against the columns. Besides the columns' fields, the
    /// status and severity words may be written unquoted (`status = pending`).
    pub fn compile(&self, text: &str) -> Result<Filter, String> {
        let ncols = self.cols.len();
        let literals = std::cell::RefCell::new(Vec::<String>::new());
        let compiled = {
            let schema = |name: &str| -> Option<usize> {
                let lower = name.to_lowercase();
                if let Some(i) = self.cols.iter().position(|c| c.field == lower) {
                    return Some(i);
                }
                if BARE_WORDS.contains(&lower.as_str()) {
                    let mut l = literals.borrow_mut();
                    l.push(lower);
                    return Some(ncols + l.len() - 1);
                }
                None
            };
            Expr::compile(text, &schema)
        };
        let expr = compiled.map_err(|e| {
            if e.message.contains("unknown field") {
                format!("{e} (fields: {})", self.fields().join(", "))
            } else {
                e.to_string()
            }
        })?;
        Ok(Filter {
            expr,
            literals: literals.into_inner(),
        })
    }

    /// The rows (of `rows`) where `filter` holds, in their order; parallel.
    pub fn filter(&self, rows: &[u32], filter: &Filter) -> Vec<u32> {
        rows.par_iter()
            .copied()
            .filter(|r| {
                filter.expr.matches(&RowRef {
                    store: self,
                    row: *r as usize,
                    literals: &filter.literals,
                })
            })
            .collect()
    }

    /// Sorts `rows` by column `col` (missing values and empty text last in either direction);
    /// ties keep the row order (row number), so the result is deterministic.
    pub fn sort(&self, rows: &mut [u32], col: usize, descending: bool) {
        let Some(c) = self.cols.get(col) else {
            return;
        };
        match &c.data {
            Data::Text(t) => {
                let last = t.dict.iter().position(String::is_empty).map(|c| t.rank[c]);
                let mut keys: Vec<u64> = rows
                    .par_iter()
                    .map(|r| {
                        let code = t.codes[*r as usize];
                        let mut k = t.rank[code as usize] as u64;
                        if descending && Some(k as u32) != last {
                            k = u32::MAX as u64 - 1 - k;
                        } else if Some(k as u32) == last {
                            k = u32::MAX as u64;
                        }
                        (k << 32) | *r as u64
                    })
                    .collect();
                keys.par_sort_unstable();
                for (slot, k) in rows.iter_mut().zip(keys) {
                    *slot = k as u32;
                }
            }
            Data::Num(v) => {
                let mut keys: Vec<(u64, u32)> = rows
                    .par_iter()
                    .map(|r| {
                        let x = v[*r as usize];
                        let k = if x.is_finite() {
                            let o = ordered_bits(if descending { -x } else { x });
                            o.min(u64::MAX - 1)
                        } else {
                            u64::MAX
                        };
                        (k, *r)
                    })
                    .collect();
                keys.par_sort_unstable();
                for (slot, (_, r)) in rows.iter_mut().zip(keys) {
                    *slot = r;
                }
            }
        }
    }

    /// The position in `rows` of the next row (after `from`, wrapping; backwards when
    /// `!forward`) with a cell containing `needle` (ignoring case).
    pub fn search(&self, rows: &[u32], needle: &str, from: usize, forward: bool) -> Option<usize> {
        let needle = needle.to_lowercase();
        if needle.is_empty() || rows.is_empty() {
            return None;
        }
        // Per column: which dictionary entries match (text) — computed once per search.
        let text_hits: Vec<Option<Vec<bool>>> = self
            .cols
            .iter()
            .map(|c| match &c.data {
                Data::Text(t) => Some(
                    t.dict
                        .iter()
                        .map(|s| s.to_lowercase().contains(&needle))
                        .collect(),
                ),
                Data::Num(_) => None,
            })
            .collect();
        let hit = |row: usize| -> bool {
            self.cols
                .iter()
                .zip(&text_hits)
                .any(|(c, h)| match (&c.data, h) {
                    (Data::Text(t), Some(h)) => h[t.codes[row] as usize],
                    (Data::Num(_), _) => c.cell(row).to_lowercase().contains(&needle),
                    _ => false,
                })
        };
        let n = rows.len();
        (1..=n)
            .map(|k| {
                if forward {
                    (from + k) % n
                } else {
                    (from + n - (k % n)) % n
                }
            })
            .find(|p| hit(rows[*p] as usize))
    }
}

/// An order-preserving map of finite floats to unsigned integers.
fn ordered_bits(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

/// A compiled table filter.
#[derive(Debug, Clone)]
pub struct Filter {
    pub expr: Expr,
    literals: Vec<String>,
}

impl Filter {
    pub fn text(&self) -> &str {
        self.expr.text()
    }
}

struct RowRef<'a> {
    store: &'a ColumnStore,
    row: usize,
    literals: &'a [String],
}

impl Row for RowRef<'_> {
    fn get(&self, field: usize) -> Value<'_> {
        match self.store.cols.get(field) {
            Some(c) => match &c.data {
                Data::Num(v) => match v.get(self.row) {
                    Some(x) if x.is_finite() => Value::Num(*x),
                    _ => Value::Missing,
                },
                Data::Text(t) => {
                    let s = t.get(self.row);
                    if s.is_empty() {
                        Value::Missing
                    } else {
                        Value::Str(Cow::Borrowed(s))
                    }
                }
            },
            None => match self.literals.get(field - self.store.cols.len()) {
                Some(l) => Value::Str(Cow::Borrowed(l.as_str())),
                None => Value::Missing,
            },
        }
    }
}
