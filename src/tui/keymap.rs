//! The one keymap: every command with its name, where it applies, its keys and what it does.
//! The footer hints, the `?` help overlay and the `:` command palette are all generated from it,
//! and `[tui.keys]` in the config replaces a command's keys by its name.

use super::action::{Cmd, Ctx};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeMap;

/// A key: a code and its modifiers (Shift is folded into the character for letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    /// The key of a terminal event, normalised so that `A` and `shift-a` are the same key.
    pub fn from_event(e: &KeyEvent) -> Key {
        let mut mods =
            e.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        let code = match e.code {
            KeyCode::Char(c) => {
                mods.remove(KeyModifiers::SHIFT);
                if mods.contains(KeyModifiers::CONTROL) {
                    KeyCode::Char(c.to_ascii_lowercase())
                } else {
                    KeyCode::Char(c)
                }
            }
            KeyCode::BackTab => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            c => c,
        };
        Key { code, mods }
    }

    /// Parses `a`, `A`, `?`, `enter`, `ctrl-d`, `shift-tab`, `f5`, `space`.
    pub fn parse(text: &str) -> Result<Key, String> {
        let t = text.trim();
        let bad = || {
            format!(
                "{text:?} is not a key (a character, or enter, esc, tab, backtab, backspace, space, up, down, left, right, home, end, pageup, pagedown, delete, f1..f12, with ctrl-, alt- or shift-)"
            )
        };
        if t.is_empty() {
            return Err(bad());
        }
        let mut mods = KeyModifiers::NONE;
        let mut rest = t;
        loop {
            let lower = rest.to_ascii_lowercase();
            let Some((m, tail)) = ["ctrl-", "alt-", "shift-"]
                .iter()
                .find(|p| lower.starts_with(**p) && rest.len() > p.len())
                .map(|p| (*p, &rest[p.len()..]))
            else {
                break;
            };
            mods |= match m {
                "ctrl-" => KeyModifiers::CONTROL,
                "alt-" => KeyModifiers::ALT,
                _ => KeyModifiers::SHIFT,
            };
            rest = tail;
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(c),
            _ => match rest.to_ascii_lowercase().as_str() {
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" => KeyCode::Tab,
                "backtab" => KeyCode::BackTab,
                "backspace" => KeyCode::Backspace,
                "space" => KeyCode::Char(' '),
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "pageup" => KeyCode::PageUp,
                "pagedown" => KeyCode::PageDown,
                "delete" | "del" => KeyCode::Delete,
                f if f.starts_with('f') => match f[1..].parse::<u8>() {
                    Ok(n) if (1..=12).contains(&n) => KeyCode::F(n),
                    _ => return Err(bad()),
                },
                _ => return Err(bad()),
            },
        };
        // shift-a is A.
        let code = match code {
            KeyCode::Char(c) if mods.contains(KeyModifiers::SHIFT) && c.is_ascii_alphabetic() => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::Char(c.to_ascii_uppercase())
            }
            KeyCode::Char(c) if mods.contains(KeyModifiers::CONTROL) => {
                KeyCode::Char(c.to_ascii_lowercase())
            }
            other => other,
        };
        Ok(Key { code, mods })
    }

    /// The key as the help and footer show it.
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Enter => "enter".into(),
            KeyCode::Esc => "esc".into(),
            KeyCode::Tab => "tab".into(),
            KeyCode::BackTab => "backtab".into(),
            KeyCode::Backspace => "backspace".into(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::Home => "home".into(),
            KeyCode::End => "end".into(),
            KeyCode::PageUp => "pgup".into(),
            KeyCode::PageDown => "pgdn".into(),
            KeyCode::Delete => "del".into(),
            KeyCode::F(n) => format!("f{n}"),
            other => format!("{other:?}").to_lowercase(),
        };
        let mut out = String::new();
        if self.mods.contains(KeyModifiers::CONTROL) {
            out.push_str("ctrl-");
        }
        if self.mods.contains(KeyModifiers::ALT) {
            out.push_str("alt-");
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            out.push_str("shift-");
        }
        out.push_str(&base);
        out
    }
}

