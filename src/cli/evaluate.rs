//! `evaluate`: detection quality and bucket accuracy on a labelled file.

use super::args::{DetectArgs, InputArgs, detect_options, input_options, run_settings};
use super::exit::{Failure, store_failure};
use super::rejects::evaluate_failed;
use anyhow::Context;
use breakdesk::config::Config;
use breakdesk::evaluate::{EvaluateInput, Evaluation};
use breakdesk::pipeline::TrainMode;
use breakdesk::store::Store;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    detect: DetectArgs,
    /// The labels file of the generator (row,kind,group).
    #[arg(long)]
    labels: PathBuf,
    /// The generator's routine accounts (group,kind), to report the share of their rows flagged.
    /// Default: `<labels>.routine.csv` beside the labels file, when it exists.
    #[arg(long)]
    routine: Option<PathBuf>,
    /// table (markdown) or json.
    #[arg(long, value_enum, default_value = "table")]
    format: EvaluateFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum EvaluateFormat {
    Table,
    Json,
}

pub fn evaluate(mut cfg: Config, args: &EvaluateArgs, quiet: bool) -> Result<(), Failure> {
    let opts = input_options(&mut cfg, &args.input)?;
    let settings = run_settings(&cfg)?;
    let dopts = detect_options(&args.detect, TrainMode::Force)?;
    // A throw-away store: evaluation never replaces the user's saved models.
    let tmp = tempfile::tempdir().context("cannot create a temporary store")?;
    let store = Store::open(tmp.path()).map_err(store_failure)?;
    let rejects_file = std::env::temp_dir().join("breakdesk-evaluate.rejects.csv");
    let input = EvaluateInput {
        opts: &opts,
        detect: &dopts,
        labels: &args.labels,
        routine: args.routine.as_deref(),
        rejects_hint: &format!(" ({})", rejects_file.display()),
        cancel: super::interrupt::flag(),
    };
    let e = breakdesk::evaluate::evaluate_file(&settings, &input, &store)
        .map_err(|e| evaluate_failed(e, &rejects_file))?;
    if let EvaluateFormat::Json = args.format {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "detection": e.metrics,
                "flags": e.volume,
                "triage": e.det.scored.triage,
                "buckets": e.accuracy,
            }))?
        );
    } else {
        print_tables(&e);
    }
    if !quiet {
        eprintln!(
            "{} rows, {} labelled; model {} ({} on {} rows, preset {}, contamination {})",
            e.rows,
            e.labelled,
            e.det.bundle.version(),
            e.det.bundle.spec.detector.as_str(),
            e.det.bundle.training_rows,
            e.preset.as_str(),
            e.det.bundle.contamination
        );
    }
    Ok(())
}

/// The evaluation as markdown tables: detection per kind, the flags, buckets per kind.
fn print_tables(e: &Evaluation) {
    let f = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.3}"));
    println!(
        "| kind | rows | ROC-AUC | PR-AUC | precision@k | recall of flags | precision of flags |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for m in &e.metrics {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            m.kind,
            m.positives,
            f(m.roc_auc),
            f(m.pr_auc),
            f(m.precision_at_k),
            f(m.recall_flagged),
            f(m.precision_flagged)
        );
    }
    println!();
    println!("{}", e.volume.describe());
    println!("triage: {}", e.det.scored.triage.describe());
    println!();
    println!(
        "| kind | bucket | rows | accuracy | flagged rows | accuracy (flagged) | most often instead |"
    );
    println!("|---|---|---:|---:|---:|---:|---|");
    for a in &e.accuracy {
        println!(
            "| {} | {} | {} | {:.3} | {} | {} | {} |",
            a.kind,
            a.bucket,
            a.rows,
            a.accuracy,
            a.flagged_rows,
            if a.flagged_rows > 0 {
                format!("{:.3}", a.flagged_correct as f64 / a.flagged_rows as f64)
            } else {
                "–".into()
            },
            a.confused_with
                .iter()
                .map(|(b, n)| format!("{b} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
