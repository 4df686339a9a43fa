//! `cases`: list, show and decide on cases.

use super::args::{actor, open_store, parse_status};
use super::exit::{self, Failure, case_failure, fail, usage};
use breakdesk::cases::{Action, Case, CaseFilter, Cases};
use breakdesk::config::Config;
use breakdesk::output;
use clap::{Args, Subcommand};
use std::io::IsTerminal;

#[derive(Subcommand)]
pub enum CasesCommand {
    /// The cases, newest break first, optionally filtered.
    List(ListArgs),
    /// One case (id or ticket) with its record and audit trail.
    Show { id: String },
    /// Decide on a case: accept, reject, propose, approve, return or reopen.
    Decide {
        /// Case id or ticket.
        id: String,
        /// What to do with the case.
        #[arg(value_parser = super::args::choice::<Action>(Action::ALL.map(|a| a.as_str())), ignore_case = true)]
        action: Action,
        /// The reason (reject, reopen) or comment (return); optional otherwise.
        #[arg(long)]
        reason: Option<String>,
        /// Who decides; default `[general] user`, else the OS user.
        #[arg(long)]
        user: Option<String>,
        /// analyst or supervisor; default `[general] role`.
        #[arg(long)]
        role: Option<String>,
    },
    /// Give a case to an owner: supervisors assign to anyone, analysts only take an unowned
    /// case for themselves.
    Assign {
        /// Case id or ticket.
        id: String,
        /// The new owner.
        owner: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        role: Option<String>,
    },
    /// Take a case: you own it.
    Take {
        /// Case id or ticket.
        id: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        role: Option<String>,
    },
    /// Let a case go (its owner, or a supervisor): nobody owns it.
    Release {
        /// Case id or ticket.
        id: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        role: Option<String>,
    },
    /// Add a note to a case (kept in its audit trail; not a decision).
    Note {
        /// Case id or ticket.
        id: String,
        /// The note.
        text: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        role: Option<String>,
    },
    /// Flag a break the model missed: opens an Accepted case with origin analyst.
    Flag(FlagArgs),
}

#[derive(Args)]
pub struct ListArgs {
    /// Only cases in this status (PendingReview, Accepted, Rejected, AutoResolveProposed,
    /// Approved, Returned, Cleared).
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    bucket: Option<String>,
    /// Only cases waiting for someone (pending review, proposed, returned).
    #[arg(long)]
    open: bool,
    /// Only breaks at least this many days old.
    #[arg(long, value_name = "DAYS")]
    age_min: Option<i64>,
    /// Only cases this user owns.
    #[arg(long, value_name = "USER")]
    owner: Option<String>,
    /// Only my cases (owned by the user who runs the command).
    #[arg(long, conflicts_with = "owner")]
    mine: bool,
    /// Only undecided cases past their due date.
    #[arg(long)]
    overdue: bool,
    /// table, csv or jsonl.
    #[arg(long, value_enum, default_value = "table")]
    format: ListFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Csv,
    Jsonl,
}

#[derive(Args)]
pub struct FlagArgs {
    /// Profile (gl_ihub, trades, ...).
    #[arg(long)]
    profile: String,
    /// The record's key columns joined with `|` (as `cases list` shows keys).
    #[arg(long)]
    key: String,
    /// The record's date (YYYY-MM-DD).
    #[arg(long)]
    date: String,
    /// The date the break began (default: `--date`).
    #[arg(long)]
    start_date: Option<String>,
    /// Why it is a break (required).
    #[arg(long)]
    reason: String,
    /// The difference between the books.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    difference: f64,
    /// Root-cause bucket, if known.
    #[arg(long, default_value = "New Issue")]
    bucket: String,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    role: Option<String>,
}

/// A value from a file or a comment as printed to a terminal: no control characters.
pub fn safe(s: &str) -> std::borrow::Cow<'_, str> {
    breakdesk::text::terminal_safe(s)
}

