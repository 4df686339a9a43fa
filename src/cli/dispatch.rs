//! `dispatch` and `outbox`: queue reviewed cases on the channels, and send them.

use super::args::{ChannelArgs, actor, open_store, parse_status};
use super::exit::{self, Failure, fail, notify_failure, usage};
use breakdesk::cases::Channel;
use breakdesk::config::Config;
use breakdesk::store::Store;
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum OutboxCommand {
    /// The outbox items, oldest first, with their status, attempts and result.
    List {
        /// table or jsonl.
        #[arg(long, value_enum, default_value = "table")]
        format: OutboxFormat,
        /// Only items in this state: queued, sending, retry_wait, sent, parked, cancelled.
        #[arg(long, value_enum)]
        status: Option<OutboxState>,
        /// Only this channel.
        #[arg(long, value_parser = super::args::choice::<Channel>(Channel::ALL.map(|c| c.as_str())), ignore_case = true)]
        channel: Option<Channel>,
    },
    /// Send every due item (and items a stopped process left half-sent), then the retries that fall due within --wait seconds; report what was sent, is waiting, or was parked (exit 7 unless all went).
    Flush {
        /// Seconds to wait for retries; default `[outbox] flush_wait_secs`.
        #[arg(long, value_name = "SECS")]
        wait: Option<f64>,
    },
    /// Move a parked item (or one waiting to retry) back to the queue; send it with `outbox flush`.
    Retry {
        id: u64,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        role: Option<String>,
    },
    /// Cancel an item that was not delivered (queued, waiting, parked); its cases may be dispatched again.
    Cancel {
        id: u64,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        role: Option<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutboxFormat {
    Table,
    Jsonl,
}

/// An outbox item's state, as `outbox list --status` names it.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OutboxState {
    Queued,
    Sending,
    #[value(name = "retry_wait")]
    RetryWait,
    Sent,
    Parked,
    Cancelled,
}

impl OutboxState {
    /// The state's name in the outbox.
    fn name(self) -> &'static str {
        match self {
            OutboxState::Queued => "queued",
            OutboxState::Sending => "sending",
            OutboxState::RetryWait => "retry_wait",
            OutboxState::Sent => "sent",
            OutboxState::Parked => "parked",
            OutboxState::Cancelled => "cancelled",
        }
    }
}

#[derive(Args)]
pub struct DispatchArgs {
    #[command(flatten)]
    channels: ChannelArgs,
    /// The cases in this status that were not yet dispatched on the channel.
    #[arg(long, default_value = "accepted")]
    status: String,
    /// Only queue them; `breakdesk outbox flush` sends them.
    #[arg(long)]
    no_send: bool,
    /// Seconds to wait for retries; default `[outbox] flush_wait_secs`.
    #[arg(long, value_name = "SECS")]
    wait: Option<f64>,
    /// Who dispatches; default `[general] user`, else the OS user.
    #[arg(long)]
    user: Option<String>,
    /// analyst or supervisor; default `[general] role`.
    #[arg(long)]
    role: Option<String>,
}

/// The flush bound: `--wait SECS`, else `[outbox] flush_wait_secs`.
pub fn flush_wait(cfg: &Config, wait: Option<f64>) -> Result<std::time::Duration, Failure> {
    let secs = wait.unwrap_or(cfg.outbox.flush_wait_secs);
    std::time::Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| d.as_secs() <= 86_400)
        .ok_or_else(|| {
            usage(format!(
                "--wait must be between 0 and 86400 seconds, found {secs}"
            ))
        })
}

pub fn dispatch_command(cfg: &Config, args: &DispatchArgs, quiet: bool) -> Result<(), Failure> {
    let channels = args.channels.channels();
    if channels.is_empty() {
        return Err(usage(
            "say where to dispatch: --email, --jira and/or --webhook".into(),
        ));
    }
    if !args.channels.to.is_empty() && !args.channels.email {
        return Err(usage("--to is for --email".into()));
    }
    let status = parse_status(&args.status)?;
    let who = actor(cfg, args.user.as_deref(), args.role.as_deref())?;
    let wait = if args.no_send {
        None
    } else {
        Some(flush_wait(cfg, args.wait)?)
    };
    let _log = breakdesk::logging::init(&breakdesk::wiring::dispatch::logging(cfg));
    let store = open_store(cfg)?;
    dispatch(
        cfg,
        &store,
        &channels,
        &args.channels.to,
        status,
        &who,
        wait,
        quiet,
    )
}

