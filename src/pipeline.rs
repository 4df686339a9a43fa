//! Runs the stages in order — read, type through the profile, features — reporting progress and
//! checking for cancellation between stages. No face (CLI, TUI, service) is known here.

use crate::config::Config;
use crate::features::{self, FeatureOptions, FeatureSet, Preset};
use crate::ingest::prepare::{self, PrepareOptions, Prepared, Reject};
use crate::ingest::{self, IngestError, RawTable};
use crate::profile::{self, Profile, Resolved};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    ReadHistory,
    PrepareHistory,
    Read,
    Prepare,
    Features,
}

impl Stage {
    pub fn label(&self) -> &'static str {
        match self {
            Stage::ReadHistory => "reading history",
            Stage::PrepareHistory => "checking history",
            Stage::Read => "reading",
            Stage::Prepare => "checking rows",
            Stage::Features => "computing features",
        }
    }
}

/// A progress report: `done` of `total` steps of the run, now in `stage`.
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
    /// Profile name or path; None = `[profile] default` of the config.
    pub profile: Option<String>,
    /// Numeric columns for the generic profile; empty = `[generic] columns`.
    pub columns: Vec<String>,
    pub sheet: Option<String>,
    /// Overrides `[features] preset`.
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
    pub rows_read: usize,
    pub history_rows_read: usize,
    pub rejects: Vec<Reject>,
    pub rejected_rows: usize,
    pub dq_rows: usize,
    /// Notes for the user (e.g. a key the history file lacks).
    pub notes: Vec<String>,
    pub timings: Vec<(Stage, Duration)>,
}

fn candidates(cfg: &Config) -> Result<Vec<Profile>, IngestError> {
    let mut all = Profile::builtins();
    for p in &cfg.profile.extra {
        all.push(Profile::from_file(std::path::Path::new(p))?);
    }
    Ok(all)
}

/// The profile for a header: forced by name/path, or detected.
pub fn choose_profile(
    cfg: &Config,
    forced: Option<&str>,
    raw: &RawTable,
    columns: &[String],
) -> Result<Resolved, IngestError> {
    let columns: Vec<String> = if columns.is_empty() {
        cfg.generic.columns.clone()
    } else {
        columns.to_vec()
    };
    let spec = forced.unwrap_or(cfg.profile.default.as_str());
    if spec == "auto" {
        let all = candidates(cfg)?;
        let r = profile::detect(&raw.header, &raw.source, &all)?;
        return Ok(r);
    }
    let p = Profile::by_name_or_path(spec)?;
    let numeric = if p.numeric_auto { columns } else { Vec::new() };
    Ok(p.resolve(&raw.header, &raw.source, &numeric)?)
}

fn check_rejects(cfg: &Config, p: &Prepared, report: &str) -> Result<(), IngestError> {
    if p.rejected_rows == p.total_rows {
        return Err(IngestError::AllRejected {
            file: p.source.clone(),
            total: p.total_rows,
            report: report.to_string(),
        });
    }
    let share = p.rejected_rows as f64 / p.total_rows.max(1) as f64;
    if share > cfg.ingest.max_reject_share {
        return Err(IngestError::TooManyRejects {
            file: p.source.clone(),
            rejected: p.rejected_rows,
            total: p.total_rows,
            share: share * 100.0,
            max: cfg.ingest.max_reject_share * 100.0,
            report: report.to_string(),
        });
    }
    Ok(())
}

