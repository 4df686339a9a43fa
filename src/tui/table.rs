//! The column store behind the anomaly table: the columns shown, extracted once from the
//! analysis into plain vectors (numbers as `f64`, text dictionary-encoded), and the operations
//! the table needs at a million rows — a visible-row permutation (`Vec<u32>`), parallel sort on
//! one column, filter through [`crate::expr`], and search — none of which touches polars.

use crate::expr::{Expr, Row, Value};
use crate::text::thousands;
use polars::prelude::{DataFrame, DataType};
use rayon::prelude::*;
use std::borrow::Cow;
use std::collections::HashMap;

/// How a column is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Money or quantities: right-aligned, thousands separators, 2 decimals.
    Amount,
    /// A score or share: right-aligned, `decimals` places.
    Number {
        decimals: u8,
    },
    /// A whole number (rank, cluster): right-aligned.
    Integer,
    Text,
}

/// Text dictionary-encoded: each row holds a code into `dict`; `rank[code]` orders the codes
/// (case-insensitively), so sorting compares integers.
#[derive(Debug, Clone, Default)]
pub struct TextCol {
    pub codes: Vec<u32>,
    pub dict: Vec<String>,
    rank: Vec<u32>,
    lookup: HashMap<String, u32>,
}

impl TextCol {
    pub fn from_values<'a>(values: impl Iterator<Item = Option<&'a str>>) -> TextCol {
        let mut t = TextCol::default();
        for v in values {
            let code = t.code(v.unwrap_or(""));
            t.codes.push(code);
        }
        t.rerank();
        t
    }

    /// The code of `v`, added to the dictionary when new (call [`TextCol::rerank`] after).
    fn code(&mut self, v: &str) -> u32 {
        if let Some(c) = self.lookup.get(v) {
            return *c;
        }
        let c = self.dict.len() as u32;
        self.dict.push(v.to_string());
        self.lookup.insert(v.to_string(), c);
        c
    }

    fn rerank(&mut self) {
        let mut order: Vec<u32> = (0..self.dict.len() as u32).collect();
        // Empty values sort last; others case-insensitively, then exactly.
        order.sort_by(|a, b| {
            let (x, y) = (&self.dict[*a as usize], &self.dict[*b as usize]);
            (x.is_empty(), x.to_lowercase(), x).cmp(&(y.is_empty(), y.to_lowercase(), y))
        });
        self.rank = vec![0; self.dict.len()];
        for (r, c) in order.iter().enumerate() {
            self.rank[*c as usize] = r as u32;
        }
    }

    pub fn get(&self, row: usize) -> &str {
        self.codes
            .get(row)
            .and_then(|c| self.dict.get(*c as usize))
            .map_or("", String::as_str)
    }

    /// Sets one row's value.
    pub fn set(&mut self, row: usize, v: &str) {
        let known = self.lookup.contains_key(v);
        let c = self.code(v);
        if let Some(slot) = self.codes.get_mut(row) {
            *slot = c;
        }
        if !known {
            self.rerank();
        }
    }

    /// Codes present in the column, in sort order.
    pub fn sorted_codes(&self) -> Vec<u32> {
        let mut c: Vec<u32> = (0..self.dict.len() as u32).collect();
        c.sort_by_key(|c| self.rank[*c as usize]);
        c
    }
}

#[derive(Debug, Clone)]
pub enum Data {
    Num(Vec<f64>),
    Text(TextCol),
}

/// One column of the table.
#[derive(Debug, Clone)]
pub struct Column {
    /// The header shown.
    pub title: String,
    /// The name in filter expressions (lower case, `_` for spaces).
    pub field: String,
    pub kind: Kind,
    pub data: Data,
    /// Display width in cells (from the title and a sample of values).
    pub width: u16,
}

impl Column {
    pub fn num(title: &str, field: &str, kind: Kind, v: Vec<f64>) -> Column {
        let mut c = Column {
            title: title.to_string(),
            field: field.to_string(),
            kind,
            data: Data::Num(v),
            width: 0,
        };
        c.width = c.measure();
        c
    }

    pub fn text(title: &str, field: &str, t: TextCol) -> Column {
        let mut c = Column {
            title: title.to_string(),
            field: field.to_string(),
            kind: Kind::Text,
            data: Data::Text(t),
            width: 0,
        };
        c.width = c.measure();
        c
    }

