//! One typed configuration, loaded from the embedded `config/default.toml`, then a user file
//! (the platform config dir, or `--config FILE`). The user file is checked key by key against
//! the defaults, so an unknown key or a wrong type is reported with its dotted path and the file.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The defaults, embedded so the binary runs anywhere without its source tree.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// The lists of tables a user file may give (`[[name]]`): name, what each must be, its keys (all
/// required, all strings).
const TABLE_LISTS: [(&str, &str, &[&str]); 2] = [
    (
        "service.users",
        "a table ([[service.users]] with name, role, token_env)",
        &["name", "role", "token_env"],
    ),
    (
        "cases.routes",
        "a table ([[cases.routes]] with owner, when)",
        &["owner", "when"],
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("unknown key `{key}` in config file {path}{hint}")]
    UnknownKey {
        key: String,
        path: PathBuf,
        hint: String,
    },
    #[error("key `{key}` in config file {path} must be {expected}, found {found}")]
    WrongType {
        key: String,
        path: PathBuf,
        expected: &'static str,
        found: &'static str,
    },
    #[error("key `{key}` in config file {path}: {message}")]
    BadValue {
        key: String,
        path: PathBuf,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub general: General,
    pub profile: ProfileConfig,
    pub generic: Generic,
    pub ingest: IngestConfig,
    pub features: FeatureConfig,
    pub detect: DetectConfig,
    pub cluster: ClusterConfig,
    pub categorize: CategorizeConfig,
    pub feedback: FeedbackConfig,
    pub llm: LlmConfig,
    pub output: OutputConfig,
    pub logging: LoggingConfig,
    pub email: EmailConfig,
    pub jira: JiraConfig,
    pub webhook: WebhookConfig,
    pub outbox: OutboxConfig,
    pub tui: TuiConfig,
    pub service: ServiceConfig,
    pub roles: RolesConfig,
    pub cases: CasesConfig,
    pub run: RunConfig,
}

/// How `run` bounds its memory on files larger than it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Memory budget (MiB) of a run on a CSV file; 0 = no bound (the file is read whole).
    pub memory_mb: u64,
    /// Where a bounded run writes its spill files; empty = a `spill` folder in the data directory.
    pub spill_dir: String,
    /// Bytes of memory a run takes per byte of CSV it holds (measured; see BENCHMARKS.md).
    pub bytes_per_byte: f64,
    /// The smallest part (MiB of CSV) a file is split into, so that each part is a fair sample
    /// of the accounts; 0 = no floor.
    pub min_part_mb: u64,
}

/// How cases roll forward from one reconciliation cycle (a run, a service record) to the next.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasesConfig {
    /// A cleared break that comes back within this many days reopens its case.
    pub reopen_days: u32,
    /// A decided case whose difference moves by more than this share (or changes sign) goes
    /// back to review.
    pub recertify_share: f64,
    /// What an open case whose account is missing from a file means: `auto` (cleared when the
    /// file lists only breaks, as a trades break report does; otherwise nothing changes),
    /// `cleared` or `unchanged`.
    pub absent: String,
    /// Upper bounds (days, ascending) of the age bands of the run summary and the queue:
    /// `[1, 5, 30]` gives 0-1, 2-5, 6-30 and >30.
    pub age_bands: Vec<u32>,
    /// Days from a case's opening to its due date, by severity.
    pub sla_days: SlaDays,
    /// Owners of new cases: the first route whose `when` matches gives the owner.
    pub routes: Vec<CaseRoute>,
}

/// `[[cases.routes]]`: new cases matching `when` (an expression over the case and its record's
/// columns) are given to `owner`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseRoute {
    pub owner: String,
    pub when: String,
}

impl CasesConfig {
    /// The compiled `[[cases.routes]]`.
    pub fn router(&self) -> Result<crate::routing::Router, String> {
        let pairs: Vec<(String, String)> = self
            .routes
            .iter()
            .map(|r| (r.owner.clone(), r.when.clone()))
            .collect();
        crate::routing::Router::compile(&pairs)
    }

    /// The roll-forward parameters of the case store.
    pub fn roll(&self) -> crate::cases::RollParams {
        crate::cases::RollParams {
            reopen_days: i64::from(self.reopen_days),
            recertify_share: self.recertify_share,
            sla_days: [
                self.sla_days.low,
                self.sla_days.medium,
                self.sla_days.high,
                self.sla_days.critical,
            ],
        }
    }
}

/// Who may act in which role (maker-checker): roles come from here, never from the caller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesConfig {
    /// Users who may act as supervisors (approve or return auto-resolutions).
    pub supervisors: Vec<String>,
    /// Users who may act as analysts; empty: every user (supervisors always may).
    pub analysts: Vec<String>,
    /// Whether `--user` (and `[general] user`) may name someone other than the OS user.
    pub allow_user_override: bool,
}

