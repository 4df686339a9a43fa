//! The terminal UI, csvlens-style: build the app with a private store, step it with keys, draw
//! on ratatui's TestBackend and compare the screens with the snapshots under
//! tests/it/snapshots/ (insta). The fixture is a 20-account slice of the shipped GL/IHub sample
//! with its history; the user is fixed. Ticket dates and audit-trail times come from the clock,
//! so they are masked before comparing.

use crate::support::common;
use crate::support::dispatch_fixtures as fixtures;
use crate::support::http_server;
use crate::support::llm_server;
use crate::support::smtp_server;

use breakdesk::cases::{Actor, Cases, EventAction, Status};
use breakdesk::config::Config;
use breakdesk::pipeline::RunOptions;
use breakdesk::store::Store;
use breakdesk::tui::app::{App, AppOptions, Mode, Start};
use breakdesk::tui::keymap::{Key, Keymap};
use breakdesk::tui::message::{Cmd, Message, View};
use breakdesk::tui::theme::Theme;
use breakdesk::tui::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::KeyEvent;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const CURRENT: &str = "tests/data/tui_gl_current.csv";
const HISTORY: &str = "tests/data/tui_gl_history.csv";

fn new_app(data_dir: &Path, actor: Actor) -> App {
    new_app_with(data_dir, actor, Config::defaults())
}

fn new_app_with(data_dir: &Path, actor: Actor, cfg: Config) -> App {
    let store = Store::open(data_dir).expect("store opens");
    App::new(AppOptions {
        cfg: Arc::new(cfg),
        store: Arc::new(store),
        actor,
        keymap: Keymap::defaults(),
        theme: Theme::dark(),
        base: RunOptions::default(),
    })
}

fn opts(file: &str, history: Option<&str>) -> RunOptions {
    RunOptions {
        input: file.into(),
        history: history.map(Into::into),
        ..Default::default()
    }
}

/// An analyst's app on the fixture, loaded.
fn loaded(data_dir: &Path) -> App {
    loaded_with(data_dir, Config::defaults())
}

/// As [`loaded`], with this configuration.
fn loaded_with(data_dir: &Path, cfg: Config) -> App {
    let mut app = new_app_with(data_dir, Actor::analyst("ana"), cfg);
    app.update(Message::Resize(140, 32));
    app.start(Start::File(opts(CURRENT, Some(HISTORY))));
    assert!(
        app.wait_loaded(Duration::from_secs(120)),
        "the fixture loads"
    );
    assert!(app.error.is_none(), "{:?}", app.error);
    // The queue of cases is the first view; these tests work on the records table.
    app.view = View::Table;
    app
}

/// Presses keys given as the keymap writes them: `j`, `enter`, `ctrl-d`, `space`.
fn press(app: &mut App, keys: &[&str]) {
    for k in keys {
        let key = Key::parse(k).expect("a key");
        app.update(Message::Key(KeyEvent::new(key.code, key.mods)));
    }
}

/// Types text into a prompt.
fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(Message::Key(KeyEvent::new(
            ratatui::crossterm::event::KeyCode::Char(c),
            ratatui::crossterm::event::KeyModifiers::NONE,
        )));
    }
}

/// The screen as text, with clock-dependent parts masked.
fn screen(app: &App) -> String {
    let (w, h) = app.size;
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    term.draw(|f| ui::draw(f, app)).expect("draws");
    mask(&term.backend().to_string())
}

/// Masks ticket days (`BRK-20260503-`), event times (`2026-05-03 10:22`), loopback ports
/// (`127.0.0.1:41234`) and the time-derived hash of an email's Message-ID
/// (`<breakdesk.1.152554cd5cd3@`).
fn mask(s: &str) -> String {
    let s = mask_after(s, "127.0.0.1:", |c| c.is_ascii_digit(), "PORT");
    let s = mask_message_ids(&s);
    mask_times(&s)
}

/// Replaces the run of `keep` characters after each `prefix` by `with`.
fn mask_after(s: &str, prefix: &str, keep: impl Fn(char) -> bool, with: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(prefix) {
        out.push_str(&rest[..i + prefix.len()]);
        rest = &rest[i + prefix.len()..];
        let n = rest.find(|c: char| !keep(c)).unwrap_or(rest.len());
        if n > 0 {
            out.push_str(with);
        }
        rest = &rest[n..];
    }
    out.push_str(rest);
    out
}

/// Masks the hash in `<breakdesk.ID.HASH@domain>` (it is derived from the time of queueing).
fn mask_message_ids(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("<breakdesk.") {
        let head = i + "<breakdesk.".len();
        out.push_str(&rest[..head]);
        rest = &rest[head..];
        let id = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        out.push_str(&rest[..id]);
        rest = &rest[id..];
        if let Some(tail) = rest.strip_prefix('.') {
            let n = tail
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(tail.len());
            out.push_str(".HASH");
            rest = &tail[n..];
        }
    }
    out.push_str(rest);
    out
}

fn mask_times(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let digits = |from: usize, n: usize| {
        (from..from + n).all(|i| chars.get(i).is_some_and(|c| c.is_ascii_digit()))
    };
    let mut i = 0;
    while i < chars.len() {
        if chars[i..].starts_with(&['B', 'R', 'K', '-']) && digits(i + 4, 8) {
            out.push_str("BRK-YYYYMMDD");
            i += 12;
            continue;
        }
        // YYYY-MM-DD HH:MM
        if digits(i, 4)
            && chars.get(i + 4) == Some(&'-')
            && digits(i + 5, 2)
            && chars.get(i + 7) == Some(&'-')
            && digits(i + 8, 2)
            && chars.get(i + 10) == Some(&' ')
            && digits(i + 11, 2)
            && chars.get(i + 13) == Some(&':')
            && digits(i + 14, 2)
        {
            out.push_str("YYYY-MM-DD hh:mm");
            i += 16;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[test]
fn loading_screen_is_drawn_before_any_result() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = new_app(dir.path(), Actor::analyst("ana"));
    app.update(Message::Resize(100, 20));
    app.start(Start::File(opts(CURRENT, Some(HISTORY))));
    insta::assert_snapshot!("loading", screen(&app));
    // Esc cancels; the screen says so and the late results are dropped.
    press(&mut app, &["esc"]);
    assert!(app.loading.is_none());
    app.pump(Some(Duration::from_millis(200)));
    assert_eq!(
        app.error.as_ref().map(|e| e.title.as_str()),
        Some("cancelled")
    );
    assert!(app.data.is_none());
    app.worker.join();
}

#[test]
fn table_detail_clusters_help_and_palette() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded(dir.path());
    insta::assert_snapshot!("table", screen(&app));

    press(&mut app, &["enter"]);
    app.update(Message::Resize(140, 40));
    insta::assert_snapshot!("detail", screen(&app));
    press(&mut app, &["esc"]);
    assert!(!app.table.detail);
    app.update(Message::Resize(140, 32));

    press(&mut app, &["2"]);
    insta::assert_snapshot!("clusters", screen(&app));
    // Enter drills into the cluster's flagged rows.
    let cluster = app.data.as_ref().unwrap().clusters[0].cluster as u32;
    press(&mut app, &["enter"]);
    assert_eq!(app.table.quick.cluster, Some(cluster));
    assert_eq!(app.view, breakdesk::tui::message::View::Table);
    press(&mut app, &["0"]);

    press(&mut app, &["?"]);
    insta::assert_snapshot!("help", screen(&app));
    press(&mut app, &["x"]); // any other key closes
    assert!(matches!(app.mode, Mode::Normal));

    press(&mut app, &[":"]);
    type_text(&mut app, "sort");
    insta::assert_snapshot!("palette", screen(&app));
    press(&mut app, &["esc"]);
}

#[test]
fn sort_filter_search_and_quick_filters() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded(dir.path());
    let flagged = app.table.view.len();
    assert!(flagged > 5, "{flagged} flagged rows");
    let d = app.data.as_ref().unwrap();
    let diff = d.table.known.difference.unwrap();
    let diffs = |app: &App| -> Vec<f64> {
        let t = &app.data.as_ref().unwrap().table;
        app.table
            .view
            .iter()
            .map(|r| t.num(Some(diff), *r as usize).unwrap_or(f64::NAN))
            .collect()
    };
    // Move the column cursor to the difference and sort largest first.
    for _ in 0..diff {
        press(&mut app, &["l"]);
    }
    press(&mut app, &["O"]);
    let v = diffs(&app);
    assert!(v.windows(2).all(|w| w[0] >= w[1]), "{v:?}");
    press(&mut app, &["o"]);
    let v = diffs(&app);
    assert!(v.windows(2).all(|w| w[0] <= w[1]), "{v:?}");

    // Expression filter.
    press(&mut app, &["F"]);
    type_text(&mut app, "abs(difference) > 1000 and status = pending");
    press(&mut app, &["enter"]);
    assert!(app.table.filter.is_some(), "{:?}", app.message);
    assert!(diffs(&app).iter().all(|d| d.abs() > 1000.0));
    assert!(app.table.view.len() < flagged);
    // A bad one keeps the prompt open and says what is wrong.
    press(&mut app, &["F", "ctrl-u"]);
    type_text(&mut app, "amount > 3");
    press(&mut app, &["enter"]);
    assert!(matches!(app.mode, Mode::Prompt(_)));
    let m = app.message.as_ref().unwrap().text.clone();
    assert!(
        m.contains("unknown field `amount`") && m.contains("difference"),
        "{m}"
    );
    press(&mut app, &["esc", "0"]);
    assert_eq!(app.table.view.len(), flagged);

    // Quick filters cycle through the values, then off.
    press(&mut app, &["!"]);
    let sev = app.table.quick.severity.clone().expect("a severity");
    let t = &app.data.as_ref().unwrap().table;
    assert!(
        app.table
            .view
            .iter()
            .all(|r| t.text(t.known.severity, *r as usize) == sev)
    );
    press(&mut app, &["0"]);

    // All rows, then search with n/N.
    press(&mut app, &["A"]);
    assert_eq!(app.table.view.len(), app.data.as_ref().unwrap().table.rows);
    press(&mut app, &["A", "/"]);
    type_text(&mut app, "drift");
    press(&mut app, &["enter"]);
    let first = app.table.cursor;
    let t = &app.data.as_ref().unwrap().table;
    let row = app.table.view[first] as usize;
    let hit = t
        .cols
        .iter()
        .any(|c| c.cell(row).to_lowercase().contains("drift"));
    assert!(hit, "the cursor is on a match");
    press(&mut app, &["n"]);
    press(&mut app, &["N"]);
    assert_eq!(app.table.cursor, first);
}

