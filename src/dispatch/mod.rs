//! Dispatch: reviewed cases leave the workstation by email, as Jira issues, and as tasks posted
//! to a webhook — never lost, never sent twice, never faked.
//!
//! Every dispatch goes through a durable **outbox** in the store:
//!
//! 1. *Queueing* ([`queue_email`], [`queue_jira`], [`queue_webhook`]) renders what will be sent
//!    (the whole email message, the Jira request body, the task JSON) and writes it as an
//!    [`OutboxItem`], together with a `dispatch_queued` event and the per-channel dispatch state
//!    of every case, in one transaction that is flushed before the call returns.
//! 2. *Sending* ([`Outbox::flush_due`], [`Outbox::flush`], or a background [`OutboxSender`]) claims a due
//!    item (`queued` → `sending`, flushed), sends exactly the stored snapshot with a
//!    [`Dispatcher`], and records the result and the cases' new state in one transaction:
//!    `sent` (with the SMTP Message-ID, the Jira key from Jira's answer, or the webhook's task
//!    id), `retry_wait` (exponential backoff with jitter, or the server's `Retry-After`), or
//!    `parked` with the reason (a permanent failure: a 4xx answer other than 408/429, a
//!    permanent SMTP error, or `[outbox] max_attempts` used up).
//! 3. Items left in `sending` by a crash are sent again when the next flush or worker starts
//!    ([`Outbox::recover_interrupted`]). Jira is searched by the item's label first, the
//!    webhook gets the same `Idempotency-Key`, and an email keeps its Message-ID: see
//!    [`outbox`] for what that guarantees.
//!
//! A case is dispatched at most once per channel: queueing skips cases whose dispatch on that
//! channel is queued, sent or parked ([`crate::cases::Case::dispatchable_on`]); a parked item is
//! retried ([`Outbox::retry`]) or cancelled ([`Outbox::cancel`]), which frees its cases.
//!
//! The library knows nothing of the command line or the terminal UI, nor of the configuration:
//! a face builds the [`DispatchOptions`] from it (`crate::wiring::dispatch`), then typically:
//!
//! ```no_run
//! # use breakdesk::{cases::{Actor, Channel, Status}, dispatch, store::Store};
//! # fn demo(store: std::sync::Arc<Store>, options: &dispatch::DispatchOptions) -> Result<(), dispatch::DispatchError> {
//! let actor = Actor::analyst("alice");
//! let cases = dispatch::dispatchable(&store, Status::Accepted, Channel::Email)?;
//! let to = ["lead@example.com".to_string()];
//! let queued = dispatch::queue_email(&store, &options.email, &cases, &to, &actor)?;
//! // Sent in the background; results arrive on the worker's channel.
//! let worker = dispatch::OutboxSender::spawn(store.clone(), dispatch::Dispatcher::new(options)?);
//! for event in worker.events().try_iter() { /* show queued / sent / failed */ }
//! # let _ = queued; Ok(()) }
//! ```

mod email;
mod http;
mod jira;
mod options;
pub mod outbox;
pub mod probe;
mod report;
mod sender;
mod webhook;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::cases::{
    Actor, Case, CaseError, CaseFilter, Cases, DispatchChange, DispatchState, Status,
};
use crate::store::{CaseTree, Store, StoreError, TxError};

pub use crate::cases::{Channel, ChannelDispatch};
pub use email::EmailPayload;
pub use jira::JiraPayload;
pub use options::{
    DispatchOptions, DueDays, EmailOptions, JiraApi, JiraMode, JiraOptions, OutboxOptions, TlsMode,
    WebhookOptions,
};
pub use outbox::{
    Dispatcher, FlushReport, ItemOutcome, ItemStatus, Outbox, OutboxFilter, OutboxItem, Payload,
    RetryPolicy,
};
pub use probe::ProbeFailure;
pub use sender::{OutboxSender, SenderEvent};
pub use webhook::WebhookPayload;

