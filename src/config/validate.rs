//! The values of a loaded configuration, checked section by section: a bad value is named by
//! its dotted key and the file it came from.

use super::{CaseRoute, Config, ConfigError};
use std::path::Path;

/// The checks of values only a subsystem's own parser can make (an encoding, a decimal mark, a
/// delimiter, a date, a detector, a contamination, the case routes, a filter expression).
/// `config` imports nothing of the crate: the loader of `wiring::check` supplies these, and
/// `Config::validate` names the key and the file of a value they refuse, in the order of the
/// file's sections as for every other value. Each returns the message that follows the key.
pub trait ValueChecks {
    /// `ingest.encoding`.
    fn encoding(&self, name: &str) -> Result<(), String>;
    /// `ingest.decimal`.
    fn decimal(&self, setting: &str) -> Result<(), String>;
    /// `ingest.delimiter`.
    fn delimiter(&self, setting: &str) -> Result<(), String>;
    /// Whether `text` is a `YYYY-MM-DD` date (`ingest.placeholder_dates`).
    fn is_iso_date(&self, text: &str) -> bool;
    /// `detect.detector`.
    fn detector(&self, name: &str) -> Result<(), String>;
    /// `detect.contamination`.
    fn contamination(&self, setting: &str) -> Result<(), String>;
    /// `[[cases.routes]]`: the message names the route (`cases.routes[i]`).
    fn case_routes(&self, routes: &[CaseRoute]) -> Result<(), String>;
    /// A saved view's filter expression (`tui.views.NAME.filter`).
    fn filter(&self, expression: &str) -> Result<(), String>;
}

/// Makes the error for a bad value of `key`.
type Bad<'a> = dyn Fn(&str, String) -> ConfigError + 'a;

impl Config {
    /// Checks every value the types alone do not (ranges, choices, expressions), in the order
    /// of the file's sections, with `checks` for those a subsystem's parser decides; the first
    /// bad value is the error.
    pub(super) fn validate(
        &self,
        path: &Path,
        checks: &dyn ValueChecks,
    ) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::BadValue {
            key: key.to_string(),
            path: path.to_path_buf(),
            message,
        };
        self.validate_run_and_roles(&bad)?;
        self.validate_service(&bad)?;
        self.validate_ingest(&bad, checks)?;
        self.validate_features_and_cases(&bad, checks)?;
        self.validate_detect(&bad, checks)?;
        self.validate_llm_and_output(&bad)?;
        self.validate_dispatch(&bad)?;
        self.validate_ui(&bad, checks)?;
        Ok(())
    }

    /// The run's memory budget, the default role, `[roles]` and the service's users.
    fn validate_run_and_roles(&self, bad: &Bad<'_>) -> Result<(), ConfigError> {
        if !(self.run.bytes_per_byte.is_finite() && self.run.bytes_per_byte >= 1.0) {
            return Err(bad(
                "run.bytes_per_byte",
                format!(
                    "must be a number of at least 1, found {}",
                    self.run.bytes_per_byte
                ),
            ));
        }
        if !(self.run.held_share.is_finite() && (0.0..=1.0).contains(&self.run.held_share)) {
            return Err(bad(
                "run.held_share",
                format!(
                    "must be a number from 0 to 1, found {}",
                    self.run.held_share
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
        Ok(())
    }

    /// The service's address and limits.
    fn validate_service(&self, bad: &Bad<'_>) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// How files are read: encoding, decimal mark, delimiter, limits, placeholder dates.
    fn validate_ingest(&self, bad: &Bad<'_>, checks: &dyn ValueChecks) -> Result<(), ConfigError> {
        checks
            .encoding(&self.ingest.encoding)
            .map_err(|m| bad("ingest.encoding", m))?;
        checks
            .decimal(&self.ingest.decimal)
            .map_err(|m| bad("ingest.decimal", m))?;
        if self.ingest.max_cells == 0 {
            return Err(bad(
                "ingest.max_cells",
                "must be at least 1, found 0".into(),
            ));
        }
        checks
            .delimiter(&self.ingest.delimiter)
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
            if !checks.is_iso_date(d) {
                return Err(bad(
                    "ingest.placeholder_dates",
                    format!("{d:?} is not a YYYY-MM-DD date"),
                ));
            }
        }
        Ok(())
    }

    /// The feature preset, the own-normal weights and shares, and the case routes, age bands and absent rule.
    fn validate_features_and_cases(
        &self,
        bad: &Bad<'_>,
        checks: &dyn ValueChecks,
    ) -> Result<(), ConfigError> {
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
        if let Err(m) = checks.case_routes(&self.cases.routes) {
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
        Ok(())
    }

    /// The model policy and fitness bounds, the own-normal windows, the rolling window, the detector and its parameters, the clusters.
    fn validate_detect(&self, bad: &Bad<'_>, checks: &dyn ValueChecks) -> Result<(), ConfigError> {
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
        checks
            .detector(&self.detect.detector)
            .map_err(|m| bad("detect.detector", m))?;
        checks
            .contamination(&self.detect.contamination)
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
        if self.cluster.max_iterations == 0 {
            return Err(bad("cluster.max_iterations", "must be at least 1".into()));
        }
        Ok(())
    }

    /// The LLM pass and the output format.
    fn validate_llm_and_output(&self, bad: &Bad<'_>) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// Email, Jira, webhook timeouts and the outbox's retries.
    fn validate_dispatch(&self, bad: &Bad<'_>) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// The log level and the terminal UI's theme and saved views.
    fn validate_ui(&self, bad: &Bad<'_>, checks: &dyn ValueChecks) -> Result<(), ConfigError> {
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
            if let Err(m) = view.check(name, &|f| checks.filter(f)) {
                return Err(bad(&format!("tui.views.{name}"), m));
            }
        }
        Ok(())
    }
}
