//! Live mode of the terminal UI (`breakdesk open --live ws://…`), csvlens-style: the app is
//! built in live mode, stepped with keys and with what its client receives, and drawn on
//! ratatui's TestBackend. The client is the real one (its own thread, a real WebSocket and real
//! HTTP on loopback): against a stand-in of the service whose messages and answers the test
//! scripts (tests/it/support/fake_service.rs), and, end to end, against the real `breakdesk serve`.
//! Everything waits with a deadline.

use crate::support::fake_service;
use crate::support::service;

use breakdesk::cases::{Actor, Case, Event, EventAction, Origin, Role, Status};
use breakdesk::config::Config;
use breakdesk::pipeline::RunOptions;
use breakdesk::store::Store;
use breakdesk::tui::app::{App, AppOptions, Level, Mode, Start};
use breakdesk::tui::keymap::{Key, Keymap};
use breakdesk::tui::live::{ConnState, LiveOptions};
use breakdesk::tui::message::{Message, View};
use breakdesk::tui::theme::Theme;
use breakdesk::tui::ui;
use chrono::{NaiveDate, TimeZone, Utc};
use fake_service::{FakeService, Req};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::KeyEvent;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An app in live mode on `url`, with a placeholder store in `dir` (as `open --live` has).
fn live_app(dir: &Path, actor: Actor, url: &str, token: Option<&str>) -> App {
    let store = Store::open(dir).expect("store opens");
    let mut app = App::new(AppOptions {
        cfg: Arc::new(Config::defaults()),
        store: Arc::new(store),
        actor,
        keymap: Keymap::defaults(),
        theme: Theme::dark(),
        base: RunOptions::default(),
    });
    app.update(Message::Resize(150, 20));
    app.start(Start::Live(LiveOptions {
        url: url.to_string(),
        token: token.map(str::to_string),
    }));
    app
}

/// Pumps the app's background messages until `cond` holds; false after `limit`.
fn pump_until(app: &mut App, limit: Duration, cond: impl Fn(&App) -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond(app) {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        app.pump(Some(Duration::from_millis(20)));
    }
}

fn state(app: &App) -> ConnState {
    app.live.as_ref().expect("live mode").state.clone()
}

/// Live and greeted (the service's subscription is open once hello has arrived).
fn greeted(app: &App) -> bool {
    state(app) == ConnState::Live && app.data.as_ref().is_some_and(|d| !d.info.model.is_empty())
}

fn press(app: &mut App, keys: &[&str]) {
    for k in keys {
        let key = Key::parse(k).expect("a key");
        app.update(Message::Key(KeyEvent::new(key.code, key.mods)));
    }
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(Message::Key(KeyEvent::new(
            ratatui::crossterm::event::KeyCode::Char(c),
            ratatui::crossterm::event::KeyModifiers::NONE,
        )));
    }
}

fn message(app: &App) -> String {
    app.message
        .as_ref()
        .map(|m| m.text.clone())
        .unwrap_or_default()
}

/// The screen as text; the loopback port is masked (its digits become `X`).
fn screen(app: &App) -> String {
    let (w, h) = app.size;
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    term.draw(|f| ui::draw(f, app)).expect("draws");
    mask_port(&term.backend().to_string())
}

