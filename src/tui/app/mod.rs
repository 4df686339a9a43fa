//! The app's state and its one entry point, [`App::update`]: everything that happens — keys,
//! mouse, worker messages, ticks — goes through it, and [`crate::tui::ui::draw`] only reads the
//! state. Decisions go through [`Cases`] synchronously (they are on disk when the call returns,
//! and only then shown as done); what the workflow refuses is shown on the message line. In
//! live mode ([`crate::tui::live`]) they go to the service instead, and are shown when it answers.

use crate::cases::{
    Action as CaseAction, Actor, BreakInput, Case, Cases, Channel, DispatchState, Event, Status,
};
use crate::config::{Config, SavedView};
use crate::dispatch::{self, ItemOutcome, Outbox, OutboxFilter, OutboxItem, SenderEvent};
use crate::pipeline::{Progress, RunOptions};
use crate::store::Store;
use crate::tui::column_store::{Filter, short_status};
use crate::tui::export::{Exported, Exporter};
use crate::tui::keymap::{Key, Keymap};
use crate::tui::message::{Cmd, Ctx, Message, View};
use crate::tui::queue::{self, QueueCase};
use crate::tui::results::Loaded;
use crate::tui::saved::{self, Named, Source};
use crate::tui::theme::Theme;
use crate::tui::worker::{LoadError, Worker, WorkerMsg};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEventKind};
use ratatui::layout::Rect;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
mod approvals;
mod case_queue;
mod clusters;
mod decide;
mod mouse;
mod outbox;
mod picker;
mod prompt;
mod state;
mod table;
mod views;

use outbox::capitalise;
use picker::read_dir;
pub use state::*;

impl App {
    pub fn new(opts: AppOptions) -> App {
        let (views, views_error) = saved::list(&opts.cfg, &opts.store);
        let message = views_error.map(|text| Notice {
            level: Level::Error,
            text,
        });
        App {
            cfg: opts.cfg,
            store: opts.store,
            actor: opts.actor,
            keymap: opts.keymap,
            theme: opts.theme,
            base: opts.base,
            worker: Worker::new(),
            loading: None,
            error: None,
            picker: None,
            data: None,
            view: View::Table,
            table: TableState::default(),
            cluster_cursor: 0,
            approvals: Vec::new(),
            approval_cursor: 0,
            mode: Mode::Normal,
            message,
            trail: None,
            queue: QueueState::default(),
            notes: None,
            today: chrono::Utc::now().date_naive(),
            undo: Vec::new(),
            undispatched: HashSet::new(),
            sender: None,
            outbox: Vec::new(),
            outbox_cursor: 0,
            outbox_cases: None,
            exporter: Exporter::new(),
            views,
            live: None,
            size: (100, 30),
            dirty: true,
            quit: false,
        }
    }

    /// Starts as asked: a load in the background, or the picker.
    pub fn start(&mut self, start: Start) {
        match start {
            Start::File(opts) => self.open(opts),
            Start::Picker(dir) => self.open_picker(dir),
            Start::Live(opts) => self.start_live(opts),
        }
    }

    /// Starts analysing a file in the background (superseding any load in progress).
    pub fn open(&mut self, opts: RunOptions) {
        let source = opts.input.display().to_string();
        self.worker
            .start(self.cfg.clone(), self.store.clone(), opts.clone());
        self.base = RunOptions {
            input: opts.input.clone(),
            history: opts.history.clone(),
            ..self.base.clone()
        };
        self.loading = Some(Loading {
            source,
            progress: None,
            elapsed: Duration::ZERO,
        });
        self.error = None;
        self.picker = None;
        self.data = None;
        self.table = TableState::default();
        self.trail = None;
        self.queue = QueueState::default();
        self.notes = None;
        self.undo.clear();
        // The queue of cases is the first view of a loaded file.
        self.view = View::Queue;
        self.mode = Mode::Normal;
        self.dirty = true;
    }

    pub fn open_picker(&mut self, dir: PathBuf) {
        let mut p = Picker {
            dir,
            entries: Vec::new(),
            cursor: 0,
            history: None,
            error: None,
        };
        read_dir(&mut p);
        self.picker = Some(p);
        self.mode = Mode::Normal;
        self.dirty = true;
    }

