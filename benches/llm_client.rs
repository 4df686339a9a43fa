//! Throughput of breakdesk's LLM client: 1,000 requests through a loopback
//! server that answers each after 50 ms, 16 in flight, no rate limit.
//!
//! Ideal time is 1000 × 50 ms / 16 ≈ 3.1 s; the client should stay under 5 s.
//! Run with `cargo bench --bench llm_client`.

#[path = "../tests/it/support/llm_server.rs"]
mod llm_server;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use breakdesk::llm::{ChatRequest, LlmClient, LlmSettings};
use llm_server::{LlmServer, Reply, user_message};
use serde_json::json;

const REQUESTS: usize = 1000;
const CONCURRENCY: usize = 16;
const SERVER_DELAY: Duration = Duration::from_millis(50);
const LIMIT: Duration = Duration::from_secs(5);

fn main() {
    let server = LlmServer::start(|body, _| {
        Reply::ok(&format!(r#"{{"bucket":"{}"}}"#, user_message(body))).delay(SERVER_DELAY)
    });
    let client = LlmClient::new(LlmSettings {
        concurrency: CONCURRENCY,
        requests_per_minute: 0,
        tokens_per_minute: 0,
        timeout: Duration::from_secs(10),
        max_retries: 0,
        failure_threshold: 0,
        ..LlmSettings::new(server.base_url(), "bench-model")
    })
    .expect("valid bench settings");
    let schema = json!({
        "type": "object",
        "properties": {"bucket": {"type": "string"}},
        "required": ["bucket"],
        "additionalProperties": false,
    });
    let reqs: Vec<ChatRequest> = (0..REQUESTS)
        .map(|i| {
            ChatRequest::new(
                "Sort the reconciliation break into a root-cause bucket.",
                format!("break-{i}: cash 1000.00 vs ledger 999.{:02}", i % 100),
                "root_cause",
                schema.clone(),
            )
        })
        .collect();
    let finished = AtomicUsize::new(0);

    let started = Instant::now();
    let outcomes = client.complete_all(&reqs, |_, _| {
        finished.fetch_add(1, Ordering::Relaxed);
    });
    let wall = started.elapsed();

    let ok = outcomes
        .iter()
        .enumerate()
        .filter(|(i, o)| {
            o.content()
                == Some(
                    format!(
                        r#"{{"bucket":"break-{i}: cash 1000.00 vs ledger 999.{:02}"}}"#,
                        i % 100
                    )
                    .as_str(),
                )
        })
        .count();
    let ideal = SERVER_DELAY.as_secs_f64() * REQUESTS as f64 / CONCURRENCY as f64;
    let verdict = if ok == REQUESTS && wall < LIMIT {
        "PASS"
    } else {
        "FAIL"
    };
    println!(
        "llm_client bench: {REQUESTS} requests, {CONCURRENCY} in flight, {} ms server delay: \
         {:.2} s wall ({:.0} req/s; ideal {ideal:.2} s, limit {:.0} s), {ok} ok, \
         {} callbacks, server max in flight {} -> {verdict}",
        SERVER_DELAY.as_millis(),
        wall.as_secs_f64(),
        REQUESTS as f64 / wall.as_secs_f64(),
        LIMIT.as_secs_f64(),
        finished.load(Ordering::Relaxed),
        server.max_in_flight(),
    );
    if verdict == "FAIL" {
        std::process::exit(1);
    }
}