pub fn cases_command(cfg: &Config, command: &CasesCommand) -> Result<(), Failure> {
    let store = open_store(cfg)?;
    let cases = Cases::new(&store);
    match command {
        CasesCommand::List(args) => list(cfg, &cases, args),
        CasesCommand::Show { id } => show(&cases, id),
        CasesCommand::Decide {
            id,
            action,
            reason,
            user,
            role,
        } => {
            let action = *action;
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let c = cases
                .decide(id, action, &who, reason.as_deref())
                .map_err(case_failure)?;
            // Printed only after the decision is durable (decide flushes before returning).
            println!("{} {} -> {}", c.ticket, c.id, c.status.as_str());
            Ok(())
        }
        CasesCommand::Assign {
            id,
            owner,
            user,
            role,
        } => {
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let c = cases.assign(id, owner, &who).map_err(case_failure)?;
            println!("{} {} owner {}", c.ticket, c.id, safe(owner));
            Ok(())
        }
        CasesCommand::Take { id, user, role } => {
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let c = cases.assign(id, &who.user, &who).map_err(case_failure)?;
            println!("{} {} owner {}", c.ticket, c.id, safe(&who.user));
            Ok(())
        }
        CasesCommand::Release { id, user, role } => {
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let c = cases.release(id, &who).map_err(case_failure)?;
            println!("{} {} owner none", c.ticket, c.id);
            Ok(())
        }
        CasesCommand::Note {
            id,
            text,
            user,
            role,
        } => {
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let c = cases.note(id, text, &who).map_err(case_failure)?;
            println!("{} {} note by {}", c.ticket, c.id, safe(&who.user));
            Ok(())
        }
        CasesCommand::Flag(args) => flag(cfg, &cases, args),
    }
}

/// `cases list`: the cases that pass the filters, in the format asked for.
fn list(cfg: &Config, cases: &Cases, args: &ListArgs) -> Result<(), Failure> {
    let list = listed(cfg, cases, args)?;
    match args.format {
        ListFormat::Jsonl => {
            for c in &list {
                let line = serde_json::to_string(c)?;
                println!("{}", breakdesk::text::json_terminal_safe(&line));
            }
        }
        ListFormat::Csv => {
            let tty = std::io::stdout().is_terminal();
            output::write_cases_csv(&mut std::io::stdout().lock(), &list, false, tty)?;
        }
        ListFormat::Table => print_table(&list),
    }
    Ok(())
}

/// The cases `cases list` shows: the store's readable cases in a status and bucket (the
/// unreadable ones named on stderr), filtered on the rest, newest break first.
fn listed(cfg: &Config, cases: &Cases, args: &ListArgs) -> Result<Vec<Case>, Failure> {
    let owner = if args.mine {
        Some(actor(cfg, None, None)?.user)
    } else {
        args.owner.clone()
    };
    let today = chrono::Utc::now().date_naive();
    let filter = CaseFilter {
        status: args.status.as_deref().map(parse_status).transpose()?,
        bucket: args.bucket.clone(),
        profile: None,
    };
    let (mut list, unreadable) = cases.list_readable(&filter).map_err(case_failure)?;
    for u in &unreadable {
        eprintln!(
            "warning: case {} is unreadable and left out: {}",
            safe(&u.case_id),
            u.error
        );
    }
    list.retain(|c| {
        (!args.open || c.status.is_open())
            && args.age_min.is_none_or(|m| c.age_days() >= m)
            && owner.as_ref().is_none_or(|o| c.owner.as_ref() == Some(o))
            && (!args.overdue || c.overdue(today))
    });
    list.sort_by(|a, b| b.last_date.cmp(&a.last_date).then(a.rank.cmp(&b.rank)));
    Ok(list)
}

/// `cases list --format table`: one line per case, the count on stderr.
fn print_table(list: &[Case]) {
    let today = chrono::Utc::now().date_naive();
    println!(
        "{:<22} {:<20} {:<16} {:<8} {:<24} {:>10} {:>4} {:>16} {:>11} {:<10} {:>10}",
        "ticket",
        "status",
        "bucket",
        "severity",
        "key",
        "last date",
        "age",
        "difference",
        "due",
        "owner",
        "cleared"
    );
    for c in list {
        // Overdue is marked with `!`, visible without colour.
        let due = c
            .due
            .map(|d| format!("{d}{}", if c.overdue(today) { "!" } else { " " }))
            .unwrap_or_default();
        println!(
            "{:<22} {:<20} {:<16} {:<8} {:<24} {:>10} {:>4} {:>16} {:>11} {:<10} {:>10}",
            c.ticket,
            c.status.as_str(),
            safe(&c.bucket),
            safe(&c.severity),
            safe(&c.key),
            c.last_date.to_string(),
            c.age_days(),
            breakdesk::text::fmt_amount(c.difference),
            due,
            safe(c.owner.as_deref().unwrap_or("")),
            c.cleared_on.map(|d| d.to_string()).unwrap_or_default()
        );
    }
    eprintln!("{} case(s)", list.len());
}