impl RolesConfig {
    fn listed(list: &[String], user: &str) -> bool {
        list.iter().any(|u| u.trim() == user)
    }
    pub fn is_supervisor(&self, user: &str) -> bool {
        Self::listed(&self.supervisors, user)
    }
    pub fn may_analyse(&self, user: &str) -> bool {
        self.analysts.is_empty() || Self::listed(&self.analysts, user) || self.is_supervisor(user)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct General {
    pub user: String,
    pub role: String,
    pub data_dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    pub default: String,
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generic {
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    pub delimiter: String,
    pub encoding: String,
    pub sheet: String,
    pub amount_decimals: u32,
    pub placeholder_dates: Vec<String>,
    pub day_first: bool,
    pub excel_serial_min: i64,
    pub excel_serial_max: i64,
    pub difference_mismatch_tolerance: f64,
    pub max_reject_share: f64,
    /// Decimal separator of amounts: "auto" (detected per file), "." or ",".
    pub decimal: String,
    /// A workbook sheet larger than this many cells (rows × columns) is refused.
    pub max_cells: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    pub preset: String,
    pub rolling_window: usize,
    pub rolling_min_periods: usize,
    pub routine_window: usize,
    pub standing_records: usize,
    pub recurring_share: f64,
    pub recurring_exact: f64,
    pub lag_records: usize,
    pub lag_share: f64,
    pub own_min_history: usize,
    pub own_level_floor: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    pub detector: String,
    pub contamination: String,
    pub mad_k: f64,
    pub seed: u64,
    pub own_z_min: f64,
    pub own_weight: f64,
    pub min_training_rows: usize,
    pub max_psi: f64,
    pub max_unseen_accounts: f64,
    pub model_policy: String,
    pub iforest: IForestConfig,
    pub lof: LofConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IForestConfig {
    pub n_estimators: usize,
    pub max_samples: usize,
    pub max_features: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LofConfig {
    pub n_neighbors: usize,
    pub max_reference: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub k: usize,
    pub k_max: usize,
    pub sample: usize,
    pub max_iterations: u64,
    pub top_accounts: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategorizeConfig {
    pub rules: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackConfig {
    pub enabled: bool,
    pub oversample: usize,
    pub min_reviewed: usize,
    pub contamination: bool,
    pub judged_normal_share: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    pub enabled: bool,
    pub base_url: String,
    pub model: String,
    pub api_key_env: String,
    pub azure_api_version: String,
    pub response_format: String,
    pub max_tokens: u32,
    pub timeout_secs: u64,
    pub max_retries: u32,
    pub requests_per_minute: u32,
    pub tokens_per_minute: u32,
    pub concurrency: usize,
    pub failure_threshold: u32,
    pub redact: bool,
    pub max_rows: usize,
    pub max_text_chars: usize,
    pub prompt: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    pub format: String,
    pub path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    pub level: String,
    pub file: bool,
    pub max_files: usize,
}

/// `[email]`: reviewed cases sent as an email report over SMTP (see `config/default.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub tls: String,
    pub ca_file: String,
    pub username: String,
    pub password_env: String,
    pub hello_name: String,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub top_breaks: usize,
    pub attach_csv: bool,
    pub mask_accounts: bool,
    pub timeout_secs: f64,
}

/// `[jira]`: one Jira issue per accepted case, or one per dispatch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    pub enabled: bool,
    pub base_url: String,
    pub api_version: u32,
    pub email: String,
    pub token_env: String,
    pub project: String,
    pub issue_type: String,
    pub mode: String,
    pub labels: Vec<String>,
    pub ca_file: String,
    pub timeout_secs: f64,
}

/// `[webhook]`: one task per case posted as JSON to a task API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub enabled: bool,
    pub url: String,
    pub token_env: String,
    pub ca_file: String,
    pub timeout_secs: f64,
    pub sla_days: SlaDays,
}

/// Days from dispatch to a task's due date, per severity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaDays {
    pub low: u32,
    pub medium: u32,
    pub high: u32,
    pub critical: u32,
}

/// `[outbox]`: how queued dispatches are retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    pub max_attempts: u32,
    pub backoff_base_secs: f64,
    pub backoff_max_secs: f64,
    pub flush_wait_secs: f64,
    pub poll_secs: f64,
}

/// The service (`breakdesk serve`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub bind: String,
    pub history: String,
    pub profile: String,
    pub token_env: String,
    pub user: String,
    pub max_body_bytes: usize,
    pub max_batch_records: usize,
    /// Most fields in one record, and the longest value (characters).
    pub max_record_fields: usize,
    pub max_field_chars: usize,
    pub state_records: usize,
    /// Accounts whose state is kept in memory; the least recently used beyond are in the store.
    pub max_accounts_in_memory: usize,
    pub batch_email: bool,
    pub persist_interval_ms: u64,
    /// Host names (besides IP addresses and `localhost`) a request may be addressed to.
    pub allowed_hosts: Vec<String>,
    /// Browser origins (`https://desk.example`) allowed on /ws and state-changing routes.
    pub allowed_origins: Vec<String>,
    /// Connection bounds: open connections, WebSocket clients, events queued per client,
    /// seconds to send a request's headers (and to start the next one on a kept-alive
    /// connection).
    pub max_connections: usize,
    pub max_ws_clients: usize,
    pub ws_queue_events: usize,
    pub read_timeout_secs: u64,
    /// The people who may call the service, one bearer token each (`[[service.users]]`).
    pub users: Vec<ServiceUser>,
}

/// A user of the service: the token in `token_env` identifies `name`, acting as `role`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceUser {
    pub name: String,
    /// "analyst" or "supervisor".
    pub role: String,
    /// The environment variable holding this user's bearer token.
    pub token_env: String,
}

/// Where the effective configuration came from, for `breakdesk config` and log lines.
/// The terminal UI's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuiConfig {
    /// "dark" or "light".
    pub theme: String,
    /// Key bindings overriding the defaults, by command name (checked by the UI, which knows
    /// the commands): `accept = "a"` or `down = ["j", "down"]`.
    pub keys: std::collections::BTreeMap<String, KeyList>,
    /// Saved views of the records table shipped with the config (`[tui.views.NAME]`), read-only
    /// in the UI, listed in its palette beside the views saved there (in the store).
    #[serde(default)]
    pub views: std::collections::BTreeMap<String, SavedView>,
}

/// A saved view of the records table: its filters, sort and column, by column name (so a view
/// applies to any file that has those columns). Empty text means "not set". Stored as JSON in
/// the store, or given as `[tui.views.NAME]` in the config (whose keys are checked one by one
/// when the file is read; unknown fields are ignored here so a view stored by a later version
/// still reads).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct SavedView {
    /// The expression filter (`difference > 1000 and status = pending`).
    pub filter: String,
    /// The quick filters: a status, bucket and severity value, a cluster number.
    pub status: String,
    pub bucket: String,
    pub severity: String,
    pub cluster: Option<u32>,
    /// The search text (`n` finds the next match).
    pub search: String,
    /// The column sorted by, largest first when `descending`.
    pub sort: String,
    pub descending: bool,
    /// Every row, not only the flagged ones.
    pub all_rows: bool,
    /// The column under the column cursor.
    pub column: String,
}

