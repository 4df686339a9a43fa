//! The column profile, the command palette and saved views.

use super::*;

impl App {
    /// Profiles the column under the column cursor over the rows the table shows.
    pub(super) fn start_profile(&mut self) {
        let Some(d) = &self.data else { return };
        let t0 = std::time::Instant::now();
        let Some(p) = crate::tui::profile::profile(&d.table, self.table.col, &self.table.view)
        else {
            return;
        };
        self.mode = Mode::Profile(ProfileView {
            profile: p,
            cursor: 0,
            elapsed: t0.elapsed(),
        });
    }

    pub(super) fn profile_key(&mut self, k: KeyEvent) {
        let key = Key::from_event(&k);
        let cmd = self.keymap.lookup(Ctx::Global, key);
        let Mode::Profile(p) = &mut self.mode else {
            return;
        };
        let n = p.profile.entries.len();
        match (k.code, cmd) {
            (KeyCode::Enter, _) => {
                let Some(e) = p.profile.entries.get(p.cursor).cloned() else {
                    self.mode = Mode::Normal;
                    return;
                };
                self.mode = Mode::Normal;
                self.apply_profile_filter(&e.filter);
            }
            (_, Some(Cmd::Down)) => p.cursor = (p.cursor + 1).min(n.saturating_sub(1)),
            (_, Some(Cmd::Up)) => p.cursor = p.cursor.saturating_sub(1),
            (_, Some(Cmd::PageDown)) => p.cursor = (p.cursor + 10).min(n.saturating_sub(1)),
            (_, Some(Cmd::PageUp)) => p.cursor = p.cursor.saturating_sub(10),
            (_, Some(Cmd::Top)) => p.cursor = 0,
            (_, Some(Cmd::Bottom)) => p.cursor = n.saturating_sub(1),
            _ => self.mode = Mode::Normal,
        }
    }

    /// Adds `expr` to the table's expression filter (and leaves an expanded case: the filter
    /// applies to the file's records).
    pub(super) fn apply_profile_filter(&mut self, expr: &str) {
        let text = match &self.table.filter {
            Some(f) => format!("({}) and {expr}", f.text()),
            None => expr.to_string(),
        };
        let compiled = self.data.as_ref().map(|d| d.table.compile(&text));
        match compiled {
            Some(Ok(f)) => {
                self.table.filter = Some(f);
                self.table.case = None;
                let keep = self.current_row();
                self.refresh_view(keep);
                self.info(format!("{} rows match {expr}", self.table.view.len()));
            }
            Some(Err(e)) => self.fail(format!("filter: {e}")),
            None => {}
        }
    }

    // ----- saved views ------------------------------------------------------------------------

    /// The palette's entries matching `query` (in the name or what it does, ignoring case):
    /// the keymap's commands for the current context, then the saved views (`view: NAME`).
    pub fn palette_entries(&self, query: &str) -> Vec<PaletteEntry> {
        let mut out: Vec<PaletteEntry> = self
            .keymap
            .palette(self.ctx(), query)
            .into_iter()
            .map(|b| PaletteEntry {
                name: b.name.to_string(),
                keys: b
                    .keys
                    .iter()
                    .map(|k| k.label())
                    .collect::<Vec<_>>()
                    .join(" "),
                help: b.help.to_string(),
                pick: Pick::Cmd(b.cmd),
            })
            .collect();
        let q = query.trim().to_lowercase();
        for (i, v) in self.views.iter().enumerate() {
            let name = format!("view: {}", v.name);
            let help = format!("{} view · {}", v.source.label(), saved::describe(&v.view));
            if q.is_empty() || name.to_lowercase().contains(&q) || help.to_lowercase().contains(&q)
            {
                out.push(PaletteEntry {
                    name,
                    keys: String::new(),
                    help,
                    pick: Pick::View(i),
                });
            }
        }
        out
    }

    /// The records table's filters, search, sort and column as a view.
    pub fn current_view(&self) -> SavedView {
        let t = &self.table;
        let (sort, descending) = match t.sort.and_then(|(c, d)| self.col_field(c).map(|f| (f, d))) {
            Some((f, d)) => (f, d),
            None => (String::new(), false),
        };
        SavedView {
            filter: t
                .filter
                .as_ref()
                .map(|f| f.text().to_string())
                .unwrap_or_default(),
            status: t.quick.status.clone().unwrap_or_default(),
            bucket: t.quick.bucket.clone().unwrap_or_default(),
            severity: t.quick.severity.clone().unwrap_or_default(),
            cluster: t.quick.cluster,
            search: t.search.clone().unwrap_or_default(),
            sort,
            descending,
            all_rows: t.all_rows,
            column: self.col_field(t.col).unwrap_or_default(),
        }
    }

