//! Argument groups shared by several commands, and what they turn into.

use super::exit::{self, Failure, actor_failure, fail, store_failure, usage};
use breakdesk::config::Config;
use breakdesk::detect::contamination::Contamination;
use breakdesk::detect::model::{DetectorKind, ModelBundle};
use breakdesk::features::Preset;
use breakdesk::ingest::csv::{ENCODINGS, Encoding};
use breakdesk::pipeline::{self, DetectOptions, RunOptions, TrainMode};
use breakdesk::store::Store;
use clap::Args;
use std::path::{Path, PathBuf};

/// The channels of a dispatch.
#[derive(Args)]
pub struct ChannelArgs {
    /// Email the cases: an HTML report (plain-text alternative, CSV attachment), per `[email]`.
    #[arg(long)]
    pub email: bool,
    /// Open Jira issues for the cases, per `[jira]`.
    #[arg(long)]
    pub jira: bool,
    /// Post one task per case to the webhook, per `[webhook]`.
    #[arg(long)]
    pub webhook: bool,
    /// Another email recipient for this dispatch, besides `[email] to` (repeatable).
    #[arg(long = "to", value_name = "ADDRESS")]
    pub to: Vec<String>,
}

impl ChannelArgs {
    pub fn channels(&self) -> Vec<breakdesk::cases::Channel> {
        use breakdesk::cases::Channel;
        let mut out = Vec::new();
        if self.email {
            out.push(Channel::Email);
        }
        if self.jira {
            out.push(Channel::Jira);
        }
        if self.webhook {
            out.push(Channel::Webhook);
        }
        out
    }
}

/// Which file to read and how.
#[derive(Args)]
pub struct InputArgs {
    /// The reconciliation file (.csv or an Excel workbook).
    file: PathBuf,
    /// Earlier records of the same accounts: context for the features and the training rows.
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Profile name (gl_ihub, trades, generic) or path of a profile .toml; default: detected.
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    /// Numeric columns to score with the generic profile (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
    columns: Vec<String>,
    /// Excel sheet to read (default: the first).
    #[arg(long)]
    sheet: Option<String>,
    /// CSV delimiter: auto, or a character such as ; or \t.
    #[arg(long)]
    delimiter: Option<String>,
    /// The file's text encoding; default `[ingest] encoding`.
    #[arg(long, value_parser = choice::<Encoding>(ENCODINGS))]
    encoding: Option<Encoding>,
    /// Feature preset; default `[features] preset`.
    #[arg(long, value_parser = choice::<Preset>(Preset::ALL.map(|p| p.as_str())))]
    preset: Option<Preset>,
}

/// How to detect.
#[derive(Args)]
pub struct DetectArgs {
    /// The detector; default `[detect] detector`.
    #[arg(long, value_parser = choice::<DetectorKind>(DetectorKind::ALL.map(|k| k.as_str())))]
    detector: Option<DetectorKind>,
    /// auto, estimate, mad or a share in (0, 0.5]; default `[detect] contamination`.
    #[arg(long)]
    contamination: Option<String>,
    /// What to do with a saved model that does not fit the file (too few training rows, another
    /// population, unseen accounts); default `[detect] model_policy`.
    #[arg(long, value_name = "POLICY", value_parser = choice::<pipeline::ModelPolicy>(pipeline::ModelPolicy::NAMES))]
    model_policy: Option<pipeline::ModelPolicy>,
}

/// A choice among the names the library lists: `--help` shows them, clap refuses any other
/// (exit 2, naming the possible values), and the name is parsed into the library's type.
pub fn choice<T>(
    names: impl IntoIterator<Item = &'static str>,
) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(names)
        .try_map(|name| name.parse::<T>().map_err(|e| e.to_string()))
}

pub fn open_store(cfg: &Config) -> Result<Store, Failure> {
    let dir = cfg.data_dir().ok_or_else(|| {
        fail(
            exit::STORE,
            anyhow::anyhow!("no data directory: set [general] data_dir or pass --data-dir"),
        )
    })?;
    Store::open(&dir).map_err(store_failure)
}

pub fn parse_status(s: &str) -> Result<breakdesk::cases::Status, Failure> {
    breakdesk::cases::Status::parse_loose(s).map_err(|e| usage(e.to_string()))
}

pub fn actor(
    cfg: &Config,
    user: Option<&str>,
    role: Option<&str>,
) -> Result<breakdesk::cases::Actor, Failure> {
    breakdesk::wiring::check::actor(cfg, user, role).map_err(actor_failure)
}

/// Applies the input options to the config and builds the pipeline options.
pub fn input_options(cfg: &mut Config, a: &InputArgs) -> Result<RunOptions, Failure> {
    if let Some(d) = &a.delimiter {
        breakdesk::ingest::csv::parse_delimiter(d)
            .map_err(|m| usage(format!("--delimiter {m}")))?;
        cfg.ingest.delimiter = d.clone();
    }
    if let Some(e) = a.encoding {
        cfg.ingest.encoding = e.as_str().to_string();
    }
    let preset = a.preset;
    Ok(RunOptions {
        input: a.file.clone(),
        history: a.history.clone(),
        profile: a.profile.clone(),
        columns: a
            .columns
            .iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect(),
        sheet: a.sheet.clone(),
        preset,
    })
}

/// The run's settings from the configuration (after [`input_options`] applied the input
/// options to it).
pub fn run_settings(cfg: &Config) -> Result<pipeline::Settings, Failure> {
    breakdesk::wiring::run::settings(cfg).map_err(usage)
}

pub fn detect_options(d: &DetectArgs, train: TrainMode) -> Result<DetectOptions, Failure> {
    Ok(DetectOptions {
        detector: d.detector,
        contamination: d
            .contamination
            .as_deref()
            .map(str::parse::<Contamination>)
            .transpose()
            .map_err(|m| usage(format!("--contamination: {m}")))?,
        train,
        all_attributions: false,
        score_all: false,
        policy: d.model_policy,
    })
}

/// The memory budget of a run or training: `--memory-mb`, else `[run] memory_mb`.
pub fn memory_budget(arg: Option<u64>, cfg: &Config) -> Result<u64, Failure> {
    let memory_mb = arg.unwrap_or(cfg.run.memory_mb);
    if memory_mb != 0 && memory_mb < 64 {
        return Err(usage(format!(
            "--memory-mb must be 0 (no bound) or at least 64, found {memory_mb}"
        )));
    }
    Ok(memory_mb)
}

/// A model bundle file (`--model`).
pub fn read_bundle(path: &Path) -> Result<ModelBundle, Failure> {
    let bytes = std::fs::read(path).map_err(|e| {
        fail(
            exit::INPUT,
            anyhow::anyhow!("cannot read the model file {}: {e}", path.display()),
        )
    })?;
    ModelBundle::from_json(&bytes).map_err(|e| {
        fail(
            exit::INPUT,
            anyhow::anyhow!(
                "the model file {} is not a model bundle (write one with `breakdesk train FILE --export {}`): {e}",
                path.display(),
                path.display()
            ),
        )
    })
}
