//! What a run needs, from reading the file to recording its cases: each subsystem's own options
//! and the drivers' knobs, typed. The faces build it from the configuration once
//! (`wiring::run::settings`) and hand it to the drivers (`pipeline`, `bounded`, `parts`,
//! `realtime`, `evaluate`).

use crate::cases::CaseOptions;
use crate::categorize::CategorizeOptions;
use crate::detect::cluster::ClusterParams;
use crate::detect::contamination::Contamination;
use crate::detect::fitness::FitnessParams;
use crate::detect::iforest::{IForestParams, MaxSamples};
use crate::detect::lof::LofParams;
use crate::detect::model::{DetectorKind, TrainSpec};
use crate::detect::triage::TriageParams;
use crate::features::FeatureOptions;
use crate::ingest::IngestOptions;
use crate::realtime::record::RecordLimits;
use std::path::PathBuf;

use super::ModelPolicy;

/// Everything the drivers take instead of the configuration.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Reading and typing files, and the share of rejected rows a run accepts.
    pub ingest: IngestOptions,
    /// Which profile reads a file.
    pub profile: ProfileOptions,
    pub features: FeatureOptions,
    pub detect: DetectSettings,
    /// What the analysts' verdicts do to a training and to the triage.
    pub feedback: FeedbackSettings,
    /// The rules file and the optional LLM pass.
    pub categorize: CategorizeOptions,
    /// Opening, owning and rolling cases forward.
    pub cases: CaseOptions,
    /// How a run bounds its memory on large files.
    pub budget: RunBudget,
    /// Bounds on one record the service scores.
    pub record_limits: RecordLimits,
}

/// Which profile reads a file (`[profile]`, `[generic]`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProfileOptions {
    /// The profile (a name or a path) when the run names none; None: detected from the header
    /// among the built-in profiles and `extra`.
    pub default: Option<String>,
    /// Profile files detected besides the built-in ones.
    pub extra: Vec<PathBuf>,
    /// The numeric columns of the generic profile when the run names none.
    pub generic_columns: Vec<String>,
}

/// Detection: how a model is trained, when a saved one is used, and the triage.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectSettings {
    /// The training specification (a run's `--detector` and `--contamination` override it).
    pub spec: TrainSpec,
    /// What to do with a saved model that does not fit the file (a run's option overrides it).
    pub policy: ModelPolicy,
    /// When a saved model fits a file.
    pub fitness: FitnessParams,
    /// How the triage ranks the candidates.
    pub triage: TriageParams,
    /// Accounts named per cluster in the summary.
    pub top_accounts: usize,
}

impl Default for DetectSettings {
    /// As `config/default.toml` sets `[detect]` and `[cluster]`.
    fn default() -> Self {
        let seed = 42;
        DetectSettings {
            spec: TrainSpec {
                detector: DetectorKind::IForest,
                contamination: Contamination::Auto,
                mad_k: 3.0,
                iforest: IForestParams {
                    n_estimators: 200,
                    max_samples: MaxSamples::Auto,
                    max_features: 1.0,
                    seed,
                },
                lof: LofParams { n_neighbors: 20 },
                lof_max_reference: 50_000,
                cluster: ClusterParams {
                    k: 0,
                    k_max: 8,
                    sample: 100_000,
                    max_iterations: 100,
                    seed,
                },
                seed,
            },
            policy: ModelPolicy::Retrain,
            fitness: FitnessParams {
                min_training_rows: 500,
                max_psi: 0.25,
                max_unseen_accounts: 0.5,
            },
            triage: TriageParams {
                own_z_min: 5.0,
                own_weight: 0.1,
            },
            top_accounts: 5,
        }
    }
}

/// What the analysts' verdicts do (`[feedback]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeedbackSettings {
    /// Whether verdicts are used at all.
    pub enabled: bool,
    /// Times a record judged normal is repeated in a training.
    pub oversample: usize,
    /// Verdicts needed before the contamination is re-estimated from them.
    pub min_reviewed: usize,
    /// Whether the contamination is re-estimated from the verdicts.
    pub contamination: bool,
    /// A break judged normal stays quiet while its difference stays within this share of the
    /// one judged.
    pub judged_normal_share: f64,
}

impl Default for FeedbackSettings {
    /// As `config/default.toml` sets `[feedback]`.
    fn default() -> Self {
        FeedbackSettings {
            enabled: true,
            oversample: 10,
            min_reviewed: 20,
            contamination: true,
            judged_normal_share: 0.10,
        }
    }
}

/// How a run bounds its memory on a file larger than the budget (`[run]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunBudget {
    /// Bytes of memory a run takes per byte of CSV it holds.
    pub bytes_per_byte: f64,
    /// The smallest part (MiB of CSV) a file is split into; 0: no floor.
    pub min_part_mb: u64,
    /// Share of the budget the parts' written rows may stay in memory until the merge.
    pub held_share: f64,
    /// The folder a bounded run spills to.
    pub spill_root: PathBuf,
    /// Whether `spill_root` is breakdesk's own (in its data directory), so spill folders left
    /// by a run that died may be removed.
    pub spill_root_owned: bool,
}

impl Default for RunBudget {
    /// As `config/default.toml` sets `[run]`, spilling to the system's temporary folder.
    fn default() -> Self {
        RunBudget {
            bytes_per_byte: 17.0,
            min_part_mb: 16,
            held_share: 0.15,
            spill_root: std::env::temp_dir(),
            spill_root_owned: false,
        }
    }
}
