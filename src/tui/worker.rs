//! The background analysis: one thread per load running [`crate::pipeline::analyze_observed`],
//! reporting over a std channel. Every message carries the generation of the load that sent
//! it, so the app drops what a superseded (cancelled or replaced) load still sends. Cancelling
//! sets the load's flag, which the pipeline checks between stages.
//!
//! The heavy work of turning the result into what the UI shows (the column store, cluster rows,
//! per-account series) happens here too, never on the UI thread.

use super::queue;
use super::results::{self, Loaded};
use crate::config::Config;
use crate::pipeline::{self, AnalyzeOptions, Partial, Progress, RunOptions};
use crate::store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

/// Why a load ended without a result, as the error screen shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    /// One line: what failed.
    pub title: String,
    /// The full message (names the file, row, column or value).
    pub message: String,
}

/// What a load reports.
#[derive(Debug)]
pub enum WorkerMsg {
    Progress {
        generation: u64,
        progress: Progress,
    },
    /// Scored and clustered; categories and cases still to come.
    Partial {
        generation: u64,
        loaded: Box<Loaded>,
    },
    Done {
        generation: u64,
        result: Result<Box<Loaded>, LoadError>,
    },
}

impl WorkerMsg {
    pub fn generation(&self) -> u64 {
        match self {
            WorkerMsg::Progress { generation, .. }
            | WorkerMsg::Partial { generation, .. }
            | WorkerMsg::Done { generation, .. } => *generation,
        }
    }
}

/// The app's end of the background work.
pub struct Worker {
    tx: Sender<WorkerMsg>,
    pub rx: Receiver<WorkerMsg>,
    /// The generation of the newest load; messages of older ones are stale.
    pub generation: u64,
    cancel: Option<Arc<AtomicBool>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Default for Worker {
    fn default() -> Self {
        Worker::new()
    }
}

impl Worker {
    pub fn new() -> Worker {
        let (tx, rx) = channel();
        Worker {
            tx,
            rx,
            generation: 0,
            cancel: None,
            handle: None,
        }
    }

    /// Starts analysing `opts` in the background, superseding any load in progress. Returns the
    /// new generation.
    pub fn start(&mut self, cfg: Arc<Config>, store: Arc<Store>, opts: RunOptions) -> u64 {
        self.cancel();
        self.generation += 1;
        let generation = self.generation;
        let cancel = Arc::new(AtomicBool::new(false));
        self.cancel = Some(cancel.clone());
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("breakdesk-load-{generation}"))
            .spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    load(&cfg, &store, &opts, generation, &tx, &cancel)
                }))
                .unwrap_or_else(|p| {
                    let what = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown".into());
                    Err(LoadError {
                        title: "the analysis failed unexpectedly".into(),
                        message: format!("internal error: {what}"),
                    })
                });
                let _ = tx.send(WorkerMsg::Done { generation, result });
            });
        match spawned {
            Ok(h) => self.handle = Some(h),
            Err(e) => {
                let _ = self.tx.send(WorkerMsg::Done {
                    generation,
                    result: Err(LoadError {
                        title: "cannot start the analysis".into(),
                        message: e.to_string(),
                    }),
                });
            }
        }
        generation
    }

    /// Asks the load in progress to stop; its messages become stale.
    pub fn cancel(&mut self) {
        if let Some(c) = self.cancel.take() {
            c.store(true, Ordering::Relaxed);
            self.generation += 1;
        }
    }

    /// Whether the load thread has ended (tests and shutdown wait for it: it may be writing
    /// cases).
    pub fn finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Waits for the load thread to end.
    pub fn join(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }

    /// Marks the load as done (it reported its end).
    pub fn done(&mut self) {
        self.cancel = None;
    }
}

fn load(
    cfg: &Config,
    store: &Store,
    opts: &RunOptions,
    generation: u64,
    tx: &Sender<WorkerMsg>,
    cancel: &AtomicBool,
) -> Result<Box<Loaded>, LoadError> {
    let aopts = AnalyzeOptions {
        all_rows: true,
        ..Default::default()
    };
    let source = opts.input.display().to_string();
    let settings = crate::wiring::run::settings(cfg).map_err(|message| LoadError {
        title: "invalid configuration".into(),
        message,
    })?;
    let mut partial_error = None;
    let analysis = pipeline::analyze_observed(
        &settings,
        opts,
        &aopts,
        store,
        "",
        &mut |progress| {
            let _ = tx.send(WorkerMsg::Progress {
                generation,
                progress,
            });
        },
        cancel,
        &mut |p| match p {
            Partial::Detected { run, det, table } => {
                match results::build(opts, run, det, table, false) {
                    Ok(loaded) => {
                        let _ = tx.send(WorkerMsg::Partial {
                            generation,
                            loaded: Box::new(loaded),
                        });
                    }
                    Err(e) => partial_error = Some(e),
                }
            }
        },
    )
    .map_err(|e| results::describe_error(&e, &source))?;
    if let Some(e) = partial_error {
        tracing::warn!(error = %e, "partial table");
    }
    let mut loaded = results::build(opts, &analysis.run, &analysis.det, &analysis.table, true)
        .map_err(|message| LoadError {
            title: format!("cannot show {source}"),
            message,
        })?;
    // The queue: every outstanding case of the profile, read here, off the UI thread.
    let profile = analysis.run.profile.clone();
    match queue::load(store, &profile) {
        Ok(q) => loaded.queue = q,
        Err(e) => loaded.queue_error = Some(e),
    }
    loaded.trend = queue::trend(store, &profile).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "run summaries");
        Vec::new()
    });
    loaded.summary = Some(analysis.summary);
    Ok(Box::new(loaded))
}