fn mask_port(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("127.0.0.1:") {
        let (head, tail) = rest.split_at(i + "127.0.0.1:".len());
        out.push_str(head);
        let digits = tail.chars().take_while(char::is_ascii_digit).count();
        out.push_str(&"X".repeat(digits));
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

/// The text of a column (by field name) on each shown row, in view order.
fn column(app: &App, field: &str) -> Vec<String> {
    let t = &app.data.as_ref().unwrap().table;
    let c = t
        .cols
        .iter()
        .find(|c| c.field == field)
        .unwrap_or_else(|| panic!("no column {field}"));
    app.table
        .view
        .iter()
        .map(|r| c.cell(*r as usize).to_string())
        .collect()
}

/// A GL/IHub record's fields, as the service passes them on.
fn gl_fields(account: &str, date: &str, gl: f64, ihub: f64) -> Value {
    json!({
        "As of Date": date, "Company": "00000", "Account": account, "AU": "7052",
        "Currency": "USD", "Primary Account": format!("{account}-Fed Funds Sold"),
        "Secondary Account": format!("IHUB-{account}"), "GL Balance": format!("{gl:.2}"),
        "IHub Balance": format!("{ihub:.2}"), "Balance Difference": format!("{:.2}", gl - ihub),
        "Match Status": "Break", "Comments": "",
    })
}

fn key_of(account: &str) -> String {
    format!("00000|{account}|7052|USD")
}

fn case_id(n: u32) -> String {
    format!("C-{n:012}")
}

fn ticket(n: u32) -> String {
    format!("BRK-20240313-{n:06}")
}

/// An `anomaly` event of record `n`.
fn anomaly(n: u32, account: &str, date: &str, gl: f64, ihub: f64) -> Value {
    json!({
        "type": "anomaly",
        "result": {
            "profile": "gl_ihub", "key": key_of(account), "date": date,
            "score": -0.60 - f64::from(n) / 100.0, "decision": -0.05 * f64::from(n),
            "is_anomaly": true, "cluster": n % 3,
            "top_features": "f_change_balance_diff (61%), f_robust_z (22%)",
            "features": {}, "previous_records": 40, "bucket": "Fat Finger",
            "bucket_confidence": 0.9, "bucket_rule": "fat_finger", "severity": "High",
            "summary": format!("GL exceeds IHub by {:.2}", gl - ihub), "auto_resolve": false,
            "categorized_by": "rules", "case_id": case_id(n), "ticket": ticket(n),
            "case_status": "PendingReview", "data_quality": [], "model_version": "iforest-test-1"
        },
        "fields": gl_fields(account, date, gl, ihub),
    })
}

/// A case as the service answers it.
fn case(n: u32, account: &str, status: Status) -> Case {
    let date = NaiveDate::from_ymd_opt(2024, 3, 13).unwrap();
    let at = Utc.with_ymd_and_hms(2024, 3, 13, 9, 30, 0).unwrap();
    let mut row = serde_json::Map::new();
    if let Value::Object(m) = gl_fields(account, "2024-03-13", 1_500_000.0, 1_000_000.0) {
        row = m;
    }
    Case {
        id: case_id(n),
        ticket: ticket(n),
        profile: "gl_ihub".into(),
        key: key_of(account),
        start_date: date,
        last_date: date,
        origin: Origin::Model,
        status,
        bucket: "Timing Issue".into(),
        bucket_rule: "timing".into(),
        confidence: 0.8,
        severity: "Medium".into(),
        summary: "IHub posts a day late".into(),
        score: -0.55,
        rank: u64::from(n),
        difference: 500_000.0,
        model_version: "iforest-test-1".into(),
        proposed_by: None,
        jira_key: None,
        dispatched: false,
        dispatches: Vec::new(),
        created_at: at,
        updated_at: at,
        row,
        last_decision: None,
        fingerprint: String::new(),
        judged_difference: None,
        first_difference: None,
        previous_difference: None,
        cleared_on: None,
        seen_to: None,
        owner: None,
        due: None,
    }
}

fn event(
    n: u32,
    seq: u64,
    user: &str,
    action: EventAction,
    from: Option<Status>,
    to: Status,
) -> Event {
    Event {
        seq,
        at: Utc
            .with_ymd_and_hms(2024, 3, 13, 9, 30 + seq as u32, 0)
            .unwrap(),
        user: user.into(),
        role: (user != "system").then_some(Role::Analyst),
        case_id: case_id(n),
        ticket: ticket(n),
        action,
        from,
        to: Some(to),
        reason: None,
        model_version: "iforest-test-1".into(),
        record: None,
    }
}

/// `{"total", "cases"}` of these cases.
fn case_list(cases: &[Case]) -> Value {
    json!({"total": cases.len(), "offset": 0, "limit": 10000, "cases": cases})
}

/// A scripted service: open cases per status, decisions answered by `decide`.
fn scripted(
    open: Vec<Case>,
    decide: impl Fn(&str, &Value) -> (u16, Value) + Send + Sync + 'static,
) -> impl Fn(&Req) -> (u16, Value) + Send + Sync + 'static {
    move |r: &Req| {
        let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        match (r.method.as_str(), parts.as_slice()) {
            ("GET", ["cases"]) => {
                let status = r
                    .query
                    .split('&')
                    .find_map(|p| p.strip_prefix("status="))
                    .unwrap_or("");
                let list: Vec<Case> = open
                    .iter()
                    .filter(|c| c.status.as_str() == status)
                    .cloned()
                    .collect();
                (200, case_list(&list))
            }
            ("GET", ["cases", id]) => {
                let n: u32 = id.trim_start_matches("C-").parse().unwrap_or(0);
                let c = open
                    .iter()
                    .find(|c| c.id == *id)
                    .cloned()
                    .unwrap_or_else(|| case(n, "110200", Status::PendingReview));
                let events = vec![
                    event(
                        n,
                        1,
                        "system",
                        EventAction::Create,
                        None,
                        Status::PendingReview,
                    ),
                    event(
                        n,
                        2,
                        "bob",
                        EventAction::Accept,
                        Some(Status::PendingReview),
                        Status::Accepted,
                    ),
                    event(
                        n,
                        3,
                        "bob",
                        EventAction::Undo,
                        Some(Status::Accepted),
                        Status::PendingReview,
                    ),
                ];
                (200, json!({"case": c, "events": events}))
            }
            ("POST", ["cases", id, "decision"]) => decide(id, &r.body),
            _ => (
                404,
                json!({"error": {"status": 404, "message": "no such route"}}),
            ),
        }
    }
}

#[test]
fn streamed_anomalies_fill_the_table_newest_first_with_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    // One open case is waiting when the UI connects.
    let fake = FakeService::start(
        None,
        scripted(vec![case(1, "120100", Status::PendingReview)], |_, _| {
            (500, json!({}))
        }),
    );
    let mut app = live_app(dir.path(), Actor::analyst("ana"), &fake.url(), None);
    assert!(
        matches!(state(&app), ConnState::Connecting { attempt: 0 }),
        "{:?}",
        state(&app)
    );
    assert!(
        screen(&app).contains("No anomalies yet"),
        "{}",
        screen(&app)
    );
    assert!(
        pump_until(&mut app, Duration::from_secs(20), |a| greeted(a)
            && a.table.view.len() == 1),
        "live, with the open case: {:?} {}",
        state(&app),
        message(&app)
    );
    assert_eq!(app.data.as_ref().unwrap().info.profile, "gl_ihub");
    fake.push(&anomaly(
        2,
        "110200",
        "2024-03-13",
        9_632_957.84,
        3_632_957.84,
    ));
    fake.push(&anomaly(3, "110400", "2024-03-13", 250_000.0, 25_000.0));
    // A record that is not an anomaly event is ignored; a restated record updates its row.
    fake.push(&json!({"type": "dispatch", "item": 4, "channel": "email", "status": "sent", "outcome": "Sent", "tickets": [], "error": null}));
    fake.push(&anomaly(3, "110400", "2024-03-13", 250_000.0, 20_000.0));
    assert!(
        pump_until(&mut app, Duration::from_secs(10), |a| {
            a.table.view.len() == 3
                && column(a, "difference").first().map(String::as_str) == Some("230,000.00")
        }),
        "three rows, the restated one updated: {:?}",
        column(&app, "difference")
    );
    // Newest first; the amounts are read as a file's are, with the file's headers.
    assert_eq!(
        column(&app, "key"),
        vec![key_of("110400"), key_of("110200"), key_of("120100")]
    );
    assert_eq!(column(&app, "status"), vec!["pending"; 3]);
    assert_eq!(column(&app, "lhs")[1], "9,632,957.84");
    let t = &app.data.as_ref().unwrap().table;
    assert_eq!(
        t.cols[t.known.difference.unwrap()].title,
        "Balance Difference"
    );
    assert_eq!(column(&app, "primary_account")[1], "110200-Fed Funds Sold");
    assert_eq!(column(&app, "match_status"), vec!["Break"; 3]);
    insta::assert_snapshot!("live_table", screen(&app));

    // The cursor stayed on its row while newer ones arrived above it.
    assert_eq!(app.table.cursor, 2);
    // The detail pane asks the service for the case's audit trail.
    press(&mut app, &["g", "j", "enter"]);
    app.update(Message::Resize(150, 34));
    assert!(
        pump_until(&mut app, Duration::from_secs(10), |a| a
            .trail
            .as_ref()
            .is_some_and(|t| t.events.as_ref().is_ok_and(|e| e.len() == 3))),
        "the trail arrives: {:?} {}",
        app.trail,
        message(&app)
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == format!("/cases/{}", case_id(2))),
        "{:?}",
        fake.requests()
    );
    insta::assert_snapshot!("live_detail", screen(&app));

    // Events missed by a client that fell behind: the open cases are read again.
    let asked = |f: &FakeService| f.requests().iter().filter(|r| r.path == "/cases").count();
    assert_eq!(asked(&fake), 3, "one request per open status");
    fake.push(&json!({"type": "lagged", "missed": 12}));
    assert!(pump_until(&mut app, Duration::from_secs(10), |_| asked(
        &fake
    ) == 6));
    assert!(
        message(&app).starts_with("12 event(s)"),
        "{}",
        message(&app)
    );
    assert_eq!(app.table.view.len(), 3);
}

