//! Jira: create-issue requests (REST v2 with a plain-text description, or v3 with an Atlassian
//! Document Format description), made idempotent by a deterministic break-key label that is
//! searched before every creation.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::email::{display_env, read_ca_file, secret_from_env};
use super::http;
use super::options::{JiraApi, JiraMode, JiraOptions};
use super::outbox::SendOutcome;
use crate::cases::{Case, is_jira_key};
use crate::text::fmt_amount;

/// Jira's limit on a summary.
const MAX_SUMMARY_CHARS: usize = 255;

/// A Jira issue as queued: the create request's body and the label that identifies it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraPayload {
    /// REST API version the body is written for (2 or 3).
    pub api_version: u32,
    /// The deterministic break key, also on the issue as a label: `breakdesk-<case id>`, or
    /// `breakdesk-batch-<hash of the case ids>` for one issue per dispatch.
    pub label: String,
    /// The issue's summary.
    pub summary: String,
    /// The JSON body of `POST /rest/api/{2,3}/issue`.
    pub body: Value,
}

enum Auth {
    Basic { email: String, token: String },
    Bearer { token: String },
}

/// `[jira]`, checked, with the token read from the environment.
pub(crate) struct Settings {
    base: reqwest::Url,
    api_version: JiraApi,
    auth: Auth,
    project: String,
    issue_type: String,
    pub(crate) per_batch: bool,
    labels: Vec<String>,
    ca_pem: Option<Vec<u8>>,
    timeout: Duration,
}

impl Settings {
    /// Checks the Jira options; the error names the setting or the environment variable.
    pub(crate) fn new(o: &JiraOptions) -> Result<Settings, String> {
        if !o.enabled {
            return Err(
                "Jira is not configured: set [jira] enabled = true, with base_url, project, email and token_env"
                    .into(),
            );
        }
        let mut base = http::parse_url(&o.base_url, "[jira] base_url")
            .map_err(|e| format!("Jira is not configured: {e}"))?;
        // Joined paths stay under a context path (https://host/jira/rest/api/...).
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let project = o.project.trim().to_string();
        if project.is_empty() {
            return Err(
                "Jira is not configured: [jira] project is empty (a project key such as RECON)"
                    .into(),
            );
        }
        let issue_type = o.issue_type.trim().to_string();
        if issue_type.is_empty() {
            return Err("[jira] issue_type is empty (e.g. Task)".into());
        }
        for l in &o.labels {
            if l.trim().is_empty() || l.chars().any(char::is_whitespace) {
                return Err(format!(
                    "[jira] labels: {l:?} is not a Jira label (labels cannot be empty or contain spaces)"
                ));
            }
        }
        let token = secret_from_env(o.token_env.as_deref(), "[jira] token_env")?.ok_or_else(|| {
            format!(
                "Jira needs an API token: the environment variable {} (named by [jira] token_env) is not set",
                display_env(o.token_env.as_deref())
            )
        })?;
        let auth = match &o.email {
            None => Auth::Bearer { token },
            Some(email) => Auth::Basic {
                email: email.clone(),
                token,
            },
        };
        if o.timeout.is_zero() {
            return Err("[jira] timeout_secs must be more than 0".into());
        }
        Ok(Settings {
            base,
            api_version: o.api_version,
            auth,
            project,
            issue_type,
            per_batch: o.mode == JiraMode::PerBatch,
            labels: o.labels.clone(),
            ca_pem: read_ca_file(o.ca_file.as_deref(), "[jira] ca_file")?,
            timeout: o.timeout,
        })
    }
}

/// The label of one case's issue.
pub(crate) fn case_label(case: &Case) -> String {
    format!("breakdesk-{}", case.id)
}

/// The label of one issue for a set of cases (the same set gives the same label).
pub(crate) fn batch_label(cases: &[Case]) -> String {
    let mut ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update([0]);
    }
    format!("breakdesk-batch-{}", crate::cases::hex(&h.finalize()[..6]))
}

