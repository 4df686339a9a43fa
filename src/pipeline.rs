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
    cfg: &Config,
    opts: &RunOptions,
    rejects_hint: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<RunOutput, PipelineError> {
    run_selecting(cfg, opts, None, None, rejects_hint, progress, cancel)
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

/// [`run`], keeping only the rows (current and history) of the accounts in `partition` once
/// they are typed and keyed, before the features. The whole file is still read and checked (its
/// rejects and row counts are the whole file's).
pub fn run_selecting(
    cfg: &Config,
    opts: &RunOptions,
    partition: Option<&crate::partition::Partition>,
    spill: Option<&SpillRows>,
    rejects_hint: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<RunOutput, PipelineError> {
    let total = if opts.history.is_some() { 5 } else { 3 } + u64::from(partition.is_some());
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
    let mut raw = ingest::read(&opts.input, &cfg.ingest, sheet)?;
    if let Some(sp) = spill {
        restore_rows(&mut raw, &sp.source, &sp.rows)?;
    }
    let resolved = choose_profile(cfg, opts.profile.as_deref(), &raw, &opts.columns)?;
    timings.push((Stage::Read, t.elapsed()));
    tracing::info!(file = %raw.source, rows = raw.df.height(), profile = %resolved.profile.name, "read");

    let mut notes = Vec::new();
    let mut history = None;
    if let Some(hpath) = &opts.history {
        step(Stage::ReadHistory, progress)?;
        let t = Instant::now();
        let mut hraw = ingest::read(hpath, &cfg.ingest, sheet)?;
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
    let mut cur = prepare::prepare(&raw, &resolved, &popts)?;
    drop(raw);
    timings.push((Stage::Prepare, t.elapsed()));
    all_rejects.extend(cur.rejects.iter().cloned());
    if let Err(error) = check_rejects(cfg, &cur, rejects_hint) {
        return Err(PipelineError::TooManyRejects {
            error: Box::new(error),
            rejects: all_rejects,
        });
    }

    if let Some(p) = partition {
        step(Stage::Partition, progress)?;
        let t = Instant::now();
        let select = |prepared: &mut Prepared| -> Result<(), PipelineError> {
            prepared.df = p
                .select(&prepared.df, &prepared.source)
                .map_err(|e| match e {
                    crate::partition::PartitionError::Polars(e) => {
                        PipelineError::Features(e.into())
                    }
                    e => PipelineError::Config(e.to_string()),
                })?;
            Ok(())
        };
        select(&mut cur)?;
        if let Some(h) = history_prepared.as_mut() {
            select(h)?;
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

/// How `score` treats a saved model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainMode {
    /// Use the saved model when its fingerprint matches; train when missing or changed.
    #[default]
    Auto,
    /// Train a new model and save it, whatever is saved.
    Force,
}

#[derive(Debug, Clone, Default)]
pub struct DetectOptions {
    /// Attributions for every row (else only for the flagged rows).
    pub all_attributions: bool,
    pub detector: Option<crate::detect::model::DetectorKind>,
    pub contamination: Option<crate::detect::contamination::Contamination>,
    pub train: TrainMode,
    /// What to do with a saved model that does not fit the file; None: `[detect] model_policy`.
    pub policy: Option<ModelPolicy>,
}

/// What `score` does with a saved model that does not fit the file (too few training rows, a
/// different population, accounts it never saw).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelPolicy {
    /// Use it anyway (and say so).
    Reuse,
    /// Train a new model on the file (or its history) and save it.
    #[default]
    Retrain,
    /// Stop with an error naming why.
    Refuse,
}

impl std::str::FromStr for ModelPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reuse" => Ok(ModelPolicy::Reuse),
            "retrain" => Ok(ModelPolicy::Retrain),
            "refuse" => Ok(ModelPolicy::Refuse),
            _ => Err(format!(
                "unknown model policy {s:?}: use reuse, retrain or refuse"
            )),
        }
    }
}

/// The fitness thresholds of the configuration.
pub fn fitness_params(cfg: &Config) -> crate::detect::fitness::FitnessParams {
    crate::detect::fitness::FitnessParams {
        min_training_rows: cfg.detect.min_training_rows,
        max_psi: cfg.detect.max_psi,
        max_unseen_accounts: cfg.detect.max_unseen_accounts,
    }
}

/// Why the model used by a run is the one it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelStatus {
    Loaded,
    TrainedMissing,
    TrainedChanged,
    TrainedForced,
    TrainedUnreadable(String),
    /// The saved model did not fit the file: why.
    TrainedUnfit(String),
    /// The saved model did not fit the file but was used (`--model-policy reuse`): why.
    LoadedUnfit(String),
    /// A bundle file (`--model FILE`) was used; `unfit` says why it does not fit the file, when
    /// it does not.
    FromFile {
        path: String,
        unfit: Option<String>,
    },
}

impl ModelStatus {
    pub fn describe(&self) -> String {
        match self {
            ModelStatus::Loaded => "saved model used".into(),
            ModelStatus::TrainedMissing => "trained (no saved model)".into(),
            ModelStatus::TrainedChanged => {
                "retrained (profile, features or settings changed)".into()
            }
            ModelStatus::TrainedForced => "retrained (forced)".into(),
            ModelStatus::TrainedUnreadable(e) => format!("retrained (saved model unreadable: {e})"),
            ModelStatus::TrainedUnfit(why) => {
                format!("retrained (the saved model does not fit this file: {why})")
            }
            ModelStatus::LoadedUnfit(why) => {
                format!(
                    "saved model used although it does not fit this file (model policy reuse): {why}"
                )
            }
            ModelStatus::FromFile { path, unfit: None } => format!("model file {path} used"),
            ModelStatus::FromFile {
                path,
                unfit: Some(why),
            } => format!("model file {path} used although it does not fit this file: {why}"),
        }
    }
}

