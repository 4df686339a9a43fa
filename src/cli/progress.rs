//! The progress bar on stderr, and the ingest that reports on it.

use super::exit::Failure;
use super::rejects::pipeline_failed;
use breakdesk::pipeline::{self, Progress, RunOptions, RunOutput, Settings};
use std::io::IsTerminal;
use std::path::Path;

/// The progress bar on stderr, when it is a terminal and not `--quiet`.
pub fn progress_bar(quiet: bool) -> Option<indicatif::ProgressBar> {
    (!quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(1);
        b.set_style(
            indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        super::interrupt::show_on(&b);
        b
    })
}

/// Runs ingest and features, reporting on `bar` (the detection stages that follow report on it
/// too; the caller clears it).
pub fn ingest(
    cfg: &Settings,
    opts: &RunOptions,
    rejects_file: &Path,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<RunOutput, Failure> {
    let mut on_progress = progress_reporter(bar);
    let cancel = super::interrupt::flag();
    let hint = format!(" ({})", rejects_file.display());
    let result = pipeline::run(cfg, opts, &hint, &mut on_progress, cancel);
    if result.is_err()
        && let Some(b) = bar
    {
        b.finish_and_clear();
    }
    result.map_err(|e| pipeline_failed(e, rejects_file))
}

pub fn progress_reporter(bar: Option<&indicatif::ProgressBar>) -> impl FnMut(Progress) + '_ {
    move |p: Progress| {
        if let Some(b) = bar {
            b.set_length(p.total);
            b.set_position(p.done);
            b.set_message(p.stage.label());
        }
    }
}
