//! Decisions on the table's rows, the case of a row, undo, a missed break flagged, exports.

use super::*;

impl App {
    pub(super) fn start_decision(&mut self, action: CaseAction) {
        if !self.complete() {
            return self.fail("wait until the cases are recorded");
        }
        let rows = self.targets();
        self.start_decision_on(action, Targets::Rows(rows));
    }

    /// Starts a decision on table rows or queue cases: asks for the note the action needs,
    /// confirms a decision on several, or decides on one at once.
    pub(super) fn start_decision_on(&mut self, action: CaseAction, targets: Targets) {
        let n = targets.len();
        if n == 0 {
            return;
        }
        if let Some(what) = action.note_required() {
            let label = if n > 1 {
                format!("{} {n} {} — {what}", action.as_str(), targets.noun())
            } else {
                format!("{} — {what}", action.as_str())
            };
            let kind = match targets {
                Targets::Rows(rows) => InputKind::Note {
                    action: NoteFor::Decision(action),
                    rows,
                },
                Targets::Cases(case_ids) => InputKind::CaseDecision { action, case_ids },
            };
            self.prompt(kind, &label, String::new());
        } else {
            match (targets, n > 1) {
                (Targets::Rows(rows), true) => self.confirm_decision(action, rows, None),
                (Targets::Rows(rows), false) => self.decide(action, &rows, None),
                (Targets::Cases(ids), true) => self.confirm_case_decision(action, ids, None),
                (Targets::Cases(ids), false) => self.decide_cases(action, &ids, None),
            }
        }
    }

    /// Asks to confirm a decision: `lines` describe what it applies to, then the note and the
    /// keys.
    pub(super) fn confirm_pending(
        &mut self,
        title: String,
        mut lines: Vec<String>,
        note: Option<&str>,
        action: CaseAction,
        pending: Pending,
    ) {
        if let Some(n) = note {
            lines.push(format!("{}: {n}", action.note_required().unwrap_or("note")));
        }
        lines.push("y confirms, n or esc cancels.".into());
        self.mode = Mode::Confirm(Confirm {
            title,
            lines,
            pending,
        });
    }

    pub(super) fn confirm_decision(
        &mut self,
        action: CaseAction,
        rows: Vec<u32>,
        note: Option<String>,
    ) {
        let Some(d) = &self.data else { return };
        let t = &d.table;
        let total: f64 = rows
            .iter()
            .filter_map(|r| t.num(t.known.difference, *r as usize))
            .sum();
        let abs: f64 = rows
            .iter()
            .filter_map(|r| t.num(t.known.difference, *r as usize))
            .map(f64::abs)
            .sum();
        let with_case = rows
            .iter()
            .filter(|r| !t.text(t.known.case_id, **r as usize).is_empty())
            .count();
        let distinct: HashSet<&str> = rows
            .iter()
            .map(|r| t.text(t.known.case_id, *r as usize))
            .filter(|id| !id.is_empty())
            .collect();
        let mut lines = vec![format!(
            "{} {} case(s) ({} rows): total difference {} (absolute {}).",
            capitalise(action.as_str()),
            distinct.len(),
            rows.len(),
            crate::text::thousands(total, 2),
            crate::text::thousands(abs, 2)
        )];
        if with_case < rows.len() {
            lines.push(format!(
                "{} of the rows have no case (not flagged) and are skipped.",
                rows.len() - with_case
            ));
        }
        let title = format!("{} {} rows?", capitalise(action.as_str()), rows.len());
        let shown = note.clone();
        let pending = Pending::Decide { action, rows, note };
        self.confirm_pending(title, lines, shown.as_deref(), action, pending);
    }

