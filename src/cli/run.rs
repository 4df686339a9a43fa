//! `run`: score a file, write its anomalies and print the run's summary.

use super::args::{
    ChannelArgs, DetectArgs, InputArgs, actor, detect_options, input_options, memory_budget,
    open_store, read_bundle,
};
use super::dispatch::{dispatch, flush_wait};
use super::exit::{
    Failure, analyze_failure, bounded_failure, notify_failure, part_failure, store_failure, usage,
};
use super::progress::{progress_bar, progress_reporter};
use anyhow::Context;
use breakdesk::config::Config;
use breakdesk::output::{self, Format};
use breakdesk::pipeline::{self, Detection, RunOutput, TrainMode};
use breakdesk::store::Store;
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    detect: DetectArgs,
    /// Output file (`-` for standard output); default `[output] path`.
    #[arg(long, short, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Write every row with its score (file order), not only the flagged ones (by rank).
    #[arg(long)]
    all_rows: bool,
    /// csv or jsonl; default `[output] format`.
    #[arg(long)]
    format: Option<String>,
    /// Train a new model even when a saved one fits.
    #[arg(long)]
    retrain: bool,
    /// Score with this model bundle (JSON, as `train --export` and `model export` write it)
    /// instead of the store's; nothing is trained.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["retrain", "contamination"])]
    model: Option<PathBuf>,
    /// Process only the accounts of partition I of N, numbered from 0 (0/4 … 3/4): a cluster
    /// worker's share. Needs --model; writes the part with its sidecars (PATH.meta.json,
    /// PATH.rows.bin) for `breakdesk merge`, and records no cases.
    #[arg(long, value_name = "I/N", requires = "model", conflicts_with_all = ["email", "jira", "webhook"])]
    partition: Option<breakdesk::partition::Partition>,
    /// Memory budget in MiB; default `[run] memory_mb`. A CSV file whose run would take more is
    /// split by account into spill files, scored part by part and merged (same output); 0 = no
    /// bound.
    #[arg(long, value_name = "MIB")]
    memory_mb: Option<u64>,
    /// Print how long each stage took.
    #[arg(long)]
    timings: bool,
    /// After the run, dispatch the Accepted cases not yet dispatched on these channels.
    #[command(flatten)]
    dispatch: ChannelArgs,
}