/// A left click at a screen cell.
fn click(app: &mut App, column: u16, row: u16) {
    use ratatui::crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
    app.update(Message::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column,
        row,
        modifiers: KeyModifiers::NONE,
    }));
}

/// Where a column's title starts on the table's header line (screen line 1).
fn header_x(app: &App, title: &str) -> u16 {
    let s = screen(app);
    let header = s.lines().nth(1).expect("a header line");
    // The screen is quoted line by line: the first character is the quote.
    let byte = header
        .find(title)
        .unwrap_or_else(|| panic!("{title:?} is not on the header line: {header}"));
    (header[..byte].chars().count() - 1) as u16
}

#[test]
fn clicking_a_column_header_sorts_by_it_and_again_reverses() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded(dir.path());
    let t = &app.data.as_ref().unwrap().table;
    let diff = t.known.difference.unwrap();
    let diff_title = t.cols[diff].title.clone();
    let gl = t.cols.iter().position(|c| c.title == "GL Balance").unwrap();
    let values = |app: &App, col: usize| -> Vec<f64> {
        let t = &app.data.as_ref().unwrap().table;
        app.table
            .view
            .iter()
            .map(|r| t.num(Some(col), *r as usize).unwrap_or(f64::NAN))
            .collect()
    };
    assert_eq!(app.table.sort, None);
    let x = header_x(&app, &diff_title) + 1;
    click(&mut app, x, 1);
    assert_eq!(app.table.sort, Some((diff, false)), "{:?}", app.message);
    assert_eq!(app.table.col, diff, "the column cursor follows the click");
    let v = values(&app, diff);
    assert!(v.windows(2).all(|w| w[0] <= w[1]), "ascending: {v:?}");
    insta::assert_snapshot!("table_sorted_by_click", screen(&app));
    // Again: largest first.
    click(&mut app, x, 1);
    assert_eq!(app.table.sort, Some((diff, true)));
    let v = values(&app, diff);
    assert!(v.windows(2).all(|w| w[0] >= w[1]), "descending: {v:?}");
    assert!(screen(&app).contains('▼'));
    // Another column's header sorts by that one, ascending.
    let x = header_x(&app, "GL Balance") + 2;
    click(&mut app, x, 1);
    assert_eq!(app.table.sort, Some((gl, false)));
    let v = values(&app, gl);
    assert!(v.windows(2).all(|w| w[0] <= w[1]), "ascending: {v:?}");
    // A click on a row below the header moves the cursor and leaves the sort alone.
    let offset = app.table.offset;
    click(&mut app, x, 4);
    assert_eq!(app.table.cursor, offset + 2);
    assert_eq!(app.table.sort, Some((gl, false)));
}

/// Steps the app (every background report) until `cond` holds, for at most 30 s.
fn pump_until(app: &mut App, cond: impl Fn(&App) -> bool) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < end {
        app.pump(Some(Duration::from_millis(50)));
        if cond(app) {
            return true;
        }
    }
    false
}

#[test]
fn export_runs_in_the_background_and_reports_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded(&dir.path().join("data"));
    // Three marked rows.
    press(&mut app, &["g", "space", "space", "space"]);
    let rows = app.targets();
    assert_eq!(rows.len(), 3);
    let tickets: Vec<String> = {
        let t = &app.data.as_ref().unwrap().table;
        rows.iter()
            .map(|r| t.text(t.known.ticket, *r as usize).to_string())
            .collect()
    };
    let out = dir.path().join("three.csv");
    press(&mut app, &["x"]);
    let Mode::Prompt(p) = &app.mode else {
        panic!("the export prompt, got {:?}", app.mode)
    };
    assert_eq!(p.text, "tui_gl_current.export.csv");
    press(&mut app, &["ctrl-u"]);
    type_text(&mut app, out.to_str().unwrap());
    press(&mut app, &["enter"]);
    // The UI thread only started it: the result comes later, as a message.
    let m = app.message.clone().unwrap();
    assert_eq!(
        m.text,
        format!("exporting 3 rows to {}…", out.display()),
        "{m:?}"
    );
    assert_eq!(app.exporter.running(), 1);
    assert!(
        screen(&app).contains("exporting…"),
        "the status bar says so"
    );
    let done = format!("exported 3 rows to {}", out.display());
    assert!(
        pump_until(&mut app, |a| a
            .message
            .as_ref()
            .is_some_and(|m| m.text == done)),
        "no result within 30 s: {:?}",
        app.message
    );
    assert_eq!(app.exporter.running(), 0);
    assert!(!screen(&app).contains("exporting…"));
    let (header, lines) = common::read_csv(&out);
    assert_eq!(lines.len(), 3, "three rows");
    assert_eq!(common::column(&header, &lines, "ticket"), tickets);
    for name in [
        "GL Balance",
        "IHub Balance",
        "score",
        "bucket",
        "case_status",
    ] {
        assert!(header.iter().any(|h| h == name), "{name} in {header:?}");
    }

    // A file that cannot be written (its directory is a file): the error arrives the same
    // way, naming it.
    std::fs::write(dir.path().join("plain"), "a file").unwrap();
    let bad = dir.path().join("plain").join("out.csv");
    press(&mut app, &["x", "ctrl-u"]);
    type_text(&mut app, bad.to_str().unwrap());
    press(&mut app, &["enter"]);
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .starts_with("exporting 3 rows")
    );
    let prefix = format!("cannot export to {}", bad.display());
    assert!(
        pump_until(&mut app, |a| a
            .message
            .as_ref()
            .is_some_and(|m| m.text.starts_with(&prefix))),
        "no error within 30 s: {:?}",
        app.message
    );
    assert!(!bad.exists());
}

#[test]
fn decisions_errors_and_approval_queue() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded(dir.path());
    // Reject without a reason is refused before anything is written.
    press(&mut app, &["r", "enter"]);
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("reason is required"),
        "{:?}",
        app.message
    );
    // Propose the first pending row, then approve it yourself: maker-checker says no.
    press(&mut app, &["F"]);
    type_text(&mut app, "status = pending");
    press(&mut app, &["enter", "g"]);
    let case = {
        let t = &app.data.as_ref().unwrap().table;
        t.text(t.known.case_id, app.table.view[0] as usize)
            .to_string()
    };
    press(&mut app, &["t", "0"]);
    app.actor = Actor::supervisor("ana");
    press(&mut app, &["3"]);
    assert!(app.approvals.iter().any(|c| c.id == case));
    let pos = app.approvals.iter().position(|c| c.id == case).unwrap();
    for _ in 0..pos {
        press(&mut app, &["j"]);
    }
    press(&mut app, &["a"]);
    let m = app.message.as_ref().unwrap().text.clone();
    assert!(m.contains("maker-checker"), "{m}");
    // Another supervisor sees the queue and approves.
    app.actor = Actor::supervisor("sue");
    app.update(Message::Cmd(Cmd::ViewApprovals));
    insta::assert_snapshot!("approval_queue", screen(&app));
    press(&mut app, &["a"]);
    let store = app.store.clone();
    let cases = Cases::new(&store);
    assert_eq!(cases.get(&case).unwrap().unwrap().status, Status::Approved);
    assert!(!app.approvals.iter().any(|c| c.id == case));
    // The table shows it.
    press(&mut app, &["1"]);
    let t = &app.data.as_ref().unwrap().table;
    for row in &app.data.as_ref().unwrap().case_rows[&case] {
        assert_eq!(t.text(t.known.status, *row as usize), "approved");
    }
}

