//! `rules`: the root-cause rules in effect, or a rules file checked.

use super::exit::{self, Failure, fail};
use anyhow::Context;
use breakdesk::config::Config;
use breakdesk::pipeline::{self, RunOptions};
use std::path::Path;

pub fn rules(cfg: &Config, check: Option<&Path>, quiet: bool) -> Result<(), Failure> {
    let settings = super::args::run_settings(cfg)?;
    let Some(path) = check else {
        let p = cfg.categorize.rules.trim();
        if p.is_empty() {
            print!("{}", breakdesk::categorize::RULES_TOML);
        } else {
            // Checked before printing: a broken configured file is reported, not shown.
            pipeline::rules_file(&settings).map_err(|e| fail(exit::CONFIG, e.into()))?;
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the rules file {p}"))?;
            print!("{text}");
        }
        return Ok(());
    };
    let file = breakdesk::categorize::RulesFile::load(Some(path))
        .map_err(|e| fail(exit::CONFIG, e.into()))?;
    // Compile every rule against small generated tables of the built-in profiles.
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    for profile in [
        breakdesk::generate::GenProfile::GlIhub,
        breakdesk::generate::GenProfile::Trades,
    ] {
        let csv = tmp.path().join("sample.csv");
        let mut f = std::fs::File::create(&csv).context("cannot write a sample table")?;
        let opts = breakdesk::generate::GenerateOptions {
            profile,
            rows: 300,
            ..Default::default()
        };
        breakdesk::generate::generate(&opts, &mut f, None)?;
        drop(f);
        let run_opts = RunOptions {
            input: csv,
            ..Default::default()
        };
        let out = pipeline::run(
            &settings,
            &run_opts,
            "",
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .context("cannot build a sample table")?;
        breakdesk::categorize::Categorizer::new(&file, &out.features.df, &out.resolved)
            .map_err(|e| fail(exit::CONFIG, e.into()))?;
    }
    if !quiet {
        eprintln!(
            "{}: {} buckets, {} rules; every rule compiles for gl_ihub and trades",
            path.display(),
            file.buckets.len(),
            file.rules.len()
        );
    }
    Ok(())
}