    /// Applies every worker message waiting; with `wait`, blocks up to that long for the first.
    /// Returns whether any message came.
    pub fn pump(&mut self, wait: Option<Duration>) -> bool {
        let mut any = false;
        if let Some(w) = wait
            && let Ok(m) = self.worker.rx.recv_timeout(w)
        {
            self.update(Message::Worker(m));
            any = true;
        }
        while let Ok(m) = self.worker.rx.try_recv() {
            self.update(Message::Worker(m));
            any = true;
        }
        while let Ok(e) = self.exporter.rx.try_recv() {
            self.update(Message::Exported(e));
            any = true;
        }
        let live = self.pump_live();
        self.pump_dispatch() || any || live
    }

    /// Applies every report of the dispatch sender waiting. Returns whether any came.
    pub fn pump_dispatch(&mut self) -> bool {
        let events: Vec<SenderEvent> = match &self.sender {
            Some(w) => w.events().try_iter().collect(),
            None => return false,
        };
        let any = !events.is_empty();
        for e in events {
            self.update(Message::Dispatch(e));
        }
        any
    }

    /// Waits until the load in progress has ended (tests; the replay of a script).
    pub fn wait_loaded(&mut self, timeout: Duration) -> bool {
        let end = std::time::Instant::now() + timeout;
        while self.loading.is_some() {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            self.pump(Some(left.min(Duration::from_millis(100))));
        }
        true
    }

    /// The context whose bindings apply now.
    pub fn ctx(&self) -> Ctx {
        if self.picker.is_some() {
            return Ctx::Picker;
        }
        match self.view {
            View::Queue => Ctx::Queue,
            View::Table => Ctx::Table,
            View::Clusters => Ctx::Clusters,
            View::Approvals => Ctx::Approvals,
            View::Outbox => Ctx::Outbox,
            View::Summary => Ctx::Summary,
        }
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.message = Some(Notice {
            level: Level::Info,
            text: text.into(),
        });
    }

    pub fn fail(&mut self, text: impl Into<String>) {
        self.message = Some(Notice {
            level: Level::Error,
            text: text.into(),
        });
    }

    /// Takes one action; marks the app dirty when something shown changed.
    pub fn update(&mut self, action: Message) {
        match action {
            Message::Key(k) => {
                self.message = None;
                self.key(k);
                self.dirty = true;
            }
            Message::Mouse(m) => self.mouse(m),
            Message::Resize(w, h) => {
                self.size = (w, h);
                self.scroll_into_view();
                self.dirty = true;
            }
            Message::Tick(elapsed) => {
                if let Some(l) = &mut self.loading
                    && l.elapsed.as_millis() / 100 != elapsed.as_millis() / 100
                {
                    l.elapsed = elapsed;
                    self.dirty = true;
                }
            }
            Message::Worker(m) => self.worker_msg(m),
            Message::Dispatch(e) => {
                self.dispatch_event(e);
                self.dirty = true;
            }
            Message::Exported(e) => {
                self.exported(e);
                self.dirty = true;
            }
            Message::Live(e) => {
                self.live_event(e);
                self.dirty = true;
            }
            Message::Cmd(c) => {
                self.message = None;
                self.command(c);
                self.dirty = true;
            }
        }
        self.sync_trail();
        self.sync_notes();
        self.sync_outbox_cases();
    }

    fn worker_msg(&mut self, m: WorkerMsg) {
        if m.generation() != self.worker.generation {
            return; // a superseded load
        }
        match m {
            WorkerMsg::Progress { progress, .. } => {
                if let Some(l) = &mut self.loading {
                    l.progress = Some(progress);
                    self.dirty = true;
                }
            }
            WorkerMsg::Partial { loaded, .. } => {
                self.set_data(loaded);
            }
            WorkerMsg::Done { result, .. } => {
                self.worker.done();
                self.loading = None;
                match result {
                    Ok(loaded) => {
                        let msg = format!(
                            "{} rows, {} flagged{}; model {} ({})",
                            loaded.info.rows,
                            loaded.info.flagged,
                            if loaded.info.rejected > 0 {
                                format!(", {} rejected", loaded.info.rejected)
                            } else {
                                String::new()
                            },
                            loaded.info.model,
                            loaded.info.model_status
                        );
                        let notes = loaded.info.notes.join("; ");
                        self.set_data(loaded);
                        if notes.is_empty() {
                            self.info(msg);
                        } else {
                            self.info(format!("{msg}; note: {notes}"));
                        }
                    }
                    Err(e) => {
                        self.data = None;
                        self.error = Some(e);
                    }
                }
                self.dirty = true;
            }
        }
    }

