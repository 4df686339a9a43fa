//! The file picker: moving through folders and opening a file.

use super::*;

impl App {
    pub(super) fn picker_command(&mut self, cmd: Cmd) {
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
}

/// The picker's entries: directories, then CSV and Excel files, by name.
pub(super) fn read_dir(p: &mut Picker) {
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
