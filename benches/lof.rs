//! Benchmark: LOF fit (k = 20, negative_outlier_factor of every row) and novelty scoring of the
//! first 10,000 rows, in release.
//!
//!   cargo bench --bench lof
//!   BREAKDESK_BENCH_CSV=path/to/data.csv cargo bench --bench lof
//!
//! The CSV is a header of column names, then rows of floats (default
//! target/bench-data/detect_100k_12.csv, which benches/lof_vs_sklearn.py generates and which
//! also compares the time with scikit-learn). Prints one JSON line:
//! {"rows":..,"cols":..,"fit_s":..,"novelty_10k_s":..}; the fit is the best of 3 runs.
//!
//! With BREAKDESK_BENCH_SCORES_DIR set, also writes the scores (one per line, shortest
//! round-trip form) to lof_fit_scores.txt (negative_outlier_factor of every row) and
//! lof_novelty_scores.txt (score_samples of the first 10,000 rows) in that directory, which
//! benches/lof_vs_sklearn.py compares with scikit-learn's.

mod common;

use breakdesk::detect::lof::{LocalOutlierFactor, LofParams};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let path = std::env::var_os("BREAKDESK_BENCH_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/detect_100k_12.csv")
        });
    let x = match common::read_float_csv(&path) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}\n(generate the data with: python3 benches/lof_vs_sklearn.py)");
            return ExitCode::FAILURE;
        }
    };
    let params = LofParams { n_neighbors: 20 };
    let mut best = f64::INFINITY;
    let mut model = None;
    for run in 0..3 {
        let t = Instant::now();
        let m = match LocalOutlierFactor::fit(&x, &params) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("fit: {e}");
                return ExitCode::FAILURE;
            }
        };
        let s = t.elapsed().as_secs_f64();
        eprintln!("fit run {run}: {s:.3} s");
        best = best.min(s);
        model = Some(m);
    }
    let Some(model) = model else {
        return ExitCode::FAILURE;
    };
    let m = x.rows().min(10_000);
    let new = x.select_rows(&(0..m).collect::<Vec<_>>());
    let t = Instant::now();
    let scores = match model.score_samples(&new) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("score_samples: {e}");
            return ExitCode::FAILURE;
        }
    };
    let novelty = t.elapsed().as_secs_f64();
    let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
    eprintln!(
        "novelty {m} rows: {novelty:.3} s (mean score {mean:.4}; threads {})",
        rayon::current_num_threads()
    );
    if let Some(dir) = std::env::var_os("BREAKDESK_BENCH_SCORES_DIR").map(PathBuf::from) {
        for (name, values) in [
            ("lof_fit_scores.txt", model.negative_outlier_factor()),
            ("lof_novelty_scores.txt", &scores[..]),
        ] {
            let text: String = values.iter().map(|v| format!("{v:?}\n")).collect();
            if let Err(e) = std::fs::write(dir.join(name), text) {
                eprintln!("write {}: {e}", dir.join(name).display());
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "{{\"rows\":{},\"cols\":{},\"fit_s\":{best:.4},\"novelty_10k_s\":{novelty:.4}}}",
        x.rows(),
        x.cols()
    );
    ExitCode::SUCCESS
}
