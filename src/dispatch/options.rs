//! What dispatch needs to know: each channel's options and the outbox's, typed (a TLS mode, a
//! Jira API version, durations, paths). The faces build them from the configuration
//! (`crate::wiring::dispatch`); dispatch reads nothing else. Secrets are not here: an option
//! names the environment variable, read when a channel is set up.
//!
//! What needs a network address, an environment variable or a file (the SMTP addresses, the
//! Jira and webhook URLs, the CA files, the tokens) is checked when a channel is set up, so the
//! message names the setting at the moment it matters (a channel that is off is never checked).

use std::path::PathBuf;
use std::time::Duration;

use super::outbox::RetryPolicy;

/// The options of every channel and of the outbox.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DispatchOptions {
    pub email: EmailOptions,
    pub jira: JiraOptions,
    pub webhook: WebhookOptions,
    pub outbox: OutboxOptions,
}

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Upgrade the connection with STARTTLS (refused if the server does not offer it).
    #[default]
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No encryption: only for a relay on this machine.
    Plain,
}

/// The email report over SMTP (`[email]`).
#[derive(Clone, Debug, PartialEq)]
pub struct EmailOptions {
    /// Whether the channel is switched on.
    pub enabled: bool,
    /// The SMTP server (trimmed; empty when not set).
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// A PEM file of CA certificates trusted besides the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// The SMTP login (`None`: no authentication).
    pub username: Option<String>,
    /// The name of the environment variable that holds the password (`None`: none named).
    pub password_env: Option<String>,
    /// The name sent with EHLO (`None`: this machine's host name).
    pub hello_name: Option<String>,
    /// The sender, as written (checked when the channel is set up).
    pub from: String,
    /// The recipients, as written (checked when the channel is set up).
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// The subject; `{count}`, `{date}` and `{status}` are filled in.
    pub subject: String,
    /// How many breaks the report lists, largest absolute difference first.
    pub top_breaks: usize,
    /// Whether the cases go along as a CSV attachment.
    pub attach_csv: bool,
    /// Whether account identifiers are masked in the report.
    pub mask_accounts: bool,
    /// For the connection and each SMTP command (zero is refused when the channel is set up).
    pub timeout: Duration,
}

impl Default for EmailOptions {
    /// The channel off, with the defaults of `config/default.toml`.
    fn default() -> EmailOptions {
        EmailOptions {
            enabled: false,
            host: String::new(),
            port: 587,
            tls: TlsMode::StartTls,
            ca_file: None,
            username: None,
            password_env: Some("BREAKDESK_SMTP_PASSWORD".into()),
            hello_name: None,
            from: String::new(),
            to: Vec::new(),
            cc: Vec::new(),
            subject: "breakdesk: {count} {status} break(s), {date}".into(),
            top_breaks: 10,
            attach_csv: true,
            mask_accounts: false,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The Jira REST API version the requests are written for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JiraApi {
    /// Data Center and older sites: a plain-text description, search through `/rest/api/2/search`.
    V2,
    /// Jira Cloud: the description in Atlassian Document Format, search through
    /// `/rest/api/3/search/jql`.
    #[default]
    V3,
}

impl JiraApi {
    /// The version's number, as in the request paths and the stored payload.
    pub fn number(self) -> u32 {
        match self {
            JiraApi::V2 => 2,
            JiraApi::V3 => 3,
        }
    }
}

/// How many issues a dispatch opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JiraMode {
    /// One issue per case.
    #[default]
    PerCase,
    /// One issue per dispatch, listing its cases.
    PerBatch,
}

/// Jira issues (`[jira]`).
#[derive(Clone, Debug, PartialEq)]
pub struct JiraOptions {
    /// Whether the channel is switched on.
    pub enabled: bool,
    /// The site, as written (checked when the channel is set up).
    pub base_url: String,
    pub api_version: JiraApi,
    /// The account's email for Basic authentication (`None`: the token is a Bearer token).
    pub email: Option<String>,
    /// The name of the environment variable that holds the API token (`None`: none named).
    pub token_env: Option<String>,
    /// The project key (trimmed; empty when not set).
    pub project: String,
    /// The issue type (trimmed; empty when not set).
    pub issue_type: String,
    pub mode: JiraMode,
    /// Labels put on every issue besides the break key (checked when the channel is set up).
    pub labels: Vec<String>,
    /// A PEM file of extra CA certificates to trust.
    pub ca_file: Option<PathBuf>,
    /// Per request (zero is refused when the channel is set up).
    pub timeout: Duration,
}

impl Default for JiraOptions {
    /// The channel off, with the defaults of `config/default.toml`.
    fn default() -> JiraOptions {
        JiraOptions {
            enabled: false,
            base_url: String::new(),
            api_version: JiraApi::V3,
            email: None,
            token_env: Some("BREAKDESK_JIRA_TOKEN".into()),
            project: String::new(),
            issue_type: "Task".into(),
            mode: JiraMode::PerCase,
            labels: vec!["breakdesk".into()],
            ca_file: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Days from dispatch to a webhook task's due date, per severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DueDays {
    pub low: u32,
    pub medium: u32,
    pub high: u32,
    pub critical: u32,
}

impl Default for DueDays {
    fn default() -> DueDays {
        DueDays {
            low: 10,
            medium: 5,
            high: 2,
            critical: 1,
        }
    }
}

/// Tasks posted to a webhook (`[webhook]`).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookOptions {
    /// Whether the channel is switched on.
    pub enabled: bool,
    /// The endpoint, as written (checked when the channel is set up).
    pub url: String,
    /// The name of the environment variable that holds the Bearer token (`None`: the endpoint
    /// takes no token).
    pub token_env: Option<String>,
    /// A PEM file of extra CA certificates to trust.
    pub ca_file: Option<PathBuf>,
    /// Per request (zero is refused when the channel is set up).
    pub timeout: Duration,
    /// A task's due date by the case's severity.
    pub due_days: DueDays,
}

impl Default for WebhookOptions {
    /// The channel off, with the defaults of `config/default.toml`.
    fn default() -> WebhookOptions {
        WebhookOptions {
            enabled: false,
            url: String::new(),
            token_env: Some("BREAKDESK_WEBHOOK_TOKEN".into()),
            ca_file: None,
            timeout: Duration::from_secs(30),
            due_days: DueDays::default(),
        }
    }
}

/// How the outbox is sent (`[outbox]`).
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxOptions {
    /// How failed items are retried.
    pub retry: RetryPolicy,
    /// How long a flush waits for retries that fall due.
    pub flush_wait: Duration,
    /// How often a background sender looks for due items.
    pub poll: Duration,
}

impl Default for OutboxOptions {
    /// The defaults of `config/default.toml`.
    fn default() -> OutboxOptions {
        OutboxOptions {
            retry: RetryPolicy {
                max_attempts: 8,
                base: Duration::from_secs(30),
                max: Duration::from_secs(3600),
            },
            flush_wait: Duration::from_secs(60),
            poll: Duration::from_secs(5),
        }
    }
}