/// What scoring produced.
#[derive(Debug)]
pub struct Detection {
    pub bundle: crate::detect::model::ModelBundle,
    pub status: ModelStatus,
    pub scored: crate::detect::model::Scored,
    pub rank: Vec<usize>,
    /// Per row: a break its comment explains, proposed for auto-resolution (a case is opened,
    /// although the row is not flagged).
    pub proposed: Vec<bool>,
    pub clusters: Vec<crate::detect::cluster::ClusterSummary>,
    pub timings: Vec<(&'static str, Duration)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Model(#[from] crate::detect::model::ModelError),
    #[error(transparent)]
    Cases(#[from] crate::cases::CaseError),
    #[error(transparent)]
    Features(#[from] features::FeatureError),
    #[error("{0}")]
    Config(String),
    #[error(
        "the saved model {model} does not fit this file: {why} (model policy refuse: retrain with --retrain, or --model-policy retrain|reuse)"
    )]
    Unfit { model: String, why: String },
    /// A model bundle file made for another profile, preset or feature set than the file's.
    #[error("the model file {file} cannot score this file: {why}")]
    Bundle { file: String, why: String },
}

/// Where a table's rows meet the analysts' labels.
struct LabelMatch {
    /// (row, label index) for each labelled record (the label's key and date).
    exact: Vec<(usize, usize)>,
    /// The rows of true breaks' runs: the label's key, from the break's start to its date.
    true_runs: Vec<usize>,
}

fn match_labels(
    df: &polars::prelude::DataFrame,
    labels: &[crate::cases::Label],
) -> Result<LabelMatch, polars::prelude::PolarsError> {
    use polars::prelude::*;
    let mut by_key: std::collections::HashMap<&str, Vec<usize>> = std::collections::HashMap::new();
    for (i, l) in labels.iter().enumerate() {
        by_key.entry(l.key.as_str()).or_default().push(i);
    }
    let mut m = LabelMatch {
        exact: Vec::new(),
        true_runs: Vec::new(),
    };
    // Without a key or a date (a generic file) no record can be named.
    if df.column("bd_key").is_err() || df.column("bd_date").is_err() {
        return Ok(m);
    }
    let keys = df.column("bd_key")?.str()?.clone();
    let days = df
        .column("bd_date")?
        .cast(&DataType::Date)?
        .cast(&DataType::Int32)?
        .i32()?
        .clone();
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let day = |d: chrono::NaiveDate| (d - epoch).num_days();
    for (row, (k, d)) in keys.iter().zip(days.iter()).enumerate() {
        let (Some(k), Some(d)) = (k, d) else { continue };
        let Some(ls) = by_key.get(k) else { continue };
        let d = d as i64;
        for &i in ls {
            let l = &labels[i];
            let end = day(l.date);
            if d == end {
                m.exact.push((row, i));
            }
            let start = l.start_date.map_or(end, day);
            if l.label && d >= start && d <= end {
                m.true_runs.push(row);
            }
        }
    }
    Ok(m)
}

/// The training specification from the config and the run's overrides.
pub fn train_spec(
    cfg: &Config,
    opts: &DetectOptions,
) -> Result<crate::detect::model::TrainSpec, String> {
    use crate::detect::iforest::{IForestParams, MaxSamples};
    let d = &cfg.detect;
    Ok(crate::detect::model::TrainSpec {
        detector: match opts.detector {
            Some(k) => k,
            None => d.detector.parse()?,
        },
        contamination: match opts.contamination {
            Some(c) => c,
            None => d.contamination.parse()?,
        },
        mad_k: d.mad_k,
        iforest: IForestParams {
            n_estimators: d.iforest.n_estimators,
            max_samples: if d.iforest.max_samples == 0 {
                MaxSamples::Auto
            } else {
                MaxSamples::Count(d.iforest.max_samples)
            },
            max_features: d.iforest.max_features,
            seed: d.seed,
        },
        lof: crate::detect::lof::LofParams {
            n_neighbors: d.lof.n_neighbors,
        },
        lof_max_reference: d.lof.max_reference,
        cluster: crate::detect::cluster::ClusterParams {
            k: cfg.cluster.k,
            k_max: cfg.cluster.k_max,
            sample: cfg.cluster.sample,
            max_iterations: cfg.cluster.max_iterations,
            seed: d.seed,
        },
        seed: d.seed,
    })
}

/// Scores the current rows of a run: loads the saved model for the profile and detector, or
/// trains one (on the history rows when given, else on the current rows) and saves it.
pub fn score(
    cfg: &Config,
    run: &mut RunOutput,
    store: &crate::store::Store,
    opts: &DetectOptions,
) -> Result<Detection, DetectError> {
    use crate::detect::model::{self, ModelBundle};
    let spec = train_spec(cfg, opts).map_err(DetectError::Config)?;
    let fs = &mut run.features;
    let fp = model::fingerprint(&run.profile, fs.preset, &fs.names, &spec);
    let key = format!("{}/{}", run.profile, spec.detector.as_str());
    let mut timings = Vec::new();

    let saved = store.get_model(&key)?;
    let existing = saved.map(|b| ModelBundle::from_json(&b));
    // The share the previous model flagged: the base of the feedback's contamination re-estimate.
    let previous_flag_share = match &existing {
        Some(Ok(b)) => b.flag_share,
        _ => None,
    };
    let existing = match opts.train {
        TrainMode::Force => None,
        TrainMode::Auto => existing,
    };
    // A saved model of the same schema must also fit the file.
    let policy = match opts.policy {
        Some(p) => p,
        None => cfg
            .detect
            .model_policy
            .parse()
            .map_err(DetectError::Config)?,
    };
    let (existing, mut unfit) = check_fitness(cfg, fs, &run.resolved, existing, &fp, policy)?;
    let mut reuse = Reuse::default();
    let (bundle, status) = match existing {
        Some(Ok(b)) if b.fingerprint == fp => {
            features::apply_encoders(fs, &b.encoders)?;
            (b, unfit.unwrap_or(ModelStatus::Loaded))
        }
        other => {
            let status = match (&other, opts.train) {
                (_, TrainMode::Force) => ModelStatus::TrainedForced,
                _ if unfit.is_some() => unfit.take().unwrap_or(ModelStatus::TrainedMissing),
                (None, _) => ModelStatus::TrainedMissing,
                (Some(Err(e)), _) => ModelStatus::TrainedUnreadable(e.to_string()),
                (Some(Ok(_)), _) => ModelStatus::TrainedChanged,
            };
            let t = Instant::now();
            let (b, r) = train_fresh(cfg, &run.profile, fs, store, &spec, previous_flag_share)?;
            reuse = r;
            timings.push(("train", t.elapsed()));
            store.put_model(&key, &b.to_json())?;
            tracing::info!(model = %b.version(), rows = b.training_rows, status = ?status, "model trained");
            (b, status)
        }
    };

    score_loaded(
        cfg,
        run,
        store,
        opts,
        (bundle, status),
        reuse.precomputed,
        reuse.current_x,
        reuse.current_diff,
        timings,
    )
}

type SavedModel =
    Option<Result<crate::detect::model::ModelBundle, crate::detect::model::ModelError>>;

/// A saved model of the run's schema checked against the file: kept when it fits; when it does
/// not, refused, kept or dropped for a new training as the policy says (with the reason).
fn check_fitness(
    cfg: &Config,
    fs: &FeatureSet,
    resolved: &Resolved,
    existing: SavedModel,
    fp: &str,
    policy: ModelPolicy,
) -> Result<(SavedModel, Option<ModelStatus>), DetectError> {
    let b = match existing {
        Some(Ok(b)) if b.fingerprint == fp => b,
        other => return Ok((other, None)),
    };
    let problems = fitness_problems(cfg, fs, resolved, &b)?;
    if problems.is_empty() {
        return Ok((Some(Ok(b)), None));
    }
    let why = problems.join("; ");
    tracing::warn!(model = %b.version(), why = %why, "saved model does not fit the file");
    match policy {
        ModelPolicy::Refuse => Err(DetectError::Unfit {
            model: b.version(),
            why,
        }),
        ModelPolicy::Reuse => Ok((Some(Ok(b)), Some(ModelStatus::LoadedUnfit(why)))),
        ModelPolicy::Retrain => Ok((None, Some(ModelStatus::TrainedUnfit(why)))),
    }
}

/// What a training hands on to scoring: the current rows' scores, matrix and differences when
/// the model learnt from exactly those rows, or their matrix when the feedback built it.
#[derive(Default)]
struct Reuse {
    precomputed: Option<Vec<f64>>,
    current_x: Option<crate::detect::matrix::Matrix>,
    current_diff: Option<Vec<f64>>,
}

/// The rows a model is trained on: the matrix, each row's difference, whether it is a triage
/// candidate and its account; and the rows added as normal by the feedback.
struct TrainingRows<'a> {
    x: crate::detect::matrix::Matrix,
    diff: Vec<f64>,
    cand: Vec<bool>,
    keys: Vec<&'a str>,
    extra: Option<crate::detect::matrix::Matrix>,
}

/// Trains a new model on the history rows (the current rows when there is no history of at
/// least 2 rows), with the analysts' decisions on the profile's cases when feedback is on.
fn train_fresh(
    cfg: &Config,
    profile: &str,
    fs: &FeatureSet,
    store: &crate::store::Store,
    spec: &crate::detect::model::TrainSpec,
    previous_flag_share: Option<f64>,
) -> Result<(crate::detect::model::ModelBundle, Reuse), DetectError> {
    use crate::detect::model::{self, TrainInput};
    let own_rows = !matches!(&fs.history, Some(h) if h.df.height() >= 2);
    let train_df = match &fs.history {
        Some(h) if !own_rows => &h.df,
        _ => &fs.df,
    };
    let train_keys = key_chunk(train_df);
    let all = TrainingRows {
        x: features::matrix(train_df, &fs.names)?,
        diff: features::column_f64(train_df, "bd_difference").unwrap_or_default(),
        // The training rows that are triage candidates: the contamination is among them.
        cand: triage_inputs(train_df)?
            .0
            .iter()
            .map(Option::is_none)
            .collect(),
        keys: key_refs(train_keys.as_ref(), train_df.height()),
        extra: None,
    };
    let labels = if cfg.feedback.enabled {
        crate::cases::Cases::new(store)
            .labels()?
            .into_iter()
            .filter(|l| l.profile == profile)
            .collect()
    } else {
        Vec::new()
    };
    let (rows, fb, x_cur) = if labels.is_empty() {
        (all, None, None)
    } else {
        let (rows, info, x_cur) = with_feedback(cfg, fs, train_df, own_rows, &labels, all)?;
        (rows, Some(info), x_cur)
    };
    let (mut b, train_scores) = model::train(
        &TrainInput {
            profile,
            preset: fs.preset,
            feature_names: &fs.names,
            encoders: &fs.encoders,
            x: &rows.x,
            difference: &rows.diff,
            extra_normal: rows.extra.as_ref(),
            candidates: Some(&rows.cand),
            keys: &rows.keys,
        },
        spec,
    )?;
    if let Some(info) = fb {
        let candidate_scores = model::among(&train_scores, Some(&rows.cand));
        reestimate_with_feedback(
            cfg,
            &mut b,
            info,
            &candidate_scores,
            previous_flag_share,
            spec,
        );
    }
    // The training scores are the current rows' scores when the model learnt from exactly
    // those rows.
    let reuse = if own_rows && rows.x.rows() == fs.df.height() {
        Reuse {
            precomputed: Some(train_scores),
            current_x: Some(rows.x),
            current_diff: Some(rows.diff),
        }
    } else {
        Reuse {
            current_x: x_cur,
            ..Reuse::default()
        }
    };
    Ok((b, reuse))
}

/// The training rows with the analysts' decisions: the records of true breaks' runs left out,
/// rejected records (in the training or the current rows) added as normal `oversample` times.
/// Also what the feedback did, and the current rows' matrix when it was built for them.
fn with_feedback<'a>(
    cfg: &Config,
    fs: &FeatureSet,
    train_df: &polars::prelude::DataFrame,
    own_rows: bool,
    labels: &[crate::cases::Label],
    all: TrainingRows<'a>,
) -> Result<
    (
        TrainingRows<'a>,
        crate::detect::feedback::FeedbackInfo,
        Option<crate::detect::matrix::Matrix>,
    ),
    DetectError,
