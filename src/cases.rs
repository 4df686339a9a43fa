//! The case store: breakdesk's system of record for analysts' decisions on flagged breaks.
//!
//! Each flagged anomaly (a break: a run of out-of-tolerance records of one key of one profile)
//! becomes one [`Case`], whose id is derived from the break's identity ([`case_id`]), so that
//! running the same file again, or the next day's file in which the break persists, updates the
//! same case instead of opening another. A case gets a ticket (`BRK-YYYYMMDD-NNNNNN`) when it is
//! created, from a counter that is never reused.
//!
//! Analysts and supervisors move cases through a status machine ([`Status`], [`Action`]):
//!
//! ```text
//! PendingReview ─accept→ Accepted ─reopen→ PendingReview
//!               ─reject→ Rejected ─reopen→ PendingReview
//!               ─propose→ AutoResolveProposed ─approve→ Approved ─reopen→ PendingReview
//!                                             ─return→ Returned (accept / reject / propose again)
//! PendingReview, Returned, AutoResolveProposed ─(the break clears by itself)→ Cleared
//! Cleared ─accept / reject→ Accepted / Rejected, ─reopen→ PendingReview
//! ```
//!
//! Breaks roll forward from one reconciliation cycle to the next ([`Cases::roll_forward`]): a
//! case whose account is back within tolerance has cleared (an undecided case becomes
//! `Cleared`, a decided one keeps its decision and records the date); a cleared break that comes
//! back within `reopen_days` reopens its case; a decided case whose difference moves past
//! `recertify_share` goes back to review.
//!
//! Rejecting, returning and reopening need a reason (or comment). Only supervisors approve and
//! return, and never approve an auto-resolution they proposed themselves (maker-checker). Rules
//! only propose: a new case whose bucket says rules may auto-resolve it starts in
//! `AutoResolveProposed`, never further.
//!
//! Every action appends an [`Event`] (events are never changed or deleted); the case and its event
//! are written in one transaction and flushed to disk before the call returns, so a decision that
//! was acknowledged survives a crash. Decided cases also feed the training labels ([`Label`]).
//!
//! All operations go through [`Cases`], a handle on an open [`Store`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{CaseReader, CaseTree, CaseTxn, Store, StoreError, TxError};

/// The user recorded on events that breakdesk itself writes (a case created from a flagged
/// record).
pub const SYSTEM_USER: &str = "breakdesk";

/// The user recorded on events of auto-resolutions proposed by the bucket rules.
pub const RULES_USER: &str = "rules";

/// The longest note on a case, in characters.
pub const MAX_NOTE_CHARS: usize = 4000;

const TICKET_COUNTER: &[u8] = b"ticket";
const EVENT_COUNTER: &[u8] = b"event";

// ---------------------------------------------------------------------------------------------
// Identity

/// Records per transaction in [`Cases::upsert_batch`]: the store packs many cases to a stored
/// value, and a transaction writes each value it changed once, so larger transactions write
/// less (a run records its cases in groups of 20,000 records).
const UPSERT_CHUNK: usize = 20_000;

/// The stable id of the case of a break: `"C-"` followed by the first 12 hex digits of
/// SHA-256(`profile` NUL `key` NUL `start_date` as `YYYY-MM-DD`), where `start_date` is the date
/// the break (the run of out-of-tolerance records) began.
pub fn case_id(profile: &str, key: &str, start_date: NaiveDate) -> String {
    let mut h = Sha256::new();
    h.update(profile.as_bytes());
    h.update([0u8]);
    h.update(key.as_bytes());
    h.update([0u8]);
    h.update(start_date.to_string().as_bytes());
    let digest = h.finalize();
    let mut id = String::with_capacity(14);
    id.push_str("C-");
    for b in &digest[..6] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

// ---------------------------------------------------------------------------------------------
// Statuses, actions, roles

/// Where a case stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Status {
    /// Waiting for an analyst (the status of a new model-flagged case).
    PendingReview,
    /// A real break, to be dispatched.
    Accepted,
    /// A false positive (with the reason).
    Rejected,
    /// Proposed for auto-resolution (by the rules or an analyst), waiting for a supervisor.
    AutoResolveProposed,
    /// Auto-resolution approved by a supervisor.
    Approved,
    /// Auto-resolution sent back by a supervisor (with a comment): pending work again.
    Returned,
    /// The break cleared by itself before anyone decided (its account came back within
    /// tolerance, or its record dropped out of a breaks-only report): closed, no label.
    Cleared,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 7] = [
        Status::PendingReview,
        Status::Accepted,
        Status::Rejected,
        Status::AutoResolveProposed,
        Status::Approved,
        Status::Returned,
        Status::Cleared,
    ];

    /// The status's name, as shown to users and written in exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::PendingReview => "PendingReview",
            Status::Accepted => "Accepted",
            Status::Rejected => "Rejected",
            Status::AutoResolveProposed => "AutoResolveProposed",
            Status::Approved => "Approved",
            Status::Returned => "Returned",
            Status::Cleared => "Cleared",
        }
    }

    /// The actions that are legal from this status (whoever acts).
    pub fn allowed_actions(self) -> &'static [Action] {
        match self {
            Status::PendingReview | Status::Returned => {
                &[Action::Accept, Action::Reject, Action::Propose]
            }
            Status::AutoResolveProposed => &[Action::Approve, Action::Return],
            Status::Accepted | Status::Rejected | Status::Approved => &[Action::Reopen],
            // A cleared break may still be judged (a label for training) or reopened.
            Status::Cleared => &[Action::Accept, Action::Reject, Action::Reopen],
        }
    }

    /// The training label of a case in this status: `Some(true)` for a true break (Accepted,
    /// Approved), `Some(false)` for a false positive (Rejected), `None` while undecided.
    pub fn label(self) -> Option<bool> {
        match self {
            Status::Accepted | Status::Approved => Some(true),
            Status::Rejected => Some(false),
            Status::PendingReview
            | Status::AutoResolveProposed
            | Status::Returned
            | Status::Cleared => None,
        }
    }

    /// Whether a case in this status still waits for someone (not decided, not cleared).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Status::PendingReview | Status::AutoResolveProposed | Status::Returned
        )
    }

    /// Whether a case in this status carries an analyst's or supervisor's verdict.
    pub fn is_decided(self) -> bool {
        matches!(self, Status::Accepted | Status::Rejected | Status::Approved)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Status {
    /// Parses a status name as [`FromStr`] does, also accepting the short names `pending` and
    /// `proposed` (or `auto-resolve`).
    pub fn parse_loose(s: &str) -> Result<Status, CaseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pending" => Ok(Status::PendingReview),
            "proposed" | "auto-resolve" | "autoresolve" => Ok(Status::AutoResolveProposed),
            _ => s.parse(),
        }
    }
}

impl FromStr for Status {
    type Err = CaseError;

    /// Parses a status name, ignoring case, spaces, `_` and `-` (`pending_review` is
    /// `PendingReview`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = |x: &str| -> String {
            x.chars()
                .filter(|c| !matches!(c, '_' | '-' | ' '))
                .flat_map(char::to_lowercase)
                .collect()
        };
        let wanted = norm(s);
        Status::ALL
            .into_iter()
            .find(|st| norm(st.as_str()) == wanted)
            .ok_or_else(|| {
                CaseError::Invalid(format!(
                    "unknown status {s:?} (one of {})",
                    Status::ALL.map(Status::as_str).join(", ")
                ))
            })
    }
}

/// A decision that moves a case from one status to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A real break → [`Status::Accepted`].
    Accept,
    /// A false positive → [`Status::Rejected`]; needs a reason.
    Reject,
    /// Propose auto-resolution → [`Status::AutoResolveProposed`].
    Propose,
    /// Approve the proposed auto-resolution → [`Status::Approved`]; supervisors only, and not
    /// the proposer.
    Approve,
    /// Send the proposal back → [`Status::Returned`]; supervisors only; needs a comment.
    Return,
    /// Back to [`Status::PendingReview`] from a decided case; needs a reason.
    Reopen,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 6] = [
        Action::Accept,
        Action::Reject,
        Action::Propose,
        Action::Approve,
        Action::Return,
        Action::Reopen,
    ];

    /// The action's name (`accept`, `reject`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Reject => "reject",
            Action::Propose => "propose",
            Action::Approve => "approve",
            Action::Return => "return",
            Action::Reopen => "reopen",
        }
    }

    /// The action done, as a message says it (`accepted`, `rejected`, …).
    pub fn past(self) -> &'static str {
        match self {
            Action::Accept => "accepted",
            Action::Reject => "rejected",
            Action::Propose => "proposed",
            Action::Approve => "approved",
            Action::Return => "returned",
            Action::Reopen => "reopened",
        }
    }

    /// The status a case has after this action.
    pub fn target(self) -> Status {
        match self {
            Action::Accept => Status::Accepted,
            Action::Reject => Status::Rejected,
            Action::Propose => Status::AutoResolveProposed,
            Action::Approve => Status::Approved,
            Action::Return => Status::Returned,
            Action::Reopen => Status::PendingReview,
        }
    }

    /// What the action needs written with it, if anything: `"reason"` or `"comment"`.
    pub fn note_required(self) -> Option<&'static str> {
        match self {
            Action::Reject | Action::Reopen => Some("reason"),
            Action::Return => Some("comment"),
            Action::Accept | Action::Propose | Action::Approve => None,
        }
    }

    /// Whether only a supervisor may take this action.
    pub fn supervisor_only(self) -> bool {
        matches!(self, Action::Approve | Action::Return)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = CaseError;

    /// Parses an action name, ignoring case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_lowercase();
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == wanted)
            .ok_or_else(|| {
                CaseError::Invalid(format!(
                    "unknown action {s:?} (one of {})",
                    Action::ALL.map(Action::as_str).join(", ")
                ))
            })
    }
}

/// What an [`Event`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventAction {
    /// A case opened from a model-flagged record.
    Create,
    /// See [`Action::Accept`].
    Accept,
    /// See [`Action::Reject`].
    Reject,
    /// See [`Action::Propose`] (also written by the rules, user [`RULES_USER`]).
    Propose,
    /// See [`Action::Approve`].
    Approve,
    /// See [`Action::Return`].
    Return,
    /// See [`Action::Reopen`].
    Reopen,
    /// A case opened by an analyst for a break the model missed.
    Flag,
    /// The case's last decision was reverted.
    Undo,
    /// A Jira key was linked to the case.
    LinkJira,
    /// The case was dispatched: a channel (email, Jira, webhook) delivered it; the reason names
    /// the channel, what the other side answered (message id, issue key, task id) and the
    /// outbox item.
    Dispatched,
    /// The case was queued for dispatch on a channel (the reason names it and the outbox item).
    DispatchQueued,
    /// A dispatch of the case failed for good and was parked (the reason says why).
    DispatchParked,
    /// A queued or parked dispatch of the case was cancelled.
    DispatchCancelled,
    /// The break cleared by itself (the event's record is the clearing record). An undecided
    /// case becomes [`Status::Cleared`]; a decided one keeps its decision.
    Cleared,
    /// A cleared break came back within `[cases] reopen_days`: the same case, back to review.
    Reappeared,
    /// A decided case whose difference moved past `[cases] recertify_share` (or changed sign)
    /// went back to review (the reason says from what to what).
    Recertified,
    /// The case was given an owner (the reason names the owner, and the previous one).
    Assign,
    /// The owner let the case go (the reason names who owned it).
    Release,
    /// A free-text note on the case (the reason is the note); not a status change.
    Note,
}

impl EventAction {
    /// The event action's name (`create`, `accept`, …, `link_jira`, `dispatched`,
    /// `dispatch_queued`, `dispatch_parked`, `dispatch_cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Create => "create",
            EventAction::Accept => "accept",
            EventAction::Reject => "reject",
            EventAction::Propose => "propose",
            EventAction::Approve => "approve",
            EventAction::Return => "return",
            EventAction::Reopen => "reopen",
            EventAction::Flag => "flag",
            EventAction::Undo => "undo",
            EventAction::LinkJira => "link_jira",
            EventAction::Dispatched => "dispatched",
            EventAction::DispatchQueued => "dispatch_queued",
            EventAction::DispatchParked => "dispatch_parked",
            EventAction::DispatchCancelled => "dispatch_cancelled",
            EventAction::Cleared => "cleared",
            EventAction::Reappeared => "reappeared",
            EventAction::Recertified => "recertified",
            EventAction::Assign => "assign",
            EventAction::Release => "release",
            EventAction::Note => "note",
        }
    }
}

impl From<Action> for EventAction {
    fn from(a: Action) -> Self {
        match a {
            Action::Accept => EventAction::Accept,
            Action::Reject => EventAction::Reject,
            Action::Propose => EventAction::Propose,
            Action::Approve => EventAction::Approve,
            Action::Return => EventAction::Return,
            Action::Reopen => EventAction::Reopen,
        }
    }
}

impl fmt::Display for EventAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who opened a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Origin {
    /// Flagged by the model.
    Model,
    /// Flagged by an analyst (a break the model missed).
    Analyst,
}

/// A stored case that could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub case_id: String,
    pub error: String,
}

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reviews cases: accept, reject, propose, reopen, flag.
    Analyst,
    /// Everything an analyst does, and approves or returns auto-resolutions.
    Supervisor,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Analyst => "analyst",
            Role::Supervisor => "supervisor",
        })
    }
}

/// The person acting on a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The user name recorded on events (not empty; not [`SYSTEM_USER`] or [`RULES_USER`], nor
    /// starting with `rules:`).
    pub user: String,
    /// The user's role.
    pub role: Role,
}

impl Actor {
    /// An analyst.
    pub fn analyst(user: impl Into<String>) -> Actor {
        Actor {
            user: user.into(),
            role: Role::Analyst,
        }
    }

    /// A supervisor.
    pub fn supervisor(user: impl Into<String>) -> Actor {
        Actor {
            user: user.into(),
            role: Role::Supervisor,
        }
    }

    /// Checks the user name (not empty, not one of breakdesk's own).
    pub fn validate(&self) -> Result<(), CaseError> {
        let u = self.user.trim();
        if u.is_empty() || u != self.user {
            return Err(CaseError::Invalid(format!(
                "user {:?} must be a non-empty name without surrounding spaces",
                self.user
            )));
        }
        if u == SYSTEM_USER || u == RULES_USER || u.starts_with("rules:") {
            return Err(CaseError::Invalid(format!(
                "user {u:?} is reserved for breakdesk's own events"
            )));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Dispatch

/// A way a case leaves the workstation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// An email report (SMTP).
    Email,
    /// A Jira issue.
    Jira,
    /// A task posted to a webhook.
    Webhook,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::Jira, Channel::Webhook];

    /// The channel's name (`email`, `jira`, `webhook`), also its config section.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Jira => "jira",
            Channel::Webhook => "webhook",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = CaseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_lowercase();
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == wanted)
            .ok_or_else(|| {
                CaseError::Invalid(format!(
                    "unknown channel {s:?} (one of email, jira, webhook)"
                ))
            })
    }
}

/// Where a case's dispatch on one channel stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DispatchState {
    /// Written to the outbox, not delivered yet (waiting, being sent, or waiting for a retry).
    Queued,
    /// Delivered: the other side acknowledged it.
    Sent,
    /// Failed for good; the outbox item waits for `outbox retry` or `outbox cancel`.
    Parked,
    /// Cancelled before it was delivered; the case may be dispatched again.
    Cancelled,
}

