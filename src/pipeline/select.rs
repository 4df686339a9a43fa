//! A partition's worker keeps its accounts' records as it reads the file.
//!
//! `run --partition I/N` on a CSV file (and history) streams each file once, picks every
//! record's account key from its raw cells (trimmed and joined with `|`, as `bd_key` is built)
//! and keeps the records whose key hashes to partition I, byte for byte, with their row in the
//! original file (the split of a bounded run, [`crate::ingest::csv::split`], keeping one part).
//! Only those records are typed, checked and featured: a worker no longer reads and checks the
//! whole file.
//!
//! What a worker then knows of the whole file is what the pass counted: its rows, blank lines,
//! and the records the reader rejects (a wrong number of fields). The rows its checks reject are
//! its own; the merge adds the parts' up and checks the share of rejected rows for the whole
//! file ([`PartitionRejects`]).

use super::{PipelineError, RunOptions, Settings, SpillRows};
use crate::ingest::csv::Encoding;
use crate::ingest::csv::{self, Split, SplitOptions};
use crate::ingest::prepare::Reject;
use crate::ingest::{self, RawTable};
use crate::partition::Partition;
use crate::profile::Resolved;
use std::path::Path;

/// Data records read to bind a file to its profile (binding reads only the header).
const SAMPLE: usize = 100;

/// A file's (and its history's) profile and the key columns its records are split by.
pub struct KeyBinding {
    /// The profile bound to the file's header.
    pub resolved: Resolved,
    /// The header names of the keys the accounts are matched on, in the order `bd_key` joins
    /// them, in the file and in its history.
    pub keys: Vec<String>,
    pub history_keys: Vec<String>,
}

/// Binds the file of `opts` (and its history) to its profile from their first records, read
/// into `dir`: the profile, and the key columns to split by (those both files have).
pub fn bind_keys(
    settings: &Settings,
    opts: &RunOptions,
    dir: &Path,
) -> Result<KeyBinding, PipelineError> {
    let sample = |path: &Path, stem: &str| -> Result<RawTable, PipelineError> {
        let s = csv::split(
            path,
            &settings.ingest.read,
            &SplitOptions {
                keys: &[],
                count: 1,
                limit: Some(SAMPLE),
                only: None,
                dir,
                stem,
            },
        )?;
        let mut raw = ingest::read(&s.parts[0].csv, &s.read_opts, None)?;
        raw.source = path.display().to_string();
        Ok(raw)
    };
    let head = sample(&opts.input, "sample")?;
    let resolved = super::choose_profile(settings, opts.profile.as_deref(), &head, &opts.columns)?;
    let mut slots: Option<Vec<usize>> = None;
    let mut history_keys = Vec::new();
    if let Some(h) = &opts.history {
        let hhead = sample(h, "history-sample")?;
        let shown = opts.input.display().to_string();
        let (hres, common, _) = super::bind_history(&resolved, &shown, &hhead)?;
        slots = common;
        history_keys = key_headers(&hres.keys, slots.as_ref());
    }
    let keys = key_headers(&resolved.keys, slots.as_ref());
    Ok(KeyBinding {
        resolved,
        keys,
        history_keys,
    })
}

/// The header names of `keys` (slot, header) kept by `slots` (all when None).
fn key_headers(keys: &[(usize, String)], slots: Option<&Vec<usize>>) -> Vec<String> {
    keys.iter()
        .filter(|(s, _)| slots.is_none_or(|k| k.contains(s)))
        .map(|(_, h)| h.clone())
        .collect()
}

/// The encoding spill parts of `current` and `history` are read back with: lossy when either
/// file was read lossily (its part keeps the bytes as they were), else UTF-8 (the parts of a
/// decoded file are UTF-8).
pub fn parts_encoding(current: &Split, history: Option<&Split>) -> Encoding {
    let lossy = std::iter::once(current)
        .chain(history)
        .any(|s| s.read_opts.encoding == Encoding::Lossy);
    if lossy {
        Encoding::Lossy
    } else {
        Encoding::Utf8
    }
}

