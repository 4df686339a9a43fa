//! The state the app holds: what is loaded, each view's cursor and marks, prompts and dialogs.

use super::*;

/// How the app starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// Analyse this file.
    File(RunOptions),
    /// Pick a file in this directory.
    Picker(PathBuf),
    /// Show the anomalies of a running service as they arrive (`open --live`).
    Live(crate::tui::live::LiveOptions),
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
pub struct Notice {
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
pub enum InputKind {
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
pub struct InputPrompt {
    pub kind: InputKind,
    pub label: String,
    pub text: String,
}

/// What a decision applies to: rows of the table (each decides its case) or cases of the queue.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    Rows(Vec<u32>),
    Cases(Vec<String>),
}

impl Targets {
    pub fn len(&self) -> usize {
        match self {
            Targets::Rows(r) => r.len(),
            Targets::Cases(c) => c.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What one of them is called, in the plural.
    pub fn noun(&self) -> &'static str {
        match self {
            Targets::Rows(_) => "rows",
            Targets::Cases(_) => "cases",
        }
    }
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
    Prompt(InputPrompt),
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
    pub profile: crate::tui::profile::Profile,
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
    pub(super) index: Option<std::collections::HashMap<String, u32>>,
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
    pub(super) base: RunOptions,
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
    pub message: Option<Notice>,
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
    pub sender: Option<dispatch::OutboxSender>,
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
    pub live: Option<crate::tui::live::Live>,
    pub size: (u16, u16),
    pub dirty: bool,
    pub quit: bool,
}