impl DispatchState {
    /// The state's name (`queued`, `sent`, `parked`, `cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            DispatchState::Queued => "queued",
            DispatchState::Sent => "sent",
            DispatchState::Parked => "parked",
            DispatchState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for DispatchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The latest dispatch of a case on one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDispatch {
    /// The channel.
    pub channel: Channel,
    /// Where it stands.
    pub state: DispatchState,
    /// The outbox item that carries it.
    pub outbox_id: u64,
    /// What the other side answered once sent: the email's Message-ID, the Jira issue key, the
    /// webhook's task id (when it gave one).
    pub reference: Option<String>,
    /// Why it was parked, or other detail.
    pub note: Option<String>,
    /// When the state was reached.
    #[serde(with = "time_format")]
    pub at: DateTime<Utc>,
}

/// A change of a case's dispatch on one channel, written by the outbox
/// ([`crate::notify`]) in the same transaction as its own item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DispatchChange {
    /// The channel.
    pub channel: Channel,
    /// The outbox item.
    pub outbox_id: u64,
    /// The new state.
    pub state: DispatchState,
    /// The other side's reference (sent only).
    pub reference: Option<String>,
    /// Why (parked), or what happened (requeued, cancelled).
    pub note: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Records

/// One flagged record of a break, as the pipeline hands it over (also what an analyst flags with
/// [`Cases::flag_missed`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakInput {
    /// The reconciliation profile (e.g. `gl_ihub`).
    pub profile: String,
    /// The record's key columns joined as text (e.g. `00000|1001|0042`).
    pub key: String,
    /// The date the break began (its first out-of-tolerance record).
    #[serde(with = "date_format")]
    pub start_date: NaiveDate,
    /// The date of this record (not before `start_date`).
    #[serde(with = "date_format")]
    pub date: NaiveDate,
    /// Root-cause bucket.
    pub bucket: String,
    /// The rule (or decider) that chose the bucket.
    pub bucket_rule: String,
    /// Confidence of the bucket, 0 to 1.
    pub confidence: f64,
    /// Severity (e.g. `high`).
    pub severity: String,
    /// One-line summary.
    pub summary: String,
    /// Anomaly score.
    pub score: f64,
    /// Rank of the score in its run (1 = most anomalous).
    pub rank: u64,
    /// The difference between the two books.
    pub difference: f64,
    /// The model that scored the record.
    pub model_version: String,
    /// The record's columns.
    pub row: serde_json::Map<String, serde_json::Value>,
}

impl BreakInput {
    /// Refuses a record no case can be made of (an empty or NUL-bearing profile or key, a date
    /// before its start, a number that is not finite).
    pub fn validate(&self) -> Result<(), CaseError> {
        let bad = |m: String| Err(CaseError::Invalid(m));
        for (name, v) in [("profile", &self.profile), ("key", &self.key)] {
            if v.trim().is_empty() {
                return bad(format!("the {name} of a break must not be empty"));
            }
            if v.contains('\0') {
                return bad(format!("the {name} of a break must not contain NUL"));
            }
        }
        if self.date < self.start_date {
            return bad(format!(
                "break {}/{}: record date {} is before its start date {}",
                self.profile, self.key, self.date, self.start_date
            ));
        }
        for (name, v) in [
            ("confidence", self.confidence),
            ("score", self.score),
            ("difference", self.difference),
        ] {
            if !v.is_finite() {
                return bad(format!(
                    "break {}/{}: {name} is not a finite number",
                    self.profile, self.key
                ));
            }
        }
        Ok(())
    }

    /// A break the model missed, as an analyst flags it (from the command line or the terminal
    /// UI): bucketed by the analyst with full confidence, at no score or rank, of no model and
    /// with no record; the terminal UI adds the row's own when it has them.
    pub fn analyst(
        profile: String,
        key: String,
        (start_date, date): (NaiveDate, NaiveDate),
        bucket: String,
        severity: String,
        summary: String,
        difference: f64,
    ) -> Self {
        BreakInput {
            profile,
            key,
            start_date,
            date,
            bucket,
            bucket_rule: "analyst".into(),
            confidence: 1.0,
            severity,
            summary,
            score: 0.0,
            rank: 0,
            difference,
            model_version: String::new(),
            row: serde_json::Map::new(),
        }
    }

    /// SHA-256 (hex) of the record as serialized: equal for the same record.
    fn fingerprint(&self) -> Result<String, CaseError> {
        let bytes = serde_json::to_vec(self).map_err(|e| CaseError::Invalid(e.to_string()))?;
        Ok(hex(&Sha256::digest(&bytes)))
    }
}

/// The last decision on a case, kept so that its maker can undo it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The event that recorded it.
    pub seq: u64,
    /// Who decided.
    pub user: String,
    /// What was decided.
    pub action: Action,
    /// The status before.
    pub from: Status,
    /// `proposed_by` before.
    pub prev_proposed_by: Option<String>,
}

/// One case: a flagged break and the analysts' decisions on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Stable id, see [`case_id`].
    pub id: String,
    /// `BRK-YYYYMMDD-NNNNNN`: the UTC day the case was created and a number never handed out
    /// before (at least six digits).
    pub ticket: String,
    /// The reconciliation profile.
    pub profile: String,
    /// The record's key as text.
    pub key: String,
    /// The date the break began.
    #[serde(with = "date_format")]
    pub start_date: NaiveDate,
    /// The date of the latest record of the break.
    #[serde(with = "date_format")]
    pub last_date: NaiveDate,
    /// Who opened the case.
    pub origin: Origin,
    /// Where the case stands.
    pub status: Status,
    /// Root-cause bucket (latest record).
    pub bucket: String,
    /// The rule that chose the bucket (latest record).
    pub bucket_rule: String,
    /// Bucket confidence (latest record).
    pub confidence: f64,
    /// Severity (latest record).
    pub severity: String,
    /// Summary (latest record).
    pub summary: String,
    /// Anomaly score (latest record).
    pub score: f64,
    /// Rank of the score (latest record).
    pub rank: u64,
    /// Difference between the books (latest record).
    pub difference: f64,
    /// The model that scored the latest record.
    pub model_version: String,
    /// Who proposed the auto-resolution (a user, or `rules:<bucket_rule>`), once proposed.
    pub proposed_by: Option<String>,
    /// The Jira issue of the case, once linked.
    pub jira_key: Option<String>,
    /// Whether the case was dispatched (set when a channel delivered it while it was Accepted).
    pub dispatched: bool,
    /// The latest dispatch per channel (at most one entry per channel; absent in stores written
    /// before dispatch existed).
    #[serde(default)]
    pub dispatches: Vec<ChannelDispatch>,
    /// When the case was created.
    #[serde(with = "time_format")]
    pub created_at: DateTime<Utc>,
    /// When the case last changed.
    #[serde(with = "time_format")]
    pub updated_at: DateTime<Utc>,
    /// The latest record's columns.
    pub row: serde_json::Map<String, serde_json::Value>,
    /// The last decision, while it can still be undone by its maker.
    pub last_decision: Option<Decision>,
    /// SHA-256 of the latest record applied (a record seen again changes nothing).
    pub fingerprint: String,
    /// The difference when the case was last decided (Accepted, Rejected, Approved): a break
    /// judged normal stays quiet while it persists near this amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judged_difference: Option<f64>,
    /// The difference of the break's first recorded record (absent in stores written before
    /// roll-forward existed: then the latest is all that is known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_difference: Option<f64>,
    /// The difference before the latest record (its change is `difference − this`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_difference: Option<f64>,
    /// The date of the record that cleared the break, while it stays cleared.
    #[serde(
        default,
        with = "opt_date_format",
        skip_serializing_if = "Option::is_none"
    )]
    pub cleared_on: Option<NaiveDate>,
    /// The as-of date of a cycle that saw the case's break clear but could not close it (the
    /// cycle that opened it): the next cycle looks only at records after it.
    #[serde(
        default,
        with = "opt_date_format",
        skip_serializing_if = "Option::is_none"
    )]
    pub seen_to: Option<NaiveDate>,
    /// Who works the case, once assigned or taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// When the case should be decided: the UTC day it was opened plus `[cases.sla_days]` of its
    /// (latest) severity.
    #[serde(
        default,
        with = "opt_date_format",
        skip_serializing_if = "Option::is_none"
    )]
    pub due: Option<NaiveDate>,
}

impl Case {
    /// Whether the case waits for someone past its due date on `today`.
    pub fn overdue(&self, today: NaiveDate) -> bool {
        self.status.is_open() && self.due.is_some_and(|d| d < today)
    }

    /// Whether the break is still outstanding (it has not cleared).
    pub fn outstanding(&self) -> bool {
        self.status != Status::Cleared && self.cleared_on.is_none()
    }

    /// Age of the break in days: `last_date − start_date` (0 on the day it began).
    pub fn age_days(&self) -> i64 {
        (self.last_date - self.start_date).num_days()
    }

    /// The case's latest dispatch on `channel`, if any.
    pub fn dispatch(&self, channel: Channel) -> Option<&ChannelDispatch> {
        self.dispatches.iter().find(|d| d.channel == channel)
    }

    /// Whether the case may be queued on `channel`: it was never dispatched there, or its last
    /// dispatch there was cancelled. A queued, sent or parked dispatch blocks another one (a
    /// parked one is retried or cancelled, not duplicated).
    pub fn dispatchable_on(&self, channel: Channel) -> bool {
        self.dispatch(channel)
            .is_none_or(|d| d.state == DispatchState::Cancelled)
    }

    fn refresh_from(&mut self, input: &BreakInput, fingerprint: String) {
        self.last_date = input.date;
        self.bucket = input.bucket.clone();
        self.bucket_rule = input.bucket_rule.clone();
        self.confidence = input.confidence;
        self.severity = input.severity.clone();
        self.summary = input.summary.clone();
        self.score = input.score;
        self.rank = input.rank;
        if self.difference != input.difference {
            self.previous_difference = Some(self.difference);
        }
        self.difference = input.difference;
        self.model_version = input.model_version.clone();
        self.row = input.row.clone();
        self.fingerprint = fingerprint;
    }
}

/// One entry of the append-only log of actions on cases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log: increases by one per event, across restarts, never reused.
    pub seq: u64,
    /// When.
    #[serde(with = "time_format")]
    pub at: DateTime<Utc>,
    /// Who ([`SYSTEM_USER`] or [`RULES_USER`] for breakdesk's own events).
    pub user: String,
    /// The user's role (`None` for breakdesk's own events).
    pub role: Option<Role>,
    /// The case.
    pub case_id: String,
    /// The case's ticket.
    pub ticket: String,
    /// What happened.
    pub action: EventAction,
    /// Status before (`None` when the case was created).
    pub from: Option<Status>,
    /// Status after.
    pub to: Option<Status>,
    /// The reason or comment given (for `link_jira`, the key; for `undo`, what was undone).
    pub reason: Option<String>,
    /// The case's model version at the time.
    pub model_version: String,
    /// The record the event is about, where one caused it (the clearing record of `cleared`,
    /// the returning record of `reappeared`, the moved record of `recertified`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<serde_json::Value>,
}

/// What [`Cases::upsert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new case (with its ticket and events).
    Created,
    /// An existing case took the record's date and numbers (no event: not a decision).
    Updated,
    /// The record was already applied (or is older than the case's latest): nothing written.
    Unchanged,
    /// A cleared break came back: its case is under review again (event `reappeared`).
    Reappeared,
    /// A decided case's difference moved past `[cases] recertify_share`: under review again
    /// (event `recertified`).
    Recertified,
}

/// The case after an upsert, and what changed.
#[derive(Clone, Debug, PartialEq)]
pub struct UpsertOutcome {
    /// The case as stored.
    pub case: Case,
    /// What the upsert did.
    pub change: Change,
}

/// What recording a run's record did to its case, without the case itself
/// ([`Cases::record_batch`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub id: String,
    pub ticket: String,
    /// The case's status once recorded.
    pub status: Status,
    pub change: Change,
}

impl Recorded {
    fn of(case: &Case, change: Change) -> Recorded {
        Recorded {
            id: case.id.clone(),
            ticket: case.ticket.clone(),
            status: case.status,
            change,
        }
    }
}

/// Filters of [`Cases::list`]; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaseFilter {
    /// Only cases in this status.
    pub status: Option<Status>,
    /// Only cases in this bucket.
    pub bucket: Option<String>,
    /// Only cases of this profile.
    pub profile: Option<String>,
}

/// A training label: the analysts' verdict on one decided case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// The case.
    pub case_id: String,
    /// The profile.
    pub profile: String,
    /// The record key.
    pub key: String,
    /// The case's latest record date.
    #[serde(with = "date_format")]
    pub date: NaiveDate,
    /// The date the break began (labels written before it was kept have none: the break is then
    /// only its latest record).
    #[serde(
        default,
        with = "opt_date_format",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_date: Option<NaiveDate>,
    /// `true`: a true break (Accepted, Approved; analyst-flagged cases start Accepted);
    /// `false`: a false positive (Rejected).
    pub label: bool,
    /// Who opened the case.
    pub origin: Origin,
    /// The difference when the verdict was given (labels written before it was kept have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub difference: Option<f64>,
}

/// One row of a feedback file for [`Cases::import_feedback`], as read (fields are validated by
/// the import). A row names its case by `case_id` (a case id or ticket) or by `profile`, `key`
/// and `date` (any date from the break's start to its latest record).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackRow {
    /// The row's line number in its file (reported with problems).
    pub line: usize,
    /// Case id or ticket.
    pub case_id: Option<String>,
    /// Profile (with `key` and `date`, when there is no `case_id`).
    pub profile: Option<String>,
    /// Record key.
    pub key: Option<String>,
    /// A date of the break, `YYYY-MM-DD`.
    pub date: Option<String>,
    /// `accept`/`1`/`true` (a true break) or `reject`/`0`/`false` (a false positive), any case.
    pub label: String,
    /// The reason; required to reject.
    pub reason: Option<String>,
}

/// A bad row of a feedback import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowProblem {
    /// The row's line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