#[test]
fn quitting_with_decisions_in_flight_asks_first() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeService::start(
        None,
        scripted(Vec::new(), |_, _| {
            // A slow answer (this stand-in answers one request at a time).
            std::thread::sleep(Duration::from_millis(1500));
            (200, json!({"case": case(8, "110200", Status::Accepted)}))
        }),
    );
    let mut app = live_app(dir.path(), Actor::analyst("ana"), &fake.url(), None);
    assert!(pump_until(&mut app, Duration::from_secs(20), |a| greeted(
        a
    ) && fake
        .requests()
        .len()
        == 3));
    fake.push(&anomaly(
        8,
        "110200",
        "2024-03-13",
        9_632_957.84,
        3_632_957.84,
    ));
    assert!(pump_until(&mut app, Duration::from_secs(10), |a| a
        .table
        .view
        .len()
        == 1));
    press(&mut app, &["a", "q"]);
    let Mode::Confirm(c) = &app.mode else {
        panic!("a confirm dialog, got {:?}", app.mode)
    };
    assert!(
        c.lines[0].contains("1 decision(s) are still waiting"),
        "{:?}",
        c.lines
    );
    press(&mut app, &["n"]);
    assert!(!app.quit);
    assert!(pump_until(&mut app, Duration::from_secs(10), |a| column(
        a, "status"
    ) == [
        "accepted"
    ]));
    press(&mut app, &["q"]);
    assert!(app.quit, "nothing in flight: quits at once");
}

