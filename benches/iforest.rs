//! Benchmark: Isolation Forest fit + score of every row of a CSV of floats, in release.
//!
//!   cargo bench --bench iforest
//!   BREAKDESK_BENCH_CSV=/path/to/data.csv cargo bench --bench iforest
//!
//! The CSV has a header line of column names, then one row of floats per line. The default
//! path is target/bench-data/detect_1m_12.csv (benches/iforest_vs_sklearn.py creates it and
//! compares with scikit-learn). Fits 200 trees with seed 0 and scores all rows, 3 times, and
//! prints one JSON line with the best times:
//! {"rows":..,"cols":..,"fit_s":..,"score_s":..,"total_s":..}

mod common;

use breakdesk::detect::iforest::{IForestParams, IsolationForest};
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

const RUNS: usize = 3;

fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::var_os("BREAKDESK_BENCH_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/detect_1m_12.csv")
        });
    let t = Instant::now();
    let x = common::read_float_csv(&path)?;
    eprintln!(
        "read {} ({} rows × {} cols) in {:.2?}; {} rayon threads",
        path.display(),
        x.rows(),
        x.cols(),
        t.elapsed(),
        rayon::current_num_threads()
    );
    let params = IForestParams {
        n_estimators: 200,
        seed: 0,
        ..Default::default()
    };
    let (mut best_fit, mut best_score, mut best_total) = (f64::MAX, f64::MAX, f64::MAX);
    for run in 0..RUNS {
        let t0 = Instant::now();
        let forest = IsolationForest::fit(&x, &params)?;
        let fit_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let scores = forest.score_samples(&x)?;
        let score_s = t1.elapsed().as_secs_f64();
        let total_s = t0.elapsed().as_secs_f64();
        let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
        eprintln!(
            "run {}: fit {fit_s:.3} s, score {score_s:.3} s, total {total_s:.3} s (mean score {mean:.5})",
            run + 1
        );
        best_fit = best_fit.min(fit_s);
        best_score = best_score.min(score_s);
        best_total = best_total.min(total_s);
    }
    println!(
        "{{\"rows\":{},\"cols\":{},\"fit_s\":{best_fit:.4},\"score_s\":{best_score:.4},\"total_s\":{best_total:.4}}}",
        x.rows(),
        x.cols()
    );
    Ok(())
}
