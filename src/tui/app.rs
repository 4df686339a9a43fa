//! The app's state and its one entry point, [`App::update`]: everything that happens — keys,
//! mouse, worker messages, ticks — goes through it, and [`crate::tui::ui::draw`] only reads the
//! state. Decisions go through [`Cases`] synchronously (they are on disk when the call returns,
//! and only then shown as done); what the workflow refuses is shown on the message line. In
//! live mode ([`super::live`]) they go to the service instead, and are shown when it answers.

use super::action::{Action, Cmd, Ctx, View};
use super::data::Loaded;
use super::export::{Exported, Exporter};
use super::keymap::{Key, Keymap};
use super::queue::{self, QueueCase};
use super::saved::{self, Named, Source};
use super::table::{Filter, short_status};
use super::theme::Theme;
use super::worker::{LoadError, Worker, WorkerMsg};
use crate::cases::{
    Action as CaseAction, Actor, BreakInput, Case, Cases, Channel, DispatchState, Event, Status,
};
use crate::config::{Config, SavedView};
use crate::notify::{self, ItemOutcome, Outbox, OutboxFilter, OutboxItem, WorkerEvent};
use crate::pipeline::{Progress, RunOptions};
use crate::store::Store;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEventKind};
use ratatui::layout::Rect;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How the app starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// Analyse this file.
    File(RunOptions),
    /// Pick a file in this directory.
    Picker(PathBuf),
    /// Show the anomalies of a running service as they arrive (`open --live`).
    Live(super::live::LiveOptions),
}

/// What the app is given.
pub struct AppOptions {
    pub cfg: Arc<Config>,
    pub store: Arc<Store>,
    pub actor: Actor,
    pub keymap: Keymap,
    pub theme: Theme,
    /// Run options for files picked in the picker (profile, sheet, …; input and history are
    /// replaced).
    pub base: RunOptions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub level: Level,
    pub text: String,
}

/// A load in progress.
#[derive(Debug, Clone)]
pub struct Loading {
    pub source: String,
    pub progress: Option<Progress>,
    pub elapsed: Duration,
}

/// One entry of the file picker.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub path: PathBuf,
    pub is_dir: bool,
}

#[derive(Debug, Clone)]
pub struct Picker {
    pub dir: PathBuf,
    pub entries: Vec<Entry>,
    pub cursor: usize,
    pub history: Option<PathBuf>,
    pub error: Option<String>,
}

/// What a text prompt is for.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptKind {
    Filter,
    Search,
    /// The reason or comment of a decision on these rows (reject, return) or of a flag.
    Note {
        action: NoteFor,
        rows: Vec<u32>,
    },
    /// The comment of returning an approval-queue case.
    ReturnQueued {
        case_id: String,
    },
    Export {
        rows: Vec<u32>,
    },
    /// The recipients (To) of an email of these cases, comma-separated.
    EmailTo {
        case_ids: Vec<String>,
    },
    /// The reason or comment of a decision on these cases (from the queue).
    CaseDecision {
        action: CaseAction,
        case_ids: Vec<String>,
    },
    /// A note on this case.
    CaseNote {
        case_id: String,
        ticket: String,
    },
    /// The name to save this view of the table under.
    SaveView {
        view: SavedView,
    },
    /// The name of a saved view to delete.
    DeleteView,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteFor {
    Decision(CaseAction),
    Flag,
}

#[derive(Debug, Clone)]
pub struct Prompt {
    pub kind: PromptKind,
    pub label: String,
    pub text: String,
}

/// What a confirm dialog would do.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    Decide {
        action: CaseAction,
        rows: Vec<u32>,
        note: Option<String>,
    },
    /// Queue one email of these cases to these recipients (To; `[email] cc` is added).
    Email {
        case_ids: Vec<String>,
        to: Vec<String>,
    },
    /// Queue Jira issues for these cases.
    Jira {
        case_ids: Vec<String>,
    },
    /// Queue one webhook task per case.
    Webhook {
        case_ids: Vec<String>,
    },
    /// Decide on these cases (from the queue).
    DecideCases {
        action: CaseAction,
        case_ids: Vec<String>,
        note: Option<String>,
    },
    /// Cancel this outbox item.
    CancelItem(u64),
    /// Replace the stored view of this name.
    ReplaceView {
        name: String,
        view: SavedView,
    },
    Quit,
}

#[derive(Debug, Clone)]
pub struct Confirm {
    pub title: String,
    pub lines: Vec<String>,
    pub pending: Pending,
}

#[derive(Debug, Clone)]
pub enum Mode {
    Normal,
    Help {
        scroll: u16,
    },
    Palette {
        query: String,
        cursor: usize,
    },
    Prompt(Prompt),
    Confirm(Confirm),
    /// The column profile over the table's shown rows.
    Profile(ProfileView),
}

/// What a palette entry does: a command, or applying a saved view (by its index in
/// [`App::views`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Cmd(Cmd),
    View(usize),
}

/// One line of the palette.
#[derive(Debug, Clone)]
pub struct PaletteEntry {
    pub name: String,
    pub keys: String,
    pub help: String,
    pub pick: Pick,
}

/// A column profile on screen.
#[derive(Debug, Clone)]
pub struct ProfileView {
    pub profile: super::profile::Profile,
    pub cursor: usize,
    /// How long the profile took to compute.
    pub elapsed: Duration,
}

/// One-key quick filters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quick {
    pub status: Option<String>,
    pub bucket: Option<String>,
    pub cluster: Option<u32>,
    pub severity: Option<String>,
}

/// The anomaly table's state.
#[derive(Debug, Clone, Default)]
pub struct TableState {
    /// The visible rows, in order.
    pub view: Vec<u32>,
    pub cursor: usize,
    pub offset: usize,
    /// The column under the column cursor.
    pub col: usize,
    /// The first scrolling column shown.
    pub col_offset: usize,
    pub sort: Option<(usize, bool)>,
    pub all_rows: bool,
    pub quick: Quick,
    pub filter: Option<Filter>,
    pub search: Option<String>,
    pub marks: Vec<bool>,
    pub marked: usize,
    pub anchor: Option<u32>,
    pub detail: bool,
    /// Only the records of this case (id, ticket): a case expanded from the queue. The other
    /// filters do not apply while it is set.
    pub case: Option<(String, String)>,
}