/// Why a dispatch could not be queued, or an outbox operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The channel is off or a setting it needs is missing or wrong; the message names the
    /// setting (or the environment variable).
    #[error("{0}")]
    NotConfigured(String),
    /// Bad input: an address, a recipient.
    #[error("{0}")]
    Invalid(String),
    /// No outbox item has this id.
    #[error("no outbox item #{0}")]
    NotFound(u64),
    /// The item is not in a state that allows the operation.
    #[error("outbox item #{id} is {status}: {why}")]
    Refused {
        /// The item.
        id: u64,
        /// Its status.
        status: String,
        /// Why the operation is refused.
        why: String,
    },
    /// A case operation failed.
    #[error(transparent)]
    Case(#[from] CaseError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something read from the store does not decode.
    #[error("the store holds an unreadable {what}: {message}")]
    Corrupt {
        /// What was read.
        what: String,
        /// The decoding error.
        message: String,
    },
    /// The dispatcher's async runtime could not start.
    #[error("cannot start the dispatcher: {0}")]
    Runtime(String),
}

/// What a queue call wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Queued {
    /// The new outbox items, in id order (one email; one Jira issue per case or per batch; one
    /// webhook task per case).
    pub ids: Vec<u64>,
    /// The cases queued (ids).
    pub case_ids: Vec<String>,
    /// The cases left out, with the reason (already queued, sent or parked on the channel).
    pub skipped: Vec<Skipped>,
}

/// A case a queue call left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The case.
    pub case_id: String,
    /// Its ticket.
    pub ticket: String,
    /// Why it was left out.
    pub reason: String,
}

/// The cases in `status` that may be queued on `channel` (never dispatched there, or cancelled),
/// in ticket order. For the usual "send the reviewed cases": `Status::Accepted`.
pub fn dispatchable(
    store: &Store,
    status: Status,
    channel: Channel,
) -> Result<Vec<Case>, DispatchError> {
    let cases = Cases::new(store).list(&CaseFilter {
        status: Some(status),
        ..CaseFilter::default()
    })?;
    Ok(cases
        .into_iter()
        .filter(|c| c.dispatchable_on(channel))
        .collect())
}

/// Checks that `channel` is switched on and has every setting (and secret) it needs; the error
/// names the setting or environment variable. Nothing is sent.
pub fn check_channel(options: &DispatchOptions, channel: Channel) -> Result<(), DispatchError> {
    match channel {
        Channel::Email => email::Settings::new(&options.email).map(|_| ()),
        Channel::Jira => jira::Settings::new(&options.jira).map(|_| ()),
        Channel::Webhook => webhook::Settings::new(&options.webhook).map(|_| ()),
    }
    .map_err(DispatchError::NotConfigured)
}

/// The latest run summary's lines, for the email report (none when nothing has run or it cannot
/// be read: the report goes without it).
fn latest_cycle(store: &Store) -> Option<Vec<String>> {
    let raw = store.runs(1).ok()?.into_iter().next()?;
    let summary: crate::cases::RunSummary = serde_json::from_slice(&raw).ok()?;
    Some(summary.lines())
}

/// Queues one email report of `cases` to `[email] to` and `cc` plus `recipients`. The message
/// (HTML with a plain-text alternative, and the CSV attachment) is rendered now and sent as it
/// is, retries included. Cases already queued, sent or parked on email are skipped.
pub fn queue_email(
    store: &Store,
    options: &EmailOptions,
    cases: &[Case],
    recipients: &[String],
    actor: &Actor,
) -> Result<Queued, DispatchError> {
    let settings = email::Settings::new(options).map_err(DispatchError::NotConfigured)?;
    let extra = email::parse_recipients(recipients, "a recipient")?;
    let cycle = latest_cycle(store);
    let now = now_millis();
    enqueue(
        store,
        Channel::Email,
        cases,
        actor,
        now,
        |eligible, first_id| {
            let payload = email::build(&settings, eligible, &extra, first_id, now, cycle.clone())?;
            let title = format!("{} → {}", payload.subject, payload.recipients.join(", "));
            Ok(vec![Draft {
                cases: eligible.to_vec(),
                title,
                payload: Payload::Email(payload),
            }])
        },
    )
}

