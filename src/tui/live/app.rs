use super::rows::{empty, put_row};
use super::{
    Batch, BatchKind, Client, ConnState, Live, LiveEvent, LiveOptions, LiveRow, Refusal, Request,
    col, seconds,
};
use crate::cases::{Action as CaseAction, Case};
use crate::tui::app::{App, Confirm, Mode, Pending, TableState, Trail};
use crate::tui::column_store::short_status;
use crate::tui::message::{Cmd, Message, View};
use serde_json::{Value, json};
use std::collections::HashMap;

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
        let ingest = match crate::wiring::run::prepare_options(&self.cfg.ingest) {
            Ok(o) => o,
            Err(message) => {
                self.error = Some(crate::tui::worker::LoadError {
                    title: "invalid configuration".into(),
                    message,
                });
                return;
            }
        };
        let client = Client::spawn(&opts, ingest);
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
            self.update(Message::Live(e));
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
            LiveEvent::Status(super::StatusChange {
                case_id,
                ticket,
                action,
                from,
                to,
                user,
            }) => {
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
        let Some(id) = self.trail_wanted() else {
            return;
        };
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
