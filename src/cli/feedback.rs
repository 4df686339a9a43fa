//! `feedback import`: the analysts' verdicts from a file.

use super::args::{actor, open_store};
use super::exit::{self, Failure, case_failure, fail};
use anyhow::Context;
use breakdesk::config::Config;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum FeedbackCommand {
    /// Apply a feedback CSV as accept/reject decisions, all rows or none. Columns: case_id (or
    /// ticket), or profile + key (or the profile's key columns) + date; label (accept/1/true or
    /// reject/0/false); reason (required to reject).
    Import {
        file: PathBuf,
        /// The profile whose key columns make the key (when there is no key column).
        #[arg(long)]
        profile: Option<String>,
        /// Who decides; default `[general] user`, else the OS user.
        #[arg(long)]
        user: Option<String>,
        /// analyst or supervisor; default `[general] role`.
        #[arg(long)]
        role: Option<String>,
    },
}

pub fn feedback_command(
    cfg: &Config,
    command: &FeedbackCommand,
    quiet: bool,
) -> Result<(), Failure> {
    match command {
        FeedbackCommand::Import {
            file,
            profile,
            user,
            role,
        } => {
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the feedback file {}", file.display()))
                .map_err(|e| fail(exit::INPUT, e))?;
            let name = file.display().to_string();
            let rows = breakdesk::feedback_file::parse(&text, &name, profile.as_deref())
                .map_err(|e| fail(exit::INPUT, e.into()))?;
            let store = open_store(cfg)?;
            let report = breakdesk::cases::Cases::new(&store)
                .import_feedback(&rows, &who)
                .map_err(|e| match e {
                    breakdesk::cases::CaseError::Feedback(problems) => {
                        let mut m = format!(
                            "{name}: {} of {} rows cannot be applied; nothing was imported:",
                            problems.len(),
                            rows.len()
                        );
                        for p in &problems {
                            m.push_str(&format!("\n  line {}: {}", p.line, p.problem));
                        }
                        fail(exit::INPUT, anyhow::anyhow!(m))
                    }
                    other => case_failure(other),
                })?;
            if !quiet {
                eprintln!(
                    "{name}: {} decisions applied, {} rows already decided that way; `breakdesk retrain` uses them",
                    report.applied, report.unchanged
                );
            }
            Ok(())
        }
    }
}
