//! What a finished (or partly finished) analysis gives the UI, built on the worker thread: the
//! column store, the cluster rows with their dominant bucket, each account's rows for the
//! balance chart, and the run's facts for the status bar.

use super::column_store::{ColumnStore, Data};
use super::queue::{QueueCase, TrendPoint};
use super::worker::LoadError;
use crate::cycle::RunSummary;
use crate::pipeline::{AnalyzeError, Detection, PipelineError, RunOptions, RunOutput};
use polars::prelude::DataFrame;
use std::collections::HashMap;

/// The run's facts.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    pub profile: String,
    pub rows: usize,
    pub history_rows: usize,
    pub rejected: usize,
    pub dq_rows: usize,
    pub notes: Vec<String>,
    pub model: String,
    pub model_status: String,
    pub flagged: usize,
    pub features: usize,
}

/// One cluster as the clusters view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterRow {
    pub cluster: usize,
    pub size: usize,
    pub anomalies: usize,
    pub anomaly_share: f64,
    pub total_abs_difference: f64,
    pub mean_difference: f64,
    /// The most frequent bucket of its flagged rows, with its share of them (once categorized).
    pub dominant_bucket: Option<(String, f64)>,
    pub top_accounts: Vec<(String, usize)>,
}

/// A loaded file.
#[derive(Debug)]
pub struct Loaded {
    pub source: String,
    pub history: Option<String>,
    pub table: ColumnStore,
    /// Categories and cases are in (false: scored only).
    pub complete: bool,
    pub clusters: Vec<ClusterRow>,
    pub info: RunInfo,
    /// The analysis table (every column), for export.
    pub frame: Option<DataFrame>,
    /// Rows of each account (by key code), in date order: the balance chart.
    pub by_key: Vec<Vec<u32>>,
    /// The history file's records of each account (by key code), in date order: the chart's
    /// earlier part.
    pub history_points: Vec<Vec<HistoryPoint>>,
    /// Table rows of each case id (the records of one break share its case).
    pub case_rows: HashMap<String, Vec<u32>>,
    /// The file's own columns start here in the table (a flagged record's snapshot).
    pub file_columns_from: usize,
    /// The outstanding cases of the profile, in store order (the queue view's lines; read when
    /// the analysis ends).
    pub queue: Vec<QueueCase>,
    /// Why the cases could not be read for the queue, if they could not.
    pub queue_error: Option<String>,
    /// The cycle's summary (once the analysis has ended).
    pub summary: Option<RunSummary>,
    /// Outstanding cases after each of the profile's latest cycles, oldest first.
    pub trend: Vec<TrendPoint>,
}

/// One history record of an account for the chart: its date and both balances (or the
/// difference, in `lhs`, when the profile compares no pair).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPoint {
    pub date: String,
    pub lhs: f64,
    pub rhs: Option<f64>,
}

impl Loaded {
    /// The history records of the account of `row`, in date order.
    pub fn account_history(&self, row: usize) -> &[HistoryPoint] {
        let Some(Data::Text(t)) = self.table.col(self.table.known.key).map(|c| &c.data) else {
            return &[];
        };
        t.codes
            .get(row)
            .and_then(|c| self.history_points.get(*c as usize))
            .map_or(&[], Vec::as_slice)
    }

    /// The differences of the records of case `id` in this file, in date order (the queue's
    /// trend).
    pub fn case_differences(&self, id: &str) -> Vec<f64> {
        let t = &self.table;
        let Some(rows) = self.case_rows.get(id) else {
            return Vec::new();
        };
        let mut points: Vec<(&str, f64)> = rows
            .iter()
            .filter_map(|r| {
                let r = *r as usize;
                t.num(t.known.difference, r)
                    .map(|v| (t.text(t.known.date, r), v))
            })
            .collect();
        // ISO dates sort as text.
        points.sort_by(|a, b| a.0.cmp(b.0));
        points.into_iter().map(|p| p.1).collect()
    }

    /// The rows of the account of `row`, in date order.
    pub fn account_rows(&self, row: usize) -> &[u32] {
        let Some(Data::Text(t)) = self.table.col(self.table.known.key).map(|c| &c.data) else {
            return &[];
        };
        t.codes
            .get(row)
            .and_then(|c| self.by_key.get(*c as usize))
            .map_or(&[], Vec::as_slice)
    }
}

