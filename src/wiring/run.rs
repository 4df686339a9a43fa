//! The run's settings (ingest, features, detection, categories, cases, the budget) from the configuration.
//!
//! [`settings`] converts the whole [`Config`] into the [`Settings`] the drivers take; the
//! functions beside it convert one section into the options type of the subsystem that owns it,
//! for the faces that need only that (the live terminal UI reads records, `doctor` asks the
//! LLM). Every string of the configuration that names a choice (an encoding, a detector, a
//! policy) is parsed here, once; an error names the dotted key.

use crate::cases::{CaseOptions, RollParams};
use crate::categorize::CategorizeOptions;
use crate::categorize::llm::LlmOptions;
use crate::config::{CasesConfig, Config, FeatureConfig, IngestConfig, LlmConfig};
use crate::detect::cluster::ClusterParams;
use crate::detect::fitness::FitnessParams;
use crate::detect::iforest::{IForestParams, MaxSamples};
use crate::detect::lof::LofParams;
use crate::detect::model::TrainSpec;
use crate::detect::triage::TriageParams;
use crate::features::FeatureOptions;
use crate::ingest::clean::{DateOptions, Decimal, parse_iso_date};
use crate::ingest::prepare::PrepareOptions;
use crate::ingest::{IngestOptions, ReadOptions};
use crate::llm::{LlmSettings, ResponseFormat};
use crate::pipeline::{DetectSettings, FeedbackSettings, ProfileOptions, RunBudget, Settings};
use crate::realtime::record::RecordLimits;
use crate::routing::Router;
use std::path::PathBuf;
use std::time::Duration;

/// `key: message`, the error of a value that does not convert.
fn at(key: &str) -> impl Fn(String) -> String + '_ {
    move |m| format!("{key}: {m}")
}