    fn measure(&self) -> u16 {
        let title = self.title.chars().count();
        let values = match &self.data {
            Data::Text(t) => t
                .dict
                .iter()
                .take(5_000)
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0),
            Data::Num(v) => {
                // Widest of a sample, the extremes included.
                let step = (v.len() / 2_000).max(1);
                let lo = v
                    .iter()
                    .copied()
                    .filter(|x| x.is_finite())
                    .fold(0.0, f64::min);
                let hi = v
                    .iter()
                    .copied()
                    .filter(|x| x.is_finite())
                    .fold(0.0, f64::max);
                v.iter()
                    .step_by(step)
                    .copied()
                    .chain([lo, hi])
                    .map(|x| format_num(self.kind, x).chars().count())
                    .max()
                    .unwrap_or(0)
            }
        };
        let cap = if self.kind == Kind::Text { 40 } else { 20 };
        title.max(values.min(cap)).clamp(3, cap.max(title)) as u16
    }

    /// The cell text of one row.
    pub fn cell(&self, row: usize) -> Cow<'_, str> {
        match &self.data {
            Data::Num(v) => Cow::Owned(
                v.get(row)
                    .map_or(String::new(), |x| format_num(self.kind, *x)),
            ),
            Data::Text(t) => Cow::Borrowed(t.get(row)),
        }
    }

    pub fn num_at(&self, row: usize) -> Option<f64> {
        match &self.data {
            Data::Num(v) => v.get(row).copied().filter(|x| x.is_finite()),
            Data::Text(_) => None,
        }
    }

    pub fn text_at(&self, row: usize) -> &str {
        match &self.data {
            Data::Text(t) => t.get(row),
            Data::Num(_) => "",
        }
    }

    pub fn right_aligned(&self) -> bool {
        self.kind != Kind::Text
    }
}

/// A number as the table shows it.
pub fn format_num(kind: Kind, v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    match kind {
        Kind::Amount => thousands(v, 2),
        Kind::Number { decimals } => format!("{v:.*}", decimals as usize),
        Kind::Integer => format!("{}", v.round() as i64),
        Kind::Text => v.to_string(),
    }
}

/// The columns the UI relies on, by position in [`ColumnStore::cols`].
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub rank: Option<usize>,
    pub key: Option<usize>,
    pub date: Option<usize>,
    pub difference: Option<usize>,
    pub lhs: Option<usize>,
    pub rhs: Option<usize>,
    pub status: Option<usize>,
    pub severity: Option<usize>,
    pub bucket: Option<usize>,
    pub confidence: Option<usize>,
    pub rule: Option<usize>,
    pub score: Option<usize>,
    pub cluster: Option<usize>,
    pub ticket: Option<usize>,
    pub case_id: Option<usize>,
    pub top_features: Option<usize>,
    pub summary: Option<usize>,
    pub categorized_by: Option<usize>,
    pub note: Option<usize>,
    pub decision: Option<usize>,
    /// How unusual the break is for its account (`bd_own_z`).
    pub own_z: Option<usize>,
    /// Why a break is routine for its account (`bd_routine`).
    pub routine: Option<usize>,
}

/// Case statuses as the table shows them (short, lower case: `status = pending` in a filter).
pub fn short_status(s: &str) -> &'static str {
    match s {
        "PendingReview" => "pending",
        "Accepted" => "accepted",
        "Rejected" => "rejected",
        "AutoResolveProposed" => "proposed",
        "Approved" => "approved",
        "Returned" => "returned",
        _ => "",
    }
}

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

use crate::pipeline::RESULT_COLUMNS;

/// A column's name in filter expressions: lower case, `_` for every other character.
pub(crate) fn field_name(header: &str) -> String {
    header
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect()
}

