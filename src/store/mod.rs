//! The embedded store (sled). Every sled call of the product lives in this module, behind our
//! own types, so the engine can be replaced without touching the rest.
//!
//! Layout: one sled database in `<data_dir>/store`, with named trees: models, llm_cache, the
//! case workflow's trees and the dispatch outbox's trees (outbox, outbox_pending, jira_keys; see
//! [`crate::notify`]), run summaries (`runs`) and the records table's saved views (`views`,
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

use std::path::{Path, PathBuf};

mod paged;

use paged::{IndexTag, Load, Logical, Overlay, PagedError, Phys};

use sled::Transactional;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};

/// The schema this build writes.
pub const SCHEMA_VERSION: u32 = 4;

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
        let meta = self.db.open_tree(META)?;
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
                    self.db.open_tree(p.name())?;
                }
                // A new store has no case to give an outstanding marker to: every case it will
                // hold gets one as it is written (see `crate::cases`).
                self.db
                    .open_tree(CaseTree::Seq.name())?
                    .insert(b"outstanding_indexed", b"1")?;
                meta.insert(b"schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                self.db.flush()?;
                Ok(())
            }
            // An older schema: the migrations run in order, each one recorded (and flushed) as it
            // completes, so an interrupted migration resumes where it stopped.
            Some(mut v) => {
                let from = v;
                while v < SCHEMA_VERSION {
                    // The step from v to v + 1 (1 → 2 adds the case trees, 2 → 3 the outbox's,
                    // 3 → 4 packs the case trees).
                    match v {
                        1 => self.create_trees(&CaseTree::V2)?,
                        2 => self.create_trees(&CaseTree::V3)?,
                        3 => self.pack_case_trees()?,
                        _ => {}
                    }
                    v += 1;
                    meta.insert(b"schema_version", &v.to_be_bytes())?;
                    self.db.flush()?;
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
            self.db.open_tree(tree.name())?;
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
            self.db.drop_tree(p.name())?;
            self.db.open_tree(p.name())?;
        }
        let load = DbLoad(self);
        let mut o = Overlay::default();
        let write = |o: &mut Overlay| -> Result<(), StoreError> {
            let changes = o.changed().map_err(|c| StoreError::Engine(c.0))?;
            for (tree, key, value) in changes {
                let t = self.db.open_tree(tree.name())?;
                match value {
                    Some(v) => t.insert(key, v)?,
                    None => t.remove(key)?,
                };
            }
            o.settle();
            Ok(())
        };
        let old = |t: CaseTree| self.db.open_tree(t.name());
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
        self.db.flush()?;
        Ok(())
    }

    /// After schema 4 is recorded: the trees it replaced are dropped.
    fn drop_unpacked_trees(&self) -> Result<(), StoreError> {
        for t in CaseTree::PACKED {
            self.db.drop_tree(t.name())?;
        }
        self.db.flush()?;
        Ok(())
    }

    /// The schema version recorded in the store (0 if none is).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let meta = self.db.open_tree(META)?;
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
        let t = self.db.open_tree(tree).map_err(|e| self.engine(e))?;
        t.insert(name.as_bytes(), bytes)
            .map_err(|e| self.engine(e))?;
        t.flush().map_err(|e| self.engine(e))?;
        Ok(())
    }

    /// Appends a run summary (durable when this returns); returns its sequence number.
    pub fn put_run(&self, bytes: &[u8]) -> Result<u64, StoreError> {
        self.room()?;
        let t = self.db.open_tree(RUNS).map_err(|e| self.engine(e))?;
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
        let t = self.db.open_tree(RUNS)?;
        let mut out = Vec::new();
        for kv in t.iter().rev().take(n) {
            out.push(kv?.1.to_vec());
        }
        Ok(out)
    }

    /// A saved model bundle by name.
    pub fn get_model(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.db.open_tree(MODELS)?;
        Ok(t.get(name.as_bytes())?.map(|v| v.to_vec()))
    }

    /// A cached LLM answer by its key (SHA-256 of prompt version, model and inputs).
    pub fn get_llm_answer(&self, key: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.db.open_tree(LLM_CACHE)?;
        Ok(t.get(key)?.map(|v| v.to_vec()))
    }

    /// Caches LLM answers (durable when this returns).
    pub fn put_llm_answers(&self, answers: &[([u8; 32], Vec<u8>)]) -> Result<(), StoreError> {
        if answers.is_empty() {
            return Ok(());
        }
        self.room()?;
        let t = self.db.open_tree(LLM_CACHE).map_err(|e| self.engine(e))?;
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
        Ok(self.db.open_tree(LLM_CACHE)?.len())
    }

    /// The names of the saved model bundles, in name order.
    pub fn model_names(&self) -> Result<Vec<String>, StoreError> {
        let t = self.db.open_tree(MODELS)?;
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
        let t = self.db.open_tree(STREAM_STATE)?;
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
        let t = self.db.open_tree(STREAM_STATE)?;
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
        let t = self.db.open_tree(VIEWS)?;
        Ok(t.get(name.as_bytes())?.map(|v| v.to_vec()))
    }

    /// The saved views `(name, bytes)`, in name order.
    pub fn views(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let t = self.db.open_tree(VIEWS)?;
        let mut out = Vec::new();
        for kv in t.iter() {
            let (k, v) = kv?;
            out.push((String::from_utf8_lossy(&k).to_string(), v.to_vec()));
        }
        Ok(out)
    }

    /// Deletes a saved view; whether there was one (durable when this returns).
    pub fn delete_view(&self, name: &str) -> Result<bool, StoreError> {
        let t = self.db.open_tree(VIEWS).map_err(|e| self.engine(e))?;
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
        self.db.flush().map_err(|e| self.engine(e))?;
        Ok(())
    }

    /// The sled trees a case transaction works on: the plain case trees, then the packed ones.
    fn case_trees(&self) -> Result<Vec<sled::Tree>, StoreError> {
        let mut trees: Vec<sled::Tree> = CaseTree::RAW
            .iter()
            .map(|t| self.db.open_tree(t.name()).map_err(StoreError::from))
            .collect::<Result<_, _>>()?;
        for p in Phys::ALL {
            trees.push(self.db.open_tree(p.name())?);
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
        self.room()?;
        let trees = self.case_trees()?;
        let outcome = trees.as_slice().transaction(|views| {
            let txn = CaseTxn {
                trees: views,
                counters: Default::default(),
                paged: Default::default(),
            };
            let value = body(&txn).map_err(|err| match err {
                TxError::Abort(e) => ConflictableTransactionError::Abort(Stop::Caller(e)),
                TxError::Storage(s) => s.into_conflictable(),
            })?;
            txn.write_counters().map_err(TxStorage::into_conflictable)?;
            txn.write_paged().map_err(TxStorage::into_conflictable)?;
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
        self.db.flush().map_err(|e| self.engine(e))?;
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
        CaseReader {
            store: self,
            seen: Default::default(),
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
                let t = self.db.open_tree(tree.name())?;
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
                let t = self.db.open_tree(phys.name())?;
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

/// Reads the packed trees from the database itself.
struct DbLoad<'a>(&'a Store);

impl Load for DbLoad<'_> {
    type Err = StoreError;
    fn load(&self, tree: Phys, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.0.db.open_tree(tree.name())?;
        Ok(t.get(key)?.map(|v| v.to_vec()))
    }
}

fn paged_store<T>(r: Result<T, PagedError<StoreError>>) -> Result<T, StoreError> {
    r.map_err(|e| match e {
        PagedError::Load(e) => e,
        PagedError::Corrupt(m) => StoreError::Engine(m),
    })
}

/// Stored values decoded once and read many times outside a transaction
/// ([`Store::case_reader`]).
pub(crate) struct CaseReader<'s> {
    store: &'s Store,
    seen: std::cell::RefCell<Overlay>,
}

impl CaseReader<'_> {
    /// One value of a case tree.
    pub(crate) fn get(&self, tree: CaseTree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match tree.layout() {
            Layout::Raw => {
                let t = self.store.db.open_tree(tree.name())?;
                Ok(t.get(key)?.map(|v| v.to_vec()))
            }
            Layout::Paged(l) => {
                paged_store(self.seen.borrow_mut().get(&DbLoad(self.store), l, key))
            }
        }
    }

    /// The stored cases of `ids`, read in the order of their slots, one page at a time (a page
    /// is decoded once and not kept): `f` gets each case's id and stored bytes. Ids without a
    /// case are skipped.
    pub(crate) fn for_each_case(
        &self,
        ids: &[Vec<u8>],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let load = DbLoad(self.store);
        let mut slots: Vec<(u64, usize)> = Vec::with_capacity(ids.len());
        {
            let mut seen = self.seen.borrow_mut();
            for (k, id) in ids.iter().enumerate() {
                if let Some(slot) = paged_store(seen.slot(&load, id))? {
                    slots.push((slot, k));
                }
            }
        }
        slots.sort_unstable();
        let mut at = 0;
        while at < slots.len() {
            let page_no = slots[at].0 / paged::CASES_PER_PAGE;
            let end = at
                + slots[at..]
                    .iter()
                    .take_while(|(s, _)| s / paged::CASES_PER_PAGE == page_no)
                    .count();
            let page = match load.load(Phys::Pages, &page_no.to_be_bytes())? {
                Some(bytes) => paged::Page::decode(&bytes).map_err(|c| StoreError::Engine(c.0))?,
                None => paged::Page::default(),
            };
            for (slot, k) in &slots[at..end] {
                match page.entries.get(slot) {
                    Some((id, body)) if *id == ids[*k] => {
                        let bytes = body.bytes().map_err(|c| StoreError::Engine(c.0))?;
                        f(id, &bytes)?;
                    }
                    // Not written yet (a transaction being applied): not there.
                    None => {}
                    Some((id, _)) => {
                        return Err(StoreError::Engine(format!(
                            "case {} is indexed at slot {slot}, which holds case {}",
                            String::from_utf8_lossy(&ids[*k]),
                            String::from_utf8_lossy(id)
                        )));
                    }
                }
            }
            at = end;
        }
        Ok(())
    }

    /// Whether a case tree holds `key` (a case: without reading it).
    pub(crate) fn contains(&self, tree: CaseTree, key: &[u8]) -> Result<bool, StoreError> {
        match tree.layout() {
            Layout::Raw => Ok(self.get(tree, key)?.is_some()),
            Layout::Paged(l) => {
                paged_store(self.seen.borrow_mut().contains(&DbLoad(self.store), l, key))
            }
        }
    }

    /// The entries of a case tree whose key starts with `prefix`, in key order.
    pub(crate) fn scan(&mut self, tree: CaseTree, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        match tree.layout() {
            Layout::Paged(Logical::Index(tag)) => self.scan_index(tag, prefix),
            _ => self.store.case_scan(tree, prefix)?.collect(),
        }
    }

    /// An index tree's entries under `prefix`: one bucket when the prefix chooses it, every
    /// bucket otherwise.
    fn scan_index(&mut self, tag: IndexTag, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let load = DbLoad(self.store);
        if let Some(found) = paged_store(self.seen.get_mut().scan_bucket(&load, tag, prefix))? {
            return Ok(found);
        }
        let t = self.store.db.open_tree(Phys::Index.name())?;
        let mut out = Vec::new();
        for kv in t.iter() {
            let (k, v) = kv?;
            if paged::bucket_number(&k).is_none() {
                continue;
            }
            let bucket = paged::Bucket::decode(v.to_vec()).map_err(|c| StoreError::Engine(c.0))?;
            out.extend(paged::scan_in(&bucket, tag, prefix));
        }
        out.sort();
        Ok(out)
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

/// The trees of the case workflow and of its dispatch outbox. Their keys and values are the
/// business of [`crate::cases`] and [`crate::notify`]; the store only keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CaseTree {
    /// case id → case.
    Cases,
    /// ticket → case id.
    Tickets,
    /// profile, key and start date of a break → case id.
    BreakIndex,
    /// event sequence number (big-endian u64) → event.
    Events,
    /// case id and event sequence number → nothing (the events of one case).
    CaseEvents,
    /// case id → training label of a decided case.
    Feedback,
    /// counter name → last value handed out (big-endian u64).
    Seq,
    /// outbox item id (big-endian u64) → outbox item (schema 3).
    Outbox,
    /// outbox item id (big-endian u64) → nothing, for the items not yet settled (schema 3).
    OutboxPending,
    /// deterministic break key (the Jira label) → Jira issue key (schema 3).
    JiraKeys,
}

impl CaseTree {
    /// Every case tree (the packed ones as schema 3 kept them).
    #[cfg(test)]
    const ALL: [CaseTree; 10] = [
        CaseTree::Cases,
        CaseTree::Tickets,
        CaseTree::BreakIndex,
        CaseTree::Events,
        CaseTree::CaseEvents,
        CaseTree::Feedback,
        CaseTree::Seq,
        CaseTree::Outbox,
        CaseTree::OutboxPending,
        CaseTree::JiraKeys,
    ];

    /// The trees schema 2 added.
    const V2: [CaseTree; 7] = [
        CaseTree::Cases,
        CaseTree::Tickets,
        CaseTree::BreakIndex,
        CaseTree::Events,
        CaseTree::CaseEvents,
        CaseTree::Feedback,
        CaseTree::Seq,
    ];

    /// The trees schema 3 added.
    const V3: [CaseTree; 3] = [
        CaseTree::Outbox,
        CaseTree::OutboxPending,
        CaseTree::JiraKeys,
    ];

    fn name(self) -> &'static str {
        match self {
            CaseTree::Cases => "cases",
            CaseTree::Tickets => "tickets",
            CaseTree::BreakIndex => "break_index",
            CaseTree::Events => "events",
            CaseTree::CaseEvents => "case_events",
            CaseTree::Feedback => "feedback",
            CaseTree::Seq => "seq",
            CaseTree::Outbox => "outbox",
            CaseTree::OutboxPending => "outbox_pending",
            CaseTree::JiraKeys => "jira_keys",
        }
    }

    /// The trees kept one entry per key (the others are packed).
    const RAW: [CaseTree; 5] = [
        CaseTree::Feedback,
        CaseTree::Seq,
        CaseTree::Outbox,
        CaseTree::OutboxPending,
        CaseTree::JiraKeys,
    ];

    /// The trees schema 4 packs (and drops once they are copied).
    const PACKED: [CaseTree; 5] = [
        CaseTree::Cases,
        CaseTree::Tickets,
        CaseTree::BreakIndex,
        CaseTree::Events,
        CaseTree::CaseEvents,
    ];

    fn layout(self) -> Layout {
        match self {
            CaseTree::Cases => Layout::Paged(Logical::Cases),
            CaseTree::Events => Layout::Paged(Logical::Events),
            CaseTree::Tickets => Layout::Paged(Logical::Index(IndexTag::Tickets)),
            CaseTree::BreakIndex => Layout::Paged(Logical::Index(IndexTag::BreakIndex)),
            CaseTree::CaseEvents => Layout::Paged(Logical::Index(IndexTag::CaseEvents)),
            CaseTree::Feedback
            | CaseTree::Seq
            | CaseTree::Outbox
            | CaseTree::OutboxPending
            | CaseTree::JiraKeys => Layout::Raw,
        }
    }

    /// The position of a plain tree among a transaction's trees.
    fn raw_index(self) -> Option<usize> {
        CaseTree::RAW.iter().position(|t| *t == self)
    }
}

/// How a case tree is stored.
#[derive(Clone, Copy)]
enum Layout {
    /// A sled tree of its own, one entry per key.
    Raw,
    /// Packed ([`paged`]).
    Paged(Logical),
}

/// Reads the packed trees through a transaction's views.
struct TxLoad<'a>(&'a [TransactionalTree]);

