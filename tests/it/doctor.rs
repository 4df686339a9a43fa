//! `breakdesk doctor` through the real binary: each check passing and failing, with the channels
//! reached on loopback servers (tests/it/support: the SMTP sink, the scripted HTTP server, the
//! chat-completions server). Nothing is ever sent; secret values never appear in the output.

use crate::support::common;
use crate::support::http_server;
use crate::support::llm_server;
use crate::support::smtp_server;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{breakdesk_cmd, outcome, sample};
use http_server::HttpServer;
use llm_server::LlmServer;
use serde_json::json;
use smtp_server::{Mode, Security, SmtpServer, TestPki, free_port};

/// The value every secret variable of these tests holds: it must never be printed.
const SECRET: &str = "doctor-test-s3cret-value";

/// Variables the tests set or must not inherit.
const VARIABLES: [&str; 6] = [
    "DOCTOR_SMTP_PASSWORD",
    "DOCTOR_JIRA_TOKEN",
    "DOCTOR_WEBHOOK_TOKEN",
    "DOCTOR_LLM_KEY",
    "BREAKDESK_API_TOKEN",
    "DOCTOR_SUE_TOKEN",
];

/// `breakdesk --config <dir>/config.toml doctor ARGS` as user ana, with its store in
/// `<dir>/data`, the variables `env` set (and the others of [`VARIABLES`] unset): exit code and
/// standard output. The secret must appear nowhere.
fn doctor(dir: &Path, config: &str, env: &[&str], args: &[&str]) -> (i32, String) {
    doctor_in(dir, &dir.join("data"), config, env, args)
}

fn doctor_in(dir: &Path, data: &Path, config: &str, env: &[&str], args: &[&str]) -> (i32, String) {
    let file = dir.join("config.toml");
    std::fs::write(&file, config).unwrap();
    let mut c = breakdesk_cmd(dir, data);
    c.env("USER", "ana");
    for v in VARIABLES {
        if env.contains(&v) {
            c.env(v, SECRET);
        } else {
            c.env_remove(v);
        }
    }
    c.args(["--config", file.to_str().unwrap(), "doctor"])
        .args(args);
    if !args.contains(&"--timeout") {
        c.args(["--timeout", "5"]);
    }
    c.timeout(Duration::from_secs(120));
    let (code, out, err) = outcome(c);
    assert!(
        !out.contains(SECRET) && !err.contains(SECRET),
        "a secret was printed:\n{out}\n{err}"
    );
    if !args.contains(&"json") {
        assert!(out.starts_with("breakdesk doctor "), "{out}\n{err}");
    }
    (code, out)
}

/// The status and text of the check named `check` (the report's second column).
fn check<'a>(out: &'a str, check: &str) -> (&'a str, String) {
    let lines: Vec<&str> = out.lines().collect();
    let i = lines
        .iter()
        .position(|l| {
            l.split_once(' ').is_some_and(|(status, rest)| {
                matches!(status, "ok" | "warning" | "problem")
                    && rest.trim_start().starts_with(&format!("{check}  "))
            })
        })
        .unwrap_or_else(|| panic!("no check {check:?} in\n{out}"));
    let status = lines[i].split_whitespace().next().unwrap();
    // The line, and its fix when one follows.
    let mut text = lines[i].to_string();
    if let Some(next) = lines
        .get(i + 1)
        .filter(|l| l.trim_start().starts_with("fix: "))
    {
        text.push('\n');
        text.push_str(next.trim_start());
    }
    (status, text)
}

fn pki_with_ca(dir: &Path) -> (TestPki, String) {
    let pki = TestPki::new();
    let ca = dir.join("ca.pem");
    pki.write_ca(&ca);
    (pki, ca.display().to_string())
}

fn email_toml(port: u16, tls: &str, ca: &str, login: bool) -> String {
    format!(
        "[email]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\nca_file = \"{ca}\"\n{}password_env = \"DOCTOR_SMTP_PASSWORD\"\nfrom = \"Recon <recon@example.com>\"\nto = [\"lead@example.com\"]\ntimeout_secs = 5\n",
        if login { "username = \"robot\"\n" } else { "" }
    )
}

