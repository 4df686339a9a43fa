//! Categorizing 1,000 anomalies through a loopback LLM that answers each after 50 ms, 16 calls
//! in flight, no rate limit: the first run asks (floor: under 5 s), the second is answered from
//! the SHA-256 cache in the store (floor: under 0.2 s, zero calls).
//!
//! Inputs: 30,000 generated gl_ihub rows (seed 42); the 1,000 best-ranked rows are categorized
//! by the rules, then by the LLM. Run with `cargo bench --bench categorize_llm`.

#[path = "../tests/it/support/llm_server.rs"]
mod llm_server;

use breakdesk::config::Config;
use breakdesk::pipeline::{self, DetectOptions, RunOptions};
use llm_server::{LlmServer, Reply, user_message};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ROWS: usize = 1000;

fn main() {
    let server = LlmServer::start(|body, _| {
        let user = user_message(body);
        let r: Value = match (user.find('{'), user.rfind('}')) {
            (Some(a), Some(b)) => serde_json::from_str(&user[a..=b]).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let answer = json!({
            "bucket": r["rules_bucket"],
            "severity": "Medium",
            "confidence": 0.8,
            "summary": format!("Difference {} on {}.", r["difference"], r["key"].as_str().unwrap_or("")),
            "details": "evidence",
        });
        Reply::ok(&answer.to_string()).delay(Duration::from_millis(50))
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("gl.csv");
    let mut f = std::fs::File::create(&csv).expect("create");
    breakdesk::generate::generate(
        &breakdesk::generate::GenerateOptions {
            rows: 30_000,
            ..Default::default()
        },
        &mut f,
        None,
    )
    .expect("generate");
    drop(f);
    let mut cfg = Config::defaults();
    cfg.llm.enabled = true;
    cfg.llm.base_url = server.base_url();
    cfg.llm.model = "bench-model".into();
    cfg.llm.api_key_env = String::new();
    cfg.llm.concurrency = 16;
    cfg.llm.requests_per_minute = 0;
    cfg.llm.tokens_per_minute = 0;
    cfg.llm.max_rows = ROWS;
    cfg.llm.failure_threshold = 0;
    let cfg = breakdesk::wiring::run::settings(&cfg).expect("settings");
    let store = breakdesk::store::Store::open(&dir.path().join("data")).expect("store");
    let opts = RunOptions {
        input: csv,
        ..Default::default()
    };
    let mut result = pipeline::run(
        &cfg,
        &opts,
        "",
        &mut |_| {},
        &std::sync::atomic::AtomicBool::new(false),
    )
    .expect("ingest");
    let det = pipeline::score(&cfg, &mut result, &store, &DetectOptions::default()).expect("score");
    let table = pipeline::with_detection(&result.features.df, &det, &result.features.names, true)
        .expect("table");
    let mut rows: Vec<usize> = (0..table.height()).collect();
    rows.sort_by_key(|i| det.rank[*i]);
    rows.truncate(ROWS);
    let flagged = det.scored.flag.iter().filter(|f| **f).count();
    let rules = pipeline::rules_file(&cfg).expect("rules");
    let mut times = Vec::new();
    for pass in ["first (asks the LLM)", "second (cached)"] {
        let before = server.request_count();
        let t = Instant::now();
        let c = pipeline::categorize(
            &cfg,
            &rules,
            &table,
            &result.resolved,
            &rows,
            flagged,
            &store,
        )
        .expect("categorize");
        let el = t.elapsed();
        let r = c.llm.expect("llm report");
        println!(
            "categorize_llm {pass}: {ROWS} anomalies in {:.3} s; {} HTTP requests, {} cache hits, {} answers used",
            el.as_secs_f64(),
            server.request_count() - before,
            r.cache_hits,
            r.used
        );
        times.push(el);
    }
    println!(
        "categorize_llm: first {:.2} s (floor 5 s), cached {:.3} s (floor 0.2 s), ratio {:.0}x",
        times[0].as_secs_f64(),
        times[1].as_secs_f64(),
        times[0].as_secs_f64() / times[1].as_secs_f64().max(1e-9)
    );
}