#[test]
fn bulk_accept_shows_count_and_total_then_undo() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded(dir.path());
    press(&mut app, &["F"]);
    type_text(&mut app, "status = pending");
    press(&mut app, &["enter", "g", "space", "j", "V"]);
    assert_eq!(app.table.marked, 3);
    let marked = app.targets();
    press(&mut app, &["a"]);
    let Mode::Confirm(c) = &app.mode else {
        panic!("a confirm dialog, got {:?}", app.mode)
    };
    assert!(c.lines[0].contains("(3 rows)"), "{:?}", c.lines);
    insta::assert_snapshot!("bulk_confirm", screen(&app));
    press(&mut app, &["y"]);
    let store = app.store.clone();
    let cases = Cases::new(&store);
    let ids: Vec<String> = {
        let t = &app.data.as_ref().unwrap().table;
        marked
            .iter()
            .map(|r| t.text(t.known.case_id, *r as usize).to_string())
            .collect()
    };
    for id in &ids {
        assert_eq!(cases.get(id).unwrap().unwrap().status, Status::Accepted);
    }
    assert_eq!(app.table.marked, 0);
    // Quitting asks first: the decisions are not dispatched.
    press(&mut app, &["q"]);
    assert!(matches!(app.mode, Mode::Confirm(_)));
    press(&mut app, &["n"]);
    assert!(!app.quit);
    press(&mut app, &["u"]);
    for id in &ids {
        assert_eq!(
            cases.get(id).unwrap().unwrap().status,
            Status::PendingReview
        );
    }
    press(&mut app, &["q"]);
    assert!(app.quit, "nothing left to dispatch: quits at once");
}

#[test]
fn error_screens_name_the_file_and_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = new_app(dir.path(), Actor::analyst("ana"));
    app.update(Message::Resize(110, 20));
    app.start(Start::File(opts("tests/data/no_such_file.csv", None)));
    assert!(app.wait_loaded(Duration::from_secs(60)));
    let e = app.error.clone().expect("an error");
    assert!(e.message.contains("tests/data/no_such_file.csv"), "{e:?}");
    insta::assert_snapshot!("error_bad_file", screen(&app));

    app.start(Start::File(opts(
        "tests/data/tui_missing_columns.csv",
        None,
    )));
    assert!(app.wait_loaded(Duration::from_secs(60)));
    let e = app.error.clone().expect("an error");
    assert!(
        e.message.contains("GL Balance") || e.message.contains("missing"),
        "{e:?}"
    );
    insta::assert_snapshot!("error_missing_columns", screen(&app));
    // Enter goes to the picker, in the file's directory.
    press(&mut app, &["enter"]);
    let p = app.picker.as_ref().expect("the picker");
    assert!(p.entries.iter().any(|e| e.name == "tui_gl_current.csv"));
}

#[test]
fn picker_lists_files_and_opens_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = new_app(dir.path(), Actor::analyst("ana"));
    app.update(Message::Resize(100, 16));
    app.start(Start::Picker("tests/data".into()));
    let names: Vec<String> = app
        .picker
        .as_ref()
        .unwrap()
        .entries
        .iter()
        .map(|e| e.name.clone())
        .collect();
    let hist = names
        .iter()
        .position(|n| n == "tui_gl_history.csv")
        .unwrap();
    let cur = names
        .iter()
        .position(|n| n == "tui_gl_current.csv")
        .unwrap();
    assert!(!names.iter().any(|n| n.ends_with(".json")), "{names:?}");
    for _ in 0..hist {
        press(&mut app, &["j"]);
    }
    press(&mut app, &["H", "g"]);
    for _ in 0..cur {
        press(&mut app, &["j"]);
    }
    press(&mut app, &["enter"]);
    assert!(app.picker.is_none());
    assert!(app.wait_loaded(Duration::from_secs(120)));
    let d = app.data.as_ref().expect("loaded");
    assert_eq!(d.history.as_deref(), Some("tests/data/tui_gl_history.csv"));
    assert!(d.info.history_rows > 0);
}

/// The case of the row under the cursor.
fn cursor_case(app: &App) -> String {
    let t = &app.data.as_ref().unwrap().table;
    t.text(t.known.case_id, app.current_row().unwrap() as usize)
        .to_string()
}

#[test]
fn a_replayed_key_script_leaves_its_decisions_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded(dir.path());
    // The pending cases, most anomalous first. A decided case's records leave the view, so the
    // cursor lands on the next case.
    press(&mut app, &["F"]);
    type_text(&mut app, "status = pending");
    press(&mut app, &["enter", "g"]);
    let accepted = cursor_case(&app);
    press(&mut app, &["a"]);
    let rejected = cursor_case(&app);
    press(&mut app, &["r"]);
    type_text(&mut app, "timing, clears tomorrow");
    press(&mut app, &["enter"]);
    // Mark two rows of two cases, propose both behind the confirm dialog, undo that.
    let first = cursor_case(&app);
    press(&mut app, &["space"]);
    while cursor_case(&app) == first {
        press(&mut app, &["j"]);
    }
    let second = cursor_case(&app);
    press(&mut app, &["space", "t", "y", "u"]);
    // Accept a case the undo left alone.
    press(&mut app, &["g"]);
    while [&first, &second].contains(&&cursor_case(&app)) {
        press(&mut app, &["j"]);
    }
    let last = cursor_case(&app);
    press(&mut app, &["a"]);
    let all = [&accepted, &rejected, &first, &second, &last];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a, b, "five different cases");
        }
    }
    let data_dir = dir.path().to_path_buf();
    drop(app);

    let store = Store::open(&data_dir).expect("the store reopens");
    let cases = Cases::new(&store);
    let status = |id: &str| cases.get(id).unwrap().unwrap().status;
    assert_eq!(status(&accepted), Status::Accepted);
    assert_eq!(status(&rejected), Status::Rejected);
    assert_eq!(status(&first), Status::PendingReview);
    assert_eq!(status(&second), Status::PendingReview);
    assert_eq!(status(&last), Status::Accepted);
    let actions = |id: &str| -> Vec<(EventAction, String, Option<String>)> {
        cases
            .events_for(id)
            .unwrap()
            .into_iter()
            .skip(1) // created by breakdesk
            .map(|e| (e.action, e.user, e.reason))
            .collect()
    };
    assert_eq!(
        actions(&accepted),
        [(EventAction::Accept, "ana".into(), None)]
    );
    assert_eq!(
        actions(&rejected),
        [(
            EventAction::Reject,
            "ana".into(),
            Some("timing, clears tomorrow".into())
        )]
    );
    for id in [&first, &second] {
        let a: Vec<EventAction> = actions(id).iter().map(|x| x.0).collect();
        assert_eq!(a, [EventAction::Propose, EventAction::Undo], "case {id}");
    }
    assert_eq!(actions(&last), [(EventAction::Accept, "ana".into(), None)]);
}

#[test]
fn keymap_overrides_reach_the_footer_and_help() {
    let mut o = std::collections::BTreeMap::new();
    o.insert(
        "accept".to_string(),
        breakdesk::config::KeyList::One("y".into()),
    );
    let km = Keymap::with_overrides(&o).unwrap();
    let help: String = km
        .help()
        .iter()
        .flat_map(|(_, rows)| rows.iter().map(|(k, n, _)| format!("{k} {n}\n")))
        .collect();
    assert!(help.contains("y accept"), "{help}");
    assert!(!help.contains("a accept"), "{help}");
}

#[test]
fn open_without_a_terminal_exits_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = common::breakdesk_cmd(dir.path(), &dir.path().join("data"));
    c.args(["open", CURRENT]);
    let (code, _out, err) = common::outcome(c);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a terminal"), "{err}");
}

// ----- dispatch: e (email), J (Jira), the outbox view ----------------------------------------

