//! `run`: score a file, write its anomalies and print the run's summary.

use super::args::{
    ChannelArgs, DetectArgs, InputArgs, actor, detect_options, input_options, memory_budget,
    open_store, read_bundle, run_settings,
};
use super::dispatch::{dispatch, flush_wait};
use super::exit::{Failure, notify_failure, part_failure, store_failure, usage};
use super::progress::{progress_bar, progress_reporter};
use super::rejects::{self, analyze_failed, bounded_failed};
use anyhow::Context;
use breakdesk::config::Config;
use breakdesk::detect::model::ModelBundle;
use breakdesk::output::{self, Format};
use breakdesk::pipeline::{self, Detection, RunOptions, RunOutput, TrainMode};
use breakdesk::store::Store;
use clap::Args;
use std::path::{Path, PathBuf};
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
    /// PATH.rows.bin, and PATH.table.bin beside a CSV part) for `breakdesk merge`, and records
    /// no cases.
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

/// Where a run writes: its output, the rejects report and the cluster summary beside it.
struct RunFiles {
    out: PathBuf,
    rejects: PathBuf,
    clusters: PathBuf,
}

impl RunFiles {
    fn beside(out: PathBuf) -> Self {
        RunFiles {
            rejects: output::rejects_path(&out),
            clusters: output::sibling_path(&out, "clusters", "csv"),
            out,
        }
    }

    /// The rejects-file hint the pipeline puts in its error when a run rejects too many rows.
    fn hint(&self) -> String {
        format!(" ({})", self.rejects.display())
    }