    /// Shows a (partial or complete) result, keeping the table's state.
    fn set_data(&mut self, loaded: Box<Loaded>) {
        let rows = loaded.table.rows;
        let keep_row = self.current_row();
        let same_shape = self.data.as_ref().is_some_and(|d| d.table.rows == rows);
        self.data = Some(loaded);
        if !same_shape {
            self.table.marks = vec![false; rows];
            self.table.marked = 0;
            self.table.col = 0;
        }
        // Columns may have moved (categories and cases add some): the sort and filter are
        // re-resolved by name.
        let sort = self
            .table
            .sort
            .and_then(|(c, d)| self.col_field(c).map(|f| (f, d)));
        let filter = self.table.filter.as_ref().map(|f| f.text().to_string());
        self.table.sort = None;
        self.table.filter = None;
        if let Some((field, d)) = sort
            && let Some(i) = self.col_index(&field)
        {
            self.table.sort = Some((i, d));
        }
        if let Some(text) = filter
            && let Some(d) = &self.data
            && let Ok(f) = d.table.compile(&text)
        {
            self.table.filter = Some(f);
        }
        self.refresh_view(keep_row);
        self.refresh_queue();
        self.dirty = true;
    }

    fn col_field(&self, i: usize) -> Option<String> {
        self.data
            .as_ref()
            .and_then(|d| d.table.cols.get(i))
            .map(|c| c.field.clone())
    }

    fn col_index(&self, field: &str) -> Option<usize> {
        self.data
            .as_ref()
            .and_then(|d| d.table.cols.iter().position(|c| c.field == field))
    }

    /// The table row under the cursor.
    pub fn current_row(&self) -> Option<u32> {
        self.table.view.get(self.table.cursor).copied()
    }

    /// Rebuilds the visible rows from the base set (flagged or all), quick filters, the
    /// expression filter and the sort; the cursor stays on `keep` when it is still shown.
    pub fn refresh_view(&mut self, keep: Option<u32>) {
        let Some(d) = &self.data else {
            self.table.view.clear();
            return;
        };
        let t = &d.table;
        let q = &self.table.quick;
        let code_of = |col: Option<usize>, v: &Option<String>| -> Option<Option<u32>> {
            let v = v.as_ref()?;
            let Some(crate::tui::column_store::Data::Text(tc)) = t.col(col).map(|c| &c.data) else {
                return Some(None);
            };
            Some(tc.dict.iter().position(|x| x == v).map(|p| p as u32))
        };
        let status = code_of(t.known.status, &q.status);
        let bucket = code_of(t.known.bucket, &q.bucket);
        let severity = code_of(t.known.severity, &q.severity);
        let codes = |col: Option<usize>| -> Option<&Vec<u32>> {
            match t.col(col).map(|c| &c.data) {
                Some(crate::tui::column_store::Data::Text(tc)) => Some(&tc.codes),
                _ => None,
            }
        };
        let (sc, bc, vc) = (
            codes(t.known.status),
            codes(t.known.bucket),
            codes(t.known.severity),
        );
        let cluster = t.col(t.known.cluster);
        let all = self.table.all_rows;
        if let Some((id, _)) = &self.table.case {
            // One case's records, in date order (or the sort asked for).
            let mut view: Vec<u32> = d.case_rows.get(id).cloned().unwrap_or_default();
            match (self.table.sort, t.known.date) {
                (Some((c, desc)), _) => t.sort(&mut view, c, desc),
                (None, Some(dc)) => t.sort(&mut view, dc, false),
                (None, None) => {}
            }
            return self.show_view(view, keep);
        }
        let matches = |r: usize| -> bool {
            let text_ok = |want: &Option<Option<u32>>, c: Option<&Vec<u32>>| match want {
                None => true,
                Some(None) => false,
                Some(Some(code)) => c.is_some_and(|c| c[r] == *code),
            };
            (all || t.flagged.get(r) == Some(&true))
                && text_ok(&status, sc)
                && text_ok(&bucket, bc)
                && text_ok(&severity, vc)
                && q.cluster
                    .is_none_or(|k| cluster.and_then(|c| c.num_at(r)) == Some(k as f64))
        };
        let mut view: Vec<u32> = (0..t.rows)
            .filter(|r| matches(*r))
            .map(|r| r as u32)
            .collect();
        if let Some(f) = &self.table.filter {
            view = t.filter(&view, f);
        }
        match self.table.sort {
            Some((c, desc)) => t.sort(&mut view, c, desc),
            None if !all => {
                // Flagged rows: most anomalous first.
                if let Some(rc) = t.known.rank {
                    t.sort(&mut view, rc, false);
                }
            }
            None => {}
        }
        self.show_view(view, keep);
    }

