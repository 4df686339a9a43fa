//! Benchmark: the terminal UI at scale. Prints one JSON line per measure.
//!
//!   cargo bench --bench tui
//!   (BREAKDESK_BENCH_ROWS=… for another table size; default 1,000,000)
//!
//! - `first_frame`: from nothing to the first drawn loading frame — open a store, build the app,
//!   start the background analysis of the shipped GL/IHub sample, draw (200×50, TestBackend).
//! - `frame`: one full frame of the anomaly table with every row shown (and with the detail pane
//!   open), the column store holding N synthetic rows: 12 columns as the analysis gives them
//!   (rank, key, date, difference, both sides, status, severity, bucket, confidence, score,
//!   cluster, summary), 100,000 accounts.
//! - `sort`: the visible-row permutation of N rows sorted by an amount column and by a text
//!   column; `filter`: `difference > 1000 and status = pending` over N rows; `view`: the whole
//!   refresh (base set, a quick filter, the expression, the sort); `profile_*`: the column
//!   profile of all N rows (top values with counts; or quartiles and a histogram).

use breakdesk::config::Config;
use breakdesk::pipeline::RunOptions;
use breakdesk::store::Store;
use breakdesk::tui::app::{App, AppOptions, Start};
use breakdesk::tui::column_store::{Column, ColumnStore, Kind, TextCol};
use breakdesk::tui::keymap::Keymap;
use breakdesk::tui::results::{Loaded, RunInfo};
use breakdesk::tui::theme::Theme;
use breakdesk::tui::ui;
use rand::{Rng, SeedableRng};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn app(dir: &std::path::Path) -> App {
    let store = Store::open(dir).expect("store");
    App::new(AppOptions {
        cfg: Arc::new(Config::defaults()),
        store: Arc::new(store),
        actor: breakdesk::cases::Actor::analyst("bench"),
        keymap: Keymap::defaults(),
        theme: Theme::dark(),
        base: RunOptions::default(),
    })
}