/// Queues one email report of `cases` to `[email] to` and `cc` as a notice (e.g. the anomalies
/// of a batch the service scored): the cases are not marked as dispatched, so they are still
/// sent when reviewed. Returns the outbox item's id.
pub fn queue_summary_email(
    store: &Store,
    options: &EmailOptions,
    cases: &[Case],
    actor: &Actor,
) -> Result<u64, DispatchError> {
    actor.validate()?;
    let settings = email::Settings::new(options).map_err(DispatchError::NotConfigured)?;
    let now = now_millis();
    let id = outbox::reserve_ids(store, 1)?;
    let payload = email::build(&settings, cases, &[], id, now, latest_cycle(store))?;
    let title = format!(
        "{} → {} ({} anomalies, notice)",
        payload.subject,
        payload.recipients.join(", "),
        cases.len()
    );
    let item = OutboxItem::queued(
        id,
        Channel::Email,
        (Vec::new(), Vec::new()),
        title,
        Payload::Email(payload),
        actor,
        now,
    );
    let bytes = outbox::encode(&item)?;
    store.case_transaction(|txn| -> Result<(), TxError<DispatchError>> {
        txn.insert(CaseTree::Outbox, &id.to_be_bytes(), &bytes)?;
        txn.insert(CaseTree::OutboxPending, &id.to_be_bytes(), b"")?;
        Ok(())
    })?;
    tracing::info!(item = id, cases = cases.len(), "summary email queued");
    Ok(id)
}

/// Queues Jira issues for `cases`: one per case (`[jira] mode = "per_case"`) or one for all of
/// them (`"per_batch"`). Each carries a deterministic break-key label; creation is idempotent
/// (see [`outbox`]). Cases already queued, sent or parked on Jira are skipped.
pub fn queue_jira(
    store: &Store,
    options: &JiraOptions,
    cases: &[Case],
    actor: &Actor,
) -> Result<Queued, DispatchError> {
    let settings = jira::Settings::new(options).map_err(DispatchError::NotConfigured)?;
    let now = now_millis();
    enqueue(store, Channel::Jira, cases, actor, now, |eligible, _| {
        let drafts = if settings.per_batch {
            let payload = jira::batch_payload(&settings, eligible);
            vec![Draft {
                cases: eligible.to_vec(),
                title: payload.summary.clone(),
                payload: Payload::Jira(payload),
            }]
        } else {
            eligible
                .iter()
                .map(|c| {
                    let payload = jira::case_payload(&settings, c);
                    Draft {
                        cases: vec![c.clone()],
                        title: payload.summary.clone(),
                        payload: Payload::Jira(payload),
                    }
                })
                .collect()
        };
        Ok(drafts)
    })
}

/// Queues one webhook task per case (name, description, severity, due date from
/// `[webhook.sla_days]`), each with its own `Idempotency-Key`. Cases already queued, sent or
/// parked on the webhook are skipped.
pub fn queue_webhook(
    store: &Store,
    options: &WebhookOptions,
    cases: &[Case],
    actor: &Actor,
) -> Result<Queued, DispatchError> {
    webhook::Settings::new(options).map_err(DispatchError::NotConfigured)?;
    let sla = options.due_days;
    let now = now_millis();
    enqueue(
        store,
        Channel::Webhook,
        cases,
        actor,
        now,
        |eligible, first_id| {
            Ok(eligible
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let payload = webhook::payload(c, first_id + i as u64, &sla, now);
                    Draft {
                        cases: vec![c.clone()],
                        title: payload.task_name.clone(),
                        payload: Payload::Webhook(payload),
                    }
                })
                .collect())
        },
    )
}

/// Queues `cases` on `channel` ([`queue_email`] with `recipients`, [`queue_jira`] or
/// [`queue_webhook`]).
pub fn queue(
    store: &Store,
    options: &DispatchOptions,
    channel: Channel,
    cases: &[Case],
    recipients: &[String],
    actor: &Actor,
) -> Result<Queued, DispatchError> {
    match channel {
        Channel::Email => queue_email(store, &options.email, cases, recipients, actor),
        Channel::Jira => queue_jira(store, &options.jira, cases, actor),
        Channel::Webhook => queue_webhook(store, &options.webhook, cases, actor),
    }
}

