//! The case queue: outstanding cases, critical first then oldest; decisions, owners and notes.

use super::*;

impl App {
    /// Rebuilds the queue's order from the loaded cases; the cursor stays on its case.
    pub fn refresh_queue(&mut self) {
        let keep = self.queue_current().map(|c| c.id.clone());
        self.queue.index = None;
        let Some(d) = &self.data else {
            self.queue.order.clear();
            return;
        };
        self.queue.order = queue::order(&d.queue);
        if self.queue.mine {
            let me = self.actor.user.as_str();
            self.queue
                .order
                .retain(|i| d.queue[*i as usize].owner.as_deref() == Some(me));
        }
        if let Some(p) = queue::position_of(&self.queue.order, &d.queue, keep.as_deref()) {
            self.queue.cursor = p;
        }
        self.queue.cursor = self
            .queue
            .cursor
            .min(self.queue.order.len().saturating_sub(1));
        if !self.queue.marks.is_empty() {
            let ids: HashSet<&str> = d.queue.iter().map(|q| q.id.as_str()).collect();
            self.queue.marks.retain(|id| ids.contains(id.as_str()));
        }
        self.queue_scroll();
    }

    /// The queue's case under the cursor.
    pub fn queue_current(&self) -> Option<&QueueCase> {
        let d = self.data.as_ref()?;
        let i = *self.queue.order.get(self.queue.cursor)?;
        d.queue.get(i as usize)
    }

    /// Lines of the queue shown at the current size.
    pub fn queue_height(&self) -> usize {
        let area = Rect::new(0, 0, self.size.0, self.size.1);
        crate::tui::ui::queue_body(self, area).height as usize
    }

    pub(super) fn queue_scroll(&mut self) {
        let h = self.queue_height().max(1);
        let q = &mut self.queue;
        if q.cursor < q.offset {
            q.offset = q.cursor;
        } else if q.cursor >= q.offset + h {
            q.offset = q.cursor + 1 - h;
        }
        q.offset = q.offset.min(q.order.len().saturating_sub(h));
    }

    pub(super) fn queue_move(&mut self, to: isize) {
        let n = self.queue.order.len();
        self.queue.cursor = if n == 0 {
            0
        } else {
            to.clamp(0, n as isize - 1) as usize
        };
        self.queue_scroll();
    }

    /// The cases a queue command applies to: the marked ones (in queue order), else the one
    /// under the cursor.
    pub fn queue_targets(&self) -> Vec<String> {
        let Some(d) = &self.data else {
            return Vec::new();
        };
        if self.queue.marks.is_empty() {
            return self
                .queue_current()
                .map(|c| c.id.clone())
                .into_iter()
                .collect();
        }
        self.queue
            .order
            .iter()
            .map(|i| &d.queue[*i as usize].id)
            .filter(|id| self.queue.marks.contains(*id))
            .cloned()
            .collect()
    }

    pub(super) fn queue_command(&mut self, cmd: Cmd) {
        let page = self.queue_height().max(1) as isize;
        let cur = self.queue.cursor as isize;
        match cmd {
            Cmd::Down => self.queue_move(cur + 1),
            Cmd::Up => self.queue_move(cur - 1),
            Cmd::PageDown => self.queue_move(cur + page),
            Cmd::PageUp => self.queue_move(cur - page),
            Cmd::Top => self.queue_move(0),
            Cmd::Bottom => self.queue_move(isize::MAX / 2),
            Cmd::Enter => self.expand_case(),
            Cmd::Back if !self.queue.marks.is_empty() => {
                self.queue.marks.clear();
                self.info("marks cleared");
            }
            Cmd::Mark => {
                if let Some(id) = self.queue_current().map(|c| c.id.clone()) {
                    if !self.queue.marks.remove(&id) {
                        self.queue.marks.insert(id);
                    }
                    self.queue_move(cur + 1);
                }
            }
            Cmd::MarkAll => {
                let Some(d) = &self.data else { return };
                self.queue.marks = d.queue.iter().map(|c| c.id.clone()).collect();
                self.info(format!("{} cases marked", self.queue.marks.len()));
            }
            Cmd::Accept => self.start_case_decision(CaseAction::Accept),
            Cmd::Reject => self.start_case_decision(CaseAction::Reject),
            Cmd::Propose => self.start_case_decision(CaseAction::Propose),
            Cmd::Approve => self.start_case_decision(CaseAction::Approve),
            Cmd::Return => self.start_case_decision(CaseAction::Return),
            Cmd::Undo => self.undo_last(),
            Cmd::Take => self.take_or_release(true),
            Cmd::Release => self.take_or_release(false),
            Cmd::AddNote => self.start_note(),
            Cmd::MyQueue => {
                self.queue.mine = !self.queue.mine;
                self.refresh_queue();
                let n = self.queue.order.len();
                if self.queue.mine {
                    self.info(format!(
                        "my queue: {n} case(s) owned by {}",
                        self.actor.user
                    ));
                } else {
                    self.info(format!("every outstanding case: {n}"));
                }
            }
            _ => {}
        }
    }

    /// Shows the records of the queue's case under the cursor in the table.
    pub(super) fn expand_case(&mut self) {
        let Some(c) = self.queue_current().cloned() else {
            return;
        };
        self.table.case = Some((c.id.clone(), c.ticket.clone()));
        self.table.cursor = 0;
        self.table.offset = 0;
        self.refresh_view(None);
        self.view = View::Table;
        let n = self.table.view.len();
        if n == 0 {
            self.info(format!(
                "{}: no records of this case in this file (esc returns to the queue)",
                c.ticket
            ));
        } else {
            self.info(format!(
                "{}: {n} record(s) of the case (esc returns to the queue)",
                c.ticket
            ));
        }
    }