> {
    use crate::detect::feedback::{FeedbackInfo, repeat_rows};
    let in_train = match_labels(train_df, labels).map_err(features::FeatureError::from)?;
    let in_cur = if own_rows {
        None
    } else {
        Some(match_labels(&fs.df, labels).map_err(features::FeatureError::from)?)
    };
    let mut info = FeedbackInfo {
        labels: labels.len(),
        oversample: cfg.feedback.oversample,
        ..Default::default()
    };
    // Each label counts once, where its record was found (training rows first).
    let mut seen = vec![false; labels.len()];
    let mut rejected_train = Vec::new();
    let mut rejected_cur = Vec::new();
    for (m, rejected) in [
        (Some(&in_train), &mut rejected_train),
        (in_cur.as_ref(), &mut rejected_cur),
    ] {
        let Some(m) = m else { continue };
        for &(row, l) in &m.exact {
            if std::mem::replace(&mut seen[l], true) {
                continue;
            }
            let label = &labels[l];
            match (label.label, label.origin) {
                (false, _) => {
                    info.rejected += 1;
                    rejected.push(row);
                }
                (true, crate::cases::Origin::Analyst) => info.missed += 1,
                (true, _) => info.accepted += 1,
            }
        }
    }
    info.matched = seen.iter().filter(|s| **s).count();
    let times = cfg.feedback.oversample;
    let mut extra_rows = all.x.select_rows(&repeat_rows(&rejected_train, times));
    let mut x_cur = None;
    if !rejected_cur.is_empty() {
        let xc = features::matrix(&fs.df, &fs.names)?;
        extra_rows = extra_rows.stack(&xc.select_rows(&repeat_rows(&rejected_cur, times)));
        x_cur = Some(xc);
    }
    info.added_rows = extra_rows.rows();
    let mut out = vec![false; train_df.height()];
    for r in &in_train.true_runs {
        out[*r] = true;
    }
    info.excluded_rows = out.iter().filter(|o| **o).count();
    let mut rows = if info.excluded_rows == 0 {
        all
    } else {
        let keep: Vec<usize> = (0..out.len()).filter(|i| !out[*i]).collect();
        let diff = if all.diff.len() == out.len() {
            keep.iter().map(|i| all.diff[*i]).collect()
        } else {
            all.diff
        };
        TrainingRows {
            x: all.x.select_rows(&keep),
            diff,
            cand: keep.iter().map(|i| all.cand[*i]).collect(),
            keys: keep.iter().map(|i| all.keys[*i]).collect(),
            extra: None,
        }
    };
    rows.extra = (extra_rows.rows() > 0).then_some(extra_rows);
    Ok((rows, info, x_cur))
}

/// The feedback kept in the bundle, and the contamination re-estimated from the analysts'
/// decisions (when on and enough flagged cases were decided): the offset moves with it.
fn reestimate_with_feedback(
    cfg: &Config,
    b: &mut crate::detect::model::ModelBundle,
    mut info: crate::detect::feedback::FeedbackInfo,
    candidate_scores: &[f64],
    previous_flag_share: Option<f64>,
    spec: &crate::detect::model::TrainSpec,
) {
    info.precision = (info.accepted + info.rejected > 0)
        .then(|| info.accepted as f64 / (info.accepted + info.rejected) as f64);
    info.contamination_before = b.flag_share;
    info.contamination_after = b.flag_share;
    let base = previous_flag_share.or(b.flag_share).unwrap_or(0.0);
    if cfg.feedback.contamination
        && let Some(c) = crate::detect::feedback::reestimate(
            base,
            info.accepted,
            info.rejected,
            info.missed,
            candidate_scores.len(),
            cfg.feedback.min_reviewed,
        )
    {
        b.offset = crate::detect::contamination::offset(
            candidate_scores,
            Some(c),
            spec.detector.auto_offset(),
        );
        b.contamination_value = Some(c);
        b.flag_share = crate::detect::model::flag_share(candidate_scores, b.offset);
        info.contamination_before = Some(base);
        info.contamination_after = b.flag_share;
    }
    tracing::info!(feedback = %info.describe(), "model trained with feedback");
    b.feedback = Some(info);
}

/// Why a saved model does not fit the current rows of `fs` (empty when it fits): too few
/// training rows, another population, accounts it never saw (where keys recur).
pub fn fitness_problems(
    cfg: &Config,
    fs: &FeatureSet,
    resolved: &Resolved,
    b: &crate::detect::model::ModelBundle,
) -> Result<Vec<String>, DetectError> {
    let main: Vec<String> = crate::detect::fitness::main_features(&fs.names)
        .into_iter()
        .map(|j| fs.names[j].clone())
        .collect();
    let xm = features::matrix(&fs.df, &main)?;
    // Unseen keys only matter where keys recur file after file (accounts, not trades).
    let keys = key_chunk(&fs.df);
    let key_refs = if resolved.profile.keys_recur {
        key_refs(keys.as_ref(), fs.df.height())
    } else {
        Vec::new()
    };
    Ok(crate::detect::fitness::check(
        b.training_rows,
        b.population.as_ref(),
        &xm,
        &main,
        &key_refs,
        &fitness_params(cfg),
    ))
}

/// Scores the current rows of a run with a model that was loaded, not found in the store (a
/// bundle file): its encoders are applied, then the rows are scored, triaged and clustered as
/// [`score`] does. `status` says why this model is used.
pub fn score_with_bundle(
    cfg: &Config,
    run: &mut RunOutput,
    store: &crate::store::Store,
    opts: &DetectOptions,
    bundle: crate::detect::model::ModelBundle,
    status: ModelStatus,
) -> Result<Detection, DetectError> {
    features::apply_encoders(&mut run.features, &bundle.encoders)?;
    score_loaded(
        cfg,
        run,
        store,
        opts,
        (bundle, status),
        None,
        None,
        None,
        Vec::new(),
    )
}