    /// Shows `view` in the table, the cursor on the row `keep` when it is still there.
    fn show_view(&mut self, view: Vec<u32>, keep: Option<u32>) {
        self.table.view = view;
        self.table.cursor = keep
            .and_then(|k| self.table.view.iter().position(|r| *r == k))
            .unwrap_or(self.table.cursor)
            .min(self.table.view.len().saturating_sub(1));
        self.scroll_into_view();
    }

    /// Rows of the table body shown at the current size.
    pub fn body_height(&self) -> usize {
        let area = Rect::new(0, 0, self.size.0, self.size.1);
        crate::tui::ui::table_body(self, area).height as usize
    }

    fn scroll_into_view(&mut self) {
        let h = self.body_height().max(1);
        let t = &mut self.table;
        if t.cursor < t.offset {
            t.offset = t.cursor;
        } else if t.cursor >= t.offset + h {
            t.offset = t.cursor + 1 - h;
        }
        let max_off = t.view.len().saturating_sub(h);
        t.offset = t.offset.min(max_off);
        self.fit_columns();
    }

    /// Keeps the column cursor's column on screen.
    fn fit_columns(&mut self) {
        let Some(d) = &self.data else { return };
        let cols = &d.table.cols;
        let frozen = d.table.frozen.min(cols.len());
        let t = &mut self.table;
        t.col = t.col.min(cols.len().saturating_sub(1));
        if t.col_offset < frozen {
            t.col_offset = frozen;
        }
        if t.col < frozen {
            return;
        }
        if t.col < t.col_offset {
            t.col_offset = t.col;
            return;
        }
        let width = self.size.0 as usize;
        let fixed: usize = cols[..frozen]
            .iter()
            .map(|c| c.width as usize + 1)
            .sum::<usize>()
            + 2;
        loop {
            let used: usize = cols[t.col_offset..=t.col]
                .iter()
                .map(|c| c.width as usize + 1)
                .sum();
            if fixed + used <= width || t.col_offset >= t.col {
                break;
            }
            t.col_offset += 1;
        }
    }

    fn key(&mut self, k: KeyEvent) {
        if k.kind == ratatui::crossterm::event::KeyEventKind::Release {
            return;
        }
        match &mut self.mode {
            Mode::Prompt(_) => return self.prompt_key(k),
            Mode::Confirm(_) => return self.confirm_key(k),
            Mode::Palette { .. } => return self.palette_key(k),
            Mode::Profile(_) => return self.profile_key(k),
            Mode::Help { scroll } => {
                let key = Key::from_event(&k);
                match self.keymap.lookup(Ctx::Global, key) {
                    Some(Cmd::Down) => *scroll = scroll.saturating_add(1),
                    Some(Cmd::Up) => *scroll = scroll.saturating_sub(1),
                    Some(Cmd::PageDown) => *scroll = scroll.saturating_add(10),
                    Some(Cmd::PageUp) => *scroll = scroll.saturating_sub(10),
                    _ => self.mode = Mode::Normal,
                }
                return;
            }
            Mode::Normal => {}
        }
        let key = Key::from_event(&k);
        if let Some(cmd) = self.keymap.lookup(self.ctx(), key) {
            self.command(cmd);
        }
    }

    /// Runs a command (from a key, the palette or a test).
    pub fn command(&mut self, cmd: Cmd) {
        if self.live.is_some() && self.live_command(cmd) {
            return;
        }
        // Commands that work on every screen.
        match cmd {
            Cmd::Quit => return self.ask_quit(),
            Cmd::Help => {
                self.mode = Mode::Help { scroll: 0 };
                return;
            }
            Cmd::Palette => {
                self.mode = Mode::Palette {
                    query: String::new(),
                    cursor: 0,
                };
                return;
            }
            Cmd::Theme => {
                self.theme = self.theme.toggled();
                return;
            }
            Cmd::OpenPicker => {
                let dir = self.picker_dir();
                return self.open_picker(dir);
            }
            Cmd::Views => {
                if self.views.is_empty() {
                    return self.info(
                        "no saved views yet: save-view (in the palette, on the records table) saves one; [tui.views] in the config ships them",
                    );
                }
                self.mode = Mode::Palette {
                    query: "view: ".into(),
                    cursor: 0,
                };
                return;
            }
            Cmd::DeleteView => {
                return self.prompt(
                    InputKind::DeleteView,
                    "delete the saved view",
                    String::new(),
                );
            }
            _ => {}
        }
        if self.picker.is_some() {
            return self.picker_command(cmd);
        }
        match cmd {
            Cmd::Email => return self.start_email(),
            Cmd::Jira => return self.start_jira(),
            Cmd::Webhook => return self.start_webhook(),
            _ => {}
        }
        if cmd == Cmd::Back && self.loading.is_some() && self.data.is_none() {
            return self.cancel_load();
        }
        if self.data.is_none() {
            if self.error.is_some() && matches!(cmd, Cmd::Back | Cmd::Enter) {
                let dir = self.picker_dir();
                self.open_picker(dir);
            }
            return;
        }
        match cmd {
            Cmd::NextView => {
                let i = View::ALL.iter().position(|v| *v == self.view).unwrap_or(0);
                self.switch(View::ALL[(i + 1) % View::ALL.len()]);
            }
            Cmd::ViewQueue => self.switch(View::Queue),
            Cmd::ViewTable => self.switch(View::Table),
            Cmd::ViewClusters => self.switch(View::Clusters),
            Cmd::ViewApprovals => self.switch(View::Approvals),
            Cmd::ViewOutbox => self.switch(View::Outbox),
            Cmd::ViewSummary => self.switch(View::Summary),
            _ => match self.view {
                View::Queue => self.queue_command(cmd),
                View::Table => self.table_command(cmd),
                View::Clusters => self.clusters_command(cmd),
                View::Approvals => self.approvals_command(cmd),
                View::Outbox => self.outbox_command(cmd),
                View::Summary => {}
            },
        }
    }