/// The case queue's state (its lines are the loaded [`Loaded::queue`]).
#[derive(Debug, Clone, Default)]
pub struct QueueState {
    /// Indices into the loaded queue, in the queue's order (severity, then age).
    pub order: Vec<u32>,
    pub cursor: usize,
    pub offset: usize,
    /// The marked cases (ids).
    pub marks: HashSet<String>,
    /// Only the cases the user owns ("my queue").
    pub mine: bool,
    /// Position in the loaded queue of each case id (built when first needed).
    index: Option<std::collections::HashMap<String, u32>>,
}

/// The detail pane's audit trail, read when the row changes.
#[derive(Debug, Clone)]
pub struct Trail {
    pub case_id: String,
    pub events: Result<Vec<Event>, String>,
}

/// The cases an outbox item carries, as stored now (for the outbox's detail pane).
#[derive(Debug, Clone)]
pub struct ItemCases {
    pub item_id: u64,
    /// In the item's order; an error says why they could not be read.
    pub cases: Result<Vec<Case>, String>,
}

pub struct App {
    pub cfg: Arc<Config>,
    pub store: Arc<Store>,
    pub actor: Actor,
    pub keymap: Keymap,
    pub theme: Theme,
    base: RunOptions,
    pub worker: Worker,
    pub loading: Option<Loading>,
    pub error: Option<LoadError>,
    pub picker: Option<Picker>,
    pub data: Option<Box<Loaded>>,
    pub view: View,
    pub table: TableState,
    pub cluster_cursor: usize,
    pub approvals: Vec<Case>,
    pub approval_cursor: usize,
    pub mode: Mode,
    pub message: Option<Message>,
    pub trail: Option<Trail>,
    /// The case queue's cursor, marks and order.
    pub queue: QueueState,
    /// The notes of the queue's case under the cursor, read when the cursor moves to another
    /// case (events `note`).
    pub notes: Option<Trail>,
    /// The day overdue is judged against (UTC, as due dates are).
    pub today: chrono::NaiveDate,
    /// Each decision command's cases, newest last: `u` undoes the last.
    pub undo: Vec<Vec<String>>,
    /// Cases decided in this session (the quit prompt asks about those accepted and not yet
    /// sent, reading their dispatch state from the store).
    pub undispatched: HashSet<String>,
    /// The background dispatch sender: the store's one sender while the UI runs. Started at
    /// start when a channel is enabled, or by the first dispatch.
    pub sender: Option<notify::Worker>,
    /// The outbox items, newest first (read when the outbox view is entered and on each report
    /// of the sender while it is shown).
    pub outbox: Vec<OutboxItem>,
    pub outbox_cursor: usize,
    /// The cases of the outbox item under the cursor, for its detail pane (read when the
    /// cursor moves to another item and when the outbox is read again).
    pub outbox_cases: Option<ItemCases>,
    /// The background exports (`x`).
    pub exporter: Exporter,
    /// The saved views of the records table: the config's, then the store's (read at start,
    /// and again after a save or a delete).
    pub views: Vec<Named>,
    /// Live mode (`open --live`): the service's stream instead of a file.
    pub live: Option<super::live::Live>,
    pub size: (u16, u16),
    pub dirty: bool,
    pub quit: bool,
}

impl App {
    pub fn new(opts: AppOptions) -> App {
        let (views, views_error) = saved::list(&opts.cfg, &opts.store);
        let message = views_error.map(|text| Message {
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
            self.update(Action::Worker(m));
            any = true;
        }
        while let Ok(m) = self.worker.rx.try_recv() {
            self.update(Action::Worker(m));
            any = true;
        }
        while let Ok(e) = self.exporter.rx.try_recv() {
            self.update(Action::Exported(e));
            any = true;
        }
        let live = self.pump_live();
        self.pump_dispatch() || any || live
    }

    /// Applies every report of the dispatch sender waiting. Returns whether any came.
    pub fn pump_dispatch(&mut self) -> bool {
        let events: Vec<WorkerEvent> = match &self.sender {
            Some(w) => w.events().try_iter().collect(),
            None => return false,
        };
        let any = !events.is_empty();
        for e in events {
            self.update(Action::Dispatch(e));
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
        self.message = Some(Message {
            level: Level::Info,
            text: text.into(),
        });
    }

    pub fn fail(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            level: Level::Error,
            text: text.into(),
        });
    }