/// The end of [`score`]: scores, triages and clusters the current rows with `model`.
/// `precomputed`, `current_x` and `current_diff` are the current rows' scores, matrix and
/// differences when training already computed them.
#[allow(clippy::too_many_arguments)]
fn score_loaded(
    cfg: &Config,
    run: &mut RunOutput,
    store: &crate::store::Store,
    opts: &DetectOptions,
    model: (crate::detect::model::ModelBundle, ModelStatus),
    precomputed: Option<Vec<f64>>,
    current_x: Option<crate::detect::matrix::Matrix>,
    current_diff: Option<Vec<f64>>,
    mut timings: Vec<(&'static str, Duration)>,
) -> Result<Detection, DetectError> {
    use crate::detect::model;
    let (bundle, status) = model;
    let fs = &run.features;
    let t = Instant::now();
    let x = match current_x {
        Some(x) => x,
        None => features::matrix(&fs.df, &fs.names)?,
    };
    let (mut quiet, own_z) = triage_inputs(&fs.df)?;
    let proposed = quiet_explained_and_judged(cfg, &fs.df, &run.profile, store, &mut quiet)?;
    let tparams = triage_params(cfg);
    let scored = bundle.score_triaged(
        &x,
        precomputed,
        opts.all_attributions,
        Some(crate::detect::model::Triage {
            quiet: &quiet,
            own_z: &own_z,
            params: &tparams,
        }),
    )?;
    tracing::info!(triage = %scored.triage.describe(), "scored");
    timings.push(("score", t.elapsed()));
    let rank = model::ranks(&scored.score);
    let diff = match current_diff {
        Some(d) if d.len() == x.rows() => d,
        _ => features::column_f64(&fs.df, "bd_difference").unwrap_or_else(|_| vec![0.0; x.rows()]),
    };
    let keys = key_chunk(&fs.df);
    let key_refs = key_refs(keys.as_ref(), x.rows());
    let clusters = crate::detect::cluster::summarize(
        bundle.centroids.as_ref().map_or(1, |c| c.k),
        &scored.cluster,
        &scored.flag,
        &diff,
        &key_refs,
        cfg.cluster.top_accounts,
    );
    Ok(Detection {
        bundle,
        status,
        scored,
        rank,
        proposed,
        clusters,
        timings,
    })
}

/// Marks the candidates whose source comment explains them ([`Quiet::Explained`], by the rules
/// file's explanations) and those an analyst rejected as normal whose break persists with a
/// difference within `[feedback] judged_normal_share` of the one judged ([`Quiet::Judged`]).
/// Returns, per row, whether an explained break is proposed for auto-resolution (its bucket
/// allows it): those rows open cases although they are not flagged.
///
/// [`Quiet::Explained`]: crate::detect::triage::Quiet::Explained
/// [`Quiet::Judged`]: crate::detect::triage::Quiet::Judged
pub fn quiet_explained_and_judged(
    cfg: &Config,
    df: &polars::prelude::DataFrame,
    profile: &str,
    store: &crate::store::Store,
    quiet: &mut [Option<crate::detect::triage::Quiet>],
) -> Result<Vec<bool>, DetectError> {
    use crate::detect::triage::Quiet;
    use polars::prelude::*;
    let n = df.height();
    let mut proposed = vec![false; n];
    // Only breaks can be explained (a profile without tolerance has none).
    let Ok(is_break) = df.column(features::IS_BREAK) else {
        return Ok(proposed);
    };
    let is_break: Vec<bool> = is_break
        .bool()
        .map_err(features::FeatureError::from)?
        .iter()
        .map(|b| b.unwrap_or(false))
        .collect();
    // A text column (cast when needed), read in place.
    let text = |name: &str| -> Option<StringChunked> {
        df.column(name)
            .and_then(|c| c.cast(&DataType::String))
            .ok()
            .and_then(|c| c.str().ok().cloned())
    };
    let at = |ca: &Option<StringChunked>, i: usize| -> String {
        ca.as_ref()
            .and_then(|ca| ca.get(i))
            .unwrap_or("")
            .to_string()
    };
    let comments = text("bd_comment");
    let dq = text("bd_dq");
    let rules = rules_file(cfg).map_err(|e| DetectError::Config(e.to_string()))?;
    if comments.is_some() && !rules.explanations.is_empty() {
        for i in 0..n {
            if quiet[i].is_some() || !is_break[i] || !at(&dq, i).is_empty() {
                continue;
            }
            if let Some(e) = rules.explanation(profile, &at(&comments, i)) {
                quiet[i] = Some(Quiet::Explained);
                proposed[i] = rules.explained_auto_resolves(e);
            }
        }
    }
    // Verdicts: the rejected cases of this profile, by key.
    if !cfg.feedback.enabled {
        return Ok(proposed);
    }
    let mut judged: std::collections::HashMap<String, Vec<(chrono::NaiveDate, f64)>> =
        Default::default();
    for l in crate::cases::Cases::new(store).labels()? {
        if l.profile == profile
            && !l.label
            && let (Some(start), Some(d)) = (l.start_date, l.difference)
        {
            judged.entry(l.key).or_default().push((start, d));
        }
    }
    if judged.is_empty() {
        return Ok(proposed);
    }
    let keys = text("bd_key");
    let dates = text("bd_date");
    let (keys, dates): (Vec<String>, Vec<String>) =
        (0..n).map(|i| (at(&keys, i), at(&dates, i))).unzip();
    let diff = features::column_f64(df, "bd_difference").unwrap_or_else(|_| vec![f64::NAN; n]);
    let age = features::column_f64(df, "f_break_age").unwrap_or_else(|_| vec![0.0; n]);
    let share = cfg.feedback.judged_normal_share;
    for i in 0..n {
        if quiet[i].is_some() || !is_break[i] {
            continue;
        }
        let Some(verdicts) = judged.get(&keys[i]) else {
            continue;
        };
        let Ok(date) = chrono::NaiveDate::parse_from_str(&dates[i], "%Y-%m-%d") else {
            continue;
        };
        let days = if age[i].is_finite() && age[i] >= 0.0 {
            age[i].round() as i64
        } else {
            0
        };
        let start = date - chrono::Duration::days(days);
        let d = diff[i];
        if verdicts.iter().any(|(s, j)| {
            *s == start
                && d.is_finite()
                && d.signum() == j.signum()
                && (d - j).abs() <= share * j.abs()
        }) {
            quiet[i] = Some(Quiet::Judged);
        }
    }
    Ok(proposed)
}

/// The account key column (`bd_key`), when the table has one.
fn key_chunk(df: &polars::prelude::DataFrame) -> Option<polars::prelude::StringChunked> {
    df.column("bd_key").ok().and_then(|c| c.str().ok().cloned())
}

/// Each of `n` rows' account key (empty without keys), borrowed from the column.
fn key_refs(ca: Option<&polars::prelude::StringChunked>, n: usize) -> Vec<&str> {
    match ca {
        Some(ca) => ca.iter().map(|v| v.unwrap_or("")).collect(),
        None => vec![""; n],
    }
}

/// The triage thresholds of the configuration.
pub fn triage_params(cfg: &Config) -> crate::detect::triage::TriageParams {
    crate::detect::triage::TriageParams {
        own_z_min: cfg.detect.own_z_min,
        own_weight: cfg.detect.own_weight,
    }
}

/// Each row's reason to be quiet (None for a candidate) and its own z, from the feature table's
/// columns: within tolerance ([`features::IS_BREAK`] false), routine
/// ([`features::OWN_ROUTINE_CODE`]). A table without them (no tolerance) has only candidates.
pub fn triage_inputs(
    df: &polars::prelude::DataFrame,
) -> Result<(Vec<Option<crate::detect::triage::Quiet>>, Vec<f64>), features::FeatureError> {
    use crate::detect::triage::Quiet;
    let n = df.height();
    let mut quiet: Vec<Option<Quiet>> = vec![None; n];
    if let Ok(c) = df.column(features::IS_BREAK) {
        for (q, b) in quiet.iter_mut().zip(c.bool()?.iter()) {
            if b == Some(false) {
                *q = Some(Quiet::WithinTolerance);
            }
        }
    }
    if let Ok(c) = df.column(features::OWN_ROUTINE_CODE) {
        let c = c.cast(&polars::prelude::DataType::UInt32)?;
        for (q, code) in quiet.iter_mut().zip(c.u32()?.iter()) {
            if q.is_none()
                && let Some(r) = code.and_then(|c| crate::routine::Reason::from_code(c as u8))
            {
                *q = Some(Quiet::Routine(r));
            }
        }
    } else if let Ok(c) = df.column(features::OWN_ROUTINE) {
        for (q, text) in quiet.iter_mut().zip(c.str()?.iter()) {
            if q.is_none()
                && let Some(r) = text.and_then(crate::routine::Reason::parse)
            {
                *q = Some(Quiet::Routine(r));
            }
        }
    }
    let own_z = match df.column(features::OWN_Z) {
        Ok(_) => features::column_f64(df, features::OWN_Z)?,
        Err(_) => vec![0.0; n],
    };
    Ok((quiet, own_z))
}

/// The current rows with the detection columns: score, decision, is_anomaly, rank, cluster,
/// top_features, model_version. `all_rows`: every row in file order; otherwise the flagged rows
/// (and the explained breaks proposed for auto-resolution), most anomalous first (the columns are only built for the rows written).
pub fn with_detection(
    df: &polars::prelude::DataFrame,
    d: &Detection,
    names: &[String],
    all_rows: bool,
) -> Result<polars::prelude::DataFrame, polars::prelude::PolarsError> {
    use polars::prelude::*;
    let s = &d.scored;
    let idx: Vec<usize> = if all_rows {
        (0..s.score.len()).collect()
    } else {
        let mut f: Vec<usize> = (0..s.score.len())
            .filter(|i| s.flag[*i] || d.proposed.get(*i).copied().unwrap_or(false))
            .collect();
        f.sort_by_key(|i| d.rank[*i]);
        f
    };
    let mut out = if all_rows {
        df.clone()
    } else {
        let take = IdxCa::from_vec("idx".into(), idx.iter().map(|i| *i as IdxSize).collect());
        df.take(&take)?
    };
    let pick = |v: &[f64]| -> Vec<f64> { idx.iter().map(|i| v[*i]).collect() };
    out.with_column(Column::new("score".into(), pick(&s.score)))?;
    out.with_column(Column::new("model_score".into(), pick(&s.model)))?;
    out.with_column(Column::new("decision".into(), pick(&s.decision)))?;
    out.with_column(Column::new(
        "is_anomaly".into(),
        idx.iter().map(|i| s.flag[*i]).collect::<Vec<bool>>(),
    ))?;
    out.with_column(Column::new(
        "rank".into(),
        idx.iter().map(|i| d.rank[*i] as u32).collect::<Vec<u32>>(),
    ))?;
    out.with_column(Column::new(
        "cluster".into(),
        idx.iter()
            .map(|i| s.cluster[*i] as u32)
            .collect::<Vec<u32>>(),
    ))?;
    let top: Vec<String> = idx
        .iter()
        .map(|i| crate::detect::model::top_attributions(&s.attributions[*i], names, 3))
        .collect();
    out.with_column(Column::new("top_features".into(), top))?;
    let n = out.height();
    out.with_column(Column::new_scalar(
        "model_version".into(),
        Scalar::new(
            DataType::String,
            AnyValue::StringOwned(d.bundle.version().into()),
        ),
        n,
    ))?;
    Ok(out)
}

/// The rules file the configuration names (`categorize.rules`), or the built-in one.
pub fn rules_file(
    cfg: &Config,
) -> Result<crate::categorize::RulesFile, crate::categorize::RulesError> {
    let p = cfg.categorize.rules.trim();
    crate::categorize::RulesFile::load((!p.is_empty()).then(|| std::path::Path::new(p)))
}

/// The categorization of a run's anomalies.
pub struct Categorized {
    pub cats: Vec<crate::categorize::Categorization>,
    /// What the LLM pass did, when it is enabled.
    pub llm: Option<crate::categorize::llm::LlmReport>,
}

/// Categorizes `rows` of `table` (features with the detection's columns, as [`with_detection`]
/// builds it) by the rules, then by the LLM when `llm.enabled` (highest ranks first), with its
/// answers cached in `store`.
pub fn categorize(
    cfg: &Config,
    rules: &crate::categorize::RulesFile,
    table: &polars::prelude::DataFrame,
    resolved: &crate::profile::Resolved,
    rows: &[usize],
    flagged_total: usize,
    store: &crate::store::Store,
) -> Result<Categorized, crate::categorize::RulesError> {
    categorize_observed(
        cfg,
        rules,
        table,
        resolved,
        rows,
        flagged_total,
        store,
        None,
    )
}

/// [`categorize`], with `on_answer` (when given) following the LLM's calls: see
/// [`crate::categorize::llm::refine`].
#[allow(clippy::too_many_arguments)]
pub fn categorize_observed(
    cfg: &Config,
    rules: &crate::categorize::RulesFile,
    table: &polars::prelude::DataFrame,
    resolved: &crate::profile::Resolved,
    rows: &[usize],
    flagged_total: usize,
    store: &crate::store::Store,
    on_answer: Option<&mut dyn FnMut(usize, usize)>,
) -> Result<Categorized, crate::categorize::RulesError> {
    use crate::categorize::{RulesError, llm};
    if !cfg.llm.enabled {
        return Ok(Categorized {
            cats: categorize_rows(rules, table, resolved, rows, flagged_total)?,
            llm: None,
        });
    }
    let mut c = crate::categorize::Categorizer::new(rules, table, resolved)?;
    c.flagged_total = flagged_total;
    let facts = c.facts(table, rows);
    let mut cats = c.categorize(&facts);
    let mut report = None;
    if !cats.is_empty() {
        let p = cfg.llm.prompt.trim();
        let prompt = llm::Prompt::load((!p.is_empty()).then(|| std::path::Path::new(p)))
            .map_err(RulesError::Llm)?;
        let client = crate::llm::LlmClient::new(llm::settings(&cfg.llm))
            .map_err(|e| RulesError::Llm(e.to_string()))?;
        // Highest ranks first (the `rank` column; file order without one).
        let rank: Vec<f64> = match table
            .column("rank")
            .and_then(|c| c.cast(&polars::prelude::DataType::Float64))
        {
            Ok(col) => {
                let ca = col
                    .f64()
                    .map_err(|e| RulesError::Llm(e.to_string()))?
                    .clone();
                rows.iter()
                    .map(|r| ca.get(*r).unwrap_or(f64::INFINITY))
                    .collect()
            }
            Err(_) => (0..rows.len()).map(|i| i as f64).collect(),
        };
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by(|a, b| rank[*a].total_cmp(&rank[*b]));
        let r = llm::refine(
            &cfg.llm, &prompt, &client, store, &c, &facts, &mut cats, &order, on_answer,
        );
        tracing::info!(
            rows = r.rows,
            cache_hits = r.cache_hits,
            asked = r.asked,
            used = r.used,
            "llm categorization"
        );
        report = Some(r);
    }
    Ok(Categorized { cats, llm: report })
}

/// Rows whose facts the rules read at a time (without the LLM, whose pass needs them all).
const FACTS_BLOCK: usize = 65_536;

/// Categorizes `rows` of `table` by the rules only.
pub fn categorize_rows(
    rules: &crate::categorize::RulesFile,
    table: &polars::prelude::DataFrame,
    resolved: &crate::profile::Resolved,
    rows: &[usize],
    flagged_total: usize,
) -> Result<Vec<crate::categorize::Categorization>, crate::categorize::RulesError> {
    let mut c = crate::categorize::Categorizer::new(rules, table, resolved)?;
    c.flagged_total = flagged_total;
    Ok(categorize_in_blocks(&c, table, rows, FACTS_BLOCK))
}

/// The rules read each row on its own: the facts are gathered `block` rows at a time, so memory
/// holds one block's.
pub fn categorize_in_blocks(
    c: &crate::categorize::Categorizer<'_>,
    table: &polars::prelude::DataFrame,
    rows: &[usize],
    block: usize,
) -> Vec<crate::categorize::Categorization> {
    let mut cats = Vec::with_capacity(rows.len());
    for b in rows.chunks(block.max(1)) {
        cats.extend(c.categorize(&c.facts(table, b)));
    }
    cats
}

/// Adds the categorization columns to `table`: `bucket`, `bucket_confidence`, `bucket_rule`,
/// `severity`, `auto_resolve`, `categorized_by`, `summary` and `bucket_note` (why an LLM answer
/// was not used, or which bucket the rules had chosen) — empty on rows not in `rows`.
pub fn with_categories(
    table: &mut polars::prelude::DataFrame,
    rows: &[usize],
    cats: &[crate::categorize::Categorization],
) -> Result<(), polars::prelude::PolarsError> {
    use polars::prelude::*;
    let at = row_slots(table.height(), rows);
    let text = |f: &dyn Fn(&crate::categorize::Categorization) -> String| spread(&at, cats, f);
    table.with_column(Column::new("bucket".into(), text(&|c| c.bucket.clone())))?;
    table.with_column(Column::new(
        "bucket_confidence".into(),
        at.iter()
            .map(|k| k.map(|k| cats[k].confidence))
            .collect::<Vec<Option<f64>>>(),
    ))?;
    table.with_column(Column::new("bucket_rule".into(), text(&|c| c.rule.clone())))?;
    table.with_column(Column::new(
        "severity".into(),
        text(&|c| c.severity.as_str().to_string()),
    ))?;
    table.with_column(Column::new(
        "auto_resolve".into(),
        at.iter()
            .map(|k| k.map(|k| cats[k].auto_resolve))
            .collect::<Vec<Option<bool>>>(),
    ))?;
    table.with_column(Column::new(
        "categorized_by".into(),
        text(&|c| c.decided_by.as_str().to_string()),
    ))?;
    table.with_column(Column::new("summary".into(), text(&|c| c.summary.clone())))?;
    table.with_column(Column::new("bucket_note".into(), text(&|c| c.note.clone())))?;
    Ok(())
}

/// Names of the columns an analysis adds besides the canonical `bd_*` and feature `f_*` ones
/// (detection, categorization, cases): everything else in its table is the file's own.
pub const RESULT_COLUMNS: [&str; 19] = [
    "score",
    "model_score",
    "decision",
    "is_anomaly",
    "rank",
    "cluster",
    "top_features",
    "model_version",
    "bucket",
    "bucket_confidence",
    "bucket_rule",
    "severity",
    "auto_resolve",
    "categorized_by",
    "summary",
    "bucket_note",
    "case_id",
    "ticket",
    "case_status",
];

/// Opens or updates one case per categorized anomaly (`rows` of `table`, with `cats`), in
/// durable transactions, and returns what each upsert did. The break's identity is (profile,
/// key, the date its run began): re-running a file changes nothing, and a break that persists is
/// the same case, older. With the file's `cycle`, the cases the records open are rolled forward
/// through it as they are written ([`crate::cases::Cases::upsert_batch_in`]).
#[allow(clippy::too_many_arguments)]
pub fn record_case_outcomes(
    store: &crate::store::Store,
    policy: &crate::config::CasesConfig,
    profile: &str,
    table: &polars::prelude::DataFrame,
    rows: &[usize],
    cats: &[crate::categorize::Categorization],
    model_version: &str,
    cycle: Option<&crate::cases::Cycle>,
) -> Result<Vec<crate::cases::UpsertOutcome>, crate::cases::CaseError> {
    let (inputs, auto, cases) =
        case_inputs(store, policy, profile, table, rows, cats, model_version)?;
    cases.upsert_batch_in(&inputs, &auto, cycle)
}

/// [`record_case_outcomes`] as a run records its cases: what each record did to its case,
/// without the cases ([`crate::cases::Cases::record_batch`]).
#[allow(clippy::too_many_arguments)]
pub fn record_case_marks(
    store: &crate::store::Store,
    policy: &crate::config::CasesConfig,
    profile: &str,
    table: &polars::prelude::DataFrame,
    rows: &[usize],
    cats: &[crate::categorize::Categorization],
    model_version: &str,
    cycle: Option<&crate::cases::Cycle>,
) -> Result<Vec<crate::cases::Recorded>, crate::cases::CaseError> {
    let (inputs, auto, cases) =
        case_inputs(store, policy, profile, table, rows, cats, model_version)?;
    cases.record_batch(&inputs, &auto, cycle)
}

/// The case inputs of `rows` of `table` (with whether the rules propose each for
/// auto-resolution), and the case workflow under the profile's policy.
type CaseInputs<'s> = (
    Vec<crate::cases::BreakInput>,
    Vec<bool>,
    crate::cases::Cases<'s>,
);

