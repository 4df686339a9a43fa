use super::{Column, ColumnStore, Kind, TextCol};
use crate::pipeline::RESULT_COLUMNS;
use polars::prelude::{DataFrame, DataType};

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

/// A column's name in filter expressions: lower case, `_` for every other character.
pub(crate) fn filter_name(header: &str) -> String {
    header
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect()
}

/// How a known column is read from the analysis and shown.
#[derive(Clone, Copy)]
enum Read {
    Num(Kind),
    Text,
}

/// A known column: its name in the analysis, its title and field in the table, how it is
/// read, and where [`Known`] keeps its position.
struct KnownCol {
    src: &'static str,
    title: &'static str,
    field: &'static str,
    read: Read,
    slot: fn(&mut Known) -> &mut Option<usize>,
}

const fn known(
    src: &'static str,
    title: &'static str,
    field: &'static str,
    read: Read,
    slot: fn(&mut Known) -> &mut Option<usize>,
) -> KnownCol {
    KnownCol {
        src,
        title,
        field,
        read,
        slot,
    }
}

/// The frozen columns: rank, key and date.
const FROZEN: [KnownCol; 3] = [
    known("rank", "rank", "rank", Read::Num(Kind::Integer), |k| {
        &mut k.rank
    }),
    known("bd_key", "key", "key", Read::Text, |k| &mut k.key),
    known("bd_date", "date", "date", Read::Text, |k| &mut k.date),
];

/// The result columns after the status, in the order shown.
const RESULTS: [KnownCol; 15] = [
    known("severity", "severity", "severity", Read::Text, |k| {
        &mut k.severity
    }),
    known("bucket", "bucket", "bucket", Read::Text, |k| &mut k.bucket),
    known(
        "bucket_confidence",
        "conf",
        "confidence",
        Read::Num(Kind::Number { decimals: 2 }),
        |k| &mut k.confidence,
    ),
    known(
        "score",
        "score",
        "score",
        Read::Num(Kind::Number { decimals: 4 }),
        |k| &mut k.score,
    ),
    known(
        "cluster",
        "cluster",
        "cluster",
        Read::Num(Kind::Integer),
        |k| &mut k.cluster,
    ),
    known("ticket", "ticket", "ticket", Read::Text, |k| &mut k.ticket),
    known(
        "top_features",
        "top features",
        "top_features",
        Read::Text,
        |k| &mut k.top_features,
    ),
    known("bucket_rule", "rule", "rule", Read::Text, |k| &mut k.rule),
    known("summary", "summary", "summary", Read::Text, |k| {
        &mut k.summary
    }),
    known("categorized_by", "by", "categorized_by", Read::Text, |k| {
        &mut k.categorized_by
    }),
    known("bucket_note", "note", "note", Read::Text, |k| &mut k.note),
    known(
        "decision",
        "decision",
        "decision",
        Read::Num(Kind::Number { decimals: 4 }),
        |k| &mut k.decision,
    ),
    known(
        "bd_own_z",
        "own z",
        "own_z",
        Read::Num(Kind::Number { decimals: 1 }),
        |k| &mut k.own_z,
    ),
    known("bd_routine", "routine", "routine", Read::Text, |k| {
        &mut k.routine
    }),
    known("case_id", "case", "case_id", Read::Text, |k| &mut k.case_id),
];

/// A [`ColumnStore`] being extracted from an analysis table, with the analysis columns used
/// so far (the file's own columns skip them).
struct Builder<'a> {
    df: &'a DataFrame,
    s: ColumnStore,
    used: Vec<String>,
}