#[test]
fn a_fresh_set_up_on_the_defaults_has_no_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = doctor(dir.path(), "", &[], &[]);
    assert_eq!(code, 0, "{out}");
    let (s, t) = check(&out, "config");
    assert_eq!(s, "ok", "{t}");
    assert!(t.contains("config.toml is valid"), "{t}");
    let (s, t) = check(&out, "user");
    assert_eq!(s, "ok");
    assert!(
        t.contains("\"ana\" acting as analyst") && t.contains("$USER"),
        "{t}"
    );
    let (s, t) = check(&out, "data dir");
    assert!(s == "ok" && t.contains("does not exist yet"), "{t}");
    let (s, t) = check(&out, "store");
    let schema = format!("schema {}", breakdesk::store::SCHEMA_VERSION);
    assert!(s == "ok" && t.contains(&schema), "{t}");
    for channel in ["email", "jira", "webhook", "llm"] {
        let (s, t) = check(&out, channel);
        assert!(s == "ok" && t.contains("off"), "{t}");
    }
    assert!(out.trim_end().ends_with("0 problems, 0 warnings"), "{out}");
    // Nothing was created by looking.
    assert!(!dir.path().join("data").exists());
}

#[test]
fn an_invalid_or_missing_config_file_is_a_problem_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = doctor(dir.path(), "[email]\nport = \"submission\"\n", &[], &[]);
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "config");
    assert_eq!(s, "problem");
    assert!(t.contains("email.port") && t.contains("config.toml"), "{t}");
    assert!(t.contains("fix: "), "{t}");

    // A --config that does not exist.
    let file = dir.path().join("absent.toml");
    let mut c = breakdesk_cmd(dir.path(), &dir.path().join("data"));
    c.env("USER", "ana")
        .args(["--config", file.to_str().unwrap(), "doctor"]);
    let (code, out, _) = outcome(c);
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "config");
    assert!(s == "problem" && t.contains("absent.toml"), "{t}");
}

#[test]
fn a_data_dir_that_cannot_be_created_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let (code, out) = doctor_in(dir.path(), &file.join("data"), "", &[], &[]);
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "data dir");
    assert_eq!(s, "problem", "{t}");
    assert!(t.contains("a-file/data") && t.contains("data_dir"), "{t}");

    let (code, out) = doctor_in(dir.path(), &file, "", &[], &[]);
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "data dir");
    assert!(s == "problem" && t.contains("not a directory"), "{t}");
}

#[test]
fn the_store_shows_its_schema_and_one_held_by_another_process_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(breakdesk::store::Store::open(&data).unwrap());
    let (code, out) = doctor(dir.path(), "", &[], &[]);
    assert_eq!(code, 0, "{out}");
    let (s, t) = check(&out, "store");
    assert!(
        s == "ok"
            && t.contains(&format!("schema {}", breakdesk::store::SCHEMA_VERSION))
            && t.contains("not in use"),
        "{t}"
    );

    // This test process holds the store, as a running service would.
    let held = breakdesk::store::Store::open(&data).unwrap();
    let start = Instant::now();
    let (code, out) = doctor(dir.path(), "", &[], &[]);
    assert!(start.elapsed() < Duration::from_secs(30), "doctor waited");
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "store");
    assert_eq!(s, "problem", "{t}");
    assert!(
        t.contains("in use by another breakdesk process") && t.contains("--data-dir"),
        "{t}"
    );
    drop(held);
}

#[test]
fn saved_models_are_listed_and_an_unreadable_one_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut c = breakdesk_cmd(dir.path(), &data);
    c.env("USER", "ana")
        .args(["--quiet", "train", &sample("gl_ihub_history.csv")]);
    let (code, _, err) = outcome(c);
    assert_eq!(code, 0, "{err}");
    let (code, out) = doctor(dir.path(), "", &[], &[]);
    assert_eq!(code, 0, "{out}");
    let (s, t) = check(&out, "model gl_ihub/iforest");
    assert_eq!(s, "ok", "{t}");
    assert!(
        t.contains("profile gl_ihub")
            && t.contains("version gl_ihub-iforest-")
            && t.contains("trained on 4999 rows today"),
        "{t}"
    );

    let store = breakdesk::store::Store::open(&data).unwrap();
    store.put_model("trades/lof", b"{not a bundle").unwrap();
    drop(store);
    let (code, out) = doctor(dir.path(), "", &[], &[]);
    assert_eq!(code, 0, "a warning is not a problem:\n{out}");
    let (s, t) = check(&out, "model trades/lof");
    assert_eq!(s, "warning", "{t}");
    assert!(
        t.contains("unreadable") && t.contains("breakdesk train FILE --profile trades"),
        "{t}"
    );
    assert!(out.contains("0 problems, 1 warning"), "{out}");
}

