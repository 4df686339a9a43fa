//! Runs the stages in order — read, type through the profile, features — reporting progress and
//! checking for cancellation between stages. No face (CLI, TUI, service) is known here.

use crate::features::{self, FeatureSet, Preset};
use crate::ingest::prepare::{self, PrepareOptions, Prepared, Reject};
use crate::ingest::{self, IngestError, RawTable};
use crate::profile::{self, Profile, Resolved};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod analysis;
mod case_stage;
mod categories;
mod model;
mod settings;
mod triage;

pub use analysis::*;
pub use case_stage::*;
pub use categories::*;
pub use model::*;
pub use settings::*;
pub use triage::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    ReadHistory,
    PrepareHistory,
    Read,
    Prepare,
    /// Keeping the rows of one partition (`--partition I/N`).
    Partition,
    Features,
    /// Loading or training the model, scoring, clustering.
    Detect,
    Categorize,
    /// The LLM pass of the categorization (when `[llm] enabled`): its progress counts answers.
    CategorizeLlm,
    /// Opening or updating the cases in the store.
    Cases,
    /// A bounded-memory run: splitting the file by account into spill parts.
    Spill,
    /// A bounded-memory run: analysing the parts one after another (`done` counts parts).
    Parts,
    /// A bounded-memory run: merging the parts (ranks, categories, cases).
    Merge,
}

impl Stage {
    pub fn label(&self) -> &'static str {
        match self {
            Stage::ReadHistory => "reading history",
            Stage::PrepareHistory => "checking history",
            Stage::Read => "reading",
            Stage::Prepare => "checking rows",
            Stage::Partition => "selecting partition",
            Stage::Features => "computing features",
            Stage::Detect => "detecting (loading or training the model, scoring)",
            Stage::Categorize => "categorizing",
            Stage::CategorizeLlm => "categorizing (LLM)",
            Stage::Cases => "recording cases",
            Stage::Spill => "splitting the file by account",
            Stage::Parts => "analysing part by part",
            Stage::Merge => "merging the parts and recording cases",
        }
    }
}