/// A path setting: None when empty (after trimming).
fn path(s: &str) -> Option<PathBuf> {
    let s = s.trim();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// Everything a run needs, from the configuration.
pub fn settings(cfg: &Config) -> Result<Settings, String> {
    Ok(Settings {
        ingest: ingest_options(&cfg.ingest)?,
        profile: ProfileOptions {
            default: Some(cfg.profile.default.clone()).filter(|p| p != "auto"),
            extra: cfg.profile.extra.iter().map(PathBuf::from).collect(),
            generic_columns: cfg.generic.columns.clone(),
        },
        features: feature_options(&cfg.features)?,
        detect: detect_settings(cfg)?,
        feedback: FeedbackSettings {
            enabled: cfg.feedback.enabled,
            oversample: cfg.feedback.oversample,
            min_reviewed: cfg.feedback.min_reviewed,
            contamination: cfg.feedback.contamination,
            judged_normal_share: cfg.feedback.judged_normal_share,
        },
        categorize: CategorizeOptions {
            rules: path(&cfg.categorize.rules),
            llm: llm_options(&cfg.llm)?,
        },
        cases: case_options(&cfg.cases)?,
        budget: run_budget(cfg),
        record_limits: RecordLimits {
            max_fields: cfg.service.max_record_fields,
            max_chars: cfg.service.max_field_chars,
        },
    })
}

/// How files are read and typed (`[ingest]`).
pub fn ingest_options(c: &IngestConfig) -> Result<IngestOptions, String> {
    Ok(IngestOptions {
        read: ReadOptions {
            encoding: c.encoding.parse().map_err(at("ingest.encoding"))?,
            delimiter: crate::ingest::csv::parse_delimiter(&c.delimiter)
                .map_err(at("ingest.delimiter"))?,
            sheet: Some(c.sheet.clone()).filter(|s| !s.is_empty()),
            max_cells: c.max_cells,
        },
        prepare: prepare_options(c)?,
        max_reject_share: c.max_reject_share,
    })
}

/// How a file's cells are typed (`[ingest]`). Placeholder dates that are not ISO dates are
/// left out (the configuration's check refuses them).
pub fn prepare_options(c: &IngestConfig) -> Result<PrepareOptions, String> {
    Ok(PrepareOptions {
        decimals: c.amount_decimals,
        dates: DateOptions {
            placeholders: c
                .placeholder_dates
                .iter()
                .filter_map(|d| parse_iso_date(d))
                .collect(),
            day_first: c.day_first,
            excel_serial_min: c.excel_serial_min,
            excel_serial_max: c.excel_serial_max,
        },
        mismatch_tolerance: c.difference_mismatch_tolerance,
        key_slots: None,
        decimal: Decimal::from_setting(&c.decimal).map_err(at("ingest.decimal"))?,
    })
}

/// How the features are computed (`[features]`).
pub fn feature_options(c: &FeatureConfig) -> Result<FeatureOptions, String> {
    Ok(FeatureOptions {
        preset: c.preset.parse().map_err(at("features.preset"))?,
        window: c.rolling_window,
        min_periods: c.rolling_min_periods,
        routine: crate::routine::Params {
            patterns: crate::routine::Patterns::default(),
            window: c.routine_window,
            standing_records: c.standing_records,
            recurring_share: c.recurring_share,
            recurring_exact: c.recurring_exact,
            lag_records: c.lag_records,
            lag_share: c.lag_share,
            min_history: c.own_min_history,
            level_floor: c.own_level_floor,
        },
    })
}

/// Detection (`[detect]`, `[cluster]`): the training specification, the model policy, the
/// fitness bounds and the triage.
pub fn detect_settings(cfg: &Config) -> Result<DetectSettings, String> {
    let d = &cfg.detect;
    Ok(DetectSettings {
        spec: TrainSpec {
            detector: d.detector.parse().map_err(at("detect.detector"))?,
            contamination: d
                .contamination
                .parse()
                .map_err(at("detect.contamination"))?,
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
            lof: LofParams {
                n_neighbors: d.lof.n_neighbors,
            },
            lof_max_reference: d.lof.max_reference,
            cluster: ClusterParams {
                k: cfg.cluster.k,
                k_max: cfg.cluster.k_max,
                sample: cfg.cluster.sample,
                max_iterations: cfg.cluster.max_iterations,
                seed: d.seed,
            },
            seed: d.seed,
        },
        policy: d.model_policy.parse().map_err(at("detect.model_policy"))?,
        fitness: FitnessParams {
            min_training_rows: d.min_training_rows,
            max_psi: d.max_psi,
            max_unseen_accounts: d.max_unseen_accounts,
        },
        triage: TriageParams {
            own_z_min: d.own_z_min,
            own_weight: d.own_weight,
        },
        top_accounts: cfg.cluster.top_accounts,
    })
}

/// The LLM pass (`[llm]`); the API key is read from the environment when a client is made.
pub fn llm_options(c: &LlmConfig) -> Result<LlmOptions, String> {
    let mut client = LlmSettings::new(c.base_url.trim(), c.model.trim());
    client.azure_api_version =
        Some(c.azure_api_version.trim().to_string()).filter(|v| !v.is_empty());
    client.response_format = match c.response_format.as_str() {
        "json_schema" => ResponseFormat::JsonSchema,
        "json_object" => ResponseFormat::JsonObject,
        "none" => ResponseFormat::None,
        other => {
            return Err(format!(
                "llm.response_format: must be \"json_schema\", \"json_object\" or \"none\", found {other:?}"
            ));
        }
    };
    client.temperature = 0.0;
    client.max_tokens = c.max_tokens;
    client.timeout = Duration::from_secs(c.timeout_secs);
    client.max_retries = c.max_retries;
    client.requests_per_minute = c.requests_per_minute;
    client.tokens_per_minute = c.tokens_per_minute;
    client.concurrency = c.concurrency;
    client.failure_threshold = c.failure_threshold;
    Ok(LlmOptions {
        enabled: c.enabled,
        client,
        api_key_env: Some(c.api_key_env.trim().to_string()).filter(|v| !v.is_empty()),
        prompt: path(&c.prompt),
        redact: c.redact,
        max_rows: c.max_rows,
        max_text_chars: c.max_text_chars,
    })
}

/// How cases are opened, owned and rolled forward (`[cases]`).
pub fn case_options(c: &CasesConfig) -> Result<CaseOptions, String> {
    Ok(CaseOptions {
        roll: roll(c),
        absent: c.absent.parse().map_err(at("cases.absent"))?,
        age_bands: c.age_bands.clone(),
        router: std::sync::Arc::new(router(c)?),
    })
}

/// The compiled `[[cases.routes]]` (the error names the route: `cases.routes[i]`).
pub fn router(c: &CasesConfig) -> Result<Router, String> {
    routes(&c.routes)
}

/// `[[cases.routes]]` compiled in their order.
pub fn routes(routes: &[crate::config::CaseRoute]) -> Result<Router, String> {
    let pairs: Vec<(String, String)> = routes
        .iter()
        .map(|r| (r.owner.clone(), r.when.clone()))
        .collect();
    Router::compile(&pairs)
}

/// The roll-forward parameters of the case store.
pub fn roll(c: &CasesConfig) -> RollParams {
    RollParams {
        reopen_days: i64::from(c.reopen_days),
        recertify_share: c.recertify_share,
        sla_days: [
            c.sla_days.low,
            c.sla_days.medium,
            c.sla_days.high,
            c.sla_days.critical,
        ],
    }
}

/// The memory budget's knobs and where a bounded run spills (`[run]`): `[run] spill_dir`, else
/// `spill` in the data directory (breakdesk's own), else the system's temporary folder.
pub fn run_budget(cfg: &Config) -> RunBudget {
    let spill_dir = Some(&cfg.run.spill_dir).filter(|d| !d.is_empty());
    let (spill_root, spill_root_owned) = match (spill_dir, cfg.data_dir()) {
        (Some(dir), _) => (PathBuf::from(dir), false),
        (None, Some(data)) => (data.join("spill"), true),
        (None, None) => (std::env::temp_dir(), false),
    };
    RunBudget {
        bytes_per_byte: cfg.run.bytes_per_byte,
        min_part_mb: cfg.run.min_part_mb,
        held_share: cfg.run.held_share,
        spill_root,
        spill_root_owned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options' defaults (which the layers' own tests use) are what the embedded default
    /// configuration converts to, so the two cannot drift.
    #[test]
    fn the_options_defaults_are_the_default_configuration() {
        let cfg = Config::defaults();
        let s = settings(&cfg).expect("the default configuration converts");
        let d = Settings::default();
        assert_eq!(s.ingest, d.ingest);
        assert_eq!(s.ingest.read, ReadOptions::default());
        assert_eq!(s.ingest.prepare, PrepareOptions::default());
        assert_eq!(s.profile, d.profile);
        assert_eq!(s.features, d.features);
        assert_eq!(s.features, FeatureOptions::default());
        assert_eq!(s.detect, d.detect);
        assert_eq!(s.feedback, d.feedback);
        assert_eq!(s.categorize.rules, d.categorize.rules);
        // The LLM's client settings have no equality (nor a shown key): compared as printed.
        assert_eq!(
            format!("{:?}", s.categorize.llm),
            format!("{:?}", d.categorize.llm)
        );
        assert_eq!(s.cases.roll, d.cases.roll);
        assert_eq!(s.cases.absent, d.cases.absent);
        assert_eq!(s.cases.age_bands, d.cases.age_bands);
        assert_eq!(
            format!("{:?}", s.cases.router),
            format!("{:?}", d.cases.router)
        );
        assert_eq!(s.record_limits, d.record_limits);
        // The spill folder depends on the machine's data directory; the knobs do not.
        assert_eq!(s.budget.bytes_per_byte, d.budget.bytes_per_byte);
        assert_eq!(s.budget.min_part_mb, d.budget.min_part_mb);
        assert_eq!(s.budget.held_share, d.budget.held_share);
    }

    #[test]
    fn a_value_that_does_not_convert_names_its_key() {
        let mut cfg = Config::defaults();
        cfg.detect.detector = "forest".into();
        let e = settings(&cfg).unwrap_err();
        assert!(e.starts_with("detect.detector: "), "{e}");
        let mut cfg = Config::defaults();
        cfg.ingest.encoding = "latin1".into();
        let e = settings(&cfg).unwrap_err();
        assert!(e.starts_with("ingest.encoding: "), "{e}");
    }

    #[test]
    fn the_spill_folder_is_the_setting_else_the_data_directory() {
        let mut cfg = Config::defaults();
        cfg.general.data_dir = "/data/bd".into();
        let b = run_budget(&cfg);
        assert_eq!(b.spill_root, PathBuf::from("/data/bd/spill"));
        assert!(b.spill_root_owned);
        cfg.run.spill_dir = "/fast/spill".into();
        let b = run_budget(&cfg);
        assert_eq!(b.spill_root, PathBuf::from("/fast/spill"));
        assert!(!b.spill_root_owned);
    }
}