use breakdesk::cases::{Channel, DispatchState};
use breakdesk::dispatch::{ItemStatus, Outbox, OutboxFilter};
use smtp_server::{Mode as SmtpMode, Security, SmtpServer, TestPki};

/// `[email]` for a plain local relay on the test server (no login), a subject without the date
/// (stable snapshots), and an `[outbox]` of `attempts` fast attempts.
fn relay_config(server: &SmtpServer, attempts: u32) -> Config {
    fixtures::config(&format!(
        "[email]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         from = \"Recon Desk <recon@example.com>\"\nto = [\"lead@example.com\"]\n\
         subject = \"breakdesk: {{count}} {{status}} break(s)\"\ntimeout_secs = 5\n\
         [outbox]\nmax_attempts = {attempts}\nbackoff_base_secs = 0.05\nbackoff_max_secs = 0.2\n\
         flush_wait_secs = 5\npoll_secs = 0.05\n",
        port = server.port(),
    ))
}

/// Accepts the most anomalous pending case; returns it.
fn accept_first_pending(app: &mut App) -> String {
    press(app, &["F"]);
    type_text(app, "status = pending");
    press(app, &["enter", "g"]);
    let case = cursor_case(app);
    press(app, &["a", "0"]);
    let store = app.store.clone();
    assert_eq!(
        Cases::new(&store).get(&case).unwrap().unwrap().status,
        Status::Accepted
    );
    case
}

/// Steps the app (the sender's reports) until `cond` holds, for at most 10 s.
fn step_until(app: &mut App, cond: impl Fn(&App) -> bool) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < end {
        app.pump_dispatch();
        if cond(app) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn email_state(app: &App, case: &str) -> Option<DispatchState> {
    Cases::new(&app.store)
        .get(case)
        .unwrap()
        .unwrap()
        .dispatch(Channel::Email)
        .map(|d| d.state)
}

#[test]
fn email_goes_from_e_through_the_preview_to_the_smtp_server() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let server = SmtpServer::start(&pki, Security::Plain, SmtpMode::Up);
    let mut app = loaded_with(&dir.path().join("data"), relay_config(&server, 4));
    let case = accept_first_pending(&mut app);
    let ticket = Cases::new(&app.store).get(&case).unwrap().unwrap().ticket;

    // The recipients prompt starts with [email] to.
    press(&mut app, &["e"]);
    let Mode::Prompt(p) = &app.mode else {
        panic!("a prompt, got {:?} ({:?})", app.mode, app.message)
    };
    assert_eq!(p.text, "lead@example.com");
    // A bad address keeps the prompt open and says which.
    press(&mut app, &["ctrl-u"]);
    type_text(&mut app, "desk@example.com, not an address");
    press(&mut app, &["enter"]);
    assert!(matches!(app.mode, Mode::Prompt(_)), "{:?}", app.mode);
    let m = app.message.clone().unwrap();
    assert!(
        m.text
            .contains("\"not an address\" is not an email address"),
        "{m:?}"
    );
    press(&mut app, &["ctrl-u"]);
    type_text(&mut app, "desk@example.com, lead@example.com");
    press(&mut app, &["enter"]);
    let Mode::Confirm(c) = &app.mode else {
        panic!("the preview, got {:?} ({:?})", app.mode, app.message)
    };
    let text = c.lines.join("\n");
    assert!(
        text.contains("To: desk@example.com, lead@example.com"),
        "{text}"
    );
    assert!(
        text.contains("1 case(s), total absolute difference"),
        "{text}"
    );
    assert!(text.contains(&ticket), "{text}");
    insta::assert_snapshot!("email_preview", screen(&app));
    assert!(app.sender.is_none(), "nothing is sent before the confirm");

    press(&mut app, &["y"]);
    // Durable before the message says queued.
    let m = app.message.clone().expect("a message");
    assert!(m.text.starts_with("queued 1 case(s) by email"), "{m:?}");
    let items = Outbox::new(&app.store)
        .list(&OutboxFilter::default())
        .unwrap();
    assert_eq!(items.len(), 1);
    assert!(email_state(&app, &case).is_some());

    // The background sender reports it sent.
    assert!(
        step_until(&mut app, |a| a
            .message
            .as_ref()
            .is_some_and(|m| m.text.starts_with("sent #1 email"))),
        "not sent within 10 s: {:?}",
        app.message
    );
    let msgs = server.messages();
    assert_eq!(msgs.len(), 1, "exactly one message");
    let mut to = msgs[0].to.clone();
    to.sort();
    assert_eq!(to, ["desk@example.com", "lead@example.com"]);
    assert!(
        msgs[0].data.contains(&ticket),
        "the message names the ticket"
    );
    assert_eq!(email_state(&app, &case), Some(DispatchState::Sent));
    assert!(
        Cases::new(&app.store)
            .get(&case)
            .unwrap()
            .unwrap()
            .dispatched
    );

    // Nothing is left to send: e says so, and quitting does not ask.
    press(&mut app, &["e"]);
    assert!(matches!(app.mode, Mode::Normal));
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("nothing to send"),
        "{:?}",
        app.message
    );
    press(&mut app, &["q"]);
    assert!(app.quit, "every accepted case was sent: quits at once");
    app.stop_sender();
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn outbox_view_shows_a_parked_email_and_r_retries_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let server = SmtpServer::start(&pki, Security::Plain, SmtpMode::Down);
    let mut app = loaded_with(&dir.path().join("data"), relay_config(&server, 1));
    let case = accept_first_pending(&mut app);
    press(&mut app, &["e", "enter", "y"]);
    assert!(
        step_until(&mut app, |a| a
            .message
            .as_ref()
            .is_some_and(|m| m.text.contains("parked"))),
        "not parked within 10 s: {:?}",
        app.message
    );
    assert_eq!(email_state(&app, &case), Some(DispatchState::Parked));
    press(&mut app, &["4"]);
    assert_eq!(app.view, breakdesk::tui::message::View::Outbox);
    assert_eq!(app.outbox.len(), 1);
    assert_eq!(app.outbox[0].status.name(), "parked");
    insta::assert_snapshot!("outbox_parked", screen(&app));
    // Quitting asks: an accepted case is not sent.
    press(&mut app, &["q"]);
    let Mode::Confirm(c) = &app.mode else {
        panic!("the quit prompt, got {:?}", app.mode)
    };
    assert!(
        c.lines[0].starts_with("1 case(s) accepted"),
        "{:?}",
        c.lines
    );
    press(&mut app, &["n"]);

    server.set_mode(SmtpMode::Up);
    press(&mut app, &["R"]);
    assert!(
        step_until(&mut app, |a| a
            .outbox
            .first()
            .is_some_and(|i| matches!(i.status, ItemStatus::Sent { .. }))),
        "not sent after the retry: {:?}",
        app.message
    );
    assert_eq!(server.messages().len(), 1);
    assert_eq!(email_state(&app, &case), Some(DispatchState::Sent));
    // A sent item cannot be retried: the refusal is on the message line.
    press(&mut app, &["R"]);
    let m = app.message.clone().unwrap();
    assert!(m.text.contains("was sent"), "{m:?}");
    app.stop_sender();
}

#[test]
fn e_j_and_w_without_a_configured_channel_name_the_setting_and_queue_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded(dir.path());
    accept_first_pending(&mut app);
    press(&mut app, &["e"]);
    assert!(matches!(app.mode, Mode::Normal), "{:?}", app.mode);
    let m = app.message.clone().unwrap();
    assert!(m.text.contains("[email] enabled"), "{m:?}");
    assert!(m.text.contains("nothing was queued"), "{m:?}");
    press(&mut app, &["J"]);
    let m = app.message.clone().unwrap();
    assert!(m.text.contains("[jira]"), "{m:?}");
    press(&mut app, &["W"]);
    assert!(matches!(app.mode, Mode::Normal), "{:?}", app.mode);
    let m = app.message.clone().unwrap();
    assert!(m.text.contains("[webhook] enabled"), "{m:?}");
    assert!(m.text.contains("nothing was queued"), "{m:?}");
    assert!(
        Outbox::new(&app.store)
            .list(&OutboxFilter::default())
            .unwrap()
            .is_empty()
    );
    assert!(app.sender.is_none());
    // The quit prompt says no channel can send.
    press(&mut app, &["q"]);
    let Mode::Confirm(c) = &app.mode else {
        panic!("the quit prompt, got {:?}", app.mode)
    };
    assert!(
        c.lines[0].contains("no dispatch channel is enabled"),
        "{:?}",
        c.lines
    );
}