#[test]
fn decisions_round_trip_through_the_service_and_refusals_are_shown() {
    let dir = tempfile::tempdir().unwrap();
    // The service's answers: accept works, a reject is refused (409), undo puts it back.
    let decisions: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = decisions.clone();
    let fake = FakeService::start(
        None,
        scripted(Vec::new(), move |id, body| {
            seen.lock().unwrap().push(body.clone());
            let n: u32 = id.trim_start_matches("C-").parse().unwrap();
            match body["action"].as_str().unwrap() {
                "accept" => (200, json!({"case": case(n, "110200", Status::Accepted)})),
                "undo" => (
                    200,
                    json!({"case": case(n, "110200", Status::PendingReview)}),
                ),
                _ => (
                    409,
                    json!({"error": {"status": 409, "message": format!("case {}: reject is not allowed from Accepted", ticket(n))}}),
                ),
            }
        }),
    );
    let mut app = live_app(dir.path(), Actor::analyst("ana"), &fake.url(), None);
    assert!(pump_until(&mut app, Duration::from_secs(20), greeted));
    fake.push(&anomaly(
        7,
        "110200",
        "2024-03-13",
        9_632_957.84,
        3_632_957.84,
    ));
    assert!(pump_until(&mut app, Duration::from_secs(10), |a| a
        .table
        .view
        .len()
        == 1));

    // Accept: sent, then shown once the service has answered.
    press(&mut app, &["a"]);
    assert!(
        message(&app).contains("accepting 1 case(s)"),
        "{}",
        message(&app)
    );
    assert!(
        pump_until(&mut app, Duration::from_secs(10), |a| column(a, "status")
            == ["accepted"]),
        "{}",
        message(&app)
    );
    assert_eq!(message(&app), "accepted 1 case(s)");
    assert_eq!(
        decisions.lock().unwrap()[0],
        json!({"action": "accept", "user": "ana", "role": "analyst"})
    );

    // Reject asks for the reason; the service refuses and says why, as a local refusal.
    press(&mut app, &["r"]);
    assert!(matches!(app.mode, Mode::Prompt(_)));
    type_text(&mut app, "duplicate of BRK-1");
    press(&mut app, &["enter"]);
    assert!(
        pump_until(&mut app, Duration::from_secs(10), |a| message(a)
            .contains("not allowed")),
        "{}",
        message(&app)
    );
    assert_eq!(app.message.as_ref().unwrap().level, Level::Error);
    assert_eq!(column(&app, "status"), ["accepted"]);
    assert_eq!(
        decisions.lock().unwrap()[1]["note"],
        json!("duplicate of BRK-1")
    );
    insta::assert_snapshot!("live_refusal", screen(&app));

    // Undo takes back the accept.
    press(&mut app, &["u"]);
    assert!(pump_until(&mut app, Duration::from_secs(10), |a| column(
        a, "status"
    ) == [
        "pending"
    ]));
    assert_eq!(decisions.lock().unwrap()[2]["action"], "undo");
    assert!(message(&app).contains("undid"), "{}", message(&app));

    // A decision made elsewhere arrives as a status event.
    fake.push(&json!({"type": "status", "case_id": case_id(7), "ticket": ticket(7), "action": "accept", "from": "PendingReview", "to": "Accepted", "user": "bob"}));
    assert!(pump_until(&mut app, Duration::from_secs(10), |a| column(
        a, "status"
    ) == [
        "accepted"
    ]));
    assert!(message(&app).contains("bob accept"), "{}", message(&app));
}