/// The keys of a `[tui.views.NAME]` table and the TOML type each must have.
const VIEW_FIELDS: [(&str, &str); 10] = [
    ("filter", "a string"),
    ("status", "a string"),
    ("bucket", "a string"),
    ("severity", "a string"),
    ("cluster", "an integer"),
    ("search", "a string"),
    ("sort", "a string"),
    ("descending", "true or false"),
    ("all_rows", "true or false"),
    ("column", "a string"),
];

impl SavedView {
    /// Checks what can be checked without a file: the filter's syntax, the view's name, the
    /// cluster number. The filter's columns are checked when the view is applied.
    pub fn check(&self, name: &str) -> Result<(), String> {
        if name.trim().is_empty() || name.trim() != name {
            return Err(format!(
                "a view's name must not be empty or start or end with spaces, found {name:?}"
            ));
        }
        if !self.filter.trim().is_empty() {
            crate::expr::Expr::compile(&self.filter, &|_| Some(0))
                .map_err(|e| format!("filter {:?}: {e}", self.filter))?;
        }
        Ok(())
    }
}

/// One key or several.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum KeyList {
    One(String),
    Many(Vec<String>),
}

impl KeyList {
    pub fn keys(&self) -> Vec<&str> {
        match self {
            KeyList::One(k) => vec![k.as_str()],
            KeyList::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    pub user_file: Option<PathBuf>,
}

impl Config {
    /// The embedded defaults alone.
    pub fn defaults() -> Config {
        // The embedded file is part of the build and covered by tests; failing here is a build defect.
        toml::from_str(DEFAULT_TOML).expect("embedded config/default.toml is valid")
    }

    /// Defaults overridden by `explicit` (from `--config`) or else by the platform user file when it exists.
    pub fn load(explicit: Option<&Path>) -> Result<(Config, ConfigSource), ConfigError> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => user_config_path().filter(|p| p.is_file()),
        };
        match path {
            None => Ok((Config::defaults(), ConfigSource::default())),
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let cfg = Config::from_user_toml(&text, &path)?;
                Ok((
                    cfg,
                    ConfigSource {
                        user_file: Some(path),
                    },
                ))
            }
        }
    }

    /// Defaults overridden by the TOML text of a user file (`path` is used in messages only).
    pub fn from_user_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let user: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: path.to_path_buf(),
                message: e.to_string().trim().to_string(),
            })?;
        let mut merged: toml::Table = DEFAULT_TOML.parse().expect("embedded defaults parse");
        merge_checked(&mut merged, &user, "", path)?;
        let cfg: Config = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: path.to_path_buf(),
                message: e.to_string().trim().to_string(),
            })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::BadValue {
            key: key.to_string(),
            path: path.to_path_buf(),
            message,
        };
        if !(self.run.bytes_per_byte.is_finite() && self.run.bytes_per_byte >= 1.0) {
            return Err(bad(
                "run.bytes_per_byte",
                format!(
                    "must be a number of at least 1, found {}",
                    self.run.bytes_per_byte
                ),
            ));
        }
        if self.run.memory_mb != 0 && self.run.memory_mb < 64 {
            return Err(bad(
                "run.memory_mb",
                format!(
                    "must be 0 (no bound) or at least 64, found {}",
                    self.run.memory_mb
                ),
            ));
        }
        if !matches!(self.general.role.as_str(), "analyst" | "supervisor") {
            return Err(bad(
                "general.role",
                format!(
                    "must be \"analyst\" or \"supervisor\", found {:?}",
                    self.general.role
                ),
            ));
        }
        for (key, list) in [
            ("roles.supervisors", &self.roles.supervisors),
            ("roles.analysts", &self.roles.analysts),
        ] {
            if let Some(u) = list.iter().find(|u| u.trim().is_empty()) {
                return Err(bad(key, format!("holds an empty user name ({u:?})")));
            }
        }
        let mut names = std::collections::HashSet::new();
        let mut vars = std::collections::HashSet::new();
        for (i, u) in self.service.users.iter().enumerate() {
            let key = format!("service.users[{i}]");
            if u.name.trim().is_empty() {
                return Err(bad(&key, "`name` is empty".to_string()));
            }
            if !matches!(u.role.as_str(), "analyst" | "supervisor") {
                return Err(bad(
                    &key,
                    format!(
                        "`role` of {:?} must be \"analyst\" or \"supervisor\", found {:?}",
                        u.name, u.role
                    ),
                ));
            }
            if u.token_env.trim().is_empty() || u.token_env == self.service.token_env {
                return Err(bad(
                    &key,
                    format!(
                        "`token_env` of {:?} must name a variable of its own (not [service] token_env)",
                        u.name
                    ),
                ));
            }
            if !names.insert(u.name.trim()) {
                return Err(bad(&key, format!("{:?} is listed twice", u.name)));
            }
            if !vars.insert(u.token_env.as_str()) {
                return Err(bad(
                    &key,
                    format!(
                        "{:?} shares `token_env` {:?} with another user",
                        u.name, u.token_env
                    ),
                ));
            }
        }
        if self.service.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "service.bind",
                format!(
                    "must be an address and port such as 127.0.0.1:8080, found {:?}",
                    self.service.bind
                ),
            ));
        }
        for (key, v) in [
            ("service.max_body_bytes", self.service.max_body_bytes),
            ("service.max_batch_records", self.service.max_batch_records),
            ("service.max_record_fields", self.service.max_record_fields),
            ("service.max_field_chars", self.service.max_field_chars),
            ("service.max_connections", self.service.max_connections),
            (
                "service.max_accounts_in_memory",
                self.service.max_accounts_in_memory,
            ),
            ("service.max_ws_clients", self.service.max_ws_clients),
            ("service.ws_queue_events", self.service.ws_queue_events),
            (
                "service.read_timeout_secs",
                self.service.read_timeout_secs as usize,
            ),
            ("service.state_records", self.service.state_records),
        ] {
            if v == 0 {
                return Err(bad(key, "must be at least 1".into()));
            }
        }
        if !(10..=600_000).contains(&self.service.persist_interval_ms) {
            return Err(bad(
                "service.persist_interval_ms",
                format!(
                    "must be between 10 and 600000, found {}",
                    self.service.persist_interval_ms
                ),
            ));
        }
        if !crate::ingest::csv::ENCODINGS.contains(&self.ingest.encoding.as_str()) {
            return Err(bad(
                "ingest.encoding",
                format!(
                    "must be one of {}, found {:?}",
                    crate::ingest::csv::ENCODINGS.join(", "),
                    self.ingest.encoding
                ),
            ));
        }
        crate::ingest::clean::Decimal::from_setting(&self.ingest.decimal)
            .map_err(|m| bad("ingest.decimal", m))?;
        if self.ingest.max_cells == 0 {
            return Err(bad(
                "ingest.max_cells",
                "must be at least 1, found 0".into(),
            ));
        }
        crate::ingest::csv::parse_delimiter(&self.ingest.delimiter)
            .map_err(|m| bad("ingest.delimiter", m))?;
        if !(0.0..=1.0).contains(&self.ingest.max_reject_share) {
            return Err(bad(
                "ingest.max_reject_share",
                format!(
                    "must be between 0.0 and 1.0, found {}",
                    self.ingest.max_reject_share
                ),
            ));
        }
        if self.ingest.amount_decimals > 12 {
            return Err(bad(
                "ingest.amount_decimals",
                format!("must be at most 12, found {}", self.ingest.amount_decimals),
            ));
        }
        for d in &self.ingest.placeholder_dates {
            if crate::ingest::clean::parse_iso_date(d).is_none() {
                return Err(bad(
                    "ingest.placeholder_dates",
                    format!("{d:?} is not a YYYY-MM-DD date"),
                ));
            }
        }
        if !matches!(self.features.preset.as_str(), "seed" | "breaks" | "account") {
            return Err(bad(
                "features.preset",
                format!(
                    "must be \"seed\", \"breaks\" or \"account\", found {:?}",
                    self.features.preset
                ),
            ));
        }
        for (key, v) in [
            ("detect.own_z_min", self.detect.own_z_min),
            ("detect.own_weight", self.detect.own_weight),
            (
                "feedback.judged_normal_share",
                self.feedback.judged_normal_share,
            ),
            ("cases.recertify_share", self.cases.recertify_share),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(key, format!("must be a number ≥ 0, found {v}")));
            }
        }
        if let Err(m) = self.cases.router() {
            return Err(bad("cases.routes", m));
        }
        if self.cases.age_bands.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad(
                "cases.age_bands",
                format!(
                    "must be ascending day counts such as [1, 5, 30], found {:?}",
                    self.cases.age_bands
                ),
            ));
        }
        if !matches!(self.cases.absent.as_str(), "auto" | "cleared" | "unchanged") {
            return Err(bad(
                "cases.absent",
                format!(
                    "must be \"auto\", \"cleared\" or \"unchanged\", found {:?}",
                    self.cases.absent
                ),
            ));
        }
        if !matches!(
            self.detect.model_policy.as_str(),
            "reuse" | "retrain" | "refuse"
        ) {
            return Err(bad(
                "detect.model_policy",
                format!(
                    "must be \"reuse\", \"retrain\" or \"refuse\", found {:?}",
                    self.detect.model_policy
                ),
            ));
        }
        if !self.detect.max_psi.is_finite() || self.detect.max_psi <= 0.0 {
            return Err(bad(
                "detect.max_psi",
                format!("must be a number above 0, found {}", self.detect.max_psi),
            ));
        }
        if !(0.0..=1.0).contains(&self.detect.max_unseen_accounts) {
            return Err(bad(
                "detect.max_unseen_accounts",
                format!(
                    "must be between 0 and 1, found {}",
                    self.detect.max_unseen_accounts
                ),
            ));
        }
        let f = &self.features;
        if f.routine_window == 0 || f.routine_window > 1000 {
            return Err(bad(
                "features.routine_window",
                format!("must be between 1 and 1000, found {}", f.routine_window),
            ));
        }
        // The service explains a record from the account's kept records as the batch does.
        let reach = 2 * f.routine_window + 3;
        if self.service.state_records < reach {
            return Err(bad(
                "service.state_records",
                format!(
                    "must be at least 2 × features.routine_window + 3 = {reach} (the records an account's own normal reads), found {}",
                    self.service.state_records
                ),
            ));
        }
        for (key, v) in [
            ("features.recurring_share", f.recurring_share),
            ("features.recurring_exact", f.recurring_exact),
            ("features.lag_share", f.lag_share),
            ("features.own_level_floor", f.own_level_floor),
        ] {
            if !v.is_finite() || !(0.0..=1.0).contains(&v) {
                return Err(bad(key, format!("must be between 0 and 1, found {v}")));
            }
        }
        if self.features.rolling_window == 0 {
            return Err(bad("features.rolling_window", "must be at least 1".into()));
        }
        if self.features.rolling_min_periods == 0
            || self.features.rolling_min_periods > self.features.rolling_window
        {
            return Err(bad(
                "features.rolling_min_periods",
                format!(
                    "must be between 1 and features.rolling_window ({})",
                    self.features.rolling_window
                ),
            ));
        }
        self.detect
            .detector
            .parse::<crate::detect::model::DetectorKind>()
            .map_err(|m| bad("detect.detector", m))?;
        self.detect
            .contamination
            .parse::<crate::detect::contamination::Contamination>()
            .map_err(|m| bad("detect.contamination", m))?;
        if self.detect.iforest.n_estimators == 0 {
            return Err(bad(
                "detect.iforest.n_estimators",
                "must be at least 1".into(),
            ));
        }
        if !(self.detect.iforest.max_features > 0.0 && self.detect.iforest.max_features <= 1.0) {
            return Err(bad(
                "detect.iforest.max_features",
                format!(
                    "must be in (0, 1], found {}",
                    self.detect.iforest.max_features
                ),
            ));
        }
        if self.detect.lof.n_neighbors == 0 {
            return Err(bad("detect.lof.n_neighbors", "must be at least 1".into()));
        }
        if self.detect.lof.max_reference < 2 {
            return Err(bad("detect.lof.max_reference", "must be at least 2".into()));
        }
        if self.cluster.k == 1 || self.cluster.k_max < 2 {
            return Err(bad(
                "cluster.k",
                "k must be 0 (choose) or at least 2, and k_max at least 2".into(),
            ));
        }
        if !matches!(
            self.llm.response_format.as_str(),
            "json_schema" | "json_object" | "none"
        ) {
            return Err(bad(
                "llm.response_format",
                format!(
                    "must be \"json_schema\", \"json_object\" or \"none\", found {:?}",
                    self.llm.response_format
                ),
            ));
        }
        if self.llm.concurrency == 0 {
            return Err(bad("llm.concurrency", "must be at least 1".into()));
        }
        if self.llm.timeout_secs == 0 {
            return Err(bad("llm.timeout_secs", "must be at least 1".into()));
        }
        if self.llm.max_text_chars < 20 {
            return Err(bad(
                "llm.max_text_chars",
                format!("must be at least 20, found {}", self.llm.max_text_chars),
            ));
        }
        if self.llm.max_tokens < 64 {
            return Err(bad(
                "llm.max_tokens",
                format!(
                    "must be at least 64 so that an answer is not cut short, found {}",
                    self.llm.max_tokens
                ),
            ));
        }
        if !matches!(self.output.format.as_str(), "csv" | "jsonl") {
            return Err(bad(
                "output.format",
                format!(
                    "must be \"csv\" or \"jsonl\", found {:?}",
                    self.output.format
                ),
            ));
        }
        if !matches!(self.email.tls.as_str(), "starttls" | "tls" | "none") {
            return Err(bad(
                "email.tls",
                format!(
                    "must be \"starttls\", \"tls\" or \"none\", found {:?}",
                    self.email.tls
                ),
            ));
        }
        if !matches!(self.jira.api_version, 2 | 3) {
            return Err(bad(
                "jira.api_version",
                format!("must be 2 or 3, found {}", self.jira.api_version),
            ));
        }
        if !matches!(self.jira.mode.as_str(), "per_case" | "per_batch") {
            return Err(bad(
                "jira.mode",
                format!(
                    "must be \"per_case\" or \"per_batch\", found {:?}",
                    self.jira.mode
                ),
            ));
        }
        for (key, secs) in [
            ("email.timeout_secs", self.email.timeout_secs),
            ("jira.timeout_secs", self.jira.timeout_secs),
            ("webhook.timeout_secs", self.webhook.timeout_secs),
            ("outbox.backoff_base_secs", self.outbox.backoff_base_secs),
            ("outbox.backoff_max_secs", self.outbox.backoff_max_secs),
            ("outbox.poll_secs", self.outbox.poll_secs),
        ] {
            if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
                return Err(bad(
                    key,
                    format!("must be more than 0 and at most 86400 seconds, found {secs}"),
                ));
            }
        }
        if !(self.outbox.flush_wait_secs.is_finite()
            && (0.0..=86_400.0).contains(&self.outbox.flush_wait_secs))
        {
            return Err(bad(
                "outbox.flush_wait_secs",
                format!(
                    "must be between 0 and 86400 seconds, found {}",
                    self.outbox.flush_wait_secs
                ),
            ));
        }
        if self.outbox.backoff_max_secs < self.outbox.backoff_base_secs {
            return Err(bad(
                "outbox.backoff_max_secs",
                "must not be less than outbox.backoff_base_secs".into(),
            ));
        }
        if self.outbox.max_attempts == 0 {
            return Err(bad("outbox.max_attempts", "must be at least 1".into()));
        }
        if !matches!(
            self.logging.level.as_str(),
            "error" | "warn" | "info" | "debug" | "trace"
        ) {
            return Err(bad(
                "logging.level",
                format!(
                    "must be one of error, warn, info, debug, trace; found {:?}",
                    self.logging.level
                ),
            ));
        }
        if !matches!(self.tui.theme.as_str(), "dark" | "light") {
            return Err(bad(
                "tui.theme",
                format!("must be \"dark\" or \"light\", found {:?}", self.tui.theme),
            ));
        }
        for (name, view) in &self.tui.views {
            if let Err(m) = view.check(name) {
                return Err(bad(&format!("tui.views.{name}"), m));
            }
        }
        Ok(())
    }

    /// The data directory: `general.data_dir` when set, else the platform data dir.
    pub fn data_dir(&self) -> Option<PathBuf> {
        if !self.general.data_dir.is_empty() {
            return Some(PathBuf::from(&self.general.data_dir));
        }
        directories::ProjectDirs::from("", "", "breakdesk").map(|d| d.data_dir().to_path_buf())
    }

    /// The user name for the audit trail: `general.user`, else the OS user.
    pub fn user(&self) -> String {
        if !self.general.user.is_empty() {
            return self.general.user.clone();
        }
        os_user().unwrap_or_else(|| "unknown".to_string())
    }
}

