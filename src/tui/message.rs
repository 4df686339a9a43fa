//! What can happen to the app: a key or mouse event, a worker message, a tick of the clock, or a
//! command (what a key means, once the keymap has read it). [`crate::tui::app::App::update`]
//! takes one [`Message`] at a time.

use super::export::Exported;
use super::worker::WorkerMsg;
use crate::dispatch::SenderEvent;
use ratatui::crossterm::event::{KeyEvent, MouseEvent};
use std::time::Duration;

/// The views of a loaded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The case queue: one line per outstanding case of the loaded profile (the default after
    /// loading).
    Queue,
    /// The records of the loaded file (or of one case, from the queue).
    Table,
    Clusters,
    Approvals,
    /// The dispatch outbox: what is queued, sent, failed.
    Outbox,
    /// The run summary, outstanding cases by bucket and age band, and their trend.
    Summary,
}

impl View {
    pub const ALL: [View; 6] = [
        View::Queue,
        View::Table,
        View::Clusters,
        View::Approvals,
        View::Outbox,
        View::Summary,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Queue => "Queue",
            View::Table => "Anomalies",
            View::Clusters => "Clusters",
            View::Approvals => "Approval queue",
            View::Outbox => "Outbox",
            View::Summary => "Summary",
        }
    }
}

/// Where a key binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ctx {
    /// Everywhere (after the current view's own bindings).
    Global,
    /// The case queue (and its case pane).
    Queue,
    /// The anomaly table (and its detail pane).
    Table,
    Clusters,
    Approvals,
    /// The dispatch outbox.
    Outbox,
    /// The run summary.
    Summary,
    /// The file picker.
    Picker,
}

impl Ctx {
    pub fn title(self) -> &'static str {
        match self {
            Ctx::Global => "Everywhere",
            Ctx::Queue => "Case queue",
            Ctx::Table => "Anomaly table",
            Ctx::Clusters => "Clusters",
            Ctx::Approvals => "Approval queue",
            Ctx::Outbox => "Outbox",
            Ctx::Summary => "Run summary",
            Ctx::Picker => "File picker",
        }
    }
}

/// A command: what a key, a palette entry or a mouse gesture asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmd {
    Quit,
    Help,
    Palette,
    Back,
    NextView,
    ViewTable,
    ViewClusters,
    ViewApprovals,
    ViewOutbox,
    ViewQueue,
    ViewSummary,
    Theme,
    OpenPicker,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Left,
    Right,
    Enter,
    SortAsc,
    SortDesc,
    Filter,
    QuickStatus,
    QuickBucket,
    QuickCluster,
    QuickSeverity,
    ClearFilters,
    AllRows,
    Search,
    SearchNext,
    SearchPrev,
    Mark,
    MarkRange,
    MarkAll,
    MarkCluster,
    Accept,
    Reject,
    Propose,
    Flag,
    Undo,
    Approve,
    Return,
    Export,
    Parent,
    SetHistory,
    /// Email the reviewed (accepted, not yet emailed) cases: recipients, preview, confirm.
    Email,
    /// Create Jira issues for the reviewed cases not yet sent to Jira.
    Jira,
    /// Post webhook tasks for the reviewed cases not yet sent to the webhook.
    Webhook,
    /// Put the outbox item under the cursor back in the queue (parked or waiting to retry).
    RetryItem,
    /// Cancel the undelivered outbox item under the cursor (asks first).
    CancelItem,
    /// Take the case (the marked cases in the queue): assign it to yourself.
    Take,
    /// Release the case (the marked cases in the queue): nobody owns it.
    Release,
    /// Add a note to the case (asks for the text).
    AddNote,
    /// Show only my cases in the queue (the cases I own), or every outstanding case again.
    MyQueue,
    /// Profile the column under the column cursor over the shown rows.
    Profile,
    /// Save the table's filters, sort and column as a named view (asks for the name).
    SaveView,
    /// List the saved views in the palette (`view: NAME` applies one).
    Views,
    /// Delete a view saved in the UI (asks for the name).
    DeleteView,
}

/// One thing for [`crate::tui::app::App::update`] to take in.
#[derive(Debug)]
pub enum Message {
    Key(KeyEvent),
    Mouse(MouseEvent),
    /// The terminal's new size.
    Resize(u16, u16),
    /// Time since the current load started (drives the elapsed time shown while loading).
    Tick(Duration),
    Worker(WorkerMsg),
    /// A report of the background dispatch sender.
    Dispatch(SenderEvent),
    /// A background export ended.
    Exported(Exported),
    /// Something the live client (`open --live`) received or was answered.
    Live(super::live::LiveEvent),
    Cmd(Cmd),
}
