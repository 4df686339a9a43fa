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
//! [`App::update`] as [`Action::Live`], polled with the other background messages.

pub mod client;

pub use client::{Client, LiveOptions, Request, endpoints};

use super::action::{Action, Cmd, View};
use super::app::{App, Confirm, Mode, Pending, TableState, Trail};
use super::data::{Loaded, RunInfo};
use super::table::{Column, ColumnStore, Kind, TextCol, short_status};
use crate::cases::{Action as CaseAction, Case, Event};
use serde_json::{Value, json};
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
    Status {
        case_id: String,
        ticket: String,
        action: String,
        from: Option<String>,
        to: String,
        user: String,
    },
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

/// What a live table starts as: the columns, no rows.
fn empty(url: &str) -> Loaded {
    let num = |title: &str, field: &str, kind: Kind| Column::num(title, field, kind, Vec::new());
    let text = |title: &str, field: &str| Column::text(title, field, TextCol::default());
    let cols = vec![
        num("#", "seq", Kind::Integer),
        text("key", "key"),
        text("date", "date"),
        num("difference", "difference", Kind::Amount),
        num("lhs", "lhs", Kind::Amount),
        num("rhs", "rhs", Kind::Amount),
        text("status", "status"),
        text("severity", "severity"),
        text("bucket", "bucket"),
        num("conf", "confidence", Kind::Number { decimals: 2 }),
        num("score", "score", Kind::Number { decimals: 4 }),
        num("cluster", "cluster", Kind::Integer),
        text("ticket", "ticket"),
        text("top features", "top_features"),
        text("rule", "rule"),
        text("summary", "summary"),
        text("by", "categorized_by"),
        num("decision", "decision", Kind::Number { decimals: 4 }),
        text("case", "case_id"),
    ];
    debug_assert_eq!(cols.len(), col::FIELDS);
    let mut table = ColumnStore {
        cols,
        rows: 0,
        frozen: col::DATE + 1,
        flagged: Vec::new(),
        known: Default::default(),
    };
    let k = &mut table.known;
    k.key = Some(col::KEY);
    k.date = Some(col::DATE);
    k.difference = Some(col::DIFFERENCE);
    k.lhs = Some(col::LHS);
    k.rhs = Some(col::RHS);
    k.status = Some(col::STATUS);
    k.severity = Some(col::SEVERITY);
    k.bucket = Some(col::BUCKET);
    k.confidence = Some(col::CONFIDENCE);
    k.score = Some(col::SCORE);
    k.cluster = Some(col::CLUSTER);
    k.ticket = Some(col::TICKET);
    k.top_features = Some(col::TOP_FEATURES);
    k.rule = Some(col::RULE);
    k.summary = Some(col::SUMMARY);
    k.categorized_by = Some(col::BY);
    k.decision = Some(col::DECISION);
    k.case_id = Some(col::CASE);
    Loaded {
        source: url.to_string(),
        history: None,
        table,
        complete: true,
        clusters: Vec::new(),
        info: RunInfo {
            // Until the service's hello names its profile.
            profile: "live".into(),
            model_status: "the service's".into(),
            ..RunInfo::default()
        },
        frame: None,
        by_key: Vec::new(),
        history_points: Vec::new(),
        case_rows: HashMap::new(),
        file_columns_from: col::FIELDS,
        queue: Vec::new(),
        queue_error: None,
        summary: None,
        trend: Vec::new(),
    }
}