/// One outbox item to write: its cases, a one-line title and the snapshot to send.
struct Draft {
    cases: Vec<Case>,
    title: String,
    payload: Payload,
}

/// The common part of the queue calls: picks the cases still dispatchable on `channel` (as
/// stored now), reserves the item ids, lets `render` build the items (ids are consecutive from
/// the first it is given, in draft order), and writes items, case states and events in one
/// flushed transaction, checking again that no case was queued on the channel meanwhile.
fn enqueue(
    store: &Store,
    channel: Channel,
    cases: &[Case],
    actor: &Actor,
    now: DateTime<Utc>,
    render: impl FnOnce(&[Case], u64) -> Result<Vec<Draft>, DispatchError>,
) -> Result<Queued, DispatchError> {
    actor.validate()?;
    let handle = Cases::new(store);
    let mut eligible = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = BTreeSet::new();
    for given in cases {
        if !seen.insert(given.id.clone()) {
            continue;
        }
        let case = handle.get(&given.id)?.ok_or_else(|| CaseError::NotFound {
            reference: given.id.clone(),
        })?;
        match case.dispatch(channel) {
            Some(d) if d.state != DispatchState::Cancelled => skipped.push(Skipped {
                case_id: case.id.clone(),
                ticket: case.ticket.clone(),
                reason: format!("already {} on {channel} (outbox #{})", d.state, d.outbox_id),
            }),
            _ => eligible.push(case),
        }
    }
    if eligible.is_empty() {
        return Ok(Queued {
            skipped,
            ..Queued::default()
        });
    }
    // The drafts are rendered outside the transaction (which may run more than once), so their
    // ids are reserved first; ids of a queue call that then fails are skipped, never reused.
    let count = match channel {
        Channel::Email => 1,
        Channel::Jira | Channel::Webhook => eligible.len() as u64,
    };
    let first_id = outbox::reserve_ids(store, count)?;
    let drafts = render(&eligible, first_id)?;
    if drafts.len() as u64 > count {
        return Err(DispatchError::Invalid(format!(
            "{} outbox items rendered for {count} reserved ids",
            drafts.len()
        )));
    }
    let items: Vec<OutboxItem> = drafts
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let ids = d.cases.iter().map(|c| c.id.clone()).collect();
            let tickets = d.cases.iter().map(|c| c.ticket.clone()).collect();
            let id = first_id + i as u64;
            OutboxItem::queued(id, channel, (ids, tickets), d.title, d.payload, actor, now)
        })
        .collect();
    let encoded: Vec<(u64, Vec<u8>)> = items
        .iter()
        .map(|item| Ok((item.id, outbox::encode(item)?)))
        .collect::<Result<_, DispatchError>>()?;
    store.case_transaction(|txn| -> Result<(), TxError<DispatchError>> {
        for (item, (id, bytes)) in items.iter().zip(&encoded) {
            txn.insert(CaseTree::Outbox, &id.to_be_bytes(), bytes)?;
            txn.insert(CaseTree::OutboxPending, &id.to_be_bytes(), b"")?;
            for case_id in &item.case_ids {
                if let Some(current) = crate::cases::load_case_txn(txn, case_id)
                    .map_err(|e| e.map_abort(DispatchError::from))?
                    && !current.dispatchable_on(channel)
                {
                    return Err(TxError::Abort(DispatchError::Invalid(format!(
                        "case {case_id} was queued on {channel} meanwhile; nothing was queued"
                    ))));
                }
                let change = DispatchChange {
                    channel,
                    outbox_id: *id,
                    state: DispatchState::Queued,
                    reference: None,
                    note: None,
                };
                crate::cases::apply_dispatch(txn, case_id, &change, actor, now)
                    .map_err(|e| e.map_abort(DispatchError::from))?;
            }
        }
        Ok(())
    })?;
    tracing::info!(
        channel = %channel,
        items = items.len(),
        cases = eligible.len(),
        "dispatch queued"
    );
    Ok(Queued {
        ids: items.iter().map(|i| i.id).collect(),
        case_ids: eligible.iter().map(|c| c.id.clone()).collect(),
        skipped,
    })
}

/// Now, at the precision the store keeps (milliseconds).
pub(crate) fn now_millis() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(3)
}