#[test]
fn connection_states_reconnecting_with_backoff_and_error() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port (it was just freed): the client retries with backoff.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut app = live_app(dir.path(), Actor::analyst("ana"), &url, None);
    assert!(
        pump_until(&mut app, Duration::from_secs(20), |a| matches!(
            state(a),
            ConnState::Reconnecting { attempt: 2, .. }
        )),
        "{:?}",
        state(&app)
    );
    let s = screen(&app);
    let bar = s.lines().next().unwrap();
    assert!(bar.contains("reconnecting in 1 s (attempt 2)"), "{bar}");
    // The message line names the URL and the error, once (not on every retry).
    let m = message(&app);
    assert!(
        m.starts_with(&url) && m.contains("reconnecting with backoff"),
        "{m}"
    );

    // A wrong token is not retried: the error names the URL and what the service said.
    let fake = FakeService::start(Some("s3cret"), |_| (200, json!({})));
    let mut app = live_app(
        dir.path().join("b").as_path(),
        Actor::analyst("ana"),
        &fake.url(),
        Some("wrong"),
    );
    assert!(
        pump_until(&mut app, Duration::from_secs(20), |a| matches!(
            state(a),
            ConnState::Error(_)
        )),
        "{:?}",
        state(&app)
    );
    let ConnState::Error(e) = state(&app) else {
        unreachable!()
    };
    assert!(e.starts_with("401 Unauthorized"), "{e}");
    let m = message(&app);
    assert!(
        m.starts_with(&fake.url()) && m.contains("bearer token"),
        "{m}"
    );
    let s = screen(&app);
    let bar = s.lines().next().unwrap();
    assert!(
        bar.contains(&mask_port(&fake.url())) && bar.contains("error: 401 Unauthorized"),
        "{bar}"
    );
    insta::assert_snapshot!("live_error", screen(&app));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fake.connections(), 0);
    assert_eq!(fake.ws_attempts(), 1, "not retried");

    // The right token: live, and the token goes with the REST calls too.
    let mut app = live_app(
        dir.path().join("c").as_path(),
        Actor::analyst("ana"),
        &fake.url(),
        Some("s3cret"),
    );
    assert!(
        pump_until(&mut app, Duration::from_secs(20), greeted),
        "{:?}",
        state(&app)
    );
    assert!(pump_until(&mut app, Duration::from_secs(10), |_| fake
        .requests()
        .iter()
        .any(|r| r.path == "/cases")));
    assert!(
        fake.requests()
            .iter()
            .filter(|r| r.path == "/cases")
            .all(|r| r.authorization.as_deref() == Some("Bearer s3cret"))
    );

    // The service drops the connection: the client reconnects on its own.
    fake.close_sockets();
    assert!(
        pump_until(&mut app, Duration::from_secs(20), |a| fake.connections()
            == 2
            && greeted(a)),
        "{:?} after {} connections",
        state(&app),
        fake.connections()
    );
}