    /// Decides on the cases of `rows`, one durable call each; statuses are shown once stored.
    pub fn decide(&mut self, action: CaseAction, rows: &[u32], note: Option<&str>) {
        if self.live.is_some() {
            return self.live_decide(action, rows, note);
        }
        let mut ids: Vec<String> = Vec::new();
        let mut no_case = 0;
        {
            let Some(d) = &self.data else { return };
            // Several records of one break share its case: each case is decided once.
            let mut seen: HashSet<&str> = HashSet::new();
            for r in rows {
                let id = d.table.text(d.table.known.case_id, *r as usize);
                if id.is_empty() {
                    no_case += 1;
                    continue;
                }
                if seen.insert(id) {
                    ids.push(id.to_string());
                }
            }
        }
        if rows.len() > 1 {
            self.clear_marks();
        }
        self.decide_ids(action, &ids, note, no_case);
    }

    /// Decides on the cases `ids`, one durable call each; statuses (in the table and the queue)
    /// are shown once stored. `no_case` rows had no case to decide on.
    pub(super) fn decide_ids(
        &mut self,
        action: CaseAction,
        ids: &[String],
        note: Option<&str>,
        no_case: usize,
    ) {
        let mut done: Vec<String> = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        let mut updates: Vec<Case> = Vec::new();
        {
            let cases = Cases::new(&self.store);
            for id in ids {
                match cases.decide(id, action, &self.actor, note) {
                    Ok(c) => {
                        done.push(c.id.clone());
                        updates.push(c);
                    }
                    Err(e) => refused.push(e.to_string()),
                }
            }
        }
        for c in &updates {
            self.show_case(None, c);
        }
        for id in &done {
            self.undispatched.insert(id.clone());
        }
        let n = done.len();
        if n > 0 {
            self.undo.push(done);
        }
        let keep = self.current_row();
        self.refresh_view(keep);
        self.trail = None;
        let mut text = if n > 0 {
            format!("{} {n} case(s)", action.past())
        } else {
            String::new()
        };
        if no_case > 0 {
            if !text.is_empty() {
                text.push_str("; ");
            }
            text.push_str(&format!(
                "{no_case} row(s) have no case (not flagged; f flags a missed break)"
            ));
        }
        if let Some(first) = refused.first() {
            if !text.is_empty() {
                text.push_str("; ");
            }
            if refused.len() > 1 {
                text.push_str(&format!("{} refused, e.g. {first}", refused.len()));
            } else {
                text.push_str(first);
            }
            self.fail(text);
        } else if no_case > 0 && n == 0 {
            self.fail(text);
        } else {
            self.info(text);
        }
    }

    /// Shows a stored case's status (and ticket) on its table rows, and the case in the queue
    /// (a new outstanding case of the profile joins it).
    pub(super) fn show_case(&mut self, row: Option<u32>, c: &Case) {
        let Some(d) = &mut self.data else { return };
        if d.complete && c.profile == d.info.profile {
            let index = self.queue.index.get_or_insert_with(|| {
                d.queue
                    .iter()
                    .enumerate()
                    .map(|(i, q)| (q.id.clone(), i as u32))
                    .collect()
            });
            match index.get(&c.id) {
                Some(i) => d.queue[*i as usize] = QueueCase::of(c),
                None if c.outstanding() => {
                    index.insert(c.id.clone(), d.queue.len() as u32);
                    d.queue.push(QueueCase::of(c));
                    let keep = self
                        .queue
                        .order
                        .get(self.queue.cursor)
                        .map(|i| d.queue[*i as usize].id.clone());
                    self.queue.order = queue::order(&d.queue);
                    if let Some(p) =
                        queue::position_of(&self.queue.order, &d.queue, keep.as_deref())
                    {
                        self.queue.cursor = p;
                    }
                }
                None => {}
            }
        }
        let k = d.table.known.clone();
        let rows = d.case_rows.entry(c.id.clone()).or_default();
        if let Some(r) = row
            && !rows.contains(&r)
        {
            rows.push(r);
        }
        for r in rows.clone() {
            let r = r as usize;
            if let Some(i) = k.status {
                d.table.set_text(i, r, short_status(c.status.as_str()));
            }
            if let Some(i) = k.case_id {
                d.table.set_text(i, r, &c.id);
            }
            if let Some(i) = k.ticket {
                d.table.set_text(i, r, &c.ticket);
            }
        }
    }