fn case_inputs<'s>(
    store: &'s crate::store::Store,
    policy: &crate::config::CasesConfig,
    profile: &str,
    table: &polars::prelude::DataFrame,
    rows: &[usize],
    cats: &[crate::categorize::Categorization],
    model_version: &str,
) -> Result<CaseInputs<'s>, crate::cases::CaseError> {
    let (inputs, auto) = break_inputs(profile, table, rows, cats, model_version, None)?;
    Ok((inputs, auto, case_workflow(store, policy)?))
}

/// The case workflow of `store` under a profile's case `policy` (its roll-forward and routing).
pub fn case_workflow<'s>(
    store: &'s crate::store::Store,
    policy: &crate::config::CasesConfig,
) -> Result<crate::cases::Cases<'s>, crate::cases::CaseError> {
    let router = policy.router().map_err(crate::cases::CaseError::Invalid)?;
    Ok(crate::cases::Cases::new(store)
        .rolling(policy.roll())
        .routed(std::sync::Arc::new(router)))
}

/// The case input of each of `rows` of `table` (categorized as `cats`), with whether the rules
/// propose it for auto-resolution. A record without a key is named `row L`, where L is its
/// entry in `labels` (its row in `table` without them).
pub fn break_inputs(
    profile: &str,
    table: &polars::prelude::DataFrame,
    rows: &[usize],
    cats: &[crate::categorize::Categorization],
    model_version: &str,
    labels: Option<&[u32]>,
) -> Result<(Vec<crate::cases::BreakInput>, Vec<bool>), crate::cases::CaseError> {
    use crate::cases::{BreakInput, CaseError};
    use polars::prelude::*;
    let internal = |e: PolarsError| CaseError::Invalid(format!("reading the anomalies: {e}"));
    let text_col = |name: &str| -> Result<Option<StringChunked>, CaseError> {
        match table.column(name) {
            Ok(c) => Ok(Some(
                c.cast(&DataType::String)
                    .map_err(internal)?
                    .str()
                    .map_err(internal)?
                    .clone(),
            )),
            Err(_) => Ok(None),
        }
    };
    let num_col = |name: &str| -> Result<Option<Float64Chunked>, CaseError> {
        match table.column(name) {
            Ok(c) => Ok(Some(
                c.cast(&DataType::Float64)
                    .map_err(internal)?
                    .f64()
                    .map_err(internal)?
                    .clone(),
            )),
            Err(_) => Ok(None),
        }
    };
    let cols = BreakColumns::of(table).map_err(internal)?;
    let score = num_col("score")?;
    let rank = num_col("rank")?;
    let diff = num_col("bd_difference")?;
    // The file's own columns (not the canonical, feature or result columns) make the snapshot.
    let snapshot: Vec<(String, StringChunked)> = table
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| is_snapshot_column(c))
        .filter_map(|c| text_col(&c).ok().flatten().map(|ca| (c, ca)))
        .collect();
    let today = chrono::Utc::now().date_naive();
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    // Each record's snapshot is built on its own: in parallel.
    use rayon::prelude::*;
    let built: Vec<(BreakInput, bool)> = rows
        .par_iter()
        .enumerate()
        .map(|(k, &r)| {
            let c = &cats[k];
            let label = labels.and_then(|l| l.get(k)).map_or(r, |l| *l as usize);
            let (key, date, start) = cols.key_and_dates(r, label, today);
            let num = |ca: &Option<Float64Chunked>| {
                ca.as_ref().and_then(|ca| ca.get(r)).unwrap_or(f64::NAN)
            };
            let mut row = serde_json::Map::new();
            for (name, ca) in &snapshot {
                row.insert(
                    name.clone(),
                    serde_json::Value::String(ca.get(r).unwrap_or("").to_string()),
                );
            }
            let rk = num(&rank);
            let input = BreakInput {
                profile: profile.to_string(),
                key,
                start_date: start,
                date,
                bucket: c.bucket.clone(),
                bucket_rule: c.rule.clone(),
                confidence: c.confidence,
                severity: c.severity.as_str().to_string(),
                summary: c.summary.clone(),
                score: finite(num(&score)),
                rank: if rk.is_finite() && rk >= 0.0 {
                    rk as u64
                } else {
                    0
                },
                difference: finite(num(&diff)),
                model_version: model_version.to_string(),
                row,
            };
            (input, c.auto_resolve)
        })
        .collect();
    Ok(built.into_iter().unzip())
}

