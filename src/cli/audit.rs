//! `audit` and `export`: the audit trail and the cases of a status, as CSV or JSON lines.

use super::args::{open_store, parse_status};
use super::exit::{Failure, case_failure};
use anyhow::Context;
use breakdesk::config::Config;
use breakdesk::output;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args)]
pub struct AuditArgs {
    /// Only this case (id or ticket).
    #[arg(long = "case", value_name = "ID")]
    case_ref: Option<String>,
    /// csv or jsonl.
    #[arg(long, value_enum, default_value = "csv")]
    format: CaseFormat,
    /// Write here instead of standard output.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

#[derive(Args)]
pub struct ExportArgs {
    /// PendingReview (or pending), Accepted, Rejected, AutoResolveProposed (or proposed), Approved, Returned.
    #[arg(long)]
    status: String,
    #[arg(long, short)]
    out: PathBuf,
    /// csv or jsonl; default from the file name (.jsonl → jsonl).
    #[arg(long, value_enum)]
    format: Option<CaseFormat>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CaseFormat {
    Csv,
    Jsonl,
}

pub fn audit(cfg: &Config, args: &AuditArgs) -> Result<(), Failure> {
    use breakdesk::cases::Cases;
    let store = open_store(cfg)?;
    let cases = Cases::new(&store);
    let events = match &args.case_ref {
        Some(r) => cases.events_for(r).map_err(case_failure)?,
        None => cases.events().map_err(case_failure)?,
    };
    // Printed to a terminal, values from files (comments, keys) lose their control characters.
    let tty = args.out.is_none() && std::io::stdout().is_terminal();
    let mut text = Vec::new();
    match args.format {
        CaseFormat::Jsonl => output::write_json_lines(&mut text, &events)?,
        CaseFormat::Csv => output::write_events_csv(&mut text, &events, tty)?,
    }
    match &args.out {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => print!(
            "{}",
            breakdesk::text::json_terminal_safe(&String::from_utf8_lossy(&text))
        ),
    }
    Ok(())
}

pub fn export(cfg: &Config, args: &ExportArgs, quiet: bool) -> Result<(), Failure> {
    use breakdesk::cases::Cases;
    let out = args.out.as_path();
    let status = parse_status(&args.status)?;
    let format = args.format.unwrap_or_else(|| {
        if out.extension().is_some_and(|e| e == "jsonl") {
            CaseFormat::Jsonl
        } else {
            CaseFormat::Csv
        }
    });
    let store = open_store(cfg)?;
    let cases = Cases::new(&store);
    let list = cases.export(status).map_err(case_failure)?;
    let mut text = Vec::new();
    match format {
        CaseFormat::Jsonl => output::write_json_lines(&mut text, &list)?,
        // The case columns, then the record's own columns.
        CaseFormat::Csv => output::write_cases_csv(&mut text, &list, true, false)?,
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
    if !quiet {
        eprintln!(
            "exported {} {} case(s) to {}",
            list.len(),
            status.as_str(),
            out.display()
        );
    }
    Ok(())
}
