//! `train` and `retrain`: the model for a file's profile and detector, saved in the store.

use super::args::{
    DetectArgs, InputArgs, detect_options, input_options, memory_budget, open_store, run_settings,
};
use super::exit::{Failure, detect_failure};
use super::progress::{ingest, progress_bar};
use super::rejects::{self, bounded_failed};
use super::run::print_summary;
use anyhow::Context;
use breakdesk::config::Config;
use breakdesk::pipeline::{self, TrainMode};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    detect: DetectArgs,
    /// Also write the trained bundle (JSON) to this file.
    #[arg(long)]
    export: Option<PathBuf>,
    /// Memory budget in MiB; default `[run] memory_mb`. A CSV file whose run would take more is
    /// split by account and the model trained on the largest part's accounts, the model a run
    /// of the file under that budget trains; 0 = no bound.
    #[arg(long, value_name = "MIB")]
    memory_mb: Option<u64>,
}

pub fn train(mut cfg: Config, args: &TrainArgs, quiet: bool) -> Result<(), Failure> {
    let opts = input_options(&mut cfg, &args.input)?;
    let settings = run_settings(&cfg)?;
    let dopts = detect_options(&args.detect, TrainMode::Force)?;
    let memory_mb = memory_budget(args.memory_mb, &cfg)?;
    let _log = breakdesk::logging::init(&breakdesk::wiring::dispatch::logging(&cfg));
    let store = open_store(&cfg)?;
    // The rejects report goes to the data directory (training writes no file of its own
    // elsewhere), and the summary names it.
    let rejects_file = cfg
        .data_dir()
        .map(|d| d.join("train.rejects.csv"))
        .unwrap_or_else(|| PathBuf::from("breakdesk-train.rejects.csv"));
    let bar = progress_bar(quiet);
    let mut split_note = None;
    let det = match breakdesk::bounded::plan(&settings, &opts, memory_mb) {
        // Over the budget: the model a bounded run of the file trains, on its largest part.
        Some(plan) => {
            if let Some(b) = &bar {
                b.set_message("splitting by account and training");
            }
            let cancel = super::interrupt::flag();
            breakdesk::bounded::train_bounded(&settings, &opts, &dopts, &plan, &store, cancel)
                .map(|t| {
                    split_note = Some(format!(
                        "memory: about {:.0} MiB needed, above the budget of {} MiB: split by account into {} parts ({} MiB spilled); trained on the accounts of the largest part ({} of the file's rows)",
                        plan.estimate_mb,
                        plan.budget_mb,
                        t.parts,
                        t.spilled / (1 << 20),
                        t.run.rows_read
                    ));
                    (t.run, t.det)
                })
                .map_err(|e| bounded_failed(e, &rejects_file))
        }
        None => {
            let result = ingest(&settings, &opts, &rejects_file, bar.as_ref());
            if let Some(b) = &bar {
                b.set_message("training");
            }
            result.and_then(|mut result| {
                pipeline::score(&settings, &mut result, &store, &dopts)
                    .map(|d| (result, d))
                    .map_err(detect_failure)
            })
        }
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let (result, det) = det?;
    rejects::keep_or_remove(&result.rejects, &rejects_file)?;
    if let Some(p) = &args.export {
        std::fs::write(p, det.bundle.to_json())
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if !quiet {
        if let Some(note) = &split_note {
            eprintln!("{note}");
        }
        print_summary(&result, &det, &rejects_file);
        match &det.bundle.feedback {
            Some(f) => eprintln!("{}", f.describe()),
            None => eprintln!("feedback: no decided cases for this profile yet"),
        }
        eprintln!("saved in {}", store.path().display());
    }
    Ok(())
}
