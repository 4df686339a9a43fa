//! The outbox: dispatches written to the store first, then sent with retries.
//!
//! An [`OutboxItem`] moves through these states ([`ItemStatus`]):
//!
//! ```text
//! queued ──claim──► sending ──► sent
//!   ▲                  │  └───► retry_wait (backoff with jitter, or Retry-After) ──due──► sending …
//!   │                  └──────► parked (permanent failure, or max_attempts used up)
//!   └── retry (parked / retry_wait) ◄──┘            queued / retry_wait / parked ──cancel──► cancelled
//! ```
//!
//! Every state change is one store transaction, flushed before the call returns; the change of
//! the item and of its cases (their per-channel dispatch state and audit events) are written
//! together.
//!
//! **Guarantees and their limits.** An item is claimed (`sending`, flushed) before anything goes
//! on the wire, and its result is recorded after. A process killed in between leaves it in
//! `sending`; the next flush or worker sends it again ([`Outbox::recover_interrupted`]):
//!
//! - *Jira*: every attempt first looks the issue up by the item's deterministic label (in the
//!   store's key map, then with a JQL search) and creates it only when none exists, so a
//!   timeout or a crash after Jira created the issue never creates a second one. The key
//!   recorded is always the one Jira returned (never invented). Jira's search index can lag
//!   a few seconds behind a creation; the retry backoff (`[outbox] backoff_base_secs`, 30 s by
//!   default) leaves it that time.
//! - *Webhook*: every attempt sends the same `Idempotency-Key`; a server that honours it
//!   creates one task.
//! - *Email*: SMTP has no idempotency. The message keeps one deterministic `Message-ID`
//!   across attempts (so mail clients can fold a duplicate), but if the process dies after the
//!   server accepted the message (`250`) and before that result was flushed, the message is sent
//!   once more. A failure *before* the server's `250` never loses or duplicates a message.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod dispatcher;

use super::{DispatchError, EmailPayload, JiraPayload, WebhookPayload};
use crate::cases::{Actor, Channel, DispatchChange, DispatchState, time_format};
use crate::store::{CaseTree, Store, TxError};
pub use dispatcher::Dispatcher;
pub(crate) use dispatcher::SendOutcome;

/// The counter of outbox ids (in the store's `seq` tree).
const OUTBOX_COUNTER: &[u8] = b"outbox";

/// Longest wait taken from a server's `Retry-After`.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// One dispatch: what is sent, to which channel, for which cases, and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// From a persistent sequence; never reused (a failed queue call may leave a gap).
    pub id: u64,
    /// Email, Jira or webhook.
    pub channel: Channel,
    /// The cases it carries.
    pub case_ids: Vec<String>,
    /// Their tickets (same order).
    pub tickets: Vec<String>,
    /// One line for listings: the subject and recipients, the issue summary, the task name.
    pub title: String,
    /// What is sent, rendered when it was queued (a retry sends exactly this).
    pub payload: Payload,
    /// Where it stands.
    pub status: ItemStatus,
    /// Attempts made (a retry of a parked item starts again from 0).
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Once sent: the email's Message-ID, the Jira issue key, the webhook's task id (if the
    /// server gave one).
    pub result: Option<String>,
    /// Once sent: what the other side answered (SMTP reply, how the Jira issue was found or
    /// created, HTTP status).
    pub response: Option<String>,
    /// Who queued it (recorded on the cases' dispatch events).
    pub queued_by: Actor,
    /// When it was queued.
    #[serde(with = "time_format")]
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    #[serde(with = "time_format")]
    pub updated_at: DateTime<Utc>,
}

impl OutboxItem {
    /// A new item, queued `now` by `actor`, not tried yet.
    pub fn queued(
        id: u64,
        channel: Channel,
        cases: (Vec<String>, Vec<String>),
        title: String,
        payload: Payload,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> OutboxItem {
        let (case_ids, tickets) = cases;
        OutboxItem {
            id,
            channel,
            case_ids,
            tickets,
            title,
            payload,
            status: ItemStatus::Queued,
            attempts: 0,
            last_error: None,
            result: None,
            response: None,
            queued_by: actor.clone(),
            created_at: now,
            updated_at: now,
        }
    }
}

impl OutboxItem {
    /// Whether it is settled (sent, parked or cancelled): no worker will touch it again unless
    /// it is retried.
    pub fn is_settled(&self) -> bool {
        matches!(
            self.status,
            ItemStatus::Sent { .. } | ItemStatus::Parked { .. } | ItemStatus::Cancelled { .. }
        )
    }

