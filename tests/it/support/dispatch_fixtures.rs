//! Cases and configurations for the dispatch tests.
#![allow(dead_code)]

use std::path::Path;

use breakdesk::cases::{Actor, BreakInput, Case, Cases};
use breakdesk::config::Config;
use breakdesk::store::Store;

/// The environment variable the tests name as their secret: cargo sets it for every test run,
/// so no test has to change the environment (which is unsafe with parallel test threads).
pub const SECRET_ENV: &str = "CARGO_PKG_NAME";

/// Its value: the secret the servers must receive.
pub const SECRET: &str = env!("CARGO_PKG_NAME");

/// What the fixture cases look like: (key, bucket, severity, difference).
pub const SPECS: [(&str, &str, &str, f64); 5] = [
    ("00000|1001|0042", "Timing Issue", "Medium", 250.5),
    ("00000|2002|0042", "Missing Entry", "High", -98_765.43),
    ("00017|3003|0100", "Fat Finger", "Critical", 1_234_567.0),
    ("00017|4004|0100", "Timing Issue", "Low", 12.25),
    ("00099|5005|0007", "Duplicate Entry", "High", -4_321.0),
];

/// A flagged record of one spec.
pub fn record(i: usize) -> BreakInput {
    let (key, bucket, severity, difference) = SPECS[i % SPECS.len()];
    let key = if i < SPECS.len() {
        key.to_string()
    } else {
        format!("{key}|{i}")
    };
    let parts: Vec<&str> = key.split('|').collect();
    let mut row = serde_json::Map::new();
    row.insert("Company".into(), serde_json::json!(parts[0]));
    row.insert("Account".into(), serde_json::json!(parts[1]));
    BreakInput {
        profile: "gl_ihub".into(),
        key: key.clone(),
        start_date: "2024-05-01".parse().unwrap(),
        date: "2024-05-03".parse().unwrap(),
        bucket: bucket.into(),
        bucket_rule: "test_rule".into(),
        confidence: 0.9,
        severity: severity.into(),
        summary: format!(
            "Company {} account {} differs by {difference} <check>",
            parts[0], parts[1]
        ),
        score: -0.6,
        rank: i as u64 + 1,
        difference,
        model_version: "iforest-test-1".into(),
        row,
    }
}

/// `n` cases accepted by alice (the first five follow [`SPECS`]).
pub fn accepted_cases(store: &Store, n: usize) -> Vec<Case> {
    let cases = Cases::new(store);
    (0..n)
        .map(|i| {
            let c = cases.upsert(&record(i), false).unwrap().case;
            cases.accept(&c.id, &alice(), None).unwrap()
        })
        .collect()
}

pub fn alice() -> Actor {
    Actor::analyst("alice")
}

/// The defaults overridden by `toml`.
pub fn config(toml: &str) -> Config {
    breakdesk::wiring::check::from_user_toml(toml, Path::new("dispatch-test.toml"))
        .unwrap_or_else(|e| panic!("test config: {e}\n{toml}"))
}

/// Fast retries for tests: `[outbox]` with a 50 ms backoff.
pub const FAST_OUTBOX: &str = "[outbox]\nmax_attempts = 4\nbackoff_base_secs = 0.05\nbackoff_max_secs = 0.2\nflush_wait_secs = 5\npoll_secs = 0.05\n";