/// What a feedback import applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedbackReport {
    /// Rows that decided a case (one event each).
    pub applied: usize,
    /// Rows whose case already carried that label.
    pub unchanged: usize,
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a case operation was refused or failed. Nothing was written when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No case has this id or ticket.
    #[error("no case {reference}")]
    NotFound {
        /// The id or ticket asked for.
        reference: String,
    },
    /// The action is not legal from the case's status.
    #[error(
        "case {case_id} is {status}: \"{action}\" is not allowed; allowed: {}",
        action_list(.allowed)
    )]
    IllegalTransition {
        /// The case.
        case_id: String,
        /// Its status.
        status: Status,
        /// The action refused.
        action: Action,
        /// The actions legal from `status`.
        allowed: Vec<Action>,
    },
    /// The action is for supervisors.
    #[error("\"{action}\" on case {case_id} needs a supervisor; {user} is an analyst")]
    NeedsSupervisor {
        /// The case.
        case_id: String,
        /// The action refused.
        action: Action,
        /// Who tried.
        user: String,
    },
    /// A supervisor tried to approve an auto-resolution they proposed.
    #[error(
        "maker-checker: {user} proposed the auto-resolution of case {case_id} and cannot also approve it; another supervisor must"
    )]
    MakerChecker {
        /// The case.
        case_id: String,
        /// The proposer who tried to approve.
        user: String,
    },
    /// The action needs a reason or comment.
    #[error("\"{action}\" on case {case_id} needs a {what}")]
    NoteRequired {
        /// The case.
        case_id: String,
        /// The action refused.
        action: EventAction,
        /// `reason` or `comment`.
        what: &'static str,
    },
    /// An analyst flagged a break that already has a case.
    #[error("this break is already case {case_id} ({ticket}, {status})")]
    AlreadyCase {
        /// The existing case.
        case_id: String,
        /// Its ticket.
        ticket: String,
        /// Its status.
        status: Status,
    },
    /// The last decision cannot be undone.
    #[error("cannot undo on case {case_id}: {why}")]
    UndoRefused {
        /// The case.
        case_id: String,
        /// Why not.
        why: String,
    },
    /// Only accepted cases are dispatched.
    #[error("case {case_id} is {status}: only an Accepted case can be dispatched")]
    NotDispatchable {
        /// The case.
        case_id: String,
        /// Its status.
        status: Status,
    },
    /// Bad input (names, numbers, dates, keys).
    #[error("{0}")]
    Invalid(String),
    /// The actor's role does not allow this (the message says what would).
    #[error("{0}")]
    NotAllowed(String),
    /// Someone other than the owner or a supervisor tried to change who owns a case.
    #[error("case {case_id} is {owner}'s: only {owner} or a supervisor may {what}; {user} is not")]
    NotOwner {
        /// The case.
        case_id: String,
        /// Its owner.
        owner: String,
        /// Who tried.
        user: String,
        /// What was refused.
        what: &'static str,
    },
    /// A feedback import had bad rows; none of its rows was applied.
    #[error(
        "feedback not imported (nothing was applied): {} bad row(s)\n{}",
        .0.len(),
        problem_list(.0)
    )]
    Feedback(Vec<RowProblem>),
    /// Something read from the store does not decode.
    #[error("the store holds an unreadable {what}: {message}")]
    Corrupt {
        /// What was read.
        what: String,
        /// The decoding error.
        message: String,
    },
}

fn action_list(actions: &[Action]) -> String {
    if actions.is_empty() {
        return "none".to_string();
    }
    actions
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn problem_list(problems: &[RowProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  line {}: {}", p.line, p.problem))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// The handle

type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;
type TxResult<T> = Result<T, TxError<CaseError>>;

/// The case operations on an open [`Store`]. Every mutating call returns only after its writes
/// are on disk.
#[derive(Clone)]
pub struct Cases<'s> {
    store: &'s Store,
    clock: Clock,
    roll: RollParams,
    router: Option<Arc<crate::routing::Router>>,
}

/// How breaks roll forward from one reconciliation cycle to the next (`[cases]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RollParams {
    /// A cleared break that comes back within this many days of clearing reopens its case;
    /// later it is a new case.
    pub reopen_days: i64,
    /// A decided case whose difference moves by more than this share of the difference judged
    /// (or changes sign) goes back to review.
    pub recertify_share: f64,
    /// Days from a case's opening to its due date, by severity: low, medium, high, critical
    /// (an unknown severity takes medium's).
    pub sla_days: [u32; 4],
}

impl Default for RollParams {
    fn default() -> Self {
        RollParams {
            reopen_days: 5,
            recertify_share: 0.10,
            sla_days: [10, 5, 2, 1],
        }
    }
}

impl RollParams {
    /// The due date of a case of `severity` opened on `opened`.
    pub fn due(&self, opened: NaiveDate, severity: &str) -> NaiveDate {
        let [low, medium, high, critical] = self.sla_days;
        let days = match severity.trim().to_ascii_lowercase().as_str() {
            "low" => low,
            "high" => high,
            "critical" => critical,
            _ => medium,
        };
        opened + chrono::Duration::days(i64::from(days))
    }
}

/// One record of an account in a reconciliation cycle (a file or a service record), as
/// [`Cases::roll_forward`] needs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CycleRecord {
    /// The record's date.
    pub date: NaiveDate,
    /// Whether the record is a break (out of tolerance, or a break status).
    pub out: bool,
    /// The difference between the books.
    pub difference: f64,
    /// For a break, the date its run of out-of-tolerance records began.
    pub start: NaiveDate,
}

/// A reconciliation cycle: what one file (or record) says about each account.
#[derive(Clone, Debug, Default)]
pub struct Cycle {
    /// The profile of the file.
    pub profile: String,
    /// Each account's records in this cycle, by key, in date order.
    pub records: HashMap<String, Vec<CycleRecord>>,
    /// The distinct dates of the file, ascending (the as-of date is the last).
    pub dates: Vec<NaiveDate>,
    /// Whether an account missing from the file has cleared (a report that lists only breaks,
    /// such as a trades break report) rather than being absent (nothing changes).
    pub absent_clears: bool,
    /// Cases opened by this cycle itself: new, neither persisting nor cleared by it (the next
    /// cycle tells whether they cleared); they take the cycle's latest date while they persist.
    pub opened: std::collections::HashSet<String>,
    /// Only the cases of the cycle's own accounts are looked at (a service record): found
    /// through the break index instead of reading every case of the profile.
    pub keyed: bool,
}

impl Cycle {
    /// Adds a record of `key` on `day` (days since 1970-01-01), a break or not, `age` days
    /// after its break began (the break age; a negative, absurd or missing age counts as 0).
    /// A record without a key or with an impossible day is left out. Call [`Cycle::seal`] after
    /// the last one.
    pub fn push_day(&mut self, key: &str, day: i32, out: bool, difference: f64, age: f64) {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        let Some(date) = epoch.checked_add_signed(chrono::Duration::days(i64::from(day))) else {
            return;
        };
        if key.is_empty() {
            return;
        }
        let days = if age.is_finite() && (0.0..1e6).contains(&age) {
            age.round() as i64
        } else {
            0
        };
        self.records
            .entry(key.to_string())
            .or_default()
            .push(CycleRecord {
                date,
                out,
                difference,
                start: date - chrono::Duration::days(days),
            });
        if self.dates.last() != Some(&date) {
            // A file has few distinct dates: when the list is full they are put in order and
            // deduplicated (room doubles only when that frees less than half), so that a file in
            // account order does not keep one date per row.
            if self.dates.len() == self.dates.capacity() && self.dates.len() >= 1024 {
                self.dates.sort_unstable();
                self.dates.dedup();
                if self.dates.len() > self.dates.capacity() / 2 {
                    self.dates.reserve(self.dates.capacity());
                }
            }
            self.dates.push(date);
        }
    }

    /// Puts each account's records and the cycle's dates in order (after the last push).
    pub fn seal(&mut self) {
        for recs in self.records.values_mut() {
            recs.sort_by_key(|r| r.date);
        }
        self.dates.sort_unstable();
        self.dates.dedup();
    }

    /// The cycle's as-of date (its latest date).
    pub fn as_of(&self) -> Option<NaiveDate> {
        self.dates.last().copied()
    }

    /// The first date of the cycle after `d`.
    fn next_date(&self, d: NaiveDate) -> Option<NaiveDate> {
        let i = self.dates.partition_point(|x| *x <= d);
        self.dates.get(i).copied()
    }
}

/// What [`Cases::roll_forward`] found for the open and decided cases of a profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollOutcome {
    /// Cases whose break is still out of tolerance in this cycle (not opened by it).
    pub persisting: usize,
    /// Cases whose break cleared in this cycle.
    pub cleared: usize,
    /// Decided cases sent back to review because their difference moved.
    pub recertified: usize,
    /// Cases whose account is not in this cycle (nothing changed).
    pub absent: usize,
}

/// What happens to one case in a cycle.
enum Roll {
    Absent,
    /// Seen, nothing newer than the case (counted as persisting when still out).
    Seen {
        out: bool,
    },
    Persist(CycleRecord),
    Clear {
        on: NaiveDate,
        record: serde_json::Value,
        reason: String,
    },
}

/// Drops what a brief case leaves out ([`Cases::outstanding_briefs`]).
fn briefly(case: &mut Case) {
    case.row = serde_json::Map::new();
    case.dispatches = Vec::new();
}

/// Where `case` stands in `cycle`.
fn roll_of(case: &Case, cycle: &Cycle) -> Roll {
    // What the store has already seen of the account.
    let seen = case
        .seen_to
        .map_or(case.last_date, |s| s.max(case.last_date));
    let Some(recs) = cycle.records.get(&case.key) else {
        return match cycle.as_of() {
            Some(as_of) if cycle.absent_clears && as_of > seen => Roll::Clear {
                on: as_of,
                record: serde_json::json!({ "date": as_of.to_string(), "dropped_out": true }),
                reason: format!("dropped out of the report of {as_of}"),
            },
            _ => Roll::Absent,
        };
    };
    let later = &recs[recs.partition_point(|r| r.date <= seen)..];
    if let Some(r) = later.iter().find(|r| !r.out || r.start != case.start_date) {
        let why = if r.out {
            format!("a new break began on {}", r.start)
        } else {
            format!("back within tolerance on {}", r.date)
        };
        return Roll::Clear {
            on: r.date,
            record: serde_json::json!({
                "date": r.date.to_string(),
                "difference": r.difference,
                "within_tolerance": !r.out,
            }),
            reason: why,
        };
    }
    let Some(last) = later.last().or(recs.last()) else {
        return Roll::Absent;
    };
    // A breaks-only report: the account's last break record is older than the report.
    if cycle.absent_clears
        && let Some(next) = cycle.next_date(last.date)
        && last.date >= case.last_date
        && next > seen
    {
        return Roll::Clear {
            on: next,
            record: serde_json::json!({ "date": next.to_string(), "dropped_out": true }),
            reason: format!("dropped out of the report of {next}"),
        };
    }
    if later.is_empty() {
        Roll::Seen { out: last.out }
    } else {
        Roll::Persist(*last)
    }
}

/// Rolls a case that `cycle` opens forward through it, as [`Cases::roll_forward_over`] would:
/// while its break persists the case takes the break's latest record; when the cycle saw the
/// break end, the case notes how far the cycle saw (the next cycle decides whether it cleared,
/// so that one file's anomalies stay reviewable).
fn roll_opened(case: &mut Case, cycle: &Cycle) {
    match roll_of(case, cycle) {
        Roll::Persist(r) => {
            case.last_date = r.date;
            if case.difference != r.difference {
                case.previous_difference = Some(case.difference);
            }
            case.difference = r.difference;
        }
        Roll::Clear { .. } => {
            if let Some(as_of) = cycle.as_of()
                && case.seen_to.is_none_or(|s| s < as_of)
            {
                case.seen_to = Some(as_of);
            }
        }
        Roll::Absent | Roll::Seen { .. } => {}
    }
}

/// The ids of `cases` that `cycle` changes; the absent and already-seen ones are counted in
/// `out`.
fn to_write(cases: &[Case], cycle: &Cycle, out: &mut RollOutcome) -> Vec<String> {
    let mut ids = Vec::new();
    for case in cases.iter().filter(|c| c.outstanding()) {
        let opened = cycle.opened.contains(&case.id);
        match roll_of(case, cycle) {
            Roll::Absent => out.absent += 1,
            Roll::Seen { out: brk } => {
                if brk && !opened {
                    out.persisting += 1;
                }
            }
            Roll::Clear { .. } if opened && case.seen_to >= cycle.as_of() => {}
            Roll::Persist(_) | Roll::Clear { .. } => ids.push(case.id.clone()),
        }
    }
    ids
}

/// Why a decided case must be reviewed again when its difference goes from `judged` to `now`,
/// if it must.
fn recertify_reason(judged: f64, now: f64, share: f64) -> Option<String> {
    if !judged.is_finite() || !now.is_finite() {
        return None;
    }
    if judged != 0.0 && now != 0.0 && judged.signum() != now.signum() {
        return Some(format!(
            "the difference changed sign: {} when decided, {} now",
            crate::text::fmt_amount(judged),
            crate::text::fmt_amount(now)
        ));
    }
    let moved = (now - judged).abs();
    if moved > share * judged.abs() + 1e-9 {
        let pct = if judged != 0.0 {
            format!("{:+.1}%", (now - judged) / judged.abs() * 100.0)
        } else {
            "from zero".to_string()
        };
        return Some(format!(
            "the difference moved from {} when decided to {} ({pct}, more than {:.0}%)",
            crate::text::fmt_amount(judged),
            crate::text::fmt_amount(now),
            share * 100.0
        ));
    }
    None
}

/// Sends a decided `case` back to review when its difference moved past `share` of the one
/// judged, with a `recertified` event. Returns whether it did.
fn recertify_if_moved(
    txn: &CaseTxn<'_>,
    case: &mut Case,
    share: f64,
    record: serde_json::Value,
    now: DateTime<Utc>,
) -> TxResult<bool> {
    if !case.status.is_decided() {
        return Ok(false);
    }
    let judged = case.judged_difference.unwrap_or(case.difference);
    let Some(reason) = recertify_reason(judged, case.difference, share) else {
        return Ok(false);
    };
    let from = case.status;
    case.status = Status::PendingReview;
    case.last_decision = None;
    case.proposed_by = None;
    append_event_note(
        txn,
        case,
        EventNote {
            action: EventAction::Recertified,
            user: SYSTEM_USER,
            role: None,
            from: Some(from),
            reason: Some(reason),
            record: Some(record),
        },
        now,
    )?;
    Ok(true)
}

impl<'s> Cases<'s> {
    /// The cases of `store`, timestamped with the system clock.
    pub fn new(store: &'s Store) -> Cases<'s> {
        Cases {
            store,
            clock: Arc::new(Utc::now),
            roll: RollParams::default(),
            router: None,
        }
    }

    /// The cases of `store`, timestamped with `clock` (tickets take the UTC day of `clock`).
    pub fn with_clock(
        store: &'s Store,
        clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static,
    ) -> Cases<'s> {
        Cases {
            store,
            clock: Arc::new(clock),
            roll: RollParams::default(),
            router: None,
        }
    }