impl Load for TxLoad<'_> {
    type Err = UnabortableTransactionError;
    fn load(&self, tree: Phys, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Err> {
        let at = CaseTree::RAW.len() + Phys::ALL.iter().position(|p| *p == tree).unwrap_or(0);
        Ok(self.0[at].get(key)?.map(|v| v.to_vec()))
    }
}

/// The case trees inside one transaction of [`Store::case_transaction`]. Reads see the
/// transaction's own writes.
pub(crate) struct CaseTxn<'a> {
    trees: &'a [TransactionalTree],
    /// The counters (values of the `seq` tree) this transaction advanced: each is read once
    /// and written once, when the transaction's body is done, however often it is advanced.
    counters: std::cell::RefCell<Vec<(Vec<u8>, u64)>>,
    /// The packed values this transaction read, decoded, with its changes: written once, when
    /// the body is done.
    paged: std::cell::RefCell<Overlay>,
}

impl CaseTxn<'_> {
    fn raw(&self, tree: CaseTree) -> &TransactionalTree {
        &self.trees[tree.raw_index().unwrap_or(0)]
    }

    /// One value.
    pub(crate) fn get(&self, tree: CaseTree, key: &[u8]) -> Result<Option<Vec<u8>>, TxStorage> {
        match tree.layout() {
            Layout::Raw => Ok(self.raw(tree).get(key)?.map(|v| v.to_vec())),
            Layout::Paged(l) => tx_paged(self.paged.borrow_mut().get(&TxLoad(self.trees), l, key)),
        }
    }

    /// Writes one value.
    pub(crate) fn insert(&self, tree: CaseTree, key: &[u8], value: &[u8]) -> Result<(), TxStorage> {
        match tree.layout() {
            Layout::Raw => {
                self.raw(tree).insert(key, value)?;
                Ok(())
            }
            Layout::Paged(l) => tx_paged(self.paged.borrow_mut().insert(
                &TxLoad(self.trees),
                l,
                key,
                value.to_vec(),
            )),
        }
    }

    /// Writes one value of the cases or events, encoded by `encode` when the transaction's
    /// changes are written (in parallel with the others) rather than now.
    pub(crate) fn insert_later(
        &self,
        tree: CaseTree,
        key: &[u8],
        encode: paged::Later,
    ) -> Result<(), TxStorage> {
        match tree.layout() {
            Layout::Paged(l) => tx_paged(self.paged.borrow_mut().insert_body(
                &TxLoad(self.trees),
                l,
                key,
                paged::Body::Later(encode),
            )),
            Layout::Raw => {
                let value = encode().map_err(TxStorage::Corrupt)?;
                self.insert(tree, key, &value)
            }
        }
    }

    /// Removes one value (absent is fine).
    pub(crate) fn remove(&self, tree: CaseTree, key: &[u8]) -> Result<(), TxStorage> {
        match tree.layout() {
            Layout::Raw => {
                self.raw(tree).remove(key)?;
                Ok(())
            }
            Layout::Paged(l) => {
                tx_paged(self.paged.borrow_mut().remove(&TxLoad(self.trees), l, key))
            }
        }
    }

    /// Writes back the packed values the transaction changed.
    fn write_paged(&self) -> Result<(), TxStorage> {
        let changes = self
            .paged
            .borrow()
            .changed()
            .map_err(|c| TxStorage::Corrupt(c.0))?;
        let base = CaseTree::RAW.len();
        for (tree, key, value) in changes {
            let at = base + Phys::ALL.iter().position(|p| *p == tree).unwrap_or(0);
            match value {
                Some(v) => self.trees[at].insert(key, v)?,
                None => self.trees[at].remove(key)?,
            };
        }
        Ok(())
    }

    /// The value this transaction gave the counter `name` (a key of the `seq` tree), if it
    /// advanced it.
    pub(crate) fn counter(&self, name: &[u8]) -> Option<u64> {
        self.counters
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// Advances the counter `name` to `value`; written to the `seq` tree at the end of the
    /// transaction.
    pub(crate) fn set_counter(&self, name: &[u8], value: u64) {
        let mut counters = self.counters.borrow_mut();
        match counters.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => counters.push((name.to_vec(), value)),
        }
    }

    fn write_counters(&self) -> Result<(), TxStorage> {
        for (name, value) in self.counters.borrow().iter() {
            self.insert(CaseTree::Seq, name, &value.to_be_bytes())?;
        }
        Ok(())
    }
}

