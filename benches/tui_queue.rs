//! Benchmark: the case queue with 100,000 open cases. Prints one JSON line per measure.
//!
//!   cargo bench --bench tui_queue
//!   (BREAKDESK_BENCH_CASES=… for another count; default 100,000)
//!
//! - `build_store`: N cases written to a fresh store through `Cases::upsert_batch` (chunks of
//!   5,000), one break each: 7 companies, N accounts, start dates over 40 days, random severity,
//!   bucket and difference (seed 11). Not a floor: it is the fixture.
//! - `load_cases`: reading the profile's outstanding cases from the store into the queue's lines
//!   (what the background load does when an analysis ends; off the UI thread).
//! - `first_frame`: from the lines to the first drawn queue frame — the queue's order (severity,
//!   then age) and one full frame (200×50, TestBackend), the case pane included.
//! - `frame`: one full frame with the cursor moved through the queue between frames (60 frames).
//! - `key_frame`: a `j` key through `App::update` (which reads the notes of the case under the
//!   cursor from the store) and the frame after it.
//!
//! The loaded table holds 3 records per case (case id, date, difference), so every line's trend
//! is a sparkline of its records.

use breakdesk::cases::{Actor, BreakInput, Cases};
use breakdesk::config::Config;
use breakdesk::pipeline::RunOptions;
use breakdesk::store::Store;
use breakdesk::tui::app::{App, AppOptions};
use breakdesk::tui::column_store::{Column, ColumnStore, Kind, TextCol};
use breakdesk::tui::keymap::Keymap;
use breakdesk::tui::message::{Cmd, Message, View};
use breakdesk::tui::queue;
use breakdesk::tui::results::{Loaded, RunInfo};
use breakdesk::tui::theme::Theme;
use breakdesk::tui::ui;
use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

const PROFILE: &str = "gl_ihub";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn max(v: &[f64]) -> f64 {
    v.iter().cloned().fold(0.0, f64::max)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// N breaks, one per account.
fn inputs(n: usize) -> Vec<BreakInput> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let severities = ["Low", "Medium", "High", "Critical"];
    let buckets = [
        "Timing Issue",
        "Rounding Error",
        "FX Revaluation",
        "Missing Entry",
        "Duplicate Entry",
        "Sign Flip",
        "Fat Finger",
        "Stale Balance",
        "Systematic Drift",
        "New Issue",
    ];
    let day0 = NaiveDate::from_ymd_opt(2024, 2, 1).expect("a date");
    (0..n)
        .map(|i| {
            let start = day0 + chrono::Duration::days(rng.gen_range(0..40));
            let date = start + chrono::Duration::days(rng.gen_range(0..10));
            let key = format!("{:05}|{}|{:04}|USD", (i % 7) * 100, 100_000 + i, i % 9973);
            let mut row = serde_json::Map::new();
            row.insert("key".into(), serde_json::Value::String(key.clone()));
            BreakInput {
                profile: PROFILE.into(),
                key,
                start_date: start,
                date,
                bucket: buckets[rng.gen_range(0..buckets.len())].into(),
                bucket_rule: "bench".into(),
                confidence: 0.9,
                severity: severities[rng.gen_range(0..severities.len())].into(),
                summary: format!(
                    "Balance difference on account {i}; next step: check the postings"
                ),
                score: -0.6,
                rank: i as u64 + 1,
                difference: rng.gen_range(-50_000.0..50_000.0),
                model_version: "bench".into(),
                row,
            }
        })
        .collect()
}

/// A table of 3 records per case (case id, date, difference) and its case index.
fn records(cases: &[queue::QueueCase]) -> (ColumnStore, HashMap<String, Vec<u32>>) {
    let rows = cases.len() * 3;
    let mut ids: Vec<&str> = Vec::with_capacity(rows);
    let mut dates: Vec<String> = Vec::with_capacity(rows);
    let mut diffs: Vec<f64> = Vec::with_capacity(rows);
    let mut case_rows: HashMap<String, Vec<u32>> = HashMap::with_capacity(cases.len());
    for (i, c) in cases.iter().enumerate() {
        for j in 0..3u32 {
            ids.push(&c.id);
            dates.push((c.last_date - chrono::Duration::days(2 - j as i64)).to_string());
            diffs.push(c.first_difference + (c.difference - c.first_difference) * j as f64 / 2.0);
        }
        case_rows.insert(c.id.clone(), (0..3).map(|j| (i * 3) as u32 + j).collect());
    }
    let mut s = ColumnStore {
        rows,
        frozen: 1,
        flagged: vec![true; rows],
        ..Default::default()
    };
    s.cols.push(Column::text(
        "case_id",
        "case_id",
        TextCol::from_values(ids.into_iter().map(Some)),
    ));
    s.cols.push(Column::text(
        "date",
        "date",
        TextCol::from_values(dates.iter().map(|d| Some(d.as_str()))),
    ));
    s.cols
        .push(Column::num("difference", "difference", Kind::Amount, diffs));
    (s.known.case_id, s.known.date, s.known.difference) = (Some(0), Some(1), Some(2));
    (s, case_rows)
}

