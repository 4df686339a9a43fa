//! Mouse clicks and scrolling, and the trail of recent views.

use super::*;

impl App {
    pub(super) fn mouse(&mut self, m: ratatui::crossterm::event::MouseEvent) {
        if !matches!(self.mode, Mode::Normal) {
            return;
        }
        match m.kind {
            MouseEventKind::ScrollDown => {
                for _ in 0..3 {
                    self.command(Cmd::Down);
                }
                self.dirty = true;
            }
            MouseEventKind::ScrollUp => {
                for _ in 0..3 {
                    self.command(Cmd::Up);
                }
                self.dirty = true;
            }
            MouseEventKind::Down(MouseButton::Left) => {
                let area = Rect::new(0, 0, self.size.0, self.size.1);
                if self.picker.is_none()
                    && self.view == View::Table
                    && m.row == crate::tui::ui::table_area(self, area).y
                {
                    // A column header: sort by it, as the sort key does (again: reverse).
                    if let Some(col) = crate::tui::ui::table_column_at(self, area, m.column) {
                        self.message = None;
                        self.table.col = col;
                        self.fit_columns();
                        self.table_command(Cmd::SortAsc);
                        self.dirty = true;
                    }
                    return;
                }
                let body = crate::tui::ui::list_body(self, area);
                if m.row < body.y
                    || m.row >= body.y + body.height
                    || m.column >= body.x + body.width
                {
                    return;
                }
                let i = (m.row - body.y) as usize;
                if self.picker.is_some() {
                    if let Some(p) = &mut self.picker {
                        let off = crate::tui::ui::list_offset(p.cursor, body.height as usize);
                        p.cursor = (off + i).min(p.entries.len().saturating_sub(1));
                    }
                } else {
                    match self.view {
                        View::Queue => {
                            let to = self.queue.offset + i;
                            if to < self.queue.order.len() {
                                self.queue.cursor = to;
                            }
                        }
                        View::Summary => {}
                        View::Table => {
                            let to = self.table.offset + i;
                            if to < self.table.view.len() {
                                self.table.cursor = to;
                            }
                        }
                        View::Clusters => {
                            let n = self.data.as_ref().map_or(0, |d| d.clusters.len());
                            let off = crate::tui::ui::list_offset(
                                self.cluster_cursor,
                                body.height as usize,
                            );
                            if off + i < n {
                                self.cluster_cursor = off + i;
                            }
                        }
                        View::Approvals => {
                            let off = crate::tui::ui::list_offset(
                                self.approval_cursor,
                                body.height as usize,
                            );
                            if off + i < self.approvals.len() {
                                self.approval_cursor = off + i;
                            }
                        }
                        View::Outbox => {
                            let off = crate::tui::ui::list_offset(
                                self.outbox_cursor,
                                body.height as usize,
                            );
                            if off + i < self.outbox.len() {
                                self.outbox_cursor = off + i;
                            }
                        }
                    }
                }
                self.dirty = true;
            }
            _ => {}
        }
    }

    /// Reads the audit trail of the detail pane's case when it changed.
    /// The case whose audit trail the detail pane needs and does not have: the case of the row
    /// under the cursor while the table shows its detail (the trail is cleared on a row
    /// without a case).
    pub(crate) fn trail_wanted(&mut self) -> Option<String> {
        if !self.table.detail || self.view != View::Table {
            return None;
        }
        let id = match (&self.data, self.current_row()) {
            (Some(d), Some(r)) => d.table.text(d.table.known.case_id, r as usize).to_string(),
            _ => String::new(),
        };
        if id.is_empty() {
            self.trail = None;
            return None;
        }
        if self.trail.as_ref().is_some_and(|t| t.case_id == id) {
            return None;
        }
        Some(id)
    }

    pub(super) fn sync_trail(&mut self) {
        if self.live.is_some() {
            return self.live_sync_trail();
        }
        let Some(id) = self.trail_wanted() else {
            return;
        };
        let events = Cases::new(&self.store)
            .events_for(&id)
            .map_err(|e| e.to_string());
        self.trail = Some(Trail {
            case_id: id,
            events,
        });
        self.dirty = true;
    }
}