/// A storage failure or conflict inside a transaction, or a stored value that cannot be read;
/// the store handles it (a conflict runs the transaction again).
pub(crate) enum TxStorage {
    Engine(UnabortableTransactionError),
    Corrupt(String),
}

impl From<UnabortableTransactionError> for TxStorage {
    fn from(e: UnabortableTransactionError) -> Self {
        TxStorage::Engine(e)
    }
}

impl TxStorage {
    fn into_conflictable<E>(self) -> ConflictableTransactionError<Stop<E>> {
        match self {
            TxStorage::Engine(u) => u.into(),
            TxStorage::Corrupt(m) => ConflictableTransactionError::Abort(Stop::Corrupt(m)),
        }
    }
}

/// Why a case transaction stopped without writing.
enum Stop<E> {
    /// The body's reason.
    Caller(E),
    /// A stored value could not be read or written.
    Corrupt(String),
}

fn tx_paged<T>(r: Result<T, PagedError<UnabortableTransactionError>>) -> Result<T, TxStorage> {
    r.map_err(|e| match e {
        PagedError::Load(u) => TxStorage::Engine(u),
        PagedError::Corrupt(m) => TxStorage::Corrupt(m),
    })
}

/// How the body of a case transaction stops early: its own reason to write nothing, or a
/// storage failure.
pub(crate) enum TxError<E> {
    /// Nothing is written and the caller gets this error.
    Abort(E),
    /// Handled by the store.
    Storage(TxStorage),
}