    /// Takes one action; marks the app dirty when something shown changed.
    pub fn update(&mut self, action: Action) {
        match action {
            Action::Key(k) => {
                self.message = None;
                self.key(k);
                self.dirty = true;
            }
            Action::Mouse(m) => self.mouse(m),
            Action::Resize(w, h) => {
                self.size = (w, h);
                self.scroll_into_view();
                self.dirty = true;
            }
            Action::Tick(elapsed) => {
                if let Some(l) = &mut self.loading
                    && l.elapsed.as_millis() / 100 != elapsed.as_millis() / 100
                {
                    l.elapsed = elapsed;
                    self.dirty = true;
                }
            }
            Action::Worker(m) => self.worker_msg(m),
            Action::Dispatch(e) => {
                self.dispatch_event(e);
                self.dirty = true;
            }
            Action::Exported(e) => {
                self.exported(e);
                self.dirty = true;
            }
            Action::Live(e) => {
                self.live_event(e);
                self.dirty = true;
            }
            Action::Cmd(c) => {
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
            let Some(super::table::Data::Text(tc)) = t.col(col).map(|c| &c.data) else {
                return Some(None);
            };
            Some(tc.dict.iter().position(|x| x == v).map(|p| p as u32))
        };
        let status = code_of(t.known.status, &q.status);
        let bucket = code_of(t.known.bucket, &q.bucket);
        let severity = code_of(t.known.severity, &q.severity);
        let codes = |col: Option<usize>| -> Option<&Vec<u32>> {
            match t.col(col).map(|c| &c.data) {
                Some(super::table::Data::Text(tc)) => Some(&tc.codes),
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
            self.table.view = view;
            self.table.cursor = keep
                .and_then(|k| self.table.view.iter().position(|r| *r == k))
                .unwrap_or(self.table.cursor)
                .min(self.table.view.len().saturating_sub(1));
            self.scroll_into_view();
            return;
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
        super::ui::table_body(self, area).height as usize
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
                    PromptKind::DeleteView,
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

    fn picker_command(&mut self, cmd: Cmd) {
        let Some(p) = &mut self.picker else { return };
        let n = p.entries.len();
        match cmd {
            Cmd::Down => p.cursor = (p.cursor + 1).min(n.saturating_sub(1)),
            Cmd::Up => p.cursor = p.cursor.saturating_sub(1),
            Cmd::PageDown => p.cursor = (p.cursor + 10).min(n.saturating_sub(1)),
            Cmd::PageUp => p.cursor = p.cursor.saturating_sub(10),
            Cmd::Top => p.cursor = 0,
            Cmd::Bottom => p.cursor = n.saturating_sub(1),
            Cmd::Parent => {
                let parent = std::fs::canonicalize(&p.dir)
                    .ok()
                    .and_then(|d| d.parent().map(Path::to_path_buf));
                if let Some(parent) = parent {
                    let from = std::fs::canonicalize(&p.dir).ok();
                    p.dir = parent;
                    read_dir(p);
                    if let Some(from) = from {
                        p.cursor = p.entries.iter().position(|e| e.path == from).unwrap_or(0);
                    }
                }
            }
            Cmd::SetHistory => {
                if let Some(e) = p.entries.get(p.cursor).filter(|e| !e.is_dir) {
                    p.history = if p.history.as_ref() == Some(&e.path) {
                        None
                    } else {
                        Some(e.path.clone())
                    };
                }
            }
            Cmd::Enter => {
                let Some(e) = p.entries.get(p.cursor).cloned() else {
                    return;
                };
                if e.is_dir {
                    p.dir = e.path;
                    read_dir(p);
                } else {
                    let history = p.history.clone().filter(|h| *h != e.path);
                    let opts = RunOptions {
                        input: e.path,
                        history,
                        ..self.base.clone()
                    };
                    self.open(opts);
                }
            }
            Cmd::Back if self.data.is_some() || self.loading.is_some() => {
                self.picker = None;
            }
            _ => {}
        }
    }

    // ----- table ----------------------------------------------------------------------------

    fn move_cursor(&mut self, to: isize) {
        let n = self.table.view.len();
        if n == 0 {
            self.table.cursor = 0;
            return;
        }
        self.table.cursor = to.clamp(0, n as isize - 1) as usize;
        self.scroll_into_view();
    }

    fn table_command(&mut self, cmd: Cmd) {
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
                    PromptKind::SaveView { view },
                    "save this view as (name)",
                    String::new(),
                );
            }
            Cmd::SortAsc | Cmd::SortDesc => {
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
            Cmd::Filter => {
                let text = self
                    .table
                    .filter
                    .as_ref()
                    .map(|f| f.text().to_string())
                    .unwrap_or_default();
                self.prompt(PromptKind::Filter, "filter (empty clears)", text);
            }
            Cmd::Search => {
                let text = self.table.search.clone().unwrap_or_default();
                self.prompt(PromptKind::Search, "search", text);
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
                    PromptKind::Note {
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
                self.prompt(PromptKind::Export { rows }, "export to (CSV file)", default);
            }
            _ => {}
        }
    }

    fn complete(&self) -> bool {
        self.data.as_ref().is_some_and(|d| d.complete)
    }

    fn export_default(&self) -> String {
        let stem = Path::new(&self.base.input)
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "breakdesk".into());
        format!("{stem}.export.csv")
    }

    fn prompt(&mut self, kind: PromptKind, label: &str, text: String) {
        self.mode = Mode::Prompt(Prompt {
            kind,
            label: label.to_string(),
            text,
        });
    }

    fn search_step(&mut self, forward: bool) {
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

    fn quick_text(&mut self, kind: QuickKind) {
        let Some(d) = &self.data else { return };
        let t = &d.table;
        let col = match kind {
            QuickKind::Status => t.known.status,
            QuickKind::Bucket => t.known.bucket,
            QuickKind::Severity => t.known.severity,
        };
        let Some(super::table::Data::Text(tc)) = t.col(col).map(|c| &c.data) else {
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

    fn quick_cluster(&mut self) {
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

    fn set_mark(&mut self, row: u32, on: bool) {
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

    fn toggle_mark(&mut self, row: u32) {
        let on = !self.table.marks.get(row as usize).copied().unwrap_or(false);
        self.set_mark(row, on);
    }

    fn clear_marks(&mut self) {
        self.table.marks.iter_mut().for_each(|m| *m = false);
        self.table.marked = 0;
        self.table.anchor = None;
    }

    fn mark_range(&mut self) {
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

    fn mark_cluster(&mut self) {
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

    fn start_decision(&mut self, action: CaseAction) {
        if !self.complete() {
            return self.fail("wait until the cases are recorded");
        }
        let rows = self.targets();
        if rows.is_empty() {
            return;
        }
        if action.note_required().is_some() {
            let what = action.note_required().unwrap_or("reason");
            let label = if rows.len() > 1 {
                format!("{} {} rows — {what}", action.as_str(), rows.len())
            } else {
                format!("{} — {what}", action.as_str())
            };
            self.prompt(
                PromptKind::Note {
                    action: NoteFor::Decision(action),
                    rows,
                },
                &label,
                String::new(),
            );
        } else if rows.len() > 1 {
            self.confirm_decision(action, rows, None);
        } else {
            self.decide(action, &rows, None);
        }
    }

    fn confirm_decision(&mut self, action: CaseAction, rows: Vec<u32>, note: Option<String>) {
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
        if let Some(n) = &note {
            lines.push(format!("{}: {n}", action.note_required().unwrap_or("note")));
        }
        lines.push("y confirms, n or esc cancels.".into());
        self.mode = Mode::Confirm(Confirm {
            title: format!("{} {} rows?", capitalise(action.as_str()), rows.len()),
            lines,
            pending: Pending::Decide { action, rows, note },
        });
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
    fn decide_ids(
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
    fn show_case(&mut self, row: Option<u32>, c: &Case) {
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
                    if let Some(id) = keep
                        && let Some(p) = self
                            .queue
                            .order
                            .iter()
                            .position(|i| d.queue[*i as usize].id == id)
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

    fn undo_last(&mut self) {
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

    fn flag(&mut self, row: u32, reason: &str) {
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

    /// Starts writing `rows` to `path` in the background; [`Action::Exported`] says how it
    /// ended.
    fn export(&mut self, rows: Vec<u32>, path: &str) {
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

    fn exported(&mut self, e: Exported) {
        self.exporter.reported(&e.path);
        let path = e.path.display();
        match e.result {
            Ok(()) => self.info(format!("exported {} rows to {path}", e.rows)),
            Err(err) => self.fail(format!("cannot export to {path}: {err}")),
        }
    }

    // ----- queue ------------------------------------------------------------------------------

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
        if let Some(id) = keep
            && let Some(p) = self
                .queue
                .order
                .iter()
                .position(|i| d.queue[*i as usize].id == id)
        {
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
        super::ui::queue_body(self, area).height as usize
    }

    fn queue_scroll(&mut self) {
        let h = self.queue_height().max(1);
        let q = &mut self.queue;
        if q.cursor < q.offset {
            q.offset = q.cursor;
        } else if q.cursor >= q.offset + h {
            q.offset = q.cursor + 1 - h;
        }
        q.offset = q.offset.min(q.order.len().saturating_sub(h));
    }

    fn queue_move(&mut self, to: isize) {
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

    fn queue_command(&mut self, cmd: Cmd) {
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
    fn expand_case(&mut self) {
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

    fn start_case_decision(&mut self, action: CaseAction) {
        if !self.complete() {
            return self.fail("wait until the cases are recorded");
        }
        let ids = self.queue_targets();
        if ids.is_empty() {
            return;
        }
        if let Some(what) = action.note_required() {
            let label = if ids.len() > 1 {
                format!("{} {} cases — {what}", action.as_str(), ids.len())
            } else {
                format!("{} — {what}", action.as_str())
            };
            self.prompt(
                PromptKind::CaseDecision {
                    action,
                    case_ids: ids,
                },
                &label,
                String::new(),
            );
        } else if ids.len() > 1 {
            self.confirm_case_decision(action, ids, None);
        } else {
            self.decide_cases(action, &ids, None);
        }
    }

    fn confirm_case_decision(
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
        let mut lines = vec![format!(
            "{} {} case(s): total difference {} (absolute {}).",
            capitalise(action.as_str()),
            ids.len(),
            crate::text::thousands(total, 2),
            crate::text::thousands(abs, 2)
        )];
        if let Some(n) = &note {
            lines.push(format!("{}: {n}", action.note_required().unwrap_or("note")));
        }
        lines.push("y confirms, n or esc cancels.".into());
        self.mode = Mode::Confirm(Confirm {
            title: format!("{} {} cases?", capitalise(action.as_str()), ids.len()),
            lines,
            pending: Pending::DecideCases {
                action,
                case_ids: ids,
                note,
            },
        });
    }

    /// Decides on queue cases (the marks are cleared).
    fn decide_cases(&mut self, action: CaseAction, ids: &[String], note: Option<&str>) {
        self.queue.marks.clear();
        self.decide_ids(action, ids, note, 0);
    }

    /// The case (id, ticket) a take, release or note applies to in the table: the row's.
    fn row_case(&self) -> Option<(String, String)> {
        let d = self.data.as_ref()?;
        let r = self.current_row()? as usize;
        let t = &d.table;
        let id = t.text(t.known.case_id, r);
        (!id.is_empty()).then(|| (id.to_string(), t.text(t.known.ticket, r).to_string()))
    }

    /// Takes (assigns to the user) or releases the queue's marked cases or the one under the
    /// cursor, or the table row's case; each change is on disk before it is shown.
    fn take_or_release(&mut self, take: bool) {
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

    fn start_note(&mut self) {
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
            PromptKind::CaseNote { case_id, ticket },
            &label,
            String::new(),
        );
    }

    fn add_note(&mut self, case_id: &str, ticket: &str, text: &str) {
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
    fn sync_notes(&mut self) {
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

    fn clusters_command(&mut self, cmd: Cmd) {
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

    fn approvals_command(&mut self, cmd: Cmd) {
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
                    PromptKind::ReturnQueued { case_id: c.id },
                    &format!("return {} — comment", c.ticket),
                    String::new(),
                );
            }
            _ => {}
        }
    }

    fn queue_decide(&mut self, id: &str, action: CaseAction, note: Option<&str>) {
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

    /// Starts the background dispatch sender if it is not running. It is the store's one sender
    /// while the UI runs (nothing else here flushes the outbox).
    pub fn ensure_sender(&mut self) -> Result<(), String> {
        if self.sender.is_some() {
            return Ok(());
        }
        let dispatcher = notify::Dispatcher::new(&self.cfg).map_err(|e| e.to_string())?;
        self.sender = Some(notify::Worker::spawn(self.store.clone(), dispatcher));
        Ok(())
    }

    /// Starts the sender when a channel is enabled (at start: it also sends what earlier
    /// sessions left queued).
    pub fn start_sender_if_enabled(&mut self) {
        if self.live.is_some() {
            return; // the service sends; this UI has no store of its own
        }
        if !self.enabled_channels().is_empty()
            && let Err(e) = self.ensure_sender()
        {
            self.fail(format!("dispatch: {e}"));
        }
    }

    /// Stops the sender after the attempt in progress; what is not sent stays in the outbox.
    pub fn stop_sender(&mut self) {
        if let Some(w) = self.sender.take() {
            w.stop();
        }
    }

    /// The accepted cases not yet dispatched on `channel`, or a message saying why there is
    /// nothing to do (the channel's problem names the setting).
    fn reviewed_for(&mut self, channel: Channel) -> Option<Vec<Case>> {
        if let Err(e) = notify::check_channel(&self.cfg, channel) {
            self.fail(format!("{e}; nothing was queued"));
            return None;
        }
        match notify::dispatchable(&self.store, Status::Accepted, channel) {
            Ok(cases) if cases.is_empty() => {
                self.info(format!(
                    "nothing to send by {channel}: no accepted case is waiting (each case goes once per channel)"
                ));
                None
            }
            Ok(cases) => Some(cases),
            Err(e) => {
                self.fail(e.to_string());
                None
            }
        }
    }

    fn start_email(&mut self) {
        let Some(cases) = self.reviewed_for(Channel::Email) else {
            return;
        };
        let to = self.cfg.email.to.join(", ");
        self.prompt(
            PromptKind::EmailTo {
                case_ids: cases.into_iter().map(|c| c.id).collect(),
            },
            "email to (comma-separated; [email] cc is added)",
            to,
        );
    }

    fn start_jira(&mut self) {
        let Some(cases) = self.reviewed_for(Channel::Jira) else {
            return;
        };
        let j = &self.cfg.jira;
        let issues = if j.mode == "per_batch" {
            "one issue listing them".to_string()
        } else {
            format!("{} issue(s), one per case", cases.len())
        };
        let mut lines = vec![format!(
            "Create {issues} in Jira project {} ({}) at {}.",
            j.project, j.issue_type, j.base_url
        )];
        lines.extend(summary_lines(&cases));
        lines.push(
            "Queued in the outbox first, then sent in the background; y confirms, n or esc cancels."
                .into(),
        );
        self.mode = Mode::Confirm(Confirm {
            title: format!("Jira: {} accepted case(s)?", cases.len()),
            lines,
            pending: Pending::Jira {
                case_ids: cases.into_iter().map(|c| c.id).collect(),
            },
        });
    }

    fn start_webhook(&mut self) {
        let Some(cases) = self.reviewed_for(Channel::Webhook) else {
            return;
        };
        let mut lines = vec![format!(
            "Post {} task(s), one per case, to {} (due dates from [webhook.sla_days]).",
            cases.len(),
            self.cfg.webhook.url.trim()
        )];
        lines.extend(summary_lines(&cases));
        lines.push(
            "Queued in the outbox first, then sent in the background; y confirms, n or esc cancels."
                .into(),
        );
        self.mode = Mode::Confirm(Confirm {
            title: format!("Webhook: {} accepted case(s)?", cases.len()),
            lines,
            pending: Pending::Webhook {
                case_ids: cases.into_iter().map(|c| c.id).collect(),
            },
        });
    }

    fn email_preview(&mut self, case_ids: Vec<String>, text: &str) {
        let to: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        if let Some(bad) = to
            .iter()
            .find(|a| a.parse::<lettre::message::Mailbox>().is_err())
        {
            self.fail(format!(
                "{bad:?} is not an email address (e.g. lead@example.com or \"Lead <lead@example.com>\"); nothing was queued"
            ));
            // Back to the prompt to fix it.
            return self.prompt(
                PromptKind::EmailTo { case_ids },
                "email to (comma-separated; [email] cc is added)",
                text.to_string(),
            );
        }
        let cc = &self.cfg.email.cc;
        if to.is_empty() && cc.is_empty() {
            return self.fail(
                "no recipients: give at least one address (or set [email] cc); nothing was queued",
            );
        }
        let cases = match self.load_cases(&case_ids) {
            Ok(c) => c,
            Err(e) => return self.fail(e),
        };
        let status = match cases.first() {
            Some(f) if cases.iter().all(|c| c.status == f.status) => {
                f.status.as_str().to_lowercase()
            }
            _ => "reviewed".to_string(),
        };
        let subject = self
            .cfg
            .email
            .subject
            .replace("{count}", &cases.len().to_string())
            .replace("{date}", &chrono::Utc::now().format("%Y-%m-%d").to_string())
            .replace("{status}", &status);
        let mut lines = vec![format!(
            "To: {}",
            if to.is_empty() {
                "-".into()
            } else {
                to.join(", ")
            }
        )];
        if !cc.is_empty() {
            lines.push(format!("Cc: {}", cc.join(", ")));
        }
        lines.push(format!("Subject: {subject}"));
        lines.extend(summary_lines(&cases));
        lines.push(
            "Queued in the outbox first, then sent in the background; y confirms, n or esc cancels."
                .into(),
        );
        self.mode = Mode::Confirm(Confirm {
            title: format!("Email {} accepted case(s)?", cases.len()),
            lines,
            pending: Pending::Email { case_ids, to },
        });
    }

    fn load_cases(&self, ids: &[String]) -> Result<Vec<Case>, String> {
        let handle = Cases::new(&self.store);
        ids.iter()
            .map(|id| match handle.get(id) {
                Ok(Some(c)) => Ok(c),
                Ok(None) => Err(format!("case {id} is no longer in the store")),
                Err(e) => Err(e.to_string()),
            })
            .collect()
    }

    /// Queues on `channel` (durable when it returns), then asks the sender to send now.
    fn queue(&mut self, channel: Channel, case_ids: &[String], to: &[String]) {
        let cases = match self.load_cases(case_ids) {
            Ok(c) => c,
            Err(e) => return self.fail(format!("{e}; nothing was queued")),
        };
        let queued = match channel {
            Channel::Email => {
                // The prompt's list is the whole To line: it replaces `[email] to`.
                let mut cfg = (*self.cfg).clone();
                cfg.email.to = to.to_vec();
                notify::queue_email(&self.store, &cfg, &cases, &[], &self.actor)
            }
            _ => notify::queue(&self.store, &self.cfg, channel, &cases, &[], &self.actor),
        };
        let q = match queued {
            Ok(q) => q,
            Err(e) => return self.fail(format!("{e}; nothing was queued")),
        };
        let mut text = if q.ids.is_empty() {
            format!("nothing queued by {channel}")
        } else {
            format!(
                "queued {} case(s) by {channel} (outbox {}); sending in the background",
                q.case_ids.len(),
                q.ids
                    .iter()
                    .map(|i| format!("#{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        if let Some(s) = q.skipped.first() {
            text.push_str(&format!(
                "; {} skipped ({}: {})",
                q.skipped.len(),
                s.ticket,
                s.reason
            ));
        }
        if self.view == View::Outbox {
            self.load_outbox();
        }
        if q.ids.is_empty() {
            return self.info(text);
        }
        match self.ensure_sender() {
            Ok(()) => {
                if let Some(w) = &self.sender {
                    w.flush_now();
                }
                self.info(text);
            }
            Err(e) => self.fail(format!(
                "{text}, but the sender cannot start: {e} (`breakdesk outbox flush` sends it)"
            )),
        }
    }

    fn dispatch_event(&mut self, e: WorkerEvent) {
        match e {
            WorkerEvent::Recovered(ids) => self.info(format!(
                "{} interrupted dispatch(es) queued again: {}",
                ids.len(),
                ids.iter()
                    .map(|i| format!("#{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            WorkerEvent::Attempted {
                id,
                channel,
                outcome,
                item,
            } => {
                let what = format!("#{id} {channel} ({} case(s))", item.case_ids.len());
                match outcome {
                    ItemOutcome::Sent { reference, .. } => self.info(format!(
                        "sent {what}{}",
                        reference.map(|r| format!(": {r}")).unwrap_or_default()
                    )),
                    ItemOutcome::Retrying {
                        next_attempt_at,
                        error,
                    } => self.fail(format!(
                        "{what} failed, retrying at {} (attempt {}): {error}",
                        next_attempt_at
                            .with_timezone(&chrono::Local)
                            .format("%H:%M:%S"),
                        item.attempts
                    )),
                    ItemOutcome::Parked { reason } => self.fail(format!(
                        "{what} parked: {reason} (4 shows the outbox; R retries)"
                    )),
                    ItemOutcome::Skipped { reason } => {
                        self.fail(format!("{what} not sent: {reason}"))
                    }
                }
            }
            WorkerEvent::Failed(e) => self.fail(format!("outbox: {e}")),
        }
        if self.view == View::Outbox {
            self.load_outbox();
        }
    }

    pub fn load_outbox(&mut self) {
        match Outbox::new(&self.store).list(&OutboxFilter::default()) {
            Ok(mut items) => {
                items.sort_by_key(|i| std::cmp::Reverse(i.id));
                self.outbox = items;
            }
            Err(e) => {
                self.outbox.clear();
                self.fail(e.to_string());
            }
        }
        self.outbox_cursor = self.outbox_cursor.min(self.outbox.len().saturating_sub(1));
        // The items' cases may have changed with them (dispatch state, status).
        self.outbox_cases = None;
        self.sync_outbox_cases();
    }

    /// Reads the cases of the outbox item under the cursor when it changed.
    fn sync_outbox_cases(&mut self) {
        if self.view != View::Outbox {
            return;
        }
        let Some(item) = self.outbox.get(self.outbox_cursor) else {
            self.outbox_cases = None;
            return;
        };
        if self
            .outbox_cases
            .as_ref()
            .is_some_and(|c| c.item_id == item.id)
        {
            return;
        }
        let id = item.id;
        let cases = self.load_cases(&item.case_ids.clone());
        self.outbox_cases = Some(ItemCases { item_id: id, cases });
        self.dirty = true;
    }

    fn outbox_command(&mut self, cmd: Cmd) {
        let n = self.outbox.len();
        match cmd {
            Cmd::Down => self.outbox_cursor = (self.outbox_cursor + 1).min(n.saturating_sub(1)),
            Cmd::Up => self.outbox_cursor = self.outbox_cursor.saturating_sub(1),
            Cmd::Top | Cmd::PageUp => self.outbox_cursor = 0,
            Cmd::Bottom | Cmd::PageDown => self.outbox_cursor = n.saturating_sub(1),
            Cmd::RetryItem => {
                let Some(id) = self.outbox.get(self.outbox_cursor).map(|i| i.id) else {
                    return;
                };
                match Outbox::new(&self.store).retry(id, &self.actor) {
                    Ok(item) => {
                        self.load_outbox();
                        match self.ensure_sender() {
                            Ok(()) => {
                                if let Some(w) = &self.sender {
                                    w.flush_now();
                                }
                                self.info(format!(
                                    "#{id} is {} again; sending in the background",
                                    item.status.name()
                                ));
                            }
                            Err(e) => self.fail(format!(
                                "#{id} is queued again, but the sender cannot start: {e}"
                            )),
                        }
                    }
                    Err(e) => self.fail(e.to_string()),
                }
            }
            Cmd::CancelItem => {
                let Some(item) = self.outbox.get(self.outbox_cursor) else {
                    return;
                };
                let id = item.id;
                self.mode = Mode::Confirm(Confirm {
                    title: format!("Cancel outbox item #{id}?"),
                    lines: vec![
                        format!("{} — {}", item.channel, item.title),
                        format!(
                            "It will never be sent; its {} case(s) may be dispatched on {} again.",
                            item.case_ids.len(),
                            item.channel
                        ),
                        "y cancels the item, n or esc keeps it.".into(),
                    ],
                    pending: Pending::CancelItem(id),
                });
            }
            _ => {}
        }
    }

    fn cancel_item(&mut self, id: u64) {
        match Outbox::new(&self.store).cancel(id, &self.actor) {
            Ok(_) => {
                self.load_outbox();
                self.info(format!("#{id} cancelled; nothing of it will be sent"));
            }
            Err(e) => self.fail(e.to_string()),
        }
    }

    // ----- column profile -----------------------------------------------------------------------

    /// Profiles the column under the column cursor over the rows the table shows.
    fn start_profile(&mut self) {
        let Some(d) = &self.data else { return };
        let t0 = std::time::Instant::now();
        let Some(p) = super::profile::profile(&d.table, self.table.col, &self.table.view) else {
            return;
        };
        self.mode = Mode::Profile(ProfileView {
            profile: p,
            cursor: 0,
            elapsed: t0.elapsed(),
        });
    }

    fn profile_key(&mut self, k: KeyEvent) {
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
    fn apply_profile_filter(&mut self, expr: &str) {
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

    fn start_save_view(&mut self, name: &str, view: SavedView) {
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

    fn save_view(&mut self, name: &str, view: &SavedView, replaced: bool) {
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

    fn delete_view(&mut self, name: &str) {
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

    fn reload_views(&mut self) {
        let (views, error) = saved::list(&self.cfg, &self.store);
        self.views = views;
        if let Some(e) = error {
            self.fail(e);
        }
    }

    fn recall_view(&mut self, i: usize) {
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

    fn prompt_key(&mut self, k: KeyEvent) {
        let Mode::Prompt(p) = &mut self.mode else {
            return;
        };
        match k.code {
            KeyCode::Esc => self.mode = Mode::Normal,
            KeyCode::Backspace => {
                p.text.pop();
            }
            KeyCode::Char('u') if k.modifiers.contains(KeyModifiers::CONTROL) => p.text.clear(),
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => p.text.push(c),
            KeyCode::Enter => {
                let p = p.clone();
                self.mode = Mode::Normal;
                self.submit_prompt(p);
            }
            _ => {}
        }
    }

    fn submit_prompt(&mut self, p: Prompt) {
        let text = p.text.trim().to_string();
        match p.kind {
            PromptKind::Filter => {
                if text.is_empty() {
                    self.table.filter = None;
                    let keep = self.current_row();
                    self.refresh_view(keep);
                    return self.info("expression filter cleared");
                }
                let compiled = self.data.as_ref().map(|d| d.table.compile(&text));
                match compiled {
                    Some(Ok(f)) => {
                        self.table.filter = Some(f);
                        let keep = self.current_row();
                        self.refresh_view(keep);
                        self.info(format!("{} rows match", self.table.view.len()));
                    }
                    Some(Err(e)) => {
                        self.fail(format!("filter: {e}"));
                        // Back to the prompt to fix it.
                        self.mode = Mode::Prompt(p);
                    }
                    None => {}
                }
            }
            PromptKind::Search => {
                if text.is_empty() {
                    self.table.search = None;
                    return;
                }
                self.table.search = Some(p.text.clone());
                // Search from the row above so the current row counts.
                let Some(d) = &self.data else { return };
                let n = self.table.view.len();
                let from = (self.table.cursor + n.max(1) - 1) % n.max(1);
                match d.table.search(&self.table.view, &p.text, from, true) {
                    Some(pos) => {
                        self.move_cursor(pos as isize);
                        self.info(format!("/{} (n next, N previous)", p.text));
                    }
                    None => self.fail(format!("no match for {:?}", p.text)),
                }
            }
            PromptKind::Note { action, rows } => {
                if text.is_empty() {
                    self.fail("a reason is required; nothing was recorded");
                    return;
                }
                match action {
                    NoteFor::Flag => {
                        if let Some(r) = rows.first() {
                            self.flag(*r, &text);
                        }
                    }
                    NoteFor::Decision(a) => {
                        if rows.len() > 1 {
                            self.confirm_decision(a, rows, Some(text));
                        } else {
                            self.decide(a, &rows, Some(&text));
                        }
                    }
                }
            }
            PromptKind::ReturnQueued { case_id } => {
                if text.is_empty() {
                    return self.fail("a comment is required; nothing was recorded");
                }
                self.queue_decide(&case_id, CaseAction::Return, Some(&text));
            }
            PromptKind::Export { rows } => {
                if text.is_empty() || text == "-" {
                    // ("-" would be standard output: the screen.)
                    return self.fail("no file given; nothing exported");
                }
                self.export(rows, &text);
            }
            PromptKind::EmailTo { case_ids } => self.email_preview(case_ids, &text),
            PromptKind::CaseDecision { action, case_ids } => {
                if text.is_empty() {
                    return self.fail("a reason is required; nothing was recorded");
                }
                if case_ids.len() > 1 {
                    self.confirm_case_decision(action, case_ids, Some(text));
                } else {
                    self.decide_cases(action, &case_ids, Some(&text));
                }
            }
            PromptKind::CaseNote { case_id, ticket } => {
                if text.is_empty() {
                    return self.fail("a note must not be empty; nothing was recorded");
                }
                self.add_note(&case_id, &ticket, &text);
            }
            PromptKind::SaveView { view } => self.start_save_view(&text, view),
            PromptKind::DeleteView => self.delete_view(&text),
        }
    }

    fn confirm_key(&mut self, k: KeyEvent) {
        let Mode::Confirm(c) = &self.mode else {
            return;
        };
        match k.code {
            KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                let pending = c.pending.clone();
                self.mode = Mode::Normal;
                match pending {
                    Pending::Quit => self.quit = true,
                    Pending::Decide { action, rows, note } => {
                        self.decide(action, &rows, note.as_deref())
                    }
                    Pending::Email { case_ids, to } => self.queue(Channel::Email, &case_ids, &to),
                    Pending::Jira { case_ids } => self.queue(Channel::Jira, &case_ids, &[]),
                    Pending::Webhook { case_ids } => self.queue(Channel::Webhook, &case_ids, &[]),
                    Pending::CancelItem(id) => self.cancel_item(id),
                    Pending::ReplaceView { name, view } => self.save_view(&name, &view, true),
                    Pending::DecideCases {
                        action,
                        case_ids,
                        note,
                    } => self.decide_cases(action, &case_ids, note.as_deref()),
                }
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc | KeyCode::Char('q') => {
                self.mode = Mode::Normal;
                self.info("cancelled; nothing was recorded");
            }
            _ => {}
        }
    }

    fn palette_key(&mut self, k: KeyEvent) {
        let Mode::Palette { query, cursor } = &mut self.mode else {
            return;
        };
        match k.code {
            KeyCode::Esc => self.mode = Mode::Normal,
            KeyCode::Up => *cursor = cursor.saturating_sub(1),
            KeyCode::Down => *cursor += 1,
            KeyCode::Backspace => {
                query.pop();
                *cursor = 0;
            }
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                query.push(c);
                *cursor = 0;
            }
            KeyCode::Enter => {
                let (query, cursor) = (query.clone(), *cursor);
                let entries = self.palette_entries(&query);
                let pick = entries
                    .get(cursor.min(entries.len().saturating_sub(1)))
                    .map(|e| e.pick);
                self.mode = Mode::Normal;
                match pick {
                    Some(Pick::Cmd(cmd)) => self.command(cmd),
                    Some(Pick::View(i)) => self.recall_view(i),
                    None => {}
                }
            }
            _ => {}
        }
    }

    // ----- mouse ------------------------------------------------------------------------------

    fn mouse(&mut self, m: ratatui::crossterm::event::MouseEvent) {
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
                    && m.row == super::ui::table_area(self, area).y
                {
                    // A column header: sort by it, as the sort key does (again: reverse).
                    if let Some(col) = super::ui::table_column_at(self, area, m.column) {
                        self.message = None;
                        self.table.col = col;
                        self.fit_columns();
                        self.table_command(Cmd::SortAsc);
                        self.dirty = true;
                    }
                    return;
                }
                let body = super::ui::list_body(self, area);
                if m.row < body.y
                    || m.row >= body.y + body.height
                    || m.column >= body.x + body.width
                {
                    return;
                }
                let i = (m.row - body.y) as usize;
                if self.picker.is_some() {
                    if let Some(p) = &mut self.picker {
                        let off = super::ui::list_offset(p.cursor, body.height as usize);
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
                            let off =
                                super::ui::list_offset(self.cluster_cursor, body.height as usize);
                            if off + i < n {
                                self.cluster_cursor = off + i;
                            }
                        }
                        View::Approvals => {
                            let off =
                                super::ui::list_offset(self.approval_cursor, body.height as usize);
                            if off + i < self.approvals.len() {
                                self.approval_cursor = off + i;
                            }
                        }
                        View::Outbox => {
                            let off =
                                super::ui::list_offset(self.outbox_cursor, body.height as usize);
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
    fn sync_trail(&mut self) {
        if self.live.is_some() {
            return self.live_sync_trail();
        }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuickKind {
    Status,
    Bucket,
    Severity,
}

impl QuickKind {
    fn name(self) -> &'static str {
        match self {
            QuickKind::Status => "status",
            QuickKind::Bucket => "bucket",
            QuickKind::Severity => "severity",
        }
    }
}

/// The preview's lines about the cases: count and total absolute difference, counts by bucket
/// and severity, the first tickets.
fn summary_lines(cases: &[Case]) -> Vec<String> {
    let abs: f64 = cases.iter().map(|c| c.difference.abs()).sum();
    let count_by = |key: &dyn Fn(&Case) -> &str, order: &[&str]| -> String {
        let mut by: Vec<(String, usize)> = Vec::new();
        for c in cases {
            let k = key(c);
            match by.iter_mut().find(|(n, _)| n == k) {
                Some((_, n)) => *n += 1,
                None => by.push((k.to_string(), 1)),
            }
        }
        by.sort_by(|a, b| {
            let pos = |s: &str| order.iter().position(|o| *o == s).unwrap_or(order.len());
            pos(&a.0)
                .cmp(&pos(&b.0))
                .then(b.1.cmp(&a.1))
                .then(a.0.cmp(&b.0))
        });
        by.iter()
            .map(|(n, k)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    const SHOWN: usize = 5;
    let mut tickets: Vec<&str> = cases
        .iter()
        .take(SHOWN)
        .map(|c| c.ticket.as_str())
        .collect();
    let more = cases.len().saturating_sub(SHOWN);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    tickets.dedup();
    vec![
        format!(
            "{} case(s), total absolute difference {}.",
            cases.len(),
            crate::text::thousands(abs, 2)
        ),
        format!("By bucket: {}.", count_by(&|c| c.bucket.as_str(), &[])),
        format!(
            "By severity: {}.",
            count_by(
                &|c| c.severity.as_str(),
                &["Critical", "High", "Medium", "Low"]
            )
        ),
        format!("Tickets: {}{more}.", tickets.join(", ")),
    ]
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The picker's entries: directories, then CSV and Excel files, by name.
fn read_dir(p: &mut Picker) {
    p.entries.clear();
    p.cursor = 0;
    p.error = None;
    let rd = match std::fs::read_dir(&p.dir) {
        Ok(rd) => rd,
        Err(e) => {
            p.error = Some(format!("cannot list {}: {e}", p.dir.display()));
            return;
        }
    };
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for e in rd.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            dirs.push(Entry {
                name: format!("{name}/"),
                path,
                is_dir: true,
            });
        } else {
            let ext = path
                .extension()
                .map(|x| x.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if matches!(
                ext.as_str(),
                "csv" | "tsv" | "txt" | "xlsx" | "xlsm" | "xls" | "ods"
            ) {
                files.push(Entry {
                    name,
                    path,
                    is_dir: false,
                });
            }
        }
    }
    dirs.sort_by(|a, b| a.name.cmp(&b.name));
    files.sort_by(|a, b| a.name.cmp(&b.name));
    p.entries = dirs.into_iter().chain(files).collect();
}