/// A progress report: `done` of `total` steps of the run, now in `stage`. In
/// [`Stage::CategorizeLlm`], `done` of `total` are the LLM's answers received of the questions
/// sent (rows with identical inputs are asked once, cached answers not at all).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub stage: Stage,
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub input: PathBuf,
    pub history: Option<PathBuf>,
    /// Profile name or path; None = the settings' default profile.
    pub profile: Option<String>,
    /// Numeric columns for the generic profile; empty = the settings' generic columns.
    pub columns: Vec<String>,
    pub sheet: Option<String>,
    /// Overrides the settings' feature preset.
    pub preset: Option<Preset>,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Features(#[from] features::FeatureError),
    #[error("too many rejected rows")]
    TooManyRejects {
        error: Box<IngestError>,
        rejects: Vec<Reject>,
    },
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Config(String),
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutput {
    pub features: FeatureSet,
    pub profile: String,
    /// The profile bound to the current file's header.
    pub resolved: crate::profile::Resolved,
    pub rows_read: usize,
    pub history_rows_read: usize,
    pub rejects: Vec<Reject>,
    pub rejected_rows: usize,
    pub dq_rows: usize,
    /// Blank lines (or empty rows) skipped in the current file and the history.
    pub blank_rows: usize,
    /// The decimal separator the current file's amounts were read with.
    pub decimal: prepare::DecimalChoice,
    /// Notes for the user (e.g. a key the history file lacks).
    pub notes: Vec<String>,
    pub timings: Vec<(Stage, Duration)>,
}

fn candidates(settings: &Settings) -> Result<Vec<Profile>, IngestError> {
    let mut all = Profile::builtins();
    for p in &settings.profile.extra {
        all.push(Profile::from_file(p)?);
    }
    Ok(all)
}

/// The profile for a header: forced by name/path, or detected.
pub fn choose_profile(
    settings: &Settings,
    forced: Option<&str>,
    raw: &RawTable,
    columns: &[String],
) -> Result<Resolved, IngestError> {
    let columns: Vec<String> = if columns.is_empty() {
        settings.profile.generic_columns.clone()
    } else {
        columns.to_vec()
    };
    let spec = forced
        .or(settings.profile.default.as_deref())
        .unwrap_or("auto");
    if spec == "auto" {
        let all = candidates(settings)?;
        let r = profile::detect(&raw.header, &raw.source, &all)?;
        return Ok(r);
    }
    let p = Profile::by_name_or_path(spec)?;
    let numeric = if p.numeric_auto { columns } else { Vec::new() };
    Ok(p.resolve(&raw.header, &raw.source, &numeric)?)
}

fn check_rejects(settings: &Settings, p: &Prepared, report: &str) -> Result<(), IngestError> {
    if p.rejected_rows == p.total_rows {
        return Err(IngestError::AllRejected {
            file: p.source.clone(),
            total: p.total_rows,
            report: report.to_string(),
        });
    }
    let share = p.rejected_rows as f64 / p.total_rows.max(1) as f64;
    if share > settings.ingest.max_reject_share {
        return Err(IngestError::TooManyRejects {
            file: p.source.clone(),
            rejected: p.rejected_rows,
            total: p.total_rows,
            share: share * 100.0,
            max: settings.ingest.max_reject_share * 100.0,
            report: report.to_string(),
        });
    }
    Ok(())
}

/// A history file bound to the current file's profile: the binding, the key slots accounts are
/// matched on when the files' keys differ, and a note saying so.
pub type HistoryBinding = (Resolved, Option<Vec<usize>>, Option<String>);

/// Binds a history file to the profile `resolved` binds the current file to. Accounts are matched
/// on the key columns both files have: when they differ, the key slots to build `bd_key` from
/// and a note saying so.
pub fn bind_history(
    resolved: &Resolved,
    source: &str,
    hraw: &RawTable,
) -> Result<HistoryBinding, IngestError> {
    let hres = resolved
        .profile
        .resolve(
            &hraw.header,
            &hraw.source,
            &resolved
                .numeric
                .iter()
                .map(|r| r.header.clone())
                .collect::<Vec<_>>(),
        )
        .map_err(IngestError::from)?;
    let cur: Vec<usize> = resolved.keys.iter().map(|(s, _)| *s).collect();
    let hist: Vec<usize> = hres.keys.iter().map(|(s, _)| *s).collect();
    let common: Vec<usize> = cur.iter().copied().filter(|s| hist.contains(s)).collect();
    if common.len() == cur.len() && common.len() == hist.len() {
        return Ok((hres, None, None));
    }
    let only = |r: &Resolved| -> Vec<String> {
        r.keys
            .iter()
            .filter(|(s, _)| !common.contains(s))
            .map(|(_, h)| h.clone())
            .collect()
    };
    let (oc, oh) = (only(resolved), only(&hres));
    let mut parts = Vec::new();
    if !oc.is_empty() {
        parts.push(format!("{} only in {source}", oc.join(", ")));
    }
    if !oh.is_empty() {
        parts.push(format!("{} only in {}", oh.join(", "), hraw.source));
    }
    let note = format!(
        "key column(s) {}; accounts are matched on the keys both files have",
        parts.join("; ")
    );
    Ok((hres, Some(common), Some(note)))
}

/// Runs ingest and features. `rejects_hint` is appended to reject errors (where the report is).
pub fn run(
    settings: &Settings,
    opts: &RunOptions,
    rejects_hint: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<RunOutput, PipelineError> {
    run_selecting(settings, opts, None, None, rejects_hint, progress, cancel)
}

/// Where the rows of a spill part (a piece of a larger file, see [`crate::bounded`]) come from:
/// the original file's name and, per record of the part, its row there. A run on the part names
/// the original file and rows, in its rejects and its `bd_row`.
#[derive(Debug, Clone, Default)]
pub struct SpillRows {
    pub source: String,
    pub rows: Vec<u64>,
    /// The same for the history's part.
    pub history: Option<(String, Vec<u64>)>,
}

/// Gives `raw`'s rows (read from a spill part) their rows and name in the original file.
fn restore_rows(raw: &mut RawTable, source: &str, rows: &[u64]) -> Result<(), PipelineError> {
    use polars::prelude::*;
    let bad = |message: String| {
        PipelineError::Ingest(IngestError::Data {
            file: raw.source.clone(),
            message,
        })
    };
    let spill_rows: Vec<u64> = raw
        .df
        .column(crate::ingest::ROW_COL)
        .and_then(|c| c.cast(&DataType::UInt64))
        .map_err(|e| bad(e.to_string()))?
        .u64()
        .map_err(|e| bad(e.to_string()))?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect();
    let mut mapped = Vec::with_capacity(spill_rows.len());
    for r in spill_rows {
        let at = r.checked_sub(2).and_then(|k| rows.get(k as usize));
        match at {
            Some(orig) => mapped.push(u32::try_from(*orig).unwrap_or(u32::MAX)),
            None => {
                return Err(bad(format!(
                    "spill part row {r} has no row of the original file ({} rows listed)",
                    rows.len()
                )));
            }
        }
    }
    let dtype = raw
        .df
        .column(crate::ingest::ROW_COL)
        .map(|c| c.dtype().clone())
        .unwrap_or(DataType::UInt32);
    let col = Column::new(crate::ingest::ROW_COL.into(), mapped)
        .cast(&dtype)
        .map_err(|e| bad(e.to_string()))?;
    raw.df.with_column(col).map_err(|e| bad(e.to_string()))?;
    raw.source = source.to_string();
    Ok(())
}

/// A file typed through its profile, its rejects added to `all_rejects`; too many rejects is
/// the error (with every reject so far, for the report).
fn prepare_checked(
    settings: &Settings,
    raw: &RawTable,
    resolved: &Resolved,
    popts: &PrepareOptions,
    rejects_hint: &str,
    all_rejects: &mut Vec<Reject>,
) -> Result<Prepared, PipelineError> {
    let p = prepare::prepare(raw, resolved, popts)?;
    all_rejects.extend(p.rejects.iter().cloned());
    if let Err(error) = check_rejects(settings, &p, rejects_hint) {
        return Err(PipelineError::TooManyRejects {
            error: Box::new(error),
            rejects: std::mem::take(all_rejects),
        });
    }
    Ok(p)
}

/// Keeps the rows of the accounts in partition `p`.
fn select_partition(
    p: &crate::partition::Partition,
    prepared: &mut Prepared,
) -> Result<(), PipelineError> {
    prepared.df = p
        .select(&prepared.df, &prepared.source)
        .map_err(|e| match e {
            crate::partition::PartitionError::Polars(e) => PipelineError::Features(e.into()),
            e => PipelineError::Config(e.to_string()),
        })?;
    Ok(())
}

/// Reports each stage as it starts (the stages before it are done, of `total`), unless the run
/// was cancelled.
fn stepper(
    total: u64,
    cancel: &AtomicBool,
) -> impl FnMut(Stage, &mut dyn FnMut(Progress)) -> Result<(), PipelineError> + '_ {
    let mut done = 0u64;
    move |stage, progress| {
        if cancel.load(Ordering::Relaxed) {
            return Err(PipelineError::Cancelled);
        }
        progress(Progress { stage, done, total });
        done += 1;
        Ok(())
    }
}

/// [`run`], keeping only the rows (current and history) of the accounts in `partition` once
/// they are typed and keyed, before the features. The whole file is still read and checked (its
/// rejects and row counts are the whole file's).
pub fn run_selecting(
    settings: &Settings,
    opts: &RunOptions,
    partition: Option<&crate::partition::Partition>,
    spill: Option<&SpillRows>,
    rejects_hint: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<RunOutput, PipelineError> {
    let total = if opts.history.is_some() { 5 } else { 3 } + u64::from(partition.is_some());
    let mut timings = Vec::new();
    let mut step = stepper(total, cancel);
    let sheet = opts.sheet.as_deref();
    let mut popts = settings.ingest.prepare.clone();
    let mut fopts = settings.features.clone();
    if let Some(p) = opts.preset {
        fopts.preset = p;
    }

    step(Stage::Read, progress)?;
    let t = Instant::now();
    let mut raw = ingest::read(&opts.input, &settings.ingest.read, sheet)?;
    if let Some(sp) = spill {
        restore_rows(&mut raw, &sp.source, &sp.rows)?;
    }
    let resolved = choose_profile(settings, opts.profile.as_deref(), &raw, &opts.columns)?;
    timings.push((Stage::Read, t.elapsed()));
    tracing::info!(file = %raw.source, rows = raw.df.height(), profile = %resolved.profile.name, "read");

    let mut notes = Vec::new();
    let mut history = None;
    if let Some(hpath) = &opts.history {
        step(Stage::ReadHistory, progress)?;
        let t = Instant::now();
        let mut hraw = ingest::read(hpath, &settings.ingest.read, sheet)?;
        if let Some((source, rows)) = spill.and_then(|s| s.history.as_ref()) {
            restore_rows(&mut hraw, source, rows)?;
        }
        let (hres, slots, note) = bind_history(&resolved, &raw.source, &hraw)?;
        timings.push((Stage::ReadHistory, t.elapsed()));
        if let Some(slots) = slots {
            popts.key_slots = Some(slots);
        }
        notes.extend(note);
        history = Some((hraw, hres));
    }

    let mut all_rejects = Vec::new();
    let mut history_prepared: Option<Prepared> = None;
    let mut history_rows_read = 0;
    if let Some((hraw, hres)) = &history {
        step(Stage::PrepareHistory, progress)?;
        let t = Instant::now();
        let hp = prepare_checked(settings, hraw, hres, &popts, rejects_hint, &mut all_rejects)?;
        timings.push((Stage::PrepareHistory, t.elapsed()));
        history_rows_read = hp.total_rows;
        history_prepared = Some(hp);
    }
    drop(history);

    step(Stage::Prepare, progress)?;
    let t = Instant::now();
    let mut cur = prepare_checked(
        settings,
        &raw,
        &resolved,
        &popts,
        rejects_hint,
        &mut all_rejects,
    )?;
    drop(raw);
    timings.push((Stage::Prepare, t.elapsed()));

    if let Some(p) = partition {
        step(Stage::Partition, progress)?;
        let t = Instant::now();
        select_partition(p, &mut cur)?;
        if let Some(h) = history_prepared.as_mut() {
            select_partition(p, h)?;
        }
        timings.push((Stage::Partition, t.elapsed()));
        tracing::info!(partition = %p, rows = cur.df.height(), "partition selected");
    }

    step(Stage::Features, progress)?;
    let t = Instant::now();
    let fs = features::compute(&cur, history_prepared.as_ref(), &fopts)?;
    timings.push((Stage::Features, t.elapsed()));
    progress(Progress {
        stage: Stage::Features,
        done: total,
        total,
    });
    tracing::info!(
        rows = fs.df.height(),
        features = fs.names.len(),
        preset = fs.preset.as_str(),
        "features"
    );
    Ok(RunOutput {
        profile: resolved.profile.name.clone(),
        resolved: resolved.clone(),
        rows_read: cur.total_rows,
        history_rows_read,
        rejected_rows: cur.rejected_rows + history_prepared.as_ref().map_or(0, |h| h.rejected_rows),
        dq_rows: cur.dq_rows,
        blank_rows: cur.blank_rows + history_prepared.as_ref().map_or(0, |h| h.blank_rows),
        decimal: cur.decimal.clone(),
        rejects: all_rejects,
        features: fs,
        notes,
        timings,
    })
}
