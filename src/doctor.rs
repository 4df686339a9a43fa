//! `breakdesk doctor`: one report, a line per check with ok / warning / problem and the setting
//! to change. It reads the configuration as every command does, looks at the data directory,
//! the store and its saved models, the secrets the enabled features need, the user and role that
//! decisions will be recorded under, and reaches each enabled dispatch channel for real without
//! sending anything (the LLM only when asked, since a call may cost). Every network check is
//! bounded in time; secret values are never printed, only whether their variable is set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, ConfigSource};
use crate::store::{SCHEMA_VERSION, Store, StoreError};

/// What `breakdesk doctor` looks at.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--config`: the configuration file instead of the platform user file.
    pub config: Option<PathBuf>,
    /// `--data-dir`: overrides `[general] data_dir`.
    pub data_dir: Option<PathBuf>,
    /// Also call the LLM endpoint (`--llm`).
    pub llm: bool,
    /// The longest any one network check may take.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: None,
            data_dir: None,
            llm: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Problem,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Problem => "problem",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked: `config`, `data dir`, `store`, `model gl_ihub/iforest`, `secret
    /// BREAKDESK_JIRA_TOKEN`, `email`, …
    pub check: String,
    pub status: Level,
    /// What was found.
    pub detail: String,
    /// The setting to change (warnings and problems).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn ok(check: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        check: check.into(),
        status: Level::Ok,
        detail: detail.into(),
        fix: None,
    }
}

fn warning(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check: check.into(),
        status: Level::Warning,
        detail: detail.into(),
        fix: Some(fix.into()).filter(|f: &String| !f.is_empty()),
    }
}

fn problem(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check: check.into(),
        status: Level::Problem,
        detail: detail.into(),
        fix: Some(fix.into()).filter(|f: &String| !f.is_empty()),
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The build that ran the checks.
    pub version: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn problems(&self) -> usize {
        self.count(Level::Problem)
    }

    pub fn warnings(&self) -> usize {
        self.count(Level::Warning)
    }

    fn count(&self, level: Level) -> usize {
        self.checks.iter().filter(|c| c.status == level).count()
    }

    /// The report as text: a line per check (status, check, what was found), the fix indented
    /// under it, then a summary line.
    pub fn to_text(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|c| c.check.chars().count())
            .max()
            .unwrap_or(0)
            .max(8);
        let mut out = format!("breakdesk doctor {}\n", self.version);
        for c in &self.checks {
            let detail = crate::text::terminal_safe(&c.detail);
            out.push_str(&format!(
                "{:<8} {:<width$}  {detail}\n",
                c.status.as_str(),
                c.check
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!(
                    "{:<8} {:<width$}  fix: {}\n",
                    "",
                    "",
                    crate::text::terminal_safe(fix)
                ));
            }
        }
        let (p, w) = (self.problems(), self.warnings());
        out.push_str(&format!(
            "{p} problem{}, {w} warning{}{}\n",
            if p == 1 { "" } else { "s" },
            if w == 1 { "" } else { "s" },
            if p > 0 {
                ": fix the problems above and run `breakdesk doctor` again"
            } else {
                ""
            }
        ));
        out
    }

    /// The report as one JSON object: `version`, `checks` (check, status, detail, fix),
    /// `problems`, `warnings`.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "version": self.version,
            "checks": self.checks,
            "problems": self.problems(),
            "warnings": self.warnings(),
        })
        .to_string()
    }
}

/// Runs every check.
pub fn run(opts: &Options) -> Report {
    let mut checks = Vec::new();
    let version = crate::shipping::short_version();
    let cfg = match config_check(opts, &mut checks) {
        Some(cfg) => cfg,
        None => {
            checks.push(warning(
                "other checks",
                "skipped: they depend on the configuration",
                "",
            ));
            return Report { version, checks };
        }
    };
    checks.push(user_check(&cfg));
    let data_dir = data_dir_check(&cfg, &mut checks);
    if let Some(dir) = &data_dir {
        store_checks(dir, &mut checks);
    }
    secret_checks(&cfg, &mut checks);
    checks.extend(network_checks(&cfg, opts));
    Report { version, checks }
}