/// What the run summary says of a day's file besides its cases.
#[derive(Debug, Clone, Default)]
pub struct DayFacts {
    pub profile: String,
    /// Rows read.
    pub rows: usize,
    pub flagged: usize,
    /// Breaks quiet because they are routine for their account.
    pub routine: usize,
}

impl DayFacts {
    pub fn of(result: &RunOutput, det: &Detection) -> DayFacts {
        DayFacts {
            profile: result.profile.clone(),
            rows: result.rows_read,
            flagged: det.scored.flag.iter().filter(|f| **f).count(),
            routine: routine_breaks(&det.scored.triage),
        }
    }
}

/// The breaks the triage left quiet as routine for their account.
pub fn routine_breaks(triage: &crate::detect::triage::TriageSummary) -> usize {
    triage
        .quiet_breaks
        .iter()
        .filter(|(k, _)| k.starts_with("routine"))
        .map(|(_, n)| n)
        .sum()
}

/// The columns of a result table that say which break a record belongs to.
struct BreakColumns {
    keys: Option<polars::prelude::StringChunked>,
    dates: Option<polars::prelude::StringChunked>,
    age: Option<polars::prelude::Float64Chunked>,
}

impl BreakColumns {
    fn of(table: &polars::prelude::DataFrame) -> Result<Self, polars::prelude::PolarsError> {
        use polars::prelude::*;
        let text = |name: &str| -> PolarsResult<Option<StringChunked>> {
            match table.column(name) {
                Ok(c) => Ok(Some(c.cast(&DataType::String)?.str()?.clone())),
                Err(_) => Ok(None),
            }
        };
        let age = match table.column("f_break_age") {
            Ok(c) => Some(c.cast(&DataType::Float64)?.f64()?.clone()),
            Err(_) => None,
        };
        Ok(BreakColumns {
            keys: text("bd_key")?,
            dates: text("bd_date")?,
            age,
        })
    }

    /// Row `r`'s account key (`row L` without one, L being `label`), date (`today` without
    /// one) and the date its break began (the date less the break's age).
    fn key_and_dates(
        &self,
        r: usize,
        label: usize,
        today: chrono::NaiveDate,
    ) -> (String, chrono::NaiveDate, chrono::NaiveDate) {
        let key = self
            .keys
            .as_ref()
            .and_then(|ca| ca.get(r))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("row {label}"));
        let date = self
            .dates
            .as_ref()
            .and_then(|ca| ca.get(r))
            .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .unwrap_or(today);
        let days = self
            .age
            .as_ref()
            .and_then(|ca| ca.get(r))
            .filter(|v| v.is_finite() && *v >= 0.0)
            .unwrap_or(0.0);
        let start = date - chrono::Duration::days(days.round() as i64);
        (key, date, start)
    }
}

/// Rolls the profile's cases forward through the run's `cycle` (its current rows; None when the
/// file has no dates), counts the run summary and records it in the store. `recorded` says
/// what the run's flagged records did to their cases; the status of those the roll-forward
/// changed is refreshed in it.
pub fn roll_forward_run(
    cfg: &Config,
    store: &crate::store::Store,
    day: &DayFacts,
    cycle: Option<crate::cases::Cycle>,
    recorded: &mut [crate::cases::Recorded],
    file: &str,
) -> Result<crate::cycle::RunSummary, crate::cases::CaseError> {
    let changes: Vec<(String, crate::cases::Change)> =
        recorded.iter().map(|r| (r.id.clone(), r.change)).collect();
    let (summary, open, rolled) = roll_forward_changes(cfg, store, day, cycle, &changes, file)?;
    if rolled {
        let by_id: std::collections::HashMap<&str, &crate::cases::Case> =
            open.iter().map(|c| (c.id.as_str(), c)).collect();
        for r in recorded.iter_mut() {
            if let Some(now) = by_id.get(r.id.as_str()) {
                r.status = now.status;
            }
        }
    }
    Ok(summary)
}

/// [`roll_forward_run`] over what the upserts did to each record's case (`changes`: case id and
/// change, in the records' order). Returns the summary, the profile's outstanding cases after
/// the roll, and whether the roll changed any (cleared or recertified).
fn roll_forward_changes(
    cfg: &Config,
    store: &crate::store::Store,
    day: &DayFacts,
    cycle: Option<crate::cases::Cycle>,
    changes: &[(String, crate::cases::Change)],
    file: &str,
) -> Result<(crate::cycle::RunSummary, Vec<crate::cases::Case>, bool), crate::cases::CaseError> {
    use crate::cases::{Cases, Change};
    let handle = Cases::new(store).rolling(cfg.cases.roll());
    let mut summary = crate::cycle::RunSummary {
        profile: day.profile.clone(),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        file: file.to_string(),
        rows: day.rows,
        flagged: day.flagged,
        routine: day.routine,
        ..Default::default()
    };
    // The profile's outstanding cases (a cleared case has nothing left to roll), read once for
    // the roll-forward and the summary's tallies, without their record snapshots.
    let mut open = handle.outstanding_briefs(&day.profile)?;
    tracing::debug!(cases = open.len(), resident_mib = ?crate::logging::resident_mib(), "outstanding cases read");
    let pairs = changes.iter().map(|(id, c)| (id.as_str(), *c));
    let mut rolled = false;
    if let Some(mut cycle) = cycle {
        summary.as_of = cycle.as_of().map(|d| d.to_string());
        summary.breaks = cycle
            .records
            .values()
            .flat_map(|r| r.iter())
            .filter(|r| r.out)
            .count();
        cycle.opened = changes
            .iter()
            .filter(|(_, c)| *c == Change::Created)
            .map(|(id, _)| id.clone())
            .collect();
        let roll = handle.roll_forward_over(&cycle, &mut open)?;
        rolled = roll.cleared + roll.recertified > 0;
        summary.count_changes(pairs, &roll);
    } else {
        summary.count_changes(pairs, &Default::default());
    }
    summary.matched = summary.rows.saturating_sub(summary.breaks);
    summary.tally(&open, &cfg.cases.age_bands);
    let bytes = serde_json::to_vec(&summary)
        .map_err(|e| crate::cases::CaseError::Invalid(e.to_string()))?;
    store.put_run(&bytes)?;
    Ok((summary, open, rolled))
}

/// What a run keeps of the case of a record it recorded: enough for the output's case columns.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseMark {
    pub id: String,
    pub ticket: String,
    pub status: crate::cases::Status,
}

/// Records the cases of `rows` and rolls the profile's cases forward, as [`record_case_outcomes`]
/// then [`roll_forward_run`] do: [`record_in_groups`] with a roll-forward.
#[allow(clippy::too_many_arguments)]
pub fn record_and_roll_in_chunks(
    cfg: &Config,
    store: &crate::store::Store,
    table: &polars::prelude::DataFrame,
    rows: &[usize],
    cats: &[crate::categorize::Categorization],
    model_version: &str,
    day: &DayFacts,
    cycle: Option<crate::cases::Cycle>,
    file: &str,
    chunk: usize,
) -> Result<(Vec<CaseMark>, crate::cycle::RunSummary), crate::cases::CaseError> {
    let (marks, summary) = record_in_groups(
        cfg,
        store,
        &day.profile,
        table,
        rows,
        cats,
        model_version,
        Some((day.clone(), cycle, file.to_string())),
        chunk,
    )?;
    let summary = summary.ok_or_else(|| {
        crate::cases::CaseError::Invalid("the roll-forward gave no summary".into())
    })?;
    Ok((marks, summary))
}

/// A column of the file itself (not a canonical, feature or result column): part of a case's
/// snapshot of its record.
fn is_snapshot_column(c: &str) -> bool {
    !c.starts_with("bd_") && !c.starts_with("f_") && !RESULT_COLUMNS.contains(&c)
}