#[test]
fn j_opens_a_jira_issue_in_the_background_and_the_outbox_shows_its_key() {
    use http_server::{HttpServer, Reply, Request};
    let server = HttpServer::start(|r: &Request| {
        if r.method == "GET" {
            Reply::json(200, serde_json::json!({"issues": []}))
        } else {
            Reply::json(201, serde_json::json!({"id": "10001", "key": "RECON-7"}))
        }
    });
    let cfg = fixtures::config(&format!(
        "[jira]\nenabled = true\nbase_url = \"{}\"\nemail = \"robot@example.com\"\n\
         token_env = \"{}\"\nproject = \"RECON\"\ntimeout_secs = 5\n{}",
        server.url(),
        fixtures::SECRET_ENV,
        fixtures::FAST_OUTBOX
    ));
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded_with(&dir.path().join("data"), cfg);
    let case = accept_first_pending(&mut app);
    press(&mut app, &["J"]);
    let Mode::Confirm(c) = &app.mode else {
        panic!("a confirm dialog, got {:?} ({:?})", app.mode, app.message)
    };
    assert!(c.title.contains("1 accepted case"), "{}", c.title);
    assert!(c.lines[0].contains("RECON"), "{:?}", c.lines);
    press(&mut app, &["y", "4"]);
    assert!(
        step_until(&mut app, |a| a
            .outbox
            .first()
            .is_some_and(|i| matches!(i.status, ItemStatus::Sent { .. }))),
        "not sent within 10 s: {:?}",
        app.message
    );
    assert_eq!(app.outbox[0].result.as_deref(), Some("RECON-7"));
    assert!(screen(&app).contains("RECON-7"));
    let stored = Cases::new(&app.store).get(&case).unwrap().unwrap();
    let d = stored.dispatch(Channel::Jira).unwrap();
    assert_eq!(d.state, DispatchState::Sent);
    let posts = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1, "one issue created");
    app.stop_sender();
}

// ----- the webhook (W) ------------------------------------------------------------------------

use http_server::{HttpServer, Reply as HttpReply, Request as HttpRequest};

/// `[webhook]` posting to `server` with the test secret as the token, and fast retries.
fn webhook_config(server: &HttpServer) -> Config {
    fixtures::config(&format!(
        "[webhook]\nenabled = true\nurl = \"{}/v1/tasks\"\ntoken_env = \"{}\"\ntimeout_secs = 5\n{}",
        server.url(),
        fixtures::SECRET_ENV,
        fixtures::FAST_OUTBOX
    ))
}

fn webhook_state(app: &App, case: &str) -> Option<DispatchState> {
    Cases::new(&app.store)
        .get(case)
        .unwrap()
        .unwrap()
        .dispatch(Channel::Webhook)
        .map(|d| d.state)
}

#[test]
fn w_posts_a_webhook_task_for_each_accepted_case_through_the_outbox() {
    // A task API: the bearer token and an Idempotency-Key are required.
    let server = HttpServer::start(|r: &HttpRequest| {
        if r.header("authorization") != Some(format!("Bearer {}", fixtures::SECRET).as_str()) {
            return HttpReply::json(401, serde_json::json!({"error": "unauthorized"}));
        }
        if r.header("idempotency-key").is_none() {
            return HttpReply::json(
                400,
                serde_json::json!({"error": "Idempotency-Key required"}),
            );
        }
        HttpReply::json(201, serde_json::json!({"id": "task-42"}))
    });
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded_with(&dir.path().join("data"), webhook_config(&server));
    let case = accept_first_pending(&mut app);
    press(&mut app, &["W"]);
    let Mode::Confirm(c) = &app.mode else {
        panic!("a confirm dialog, got {:?} ({:?})", app.mode, app.message)
    };
    assert!(c.title.contains("1 accepted case"), "{}", c.title);
    assert!(
        c.lines[0].contains("1 task(s)") && c.lines[0].contains("/v1/tasks"),
        "{:?}",
        c.lines
    );
    assert!(
        server.requests().is_empty(),
        "nothing is sent before the confirm"
    );
    press(&mut app, &["y"]);
    let m = app.message.clone().unwrap();
    assert!(m.text.starts_with("queued 1 case(s) by webhook"), "{m:?}");
    // On disk when the message says queued (the sender may already have sent it).
    assert!(
        matches!(
            webhook_state(&app, &case),
            Some(DispatchState::Queued | DispatchState::Sent)
        ),
        "{:?}",
        webhook_state(&app, &case)
    );
    press(&mut app, &["4"]);
    assert!(
        step_until(&mut app, |a| a
            .outbox
            .first()
            .is_some_and(|i| matches!(i.status, ItemStatus::Sent { .. }))),
        "not sent within 10 s: {:?}",
        app.message
    );
    let item = app.outbox[0].clone();
    assert_eq!(item.result.as_deref(), Some("task-42"));
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "one task posted");
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/tasks");
    assert_eq!(
        r.header("idempotency-key"),
        Some(format!("breakdesk-{case}-{}", item.id).as_str())
    );
    assert_eq!(r.body["case_id"], case.as_str());
    assert_eq!(webhook_state(&app, &case), Some(DispatchState::Sent));
    // The case goes once per channel.
    press(&mut app, &["W"]);
    assert!(matches!(app.mode, Mode::Normal));
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("nothing to send by webhook"),
        "{:?}",
        app.message
    );
    app.stop_sender();
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn keymap_override_moves_the_webhook_key() {
    let mut o = std::collections::BTreeMap::new();
    o.insert(
        "webhook".to_string(),
        breakdesk::config::KeyList::One("ctrl-w".into()),
    );
    let km = Keymap::with_overrides(&o).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut app = new_app(dir.path(), Actor::analyst("ana"));
    app.keymap = km;
    press(&mut app, &["W"]);
    assert!(app.message.is_none(), "W is free: {:?}", app.message);
    press(&mut app, &["ctrl-w"]);
    let m = app.message.clone().expect("the webhook's refusal");
    assert!(m.text.contains("[webhook] enabled"), "{m:?}");
}

// ----- the outbox's detail pane and cancel (X) -----------------------------------------------