fn config_check(opts: &Options, checks: &mut Vec<Check>) -> Option<Config> {
    match crate::wiring::check::load(opts.config.as_deref()) {
        Ok((mut cfg, ConfigSource { user_file })) => {
            let detail = match (&user_file, crate::config::user_config_path()) {
                (Some(p), _) => format!("{} is valid", p.display()),
                (None, Some(p)) => format!(
                    "the embedded defaults (no user file at {}; `breakdesk config` lists every setting)",
                    p.display()
                ),
                (None, None) => "the embedded defaults".to_string(),
            };
            checks.push(ok("config", detail));
            if let Some(d) = &opts.data_dir {
                cfg.general.data_dir = d.display().to_string();
            }
            Some(cfg)
        }
        Err(e) => {
            checks.push(problem(
                "config",
                e.to_string(),
                "correct the key named above (`breakdesk config` prints every setting with its default), or pass --config FILE",
            ));
            None
        }
    }
}

/// The user and role decisions are recorded under, as the command line resolves them.
fn user_check(cfg: &Config) -> Check {
    use crate::cases::ActorError;
    let from = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .is_some()
    };
    let source = if !cfg.general.user.trim().is_empty() {
        "[general] user"
    } else if from("USER") {
        "$USER"
    } else if from("USERNAME") {
        "$USERNAME"
    } else {
        "the process's account, $USER and $USERNAME being unset"
    };
    match crate::wiring::check::actor(cfg, None, None) {
        Ok(actor) if actor.user.starts_with("uid-") => warning(
            "user",
            format!(
                "decisions will be recorded as {:?} ({}), from {source}: the account is not listed in /etc/passwd",
                actor.user, actor.role
            ),
            "set $USER to the analyst's name, or [general] user with [roles] allow_user_override = true",
        ),
        Ok(actor) => ok(
            "user",
            format!(
                "decisions will be recorded as {:?} acting as {} (user from {source}, role from [general] role)",
                actor.user, actor.role
            ),
        ),
        Err(ActorError::Usage(m)) | Err(ActorError::Refused(m)) => problem(
            "user",
            m,
            "set $USER, or list the user in [roles] (supervisors, analysts), or change [general] role",
        ),
    }
}

/// The data directory: set, and writable (or creatable). Returns it when usable.
fn data_dir_check(cfg: &Config, checks: &mut Vec<Check>) -> Option<PathBuf> {
    let Some(dir) = cfg.data_dir() else {
        checks.push(problem(
            "data dir",
            "no data directory: the platform has none for this user",
            "set [general] data_dir, or pass --data-dir DIR",
        ));
        return None;
    };
    let shown = dir.display().to_string();
    if dir.is_dir() {
        match tempfile::NamedTempFile::new_in(&dir) {
            Ok(_) => {
                checks.push(ok("data dir", format!("{shown} is writable")));
                Some(dir)
            }
            Err(e) => {
                checks.push(problem(
                    "data dir",
                    format!("{shown} is not writable: {e}"),
                    "give this user write access to it, or set [general] data_dir (or --data-dir) to another directory",
                ));
                None
            }
        }
    } else if dir.exists() {
        checks.push(problem(
            "data dir",
            format!("{shown} exists but is not a directory"),
            "set [general] data_dir (or --data-dir) to a directory",
        ));
        None
    } else {
        // The nearest existing ancestor must be a directory that lets us create the rest.
        let ancestor = dir.ancestors().skip(1).find(|a| a.exists());
        let created = match ancestor {
            Some(a) if a.is_dir() => tempfile::NamedTempFile::new_in(a)
                .map(|_| ())
                .map_err(|e| format!("cannot be created in {}: {e}", a.display())),
            Some(a) => Err(format!(
                "cannot be created: {} is not a directory",
                a.display()
            )),
            None => Err("cannot be created: no parent directory of it exists".to_string()),
        };
        match created {
            Ok(()) => {
                checks.push(ok(
                    "data dir",
                    format!("{shown} does not exist yet; the first command creates it"),
                ));
                Some(dir)
            }
            Err(why) => {
                checks.push(problem(
                    "data dir",
                    format!("{shown} does not exist and {why}"),
                    "create it with write access for this user, or set [general] data_dir (or --data-dir) to another directory",
                ));
                None
            }
        }
    }
}

