//! The outbox through the real binary: `dispatch`, `outbox list|flush|retry|cancel`,
//! `run --email`, exit codes, and a `kill -9` in the middle of a send: after the restart every
//! item is sent, exactly once.

use crate::support::common;
use crate::support::dispatch_fixtures as fixtures;
use crate::support::http_server;
use crate::support::smtp_server;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use breakdesk::cases::{Case, Cases, Channel, DispatchState};
use breakdesk::store::Store;
use fixtures::{FAST_OUTBOX, accepted_cases};
use http_server::{HttpServer, Reply, Request};
use serde_json::{Value, json};
use smtp_server::{Mode, Security, SmtpServer, TestPki};

const PASSWORD: &str = "s3cret-Password";

/// Writes a config file with `[email]` for `smtp` (if any) and `[webhook]` for `tasks` (if any).
fn write_config(
    dir: &Path,
    smtp: Option<(&SmtpServer, &Path)>,
    tasks: Option<&HttpServer>,
) -> PathBuf {
    let mut text = String::new();
    if let Some((server, ca)) = smtp {
        text.push_str(&format!(
            "[email]\nenabled = true\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\n\
             username = \"robot\"\nfrom = \"recon@example.com\"\nto = [\"lead@example.com\"]\ntimeout_secs = 20\n",
            server.port(),
            ca.display()
        ));
    }
    if let Some(t) = tasks {
        text.push_str(&format!(
            "[webhook]\nenabled = true\nurl = \"{}/tasks\"\ntoken_env = \"\"\ntimeout_secs = 5\n",
            t.url()
        ));
    }
    text.push_str("[logging]\nfile = false\n");
    // The outbox is worked by a shared operations account here: its actions name the person.
    text.push_str("[roles]\nallow_user_override = true\n");
    text.push_str(FAST_OUTBOX);
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The binary with its data dir and config, the SMTP password in the environment.
fn bd(dir: &Path, config: &Path, args: &[&str]) -> (i32, String, String) {
    let mut c = common::breakdesk_cmd(dir, &dir.join("data"));
    c.env("BREAKDESK_SMTP_PASSWORD", PASSWORD)
        .env("USER", "os-user")
        .args(["--config", config.to_str().unwrap()])
        .args(args);
    common::outcome(c)
}

/// A store in `<dir>/data` with `n` accepted cases (the store is closed again).
fn prepared(dir: &Path, n: usize) -> Vec<Case> {
    let store = Store::open(&dir.join("data")).unwrap();
    accepted_cases(&store, n)
}

fn list(dir: &Path, config: &Path) -> Vec<Value> {
    let (code, out, err) = bd(dir, config, &["outbox", "list", "--format", "jsonl"]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A task API that accepts everything (201 with an id), or refuses everything with 400.
fn tasks(refuse: bool) -> HttpServer {
    let n = std::sync::atomic::AtomicUsize::new(0);
    HttpServer::start(move |_r: &Request| {
        if refuse {
            Reply::json(400, json!({"error": "no such queue"}))
        } else {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Reply::json(201, json!({"id": format!("T{i}")}))
        }
    })
}

#[test]
fn kill_minus_nine_while_sending_then_restart_sends_every_item_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = TestPki::new();
    let ca = d.join("ca.pem");
    pki.write_ca(&ca);
    // The server accepts connections and never answers: the flush hangs in the middle of a send.
    let smtp = SmtpServer::start(&pki, Security::StartTls, Mode::Stall);
    let task_api = tasks(false);
    let config = write_config(d, Some((&smtp, &ca)), Some(&task_api));
    let cases = prepared(d, 3);

    let (code, _, err) = bd(
        d,
        &config,
        &["dispatch", "--email", "--webhook", "--no-send"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("email: queued 3 case(s) as outbox #1"),
        "{err}"
    );
    assert!(
        err.contains("webhook: queued 3 case(s) as outbox #2–#4"),
        "{err}"
    );

    let home = d.join("home");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("breakdesk"))
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("BREAKDESK_SMTP_PASSWORD", PASSWORD)
        .args(["--data-dir", d.join("data").to_str().unwrap()])
        .args(["--config", config.to_str().unwrap()])
        .args(["outbox", "flush", "--wait", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Once the email is on the wire (claimed and flushed as `sending` before that), kill -9.
    let hung = smtp.wait_for(Duration::from_secs(60), |s| s.stalled() >= 1);
    if !hung {
        let _ = child.kill();
        panic!("the flush never connected to the SMTP server");
    }
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished");
    assert!(smtp.messages().is_empty());
    assert!(
        task_api.requests().is_empty(),
        "the webhook items come after the email"
    );

    // After the crash the store opens cleanly, with the email left in `sending`.
    let items = list(d, &config);
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["status"], "sending", "{items:?}");
    for i in &items[1..] {
        assert_eq!(i["status"], "queued", "{i}");
    }

    // Restart with the server working: everything goes, once.
    smtp.set_mode(Mode::Up);
    let (code, _, err) = bd(d, &config, &["outbox", "flush"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("sent #1 email"), "{err}");
    assert!(err.contains("outbox: 4 sent, 0 parked, 0 waiting"), "{err}");
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(task_api.requests().len(), 3);
    let items = list(d, &config);
    assert!(items.iter().all(|i| i["status"] == "sent"), "{items:?}");
    assert!(
        items[0]["last_error"].is_null(),
        "cleared once sent: {}",
        items[0]
    );
    // Flushing again sends nothing more.
    let (code, _, err) = bd(d, &config, &["outbox", "flush"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("outbox: 0 sent, 0 parked, 0 waiting"), "{err}");
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(task_api.requests().len(), 3);

    // The case shows both dispatches.
    let (code, out, err) = bd(d, &config, &["cases", "show", &cases[0].ticket]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dispatch: email sent (outbox #1"), "{out}");
    assert!(
        out.contains("dispatch: webhook sent (outbox #2") && out.contains("T1"),
        "{out}"
    );
    assert!(
        out.contains("dispatch_queued") && out.contains("dispatched"),
        "{out}"
    );
}

#[test]
fn dispatch_and_outbox_commands_report_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = TestPki::new();
    let ca = d.join("ca.pem");
    pki.write_ca(&ca);
    let smtp = SmtpServer::start(&pki, Security::StartTls, Mode::Down);
    let refusing = tasks(true);
    let config = write_config(d, Some((&smtp, &ca)), Some(&refusing));
    let cases = prepared(d, 2);

    // Usage and configuration errors.
    let (code, _, err) = bd(d, &config, &["dispatch"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--email"), "{err}");
    let (code, _, err) = bd(d, &config, &["dispatch", "--jira"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("[jira] enabled"), "{err}");
    let (code, _, err) = bd(
        d,
        &config,
        &["dispatch", "--webhook", "--to", "a@example.com"],
    );
    assert_eq!(code, 2, "{err}");
    // `run` refuses an unusable channel before it does any work.
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/samples");
    let out = d.join("never.csv");
    let (code, _, err) = bd(
        d,
        &config,
        &[
            "run",
            samples.join("gl_ihub_current.csv").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--jira",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("[jira] enabled"), "{err}");
    assert!(!out.exists());
    // A missing secret is named, and nothing is queued.
    let mut c = common::breakdesk_cmd(d, &d.join("data"));
    c.env_remove("BREAKDESK_SMTP_PASSWORD")
        .env("USER", "os-user")
        .args(["--config", config.to_str().unwrap(), "dispatch", "--email"]);
    let (code, _, err) = common::outcome(c);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("BREAKDESK_SMTP_PASSWORD"), "{err}");
    assert!(list(d, &config).is_empty());

    // The server is down: queued, tried, still waiting when the bound runs out → exit 7.
    let (code, _, err) = bd(d, &config, &["dispatch", "--email", "--wait", "0.3"]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("dispatch incomplete"), "{err}");
    assert!(err.contains("421"), "{err}");
    let items = list(d, &config);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"], "retry_wait");
    // Dispatching again does not queue the same cases twice.
    let (code, _, err) = bd(d, &config, &["dispatch", "--email", "--no-send"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("nothing to dispatch"), "{err}");
    assert_eq!(list(d, &config).len(), 1);
    // Up: a flush delivers it.
    smtp.set_mode(Mode::Up);
    let (code, _, err) = bd(d, &config, &["outbox", "flush", "--wait", "10"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(smtp.messages().len(), 1);
    let (code, out, _) = bd(d, &config, &["outbox", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("email") && out.contains("sent") && out.contains("<breakdesk.1."),
        "{out}"
    );

    // The webhook answers 400: parked at once, exit 7, the reason in the list.
    let (code, _, err) = bd(d, &config, &["dispatch", "--webhook"]);
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains("parked #2 webhook") && err.contains("no such queue"),
        "{err}"
    );
    let parked: Vec<Value> = list(d, &config)
        .into_iter()
        .filter(|i| i["status"] == "parked")
        .collect();
    assert_eq!(parked.len(), 2);
    assert!(parked[0]["reason"].as_str().unwrap().contains("HTTP 400"));
    {
        let store = Store::open(&d.join("data")).unwrap();
        let c = Cases::new(&store).get(&cases[0].id).unwrap().unwrap();
        assert_eq!(
            c.dispatch(Channel::Webhook).unwrap().state,
            DispatchState::Parked
        );
        assert_eq!(
            c.dispatch(Channel::Email).unwrap().state,
            DispatchState::Sent
        );
    }
    // retry requeues; cancel frees the cases; unknown ids and sent items are refused.
    let (code, out, err) = bd(d, &config, &["outbox", "retry", "2", "--user", "bob"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "#2 webhook -> queued");
    let (code, out, err) = bd(d, &config, &["outbox", "cancel", "2", "--user", "bob"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "#2 webhook -> cancelled");
    let (code, _, err) = bd(d, &config, &["outbox", "retry", "999"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = bd(d, &config, &["outbox", "cancel", "1"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("it was sent"), "{err}");
    let (code, out, _) = bd(d, &config, &["audit", "--case", &cases[0].id]);
    assert_eq!(code, 0);
    assert!(
        out.contains("dispatch_cancelled") && out.contains("cancelled by bob"),
        "{out}"
    );
    assert!(out.contains("dispatch_parked"), "{out}");
}

#[test]
fn run_with_email_dispatches_the_accepted_cases_headless() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = TestPki::new();
    let ca = d.join("ca.pem");
    pki.write_ca(&ca);
    let smtp = SmtpServer::start(&pki, Security::StartTls, Mode::Up);
    let config = write_config(d, Some((&smtp, &ca)), None);
    let cases = prepared(d, 2);
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/samples");
    let t = Instant::now();
    let (code, _, err) = bd(
        d,
        &config,
        &[
            "run",
            samples.join("gl_ihub_current.csv").to_str().unwrap(),
            "--history",
            samples.join("gl_ihub_history.csv").to_str().unwrap(),
            "--out",
            d.join("out.csv").to_str().unwrap(),
            "--email",
            "--to",
            "desk@example.com",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("email: queued 2 case(s)"), "{err}");
    assert!(err.contains("sent #1 email"), "{err}");
    eprintln!("run --email took {:.1} s", t.elapsed().as_secs_f64());
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let mut to = messages[0].to.clone();
    to.sort();
    assert_eq!(to, ["desk@example.com", "lead@example.com"]);
    // Only the reviewed (Accepted) cases went; the run's new cases wait for review.
    for c in &cases {
        assert!(messages[0].data.contains(&c.ticket));
    }
    let store = Store::open(&d.join("data")).unwrap();
    let all = Cases::new(&store).list(&Default::default()).unwrap();
    assert!(all.len() > 2);
    for c in &all {
        let sent = c.dispatch(Channel::Email).is_some();
        assert_eq!(sent, cases.iter().any(|x| x.id == c.id), "{}", c.id);
    }
}
