//! Benchmark: ingest + features of generated GL/IHub rows (default 1,000,000), in release.
//!
//!   cargo bench --bench ingest_features                 # 1M rows, seed preset, 3 runs
//!   BREAKDESK_BENCH_ROWS=200000 BREAKDESK_BENCH_PRESET=breaks cargo bench --bench ingest_features
//!
//! The input is generated once into target/bench-data/. Reports wall time per stage (best and
//! median of the runs) and the process's peak resident memory (VmHWM), which covers the whole
//! benchmark process, so it is an upper bound for one run.

use breakdesk::config::Config;
use breakdesk::features::Preset;
use breakdesk::generate::{GenProfile, GenerateOptions};
use breakdesk::pipeline::{self, RunOptions, Stage};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let rows: usize = std::env::var("BREAKDESK_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let preset: Preset = std::env::var("BREAKDESK_BENCH_PRESET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(Preset::Seed);
    let runs: usize = std::env::var("BREAKDESK_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir).expect("create target/bench-data");
    let input = dir.join(format!("gl_ihub_{rows}.csv"));
    if !input.exists() {
        let t = Instant::now();
        let f = std::fs::File::create(&input).expect("create bench input");
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let opts = GenerateOptions {
            profile: GenProfile::GlIhub,
            rows,
            seed: 7,
            ..Default::default()
        };
        breakdesk::generate::generate(&opts, &mut w, None).expect("generate");
        use std::io::Write;
        w.flush().expect("flush");
        eprintln!("generated {} in {:.2?}", input.display(), t.elapsed());
    }
    let size = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0);
    let cfg = breakdesk::wiring::run::settings(&Config::defaults()).expect("settings");
    let opts = RunOptions {
        input: input.clone(),
        preset: Some(preset),
        ..Default::default()
    };
    let cancel = AtomicBool::new(false);
    let mut totals: Vec<Duration> = Vec::new();
    let mut per_stage: Vec<Vec<(Stage, Duration)>> = Vec::new();
    let mut shape = (0, 0);
    for _ in 0..runs {
        let t = Instant::now();
        let out = pipeline::run(&cfg, &opts, "", &mut |_| {}, &cancel).expect("pipeline");
        totals.push(t.elapsed());
        shape = (out.features.df.height(), out.features.names.len());
        per_stage.push(out.timings.clone());
        drop(out);
    }
    totals.sort();
    println!(
        "ingest+features: {} rows ({:.1} MiB CSV), preset {}, {} features, {} runs",
        shape.0,
        size as f64 / 1048576.0,
        preset.as_str(),
        shape.1,
        runs
    );
    println!(
        "  total   best {:>8.3} s   median {:>8.3} s",
        totals[0].as_secs_f64(),
        totals[totals.len() / 2].as_secs_f64()
    );
    for stage in [Stage::Read, Stage::Prepare, Stage::Features] {
        let mut v: Vec<f64> = per_stage
            .iter()
            .flat_map(|r| {
                r.iter()
                    .filter(|(s, _)| *s == stage)
                    .map(|(_, d)| d.as_secs_f64())
            })
            .collect();
        v.sort_by(f64::total_cmp);
        if !v.is_empty() {
            println!(
                "  {:<8} best {:>8.3} s   median {:>8.3} s",
                format!("{stage:?}").to_lowercase(),
                v[0],
                v[v.len() / 2]
            );
        }
    }
    if let Some(m) = peak_rss_mib() {
        println!("  peak resident memory of the benchmark process: {m:.0} MiB");
    }
}