impl ColumnStore {
    /// Extracts the shown columns of an analysis table (`pipeline::analyze` with every row):
    /// the frozen rank, key and date; the first criteria's difference and sides (titled with the
    /// file's headers); status, severity, bucket and the other result columns present; then the
    /// file's own columns.
    pub fn from_frame(
        df: &DataFrame,
        criteria: Option<&crate::profile::ResolvedCriteria>,
    ) -> Result<ColumnStore, String> {
        let n = df.height();
        let has = |name: &str| df.column(name).is_ok();
        let num = |name: &str| -> Result<Vec<f64>, String> {
            let c = df
                .column(name)
                .and_then(|c| c.cast(&DataType::Float64))
                .map_err(|e| format!("column {name}: {e}"))?;
            let ca = c.f64().map_err(|e| format!("column {name}: {e}"))?;
            Ok(ca.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        };
        let text = |name: &str| -> Result<TextCol, String> {
            let c = df
                .column(name)
                .and_then(|c| c.cast(&DataType::String))
                .map_err(|e| format!("column {name}: {e}"))?;
            let ca = c.str().map_err(|e| format!("column {name}: {e}"))?;
            Ok(TextCol::from_values(ca.iter()))
        };
        let mut s = ColumnStore {
            rows: n,
            ..Default::default()
        };
        let mut used: Vec<String> = Vec::new();
        let push = |s: &mut ColumnStore, used: &mut Vec<String>, src: &str, col: Column| {
            used.push(src.to_string());
            s.cols.push(col);
            s.cols.len() - 1
        };
        if has("rank") {
            let i = push(
                &mut s,
                &mut used,
                "rank",
                Column::num("rank", "rank", Kind::Integer, num("rank")?),
            );
            s.known.rank = Some(i);
        }
        if has("bd_key") {
            let i = push(
                &mut s,
                &mut used,
                "bd_key",
                Column::text("key", "key", text("bd_key")?),
            );
            s.known.key = Some(i);
        }
        if has("bd_date") {
            let i = push(
                &mut s,
                &mut used,
                "bd_date",
                Column::text("date", "date", text("bd_date")?),
            );
            s.known.date = Some(i);
        }
        s.frozen = s.cols.len();
        if has("bd_difference") {
            let title = criteria
                .and_then(|c| c.difference.clone())
                .unwrap_or_else(|| "difference".into());
            let i = push(
                &mut s,
                &mut used,
                "bd_difference",
                Column::num(&title, "difference", Kind::Amount, num("bd_difference")?),
            );
            s.known.difference = Some(i);
            if let Some(h) = criteria.and_then(|c| c.difference.clone()) {
                used.push(h);
            }
        }
        if let Some(c) = criteria {
            for (side, header) in [("lhs", &c.lhs), ("rhs", &c.rhs)] {
                let name = format!("bd_{}_{side}", c.name);
                if has(&name) {
                    let title = header.clone().unwrap_or_else(|| side.to_string());
                    let i = push(
                        &mut s,
                        &mut used,
                        &name,
                        Column::num(&title, side, Kind::Amount, num(&name)?),
                    );
                    if let Some(h) = header {
                        used.push(h.clone());
                    }
                    if side == "lhs" {
                        s.known.lhs = Some(i);
                    } else {
                        s.known.rhs = Some(i);
                    }
                }
            }
        }
        if has("case_status") {
            // Recoded through the short names.
            let full = text("case_status")?;
            let t = TextCol::from_values(
                full.codes
                    .iter()
                    .map(|c| Some(short_status(&full.dict[*c as usize]))),
            );
            let i = push(
                &mut s,
                &mut used,
                "case_status",
                Column::text("status", "status", t),
            );
            s.known.status = Some(i);
        }
        if has("severity") {
            let i = push(
                &mut s,
                &mut used,
                "severity",
                Column::text("severity", "severity", text("severity")?),
            );
            s.known.severity = Some(i);
        }
        if has("bucket") {
            let i = push(
                &mut s,
                &mut used,
                "bucket",
                Column::text("bucket", "bucket", text("bucket")?),
            );
            s.known.bucket = Some(i);
        }
        if has("bucket_confidence") {
            let i = push(
                &mut s,
                &mut used,
                "bucket_confidence",
                Column::num(
                    "conf",
                    "confidence",
                    Kind::Number { decimals: 2 },
                    num("bucket_confidence")?,
                ),
            );
            s.known.confidence = Some(i);
        }
        if has("score") {
            let i = push(
                &mut s,
                &mut used,
                "score",
                Column::num(
                    "score",
                    "score",
                    Kind::Number { decimals: 4 },
                    num("score")?,
                ),
            );
            s.known.score = Some(i);
        }
        if has("cluster") {
            let i = push(
                &mut s,
                &mut used,
                "cluster",
                Column::num("cluster", "cluster", Kind::Integer, num("cluster")?),
            );
            s.known.cluster = Some(i);
        }
        if has("ticket") {
            let i = push(
                &mut s,
                &mut used,
                "ticket",
                Column::text("ticket", "ticket", text("ticket")?),
            );
            s.known.ticket = Some(i);
        }
        if has("top_features") {
            let i = push(
                &mut s,
                &mut used,
                "top_features",
                Column::text("top features", "top_features", text("top_features")?),
            );
            s.known.top_features = Some(i);
        }
        if has("bucket_rule") {
            let i = push(
                &mut s,
                &mut used,
                "bucket_rule",
                Column::text("rule", "rule", text("bucket_rule")?),
            );
            s.known.rule = Some(i);
        }
        if has("summary") {
            let i = push(
                &mut s,
                &mut used,
                "summary",
                Column::text("summary", "summary", text("summary")?),
            );
            s.known.summary = Some(i);
        }
        if has("categorized_by") {
            let i = push(
                &mut s,
                &mut used,
                "categorized_by",
                Column::text("by", "categorized_by", text("categorized_by")?),
            );
            s.known.categorized_by = Some(i);
        }
        if has("bucket_note") {
            let i = push(
                &mut s,
                &mut used,
                "bucket_note",
                Column::text("note", "note", text("bucket_note")?),
            );
            s.known.note = Some(i);
        }
        if has("decision") {
            let i = push(
                &mut s,
                &mut used,
                "decision",
                Column::num(
                    "decision",
                    "decision",
                    Kind::Number { decimals: 4 },
                    num("decision")?,
                ),
            );
            s.known.decision = Some(i);
        }
        if has("bd_own_z") {
            let i = push(
                &mut s,
                &mut used,
                "bd_own_z",
                Column::num(
                    "own z",
                    "own_z",
                    Kind::Number { decimals: 1 },
                    num("bd_own_z")?,
                ),
            );
            s.known.own_z = Some(i);
        }
        if has("bd_routine") {
            let i = push(
                &mut s,
                &mut used,
                "bd_routine",
                Column::text("routine", "routine", text("bd_routine")?),
            );
            s.known.routine = Some(i);
        }
        if has("case_id") {
            let i = push(
                &mut s,
                &mut used,
                "case_id",
                Column::text("case", "case_id", text("case_id")?),
            );
            s.known.case_id = Some(i);
        }
        // The file's own columns, as they are.
        for name in df.get_column_names() {
            let name = name.as_str();
            if name.starts_with("bd_")
                || name.starts_with("f_")
                || RESULT_COLUMNS.contains(&name)
                || used.iter().any(|u| u == name)
            {
                continue;
            }
            let field = field_name(name);
            if s.cols.iter().any(|c| c.field == field) {
                continue;
            }
            let dtype = df
                .column(name)
                .map(|c| c.dtype().clone())
                .map_err(|e| e.to_string())?;
            let col = if dtype.is_primitive_numeric() {
                Column::num(name, &field, Kind::Amount, num(name)?)
            } else {
                Column::text(name, &field, text(name)?)
            };
            s.cols.push(col);
        }
        s.flagged = match df.column("is_anomaly").and_then(|c| c.bool().cloned()) {
            Ok(ca) => ca.iter().map(|v| v.unwrap_or(false)).collect(),
            Err(_) => vec![true; n],
        };
        Ok(s)
    }

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

// ----- rows written one at a time (live mode) -------------------------------------------------

impl TextCol {
    /// Appends one row's value.
    pub fn push(&mut self, v: &str) {
        let known = self.lookup.contains_key(v);
        let c = self.code(v);
        self.codes.push(c);
        if !known {
            self.rerank();
        }
    }
}

impl Column {
    /// Writes a number at `row` (appended when `row` is the column's length) and widens the
    /// column to show it. A text column takes the number as text.
    pub fn put_num(&mut self, row: usize, v: f64) {
        match &mut self.data {
            Data::Num(values) => {
                if row == values.len() {
                    values.push(v);
                } else if let Some(slot) = values.get_mut(row) {
                    *slot = v;
                }
            }
            Data::Text(_) => {
                let text = if v.is_finite() {
                    v.to_string()
                } else {
                    String::new()
                };
                return self.put_text(row, &text);
            }
        }
        let shown = format_num(self.kind, v).chars().count();
        self.widen(shown);
    }

    /// Writes text at `row` (appended when `row` is the column's length) and widens the column
    /// to show it. A numeric column takes the text's number (missing when it is none).
    pub fn put_text(&mut self, row: usize, v: &str) {
        match &mut self.data {
            Data::Text(t) => {
                if row == t.codes.len() {
                    t.push(v);
                } else {
                    t.set(row, v);
                }
            }
            Data::Num(_) => {
                let n = v.trim().replace(',', "").parse::<f64>().unwrap_or(f64::NAN);
                return self.put_num(row, n);
            }
        }
        self.widen(v.chars().count());
    }

    /// Renames the column (keeping it wide enough for the new title).
    pub fn retitle(&mut self, title: &str) {
        self.title = title.to_string();
        self.widen(title.chars().count());
    }

    fn widen(&mut self, shown: usize) {
        let cap = if self.kind == Kind::Text { 40 } else { 20 };
        let title = self.title.chars().count();
        let w = shown.min(cap).max(title).max(3) as u16;
        self.width = self.width.max(w);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> ColumnStore {
        let mut s = ColumnStore {
            rows: 5,
            ..Default::default()
        };
        s.cols.push(Column::num(
            "difference",
            "difference",
            Kind::Amount,
            vec![10.0, -2500.5, f64::NAN, 1e6, 3.0],
        ));
        s.cols.push(Column::text(
            "status",
            "status",
            TextCol::from_values(
                ["pending", "accepted", "pending", "", "Rejected"]
                    .into_iter()
                    .map(Some),
            ),
        ));
        s.known.difference = Some(0);
        s.known.status = Some(1);
        s.flagged = vec![true; 5];
        s
    }

    #[test]
    fn sort_numbers_missing_last_both_ways() {
        let s = store();
        let mut rows: Vec<u32> = (0..5).collect();
        s.sort(&mut rows, 0, false);
        assert_eq!(rows, vec![1, 4, 0, 3, 2]);
        s.sort(&mut rows, 0, true);
        assert_eq!(rows, vec![3, 0, 4, 1, 2]);
    }

    #[test]
    fn sort_text_case_insensitive_empty_last() {
        let s = store();
        let mut rows: Vec<u32> = (0..5).collect();
        s.sort(&mut rows, 1, false);
        assert_eq!(rows, vec![1, 0, 2, 4, 3]);
        s.sort(&mut rows, 1, true);
        assert_eq!(rows, vec![4, 0, 2, 1, 3]);
    }

    #[test]
    fn filter_with_bare_status_word() {
        let s = store();
        let rows: Vec<u32> = (0..5).collect();
        let f = s.compile("difference > 5 and status = pending").unwrap();
        assert_eq!(s.filter(&rows, &f), vec![0]);
        let f = s.compile("abs(difference) > 1000").unwrap();
        assert_eq!(s.filter(&rows, &f), vec![1, 3]);
        let e = s.compile("amount > 3").unwrap_err();
        assert!(
            e.contains("amount") && e.contains("fields: difference, status"),
            "{e}"
        );
    }

    #[test]
    fn set_text_adds_values() {
        let mut s = store();
        s.set_text(1, 3, "approved");
        assert_eq!(s.text(Some(1), 3), "approved");
        let rows: Vec<u32> = (0..5).collect();
        let f = s.compile("status = approved").unwrap();
        assert_eq!(s.filter(&rows, &f), vec![3]);
    }

    #[test]
    fn rows_written_one_at_a_time_widen_their_columns() {
        let mut n = Column::num("diff", "diff", Kind::Amount, Vec::new());
        let mut t = Column::text("status", "status", TextCol::default());
        n.put_num(0, 12.5);
        t.put_text(0, "pending");
        n.put_num(1, 1_234_567.0);
        t.put_text(1, "accepted");
        assert_eq!(n.cell(1), "1,234,567.00");
        assert_eq!(n.width, 12);
        assert_eq!(t.width, 8);
        // Written again in place; a text column takes a number, a numeric one a text's number.
        t.put_text(0, "approved");
        n.put_text(0, "-3.25");
        assert_eq!((t.cell(0), n.cell(0)), ("approved".into(), "-3.25".into()));
        let Data::Text(tc) = &t.data else {
            panic!("text")
        };
        assert_eq!(tc.codes.len(), 2);
        t.put_num(2, 7.0);
        assert_eq!(t.cell(2), "7");
        n.retitle("Balance Difference");
        assert_eq!(n.width, 18);
    }

    #[test]
    fn search_wraps_both_ways() {
        let s = store();
        let rows: Vec<u32> = (0..5).collect();
        assert_eq!(s.search(&rows, "PEND", 0, true), Some(2));
        assert_eq!(s.search(&rows, "pend", 2, true), Some(0));
        assert_eq!(s.search(&rows, "pend", 0, false), Some(2));
        assert_eq!(s.search(&rows, "2,500", 0, true), Some(1));
        assert_eq!(s.search(&rows, "nothing", 0, true), None);
    }
}