/// The operating-system user: `$USER`, `$USERNAME`, else the account name of the process's user
/// (containers, cron and services often run without those variables).
pub fn os_user() -> Option<String> {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| {
            std::env::var("USERNAME")
                .ok()
                .filter(|u| !u.trim().is_empty())
        })
        .or_else(process_user)
}

/// The account name of the process's user: the owner of a file the process creates, looked up in
/// /etc/passwd (`uid-N` when it is not listed there).
#[cfg(unix)]
pub fn process_user() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = tempfile::tempfile().ok()?.metadata().ok()?.uid();
    let listed = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut f = line.split(':');
                let name = f.next()?;
                let _password = f.next()?;
                let id: u32 = f.next()?.trim().parse().ok()?;
                (id == uid && !name.is_empty()).then(|| name.to_string())
            })
        });
    Some(listed.unwrap_or_else(|| format!("uid-{uid}")))
}

#[cfg(not(unix))]
pub fn process_user() -> Option<String> {
    None
}

impl Config {
    /// The person acting on cases from the command line and the terminal UI: the OS user
    /// ([`os_user`]: `$USER`, `$USERNAME`, else the process's account). `user` (e.g. `--user`)
    /// or `[general] user` may name someone else only where `[roles] allow_user_override` is
    /// true. The role is `role` (e.g. `--role`), else `[general] role`, and must be one the user
    /// holds in `[roles]`: supervisors are listed, analysts too when the list is not empty.
    pub fn actor(
        &self,
        user: Option<&str>,
        role: Option<&str>,
    ) -> Result<crate::cases::Actor, ActorError> {
        use crate::cases::{Actor, Role};
        let os = os_user();
        let asked = user
            .map(|u| u.trim().to_string())
            .or_else(|| Some(self.general.user.trim().to_string()))
            .filter(|u| !u.is_empty());
        let user = match (asked, os) {
            (Some(a), Some(os)) if a == os => a,
            (Some(a), os) => {
                if !self.roles.allow_user_override {
                    return Err(ActorError::Refused(format!(
                        "acting as {a:?} is refused: decisions are recorded under the OS user{} \
                         ([roles] allow_user_override = true lets --user and [general] user name someone else)",
                        os.map(|o| format!(" ({o:?})")).unwrap_or_default()
                    )));
                }
                a
            }
            (None, Some(os)) => os,
            (None, None) => {
                return Err(ActorError::Usage(
                    "no user name: the OS user is unknown ($USER, $USERNAME and the process's account); \
                     set [roles] allow_user_override = true and give --user"
                        .to_string(),
                ));
            }
        };
        let role = self.role_asked(role)?;
        match role {
            Role::Supervisor if !self.roles.is_supervisor(&user) => Err(ActorError::Refused(
                format!("{user:?} may not act as supervisor: not listed in [roles] supervisors"),
            )),
            Role::Analyst if !self.roles.may_analyse(&user) => Err(ActorError::Refused(format!(
                "{user:?} may not act as analyst: not listed in [roles] analysts or supervisors"
            ))),
            _ => Ok(Actor { user, role }),
        }
    }
}

