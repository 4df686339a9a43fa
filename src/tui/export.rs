//! The background export (`x`): the chosen rows of the analysis table are written to a CSV
//! file on their own thread, so a large export never freezes the UI. The result comes back over
//! a std channel and reaches [`crate::tui::app::App::update`] as
//! [`crate::tui::message::Message::Exported`].

use polars::prelude::{DataFrame, IdxCa, IdxSize};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

/// How an export ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// The file, as the user gave it.
    pub path: PathBuf,
    /// The rows asked for.
    pub rows: usize,
    /// Err: why the file could not be written (it may be missing or incomplete).
    pub result: Result<(), String>,
}

/// The app's end of the exports: starts them and receives their results.
pub struct Exporter {
    tx: Sender<Exported>,
    pub rx: Receiver<Exported>,
    /// The exports not yet reported, by file.
    running: Vec<(PathBuf, JoinHandle<()>)>,
}

impl Default for Exporter {
    fn default() -> Self {
        Exporter::new()
    }
}

impl Exporter {
    pub fn new() -> Exporter {
        let (tx, rx) = channel();
        Exporter {
            tx,
            rx,
            running: Vec::new(),
        }
    }

    /// Starts writing `rows` of `frame` (in that order) to `path` as CSV. Refused while an
    /// export to the same file is still running.
    pub fn start(&mut self, frame: DataFrame, rows: Vec<u32>, path: PathBuf) -> Result<(), String> {
        if self.is_running(&path) {
            return Err(format!(
                "{} is still being written; wait for that export to end",
                path.display()
            ));
        }
        let tx = self.tx.clone();
        let file = path.clone();
        let handle = std::thread::Builder::new()
            .name("breakdesk-export".into())
            .spawn(move || {
                let n = rows.len();
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    write(&frame, &rows, &file)
                }))
                .unwrap_or_else(|_| Err("internal error while writing".to_string()));
                let _ = tx.send(Exported {
                    path: file,
                    rows: n,
                    result,
                });
            })
            .map_err(|e| format!("cannot start the export: {e}"))?;
        self.running.push((path, handle));
        Ok(())
    }

    /// Whether an export to `path` has not been reported yet.
    pub fn is_running(&self, path: &Path) -> bool {
        self.running.iter().any(|(p, _)| p == path)
    }

    /// How many exports have not been reported yet.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Forgets a reported export (its thread has ended or is ending).
    pub fn reported(&mut self, path: &Path) {
        if let Some(i) = self.running.iter().position(|(p, _)| p == path) {
            let (_, h) = self.running.remove(i);
            let _ = h.join();
        }
    }

    /// Waits for every export still running (at exit: a file is never left half written).
    pub fn join(&mut self) {
        for (_, h) in self.running.drain(..) {
            let _ = h.join();
        }
    }
}

/// Writes `rows` of `frame` to `path` as CSV.
fn write(frame: &DataFrame, rows: &[u32], path: &Path) -> Result<(), String> {
    let idx = IdxCa::from_vec("idx".into(), rows.iter().map(|r| *r as IdxSize).collect());
    let df = frame.take(&idx).map_err(|e| e.to_string())?;
    crate::output::write_table(&df, path, crate::output::Format::Csv).map_err(|e| format!("{e:#}"))
}