fn synthetic(rows: usize) -> ColumnStore {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let keys: Vec<String> = (0..100_000)
        .map(|i| format!("{:05}|{}|{:04}|USD", i % 7, 100_000 + i, i % 9973))
        .collect();
    let dates: Vec<String> = (0..64)
        .map(|d| format!("2024-{:02}-{:02}", 1 + d / 28, 1 + d % 28))
        .collect();
    let statuses = [
        "pending", "accepted", "rejected", "proposed", "approved", "returned",
    ];
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
    let summaries: Vec<String> = (0..1000)
        .map(|i| {
            format!("Balance difference of {i}.00 on the account; next step: check the postings")
        })
        .collect();
    let mut rank: Vec<f64> = (1..=rows).map(|r| r as f64).collect();
    for i in (1..rows).rev() {
        let j = rng.gen_range(0..=i);
        rank.swap(i, j);
    }
    let lhs: Vec<f64> = (0..rows).map(|_| rng.gen_range(-5e6..5e6)).collect();
    let diff: Vec<f64> = (0..rows)
        .map(|_| rng.gen_range(-50_000.0..50_000.0))
        .collect();
    let rhs: Vec<f64> = lhs.iter().zip(&diff).map(|(l, d)| l - d).collect();
    let pick = |n: usize, rng: &mut rand_chacha::ChaCha8Rng| rng.gen_range(0..n);
    let key_i: Vec<usize> = (0..rows).map(|_| pick(keys.len(), &mut rng)).collect();
    let date_i: Vec<usize> = (0..rows).map(|_| pick(dates.len(), &mut rng)).collect();
    let st: Vec<usize> = (0..rows).map(|_| pick(statuses.len(), &mut rng)).collect();
    let sv: Vec<usize> = (0..rows)
        .map(|_| pick(severities.len(), &mut rng))
        .collect();
    let bk: Vec<usize> = (0..rows).map(|_| pick(buckets.len(), &mut rng)).collect();
    let sm: Vec<usize> = (0..rows).map(|_| pick(summaries.len(), &mut rng)).collect();
    let mut s = ColumnStore {
        rows,
        frozen: 3,
        flagged: vec![true; rows],
        ..Default::default()
    };
    let text = |v: Vec<&str>| TextCol::from_values(v.into_iter().map(Some));
    s.cols
        .push(Column::num("rank", "rank", Kind::Integer, rank));
    s.cols.push(Column::text(
        "key",
        "key",
        text(key_i.iter().map(|i| keys[*i].as_str()).collect()),
    ));
    s.cols.push(Column::text(
        "date",
        "date",
        text(date_i.iter().map(|i| dates[*i].as_str()).collect()),
    ));
    s.cols.push(Column::num(
        "Balance Difference",
        "difference",
        Kind::Amount,
        diff,
    ));
    s.cols
        .push(Column::num("GL Balance", "lhs", Kind::Amount, lhs));
    s.cols
        .push(Column::num("IHub Balance", "rhs", Kind::Amount, rhs));
    s.cols.push(Column::text(
        "status",
        "status",
        text(st.iter().map(|i| statuses[*i]).collect()),
    ));
    s.cols.push(Column::text(
        "severity",
        "severity",
        text(sv.iter().map(|i| severities[*i]).collect()),
    ));
    s.cols.push(Column::text(
        "bucket",
        "bucket",
        text(bk.iter().map(|i| buckets[*i]).collect()),
    ));
    s.cols.push(Column::num(
        "conf",
        "confidence",
        Kind::Number { decimals: 2 },
        (0..rows).map(|_| rng.gen_range(0.5..1.0)).collect(),
    ));
    s.cols.push(Column::num(
        "score",
        "score",
        Kind::Number { decimals: 4 },
        (0..rows).map(|_| rng.gen_range(-0.8..-0.3)).collect(),
    ));
    s.cols.push(Column::num(
        "cluster",
        "cluster",
        Kind::Integer,
        (0..rows).map(|_| rng.gen_range(0..8) as f64).collect(),
    ));
    s.cols.push(Column::text(
        "summary",
        "summary",
        text(sm.iter().map(|i| summaries[*i].as_str()).collect()),
    ));
    let k = &mut s.known;
    (k.rank, k.key, k.date, k.difference, k.lhs, k.rhs) =
        (Some(0), Some(1), Some(2), Some(3), Some(4), Some(5));
    (
        k.status,
        k.severity,
        k.bucket,
        k.confidence,
        k.score,
        k.cluster,
        k.summary,
    ) = (
        Some(6),
        Some(7),
        Some(8),
        Some(9),
        Some(10),
        Some(11),
        Some(12),
    );
    s
}

