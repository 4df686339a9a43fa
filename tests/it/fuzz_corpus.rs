//! The fuzz corpus on stable Rust: every committed input of every target in `fuzz/corpus/`
//! goes through the same entry point the fuzz target calls (`breakdesk::fuzzing`), then a short
//! seeded mutation run derives more inputs from the corpus. An entry point must return (Ok or
//! Err) on every input; a panic fails the test and leaves the input under
//! `target/fuzz-failures/` for `cargo fuzz run <target> <file>`.
//!
//! `BD_FUZZ_INPUTS` (inputs per target, default 400) and `BD_FUZZ_SECONDS` (a time bound per
//! target, default 4) size the mutation run; the seed is fixed, so a run is repeatable.
//! `BD_FUZZ_VERBOSE=1` prints each corpus input's outcome.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

type Entry = fn(&[u8]) -> Result<(), String>;

fn rules_expression(b: &[u8]) -> Result<(), String> {
    match std::str::from_utf8(b) {
        Ok(t) => breakdesk::fuzzing::rules_expression(t),
        Err(_) => Ok(()),
    }
}

fn config_file(b: &[u8]) -> Result<(), String> {
    match std::str::from_utf8(b) {
        Ok(t) => breakdesk::fuzzing::config_file(t),
        Err(_) => Ok(()),
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = root().join("fuzz").join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a corpus directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("a corpus file"))
        })
        .collect()
}

/// Runs one input; on a panic, saves it and fails naming the file.
fn run_one(target: &str, entry: Entry, what: &str, input: &[u8]) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| entry(input))) {
        Ok(outcome) => outcome,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let dir = root().join("target").join("fuzz-failures").join(target);
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{:016x}", fnv(input)));
            let _ = std::fs::write(&file, input);
            panic!(
                "{target}: {what} panicked ({msg}); the input is {}",
                file.display()
            );
        }
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x100000001b3)
    })
}

/// Bytes that change how the readers branch.
const TOKENS: &[&[u8]] = &[
    b",",
    b";",
    b"\t",
    b"|",
    b"\"",
    b"\n",
    b"\r\n",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\0",
    b"-",
    b"1e308",
    b"-0",
    b"NaN",
    b"inf",
    b"1,5",
    b"1.234,56",
    b"()",
    b"((((",
    b"))",
    b"not ",
    b" and ",
    b" or ",
    b"abs(",
    b"min(",
    b"contains(",
    b"'",
    b"\\",
    b"=",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"\":",
    b"null",
    b"[[a]]",
    b"9999999999999999999999",
    b"2024-02-30",
    b"31/12/1899",
    b"45000",
    b"\xc3\xa9",
    b"\xe6\x97\xa5",
    b"\x80",
];

/// One mutation of `input` (or a splice with `other`).
fn mutate(rng: &mut ChaCha8Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let at = if v.is_empty() {
            0
        } else {
            rng.gen_range(0..=v.len())
        };
        match rng.gen_range(0..8) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] = rng.r#gen();
            }
            2 => {
                let end = (at + rng.gen_range(1..64)).min(v.len());
                v.drain(at..end);
            }
            3 => {
                let t = TOKENS[rng.gen_range(0..TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            4 if !v.is_empty() => {
                // Repeat a chunk (long fields, many rows, deep nesting).
                let start = rng.gen_range(0..v.len());
                let end = (start + rng.gen_range(1..128)).min(v.len());
                let chunk = v[start..end].to_vec();
                for _ in 0..rng.gen_range(1..16) {
                    v.splice(at..at, chunk.iter().copied());
                }
            }
            5 if !other.is_empty() => {
                let start = rng.gen_range(0..other.len());
                let end = (start + rng.gen_range(1..256)).min(other.len());
                v.splice(at..at, other[start..end].iter().copied());
            }
            6 => v.truncate(at),
            _ => {
                // Change a digit: numbers, dates and counts.
                if let Some(i) = v.iter().skip(at).position(u8::is_ascii_digit) {
                    v[at + i] = b'0' + rng.gen_range(0..10);
                }
            }
        }
    }
    v
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn check_target(target: &str, entry: Entry, seed: u64) {
    let files = corpus(target);
    assert!(
        files.len() >= 3,
        "{target}: the corpus holds {} files",
        files.len()
    );
    let mut accepted = 0;
    for (name, bytes) in &files {
        let outcome = run_one(target, entry, name, bytes);
        if std::env::var_os("BD_FUZZ_VERBOSE").is_some() {
            eprintln!("{target}/{name}: {outcome:?}");
        }
        if outcome.is_ok() {
            accepted += 1;
        }
    }
    // The seeds are valid input: at least one of them must read, or the target tests nothing
    // but its error paths.
    assert!(accepted > 0, "{target}: no corpus input was accepted");

    let inputs = env_num("BD_FUZZ_INPUTS", 400);
    let budget = Duration::from_secs(env_num("BD_FUZZ_SECONDS", 4));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = Instant::now();
    let mut ran = 0u64;
    for i in 0..inputs {
        if start.elapsed() > budget {
            break;
        }
        let (name, a) = &files[rng.gen_range(0..files.len())];
        let (_, b) = &files[rng.gen_range(0..files.len())];
        let input = mutate(&mut rng, a, b);
        let _ = run_one(target, entry, &format!("mutation {i} of {name}"), &input);
        ran += 1;
    }
    // Seen with --nocapture: how much a long run (BD_FUZZ_SECONDS) did.
    eprintln!(
        "{target}: {} corpus files and {ran} mutated inputs in {:.1} s, no panic",
        files.len(),
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn csv_ingest_corpus() {
    check_target("csv_ingest", breakdesk::fuzzing::csv_ingest, 1);
}

#[test]
fn workbook_ingest_corpus() {
    check_target("workbook_ingest", breakdesk::fuzzing::workbook_ingest, 2);
}

#[test]
fn rules_expression_corpus() {
    check_target("rules_expression", rules_expression, 3);
}

#[test]
fn feedback_file_corpus() {
    check_target("feedback_file", breakdesk::fuzzing::feedback_file, 4);
}

#[test]
fn service_record_corpus() {
    check_target("service_record", breakdesk::fuzzing::service_record, 5);
}

#[test]
fn config_file_corpus() {
    check_target("config_file", config_file, 6);
}

/// Each target's corpus stays small enough to commit and to replay in every test run.
#[test]
fn corpus_is_small() {
    let dir = root().join("fuzz").join("corpus");
    let mut total = 0u64;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus") {
        let target = entry.expect("an entry").path();
        let files = corpus(&target.file_name().unwrap().to_string_lossy());
        assert!(
            files.len() <= 200,
            "{}: {} files",
            target.display(),
            files.len()
        );
        total += files.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
    }
    assert!(total < 1 << 20, "the corpus holds {total} bytes");
}
