use crate::text::thousands;
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
    pub(super) rank: Vec<u32>,
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
