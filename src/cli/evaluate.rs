//! `evaluate`: detection quality and bucket accuracy on a labelled file.

use super::args::{DetectArgs, InputArgs, detect_options, input_options};
use super::exit::{self, Failure, detect_failure, fail, store_failure, usage};
use super::progress::ingest;
use anyhow::Context;
use breakdesk::config::Config;
use breakdesk::pipeline::{self, TrainMode};
use breakdesk::store::Store;
use clap::Args;
use std::path::{Path, PathBuf};

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
    #[arg(long, default_value = "table")]
    format: String,
}

pub fn evaluate(mut cfg: Config, args: &EvaluateArgs, quiet: bool) -> Result<(), Failure> {
    let opts = input_options(&mut cfg, &args.input)?;
    let dopts = detect_options(&args.detect, TrainMode::Force)?;
    if !matches!(args.format.as_str(), "table" | "json") {
        return Err(usage(format!(
            "--format must be table or json, found {:?}",
            args.format
        )));
    }
    // A throw-away store: evaluation never replaces the user's saved models.
    let tmp = tempfile::tempdir().context("cannot create a temporary store")?;
    let store = Store::open(tmp.path()).map_err(store_failure)?;
    let rejects_file = std::env::temp_dir().join("breakdesk-evaluate.rejects.csv");
    let mut result = ingest(&cfg, &opts, &rejects_file, None)?;
    let det = pipeline::score(&cfg, &mut result, &store, &dopts).map_err(detect_failure)?;
    let labels = read_labels(&args.labels)?;
    let rows: Vec<u32> = result
        .features
        .df
        .column(breakdesk::ingest::ROW_COL)
        .and_then(|c| c.cast(&polars::prelude::DataType::UInt32))
        .and_then(|c| c.u32().map(|ca| ca.into_no_null_iter().collect()))
        .context("row numbers")?;
    let row_labels: Vec<Option<String>> = rows.iter().map(|r| labels.get(r).cloned()).collect();
    // Anomaly score: higher = more anomalous.
    let anomaly: Vec<f64> = det.scored.score.iter().map(|s| -s).collect();
    let metrics = breakdesk::evaluate::evaluate(&anomaly, &det.scored.flag, &row_labels);
    // Root-cause buckets of every labelled row, flagged or not.
    let rules = pipeline::rules_file(&cfg).map_err(|e| fail(exit::CONFIG, e.into()))?;
    let table = pipeline::with_detection(&result.features.df, &det, &result.features.names, true)?;
    let labelled: Vec<usize> = (0..row_labels.len())
        .filter(|i| row_labels[*i].is_some())
        .collect();
    let flagged_total = det.scored.flag.iter().filter(|f| **f).count();
    let cats =
        pipeline::categorize_rows(&rules, &table, &result.resolved, &labelled, flagged_total)
            .map_err(|e| fail(exit::CONFIG, e.into()))?;
    let kinds: Vec<&str> = labelled
        .iter()
        .map(|i| row_labels[*i].as_deref().unwrap_or(""))
        .collect();
    let buckets: Vec<&str> = cats.iter().map(|c| c.bucket.as_str()).collect();
    let flags: Vec<bool> = labelled.iter().map(|i| det.scored.flag[*i]).collect();
    let accuracy = breakdesk::evaluate::bucket_accuracy(&rules, &kinds, &buckets, &flags);
    // Flag volume, and the routine accounts' rows among the flags.
    let routine_path = args.routine.clone().or_else(|| {
        let p = breakdesk::evaluate::routine_list_path(&args.labels);
        p.exists().then_some(p)
    });
    let routine = routine_path.as_deref().map(read_routine_list).transpose()?;
    let keys: Vec<String> = match result.features.df.column("bd_key") {
        Ok(c) => c
            .str()
            .map(|ca| ca.iter().map(|v| v.unwrap_or("").to_string()).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let in_routine: Option<Vec<bool>> = routine.as_ref().map(|set| {
        keys.iter()
            .map(|k| set.contains(k.as_str()))
            .collect::<Vec<bool>>()
    });
    let volume = breakdesk::evaluate::flag_volume(&det.scored.flag, in_routine.as_deref());
    if args.format == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "detection": metrics,
                "flags": volume,
                "triage": det.scored.triage,
                "buckets": accuracy,
            }))?
        );
    } else {
        let f = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.3}"));
        println!(
            "| kind | rows | ROC-AUC | PR-AUC | precision@k | recall of flags | precision of flags |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for m in &metrics {
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
        println!("{}", volume.describe());
        println!("triage: {}", det.scored.triage.describe());
        println!();
        println!(
            "| kind | bucket | rows | accuracy | flagged rows | accuracy (flagged) | most often instead |"
        );
        println!("|---|---|---:|---:|---:|---:|---|");
        for a in &accuracy {
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
    if !quiet {
        eprintln!(
            "{} rows, {} labelled; model {} ({} on {} rows, preset {}, contamination {})",
            rows.len(),
            row_labels.iter().filter(|l| l.is_some()).count(),
            det.bundle.version(),
            det.bundle.spec.detector.as_str(),
            det.bundle.training_rows,
            result.features.preset.as_str(),
            det.bundle.contamination
        );
    }
    Ok(())
}

/// The generator's routine-account list (group,kind): the groups.
pub fn read_routine_list(path: &Path) -> Result<std::collections::HashSet<String>, Failure> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the routine list {}", path.display()))
        .map_err(|e| fail(exit::INPUT, e))?;
    let mut out = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        // The group is everything before the last comma (the kind has none).
        match line.rsplit_once(',') {
            Some((group, _)) if !group.trim().is_empty() => {
                out.insert(group.trim().trim_matches('"').to_string());
            }
            _ => {
                return Err(fail(
                    exit::INPUT,
                    anyhow::anyhow!(
                        "{} line {}: expected `group,kind`, found {line:?}",
                        path.display(),
                        i + 1
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// The generator's labels file: row,kind[,group].
pub fn read_labels(path: &Path) -> Result<std::collections::HashMap<u32, String>, Failure> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the labels file {}", path.display()))
        .map_err(|e| fail(exit::INPUT, e))?;
    let mut out = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let mut parts = line.split(',');
        let row = parts.next().and_then(|r| r.trim().parse::<u32>().ok());
        let kind = parts.next().map(str::trim).filter(|k| !k.is_empty());
        match (row, kind) {
            (Some(r), Some(k)) => {
                out.insert(r, k.to_string());
            }
            _ => {
                return Err(fail(
                    exit::INPUT,
                    anyhow::anyhow!(
                        "{} line {}: expected `row,kind`, found {line:?}",
                        path.display(),
                        i + 1
                    ),
                ));
            }
        }
    }
    Ok(out)
}