#[test]
fn store_views_say_they_are_not_available_and_the_queue_comes_from_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let proposed = case(5, "130100", Status::AutoResolveProposed);
    let fake = FakeService::start(
        None,
        scripted(vec![proposed.clone()], move |id, body| {
            assert_eq!(body["role"], "supervisor");
            let mut c = case(5, "130100", Status::Approved);
            c.id = id.to_string();
            (200, json!({"case": c}))
        }),
    );
    let mut app = live_app(dir.path(), Actor::supervisor("sue"), &fake.url(), None);
    assert!(pump_until(&mut app, Duration::from_secs(20), |a| greeted(
        a
    ) && a
        .table
        .view
        .len()
        == 1));
    for (key, what) in [
        ("2", "clusters"),
        ("4", "outbox"),
        ("e", "dispatch"),
        ("J", "dispatch"),
        ("x", "export"),
        ("ctrl-o", "opening a file"),
        ("5", "case queue"),
        ("6", "run summary"),
        ("m", "taking"),
        ("i", "noting"),
    ] {
        press(&mut app, &[key]);
        let m = message(&app);
        assert!(
            m.contains(what) && m.contains("not available in live mode"),
            "{key}: {m}"
        );
        assert_eq!(app.view, View::Table, "{key}");
        assert!(app.picker.is_none());
    }
    press(&mut app, &["f"]);
    assert!(
        message(&app).contains("flagging a missed break is not available"),
        "{}",
        message(&app)
    );
    // The approval queue is the service's.
    press(&mut app, &["3"]);
    assert!(pump_until(&mut app, Duration::from_secs(10), |a| a
        .approvals
        .len()
        == 1));
    assert_eq!(app.approvals[0].id, proposed.id);
    press(&mut app, &["a"]);
    assert!(
        pump_until(&mut app, Duration::from_secs(10), |a| message(a)
            .starts_with("approved")),
        "{}",
        message(&app)
    );
    assert!(
        message(&app).contains(&proposed.ticket),
        "{}",
        message(&app)
    );
    press(&mut app, &["1"]);
    assert_eq!(column(&app, "status"), ["approved"]);
    // Tab moves between the two views live mode has.
    press(&mut app, &["tab"]);
    assert_eq!(app.view, View::Approvals);
    press(&mut app, &["tab"]);
    assert_eq!(app.view, View::Table);
}