#[test]
fn smtp_over_starttls_with_a_login_is_reached_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, ca) = pki_with_ca(dir.path());
    let server = SmtpServer::start(&pki, Security::StartTls, Mode::Up);
    let toml = email_toml(server.port(), "starttls", &ca, true);
    let (code, out) = doctor(dir.path(), &toml, &["DOCTOR_SMTP_PASSWORD"], &[]);
    assert_eq!(code, 0, "{out}");
    let (s, t) = check(&out, "email");
    assert_eq!(s, "ok", "{t}");
    assert!(
        t.contains("connected, EHLO, STARTTLS, AUTH as robot, QUIT"),
        "{t}"
    );
    let (s, t) = check(&out, "secret DOCTOR_SMTP_PASSWORD");
    assert!(s == "ok" && t.contains("[email] password_env"), "{t}");
    assert_eq!(server.connections(), 1);
    assert!(server.messages().is_empty(), "doctor sent a message");
}

#[test]
fn smtp_over_implicit_tls_is_reached_and_an_untrusted_certificate_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, ca) = pki_with_ca(dir.path());
    let server = SmtpServer::start(&pki, Security::Implicit, Mode::Up);
    let (code, out) = doctor(
        dir.path(),
        &email_toml(server.port(), "tls", &ca, false),
        &[],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    let (s, t) = check(&out, "email");
    assert!(
        s == "ok" && t.contains("connected with TLS, EHLO, QUIT"),
        "{t}"
    );

    // Without the relay's CA the certificate is not trusted.
    let (code, out) = doctor(
        dir.path(),
        &email_toml(server.port(), "tls", "", false),
        &[],
        &[],
    );
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "email");
    assert_eq!(s, "problem", "{t}");
    assert!(
        t.contains("tls failed") && t.contains("[email] ca_file"),
        "{t}"
    );
    assert!(server.messages().is_empty());
}

#[test]
fn smtp_refusing_starttls_a_closed_port_and_a_silent_server_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, ca) = pki_with_ca(dir.path());
    // A relay without STARTTLS, asked for it.
    let plain = SmtpServer::start(&pki, Security::Plain, Mode::Up);
    let (code, out) = doctor(
        dir.path(),
        &email_toml(plain.port(), "starttls", &ca, true),
        &["DOCTOR_SMTP_PASSWORD"],
        &[],
    );
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "email");
    assert_eq!(s, "problem", "{t}");
    assert!(
        t.contains("starttls failed")
            && t.contains("does not offer STARTTLS")
            && t.contains("fix: set [email] tls = \"tls\""),
        "{t}"
    );
    assert!(plain.messages().is_empty());

    // Nothing listens.
    let (code, out) = doctor(
        dir.path(),
        &email_toml(free_port(), "starttls", &ca, false),
        &[],
        &[],
    );
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "email");
    assert!(
        s == "problem" && t.contains("connect failed") && t.contains("[email] host and port"),
        "{t}"
    );

    // A server that never answers: bounded by --timeout.
    let stall = SmtpServer::start(&pki, Security::StartTls, Mode::Stall);
    let start = Instant::now();
    let (code, out) = doctor(
        dir.path(),
        &email_toml(stall.port(), "starttls", &ca, false),
        &[],
        &["--timeout", "1"],
    );
    assert!(start.elapsed() < Duration::from_secs(30), "not bounded");
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "email");
    assert_eq!(s, "problem", "{t}");
    assert!(t.contains(&format!("127.0.0.1:{}", stall.port())), "{t}");
}

#[test]
fn a_missing_secret_variable_is_a_problem_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_pki, ca) = pki_with_ca(dir.path());
    let toml = format!(
        "{}\n[jira]\nenabled = true\nbase_url = \"http://127.0.0.1:9\"\nproject = \"RECON\"\ntoken_env = \"DOCTOR_JIRA_TOKEN\"\n",
        email_toml(free_port(), "starttls", &ca, true)
    );
    let (code, out) = doctor(dir.path(), &toml, &[], &[]);
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "secret DOCTOR_SMTP_PASSWORD");
    assert!(
        s == "problem"
            && t.contains("not set ([email] password_env")
            && t.contains("export DOCTOR_SMTP_PASSWORD="),
        "{t}"
    );
    let (s, t) = check(&out, "secret DOCTOR_JIRA_TOKEN");
    assert!(s == "problem" && t.contains("[jira] token_env"), "{t}");
    // The channels say so too, without trying to connect.
    let (s, t) = check(&out, "email");
    assert!(s == "problem" && t.contains("DOCTOR_SMTP_PASSWORD"), "{t}");
    let (s, t) = check(&out, "jira");
    assert!(s == "problem" && t.contains("DOCTOR_JIRA_TOKEN"), "{t}");
}

