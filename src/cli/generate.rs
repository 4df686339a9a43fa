//! `generate`: a synthetic reconciliation file with labelled breaks.

use super::exit::{self, Failure, fail};
use anyhow::Context;
use breakdesk::output;
use breakdesk::profile::Profile;
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct GenerateArgs {
    /// gl_ihub or trades.
    #[arg(long, default_value = "gl_ihub")]
    profile: String,
    /// Approximate number of data rows.
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output file: CSV, or an Excel workbook when it ends in .xlsx.
    #[arg(long, short)]
    out: PathBuf,
    /// Also write the labels (row, kind, group) of the injected breaks here.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Inject the quirks of real exports (mixed date formats, float noise, wrapped comments, ...).
    #[arg(long)]
    messy: bool,
    /// Share of account-days that start a break episode.
    #[arg(long, default_value_t = 0.02)]
    break_rate: f64,
    /// gl_ihub: share of accounts whose breaks are all routine for them (a standing item, a
    /// one-day lag of IHub, a month-end accrual that reverses); unlabelled. With --labels, they are
    /// listed in a file beside the labels (`<labels>.routine.csv`: group,kind).
    #[arg(long, default_value_t = breakdesk::generate::DEFAULT_ROUTINE_SHARE)]
    routine_share: f64,
}

pub fn generate(g: &GenerateArgs, quiet: bool) -> Result<(), Failure> {
    let opts = generate_options(g)?;
    let t = Instant::now();
    let create = |p: &Path| -> Result<std::io::BufWriter<std::fs::File>, Failure> {
        if let Some(parent) = p.parent().filter(|x| !x.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let f =
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?;
        Ok(std::io::BufWriter::with_capacity(1 << 20, f))
    };
    let xlsx = g
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
    // A workbook is written from a CSV generated first into a temporary file.
    let tmp = if xlsx {
        Some(tempfile::Builder::new().suffix(".csv").tempfile()?)
    } else {
        None
    };
    let csv_path = tmp.as_ref().map_or(g.out.as_path(), |t| t.path());
    let mut out = create(csv_path)?;
    let mut labels = g.labels.as_deref().map(create).transpose()?;
    // The routine accounts are listed beside the labels (gl_ihub only: trades have none).
    let routine_path = g
        .labels
        .as_deref()
        .filter(|_| opts.profile == breakdesk::generate::GenProfile::GlIhub)
        .map(breakdesk::evaluate::routine_list_path);
    let mut routine = routine_path.as_deref().map(create).transpose()?;
    let summary = breakdesk::generate::generate_with_routine(
        &opts,
        &mut out,
        labels.as_mut().map(|w| w as &mut dyn std::io::Write),
        routine.as_mut().map(|w| w as &mut dyn std::io::Write),
    )
    .map_err(|e| fail(exit::CONFIG, e))?;
    if let Some(r) = routine.as_mut() {
        r.flush().context("cannot write the routine list")?;
    }
    use std::io::Write;
    out.flush()
        .with_context(|| format!("cannot write {}", g.out.display()))?;
    drop(out);
    if xlsx {
        let raw =
            breakdesk::ingest::csv::read(csv_path, &breakdesk::ingest::ReadOptions::default())?;
        let resolved =
            Profile::by_name_or_path(&g.profile)?.resolve(&raw.header, &raw.source, &[])?;
        output::write_xlsx(&raw, &resolved, &g.out)?;
    }
    if let Some(l) = labels.as_mut() {
        l.flush().context("cannot write the labels file")?;
    }
    if !quiet {
        print_generated(&summary, g, routine_path.as_deref(), t.elapsed());
    }
    Ok(())
}

/// The generator's options from the arguments, their ranges checked.
fn generate_options(g: &GenerateArgs) -> Result<breakdesk::generate::GenerateOptions, Failure> {
    let profile = g
        .profile
        .parse()
        .map_err(|e: anyhow::Error| fail(exit::CONFIG, e))?;
    if !(0.0..=0.5).contains(&g.break_rate) {
        return Err(fail(
            exit::CONFIG,
            anyhow::anyhow!(
                "--break-rate must be between 0 and 0.5, found {}",
                g.break_rate
            ),
        ));
    }
    if !(0.0..=1.0).contains(&g.routine_share) {
        return Err(fail(
            exit::CONFIG,
            anyhow::anyhow!(
                "--routine-share must be between 0 and 1, found {}",
                g.routine_share
            ),
        ));
    }
    Ok(breakdesk::generate::GenerateOptions {
        profile,
        rows: g.rows,
        seed: g.seed,
        break_rate: g.break_rate,
        messy: g.messy,
        routine_share: g.routine_share,
        ..Default::default()
    })
}

/// What `generate` wrote, on stderr.
fn print_generated(
    summary: &breakdesk::generate::GenerateSummary,
    g: &GenerateArgs,
    routine_path: Option<&Path>,
    elapsed: std::time::Duration,
) {
    let kinds: Vec<String> = summary
        .by_kind
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    eprintln!(
        "wrote {} rows ({} accounts × {} dates, {} labelled break rows: {}) to {} in {:.2} s",
        summary.rows,
        summary.groups,
        summary.dates,
        summary.labelled_rows,
        kinds.join(", "),
        g.out.display(),
        elapsed.as_secs_f64()
    );
    if !summary.routine_accounts.is_empty() {
        let kinds: Vec<String> = summary
            .routine_accounts
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        eprintln!(
            "routine accounts (unlabelled): {} ({} break rows){}",
            kinds.join(", "),
            summary.routine_break_rows,
            routine_path
                .as_ref()
                .map(|p| format!(", listed in {}", p.display()))
                .unwrap_or_default()
        );
    }
}
