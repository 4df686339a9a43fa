//! The seam for dispatch (issue 7, built on its own branch): how the UI will hand reviewed
//! cases to the outbox and hear back, without knowing how email, Jira or webhooks work.
//!
//! Nothing here sends anything, and no key is bound to it yet: when the outbox library lands,
//! a dispatcher thread owns the other end of these channels, `Cmd::Email` / `Cmd::Jira` and
//! `View::Outbox` join [`super::action`] and the keymap, and the app keeps an
//! `Option<DispatchChannels>` (None: dispatch not configured, the commands say so).

use std::sync::mpsc::{Receiver, Sender};

/// What the UI asks the dispatcher for.
#[derive(Debug, Clone, PartialEq)]
pub enum DispatchRequest {
    /// Email these cases (ids) to `recipients`, after the user saw the preview.
    Email {
        case_ids: Vec<String>,
        recipients: Vec<String>,
    },
    /// Create a Jira ticket per case.
    Jira { case_ids: Vec<String> },
    /// Retry a failed outbox item.
    Retry { item: String },
}

/// What the dispatcher reports; the outbox view shows these.
#[derive(Debug, Clone, PartialEq)]
pub enum DispatchEvent {
    Queued { item: String, case_ids: Vec<String> },
    Sent { item: String, case_ids: Vec<String> },
    Failed { item: String, error: String },
}

/// The UI's ends of a background dispatcher.
#[derive(Debug)]
pub struct DispatchChannels {
    pub requests: Sender<DispatchRequest>,
    pub events: Receiver<DispatchEvent>,
}
