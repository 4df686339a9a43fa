//! Reaching each enabled channel for real without sending anything (for `breakdesk doctor`):
//! SMTP connect, EHLO, STARTTLS or TLS, AUTH and QUIT; Jira's authenticated "myself"; a HEAD of
//! the webhook. Every probe is bounded in time; secrets never appear in what it returns.

use std::time::Duration;

use super::outbox::SendOutcome;
use super::{EmailOptions, JiraOptions, WebhookOptions, email, jira, webhook};

/// Why a channel could not be reached: the step that failed, what happened, and the setting to
/// change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFailure {
    /// `settings`, `connect`, `tls`, `starttls`, `auth`, `answer`, `timeout`, …
    pub step: &'static str,
    pub error: String,
    pub fix: String,
}

/// The result of one probe: what was done, or why it failed.
pub type Probe = Result<String, ProbeFailure>;

fn settings_failure(message: String) -> ProbeFailure {
    ProbeFailure {
        step: "settings",
        error: message,
        fix: String::new(),
    }
}

pub(crate) fn outcome_text(o: &SendOutcome) -> String {
    match o {
        SendOutcome::Sent { detail, .. } => detail.clone(),
        SendOutcome::Transient { error, .. } | SendOutcome::Permanent { error } => error.clone(),
    }
}

/// Email: `None` when the channel is off.
pub async fn email(options: &EmailOptions, limit: Duration) -> Option<Probe> {
    if !options.enabled {
        return None;
    }
    let settings = match email::Settings::new(options) {
        Ok(s) => s,
        Err(m) => return Some(Err(settings_failure(m))),
    };
    Some(email::probe(&settings, limit).await)
}

/// Jira: `None` when the channel is off.
pub async fn jira(options: &JiraOptions, limit: Duration) -> Option<Probe> {
    if !options.enabled {
        return None;
    }
    let client = match jira::Settings::new(options).and_then(jira::Client::new) {
        Ok(c) => c,
        Err(m) => return Some(Err(settings_failure(m))),
    };
    Some(client.probe(limit).await)
}

/// The webhook: `None` when the channel is off.
pub async fn webhook(options: &WebhookOptions, limit: Duration) -> Option<Probe> {
    if !options.enabled {
        return None;
    }
    let client = match webhook::Settings::new(options).and_then(webhook::Client::new) {
        Ok(c) => c,
        Err(m) => return Some(Err(settings_failure(m))),
    };
    Some(client.probe(limit).await)
}
