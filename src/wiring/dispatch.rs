//! The dispatch channels', the outbox's, the probes' and the logs' options from the configuration.
//!
//! The string-valued settings (`email.tls`, `jira.mode`, `logging.level`) and `jira.api_version`
//! are checked when the configuration is loaded (`config`'s validation names the dotted key and
//! the file), so a loaded configuration always converts. Trimmed empty names (a CA file, an
//! environment variable, a login) become `None`; seconds become durations.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, EmailConfig, JiraConfig, OutboxConfig, WebhookConfig};
use crate::dispatch::{
    DispatchOptions, DueDays, EmailOptions, JiraApi, JiraMode, JiraOptions, OutboxOptions,
    RetryPolicy, TlsMode, WebhookOptions,
};
use crate::logging::LogOptions;

/// Every channel's and the outbox's options.
pub fn options(cfg: &Config) -> DispatchOptions {
    DispatchOptions {
        email: email(&cfg.email),
        jira: jira(&cfg.jira),
        webhook: webhook(&cfg.webhook),
        outbox: outbox(&cfg.outbox),
    }
}

/// `[email]`.
pub fn email(cfg: &EmailConfig) -> EmailOptions {
    EmailOptions {
        enabled: cfg.enabled,
        host: cfg.host.trim().to_string(),
        port: cfg.port,
        tls: tls_mode(&cfg.tls),
        ca_file: path(&cfg.ca_file),
        username: name(&cfg.username),
        password_env: name(&cfg.password_env),
        hello_name: name(&cfg.hello_name),
        from: cfg.from.clone(),
        to: cfg.to.clone(),
        cc: cfg.cc.clone(),
        subject: cfg.subject.clone(),
        top_breaks: cfg.top_breaks,
        attach_csv: cfg.attach_csv,
        mask_accounts: cfg.mask_accounts,
        timeout: timeout(cfg.timeout_secs),
    }
}

/// `[jira]`.
pub fn jira(cfg: &JiraConfig) -> JiraOptions {
    JiraOptions {
        enabled: cfg.enabled,
        base_url: cfg.base_url.clone(),
        api_version: jira_api(cfg.api_version),
        email: name(&cfg.email),
        token_env: name(&cfg.token_env),
        project: cfg.project.trim().to_string(),
        issue_type: cfg.issue_type.trim().to_string(),
        mode: jira_mode(&cfg.mode),
        labels: cfg.labels.clone(),
        ca_file: path(&cfg.ca_file),
        timeout: timeout(cfg.timeout_secs),
    }
}

/// `[webhook]` and `[webhook.sla_days]`.
pub fn webhook(cfg: &WebhookConfig) -> WebhookOptions {
    let sla = &cfg.sla_days;
    WebhookOptions {
        enabled: cfg.enabled,
        url: cfg.url.clone(),
        token_env: name(&cfg.token_env),
        ca_file: path(&cfg.ca_file),
        timeout: timeout(cfg.timeout_secs),
        due_days: DueDays {
            low: sla.low,
            medium: sla.medium,
            high: sla.high,
            critical: sla.critical,
        },
    }
}

/// `[outbox]`: at least one attempt; a backoff or poll interval that is not a duration is one
/// second, a flush wait that is not one is none.
pub fn outbox(cfg: &OutboxConfig) -> OutboxOptions {
    let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(1));
    OutboxOptions {
        retry: RetryPolicy {
            max_attempts: cfg.max_attempts.max(1),
            base: secs(cfg.backoff_base_secs),
            max: secs(cfg.backoff_max_secs),
        },
        flush_wait: Duration::try_from_secs_f64(cfg.flush_wait_secs).unwrap_or(Duration::ZERO),
        poll: secs(cfg.poll_secs),
    }
}

/// `[logging]`, with the log directory under the data directory.
pub fn logging(cfg: &Config) -> LogOptions {
    LogOptions {
        file: cfg.logging.file,
        dir: cfg.data_dir().map(|d| d.join("logs")),
        // `logging.level` is one of error, warn, info, debug, trace once loaded.
        level: cfg.logging.level.parse().unwrap_or(tracing::Level::INFO),
        max_files: cfg.logging.max_files,
    }
}

/// `email.tls`; a loaded configuration holds one of the three (anything else would be refused
/// at load, so it falls back to the safe default, STARTTLS).
fn tls_mode(tls: &str) -> TlsMode {
    match tls {
        "tls" => TlsMode::Implicit,
        "none" => TlsMode::Plain,
        _ => TlsMode::StartTls,
    }
}

/// `jira.api_version`: 2 or 3 once loaded (3, the default, otherwise).
fn jira_api(version: u32) -> JiraApi {
    match version {
        2 => JiraApi::V2,
        _ => JiraApi::V3,
    }
}

/// `jira.mode`: `per_case` or `per_batch` once loaded (`per_case`, the default, otherwise).
fn jira_mode(mode: &str) -> JiraMode {
    match mode {
        "per_batch" => JiraMode::PerBatch,
        _ => JiraMode::PerCase,
    }
}

/// A trimmed name; empty is `None`.
fn name(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// A trimmed path; empty is `None`.
fn path(s: &str) -> Option<PathBuf> {
    name(s).map(PathBuf::from)
}

/// Seconds as a timeout; one that is not a positive duration is zero, which a channel refuses
/// when it is set up (naming its `timeout_secs`).
fn timeout(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_embedded_configuration() {
        let cfg = Config::defaults();
        assert_eq!(options(&cfg), DispatchOptions::default());
        assert_eq!(email(&cfg.email), EmailOptions::default());
        assert_eq!(jira(&cfg.jira), JiraOptions::default());
        assert_eq!(webhook(&cfg.webhook), WebhookOptions::default());
        assert_eq!(outbox(&cfg.outbox), OutboxOptions::default());
    }

    #[test]
    fn every_value_the_configuration_accepts_has_its_own_variant() {
        assert_eq!(tls_mode("starttls"), TlsMode::StartTls);
        assert_eq!(tls_mode("tls"), TlsMode::Implicit);
        assert_eq!(tls_mode("none"), TlsMode::Plain);
        assert_eq!(jira_api(2), JiraApi::V2);
        assert_eq!(jira_api(3), JiraApi::V3);
        assert_eq!(jira_mode("per_case"), JiraMode::PerCase);
        assert_eq!(jira_mode("per_batch"), JiraMode::PerBatch);
    }

    #[test]
    fn every_level_the_configuration_accepts_is_its_own() {
        for (text, level) in [
            ("error", tracing::Level::ERROR),
            ("warn", tracing::Level::WARN),
            ("info", tracing::Level::INFO),
            ("debug", tracing::Level::DEBUG),
            ("trace", tracing::Level::TRACE),
        ] {
            let mut cfg = Config::defaults();
            cfg.logging.level = text.into();
            assert_eq!(logging(&cfg).level, level, "{text}");
        }
    }

    #[test]
    fn empty_names_are_none_and_bad_seconds_a_refused_timeout() {
        assert_eq!(name("  "), None);
        assert_eq!(name(" X "), Some("X".into()));
        assert_eq!(path(" /etc/ca.pem "), Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(timeout(0.0), Duration::ZERO);
        assert_eq!(timeout(-1.0), Duration::ZERO);
        assert_eq!(timeout(f64::NAN), Duration::ZERO);
        assert_eq!(timeout(2.5), Duration::from_millis(2500));
    }
}
