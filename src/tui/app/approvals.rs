//! The supervisor's approval queue of auto-resolution proposals.

use super::*;

impl App {
    pub fn load_approvals(&mut self) {
        if self.live.is_some() {
            return self.live_load_approvals();
        }
        let filter = crate::cases::CaseFilter {
            status: Some(Status::AutoResolveProposed),
            ..Default::default()
        };
        match Cases::new(&self.store).list(&filter) {
            Ok(mut list) => {
                list.sort_by(|a, b| a.rank.cmp(&b.rank).then(a.ticket.cmp(&b.ticket)));
                self.approvals = list;
            }
            Err(e) => {
                self.approvals.clear();
                self.fail(e.to_string());
            }
        }
        self.approval_cursor = self
            .approval_cursor
            .min(self.approvals.len().saturating_sub(1));
    }

    pub(super) fn approvals_command(&mut self, cmd: Cmd) {
        let n = self.approvals.len();
        match cmd {
            Cmd::Down => self.approval_cursor = (self.approval_cursor + 1).min(n.saturating_sub(1)),
            Cmd::Up => self.approval_cursor = self.approval_cursor.saturating_sub(1),
            Cmd::Top | Cmd::PageUp => self.approval_cursor = 0,
            Cmd::Bottom | Cmd::PageDown => self.approval_cursor = n.saturating_sub(1),
            Cmd::Approve => {
                let Some(c) = self.approvals.get(self.approval_cursor).cloned() else {
                    return;
                };
                self.queue_decide(&c.id, CaseAction::Approve, None);
            }
            Cmd::Return => {
                let Some(c) = self.approvals.get(self.approval_cursor).cloned() else {
                    return;
                };
                self.prompt(
                    InputKind::ReturnQueued { case_id: c.id },
                    &format!("return {} — comment", c.ticket),
                    String::new(),
                );
            }
            _ => {}
        }
    }

    pub(super) fn queue_decide(&mut self, id: &str, action: CaseAction, note: Option<&str>) {
        if self.live.is_some() {
            return self.live_decide_case(id, action, note);
        }
        match Cases::new(&self.store).decide(id, action, &self.actor, note) {
            Ok(c) => {
                self.undispatched.insert(c.id.clone());
                self.undo.push(vec![c.id.clone()]);
                self.show_case(None, &c);
                self.info(format!("{} {} ({})", action.past(), c.ticket, c.status));
                self.load_approvals();
                self.trail = None;
            }
            Err(e) => self.fail(e.to_string()),
        }
    }

    // ----- dispatch ---------------------------------------------------------------------------
}