fn main() {
    let n: usize = std::env::var("BREAKDESK_BENCH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));

    let all = inputs(n);
    let t = Instant::now();
    {
        let cases = Cases::new(&store);
        for chunk in all.chunks(5_000) {
            cases
                .upsert_batch(chunk, &vec![false; chunk.len()])
                .expect("cases written");
        }
    }
    println!(
        "{{\"bench\":\"build_store\",\"cases\":{n},\"s\":{:.2}}}",
        t.elapsed().as_secs_f64()
    );

    let mut loads = Vec::new();
    let mut lines = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        lines = queue::load(&store, PROFILE).expect("cases read");
        loads.push(ms(t));
    }
    assert_eq!(lines.len(), n, "every case is outstanding");
    println!(
        "{{\"bench\":\"load_cases\",\"cases\":{n},\"median_ms\":{:.1}}}",
        median(loads)
    );

    let (table, case_rows) = records(&lines);
    let mut app = App::new(AppOptions {
        cfg: Arc::new(Config::defaults()),
        store: store.clone(),
        actor: Actor::analyst("bench"),
        keymap: Keymap::defaults(),
        theme: Theme::dark(),
        base: RunOptions::default(),
    });
    app.update(Message::Resize(200, 50));
    app.data = Some(Box::new(Loaded {
        source: "synthetic".into(),
        history: None,
        by_key: Vec::new(),
        history_points: Vec::new(),
        case_rows,
        clusters: Vec::new(),
        complete: true,
        frame: None,
        info: RunInfo {
            profile: PROFILE.into(),
            ..Default::default()
        },
        file_columns_from: 3,
        table,
        queue: lines,
        queue_error: None,
        summary: None,
        trend: Vec::new(),
    }));
    app.view = View::Queue;
    // Some cases are overdue.
    app.today = chrono::Utc::now().date_naive() + chrono::Duration::days(5);

    let mut term = Terminal::new(TestBackend::new(200, 50)).expect("terminal");
    let mut firsts = Vec::new();
    for _ in 0..5 {
        app.queue = Default::default();
        let t = Instant::now();
        app.refresh_queue();
        term.draw(|f| ui::draw(f, &app)).expect("draw");
        firsts.push(ms(t));
    }
    assert_eq!(app.queue.order.len(), n);
    println!(
        "{{\"bench\":\"first_frame\",\"cases\":{n},\"median_ms\":{:.2},\"max_ms\":{:.2}}}",
        median(firsts.clone()),
        max(&firsts)
    );

    let mut frames = Vec::new();
    for i in 0..60 {
        app.queue.cursor = (i * 7919) % n;
        app.queue.offset = app.queue.cursor.saturating_sub(10);
        let t = Instant::now();
        term.draw(|f| ui::draw(f, &app)).expect("draw");
        frames.push(ms(t));
    }
    println!(
        "{{\"bench\":\"frame\",\"cases\":{n},\"median_ms\":{:.2},\"max_ms\":{:.2}}}",
        median(frames.clone()),
        max(&frames)
    );

    let mut keys = Vec::new();
    for _ in 0..60 {
        let t = Instant::now();
        app.update(Message::Cmd(Cmd::Down));
        term.draw(|f| ui::draw(f, &app)).expect("draw");
        keys.push(ms(t));
    }
    assert!(app.notes.is_some(), "the notes of the case were read");
    println!(
        "{{\"bench\":\"key_frame\",\"cases\":{n},\"median_ms\":{:.2},\"max_ms\":{:.2}}}",
        median(keys.clone()),
        max(&keys)
    );
}