pub fn run(mut cfg: Config, args: &RunArgs, quiet: bool) -> Result<(), Failure> {
    let opts = input_options(&mut cfg, &args.input)?;
    let train = if args.retrain {
        TrainMode::Force
    } else {
        TrainMode::Auto
    };
    let mut dopts = detect_options(&args.detect, train)?;
    dopts.all_attributions = args.all_rows;
    let format: Format = args
        .format
        .as_deref()
        .unwrap_or(&cfg.output.format)
        .parse()
        .map_err(usage)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(&cfg.output.path));
    let rejects_file = output::rejects_path(&out);
    let clusters_file = output::sibling_path(&out, "clusters", "csv");
    // A dispatch asked for on a channel that is not usable fails before any work is done.
    let channels = args.dispatch.channels();
    if !args.dispatch.to.is_empty() && !args.dispatch.email {
        return Err(usage("--to is for --email".into()));
    }
    let dispatcher_actor = if channels.is_empty() {
        None
    } else {
        for ch in &channels {
            breakdesk::notify::check_channel(&cfg, *ch).map_err(notify_failure)?;
        }
        Some(actor(&cfg, None, None)?)
    };
    let bundle = args.model.as_deref().map(read_bundle).transpose()?;
    if args.partition.is_some() && out.as_os_str() == "-" {
        return Err(usage(
            "--partition writes its part with sidecars beside it: give --out FILE, not -".into(),
        ));
    }
    let _log = breakdesk::logging::init(&cfg);
    // The store first: a store held by another process fails before any work is done. A
    // partition's worker has none (a cluster's workers cannot share one): an empty store of its
    // own stands in, and the LLM pass is left to the merge.
    let scratch = match args.partition {
        Some(_) => {
            cfg.llm.enabled = false;
            Some(tempfile::tempdir().context("cannot create a scratch directory")?)
        }
        None => None,
    };
    let store = match &scratch {
        Some(dir) => Store::open(dir.path()).map_err(store_failure)?,
        None => open_store(&cfg)?,
    };
    let started = Instant::now();

    let bar = progress_bar(quiet);
    let cancel = AtomicBool::new(false);
    let hint = format!(" ({})", rejects_file.display());
    let aopts = pipeline::AnalyzeOptions {
        detect: dopts,
        all_rows: args.all_rows,
    };
    let model_file = args
        .model
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let memory_mb = memory_budget(args.memory_mb, &cfg)?;
    let plan = match args.partition {
        Some(_) => None,
        None => breakdesk::bounded::plan(&cfg, &opts, memory_mb),
    };
    if let Some(plan) = plan {
        let run = breakdesk::bounded::analyze_bounded(
            &cfg,
            &opts,
            &aopts,
            &plan,
            bundle.map(|b| (b, model_file.clone())),
            &store,
            (&out, format),
            &mut progress_reporter(bar.as_ref()),
            &cancel,
        );
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let run = run.map_err(|e| bounded_failure(e, &rejects_file))?;
        let t = Instant::now();
        output::write_clusters(&run.merged.clusters, &clusters_file)?;
        if !run.rejects.is_empty() {
            output::write_rejects(&run.rejects, &rejects_file)?;
        } else if rejects_file.exists() {
            let _ = std::fs::remove_file(&rejects_file);
        }
        for p in [
            breakdesk::parts::meta_path(&out),
            breakdesk::parts::rows_path(&out),
        ] {
            if out.as_os_str() != "-" && p.is_file() {
                let _ = std::fs::remove_file(p);
            }
        }
        if args.timings {
            let mut parts: Vec<String> = run
                .timings
                .iter()
                .map(|(s, d)| format!("{s} {:.3} s", d.as_secs_f64()))
                .collect();
            parts.push(format!("write {:.3} s", t.elapsed().as_secs_f64()));
            eprintln!("timings: {}", parts.join(", "));
        }
        tracing::info!(out = %out.display(), rows = run.merged.written, parts = run.parts, "written");
        if !quiet {
            print_bounded(&run, &plan, &rejects_file);
            print_buckets(&run.merged.buckets);
            if let Some(r) = &run.merged.llm {
                eprintln!("{}", r.describe());
            }
            if let Some(summary) = &run.merged.summary {
                for line in summary.lines() {
                    eprintln!("{line}");
                }
            }
            eprintln!(
                "wrote {} {} to {} and the cluster summary to {} in {:.2} s",
                run.merged.written,
                if args.all_rows { "rows" } else { "anomalies" },
                out.display(),
                clusters_file.display(),
                started.elapsed().as_secs_f64()
            );
        }
        if let Some(who) = dispatcher_actor {
            dispatch(
                &cfg,
                &store,
                &channels,
                &args.dispatch.to,
                breakdesk::cases::Status::Accepted,
                &who,
                Some(flush_wait(&cfg, None)?),
                quiet,
            )?;
        }
        return Ok(());
    }
    let analysis = match bundle {
        Some(bundle) => pipeline::analyze_with_bundle(
            &cfg,
            &opts,
            &aopts,
            pipeline::BundleRun {
                bundle,
                file: &model_file,
                partition: args.partition.as_ref(),
                record_cases: args.partition.is_none(),
                known: None,
                spill: None,
                prepared: None,
            },
            &store,
            &hint,
            &mut progress_reporter(bar.as_ref()),
            &cancel,
        ),
        None => pipeline::analyze(
            &cfg,
            &opts,
            &aopts,
            &store,
            &hint,
            &mut progress_reporter(bar.as_ref()),
            &cancel,
        ),
    };
    if analysis.is_err()
        && let Some(b) = &bar
    {
        b.finish_and_clear();
    }
    let analysis = analysis.map_err(|e| analyze_failure(e, &rejects_file))?;
    if let Some(b) = &bar {
        b.set_message("writing");
    }
    let t = Instant::now();
    output::write_table(&analysis.table, &out, format)?;
    output::write_clusters(&analysis.det.clusters, &clusters_file)?;
    if let Some(p) = &args.partition {
        let src = breakdesk::parts::PartSource {
            partition: p,
            input: &opts.input,
            history: opts.history.as_deref(),
            all_rows: args.all_rows,
            format,
        };
        breakdesk::parts::write_sidecars(&cfg, &out, &analysis, &src, &store)
            .map_err(part_failure)?;
    } else if out.as_os_str() != "-" {
        // A part's sidecars left beside the file from an earlier run would pass it for a part.
        for p in [
            breakdesk::parts::meta_path(&out),
            breakdesk::parts::rows_path(&out),
        ] {
            if p.is_file() {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    let write_time = t.elapsed();
    let pipeline::Analysis {
        run: result,
        det,
        table,
        categorized,
        summary,
        timings,
        ..
    } = analysis;
    let written = table.height();
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if args.timings {
        let mut parts: Vec<String> = result
            .timings
            .iter()
            .map(|(s, d)| format!("{} {:.3} s", s.label(), d.as_secs_f64()))
            .collect();
        parts.extend(
            det.timings
                .iter()
                .map(|(s, d)| format!("{s} {:.3} s", d.as_secs_f64())),
        );
        parts.extend(
            timings
                .iter()
                .map(|(s, d)| format!("{s} {:.3} s", d.as_secs_f64())),
        );
        parts.push(format!("write {:.3} s", write_time.as_secs_f64()));
        eprintln!("timings: {}", parts.join(", "));
    }
    if !result.rejects.is_empty() {
        output::write_rejects(&result.rejects, &rejects_file)?;
    } else if rejects_file.exists() {
        // A stale report from an earlier run would mislead.
        let _ = std::fs::remove_file(&rejects_file);
    }
    tracing::info!(out = %out.display(), rows = written, model = %det.bundle.version(), "written");
    if !quiet {
        print_summary(&result, &det, &rejects_file);
        print_buckets(&breakdesk::categorize::BucketTally::of(&categorized.cats));
        if let Some(r) = &categorized.llm {
            eprintln!("{}", r.describe());
        }
        if let Some(p) = &args.partition {
            eprintln!(
                "partition {p}: {} of the file's {} rows; ranks, severities and clusters are this part's own until `breakdesk merge`; no cases recorded",
                result.features.df.height(),
                result.rows_read
            );
        } else {
            for line in summary.lines() {
                eprintln!("{line}");
            }
        }
        eprintln!(
            "wrote {written} {} to {} and the cluster summary to {} in {:.2} s",
            if args.all_rows { "rows" } else { "anomalies" },
            out.display(),
            clusters_file.display(),
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(who) = dispatcher_actor {
        dispatch(
            &cfg,
            &store,
            &channels,
            &args.dispatch.to,
            breakdesk::cases::Status::Accepted,
            &who,
            Some(flush_wait(&cfg, None)?),
            quiet,
        )?;
    }
    Ok(())
}

pub fn print_buckets(tally: &breakdesk::categorize::BucketTally) {
    if tally.is_empty() {
        return;
    }
    let mut rows: Vec<(&str, [usize; 4])> = tally.0.iter().map(|(b, n)| (b.as_str(), *n)).collect();
    rows.sort_by_key(|(b, n)| (std::cmp::Reverse(n.iter().sum::<usize>()), *b));
    let parts: Vec<String> = rows
        .iter()
        .map(|(b, n)| {
            let crit = if n[3] > 0 {
                format!(", {} critical", n[3])
            } else {
                String::new()
            };
            format!("{b} {}{crit}", n.iter().sum::<usize>())
        })
        .collect();
    eprintln!("buckets: {}", parts.join("; "));
}

pub fn print_summary(result: &RunOutput, det: &Detection, rejects_file: &Path) {
    for n in &result.notes {
        eprintln!("note: {n}");
    }
    let rows = rows_line(
        &result.profile,
        (result.rows_read, result.history_rows_read),
        (result.rejected_rows, result.blank_rows, result.dq_rows),
        rejects_file,
    );
    eprintln!(
        "{rows}; {} features ({})",
        result.features.names.len(),
        result.features.preset.as_str(),
    );
    eprintln!("amounts: {}", result.decimal.describe());
    let flagged = det.scored.flag.iter().filter(|f| **f).count();
    eprintln!(
        "{}",
        model_line(
            &det.bundle,
            &det.status,
            (flagged, det.scored.flag.len()),
            det.clusters.len()
        )
    );
    if det.scored.triage.rows > 0 {
        eprintln!("triage: {}", det.scored.triage.describe());
    }
}

/// "profile P: N rows + H history rows, R rejected (see F), B blank skipped, D with data-quality
/// findings", as a run's summary says it.
pub fn rows_line(
    profile: &str,
    (rows, history_rows): (usize, usize),
    (rejected, blank, dq): (usize, usize, usize),
    rejects_file: &Path,
) -> String {
    let history = if history_rows > 0 {
        format!(" + {history_rows} history rows")
    } else {
        String::new()
    };
    let rejects = if rejected > 0 {
        format!(", {rejected} rejected (see {})", rejects_file.display())
    } else {
        ", 0 rejected".to_string()
    };
    let blank = if blank > 0 {
        format!(", {blank} blank skipped")
    } else {
        String::new()
    };
    format!(
        "profile {profile}: {rows} rows{history}{rejects}{blank}, {dq} with data-quality findings"
    )
}

/// The model, why it is the one used, and how many of the rows it flagged.
pub fn model_line(
    b: &breakdesk::detect::model::ModelBundle,
    status: &breakdesk::pipeline::ModelStatus,
    (flagged, rows): (usize, usize),
    clusters: usize,
) -> String {
    format!(
        "model {} ({}; {} on {} rows, contamination {}{}); {flagged} of {rows} rows flagged; {clusters} clusters",
        b.version(),
        status.describe(),
        b.spec.detector.as_str(),
        b.training_rows,
        b.contamination,
        b.contamination_value
            .map(|v| format!(" = {v:.4}"))
            .unwrap_or_default(),
    )
}

/// The summary of a bounded-memory run (as [`print_summary`] prints a run's).
pub fn print_bounded(
    run: &breakdesk::bounded::Bounded,
    plan: &breakdesk::bounded::Plan,
    rejects_file: &Path,
) {
    for n in &run.notes {
        eprintln!("note: {n}");
    }
    let m = &run.merged;
    eprintln!(
        "memory: about {:.0} MiB needed, above the budget of {} MiB: split by account into {} parts ({:.0} MiB spilled), scored one after another and merged",
        plan.estimate_mb,
        plan.budget_mb,
        run.parts,
        run.spilled as f64 / (1024.0 * 1024.0)
    );
    eprintln!(
        "{}",
        rows_line(
            &m.profile,
            (run.rows_read, run.history_rows_read),
            (run.rejected_rows, run.blank_rows, run.dq_rows),
            rejects_file,
        )
    );
    let flagged = m.summary.as_ref().map(|s| s.flagged).unwrap_or(m.written);
    eprintln!(
        "{}",
        model_line(
            &run.bundle,
            &run.status,
            (flagged, m.rows),
            m.clusters.len()
        )
    );
    if m.triage.rows > 0 {
        eprintln!("triage: {}", m.triage.describe());
    }
}