/// The store (schema, lock) and its saved models.
fn store_checks(data_dir: &Path, checks: &mut Vec<Check>) {
    let path = data_dir.join("store");
    if !path.exists() {
        checks.push(ok(
            "store",
            format!(
                "{} does not exist yet; the first command creates it (schema {SCHEMA_VERSION})",
                path.display()
            ),
        ));
        checks.push(ok(
            "models",
            "none saved yet: `breakdesk train FILE` (or the first `run`) trains one",
        ));
        return;
    }
    let store = match Store::open(data_dir) {
        Ok(s) => s,
        Err(e) => {
            let fix = match &e {
                StoreError::Locked { .. } => {
                    "stop the other breakdesk process (a running `breakdesk serve` or terminal UI: while it runs, use its routes or `open --live`), or pass --data-dir to use another store"
                }
                StoreError::TooNew { .. } => {
                    "install the breakdesk that wrote it (or a newer one), or pass --data-dir to use another store"
                }
                StoreError::DiskFull { .. } => "free space on its disk",
                _ => {
                    "check the directory's permissions and disk, or pass --data-dir to use another store"
                }
            };
            checks.push(problem("store", e.to_string(), fix));
            return;
        }
    };
    match store.schema_version() {
        Ok(v) => checks.push(ok(
            "store",
            format!(
                "{}: schema {v} (this build writes {SCHEMA_VERSION}), not in use by another process",
                store.path().display()
            ),
        )),
        Err(e) => {
            checks.push(problem(
                "store",
                e.to_string(),
                "the store cannot be read: restore it from a backup, or pass --data-dir to start another",
            ));
            return;
        }
    }
    model_checks(&store, checks);
}

fn model_checks(store: &Store, checks: &mut Vec<Check>) {
    use crate::detect::model::ModelBundle;
    let names = match store.model_names() {
        Ok(n) => n,
        Err(e) => {
            checks.push(problem(
                "models",
                e.to_string(),
                "the store cannot be read: restore it, or pass --data-dir",
            ));
            return;
        }
    };
    if names.is_empty() {
        checks.push(ok(
            "models",
            "none saved yet: `breakdesk train FILE` (or the first `run`) trains one",
        ));
        return;
    }
    let now = chrono::Utc::now().naive_utc();
    for name in names {
        let check = format!("model {name}");
        let bytes = match store.get_model(&name) {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(e) => {
                checks.push(problem(check, e.to_string(), "the store cannot be read"));
                continue;
            }
        };
        match ModelBundle::from_json(&bytes) {
            Ok(b) => {
                let age = chrono::NaiveDateTime::parse_from_str(&b.trained_at, "%Y-%m-%dT%H:%M:%SZ")
                    .map(|t| {
                        let days = (now - t).num_days();
                        match days {
                            d if d < 1 => "today".to_string(),
                            1 => "1 day ago".to_string(),
                            d => format!("{d} days ago"),
                        }
                    })
                    .unwrap_or_else(|_| "at an unknown time".to_string());
                checks.push(ok(
                    check,
                    format!(
                        "profile {}, version {}, trained on {} rows {age} ({})",
                        b.profile,
                        b.version(),
                        b.training_rows,
                        b.trained_at
                    ),
                ));
            }
            Err(e) => checks.push(warning(
                check,
                format!("unreadable: {e}"),
                format!(
                    "retrain it: `breakdesk train FILE --profile {}` (the next run retrains it otherwise)",
                    name.split('/').next().unwrap_or(&name)
                ),
            )),
        }
    }
}

/// Whether the variable `name` holds a value (never read further than that).
fn is_set(name: &str) -> bool {
    std::env::var_os(name.trim()).is_some_and(|v| !v.to_string_lossy().trim().is_empty())
}

