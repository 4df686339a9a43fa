//! `merge`: the parts of a partitioned run merged into one run's output.

use super::args::open_store;
use super::exit::{Failure, part_failure, usage};
use super::progress::progress_bar;
use super::run::print_buckets;
use breakdesk::config::Config;
use breakdesk::output::{self, Format};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct MergeArgs {
    /// The parts, every partition once, as `run --partition` wrote them (each with its
    /// PART.meta.json and PART.rows.bin beside it; a CSV part's PART.table.bin is read instead
    /// of the CSV when it was written for that file).
    #[arg(required = true, value_name = "PART")]
    parts: Vec<PathBuf>,
    /// The merged output (`-` for standard output); its cluster summary and rejects report go
    /// beside it.
    #[arg(long, short, value_name = "PATH")]
    out: PathBuf,
    /// csv or jsonl; default: the parts' format.
    #[arg(long)]
    format: Option<String>,
    /// Record a case per anomaly in the store, as `run` does (merge is then the one writer). The
    /// roll-forward of the cases (clearing those whose break is gone) is not done.
    #[arg(long)]
    record: bool,
    /// Print how long each step took.
    #[arg(long)]
    timings: bool,
}

pub fn merge(cfg: Config, args: &MergeArgs, quiet: bool) -> Result<(), Failure> {
    use breakdesk::parts::{self, MergeOptions};
    let format: Option<Format> = args
        .format
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(usage)?;
    let _log = breakdesk::logging::init(&breakdesk::wiring::dispatch::logging(&cfg));
    // The analysts' verdicts, the LLM's cache and the cases are in the store.
    let store = open_store(&cfg)?;
    let settings = super::args::run_settings(&cfg)?;
    let started = Instant::now();
    let bar = progress_bar(quiet);
    if let Some(b) = &bar {
        b.set_message("merging");
    }
    let merged = parts::merge(
        &settings,
        &args.parts,
        &store,
        MergeOptions {
            record: args.record,
            roll: None,
            out: args.out.clone(),
            format,
            stage_dir: Some(breakdesk::bounded::spill_root(&settings)),
            cancel: Some(super::interrupt::flag()),
            ..Default::default()
        },
    );
    if merged.is_err()
        && let Some(b) = &bar
    {
        b.finish_and_clear();
    }
    let merged = match merged {
        Ok(m) => m,
        Err(breakdesk::parts::PartError::TooManyRejects { error, rejects }) => {
            // The whole file's report, as a run that rejects too many rows leaves it.
            output::write_rejects(&rejects, &output::rejects_path(&args.out))?;
            return Err(part_failure(breakdesk::parts::PartError::TooManyRejects {
                error,
                rejects: Vec::new(),
            }));
        }
        Err(e) => return Err(part_failure(e)),
    };
    let merge_time = started.elapsed();
    if let Some(b) = &bar {
        b.set_message("writing");
    }
    let t = Instant::now();
    let clusters_file = output::sibling_path(&args.out, "clusters", "csv");
    output::write_clusters(&merged.clusters, &clusters_file)?;
    super::rejects::keep_or_remove(&merged.rejects, &output::rejects_path(&args.out))?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if args.timings {
        let mut parts: Vec<String> = merged
            .timings
            .iter()
            .map(|(s, d)| format!("{s} {:.3} s", d.as_secs_f64()))
            .collect();
        parts.push(format!("write {:.3} s", t.elapsed().as_secs_f64()));
        eprintln!(
            "timings: {} (merge {:.3} s)",
            parts.join(", "),
            merge_time.as_secs_f64()
        );
    }
    tracing::info!(out = %args.out.display(), rows = merged.written, parts = merged.parts, "merged");
    if !quiet {
        eprintln!(
            "merged {} parts of {} ({} rows of the file's {}), model {}",
            merged.parts, merged.profile, merged.rows, merged.rows_read, merged.model_version
        );
        eprintln!("triage: {}", merged.triage.describe());
        if merged.judged > 0 {
            eprintln!(
                "verdicts: {} breaks judged normal by an analyst quieted ({} of them flagged by a part)",
                merged.judged, merged.judged_flagged
            );
        }
        print_buckets(&merged.buckets);
        if args.record {
            eprintln!(
                "cases: {} recorded (not rolled forward: the parts do not hold the day's other rows)",
                merged.cases.len()
            );
        }
        eprintln!(
            "wrote {} {} to {} and the cluster summary to {} in {:.2} s",
            merged.written,
            if merged.all_rows { "rows" } else { "anomalies" },
            args.out.display(),
            clusters_file.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