/// Whether a path names a workbook (read whole, never split).
pub fn is_workbook(p: &Path) -> bool {
    let ext = p
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    matches!(ext.as_str(), "xlsx" | "xlsm" | "xls" | "xlsb" | "ods")
}

/// What the pass over one whole file counted.
#[derive(Debug, Clone)]
pub(super) struct WholeFile {
    /// Rows read (blank lines aside), as a run of the whole file counts them.
    pub rows: usize,
    pub blank_rows: usize,
    /// The records the reader rejects (a wrong number of fields), as it reports them.
    pub rejects: Vec<Reject>,
}

impl WholeFile {
    fn of(split: &Split) -> WholeFile {
        WholeFile {
            rows: split.records - split.blank_rows,
            blank_rows: split.blank_rows,
            rejects: split.rejects.clone(),
        }
    }
}

/// The records of one partition's accounts, kept from the file (and its history): the run that
/// reads them, where they came from, and what the pass counted of the whole files. The part
/// files are in a folder removed when this is dropped.
pub(super) struct Selected {
    _dir: tempfile::TempDir,
    /// The run on the kept records (its input and history are the part files).
    pub opts: RunOptions,
    /// The settings the part files are read with.
    pub settings: Settings,
    /// Each kept record's row in the original file (and history).
    pub rows: SpillRows,
    pub current: WholeFile,
    pub history: Option<WholeFile>,
}

/// Keeps the records of partition `p` of the file of `opts` (and its history), when they can
/// be picked from the raw cells: None for a workbook, a profile without account keys (the run
/// then reads the file whole and says what is wrong), or a generic profile that detects its
/// numeric columns from the data (every row must be seen for that).
pub(super) fn select(
    settings: &Settings,
    opts: &RunOptions,
    p: &Partition,
) -> Result<Option<Selected>, PipelineError> {
    if is_workbook(&opts.input) || opts.history.as_deref().is_some_and(is_workbook) {
        return Ok(None);
    }
    let root = &settings.budget.spill_root;
    std::fs::create_dir_all(root).map_err(|e| spill_error(root, e))?;
    let dir = tempfile::Builder::new()
        .prefix("partition-")
        .tempdir_in(root)
        .map_err(|e| spill_error(root, e))?;
    let binding = bind_keys(settings, opts, dir.path())?;
    let r = &binding.resolved;
    if binding.keys.is_empty() || (r.profile.numeric_auto && r.numeric.is_empty()) {
        return Ok(None);
    }
    let keep = |path: &Path, keys: &[String], stem: &str| -> Result<Split, PipelineError> {
        Ok(csv::split(
            path,
            &settings.ingest.read,
            &SplitOptions {
                keys,
                count: p.count,
                limit: None,
                only: Some(p.index),
                dir: dir.path(),
                stem,
            },
        )?)
    };
    let current = keep(&opts.input, &binding.keys, "current")?;
    let history = match &opts.history {
        Some(h) => Some(keep(h, &binding.history_keys, "history")?),
        None => None,
    };
    let mut part_settings = settings.clone();
    part_settings.ingest.read.encoding = parts_encoding(&current, history.as_ref());
    let rows = SpillRows {
        source: current.source.clone(),
        rows: csv::read_rows(&current.parts[0].rows)?,
        history: match &history {
            Some(h) => Some((h.source.clone(), csv::read_rows(&h.parts[0].rows)?)),
            None => None,
        },
    };
    tracing::info!(
        partition = %p,
        rows = current.parts[0].records,
        of = current.records,
        "partition kept while reading"
    );
    Ok(Some(Selected {
        opts: RunOptions {
            input: current.parts[0].csv.clone(),
            history: history.as_ref().map(|h| h.parts[0].csv.clone()),
            ..opts.clone()
        },
        settings: part_settings,
        rows,
        current: WholeFile::of(&current),
        history: history.as_ref().map(WholeFile::of),
        _dir: dir,
    }))
}

fn spill_error(root: &Path, source: std::io::Error) -> PipelineError {
    PipelineError::Spill {
        message: format!(
            "cannot create a folder for the partition's records in {} ([run] spill_dir)",
            root.display()
        ),
        source,
    }
}
