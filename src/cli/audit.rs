//! `audit` and `export`: the audit trail and the cases of a status, as CSV or JSON lines.

use super::args::{open_store, parse_status};
use super::cases::{CASE_HEADER, case_line, shown};
use super::exit::{Failure, case_failure, usage};
use anyhow::Context;
use breakdesk::config::Config;
use breakdesk::text::csv_field;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args)]
pub struct AuditArgs {
    /// Only this case (id or ticket).
    #[arg(long = "case", value_name = "ID")]
    case_ref: Option<String>,
    /// csv or jsonl.
    #[arg(long, default_value = "csv")]
    format: String,
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
    #[arg(long)]
    format: Option<String>,
}

pub fn audit(cfg: &Config, args: &AuditArgs) -> Result<(), Failure> {
    let (case_ref, format, out) = (
        args.case_ref.as_deref(),
        args.format.as_str(),
        args.out.as_deref(),
    );
    use breakdesk::cases::Cases;
    if !matches!(format, "csv" | "jsonl") {
        return Err(usage(format!(
            "--format must be csv or jsonl, found {format:?}"
        )));
    }
    let store = open_store(cfg)?;
    let cases = Cases::new(&store);
    let events = match case_ref {
        Some(r) => cases.events_for(r).map_err(case_failure)?,
        None => cases.events().map_err(case_failure)?,
    };
    // Printed to a terminal, values from files (comments, keys) lose their control characters.
    let tty = out.is_none() && std::io::stdout().is_terminal();
    let mut text = String::new();
    if format == "jsonl" {
        for e in &events {
            text.push_str(&serde_json::to_string(e)?);
            text.push('\n');
        }
    } else {
        text.push_str("seq,at,user,role,case_id,ticket,action,from,to,reason,model_version\n");
        for e in &events {
            let action = serde_json::to_value(e.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let fields = [
                e.seq.to_string(),
                e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                e.user.clone(),
                e.role.map(|r| r.to_string()).unwrap_or_default(),
                e.case_id.clone(),
                e.ticket.clone(),
                action,
                e.from.map(|s| s.as_str().to_string()).unwrap_or_default(),
                e.to.map(|s| s.as_str().to_string()).unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.model_version.clone(),
            ];
            let l: Vec<String> = fields.iter().map(|f| csv_field(&shown(f, tty))).collect();
            text.push_str(&l.join(","));
            text.push('\n');
        }
    }
    match out {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => print!("{}", breakdesk::text::json_terminal_safe(&text)),
    }
    Ok(())
}

pub fn export(cfg: &Config, args: &ExportArgs, quiet: bool) -> Result<(), Failure> {
    let (status, out, format) = (
        args.status.as_str(),
        args.out.as_path(),
        args.format.as_deref(),
    );
    use breakdesk::cases::Cases;
    let status = parse_status(status)?;
    let format = format.map(str::to_string).unwrap_or_else(|| {
        if out.extension().is_some_and(|e| e == "jsonl") {
            "jsonl".into()
        } else {
            "csv".into()
        }
    });
    let store = open_store(cfg)?;
    let cases = Cases::new(&store);
    let list = cases.export(status).map_err(case_failure)?;
    let mut text = String::new();
    match format.as_str() {
        "jsonl" => {
            for c in &list {
                text.push_str(&serde_json::to_string(c)?);
                text.push('\n');
            }
        }
        "csv" => {
            // The case columns, then the record's own columns (union, in first-seen order).
            let mut cols: Vec<String> = Vec::new();
            for c in &list {
                for k in c.row.keys() {
                    if !cols.contains(k) {
                        cols.push(k.clone());
                    }
                }
            }
            let mut head: Vec<String> = CASE_HEADER.iter().map(|s| s.to_string()).collect();
            head.extend(cols.iter().map(|c| csv_field(c)));
            text.push_str(&head.join(","));
            text.push('\n');
            for c in &list {
                let mut l: Vec<String> = case_line(c).iter().map(|f| csv_field(f)).collect();
                for k in &cols {
                    let v = c
                        .row
                        .get(k)
                        .map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .unwrap_or_default();
                    l.push(csv_field(&v));
                }
                text.push_str(&l.join(","));
                text.push('\n');
            }
        }
        other => {
            return Err(usage(format!(
                "--format must be csv or jsonl, found {other:?}"
            )));
        }
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