/// Builds what the UI shows from an analysis table (every row, file order).
pub fn build(
    opts: &RunOptions,
    run: &RunOutput,
    det: &Detection,
    frame: &DataFrame,
    complete: bool,
) -> Result<Loaded, String> {
    let table = ColumnStore::from_frame(frame, run.resolved.criteria.first())?;
    let flagged = det.scored.flag.iter().filter(|f| **f).count();
    let info = RunInfo {
        profile: run.profile.clone(),
        rows: run.rows_read,
        history_rows: run.history_rows_read,
        rejected: run.rejected_rows,
        dq_rows: run.dq_rows,
        notes: run.notes.clone(),
        model: det.bundle.version(),
        model_status: det.status.describe(),
        flagged,
        features: run.features.names.len(),
    };
    let by_key = account_rows(&table);
    let history_points = history_points(run, &table);
    let mut case_rows: HashMap<String, Vec<u32>> = HashMap::new();
    if let Some(ci) = table.known.case_id {
        for r in 0..table.rows {
            let id = table.cols[ci].text_at(r);
            if !id.is_empty() {
                case_rows.entry(id.to_string()).or_default().push(r as u32);
            }
        }
    }
    let clusters = cluster_rows(det, &table);
    let file_columns_from = first_file_column(&table);
    Ok(Loaded {
        source: opts.input.display().to_string(),
        history: opts.history.as_ref().map(|h| h.display().to_string()),
        table,
        complete,
        clusters,
        info,
        frame: complete.then(|| frame.clone()),
        by_key,
        history_points,
        case_rows,
        file_columns_from,
        queue: Vec::new(),
        queue_error: None,
        summary: None,
        trend: Vec::new(),
    })
}

/// Where the file's own columns start: after the known result columns.
fn first_file_column(t: &ColumnStore) -> usize {
    let k = &t.known;
    [
        k.rank,
        k.key,
        k.date,
        k.difference,
        k.lhs,
        k.rhs,
        k.status,
        k.severity,
        k.bucket,
        k.confidence,
        k.rule,
        k.score,
        k.cluster,
        k.ticket,
        k.case_id,
        k.top_features,
        k.summary,
        k.categorized_by,
        k.note,
        k.decision,
    ]
    .iter()
    .flatten()
    .max()
    .map_or(0, |m| m + 1)
}

fn account_rows(t: &ColumnStore) -> Vec<Vec<u32>> {
    let Some(Data::Text(keys)) = t.col(t.known.key).map(|c| &c.data) else {
        return Vec::new();
    };
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); keys.dict.len()];
    for (r, c) in keys.codes.iter().enumerate() {
        out[*c as usize].push(r as u32);
    }
    if let Some(Data::Text(dates)) = t.col(t.known.date).map(|c| &c.data) {
        // ISO dates sort as text.
        for rows in &mut out {
            rows.sort_by(|a, b| dates.get(*a as usize).cmp(dates.get(*b as usize)));
        }
    }
    out
}

