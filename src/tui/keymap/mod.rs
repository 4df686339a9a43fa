//! The one keymap: every command with its name, where it applies, its keys and what it does.
//! The footer hints, the `?` help overlay and the `:` command palette are all generated from it,
//! and `[tui.keys]` in the config replaces a command's keys by its name.

mod commands;
mod key;
#[cfg(test)]
mod tests;

use super::message::{Cmd, Ctx};
use commands::DEFAULTS;
pub use key::Key;
use std::collections::BTreeMap;

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