    pub(super) fn undo_last(&mut self) {
        if self.live.is_some() {
            return self.live_undo();
        }
        let Some(batch) = self.undo.pop() else {
            return self.fail("nothing to undo in this session");
        };
        let cases = Cases::new(&self.store);
        let mut undone = 0;
        let mut errors = Vec::new();
        let mut updates = Vec::new();
        for id in batch.iter().rev() {
            match cases.undo_last(id, &self.actor) {
                Ok(c) => {
                    undone += 1;
                    self.undispatched.remove(&c.id);
                    updates.push(c);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        for c in &updates {
            self.show_case(None, c);
        }
        let keep = self.current_row();
        self.refresh_view(keep);
        self.trail = None;
        if let Some(e) = errors.first() {
            self.fail(format!("undid {undone}; {e}"));
        } else {
            self.info(format!("undid the last decision on {undone} case(s)"));
        }
    }

    pub(super) fn flag(&mut self, row: u32, reason: &str) {
        let Some(d) = &self.data else { return };
        let t = &d.table;
        let r = row as usize;
        let date_text = t.text(t.known.date, r);
        let Some(date) = chrono::NaiveDate::parse_from_str(date_text, "%Y-%m-%d").ok() else {
            return self.fail(format!(
                "row {row} has no date ({date_text:?}); it cannot be flagged"
            ));
        };
        let mut snapshot = serde_json::Map::new();
        for c in t.cols.iter().skip(d.file_columns_from) {
            snapshot.insert(
                c.title.clone(),
                serde_json::Value::String(c.cell(r).to_string()),
            );
        }
        let bucket = t.text(t.known.bucket, r);
        let severity = t.text(t.known.severity, r);
        let input = BreakInput {
            score: t.num(t.known.score, r).unwrap_or(0.0),
            rank: t.num(t.known.rank, r).map_or(0, |v| v.max(0.0) as u64),
            model_version: d.info.model.clone(),
            row: snapshot,
            ..BreakInput::analyst(
                d.info.profile.clone(),
                t.text(t.known.key, r).to_string(),
                (date, date),
                if bucket.is_empty() {
                    "New Issue".into()
                } else {
                    bucket.to_string()
                },
                if severity.is_empty() {
                    "Medium".into()
                } else {
                    severity.to_string()
                },
                format!("Flagged by {}: {reason}", self.actor.user),
                t.num(t.known.difference, r).unwrap_or(0.0),
            )
        };
        match Cases::new(&self.store).flag_missed(&input, &self.actor, reason) {
            Ok(c) => {
                self.show_case(Some(row), &c);
                self.undispatched.insert(c.id.clone());
                self.trail = None;
                let keep = self.current_row();
                self.refresh_view(keep);
                self.info(format!("flagged as missed: {} ({})", c.ticket, c.status));
            }
            Err(e) => self.fail(e.to_string()),
        }
    }

    /// Starts writing `rows` to `path` in the background; [`Message::Exported`] says how it
    /// ended.
    pub(super) fn export(&mut self, rows: Vec<u32>, path: &str) {
        let Some(d) = &self.data else { return };
        let Some(frame) = &d.frame else {
            return self.fail("wait until the analysis has finished");
        };
        // A frame's columns are shared, not copied.
        let frame = frame.clone();
        let n = rows.len();
        match self.exporter.start(frame, rows, PathBuf::from(path)) {
            Ok(()) => self.info(format!("exporting {n} rows to {path}…")),
            Err(e) => self.fail(format!("cannot export to {path}: {e}")),
        }
    }

    pub(super) fn exported(&mut self, e: Exported) {
        self.exporter.reported(&e.path);
        let path = e.path.display();
        match e.result {
            Ok(()) => self.info(format!("exported {} rows to {path}", e.rows)),
            Err(err) => self.fail(format!("cannot export to {path}: {err}")),
        }
    }

    // ----- queue ------------------------------------------------------------------------------
}