/// One line of the help: (keys, name, what it does).
pub type HelpRow = (String, &'static str, &'static str);

/// One command of the keymap.
#[derive(Debug, Clone)]
pub struct Binding {
    pub cmd: Cmd,
    /// The name used in `[tui.keys]` and the palette.
    pub name: &'static str,
    pub ctx: Ctx,
    pub keys: Vec<Key>,
    pub help: &'static str,
    /// Shown in the footer of its context.
    pub footer: bool,
}

/// (command, name, context, default keys, help, in the footer)
type Row = (
    Cmd,
    &'static str,
    Ctx,
    &'static [&'static str],
    &'static str,
    bool,
);

const DEFAULTS: &[Row] = &[
    // The views' own commands first: the footer lists them before the global ones.
    (
        Cmd::Enter,
        "expand",
        Ctx::Queue,
        &["enter"],
        "Show the case's records in the table (esc returns to the queue)",
        true,
    ),
    (
        Cmd::Accept,
        "accept",
        Ctx::Queue,
        &["a"],
        "Accept: a real break (the marked cases, or this one)",
        true,
    ),
    (
        Cmd::Reject,
        "reject",
        Ctx::Queue,
        &["r"],
        "Reject as a false positive (asks for the reason)",
        true,
    ),
    (
        Cmd::Propose,
        "propose",
        Ctx::Queue,
        &["t"],
        "Propose auto-resolution (a supervisor approves)",
        false,
    ),
    (
        Cmd::Take,
        "take",
        Ctx::Queue,
        &["m"],
        "Take the case (the marked cases): you own it",
        true,
    ),
    (
        Cmd::Release,
        "release",
        Ctx::Queue,
        &["M"],
        "Release the case (the marked cases): nobody owns it",
        true,
    ),
    (
        Cmd::AddNote,
        "note",
        Ctx::Queue,
        &["i"],
        "Add a note to the case (asks for the text; not a decision)",
        true,
    ),
    (
        Cmd::MyQueue,
        "my-queue",
        Ctx::Queue,
        &["o"],
        "My queue: only the cases I own (again: every outstanding case)",
        false,
    ),
    (
        Cmd::Undo,
        "undo",
        Ctx::Queue,
        &["u"],
        "Undo your last decision (not yet dispatched)",
        false,
    ),
    (
        Cmd::Mark,
        "mark",
        Ctx::Queue,
        &["space"],
        "Mark or unmark the case",
        true,
    ),
    (
        Cmd::MarkAll,
        "mark-all",
        Ctx::Queue,
        &["*"],
        "Mark every case in the queue",
        false,
    ),
    (
        Cmd::Approve,
        "approve",
        Ctx::Queue,
        &[],
        "Approve the proposed auto-resolution (supervisors)",
        false,
    ),
    (
        Cmd::Return,
        "return",
        Ctx::Queue,
        &[],
        "Return the proposal with a comment (supervisors)",
        false,
    ),
    (
        Cmd::Enter,
        "open",
        Ctx::Table,
        &["enter"],
        "Show or hide the detail pane",
        true,
    ),
    (
        Cmd::Accept,
        "accept",
        Ctx::Table,
        &["a"],
        "Accept: a real break (the marked rows, or this one)",
        true,
    ),
    (
        Cmd::Reject,
        "reject",
        Ctx::Table,
        &["r"],
        "Reject as a false positive (asks for the reason)",
        true,
    ),
    (
        Cmd::Propose,
        "propose",
        Ctx::Table,
        &["t"],
        "Propose auto-resolution (a supervisor approves)",
        true,
    ),
    (
        Cmd::Flag,
        "flag",
        Ctx::Table,
        &["f"],
        "Flag a break the model missed (asks for the reason)",
        false,
    ),
    (
        Cmd::Undo,
        "undo",
        Ctx::Table,
        &["u"],
        "Undo your last decision (not yet dispatched)",
        true,
    ),
    (
        Cmd::Mark,
        "mark",
        Ctx::Table,
        &["space"],
        "Mark or unmark the row",
        true,
    ),
    (
        Cmd::MarkRange,
        "mark-range",
        Ctx::Table,
        &["V"],
        "Mark every row from the last marked one to this one",
        false,
    ),
    (
        Cmd::MarkAll,
        "mark-all",
        Ctx::Table,
        &["*"],
        "Mark every row the filters show",
        false,
    ),
    (
        Cmd::MarkCluster,
        "mark-cluster",
        Ctx::Table,
        &["#"],
        "Mark every shown row of this row's cluster",
        false,
    ),
    (
        Cmd::Search,
        "search",
        Ctx::Table,
        &["/"],
        "Search every column",
        true,
    ),
    (
        Cmd::SearchNext,
        "search-next",
        Ctx::Table,
        &["n"],
        "Next match",
        false,
    ),
    (
        Cmd::SearchPrev,
        "search-prev",
        Ctx::Table,
        &["N"],
        "Previous match",
        false,
    ),
    (
        Cmd::Filter,
        "filter",
        Ctx::Table,
        &["F"],
        "Filter by an expression: difference > 1000 and status = pending",
        true,
    ),
    (
        Cmd::QuickStatus,
        "filter-status",
        Ctx::Table,
        &["s"],
        "Quick filter: next status",
        false,
    ),
    (
        Cmd::QuickBucket,
        "filter-bucket",
        Ctx::Table,
        &["b"],
        "Quick filter: next bucket",
        false,
    ),
    (
        Cmd::QuickCluster,
        "filter-cluster",
        Ctx::Table,
        &["c"],
        "Quick filter: next cluster",
        false,
    ),
    (
        Cmd::QuickSeverity,
        "filter-severity",
        Ctx::Table,
        &["!"],
        "Quick filter: next severity",
        false,
    ),
    (
        Cmd::ClearFilters,
        "clear-filters",
        Ctx::Table,
        &["0"],
        "Clear every filter",
        false,
    ),
    (
        Cmd::SaveView,
        "save-view",
        Ctx::Table,
        &[],
        "Save the filters, search, sort and column as a named view (asks for the name)",
        false,
    ),
    (
        Cmd::Views,
        "views",
        Ctx::Global,
        &[],
        "List the saved views (the config's and those saved here); enter applies one",
        false,
    ),
    (
        Cmd::DeleteView,
        "delete-view",
        Ctx::Global,
        &[],
        "Delete a view saved here (asks for the name; config views stay)",
        false,
    ),
    (
        Cmd::AllRows,
        "all-rows",
        Ctx::Table,
        &["A"],
        "Show every row, or only the flagged ones",
        false,
    ),
    (
        Cmd::SortAsc,
        "sort",
        Ctx::Table,
        &["o"],
        "Sort by the current column (again: reverse)",
        true,
    ),
    (
        Cmd::SortDesc,
        "sort-desc",
        Ctx::Table,
        &["O"],
        "Sort by the current column, largest first",
        false,
    ),
    (
        Cmd::Export,
        "export",
        Ctx::Table,
        &["x"],
        "Export the marked (or shown) rows to CSV",
        false,
    ),
    (
        Cmd::Approve,
        "approve",
        Ctx::Table,
        &[],
        "Approve the proposed auto-resolution (supervisors)",
        false,
    ),
    (
        Cmd::Return,
        "return",
        Ctx::Table,
        &[],
        "Return the proposal with a comment (supervisors)",
        false,
    ),
    (
        Cmd::Profile,
        "profile",
        Ctx::Table,
        &["p"],
        "Profile the column over the shown rows: top values, or quartiles and a histogram (enter filters)",
        false,
    ),
    (
        Cmd::Take,
        "take",
        Ctx::Table,
        &["m"],
        "Take the row's case: you own it",
        false,
    ),
    (
        Cmd::Release,
        "release",
        Ctx::Table,
        &["M"],
        "Release the row's case: nobody owns it",
        false,
    ),
    (
        Cmd::AddNote,
        "note",
        Ctx::Table,
        &["i"],
        "Add a note to the row's case (asks for the text)",
        false,
    ),
    (
        Cmd::Enter,
        "members",
        Ctx::Clusters,
        &["enter"],
        "Show the cluster's rows in the table",
        true,
    ),
    (
        Cmd::Approve,
        "approve",
        Ctx::Approvals,
        &["a"],
        "Approve the auto-resolution (not your own proposal)",
        true,
    ),
    (
        Cmd::Return,
        "return",
        Ctx::Approvals,
        &["r"],
        "Return it to the analyst with a comment",
        true,
    ),
    (
        Cmd::RetryItem,
        "retry",
        Ctx::Outbox,
        &["R"],
        "Retry the outbox item (parked or waiting to retry)",
        true,
    ),
    (
        Cmd::CancelItem,
        "cancel-item",
        Ctx::Outbox,
        &["X"],
        "Cancel the undelivered outbox item (asks first; its cases may be sent again)",
        true,
    ),
    (
        Cmd::Email,
        "email",
        Ctx::Outbox,
        &["e"],
        "Email the accepted cases not yet emailed (recipients, preview, confirm)",
        true,
    ),
    (
        Cmd::Jira,
        "jira",
        Ctx::Outbox,
        &["J"],
        "Create Jira issues for the accepted cases not yet in Jira (confirm)",
        true,
    ),
    (
        Cmd::Webhook,
        "webhook",
        Ctx::Outbox,
        &["W"],
        "Post webhook tasks for the accepted cases not yet posted (confirm)",
        true,
    ),
    (
        Cmd::Enter,
        "open",
        Ctx::Picker,
        &["enter"],
        "Open the file, or enter the directory",
        true,
    ),
    (
        Cmd::Parent,
        "parent",
        Ctx::Picker,
        &["backspace"],
        "Go up a directory",
        true,
    ),
    (
        Cmd::SetHistory,
        "history",
        Ctx::Picker,
        &["H"],
        "Use this file as the history (context and training rows)",
        true,
    ),
    (
        Cmd::Down,
        "down",
        Ctx::Global,
        &["j", "down"],
        "Move down",
        false,
    ),
    (Cmd::Up, "up", Ctx::Global, &["k", "up"], "Move up", false),
    (
        Cmd::PageDown,
        "page-down",
        Ctx::Global,
        &["pagedown", "ctrl-d"],
        "Page down",
        false,
    ),
    (
        Cmd::PageUp,
        "page-up",
        Ctx::Global,
        &["pageup", "ctrl-u"],
        "Page up",
        false,
    ),
    (
        Cmd::Top,
        "top",
        Ctx::Global,
        &["g", "home"],
        "First row",
        false,
    ),
    (
        Cmd::Bottom,
        "bottom",
        Ctx::Global,
        &["G", "end"],
        "Last row",
        false,
    ),
    (
        Cmd::Left,
        "left",
        Ctx::Global,
        &["h", "left"],
        "Previous column",
        false,
    ),
    (
        Cmd::Right,
        "right",
        Ctx::Global,
        &["l", "right"],
        "Next column",
        false,
    ),
    (
        Cmd::NextView,
        "next-view",
        Ctx::Global,
        &["tab"],
        "Next view",
        true,
    ),
    (
        Cmd::ViewTable,
        "view-table",
        Ctx::Global,
        &["1"],
        "Anomaly table",
        false,
    ),
    (
        Cmd::ViewClusters,
        "view-clusters",
        Ctx::Global,
        &["2"],
        "Clusters",
        false,
    ),
    (
        Cmd::ViewApprovals,
        "view-approvals",
        Ctx::Global,
        &["3"],
        "Approval queue (supervisors)",
        false,
    ),
    (
        Cmd::ViewOutbox,
        "view-outbox",
        Ctx::Global,
        &["4"],
        "Outbox: dispatches queued, sent, failed",
        false,
    ),
    (
        Cmd::ViewQueue,
        "view-queue",
        Ctx::Global,
        &["5"],
        "Case queue: the outstanding cases, by severity and age",
        false,
    ),
    (
        Cmd::ViewSummary,
        "view-summary",
        Ctx::Global,
        &["6"],
        "Run summary: the cycle, outstanding by bucket and age, the trend",
        false,
    ),
    (
        Cmd::Email,
        "email",
        Ctx::Global,
        &["e"],
        "Email the accepted cases not yet emailed (recipients, preview, confirm)",
        false,
    ),
    (
        Cmd::Jira,
        "jira",
        Ctx::Global,
        &["J"],
        "Create Jira issues for the accepted cases not yet in Jira (confirm)",
        false,
    ),
    (
        Cmd::Webhook,
        "webhook",
        Ctx::Global,
        &["W"],
        "Post webhook tasks for the accepted cases not yet posted (confirm)",
        false,
    ),
    (
        Cmd::OpenPicker,
        "open-file",
        Ctx::Global,
        &["ctrl-o"],
        "Open another file",
        false,
    ),
    (
        Cmd::Theme,
        "theme",
        Ctx::Global,
        &["T"],
        "Light or dark theme",
        false,
    ),
    (
        Cmd::Back,
        "back",
        Ctx::Global,
        &["esc"],
        "Back: close, clear the marks, or cancel loading",
        false,
    ),
    (
        Cmd::Palette,
        "palette",
        Ctx::Global,
        &[":"],
        "Command palette",
        true,
    ),
    (
        Cmd::Help,
        "help",
        Ctx::Global,
        &["?"],
        "Help: every command and its keys",
        true,
    ),
    (
        Cmd::Quit,
        "quit",
        Ctx::Global,
        &["q", "ctrl-c"],
        "Quit (asks first when decisions are not dispatched)",
        true,
    ),
];

