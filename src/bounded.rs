//! Runs on CSV files larger than the memory budget (`[run] memory_mb`).
//!
//! A run holds about `[run] bytes_per_byte` bytes of memory per byte of CSV it reads (the typed
//! columns, about 85 feature columns, the model's matrices). When a file (with its history) would
//! take more than the budget, `run` works on it in parts, with the machinery of a partitioned
//! run ([`crate::partition`], [`crate::parts`]) in one process:
//!
//! 1. **Split**: one streaming pass over the file (and one over its history) writes each record,
//!    byte for byte, to the spill part of its account (the same FNV hash of the same key as
//!    `--partition`), with its row in the original file beside it. Every row of an account, and
//!    of its history, lands in the same part, so per-account windows see all of it.
//! 2. **Model**: the store's model when one fits; otherwise one trained on the largest part's
//!    accounts (a fixed sample of the accounts, chosen by their hash, each account whole, so
//!    its windows are complete) and saved as a run saves it. `--model FILE` uses that file for every part.
//! 3. **Parts**: each part is read, checked, featured and scored as a partition's worker does
//!    it, one after another, so memory holds one part at a time; the rows keep their rows in the
//!    original file, and rejects name the original file. A part is not categorized: the merge
//!    categorizes every written row among all of them. A part's written rows stay in memory for
//!    the merge while the held rows fit in `[run] held_share` of the budget; past it, they are
//!    written to a part file and read back.
//! 4. **Merge**: the parts are merged as `breakdesk merge --record` merges them (ranks across the
//!    whole file, categories, the analysts' verdicts; the parts staged on every core unless the
//!    LLM is asked), and the cases are recorded and rolled
//!    forward through the whole day's cycle, built from every part as it went, as a run does.
//!
//! The output is the output of a run on the whole file with the same model. The spill files are
//! removed when the run ends, whether it succeeds or not.
//!
//! `breakdesk train` over the budget does steps 1 and 2 ([`train_bounded`]): the model it trains
//! and saves is the one a bounded run of the file trains.

use crate::detect::model::ModelBundle;
use crate::ingest::IngestError;
use crate::ingest::csv::{self, Split, SplitOptions};
use crate::ingest::prepare::Reject;
use crate::output::Format;
use crate::partition::Partition;
use crate::parts::{self, MergeOptions, Merged, Part, PartError, PartSource, Roll};
use crate::pipeline::{
    self, AnalyzeError, AnalyzeOptions, BundleRun, DayFacts, ModelStatus, PipelineError, Progress,
    RunOptions, Settings, SpillRows, Stage,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;
/// Share of the budget a part's estimate may take (the merge's per-row arrays and the day's
/// cycle take the rest).
const PART_SHARE: f64 = 0.6;
/// Share of the budget the process may hold between two parts, memory freed by the parts before
/// and kept for the next one included (`crate::memory::KeepFreed`); past it, that is given back.
const KEPT_SHARE: f64 = 0.8;
/// What a run under a budget of `budget_mb` MiB may hold, memory freed and kept included
/// (`crate::memory::KeepFreed::up_to`).
pub fn kept_limit_mib(budget_mb: u64) -> f64 {
    budget_mb as f64 * KEPT_SHARE
}

/// Memory the merge and the day's cycle hold per row of the file and its history, written or
/// not (the rows' records, ranks and places, and the cycle's dates and differences; BENCHMARKS.md).
const ROW_BYTES: f64 = 80.0;

/// How a run splits a file that does not fit its memory budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub parts: usize,
    /// The whole run's estimated memory, and the budget (MiB).
    pub estimate_mb: f64,
    pub budget_mb: u64,
}