/// Queues the cases in `status` not yet dispatched on each channel, then (with `wait`) sends
/// them. Every channel is checked before anything is queued.
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    cfg: &Config,
    store: &Store,
    channels: &[breakdesk::cases::Channel],
    to: &[String],
    status: breakdesk::cases::Status,
    who: &breakdesk::cases::Actor,
    wait: Option<std::time::Duration>,
    quiet: bool,
) -> Result<(), Failure> {
    use breakdesk::dispatch;
    let options = breakdesk::wiring::dispatch::options(cfg);
    for ch in channels {
        dispatch::check_channel(&options, *ch).map_err(notify_failure)?;
    }
    let mut queued_any = false;
    for ch in channels {
        let cases = dispatch::dispatchable(store, status, *ch).map_err(notify_failure)?;
        if cases.is_empty() {
            if !quiet {
                eprintln!(
                    "{ch}: nothing to dispatch (no {} case that is not yet dispatched on {ch})",
                    status.as_str()
                );
            }
            continue;
        }
        let q = dispatch::queue(store, &options, *ch, &cases, to, who).map_err(notify_failure)?;
        queued_any |= !q.ids.is_empty();
        if !quiet {
            for s in &q.skipped {
                eprintln!("{ch}: skipped {} ({}): {}", s.ticket, s.case_id, s.reason);
            }
            if !q.ids.is_empty() {
                eprintln!(
                    "{ch}: queued {} case(s) as outbox {}",
                    q.case_ids.len(),
                    id_list(&q.ids)
                );
            }
        }
    }
    match wait {
        Some(wait) if queued_any => flush(cfg, store, wait, quiet),
        _ => {
            if queued_any && !quiet {
                eprintln!("queued only; send with `breakdesk outbox flush`");
            }
            Ok(())
        }
    }
}