/// The issue of one case.
pub(crate) fn case_payload(s: &Settings, case: &Case) -> JiraPayload {
    let summary = truncate(
        &format!(
            "[breakdesk] {} {}: {} {} ({})",
            case.ticket,
            case.bucket,
            case.key,
            fmt_amount(case.difference),
            case.severity
        ),
        MAX_SUMMARY_CHARS,
    );
    let paragraphs = vec![
        format!(
            "breakdesk case {} (ticket {}), status {}.",
            case.id,
            case.ticket,
            case.status.as_str()
        ),
        format!(
            "Bucket: {} (rule {}, confidence {:.2}). Severity: {}.",
            case.bucket, case.bucket_rule, case.confidence, case.severity
        ),
        format!(
            "Profile {}, key {}; break since {}, latest record {} ({} day(s)).",
            case.profile,
            case.key,
            case.start_date,
            case.last_date,
            case.age_days()
        ),
        format!("Difference: {}.", fmt_amount(case.difference)),
        format!("Summary: {}", case.summary),
        format!("Model version: {}.", case.model_version),
    ];
    payload(s, case_label(case), summary, paragraphs, Vec::new())
}

/// One issue for all `cases`.
pub(crate) fn batch_payload(s: &Settings, cases: &[Case]) -> JiraPayload {
    let total: f64 = cases.iter().map(|c| c.difference.abs()).sum();
    let summary = truncate(
        &format!(
            "[breakdesk] {} {} break(s), total absolute difference {}",
            cases.len(),
            super::report::status_label(cases),
            fmt_amount(total)
        ),
        MAX_SUMMARY_CHARS,
    );
    let mut models: Vec<&str> = cases.iter().map(|c| c.model_version.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    let paragraphs = vec![format!(
        "{} case(s) dispatched by breakdesk. Model version: {}.",
        cases.len(),
        models.join(", ")
    )];
    let items = cases
        .iter()
        .map(|c| {
            format!(
                "{} ({}) {} / {}, key {}, since {}, difference {}: {}",
                c.ticket,
                c.id,
                c.bucket,
                c.severity,
                c.key,
                c.start_date,
                fmt_amount(c.difference),
                c.summary
            )
        })
        .collect();
    payload(s, batch_label(cases), summary, paragraphs, items)
}

fn payload(
    s: &Settings,
    label: String,
    summary: String,
    paragraphs: Vec<String>,
    items: Vec<String>,
) -> JiraPayload {
    let description = if s.api_version == JiraApi::V2 {
        let mut text = paragraphs.join("\n\n");
        for i in &items {
            text.push_str("\n* ");
            text.push_str(i);
        }
        Value::String(text)
    } else {
        adf(&paragraphs, &items)
    };
    let mut labels = vec![label.clone()];
    for l in &s.labels {
        if !labels.contains(l) {
            labels.push(l.clone());
        }
    }
    JiraPayload {
        api_version: s.api_version.number(),
        label,
        summary: summary.clone(),
        body: json!({
            "fields": {
                "project": {"key": s.project},
                "summary": summary,
                "issuetype": {"name": s.issue_type},
                "labels": labels,
                "description": description,
            }
        }),
    }
}

/// An Atlassian Document Format document: paragraphs, then a bullet list.
pub(crate) fn adf(paragraphs: &[String], items: &[String]) -> Value {
    let para = |t: &str| json!({"type": "paragraph", "content": [{"type": "text", "text": t}]});
    let mut content: Vec<Value> = paragraphs
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| para(p))
        .collect();
    if !items.is_empty() {
        content.push(json!({
            "type": "bulletList",
            "content": items
                .iter()
                .filter(|i| !i.is_empty())
                .map(|i| json!({"type": "listItem", "content": [para(i)]}))
                .collect::<Vec<_>>(),
        }));
    }
    json!({"type": "doc", "version": 1, "content": content})
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The Jira REST client of the settings.
pub(crate) struct Client {
    http: reqwest::Client,
    s: Settings,
}

impl Client {
    pub(crate) fn new(s: Settings) -> Result<Client, String> {
        let http = http::client(s.timeout, s.ca_pem.as_deref(), &s.base, "[jira] ca_file")?;
        Ok(Client { http, s })
    }

    fn token(&self) -> &str {
        match &self.s.auth {
            Auth::Basic { token, .. } | Auth::Bearer { token } => token,
        }
    }

    fn authorized(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let r = r.header(reqwest::header::ACCEPT, "application/json");
        match &self.s.auth {
            Auth::Basic { email, token } => r.basic_auth(email, Some(token)),
            Auth::Bearer { token } => r.bearer_auth(token),
        }
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, SendOutcome> {
        self.s.base.join(path).map_err(|e| SendOutcome::Permanent {
            error: format!("[jira] base_url cannot be joined with {path}: {e}"),
        })
    }

    /// An authenticated `GET /rest/api/{2,3}/myself`, within `limit`: who the token logs in
    /// as. Nothing is created.
    pub(crate) async fn probe(&self, limit: Duration) -> Result<String, super::ProbeFailure> {
        let path = format!("rest/api/{}/myself", self.s.api_version.number());
        let url = self.url(&path).map_err(|o| super::ProbeFailure {
            step: "url",
            error: super::probe::outcome_text(&o),
            fix: "correct [jira] base_url".into(),
        })?;
        let request = self.authorized(self.http.get(url.clone()).timeout(limit));
        let answer = http::exchange(request, "Jira", limit)
            .await
            .map_err(|o| super::ProbeFailure {
                step: "connect",
                error: format!("{url}: {}", super::probe::outcome_text(&o)),
                fix: "check [jira] base_url, the network (proxy, firewall) and, for a company CA, [jira] ca_file".into(),
            })?;
        if answer.status == 200 {
            let me = answer.json();
            let who = ["displayName", "emailAddress", "name", "accountId"]
                .iter()
                .find_map(|k| me.get(*k).and_then(Value::as_str))
                .map(str::to_string);
            return match who {
                Some(who) => Ok(format!("{url}: authenticated as {who}")),
                None => Err(super::ProbeFailure {
                    step: "answer",
                    error: format!(
                        "{url}: HTTP 200 but not a Jira user (is [jira] base_url a Jira site?)"
                    ),
                    fix: "set [jira] base_url to the site, e.g. https://yourcompany.atlassian.net"
                        .into(),
                }),
            };
        }
        let message = http::error_message(&answer.body, answer.status, Some(self.token()));
        let fix = match answer.status {
            401 | 403 => format!(
                "the token in the variable named by [jira] token_env{} is not accepted: {}",
                if matches!(self.s.auth, Auth::Basic { .. }) {
                    ", with [jira] email,"
                } else {
                    " (sent as a Bearer token: set [jira] email for a Cloud API token)"
                },
                "renew it, or check the account"
            ),
            404 => "check [jira] base_url (the site, with its context path if any) and [jira] api_version (3 for Cloud, 2 for Data Center)".into(),
            _ => "check [jira] base_url and the site's status".into(),
        };
        Err(super::ProbeFailure {
            step: "answer",
            error: format!("{url}: HTTP {} {message}", answer.status),
            fix,
        })
    }

    /// One attempt: the issue is looked up by its label, and created only when none exists.
    pub(crate) async fn send(&self, p: &JiraPayload) -> SendOutcome {
        match self.search(p).await {
            Ok(Some(key)) => {
                return SendOutcome::Sent {
                    detail: format!("found {key} by label {} (created earlier)", p.label),
                    reference: Some(key),
                };
            }
            Ok(None) => {}
            Err(outcome) => return outcome,
        }
        let path = format!("rest/api/{}/issue", p.api_version);
        let url = match self.url(&path) {
            Ok(u) => u,
            Err(o) => return o,
        };
        let answer = match http::exchange(
            self.authorized(self.http.post(url)).json(&p.body),
            "Jira create issue",
            self.s.timeout,
        )
        .await
        {
            Ok(a) => a,
            Err(SendOutcome::Transient { error, retry_after }) => {
                return SendOutcome::Transient {
                    error: format!(
                        "{error}; the issue may exist: the next attempt searches label {} before creating",
                        p.label
                    ),
                    retry_after,
                };
            }
            Err(other) => return other,
        };
        if (200..300).contains(&answer.status) {
            let body = answer.json();
            return match body.get("key").and_then(Value::as_str) {
                Some(key) if is_jira_key(key) => SendOutcome::Sent {
                    reference: Some(key.to_string()),
                    detail: format!("created {key} (HTTP {})", answer.status),
                },
                // Never invent a key: the next attempt finds the issue by its label.
                _ => SendOutcome::Transient {
                    error: format!(
                        "Jira create issue: HTTP {} without an issue key; the next attempt searches label {}",
                        answer.status, p.label
                    ),
                    retry_after: None,
                },
            };
        }
        http::failure(&answer, "Jira create issue", Some(self.token()), &[])
    }

    /// The oldest issue carrying the payload's label, if any.
    async fn search(&self, p: &JiraPayload) -> Result<Option<String>, SendOutcome> {
        let path = if p.api_version == 2 {
            "rest/api/2/search"
        } else {
            "rest/api/3/search/jql"
        };
        let mut url = self.url(path)?;
        url.query_pairs_mut()
            .append_pair(
                "jql",
                &format!("labels = \"{}\" ORDER BY created ASC", p.label),
            )
            .append_pair("fields", "key")
            .append_pair("maxResults", "10");
        let answer = http::exchange(
            self.authorized(self.http.get(url)),
            "Jira search by label",
            self.s.timeout,
        )
        .await?;
        if !(200..300).contains(&answer.status) {
            return Err(http::failure(
                &answer,
                "Jira search by label",
                Some(self.token()),
                &[],
            ));
        }
        let body = answer.json();
        let Some(issues) = body.get("issues").and_then(Value::as_array) else {
            return Err(SendOutcome::Transient {
                error: "Jira search by label: the answer has no \"issues\" list".into(),
                retry_after: None,
            });
        };
        Ok(issues
            .iter()
            .filter_map(|i| i.get("key").and_then(Value::as_str))
            .find(|k| is_jira_key(k))
            .map(str::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adf_has_paragraphs_then_a_bullet_list() {
        let doc = adf(&["one".into(), "".into()], &["a".into(), "b".into()]);
        assert_eq!(doc["type"], "doc");
        assert_eq!(doc["version"], 1);
        let content = doc["content"].as_array().unwrap();
        assert_eq!(content.len(), 2);
        assert_eq!(content[0]["content"][0]["text"], "one");
        assert_eq!(content[1]["type"], "bulletList");
        assert_eq!(
            content[1]["content"][1]["content"][0]["content"][0]["text"],
            "b"
        );
    }

    #[test]
    fn summaries_fit_jira() {
        let long = "x".repeat(400);
        let t = truncate(&long, MAX_SUMMARY_CHARS);
        assert_eq!(t.chars().count(), MAX_SUMMARY_CHARS);
        assert!(t.ends_with('…'));
        assert_eq!(truncate("short", 10), "short");
    }

    #[test]
    fn settings_name_what_is_missing() {
        let mut c = JiraOptions::default();
        assert!(Settings::new(&c).err().unwrap().contains("[jira] enabled"));
        c.enabled = true;
        assert!(Settings::new(&c).err().unwrap().contains("[jira] base_url"));
        c.base_url = "https://example.atlassian.net".into();
        assert!(Settings::new(&c).err().unwrap().contains("[jira] project"));
        c.project = "RECON".into();
        c.token_env = Some("BREAKDESK_TEST_UNSET_JIRA_TOKEN".into());
        let e = Settings::new(&c).err().unwrap();
        assert!(
            e.contains("BREAKDESK_TEST_UNSET_JIRA_TOKEN") && e.contains("[jira] token_env"),
            "{e}"
        );
        c.labels = vec!["two words".into()];
        // The token is checked after the labels.
        assert!(Settings::new(&c).err().unwrap().contains("[jira] labels"));
    }
}