/// The secrets the enabled features need, each by its variable.
fn secret_checks(cfg: &Config, checks: &mut Vec<Check>) {
    let name = |var: &str| format!("secret {}", var.trim());
    let mut needed = |var: &str, setting: &str, what: &str| {
        if var.trim().is_empty() {
            checks.push(problem(
                format!("secret {setting}"),
                format!("{what} needs a secret, but {setting} names no variable"),
                format!("set {setting} to the name of the environment variable that holds it"),
            ));
        } else if is_set(var) {
            checks.push(ok(name(var), format!("set ({setting}, for {what})")));
        } else {
            checks.push(problem(
                name(var),
                format!("not set ({setting}, needed by {what})"),
                format!(
                    "export {}=… in the environment breakdesk runs in",
                    var.trim()
                ),
            ));
        }
    };
    if cfg.email.enabled && !cfg.email.username.trim().is_empty() {
        needed(
            &cfg.email.password_env,
            "[email] password_env",
            "the SMTP login",
        );
    }
    if cfg.jira.enabled {
        needed(&cfg.jira.token_env, "[jira] token_env", "Jira");
    }
    if cfg.webhook.enabled && !cfg.webhook.token_env.trim().is_empty() {
        needed(&cfg.webhook.token_env, "[webhook] token_env", "the webhook");
    }
    if cfg.llm.enabled && !cfg.llm.api_key_env.trim().is_empty() {
        let var = cfg.llm.api_key_env.trim();
        let local = reqwest::Url::parse(cfg.llm.base_url.trim())
            .map(|u| crate::net::is_loopback(&u))
            .unwrap_or(false);
        if is_set(var) {
            checks.push(ok(name(var), "set ([llm] api_key_env, for the LLM)"));
        } else if local {
            checks.push(ok(
                name(var),
                "not set: no key is sent, which a model served on this machine does not need",
            ));
        } else {
            checks.push(warning(
                name(var),
                format!(
                    "not set: no key is sent to {} ([llm] api_key_env)",
                    cfg.llm.base_url.trim()
                ),
                format!("export {var}=… unless the service needs no key"),
            ));
        }
    }
    // The service's tokens (`breakdesk serve`).
    let var = cfg.service.token_env.trim();
    let loopback = cfg
        .service
        .bind
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(true);
    if !var.is_empty() {
        if is_set(var) {
            checks.push(ok(
                name(var),
                "set ([service] token_env): `serve` requires it on every route but /health",
            ));
        } else if !loopback && cfg.service.users.is_empty() {
            checks.push(problem(
                name(var),
                format!(
                    "not set ([service] token_env): `serve` refuses to listen on {} without a token",
                    cfg.service.bind
                ),
                format!("export {var}=… or keep [service] bind on loopback"),
            ));
        } else {
            checks.push(ok(
                name(var),
                "not set ([service] token_env): `serve` answers without a token, on loopback only",
            ));
        }
    }
    for u in &cfg.service.users {
        let var = u.token_env.trim();
        if is_set(var) {
            checks.push(ok(
                name(var),
                format!("set (the service token of {:?}, {})", u.name, u.role),
            ));
        } else {
            checks.push(problem(
                name(var),
                format!(
                    "not set: the service token of {:?} ([[service.users]]); `serve` refuses to start without it",
                    u.name
                ),
                format!("export {var}=… or remove the user from [[service.users]]"),
            ));
        }
    }
}

/// The dispatch channels (and the LLM with `--llm`), each reached for real.
fn network_checks(cfg: &Config, opts: &Options) -> Vec<Check> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let limit = opts.timeout;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return vec![problem(
                "channels",
                format!("cannot start the runtime for the network checks: {e}"),
                "",
            )];
        }
    };
    runtime.block_on(async {
        use crate::dispatch::probe;
        let channels = crate::wiring::dispatch::options(cfg);
        let (email, jira, webhook) = tokio::join!(
            probe::email(&channels.email, limit),
            probe::jira(&channels.jira, limit),
            probe::webhook(&channels.webhook, limit)
        );
        let mut out = vec![
            channel("email", "[email]", email),
            channel("jira", "[jira]", jira),
            channel("webhook", "[webhook]", webhook),
        ];
        out.push(if !cfg.llm.enabled {
            ok(
                "llm",
                "off ([llm] enabled = false): nothing leaves the machine",
            )
        } else if !opts.llm {
            ok(
                "llm",
                format!(
                    "on, not called ({}, model {}): pass --llm to check it with one small completion (it may cost)",
                    cfg.llm.base_url.trim(),
                    cfg.llm.model.trim()
                ),
            )
        } else {
            llm_check(cfg, limit).await
        });
        out
    })
}