/// Records the cases of `rows` of `profile` (and, with `roll`, rolls the profile's cases
/// forward through the day's cycle and records the run summary), holding at most about `chunk`
/// records' inputs and cases at a time ([`break_groups`], [`record_groups`]). Returns each
/// record's case mark, and the summary with `roll`.
#[allow(clippy::too_many_arguments)]
pub fn record_in_groups(
    cfg: &Config,
    store: &crate::store::Store,
    profile: &str,
    table: &polars::prelude::DataFrame,
    rows: &[usize],
    cats: &[crate::categorize::Categorization],
    model_version: &str,
    roll: Option<(DayFacts, Option<crate::cases::Cycle>, String)>,
    chunk: usize,
) -> Result<(Vec<CaseMark>, Option<crate::cycle::RunSummary>), crate::cases::CaseError> {
    let cols = BreakColumns::of(table)
        .map_err(|e| crate::cases::CaseError::Invalid(format!("reading the anomalies: {e}")))?;
    let today = chrono::Utc::now().date_naive();
    let groups = break_groups(
        rows.iter().map(|&r| {
            let (key, _, start) = cols.key_and_dates(r, r, today);
            (key, start)
        }),
        chunk,
    );
    record_groups(cfg, store, &groups, rows.len(), roll, |group| {
        let sub_rows: Vec<usize> = group.iter().map(|k| rows[*k]).collect();
        let sub_cats: Vec<crate::categorize::Categorization> =
            group.iter().map(|k| cats[*k].clone()).collect();
        break_inputs(profile, table, &sub_rows, &sub_cats, model_version, None)
    })
}

/// The records (given by their breaks, in the records' order) cut in groups of about `chunk`
/// in their order, every record of a break going with the break's first record: each group
/// lists its records' positions in order. Two records are of the same break when their
/// `breaks` items are equal.
pub fn break_groups<B: std::hash::Hash + Eq>(
    breaks: impl Iterator<Item = B>,
    chunk: usize,
) -> Vec<Vec<usize>> {
    let chunk = chunk.max(1);
    let mut group_of: std::collections::HashMap<B, usize> = std::collections::HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (k, b) in breaks.enumerate() {
        let g = *group_of.entry(b).or_insert(k / chunk);
        if groups.len() <= g {
            groups.resize_with(g + 1, Vec::new);
        }
        groups[g].push(k);
    }
    groups.retain(|g| !g.is_empty());
    groups
}

/// Records the cases of `n` records cut in `groups` ([`break_groups`]), one group
/// at a time (`inputs_of` gives a group's case inputs, with whether each is proposed for
/// auto-resolution), so tickets follow the records' order and each break's records fold
/// together exactly as in one batch; with `roll`, then rolls the profile's cases forward
/// through the day's cycle and records the run summary. Returns each record's case mark, and
/// the summary with `roll`.
pub fn record_groups(
    cfg: &Config,
    store: &crate::store::Store,
    groups: &[Vec<usize>],
    n: usize,
    roll: Option<(DayFacts, Option<crate::cases::Cycle>, String)>,
    mut inputs_of: impl FnMut(
        &[usize],
    ) -> Result<
        (Vec<crate::cases::BreakInput>, Vec<bool>),
        crate::cases::CaseError,
    >,
) -> Result<(Vec<CaseMark>, Option<crate::cycle::RunSummary>), crate::cases::CaseError> {
    let policy = &cfg.cases;
    let cycle = roll.as_ref().and_then(|r| r.1.as_ref());
    let mut marks: Vec<Option<CaseMark>> = vec![None; n];
    let mut changes: Vec<(String, crate::cases::Change)> = Vec::with_capacity(n);
    let mut order: Vec<usize> = Vec::with_capacity(n);
    // A group's writes change nothing another group reads: its breaks are its own, and a case
    // this run opens is not cleared by it (`roll_opened`), so it is never taken for a later
    // break's reappearance.
    let cases = case_workflow(store, policy)?;
    for group in groups {
        let (inputs, auto) = inputs_of(group)?;
        let recorded = cases.record_batch(&inputs, &auto, cycle)?;
        drop(inputs);
        for (k, r) in group.iter().zip(recorded) {
            changes.push((r.id.clone(), r.change));
            order.push(*k);
            marks[*k] = Some(CaseMark {
                id: r.id,
                ticket: r.ticket,
                status: r.status,
            });
        }
    }
    tracing::debug!(resident_mib = ?crate::logging::resident_mib(), "cases recorded");
    let mut summary = None;
    if let Some((day, cycle, file)) = roll {
        // The summary counts the records' changes in the records' order.
        let mut in_order: Vec<(String, crate::cases::Change)> =
            vec![(String::new(), crate::cases::Change::Unchanged); n];
        for ((id, c), k) in changes.into_iter().zip(order) {
            in_order[k] = (id, c);
        }
        let (s, open, rolled) = roll_forward_changes(cfg, store, &day, cycle, &in_order, &file)?;
        drop(in_order);
        if rolled {
            let by_id: std::collections::HashMap<&str, &crate::cases::Case> =
                open.iter().map(|c| (c.id.as_str(), c)).collect();
            for m in marks.iter_mut().flatten() {
                if let Some(now) = by_id.get(m.id.as_str()) {
                    m.status = now.status;
                }
            }
        }
        summary = Some(s);
    }
    marks
        .into_iter()
        .map(|m| {
            m.ok_or_else(|| {
                crate::cases::CaseError::Invalid("a record was left without its case".into())
            })
        })
        .collect::<Result<_, _>>()
        .map(|marks| (marks, summary))
}

/// The cases stage of a file's analysis: one case per anomaly (`rows` of `table`), those the
/// file opens rolled forward through its cycle as they are written, then the profile's other
/// outstanding cases, and the run summary recorded. Returns the case of each of `rows`.
#[allow(clippy::too_many_arguments)]
fn record_run_cases(
    cfg: &Config,
    store: &crate::store::Store,
    result: &RunOutput,
    det: &Detection,
    table: &polars::prelude::DataFrame,
    rows: &[usize],
    categorized: &Categorized,
    file: &str,
) -> Result<(Vec<crate::cases::Recorded>, crate::cycle::RunSummary), crate::cases::CaseError> {
    let cycle = crate::cycle::cycle_of(&result.features.df, &result.profile, &cfg.cases.absent);
    let mut recorded = record_case_marks(
        store,
        &cfg.cases,
        &result.profile,
        table,
        rows,
        &categorized.cats,
        &det.bundle.version(),
        cycle.as_ref(),
    )?;
    let summary = roll_forward_run(
        cfg,
        store,
        &DayFacts::of(result, det),
        cycle,
        &mut recorded,
        file,
    )?;
    Ok((recorded, summary))
}

/// Adds `case_id`, `ticket` and `case_status` to `table` for `rows` (empty elsewhere).
pub fn with_cases(
    table: &mut polars::prelude::DataFrame,
    rows: &[usize],
    cases: &[crate::cases::Recorded],
) -> Result<(), polars::prelude::PolarsError> {
    use polars::prelude::*;
    let at = row_slots(table.height(), rows);
    let text = |f: &dyn Fn(&crate::cases::Recorded) -> String| spread(&at, cases, f);
    table.with_column(Column::new("case_id".into(), text(&|c| c.id.clone())))?;
    table.with_column(Column::new("ticket".into(), text(&|c| c.ticket.clone())))?;
    table.with_column(Column::new(
        "case_status".into(),
        text(&|c| c.status.as_str().to_string()),
    ))?;
    Ok(())
}

/// For each of `n` table rows, the position of that row in `rows` (None for rows not listed).
fn row_slots(n: usize, rows: &[usize]) -> Vec<Option<usize>> {
    let mut at = vec![None; n];
    for (k, r) in rows.iter().enumerate() {
        if *r < n {
            at[*r] = Some(k);
        }
    }
    at
}

/// A text column over the table's rows: `f` of the row's item, empty for rows without one.
fn spread<T>(at: &[Option<usize>], items: &[T], f: &dyn Fn(&T) -> String) -> Vec<String> {
    at.iter()
        .map(|k| k.map(|k| f(&items[k])).unwrap_or_default())
        .collect()
}

/// What the analysis of a file needs besides the input options.
#[derive(Debug, Clone, Default)]
pub struct AnalyzeOptions {
    pub detect: DetectOptions,
    /// Keep every row in the table (flagged or not), in file order; otherwise only the flagged
    /// rows, most anomalous first.
    pub all_rows: bool,
}