/// The plan for a run of `opts` under a budget of `memory_mb` MiB (0: no bound): None when the
/// file fits (or is a workbook, or cannot be sized: the run then reports what is wrong with it).
pub fn plan(settings: &Settings, opts: &RunOptions, memory_mb: u64) -> Option<Plan> {
    if memory_mb == 0 || pipeline::is_workbook(&opts.input) {
        return None;
    }
    let mut bytes = std::fs::metadata(&opts.input).ok()?.len();
    if let Some(h) = &opts.history {
        if pipeline::is_workbook(h) {
            return None;
        }
        bytes += std::fs::metadata(h).ok()?.len();
    }
    let estimate_mb = bytes as f64 * settings.budget.bytes_per_byte / MIB;
    let budget = memory_mb as f64;
    if estimate_mb <= budget {
        return None;
    }
    let mut parts = (estimate_mb / (budget * PART_SHARE)).ceil() as usize;
    // Each part is a sample of the accounts the model may be trained or checked on: never
    // smaller than `[run] min_part_mb` of CSV, even when that exceeds the budget.
    let min_part = settings.budget.min_part_mb as f64 * MIB;
    if min_part > 0.0 {
        parts = parts.min((bytes as f64 / min_part).floor() as usize);
    }
    if parts < 2 {
        return None;
    }
    Some(Plan {
        parts: parts.min(crate::partition::MAX_COUNT),
        estimate_mb,
        budget_mb: memory_mb,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum BoundedError {
    #[error(transparent)]
    Analyze(#[from] AnalyzeError),
    #[error(transparent)]
    Part(#[from] PartError),
    #[error("{message}: {source}")]
    Spill {
        message: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    NoKeys(String),
    /// An account's rows were found in a part that is not its own (the split and the reader
    /// disagree on a key).
    #[error("{0}")]
    Split(String),
}

impl From<PipelineError> for BoundedError {
    fn from(e: PipelineError) -> Self {
        BoundedError::Analyze(AnalyzeError::Pipeline(e))
    }
}

impl From<IngestError> for BoundedError {
    fn from(e: IngestError) -> Self {
        BoundedError::Analyze(AnalyzeError::Pipeline(PipelineError::Ingest(e)))
    }
}

/// What a bounded run did.
pub struct Bounded {
    pub merged: Merged,
    pub parts: usize,
    /// The model, and why it is the one it is.
    pub bundle: ModelBundle,
    pub status: ModelStatus,
    pub rows_read: usize,
    pub history_rows_read: usize,
    pub rejected_rows: usize,
    pub blank_rows: usize,
    pub dq_rows: usize,
    pub rejects: Vec<Reject>,
    pub notes: Vec<String>,
    /// Bytes of the spill parts written.
    pub spilled: u64,
    /// Parts whose written rows the merge took from memory (`[run] held_share`); the others'
    /// were written to part files and read back.
    pub held: usize,
    pub timings: Vec<(String, Duration)>,
}

/// The folder a bounded run spills to: `[run] spill_dir`, else `spill` in the data directory,
/// else the system's temporary folder.
pub fn spill_root(settings: &Settings) -> PathBuf {
    settings.budget.spill_root.clone()
}

fn spill_err(message: String) -> impl FnOnce(std::io::Error) -> BoundedError {
    move |source| BoundedError::Spill { message, source }
}

/// Runs `opts` under `plan` (see the module's documentation) and writes its output to `output`
/// (path, `-` for standard output, and format). `model` is a bundle read from a
/// file (`--model`) with the file's name; None: the store's model, or one trained on the
/// largest part. `store` gives the model, the verdicts and the LLM's cache, and takes the cases.
#[allow(clippy::too_many_arguments)]
pub fn analyze_bounded(
    settings: &Settings,
    opts: &RunOptions,
    aopts: &AnalyzeOptions,
    plan: &Plan,
    model: Option<(ModelBundle, String)>,
    store: &crate::store::Store,
    output: (&Path, Format),
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<Bounded, BoundedError> {
    let n = plan.parts;
    let total = n as u64 + 2;
    let at = |stage: Stage, done: u64| Progress { stage, done, total };
    let check = || -> Result<(), BoundedError> {
        if cancel.load(Ordering::Relaxed) {
            Err(PipelineError::Cancelled.into())
        } else {
            Ok(())
        }
    };
    let mut timings: Vec<(String, Duration)> = Vec::new();
    let t = Instant::now();
    let split = split_file(settings, opts, plan, progress, &check)?;
    timings.push(("split".into(), t.elapsed()));
    let (scratch_dir, scratch) = scratch_store(split.dir.path())?;

    // The model. The part it is trained on keeps its rows and features for its own analysis.
    // From here to the merge, what a part frees the next one allocates again: the allocator
    // keeps it meanwhile (`crate::memory`).
    let keep = crate::memory::KeepFreed::up_to(Some(kept_limit_mib(plan.budget_mb)));
    let t = Instant::now();
    // The parts are scored as the run scores them: every row's score in a table of every row.
    let mut detect = aopts.detect.clone();
    detect.score_all |= aopts.all_rows;
    let (bundle, known, file, mut first_part) = match model {
        Some((bundle, file)) => (bundle, None, file, None),
        None => {
            let (first, run, det) =
                train_on_largest(settings, opts, &detect, &split, store, cancel)?;
            (
                det.bundle.clone(),
                Some(det.status.clone()),
                String::new(),
                Some((first, (run, det))),
            )
        }
    };
    timings.push(("model".into(), t.elapsed()));
    check()?;

    // Each part, one after another; the model's part first, while its features are in memory.
    let t = Instant::now();
    let mut totals = Totals::new(known.clone());
    let mut all: Vec<Part> = Vec::with_capacity(n);
    // The parts' written rows stay in memory for the merge within `[run] held_share` of the
    // budget and within what it leaves beside a part and the merge's record of every row; the
    // rows of the parts beyond it are written to part files.
    let rows = split.current.records + split.history.as_ref().map_or(0, |h| h.records);
    let mut room = held_room(settings.budget.held_share, plan.budget_mb, rows);
    let first = first_part.as_ref().map(|(k, _)| *k);
    let order = first
        .into_iter()
        .chain((0..n).filter(|i| Some(*i) != first));
    for (done, i) in order.enumerate() {
        progress(at(Stage::Parts, done as u64 + 1));
        check()?;
        if split.current.parts[i].records == 0 {
            continue;
        }
        let (ropts, rows) = split.part_opts(opts, i)?;
        // The model's part: its rows, featured, and their scoring after the training.
        let (prepared, detected) = match first_part.take_if(|(k, _)| *k == i) {
            Some((_, (run, det))) => (Some(run), Some(det)),
            None => (None, None),
        };
        let run = BundleRun {
            bundle: bundle.clone(),
            file: &file,
            partition: None,
            record_cases: false,
            categorize: false,
            known: known.clone(),
            spill: Some(&rows),
            prepared,
            detected,
        };
        let a = pipeline::analyze_with_bundle(
            &split.part_settings,
            &ropts,
            aopts,
            run,
            &scratch,
            "",
            &mut |_| {},
            cancel,
        )?;
        let partition = Partition { index: i, count: n };
        check_own_accounts(&a, &partition, &split.shown)?;
        totals.add(settings, &a);
        all.push(write_part(&split, opts, aopts, &a, partition, &mut room)?);
        // The memory kept for the next part stays within the budget: past `KEPT_SHARE` of it,
        // what is free is given back.
        let resident = keep.within_limit(crate::logging::resident_mib);
        tracing::debug!(part = i, resident_mib = ?resident, "part done");
    }
    drop(keep);
    timings.push(("parts".into(), t.elapsed()));
    let rejects = totals.whole_file(&split, all.is_empty(), settings.ingest.max_reject_share)?;
    // Empty parts (no account hashed to them) were skipped: the merge numbers the others, in
    // the order of the split.
    totals.renumber(&mut all);
    let held = all.iter().filter(|p| p.table.is_some()).count();
    drop(scratch);
    drop(scratch_dir);

    // The merge, the cases and the roll-forward.
    progress(at(Stage::Merge, n as u64 + 1));
    check()?;
    let t = Instant::now();
    let merged = merge_bounded(settings, store, all, &split, &mut totals, output)?;
    timings.push(("merge".into(), t.elapsed()));
    timings.extend(
        merged
            .timings
            .iter()
            .map(|(n, d)| (format!("merge/{n}"), *d)),
    );
    progress(at(Stage::Merge, total));
    Ok(totals.finish(merged, (n, split.spilled, held), bundle, rejects, timings))
}

/// What the parts of a bounded run add up to: a whole run's counts, the rows the checks
/// rejected, the notes, the profile, the day's cycle and the model's status.
struct Totals {
    rows_read: usize,
    history_rows_read: usize,
    rejected: usize,
    blank: usize,
    dq: usize,
    part_rejects: Vec<Reject>,
    notes: Vec<String>,
    profile: String,
    /// The day's cycle, built beside the parts (None until the first part).
    cycle: Option<crate::cycle::CycleFeed>,
    status: Option<ModelStatus>,
}

impl Totals {
    /// The bounded run's result: the merge of its `parts` (how many, the spilled bytes, and how
    /// many were held in memory), with these totals.
    fn finish(
        self,
        merged: Merged,
        (parts, spilled, held): (usize, u64, usize),
        bundle: ModelBundle,
        rejects: Vec<Reject>,
        timings: Vec<(String, Duration)>,
    ) -> Bounded {
        Bounded {
            merged,
            parts,
            bundle,
            status: self.status.unwrap_or(ModelStatus::Loaded),
            rows_read: self.rows_read,
            history_rows_read: self.history_rows_read,
            rejected_rows: self.rejected,
            blank_rows: self.blank,
            dq_rows: self.dq,
            rejects,
            notes: self.notes,
            spilled,
            held,
            timings,
        }
    }

    fn new(status: Option<ModelStatus>) -> Totals {
        Totals {
            rows_read: 0,
            history_rows_read: 0,
            rejected: 0,
            blank: 0,
            dq: 0,
            part_rejects: Vec::new(),
            notes: Vec::new(),
            profile: String::new(),
            cycle: None,
            status,
        }
    }

    /// The parts numbered in the order of the split (empty parts were skipped), each with the
    /// whole file's counts.
    fn renumber(&self, all: &mut [Part]) {
        all.sort_by_key(|p| p.meta.partition.index);
        let m = all.len();
        for (k, p) in all.iter_mut().enumerate() {
            p.meta.partition = Partition { index: k, count: m };
            p.meta.rows_read = self.rows_read;
            p.meta.history_rows_read = self.history_rows_read;
            // The run reports the whole file's rejects itself ([`Totals::whole_file`]).
            p.meta.rejects = pipeline::PartitionRejects::default();
        }
    }

    /// A part's analysis counted in.
    fn add(&mut self, settings: &Settings, a: &pipeline::Analysis) {
        if self.profile.is_empty() {
            self.profile = a.run.profile.clone();
        }
        self.cycle
            .get_or_insert_with(|| {
                crate::cycle::CycleFeed::start(&self.profile, settings.cases.absent)
            })
            .push(&a.run.features.df);
        self.status.get_or_insert_with(|| a.det.status.clone());
        self.rows_read += a.run.rows_read;
        self.history_rows_read += a.run.history_rows_read;
        self.rejected += a.run.rejected_rows;
        self.blank += a.run.blank_rows;
        self.dq += a.run.dq_rows;
        self.part_rejects.extend(a.run.rejects.iter().cloned());
        for note in &a.run.notes {
            if !self.notes.contains(note) {
                self.notes.push(note.clone());
            }
        }
    }

    /// The whole file's counts (with the records the reader rejected while splitting) and its
    /// rejects report in a whole run's order; too many rejected rows (or no part) is the error.
    fn whole_file(
        &mut self,
        split: &SplitFile,
        no_part: bool,
        max_reject_share: f64,
    ) -> Result<Vec<Reject>, BoundedError> {
        let (current, history) = (&split.current, &split.history);
        let raw_rejects = current.rejects.len() + history.as_ref().map_or(0, |h| h.rejects.len());
        self.rows_read += current.rejects.len();
        self.history_rows_read += history.as_ref().map_or(0, |h| h.rejects.len());
        self.rejected += raw_rejects;
        self.blank += current.blank_rows + history.as_ref().map_or(0, |h| h.blank_rows);
        // The report in a whole run's order: the history's rejects, then the file's; in each,
        // the records the reader rejected, then the rows the checks rejected, by row.
        let mut part_rejects = std::mem::take(&mut self.part_rejects);
        part_rejects.sort_by_key(|r| r.row);
        let history_source = history.as_ref().map(|h| h.source.as_str());
        let (of_history, of_current): (Vec<Reject>, Vec<Reject>) = part_rejects
            .into_iter()
            .partition(|r| Some(r.source.as_str()) == history_source);
        let mut rejects: Vec<Reject> = Vec::new();
        if let Some(h) = history {
            rejects.extend(h.rejects.iter().cloned());
        }
        rejects.extend(of_history);
        rejects.extend(current.rejects.iter().cloned());
        rejects.extend(of_current);
        let seen = self.rows_read + self.history_rows_read;
        let rejected = self.rejected;
        if no_part || rejected >= seen {
            return Err(PipelineError::TooManyRejects {
                error: Box::new(IngestError::AllRejected {
                    file: split.shown.clone(),
                    total: seen,
                    report: String::new(),
                }),
                rejects,
            }
            .into());
        }
        let share = rejected as f64 / seen.max(1) as f64;
        if share > max_reject_share {
            return Err(PipelineError::TooManyRejects {
                error: Box::new(IngestError::TooManyRejects {
                    file: split.shown.clone(),
                    rejected,
                    total: seen,
                    share: share * 100.0,
                    max: max_reject_share * 100.0,
                    report: String::new(),
                }),
                rejects,
            }
            .into());
        }
        Ok(rejects)
    }
}

/// A store for the parts' analyses (they record no cases), in a folder of the spill.
fn scratch_store(dir: &Path) -> Result<(tempfile::TempDir, crate::store::Store), BoundedError> {
    let scratch_dir = tempfile::Builder::new()
        .prefix("store-")
        .tempdir_in(dir)
        .map_err(spill_err(format!(
            "cannot create a spill folder in {}",
            dir.display()
        )))?;
    let scratch = crate::store::Store::open(scratch_dir.path()).map_err(|e| {
        BoundedError::Analyze(AnalyzeError::Detect(pipeline::DetectError::Store(e)))
    })?;
    Ok((scratch_dir, scratch))
}

/// The model of a bounded run (and of `train` over the budget): trained on the largest part's
/// accounts. With that part, its run (its rows and features, kept for its own analysis) and the
/// detection (the model and its status).
fn train_on_largest(
    settings: &Settings,
    opts: &RunOptions,
    detect: &pipeline::DetectOptions,
    split: &SplitFile,
    store: &crate::store::Store,
    cancel: &AtomicBool,
) -> Result<(usize, pipeline::RunOutput, pipeline::Detection), BoundedError> {
    let first = split.largest();
    let (ropts, rows) = split.part_opts(opts, first)?;
    let mut run = pipeline::run_selecting(
        &split.part_settings,
        &ropts,
        None,
        Some(&rows),
        "",
        &mut |_| {},
        cancel,
    )?;
    let det = pipeline::score(settings, &mut run, store, detect).map_err(AnalyzeError::Detect)?;
    Ok((first, run, det))
}

/// Every account of the part is the part's own (the split hashed the key the reader builds);
/// one that is not would have its rows in two parts.
fn check_own_accounts(
    a: &pipeline::Analysis,
    partition: &Partition,
    shown: &str,
) -> Result<(), BoundedError> {
    if let Ok(k) = a
        .run
        .features
        .df
        .column("bd_key")
        .and_then(|c| c.str().cloned())
        && let Some(key) = k.iter().flatten().find(|k| !partition.contains(k))
    {
        return Err(BoundedError::Split(format!(
            "{shown}: the rows of account {key:?} were split apart (its key was read differently when splitting the file); run with [run] memory_mb = 0 to read the file whole"
        )));
    }
    Ok(())
}

/// Bytes of the parts' written rows the merge may take from memory: `[run] held_share` of the
/// budget at most, and no more than the budget leaves beside a part ([`PART_SHARE`]) and what
/// the merge and the day's cycle hold for each of the `rows` of the file and its history
/// ([`ROW_BYTES`]).
fn held_room(held_share: f64, budget_mb: u64, rows: usize) -> usize {
    let budget = budget_mb as f64 * MIB;
    let beside = budget * (1.0 - PART_SHARE) - rows as f64 * ROW_BYTES;
    (budget * held_share).min(beside).max(0.0) as usize
}

/// A part's written rows, with what the merge reads of it: held in memory while they fit in
/// `room` (bytes, taken from it), else written to a part file in the spill folder.
fn write_part(
    split: &SplitFile,
    opts: &RunOptions,
    aopts: &AnalyzeOptions,
    a: &pipeline::Analysis,
    partition: Partition,
    room: &mut usize,
) -> Result<Part, BoundedError> {
    let path = split
        .dir
        .path()
        .join(format!("part-{}.csv", partition.index));
    let write_err = |message: String| {
        BoundedError::Part(PartError::Write {
            file: path.display().to_string(),
            message,
        })
    };
    let table = a
        .table
        .select(crate::output::output_columns(&a.table))
        .map_err(|e| write_err(e.to_string()))?;
    // A text column's size counts its own texts, as they are once given buffers of their own.
    let size = table.estimated_size();
    let table = if size <= *room {
        *room -= size;
        Some(own_buffers(table).map_err(|e| write_err(e.to_string()))?)
    } else {
        crate::output::write_table(&table, &path, Format::Csv)
            .map_err(|e| write_err(e.to_string()))?;
        None
    };
    let src = PartSource {
        partition: &partition,
        input: &opts.input,
        history: opts.history.as_deref(),
        all_rows: aopts.all_rows,
        format: Format::Csv,
    };
    let (meta, rows) = parts::describe_part(&split.part_settings, &path, a, &src)?;
    tracing::debug!(
        part = partition.index,
        held = table.is_some(),
        mib = size as f64 / MIB,
        "part's written rows"
    );
    Ok(Part {
        path,
        meta,
        rows,
        table,
    })
}

/// `table` with buffers of its own: a text column taken from the part's rows still shares the
/// text of every row it was taken from, which would stay in memory with it.
fn own_buffers(
    mut table: polars::prelude::DataFrame,
) -> polars::prelude::PolarsResult<polars::prelude::DataFrame> {
    use polars::prelude::*;
    crate::output::rewrite_text_columns(&mut table, |ca| {
        Some(StringChunked::from_chunk_iter(
            ca.name().clone(),
            ca.downcast_iter().map(|a| a.clone().gc()),
        ))
    })?;
    Ok(table)
}

/// The parts merged into the output, the cases recorded and the profile's cases rolled forward
/// with the day's cycle.
fn merge_bounded(
    settings: &Settings,
    store: &crate::store::Store,
    all: Vec<Part>,
    split: &SplitFile,
    totals: &mut Totals,
    output: (&Path, Format),
) -> Result<Merged, BoundedError> {
    Ok(parts::merge_parts(
        settings,
        all,
        store,
        MergeOptions {
            record: true,
            out: output.0.to_path_buf(),
            format: Some(output.1),
            stage_dir: Some(split.dir.path().to_path_buf()),
            roll: Some(Roll {
                cycle: totals.cycle.take(),
                day: DayFacts {
                    profile: totals.profile.clone(),
                    rows: totals.rows_read,
                    ..Default::default()
                },
                file: split.shown.clone(),
            }),
            ..Default::default()
        },
        Vec::new(),
    )?)
}

/// A file (and its history) split by account into spill parts, in a folder of its own that is
/// removed when this is dropped.
struct SplitFile {
    dir: tempfile::TempDir,
    /// The file as messages name it.
    shown: String,
    current: Split,
    history: Option<Split>,
    /// The settings the parts are read with (as the original files are read; the share of
    /// rejected rows is checked on the whole file, the LLM asked at the merge).
    part_settings: Settings,
    /// Bytes of the spill parts written.
    spilled: u64,
}

/// Step 1: the file (and its history) split by account into `plan.parts` spill parts.
fn split_file(
    settings: &Settings,
    opts: &RunOptions,
    plan: &Plan,
    progress: &mut dyn FnMut(Progress),
    check: &dyn Fn() -> Result<(), BoundedError>,
) -> Result<SplitFile, BoundedError> {
    let n = plan.parts;
    let total = n as u64 + 2;
    let root = spill_root(settings);
    std::fs::create_dir_all(&root).map_err(spill_err(format!(
        "cannot create the spill folder {}",
        root.display()
    )))?;
    if settings.budget.spill_root_owned {
        remove_stale(&root);
    }
    let dir = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&root)
        .map_err(spill_err(format!(
            "cannot create a spill folder in {}",
            root.display()
        )))?;
    let shown = opts.input.display().to_string();

    // The profile and the key columns, from the header (and the history's).
    progress(Progress {
        stage: Stage::Spill,
        done: 0,
        total,
    });
    let binding = pipeline::bind_keys(settings, opts, dir.path())?;
    let (resolved, keys, history_keys) = (&binding.resolved, &binding.keys, &binding.history_keys);
    if keys.is_empty() {
        return Err(BoundedError::NoKeys(format!(
            "{shown} is larger than the memory budget ([run] memory_mb = {} MiB, about {:.0} MiB needed) and profile {} names no account key to split it by: raise the budget, or set it to 0 to read the file whole",
            plan.budget_mb, plan.estimate_mb, resolved.profile.name
        )));
    }
    check()?;
    let split = |path: &Path, keys: &[String], stem: &str| -> Result<Split, BoundedError> {
        Ok(csv::split(
            path,
            &settings.ingest.read,
            &SplitOptions {
                keys,
                count: n,
                limit: None,
                only: None,
                dir: dir.path(),
                stem,
            },
        )?)
    };
    let current = split(&opts.input, keys, "current")?;
    let history = match &opts.history {
        Some(h) => {
            check()?;
            Some(split(h, history_keys, "history")?)
        }
        None => None,
    };
    let spilled: u64 = current
        .parts
        .iter()
        .chain(history.iter().flat_map(|h| h.parts.iter()))
        .map(|p| p.bytes)
        .sum();
    tracing::info!(file = %shown, parts = n, bytes = spilled, "split by account");

    // The parts are read back as the original files would be read.
    let mut part_settings = settings.clone();
    part_settings.ingest.read.encoding = pipeline::parts_encoding(&current, history.as_ref());
    // The share of rejected rows is the whole file's: checked once every part is read.
    part_settings.ingest.max_reject_share = 1.0;
    // The LLM is asked at the merge, once for the whole file.
    part_settings.categorize.llm.enabled = false;
    Ok(SplitFile {
        dir,
        shown,
        current,
        history,
        part_settings,
        spilled,
    })
}

impl SplitFile {
    /// How to read part `i` of a run of `opts`: its spill files, and the rows of the original
    /// file (and history) its records came from.
    fn part_opts(
        &self,
        opts: &RunOptions,
        i: usize,
    ) -> Result<(RunOptions, SpillRows), BoundedError> {
        let c = &self.current.parts[i];
        let rows = csv::read_rows(&c.rows)?;
        let hist = match &self.history {
            Some(h) => {
                let hp = &h.parts[i];
                Some((
                    hp.csv.clone(),
                    (h.source.clone(), csv::read_rows(&hp.rows)?),
                ))
            }
            None => None,
        };
        let ropts = RunOptions {
            input: c.csv.clone(),
            history: hist.as_ref().map(|(p, _)| p.clone()),
            ..opts.clone()
        };
        Ok((
            ropts,
            SpillRows {
                source: self.shown.clone(),
                rows,
                history: hist.map(|(_, h)| h),
            },
        ))
    }

    /// The part with the most records: the accounts a model is trained on.
    fn largest(&self) -> usize {
        (0..self.current.parts.len())
            .max_by_key(|i| self.current.parts[*i].records)
            .unwrap_or(0)
    }
}

/// A model trained on a file over the memory budget.
pub struct TrainedPart {
    /// The run of the part the model was trained on (its rows, rejects and features).
    pub run: pipeline::RunOutput,
    pub det: pipeline::Detection,
    /// The parts the file was split into, and which one the model was trained on.
    pub parts: usize,
    pub part: usize,
    pub spilled: u64,
}

/// `breakdesk train` on a file over the budget: the file is split as a bounded run splits it
/// and the model trained on the largest part's accounts, as a bounded run trains it (and saved
/// in `store` as training saves it), so that the model is the one a bounded run of the file
/// would train. Memory holds one part.
pub fn train_bounded(
    settings: &Settings,
    opts: &RunOptions,
    detect: &pipeline::DetectOptions,
    plan: &Plan,
    store: &crate::store::Store,
    cancel: &AtomicBool,
) -> Result<TrainedPart, BoundedError> {
    let check = || -> Result<(), BoundedError> {
        if cancel.load(Ordering::Relaxed) {
            Err(PipelineError::Cancelled.into())
        } else {
            Ok(())
        }
    };
    let split = split_file(settings, opts, plan, &mut |_| {}, &check)?;
    check()?;
    let (part, run, det) = train_on_largest(settings, opts, detect, &split, store, cancel)?;
    Ok(TrainedPart {
        run,
        det,
        parts: plan.parts,
        part,
        spilled: split.spilled,
    })
}

/// Removes what runs that were killed left in the data directory's spill folder (`run-*` and
/// `merge-*`). The caller holds the store, so no other run of this data directory is using it.
fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let ours = name.starts_with("run-") || name.starts_with("merge-");
        if ours && e.file_type().is_ok_and(|t| t.is_dir()) {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => {
                    tracing::info!(folder = %e.path().display(), "stale spill folder removed")
                }
                Err(err) => {
                    tracing::warn!(folder = %e.path().display(), error = %err, "cannot remove a stale spill folder")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The held rows take `[run] held_share` of the budget at most, and only what the budget
    /// leaves beside a part and the merge's record of every row.
    #[test]
    fn held_rows_take_their_share_within_what_the_budget_leaves() {
        let budget = 2048;
        let share = (2048.0 * MIB * 0.15) as usize;
        // 5,000,000 rows leave 819 MiB − 381 MiB: the share is the bound.
        assert_eq!(held_room(0.15, budget, 5_000_000), share);
        // 8,000,000 rows leave 819 MiB − 610 MiB = 209 MiB, less than the share.
        let left = 2048.0 * MIB * 0.4 - 8_000_000.0 * ROW_BYTES;
        assert_eq!(held_room(0.15, budget, 8_000_000), left as usize);
        assert!(left < share as f64);
        // 20,000,000 rows leave nothing; nor does a share of 0.
        assert_eq!(held_room(0.15, budget, 20_000_000), 0);
        assert_eq!(held_room(0.0, budget, 1_000), 0);
    }
}