/// Runs ingest and features. `rejects_hint` is appended to reject errors (where the report is).
pub fn run(
    cfg: &Config,
    opts: &RunOptions,
    rejects_hint: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<RunOutput, PipelineError> {
    let total = if opts.history.is_some() { 5 } else { 3 };
    let mut done = 0u64;
    let mut timings = Vec::new();
    let mut step =
        |stage: Stage, progress: &mut dyn FnMut(Progress)| -> Result<(), PipelineError> {
            if cancel.load(Ordering::Relaxed) {
                return Err(PipelineError::Cancelled);
            }
            progress(Progress { stage, done, total });
            done += 1;
            Ok(())
        };
    let sheet = opts.sheet.as_deref();
    let mut popts = PrepareOptions::from_config(&cfg.ingest);
    let mut fopts = FeatureOptions::from_config(&cfg.features).map_err(PipelineError::Config)?;
    if let Some(p) = opts.preset {
        fopts.preset = p;
    }

    step(Stage::Read, progress)?;
    let t = Instant::now();
    let raw = ingest::read(&opts.input, &cfg.ingest, sheet)?;
    let resolved = choose_profile(cfg, opts.profile.as_deref(), &raw, &opts.columns)?;
    timings.push((Stage::Read, t.elapsed()));
    tracing::info!(file = %raw.source, rows = raw.df.height(), profile = %resolved.profile.name, "read");

    let mut notes = Vec::new();
    let mut history = None;
    if let Some(hpath) = &opts.history {
        step(Stage::ReadHistory, progress)?;
        let t = Instant::now();
        let hraw = ingest::read(hpath, &cfg.ingest, sheet)?;
        // The history must fit the profile of the current file.
        let hres = resolved
            .profile
            .resolve(&hraw.header, &hraw.source, &{
                resolved
                    .numeric
                    .iter()
                    .map(|r| r.header.clone())
                    .collect::<Vec<_>>()
            })
            .map_err(IngestError::from)?;
        timings.push((Stage::ReadHistory, t.elapsed()));
        history = Some((hraw, hres));
    }

    // Accounts are matched on the keys both files have.
    if let Some((hraw, hres)) = &history {
        let cur: Vec<usize> = resolved.keys.iter().map(|(s, _)| *s).collect();
        let hist: Vec<usize> = hres.keys.iter().map(|(s, _)| *s).collect();
        let common: Vec<usize> = cur.iter().copied().filter(|s| hist.contains(s)).collect();
        if common.len() != cur.len() || common.len() != hist.len() {
            let only = |r: &Resolved| -> Vec<String> {
                r.keys
                    .iter()
                    .filter(|(s, _)| !common.contains(s))
                    .map(|(_, h)| h.clone())
                    .collect()
            };
            let (oc, oh) = (only(&resolved), only(hres));
            let mut parts = Vec::new();
            if !oc.is_empty() {
                parts.push(format!("{} only in {}", oc.join(", "), raw.source));
            }
            if !oh.is_empty() {
                parts.push(format!("{} only in {}", oh.join(", "), hraw.source));
            }
            notes.push(format!(
                "key column(s) {}; accounts are matched on the keys both files have",
                parts.join("; ")
            ));
            popts.key_slots = Some(common);
        }
    }

    let mut all_rejects = Vec::new();
    let mut history_prepared = None;
    let mut history_rows_read = 0;
    if let Some((hraw, hres)) = &history {
        step(Stage::PrepareHistory, progress)?;
        let t = Instant::now();
        let hp = prepare::prepare(hraw, hres, &popts)?;
        timings.push((Stage::PrepareHistory, t.elapsed()));
        history_rows_read = hp.total_rows;
        all_rejects.extend(hp.rejects.iter().cloned());
        if let Err(error) = check_rejects(cfg, &hp, rejects_hint) {
            return Err(PipelineError::TooManyRejects {
                error: Box::new(error),
                rejects: all_rejects,
            });
        }
        history_prepared = Some(hp);
    }
    drop(history);

    step(Stage::Prepare, progress)?;
    let t = Instant::now();
    let cur = prepare::prepare(&raw, &resolved, &popts)?;
    drop(raw);
    timings.push((Stage::Prepare, t.elapsed()));
    all_rejects.extend(cur.rejects.iter().cloned());
    if let Err(error) = check_rejects(cfg, &cur, rejects_hint) {
        return Err(PipelineError::TooManyRejects {
            error: Box::new(error),
            rejects: all_rejects,
        });
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
        rows_read: cur.total_rows,
        history_rows_read,
        rejected_rows: cur.rejected_rows + history_prepared.as_ref().map_or(0, |h| h.rejected_rows),
        dq_rows: cur.dq_rows,
        rejects: all_rejects,
        features: fs,
        notes,
        timings,
    })
}