#[test]
fn outbox_detail_shows_the_whole_item_and_x_cancels_it_after_the_confirm() {
    // The task API refuses the task for good (400) with a long explanation.
    let server = HttpServer::start(|_: &HttpRequest| {
        HttpReply::json(
            400,
            serde_json::json!({"error": {"message": "the task was refused: field severity must be one of P1, P2, P3 or P4 and field due_date must fall on a business day of the team's calendar; see the task API's documentation for the accepted values of every field"}}),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded_with(&dir.path().join("data"), webhook_config(&server));
    app.update(Message::Resize(140, 36));
    let case = accept_first_pending(&mut app);
    press(&mut app, &["W", "y"]);
    assert!(
        step_until(&mut app, |a| a
            .message
            .as_ref()
            .is_some_and(|m| m.text.contains("parked"))),
        "not parked within 10 s: {:?}",
        app.message
    );
    press(&mut app, &["4"]);
    assert_eq!(app.outbox.len(), 1);
    let id = app.outbox[0].id;
    assert_eq!(app.outbox[0].status.name(), "parked");
    // The task's due date is today's (UTC) plus the SLA: masked for the snapshot.
    let due = match &app.outbox[0].payload {
        breakdesk::dispatch::Payload::Webhook(p) => {
            p.body["due_date"].as_str().unwrap().to_string()
        }
        other => panic!("a webhook payload, got {other:?}"),
    };
    let critical = chrono::Days::new(app.cfg.webhook.sla_days.critical.into());
    let today = chrono::Utc::now().date_naive();
    assert!(
        [today, today.pred_opt().unwrap()]
            .iter()
            .any(|d| (*d + critical).to_string() == due),
        "{due}"
    );
    let shown = screen(&app).replace(&format!("due          {due}"), "due          YYYY-MM-DD");
    // The whole error, wrapped, not cut at the list's column.
    assert!(
        shown.contains("documentation for the accepted values"),
        "{shown}"
    );
    let ticket = Cases::new(&app.store).get(&case).unwrap().unwrap().ticket;
    assert!(shown.contains(&ticket[13..]), "the case's ticket: {shown}");
    insta::assert_snapshot!("outbox_detail", shown);

    // X asks first; n keeps the item as it was.
    press(&mut app, &["X"]);
    let Mode::Confirm(c) = &app.mode else {
        panic!("a confirm dialog, got {:?}", app.mode)
    };
    assert_eq!(c.title, format!("Cancel outbox item #{id}?"));
    press(&mut app, &["n"]);
    let stored = |app: &App| Outbox::new(&app.store).get(id).unwrap().unwrap();
    assert_eq!(stored(&app).status.name(), "parked");
    assert_eq!(webhook_state(&app, &case), Some(DispatchState::Parked));
    // y cancels it in the store; its case may be sent again.
    press(&mut app, &["X", "y"]);
    assert!(matches!(app.mode, Mode::Normal));
    assert!(
        matches!(stored(&app).status, ItemStatus::Cancelled { .. }),
        "{:?}",
        stored(&app).status
    );
    assert_eq!(webhook_state(&app, &case), Some(DispatchState::Cancelled));
    assert_eq!(
        app.message.as_ref().unwrap().text,
        format!("#{id} cancelled; nothing of it will be sent")
    );
    assert!(screen(&app).contains("cancelled"));
    // A cancelled item cannot be cancelled into anything else, nor retried.
    press(&mut app, &["R"]);
    assert!(
        app.message.as_ref().unwrap().text.contains("cancelled"),
        "{:?}",
        app.message
    );
    press(&mut app, &["W"]);
    assert!(
        matches!(&app.mode, Mode::Confirm(c) if c.title.contains("1 accepted case")),
        "the cancelled case can be sent again: {:?}",
        app.mode
    );
    press(&mut app, &["esc"]);
    app.stop_sender();
    assert_eq!(server.requests().len(), 1, "one attempt, parked at once");
}

// ----- the LLM pass: per-answer progress ----------------------------------------------------

#[test]
fn llm_progress_counts_answers_in_the_status_bar_and_the_detail_pane() {
    use breakdesk::pipeline::Stage;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // Answers the first two questions at once and holds the third until released, so the
    // screen can be read in the middle of the pass.
    let release = Arc::new(AtomicBool::new(false));
    let gate = release.clone();
    let server = llm_server::LlmServer::start(move |_, n| {
        if n >= 2 {
            let end = std::time::Instant::now() + Duration::from_secs(60);
            while !gate.load(Ordering::SeqCst) && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        llm_server::Reply::ok(
            &serde_json::json!({
                "bucket": "Timing Issue",
                "severity": "Low",
                "confidence": 0.66,
                "summary": "The test model read this break.",
                "details": "from the test server",
            })
            .to_string(),
        )
    });
    let cfg = fixtures::config(&format!(
        "[llm]\nenabled = true\nbase_url = \"{}\"\nmodel = \"test-model\"\napi_key_env = \"\"\n\
         timeout_secs = 90\nmax_retries = 0\nconcurrency = 1\nrequests_per_minute = 0\n\
         tokens_per_minute = 0\n",
        server.base_url()
    ));
    let dir = tempfile::tempdir().unwrap();
    let mut app = new_app_with(dir.path(), Actor::analyst("ana"), cfg);
    app.update(Message::Resize(140, 40));
    app.start(Start::File(opts(CURRENT, Some(HISTORY))));
    app.view = View::Table;
    let at_two = |a: &App| {
        a.loading
            .as_ref()
            .and_then(|l| l.progress)
            .is_some_and(|p| p.stage == Stage::CategorizeLlm && p.done == 2)
    };
    let reached = {
        let end = std::time::Instant::now() + Duration::from_secs(120);
        while !at_two(&app) && std::time::Instant::now() < end && app.loading.is_some() {
            app.pump(Some(Duration::from_millis(50)));
        }
        at_two(&app)
    };
    assert!(
        reached,
        "no LLM progress at 2 answers: {:?}, {:?}",
        app.loading, app.error
    );
    let total = app.loading.as_ref().unwrap().progress.unwrap().total;
    assert!(total > 2, "{total} questions");
    // The scored rows are shown; their buckets and summaries are still being generated.
    press(&mut app, &["enter"]);
    let shown = screen(&app);
    assert!(
        shown.contains(&format!("categorizing (LLM) 2/{total}")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("generating… (2 of {total} LLM answers received)")),
        "{shown}"
    );
    insta::assert_snapshot!("llm_progress", shown);

    release.store(true, Ordering::SeqCst);
    assert!(app.wait_loaded(Duration::from_secs(120)), "the load ends");
    assert!(app.error.is_none(), "{:?}", app.error);
    assert_eq!(
        server.request_count() as u64,
        total,
        "one request per question"
    );
    // Now the row under the cursor shows the LLM's answer.
    let t = &app.data.as_ref().unwrap().table;
    let row = app.current_row().unwrap() as usize;
    assert_eq!(t.text(t.known.categorized_by, row), "llm");
    let shown = screen(&app);
    assert!(shown.contains("The test model read this break."), "{shown}");
    assert!(!shown.contains("generating…"), "{shown}");
}

#[test]
fn the_shipped_sample_pair_ranks_breaks_first() {
    // The README's first command: the current sample with its history. Its accounts include
    // standing items and lags (routine breaks) besides the injected ones: the top of the table is
    // breaks nothing explains, never a row within tolerance or a routine break.
    let dir = tempfile::tempdir().unwrap();
    let mut app = new_app(dir.path(), Actor::analyst("ana"));
    app.update(Message::Resize(140, 20));
    app.start(Start::File(opts(
        "assets/samples/gl_ihub_current.csv",
        Some("assets/samples/gl_ihub_history.csv"),
    )));
    assert!(
        app.wait_loaded(Duration::from_secs(120)),
        "the sample loads"
    );
    assert!(app.error.is_none(), "{:?}", app.error);
    app.view = View::Table;
    let data = app.data.as_ref().expect("loaded");
    let frame = data.frame.as_ref().expect("the analysis table");
    let col = |name: &str| {
        frame
            .column(name)
            .unwrap()
            .cast(&polars::prelude::DataType::String)
            .unwrap()
    };
    let (brk, routine, flag) = (
        col("bd_out_of_tolerance"),
        col("bd_routine"),
        col("is_anomaly"),
    );
    let (brk, routine, flag) = (
        brk.str().unwrap(),
        routine.str().unwrap(),
        flag.str().unwrap(),
    );
    assert!(
        app.table.view.len() >= 10,
        "{} rows shown",
        app.table.view.len()
    );
    for (pos, r) in app.table.view.iter().take(10).enumerate() {
        let r = *r as usize;
        assert_eq!(brk.get(r), Some("true"), "row {} is a break", pos + 1);
        assert_eq!(routine.get(r), Some(""), "row {} is not routine", pos + 1);
        assert_eq!(flag.get(r), Some("true"), "row {} is flagged", pos + 1);
    }
    insta::assert_snapshot!("sample_pair_table", screen(&app));
}

// ----- the case queue, ownership and notes, the run summary ----------------------------------

/// An analyst's app on the fixture, loaded, on its first view (the queue).
fn loaded_queue(data_dir: &Path) -> App {
    let mut app = new_app(data_dir, Actor::analyst("ana"));
    app.update(Message::Resize(140, 32));
    app.start(Start::File(opts(CURRENT, Some(HISTORY))));
    assert!(app.wait_loaded(Duration::from_secs(120)), "loads");
    assert!(app.error.is_none(), "{:?}", app.error);
    app
}

/// The screen with the due dates masked too (they are the day the cases were opened plus
/// `[cases.sla_days]`).
fn queue_screen(app: &App) -> String {
    let mut s = screen(app);
    for c in &app.data.as_ref().unwrap().queue {
        if let Some(d) = c.due {
            s = s.replace(&d.to_string(), "YYYY-MM-DD");
        }
    }
    s
}

/// The queue's cases in its order.
fn queue_cases(app: &App) -> Vec<breakdesk::tui::queue::QueueCase> {
    let d = app.data.as_ref().unwrap();
    app.queue
        .order
        .iter()
        .map(|i| d.queue[*i as usize].clone())
        .collect()
}

#[test]
fn the_queue_is_the_first_view_and_enter_shows_a_cases_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded_queue(dir.path());
    assert_eq!(app.view, View::Queue);
    let cases = queue_cases(&app);
    assert!(cases.len() > 5, "{} cases", cases.len());
    // One line per outstanding case of the profile, as the store has them.
    let store = app.store.clone();
    let stored: Vec<breakdesk::cases::Case> = Cases::new(&store)
        .list(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|c| c.outstanding() && c.profile == "gl_ihub")
        .collect();
    assert_eq!(cases.len(), stored.len());
    // Severity (Critical first), then age (oldest first).
    use breakdesk::tui::queue::severity_rank;
    for w in cases.windows(2) {
        let (a, b) = (severity_rank(&w[0].severity), severity_rank(&w[1].severity));
        assert!(
            a < b || (a == b && w[0].age_days() >= w[1].age_days()),
            "{} {} before {} {}",
            w[0].severity,
            w[0].age_days(),
            w[1].severity,
            w[1].age_days()
        );
    }
    insta::assert_snapshot!("queue", queue_screen(&app));

    // Enter: the record table, only this case's records; esc comes back. (A case of several
    // records.)
    let pos = {
        let d = app.data.as_ref().unwrap();
        cases
            .iter()
            .position(|c| d.case_rows.get(&c.id).is_some_and(|r| r.len() >= 3))
            .expect("a case of several records")
    };
    let first = cases[pos].clone();
    for _ in 0..pos {
        press(&mut app, &["j"]);
    }
    press(&mut app, &["enter"]);
    assert_eq!(app.view, View::Table);
    let rows = app.table.view.clone();
    assert!(!rows.is_empty());
    let t = &app.data.as_ref().unwrap().table;
    for r in &rows {
        assert_eq!(t.text(t.known.case_id, *r as usize), first.id);
    }
    insta::assert_snapshot!("queue_expanded", queue_screen(&app));
    press(&mut app, &["esc"]);
    assert_eq!(app.view, View::Queue);
    assert!(app.table.case.is_none());
    assert_eq!(app.queue.cursor, pos);
    // The records view is as it was: every flagged row.
    press(&mut app, &["1"]);
    let flagged = app.data.as_ref().unwrap().info.flagged;
    assert_eq!(app.table.view.len(), flagged);
    press(&mut app, &["5"]);
    assert_eq!(app.view, View::Queue);
}

#[test]
fn take_note_and_release_through_keys_reach_the_store_and_the_case_pane() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut app = loaded_queue(&data_dir);
    let case = queue_cases(&app)[0].clone();
    assert_eq!(case.owner, None);
    press(&mut app, &["m"]);
    assert_eq!(
        app.message.as_ref().unwrap().text,
        format!("took {}: ana owns it", case.ticket)
    );
    press(&mut app, &["i"]);
    type_text(&mut app, "called the desk, fix booked for Friday");
    press(&mut app, &["enter"]);
    assert_eq!(
        app.message.as_ref().unwrap().text,
        format!("note added to {}", case.ticket)
    );
    press(&mut app, &["i"]);
    type_text(&mut app, "reversal seen in the sub-ledger");
    press(&mut app, &["enter"]);
    // An empty note is refused before anything is written.
    press(&mut app, &["i", "enter"]);
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("must not be empty"),
        "{:?}",
        app.message
    );
    // A month later every open case is overdue: marked in colour and with a `!`.
    app.today = chrono::Utc::now().date_naive() + chrono::Duration::days(30);
    app.update(Message::Resize(140, 40));
    let shown = queue_screen(&app);
    assert!(shown.contains("YYYY-MM-DD !"), "{shown}");
    assert!(shown.contains("overdue by"), "{shown}");
    insta::assert_snapshot!("queue_case_pane", shown);

    // Another analyst may not take it over; its owner releases it.
    app.actor = Actor::analyst("bob");
    press(&mut app, &["m"]);
    let m = app.message.clone().unwrap();
    assert_eq!(m.level, breakdesk::tui::app::Level::Error);
    assert!(m.text.contains("ana"), "{m:?}");
    app.actor = Actor::analyst("ana");
    press(&mut app, &["M"]);
    assert_eq!(
        app.message.as_ref().unwrap().text,
        format!("released {}: nobody owns it", case.ticket)
    );
    assert_eq!(queue_cases(&app)[0].owner, None);

    // On a table row: the row's case.
    press(&mut app, &["1", "g"]);
    let row_case = cursor_case(&app);
    press(&mut app, &["m"]);
    let store = app.store.clone();
    assert_eq!(
        Cases::new(&store).get(&row_case).unwrap().unwrap().owner,
        Some("ana".to_string())
    );
    drop(store);
    drop(app);

    // Everything is on disk.
    let store = Store::open(&data_dir).expect("the store reopens");
    let cases = Cases::new(&store);
    let stored = cases.get(&case.id).unwrap().unwrap();
    assert_eq!(stored.owner, None);
    assert_eq!(stored.status, Status::PendingReview, "notes decide nothing");
    let notes: Vec<(String, Option<String>)> = cases
        .notes(&case.id)
        .unwrap()
        .into_iter()
        .map(|e| (e.user, e.reason))
        .collect();
    assert_eq!(
        notes,
        [
            (
                "ana".to_string(),
                Some("called the desk, fix booked for Friday".to_string())
            ),
            (
                "ana".to_string(),
                Some("reversal seen in the sub-ledger".to_string())
            )
        ]
    );
    let actions: Vec<EventAction> = cases
        .events_for(&case.id)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .filter(|a| {
            matches!(
                a,
                EventAction::Assign | EventAction::Note | EventAction::Release
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            EventAction::Assign,
            EventAction::Note,
            EventAction::Note,
            EventAction::Release
        ]
    );
}

#[test]
fn my_queue_shows_only_the_cases_i_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded_queue(dir.path());
    let all = app.queue.order.len();
    assert!(all > 1, "the sample opens several cases");
    let first = queue_cases(&app)[0].clone();
    press(&mut app, &["m", "o"]);
    assert_eq!(app.queue.order.len(), 1);
    assert_eq!(
        app.message.as_ref().unwrap().text,
        "my queue: 1 case(s) owned by ana"
    );
    assert_eq!(app.queue_current().unwrap().id, first.id);
    assert!(queue_screen(&app).contains("· mine"));
    // Releasing it empties my queue; o again shows every outstanding case.
    press(&mut app, &["M"]);
    assert_eq!(app.queue.order.len(), 0);
    press(&mut app, &["o"]);
    assert_eq!(app.queue.order.len(), all);
    assert_eq!(
        app.message.as_ref().unwrap().text,
        format!("every outstanding case: {all}")
    );
}

#[test]
fn queue_decisions_act_on_the_marked_cases_behind_a_confirm() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded_queue(dir.path());
    let cases = queue_cases(&app);
    // Two marked cases, accepted behind the confirm dialog.
    press(&mut app, &["space", "space"]);
    assert_eq!(app.queue.marks.len(), 2);
    press(&mut app, &["a"]);
    let Mode::Confirm(c) = &app.mode else {
        panic!("a confirm dialog, got {:?}", app.mode)
    };
    assert!(c.lines[0].starts_with("Accept 2 case(s)"), "{:?}", c.lines);
    press(&mut app, &["y"]);
    let store = app.store.clone();
    let status = |id: &str| Cases::new(&store).get(id).unwrap().unwrap().status;
    assert_eq!(status(&cases[0].id), Status::Accepted);
    assert_eq!(status(&cases[1].id), Status::Accepted);
    assert!(app.queue.marks.is_empty());
    // The queue and the table show it.
    assert_eq!(queue_cases(&app)[0].status, Status::Accepted);
    let t = &app.data.as_ref().unwrap().table;
    for r in &app.data.as_ref().unwrap().case_rows[&cases[0].id] {
        assert_eq!(t.text(t.known.status, *r as usize), "accepted");
    }
    // Undo, then reject the third with a reason.
    press(&mut app, &["u"]);
    assert_eq!(status(&cases[0].id), Status::PendingReview);
    press(&mut app, &["g", "j", "j", "r"]);
    type_text(&mut app, "timing, clears tomorrow");
    press(&mut app, &["enter"]);
    assert_eq!(status(&cases[2].id), Status::Rejected);
}

