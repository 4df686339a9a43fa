//! `breakdesk serve` on a real server bound to 127.0.0.1: every route's happy path and errors
//! (malformed JSON, a missing or invalid field, a body over the limit, the bearer token), the
//! WebSocket events a POST causes, per-account state across requests and across a restart, the
//! batch route's summary email through a loopback SMTP server, and a retrain swapped in.

use crate::support::dispatch_fixtures as fixtures;
use crate::support::service;
use crate::support::smtp_server;

use serde_json::json;
use service::{WsClient, get, gl_record, post_json, repo, request, start};
use std::time::Duration;

fn history() -> String {
    repo(service::GL_HISTORY).display().to_string()
}

/// A config without log files (and with `extra`).
fn config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let p = dir.join("config.toml");
    std::fs::write(&p, format!("[logging]\nfile = false\n{extra}")).unwrap();
    p
}

#[test]
fn routes_on_a_loopback_server() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let h = history();
    let svc = start(
        dir.path(),
        &dir.path().join("data"),
        Some(&cfg),
        &["--history", &h],
        &[],
    )
    .unwrap();
    let a = svc.addr.clone();

    // Health: the model and the store.
    let r = get(&a, "/health", None);
    assert_eq!(r.status, 200);
    let health = r.json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["profile"], "gl_ihub");
    assert!(
        health["model_version"]
            .as_str()
            .unwrap()
            .starts_with("gl_ihub-iforest-")
    );
    assert_eq!(health["store"]["status"], "ok");
    assert_eq!(
        health["accounts"], 100,
        "one state per account of the history"
    );

    // The OpenAPI document lists every route.
    let doc = get(&a, "/openapi.json", None).json();
    for p in [
        "/health",
        "/openapi.json",
        "/realtime_anomaly",
        "/batch_anomaly",
        "/cases",
        "/cases/{id}",
        "/cases/{id}/decision",
        "/retrain",
        "/runs",
        "/runs/latest",
        "/ws",
    ] {
        assert!(
            doc["paths"].get(p).is_some(),
            "{p} is not in the OpenAPI document"
        );
    }

    let ws = WsClient::connect(&a, None).unwrap();
    let hello = ws.next_of("hello", Duration::from_secs(10)).expect("hello");
    assert_eq!(hello["model_version"], health["model_version"]);

    // Per-account state: the second record's change uses the first.
    let r1 = post_json(
        &a,
        "/realtime_anomaly",
        &gl_record("2024-03-12", "999001", 1000.0, 1000.0),
        None,
    );
    assert_eq!(r1.status, 200, "{}", String::from_utf8_lossy(&r1.body));
    let r1 = r1.json();
    assert_eq!(r1["previous_records"], 0);
    assert_eq!(r1["features"]["f_change_balance_lhs"], 0.0);
    let r2 = post_json(
        &a,
        "/realtime_anomaly",
        &gl_record("2024-03-13", "999001", 1500.0, 1000.0),
        None,
    )
    .json();
    assert_eq!(r2["previous_records"], 1);
    assert_eq!(r2["features"]["f_change_balance_lhs"], 500.0);
    assert_eq!(r2["features"]["f_days_since_last"], 1.0);
    assert_eq!(r2["features"]["f_balance_residual"], 500.0);
    assert_eq!(r2["key"], "00000|999001|7052|USD");

    // An account of the history: its features see its 50 records; a 6M break is flagged, opens
    // a case, and the WebSocket client hears of it.
    let normal = post_json(
        &a,
        "/realtime_anomaly",
        &gl_record("2024-03-12", "110200", 3632957.84, 3632957.84),
        None,
    )
    .json();
    assert_eq!(normal["is_anomaly"], false);
    assert_eq!(normal["previous_records"], 50);
    assert!(normal["case_id"].is_null());
    assert_eq!(normal["quiet"], "within tolerance", "{normal}");
    // A break its comment explains: quiet, not flagged, proposed for auto-resolution.
    let mut explained = gl_record("2024-03-12", "120100", 500_000.0, 497_000.0);
    explained["Comments"] = json!("False break caused by booking artifact, no action needed");
    let explained = post_json(&a, "/realtime_anomaly", &explained, None).json();
    assert_eq!(
        explained["quiet"], "explained by its comment",
        "{explained}"
    );
    assert_eq!(explained["is_anomaly"], false, "{explained}");
    assert_eq!(explained["bucket"], "Known Item", "{explained}");
    assert_eq!(
        explained["case_status"], "AutoResolveProposed",
        "{explained}"
    );
    let brk = post_json(
        &a,
        "/realtime_anomaly",
        &gl_record("2024-03-13", "110200", 9632957.84, 3632957.84),
        None,
    )
    .json();
    assert_eq!(brk["is_anomaly"], true, "{brk}");
    let case_id = brk["case_id"].as_str().expect("a case").to_string();
    let ticket = brk["ticket"].as_str().unwrap().to_string();
    assert_eq!(brk["bucket"], "Timing Issue");
    assert!(brk["summary"].as_str().unwrap().contains("9,632,957.84"));
    // (The 500 break of 999001 above may have been flagged too: its event comes first.)
    let ev = std::iter::from_fn(|| ws.next_of("anomaly", Duration::from_secs(10)))
        .find(|e| e["result"]["case_id"] == case_id.as_str())
        .expect("an anomaly event for the case");
    assert_eq!(ev["fields"]["GL Balance"], "9632957.84");

    // Bad input: malformed JSON, a missing field, a bad number, not an object, not JSON.
    let bad = request(
        &a,
        "POST",
        "/realtime_anomaly",
        &[("Content-Type", "application/json")],
        b"{\"As of Date\": ",
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );
    let mut missing = gl_record("2024-03-14", "999001", 1.0, 1.0);
    missing.as_object_mut().unwrap().remove("GL Balance");
    let r = post_json(&a, "/realtime_anomaly", &missing, None);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["field"], "GL Balance");
    let mut nan = gl_record("2024-03-14", "999001", 1.0, 1.0);
    nan["IHub Balance"] = json!("12,3x");
    let r = post_json(&a, "/realtime_anomaly", &nan, None);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["field"], "IHub Balance");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("12,3x")
    );
    let mut bad_date = gl_record("2024-03-14", "999001", 1.0, 1.0);
    bad_date["As of Date"] = json!("yesterday");
    assert_eq!(
        post_json(&a, "/realtime_anomaly", &bad_date, None).json()["error"]["field"],
        "As of Date"
    );
    assert_eq!(
        post_json(&a, "/realtime_anomaly", &json!([1, 2]), None).status,
        422
    );
    let r = request(&a, "POST", "/realtime_anomaly", &[], b"{}");
    assert_eq!(r.status, 415);
    // Nothing of the bad records reached the state.
    let r3 = post_json(
        &a,
        "/realtime_anomaly",
        &gl_record("2024-03-14", "999001", 1500.0, 1500.0),
        None,
    )
    .json();
    assert_eq!(r3["previous_records"], 2);

    // A body over the limit (4 MiB by default).
    let big = format!("{{\"Comments\": \"{}\"}}", "x".repeat(5 * 1024 * 1024));
    let r = request(
        &a,
        "POST",
        "/realtime_anomaly",
        &[("Content-Type", "application/json")],
        big.as_bytes(),
    );
    assert_eq!(r.status, 413);

    // Cases: list, by ticket with the audit trail, unknown.
    let list = get(&a, "/cases?status=proposed", None).json();
    assert!(
        list["cases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == case_id.as_str())
    );
    let one = get(&a, &format!("/cases/{ticket}"), None).json();
    assert_eq!(one["case"]["id"], case_id.as_str());
    assert!(!one["events"].as_array().unwrap().is_empty());
    assert_eq!(get(&a, "/cases/BRK-NOPE", None).status, 404);
    let r = get(&a, "/cases?status=sideways", None);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["field"], "status");

    // Decisions with the command line's rules. Without [[service.users]] the service is
    // analyst-only: the body names the analyst, and nobody approves.
    let path = format!("/cases/{case_id}/decision");
    let r = post_json(
        &a,
        &path,
        &json!({"action": "approve", "user": "ana"}),
        None,
    );
    assert_eq!(r.status, 403, "an analyst cannot approve: {}", r.json());
    let r = post_json(
        &a,
        &path,
        &json!({"action": "approve", "user": "sam", "role": "supervisor"}),
        None,
    );
    assert_eq!(r.status, 403, "a role is not claimed: {}", r.json());
    assert_eq!(r.json()["error"]["field"], "role");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no supervisors")
    );
    let r = post_json(&a, &path, &json!({"action": "bogus", "user": "sam"}), None);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["field"], "action");
    let r = post_json(&a, &path, &json!({"user": "sam"}), None);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["field"], "action");
    let r = post_json(&a, &path, &json!({"action": "accept"}), None);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["field"], "user");
    assert_eq!(
        post_json(
            &a,
            "/cases/BRK-NOPE/decision",
            &json!({"action": "accept", "user": "ana"}),
            None
        )
        .status,
        404
    );
    let one = get(&a, &format!("/cases/{case_id}"), None).json();
    assert_eq!(
        one["case"]["status"], "AutoResolveProposed",
        "nothing was decided"
    );

    // Batch: a bad record fails the whole request, naming it; nothing is scored.
    let mut no_account = gl_record("2024-03-13", "999002", 5.0, 5.0);
    no_account.as_object_mut().unwrap().remove("Account");
    let r = post_json(
        &a,
        "/batch_anomaly",
        &json!({"records": [gl_record("2024-03-12", "999002", 5.0, 5.0), no_account]}),
        None,
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["field"], "records[1].Account");
    assert_eq!(
        post_json(&a, "/batch_anomaly", &json!({"rows": []}), None).json()["error"]["field"],
        "records"
    );
    // Results in the request's order; records scored in date order.
    let r = post_json(
        &a,
        "/batch_anomaly",
        &json!([
            gl_record("2024-03-13", "999002", 7.0, 5.0),
            gl_record("2024-03-12", "999002", 5.0, 5.0)
        ]),
        None,
    );
    assert_eq!(r.status, 200);
    let b = r.json();
    assert_eq!(b["records"], 2);
    assert_eq!(b["results"][0]["date"], "2024-03-13");
    assert_eq!(b["results"][0]["previous_records"], 1);
    assert_eq!(b["results"][0]["features"]["f_change_balance_lhs"], 2.0);
    assert_eq!(b["results"][1]["previous_records"], 0);
    assert!(
        b["email"].is_null(),
        "no summary email unless [service] batch_email"
    );

    // Unknown route.
    assert_eq!(get(&a, "/nope", None).status, 404);

    // Retrain: started, then swapped in (a model event).
    let r = request(&a, "POST", "/retrain", &[], b"");
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let ev = ws
        .next_of("model", Duration::from_secs(100))
        .expect("a model event");
    assert_eq!(ev["status"], "swapped", "{ev}");
    let after = post_json(
        &a,
        "/realtime_anomaly",
        &gl_record("2024-03-15", "999001", 1500.0, 1500.0),
        None,
    )
    .json();
    assert_eq!(after["previous_records"], 3, "the state survives the swap");
    let status = svc.stop();
    assert!(status.success(), "a clean stop: {status}");
}

