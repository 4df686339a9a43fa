//! Benchmark: recording a run's cases in the store. Prints one JSON line per measure.
//!
//!   cargo bench --bench cases_record
//!   (BREAKDESK_BENCH_CASES=… for another count; default 100,000; BREAKDESK_BENCH_REPS=…, default 3)
//!
//! Input: N flagged records of N breaks (one per account, seed 5), each with a snapshot of the
//! 13 columns of a GL/IHub row, as a run of `breakdesk run` hands them to the store
//! (`Cases::record_batch`).
//!
//! - `record_new`: the N records into a fresh store: N new cases, each with its ticket, break
//!   index entry, outstanding marker and creation event; durable (flushed) when it returns.
//! - `record_unchanged`: the same N records again (the same file run twice): nothing changes.
//! - `read_outstanding`: the profile's N outstanding cases read back whole.
//! - `read_briefs`: the same cases read back without their records' columns and dispatches
//!   (what a run's roll-forward and summary read).
//! - `record_new_encoded`, `record_unchanged_encoded`: `record_new` and `record_unchanged` with
//!   the records' columns given encoded (`Cases::record_rows`), as `breakdesk run` gives them
//!   (encoded as the anomalies are read, before the timing), into another fresh store.
//!
//! Floors (BENCHMARKS.md): 100,000 new cases in ≤ 0.7 s, re-recording them unchanged ≤ 0.3 s.

use breakdesk::cases::{BreakInput, Cases, EncodedRow};
use breakdesk::store::Store;
use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use std::time::Instant;

const PROFILE: &str = "gl_ihub";

fn inputs(n: usize) -> Vec<BreakInput> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let buckets = [
        "Timing Issue",
        "Rounding Error",
        "Missing Entry",
        "Sign Flip",
        "Fat Finger",
        "Stale Balance",
    ];
    let severities = ["Low", "Medium", "High", "Critical"];
    let day0 = NaiveDate::from_ymd_opt(2024, 2, 1).expect("a date");
    (0..n)
        .map(|i| {
            let start = day0 + chrono::Duration::days(rng.gen_range(0..40));
            let date = start + chrono::Duration::days(rng.gen_range(0..10));
            let company = format!("{:05}", (i % 7) * 100);
            let account = format!("{}", 100_000 + i);
            let au = format!("{:04}", i % 9973);
            let key = format!("{company}|{account}|{au}|USD");
            let gl: f64 = rng.gen_range(-5e6..5e6);
            let diff: f64 = rng.gen_range(-50_000.0..50_000.0);
            let mut row = serde_json::Map::new();
            let mut put = |k: &str, v: String| {
                row.insert(k.into(), serde_json::Value::String(v));
            };
            put("As of Date", date.to_string());
            put("Company", company);
            put("Account", account.clone());
            put("AU", au);
            put("Currency", "USD".into());
            put("Primary Account", format!("{account}-Loans Receivable"));
            put("Secondary Account", format!("IHUB-{account}"));
            put("GL Balance", format!("{gl:.2}"));
            put("IHub Balance", format!("{:.2}", gl - diff));
            put("Balance Difference", format!("{diff:.2}"));
            put("Match Status", "Break".into());
            put("Comments", String::new());
            put("bd_row", i.to_string());
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
                    "Balance difference of {diff:.2} on account {i}; next step: check the postings"
                ),
                score: -rng.gen_range(0.5..0.9),
                rank: i as u64 + 1,
                difference: diff,
                model_version: "bench".into(),
                row,
            }
        })
        .collect()
}

fn main() {
    let n: usize = std::env::var("BREAKDESK_BENCH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let reps: usize = std::env::var("BREAKDESK_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let inputs = inputs(n);
    let auto = vec![false; n];
    // The same records with their columns encoded, as a run hands them over.
    let (bare, rows): (Vec<BreakInput>, Vec<EncodedRow>) = inputs
        .iter()
        .map(|i| {
            let row = EncodedRow::of_map(&i.row).expect("encoded");
            let mut bare = i.clone();
            bare.row = serde_json::Map::new();
            (bare, row)
        })
        .unzip();
    let mut best = [f64::INFINITY; 6];
    for rep in 0..reps {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = Store::open(dir.path()).expect("a store");
        let cases = Cases::new(&store);
        let t = Instant::now();
        let out = cases.record_batch(&inputs, &auto, None).expect("recorded");
        let new_s = t.elapsed().as_secs_f64();
        assert_eq!(out.len(), n);
        let t = Instant::now();
        let again = cases
            .record_batch(&inputs, &auto, None)
            .expect("recorded again");
        let same_s = t.elapsed().as_secs_f64();
        assert!(
            again
                .iter()
                .all(|o| o.change == breakdesk::cases::Change::Unchanged)
        );
        let t = Instant::now();
        let open = cases.outstanding_cases(PROFILE).expect("read");
        let read_s = t.elapsed().as_secs_f64();
        assert_eq!(open.len(), n);
        drop(open);
        let t = Instant::now();
        let briefs = cases.outstanding_briefs(PROFILE).expect("read briefly");
        let brief_s = t.elapsed().as_secs_f64();
        assert_eq!(briefs.len(), n);
        assert!(briefs.iter().all(|c| c.row.is_empty()));
        drop(briefs);
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = Store::open(dir.path()).expect("a store");
        let cases = Cases::new(&store);
        let t = Instant::now();
        let out = cases
            .record_rows(&bare, &rows, &auto, None)
            .expect("recorded");
        let new_encoded_s = t.elapsed().as_secs_f64();
        assert_eq!(out.len(), n);
        let t = Instant::now();
        let again = cases
            .record_rows(&bare, &rows, &auto, None)
            .expect("recorded again");
        let same_encoded_s = t.elapsed().as_secs_f64();
        assert!(
            again
                .iter()
                .all(|o| o.change == breakdesk::cases::Change::Unchanged)
        );
        for (k, (name, s)) in [
            ("record_new", new_s),
            ("record_unchanged", same_s),
            ("read_outstanding", read_s),
            ("read_briefs", brief_s),
            ("record_new_encoded", new_encoded_s),
            ("record_unchanged_encoded", same_encoded_s),
        ]
        .into_iter()
        .enumerate()
        {
            best[k] = best[k].min(s);
            println!(
                "{}",
                serde_json::json!({"bench": name, "rep": rep, "cases": n, "seconds": (s * 1e3).round() / 1e3})
            );
        }
    }
    println!(
        "best of {reps}: record_new {:.3} s, record_unchanged {:.3} s, read_outstanding {:.3} s, read_briefs {:.3} s, record_new_encoded {:.3} s, record_unchanged_encoded {:.3} s ({n} cases)",
        best[0], best[1], best[2], best[3], best[4], best[5]
    );
}