fn channel(name: &str, section: &str, probe: Option<crate::dispatch::probe::Probe>) -> Check {
    match probe {
        None => ok(name, format!("off ({section} enabled = false)")),
        Some(Ok(done)) => ok(name, done),
        Some(Err(f)) if f.step == "settings" => problem(
            name,
            f.error,
            "set what the message names (`breakdesk config` shows every setting)",
        ),
        Some(Err(f)) if f.step == "timeout" => problem(name, f.error, f.fix),
        Some(Err(f)) => problem(name, format!("{} failed: {}", f.step, f.error), f.fix),
    }
}

/// One small completion through the product's own client (no retries, a few tokens).
async fn llm_check(cfg: &Config, limit: Duration) -> Check {
    use crate::llm::{ChatRequest, LlmClient, LlmError};
    let mut s = match crate::wiring::run::llm_options(&cfg.llm) {
        Ok(o) => o.client_settings(),
        Err(e) => return problem("llm", e, "correct [llm] in the configuration"),
    };
    s.max_retries = 0;
    s.max_tokens = 32;
    s.timeout = s.timeout.min(limit);
    if s.timeout.is_zero() {
        s.timeout = limit;
    }
    s.requests_per_minute = 0;
    s.tokens_per_minute = 0;
    s.concurrency = 1;
    s.failure_threshold = 0;
    let var = cfg.llm.api_key_env.trim().to_string();
    let client = match LlmClient::new(s) {
        Ok(c) => c,
        Err(e) => {
            return problem(
                "llm",
                e.to_string(),
                "correct [llm] base_url and [llm] model",
            );
        }
    };
    let endpoint = client.endpoint().to_string();
    let request = ChatRequest::new(
        "You are answering a connectivity check.",
        "Answer with the JSON object {\"ok\": true}.",
        "doctor_probe",
        serde_json::json!({
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
            "additionalProperties": false
        }),
    );
    let outcome = client.complete(&request).await;
    let model = cfg.llm.model.trim();
    match outcome.result {
        Ok(_) | Err(LlmError::Truncated) => ok(
            "llm",
            format!(
                "{endpoint}: model {model} answered ({} tokens)",
                outcome.prompt_tokens + outcome.completion_tokens
            ),
        ),
        Err(e) => {
            let fix = match &e {
                LlmError::Http {
                    status: 401 | 403, ..
                } => format!(
                    "the key in {} ([llm] api_key_env) is missing or not accepted",
                    if var.is_empty() { "(no variable)" } else { &var }
                ),
                LlmError::Http { status: 404, .. } => format!(
                    "check [llm] base_url (requests go to {endpoint}) and [llm] model ({model})"
                ),
                LlmError::Http { status: 400, .. } => "check [llm] model, and [llm] response_format (\"json_object\" or \"none\" for a server without structured outputs)".to_string(),
                LlmError::Timeout => "check [llm] base_url; a slow local model may need a larger [llm] timeout_secs".to_string(),
                LlmError::Transport(_) => "check [llm] base_url and that the server is running".to_string(),
                LlmError::BadResponse(_) => "[llm] base_url must be an OpenAI-compatible API (…/v1)".to_string(),
                _ => "check [llm]".to_string(),
            };
            problem("llm", format!("{endpoint}: {e}"), fix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_report_puts_the_fix_under_its_check_and_counts() {
        let report = Report {
            version: "x".into(),
            checks: vec![
                ok("config", "fine"),
                warning("model a/b", "unreadable", "retrain it"),
                problem("email", "connect failed", "check [email] host"),
            ],
        };
        let text = report.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("ok ") && lines[1].contains("config"));
        assert!(lines[2].starts_with("warning") && lines[3].contains("fix: retrain it"));
        assert!(lines[4].starts_with("problem") && lines[5].contains("fix: check [email] host"));
        assert_eq!(
            lines[6],
            "1 problem, 1 warning: fix the problems above and run `breakdesk doctor` again"
        );
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["problems"], 1);
        assert_eq!(json["checks"][2]["status"], "problem");
        assert!(json["checks"][0].get("fix").is_none());
    }
}