/// End to end: the real service, a record posted to it, the row in the app, accepted from the
/// app, and the case Accepted in the service's store.
#[test]
fn against_the_real_service_a_posted_anomaly_is_shown_and_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let history = service::repo(service::GL_HISTORY);
    // sue is a supervisor of the service: her token says so.
    let token = "sue-4b1d9e7a03c5";
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "[logging]\nfile = false\n[[service.users]]\nname = \"sue\"\nrole = \"supervisor\"\ntoken_env = \"T_SUE\"\n",
    )
    .unwrap();
    let svc = service::start(
        dir.path(),
        &data,
        Some(&cfg),
        &["--history", history.to_str().unwrap()],
        &[("T_SUE", token)],
    )
    .expect("the service starts");
    let mut app = live_app(
        dir.path().join("ui").as_path(),
        Actor::supervisor("sue"),
        &format!("ws://{}/ws", svc.addr),
        Some(token),
    );
    assert!(
        pump_until(&mut app, Duration::from_secs(30), greeted),
        "{:?} {}",
        state(&app),
        message(&app)
    );
    let before = app.table.view.len();
    let record = service::gl_record("2024-03-13", "110200", 9_632_957.84, 3_632_957.84);
    let r = service::post_json(&svc.addr, "/realtime_anomaly", &record, Some(token));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let result = r.json();
    assert_eq!(result["is_anomaly"], json!(true), "{result}");
    let id = result["case_id"].as_str().expect("a case").to_string();
    assert!(
        pump_until(&mut app, Duration::from_secs(20), |a| a.table.view.len()
            == before + 1),
        "the row appears"
    );
    // Newest first: the cursor's row is the record.
    let t = &app.data.as_ref().unwrap().table;
    let row = app.table.view[0] as usize;
    assert_eq!(t.text(t.known.case_id, row), id);
    assert_eq!(t.text(t.known.key, row), result["key"].as_str().unwrap());
    let diff = t.num(t.known.difference, row).expect("the difference");
    assert!((diff - 6_000_000.0).abs() < 0.005, "{diff}");
    assert_eq!(column(&app, "primary_account")[0], "110200-Test");
    let status = result["case_status"].as_str().unwrap();
    assert_eq!(
        t.text(t.known.status, row),
        breakdesk::tui::column_store::short_status(status)
    );
    if status == "AutoResolveProposed" {
        // The rules proposed an auto-resolution: the service refuses an accept (409) and says
        // why on the message line; a supervisor returns it, and then it can be accepted.
        press(&mut app, &["g", "a"]);
        assert!(
            pump_until(&mut app, Duration::from_secs(20), |a| a
                .message
                .as_ref()
                .is_some_and(|m| m.level == Level::Error)),
            "{}",
            message(&app)
        );
        assert!(message(&app).contains("not allowed"), "{}", message(&app));
        app.update(Message::Cmd(breakdesk::tui::message::Cmd::Return));
        type_text(&mut app, "the rule does not fit; review it");
        press(&mut app, &["enter"]);
        assert!(
            pump_until(&mut app, Duration::from_secs(20), |a| column(a, "status")
                [0]
                == "returned"),
            "{}",
            message(&app)
        );
    } else {
        assert_eq!(status, "PendingReview", "{result}");
    }
    press(&mut app, &["g", "a"]);
    assert!(
        pump_until(&mut app, Duration::from_secs(20), |a| column(a, "status")
            [0]
            == "accepted"),
        "{}",
        message(&app)
    );
    let got = service::get(&svc.addr, &format!("/cases/{id}"), Some(token)).json();
    assert_eq!(got["case"]["status"], "Accepted", "{got}");
    let last = got["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["user"], "sue", "{last}");
    // A second accept is refused by the service (409): its message is on the message line.
    press(&mut app, &["a"]);
    assert!(
        pump_until(&mut app, Duration::from_secs(20), |a| a
            .message
            .as_ref()
            .is_some_and(|m| m.level == Level::Error)),
        "{}",
        message(&app)
    );
    assert!(
        message(&app).contains("is Accepted") && message(&app).contains("not allowed"),
        "{}",
        message(&app)
    );
    drop(app);
    svc.stop();
}