    fn picker_dir(&self) -> PathBuf {
        let from_file = || {
            Path::new(&self.base.input)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
        };
        self.picker
            .as_ref()
            .map(|p| p.dir.clone())
            .or_else(from_file)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    fn cancel_load(&mut self) {
        if let Some(l) = self.loading.take() {
            self.worker.cancel();
            self.error = Some(LoadError {
                title: "cancelled".into(),
                message: format!(
                    "The analysis of {} was cancelled. Enter picks another file; q quits.",
                    l.source
                ),
            });
        }
    }

    fn switch(&mut self, v: View) {
        if v != View::Table && self.table.case.is_some() {
            // Leaving an expanded case: the table shows the file's records again.
            self.table.case = None;
            let keep = self.current_row();
            self.refresh_view(keep);
        }
        self.view = v;
        if v == View::Approvals {
            self.load_approvals();
        }
        if v == View::Outbox {
            self.load_outbox();
        }
    }

    fn ask_quit(&mut self) {
        let (n, queued) = self.unsent_accepted();
        if n == 0 {
            self.quit = true;
            return;
        }
        let channels = self.enabled_channels();
        let mut lines = vec![if channels.is_empty() {
            format!(
                "{n} case(s) accepted in this session have not been sent: no dispatch channel is enabled ([email], [jira], [webhook])."
            )
        } else {
            format!(
                "{n} case(s) accepted in this session have not been sent yet ({}).",
                channels
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }];
        if queued > 0 {
            lines.push(format!(
                "{queued} of them are queued in the outbox: they stay there and are sent by `breakdesk outbox flush` or the next session."
            ));
        }
        lines.push("The decisions are saved in the store either way.".into());
        lines.push("Quit anyway? y quits, n or esc stays.".into());
        self.mode = Mode::Confirm(Confirm {
            title: "Quit?".into(),
            lines,
            pending: Pending::Quit,
        });
    }

    /// The channels switched on in the config.
    pub fn enabled_channels(&self) -> Vec<Channel> {
        let mut out = Vec::new();
        if self.cfg.email.enabled {
            out.push(Channel::Email);
        }
        if self.cfg.jira.enabled {
            out.push(Channel::Jira);
        }
        if self.cfg.webhook.enabled {
            out.push(Channel::Webhook);
        }
        out
    }

    /// The cases decided in this session that are Accepted now and not yet sent on any enabled
    /// channel (all of them when no channel is enabled), and how many of those are queued.
    pub fn unsent_accepted(&self) -> (usize, usize) {
        let channels = self.enabled_channels();
        let cases = Cases::new(&self.store);
        let mut n = 0;
        let mut queued = 0;
        for id in &self.undispatched {
            let Ok(Some(c)) = cases.get(id) else { continue };
            if c.status != Status::Accepted {
                continue;
            }
            let state = |ch: &Channel| c.dispatch(*ch).map(|d| d.state);
            if channels
                .iter()
                .any(|ch| state(ch) == Some(DispatchState::Sent))
            {
                continue;
            }
            n += 1;
            if channels
                .iter()
                .any(|ch| state(ch) == Some(DispatchState::Queued))
            {
                queued += 1;
            }
        }
        (n, queued)
    }

    // ----- picker -------------------------------------------------------------------------
}