fn jira_toml(url: &str) -> String {
    format!(
        "[jira]\nenabled = true\nbase_url = \"{url}\"\nemail = \"robot@example.com\"\ntoken_env = \"DOCTOR_JIRA_TOKEN\"\nproject = \"RECON\"\ntimeout_secs = 5\n"
    )
}

#[test]
fn jira_is_asked_who_the_token_is_and_a_refused_token_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let jira = HttpServer::start(|r| {
        if r.path == "/rest/api/3/myself" && r.method == "GET" {
            http_server::Reply::json(
                200,
                json!({"accountId": "5b10", "displayName": "Recon Robot"}),
            )
        } else {
            http_server::Reply::json(404, json!({"errorMessages": ["no such route"]}))
        }
    });
    let (code, out) = doctor(
        dir.path(),
        &jira_toml(&jira.url()),
        &["DOCTOR_JIRA_TOKEN"],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    let (s, t) = check(&out, "jira");
    assert!(
        s == "ok" && t.contains("/rest/api/3/myself: authenticated as Recon Robot"),
        "{t}"
    );
    let requests = jira.requests();
    assert_eq!(requests.len(), 1, "one GET, nothing created");
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("robot@example.com:{SECRET}"));
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );

    // A base URL that is not the site.
    let (code, out) = doctor(
        dir.path(),
        &jira_toml(&format!("{}/wiki", jira.url())),
        &["DOCTOR_JIRA_TOKEN"],
        &[],
    );
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "jira");
    assert!(
        s == "problem"
            && t.contains("/wiki/rest/api/3/myself: HTTP 404")
            && t.contains("check [jira] base_url"),
        "{t}"
    );

    // 401, with the token echoed back in the body: reported, and the token kept out.
    let refusing = HttpServer::start(|_| {
        http_server::Reply::json(
            401,
            json!({"errorMessages": [format!("token {SECRET} is not valid")]}),
        )
    });
    let (code, out) = doctor(
        dir.path(),
        &jira_toml(&refusing.url()),
        &["DOCTOR_JIRA_TOKEN"],
        &[],
    );
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "jira");
    assert_eq!(s, "problem", "{t}");
    assert!(
        t.contains("HTTP 401") && t.contains("[redacted]") && t.contains("[jira] token_env"),
        "{t}"
    );
}

fn webhook_toml(url: &str) -> String {
    format!(
        "[webhook]\nenabled = true\nurl = \"{url}\"\ntoken_env = \"DOCTOR_WEBHOOK_TOKEN\"\ntimeout_secs = 5\n"
    )
}

#[test]
fn the_webhook_gets_a_head_and_an_unknown_path_or_no_server_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let api = HttpServer::start(|r| {
        if r.path == "/tasks" {
            http_server::Reply::json(405, json!({}))
        } else {
            http_server::Reply::json(404, json!({"error": "not found"}))
        }
    });
    let (code, out) = doctor(
        dir.path(),
        &webhook_toml(&format!("{}/tasks", api.url())),
        &["DOCTOR_WEBHOOK_TOKEN"],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    let (s, t) = check(&out, "webhook");
    assert!(s == "ok" && t.contains("reached (HTTP 405 to HEAD)"), "{t}");
    let requests = api.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "HEAD", "nothing posted");
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );

    let (code, out) = doctor(
        dir.path(),
        &webhook_toml(&format!("{}/taks", api.url())),
        &["DOCTOR_WEBHOOK_TOKEN"],
        &[],
    );
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "webhook");
    assert!(
        s == "problem" && t.contains("HTTP 404") && t.contains("check [webhook] url"),
        "{t}"
    );

    let (code, out) = doctor(
        dir.path(),
        &webhook_toml(&format!("http://127.0.0.1:{}/tasks", free_port())),
        &["DOCTOR_WEBHOOK_TOKEN"],
        &[],
    );
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "webhook");
    assert!(s == "problem" && t.contains("connect failed"), "{t}");
}

fn llm_toml(base: &str) -> String {
    format!(
        "[llm]\nenabled = true\nbase_url = \"{base}\"\nmodel = \"test-model\"\napi_key_env = \"DOCTOR_LLM_KEY\"\ntimeout_secs = 5\n"
    )
}