    /// These cases, rolling forward with `roll` (`[cases]`) instead of the defaults.
    pub fn rolling(mut self, roll: RollParams) -> Cases<'s> {
        self.roll = roll;
        self
    }

    /// These cases, giving new cases an owner by `router` (`[[cases.routes]]`).
    pub fn routed(mut self, router: Arc<crate::routing::Router>) -> Cases<'s> {
        self.router = (!router.is_empty()).then_some(router);
        self
    }

    /// Rolls the profile's cases forward through `cycle` (call it after the cycle's flagged
    /// records were upserted): a case whose account came back within tolerance (or dropped out
    /// of a breaks-only report) has cleared — an undecided one becomes `Cleared`, a decided one
    /// keeps its decision and records the date; a case whose break persists takes the latest
    /// date and difference, and a decided one whose difference moved past `recertify_share`
    /// goes back to review. Accounts not in the cycle change nothing. Each change is an event,
    /// written durably in chunked transactions.
    pub fn roll_forward(&self, cycle: &Cycle) -> Result<RollOutcome, CaseError> {
        let mut cases = if cycle.keyed && !cycle.absent_clears {
            self.outstanding_cases_of(cycle)?
        } else {
            self.list(&CaseFilter {
                profile: Some(cycle.profile.clone()),
                ..CaseFilter::default()
            })?
        };
        self.roll_forward_over(cycle, &mut cases)
    }

    /// The outstanding cases of the cycle's own accounts, read through their markers.
    pub fn outstanding_cases_of(&self, cycle: &Cycle) -> Result<Vec<Case>, CaseError> {
        let mut keys: Vec<&String> = cycle.records.keys().collect();
        keys.sort();
        let mut reader = self.store.case_reader();
        let mut bytes = Vec::new();
        for key in keys {
            for id in outstanding_in(&mut reader, &cycle.profile, key)? {
                if let Some(b) = reader.get(CaseTree::Cases, id.as_bytes())? {
                    bytes.push(b);
                }
            }
        }
        drop(reader);
        use rayon::prelude::*;
        bytes.par_iter().map(|b| decode_case(b)).collect()
    }

    /// The outstanding cases of `profile` (not cleared), read through their markers, in ticket
    /// order: what a file's cycle rolls forward and its summary tallies. Cleared cases, which
    /// accumulate run after run, are not read.
    pub fn outstanding_cases(&self, profile: &str) -> Result<Vec<Case>, CaseError> {
        self.read_outstanding(profile, false)
    }

    /// [`Cases::outstanding_cases`] without what rolling them forward and tallying them never
    /// reads (the record's snapshot, the dispatch history), so that a profile with hundreds of
    /// thousands of outstanding cases is held in a fraction of the memory. Rolled forward with
    /// [`Cases::roll_forward_over`], the cases it writes come back without them too.
    pub fn outstanding_briefs(&self, profile: &str) -> Result<Vec<Case>, CaseError> {
        self.read_outstanding(profile, true)
    }

    fn read_outstanding(&self, profile: &str, brief: bool) -> Result<Vec<Case>, CaseError> {
        self.index_outstanding()?;
        let prefix = break_prefix(profile, "");
        let prefix = &prefix[..prefix.len() - 1];
        let tag = [&[0u8][..], OUTSTANDING_TAG].concat();
        let mut ids = Vec::new();
        for kv in self.store.case_scan(CaseTree::BreakIndex, prefix)? {
            let (k, id) = kv?;
            if memchr::memmem::find(&k[prefix.len()..], &tag).is_some() {
                ids.push(id);
            }
        }
        // Read page by page in slot order, decoded on every core a few thousand at a time: the
        // stored bytes of every outstanding case are never all in memory at once.
        let reader = self.store.case_reader();
        let mut cases: Vec<Case> = Vec::new();
        let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let decode_batch = |batch: &mut Vec<(Vec<u8>, Vec<u8>)>, cases: &mut Vec<Case>| {
            use rayon::prelude::*;
            let decoded: Vec<Option<Case>> = batch
                .par_iter()
                .map(|(id, bytes)| match decode_case(bytes) {
                    Ok(mut c) => {
                        if brief {
                            briefly(&mut c);
                        }
                        Some(c)
                    }
                    Err(e) => {
                        tracing::warn!(
                            case_id = %String::from_utf8_lossy(id),
                            error = %e,
                            "unreadable case left out"
                        );
                        None
                    }
                })
                .collect();
            cases.extend(decoded.into_iter().flatten());
            batch.clear();
        };
        reader.for_each_case(&ids, |id, bytes| {
            batch.push((id.to_vec(), bytes.to_vec()));
            if batch.len() >= 4096 {
                decode_batch(&mut batch, &mut cases);
            }
            Ok(())
        })?;
        decode_batch(&mut batch, &mut cases);
        cases.retain(|c| c.profile == profile && c.outstanding());
        cases.sort_by_cached_key(|c| (ticket_number(&c.ticket), c.ticket.clone()));
        Ok(cases)
    }

    /// [`Cases::roll_forward`] over `cases` as already read (every case of the profile, or the
    /// outstanding cases of the cycle's accounts); the cases it writes are replaced in `cases`
    /// by what was stored, so the caller need not read them all again.
    pub fn roll_forward_over(
        &self,
        cycle: &Cycle,
        cases: &mut [Case],
    ) -> Result<RollOutcome, CaseError> {
        let mut out = RollOutcome::default();
        // Only the cases the cycle changes are written (in transactions that check again):
        // absent and already-seen cases cost no write.
        let candidates = to_write(cases, cycle, &mut out);
        if candidates.is_empty() {
            return Ok(out);
        }
        let now = self.now();
        let share = self.roll.recertify_share;
        // Where each case to write is in `cases`: what was stored replaces it after each
        // transaction (brief cases stay brief).
        let at: HashMap<&str, usize> = {
            let wanted: std::collections::HashSet<&str> =
                candidates.iter().map(String::as_str).collect();
            cases
                .iter()
                .enumerate()
                .filter(|(_, c)| wanted.contains(c.id.as_str()))
                .map(|(i, c)| (c.id.as_str(), i))
                .collect()
        };
        let mut replace: Vec<(usize, Case)> = Vec::new();
        for chunk in candidates.chunks(UPSERT_CHUNK) {
            let (part, cases) = self.store.case_transaction(|txn| {
                let mut part = RollOutcome::default();
                let mut cases = Vec::new();
                for id in chunk {
                    let Some(mut case) = load_case(txn, id)? else {
                        continue;
                    };
                    if case.status == Status::Cleared || case.cleared_on.is_some() {
                        continue;
                    }
                    let opened = cycle.opened.contains(&case.id);
                    match roll_of(&case, cycle) {
                        Roll::Absent => part.absent += 1,
                        Roll::Seen { out } => {
                            if out && !opened {
                                part.persisting += 1;
                            }
                        }
                        Roll::Persist(r) => {
                            if !opened {
                                part.persisting += 1;
                            }
                            case.last_date = r.date;
                            if case.difference != r.difference {
                                case.previous_difference = Some(case.difference);
                            }
                            case.difference = r.difference;
                            case.updated_at = now;
                            let record = serde_json::json!({
                                "date": r.date.to_string(),
                                "difference": r.difference,
                            });
                            if recertify_if_moved(txn, &mut case, share, record, now)? {
                                part.recertified += 1;
                            }
                            put_case(txn, &case)?;
                            cases.push(case);
                        }
                        // A case this cycle opened is new: the next cycle says whether it
                        // cleared (so one file's anomalies stay reviewable).
                        Roll::Clear { .. } if opened => {
                            if let Some(as_of) = cycle.as_of()
                                && case.seen_to.is_none_or(|s| s < as_of)
                            {
                                case.seen_to = Some(as_of);
                                put_case(txn, &case)?;
                                cases.push(case);
                            }
                        }
                        Roll::Clear { on, record, reason } => {
                            part.cleared += 1;
                            let from = case.status;
                            case.cleared_on = Some(on);
                            if case.status.is_open() {
                                case.status = Status::Cleared;
                                case.last_decision = None;
                            }
                            case.updated_at = now;
                            append_event_note(
                                txn,
                                &case,
                                EventNote {
                                    action: EventAction::Cleared,
                                    user: SYSTEM_USER,
                                    role: None,
                                    from: Some(from),
                                    reason: Some(reason),
                                    record: Some(record),
                                },
                                now,
                            )?;
                            put_case(txn, &case)?;
                            cases.push(case);
                        }
                    }
                }
                Ok((part, cases))
            })?;
            for c in cases {
                if let Some(i) = at.get(c.id.as_str()) {
                    replace.push((*i, c));
                }
            }
            out.persisting += part.persisting;
            out.cleared += part.cleared;
            out.recertified += part.recertified;
            out.absent += part.absent;
        }
        drop(at);
        for (i, mut now) in replace {
            if cases[i].row.is_empty() && cases[i].dispatches.is_empty() {
                briefly(&mut now);
            }
            cases[i] = now;
        }
        Ok(out)
    }

    /// Whether [`Cases::roll_forward`] of a keyed `cycle` (a service record) would write:
    /// read-only, so that a record that changes no case stays off the blocking threads.
    pub fn roll_writes(&self, cycle: &Cycle) -> Result<bool, CaseError> {
        let cases = self.outstanding_cases_of(cycle)?;
        Ok(!to_write(&cases, cycle, &mut RollOutcome::default()).is_empty())
    }

    /// The ids of the cases of one account that have not cleared, in break order.
    /// Read from the outstanding markers: no case is decoded (a store written before the
    /// markers existed is indexed by [`Cases::index_outstanding`] first).
    pub fn outstanding_of(&self, profile: &str, key: &str) -> Result<Vec<String>, CaseError> {
        outstanding_in(&mut self.store.case_reader(), profile, key)
    }

    /// Gives every stored case its outstanding marker, once per store (stores written before
    /// the markers existed); later writes keep the markers up to date. Returns how many cases
    /// were marked.
    pub fn index_outstanding(&self) -> Result<usize, CaseError> {
        if self
            .store
            .case_get(CaseTree::Seq, OUTSTANDING_INDEXED)?
            .is_some()
        {
            return Ok(0);
        }
        let (all, _) = self.list_readable(&CaseFilter::default())?;
        let open: Vec<&Case> = all.iter().filter(|c| c.outstanding()).collect();
        for chunk in open.chunks(UPSERT_CHUNK) {
            self.store.case_transaction(|txn| {
                for c in chunk {
                    txn.insert(
                        CaseTree::BreakIndex,
                        &outstanding_marker(&c.profile, &c.key, &c.id),
                        c.id.as_bytes(),
                    )?;
                }
                Ok::<(), TxError<CaseError>>(())
            })?;
        }
        self.store.case_transaction(|txn| {
            txn.insert(CaseTree::Seq, OUTSTANDING_INDEXED, b"1")?;
            Ok::<(), TxError<CaseError>>(())
        })?;
        Ok(open.len())
    }

    /// For a record that opens no known break, the cleared case of the same account that it
    /// brings back (cleared at most `reopen_days` before the record's break began), if any.
    fn reappearing(
        &self,
        reader: &mut CaseReader<'_>,
        input: &BreakInput,
    ) -> Result<Option<String>, CaseError> {
        let mut best: Option<(NaiveDate, String)> = None;
        let prefix = break_prefix(&input.profile, &input.key);
        let entries = reader.scan(CaseTree::BreakIndex, &prefix)?;
        // A case marked outstanding has not cleared: it is not read (a store written before
        // the markers reads every case of the account, as it did).
        let open: HashSet<&[u8]> = entries
            .iter()
            .filter(|(k, _)| is_marker(k, prefix.len()))
            .map(|(_, id)| id.as_slice())
            .collect();
        for (k, id) in &entries {
            if is_marker(k, prefix.len()) || open.contains(id.as_slice()) {
                continue;
            }
            let id = String::from_utf8(id.clone()).map_err(|e| CaseError::Corrupt {
                what: "break index entry".into(),
                message: e.to_string(),
            })?;
            let Some(bytes) = reader.get(CaseTree::Cases, id.as_bytes())? else {
                continue;
            };
            let case: Case = decode_case(&bytes)?;
            let Some(on) = case.cleared_on else { continue };
            let gap = (input.start_date - on).num_days();
            if on <= input.start_date
                && gap <= self.roll.reopen_days
                && best.as_ref().is_none_or(|(d, _)| on > *d)
            {
                best = Some((on, id));
            }
        }
        Ok(best.map(|(_, id)| id))
    }

    /// The clock's time at the precision stored (milliseconds), so that a case returned by a
    /// call equals the case read back.
    fn now(&self) -> DateTime<Utc> {
        (self.clock)().trunc_subsecs(3)
    }

    // ----- writes ------------------------------------------------------------------------------

    /// Records a flagged record: opens the break's case if it has none (status `PendingReview`,
    /// or `AutoResolveProposed` proposed by `rules:<bucket_rule>` when `auto_resolve` says the
    /// bucket's rules propose it), otherwise brings the case to the record's date and numbers
    /// (its status is untouched). Idempotent: the same record again writes nothing.
    pub fn upsert(
        &self,
        input: &BreakInput,
        auto_resolve: bool,
    ) -> Result<UpsertOutcome, CaseError> {
        let mut out = self.upsert_batch(std::slice::from_ref(input), &[auto_resolve])?;
        out.pop()
            .ok_or_else(|| CaseError::Invalid("an upsert of one record returned nothing".into()))
    }

    /// [`Cases::upsert`] for many records (a run's flagged records). `auto_resolve[i]` goes with
    /// `inputs[i]`. Outcomes are in input order.
    pub fn upsert_batch(
        &self,
        inputs: &[BreakInput],
        auto_resolve: &[bool],
    ) -> Result<Vec<UpsertOutcome>, CaseError> {
        self.upsert_batch_in(inputs, auto_resolve, None)
    }

    /// [`Cases::upsert_batch`] of the flagged records of `cycle` (a file's run): a case the
    /// batch opens is also rolled forward through the cycle as it is written (it takes the
    /// latest date of its break, or notes that the cycle saw the break end), so that
    /// [`Cases::roll_forward_over`] has nothing left to write for it.
    ///
    /// Each case is written once: the records of one break (the same case) are folded into its
    /// latest, and every one of them gets that record's outcome. A case opens proposed for
    /// auto-resolution only when every record of its break is proposed. Writes go in transactions of
    /// `UPSERT_CHUNK` cases, each atomic and durable; a crash between two leaves the earlier
    /// ones, and running the same records again completes the rest (upserts are idempotent).
    pub fn upsert_batch_in(
        &self,
        inputs: &[BreakInput],
        auto_resolve: &[bool],
        cycle: Option<&Cycle>,
    ) -> Result<Vec<UpsertOutcome>, CaseError> {
        let (steps, of_input) = self.record_steps(inputs, auto_resolve, cycle, true)?;
        use rayon::prelude::*;
        let outcomes: Vec<UpsertOutcome> = steps
            .into_par_iter()
            .map(|step| match step {
                Step::Written(o) => Ok(*o),
                Step::Unchanged(_, bytes) => Ok(UpsertOutcome {
                    case: decode_case(&bytes)?,
                    change: Change::Unchanged,
                }),
            })
            .collect::<Result<_, CaseError>>()?;
        Ok(of_input.iter().map(|k| outcomes[*k].clone()).collect())
    }

    /// [`Cases::upsert_batch_in`] as a run records its flagged records: what each record did to
    /// its case, without the cases (an unchanged case is not decoded).
    pub fn record_batch(
        &self,
        inputs: &[BreakInput],
        auto_resolve: &[bool],
        cycle: Option<&Cycle>,
    ) -> Result<Vec<Recorded>, CaseError> {
        let (steps, of_input) = self.record_steps(inputs, auto_resolve, cycle, false)?;
        let recorded: Vec<Recorded> = steps
            .into_iter()
            .map(|step| match step {
                Step::Written(o) => Recorded::of(&o.case, o.change),
                Step::Unchanged(r, _) => r,
            })
            .collect();
        Ok(of_input.iter().map(|k| recorded[*k].clone()).collect())
    }

    /// The body of [`Cases::upsert_batch_in`] and [`Cases::record_batch`]: one step per case
    /// (an unchanged case's stored bytes kept when `keep` asks for them), and the step of each
    /// input.
    fn record_steps(
        &self,
        inputs: &[BreakInput],
        auto_resolve: &[bool],
        cycle: Option<&Cycle>,
        keep: bool,
    ) -> Result<(Vec<Step>, Vec<usize>), CaseError> {
        if inputs.len() != auto_resolve.len() {
            return Err(CaseError::Invalid(format!(
                "{} records but {} auto-resolve flags",
                inputs.len(),
                auto_resolve.len()
            )));
        }
        use rayon::prelude::*;
        let ids: Vec<String> = inputs
            .par_iter()
            .map(|input| {
                input.validate()?;
                Ok(case_id(&input.profile, &input.key, input.start_date))
            })
            .collect::<Result<_, CaseError>>()?;
        // The record each case is brought to: its latest (by date, then by position, as one
        // upsert after the other would leave it).
        let mut latest: HashMap<&str, usize> = HashMap::with_capacity(inputs.len());
        let mut order: Vec<&str> = Vec::new();
        for (k, id) in ids.iter().enumerate() {
            match latest.entry(id.as_str()) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(k);
                    order.push(id.as_str());
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    if inputs[k].date >= inputs[*o.get()].date {
                        o.insert(k);
                    }
                }
            }
        }
        let reps: Vec<usize> = order.iter().map(|id| latest[id]).collect();
        // What a case the batch opens keeps of its break's earlier records: the difference of
        // the first (its opening difference) and of the one before the latest.
        let mut earlier: HashMap<&str, (usize, Option<usize>)> = HashMap::with_capacity(reps.len());
        for (k, id) in ids.iter().enumerate() {
            let rep = latest[id.as_str()];
            let e = earlier.entry(id.as_str()).or_insert((k, None));
            if inputs[k].date < inputs[e.0].date {
                e.0 = k;
            }
            if k != rep && e.1.is_none_or(|p| inputs[k].date >= inputs[p].date) {
                e.1 = Some(k);
            }
        }
        // The rules propose a case for auto-resolution only when they propose every record of
        // its break: one unexplained record keeps it for review.
        let mut proposed: HashMap<&str, bool> = HashMap::with_capacity(reps.len());
        for (id, auto) in ids.iter().zip(auto_resolve) {
            *proposed.entry(id.as_str()).or_insert(true) &= *auto;
        }
        // Fingerprints (SHA-256 of each record), in parallel; then the cleared case a record of
        // an unknown break may bring back, read once through one reader.
        let fingerprints: Vec<String> = reps
            .par_iter()
            .map(|&k| inputs[k].fingerprint())
            .collect::<Result<_, CaseError>>()?;
        let mut reader = self.store.case_reader();
        let mut prepared: Vec<(String, Option<String>)> = Vec::with_capacity(reps.len());
        for (&k, fingerprint) in reps.iter().zip(fingerprints) {
            let reappear = if reader.contains(CaseTree::Cases, ids[k].as_bytes())? {
                None
            } else {
                self.reappearing(&mut reader, &inputs[k])?
            };
            prepared.push((fingerprint, reappear));
        }
        drop(reader);
        let now = self.now();
        let roll = self.roll;
        let router = self.router.as_deref();
        let mut outcomes: Vec<Step> = Vec::with_capacity(reps.len());
        for (c, chunk) in reps.chunks(UPSERT_CHUNK).enumerate() {
            let base = c * UPSERT_CHUNK;
            let part = self.store.case_transaction(|txn| {
                let mut part = Vec::with_capacity(chunk.len());
                for (j, &k) in chunk.iter().enumerate() {
                    let (fingerprint, reappear) = &prepared[base + j];
                    // The break's own case, already up to date: read from its head alone.
                    if let Some(bytes) = txn.get(CaseTree::Cases, ids[k].as_bytes())?
                        && let Some(head) = case_head(&bytes)
                        && (inputs[k].date < head.last_date || head.fingerprint == *fingerprint)
                    {
                        let r = Recorded {
                            id: ids[k].clone(),
                            ticket: head.ticket.to_string(),
                            status: head.status,
                            change: Change::Unchanged,
                        };
                        part.push(Step::Unchanged(r, if keep { bytes } else { Vec::new() }));
                        continue;
                    }
                    let (first, before) = earlier[ids[k].as_str()];
                    let history = Opening {
                        first: inputs[first].difference,
                        previous: before.map(|p| inputs[p].difference),
                    };
                    part.push(Step::Written(Box::new(upsert_one(
                        txn,
                        &inputs[k],
                        history,
                        proposed[ids[k].as_str()],
                        &ids[k],
                        fingerprint,
                        now,
                        &roll,
                        reappear.as_deref(),
                        router,
                        cycle,
                    )?)));
                }
                Ok(part)
            })?;
            outcomes.extend(part);
        }
        let at: HashMap<&str, usize> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let of_input = ids.iter().map(|id| at[id.as_str()]).collect();
        Ok((outcomes, of_input))
    }

    /// Takes `action` on the case `reference` (a case id or ticket), with an optional reason or
    /// comment (required for reject, return and reopen). Returns the case as stored.
    pub fn decide(
        &self,
        reference: &str,
        action: Action,
        actor: &Actor,
        note: Option<&str>,
    ) -> Result<Case, CaseError> {
        actor.validate()?;
        let note = clean_note(note);
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut case = load_ref(txn, reference)?;
            check_decision(&case, action, actor, note.as_deref()).map_err(TxError::Abort)?;
            apply_decision(txn, &mut case, action, actor, note.clone(), now)?;
            Ok(case)
        })
    }

    /// Accepts the case: a real break, to be dispatched.
    pub fn accept(
        &self,
        reference: &str,
        actor: &Actor,
        note: Option<&str>,
    ) -> Result<Case, CaseError> {
        self.decide(reference, Action::Accept, actor, note)
    }

    /// Rejects the case as a false positive; `reason` is required.
    pub fn reject(&self, reference: &str, actor: &Actor, reason: &str) -> Result<Case, CaseError> {
        self.decide(reference, Action::Reject, actor, Some(reason))
    }

    /// Proposes auto-resolution of the case.
    pub fn propose(
        &self,
        reference: &str,
        actor: &Actor,
        note: Option<&str>,
    ) -> Result<Case, CaseError> {
        self.decide(reference, Action::Propose, actor, note)
    }

    /// Approves the proposed auto-resolution (a supervisor other than the proposer).
    pub fn approve(
        &self,
        reference: &str,
        actor: &Actor,
        note: Option<&str>,
    ) -> Result<Case, CaseError> {
        self.decide(reference, Action::Approve, actor, note)
    }

    /// Returns the proposed auto-resolution to pending work (a supervisor); `comment` is
    /// required.
    pub fn return_proposal(
        &self,
        reference: &str,
        actor: &Actor,
        comment: &str,
    ) -> Result<Case, CaseError> {
        self.decide(reference, Action::Return, actor, Some(comment))
    }

    /// Reopens a decided case (Accepted, Rejected, Approved); `reason` is required.
    pub fn reopen(&self, reference: &str, actor: &Actor, reason: &str) -> Result<Case, CaseError> {
        self.decide(reference, Action::Reopen, actor, Some(reason))
    }

    /// Opens an `Accepted` case, origin `Analyst`, for a break the model did not flag;
    /// `reason` is required. A break that already has a case is refused, naming it.
    pub fn flag_missed(
        &self,
        input: &BreakInput,
        actor: &Actor,
        reason: &str,
    ) -> Result<Case, CaseError> {
        actor.validate()?;
        input.validate()?;
        let id = case_id(&input.profile, &input.key, input.start_date);
        let Some(reason) = clean_note(Some(reason)) else {
            return Err(CaseError::NoteRequired {
                case_id: id,
                action: EventAction::Flag,
                what: "reason",
            });
        };
        let fingerprint = input.fingerprint()?;
        let now = self.now();
        self.store.case_transaction(|txn| {
            if let Some(existing) = load_case(txn, &id)? {
                return Err(TxError::Abort(CaseError::AlreadyCase {
                    case_id: existing.id,
                    ticket: existing.ticket,
                    status: existing.status,
                }));
            }
            let mut case = new_case(txn, input, &id, fingerprint.clone(), Origin::Analyst, now)?;
            case.status = Status::Accepted;
            append_event(
                txn,
                &case,
                EventAction::Flag,
                &actor.user,
                Some(actor.role),
                None,
                Some(reason.clone()),
                now,
            )?;
            put_case(txn, &case)?;
            Ok(case)
        })
    }

    /// Reverts the case's last decision, if `actor` made it and the case was not dispatched;
    /// records an `undo` event. One level: the decision before it cannot be undone this way.
    pub fn undo_last(&self, reference: &str, actor: &Actor) -> Result<Case, CaseError> {
        actor.validate()?;
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut case = load_ref(txn, reference)?;
            let refuse = |why: String| {
                TxError::Abort(CaseError::UndoRefused {
                    case_id: case.id.clone(),
                    why,
                })
            };
            if case.dispatched {
                return Err(refuse("it has been dispatched".into()));
            }
            let Some(d) = case.last_decision.clone() else {
                return Err(refuse("it has no decision to undo".into()));
            };
            if d.user != actor.user {
                return Err(refuse(format!(
                    "its last decision ({} by {}) was made by another user",
                    d.action, d.user
                )));
            }
            if case.status != d.action.target() {
                return Err(refuse(format!(
                    "its status {} is not the result of its last decision ({})",
                    case.status, d.action
                )));
            }
            case.status = d.from;
            case.proposed_by = d.prev_proposed_by.clone();
            case.last_decision = None;
            case.updated_at = now;
            append_event(
                txn,
                &case,
                EventAction::Undo,
                &actor.user,
                Some(actor.role),
                Some(d.action.target()),
                Some(format!("undoes \"{}\" (event {})", d.action, d.seq)),
                now,
            )?;
            put_case(txn, &case)?;
            Ok(case)
        })
    }

    /// Links the case to its Jira issue (`PROJ-123`). Linking the same key again changes
    /// nothing; another key replaces it (both are in the events).
    pub fn link_jira(&self, reference: &str, key: &str, actor: &Actor) -> Result<Case, CaseError> {
        actor.validate()?;
        let key = key.trim().to_string();
        if !is_jira_key(&key) {
            return Err(CaseError::Invalid(format!(
                "{key:?} is not a Jira key (like PROJ-123)"
            )));
        }
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut case = load_ref(txn, reference)?;
            if case.jira_key.as_deref() == Some(key.as_str()) {
                return Ok(case);
            }
            let note = match &case.jira_key {
                Some(old) => format!("{key} (was {old})"),
                None => key.clone(),
            };
            case.jira_key = Some(key.clone());
            case.updated_at = now;
            let status = case.status;
            append_event(
                txn,
                &case,
                EventAction::LinkJira,
                &actor.user,
                Some(actor.role),
                Some(status),
                Some(note),
                now,
            )?;
            put_case(txn, &case)?;
            Ok(case)
        })
    }

    /// Gives the case `reference` to `owner`. Analysts may only take a case for themselves, and
    /// only one nobody owns; supervisors may assign any case to anyone. Assigning to the current
    /// owner changes nothing.
    pub fn assign(&self, reference: &str, owner: &str, actor: &Actor) -> Result<Case, CaseError> {
        actor.validate()?;
        let owner = owner.trim().to_string();
        Actor::analyst(owner.clone())
            .validate()
            .map_err(|_| CaseError::Invalid(format!("{owner:?} is not a user name")))?;
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut case = load_ref(txn, reference)?;
            if case.owner.as_deref() == Some(owner.as_str()) {
                return Ok(case);
            }
            if actor.role != Role::Supervisor {
                if owner != actor.user {
                    return abort(CaseError::NotAllowed(format!(
                        "an analyst may take a case for themselves only; assigning case {} to {owner} needs a supervisor",
                        case.id
                    )));
                }
                if let Some(current) = &case.owner {
                    return abort(CaseError::NotOwner {
                        case_id: case.id.clone(),
                        owner: current.clone(),
                        user: actor.user.clone(),
                        what: "hand it over",
                    });
                }
            }
            let note = match &case.owner {
                Some(old) => format!("{owner} (was {old})"),
                None => owner.clone(),
            };
            case.owner = Some(owner.clone());
            case.updated_at = now;
            let status = case.status;
            append_event(
                txn,
                &case,
                EventAction::Assign,
                &actor.user,
                Some(actor.role),
                Some(status),
                Some(note),
                now,
            )?;
            put_case(txn, &case)?;
            Ok(case)
        })
    }

    /// The owner (or a supervisor) lets the case go: nobody owns it. A case nobody owns
    /// changes nothing.
    pub fn release(&self, reference: &str, actor: &Actor) -> Result<Case, CaseError> {
        actor.validate()?;
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut case = load_ref(txn, reference)?;
            let Some(owner) = case.owner.clone() else {
                return Ok(case);
            };
            if owner != actor.user && actor.role != Role::Supervisor {
                return abort(CaseError::NotOwner {
                    case_id: case.id.clone(),
                    owner,
                    user: actor.user.clone(),
                    what: "release it",
                });
            }
            case.owner = None;
            case.updated_at = now;
            let status = case.status;
            append_event(
                txn,
                &case,
                EventAction::Release,
                &actor.user,
                Some(actor.role),
                Some(status),
                Some(owner),
                now,
            )?;
            put_case(txn, &case)?;
            Ok(case)
        })
    }

    /// Adds a free-text note to the case (an event `note`; the status does not change).
    pub fn note(&self, reference: &str, text: &str, actor: &Actor) -> Result<Case, CaseError> {
        actor.validate()?;
        let text = text.trim();
        if text.is_empty() {
            return Err(CaseError::Invalid("a note must not be empty".into()));
        }
        if text.chars().count() > MAX_NOTE_CHARS {
            return Err(CaseError::Invalid(format!(
                "a note holds at most {MAX_NOTE_CHARS} characters, this one has {}",
                text.chars().count()
            )));
        }
        let text = text.to_string();
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut case = load_ref(txn, reference)?;
            case.updated_at = now;
            let status = case.status;
            append_event(
                txn,
                &case,
                EventAction::Note,
                &actor.user,
                Some(actor.role),
                Some(status),
                Some(text.clone()),
                now,
            )?;
            put_case(txn, &case)?;
            Ok(case)
        })
    }

    /// The notes on a case, oldest first.
    pub fn notes(&self, reference: &str) -> Result<Vec<Event>, CaseError> {
        Ok(self
            .events_for(reference)?
            .into_iter()
            .filter(|e| e.action == EventAction::Note)
            .collect())
    }

    /// Marks an `Accepted` case as dispatched (again: nothing changes). A dispatched case's last
    /// decision can no longer be undone.
    pub fn mark_dispatched(&self, reference: &str, actor: &Actor) -> Result<Case, CaseError> {
        actor.validate()?;
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut case = load_ref(txn, reference)?;
            if case.status != Status::Accepted {
                return Err(TxError::Abort(CaseError::NotDispatchable {
                    case_id: case.id,
                    status: case.status,
                }));
            }
            if case.dispatched {
                return Ok(case);
            }
            case.dispatched = true;
            case.updated_at = now;
            append_event(
                txn,
                &case,
                EventAction::Dispatched,
                &actor.user,
                Some(actor.role),
                Some(Status::Accepted),
                None,
                now,
            )?;
            put_case(txn, &case)?;
            Ok(case)
        })
    }

    /// Applies analysts' labels from a feedback file as `accept`/`reject` decisions by `actor`.
    /// Every row is checked first (its case exists, its label parses, a reject has a reason,
    /// the decision is legal from the case's status, taking the rows before it into account);
    /// if any row is bad, the error lists each bad row with its line and nothing is applied.
    /// Otherwise all rows are applied in one transaction and flushed. A row whose case already
    /// has that label (Accepted or Approved for accept, Rejected for reject) changes nothing.
    pub fn import_feedback(
        &self,
        rows: &[FeedbackRow],
        actor: &Actor,
    ) -> Result<FeedbackReport, CaseError> {
        actor.validate()?;
        let mut problems = Vec::new();
        // (line, case reference, label, reason) of the rows that passed the first checks.
        let mut resolved: Vec<(usize, String, bool, Option<String>)> = Vec::new();
        for row in rows {
            match self.resolve_feedback_row(row) {
                Ok(r) => resolved.push(r),
                Err(problem) => problems.push(RowProblem {
                    line: row.line,
                    problem,
                }),
            }
        }
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut problems = problems.clone();
            let mut report = FeedbackReport::default();
            let mut working: HashMap<String, Case> = HashMap::new();
            for (line, reference, label, reason) in &resolved {
                let mut case = match working.remove(reference) {
                    Some(c) => c,
                    None => match load_ref(txn, reference) {
                        Ok(c) => c,
                        Err(TxError::Abort(CaseError::NotFound { .. })) => {
                            problems.push(RowProblem {
                                line: *line,
                                problem: format!("unknown case {reference}"),
                            });
                            continue;
                        }
                        Err(e) => return Err(e),
                    },
                };
                if case.status.label() == Some(*label) {
                    report.unchanged += 1;
                } else {
                    let action = if *label {
                        Action::Accept
                    } else {
                        Action::Reject
                    };
                    match check_decision(&case, action, actor, reason.as_deref()) {
                        Ok(()) => {
                            apply_decision(txn, &mut case, action, actor, reason.clone(), now)?;
                            report.applied += 1;
                        }
                        Err(e) => problems.push(RowProblem {
                            line: *line,
                            problem: e.to_string(),
                        }),
                    }
                }
                working.insert(reference.clone(), case);
            }
            if !problems.is_empty() {
                problems.sort_by_key(|p| p.line);
                return Err(TxError::Abort(CaseError::Feedback(problems)));
            }
            Ok(report)
        })
    }

    /// First checks of a feedback row: (line, case id, label, reason), or what is wrong.
    fn resolve_feedback_row(
        &self,
        row: &FeedbackRow,
    ) -> Result<(usize, String, bool, Option<String>), String> {
        let label = parse_label(&row.label)?;
        let reason = clean_note(row.reason.as_deref());
        if !label && reason.is_none() {
            return Err("a reject needs a reason".into());
        }
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        let (profile, key, date) = (given(&row.profile), given(&row.key), given(&row.date));
        let date = match date {
            Some(d) => Some(
                d.parse::<NaiveDate>()
                    .map_err(|_| format!("date {d:?} is not a YYYY-MM-DD date"))?,
            ),
            None => None,
        };
        if let Some(reference) = given(&row.case_id) {
            let case = self
                .find(reference)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("unknown case {reference}"))?;
            if let (Some(p), Some(k), Some(d)) = (profile, key, date)
                && (case.profile != p || case.key != k || d < case.start_date || d > case.last_date)
            {
                return Err(format!(
                    "case {} is profile {}, key {} from {} to {}, not profile {p}, key {k} on {d}",
                    case.id, case.profile, case.key, case.start_date, case.last_date
                ));
            }
            return Ok((row.line, case.id, label, reason));
        }
        let (Some(profile), Some(key), Some(date)) = (profile, key, date) else {
            return Err("the row names no case: give case_id, or profile, key and date".into());
        };
        let found = self
            .find_break(profile, key, date)
            .map_err(|e| e.to_string())?;
        match found.as_slice() {
            [one] => Ok((row.line, one.id.clone(), label, reason)),
            [] => Err(format!(
                "no case for profile {profile}, key {key} on {date}"
            )),
            many => Err(format!(
                "profile {profile}, key {key} on {date} matches several cases: {}",
                many.iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    // ----- reads -------------------------------------------------------------------------------

    /// The case with this id.
    pub fn get(&self, case_id: &str) -> Result<Option<Case>, CaseError> {
        match self.store.case_get(CaseTree::Cases, case_id.as_bytes())? {
            Some(bytes) => Ok(Some(decode_case(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The case with this ticket.
    pub fn get_by_ticket(&self, ticket: &str) -> Result<Option<Case>, CaseError> {
        match self.store.case_get(CaseTree::Tickets, ticket.as_bytes())? {
            Some(id) => {
                let id = String::from_utf8(id).map_err(|e| CaseError::Corrupt {
                    what: format!("ticket index entry {ticket}"),
                    message: e.to_string(),
                })?;
                self.get(&id)
            }
            None => Ok(None),
        }
    }

    /// The case with this id or ticket (`BRK-…`).
    pub fn find(&self, reference: &str) -> Result<Option<Case>, CaseError> {
        if is_ticket(reference) {
            self.get_by_ticket(reference)
        } else {
            self.get(reference)
        }
    }

    /// The cases of `profile` and `key` whose break spans `date` (start to latest record).
    pub fn find_break(
        &self,
        profile: &str,
        key: &str,
        date: NaiveDate,
    ) -> Result<Vec<Case>, CaseError> {
        let prefix = break_prefix(profile, key);
        let mut out = Vec::new();
        let mut reader = self.store.case_reader();
        for (k, id) in reader.scan(CaseTree::BreakIndex, &prefix)? {
            if is_marker(&k, prefix.len()) {
                continue;
            }
            let id = String::from_utf8(id).map_err(|e| CaseError::Corrupt {
                what: "break index entry".into(),
                message: e.to_string(),
            })?;
            let bytes =
                reader
                    .get(CaseTree::Cases, id.as_bytes())?
                    .ok_or_else(|| CaseError::Corrupt {
                        what: "break index entry".into(),
                        message: format!("it names case {id}, which is not stored"),
                    })?;
            let case: Case = decode_case(&bytes)?;
            // A break that reappeared is indexed under each of its starts: listed once.
            if case.start_date <= date
                && date <= case.last_date
                && !out.iter().any(|c: &Case| c.id == case.id)
            {
                out.push(case);
            }
        }
        Ok(out)
    }

    /// The cases that match `filter`, in ticket order (the order they were created). A case
    /// that cannot be read is left out and logged; [`Cases::list_readable`] names them.
    pub fn list(&self, filter: &CaseFilter) -> Result<Vec<Case>, CaseError> {
        let (cases, unreadable) = self.list_readable(filter)?;
        for u in &unreadable {
            tracing::warn!(case_id = %u.case_id, error = %u.error, "unreadable case left out");
        }
        Ok(cases)
    }

    /// The cases that match `filter` (as [`Cases::list`]), and the cases that could not be read,
    /// each with why: one damaged case does not hide the others.
    pub fn list_readable(
        &self,
        filter: &CaseFilter,
    ) -> Result<(Vec<Case>, Vec<Unreadable>), CaseError> {
        let mut out = Vec::new();
        let mut unreadable = Vec::new();
        for kv in self.store.case_scan(CaseTree::Cases, b"")? {
            let (id, bytes) = kv?;
            let case: Case = match decode_case(&bytes) {
                Ok(c) => c,
                Err(e) => {
                    unreadable.push(Unreadable {
                        case_id: String::from_utf8_lossy(&id).to_string(),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            if filter.status.is_some_and(|s| s != case.status)
                || filter.bucket.as_deref().is_some_and(|b| b != case.bucket)
                || filter.profile.as_deref().is_some_and(|p| p != case.profile)
            {
                continue;
            }
            out.push(case);
        }
        out.sort_by_cached_key(|c| (ticket_number(&c.ticket), c.ticket.clone()));
        Ok((out, unreadable))
    }

    /// The cases in `status`, in ticket order (e.g. the Accepted cases to dispatch).
    pub fn export(&self, status: Status) -> Result<Vec<Case>, CaseError> {
        self.list(&CaseFilter {
            status: Some(status),
            ..CaseFilter::default()
        })
    }

    /// Writes the cases in `status` as JSON lines, one case a line; returns how many.
    pub fn export_json_lines(
        &self,
        status: Status,
        out: &mut dyn std::io::Write,
    ) -> Result<usize, CaseError> {
        let cases = self.export(status)?;
        for c in &cases {
            let line = serde_json::to_string(c).map_err(|e| CaseError::Invalid(e.to_string()))?;
            writeln!(out, "{line}")
                .map_err(|e| CaseError::Invalid(format!("cannot write the export: {e}")))?;
        }
        Ok(cases.len())
    }

    /// Every event, in order.
    pub fn events(&self) -> Result<Vec<Event>, CaseError> {
        let mut out = Vec::new();
        for kv in self.store.case_scan(CaseTree::Events, b"")? {
            let (_, bytes) = kv?;
            out.push(decode(&bytes, "event")?);
        }
        Ok(out)
    }

    /// The events of one case (id or ticket), in order.
    pub fn events_for(&self, reference: &str) -> Result<Vec<Event>, CaseError> {
        let case = self.find(reference)?.ok_or_else(|| CaseError::NotFound {
            reference: reference.to_string(),
        })?;
        let prefix = case_events_prefix(&case.id);
        let mut out = Vec::new();
        let mut reader = self.store.case_reader();
        for (k, _) in reader.scan(CaseTree::CaseEvents, &prefix)? {
            let seq_bytes = k
                .get(prefix.len()..)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .ok_or_else(|| CaseError::Corrupt {
                    what: "case event index entry".into(),
                    message: format!("bad key length {}", k.len()),
                })?;
            let bytes =
                reader
                    .get(CaseTree::Events, &seq_bytes)?
                    .ok_or_else(|| CaseError::Corrupt {
                        what: "case event index entry".into(),
                        message: format!(
                            "it names event {}, which is not stored",
                            u64::from_be_bytes(seq_bytes)
                        ),
                    })?;
            out.push(decode(&bytes, "event")?);
        }
        Ok(out)
    }

    /// The training labels: one per decided case (Accepted, Approved → true break; Rejected →
    /// false positive), dated by the case's latest record, ordered by profile, key and date.
    pub fn labels(&self) -> Result<Vec<Label>, CaseError> {
        let mut out: Vec<Label> = Vec::new();
        for kv in self.store.case_scan(CaseTree::Feedback, b"")? {
            let (_, bytes) = kv?;
            out.push(decode(&bytes, "label")?);
        }
        out.sort_by(|a, b| {
            (&a.profile, &a.key, a.date, &a.case_id).cmp(&(&b.profile, &b.key, b.date, &b.case_id))
        });
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Transaction steps

fn abort<T>(e: CaseError) -> TxResult<T> {
    Err(TxError::Abort(e))
}

fn encode<T: Serialize>(value: &T) -> TxResult<Vec<u8>> {
    serde_json::to_vec(value).or_else(|e| abort(CaseError::Invalid(e.to_string())))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, CaseError> {
    serde_json::from_slice(bytes).map_err(|e| CaseError::Corrupt {
        what: what.to_string(),
        message: e.to_string(),
    })
}

fn load_case(txn: &CaseTxn<'_>, id: &str) -> TxResult<Option<Case>> {
    match txn.get(CaseTree::Cases, id.as_bytes())? {
        Some(bytes) => decode_case(&bytes).map(Some).map_err(TxError::Abort),
        None => Ok(None),
    }
}

/// A stored case starts with its head: what recording the same record again reads, so that an
/// unchanged case is not decoded. `HEAD_TAG`, the head's length (u16 LE), then the fingerprint,
/// the latest record's date (days from CE, i32 LE), the ticket and the status, each text with
/// its length (u16 LE) first; then the case as JSON. A case stored without a head (written
/// before heads existed) is JSON alone, and starts with `{`.
const HEAD_TAG: u8 = 1;

/// What [`case_head`] reads.
struct Head<'a> {
    fingerprint: &'a str,
    last_date: NaiveDate,
    ticket: &'a str,
    status: Status,
}

fn case_bytes(case: &Case) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_vec(case)?;
    let mut head = Vec::with_capacity(128);
    // The texts are short (a fingerprint, a ticket, a status); one too long for a head leaves
    // the case without one.
    if [&case.fingerprint, &case.ticket]
        .iter()
        .any(|t| t.len() > 1024)
    {
        return Ok(json);
    }
    let text = |head: &mut Vec<u8>, t: &str| {
        head.extend_from_slice(&(t.len() as u16).to_le_bytes());
        head.extend_from_slice(t.as_bytes());
    };
    text(&mut head, &case.fingerprint);
    head.extend_from_slice(&case.last_date.num_days_from_ce().to_le_bytes());
    text(&mut head, &case.ticket);
    text(&mut head, case.status.as_str());
    let mut out = Vec::with_capacity(3 + head.len() + json.len());
    out.push(HEAD_TAG);
    out.extend_from_slice(&(head.len() as u16).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&json);
    Ok(out)
}

/// The JSON of a stored case (after its head, if it has one).
fn case_json(bytes: &[u8]) -> &[u8] {
    match bytes {
        [HEAD_TAG, a, b, rest @ ..] => {
            let n = usize::from(u16::from_le_bytes([*a, *b]));
            rest.get(n..).unwrap_or(&[])
        }
        _ => bytes,
    }
}

/// A text of a case head (its length, u16 LE, first), taken from the front of `head`.
fn take_text<'a>(head: &mut &'a [u8]) -> Option<&'a str> {
    let (n, tail) = head.split_first_chunk::<2>()?;
    let n = usize::from(u16::from_le_bytes(*n));
    let t = std::str::from_utf8(tail.get(..n)?).ok()?;
    *head = &tail[n..];
    Some(t)
}

fn decode_case(bytes: &[u8]) -> Result<Case, CaseError> {
    decode(case_json(bytes), "case")
}

/// The head of a stored case; None for a case stored without one, or one that cannot be read
/// (the case is then decoded whole, which reports the damage).
fn case_head(bytes: &[u8]) -> Option<Head<'_>> {
    let [HEAD_TAG, a, b, rest @ ..] = bytes else {
        return None;
    };
    let mut head = rest.get(..usize::from(u16::from_le_bytes([*a, *b])))?;
    let fingerprint = take_text(&mut head)?;
    let (days, tail) = head.split_first_chunk::<4>()?;
    let last_date = NaiveDate::from_num_days_from_ce_opt(i32::from_le_bytes(*days))?;
    head = tail;
    let ticket = take_text(&mut head)?;
    let status = take_text(&mut head)?.parse().ok()?;
    Some(Head {
        fingerprint,
        last_date,
        ticket,
        status,
    })
}

/// The case of a case id or ticket, or `NotFound`.
fn load_ref(txn: &CaseTxn<'_>, reference: &str) -> TxResult<Case> {
    let not_found = || {
        TxError::Abort(CaseError::NotFound {
            reference: reference.to_string(),
        })
    };
    let id = if is_ticket(reference) {
        let bytes = txn
            .get(CaseTree::Tickets, reference.as_bytes())?
            .ok_or_else(not_found)?;
        String::from_utf8(bytes).or_else(|e| {
            abort(CaseError::Corrupt {
                what: format!("ticket index entry {reference}"),
                message: e.to_string(),
            })
        })?
    } else {
        reference.to_string()
    };
    load_case(txn, &id)?.ok_or_else(not_found)
}

/// The next value of a counter (the first is 1).
pub(crate) fn next_counter(txn: &CaseTxn<'_>, name: &[u8]) -> TxResult<u64> {
    if let Some(last) = txn.counter(name) {
        txn.set_counter(name, last + 1);
        return Ok(last + 1);
    }
    let last = match txn.get(CaseTree::Seq, name)? {
        None => 0,
        Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(b) => u64::from_be_bytes(b),
            Err(_) => {
                return abort(CaseError::Corrupt {
                    what: format!("counter {}", String::from_utf8_lossy(name)),
                    message: format!("{} bytes, expected 8", bytes.len()),
                });
            }
        },
    };
    let next = last + 1;
    txn.set_counter(name, next);
    Ok(next)
}

/// Writes the case, its training label (or removes it while undecided) and its outstanding
/// marker (or removes it once the break cleared).
fn put_case(txn: &CaseTxn<'_>, case: &Case) -> TxResult<()> {
    write_case(txn, case, false)
}

/// [`put_case`]; a `fresh` case (written for the first time) has no marker or label to remove.
fn write_case(txn: &CaseTxn<'_>, case: &Case, fresh: bool) -> TxResult<()> {
    // Encoded when the transaction is written, with the other cases, in parallel.
    let stored = case.clone();
    txn.insert_later(
        CaseTree::Cases,
        case.id.as_bytes(),
        std::sync::Arc::new(move || case_bytes(&stored).map_err(|e| e.to_string())),
    )?;
    let marker = outstanding_marker(&case.profile, &case.key, &case.id);
    if case.outstanding() {
        txn.insert(CaseTree::BreakIndex, &marker, case.id.as_bytes())?;
    } else if !fresh {
        txn.remove(CaseTree::BreakIndex, &marker)?;
    }
    match case.status.label() {
        Some(label) => {
            let l = Label {
                case_id: case.id.clone(),
                profile: case.profile.clone(),
                key: case.key.clone(),
                date: case.last_date,
                start_date: Some(case.start_date),
                label,
                origin: case.origin,
                difference: case.judged_difference.or(Some(case.difference)),
            };
            txn.insert(CaseTree::Feedback, case.id.as_bytes(), &encode(&l)?)?;
        }
        None if fresh => {}
        None => txn.remove(CaseTree::Feedback, case.id.as_bytes())?,
    }
    Ok(())
}

/// Appends an event about `case` (in its current state, `to` = its status) and returns its
/// sequence number.
#[allow(clippy::too_many_arguments)]
fn append_event(
    txn: &CaseTxn<'_>,
    case: &Case,
    action: EventAction,
    user: &str,
    role: Option<Role>,
    from: Option<Status>,
    reason: Option<String>,
    at: DateTime<Utc>,
) -> TxResult<u64> {
    let ev = EventNote {
        action,
        user,
        role,
        from,
        reason,
        record: None,
    };
    append_event_note(txn, case, ev, at)
}

/// What an event says besides the case and the time (see [`Event`]).
struct EventNote<'a> {
    action: EventAction,
    user: &'a str,
    role: Option<Role>,
    from: Option<Status>,
    reason: Option<String>,
    record: Option<serde_json::Value>,
}

/// [`append_event`] with the event given as an [`EventNote`] (which may carry a record).
fn append_event_note(
    txn: &CaseTxn<'_>,
    case: &Case,
    note: EventNote<'_>,
    at: DateTime<Utc>,
) -> TxResult<u64> {
    let EventNote {
        action,
        user,
        role,
        from,
        reason,
        record,
    } = note;
    let seq = next_counter(txn, EVENT_COUNTER)?;
    let event = Event {
        seq,
        at,
        user: user.to_string(),
        role,
        case_id: case.id.clone(),
        ticket: case.ticket.clone(),
        action,
        from,
        to: Some(case.status),
        reason,
        model_version: case.model_version.clone(),
        record,
    };
    txn.insert_later(
        CaseTree::Events,
        &seq.to_be_bytes(),
        std::sync::Arc::new(move || serde_json::to_vec(&event).map_err(|e| e.to_string())),
    )?;
    let mut k = case_events_prefix(&case.id);
    k.extend_from_slice(&seq.to_be_bytes());
    txn.insert(CaseTree::CaseEvents, &k, b"")?;
    Ok(seq)
}

/// A new case (ticket assigned and indexed; not yet written), status `PendingReview`.
fn new_case(
    txn: &CaseTxn<'_>,
    input: &BreakInput,
    id: &str,
    fingerprint: String,
    origin: Origin,
    now: DateTime<Utc>,
) -> TxResult<Case> {
    let n = next_counter(txn, TICKET_COUNTER)?;
    let ticket = format!("BRK-{}-{n:06}", now.format("%Y%m%d"));
    if txn.get(CaseTree::Tickets, ticket.as_bytes())?.is_some() {
        return abort(CaseError::Corrupt {
            what: "ticket counter".into(),
            message: format!("ticket {ticket} is already taken"),
        });
    }
    txn.insert(CaseTree::Tickets, ticket.as_bytes(), id.as_bytes())?;
    let mut bk = break_prefix(&input.profile, &input.key);
    bk.extend_from_slice(input.start_date.to_string().as_bytes());
    txn.insert(CaseTree::BreakIndex, &bk, id.as_bytes())?;
    Ok(Case {
        id: id.to_string(),
        ticket,
        profile: input.profile.clone(),
        key: input.key.clone(),
        start_date: input.start_date,
        last_date: input.date,
        origin,
        status: Status::PendingReview,
        bucket: input.bucket.clone(),
        bucket_rule: input.bucket_rule.clone(),
        confidence: input.confidence,
        severity: input.severity.clone(),
        summary: input.summary.clone(),
        score: input.score,
        rank: input.rank,
        difference: input.difference,
        model_version: input.model_version.clone(),
        proposed_by: None,
        jira_key: None,
        dispatched: false,
        dispatches: Vec::new(),
        created_at: now,
        updated_at: now,
        row: input.row.clone(),
        last_decision: None,
        fingerprint,
        judged_difference: None,
        first_difference: Some(input.difference),
        previous_difference: None,
        cleared_on: None,
        seen_to: None,
        owner: None,
        due: None,
    })
}

/// The stored case a record belongs to: the break's own case, the case its break was joined to
/// when it reappeared, or the cleared case it brings back (`reappear`, still cleared).
fn case_of_record(
    txn: &CaseTxn<'_>,
    input: &BreakInput,
    id: &str,
    reappear: Option<&str>,
) -> TxResult<Option<Case>> {
    if let Some(case) = load_case(txn, id)? {
        return Ok(Some(case));
    }
    let mut bk = break_prefix(&input.profile, &input.key);
    bk.extend_from_slice(input.start_date.to_string().as_bytes());
    if let Some(joined) = txn.get(CaseTree::BreakIndex, &bk)? {
        let joined = String::from_utf8_lossy(&joined).into_owned();
        if joined != id
            && let Some(case) = load_case(txn, &joined)?
        {
            return Ok(Some(case));
        }
    }
    if let Some(rid) = reappear
        && let Some(case) = load_case(txn, rid)?
        && case.cleared_on.is_some()
    {
        txn.insert(CaseTree::BreakIndex, &bk, rid.as_bytes())?;
        return Ok(Some(case));
    }
    Ok(None)
}

/// What recording one record did: the case written (or, if unchanged, as it was read), or, for
/// an unchanged case, its head and (when asked for) its stored bytes.
enum Step {
    Written(Box<UpsertOutcome>),
    Unchanged(Recorded, Vec<u8>),
}

/// The differences of a break's records before the one a new case is opened with (the
/// records of one batch, folded into its latest).
#[derive(Clone, Copy)]
struct Opening {
    /// The difference of the break's first record.
    first: f64,
    /// The difference of the record before the latest, if there was one.
    previous: Option<f64>,
}

#[allow(clippy::too_many_arguments)]
fn upsert_one(
    txn: &CaseTxn<'_>,
    input: &BreakInput,
    opening: Opening,
    auto_resolve: bool,
    id: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
    roll: &RollParams,
    reappear: Option<&str>,
    router: Option<&crate::routing::Router>,
    cycle: Option<&Cycle>,
) -> TxResult<UpsertOutcome> {
    if let Some(mut case) = case_of_record(txn, input, id, reappear)? {
        // An older record (a past file run again) or the same record: nothing to do.
        if input.date < case.last_date || case.fingerprint == fingerprint {
            return Ok(UpsertOutcome {
                case,
                change: Change::Unchanged,
            });
        }
        let record = serde_json::json!({
            "date": input.date.to_string(),
            "difference": input.difference,
        });
        let mut change = Change::Updated;
        match case.cleared_on {
            Some(on) if input.date > on || input.start_date != case.start_date => {
                change = Change::Reappeared;
                // The break is back: the same case, to be reviewed again.
                let from = case.status;
                let reason = if input.start_date != case.start_date {
                    format!(
                        "cleared on {on}, a break again from {} (within {} days)",
                        input.start_date, roll.reopen_days
                    )
                } else {
                    format!("cleared on {on}, in break again on {}", input.date)
                };
                case.refresh_from(input, fingerprint.to_string());
                case.start_date = input.start_date;
                case.cleared_on = None;
                case.status = Status::PendingReview;
                case.last_decision = None;
                case.proposed_by = None;
                append_event_note(
                    txn,
                    &case,
                    EventNote {
                        action: EventAction::Reappeared,
                        user: SYSTEM_USER,
                        role: None,
                        from: Some(from),
                        reason: Some(reason),
                        record: Some(record),
                    },
                    now,
                )?;
            }
            _ => {
                case.refresh_from(input, fingerprint.to_string());
                if recertify_if_moved(txn, &mut case, roll.recertify_share, record, now)? {
                    change = Change::Recertified;
                }
            }
        }
        case.due = Some(roll.due(case.created_at.date_naive(), &case.severity));
        case.updated_at = now;
        put_case(txn, &case)?;
        return Ok(UpsertOutcome { case, change });
    }
    let mut case = new_case(txn, input, id, fingerprint.to_string(), Origin::Model, now)?;
    case.first_difference = Some(opening.first);
    case.previous_difference = opening.previous.filter(|p| *p != input.difference);
    case.due = Some(roll.due(now.date_naive(), &case.severity));
    append_event(
        txn,
        &case,
        EventAction::Create,
        SYSTEM_USER,
        None,
        None,
        None,
        now,
    )?;
    if let Some((owner, when)) = router.and_then(|r| r.owner_for(input)) {
        case.owner = Some(owner.to_string());
        append_event(
            txn,
            &case,
            EventAction::Assign,
            RULES_USER,
            None,
            Some(Status::PendingReview),
            Some(format!("{owner} (route: {when})")),
            now,
        )?;
    }
    if auto_resolve {
        let by = format!("rules:{}", input.bucket_rule);
        case.status = Status::AutoResolveProposed;
        case.proposed_by = Some(by.clone());
        append_event(
            txn,
            &case,
            EventAction::Propose,
            RULES_USER,
            None,
            Some(Status::PendingReview),
            Some(by),
            now,
        )?;
    }
    if let Some(cycle) = cycle {
        roll_opened(&mut case, cycle);
    }
    write_case(txn, &case, true)?;
    Ok(UpsertOutcome {
        case,
        change: Change::Created,
    })
}

/// Whether `actor` may take `action` on `case` with `note`; the error says why not.
fn check_decision(
    case: &Case,
    action: Action,
    actor: &Actor,
    note: Option<&str>,
) -> Result<(), CaseError> {
    let allowed = case.status.allowed_actions();
    if !allowed.contains(&action) {
        return Err(CaseError::IllegalTransition {
            case_id: case.id.clone(),
            status: case.status,
            action,
            allowed: allowed.to_vec(),
        });
    }
    if action.supervisor_only() && actor.role != Role::Supervisor {
        return Err(CaseError::NeedsSupervisor {
            case_id: case.id.clone(),
            action,
            user: actor.user.clone(),
        });
    }
    if action == Action::Approve && case.proposed_by.as_deref() == Some(actor.user.as_str()) {
        return Err(CaseError::MakerChecker {
            case_id: case.id.clone(),
            user: actor.user.clone(),
        });
    }
    if let Some(what) = action.note_required()
        && note.is_none_or(|n| n.trim().is_empty())
    {
        return Err(CaseError::NoteRequired {
            case_id: case.id.clone(),
            action: action.into(),
            what,
        });
    }
    Ok(())
}

/// Applies a checked decision: new status, event, undo record, written.
fn apply_decision(
    txn: &CaseTxn<'_>,
    case: &mut Case,
    action: Action,
    actor: &Actor,
    note: Option<String>,
    now: DateTime<Utc>,
) -> TxResult<()> {
    let from = case.status;
    let prev_proposed_by = case.proposed_by.clone();
    case.status = action.target();
    if action == Action::Reopen && case.cleared_on.is_some() {
        // Reopened by hand: outstanding again, for the next cycle to judge.
        case.cleared_on = None;
    }
    case.judged_difference = case.status.label().map(|_| case.difference);
    if action == Action::Propose {
        case.proposed_by = Some(actor.user.clone());
    }
    case.updated_at = now;
    let seq = append_event(
        txn,
        case,
        action.into(),
        &actor.user,
        Some(actor.role),
        Some(from),
        note,
        now,
    )?;
    case.last_decision = Some(Decision {
        seq,
        user: actor.user.clone(),
        action,
        from,
        prev_proposed_by,
    });
    put_case(txn, case)
}

/// Records a dispatch change on the case `case_id` inside the outbox's transaction: its
/// per-channel entry, and one event (acting as `actor`, who queued the dispatch). When the change
/// is `Sent`: a Jira key from the answer is linked to the case (a `link_jira` event when it is
/// new), and an Accepted case is marked dispatched. A case that no longer exists is skipped
/// (`Ok(None)`): the dispatch it was part of stays valid for the others.
pub(crate) fn apply_dispatch(
    txn: &CaseTxn<'_>,
    case_id: &str,
    change: &DispatchChange,
    actor: &Actor,
    now: DateTime<Utc>,
) -> TxResult<Option<Case>> {
    let Some(mut case) = load_case(txn, case_id)? else {
        return Ok(None);
    };
    let item = format!("outbox #{}", change.outbox_id);
    let entry = ChannelDispatch {
        channel: change.channel,
        state: change.state,
        outbox_id: change.outbox_id,
        reference: change.reference.clone(),
        note: change.note.clone(),
        at: now,
    };
    match case
        .dispatches
        .iter_mut()
        .find(|d| d.channel == change.channel)
    {
        Some(d) => *d = entry,
        None => case.dispatches.push(entry),
    }
    case.dispatches.sort_by_key(|d| d.channel);
    case.updated_at = now;
    let status = case.status;
    let with_note = |text: String| match &change.note {
        Some(n) => format!("{text}: {n}"),
        None => text,
    };
    let (action, reason) = match change.state {
        DispatchState::Queued => (
            EventAction::DispatchQueued,
            with_note(format!("{} via {item}", change.channel)),
        ),
        DispatchState::Parked => (
            EventAction::DispatchParked,
            with_note(format!("{} via {item} parked", change.channel)),
        ),
        DispatchState::Cancelled => (
            EventAction::DispatchCancelled,
            with_note(format!("{} via {item} cancelled", change.channel)),
        ),
        DispatchState::Sent => {
            if change.channel == Channel::Jira
                && let Some(key) = change.reference.as_deref().filter(|k| is_jira_key(k))
                && case.jira_key.as_deref() != Some(key)
            {
                let note = match &case.jira_key {
                    Some(old) => format!("{key} (was {old})"),
                    None => key.to_string(),
                };
                case.jira_key = Some(key.to_string());
                append_event(
                    txn,
                    &case,
                    EventAction::LinkJira,
                    &actor.user,
                    Some(actor.role),
                    Some(status),
                    Some(note),
                    now,
                )?;
            }
            if status == Status::Accepted {
                case.dispatched = true;
            }
            let answer = change
                .reference
                .as_deref()
                .map(|r| format!(" {r}"))
                .unwrap_or_default();
            (
                EventAction::Dispatched,
                format!("{}{answer} via {item}", change.channel),
            )
        }
    };
    append_event(
        txn,
        &case,
        action,
        &actor.user,
        Some(actor.role),
        Some(status),
        Some(reason),
        now,
    )?;
    put_case(txn, &case)?;
    Ok(Some(case))
}

/// Reads a case inside a transaction (for the outbox).
pub(crate) fn load_case_txn(txn: &CaseTxn<'_>, case_id: &str) -> TxResult<Option<Case>> {
    load_case(txn, case_id)
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn clean_note(note: Option<&str>) -> Option<String> {
    note.map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

fn parse_label(s: &str) -> Result<bool, String> {
    match s.trim().to_lowercase().as_str() {
        "accept" | "1" | "true" => Ok(true),
        "reject" | "0" | "false" => Ok(false),
        _ => Err(format!(
            "label {s:?} is not one of accept, reject, 1, 0, true, false"
        )),
    }
}

fn is_ticket(reference: &str) -> bool {
    reference.starts_with("BRK-")
}

/// The sequence number of a ticket (`BRK-YYYYMMDD-NNNNNN` → NNNNNN).
fn ticket_number(ticket: &str) -> u64 {
    ticket
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Whether `key` looks like a Jira issue key (`PROJ-123`).
pub fn is_jira_key(key: &str) -> bool {
    let Some((project, number)) = key.split_once('-') else {
        return false;
    };
    let mut p = project.chars();
    p.next().is_some_and(|c| c.is_ascii_uppercase())
        && p.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
}

fn break_prefix(profile: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(profile.len() + key.len() + 2);
    k.extend_from_slice(profile.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k
}

/// Marks, in the break index, the cases that have not cleared: `profile NUL key NUL ~open~ id`
/// (after the account's break dates, which are digits), so that a record finds its account's
/// outstanding cases without reading the others.
const OUTSTANDING_TAG: &[u8] = b"~open~";

/// The ids of the outstanding cases of one account, from its markers (read through `reader`).
fn outstanding_in(
    reader: &mut CaseReader<'_>,
    profile: &str,
    key: &str,
) -> Result<Vec<String>, CaseError> {
    reader
        .scan(CaseTree::BreakIndex, &outstanding_prefix(profile, key))?
        .into_iter()
        .map(|(_, id)| {
            String::from_utf8(id).map_err(|e| CaseError::Corrupt {
                what: "outstanding marker".into(),
                message: e.to_string(),
            })
        })
        .collect()
}

fn outstanding_prefix(profile: &str, key: &str) -> Vec<u8> {
    let mut k = break_prefix(profile, key);
    k.extend_from_slice(OUTSTANDING_TAG);
    k
}

fn outstanding_marker(profile: &str, key: &str, case_id: &str) -> Vec<u8> {
    let mut k = outstanding_prefix(profile, key);
    k.extend_from_slice(case_id.as_bytes());
    k
}

/// Whether a break index entry under `prefix` is an outstanding marker (not a break start).
fn is_marker(entry_key: &[u8], prefix_len: usize) -> bool {
    entry_key
        .get(prefix_len..)
        .is_some_and(|rest| rest.starts_with(OUTSTANDING_TAG))
}

/// The seq-tree flag set once every stored case has its outstanding marker.
const OUTSTANDING_INDEXED: &[u8] = b"outstanding_indexed";

fn case_events_prefix(case_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(case_id.len() + 9);
    k.extend_from_slice(case_id.as_bytes());
    k.push(0);
    k
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Dates as `YYYY-MM-DD`.
mod date_format {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(d)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Optional dates as `YYYY-MM-DD`.
mod opt_date_format {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(d),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// Timestamps as RFC 3339 UTC with milliseconds (`2024-05-01T09:30:00.000Z`).
pub(crate) mod time_format {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flagged record of account `key` in profile `gl`, its break begun that day.
    fn record(key: &str, day: NaiveDate) -> BreakInput {
        BreakInput {
            profile: "gl".into(),
            key: key.into(),
            start_date: day,
            date: day,
            bucket: "Timing Issue".into(),
            bucket_rule: "r".into(),
            confidence: 0.9,
            severity: "Low".into(),
            summary: "s".into(),
            score: -0.6,
            rank: 1,
            difference: 10.0,
            model_version: "m".into(),
            row: serde_json::Map::new(),
        }
    }

    #[test]
    fn a_stored_case_is_read_back_with_its_head_or_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cases = Cases::new(&store);
        let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
        let input = record("A", day);
        let case = cases.upsert(&input, false).unwrap().case;
        let bytes = case_bytes(&case).unwrap();
        let head = case_head(&bytes).unwrap();
        assert_eq!(head.fingerprint, case.fingerprint);
        assert_eq!(head.last_date, day);
        assert_eq!(head.ticket, case.ticket);
        assert_eq!(head.status, Status::PendingReview);
        assert_eq!(decode_case(&bytes).unwrap(), case);
        // A case stored before heads existed is its JSON alone.
        let json = serde_json::to_vec(&case).unwrap();
        assert!(case_head(&json).is_none());
        assert_eq!(decode_case(&json).unwrap(), case);
        // A damaged head is no head, and the case does not decode: an error, not a panic.
        for cut in [1, 2, 3, 10, 40] {
            assert!(case_head(&bytes[..cut]).is_none(), "cut at {cut}");
            assert!(decode_case(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long[1] = 0xff;
        long[2] = 0xff;
        assert!(case_head(&long).is_none());
        assert!(decode_case(&long).is_err());
        // Re-recording the same record reads the head and changes nothing.
        let again = cases
            .record_batch(std::slice::from_ref(&input), &[false], None)
            .unwrap();
        assert_eq!(again[0].change, Change::Unchanged);
        assert_eq!(again[0].ticket, case.ticket);
        assert_eq!(cases.get(&case.id).unwrap().unwrap(), case);
    }

    #[test]
    fn brief_outstanding_cases_leave_the_snapshot_out_and_stay_brief_when_rolled() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cases = Cases::new(&store);
        let day = |d: u32| NaiveDate::from_ymd_opt(2024, 3, d).unwrap();
        let with_row = |key: &str| {
            let mut r = record(key, day(1));
            r.row
                .insert("Comments".into(), serde_json::json!("posted late"));
            r
        };
        let a = cases.upsert(&with_row("A"), false).unwrap().case;
        let b = cases.upsert(&with_row("B"), false).unwrap().case;
        assert!(!a.row.is_empty());
        let full = cases.outstanding_cases("gl").unwrap();
        let mut briefs = cases.outstanding_briefs("gl").unwrap();
        assert_eq!(briefs.len(), 2);
        for (f, b) in full.iter().zip(&briefs) {
            assert!(b.row.is_empty() && b.dispatches.is_empty());
            let mut f = f.clone();
            briefly(&mut f);
            assert_eq!(&f, b, "only the snapshot and dispatches are left out");
        }
        // A's break persists on the 2nd, B's is back within tolerance: both are written.
        let mut cycle = Cycle {
            profile: "gl".into(),
            ..Cycle::default()
        };
        let d2 = (day(2) - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
        cycle.push_day(&a.key, d2, true, 9.0, 1.0);
        cycle.push_day(&b.key, d2, false, 0.0, 0.0);
        cycle.seal();
        let out = cases.roll_forward_over(&cycle, &mut briefs).unwrap();
        assert_eq!((out.persisting, out.cleared), (1, 1));
        let rolled_a = briefs.iter().find(|c| c.id == a.id).unwrap();
        assert_eq!((rolled_a.last_date, rolled_a.difference), (day(2), 9.0));
        assert!(rolled_a.row.is_empty(), "a written case comes back brief");
        let rolled_b = briefs.iter().find(|c| c.id == b.id).unwrap();
        assert_eq!(rolled_b.status, Status::Cleared);
        // The store keeps the whole case.
        let stored = cases.get(&a.id).unwrap().unwrap();
        assert_eq!(stored.row, a.row);
        assert_eq!(stored.difference, 9.0);
    }

    #[test]
    fn a_store_written_before_the_markers_is_indexed_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cases = Cases::new(&store);
        let input =
            |key: &str, day: u32| record(key, NaiveDate::from_ymd_opt(2024, 3, day).unwrap());
        let a = cases.upsert(&input("A", 1), false).unwrap().case;
        let b = cases.upsert(&input("B", 2), false).unwrap().case;
        // What an older store held: the cases without their markers, and no flag.
        store
            .case_transaction(|txn| {
                for c in [&a, &b] {
                    txn.remove(
                        CaseTree::BreakIndex,
                        &outstanding_marker(&c.profile, &c.key, &c.id),
                    )?;
                }
                txn.remove(CaseTree::Seq, OUTSTANDING_INDEXED)?;
                Ok::<(), TxError<CaseError>>(())
            })
            .unwrap();
        assert!(cases.outstanding_of("gl", "A").unwrap().is_empty());
        assert_eq!(cases.index_outstanding().unwrap(), 2);
        assert_eq!(cases.outstanding_of("gl", "A").unwrap(), vec![a.id.clone()]);
        assert_eq!(cases.outstanding_cases("gl").unwrap().len(), 2);
        assert_eq!(cases.index_outstanding().unwrap(), 0, "once per store");
    }

    #[test]
    fn every_allowed_action_leads_out_of_its_status_and_back_to_work() {
        for status in Status::ALL {
            let allowed = status.allowed_actions();
            assert!(!allowed.is_empty(), "{status} is a dead end");
            for a in allowed {
                assert_ne!(a.target(), status, "{status} {a}");
            }
        }
        // Pending work is reachable again from every decided status.
        for s in [Status::Accepted, Status::Rejected, Status::Approved] {
            assert_eq!(s.allowed_actions(), &[Action::Reopen]);
        }
        assert_eq!(
            Status::Returned.allowed_actions(),
            Status::PendingReview.allowed_actions()
        );
    }

    #[test]
    fn labels_parse_in_every_accepted_spelling_and_nothing_else() {
        for s in ["accept", "ACCEPT", " 1 ", "true", "True"] {
            assert_eq!(parse_label(s), Ok(true), "{s}");
        }
        for s in ["reject", "0", "false", "FALSE"] {
            assert_eq!(parse_label(s), Ok(false), "{s}");
        }
        for s in ["", "yes", "2", "accepted"] {
            assert!(parse_label(s).is_err(), "{s}");
        }
    }

    #[test]
    fn jira_keys_and_ticket_numbers() {
        for k in ["RECON-1", "R2D2-42", "FIN_OPS-1000"] {
            assert!(is_jira_key(k), "{k}");
        }
        for k in [
            "",
            "RECON",
            "recon-1",
            "1RECON-1",
            "RECON-",
            "RECON-1-2",
            "RECON-x",
        ] {
            assert!(!is_jira_key(k), "{k}");
        }
        assert_eq!(ticket_number("BRK-20240501-000042"), 42);
        assert_eq!(ticket_number("BRK-20240501-1000000"), 1_000_000);
        assert_eq!(ticket_number("garbage"), u64::MAX);
    }

    #[test]
    fn a_case_stored_before_dispatch_existed_reads_and_is_dispatchable() {
        // A case as schema 2 wrote it: no `dispatches`.
        let v2 = r#"{"id":"C-0123456789ab","ticket":"BRK-20240501-000001","profile":"gl_ihub",
            "key":"K","start_date":"2024-05-01","last_date":"2024-05-02","origin":"Model",
            "status":"Accepted","bucket":"Timing Issue","bucket_rule":"r","confidence":0.5,
            "severity":"Low","summary":"s","score":0.1,"rank":1,"difference":1.5,
            "model_version":"m","proposed_by":null,"jira_key":null,"dispatched":false,
            "created_at":"2024-05-01T09:30:00.000Z","updated_at":"2024-05-01T09:30:00.000Z",
            "row":{},"last_decision":null,"fingerprint":"f"}"#;
        let mut case: Case = serde_json::from_str(v2).unwrap();
        assert!(case.dispatches.is_empty());
        assert!(Channel::ALL.iter().all(|c| case.dispatchable_on(*c)));
        let at = case.created_at;
        for (state, again) in [
            (DispatchState::Queued, false),
            (DispatchState::Sent, false),
            (DispatchState::Parked, false),
            (DispatchState::Cancelled, true),
        ] {
            case.dispatches = vec![ChannelDispatch {
                channel: Channel::Jira,
                state,
                outbox_id: 7,
                reference: None,
                note: None,
                at,
            }];
            assert_eq!(case.dispatchable_on(Channel::Jira), again, "{state}");
            assert!(case.dispatchable_on(Channel::Email));
            let back: Case = serde_json::from_str(&serde_json::to_string(&case).unwrap()).unwrap();
            assert_eq!(back, case);
        }
        assert_eq!("Webhook".parse::<Channel>().unwrap(), Channel::Webhook);
        assert!("fax".parse::<Channel>().is_err());
    }

    #[test]
    fn timestamps_and_dates_round_trip_through_json() {
        let t = DateTime::parse_from_rfc3339("2024-05-01T09:30:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let label = Label {
            case_id: "C-0123456789ab".into(),
            profile: "gl_ihub".into(),
            key: "K".into(),
            date: NaiveDate::from_ymd_opt(2024, 5, 1).unwrap(),
            start_date: NaiveDate::from_ymd_opt(2024, 4, 29),
            label: true,
            origin: Origin::Model,
            difference: None,
        };
        let json = serde_json::to_string(&label).unwrap();
        assert!(json.contains("\"date\":\"2024-05-01\""), "{json}");
        assert!(json.contains("\"start_date\":\"2024-04-29\""), "{json}");
        assert_eq!(serde_json::from_str::<Label>(&json).unwrap(), label);
        // A label stored before the start date was kept still reads.
        let old = json.replace(",\"start_date\":\"2024-04-29\"", "");
        let read: Label = serde_json::from_str(&old).unwrap();
        assert_eq!(read.start_date, None);
        assert_eq!(read.date, label.date);
        #[derive(Serialize, Deserialize)]
        struct T(#[serde(with = "time_format")] DateTime<Utc>);
        let s = serde_json::to_string(&T(t)).unwrap();
        assert_eq!(s, "\"2024-05-01T09:30:00.123Z\"");
        assert_eq!(serde_json::from_str::<T>(&s).unwrap().0, t);
    }
}
