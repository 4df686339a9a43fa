//! The embedded store (sled). Every sled call of the product lives in this module, behind our
//! own types, so the engine can be replaced without touching the rest.
//!
//! Layout: one sled database in `<data_dir>/store`, with named trees: models, llm_cache, the
//! case workflow's trees and the dispatch outbox's trees (outbox, outbox_pending, jira_keys; see
//! [`crate::dispatch`]), run summaries (`runs`) and the records table's saved views (`views`,
//! name → JSON). The case workflow's logical trees (cases, tickets, break_index, events,
//! case_events; see [`crate::cases`] for what they hold) are packed many entries to a stored
//! value ([`paged`]: `case_pages`, `case_index`, `event_pages`); feedback and seq are plain
//! trees. A `meta` tree holds the schema version; opening a store
//! written by a newer version is refused, an older one is migrated. Writes that acknowledge
//! something to a user are flushed before returning.
//!
//! Schema history:
//! - 1: `models`, `llm_cache`.
//! - 2: adds the case workflow's trees (empty when migrated from 1; models and cached answers are
//!   kept as they are).
//! - 3: adds the outbox's trees (empty when migrated from 2; everything else is kept as it is).
//! - 4: packs cases, tickets, the break index and events ([`paged`]); a schema-3 store's trees
//!   are copied into the packed ones, then dropped.
//! - 5: cases are written in a binary encoding instead of JSON (see `crate::cases`); nothing is
//!   rewritten when a schema-4 store is opened: the cases it holds are read as they are, and
//!   each is written in the new encoding the next time it changes. The version keeps an older
//!   build from opening a store whose cases it could not read.
//! - 6: a case's fingerprint of its latest record is a hash of the record's fields (`v2:`…)
//!   instead of a hash of its JSON; nothing is rewritten: a case keeps the fingerprint it has
//!   until it changes, and both kinds are compared with a record (see `crate::cases`). The
//!   version keeps an older build, which knows only the first kind, from taking every case
//!   written since for changed.

use std::path::{Path, PathBuf};

mod case_trees;
mod paged;

pub(crate) use case_trees::*;

pub(crate) use paged::BucketCache;
use paged::{IndexTag, Load, Logical, Overlay, PagedError, Phys};

use sled::Transactional;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};

/// The schema this build writes.
pub const SCHEMA_VERSION: u32 = 6;

const META: &str = "meta";
const MODELS: &str = "models";
/// Run summaries: sequence number (big-endian u64) → summary JSON, the latest last.
const RUNS: &str = "runs";
/// sled's page cache (its default is 1 GiB, which a batch run would spend on pages it writes
/// once). At 64 MiB, 100,000 cases (about 150 MB of records) no longer fit and recording them
/// took a third longer (`cargo bench --bench cases_record`).
const CACHE_BYTES: u64 = 256 * 1024 * 1024;
const LLM_CACHE: &str = "llm_cache";
/// Entries copied between two writes when a schema-3 store is packed.
const MIGRATE_CHUNK: usize = 20_000;
/// The service's per-account state (the last records of each account).
const STREAM_STATE: &str = "stream_state";
/// The records table's views saved in the UI: name → view JSON.
const VIEWS: &str = "views";

/// Why the store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (or a handle of this one) holds the store.
    #[error(
        "the store {path} is in use by another breakdesk process (close it, or pass --data-dir to use another store)"
    )]
    Locked { path: String },
    /// The store's directory or database could not be opened.
    #[error("cannot open the store {path}: {message}")]
    Open { path: String, message: String },
    /// The store was written by a newer breakdesk, whose schema this build does not know.
    #[error(
        "the store {path} was written by a newer breakdesk (schema {found}, this build reads up to {supported})"
    )]
    TooNew {
        path: String,
        found: u32,
        supported: u32,
    },
    /// A failure of the storage engine (I/O, corruption).
    #[error("store error: {0}")]
    Engine(String),
    /// The disk holding the store is (nearly) full: nothing was written.
    #[error(
        "no space left on the disk of the store {path}: {free_kb} KB free, at least {need_kb} KB needed to write safely (free some space and try again; nothing was written)"
    )]
    DiskFull {
        path: String,
        free_kb: u64,
        need_kb: u64,
    },
}

/// The free space a write needs on the store's disk. sled cannot recover from a write that
/// fails for lack of space (it waits for it forever), so writes are refused before that.
const MIN_FREE_BYTES: u64 = 8 << 20;

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Engine(e.to_string())
    }
}

