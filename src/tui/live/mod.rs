//! Live mode (`breakdesk open --live ws://HOST:PORT/ws`): the anomalies of a running
//! `breakdesk serve` as they arrive, triaged through its REST API.
//!
//! - The table starts with the service's open cases (pending review, returned, proposed for
//!   auto-resolution; fetched after each connection, so nothing decided or flagged while the
//!   client was away is missed) and grows with each `anomaly` event: one row per record, newest
//!   first, with the record's own fields as columns, as a file's rows are shown. A record seen
//!   again (same key and date) updates its row.
//! - The status bar shows the connection: connecting, live, reconnecting (with the backoff), or
//!   an error naming the URL.
//! - Decisions (accept, reject, propose, approve, return, undo) are sent as
//!   `POST /cases/{id}/decision`; a row's status changes when the service answers, and on
//!   `status` events (decisions made elsewhere too). What the service refuses (403, 409, 422) is
//!   shown on the message line with its message, as a local refusal is.
//! - The service holds the store, so this UI has none of its own: the app is given an empty,
//!   private placeholder store that live mode never reads, and the views that need the store
//!   (clusters of a run, the outbox, email and Jira dispatch, flagging a missed break, export)
//!   say they are not available.
//!
//! The network runs on the client's own thread ([`client`]); its events reach
//! [`App::update`] as [`Message::Live`], polled with the other background messages.

pub mod client;

mod app;
mod rows;
#[cfg(test)]
mod tests;

pub use client::{Client, LiveOptions, Request, endpoints};

#[cfg(doc)]
use super::{app::App, message::Message};
use crate::cases::{Action as CaseAction, Case, Event};
use std::collections::HashMap;
use std::time::Duration;

/// The connection to the service.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnState {
    /// Connecting; `attempt` failures so far.
    Connecting { attempt: u32 },
    /// Connected: events arrive.
    Live,
    /// The connection failed or dropped; the next attempt is in `wait`.
    Reconnecting {
        attempt: u32,
        wait: Duration,
        error: String,
    },
    /// Given up: retrying cannot help (why; the message line adds the URL).
    Error(String),
}

impl ConnState {
    /// The status bar's words.
    pub fn label(&self) -> String {
        match self {
            ConnState::Connecting { attempt: 0 } => "connecting…".into(),
            ConnState::Connecting { attempt } => format!("reconnecting… (attempt {})", attempt + 1),
            ConnState::Live => "● live".into(),
            ConnState::Reconnecting { attempt, wait, .. } => {
                format!("reconnecting in {} (attempt {attempt})", seconds(*wait))
            }
            ConnState::Error(m) => {
                // The status bar's left names the URL; the message line has the whole text.
                let m: String = if m.chars().count() > 48 {
                    m.chars().take(47).chain(['…']).collect()
                } else {
                    m.clone()
                };
                format!("error: {m}")
            }
        }
    }
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 && s.fract() != 0.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

/// Why the service did not do what was asked: its status and message, or no answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The HTTP status (`None`: no answer).
    pub status: Option<u16>,
    pub message: String,
}

/// One record as the table shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRow {
    pub key: String,
    pub date: String,
    pub difference: f64,
    pub lhs: f64,
    pub rhs: f64,
    /// The record's headers of the difference and the two sides (when its profile reads it).
    pub titles: Option<[String; 3]>,
    /// The case status as the service names it (`PendingReview`, …).
    pub status: String,
    pub severity: String,
    pub bucket: String,
    pub confidence: f64,
    pub score: f64,
    pub decision: f64,
    pub cluster: f64,
    pub ticket: String,
    pub top_features: String,
    pub rule: String,
    pub summary: String,
    pub categorized_by: String,
    pub case_id: String,
    pub model_version: String,
    /// The record's own fields (those not shown as the amounts), as text.
    pub fields: Vec<(String, String)>,
}