impl<E> TxError<E> {
    /// The same stop with the caller's reason converted (a storage failure stays one).
    pub(crate) fn map_abort<F>(self, f: impl FnOnce(E) -> F) -> TxError<F> {
        match self {
            TxError::Abort(e) => TxError::Abort(f(e)),
            TxError::Storage(s) => TxError::Storage(s),
        }
    }
}

impl<E> From<TxStorage> for TxError<E> {
    fn from(e: TxStorage) -> Self {
        TxError::Storage(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes, with sled alone, a store as an older build left it: the schema `version` in
    /// meta, the `trees` that version had (empty) and the `entries` (tree name, key, value).
    fn old_store(dir: &Path, version: u32, trees: &[CaseTree], entries: &[(&str, &[u8], &[u8])]) {
        let db = sled::Config::new().path(dir.join("store")).open().unwrap();
        db.open_tree(META)
            .unwrap()
            .insert(b"schema_version", &version.to_be_bytes())
            .unwrap();
        for tree in trees {
            db.open_tree(tree.name()).unwrap();
        }
        for (tree, k, v) in entries {
            db.open_tree(tree).unwrap().insert(k, *v).unwrap();
        }
        db.flush().unwrap();
    }

    fn tree_names(db: &sled::Db) -> Vec<String> {
        db.tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).to_string())
            .collect()
    }