#[test]
fn the_summary_view_shows_the_cycle_by_bucket_and_age_and_the_trend() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded_queue(dir.path());
    // A second cycle (the same file again: nothing changes, but it is a cycle).
    app.start(Start::File(opts(CURRENT, Some(HISTORY))));
    assert!(app.wait_loaded(Duration::from_secs(120)));
    let d = app.data.as_ref().unwrap();
    let s = d.summary.clone().expect("the run summary");
    assert_eq!(s.outstanding, d.queue.len());
    assert_eq!(d.trend.len(), 2, "{:?}", d.trend);
    press(&mut app, &["6"]);
    assert_eq!(app.view, View::Summary);
    let shown = screen(&app);
    assert!(shown.contains(&s.lines()[0]), "{shown}");
    assert!(shown.contains("outstanding by bucket"), "{shown}");
    insta::assert_snapshot!("summary", shown);
    // Small terminals: every new view draws without panicking.
    for (w, h) in [(20, 4), (40, 8), (60, 12), (90, 20)] {
        app.update(Message::Resize(w, h));
        for view in ["5", "6", "enter", "esc"] {
            press(&mut app, &[view]);
            screen(&app);
        }
    }
}

#[test]
fn the_column_profile_lists_values_or_quartiles_and_enter_filters() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded(dir.path());
    let shown = app.table.view.len();
    let (bucket, diff) = {
        let k = &app.data.as_ref().unwrap().table.known;
        (k.bucket.unwrap(), k.difference.unwrap())
    };
    for _ in 0..bucket {
        press(&mut app, &["l"]);
    }
    press(&mut app, &["p"]);
    let Mode::Profile(p) = &app.mode else {
        panic!("the profile, got {:?}", app.mode)
    };
    assert_eq!(p.profile.rows, shown);
    assert_eq!(
        p.profile.entries.iter().map(|e| e.count).sum::<usize>() + p.profile.others,
        shown
    );
    let top = p.profile.entries[0].clone();
    // The elapsed time is the clock's: masked.
    let mask_ms = |s: String| {
        let i = s.find(" ms ").expect("the time");
        let j = s[..i].rfind('·').unwrap();
        format!("{}· N{}", &s[..j], &s[i..])
    };
    insta::assert_snapshot!("profile_text", mask_ms(screen(&app)));
    press(&mut app, &["enter"]);
    assert!(matches!(app.mode, Mode::Normal));
    assert_eq!(app.table.view.len(), top.count);
    let t = &app.data.as_ref().unwrap().table;
    assert!(
        app.table
            .view
            .iter()
            .all(|r| t.text(Some(bucket), *r as usize) == top.label)
    );
    press(&mut app, &["0"]);

    // A number: quartiles and a histogram; enter keeps the bin's rows.
    for _ in diff..bucket {
        press(&mut app, &["h"]);
    }
    assert_eq!(app.table.col, diff);
    press(&mut app, &["p"]);
    let Mode::Profile(p) = &app.mode else {
        panic!("the profile, got {:?}", app.mode)
    };
    let stats = p.profile.stats.clone().expect("numbers");
    assert!(stats.min <= stats.q1 && stats.q1 <= stats.median && stats.median <= stats.q3);
    let bin = p.profile.entries[0].clone();
    insta::assert_snapshot!("profile_numbers", mask_ms(screen(&app)));
    press(&mut app, &["enter"]);
    assert_eq!(app.table.view.len(), bin.count, "{:?}", app.message);
    press(&mut app, &["p", "esc"]);
    assert!(matches!(app.mode, Mode::Normal));
}