#[test]
fn bearer_token_and_bind_rules() {
    let dir = tempfile::tempdir().unwrap();
    // With log files, to check the token never reaches them.
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "[logging]\nfile = true\nlevel = \"debug\"\n").unwrap();
    let h = history();
    // Not loopback and no token: refused before anything is loaded.
    let err = start(
        dir.path(),
        &dir.path().join("data"),
        Some(&cfg),
        &["--history", &h, "--bind", "0.0.0.0:0"],
        &[],
    )
    .err()
    .expect("refused");
    assert!(err.contains("exit status: 2"), "{err}");
    assert!(err.contains("BREAKDESK_API_TOKEN"), "{err}");

    let secret = "tok-3f9a7c1e55";
    let svc = start(
        dir.path(),
        &dir.path().join("data"),
        Some(&cfg),
        &["--history", &h],
        &[("BREAKDESK_API_TOKEN", secret)],
    )
    .unwrap();
    let a = svc.addr.clone();
    assert_eq!(
        get(&a, "/health", None).status,
        200,
        "health needs no token"
    );
    let r = get(&a, "/cases", None);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(get(&a, "/cases", Some("wrong")).status, 401);
    assert_eq!(get(&a, "/openapi.json", None).status, 401);
    let rec = gl_record("2024-03-12", "999001", 1.0, 1.0);
    assert_eq!(post_json(&a, "/realtime_anomaly", &rec, None).status, 401);
    assert_eq!(
        post_json(&a, "/realtime_anomaly", &rec, Some("tok-3f9a7c1e5")).status,
        401
    );
    let ok = post_json(&a, "/realtime_anomaly", &rec, Some(secret));
    assert_eq!(ok.status, 200);
    assert!(!String::from_utf8_lossy(&ok.body).contains(secret));
    assert_eq!(get(&a, "/cases", Some(secret)).status, 200);
    assert!(
        WsClient::connect(&a, None).is_err(),
        "the WebSocket needs the token too"
    );
    let ws = WsClient::connect(&a, Some(secret)).unwrap();
    assert!(ws.next_of("hello", Duration::from_secs(10)).is_some());
    drop(ws);
    let status = svc.stop();
    assert!(status.success());
    let logged: Vec<String> = svc_lines(&dir.path().join("data"));
    assert!(logged.len() > 3, "the service logged: {logged:?}");
    assert!(
        logged.iter().all(|l| !l.contains(secret)),
        "the token is never logged"
    );
}