impl Config {
    fn role_asked(&self, role: Option<&str>) -> Result<crate::cases::Role, ActorError> {
        use crate::cases::Role;
        match role
            .unwrap_or(&self.general.role)
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "analyst" => Ok(Role::Analyst),
            "supervisor" => Ok(Role::Supervisor),
            other => Err(ActorError::Usage(format!(
                "--role must be analyst or supervisor, found {other:?}"
            ))),
        }
    }

    /// Who a client of the service says it is (`open --live`): `user`, `[general] user` or the
    /// OS user, in the role asked. Nothing is checked here: the service decides from the
    /// token who acts and in which role.
    pub fn claimed_actor(
        &self,
        user: Option<&str>,
        role: Option<&str>,
    ) -> Result<crate::cases::Actor, ActorError> {
        let user = user
            .map(|u| u.trim().to_string())
            .or_else(|| Some(self.general.user.trim().to_string()))
            .filter(|u| !u.is_empty())
            .or_else(os_user)
            .ok_or_else(|| ActorError::Usage("no user name: give --user".to_string()))?;
        Ok(crate::cases::Actor {
            user,
            role: self.role_asked(role)?,
        })
    }
}

/// Why no actor: a malformed request, or a role or name the configuration does not grant.
#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Refused(String),
}

/// The platform path of the user config file.
pub fn user_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "breakdesk").map(|d| d.config_dir().join("config.toml"))
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "true or false",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// Overlays `user` on `base`, refusing keys `base` does not have and values of another type.
fn merge_checked(
    base: &mut toml::Table,
    user: &toml::Table,
    prefix: &str,
    path: &Path,
) -> Result<(), ConfigError> {
    for (key, value) in user {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if dotted.starts_with("tui.keys.") {
            // Free-form: command names are checked by the UI, which knows them.
            let ok = value.is_str()
                || value
                    .as_array()
                    .is_some_and(|a| a.iter().all(toml::Value::is_str));
            if !ok {
                return Err(ConfigError::WrongType {
                    key: dotted,
                    path: path.to_path_buf(),
                    expected: "a key or a list of keys (strings)",
                    found: type_name(value),
                });
            }
            base.insert(key.clone(), value.clone());
            continue;
        }
        if prefix == "tui.views" {
            // Free-form names; each a table of the view's keys.
            let t = value.as_table().ok_or_else(|| ConfigError::WrongType {
                key: dotted.clone(),
                path: path.to_path_buf(),
                expected: "a table ([tui.views.NAME] with filter, sort, …)",
                found: type_name(value),
            })?;
            for (k, v) in t {
                let Some((_, expected)) = VIEW_FIELDS.iter().find(|(f, _)| f == k) else {
                    let known: Vec<&str> = VIEW_FIELDS.iter().map(|(f, _)| *f).collect();
                    return Err(ConfigError::UnknownKey {
                        key: format!("{dotted}.{k}"),
                        path: path.to_path_buf(),
                        hint: format!(" (known keys: {})", known.join(", ")),
                    });
                };
                let ok = type_name(v) == *expected
                    && v.as_integer().is_none_or(|i| u32::try_from(i).is_ok());
                if !ok {
                    return Err(ConfigError::WrongType {
                        key: format!("{dotted}.{k}"),
                        path: path.to_path_buf(),
                        expected,
                        found: type_name(v),
                    });
                }
            }
            base.insert(key.clone(), value.clone());
            continue;
        }
        let Some(existing) = base.get_mut(key) else {
            let known: Vec<&str> = base.keys().map(String::as_str).collect();
            return Err(ConfigError::UnknownKey {
                key: dotted,
                path: path.to_path_buf(),
                hint: format!(
                    " (known keys{}: {})",
                    if prefix.is_empty() {
                        String::new()
                    } else {
                        format!(" in [{prefix}]")
                    },
                    known.join(", ")
                ),
            });
        };
        match (existing, value) {
            (toml::Value::Table(b), toml::Value::Table(u)) => merge_checked(b, u, &dotted, path)?,
            (toml::Value::Float(f), toml::Value::Integer(i)) => *f = *i as f64,
            (toml::Value::Array(b), toml::Value::Array(u))
                if TABLE_LISTS.iter().any(|(n, _, _)| *n == dotted) =>
            {
                // `[[service.users]]`, `[[cases.routes]]`: tables of strings.
                let (_, expected, fields) = TABLE_LISTS
                    .iter()
                    .find(|(n, _, _)| *n == dotted)
                    .copied()
                    .unwrap_or(("", "a table", &[]));
                for (i, x) in u.iter().enumerate() {
                    let key = format!("{dotted}[{i}]");
                    let t = x.as_table().ok_or_else(|| ConfigError::WrongType {
                        key: key.clone(),
                        path: path.to_path_buf(),
                        expected,
                        found: type_name(x),
                    })?;
                    for (k, v) in t {
                        if !fields.contains(&k.as_str()) {
                            return Err(ConfigError::UnknownKey {
                                key: format!("{key}.{k}"),
                                path: path.to_path_buf(),
                                hint: format!(" (known keys: {})", fields.join(", ")),
                            });
                        }
                        if !v.is_str() {
                            return Err(ConfigError::WrongType {
                                key: format!("{key}.{k}"),
                                path: path.to_path_buf(),
                                expected: "a string",
                                found: type_name(v),
                            });
                        }
                    }
                    for k in fields.iter().copied() {
                        if !t.contains_key(k) {
                            return Err(ConfigError::BadValue {
                                key: key.clone(),
                                path: path.to_path_buf(),
                                message: format!("`{k}` is missing"),
                            });
                        }
                    }
                }
                *b = u.clone();
            }
            (toml::Value::Array(b), toml::Value::Array(u)) => {
                // Lists must hold the same kind of element as the default (when the default shows one).
                if let Some(proto) = b.first() {
                    if let Some(bad) = u.iter().find(|x| type_name(x) != type_name(proto)) {
                        return Err(ConfigError::WrongType {
                            key: dotted,
                            path: path.to_path_buf(),
                            expected: "a list of the same kind as the default",
                            found: type_name(bad),
                        });
                    }
                } else if let Some(bad) = u.iter().find(|x| !x.is_str()) {
                    // Empty default lists in our config are all lists of strings.
                    return Err(ConfigError::WrongType {
                        key: dotted,
                        path: path.to_path_buf(),
                        expected: "a list of strings",
                        found: type_name(bad),
                    });
                }
                *b = u.clone();
            }
            (e, u) => {
                if std::mem::discriminant(e) != std::mem::discriminant(u) {
                    return Err(ConfigError::WrongType {
                        key: dotted,
                        path: path.to_path_buf(),
                        expected: type_name(e),
                        found: type_name(u),
                    });
                }
                *e = u.clone();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[cfg(unix)]
    #[test]
    fn the_process_user_is_the_account_of_its_uid() {
        use std::os::unix::fs::MetadataExt;
        let uid = tempfile::tempfile().unwrap().metadata().unwrap().uid();
        let name = process_user().expect("a name");
        // The name /etc/passwd gives that uid, or uid-N.
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let listed = passwd
            .lines()
            .any(|l| l.split(':').nth(2) == Some(&uid.to_string()) && l.starts_with(&name));
        assert!(
            listed || name == format!("uid-{uid}"),
            "{name} for uid {uid}"
        );
    }

    use super::*;

    fn p() -> PathBuf {
        PathBuf::from("/tmp/user.toml")
    }

    #[test]
    fn defaults_load_and_validate() {
        let c = Config::defaults();
        c.validate(&p()).unwrap();
        assert_eq!(c.ingest.amount_decimals, 6);
        assert_eq!(c.features.rolling_window, 3);
        assert_eq!(c.profile.default, "auto");
    }

    #[test]
    fn user_value_overrides_default() {
        let c = Config::from_user_toml("[ingest]\nmax_reject_share = 0.5\n", &p()).unwrap();
        assert_eq!(c.ingest.max_reject_share, 0.5);
        // Untouched keys keep their defaults.
        assert_eq!(c.ingest.amount_decimals, 6);
    }

    #[test]
    fn integer_accepted_for_float() {
        let c = Config::from_user_toml("[ingest]\nmax_reject_share = 1\n", &p()).unwrap();
        assert_eq!(c.ingest.max_reject_share, 1.0);
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let e = Config::from_user_toml("[ingest]\ndelimeter = \";\"\n", &p()).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("`ingest.delimeter`"), "{m}");
        assert!(m.contains("/tmp/user.toml"), "{m}");
        assert!(m.contains("delimiter"), "lists the known keys: {m}");
    }

    #[test]
    fn unknown_section_is_an_error() {
        let e = Config::from_user_toml("[ingset]\nsheet = \"x\"\n", &p()).unwrap_err();
        assert!(e.to_string().contains("`ingset`"), "{e}");
    }

    #[test]
    fn wrong_type_names_key_and_types() {
        let e = Config::from_user_toml("[features]\nrolling_window = \"3\"\n", &p()).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("`features.rolling_window`"), "{m}");
        assert!(m.contains("an integer") && m.contains("a string"), "{m}");
    }

    #[test]
    fn wrong_list_element_type() {
        let e = Config::from_user_toml("[generic]\ncolumns = [1, 2]\n", &p()).unwrap_err();
        assert!(e.to_string().contains("`generic.columns`"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_key() {
        for (text, key) in [
            ("[general]\nrole = \"boss\"\n", "general.role"),
            (
                "[ingest]\nmax_reject_share = 2.0\n",
                "ingest.max_reject_share",
            ),
            ("[ingest]\ndelimiter = \"ab\"\n", "ingest.delimiter"),
            ("[features]\npreset = \"fancy\"\n", "features.preset"),
            (
                "[ingest]\nplaceholder_dates = [\"01/01/1900\"]\n",
                "ingest.placeholder_dates",
            ),
            ("[output]\nformat = \"xml\"\n", "output.format"),
            ("[email]\ntls = \"ssl\"\n", "email.tls"),
            ("[jira]\napi_version = 4\n", "jira.api_version"),
            ("[jira]\nmode = \"each\"\n", "jira.mode"),
            ("[outbox]\nmax_attempts = 0\n", "outbox.max_attempts"),
            (
                "[outbox]\nbackoff_base_secs = 0\n",
                "outbox.backoff_base_secs",
            ),
            ("[webhook]\ntimeout_secs = -1.0\n", "webhook.timeout_secs"),
            ("[roles]\nsupervisors = [\" \"]\n", "roles.supervisors"),
            (
                "[[service.users]]\nname = \"sue\"\nrole = \"boss\"\ntoken_env = \"T_SUE\"\n",
                "service.users[0]",
            ),
            (
                "[[service.users]]\nname = \"sue\"\nrole = \"supervisor\"\ntoken_env = \"T\"\n\
                 [[service.users]]\nname = \"ann\"\nrole = \"analyst\"\ntoken_env = \"T\"\n",
                "service.users[1]",
            ),
            (
                "[[service.users]]\nname = \"sue\"\nrole = \"analyst\"\ntoken_env = \"BREAKDESK_API_TOKEN\"\n",
                "service.users[0]",
            ),
            (
                "[[service.users]]\nname = \"sue\"\nrole = \"analyst\"\n",
                "service.users[0]",
            ),
            (
                "[[service.users]]\nname = \"sue\"\nrole = \"analyst\"\ntoken_env = \"T\"\ntoken = \"x\"\n",
                "service.users[0].token",
            ),
        ] {
            let e = Config::from_user_toml(text, &p()).unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn dispatch_channels_are_off_by_default_and_secrets_come_from_named_variables() {
        let c = Config::defaults();
        assert!(!c.email.enabled && !c.jira.enabled && !c.webhook.enabled);
        assert_eq!(c.email.password_env, "BREAKDESK_SMTP_PASSWORD");
        assert_eq!(c.jira.token_env, "BREAKDESK_JIRA_TOKEN");
        assert_eq!(c.webhook.token_env, "BREAKDESK_WEBHOOK_TOKEN");
        // Fractions of a second are allowed where tests need fast retries.
        let c = Config::from_user_toml(
            "[outbox]\nbackoff_base_secs = 0.05\nbackoff_max_secs = 1\n[webhook.sla_days]\nhigh = 3\n",
            &p(),
        )
        .unwrap();
        assert_eq!(c.outbox.backoff_base_secs, 0.05);
        assert_eq!(c.outbox.backoff_max_secs, 1.0);
        assert_eq!(c.webhook.sla_days.high, 3);
        assert_eq!(c.webhook.sla_days.low, 10);
        // No key holds a secret itself.
        let e = Config::from_user_toml("[email]\npassword = \"x\"\n", &p()).unwrap_err();
        assert!(e.to_string().contains("`email.password`"), "{e}");
    }

    #[test]
    fn tui_keys_are_free_form_but_typed() {
        let c = Config::from_user_toml(
            "[tui]\ntheme = \"light\"\n[tui.keys]\naccept = \"A\"\ndown = [\"j\", \"ctrl-n\"]\n",
            &p(),
        )
        .unwrap();
        assert_eq!(c.tui.theme, "light");
        assert_eq!(c.tui.keys["accept"].keys(), vec!["A"]);
        assert_eq!(c.tui.keys["down"].keys(), vec!["j", "ctrl-n"]);
        let e = Config::from_user_toml("[tui.keys]\naccept = 1\n", &p()).unwrap_err();
        assert!(e.to_string().contains("`tui.keys.accept`"), "{e}");
        let e = Config::from_user_toml("[tui]\ntheme = \"pink\"\n", &p()).unwrap_err();
        assert!(e.to_string().contains("tui.theme"), "{e}");
    }

    #[test]
    fn tui_views_are_typed_and_their_filters_checked() {
        let c = Config::from_user_toml(
            "[tui.views.\"big pending\"]\nfilter = \"difference > 1000 and status = pending\"\nsort = \"difference\"\ndescending = true\nseverity = \"High\"\ncluster = 2\n[tui.views.all]\nall_rows = true\n",
            &p(),
        )
        .unwrap();
        let v = &c.tui.views["big pending"];
        assert_eq!(v.filter, "difference > 1000 and status = pending");
        assert_eq!(v.sort, "difference");
        assert!(v.descending);
        assert_eq!(v.severity, "High");
        assert_eq!(v.cluster, Some(2));
        assert_eq!(v.status, "");
        assert!(c.tui.views["all"].all_rows);
        assert!(Config::defaults().tui.views.is_empty());
        // A bad expression names the view.
        let e = Config::from_user_toml("[tui.views.mine]\nfilter = \"difference >\"\n", &p())
            .unwrap_err();
        assert!(e.to_string().contains("`tui.views.mine`"), "{e}");
        assert!(e.to_string().contains("difference >"), "{e}");
        // An unknown key or a wrong type names the key.
        let e = Config::from_user_toml("[tui.views.mine]\nfiltre = \"x\"\n", &p()).unwrap_err();
        assert!(e.to_string().contains("`tui.views.mine.filtre`"), "{e}");
        assert!(e.to_string().contains("filter"), "{e}");
        let e =
            Config::from_user_toml("[tui.views.mine]\ndescending = \"yes\"\n", &p()).unwrap_err();
        assert!(e.to_string().contains("`tui.views.mine.descending`"), "{e}");
        let e = Config::from_user_toml("[tui.views.mine]\ncluster = -1\n", &p()).unwrap_err();
        assert!(e.to_string().contains("`tui.views.mine.cluster`"), "{e}");
        let e = Config::from_user_toml("[tui.views]\nmine = 1\n", &p()).unwrap_err();
        assert!(e.to_string().contains("`tui.views.mine`"), "{e}");
    }

    #[test]
    fn syntax_error_names_file() {
        let e = Config::from_user_toml("[ingest\n", &p()).unwrap_err();
        assert!(e.to_string().contains("/tmp/user.toml"), "{e}");
    }
}