/// A file analysed end to end: features, detection, categorization and the cases recorded.
pub struct Analysis {
    pub run: RunOutput,
    pub det: Detection,
    /// The rows written by `run`: the file's columns, features, detection, categorization and case
    /// columns.
    pub table: polars::prelude::DataFrame,
    /// The table rows that are anomalies (all of them unless `all_rows`).
    pub rows: Vec<usize>,
    pub categorized: Categorized,
    /// What each of `rows` did to its case (id, ticket, status).
    pub cases: Vec<crate::cases::Recorded>,
    /// The cycle's summary: rows, breaks, and what happened to the cases.
    pub summary: crate::cycle::RunSummary,
    pub timings: Vec<(&'static str, Duration)>,
}

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Rules(#[from] crate::categorize::RulesError),
    #[error(transparent)]
    Cases(#[from] crate::cases::CaseError),
    #[error("building the result table: {0}")]
    Table(#[from] polars::prelude::PolarsError),
}

/// Reads, checks, computes features, scores, categorizes and records one case per anomaly — the
/// work of `run`, the TUI and the service. Progress covers every stage; `cancel` is honoured
/// between stages up to the point where cases are written (after which the run completes, so
/// the store never holds half a run).
pub fn analyze(
    cfg: &Config,
    opts: &RunOptions,
    aopts: &AnalyzeOptions,
    store: &crate::store::Store,
    rejects_hint: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<Analysis, AnalyzeError> {
    analyze_observed(
        cfg,
        opts,
        aopts,
        store,
        rejects_hint,
        progress,
        cancel,
        &mut |_| {},
    )
}

/// A result available before the analysis ends, for faces that show results as stages finish.
pub enum Partial<'a> {
    /// Scored and clustered: `table` has the detection columns (as [`with_detection`] builds
    /// it) but no categories or cases yet.
    Detected {
        run: &'a RunOutput,
        det: &'a Detection,
        table: &'a polars::prelude::DataFrame,
    },
}

/// [`analyze`], handing `observe` each [`Partial`] result as its stage finishes.
#[allow(clippy::too_many_arguments)]
pub fn analyze_observed(
    cfg: &Config,
    opts: &RunOptions,
    aopts: &AnalyzeOptions,
    store: &crate::store::Store,
    rejects_hint: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
    observe: &mut dyn FnMut(Partial<'_>),
) -> Result<Analysis, AnalyzeError> {
    analyze_with(
        cfg,
        opts,
        aopts,
        None,
        store,
        rejects_hint,
        progress,
        cancel,
        observe,
    )
}

/// The analysis of a file: with the model of the store ([`score`]: trained when there is none
/// that fits) or with `model` read from a file (on one partition of the accounts, recording
/// cases or not).
#[allow(clippy::too_many_arguments)]
fn analyze_with(
    cfg: &Config,
    opts: &RunOptions,
    aopts: &AnalyzeOptions,
    mut model: Option<BundleRun<'_>>,
    store: &crate::store::Store,
    rejects_hint: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
    observe: &mut dyn FnMut(Partial<'_>),
) -> Result<Analysis, AnalyzeError> {
    const AFTER: u64 = 3;
    let mut total = 0;
    let partition = model.as_ref().and_then(|m| m.partition);
    let spill = model.as_ref().and_then(|m| m.spill);
    let record_cases = model.as_ref().is_none_or(|m| m.record_cases);
    let prepared = model.as_mut().and_then(|m| m.prepared.take());
    let mut result = match prepared {
        Some(r) => {
            total = AFTER;
            r
        }
        None => run_selecting(
            cfg,
            opts,
            partition,
            spill,
            rejects_hint,
            &mut |p: Progress| {
                total = p.total + AFTER;
                progress(Progress {
                    stage: p.stage,
                    done: p.done,
                    total: p.total + AFTER,
                })
            },
            cancel,
        )?,
    };
    let base = total.saturating_sub(AFTER);
    let step = |progress: &mut dyn FnMut(Progress), stage: Stage, k: u64| {
        if cancel.load(Ordering::Relaxed) {
            return Err(PipelineError::Cancelled);
        }
        progress(Progress {
            stage,
            done: base + k,
            total,
        });
        Ok(())
    };
    let mut timings = Vec::new();
    step(progress, Stage::Detect, 0)?;
    let det = match model {
        None => score(cfg, &mut result, store, &aopts.detect)?,
        Some(BundleRun {
            bundle,
            known: Some(status),
            ..
        }) => score_with_bundle(cfg, &mut result, store, &aopts.detect, bundle, status)?,
        Some(m) => score_from_file(cfg, &mut result, store, &aopts.detect, m.bundle, m.file)?,
    };
    let t = Instant::now();
    let mut table = with_detection(
        &result.features.df,
        &det,
        &result.features.names,
        aopts.all_rows,
    )?;
    timings.push(("table", t.elapsed()));
    observe(Partial::Detected {
        run: &result,
        det: &det,
        table: &table,
    });

    step(progress, Stage::Categorize, 1)?;
    let t = Instant::now();
    let rules = rules_file(cfg)?;
    let flagged_total = det.scored.flag.iter().filter(|f| **f).count();
    // The flagged rows, and the explained breaks proposed for auto-resolution.
    let rows: Vec<usize> = if aopts.all_rows {
        (0..table.height())
            .filter(|i| det.scored.flag[*i] || det.proposed.get(*i).copied().unwrap_or(false))
            .collect()
    } else {
        (0..table.height()).collect()
    };
    let categorized = categorize_observed(
        cfg,
        &rules,
        &table,
        &result.resolved,
        &rows,
        flagged_total,
        store,
        Some(&mut |done, asked| {
            progress(Progress {
                stage: Stage::CategorizeLlm,
                done: done as u64,
                total: asked as u64,
            })
        }),
    )?;
    with_categories(&mut table, &rows, &categorized.cats)?;
    timings.push(("categorize", t.elapsed()));

    let (cases, summary) = if record_cases {
        step(progress, Stage::Cases, 2)?;
        let t = Instant::now();
        // Cases are durable before anything that names them is shown or written.
        let file = opts.input.display().to_string();
        let (cases, summary) = record_run_cases(
            cfg,
            store,
            &result,
            &det,
            &table,
            &rows,
            &categorized,
            &file,
        )?;
        with_cases(&mut table, &rows, &cases)?;
        timings.push(("cases", t.elapsed()));
        (cases, summary)
    } else {
        with_cases(&mut table, &[], &[])?;
        (Vec::new(), crate::cycle::RunSummary::default())
    };
    progress(Progress {
        stage: if record_cases {
            Stage::Cases
        } else {
            Stage::Categorize
        },
        done: total,
        total,
    });
    Ok(Analysis {
        run: result,
        det,
        table,
        rows,
        categorized,
        cases,
        summary,
        timings,
    })
}

/// Why `bundle` (read from `file`) cannot score the rows of `run`: another profile, feature preset
/// or feature set, or another detector than `detector` asks for. None when it can.
pub fn bundle_mismatch(
    bundle: &crate::detect::model::ModelBundle,
    run: &RunOutput,
    detector: Option<crate::detect::model::DetectorKind>,
) -> Option<String> {
    let fs = &run.features;
    if bundle.profile != run.profile {
        return Some(format!(
            "it is a model of profile {}, and this file's profile is {}",
            bundle.profile, run.profile
        ));
    }
    if bundle.preset != fs.preset {
        return Some(format!(
            "it was trained on the {} feature preset, and this run computes {} (--preset)",
            bundle.preset.as_str(),
            fs.preset.as_str()
        ));
    }
    if bundle.feature_names != fs.names {
        let missing: Vec<&str> = bundle
            .feature_names
            .iter()
            .filter(|n| !fs.names.contains(n))
            .map(String::as_str)
            .collect();
        let extra: Vec<&str> = fs
            .names
            .iter()
            .filter(|n| !bundle.feature_names.contains(n))
            .map(String::as_str)
            .collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("the file lacks {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            parts.push(format!("the model lacks {}", extra.join(", ")));
        }
        if parts.is_empty() {
            parts.push("the same features in another order".to_string());
        }
        return Some(format!(
            "its features differ from this file's ({})",
            parts.join("; ")
        ));
    }
    if let Some(d) = detector
        && d != bundle.spec.detector
    {
        return Some(format!(
            "it is a {} model, and --detector asks for {}",
            bundle.spec.detector.as_str(),
            d.as_str()
        ));
    }
    None
}

/// What [`analyze_with_bundle`] does besides [`analyze`]'s options.
pub struct BundleRun<'a> {
    /// The model, and the file it was read from (for messages).
    pub bundle: crate::detect::model::ModelBundle,
    pub file: &'a str,
    /// Keep only the rows of this partition.
    pub partition: Option<&'a crate::partition::Partition>,
    /// Record a case per anomaly and roll the profile's cases forward (a whole-file run). A
    /// partition's rows are only part of the day: such a run records nothing and its case
    /// columns stay empty.
    pub record_cases: bool,
    /// The model's status when it is already known to be the one for these rows (a
    /// bounded-memory run's model, trained on another part of the file): no fitness check.
    pub known: Option<ModelStatus>,
    /// The rows come from a spill part of a larger file.
    pub spill: Option<&'a SpillRows>,
    /// The rows already read and featured (by [`run_selecting`] with this run's options): not
    /// read again. The model's encoders are applied to them again.
    pub prepared: Option<RunOutput>,
}

/// [`analyze`] with a model bundle read from a file instead of the store (nothing is trained),
/// optionally on one partition of the file's accounts. `store` gives the analysts' verdicts and
/// the LLM's cache, and takes the cases when `record_cases`.
#[allow(clippy::too_many_arguments)]
pub fn analyze_with_bundle(
    cfg: &Config,
    opts: &RunOptions,
    aopts: &AnalyzeOptions,
    model: BundleRun<'_>,
    store: &crate::store::Store,
    rejects_hint: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<Analysis, AnalyzeError> {
    analyze_with(
        cfg,
        opts,
        aopts,
        Some(model),
        store,
        rejects_hint,
        progress,
        cancel,
        &mut |_| {},
    )
}

/// [`score`] with `bundle`, read from `file`, instead of the store's model: refused when it
/// cannot score the rows at all, or does not fit them under the refuse policy.
fn score_from_file(
    cfg: &Config,
    result: &mut RunOutput,
    store: &crate::store::Store,
    dopts: &DetectOptions,
    bundle: crate::detect::model::ModelBundle,
    file: &str,
) -> Result<Detection, AnalyzeError> {
    if let Some(why) = bundle_mismatch(&bundle, result, dopts.detector) {
        return Err(DetectError::Bundle {
            file: file.to_string(),
            why,
        }
        .into());
    }
    // A model given by hand is used as it is: one that does not fit the file is refused only
    // under the refuse policy, and said otherwise (there is nothing to retrain).
    let problems = fitness_problems(cfg, &result.features, &result.resolved, &bundle)?;
    let unfit = (!problems.is_empty()).then(|| problems.join("; "));
    let policy = match dopts.policy {
        Some(p) => p,
        None => cfg
            .detect
            .model_policy
            .parse()
            .map_err(DetectError::Config)?,
    };
    if let (Some(why), ModelPolicy::Refuse) = (&unfit, policy) {
        return Err(DetectError::Unfit {
            model: bundle.version(),
            why: why.clone(),
        }
        .into());
    }
    let status = ModelStatus::FromFile {
        path: file.to_string(),
        unfit,
    };
    Ok(score_with_bundle(
        cfg, result, store, dopts, bundle, status,
    )?)
}