/// `cases show ID`: the case's fields, dispatches and legal actions, its record and its audit
/// trail.
fn show(cases: &Cases, id: &str) -> Result<(), Failure> {
    let c = cases.find(id).map_err(case_failure)?.ok_or_else(|| {
        fail(
            exit::INPUT,
            anyhow::anyhow!("no case {id:?} (give a case id or a BRK- ticket)"),
        )
    })?;
    for (h, v) in output::CASE_COLUMNS.iter().zip(output::case_fields(&c)) {
        println!("{h:>12}: {}", safe(&v));
    }
    println!("{:>12}: {:?}", "origin", c.origin);
    println!("{:>12}: {} ({})", "rule", c.bucket_rule, c.confidence);
    if let Some(p) = &c.proposed_by {
        println!("{:>12}: {p}", "proposed by");
    }
    print_dispatches(&c);
    println!(
        "{:>12}: {}",
        "legal now",
        c.status
            .allowed_actions()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("record:");
    for (k, v) in &c.row {
        let v = v
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string());
        println!("  {}: {}", safe(k), safe(&v));
    }
    println!("audit trail:");
    for e in cases.events_for(&c.id).map_err(case_failure)? {
        print_event(&e);
    }
    Ok(())
}

/// A case's dispatches, one line each, as `cases show` prints them.
fn print_dispatches(c: &Case) {
    for d in &c.dispatches {
        println!(
            "{:>12}: {} {} (outbox #{}, {}){}{}",
            "dispatch",
            d.channel,
            d.state,
            d.outbox_id,
            d.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            d.reference
                .as_deref()
                .map(|r| format!(" {}", safe(r)))
                .unwrap_or_default(),
            d.note
                .as_deref()
                .map(|n| format!(" — {}", safe(n)))
                .unwrap_or_default()
        );
    }
    if c.dispatches.is_empty() {
        println!("{:>12}: not dispatched", "dispatch");
    }
}

/// One line of a case's audit trail, as `cases show` prints it.
fn print_event(e: &breakdesk::cases::Event) {
    println!(
        "  #{} {} {} ({}) {}: {} -> {}{}",
        e.seq,
        e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        safe(&e.user),
        e.role
            .map(|r| r.to_string())
            .unwrap_or_else(|| "system".into()),
        serde_json::to_value(e.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        e.from.map(|s| s.as_str()).unwrap_or("-"),
        e.to.map(|s| s.as_str()).unwrap_or("-"),
        e.reason
            .as_deref()
            .map(|r| format!(" — {}", safe(r)))
            .unwrap_or_default()
    );
}

/// `cases flag`: a break the model missed, recorded as an analyst's Accepted case.
fn flag(cfg: &Config, cases: &Cases, args: &FlagArgs) -> Result<(), Failure> {
    let day = |flag: &str, v: &str| {
        chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").map_err(|_| {
            usage(format!(
                "{flag} must be a date like 2024-05-01, found {v:?}"
            ))
        })
    };
    let date = day("--date", &args.date)?;
    let start = match &args.start_date {
        Some(s) => day("--start-date", s)?,
        None => date,
    };
    if !args.difference.is_finite() {
        return Err(usage("--difference must be a finite number".into()));
    }
    let who = actor(cfg, args.user.as_deref(), args.role.as_deref())?;
    let input = breakdesk::cases::BreakInput::analyst(
        args.profile.trim().to_string(),
        args.key.trim().to_string(),
        (start, date),
        args.bucket.clone(),
        String::new(),
        args.reason.clone(),
        args.difference,
    );
    let c = cases
        .flag_missed(&input, &who, &args.reason)
        .map_err(case_failure)?;
    println!(
        "{} {} -> {} (missed break)",
        c.ticket,
        c.id,
        c.status.as_str()
    );
    Ok(())
}