/// Runs a palette entry: `:`, the query, enter (the first entry matching).
fn palette(app: &mut App, query: &str) {
    press(app, &[":"]);
    type_text(app, query);
    press(app, &["enter"]);
}

fn message(app: &App) -> String {
    app.message
        .as_ref()
        .map(|m| m.text.clone())
        .unwrap_or_default()
}

#[test]
fn a_saved_view_is_recalled_after_clearing_and_after_a_restart_then_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let diff = {
        let mut app = loaded(dir.path());
        let diff = app.data.as_ref().unwrap().table.known.difference.unwrap();
        // Filter, a quick filter, sort by the difference largest first.
        press(&mut app, &["F"]);
        type_text(&mut app, "abs(difference) > 1000");
        press(&mut app, &["enter"]);
        press(&mut app, &["!"]);
        let severity = app.table.quick.severity.clone().expect("a severity");
        for _ in 0..diff {
            press(&mut app, &["l"]);
        }
        press(&mut app, &["O"]);
        let rows = app.table.view.clone();
        assert!(!rows.is_empty());
        palette(&mut app, "save-view");
        assert!(matches!(app.mode, Mode::Prompt(_)));
        type_text(&mut app, "big breaks");
        press(&mut app, &["enter"]);
        assert_eq!(
            message(&app),
            format!(
                "view \"big breaks\" saved: abs(difference) > 1000 · severity {severity} · sort difference ↓"
            )
        );
        assert_eq!(app.views.len(), 1);

        // Clear the filters, sort by another column, move the cursor: the view brings it back.
        press(&mut app, &["0", "h", "o", "h"]);
        assert!(app.table.filter.is_none());
        assert_ne!(app.table.view, rows);
        palette(&mut app, "view: big");
        assert_eq!(app.table.view, rows);
        assert_eq!(
            app.table.filter.as_ref().map(|f| f.text().to_string()),
            Some("abs(difference) > 1000".to_string())
        );
        assert_eq!(app.table.quick.severity.as_deref(), Some(severity.as_str()));
        assert_eq!(app.table.sort, Some((diff, true)));
        assert_eq!(app.table.col, diff);
        assert!(
            message(&app).starts_with(&format!("view \"big breaks\": {} rows · ", rows.len())),
            "{}",
            message(&app)
        );
        insta::assert_snapshot!("view_recalled", screen(&app));

        // Saving under the same name asks first; n keeps the saved one.
        press(&mut app, &["0"]);
        palette(&mut app, "save-view");
        type_text(&mut app, "big breaks");
        press(&mut app, &["enter"]);
        let Mode::Confirm(c) = &app.mode else {
            panic!("a confirm, not {:?}", app.mode)
        };
        assert!(c.title.contains("big breaks"), "{}", c.title);
        press(&mut app, &["n"]);
        assert_eq!(message(&app), "cancelled; nothing was recorded");
        diff
    };

    // After a restart (the store reopened), the view is listed and applies the same way.
    let mut app = loaded(dir.path());
    assert_eq!(app.views.len(), 1);
    assert!(app.table.filter.is_none());
    app.view = View::Queue;
    palette(&mut app, "view: big breaks");
    assert_eq!(app.view, View::Table, "recalling a view shows the table");
    assert_eq!(app.table.sort, Some((diff, true)));
    assert!(app.table.filter.is_some());
    let recalled = app.table.view.clone();

    // Replacing it after the confirm, then deleting it.
    press(&mut app, &["0"]);
    palette(&mut app, "save-view");
    type_text(&mut app, "big breaks");
    press(&mut app, &["enter", "y"]);
    assert!(
        message(&app).starts_with("view \"big breaks\" replaced: sort difference ↓"),
        "{}",
        message(&app)
    );
    press(&mut app, &["F"]);
    type_text(&mut app, "abs(difference) > 1000");
    press(&mut app, &["enter"]);
    palette(&mut app, "view: big");
    assert!(
        app.table.filter.is_none(),
        "the replaced view has no filter"
    );
    assert_ne!(app.table.view, recalled);
    palette(&mut app, "delete-view");
    type_text(&mut app, "big breaks");
    press(&mut app, &["enter"]);
    assert_eq!(message(&app), "view \"big breaks\" deleted");
    assert!(app.views.is_empty());
    palette(&mut app, "views");
    assert!(
        message(&app).starts_with("no saved views yet"),
        "{}",
        message(&app)
    );
}

#[test]
fn config_views_are_listed_applied_and_what_the_file_lacks_is_skipped() {
    use breakdesk::config::SavedView;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::defaults();
    cfg.tui.views.insert(
        "large".into(),
        SavedView {
            filter: "abs(difference) > 1000".into(),
            sort: "difference".into(),
            descending: true,
            all_rows: true,
            ..Default::default()
        },
    );
    cfg.tui.views.insert(
        "other file".into(),
        SavedView {
            filter: "amount > 3".into(),
            sort: "amount".into(),
            status: "pending".into(),
            ..Default::default()
        },
    );
    let mut app = loaded_with(dir.path(), cfg);
    let diff = app.data.as_ref().unwrap().table.known.difference.unwrap();
    assert_eq!(app.views.len(), 2);
    // `views` opens the palette on the views.
    palette(&mut app, "views");
    assert!(matches!(&app.mode, Mode::Palette { query, .. } if query == "view: "));
    insta::assert_snapshot!("palette_views", screen(&app));
    press(&mut app, &["enter"]);
    assert_eq!(app.table.sort, Some((diff, true)));
    assert!(app.table.all_rows);
    let t = &app.data.as_ref().unwrap().table;
    assert!(
        app.table
            .view
            .iter()
            .all(|r| t.num(Some(diff), *r as usize).unwrap().abs() > 1000.0)
    );
    assert!(
        message(&app).starts_with("view \"large\": "),
        "{}",
        message(&app)
    );

    // A view naming columns this file does not have applies the rest and says what it skipped.
    palette(&mut app, "view: other");
    let m = message(&app);
    assert!(
        m.contains("skipped") && m.contains("amount") && m.contains("the sort by amount"),
        "{m}"
    );
    assert_eq!(app.table.quick.status.as_deref(), Some("pending"));
    assert!(app.table.filter.is_none());
    assert_eq!(app.table.sort, None);

    // Config views are read-only here.
    palette(&mut app, "save-view");
    type_text(&mut app, "large");
    press(&mut app, &["enter"]);
    assert!(
        message(&app).contains("a view of the config"),
        "{}",
        message(&app)
    );
    palette(&mut app, "delete-view");
    type_text(&mut app, "large");
    press(&mut app, &["enter"]);
    assert!(
        message(&app).contains("a view of the config"),
        "{}",
        message(&app)
    );
    assert_eq!(app.views.len(), 2);
}