/// The open store of one data directory. It holds the store's lock until dropped.
pub struct Store {
    /// Dropped by hand: after a failed write sled would wait forever in its final flush.
    db: std::mem::ManuallyDrop<sled::Db>,
    path: PathBuf,
    /// Set when the engine failed a write: the database is then not flushed on drop.
    failed: std::sync::atomic::AtomicBool,
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.failed.load(std::sync::atomic::Ordering::SeqCst) {
            // What was acknowledged is on disk already; the rest is given up, not waited for.
            return;
        }
        // SAFETY: `db` is not used after this; drop runs once.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.db) };
    }
}

impl Store {
    /// Opens (or creates) the store in `<data_dir>/store`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join("store");
        let display = path.display().to_string();
        std::fs::create_dir_all(&path).map_err(|e| StoreError::Open {
            path: display.clone(),
            message: e.to_string(),
        })?;
        check_room(&path)?;
        // A store that another process (or a just-dropped handle, whose background thread is
        // still finishing) holds is retried briefly before it is reported as in use.
        let mut wait = std::time::Duration::from_millis(25);
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
        let db = loop {
            match sled::Config::new()
                .path(&path)
                .cache_capacity(CACHE_BYTES)
                .open()
            {
                Ok(db) => break db,
                Err(e) => {
                    let m = e.to_string();
                    let lower = m.to_lowercase();
                    let locked = lower.contains("lock")
                        || lower.contains("resource temporarily unavailable");
                    if !locked {
                        return Err(StoreError::Open {
                            path: display.clone(),
                            message: m,
                        });
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked {
                            path: display.clone(),
                        });
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(std::time::Duration::from_millis(200));
                }
            }
        };
        restrict_permissions(&path).map_err(|e| StoreError::Open {
            path: display.clone(),
            message: format!("cannot restrict its permissions: {e}"),
        })?;
        let store = Store {
            db: std::mem::ManuallyDrop::new(db),
            path,
            failed: std::sync::atomic::AtomicBool::new(false),
        };
        store.room()?;
        store.migrate()?;
        Ok(store)
    }

    /// The database, for a read or write on the calling thread.
    ///
    /// Never from a job on rayon's threads (this crate's or polars'): a transaction holds
    /// sled's process-wide lock while it waits for rayon's threads ([`Store::case_transaction_in`]),
    /// so a job that waits for that lock on one of them can wait forever. Debug builds, the
    /// tests', check it here.
    fn sled(&self) -> &sled::Db {
        debug_assert!(
            rayon::current_thread_index().is_none(),
            "the store was used from a job on rayon's threads: it can deadlock with a transaction"
        );
        &self.db
    }

    /// Refuses a write when the store's disk is nearly full ([`MIN_FREE_BYTES`]).
    fn room(&self) -> Result<(), StoreError> {
        check_room(&self.path)
    }

    /// An engine error, remembered: after it the database is not flushed on drop.
    fn engine(&self, e: sled::Error) -> StoreError {
        if matches!(e, sled::Error::Io(_)) {
            self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        StoreError::from(e)
    }

    /// The store's directory (`<data_dir>/store`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let meta = self.sled().open_tree(META)?;
        let found = meta
            .get(b"schema_version")?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_be_bytes);
        match found {
            Some(v) if v > SCHEMA_VERSION => Err(StoreError::TooNew {
                path: self.path.display().to_string(),
                found: v,
                supported: SCHEMA_VERSION,
            }),
            Some(v) if v == SCHEMA_VERSION => Ok(()),
            // A new store: every tree of this schema, then the version.
            None => {
                self.create_trees(&CaseTree::RAW)?;
                for p in Phys::ALL {
                    self.sled().open_tree(p.name())?;
                }
                // A new store has no case to give an outstanding marker to: every case it will
                // hold gets one as it is written (see `crate::cases`).
                self.sled()
                    .open_tree(CaseTree::Seq.name())?
                    .insert(b"outstanding_indexed", b"1")?;
                meta.insert(b"schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                self.sled().flush()?;
                Ok(())
            }
            // An older schema: the migrations run in order, each one recorded (and flushed) as it
            // completes, so an interrupted migration resumes where it stopped.
            Some(mut v) => {
                let from = v;
                while v < SCHEMA_VERSION {
                    // The step from v to v + 1 (1 → 2 adds the case trees, 2 → 3 the outbox's,
                    // 3 → 4 packs the case trees, 4 → 5 and 5 → 6 only record the version).
                    match v {
                        1 => self.create_trees(&CaseTree::V2)?,
                        2 => self.create_trees(&CaseTree::V3)?,
                        3 => self.pack_case_trees()?,
                        _ => {}
                    }
                    v += 1;
                    meta.insert(b"schema_version", &v.to_be_bytes())?;
                    self.sled().flush()?;
                    if v == 4 {
                        self.drop_unpacked_trees()?;
                    }
                }
                tracing::info!(
                    store = %self.path.display(),
                    from,
                    to = SCHEMA_VERSION,
                    "migrated the store schema"
                );
                Ok(())
            }
        }
    }

    /// Creates (empty) the trees a schema step adds.
    fn create_trees(&self, trees: &[CaseTree]) -> Result<(), StoreError> {
        for tree in trees {
            self.sled().open_tree(tree.name())?;
        }
        Ok(())
    }

    /// Schema 3 → 4: copies the case trees kept one entry per key (cases, tickets,
    /// break_index, events, case_events) into the packed trees, then drops them. Cases take
    /// their slots in ticket order (the order they were opened). The packed trees are rebuilt
    /// from scratch, so an interrupted copy starts over; the old trees are dropped only after
    /// the new version is recorded.
    fn pack_case_trees(&self) -> Result<(), StoreError> {
        for p in Phys::ALL {
            self.sled().drop_tree(p.name())?;
            self.sled().open_tree(p.name())?;
        }
        let load = DbLoad(self);
        let mut o = Overlay::default();
        let write = |o: &mut Overlay| -> Result<(), StoreError> {
            let changes = o.changed().map_err(|c| StoreError::Engine(c.0))?;
            for (tree, key, value) in changes {
                let t = self.sled().open_tree(tree.name())?;
                match value {
                    Some(v) => t.insert(key, v)?,
                    None => t.remove(key)?,
                };
            }
            o.settle();
            Ok(())
        };
        let old = |t: CaseTree| self.sled().open_tree(t.name());
        // Cases in ticket order, then any case without a ticket.
        let mut ticketed: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for kv in old(CaseTree::Tickets)?.iter() {
            let (ticket, id) = kv?;
            ticketed.push((ticket.to_vec(), id.to_vec()));
        }
        ticketed.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
        let cases = old(CaseTree::Cases)?;
        let mut n = 0usize;
        for (_, id) in &ticketed {
            if let Some(bytes) = cases.get(id)? {
                paged_store(o.insert(&load, Logical::Cases, id, bytes.to_vec()))?;
                n += 1;
                if n.is_multiple_of(MIGRATE_CHUNK) {
                    write(&mut o)?;
                }
            }
        }
        for kv in cases.iter() {
            let (id, bytes) = kv?;
            if !paged_store(o.contains(&load, Logical::Cases, &id))? {
                paged_store(o.insert(&load, Logical::Cases, &id, bytes.to_vec()))?;
                n += 1;
                if n.is_multiple_of(MIGRATE_CHUNK) {
                    write(&mut o)?;
                }
            }
        }
        for tree in [
            CaseTree::Tickets,
            CaseTree::BreakIndex,
            CaseTree::CaseEvents,
            CaseTree::Events,
        ] {
            let Layout::Paged(logical) = tree.layout() else {
                continue;
            };
            for kv in old(tree)?.iter() {
                let (k, v) = kv?;
                paged_store(o.insert(&load, logical, &k, v.to_vec()))?;
                n += 1;
                if n.is_multiple_of(MIGRATE_CHUNK) {
                    write(&mut o)?;
                }
            }
        }
        write(&mut o)?;
        self.sled().flush()?;
        Ok(())
    }

    /// After schema 4 is recorded: the trees it replaced are dropped.
    fn drop_unpacked_trees(&self) -> Result<(), StoreError> {
        for t in CaseTree::PACKED {
            self.sled().drop_tree(t.name())?;
        }
        self.sled().flush()?;
        Ok(())
    }

    /// The schema version recorded in the store (0 if none is).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let meta = self.sled().open_tree(META)?;
        Ok(meta
            .get(b"schema_version")?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0))
    }

    /// Saves a model bundle under `name` (durable when this returns).
    pub fn put_model(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_flushed(MODELS, name, bytes)
    }

    /// Puts `bytes` under `name` in `tree` and flushes it (durable when this returns).
    fn put_flushed(&self, tree: &str, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.room()?;
        let t = self.sled().open_tree(tree).map_err(|e| self.engine(e))?;
        t.insert(name.as_bytes(), bytes)
            .map_err(|e| self.engine(e))?;
        t.flush().map_err(|e| self.engine(e))?;
        Ok(())
    }

    /// Appends a run summary (durable when this returns); returns its sequence number.
    pub fn put_run(&self, bytes: &[u8]) -> Result<u64, StoreError> {
        self.room()?;
        let t = self.sled().open_tree(RUNS).map_err(|e| self.engine(e))?;
        let next = match t.last().map_err(|e| self.engine(e))? {
            Some((k, _)) => <[u8; 8]>::try_from(k.as_ref())
                .map(u64::from_be_bytes)
                .unwrap_or(0)
                .saturating_add(1),
            None => 1,
        };
        t.insert(next.to_be_bytes(), bytes)
            .map_err(|e| self.engine(e))?;
        t.flush().map_err(|e| self.engine(e))?;
        Ok(next)
    }

    /// The latest `n` run summaries, the latest first.
    pub fn runs(&self, n: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let t = self.sled().open_tree(RUNS)?;
        let mut out = Vec::new();
        for kv in t.iter().rev().take(n) {
            out.push(kv?.1.to_vec());
        }
        Ok(out)
    }

    /// A saved model bundle by name.
    pub fn get_model(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.sled().open_tree(MODELS)?;
        Ok(t.get(name.as_bytes())?.map(|v| v.to_vec()))
    }

    /// A cached LLM answer by its key (SHA-256 of prompt version, model and inputs).
    pub fn get_llm_answer(&self, key: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.sled().open_tree(LLM_CACHE)?;
        Ok(t.get(key)?.map(|v| v.to_vec()))
    }

    /// Caches LLM answers (durable when this returns).
    pub fn put_llm_answers(&self, answers: &[([u8; 32], Vec<u8>)]) -> Result<(), StoreError> {
        if answers.is_empty() {
            return Ok(());
        }
        self.room()?;
        let t = self
            .sled()
            .open_tree(LLM_CACHE)
            .map_err(|e| self.engine(e))?;
        let mut batch = sled::Batch::default();
        for (k, v) in answers {
            batch.insert(&k[..], v.as_slice());
        }
        t.apply_batch(batch).map_err(|e| self.engine(e))?;
        t.flush().map_err(|e| self.engine(e))?;
        Ok(())
    }

    /// Number of cached LLM answers.
    pub fn llm_cache_len(&self) -> Result<usize, StoreError> {
        Ok(self.sled().open_tree(LLM_CACHE)?.len())
    }

    /// The names of the saved model bundles, in name order.
    pub fn model_names(&self) -> Result<Vec<String>, StoreError> {
        let t = self.sled().open_tree(MODELS)?;
        let mut out = Vec::new();
        for kv in t.iter() {
            let (k, _) = kv?;
            out.push(String::from_utf8_lossy(&k).to_string());
        }
        Ok(out)
    }

    /// Writes the service's per-account states (`(key, bytes)`; empty bytes remove the key).
    /// Not flushed here: sled writes them out within its flush interval, and a state is only
    /// context for the next record's features.
    pub fn put_stream_states(&self, states: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        self.room()?;
        let t = self.sled().open_tree(STREAM_STATE)?;
        let mut batch = sled::Batch::default();
        for (k, v) in states {
            if v.is_empty() {
                batch.remove(k.as_slice());
            } else {
                batch.insert(k.as_slice(), v.as_slice());
            }
        }
        t.apply_batch(batch).map_err(|e| self.engine(e))?;
        Ok(())
    }

    /// The service's per-account states whose key starts with `prefix`, in key order.
    pub fn stream_states(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let t = self.sled().open_tree(STREAM_STATE)?;
        t.scan_prefix(prefix)
            .map(|kv| {
                kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(StoreError::from)
            })
            .collect()
    }

    /// Saves a view of the records table under `name`, replacing one of that name (durable when
    /// this returns).
    pub fn put_view(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_flushed(VIEWS, name, bytes)
    }

    /// A saved view by name.
    pub fn get_view(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.sled().open_tree(VIEWS)?;
        Ok(t.get(name.as_bytes())?.map(|v| v.to_vec()))
    }

    /// The saved views `(name, bytes)`, in name order.
    pub fn views(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let t = self.sled().open_tree(VIEWS)?;
        let mut out = Vec::new();
        for kv in t.iter() {
            let (k, v) = kv?;
            out.push((String::from_utf8_lossy(&k).to_string(), v.to_vec()));
        }
        Ok(out)
    }

    /// Deletes a saved view; whether there was one (durable when this returns).
    pub fn delete_view(&self, name: &str) -> Result<bool, StoreError> {
        let t = self.sled().open_tree(VIEWS).map_err(|e| self.engine(e))?;
        let had = t
            .remove(name.as_bytes())
            .map_err(|e| self.engine(e))?
            .is_some();
        t.flush().map_err(|e| self.engine(e))?;
        Ok(had)
    }

    /// Flushes every write to disk (the case operations do this themselves before returning).
    pub fn flush(&self) -> Result<(), StoreError> {
        if self.failed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Engine(
                "an earlier write failed; the store is not flushed again".into(),
            ));
        }
        self.sled().flush().map_err(|e| self.engine(e))?;
        Ok(())
    }

    /// The sled trees a case transaction works on: the plain case trees, then the packed ones.
    fn case_trees(&self) -> Result<Vec<sled::Tree>, StoreError> {
        let mut trees: Vec<sled::Tree> = CaseTree::RAW
            .iter()
            .map(|t| self.sled().open_tree(t.name()).map_err(StoreError::from))
            .collect::<Result<_, _>>()?;
        for p in Phys::ALL {
            trees.push(self.sled().open_tree(p.name())?);
        }
        Ok(trees)
    }

    /// Runs `body` as one atomic transaction over the case workflow's trees (and the outbox's,
    /// so that a dispatch and the cases it changes are written together), then flushes: when
    /// this returns `Ok`, every write of the transaction is on disk; when `body` aborts, nothing
    /// of it is written. `body` may run more than once (on a conflict with a concurrent
    /// transaction), so it must have no effect outside the transaction.
    pub(crate) fn case_transaction<R, E, F>(&self, body: F) -> Result<R, E>
    where
        E: From<StoreError>,
        F: Fn(&CaseTxn<'_>) -> Result<R, TxError<E>>,
    {
        self.case_transaction_in(None, body)
    }

    /// [`Store::case_transaction`] taking the index buckets it reads from `cache` when they are
    /// still as stored, and giving them back once written: for the transactions of one batch.
    ///
    /// A transaction holds sled's lock while it waits for work on rayon's threads (its cases
    /// built, its index entries put into their buckets, its values encoded, on every core). So
    /// no job on rayon's threads may touch sled: one waiting for that lock would wait forever.
    /// The case trees read sled on the calling thread only, and hand rayon decoded values.
    pub(crate) fn case_transaction_in<R, E, F>(
        &self,
        cache: Option<&BucketCache>,
        body: F,
    ) -> Result<R, E>
    where
        E: From<StoreError>,
        F: Fn(&CaseTxn<'_>) -> Result<R, TxError<E>>,
    {
        self.room()?;
        let trees = self.case_trees()?;
        let done: std::cell::RefCell<Option<Overlay>> = Default::default();
        let outcome = trees.as_slice().transaction(|views| {
            let txn = CaseTxn {
                trees: views,
                counters: Default::default(),
                paged: std::cell::RefCell::new(Overlay::cached(cache.cloned())),
            };
            let value = body(&txn).map_err(|err| match err {
                TxError::Abort(e) => ConflictableTransactionError::Abort(Stop::Caller(e)),
                TxError::Storage(s) => s.into_conflictable(),
            })?;
            txn.write_counters().map_err(TxStorage::into_conflictable)?;
            txn.write_paged().map_err(TxStorage::into_conflictable)?;
            *done.borrow_mut() = Some(txn.paged.take());
            Ok(value)
        });
        let value = match outcome {
            Ok(v) => v,
            Err(TransactionError::Abort(Stop::Caller(e))) => return Err(e),
            Err(TransactionError::Abort(Stop::Corrupt(m))) => {
                return Err(StoreError::Engine(m).into());
            }
            Err(TransactionError::Storage(e)) => return Err(self.engine(e).into()),
        };
        self.sled().flush().map_err(|e| self.engine(e))?;
        if let Some(mut written) = done.take() {
            written.give_back();
            written.drop_aside();
        }
        Ok(value)
    }

    /// One value of a case tree, outside any transaction.
    pub(crate) fn case_get(
        &self,
        tree: CaseTree,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.case_reader().get(tree, key)
    }

    /// A reader of the case trees that keeps what it decoded: for many lookups in a row (each
    /// sees the store as it was when it was first read).
    pub(crate) fn case_reader(&self) -> CaseReader<'_> {
        self.case_reader_in(None)
    }

    /// [`Store::case_reader`] sharing the buckets it decodes through `cache` (given back when
    /// the reader is dropped).
    pub(crate) fn case_reader_in(&self, cache: Option<&BucketCache>) -> CaseReader<'_> {
        CaseReader {
            store: self,
            seen: std::cell::RefCell::new(Overlay::cached(cache.cloned())),
        }
    }

    /// Overwrites the stored bytes of one case, as a damaged disk or an older program might have
    /// left them: for tests of how readers cope with an unreadable case. Nothing else calls it.
    #[doc(hidden)]
    pub fn overwrite_case_bytes(&self, case_id: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.case_transaction(|txn| {
            txn.insert(CaseTree::Cases, case_id.as_bytes(), bytes)?;
            Ok::<(), TxError<StoreError>>(())
        })
    }

    /// The entries of a case tree whose key starts with `prefix`, in key order (the cases: in
    /// the order they were first written).
    pub(crate) fn case_scan(
        &self,
        tree: CaseTree,
        prefix: &[u8],
    ) -> Result<Box<dyn Iterator<Item = Result<Entry, StoreError>>>, StoreError> {
        let logical = match tree.layout() {
            Layout::Raw => {
                let t = self.sled().open_tree(tree.name())?;
                return Ok(Box::new(t.scan_prefix(prefix).map(|kv| {
                    kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .map_err(StoreError::from)
                })));
            }
            Layout::Paged(l) => l,
        };
        match logical {
            Logical::Cases | Logical::Events => {
                let phys = if logical == Logical::Cases {
                    Phys::Pages
                } else {
                    Phys::Events
                };
                let prefix = prefix.to_vec();
                let t = self.sled().open_tree(phys.name())?;
                Ok(Box::new(t.iter().flat_map(move |kv| {
                    let page = kv.map_err(StoreError::from).and_then(|(_, v)| {
                        paged::Page::decode(&v).map_err(|c| StoreError::Engine(c.0))
                    });
                    let entries: Vec<Result<Entry, StoreError>> = match page {
                        Err(e) => vec![Err(e)],
                        Ok(page) => page
                            .entries
                            .into_iter()
                            .map(|(n, (id, body))| {
                                let key = if phys == Phys::Events {
                                    n.to_be_bytes().to_vec()
                                } else {
                                    id
                                };
                                (key, body)
                            })
                            .filter(|(k, _)| k.starts_with(&prefix))
                            .map(|(k, body)| match body {
                                paged::Body::Stored(b) => Ok((k, b)),
                                other => other
                                    .bytes()
                                    .map(|b| (k, b.into_owned()))
                                    .map_err(|c| StoreError::Engine(c.0)),
                            })
                            .collect(),
                    };
                    entries
                })))
            }
            Logical::Index(tag) => {
                let mut reader = self.case_reader();
                let found = reader.scan_index(tag, prefix)?;
                Ok(Box::new(found.into_iter().map(Ok)))
            }
        }
    }
}

/// The store holds ledger data and decisions: its directory is the owner's alone (0700) and its
/// files are readable and writable by the owner only (0600). Files sled creates later inherit
/// the umask, but the directory already keeps everyone else out.
#[cfg(unix)]
fn restrict_permissions(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_permissions(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Refuses when the disk holding `dir` has less than [`MIN_FREE_BYTES`] free (to the process).
fn check_room(dir: &Path) -> Result<(), StoreError> {
    match free_bytes(dir) {
        Some(free) if free < MIN_FREE_BYTES => Err(StoreError::DiskFull {
            path: dir.display().to_string(),
            free_kb: free / 1024,
            need_kb: MIN_FREE_BYTES / 1024,
        }),
        _ => Ok(()),
    }
}

/// Bytes free to an unprivileged writer on the file system of `dir` (None when unknown).
#[cfg(unix)]
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| (st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

#[cfg(test)]
mod tests;