/// The keymap in effect: the defaults with the config's overrides.
#[derive(Debug, Clone)]
pub struct Keymap {
    pub bindings: Vec<Binding>,
}

impl Keymap {
    pub fn defaults() -> Keymap {
        let bindings = DEFAULTS
            .iter()
            .map(|(cmd, name, ctx, keys, help, footer)| Binding {
                cmd: *cmd,
                name,
                ctx: *ctx,
                keys: keys.iter().filter_map(|k| Key::parse(k).ok()).collect(),
                help,
                footer: *footer,
            })
            .collect();
        Keymap { bindings }
    }

    /// The defaults with `[tui.keys]` applied: each named command gets the keys given (in every
    /// context it has). An unknown command or key is an error naming it.
    pub fn with_overrides(
        overrides: &BTreeMap<String, crate::config::KeyList>,
    ) -> Result<Keymap, String> {
        let mut km = Keymap::defaults();
        for (name, list) in overrides {
            let keys = list
                .keys()
                .iter()
                .map(|k| Key::parse(k).map_err(|e| format!("[tui.keys] {name}: {e}")))
                .collect::<Result<Vec<Key>, String>>()?;
            let mut found = false;
            for b in km.bindings.iter_mut().filter(|b| b.name == name.as_str()) {
                b.keys = keys.clone();
                found = true;
            }
            if !found {
                let mut names: Vec<&str> = km.bindings.iter().map(|b| b.name).collect();
                names.sort_unstable();
                names.dedup();
                return Err(format!(
                    "[tui.keys]: unknown command {name:?} (commands: {})",
                    names.join(", ")
                ));
            }
        }
        Ok(km)
    }