/// Who decides comes from the token: each `[[service.users]]` token acts as its user in its
/// role; a body that claims otherwise is refused; the shared token may score and read only.
#[test]
fn service_users_act_as_their_token_says() {
    let dir = tempfile::tempdir().unwrap();
    let users = "[[service.users]]\nname = \"sue\"\nrole = \"supervisor\"\ntoken_env = \"T_SUE\"\n\
                 [[service.users]]\nname = \"ana\"\nrole = \"analyst\"\ntoken_env = \"T_ANA\"\n";
    let cfg = config(dir.path(), users);
    let h = history();
    let (sue, ana, shared) = ("sue-7f3e9a0c42d1", "ana-52b8e1f09c77", "shared-0a1b2c3d4e");
    // A user whose token variable is unset: the service does not start, and says which.
    let err = start(
        dir.path(),
        &dir.path().join("data"),
        Some(&cfg),
        &["--history", &h],
        &[("T_SUE", sue)],
    )
    .err()
    .expect("refused");
    assert!(
        err.contains("exit status: 2") && err.contains("T_ANA"),
        "{err}"
    );

    let svc = start(
        dir.path(),
        &dir.path().join("data"),
        Some(&cfg),
        &["--history", &h],
        &[
            ("T_SUE", sue),
            ("T_ANA", ana),
            ("BREAKDESK_API_TOKEN", shared),
        ],
    )
    .unwrap();
    let a = svc.addr.clone();
    assert_eq!(get(&a, "/me", Some(sue)).json()["user"], "sue");
    assert_eq!(get(&a, "/me", Some(sue)).json()["role"], "supervisor");
    assert_eq!(get(&a, "/me", Some(ana)).json()["role"], "analyst");
    assert!(get(&a, "/me", Some(shared)).json()["user"].is_null());
    assert_eq!(get(&a, "/me", None).status, 401);
    assert_eq!(get(&a, "/me", Some("sue-7f3e9a0c42d")).status, 401);

    let brk = post_json(
        &a,
        "/realtime_anomaly",
        &gl_record("2024-03-13", "110200", 9632957.84, 3632957.84),
        Some(shared),
    )
    .json();
    let case_id = brk["case_id"].as_str().expect("a case").to_string();
    let path = format!("/cases/{case_id}/decision");
    let ws = WsClient::connect(&a, Some(ana)).unwrap();
    assert!(ws.next_of("hello", Duration::from_secs(10)).is_some());
    if brk["case_status"] == "PendingReview" {
        let r = post_json(&a, &path, &json!({"action": "propose"}), Some(ana));
        assert_eq!(r.status, 200, "{}", r.json());
        let ev = ws.next_of("status", Duration::from_secs(10)).unwrap();
        assert_eq!(ev["user"], "ana", "{ev}");
    }

    let refused = |token: &str, body: serde_json::Value, field: Option<&str>, says: &str| {
        let r = post_json(&a, &path, &body, Some(token));
        assert_eq!(r.status, 403, "{body}: {}", r.json());
        let e = &r.json()["error"];
        assert!(e["message"].as_str().unwrap().contains(says), "{e}");
        if let Some(f) = field {
            assert_eq!(e["field"], f, "{e}");
        }
    };
    refused(
        shared,
        json!({"action": "approve", "user": "sue", "role": "supervisor"}),
        None,
        "a user's own token",
    );
    refused(ana, json!({"action": "approve"}), None, "supervisor");
    refused(
        ana,
        json!({"action": "approve", "user": "sue", "role": "supervisor"}),
        Some("user"),
        "the token is \"ana\"'s",
    );
    refused(
        ana,
        json!({"action": "approve", "role": "supervisor"}),
        Some("role"),
        "acts as analyst",
    );
    refused(
        sue,
        json!({"action": "approve", "user": "sam"}),
        Some("user"),
        "the body names \"sam\"",
    );
    let one = get(&a, &format!("/cases/{case_id}"), Some(shared)).json();
    assert_eq!(
        one["case"]["status"], "AutoResolveProposed",
        "nothing was decided"
    );

    // The supervisor's own token approves, with or without naming herself.
    let r = post_json(
        &a,
        &path,
        &json!({"action": "approve", "user": "sue"}),
        Some(sue),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["case"]["status"], "Approved");
    let ev = ws
        .next_of("status", Duration::from_secs(10))
        .expect("a status event");
    assert_eq!(ev["case_id"], case_id.as_str());
    assert_eq!(ev["from"], "AutoResolveProposed");
    assert_eq!(ev["to"], "Approved");
    assert_eq!(ev["user"], "sue");
    let one = get(&a, &format!("/cases/{case_id}"), Some(ana)).json();
    let last = one["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["user"], "sue", "{last}");
    assert_eq!(last["role"], "supervisor", "{last}");
    let r = post_json(&a, &path, &json!({"action": "accept"}), Some(ana));
    assert_eq!(r.status, 409, "{}", r.json());
    drop(ws);
    assert!(svc.stop().success());
}

/// A record from anyone who can reach the service: too many fields, names and values too long,
/// names of breakdesk's own columns, a column given twice, amounts whose difference is not
/// finite, dates no reconciliation has: each a 422 naming the field, never a 500 or a panic.
#[test]
fn hostile_records_are_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[service]\nmax_record_fields = 40\nmax_field_chars = 500\n",
    );
    let h = history();
    let svc = start(
        dir.path(),
        &dir.path().join("data"),
        Some(&cfg),
        &["--history", &h],
        &[],
    )
    .unwrap();
    let a = svc.addr.clone();
    let with = |k: &str, v: serde_json::Value| {
        let mut r = gl_record("2024-03-13", "110200", 5.0, 1.0);
        r[k] = v;
        r
    };
    let mut many = gl_record("2024-03-13", "110200", 5.0, 1.0);
    for i in 0..40 {
        many[format!("extra{i}")] = json!("x");
    }
    let long_name = "n".repeat(300);
    let cases: Vec<(serde_json::Value, &str, &str)> = vec![
        (many, "record", "at most 40"),
        (with(&long_name, json!("x")), "nnnn", "longer than 256"),
        (
            with("Comments", json!("c".repeat(501))),
            "Comments",
            "longer than 500",
        ),
        (
            with("bd_key", json!("00000|110200|7052|USD")),
            "bd_key",
            "its own columns",
        ),
        (with("score", json!(-9.0)), "score", "its own columns"),
        (with("F_OWN_Z", json!(0.0)), "F_OWN_Z", "its own columns"),
        (
            with("gl_balance", json!("5")),
            "gl_balance",
            "the same column as",
        ),
        (
            {
                let mut r = with("GL Balance", json!("1e308"));
                r["IHub Balance"] = json!("-1e308");
                r
            },
            "GL Balance",
            "is not finite",
        ),
        (with("GL Balance", json!("1e999")), "GL Balance", "is not a"),
        (
            with("As of Date", json!("0001-01-01")),
            "As of Date",
            "outside the years",
        ),
        (
            with("As of Date", json!("2999-01-01")),
            "As of Date",
            "outside the years",
        ),
    ];
    for (record, field, says) in &cases {
        let r = post_json(&a, "/realtime_anomaly", record, None);
        assert_eq!(
            r.status,
            422,
            "{field}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let e = &r.json()["error"];
        assert!(e["field"].as_str().unwrap().starts_with(field), "{e}");
        assert!(e["message"].as_str().unwrap().contains(says), "{e}");
        // The same record in a batch names its place.
        let r = post_json(&a, "/batch_anomaly", &json!({"records": [record]}), None);
        assert_eq!(r.status, 422, "{field} in a batch");
        assert!(
            r.json()["error"]["field"]
                .as_str()
                .unwrap()
                .starts_with("records[0]"),
            "{}",
            r.json()
        );
    }
    // None of them reached the account's state.
    let ok = post_json(
        &a,
        "/realtime_anomaly",
        &gl_record("2024-03-13", "110200", 5.0, 5.0),
        None,
    );
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["previous_records"], 50);
    assert!(svc.stop().success());
}