    pub(super) fn start_save_view(&mut self, name: &str, view: SavedView) {
        if name.is_empty() {
            return self.fail("a view needs a name; nothing was saved");
        }
        if self
            .views
            .iter()
            .any(|v| v.source == Source::Config && v.name == name)
        {
            return self.fail(format!(
                "{name:?} is a view of the config ([tui.views]), which the UI does not change; choose another name"
            ));
        }
        if let Some(old) = self
            .views
            .iter()
            .find(|v| v.source == Source::Store && v.name == name)
        {
            let lines = vec![
                format!("A view named {name:?} is saved already:"),
                format!("  {}", saved::describe(&old.view)),
                "Replace it with this one?".into(),
                format!("  {}", saved::describe(&view)),
                String::new(),
                "y replaces it · n keeps it".into(),
            ];
            self.mode = Mode::Confirm(Confirm {
                title: format!("Replace the view {name}?"),
                lines,
                pending: Pending::ReplaceView {
                    name: name.to_string(),
                    view,
                },
            });
            return;
        }
        self.save_view(name, &view, false);
    }

    pub(super) fn save_view(&mut self, name: &str, view: &SavedView, replaced: bool) {
        if let Err(e) = saved::save(&self.store, name, view) {
            return self.fail(format!("the view was not saved: {e}"));
        }
        self.reload_views();
        self.info(format!(
            "view {name:?} {}: {}",
            if replaced { "replaced" } else { "saved" },
            saved::describe(view)
        ));
    }

    pub(super) fn delete_view(&mut self, name: &str) {
        if name.is_empty() {
            return self.fail("no name given; nothing was deleted");
        }
        match saved::delete(&self.store, name) {
            Ok(true) => {
                self.reload_views();
                self.info(format!("view {name:?} deleted"));
            }
            Ok(false)
                if self
                    .views
                    .iter()
                    .any(|v| v.source == Source::Config && v.name == name) =>
            {
                self.fail(format!(
                    "{name:?} is a view of the config ([tui.views]); it is changed there, not here"
                ))
            }
            Ok(false) => self.fail(format!("no saved view is named {name:?}")),
            Err(e) => self.fail(format!("the view was not deleted: {e}")),
        }
    }

    pub(super) fn reload_views(&mut self) {
        let (views, error) = saved::list(&self.cfg, &self.store);
        self.views = views;
        if let Some(e) = error {
            self.fail(e);
        }
    }

    pub(super) fn recall_view(&mut self, i: usize) {
        let Some(v) = self.views.get(i).cloned() else {
            return;
        };
        if self.data.is_none() {
            return self.fail(format!(
                "view {:?}: no file is loaded yet; open one, then apply the view",
                v.name
            ));
        }
        self.apply_view(&v.name, &v.view);
    }

    /// Applies a view to the records table (and shows the table): every part the loaded file
    /// allows; the message line names what was skipped (a column the file does not have, a
    /// filter it cannot compile).
    pub fn apply_view(&mut self, name: &str, v: &SavedView) {
        let Some(d) = &self.data else { return };
        let t = &d.table;
        let mut skipped: Vec<String> = Vec::new();
        let quick_value =
            |value: &str, col: Option<usize>, what: &str, skipped: &mut Vec<String>| {
                if value.is_empty() {
                    None
                } else if col.is_none() {
                    skipped.push(format!("{what} {value} (no {what} column)"));
                    None
                } else {
                    Some(value.to_string())
                }
            };
        let quick = Quick {
            status: quick_value(&v.status, t.known.status, "status", &mut skipped),
            bucket: quick_value(&v.bucket, t.known.bucket, "bucket", &mut skipped),
            severity: quick_value(&v.severity, t.known.severity, "severity", &mut skipped),
            cluster: match (v.cluster, t.known.cluster) {
                (Some(k), None) => {
                    skipped.push(format!("cluster {k} (no cluster column)"));
                    None
                }
                (k, _) => k,
            },
        };
        let filter = if v.filter.trim().is_empty() {
            None
        } else {
            match t.compile(v.filter.trim()) {
                Ok(f) => Some(f),
                Err(e) => {
                    skipped.push(format!("the filter ({e})"));
                    None
                }
            }
        };
        let sort = if v.sort.is_empty() {
            None
        } else {
            match self.col_index(&v.sort) {
                Some(i) => Some((i, v.descending)),
                None => {
                    skipped.push(format!("the sort by {} (no such column)", v.sort));
                    None
                }
            }
        };
        let col = if v.column.is_empty() {
            None
        } else {
            match self.col_index(&v.column) {
                Some(i) => Some(i),
                None => {
                    skipped.push(format!("the column {} (no such column)", v.column));
                    None
                }
            }
        };
        self.switch(View::Table);
        let table = &mut self.table;
        table.case = None;
        table.quick = quick;
        table.filter = filter;
        table.sort = sort;
        table.all_rows = v.all_rows;
        table.search = (!v.search.is_empty()).then(|| v.search.clone());
        if let Some(c) = col {
            table.col = c;
        }
        let keep = self.current_row();
        self.refresh_view(keep);
        let shown = format!("view {name:?}: {} rows", self.table.view.len());
        if skipped.is_empty() {
            self.info(format!("{shown} · {}", saved::describe(v)));
        } else {
            self.fail(format!("{shown}; skipped: {}", skipped.join("; ")));
        }
    }

    // ----- modes ------------------------------------------------------------------------------
}
