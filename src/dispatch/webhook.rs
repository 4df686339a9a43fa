//! Webhook tasks: one JSON task per case (name, description, severity, due date from the SLA)
//! POSTed with a Bearer token and an `Idempotency-Key` that stays the same across retries.

use std::time::Duration;

use chrono::{DateTime, Days, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::email::{read_ca_file, secret_from_env};
use super::http;
use super::options::{DueDays, WebhookOptions};
use super::outbox::SendOutcome;
use crate::cases::Case;
use crate::text::fmt_amount;

/// A task as queued: its JSON body and idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookPayload {
    /// Sent as `Idempotency-Key` with every attempt: `breakdesk-<case id>-<outbox id>`.
    pub idempotency_key: String,
    /// The task's name.
    pub task_name: String,
    /// The JSON body.
    pub body: Value,
}

/// `[webhook]`, checked, with the token read from the environment.
pub(crate) struct Settings {
    url: reqwest::Url,
    token: Option<String>,
    ca_pem: Option<Vec<u8>>,
    timeout: Duration,
}

impl Settings {
    /// Checks the webhook options; the error names the setting or the environment variable.
    pub(crate) fn new(o: &WebhookOptions) -> Result<Settings, String> {
        if !o.enabled {
            return Err(
                "the webhook is not configured: set [webhook] enabled = true, with url and token_env"
                    .into(),
            );
        }
        let url = http::parse_url(&o.url, "[webhook] url")
            .map_err(|e| format!("the webhook is not configured: {e}"))?;
        // A named variable that is unset is a mistake to report, not a reason to post without
        // authentication; no name means the endpoint takes no token.
        let token = secret_from_env(o.token_env.as_deref(), "[webhook] token_env")?;
        if let (None, Some(name)) = (&token, &o.token_env) {
            return Err(format!(
                "the webhook needs a token: the environment variable {name} (named by [webhook] token_env) is not set (set token_env = \"\" for an endpoint without one)"
            ));
        }
        if o.timeout.is_zero() {
            return Err("[webhook] timeout_secs must be more than 0".into());
        }
        Ok(Settings {
            url,
            token,
            ca_pem: read_ca_file(o.ca_file.as_deref(), "[webhook] ca_file")?,
            timeout: o.timeout,
        })
    }
}

/// Days until a case's task is due, by its severity (unknown severities take `medium`).
pub(crate) fn sla_days(sla: &DueDays, severity: &str) -> u32 {
    match severity.trim().to_ascii_lowercase().as_str() {
        "low" => sla.low,
        "high" => sla.high,
        "critical" => sla.critical,
        _ => sla.medium,
    }
}

/// The task of one case, for outbox item `id`, due `sla` days after `now` (UTC day).
pub(crate) fn payload(case: &Case, id: u64, sla: &DueDays, now: DateTime<Utc>) -> WebhookPayload {
    let days = sla_days(sla, &case.severity);
    let due = now
        .date_naive()
        .checked_add_days(Days::new(u64::from(days)))
        .unwrap_or(now.date_naive());
    let task_name = format!(
        "Investigate {} break {} ({})",
        case.bucket, case.ticket, case.key
    );
    let description = format!(
        "{summary}\n\nCase {id} (ticket {ticket}), {status}. Bucket {bucket} (rule {rule}), severity {severity}. \
         Profile {profile}, key {key}; break since {start}, latest record {last}. Difference {diff}. Model {model}.",
        summary = case.summary,
        id = case.id,
        ticket = case.ticket,
        status = case.status.as_str(),
        bucket = case.bucket,
        rule = case.bucket_rule,
        severity = case.severity,
        profile = case.profile,
        key = case.key,
        start = case.start_date,
        last = case.last_date,
        diff = fmt_amount(case.difference),
        model = case.model_version,
    );
    let idempotency_key = format!("breakdesk-{}-{id}", case.id);
    WebhookPayload {
        idempotency_key: idempotency_key.clone(),
        task_name: task_name.clone(),
        body: json!({
            "task_name": task_name,
            "description": description,
            "severity": case.severity,
            "due_date": due.to_string(),
            "source": "breakdesk",
            "idempotency_key": idempotency_key,
            "case_id": case.id,
            "ticket": case.ticket,
            "status": case.status.as_str(),
            "bucket": case.bucket,
            "profile": case.profile,
            "key": case.key,
            "start_date": case.start_date.to_string(),
            "last_date": case.last_date.to_string(),
            "difference": case.difference,
            "jira_key": case.jira_key,
            "model_version": case.model_version,
        }),
    }
}

