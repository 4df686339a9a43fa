//! A case, its events, what recording and listing return, and why an operation failed.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

use super::codec::{date_format, opt_date_format};
use super::*;

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

/// The columns every CSV of cases starts with (`cases list`, `export`, the email's attachment);
/// [`Case::csv_head`] gives a case's values.
pub const CASE_CSV_HEAD: [&str; 13] = [
    "ticket",
    "case_id",
    "status",
    "bucket",
    "severity",
    "profile",
    "key",
    "start_date",
    "last_date",
    "age_days",
    "difference",
    "jira_key",
    "summary",
];

/// The columns of [`CASE_CSV_HEAD`] followed by `rest` (`N` = 13 + `M`).
pub const fn case_columns<const M: usize, const N: usize>(
    rest: [&'static str; M],
) -> [&'static str; N] {
    assert!(CASE_CSV_HEAD.len() + M == N, "N must be 13 + M");
    let mut out = [""; N];
    let mut i = 0;
    while i < CASE_CSV_HEAD.len() {
        out[i] = CASE_CSV_HEAD[i];
        i += 1;
    }
    let mut j = 0;
    while j < M {
        out[CASE_CSV_HEAD.len() + j] = rest[j];
        j += 1;
    }
    out
}

impl Case {
    /// The case's values for [`CASE_CSV_HEAD`], with its key and summary as they are to be
    /// shown (the email may mask them).
    pub fn csv_head(&self, key: String, summary: String) -> Vec<String> {
        vec![
            self.ticket.clone(),
            self.id.clone(),
            self.status.as_str().to_string(),
            self.bucket.clone(),
            self.severity.clone(),
            self.profile.clone(),
            key,
            self.start_date.to_string(),
            self.last_date.to_string(),
            self.age_days().to_string(),
            format!("{}", self.difference),
            self.jira_key.clone().unwrap_or_default(),
            summary,
        ]
    }

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

    /// Takes the latest record's fields, but for its columns: the case is left without them
    /// (`row` empty), and is written with the record's own (no copy of them).
    pub(super) fn refresh_from(&mut self, input: &BreakInput, fingerprint: String) {
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
        self.row = serde_json::Map::new();
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
    pub(super) fn of(case: &Case, change: Change) -> Recorded {
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