/// Writes a record into the table: a new row, or (same key and date) its row again — wholly
/// when `overwrite`, else only its case's status. Returns the row and whether it is new.
fn put_row(live: &mut Live, d: &mut Loaded, row: &LiveRow, overwrite: bool) -> (u32, bool) {
    let id = (row.key.clone(), row.date.clone());
    let existing = live.rows.get(&id).copied();
    let t = &mut d.table;
    let r = existing.map_or(t.rows, |r| r as usize);
    let new = existing.is_none();
    if !new && !overwrite {
        if !row.status.is_empty() {
            t.cols[col::STATUS].put_text(r, short_status(&row.status));
        }
        return (r as u32, false);
    }
    // Columns for fields not seen before (empty on the earlier rows).
    for (name, _) in &row.fields {
        if live.fields.contains_key(name) {
            continue;
        }
        let field = super::table::field_name(name);
        if t.cols.iter().any(|c| c.field == field) {
            continue; // named like a result column: shown there already
        }
        let blank = TextCol::from_values(std::iter::repeat_n(None, t.rows));
        t.cols.push(Column::text(name, &field, blank));
        live.fields.insert(name.clone(), t.cols.len() - 1);
    }
    if let Some([diff, lhs, rhs]) = &row.titles {
        for (c, title) in [(col::DIFFERENCE, diff), (col::LHS, lhs), (col::RHS, rhs)] {
            if t.cols[c].title != *title {
                t.cols[c].retitle(title);
            }
        }
    }
    let nums = [
        (col::SEQ, (r + 1) as f64),
        (col::DIFFERENCE, row.difference),
        (col::LHS, row.lhs),
        (col::RHS, row.rhs),
        (col::CONFIDENCE, row.confidence),
        (col::SCORE, row.score),
        (col::CLUSTER, row.cluster),
        (col::DECISION, row.decision),
    ];
    for (c, v) in nums {
        t.cols[c].put_num(r, v);
    }
    let texts = [
        (col::KEY, row.key.as_str()),
        (col::DATE, row.date.as_str()),
        (col::STATUS, short_status(&row.status)),
        (col::SEVERITY, row.severity.as_str()),
        (col::BUCKET, row.bucket.as_str()),
        (col::TICKET, row.ticket.as_str()),
        (col::TOP_FEATURES, row.top_features.as_str()),
        (col::RULE, row.rule.as_str()),
        (col::SUMMARY, row.summary.as_str()),
        (col::BY, row.categorized_by.as_str()),
        (col::CASE, row.case_id.as_str()),
    ];
    for (c, v) in texts {
        t.cols[c].put_text(r, v);
    }
    let given: HashMap<&str, &str> = row
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (name, &c) in &live.fields {
        match given.get(name.as_str()) {
            Some(v) => t.cols[c].put_text(r, v),
            None if new => t.cols[c].put_text(r, ""),
            None => {}
        }
    }
    if new {
        t.rows += 1;
        t.flagged.push(true);
        live.rows.insert(id, r as u32);
        // The account's rows, in date order (the balance chart).
        if let Some(code) = key_code(t, r) {
            if d.by_key.len() <= code {
                d.by_key.resize(code + 1, Vec::new());
            }
            d.by_key[code].push(r as u32);
            let dates = &t.cols[col::DATE];
            d.by_key[code]
                .sort_by(|a, b| dates.text_at(*a as usize).cmp(dates.text_at(*b as usize)));
        }
    }
    if !row.case_id.is_empty() {
        let rows = d.case_rows.entry(row.case_id.clone()).or_default();
        if !rows.contains(&(r as u32)) {
            rows.push(r as u32);
        }
    }
    (r as u32, new)
}

fn key_code(t: &ColumnStore, row: usize) -> Option<usize> {
    match &t.cols[col::KEY].data {
        super::table::Data::Text(k) => k.codes.get(row).map(|c| *c as usize),
        super::table::Data::Num(_) => None,
    }
}

fn present(a: CaseAction) -> &'static str {
    match a {
        CaseAction::Accept => "accepting",
        CaseAction::Reject => "rejecting",
        CaseAction::Propose => "proposing",
        CaseAction::Approve => "approving",
        CaseAction::Return => "returning",
        CaseAction::Reopen => "reopening",
    }
}