impl<'a> Builder<'a> {
    fn new(df: &'a DataFrame) -> Builder<'a> {
        Builder {
            df,
            s: ColumnStore {
                rows: df.height(),
                ..Default::default()
            },
            used: Vec::new(),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.df.column(name).is_ok()
    }

    fn num(&self, name: &str) -> Result<Vec<f64>, String> {
        let c = self
            .df
            .column(name)
            .and_then(|c| c.cast(&DataType::Float64))
            .map_err(|e| format!("column {name}: {e}"))?;
        let ca = c.f64().map_err(|e| format!("column {name}: {e}"))?;
        Ok(ca.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    }

    fn text(&self, name: &str) -> Result<TextCol, String> {
        let c = self
            .df
            .column(name)
            .and_then(|c| c.cast(&DataType::String))
            .map_err(|e| format!("column {name}: {e}"))?;
        let ca = c.str().map_err(|e| format!("column {name}: {e}"))?;
        Ok(TextCol::from_values(ca.iter()))
    }

    /// Adds a column read from `src`; its position.
    fn push(&mut self, src: &str, col: Column) -> usize {
        self.used.push(src.to_string());
        self.s.cols.push(col);
        self.s.cols.len() - 1
    }

    /// The known columns of `specs` present, in order.
    fn push_known(&mut self, specs: &[KnownCol]) -> Result<(), String> {
        for spec in specs {
            if !self.has(spec.src) {
                continue;
            }
            let col = match spec.read {
                Read::Num(kind) => Column::num(spec.title, spec.field, kind, self.num(spec.src)?),
                Read::Text => Column::text(spec.title, spec.field, self.text(spec.src)?),
            };
            let i = self.push(spec.src, col);
            *(spec.slot)(&mut self.s.known) = Some(i);
        }
        Ok(())
    }

    /// The first criteria's difference and sides, titled with the file's headers (which the
    /// file's own columns then skip).
    fn push_criteria(
        &mut self,
        criteria: Option<&crate::profile::ResolvedCriteria>,
    ) -> Result<(), String> {
        if self.has("bd_difference") {
            let title = criteria
                .and_then(|c| c.difference.clone())
                .unwrap_or_else(|| "difference".into());
            let col = Column::num(
                &title,
                "difference",
                Kind::Amount,
                self.num("bd_difference")?,
            );
            let i = self.push("bd_difference", col);
            self.s.known.difference = Some(i);
            if let Some(h) = criteria.and_then(|c| c.difference.clone()) {
                self.used.push(h);
            }
        }
        let Some(c) = criteria else {
            return Ok(());
        };
        for (side, header) in [("lhs", &c.lhs), ("rhs", &c.rhs)] {
            let name = format!("bd_{}_{side}", c.name);
            if !self.has(&name) {
                continue;
            }
            let title = header.clone().unwrap_or_else(|| side.to_string());
            let col = Column::num(&title, side, Kind::Amount, self.num(&name)?);
            let i = self.push(&name, col);
            if let Some(h) = header {
                self.used.push(h.clone());
            }
            if side == "lhs" {
                self.s.known.lhs = Some(i);
            } else {
                self.s.known.rhs = Some(i);
            }
        }
        Ok(())
    }

    /// The case status, recoded through the short names.
    fn push_status(&mut self) -> Result<(), String> {
        if !self.has("case_status") {
            return Ok(());
        }
        let full = self.text("case_status")?;
        let t = TextCol::from_values(
            full.codes
                .iter()
                .map(|c| Some(short_status(&full.dict[*c as usize]))),
        );
        let i = self.push("case_status", Column::text("status", "status", t));
        self.s.known.status = Some(i);
        Ok(())
    }

    /// The file's own columns, as they are.
    fn push_own(&mut self) -> Result<(), String> {
        for name in self.df.get_column_names() {
            let name = name.as_str();
            if name.starts_with("bd_")
                || name.starts_with("f_")
                || RESULT_COLUMNS.contains(&name)
                || self.used.iter().any(|u| u == name)
            {
                continue;
            }
            let field = filter_name(name);
            if self.s.cols.iter().any(|c| c.field == field) {
                continue;
            }
            let dtype = self
                .df
                .column(name)
                .map(|c| c.dtype().clone())
                .map_err(|e| e.to_string())?;
            let col = if dtype.is_primitive_numeric() {
                Column::num(name, &field, Kind::Amount, self.num(name)?)
            } else {
                Column::text(name, &field, self.text(name)?)
            };
            self.s.cols.push(col);
        }
        Ok(())
    }

    /// Whether each row was flagged by the detector (all, without `is_anomaly`).
    fn flagged(&self) -> Vec<bool> {
        match self.df.column("is_anomaly").and_then(|c| c.bool().cloned()) {
            Ok(ca) => ca.iter().map(|v| v.unwrap_or(false)).collect(),
            Err(_) => vec![true; self.s.rows],
        }
    }
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
        let mut b = Builder::new(df);
        b.push_known(&FROZEN)?;
        b.s.frozen = b.s.cols.len();
        b.push_criteria(criteria)?;
        b.push_status()?;
        b.push_known(&RESULTS)?;
        b.push_own()?;
        b.s.flagged = b.flagged();
        Ok(b.s)
    }
}
