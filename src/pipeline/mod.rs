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
mod select;
mod settings;
mod triage;

pub use analysis::*;
pub use case_stage::*;
pub use categories::*;
pub use model::*;
pub use select::{KeyBinding, bind_keys, is_workbook, parts_encoding};
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
    /// A folder for a partition's records could not be made.
    #[error("{message}: {source}")]
    Spill {
        message: String,
        source: std::io::Error,
    },
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
    /// A partition's run: its rejects, divided between the whole file's and its own.
    pub partition_rejects: Option<PartitionRejects>,
    pub timings: Vec<(Stage, Duration)>,
}

/// A partition's rejected rows: those every worker of the file reports alike (the reader's
/// rejects of the whole file: records with the wrong number of fields), and its own (what the
/// checks reject of its accounts' rows, whether the worker kept its records while reading or
/// read and checked the whole file). A merge reports the shared ones once and every part's own.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartitionRejects {
    pub shared: Rejected,
    pub own: Rejected,
}

/// Rows rejected of a file and of its history, and their rejects in the report's order.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rejected {
    pub rows: usize,
    pub history_rows: usize,
    pub rejects: Vec<Reject>,
    pub history_rejects: Vec<Reject>,
}

impl Rejected {
    /// The rejected rows of a file and its history as typed (with the reader's).
    fn of(cur: &Prepared, history: Option<&Prepared>) -> Rejected {
        Rejected {
            rows: cur.rejected_rows,
            history_rows: history.map_or(0, |h| h.rejected_rows),
            rejects: cur.rejects.clone(),
            history_rejects: history.map_or_else(Vec::new, |h| h.rejects.clone()),
        }
    }
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
    check_reject_share(
        settings.ingest.max_reject_share,
        &p.source,
        (p.rejected_rows, p.total_rows),
        report,
    )
}