/// Every line of the log files under `data` (if any).
fn svc_lines(data: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(data.join("logs")) {
        for e in rd.flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                out.extend(t.lines().map(str::to_string));
            }
        }
    }
    out
}

#[test]
fn state_survives_a_restart_and_a_batch_sends_one_summary_email() {
    use smtp_server::{Mode, Security, SmtpServer, TestPki};
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let ca = dir.path().join("ca.pem");
    pki.write_ca(&ca);
    let smtp = SmtpServer::start(&pki, Security::StartTls, Mode::Up);
    let cfg = config(
        dir.path(),
        &format!(
            "[email]\nenabled = true\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\n\
             username = \"robot\"\nfrom = \"recon@example.com\"\nto = [\"lead@example.com\"]\ntimeout_secs = 20\n\
             [service]\nbatch_email = true\npersist_interval_ms = 50\n{}",
            smtp.port(),
            ca.display(),
            fixtures::FAST_OUTBOX
        ),
    );
    let h = history();
    let data = dir.path().join("data");
    let env = [("BREAKDESK_SMTP_PASSWORD", "pw-9")];
    let svc = start(dir.path(), &data, Some(&cfg), &["--history", &h], &env).unwrap();
    let a = svc.addr.clone();
    let ws = WsClient::connect(&a, None).unwrap();
    let first = post_json(
        &a,
        "/realtime_anomaly",
        &gl_record("2024-03-12", "999005", 10.0, 10.0),
        None,
    )
    .json();
    assert_eq!(first["previous_records"], 0);
    let b = post_json(
        &a,
        "/batch_anomaly",
        &json!({"records": [
            gl_record("2024-03-13", "110200", 9632957.84, 3632957.84),
            gl_record("2024-03-13", "999005", 10.0, 10.0),
        ]}),
        None,
    )
    .json();
    assert_eq!(b["anomalies"], 1, "{b}");
    assert_eq!(b["email"]["queued"], true, "{b}");
    let ticket = b["results"][0]["ticket"].as_str().unwrap().to_string();
    assert!(
        smtp.wait_for(Duration::from_secs(30), |s| !s.messages().is_empty()),
        "the summary email arrives"
    );
    std::thread::sleep(Duration::from_millis(300));
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1, "one summary email");
    assert_eq!(msgs[0].to, vec!["lead@example.com".to_string()]);
    assert!(msgs[0].data.contains(&ticket), "the email lists the ticket");
    // The outbox's result reaches the WebSocket clients.
    let ev = ws
        .next_of("dispatch", Duration::from_secs(30))
        .expect("a dispatch event");
    assert_eq!(ev["channel"], "email");
    assert_eq!(ev["status"], "sent", "{ev}");
    assert_eq!(ev["item"], b["email"]["outbox_item"]);
    // The summary is a notice: the case can still be dispatched once reviewed.
    let case = get(&a, &format!("/cases/{ticket}"), None).json();
    assert_eq!(case["case"]["dispatches"], json!([]), "{case}");
    assert_eq!(case["case"]["dispatched"], false);

    let status = svc.stop();
    assert!(status.success());
    // Restarted on the same store: the saved model is loaded and the state read back.
    let svc = start(dir.path(), &data, Some(&cfg), &["--history", &h], &env).unwrap();
    let a = svc.addr.clone();
    let health = get(&a, "/health", None).json();
    assert_eq!(health["model_status"], "saved model used", "{health}");
    let next = post_json(
        &a,
        "/realtime_anomaly",
        &gl_record("2024-03-14", "999005", 12.0, 12.0),
        None,
    )
    .json();
    assert_eq!(
        next["previous_records"], 2,
        "both earlier records of the account were kept: {next}"
    );
    assert_eq!(next["features"]["f_change_balance_lhs"], 2.0);
    svc.stop();
}