    /// A part's sidecars left beside the file from an earlier run would pass it for a part.
    fn remove_stale_sidecars(&self) {
        if self.out.as_os_str() == "-" {
            return;
        }
        for p in [
            breakdesk::parts::meta_path(&self.out),
            breakdesk::parts::rows_path(&self.out),
            breakdesk::parts::table_path(&self.out),
        ] {
            if p.is_file() {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// A run, its options resolved, its store open: what the two ways of running share.
struct Job<'a> {
    settings: &'a pipeline::Settings,
    args: &'a RunArgs,
    opts: RunOptions,
    aopts: pipeline::AnalyzeOptions,
    format: Format,
    files: RunFiles,
    store: Store,
    /// The `--model` file as the outputs name it (empty without one).
    model_file: String,
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    quiet: bool,
    /// The run's memory budget (MiB; 0: none).
    memory_mb: u64,
}

impl Job<'_> {
    fn clear_bar(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    /// Whether the run writes every row (rows) or the flagged ones (anomalies).
    fn what(&self) -> &'static str {
        if self.args.all_rows {
            "rows"
        } else {
            "anomalies"
        }
    }
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
    let files = RunFiles::beside(out);
    // A dispatch asked for on a channel that is not usable fails before any work is done.
    let channels = args.dispatch.channels();
    let dispatcher = dispatcher(&cfg, &args.dispatch, &channels)?;
    let bundle = args.model.as_deref().map(read_bundle).transpose()?;
    if args.partition.is_some() && files.out.as_os_str() == "-" {
        return Err(usage(
            "--partition writes its part with sidecars beside it: give --out FILE, not -".into(),
        ));
    }
    let _log = breakdesk::logging::init(&breakdesk::wiring::dispatch::logging(&cfg));
    // The store first: a store held by another process fails before any work is done. A
    // partition's worker has none (a cluster's workers cannot share one): an empty store of its
    // own stands in, and the LLM pass is left to the merge.
    let (store, _scratch) = run_store(&mut cfg, args)?;
    let settings = run_settings(&cfg)?;
    let started = Instant::now();
    let bar = progress_bar(quiet);
    let model_file = args
        .model
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let memory_mb = memory_budget(args.memory_mb, &cfg)?;
    let plan = match args.partition {
        Some(_) => None,
        None => breakdesk::bounded::plan(&settings, &opts, memory_mb),
    };
    let job = Job {
        settings: &settings,
        args,
        opts,
        aopts: pipeline::AnalyzeOptions {
            detect: dopts,
            all_rows: args.all_rows,
            // The CSV of the rows is rendered while their cases are recorded.
            render_csv: format == output::Format::Csv && args.partition.is_none(),
        },
        format,
        files,
        store,
        model_file,
        bar,
        started,
        quiet,
        memory_mb,
    };
    match plan {
        Some(plan) => run_bounded(&job, &plan, bundle)?,
        None => run_whole(&job, bundle)?,
    }
    if let Some(who) = dispatcher {
        dispatch(
            &cfg,
            &job.store,
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

/// Who dispatches after the run, when it is asked to: every channel checked first.
fn dispatcher(
    cfg: &Config,
    dispatch: &ChannelArgs,
    channels: &[breakdesk::cases::Channel],
) -> Result<Option<breakdesk::cases::Actor>, Failure> {
    if !dispatch.to.is_empty() && !dispatch.email {
        return Err(usage("--to is for --email".into()));
    }
    if channels.is_empty() {
        return Ok(None);
    }
    for ch in channels {
        breakdesk::dispatch::check_channel(&breakdesk::wiring::dispatch::options(cfg), *ch)
            .map_err(notify_failure)?;
    }
    Ok(Some(actor(cfg, None, None)?))
}

/// The run's store: the user's, or for a partition's worker an empty one in a scratch
/// directory (kept as long as the store), with the LLM pass left to the merge.
fn run_store(
    cfg: &mut Config,
    args: &RunArgs,
) -> Result<(Store, Option<tempfile::TempDir>), Failure> {
    match args.partition {
        Some(_) => {
            cfg.llm.enabled = false;
            let dir = tempfile::tempdir().context("cannot create a scratch directory")?;
            let store = Store::open(dir.path()).map_err(store_failure)?;
            Ok((store, Some(dir)))
        }
        None => Ok((open_store(cfg)?, None)),
    }
}

/// A run over the memory budget: split by account, scored part by part and merged.
fn run_bounded(
    job: &Job,
    plan: &breakdesk::bounded::Plan,
    bundle: Option<ModelBundle>,
) -> Result<(), Failure> {
    let files = &job.files;
    let cancel = super::interrupt::flag();
    let run = breakdesk::bounded::analyze_bounded(
        job.settings,
        &job.opts,
        &job.aopts,
        plan,
        bundle.map(|b| (b, job.model_file.clone())),
        &job.store,
        (&files.out, job.format),
        &mut progress_reporter(job.bar.as_ref()),
        cancel,
    );
    job.clear_bar();
    let run = run.map_err(|e| bounded_failed(e, &files.rejects))?;
    let t = Instant::now();
    output::write_clusters(&run.merged.clusters, &files.clusters)?;
    rejects::keep_or_remove(&run.rejects, &files.rejects)?;
    files.remove_stale_sidecars();
    if job.args.timings {
        let mut parts: Vec<String> = run
            .timings
            .iter()
            .map(|(s, d)| format!("{s} {:.3} s", d.as_secs_f64()))
            .collect();
        parts.push(format!("write {:.3} s", t.elapsed().as_secs_f64()));
        eprintln!("timings: {}", parts.join(", "));
    }
    tracing::info!(out = %files.out.display(), rows = run.merged.written, parts = run.parts, "written");
    if !job.quiet {
        print_bounded(&run, plan, &files.rejects);
        print_buckets(&run.merged.buckets);
        if let Some(r) = &run.merged.llm {
            eprintln!("{}", r.describe());
        }
        if let Some(summary) = &run.merged.summary {
            for line in summary.lines() {
                eprintln!("{line}");
            }
        }
        print_written(job, run.merged.written);
    }
    Ok(())
}

/// "wrote N anomalies to OUT and the cluster summary to CLUSTERS in S s".
fn print_written(job: &Job, written: usize) {
    eprintln!(
        "wrote {written} {} to {} and the cluster summary to {} in {:.2} s",
        job.what(),
        job.files.out.display(),
        job.files.clusters.display(),
        job.started.elapsed().as_secs_f64()
    );
}

/// A run of the whole file at once (or of a partition's share of it).
fn run_whole(job: &Job, bundle: Option<ModelBundle>) -> Result<(), Failure> {
    // What one stage frees the next allocates again: the allocator keeps it for the run, within
    // the memory budget (checked as each stage starts).
    let keep = breakdesk::memory::KeepFreed::up_to(
        (job.memory_mb > 0).then(|| breakdesk::bounded::kept_limit_mib(job.memory_mb)),
    );
    let analysis = analyze(job, bundle, &keep)?;
    if let Some(b) = &job.bar {
        b.set_message("writing");
    }
    let t = Instant::now();
    write_whole(job, &analysis)?;
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
    job.clear_bar();
    if job.args.timings {
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
    rejects::keep_or_remove(&result.rejects, &job.files.rejects)?;
    tracing::info!(out = %job.files.out.display(), rows = written, model = %det.bundle.version(), "written");
    if !job.quiet {
        print_summary(&result, &det, &job.files.rejects);
        print_buckets(&breakdesk::categorize::BucketTally::of(&categorized.cats));
        if let Some(r) = &categorized.llm {
            eprintln!("{}", r.describe());
        }
        if let Some(p) = &job.args.partition {
            eprintln!(
                "partition {p}: {} of the file's {} rows; ranks and clusters are this part's own until `breakdesk merge`, which categorizes the rows; no cases recorded",
                result.features.df.height(),
                result.rows_read
            );
        } else {
            for line in summary.lines() {
                eprintln!("{line}");
            }
        }
        print_written(job, written);
    }
    // The process ends after the run (and its dispatch, which does not need the memory back):
    // the system takes the analysis back with the process at once. Freeing its allocations one
    // by one, and the allocator giving the pages back, took 0.2-0.3 s at 1,000,000 rows.
    std::mem::forget((result, det, table, categorized, summary));
    std::mem::forget(keep);
    Ok(())
}

/// The analysis of the whole file: with the `--model` bundle, else with the store's model.
fn analyze(
    job: &Job,
    bundle: Option<ModelBundle>,
    keep: &breakdesk::memory::KeepFreed,
) -> Result<pipeline::Analysis, Failure> {
    let cancel = super::interrupt::flag();
    let hint = job.files.hint();
    let mut report = progress_reporter(job.bar.as_ref());
    let mut stage = None;
    let mut on_progress = |p: pipeline::Progress| {
        if stage != Some(p.stage) {
            stage = Some(p.stage);
            keep.within_limit(breakdesk::logging::resident_mib);
        }
        report(p);
    };
    let analysis = match bundle {
        Some(bundle) => pipeline::analyze_with_bundle(
            job.settings,
            &job.opts,
            &job.aopts,
            pipeline::BundleRun {
                bundle,
                file: &job.model_file,
                partition: job.args.partition.as_ref(),
                record_cases: job.args.partition.is_none(),
                categorize: job.args.partition.is_none(),
                known: None,
                spill: None,
                prepared: None,
                detected: None,
            },
            &job.store,
            &hint,
            &mut on_progress,
            cancel,
        ),
        None => pipeline::analyze(
            job.settings,
            &job.opts,
            &job.aopts,
            &job.store,
            &hint,
            &mut on_progress,
            cancel,
        ),
    };
    if analysis.is_err() {
        job.clear_bar();
    }
    analysis.map_err(|e| analyze_failed(e, &job.files.rejects))
}

/// The output table and the cluster summary; a partition's sidecars, or none left stale.
fn write_whole(job: &Job, analysis: &pipeline::Analysis) -> Result<(), Failure> {
    let files = &job.files;
    output::write_table_after(
        &analysis.table,
        analysis.csv_ahead.as_ref(),
        &files.out,
        job.format,
    )?;
    output::write_clusters(&analysis.det.clusters, &files.clusters)?;
    match &job.args.partition {
        Some(p) => {
            let src = breakdesk::parts::PartSource {
                partition: p,
                input: &job.opts.input,
                history: job.opts.history.as_deref(),
                all_rows: job.args.all_rows,
                format: job.format,
            };
            breakdesk::parts::write_sidecars(job.settings, &files.out, analysis, &src)
                .map_err(part_failure)?;
        }
        None => files.remove_stale_sidecars(),
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
        "memory: about {:.0} MiB needed, above the budget of {} MiB: split by account into {} parts ({:.0} MiB spilled), scored one after another and merged ({} of them with their written rows kept in memory)",
        plan.estimate_mb,
        plan.budget_mb,
        run.parts,
        run.spilled as f64 / (1024.0 * 1024.0),
        run.held
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