fn main() {
    let rows: usize = std::env::var("BREAKDESK_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);

    // Time to the first drawn loading frame.
    let mut firsts = Vec::new();
    for _ in 0..5 {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Instant::now();
        let mut a = app(dir.path());
        a.update(breakdesk::tui::message::Message::Resize(200, 50));
        a.start(Start::File(RunOptions {
            input: "assets/samples/gl_ihub_current.csv".into(),
            history: Some("assets/samples/gl_ihub_history.csv".into()),
            ..Default::default()
        }));
        let mut term = Terminal::new(TestBackend::new(200, 50)).expect("terminal");
        term.draw(|f| ui::draw(f, &a)).expect("draw");
        firsts.push(t.elapsed().as_secs_f64() * 1e3);
        a.worker.cancel();
        a.worker.join();
    }
    println!(
        "{{\"bench\":\"first_frame\",\"median_ms\":{:.2},\"max_ms\":{:.2}}}",
        median(firsts.clone()),
        firsts.iter().cloned().fold(0.0, f64::max)
    );

    let t = Instant::now();
    let store = synthetic(rows);
    let build = t.elapsed().as_secs_f64();
    let all: Vec<u32> = (0..rows as u32).collect();

    // Sort.
    for (label, col) in [
        ("sort_amount", 3usize),
        ("sort_text_key", 1),
        ("sort_text_status", 6),
    ] {
        let mut times = Vec::new();
        for desc in [false, true, false] {
            let mut v = all.clone();
            let t = Instant::now();
            store.sort(&mut v, col, desc);
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "{{\"bench\":\"{label}\",\"rows\":{rows},\"median_ms\":{:.1}}}",
            median(times)
        );
    }
    // Filter.
    let f = store
        .compile("difference > 1000 and status = pending")
        .expect("compiles");
    let mut times = Vec::new();
    let mut kept = 0;
    for _ in 0..3 {
        let t = Instant::now();
        kept = store.filter(&all, &f).len();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "{{\"bench\":\"filter\",\"rows\":{rows},\"kept\":{kept},\"median_ms\":{:.1}}}",
        median(times)
    );

    // The column profile (`p`) of every row: a text column of 10 values, one of 100,000
    // values, an amount.
    for (label, col) in [
        ("profile_text_bucket", 8usize),
        ("profile_text_key", 1),
        ("profile_amount", 3),
    ] {
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let p = breakdesk::tui::profile::profile(&store, col, &all).expect("a column");
            assert_eq!(p.rows, rows);
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "{{\"bench\":\"{label}\",\"rows\":{rows},\"median_ms\":{:.1}}}",
            median(times)
        );
    }

    // The app with the store loaded: a full refresh, then frames.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = app(dir.path());
    a.update(breakdesk::tui::message::Message::Resize(200, 50));
    a.data = Some(Box::new(Loaded {
        source: "synthetic".into(),
        history: None,
        by_key: Vec::new(),
        history_points: Vec::new(),
        case_rows: Default::default(),
        clusters: Vec::new(),
        complete: true,
        frame: None,
        info: RunInfo {
            profile: "gl_ihub".into(),
            rows,
            flagged: rows,
            ..Default::default()
        },
        file_columns_from: 13,
        table: store,
        queue: Vec::new(),
        queue_error: None,
        summary: None,
        trend: Vec::new(),
    }));
    a.table.marks = vec![false; rows];
    a.table.all_rows = true;
    a.table.sort = Some((3, true));
    let f = a
        .data
        .as_ref()
        .expect("data")
        .table
        .compile("difference > 1000 and status = pending")
        .expect("compiles");
    a.table.filter = Some(f);
    a.table.quick.severity = Some("High".into());
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        a.refresh_view(None);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "{{\"bench\":\"view_refresh\",\"rows\":{rows},\"shown\":{},\"median_ms\":{:.1}}}",
        a.table.view.len(),
        median(times)
    );
    a.table.quick.severity = None;
    a.table.filter = None;
    a.table.sort = None;
    a.refresh_view(None);
    let mut term = Terminal::new(TestBackend::new(200, 50)).expect("terminal");
    for (label, detail) in [("frame", false), ("frame_detail", true)] {
        a.table.detail = detail;
        let mut times = Vec::new();
        for i in 0..60 {
            // Move through the table so every frame shows other rows.
            a.table.cursor = (i * 7919) % rows;
            a.table.offset = a.table.cursor.saturating_sub(10);
            a.dirty = true;
            let t = Instant::now();
            term.draw(|f| ui::draw(f, &a)).expect("draw");
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "{{\"bench\":\"{label}\",\"rows\":{rows},\"median_ms\":{:.2},\"max_ms\":{:.2}}}",
            median(times.clone()),
            times.iter().cloned().fold(0.0, f64::max)
        );
    }
    println!("{{\"bench\":\"build_synthetic_store\",\"rows\":{rows},\"s\":{build:.2}}}");
    let _ = Duration::ZERO;
}