/// Whether `rejected` of `total` rows of `file` is too many: every one of them, or more than
/// `max_share` (`[ingest] max_reject_share`). `report` is appended to the error (where the
/// rejects report is).
pub fn check_reject_share(
    max_share: f64,
    file: &str,
    (rejected, total): (usize, usize),
    report: &str,
) -> Result<(), IngestError> {
    if rejected == total {
        return Err(IngestError::AllRejected {
            file: file.to_string(),
            total,
            report: report.to_string(),
        });
    }
    let share = rejected as f64 / total.max(1) as f64;
    if share > max_share {
        return Err(IngestError::TooManyRejects {
            file: file.to_string(),
            rejected,
            total,
            share: share * 100.0,
            max: max_share * 100.0,
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

/// A file typed through its profile, its rejects added to `all_rejects`; with `check`, too
/// many rejects is the error (with every reject so far, for the report).
fn prepare_checked(
    settings: &Settings,
    raw: &RawTable,
    resolved: &Resolved,
    popts: &PrepareOptions,
    (rejects_hint, check): (&str, bool),
    all_rejects: &mut Vec<Reject>,
) -> Result<Prepared, PipelineError> {
    let p = prepare::prepare(raw, resolved, popts)?;
    all_rejects.extend(p.rejects.iter().cloned());
    if check && let Err(error) = check_rejects(settings, &p, rejects_hint) {
        return Err(PipelineError::TooManyRejects {
            error: Box::new(error),
            rejects: std::mem::take(all_rejects),
        });
    }
    Ok(p)
}

/// The rejects of `prepared` (`raw` typed through `resolved`) that the checks made, of the rows
/// whose account falls in partition `p` (their key built from the raw cells as `bd_key` is),
/// and how many rows they reject: what a partition's worker that read the file whole owns.
fn own_rejects(
    p: &crate::partition::Partition,
    raw: &RawTable,
    resolved: &Resolved,
    popts: &PrepareOptions,
    prepared: &Prepared,
) -> Result<(usize, Vec<Reject>), PipelineError> {
    use std::collections::{HashMap, HashSet};
    let checked = &prepared.rejects[raw.rejects.len().min(prepared.rejects.len())..];
    if checked.is_empty() {
        return Ok((0, Vec::new()));
    }
    let bad = |e: polars::prelude::PolarsError| {
        PipelineError::Ingest(IngestError::Data {
            file: raw.source.clone(),
            message: e.to_string(),
        })
    };
    let wanted: HashSet<u32> = checked.iter().map(|r| r.row).collect();
    let rows = raw
        .df
        .column(ingest::ROW_COL)
        .and_then(|c| c.cast(&polars::prelude::DataType::UInt32))
        .map_err(bad)?;
    let at: HashMap<u32, usize> = rows
        .u32()
        .map_err(bad)?
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.filter(|r| wanted.contains(r)).map(|r| (r, i)))
        .collect();
    let cols: Vec<&polars::prelude::StringChunked> = resolved
        .keys
        .iter()
        .filter(|(slot, _)| popts.key_slots.as_ref().is_none_or(|s| s.contains(slot)))
        .map(|(_, h)| raw.df.column(h).and_then(|c| c.str()))
        .collect::<Result<_, _>>()
        .map_err(bad)?;
    // The rejected rows whose account is in the partition.
    let mine: HashSet<u32> = at
        .iter()
        .filter(|(_, i)| {
            let key: Vec<&str> = cols
                .iter()
                .map(|c| c.get(**i).unwrap_or("").trim())
                .collect();
            p.contains(&key.join("|"))
        })
        .map(|(row, _)| *row)
        .collect();
    let own: Vec<Reject> = checked
        .iter()
        .filter(|r| mine.contains(&r.row))
        .cloned()
        .collect();
    // Each of them has a reject among `checked`.
    Ok((mine.len(), own))
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

/// [`run`], keeping only the rows (current and history) of the accounts in `partition`.
///
/// A CSV file's worker keeps them as it reads the file ([`select`]): only they are typed and
/// checked, and the share of rejected rows is left to the merge (which sees every part's). A
/// workbook, or a file whose partition cannot be picked from its raw cells, is read and checked
/// whole and the rows kept once typed; so is a file whose kept records alone cannot be read or
/// typed (a decimal separator only the whole file tells, say), so that the worker fails only
/// where a run of the whole file fails.
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
    if let (Some(p), None) = (partition, spill) {
        let mut step = stepper(total, cancel);
        step(Stage::Partition, progress)?;
        let t = Instant::now();
        let kept = select::select(settings, opts, p).and_then(|sel| {
            sel.map(|sel| {
                let kept = Kept::Early(&sel, t.elapsed());
                run_stages(
                    &sel.settings,
                    &sel.opts,
                    (Some(&sel.rows), kept),
                    &mut step,
                    rejects_hint,
                    progress,
                )
            })
            .transpose()
        });
        match kept {
            Ok(Some(run)) => return Ok(run),
            Ok(None) => {}
            Err(PipelineError::Ingest(e)) => {
                tracing::info!(partition = %p, error = %e, "the partition's records alone cannot be read or checked: reading the whole file");
            }
            Err(e) => return Err(e),
        }
    }
    let kept = match partition {
        Some(p) => Kept::After(p),
        None => Kept::All,
    };
    let mut step = stepper(total, cancel);
    run_stages(
        settings,
        opts,
        (spill, kept),
        &mut step,
        rejects_hint,
        progress,
    )
}

/// Which rows a run keeps.
enum Kept<'a> {
    /// Every row.
    All,
    /// Those of the partition's accounts, once the whole file is typed.
    After(&'a crate::partition::Partition),
    /// Those kept while reading (the file given is the kept records; the selection took this
    /// long).
    Early(&'a select::Selected, Duration),
}

type Step<'s> = dyn FnMut(Stage, &mut dyn FnMut(Progress)) -> Result<(), PipelineError> + 's;

/// The stages of [`run_selecting`] on the rows `kept`.
fn run_stages(
    settings: &Settings,
    opts: &RunOptions,
    (spill, kept): (Option<&SpillRows>, Kept<'_>),
    step: &mut Step<'_>,
    rejects_hint: &str,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunOutput, PipelineError> {
    let mut timings = Vec::new();
    let sheet = opts.sheet.as_deref();
    let mut popts = settings.ingest.prepare.clone();
    let mut fopts = settings.features.clone();
    if let Some(p) = opts.preset {
        fopts.preset = p;
    }
    let early = match &kept {
        Kept::Early(sel, took) => {
            timings.push((Stage::Partition, *took));
            Some(*sel)
        }
        _ => None,
    };
    // Kept while reading: the rows' share of rejects is the merge's to check.
    let check = (rejects_hint, early.is_none());

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
    // Read whole, a partition's worker owns the rejects of its accounts' rows (and shares the
    // reader's).
    type Owned = ((usize, Vec<Reject>), Vec<Reject>);
    let mut history_own: Option<Owned> = None;
    if let Some((hraw, hres)) = &history {
        step(Stage::PrepareHistory, progress)?;
        let t = Instant::now();
        if let Some(h) = early.and_then(|s| s.history.as_ref()) {
            all_rejects.extend(h.rejects.iter().cloned());
        }
        let hp = prepare_checked(settings, hraw, hres, &popts, check, &mut all_rejects)?;
        if let Kept::After(p) = kept {
            history_own = Some((
                own_rejects(p, hraw, hres, &popts, &hp)?,
                hraw.rejects.clone(),
            ));
        }
        timings.push((Stage::PrepareHistory, t.elapsed()));
        history_rows_read = hp.total_rows;
        history_prepared = Some(hp);
    }
    drop(history);

    step(Stage::Prepare, progress)?;
    let t = Instant::now();
    if let Some(s) = early {
        all_rejects.extend(s.current.rejects.iter().cloned());
    }
    let mut cur = prepare_checked(settings, &raw, &resolved, &popts, check, &mut all_rejects)?;
    let own = match kept {
        Kept::After(p) => Some(own_rejects(p, &raw, &resolved, &popts, &cur)?),
        _ => None,
    };
    // The reader's rejects of a file read whole, which every worker reports alike.
    let reader_rejects = raw.rejects.clone();
    drop(raw);
    timings.push((Stage::Prepare, t.elapsed()));

    if let Kept::After(p) = kept {
        step(Stage::Partition, progress)?;
        let t = Instant::now();
        select_partition(p, &mut cur)?;
        if let Some(h) = history_prepared.as_mut() {
            select_partition(p, h)?;
        }
        timings.push((Stage::Partition, t.elapsed()));
        tracing::info!(partition = %p, rows = cur.df.height(), "partition selected");
    }
    let hp = history_prepared.as_ref();
    let mut rows_read = cur.total_rows;
    let mut rejected_rows = cur.rejected_rows + hp.map_or(0, |h| h.rejected_rows);
    let mut blank_rows = cur.blank_rows + hp.map_or(0, |h| h.blank_rows);
    let partition_rejects = match &kept {
        Kept::All => None,
        Kept::After(_) => {
            let (rows, rejects) = own.unwrap_or_default();
            let ((history_rows, history_rejects), history_reader) = history_own.unwrap_or_default();
            Some(PartitionRejects {
                shared: Rejected {
                    rows: reader_rejects.len(),
                    history_rows: history_reader.len(),
                    rejects: reader_rejects,
                    history_rejects: history_reader,
                },
                own: Rejected {
                    rows,
                    history_rows,
                    rejects,
                    history_rejects,
                },
            })
        }
        Kept::Early(sel, _) => {
            // The whole files' counts, and the reader's rejects every worker sees alike: too
            // many of those is too many for the whole file.
            let shared = Rejected {
                rows: sel.current.rejects.len(),
                history_rows: sel.history.as_ref().map_or(0, |h| h.rejects.len()),
                rejects: sel.current.rejects.clone(),
                history_rejects: sel
                    .history
                    .as_ref()
                    .map_or_else(Vec::new, |h| h.rejects.clone()),
            };
            let max = settings.ingest.max_reject_share;
            let files = sel
                .history
                .iter()
                .zip(hp)
                .map(|(h, p)| (h, p, shared.history_rows));
            for (whole, p, rejected) in files.chain([(&sel.current, &cur, shared.rows)]) {
                if rejected > 0
                    && let Err(error) =
                        check_reject_share(max, &p.source, (rejected, whole.rows), rejects_hint)
                {
                    return Err(PipelineError::TooManyRejects {
                        error: Box::new(error),
                        rejects: all_rejects,
                    });
                }
            }
            rows_read = sel.current.rows;
            history_rows_read = sel.history.as_ref().map_or(0, |h| h.rows);
            rejected_rows += shared.rows + shared.history_rows;
            blank_rows = sel.current.blank_rows + sel.history.as_ref().map_or(0, |h| h.blank_rows);
            Some(PartitionRejects {
                shared,
                own: Rejected::of(&cur, hp),
            })
        }
    };

    step(Stage::Features, progress)?;
    let t = Instant::now();
    let fs = features::compute(&cur, history_prepared.as_ref(), &fopts)?;
    timings.push((Stage::Features, t.elapsed()));
    let total = if opts.history.is_some() { 5 } else { 3 } + u64::from(!matches!(kept, Kept::All));
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
        rows_read,
        history_rows_read,
        rejected_rows,
        dq_rows: cur.dq_rows,
        blank_rows,
        decimal: cur.decimal.clone(),
        rejects: all_rejects,
        partition_rejects,
        features: fs,
        notes,
        timings,
    })
}