impl Default for LiveRow {
    fn default() -> LiveRow {
        LiveRow {
            key: String::new(),
            date: String::new(),
            difference: f64::NAN,
            lhs: f64::NAN,
            rhs: f64::NAN,
            titles: None,
            status: String::new(),
            severity: String::new(),
            bucket: String::new(),
            confidence: f64::NAN,
            score: f64::NAN,
            decision: f64::NAN,
            cluster: f64::NAN,
            ticket: String::new(),
            top_features: String::new(),
            rule: String::new(),
            summary: String::new(),
            categorized_by: String::new(),
            case_id: String::new(),
            model_version: String::new(),
            fields: Vec::new(),
        }
    }
}

/// A decision that changed a case, as the service's stream reports it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct StatusChange {
    pub case_id: String,
    #[serde(default)]
    pub ticket: String,
    #[serde(default)]
    pub action: String,
    pub from: Option<String>,
    pub to: String,
    #[serde(default)]
    pub user: String,
}

/// What the live client reports.
#[derive(Debug)]
pub enum LiveEvent {
    State(ConnState),
    /// The service's first message.
    Hello {
        model_version: String,
        profile: String,
    },
    /// A flagged record.
    Anomaly(Box<LiveRow>),
    /// The open cases, fetched after connecting (or after missed events).
    OpenCases(Result<Vec<LiveRow>, String>),
    /// A decision changed a case (here or elsewhere).
    Status(StatusChange),
    /// The service's outbox tried to send an item.
    Dispatch {
        item: Option<u64>,
        channel: String,
        status: String,
        error: Option<String>,
    },
    /// A retrained model was swapped in (or the retrain failed).
    Model {
        status: String,
        model_version: Option<String>,
        error: Option<String>,
    },
    /// This client fell behind and the service dropped this many events for it.
    Lagged(u64),
    /// The service's answer to one decision of a batch.
    Decided {
        batch: u64,
        case_id: String,
        result: Result<Box<Case>, Refusal>,
    },
    /// A case and its audit trail (the detail pane).
    Trail {
        case_id: String,
        result: Result<(Box<Case>, Vec<Event>), String>,
    },
    /// The auto-resolutions waiting for a supervisor (the approval queue).
    Approvals(Result<Vec<Case>, String>),
}

/// The table's columns in live mode, by position.
mod col {
    pub const SEQ: usize = 0;
    pub const KEY: usize = 1;
    pub const DATE: usize = 2;
    pub const DIFFERENCE: usize = 3;
    pub const LHS: usize = 4;
    pub const RHS: usize = 5;
    pub const STATUS: usize = 6;
    pub const SEVERITY: usize = 7;
    pub const BUCKET: usize = 8;
    pub const CONFIDENCE: usize = 9;
    pub const SCORE: usize = 10;
    pub const CLUSTER: usize = 11;
    pub const TICKET: usize = 12;
    pub const TOP_FEATURES: usize = 13;
    pub const RULE: usize = 14;
    pub const SUMMARY: usize = 15;
    pub const BY: usize = 16;
    pub const DECISION: usize = 17;
    pub const CASE: usize = 18;
    /// The records' own fields start here.
    pub const FIELDS: usize = 19;
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BatchKind {
    Decision(CaseAction),
    Undo,
}

/// The decisions sent together (one command), until every answer is in.
#[derive(Debug)]
struct Batch {
    kind: BatchKind,
    waiting: usize,
    done: Vec<(String, String)>,
    refused: Vec<String>,
    no_case: usize,
    /// From the approval queue (reload it after).
    queue: bool,
}

/// Live mode's state in the app.
pub struct Live {
    /// The WebSocket URL.
    pub url: String,
    pub state: ConnState,
    client: Client,
    /// The row of each record shown, by key and date.
    rows: HashMap<(String, String), u32>,
    /// The column of each record field shown.
    fields: HashMap<String, usize>,
    batches: HashMap<u64, Batch>,
    next_batch: u64,
    /// The connection problem last put on the message line (not repeated on every retry).
    reported: Option<String>,
}

impl Live {
    /// Asks the client for something; false when it has stopped.
    pub fn request(&self, r: Request) -> bool {
        self.client.send(r)
    }

    /// Whether decisions are waiting for the service's answer.
    pub fn waiting(&self) -> usize {
        self.batches.values().map(|b| b.waiting).sum()
    }
}
