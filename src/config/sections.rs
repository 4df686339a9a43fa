//! The sections of the configuration file, one type each, as `config/default.toml` lays them out.

use serde::Deserialize;

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
    /// Share of the budget the parts' written rows may stay in memory until the merge; the
    /// rows of a part beyond it are written to a spill file and read back. 0: every part's.
    pub held_share: f64,
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
pub(super) const VIEW_FIELDS: [(&str, &str); 10] = [
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
    /// Checks what can be checked without a file: the view's name, and the filter's syntax with
    /// `filter` (the expression language's own parser, which `config` does not import). The
    /// filter's columns are checked when the view is applied.
    pub fn check(
        &self,
        name: &str,
        filter: &dyn Fn(&str) -> Result<(), String>,
    ) -> Result<(), String> {
        if name.trim().is_empty() || name.trim() != name {
            return Err(format!(
                "a view's name must not be empty or start or end with spaces, found {name:?}"
            ));
        }
        if !self.filter.trim().is_empty() {
            filter(&self.filter).map_err(|e| format!("filter {:?}: {e}", self.filter))?;
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