    #[test]
    fn models_persist_across_reopen_with_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
            s.put_model("gl_ihub", b"{\"x\":1}").unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.get_model("gl_ihub").unwrap().unwrap(), b"{\"x\":1}");
        assert_eq!(s.get_model("trades").unwrap(), None);
        assert_eq!(s.model_names().unwrap(), vec!["gl_ihub"]);
    }

    #[test]
    fn views_persist_across_reopen_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            assert!(s.views().unwrap().is_empty());
            s.put_view("b", b"{}").unwrap();
            s.put_view("a", b"{\"sort\":\"x\"}").unwrap();
            s.put_view("a", b"{\"sort\":\"y\"}").unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.views().unwrap(),
            vec![
                ("a".to_string(), b"{\"sort\":\"y\"}".to_vec()),
                ("b".to_string(), b"{}".to_vec())
            ]
        );
        assert_eq!(s.get_view("b").unwrap().unwrap(), b"{}");
        assert!(s.delete_view("b").unwrap());
        assert!(!s.delete_view("b").unwrap());
        assert_eq!(s.get_view("b").unwrap(), None);
        assert_eq!(s.views().unwrap().len(), 1);
    }

    #[test]
    fn a_second_open_while_held_says_the_store_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _held = Store::open(dir.path()).unwrap();
        // sled locks the database file; a second open from this process sees the same lock a
        // second process would.
        match Store::open(dir.path()) {
            Err(StoreError::Locked { path }) => assert!(path.ends_with("store")),
            Err(e) => panic!("expected Locked, got {e}"),
            Ok(_) => panic!("expected the second open to be refused"),
        }
    }

    #[test]
    fn a_version_1_layout_is_migrated_with_its_models() {
        let dir = tempfile::tempdir().unwrap();
        // What version 1 wrote: the version in meta, models and cached answers, no case trees.
        old_store(dir.path(), 1, &[], &[(MODELS, b"gl_ihub", b"bundle")]);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(s.get_model("gl_ihub").unwrap().unwrap(), b"bundle");
        let names = tree_names(&s.db);
        for tree in CaseTree::RAW {
            assert!(
                names.iter().any(|n| n == tree.name()),
                "{tree:?} in {names:?}"
            );
        }
        for p in Phys::ALL {
            assert!(names.iter().any(|n| n == p.name()), "{p:?} in {names:?}");
        }
        // The trees schema 4 packs are gone once they are copied.
        for tree in CaseTree::PACKED {
            assert!(
                !names.iter().any(|n| n == tree.name()),
                "{tree:?} in {names:?}"
            );
        }
    }

    #[test]
    fn a_version_2_store_gains_the_outbox_trees_and_keeps_its_cases() {
        let dir = tempfile::tempdir().unwrap();
        // What version 2 wrote: the version in meta, a model and the case trees with content,
        // no outbox trees.
        old_store(
            dir.path(),
            2,
            &CaseTree::V2,
            &[
                (MODELS, b"gl_ihub", b"bundle"),
                ("cases", b"C-1", b"{}"),
                ("seq", b"ticket", &7u64.to_be_bytes()),
            ],
        );
        {
            let db = sled::Config::new()
                .path(dir.path().join("store"))
                .open()
                .unwrap();
            let names = tree_names(&db);
            assert!(!names.iter().any(|n| n == "outbox"), "{names:?}");
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(s.get_model("gl_ihub").unwrap().unwrap(), b"bundle");
        assert_eq!(s.case_get(CaseTree::Cases, b"C-1").unwrap().unwrap(), b"{}");
        assert_eq!(
            s.case_get(CaseTree::Seq, b"ticket").unwrap().unwrap(),
            7u64.to_be_bytes()
        );
        let names = tree_names(&s.db);
        for tree in CaseTree::V3 {
            assert!(
                names.iter().any(|n| n == tree.name()),
                "{tree:?} in {names:?}"
            );
        }
        assert!(!names.iter().any(|n| n == "cases"), "{names:?}");
        // The new trees take part in case transactions at once.
        let r: Result<(), StoreError> = s.case_transaction(|txn| {
            txn.insert(CaseTree::Outbox, b"o", b"1")?;
            txn.insert(CaseTree::JiraKeys, b"k", b"RECON-1")?;
            Ok(())
        });
        r.unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(s.case_get(CaseTree::Outbox, b"o").unwrap().unwrap(), b"1");
        assert_eq!(
            s.case_get(CaseTree::JiraKeys, b"k").unwrap().unwrap(),
            b"RECON-1"
        );
    }

    #[test]
    fn a_case_transaction_writes_all_or_nothing_and_flushes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            let r: Result<(), StoreError> = s.case_transaction(|txn| {
                txn.insert(CaseTree::Cases, b"a", b"1")?;
                txn.insert(CaseTree::Events, &7u64.to_be_bytes(), b"2")?;
                Ok(())
            });
            r.unwrap();
            let r: Result<(), StoreError> = s.case_transaction(|txn| {
                txn.insert(CaseTree::Cases, b"c", b"3")?;
                Err(TxError::Abort(StoreError::Engine("refused".into())))
            });
            assert_eq!(r.unwrap_err().to_string(), "store error: refused");
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.case_get(CaseTree::Cases, b"a").unwrap().unwrap(), b"1");
        assert_eq!(
            s.case_get(CaseTree::Events, &7u64.to_be_bytes())
                .unwrap()
                .unwrap(),
            b"2"
        );
        assert_eq!(s.case_get(CaseTree::Cases, b"c").unwrap(), None);
        let all: Vec<Entry> = s
            .case_scan(CaseTree::Cases, b"")
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(all, vec![(b"a".to_vec(), b"1".to_vec())]);
    }

    #[test]
    fn a_version_3_store_is_packed_and_reads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let marker = b"gl\0A|1\0~open~C-b".to_vec();
        let old: Vec<(CaseTree, Vec<u8>, Vec<u8>)> = vec![
            (CaseTree::Cases, b"C-a".to_vec(), b"{\"n\":1}".to_vec()),
            (CaseTree::Cases, b"C-b".to_vec(), b"{\"n\":2}".to_vec()),
            (CaseTree::Cases, b"C-orphan".to_vec(), b"{}".to_vec()),
            (
                CaseTree::Tickets,
                b"BRK-20240102-000002".to_vec(),
                b"C-a".to_vec(),
            ),
            (
                CaseTree::Tickets,
                b"BRK-20240101-000001".to_vec(),
                b"C-b".to_vec(),
            ),
            (
                CaseTree::BreakIndex,
                b"gl\0A|1\x002024-01-01".to_vec(),
                b"C-b".to_vec(),
            ),
            (
                CaseTree::BreakIndex,
                b"gl\0A|2\x002024-01-02".to_vec(),
                b"C-a".to_vec(),
            ),
            (CaseTree::BreakIndex, marker.clone(), b"C-b".to_vec()),
            (
                CaseTree::Events,
                1u64.to_be_bytes().to_vec(),
                b"{\"e\":1}".to_vec(),
            ),
            (
                CaseTree::Events,
                2u64.to_be_bytes().to_vec(),
                b"{\"e\":2}".to_vec(),
            ),
            (
                CaseTree::CaseEvents,
                [&b"C-b\0"[..], &1u64.to_be_bytes()].concat(),
                Vec::new(),
            ),
            (
                CaseTree::CaseEvents,
                [&b"C-a\0"[..], &2u64.to_be_bytes()].concat(),
                Vec::new(),
            ),
            (
                CaseTree::Feedback,
                b"C-a".to_vec(),
                b"{\"label\":true}".to_vec(),
            ),
            (
                CaseTree::Seq,
                b"ticket".to_vec(),
                2u64.to_be_bytes().to_vec(),
            ),
        ];
        // What version 3 wrote: one sled entry per key in every case tree.
        let entries: Vec<(&str, &[u8], &[u8])> = old
            .iter()
            .map(|(t, k, v)| (t.name(), k.as_slice(), v.as_slice()))
            .collect();
        old_store(dir.path(), 3, &CaseTree::ALL, &entries);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        for (tree, k, v) in &old {
            assert_eq!(
                s.case_get(*tree, k).unwrap().as_ref(),
                Some(v),
                "{tree:?} {}",
                String::from_utf8_lossy(k)
            );
        }
        // Cases in ticket order (the order they were opened), then the one without a ticket.
        let ids: Vec<Vec<u8>> = s
            .case_scan(CaseTree::Cases, b"")
            .unwrap()
            .map(|kv| kv.unwrap().0)
            .collect();
        assert_eq!(
            ids,
            vec![b"C-b".to_vec(), b"C-a".to_vec(), b"C-orphan".to_vec()]
        );
        // Scans by account and across the profile find the same entries as before.
        let account: Vec<Vec<u8>> = s
            .case_scan(CaseTree::BreakIndex, b"gl\0A|1\0")
            .unwrap()
            .map(|kv| kv.unwrap().0)
            .collect();
        assert_eq!(
            account,
            vec![b"gl\0A|1\x002024-01-01".to_vec(), marker.clone()]
        );
        let profile: Vec<Vec<u8>> = s
            .case_scan(CaseTree::BreakIndex, b"gl\0")
            .unwrap()
            .map(|kv| kv.unwrap().0)
            .collect();
        assert_eq!(profile.len(), 3);
        let events: Vec<Vec<u8>> = s
            .case_scan(CaseTree::Events, b"")
            .unwrap()
            .map(|kv| kv.unwrap().1)
            .collect();
        assert_eq!(events, vec![b"{\"e\":1}".to_vec(), b"{\"e\":2}".to_vec()]);
        let names = tree_names(&s.db);
        for tree in CaseTree::PACKED {
            assert!(
                !names.iter().any(|n| n == tree.name()),
                "{tree:?} in {names:?}"
            );
        }
        // A new case after the migration takes the next slot.
        let r: Result<(), StoreError> = s.case_transaction(|txn| {
            txn.insert(CaseTree::Cases, b"C-new", b"{}")?;
            Ok(())
        });
        r.unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        let ids: Vec<Vec<u8>> = s
            .case_scan(CaseTree::Cases, b"")
            .unwrap()
            .map(|kv| kv.unwrap().0)
            .collect();
        assert_eq!(ids.last().unwrap(), b"C-new");
        assert_eq!(ids.len(), 4);
    }

    #[test]
    fn a_damaged_page_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let r: Result<(), StoreError> = s.case_transaction(|txn| {
            txn.insert(CaseTree::Cases, b"C-1", b"{}")?;
            Ok(())
        });
        r.unwrap();
        let pages = s.db.open_tree(Phys::Pages.name()).unwrap();
        let (k, v) = pages.iter().next().unwrap().unwrap();
        pages.insert(k, &v[..v.len() / 2]).unwrap();
        let e = s.case_get(CaseTree::Cases, b"C-1").unwrap_err().to_string();
        assert!(e.contains("page"), "{e}");
        let r: Result<(), StoreError> = s.case_transaction(|txn| {
            txn.insert(CaseTree::Cases, b"C-1", b"{\"n\":1}")?;
            Ok(())
        });
        let e = r.unwrap_err().to_string();
        assert!(e.contains("page"), "{e}");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            let meta = s.db.open_tree(META).unwrap();
            meta.insert(b"schema_version", &(SCHEMA_VERSION + 1).to_be_bytes())
                .unwrap();
            s.db.flush().unwrap();
        }
        let e = Store::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("newer breakdesk"), "{e}");
    }
}