impl App {
    /// Starts live mode: an empty table and the client's thread, which connects at once.
    pub fn start_live(&mut self, opts: LiveOptions) {
        let client = Client::spawn(&opts, self.cfg.ingest.clone());
        self.live = Some(Live {
            url: opts.url.clone(),
            state: ConnState::Connecting { attempt: 0 },
            client,
            rows: HashMap::new(),
            fields: HashMap::new(),
            batches: HashMap::new(),
            next_batch: 1,
            reported: None,
        });
        self.data = Some(Box::new(empty(&opts.url)));
        self.loading = None;
        self.error = None;
        self.picker = None;
        // Newest first.
        self.table = TableState {
            sort: Some((col::SEQ, true)),
            ..TableState::default()
        };
        self.trail = None;
        self.undo.clear();
        self.view = View::Table;
        self.mode = Mode::Normal;
        self.dirty = true;
    }

    /// Applies every event of the live client waiting. Returns whether any came.
    pub fn pump_live(&mut self) -> bool {
        let events: Vec<LiveEvent> = match &self.live {
            Some(l) => l.client.events.try_iter().collect(),
            None => return false,
        };
        let any = !events.is_empty();
        for e in events {
            self.update(Action::Live(e));
        }
        any
    }

    /// Takes one event of the live client.
    pub(crate) fn live_event(&mut self, e: LiveEvent) {
        if self.live.is_none() {
            return;
        }
        match e {
            LiveEvent::State(s) => self.live_state(s),
            LiveEvent::Hello {
                model_version,
                profile,
            } => {
                if let Some(d) = &mut self.data {
                    d.info.model = model_version;
                    d.info.profile = profile;
                }
            }
            LiveEvent::Anomaly(row) => {
                let keep = self.current_row();
                self.live_put(&row, true);
                self.refresh_view(keep);
                self.sync_case_rows(&row.case_id, &row.status);
            }
            LiveEvent::OpenCases(Ok(rows)) => {
                let keep = self.current_row();
                for row in &rows {
                    self.live_put(row, false);
                    self.sync_case_rows(&row.case_id, &row.status);
                }
                self.refresh_view(keep);
            }
            LiveEvent::OpenCases(Err(m)) => self.fail(format!("the open cases: {m}")),
            LiveEvent::Status {
                case_id,
                ticket,
                action,
                from,
                to,
                user,
            } => {
                self.set_case_status(&case_id, &to);
                if self.trail.as_ref().is_some_and(|t| t.case_id == case_id) {
                    self.trail = None; // read again
                }
                if user != self.actor.user {
                    self.info(format!(
                        "{ticket}: {user} {action} ({} → {to})",
                        from.as_deref().unwrap_or("-")
                    ));
                }
                if self.view == View::Approvals {
                    self.load_approvals();
                }
            }
            LiveEvent::Dispatch {
                item,
                channel,
                status,
                error,
            } => {
                let what = format!(
                    "the service's outbox: {}{channel} {status}",
                    item.map(|i| format!("#{i} ")).unwrap_or_default()
                );
                match error.filter(|_| status != "sent") {
                    Some(e) => self.fail(format!("{what}: {e}")),
                    None => self.info(what),
                }
            }
            LiveEvent::Model {
                status,
                model_version,
                error,
            } => match model_version.filter(|_| status == "swapped") {
                Some(v) => {
                    self.info(format!("the service swapped in model {v}"));
                    if let Some(d) = &mut self.data {
                        d.info.model = v;
                    }
                }
                None => self.fail(format!(
                    "the service's retrain {status}{}",
                    error.map(|e| format!(": {e}")).unwrap_or_default()
                )),
            },
            LiveEvent::Lagged(n) => {
                self.fail(format!(
                    "{n} event(s) of the service were missed (this client fell behind); reading the open cases again"
                ));
                if let Some(l) = &self.live {
                    l.request(Request::OpenCases);
                }
            }
            LiveEvent::Decided {
                batch,
                case_id,
                result,
            } => self.live_decided(batch, case_id, result),
            LiveEvent::Trail { case_id, result } => {
                if let Ok((c, _)) = &result {
                    self.set_case_status(&c.id, c.status.as_str());
                }
                if let Some(t) = &mut self.trail
                    && t.case_id == case_id
                {
                    t.events = result.map(|(_, events)| events);
                }
            }
            LiveEvent::Approvals(Ok(mut list)) => {
                list.sort_by(|a, b| a.rank.cmp(&b.rank).then(a.ticket.cmp(&b.ticket)));
                self.approvals = list;
                self.approval_cursor = self
                    .approval_cursor
                    .min(self.approvals.len().saturating_sub(1));
            }
            LiveEvent::Approvals(Err(m)) => self.fail(format!("the approval queue: {m}")),
        }
    }

