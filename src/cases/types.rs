//! Statuses, actions, roles and dispatch states of cases.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::*;

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
        one_of("action", &Action::ALL, Action::as_str, s)
    }
}

/// The value of `all` whose name is `s` (ignoring case and surrounding spaces), or an error that
/// lists the names.
fn one_of<T: Copy>(
    what: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    s: &str,
) -> Result<T, CaseError> {
    let wanted = s.trim().to_lowercase();
    all.iter()
        .copied()
        .find(|v| name(*v) == wanted)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
            CaseError::Invalid(format!(
                "unknown {what} {s:?} (one of {})",
                names.join(", ")
            ))
        })
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
        one_of("channel", &Channel::ALL, Channel::as_str, s)
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
/// ([`crate::dispatch`]) in the same transaction as its own item.
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