/// The history rows of the table's accounts, per key code (empty without a history, or when the
/// history's features lack the balances).
fn history_points(run: &RunOutput, t: &ColumnStore) -> Vec<Vec<HistoryPoint>> {
    use polars::prelude::DataType;
    let Some(Data::Text(keys)) = t.col(t.known.key).map(|c| &c.data) else {
        return Vec::new();
    };
    let mut out: Vec<Vec<HistoryPoint>> = vec![Vec::new(); keys.dict.len()];
    let Some(h) = &run.features.history else {
        return out;
    };
    let df = &h.df;
    let crit = run.resolved.criteria.first();
    let pair = crit
        .filter(|c| {
            c.lhs.is_some() && c.rhs.is_some() && t.known.lhs.is_some() && t.known.rhs.is_some()
        })
        .map(|c| (format!("f_{}_lhs", c.name), format!("f_{}_rhs", c.name)));
    let f64s = |name: &str| -> Option<Vec<Option<f64>>> {
        let c = df.column(name).ok()?.cast(&DataType::Float64).ok()?;
        Some(c.f64().ok()?.iter().collect())
    };
    let (lhs, rhs) = match &pair {
        Some((l, r)) => match (f64s(l), f64s(r)) {
            (Some(l), Some(r)) => (l, Some(r)),
            _ => return out,
        },
        None => match f64s("bd_difference") {
            Some(d) => (d, None),
            None => return out,
        },
    };
    let Ok(key_col) = df.column("bd_key").and_then(|c| c.str().cloned()) else {
        return out;
    };
    let Ok(date_col) = df
        .column("bd_date")
        .and_then(|c| c.cast(&DataType::String))
        .and_then(|c| c.str().cloned())
    else {
        return out;
    };
    let code: HashMap<&str, usize> = keys
        .dict
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    for (i, (k, d)) in key_col.iter().zip(date_col.iter()).enumerate() {
        let (Some(k), Some(d)) = (k, d) else { continue };
        let Some(&c) = code.get(k) else { continue };
        let Some(l) = lhs[i].filter(|v| v.is_finite()) else {
            continue;
        };
        let r = match &rhs {
            Some(r) => match r[i].filter(|v| v.is_finite()) {
                Some(v) => Some(v),
                None => continue,
            },
            None => None,
        };
        out[c].push(HistoryPoint {
            date: d.to_string(),
            lhs: l,
            rhs: r,
        });
    }
    for points in &mut out {
        points.sort_by(|a, b| a.date.cmp(&b.date));
    }
    out
}

fn cluster_rows(det: &Detection, t: &ColumnStore) -> Vec<ClusterRow> {
    let bucket = match t.col(t.known.bucket).map(|c| &c.data) {
        Some(Data::Text(b)) => Some(b),
        _ => None,
    };
    det.clusters
        .iter()
        .map(|c| {
            let dominant_bucket = bucket.and_then(|b| {
                let mut counts: HashMap<u32, usize> = HashMap::new();
                let mut n = 0;
                for (r, k) in det.scored.cluster.iter().enumerate() {
                    if *k == c.cluster && t.flagged.get(r) == Some(&true) {
                        let code = b.codes[r];
                        if !b.dict[code as usize].is_empty() {
                            *counts.entry(code).or_default() += 1;
                            n += 1;
                        }
                    }
                }
                counts
                    .into_iter()
                    .max_by(|a, b2| {
                        a.1.cmp(&b2.1)
                            .then(b.dict[b2.0 as usize].cmp(&b.dict[a.0 as usize]))
                    })
                    .map(|(code, k)| (b.dict[code as usize].clone(), k as f64 / n.max(1) as f64))
            });
            ClusterRow {
                cluster: c.cluster,
                size: c.size,
                anomalies: c.anomalies,
                anomaly_share: c.anomaly_share,
                total_abs_difference: c.total_abs_difference,
                mean_difference: c.mean_difference,
                dominant_bucket,
                top_accounts: c.top_accounts.clone(),
            }
        })
        .collect()
}

/// The error screen's text for a failed analysis: what failed, and the library's message (it
/// names the file, row, column or value).
pub fn describe_error(e: &AnalyzeError, source: &str) -> LoadError {
    let title = match e {
        AnalyzeError::Pipeline(PipelineError::Cancelled) => "cancelled".to_string(),
        AnalyzeError::Pipeline(PipelineError::Ingest(_)) => format!("cannot use {source}"),
        AnalyzeError::Pipeline(PipelineError::TooManyRejects { .. }) => {
            format!("too many rejected rows in {source}")
        }
        AnalyzeError::Pipeline(_) => format!("cannot prepare {source}"),
        AnalyzeError::Detect(_) => format!("cannot score {source}"),
        AnalyzeError::Rules(_) => "the root-cause rules cannot be used".to_string(),
        AnalyzeError::Cases(_) => "the cases cannot be recorded".to_string(),
        AnalyzeError::Table(_) => "the result table cannot be built".to_string(),
    };
    let mut message = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let m = s.to_string();
        if !message.contains(&m) {
            message.push_str(": ");
            message.push_str(&m);
        }
        src = s.source();
    }
    LoadError { title, message }
}