    fn live_state(&mut self, s: ConnState) {
        let Some(live) = &mut self.live else { return };
        let url = live.url.clone();
        let text = match &s {
            ConnState::Live if live.state != ConnState::Live => {
                live.reported = None;
                Some((false, format!("connected to {url}")))
            }
            ConnState::Reconnecting { error, wait, .. }
                if live.reported.as_deref() != Some(error.as_str()) =>
            {
                live.reported = Some(error.clone());
                Some((
                    true,
                    format!(
                        "{url}: {error}; reconnecting with backoff (next try in {})",
                        seconds(*wait)
                    ),
                ))
            }
            ConnState::Error(m) if m.starts_with(&url) => Some((true, m.clone())),
            ConnState::Error(m) => Some((true, format!("{url}: {m}"))),
            _ => None,
        };
        live.state = s;
        match text {
            Some((true, t)) => self.fail(t),
            Some((false, t)) => self.info(t),
            None => {}
        }
    }

    /// Puts a row in the table; returns whether it is new.
    fn live_put(&mut self, row: &LiveRow, overwrite: bool) -> bool {
        let (Some(live), Some(d)) = (&mut self.live, &mut self.data) else {
            return false;
        };
        let (_, new) = put_row(live, d, row, overwrite);
        if new {
            self.table.marks.push(false);
        }
        new
    }

    /// Shows `status` on every row of the case (a break's records share its case).
    fn sync_case_rows(&mut self, case_id: &str, status: &str) {
        if !case_id.is_empty() && !status.is_empty() {
            self.set_case_status(case_id, status);
        }
    }

    /// Shows a case's new status (as the service names it) on its rows.
    fn set_case_status(&mut self, case_id: &str, status: &str) {
        let Some(d) = &mut self.data else { return };
        let Some(rows) = d.case_rows.get(case_id) else {
            return;
        };
        for r in rows.clone() {
            d.table.cols[col::STATUS].put_text(r as usize, short_status(status));
        }
        let keep = self.current_row();
        self.refresh_view(keep);
    }

    /// Commands that work differently, or not at all, in live mode. Returns whether it took
    /// the command.
    pub(crate) fn live_command(&mut self, cmd: Cmd) -> bool {
        let unavailable =
            |what: &str| format!("{what} not available in live mode: the service holds the store");
        let text = match cmd {
            Cmd::Quit => {
                let n = self.live.as_ref().map_or(0, Live::waiting);
                if n == 0 {
                    return false;
                }
                self.mode = Mode::Confirm(Confirm {
                    title: "Quit?".into(),
                    lines: vec![
                        format!(
                            "{n} decision(s) are still waiting for the service's answer: quitting now, this UI will not know whether the service recorded them."
                        ),
                        "Quit anyway? y quits, n or esc stays.".into(),
                    ],
                    pending: Pending::Quit,
                });
                return true;
            }
            Cmd::ViewClusters => unavailable("the clusters of a file's run are"),
            Cmd::ViewOutbox => unavailable("the outbox is"),
            Cmd::ViewQueue => unavailable("the case queue of a file's run is"),
            Cmd::ViewSummary => unavailable("the run summary of a file's run is"),
            Cmd::Take | Cmd::Release | Cmd::AddNote => {
                unavailable("taking, releasing and noting cases are")
            }
            Cmd::Email | Cmd::Jira => unavailable("dispatch from this UI is"),
            Cmd::Flag => unavailable("flagging a missed break is"),
            Cmd::Export => unavailable("export is"),
            // The store of live mode is a placeholder: a view saved there would be lost.
            Cmd::SaveView | Cmd::DeleteView => unavailable("saving and deleting views are"),
            Cmd::OpenPicker => {
                "opening a file is not available in live mode: quit and run breakdesk open FILE"
                    .into()
            }
            Cmd::NextView => {
                let to = if self.view == View::Table {
                    View::Approvals
                } else {
                    View::Table
                };
                self.view = to;
                if to == View::Approvals {
                    self.load_approvals();
                }
                return true;
            }
            _ => return false,
        };
        self.fail(text);
        true
    }

