//! The anomaly table: the cursor, search, quick filters and marks.

use super::*;

impl App {
    pub(super) fn move_cursor(&mut self, to: isize) {
        let n = self.table.view.len();
        if n == 0 {
            self.table.cursor = 0;
            return;
        }
        self.table.cursor = to.clamp(0, n as isize - 1) as usize;
        self.scroll_into_view();
    }

    pub(super) fn table_command(&mut self, cmd: Cmd) {
        let page = self.body_height().max(1) as isize;
        let cur = self.table.cursor as isize;
        match cmd {
            Cmd::Down => self.move_cursor(cur + 1),
            Cmd::Up => self.move_cursor(cur - 1),
            Cmd::PageDown => self.move_cursor(cur + page),
            Cmd::PageUp => self.move_cursor(cur - page),
            Cmd::Top => self.move_cursor(0),
            Cmd::Bottom => self.move_cursor(isize::MAX / 2),
            Cmd::Left => {
                self.table.col = self.table.col.saturating_sub(1);
                self.fit_columns();
            }
            Cmd::Right => {
                self.table.col += 1;
                self.fit_columns();
            }
            Cmd::Enter => self.table.detail = !self.table.detail,
            Cmd::Back => {
                if self.table.marked > 0 {
                    self.clear_marks();
                    self.info("marks cleared");
                } else if self.table.detail {
                    self.table.detail = false;
                } else if self.table.case.is_some() {
                    self.switch(View::Queue);
                }
            }
            Cmd::Take => self.take_or_release(true),
            Cmd::Release => self.take_or_release(false),
            Cmd::AddNote => self.start_note(),
            Cmd::Profile => self.start_profile(),
            Cmd::SaveView => {
                let view = self.current_view();
                self.prompt(
                    InputKind::SaveView { view },
                    "save this view as (name)",
                    String::new(),
                );
            }
            Cmd::SortAsc | Cmd::SortDesc => self.sort_column(cmd),
            Cmd::Filter
            | Cmd::Search
            | Cmd::SearchNext
            | Cmd::SearchPrev
            | Cmd::QuickStatus
            | Cmd::QuickBucket
            | Cmd::QuickSeverity
            | Cmd::QuickCluster
            | Cmd::ClearFilters
            | Cmd::AllRows => self.filter_command(cmd),
            Cmd::Mark | Cmd::MarkRange | Cmd::MarkAll | Cmd::MarkCluster => self.mark_command(cmd),
            Cmd::Accept | Cmd::Propose | Cmd::Approve => {
                let action = match cmd {
                    Cmd::Accept => CaseAction::Accept,
                    Cmd::Propose => CaseAction::Propose,
                    _ => CaseAction::Approve,
                };
                self.start_decision(action);
            }
            Cmd::Reject => self.start_decision(CaseAction::Reject),
            Cmd::Return => self.start_decision(CaseAction::Return),
            Cmd::Flag => {
                let Some(r) = self.current_row() else { return };
                if !self.complete() {
                    return self.fail("wait until the cases are recorded");
                }
                self.prompt(
                    InputKind::Note {
                        action: NoteFor::Flag,
                        rows: vec![r],
                    },
                    "flag as a missed break — reason",
                    String::new(),
                );
            }
            Cmd::Undo => self.undo_last(),
            Cmd::Export => {
                let rows = self.targets();
                let default = self.export_default();
                self.prompt(InputKind::Export { rows }, "export to (CSV file)", default);
            }
            _ => {}
        }
    }

    /// Sorts by the column under the cursor: `SortDesc` largest first, `SortAsc` again on the
    /// sorted column turns the order round.
    pub(super) fn sort_column(&mut self, cmd: Cmd) {
        let col = self.table.col;
        let desc = match (cmd, self.table.sort) {
            (Cmd::SortDesc, _) => true,
            (_, Some((c, d))) if c == col => !d,
            _ => false,
        };
        self.table.sort = Some((col, desc));
        let keep = self.current_row();
        self.refresh_view(keep);
        if let Some(f) = self.col_field(col) {
            self.info(format!(
                "sorted by {f}{}",
                if desc { ", largest first" } else { "" }
            ));
        }
    }