    /// The command of a key in `ctx` (its own bindings first, then the global ones).
    pub fn lookup(&self, ctx: Ctx, key: Key) -> Option<Cmd> {
        [ctx, Ctx::Global]
            .iter()
            .find_map(|c| {
                self.bindings
                    .iter()
                    .find(|b| b.ctx == *c && b.keys.contains(&key))
            })
            .map(|b| b.cmd)
    }

    /// The keys of a command as shown (`j/↓`), in `ctx` or globally.
    pub fn keys_of(&self, ctx: Ctx, cmd: Cmd) -> String {
        self.bindings
            .iter()
            .find(|b| b.cmd == cmd && (b.ctx == ctx || b.ctx == Ctx::Global))
            .map(|b| b.keys.iter().map(Key::label).collect::<Vec<_>>().join("/"))
            .unwrap_or_default()
    }

    /// The footer hints of a context: `(keys, name)` of its footer commands, then the global
    /// ones.
    pub fn footer(&self, ctx: Ctx) -> Vec<(String, &'static str)> {
        [ctx, Ctx::Global]
            .iter()
            .flat_map(|c| {
                self.bindings
                    .iter()
                    .filter(move |b| b.ctx == *c && b.footer && !b.keys.is_empty())
            })
            .map(|b| (b.keys[0].label(), b.name))
            .collect()
    }