#[test]
fn service_records_roll_cases_forward_and_a_batch_records_its_run_summary() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let h = history();
    let svc = start(
        dir.path(),
        &dir.path().join("data"),
        Some(&cfg),
        &["--history", &h],
        &[],
    )
    .unwrap();
    let a = svc.addr.clone();
    assert_eq!(get(&a, "/runs/latest", None).status, 404, "nothing ran yet");

    // A break the model flags opens a case.
    let brk = post_json(
        &a,
        "/realtime_anomaly",
        &gl_record("2024-03-13", "110200", 9632957.84, 3632957.84),
        None,
    )
    .json();
    assert_eq!(brk["is_anomaly"], true, "{brk}");
    let case_id = brk["case_id"].as_str().expect("a case").to_string();
    let first = get(&a, &format!("/cases/{case_id}"), None).json();
    let start = first["case"]["start_date"].clone();
    assert!(start.as_str().unwrap() <= "2024-03-13", "{first}");
    // The next day the break persists: the same case, a day older, whether flagged or not.
    let next = post_json(
        &a,
        "/realtime_anomaly",
        &gl_record("2024-03-14", "110200", 9632957.84, 3632957.84),
        None,
    )
    .json();
    if let Some(id) = next["case_id"].as_str() {
        assert_eq!(id, case_id, "a persisting break is the same case: {next}");
    }
    let c = get(&a, &format!("/cases/{case_id}"), None).json();
    assert_eq!(c["case"]["last_date"], "2024-03-14", "{c}");
    assert_eq!(c["case"]["start_date"], start, "{c}");
    assert!(c["case"]["cleared_on"].is_null(), "{c}");

    // Back within tolerance in a batch: the case clears by itself, and the batch's summary
    // (also GET /runs/latest) counts it.
    let b = post_json(
        &a,
        "/batch_anomaly",
        &json!({"records": [
            gl_record("2024-03-15", "110200", 9632957.84, 9632957.84),
            gl_record("2024-03-15", "999007", 10.0, 10.0),
        ]}),
        None,
    )
    .json();
    assert_eq!(b["summary"]["cleared"], 1, "{b}");
    assert_eq!(b["summary"]["rows"], 2, "{b}");
    assert_eq!(b["summary"]["matched"], 2, "{b}");
    let c = get(&a, &format!("/cases/{case_id}"), None).json();
    assert_eq!(c["case"]["status"], "Cleared", "{c}");
    assert_eq!(c["case"]["cleared_on"], "2024-03-15", "{c}");
    let latest = get(&a, "/runs/latest", None).json();
    assert_eq!(latest["cleared"], 1, "{latest}");
    assert_eq!(latest["file"], "POST /batch_anomaly");
    let runs = get(&a, "/runs?limit=5", None).json();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    // Owners and notes through the decision route (analyst-only service: the body names the
    // analyst); none of them changes the status.
    let path = format!("/cases/{case_id}/decision");
    let r = post_json(&a, &path, &json!({"action": "take", "user": "ana"}), None);
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["case"]["owner"], "ana");
    assert_eq!(r.json()["case"]["status"], "Cleared");
    let r = post_json(
        &a,
        &path,
        &json!({"action": "assign", "user": "ana", "owner": "bob"}),
        None,
    );
    assert_eq!(
        r.status,
        403,
        "an analyst assigns to nobody else: {}",
        r.json()
    );
    let r = post_json(
        &a,
        &path,
        &json!({"action": "release", "user": "bob"}),
        None,
    );
    assert_eq!(r.status, 403, "only the owner releases: {}", r.json());
    let r = post_json(&a, &path, &json!({"action": "note", "user": "ana"}), None);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["field"], "note");
    let r = post_json(
        &a,
        &path,
        &json!({"action": "note", "user": "ana", "note": "fixed by the IHub re-run"}),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let one = get(&a, &format!("/cases/{case_id}"), None).json();
    let notes: Vec<&serde_json::Value> = one["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "note")
        .collect();
    assert_eq!(notes.len(), 1, "{one}");
    assert_eq!(notes[0]["reason"], "fixed by the IHub re-run");
    assert_eq!(notes[0]["user"], "ana");
    let owned = get(&a, "/cases?owner=ana", None).json();
    assert_eq!(owned["total"], 1, "{owned}");
    assert_eq!(get(&a, "/cases?owner=bob", None).json()["total"], 0);
    assert_eq!(
        get(&a, "/cases?open=true", None).json()["total"],
        0,
        "the only case has cleared"
    );
    let r = post_json(
        &a,
        &path,
        &json!({"action": "release", "user": "ana"}),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert!(r.json()["case"]["owner"].is_null());

    let cleared = get(&a, "/cases?status=Cleared", None).json();
    assert!(
        cleared["cases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == case_id.as_str()),
        "{cleared}"
    );
}