/// The webhook client of the settings.
pub(crate) struct Client {
    http: reqwest::Client,
    s: Settings,
}

impl Client {
    pub(crate) fn new(s: Settings) -> Result<Client, String> {
        let http = http::client(s.timeout, s.ca_pem.as_deref(), &s.url, "[webhook] ca_file")?;
        Ok(Client { http, s })
    }

    /// A `HEAD` of the endpoint with the token, within `limit`: reached, and neither an
    /// unknown path nor a refused token. Nothing is posted.
    pub(crate) async fn probe(&self, limit: Duration) -> Result<String, super::ProbeFailure> {
        let url = self.s.url.clone();
        let mut request = self.http.head(url.clone()).timeout(limit);
        if let Some(token) = &self.s.token {
            request = request.bearer_auth(token);
        }
        let answer = http::exchange(request, "webhook", limit)
            .await
            .map_err(|o| super::ProbeFailure {
                step: "connect",
                error: format!("{url}: {}", super::probe::outcome_text(&o)),
                fix: "check [webhook] url, the network (proxy, firewall) and, for a company CA, [webhook] ca_file".into(),
            })?;
        let fail = |fix: &str| super::ProbeFailure {
            step: "answer",
            error: format!("{url}: HTTP {} to HEAD", answer.status),
            fix: fix.to_string(),
        };
        match answer.status {
            401 | 403 => Err(fail(if self.s.token.is_some() {
                "the token in the variable named by [webhook] token_env is not accepted"
            } else {
                "the endpoint wants a token: set [webhook] token_env to the variable that holds it"
            })),
            404 | 410 => Err(fail("no such endpoint: check [webhook] url")),
            // Reached: a task API may well refuse HEAD (405) or answer 5xx to it; the path and
            // the token were not refused.
            status => Ok(format!("{url}: reached (HTTP {status} to HEAD)")),
        }
    }

    /// One attempt. 409 is retried like 429: under the Idempotency-Key draft it means the
    /// first request with this key is still being processed.
    pub(crate) async fn send(&self, p: &WebhookPayload) -> SendOutcome {
        let mut request = self
            .http
            .post(self.s.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .header("Idempotency-Key", &p.idempotency_key)
            .json(&p.body);
        if let Some(token) = &self.s.token {
            request = request.bearer_auth(token);
        }
        let answer = match http::exchange(request, "webhook", self.s.timeout).await {
            Ok(a) => a,
            Err(o) => return o,
        };
        if (200..300).contains(&answer.status) {
            let body = answer.json();
            let reference = ["id", "task_id", "taskId"]
                .iter()
                .find_map(|k| match body.get(*k) {
                    Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                });
            return SendOutcome::Sent {
                detail: format!(
                    "HTTP {}{}",
                    answer.status,
                    if reference.is_none() {
                        " (no task id in the answer)"
                    } else {
                        ""
                    }
                ),
                reference,
            };
        }
        http::failure(&answer, "webhook", self.s.token.as_deref(), &[409])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_days_follow_the_severity() {
        let sla = DueDays {
            low: 10,
            medium: 5,
            high: 2,
            critical: 1,
        };
        assert_eq!(sla_days(&sla, "Critical"), 1);
        assert_eq!(sla_days(&sla, "High"), 2);
        assert_eq!(sla_days(&sla, "medium"), 5);
        assert_eq!(sla_days(&sla, "Low"), 10);
        assert_eq!(sla_days(&sla, "?"), 5);
    }

    #[test]
    fn a_named_but_unset_token_is_an_error_and_an_empty_name_is_none() {
        let mut c = WebhookOptions {
            enabled: true,
            url: "http://127.0.0.1:9/tasks".into(),
            token_env: Some("BREAKDESK_TEST_UNSET_WEBHOOK_TOKEN".into()),
            ..WebhookOptions::default()
        };
        let e = Settings::new(&c).err().unwrap();
        assert!(e.contains("BREAKDESK_TEST_UNSET_WEBHOOK_TOKEN"), "{e}");
        c.token_env = None;
        assert!(Settings::new(&c).unwrap().token.is_none());
        c.url = "ftp://x".into();
        assert!(Settings::new(&c).err().unwrap().contains("[webhook] url"));
    }
}