fn breakdesk(dir: &Path, args: &[&str]) -> std::process::Output {
    let home = dir.join("home");
    std::process::Command::new(env!("CARGO_BIN_EXE_breakdesk"))
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn the_command_line_checks_the_live_url_and_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let o = breakdesk(dir.path(), &["open", "--live", "http://127.0.0.1:8080/ws"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("ws://HOST:PORT/ws"), "{err}");
    let o = breakdesk(dir.path(), &["open", "--live", "wss://desk.example/ws"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("wss://"), "{err}");
    // A file and --live are two different things to show.
    let o = breakdesk(
        dir.path(),
        &["open", "x.csv", "--live", "ws://127.0.0.1:8080/ws"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used with"));
    let o = breakdesk(dir.path(), &["open", "--token-env", "T"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--live"));
    // A usable URL still needs a terminal.
    let o = breakdesk(dir.path(), &["open", "--live", "ws://127.0.0.1:8080/ws"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("not a terminal"), "{err}");
}

/// The real binary in a pseudo-terminal (tmux) on the stand-in service: the streamed row is
/// shown, `a` sends the decision with the token from the named variable, `q` quits cleanly.
#[test]
fn the_binary_shows_the_stream_in_a_terminal() {
    use std::process::Command;
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "tmux is missing under CI (.ci/run installs it)"
        );
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let decided: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = decided.clone();
    let fake = FakeService::start(
        Some("tok-123"),
        scripted(Vec::new(), move |_, body| {
            seen.lock().unwrap().push(body.clone());
            (200, json!({"case": case(9, "110200", Status::Accepted)}))
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let q = |p: &Path| format!("'{}'", p.display());
    let cmd = format!(
        "HOME={home} XDG_CONFIG_HOME={config} XDG_DATA_HOME={data} LIVE_TOKEN=tok-123 {bin} open --live {url} --token-env LIVE_TOKEN --user ana; echo \"EXITED $?\"; sleep 60",
        home = q(&home),
        config = q(&home.join("config")),
        data = q(&home.join("data")),
        bin = q(Path::new(env!("CARGO_BIN_EXE_breakdesk"))),
        url = fake.url(),
    );
    let socket = format!("breakdesk-live-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-L")
            .arg(&socket)
            .args(args)
            .output()
            .expect("tmux runs")
    };
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = std::process::Command::new("tmux")
                .args(["-L", &self.0, "kill-server"])
                .output();
        }
    }
    let _kill = Kill(socket.clone());
    let out = tmux(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "150",
        "-y",
        "30",
        &cmd,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let screen =
        || String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "t"]).stdout).to_string();
    let wait_for = |what: &str| {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let s = screen();
            if s.contains(what) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "{what:?} did not appear; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let s = wait_for("● live");
    assert!(s.contains(&fake.url()), "{s}");
    // Subscribed once greeted: wait until the client has asked for the open cases.
    let end = Instant::now() + Duration::from_secs(20);
    while !fake.requests().iter().any(|r| r.path == "/cases") {
        assert!(Instant::now() < end, "no request for the open cases");
        std::thread::sleep(Duration::from_millis(50));
    }
    fake.push(&anomaly(
        9,
        "110200",
        "2024-03-13",
        9_632_957.84,
        3_632_957.84,
    ));
    wait_for("Row 1/1");
    wait_for("9,632,957.84");
    tmux(&["send-keys", "-t", "t", "a"]);
    wait_for("accepted 1 case(s)");
    assert_eq!(decided.lock().unwrap().len(), 1);
    assert_eq!(decided.lock().unwrap()[0]["action"], "accept");
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer tok-123"))
    );
    tmux(&["send-keys", "-t", "t", "q"]);
    let s = wait_for("EXITED");
    assert!(s.contains("EXITED 0"), "{s}");
}