    pub(super) fn start_case_decision(&mut self, action: CaseAction) {
        if !self.complete() {
            return self.fail("wait until the cases are recorded");
        }
        let ids = self.queue_targets();
        self.start_decision_on(action, Targets::Cases(ids));
    }

    pub(super) fn confirm_case_decision(
        &mut self,
        action: CaseAction,
        ids: Vec<String>,
        note: Option<String>,
    ) {
        let Some(d) = &self.data else { return };
        let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let (total, abs) = d
            .queue
            .iter()
            .filter(|c| wanted.contains(c.id.as_str()))
            .fold((0.0, 0.0), |(t, a), c| {
                (t + c.difference, a + c.difference.abs())
            });
        let lines = vec![format!(
            "{} {} case(s): total difference {} (absolute {}).",
            capitalise(action.as_str()),
            ids.len(),
            crate::text::thousands(total, 2),
            crate::text::thousands(abs, 2)
        )];
        let title = format!("{} {} cases?", capitalise(action.as_str()), ids.len());
        let shown = note.clone();
        let pending = Pending::DecideCases {
            action,
            case_ids: ids,
            note,
        };
        self.confirm_pending(title, lines, shown.as_deref(), action, pending);
    }

    /// Decides on queue cases (the marks are cleared).
    pub(super) fn decide_cases(&mut self, action: CaseAction, ids: &[String], note: Option<&str>) {
        self.queue.marks.clear();
        self.decide_ids(action, ids, note, 0);
    }

    /// The case (id, ticket) a take, release or note applies to in the table: the row's.
    pub(super) fn row_case(&self) -> Option<(String, String)> {
        let d = self.data.as_ref()?;
        let r = self.current_row()? as usize;
        let t = &d.table;
        let id = t.text(t.known.case_id, r);
        (!id.is_empty()).then(|| (id.to_string(), t.text(t.known.ticket, r).to_string()))
    }

    /// Takes (assigns to the user) or releases the queue's marked cases or the one under the
    /// cursor, or the table row's case; each change is on disk before it is shown.
    pub(super) fn take_or_release(&mut self, take: bool) {
        if !self.complete() {
            return self.fail("wait until the cases are recorded");
        }
        let ids: Vec<String> = match self.view {
            View::Queue => self.queue_targets(),
            _ => self.row_case().map(|c| c.0).into_iter().collect(),
        };
        if ids.is_empty() {
            return self.fail("no case here: only a flagged row has a case");
        }
        let cases = Cases::new(&self.store);
        let mut done: Vec<Case> = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        for id in &ids {
            let r = if take {
                cases.assign(id, &self.actor.user, &self.actor)
            } else {
                cases.release(id, &self.actor)
            };
            match r {
                Ok(c) => done.push(c),
                Err(e) => refused.push(e.to_string()),
            }
        }
        for c in &done {
            self.show_case(None, c);
        }
        if ids.len() > 1 {
            self.queue.marks.clear();
        }
        if self.queue.mine {
            // My queue follows who owns what.
            self.refresh_queue();
        }
        self.trail = None;
        self.notes = None;
        let what = match (take, done.as_slice()) {
            (true, [c]) => format!("took {}: {} owns it", c.ticket, self.actor.user),
            (false, [c]) => format!("released {}: nobody owns it", c.ticket),
            (true, cs) => format!("took {} case(s)", cs.len()),
            (false, cs) => format!("released {} case(s)", cs.len()),
        };
        match refused.first() {
            None => self.info(what),
            Some(e) if done.is_empty() && refused.len() == 1 => self.fail(e.clone()),
            Some(e) => self.fail(format!("{what}; {} refused, e.g. {e}", refused.len())),
        }
    }

    pub(super) fn start_note(&mut self) {
        if !self.complete() {
            return self.fail("wait until the cases are recorded");
        }
        let target = match self.view {
            View::Queue => self
                .queue_current()
                .map(|c| (c.id.clone(), c.ticket.clone())),
            _ => self.row_case(),
        };
        let Some((case_id, ticket)) = target else {
            return self.fail("no case here: only a flagged row has a case");
        };
        let label = format!("note on {ticket}");
        self.prompt(
            InputKind::CaseNote { case_id, ticket },
            &label,
            String::new(),
        );
    }

    pub(super) fn add_note(&mut self, case_id: &str, ticket: &str, text: &str) {
        match Cases::new(&self.store).note(case_id, text, &self.actor) {
            Ok(c) => {
                self.show_case(None, &c);
                self.trail = None;
                self.notes = None;
                self.info(format!("note added to {ticket}"));
            }
            Err(e) => self.fail(e.to_string()),
        }
    }

    /// Reads the notes of the queue's case under the cursor when it changed.
    pub(super) fn sync_notes(&mut self) {
        if self.live.is_some() || self.view != View::Queue {
            return;
        }
        let Some(id) = self.queue_current().map(|c| c.id.clone()) else {
            self.notes = None;
            return;
        };
        if self.notes.as_ref().is_some_and(|n| n.case_id == id) {
            return;
        }
        let events = Cases::new(&self.store)
            .notes(&id)
            .map_err(|e| e.to_string());
        self.notes = Some(Trail {
            case_id: id,
            events,
        });
        self.dirty = true;
    }

    // ----- clusters ---------------------------------------------------------------------------
}