#[test]
fn the_llm_is_called_only_with_the_flag_and_a_refusal_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let server = LlmServer::always(llm_server::Reply::ok("{\"ok\": true}"));
    let toml = llm_toml(&server.base_url());
    let (code, out) = doctor(dir.path(), &toml, &["DOCTOR_LLM_KEY"], &[]);
    assert_eq!(code, 0, "{out}");
    let (s, t) = check(&out, "llm");
    assert!(s == "ok" && t.contains("pass --llm"), "{t}");
    assert_eq!(server.request_count(), 0, "called without --llm");
    let (s, _) = check(&out, "secret DOCTOR_LLM_KEY");
    assert_eq!(s, "ok");

    let (code, out) = doctor(dir.path(), &toml, &["DOCTOR_LLM_KEY"], &["--llm"]);
    assert_eq!(code, 0, "{out}");
    let (s, t) = check(&out, "llm");
    assert!(
        s == "ok" && t.contains("/v1/chat/completions: model test-model answered"),
        "{t}"
    );
    assert_eq!(server.request_count(), 1, "one call, no retries");
    let headers = &server.headers()[0];
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "authorization" && v == &format!("Bearer {SECRET}")),
        "{headers:?}"
    );

    let refusing = LlmServer::always(llm_server::Reply::error(401, "invalid api key"));
    let (code, out) = doctor(dir.path(), &llm_toml(&refusing.base_url()), &[], &["--llm"]);
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "llm");
    assert!(
        s == "problem" && t.contains("HTTP 401") && t.contains("DOCTOR_LLM_KEY"),
        "{t}"
    );

    let missing = LlmServer::always(llm_server::Reply::error(404, "model not found"));
    let (code, out) = doctor(
        dir.path(),
        &llm_toml(&missing.base_url()),
        &["DOCTOR_LLM_KEY"],
        &["--llm"],
    );
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "llm");
    assert!(
        s == "problem" && t.contains("HTTP 404") && t.contains("[llm] base_url"),
        "{t}"
    );
}

#[test]
fn the_user_and_role_are_those_the_roles_grant() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = doctor(dir.path(), "[general]\nrole = \"supervisor\"\n", &[], &[]);
    assert_eq!(code, 8, "{out}");
    let (s, t) = check(&out, "user");
    assert!(
        s == "problem" && t.contains("may not act as supervisor") && t.contains("[roles]"),
        "{t}"
    );
    let (code, out) = doctor(
        dir.path(),
        "[general]\nrole = \"supervisor\"\n[roles]\nsupervisors = [\"ana\"]\n",
        &[],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    let (s, t) = check(&out, "user");
    assert!(
        s == "ok" && t.contains("\"ana\" acting as supervisor"),
        "{t}"
    );
}

#[test]
fn service_tokens_are_checked_and_the_json_report_counts_the_problems() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[[service.users]]\nname = \"sue\"\nrole = \"supervisor\"\ntoken_env = \"DOCTOR_SUE_TOKEN\"\n";
    let (code, out) = doctor(dir.path(), toml, &[], &["--format", "json"]);
    assert_eq!(code, 8);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!("not JSON ({e}):\n{out}");
    });
    assert_eq!(report["problems"], 1, "{report}");
    let sue = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "secret DOCTOR_SUE_TOKEN")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(sue["status"], "problem");
    assert!(sue["fix"].as_str().unwrap().contains("DOCTOR_SUE_TOKEN"));

    let (code, out) = doctor(
        dir.path(),
        toml,
        &["DOCTOR_SUE_TOKEN", "BREAKDESK_API_TOKEN"],
        &["--format", "json"],
    );
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["problems"], 0, "{report}");
}

#[test]
fn a_bad_timeout_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = breakdesk_cmd(dir.path(), &dir.path().join("data"));
    c.args(["doctor", "--timeout", "0"]);
    let (code, _, err) = outcome(c);
    assert_eq!(code, 2);
    assert!(err.contains("--timeout"), "{err}");
}

#[test]
fn without_user_variables_the_process_account_is_named_as_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = breakdesk_cmd(dir.path(), &dir.path().join("data"));
    c.env_remove("USER").env_remove("USERNAME").arg("doctor");
    let (code, out, err) = outcome(c);
    assert_eq!(code, 0, "{out}\n{err}");
    let (s, t) = check(&out, "user");
    assert_eq!(s, "ok", "{t}");
    assert!(
        t.contains("from the process's account, $USER and $USERNAME being unset"),
        "{t}"
    );
}