    /// Filter, search, quick filters, clearing them, every row or only the flagged ones.
    pub(super) fn filter_command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Filter => {
                let text = self
                    .table
                    .filter
                    .as_ref()
                    .map(|f| f.text().to_string())
                    .unwrap_or_default();
                self.prompt(InputKind::Filter, "filter (empty clears)", text);
            }
            Cmd::Search => {
                let text = self.table.search.clone().unwrap_or_default();
                self.prompt(InputKind::Search, "search", text);
            }
            Cmd::SearchNext => self.search_step(true),
            Cmd::SearchPrev => self.search_step(false),
            Cmd::QuickStatus => self.quick_text(QuickKind::Status),
            Cmd::QuickBucket => self.quick_text(QuickKind::Bucket),
            Cmd::QuickSeverity => self.quick_text(QuickKind::Severity),
            Cmd::QuickCluster => self.quick_cluster(),
            Cmd::ClearFilters => {
                self.table.quick = Quick::default();
                self.table.filter = None;
                self.table.case = None;
                let keep = self.current_row();
                self.refresh_view(keep);
                self.info("filters cleared");
            }
            Cmd::AllRows => {
                self.table.all_rows = !self.table.all_rows;
                let keep = self.current_row();
                self.refresh_view(keep);
                self.info(if self.table.all_rows {
                    "showing every row"
                } else {
                    "showing the flagged rows"
                });
            }
            _ => {}
        }
    }

    /// Marking rows: one, a range, all shown, a cluster.
    pub(super) fn mark_command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Mark => {
                if let Some(r) = self.current_row() {
                    self.toggle_mark(r);
                    self.table.anchor = Some(r);
                    self.move_cursor(self.table.cursor as isize + 1);
                }
            }
            Cmd::MarkRange => self.mark_range(),
            Cmd::MarkAll => {
                let rows = self.table.view.clone();
                for r in rows {
                    self.set_mark(r, true);
                }
                self.info(format!("{} rows marked", self.table.marked));
            }
            Cmd::MarkCluster => self.mark_cluster(),
            _ => {}
        }
    }

    pub(super) fn complete(&self) -> bool {
        self.data.as_ref().is_some_and(|d| d.complete)
    }

    pub(super) fn export_default(&self) -> String {
        let stem = Path::new(&self.base.input)
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "breakdesk".into());
        format!("{stem}.export.csv")
    }

    pub(super) fn search_step(&mut self, forward: bool) {
        let Some(needle) = self.table.search.clone() else {
            return self.fail("no search yet: / searches");
        };
        let Some(d) = &self.data else { return };
        match d
            .table
            .search(&self.table.view, &needle, self.table.cursor, forward)
        {
            Some(p) => {
                self.move_cursor(p as isize);
                self.info(format!("/{needle}"));
            }
            None => self.fail(format!("no match for {needle:?}")),
        }
    }

    pub(super) fn quick_text(&mut self, kind: QuickKind) {
        let Some(d) = &self.data else { return };
        let t = &d.table;
        let col = match kind {
            QuickKind::Status => t.known.status,
            QuickKind::Bucket => t.known.bucket,
            QuickKind::Severity => t.known.severity,
        };
        let Some(crate::tui::column_store::Data::Text(tc)) = t.col(col).map(|c| &c.data) else {
            return self.fail(format!("no {} yet", kind.name()));
        };
        // The values present among the rows the other filters allow, in order; then none.
        let mut values: Vec<String> = tc
            .sorted_codes()
            .into_iter()
            .map(|c| tc.dict[c as usize].clone())
            .filter(|v| !v.is_empty())
            .collect();
        if kind == QuickKind::Severity {
            let order = |s: &str| {
                ["Critical", "High", "Medium", "Low"]
                    .iter()
                    .position(|x| *x == s)
            };
            values.sort_by_key(|v| order(v));
        }
        let slot = match kind {
            QuickKind::Status => &mut self.table.quick.status,
            QuickKind::Bucket => &mut self.table.quick.bucket,
            QuickKind::Severity => &mut self.table.quick.severity,
        };
        let next = match slot
            .as_ref()
            .and_then(|v| values.iter().position(|x| x == v))
        {
            Some(i) => values.get(i + 1).cloned(),
            None => values.first().cloned(),
        };
        *slot = next.clone();
        let keep = self.current_row();
        self.refresh_view(keep);
        match next {
            Some(v) => self.info(format!(
                "{} = {v}: {} rows",
                kind.name(),
                self.table.view.len()
            )),
            None => self.info(format!("{} filter off", kind.name())),
        }
    }

    pub(super) fn quick_cluster(&mut self) {
        let Some(d) = &self.data else { return };
        let ks: Vec<u32> = d.clusters.iter().map(|c| c.cluster as u32).collect();
        let next = match self
            .table
            .quick
            .cluster
            .and_then(|k| ks.iter().position(|x| *x == k))
        {
            Some(i) => ks.get(i + 1).copied(),
            None => ks.first().copied(),
        };
        self.table.quick.cluster = next;
        let keep = self.current_row();
        self.refresh_view(keep);
        match next {
            Some(k) => self.info(format!("cluster = {k}: {} rows", self.table.view.len())),
            None => self.info("cluster filter off"),
        }
    }

    pub(super) fn set_mark(&mut self, row: u32, on: bool) {
        if let Some(m) = self.table.marks.get_mut(row as usize)
            && *m != on
        {
            *m = on;
            if on {
                self.table.marked += 1;
            } else {
                self.table.marked -= 1;
            }
        }
    }

    pub(super) fn toggle_mark(&mut self, row: u32) {
        let on = !self.table.marks.get(row as usize).copied().unwrap_or(false);
        self.set_mark(row, on);
    }

    pub(super) fn clear_marks(&mut self) {
        self.table.marks.iter_mut().for_each(|m| *m = false);
        self.table.marked = 0;
        self.table.anchor = None;
    }

    pub(super) fn mark_range(&mut self) {
        let Some(cur) = self.current_row() else {
            return;
        };
        let from = self
            .table
            .anchor
            .and_then(|a| self.table.view.iter().position(|r| *r == a))
            .unwrap_or(self.table.cursor);
        let (lo, hi) = if from <= self.table.cursor {
            (from, self.table.cursor)
        } else {
            (self.table.cursor, from)
        };
        let rows: Vec<u32> = self.table.view[lo..=hi].to_vec();
        for r in &rows {
            self.set_mark(*r, true);
        }
        self.table.anchor = Some(cur);
        self.info(format!("{} rows marked", self.table.marked));
    }

    pub(super) fn mark_cluster(&mut self) {
        let Some(r) = self.current_row() else { return };
        let Some(d) = &self.data else { return };
        let Some(col) = d.table.col(d.table.known.cluster) else {
            return;
        };
        let k = col.num_at(r as usize);
        let rows: Vec<u32> = self
            .table
            .view
            .iter()
            .copied()
            .filter(|x| col.num_at(*x as usize) == k)
            .collect();
        for x in &rows {
            self.set_mark(*x, true);
        }
        self.info(format!(
            "{} rows of cluster {} marked",
            rows.len(),
            k.map_or("?".to_string(), |k| format!("{k}"))
        ));
    }

    /// The rows an action applies to: the marked rows (in view order, then any marked rows the
    /// filters hide), else the cursor's row.
    pub fn targets(&self) -> Vec<u32> {
        if self.table.marked > 0 {
            let mut out: Vec<u32> = self
                .table
                .view
                .iter()
                .copied()
                .filter(|r| self.table.marks.get(*r as usize) == Some(&true))
                .collect();
            if out.len() < self.table.marked {
                let shown: HashSet<u32> = out.iter().copied().collect();
                out.extend(
                    self.table
                        .marks
                        .iter()
                        .enumerate()
                        .filter(|(i, m)| **m && !shown.contains(&(*i as u32)))
                        .map(|(i, _)| i as u32),
                );
            }
            out
        } else {
            self.current_row().into_iter().collect()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QuickKind {
    Status,
    Bucket,
    Severity,
}

impl QuickKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            QuickKind::Status => "status",
            QuickKind::Bucket => "bucket",
            QuickKind::Severity => "severity",
        }
    }
}