    /// When it may be attempted next: now for a queued item, the backoff's end while waiting to
    /// retry, none otherwise.
    pub fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        match &self.status {
            ItemStatus::Queued => Some(self.updated_at),
            ItemStatus::RetryWait { next_attempt_at } => Some(*next_attempt_at),
            _ => None,
        }
    }

    /// Whether it may be attempted at `now`.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        match &self.status {
            ItemStatus::Queued => true,
            ItemStatus::RetryWait { next_attempt_at } => *next_attempt_at <= now,
            _ => false,
        }
    }

    /// The Jira label that identifies what it creates (Jira items only).
    pub fn jira_label(&self) -> Option<&str> {
        match &self.payload {
            Payload::Jira(p) => Some(p.label.as_str()),
            _ => None,
        }
    }
}

/// Where an outbox item stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ItemStatus {
    /// Waiting to be sent now.
    Queued,
    /// Claimed by a sender (left in this state by a crash: sent again on recovery).
    Sending {
        /// When it was claimed.
        #[serde(with = "time_format")]
        since: DateTime<Utc>,
    },
    /// Failed for a reason that may pass; attempted again from `next_attempt_at`.
    RetryWait {
        /// When.
        #[serde(with = "time_format")]
        next_attempt_at: DateTime<Utc>,
    },
    /// Delivered.
    Sent {
        /// When.
        #[serde(with = "time_format")]
        at: DateTime<Utc>,
    },
    /// Failed for good; waits for `outbox retry` or `outbox cancel`.
    Parked {
        /// Why.
        reason: String,
        /// When.
        #[serde(with = "time_format")]
        at: DateTime<Utc>,
    },
    /// Cancelled before delivery.
    Cancelled {
        /// When.
        #[serde(with = "time_format")]
        at: DateTime<Utc>,
    },
}

impl ItemStatus {
    /// `queued`, `sending`, `retry_wait`, `sent`, `parked` or `cancelled`.
    pub fn name(&self) -> &'static str {
        match self {
            ItemStatus::Queued => "queued",
            ItemStatus::Sending { .. } => "sending",
            ItemStatus::RetryWait { .. } => "retry_wait",
            ItemStatus::Sent { .. } => "sent",
            ItemStatus::Parked { .. } => "parked",
            ItemStatus::Cancelled { .. } => "cancelled",
        }
    }
}

/// What an item sends, rendered at queue time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    /// A complete email message and its envelope.
    Email(EmailPayload),
    /// A Jira create-issue request and its label.
    Jira(JiraPayload),
    /// A task JSON and its idempotency key.
    Webhook(WebhookPayload),
}