pub fn id_list(ids: &[u64]) -> String {
    match ids {
        [one] => format!("#{one}"),
        [first, .., last] if ids.windows(2).all(|w| w[1] == w[0] + 1) => {
            format!("#{first}–#{last}")
        }
        _ => ids
            .iter()
            .map(|i| format!("#{i}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Flushes the outbox, printing each attempt; exit 7 when something was parked or is still
/// waiting, exit 2 when a channel is not usable with these settings.
pub fn flush(
    cfg: &Config,
    store: &Store,
    wait: std::time::Duration,
    quiet: bool,
) -> Result<(), Failure> {
    use breakdesk::dispatch::{Dispatcher, ItemOutcome, Outbox};
    let dispatcher =
        Dispatcher::new(&breakdesk::wiring::dispatch::options(cfg)).map_err(notify_failure)?;
    let outbox = Outbox::new(store);
    let report = outbox
        .flush(&dispatcher, wait, |item, outcome| {
            if quiet {
                return;
            }
            match outcome {
                ItemOutcome::Sent { reference, detail } => eprintln!(
                    "sent #{} {}{} ({detail})",
                    item.id,
                    item.channel,
                    reference
                        .as_deref()
                        .map(|r| format!(" {r}"))
                        .unwrap_or_default()
                ),
                ItemOutcome::Retrying {
                    next_attempt_at,
                    error,
                } => eprintln!(
                    "failed #{} {} (attempt {}): {error}; retry at {}",
                    item.id,
                    item.channel,
                    item.attempts,
                    next_attempt_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ),
                ItemOutcome::Parked { reason } => {
                    eprintln!("parked #{} {}: {reason}", item.id, item.channel)
                }
                ItemOutcome::Skipped { reason } => {
                    eprintln!("not sent #{} {}: {reason}", item.id, item.channel)
                }
            }
        })
        .map_err(notify_failure)?;
    let skipped: Vec<&str> = report
        .outcomes
        .iter()
        .filter_map(|(_, _, o)| match o {
            ItemOutcome::Skipped { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    let waiting: Vec<String> = report
        .pending
        .iter()
        .filter_map(|i| {
            i.next_attempt_at().map(|t| {
                format!(
                    "#{} at {}",
                    i.id,
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            })
        })
        .collect();
    if !quiet {
        eprintln!(
            "outbox: {} sent, {} parked, {} waiting{}",
            report.sent(),
            report.parked(),
            report.pending.len(),
            if waiting.is_empty() {
                String::new()
            } else {
                format!(" ({})", waiting.join(", "))
            }
        );
    }
    if let Some(reason) = skipped.first() {
        return Err(usage(format!(
            "{} outbox item(s) not sent: {reason}",
            skipped.len()
        )));
    }
    if !report.is_complete() {
        return Err(fail(
            exit::DISPATCH,
            anyhow::anyhow!(
                "dispatch incomplete: {} parked, {} still waiting (see `breakdesk outbox list`; a later `breakdesk outbox flush` sends what waits, `outbox retry ID` requeues a parked item)",
                report.parked(),
                report.pending.len()
            ),
        ));
    }
    Ok(())
}

pub fn outbox_command(cfg: &Config, command: &OutboxCommand, quiet: bool) -> Result<(), Failure> {
    use breakdesk::dispatch::Outbox;
    match command {
        OutboxCommand::List {
            format,
            status,
            channel,
        } => outbox_list(cfg, *format, *status, *channel, quiet),
        OutboxCommand::Flush { wait } => {
            let wait = flush_wait(cfg, *wait)?;
            let _log = breakdesk::logging::init(&breakdesk::wiring::dispatch::logging(cfg));
            let store = open_store(cfg)?;
            flush(cfg, &store, wait, quiet)
        }
        OutboxCommand::Retry { id, user, role } => {
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let store = open_store(cfg)?;
            let item = Outbox::new(&store)
                .retry(*id, &who)
                .map_err(notify_failure)?;
            println!("#{} {} -> {}", item.id, item.channel, item.status.name());
            if !quiet {
                eprintln!("send it with `breakdesk outbox flush`");
            }
            Ok(())
        }
        OutboxCommand::Cancel { id, user, role } => {
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let store = open_store(cfg)?;
            let item = Outbox::new(&store)
                .cancel(*id, &who)
                .map_err(notify_failure)?;
            println!("#{} {} -> {}", item.id, item.channel, item.status.name());
            Ok(())
        }
    }
}

/// `outbox list`: the items, filtered, as a table or JSON lines.
fn outbox_list(
    cfg: &Config,
    format: OutboxFormat,
    status: Option<OutboxState>,
    channel: Option<Channel>,
    quiet: bool,
) -> Result<(), Failure> {
    use breakdesk::dispatch::{Outbox, OutboxFilter};
    let store = open_store(cfg)?;
    let items = Outbox::new(&store)
        .list(&OutboxFilter {
            channel,
            status: status.map(|s| s.name().to_string()),
        })
        .map_err(notify_failure)?;
    if format == OutboxFormat::Jsonl {
        print_outbox_jsonl(&items);
        return Ok(());
    }
    print_outbox_table(&items);
    if !quiet {
        eprintln!("{} item(s)", items.len());
    }
    Ok(())
}

/// The outbox items as JSON lines: everything but the rendered payload (an email can be large).
fn print_outbox_jsonl(items: &[breakdesk::dispatch::OutboxItem]) {
    use breakdesk::dispatch::ItemStatus;
    for i in items {
        let time = |t: chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let line = serde_json::json!({
            "id": i.id,
            "channel": i.channel,
            "status": i.status.name(),
            "next_attempt_at": i.next_attempt_at().map(time),
            "reason": match &i.status { ItemStatus::Parked { reason, .. } => Some(reason), _ => None },
            "attempts": i.attempts,
            "last_error": i.last_error,
            "result": i.result,
            "response": i.response,
            "case_ids": i.case_ids,
            "tickets": i.tickets,
            "title": i.title,
            "queued_by": i.queued_by.user,
            "created_at": time(i.created_at),
            "updated_at": time(i.updated_at),
        });
        println!("{line}");
    }
}

/// The outbox items as a table.
fn print_outbox_table(items: &[breakdesk::dispatch::OutboxItem]) {
    use breakdesk::dispatch::ItemStatus;
    println!(
        "{:>6} {:<8} {:<10} {:>8} {:>6}  {:<40} title",
        "id", "channel", "status", "attempts", "cases", "result / next attempt / reason"
    );
    for i in items {
        let detail = match &i.status {
            ItemStatus::Sent { .. } => i.result.clone().unwrap_or_else(|| "-".into()),
            ItemStatus::RetryWait { next_attempt_at } => format!(
                "retry at {} ({})",
                next_attempt_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                i.last_error.as_deref().unwrap_or("")
            ),
            ItemStatus::Parked { reason, .. } => reason.clone(),
            ItemStatus::Queued => i.last_error.clone().unwrap_or_default(),
            ItemStatus::Sending { since } => format!(
                "since {}",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            ItemStatus::Cancelled { .. } => String::new(),
        };
        println!(
            "{:>6} {:<8} {:<10} {:>8} {:>6}  {:<40} {}",
            i.id,
            i.channel.as_str(),
            i.status.name(),
            i.attempts,
            i.case_ids.len(),
            detail,
            i.title
        );
    }
}