    /// Sends a decision on the cases of `rows` (each case once) to the service.
    pub(crate) fn live_decide(&mut self, action: CaseAction, rows: &[u32], note: Option<&str>) {
        let Some(d) = &self.data else { return };
        let mut ids: Vec<String> = Vec::new();
        let mut no_case = 0;
        for r in rows {
            let id = d.table.text(d.table.known.case_id, *r as usize);
            if id.is_empty() {
                no_case += 1;
            } else if !ids.iter().any(|x| x == id) {
                ids.push(id.to_string());
            }
        }
        if rows.len() > 1 {
            self.table.marks.iter_mut().for_each(|m| *m = false);
            self.table.marked = 0;
            self.table.anchor = None;
        }
        if ids.is_empty() {
            return self.fail(format!("{no_case} row(s) have no case; nothing was sent"));
        }
        let body = self.decision_body(action.as_str(), note);
        self.live_send(BatchKind::Decision(action), ids, body, no_case, false);
    }

    /// Sends a decision on one case of the approval queue.
    pub(crate) fn live_decide_case(&mut self, id: &str, action: CaseAction, note: Option<&str>) {
        let body = self.decision_body(action.as_str(), note);
        self.live_send(
            BatchKind::Decision(action),
            vec![id.to_string()],
            body,
            0,
            true,
        );
    }

    /// Undoes the last decision command of this session (`action: undo` on each of its cases).
    pub(crate) fn live_undo(&mut self) {
        let Some(batch) = self.undo.pop() else {
            return self.fail("nothing to undo in this session");
        };
        let body = self.decision_body("undo", None);
        self.live_send(BatchKind::Undo, batch, body, 0, false);
    }

    fn decision_body(&self, action: &str, note: Option<&str>) -> Value {
        let mut body = json!({
            "action": action,
            "user": self.actor.user,
            "role": self.actor.role.to_string(),
        });
        if let Some(n) = note {
            body["note"] = json!(n);
        }
        body
    }

    fn live_send(
        &mut self,
        kind: BatchKind,
        ids: Vec<String>,
        body: Value,
        no_case: usize,
        queue: bool,
    ) {
        let Some(live) = &mut self.live else { return };
        let batch = live.next_batch;
        live.next_batch += 1;
        let n = ids.len();
        for id in ids {
            let sent = live.client.send(Request::Decide {
                batch,
                case_id: id,
                body: body.clone(),
            });
            if !sent {
                return self.fail("the live client has stopped; nothing was sent");
            }
        }
        live.batches.insert(
            batch,
            Batch {
                kind,
                waiting: n,
                done: Vec::new(),
                refused: Vec::new(),
                no_case,
                queue,
            },
        );
        let what = match kind {
            BatchKind::Decision(a) => present(a),
            BatchKind::Undo => "undoing the last decision on",
        };
        self.info(format!("{what} {n} case(s)…"));
    }