/// How failed items are retried (`[outbox]`).
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts before an item is parked.
    pub max_attempts: u32,
    /// Backoff after the first failed attempt.
    pub base: Duration,
    /// Longest backoff.
    pub max: Duration,
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempts` (1 for the first): `base · 2^(attempts−1)`
    /// capped at `max`, plus up to a quarter of it as random jitter. A server's `Retry-After`
    /// replaces it (capped at [`RETRY_AFTER_MAX`]) so the wait is never shorter than asked.
    pub fn delay(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(RETRY_AFTER_MAX)
                + crate::net::jitter(self.base.min(Duration::from_secs(1)) / 4);
        }
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(31));
        let delay = self.base.saturating_mul(factor).min(self.max);
        delay + crate::net::jitter(delay / 4)
    }
}

/// What one attempt at an item led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Delivered.
    Sent {
        /// Message-ID, Jira key or task id.
        reference: Option<String>,
        /// The other side's answer.
        detail: String,
    },
    /// Failed for now; attempted again from `next_attempt_at`.
    Retrying {
        /// When.
        next_attempt_at: DateTime<Utc>,
        /// What failed.
        error: String,
    },
    /// Failed for good.
    Parked {
        /// Why.
        reason: String,
    },
    /// Not attempted: the channel is not usable with the current settings (the item stays as
    /// it was).
    Skipped {
        /// Why (names the setting or environment variable).
        reason: String,
    },
}

/// What a flush did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlushReport {
    /// Every attempt (or skip), in order: item id, channel, outcome.
    pub outcomes: Vec<(u64, Channel, ItemOutcome)>,
    /// The items not settled when the flush ended (waiting to retry, or skipped).
    pub pending: Vec<OutboxItem>,
}

impl FlushReport {
    /// Items delivered.
    pub fn sent(&self) -> usize {
        self.count(|o| matches!(o, ItemOutcome::Sent { .. }))
    }

    /// Items parked.
    pub fn parked(&self) -> usize {
        self.count(|o| matches!(o, ItemOutcome::Parked { .. }))
    }

    fn count(&self, f: impl Fn(&ItemOutcome) -> bool) -> usize {
        self.outcomes.iter().filter(|(_, _, o)| f(o)).count()
    }

    /// Whether every item this flush touched ended delivered (after any retries) and nothing
    /// is left pending.
    pub fn is_complete(&self) -> bool {
        let mut last: std::collections::BTreeMap<u64, &ItemOutcome> = Default::default();
        for (id, _, o) in &self.outcomes {
            last.insert(*id, o);
        }
        self.pending.is_empty() && last.values().all(|o| matches!(o, ItemOutcome::Sent { .. }))
    }
}

/// Filters of [`Outbox::list`]; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxFilter {
    /// Only this channel.
    pub channel: Option<Channel>,
    /// Only items in this state (`queued`, `sending`, `retry_wait`, `sent`, `parked`,
    /// `cancelled`).
    pub status: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The outbox

/// The outbox of an open [`Store`]. Every mutating call returns only after its writes are on
/// disk.
#[derive(Clone, Copy)]
pub struct Outbox<'s> {
    store: &'s Store,
}

impl<'s> Outbox<'s> {
    /// The outbox of `store`.
    pub fn new(store: &'s Store) -> Outbox<'s> {
        Outbox { store }
    }

    /// The item with this id.
    pub fn get(&self, id: u64) -> Result<Option<OutboxItem>, DispatchError> {
        match self.store.case_get(CaseTree::Outbox, &id.to_be_bytes())? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The items that match `filter`, in id order.
    pub fn list(&self, filter: &OutboxFilter) -> Result<Vec<OutboxItem>, DispatchError> {
        let mut out = Vec::new();
        for kv in self.store.case_scan(CaseTree::Outbox, b"")? {
            let (_, bytes) = kv?;
            let item = decode(&bytes)?;
            if filter.channel.is_some_and(|c| c != item.channel)
                || filter
                    .status
                    .as_deref()
                    .is_some_and(|s| s != item.status.name())
            {
                continue;
            }
            out.push(item);
        }
        Ok(out)
    }

    /// The items not settled yet (queued, sending, waiting to retry), in id order.
    pub fn pending(&self) -> Result<Vec<OutboxItem>, DispatchError> {
        let mut out = Vec::new();
        for kv in self.store.case_scan(CaseTree::OutboxPending, b"")? {
            let (k, _) = kv?;
            let id = id_of(&k)?;
            let item = self.get(id)?.ok_or_else(|| DispatchError::Corrupt {
                what: "outbox index entry".into(),
                message: format!("it names item #{id}, which is not stored"),
            })?;
            out.push(item);
        }
        Ok(out)
    }

    /// The items that may be attempted at `now`, in id order.
    pub fn due(&self, now: DateTime<Utc>) -> Result<Vec<OutboxItem>, DispatchError> {
        Ok(self
            .pending()?
            .into_iter()
            .filter(|i| i.is_due(now))
            .collect())
    }

    /// The Jira issue key stored for a break-key label, if an earlier dispatch created or found
    /// one.
    pub fn jira_key(&self, label: &str) -> Result<Option<String>, DispatchError> {
        Ok(self
            .store
            .case_get(CaseTree::JiraKeys, label.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Puts the items a stopped process left in `sending` back in the queue (due at once), and
    /// returns their ids. Call it once when a sender starts: the store is held by one process,
    /// so an item in `sending` at that moment was interrupted — provided no other sender of this
    /// process (a [`super::OutboxSender`], another [`Outbox::flush`]) is sending at the same time: run
    /// one sender per store.
    pub fn recover_interrupted(&self, now: DateTime<Utc>) -> Result<Vec<u64>, DispatchError> {
        let mut ids = Vec::new();
        for item in self.pending()? {
            if !matches!(item.status, ItemStatus::Sending { .. }) {
                continue;
            }
            let done = self.update(item.id, |item| {
                if !matches!(item.status, ItemStatus::Sending { .. }) {
                    return Ok(None);
                }
                item.status = ItemStatus::Queued;
                item.last_error =
                    Some("interrupted while sending (the process stopped); sent again".to_string());
                item.updated_at = now;
                Ok(Some(()))
            })?;
            if done.is_some() {
                tracing::warn!(id = item.id, channel = %item.channel, "outbox item interrupted while sending; queued again");
                ids.push(item.id);
            }
        }
        Ok(ids)
    }

    /// Moves a parked item (or one waiting to retry) back to the queue, due at once; a parked
    /// item gets a fresh budget of attempts and its cases show it queued again. Refused for an
    /// item being sent, sent or cancelled.
    pub fn retry(&self, id: u64, actor: &Actor) -> Result<OutboxItem, DispatchError> {
        actor.validate()?;
        let now = super::now_millis();
        self.transition(id, actor, now, |item| match &item.status {
            ItemStatus::Queued => Ok(None),
            ItemStatus::RetryWait { .. } => {
                item.status = ItemStatus::Queued;
                Ok(None)
            }
            ItemStatus::Parked { .. } => {
                item.status = ItemStatus::Queued;
                item.attempts = 0;
                Ok(Some((
                    DispatchState::Queued,
                    Some(format!("retry requested by {}", actor.user)),
                )))
            }
            ItemStatus::Sending { .. } => Err("it is being sent".to_string()),
            ItemStatus::Sent { .. } => Err("it was sent; there is nothing to retry".to_string()),
            ItemStatus::Cancelled { .. } => {
                Err("it was cancelled; dispatch its cases again to send them".to_string())
            }
        })
    }

    /// Cancels an item that was not delivered (queued, waiting to retry, or parked): it is never
    /// sent, and its cases may be dispatched again on the channel. Refused for an item being
    /// sent or sent.
    pub fn cancel(&self, id: u64, actor: &Actor) -> Result<OutboxItem, DispatchError> {
        actor.validate()?;
        let now = super::now_millis();
        self.transition(id, actor, now, |item| match &item.status {
            ItemStatus::Queued | ItemStatus::RetryWait { .. } | ItemStatus::Parked { .. } => {
                item.status = ItemStatus::Cancelled { at: now };
                Ok(Some((
                    DispatchState::Cancelled,
                    Some(format!("cancelled by {}", actor.user)),
                )))
            }
            ItemStatus::Cancelled { .. } => Ok(None),
            ItemStatus::Sending { .. } => Err("it is being sent".to_string()),
            ItemStatus::Sent { .. } => Err("it was sent; it cannot be cancelled".to_string()),
        })
    }

    /// Attempts every item due at `now` once, in id order, with `dispatcher`; items of a channel
    /// the dispatcher cannot use are skipped (left as they are).
    pub fn flush_due(
        &self,
        dispatcher: &Dispatcher,
        now: DateTime<Utc>,
    ) -> Result<FlushReport, DispatchError> {
        let mut report = FlushReport::default();
        self.flush_pass(dispatcher, now, true, &mut |item, outcome| {
            report
                .outcomes
                .push((item.id, item.channel, outcome.clone()));
        })?;
        report.pending = self.pending()?;
        Ok(report)
    }

    /// Sends what is due, then keeps sending retries that fall due within `wait`; returns when
    /// nothing is pending or the next retry is later than that. Items a stopped process left in
    /// `sending` are sent again first (so do not call it while a [`super::OutboxSender`] runs on the
    /// same store). `on_outcome` is called after each attempt (or skip).
    pub fn flush(
        &self,
        dispatcher: &Dispatcher,
        wait: Duration,
        mut on_outcome: impl FnMut(&OutboxItem, &ItemOutcome),
    ) -> Result<FlushReport, DispatchError> {
        let deadline = Instant::now() + wait;
        let mut report = FlushReport::default();
        self.recover_interrupted(super::now_millis())?;
        let mut first = true;
        loop {
            self.flush_pass(
                dispatcher,
                super::now_millis(),
                first,
                &mut |item, outcome| {
                    on_outcome(item, outcome);
                    report
                        .outcomes
                        .push((item.id, item.channel, outcome.clone()));
                },
            )?;
            first = false;
            let next = self
                .pending()?
                .iter()
                .filter(|i| dispatcher.channel_problem(i.channel).is_none())
                .filter_map(OutboxItem::next_attempt_at)
                .min();
            let Some(next) = next else { break };
            let until = (next - super::now_millis())
                .to_std()
                .unwrap_or(Duration::ZERO);
            if Instant::now() + until > deadline {
                break;
            }
            std::thread::sleep(until.max(Duration::from_millis(5)));
        }
        report.pending = self.pending()?;
        Ok(report)
    }

    /// One pass over the due items. Items of unusable channels are reported as skipped when
    /// `report_skipped`, else left out silently.
    pub(crate) fn flush_pass(
        &self,
        dispatcher: &Dispatcher,
        now: DateTime<Utc>,
        report_skipped: bool,
        on_outcome: &mut dyn FnMut(&OutboxItem, &ItemOutcome),
    ) -> Result<(), DispatchError> {
        for item in self.due(now)? {
            if let Some(problem) = dispatcher.channel_problem(item.channel) {
                if report_skipped {
                    on_outcome(
                        &item,
                        &ItemOutcome::Skipped {
                            reason: problem.to_string(),
                        },
                    );
                }
                continue;
            }
            let Some(claimed) = self.claim(item.id, now)? else {
                continue;
            };
            let known = match claimed.jira_label() {
                Some(label) => self.jira_key(label)?,
                None => None,
            };
            let sent = match known {
                Some(key) => SendOutcome::Sent {
                    detail: format!("{key} was already created for this label (key map)"),
                    reference: Some(key),
                },
                None => dispatcher.send(&claimed),
            };
            let at = now.max(super::now_millis());
            let (item, outcome) = self.record(claimed.id, sent, at, dispatcher.policy())?;
            match &outcome {
                ItemOutcome::Sent { reference, .. } => tracing::info!(
                    id = item.id,
                    channel = %item.channel,
                    reference = reference.as_deref().unwrap_or(""),
                    "dispatch sent"
                ),
                ItemOutcome::Retrying { error, .. } => {
                    tracing::warn!(id = item.id, channel = %item.channel, attempts = item.attempts, %error, "dispatch failed; will retry")
                }
                ItemOutcome::Parked { reason } => {
                    tracing::error!(id = item.id, channel = %item.channel, %reason, "dispatch parked")
                }
                ItemOutcome::Skipped { .. } => {}
            }
            on_outcome(&item, &outcome);
        }
        Ok(())
    }

    /// Claims a due item for sending (`sending`, one more attempt); `None` if it is not due (any
    /// more).
    fn claim(&self, id: u64, now: DateTime<Utc>) -> Result<Option<OutboxItem>, DispatchError> {
        self.update(id, |item| {
            if !item.is_due(now) {
                return Ok(None);
            }
            item.status = ItemStatus::Sending { since: now };
            item.attempts += 1;
            item.updated_at = now;
            Ok(Some(item.clone()))
        })
    }

    /// Records the result of an attempt on a claimed item, and on its cases.
    fn record(
        &self,
        id: u64,
        sent: SendOutcome,
        at: DateTime<Utc>,
        policy: &RetryPolicy,
    ) -> Result<(OutboxItem, ItemOutcome), DispatchError> {
        let result = self.store.case_transaction(|txn| {
            let mut item = load_txn(txn, id)?;
            let (outcome, change) = match &sent {
                SendOutcome::Sent { reference, detail } => {
                    item.status = ItemStatus::Sent { at };
                    item.result = reference.clone();
                    item.response = Some(detail.clone());
                    item.last_error = None;
                    if let (Some(label), Some(key)) = (item.jira_label(), reference.as_deref())
                        && crate::cases::is_jira_key(key)
                    {
                        txn.insert(CaseTree::JiraKeys, label.as_bytes(), key.as_bytes())?;
                    }
                    (
                        ItemOutcome::Sent {
                            reference: reference.clone(),
                            detail: detail.clone(),
                        },
                        Some((DispatchState::Sent, reference.clone(), None)),
                    )
                }
                SendOutcome::Transient { error, retry_after } => {
                    item.last_error = Some(error.clone());
                    if item.attempts >= policy.max_attempts {
                        let reason = format!(
                            "gave up after {} attempt(s); last error: {error}",
                            item.attempts
                        );
                        item.status = ItemStatus::Parked {
                            reason: reason.clone(),
                            at,
                        };
                        (
                            ItemOutcome::Parked {
                                reason: reason.clone(),
                            },
                            Some((DispatchState::Parked, None, Some(reason))),
                        )
                    } else {
                        let wait = policy.delay(item.attempts, *retry_after);
                        let next_attempt_at = at
                            + chrono::Duration::from_std(wait)
                                .unwrap_or(chrono::Duration::seconds(3600));
                        item.status = ItemStatus::RetryWait { next_attempt_at };
                        (
                            ItemOutcome::Retrying {
                                next_attempt_at,
                                error: error.clone(),
                            },
                            None,
                        )
                    }
                }
                SendOutcome::Permanent { error } => {
                    item.last_error = Some(error.clone());
                    item.status = ItemStatus::Parked {
                        reason: error.clone(),
                        at,
                    };
                    (
                        ItemOutcome::Parked {
                            reason: error.clone(),
                        },
                        Some((DispatchState::Parked, None, Some(error.clone()))),
                    )
                }
            };
            item.updated_at = at;
            if let Some((state, reference, note)) = change {
                let change = DispatchChange {
                    channel: item.channel,
                    outbox_id: item.id,
                    state,
                    reference,
                    note,
                };
                for case_id in &item.case_ids {
                    crate::cases::apply_dispatch(txn, case_id, &change, &item.queued_by, at)
                        .map_err(|e| e.map_abort(DispatchError::from))?;
                }
            }
            store_txn(txn, &item)?;
            Ok((item, outcome))
        })?;
        Ok(result)
    }

    /// Applies `change` to the item in one transaction; when it returns a new dispatch state,
    /// the item's cases take it (with an event by `actor`). `change` returns `Err(why)` to
    /// refuse.
    #[allow(clippy::type_complexity)]
    fn transition(
        &self,
        id: u64,
        actor: &Actor,
        now: DateTime<Utc>,
        change: impl Fn(&mut OutboxItem) -> Result<Option<(DispatchState, Option<String>)>, String>,
    ) -> Result<OutboxItem, DispatchError> {
        self.store.case_transaction(|txn| {
            let mut item = load_txn(txn, id)?;
            let before = item.status.clone();
            let state = change(&mut item).map_err(|why| {
                TxError::Abort(DispatchError::Refused {
                    id,
                    status: before.name().to_string(),
                    why,
                })
            })?;
            if item.status == before && state.is_none() {
                return Ok(item);
            }
            item.updated_at = now;
            if let Some((state, note)) = state {
                let change = DispatchChange {
                    channel: item.channel,
                    outbox_id: item.id,
                    state,
                    reference: None,
                    note,
                };
                for case_id in &item.case_ids {
                    crate::cases::apply_dispatch(txn, case_id, &change, actor, now)
                        .map_err(|e| e.map_abort(DispatchError::from))?;
                }
            }
            store_txn(txn, &item)?;
            Ok(item)
        })
    }

    /// Reads, changes and writes one item in a transaction (no case changes); `f` returns
    /// `None` to write nothing.
    fn update<R>(
        &self,
        id: u64,
        f: impl Fn(&mut OutboxItem) -> Result<Option<R>, DispatchError>,
    ) -> Result<Option<R>, DispatchError> {
        self.store.case_transaction(|txn| {
            let mut item = load_txn(txn, id)?;
            match f(&mut item).map_err(TxError::Abort)? {
                Some(r) => {
                    store_txn(txn, &item)?;
                    Ok(Some(r))
                }
                None => Ok(None),
            }
        })
    }
}

/// Reserves `count` consecutive outbox ids and returns the first (durable when it returns).
pub(crate) fn reserve_ids(store: &Store, count: u64) -> Result<u64, DispatchError> {
    store.case_transaction(|txn| {
        let mut first = None;
        for _ in 0..count.max(1) {
            let id = crate::cases::next_counter(txn, OUTBOX_COUNTER)
                .map_err(|e| e.map_abort(DispatchError::from))?;
            first.get_or_insert(id);
        }
        Ok(first.unwrap_or(1))
    })
}

pub(crate) fn encode(item: &OutboxItem) -> Result<Vec<u8>, DispatchError> {
    serde_json::to_vec(item).map_err(|e| DispatchError::Invalid(e.to_string()))
}

fn decode(bytes: &[u8]) -> Result<OutboxItem, DispatchError> {
    serde_json::from_slice(bytes).map_err(|e| DispatchError::Corrupt {
        what: "outbox item".into(),
        message: e.to_string(),
    })
}

fn id_of(key: &[u8]) -> Result<u64, DispatchError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| DispatchError::Corrupt {
            what: "outbox index entry".into(),
            message: format!("bad key length {}", key.len()),
        })
}

fn load_txn(
    txn: &crate::store::CaseTxn<'_>,
    id: u64,
) -> Result<OutboxItem, TxError<DispatchError>> {
    match txn.get(CaseTree::Outbox, &id.to_be_bytes())? {
        Some(bytes) => decode(&bytes).map_err(TxError::Abort),
        None => Err(TxError::Abort(DispatchError::NotFound(id))),
    }
}

/// Writes the item and keeps the pending index in step with its status.
fn store_txn(
    txn: &crate::store::CaseTxn<'_>,
    item: &OutboxItem,
) -> Result<(), TxError<DispatchError>> {
    let key = item.id.to_be_bytes();
    txn.insert(
        CaseTree::Outbox,
        &key,
        &encode(item).map_err(TxError::Abort)?,
    )?;
    if item.is_settled() {
        txn.remove(CaseTree::OutboxPending, &key)?;
    } else {
        txn.insert(CaseTree::OutboxPending, &key, b"")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn backoff_doubles_is_capped_and_honours_retry_after() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            max: Duration::from_millis(350),
        };
        let within = |d: Duration, lo: u64, hi: u64| {
            d >= Duration::from_millis(lo) && d <= Duration::from_millis(hi)
        };
        assert!(within(p.delay(1, None), 100, 125));
        assert!(within(p.delay(2, None), 200, 250));
        assert!(within(p.delay(3, None), 350, 438));
        assert!(within(p.delay(40, None), 350, 438));
        // Retry-After is never shortened, even below or above the backoff.
        assert!(within(p.delay(1, Some(Duration::from_secs(2))), 2000, 2025));
        assert!(p.delay(1, Some(Duration::from_secs(7200))) >= RETRY_AFTER_MAX);
        // Jitter: not every delay is the same.
        let many: BTreeSet<Duration> = (0..20).map(|_| p.delay(1, None)).collect();
        assert!(many.len() > 1, "{many:?}");
    }

    #[test]
    fn statuses_serialize_with_their_name_and_round_trip() {
        let t = DateTime::parse_from_rfc3339("2024-05-01T09:30:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        for s in [
            ItemStatus::Queued,
            ItemStatus::Sending { since: t },
            ItemStatus::RetryWait { next_attempt_at: t },
            ItemStatus::Sent { at: t },
            ItemStatus::Parked {
                reason: "400: bad project".into(),
                at: t,
            },
            ItemStatus::Cancelled { at: t },
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert!(
                json.contains(&format!("\"state\":\"{}\"", s.name())),
                "{json}"
            );
            assert_eq!(serde_json::from_str::<ItemStatus>(&json).unwrap(), s);
        }
    }
}
