//! The clusters view.

use super::*;

impl App {
    pub(super) fn clusters_command(&mut self, cmd: Cmd) {
        let n = self.data.as_ref().map_or(0, |d| d.clusters.len());
        let c = &mut self.cluster_cursor;
        match cmd {
            Cmd::Down => *c = (*c + 1).min(n.saturating_sub(1)),
            Cmd::Up => *c = c.saturating_sub(1),
            Cmd::Top | Cmd::PageUp => *c = 0,
            Cmd::Bottom | Cmd::PageDown => *c = n.saturating_sub(1),
            Cmd::Enter => {
                let k = self
                    .data
                    .as_ref()
                    .and_then(|d| d.clusters.get(self.cluster_cursor))
                    .map(|c| c.cluster as u32);
                if let Some(k) = k {
                    self.table.quick = Quick {
                        cluster: Some(k),
                        ..Quick::default()
                    };
                    self.table.filter = None;
                    self.table.cursor = 0;
                    self.refresh_view(None);
                    self.view = View::Table;
                    self.info(format!(
                        "cluster {k}: {} flagged rows (A shows every row, * marks them all)",
                        self.table.view.len()
                    ));
                }
            }
            _ => {}
        }
    }

    // ----- approvals ------------------------------------------------------------------------
}