    fn live_decided(&mut self, batch: u64, case_id: String, result: Result<Box<Case>, Refusal>) {
        if let Ok(c) = &result {
            self.set_case_status(&c.id, c.status.as_str());
        }
        if self.trail.as_ref().is_some_and(|t| t.case_id == case_id) {
            self.trail = None; // read again
        }
        let Some(live) = &mut self.live else { return };
        let Some(b) = live.batches.get_mut(&batch) else {
            return;
        };
        b.waiting = b.waiting.saturating_sub(1);
        match result {
            Ok(c) => b
                .done
                .push((c.id.clone(), format!("{} ({})", c.ticket, c.status))),
            Err(r) => b.refused.push(r.message),
        }
        if b.waiting > 0 {
            return;
        }
        let Some(b) = live.batches.remove(&batch) else {
            return;
        };
        let n = b.done.len();
        let mut text = match b.kind {
            BatchKind::Decision(a) if b.queue && n == 1 => {
                format!("{} {}", a.past(), b.done[0].1)
            }
            BatchKind::Decision(a) if n > 0 => format!("{} {n} case(s)", a.past()),
            BatchKind::Undo => format!("undid the last decision on {n} case(s)"),
            BatchKind::Decision(_) => String::new(),
        };
        if b.kind != BatchKind::Undo && n > 0 {
            self.undo
                .push(b.done.iter().map(|(id, _)| id.clone()).collect());
        }
        if b.no_case > 0 {
            if !text.is_empty() {
                text.push_str("; ");
            }
            text.push_str(&format!("{} row(s) have no case", b.no_case));
        }
        if b.queue {
            self.load_approvals();
        }
        if let Some(first) = b.refused.first() {
            if !text.is_empty() {
                text.push_str("; ");
            }
            if b.refused.len() > 1 {
                text.push_str(&format!("{} refused, e.g. {first}", b.refused.len()));
            } else {
                text.push_str(first);
            }
            self.fail(text);
        } else {
            self.info(text);
        }
    }

    /// The detail pane's audit trail: asked of the service when the row's case changes.
    pub(crate) fn live_sync_trail(&mut self) {
        if !self.table.detail || self.view != View::Table {
            return;
        }
        let id = match (&self.data, self.current_row()) {
            (Some(d), Some(r)) => d.table.text(d.table.known.case_id, r as usize).to_string(),
            _ => String::new(),
        };
        if id.is_empty() {
            self.trail = None;
            return;
        }
        if self.trail.as_ref().is_some_and(|t| t.case_id == id) {
            return;
        }
        if let Some(l) = &self.live {
            l.request(Request::Trail {
                case_id: id.clone(),
            });
        }
        // Empty until the service answers.
        self.trail = Some(Trail {
            case_id: id,
            events: Ok(Vec::new()),
        });
        self.dirty = true;
    }

    /// Asks the service for the approval queue (shown when it answers).
    pub(crate) fn live_load_approvals(&mut self) {
        if let Some(l) = &self.live
            && !l.request(Request::Approvals)
        {
            self.fail("the live client has stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_labels() {
        assert_eq!(ConnState::Connecting { attempt: 0 }.label(), "connecting…");
        assert_eq!(ConnState::Live.label(), "● live");
        assert_eq!(
            ConnState::Reconnecting {
                attempt: 3,
                wait: Duration::from_secs(2),
                error: "refused".into()
            }
            .label(),
            "reconnecting in 2 s (attempt 3)"
        );
        assert_eq!(
            ConnState::Reconnecting {
                attempt: 1,
                wait: Duration::from_millis(500),
                error: "refused".into()
            }
            .label(),
            "reconnecting in 0.5 s (attempt 1)"
        );
        assert_eq!(
            ConnState::Error("401 Unauthorized".into()).label(),
            "error: 401 Unauthorized"
        );
        let long = ConnState::Error("x".repeat(100)).label();
        assert_eq!(long.chars().count(), "error: ".len() + 48);
    }
}