    /// The help, by context: `(context, [(keys, name, help)])`.
    pub fn help(&self) -> Vec<(Ctx, Vec<HelpRow>)> {
        let order = [
            Ctx::Queue,
            Ctx::Table,
            Ctx::Clusters,
            Ctx::Approvals,
            Ctx::Outbox,
            Ctx::Summary,
            Ctx::Picker,
            Ctx::Global,
        ];
        order
            .iter()
            .map(|c| {
                let rows = self
                    .bindings
                    .iter()
                    .filter(|b| b.ctx == *c)
                    .map(|b| {
                        let keys = if b.keys.is_empty() {
                            ": palette".to_string()
                        } else {
                            b.keys.iter().map(Key::label).collect::<Vec<_>>().join(" ")
                        };
                        (keys, b.name, b.help)
                    })
                    .collect();
                (*c, rows)
            })
            .collect()
    }

    /// The palette's entries for a context, matching `query` (in the name or help, ignoring
    /// case): the context's commands, then the global ones.
    pub fn palette(&self, ctx: Ctx, query: &str) -> Vec<&Binding> {
        let q = query.trim().to_lowercase();
        let mut out: Vec<&Binding> = Vec::new();
        for c in [ctx, Ctx::Global] {
            for b in self.bindings.iter().filter(|b| b.ctx == c) {
                if out.iter().any(|o| o.name == b.name) {
                    continue;
                }
                if q.is_empty() || b.name.contains(&q) || b.help.to_lowercase().contains(&q) {
                    out.push(b);
                }
            }
        }
        // Exact name matches first.
        out.sort_by_key(|b| (b.name != q, !b.name.starts_with(&q)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeyList;

    fn ev(code: KeyCode, mods: KeyModifiers) -> Key {
        Key::from_event(&KeyEvent::new(code, mods))
    }

    #[test]
    fn parse_and_normalise() {
        assert_eq!(
            Key::parse("a").unwrap(),
            ev(KeyCode::Char('a'), KeyModifiers::NONE)
        );
        assert_eq!(
            Key::parse("A").unwrap(),
            ev(KeyCode::Char('A'), KeyModifiers::SHIFT)
        );
        assert_eq!(Key::parse("shift-a").unwrap(), Key::parse("A").unwrap());
        assert_eq!(
            Key::parse("ctrl-d").unwrap(),
            ev(KeyCode::Char('d'), KeyModifiers::CONTROL)
        );
        assert_eq!(Key::parse("space").unwrap().label(), "space");
        assert_eq!(Key::parse("f5").unwrap().code, KeyCode::F(5));
        assert!(Key::parse("f13").is_err());
        assert!(Key::parse("banana").is_err());
        assert_eq!(Key::parse("ctrl-d").unwrap().label(), "ctrl-d");
    }

    #[test]
    fn every_default_key_parses_and_no_key_is_bound_twice_in_a_context() {
        let km = Keymap::defaults();
        for (cmd, name, ctx, keys, _, _) in DEFAULTS {
            let b = km
                .bindings
                .iter()
                .find(|b| b.name == *name && b.ctx == *ctx)
                .unwrap();
            assert_eq!(b.cmd, *cmd);
            assert_eq!(b.keys.len(), keys.len(), "{name}: {keys:?}");
        }
        for ctx in [
            Ctx::Queue,
            Ctx::Summary,
            Ctx::Table,
            Ctx::Clusters,
            Ctx::Approvals,
            Ctx::Outbox,
            Ctx::Picker,
            Ctx::Global,
        ] {
            let mut seen = std::collections::HashSet::new();
            for b in km.bindings.iter().filter(|b| b.ctx == ctx) {
                for k in &b.keys {
                    assert!(seen.insert(*k), "{:?} bound twice in {ctx:?}", k.label());
                }
            }
        }
    }

    #[test]
    fn lookup_prefers_the_context() {
        let km = Keymap::defaults();
        let a = Key::parse("a").unwrap();
        assert_eq!(km.lookup(Ctx::Table, a), Some(Cmd::Accept));
        assert_eq!(km.lookup(Ctx::Approvals, a), Some(Cmd::Approve));
        assert_eq!(km.lookup(Ctx::Clusters, a), None);
        assert_eq!(
            km.lookup(Ctx::Clusters, Key::parse("j").unwrap()),
            Some(Cmd::Down)
        );
        // Dispatch: j still moves down; J is Jira, e email, 4 the outbox, R retries there.
        let k = |s: &str| Key::parse(s).unwrap();
        assert_eq!(km.lookup(Ctx::Table, k("j")), Some(Cmd::Down));
        assert_eq!(km.lookup(Ctx::Table, k("J")), Some(Cmd::Jira));
        assert_eq!(km.lookup(Ctx::Table, k("e")), Some(Cmd::Email));
        assert_eq!(km.lookup(Ctx::Table, k("4")), Some(Cmd::ViewOutbox));
        assert_eq!(km.lookup(Ctx::Outbox, k("R")), Some(Cmd::RetryItem));
        assert_eq!(km.lookup(Ctx::Outbox, k("X")), Some(Cmd::CancelItem));
        assert_eq!(km.lookup(Ctx::Table, k("W")), Some(Cmd::Webhook));
        assert_eq!(km.lookup(Ctx::Outbox, k("W")), Some(Cmd::Webhook));
        assert_eq!(km.lookup(Ctx::Table, k("R")), None);
        // The queue: take, release and note there and on a table row; 5 and 6 everywhere.
        assert_eq!(km.lookup(Ctx::Queue, k("m")), Some(Cmd::Take));
        assert_eq!(km.lookup(Ctx::Table, k("M")), Some(Cmd::Release));
        assert_eq!(km.lookup(Ctx::Queue, k("i")), Some(Cmd::AddNote));
        assert_eq!(km.lookup(Ctx::Queue, k("o")), Some(Cmd::MyQueue));
        assert_eq!(km.lookup(Ctx::Queue, k("a")), Some(Cmd::Accept));
        assert_eq!(km.lookup(Ctx::Outbox, k("5")), Some(Cmd::ViewQueue));
        assert_eq!(km.lookup(Ctx::Queue, k("6")), Some(Cmd::ViewSummary));
    }

    #[test]
    fn overrides_replace_keys_and_unknown_names_fail() {
        let mut o = BTreeMap::new();
        o.insert("accept".to_string(), KeyList::One("y".into()));
        let km = Keymap::with_overrides(&o).unwrap();
        assert_eq!(
            km.lookup(Ctx::Table, Key::parse("y").unwrap()),
            Some(Cmd::Accept)
        );
        assert_eq!(km.lookup(Ctx::Table, Key::parse("a").unwrap()), None);
        assert!(
            km.footer(Ctx::Table)
                .iter()
                .any(|(k, n)| k == "y" && *n == "accept")
        );
        o.insert("acept".to_string(), KeyList::One("y".into()));
        let e = Keymap::with_overrides(&o).unwrap_err();
        assert!(e.contains("\"acept\"") && e.contains("accept"), "{e}");
        let mut o = BTreeMap::new();
        o.insert(
            "down".to_string(),
            KeyList::Many(vec!["j".into(), "ctrl-zz".into()]),
        );
        assert!(Keymap::with_overrides(&o).unwrap_err().contains("ctrl-zz"));
    }
}
