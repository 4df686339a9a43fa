//! The per-account state: each account's last records, sharded, and the current engine.

use super::Engine;
use super::features::Past;
use crate::store::Store;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};

pub(super) const SHARDS: usize = 64;

#[derive(Default)]
pub(super) struct Shard {
    pub(super) accounts: HashMap<String, Vec<Past>>,
    pub(super) dirty: HashSet<String>,
    /// When each account in memory was last used (a counter), to evict the least recent.
    pub(super) used: HashMap<String, u64>,
    clock: u64,
}

impl Shard {
    pub(super) fn touch(&mut self, key: &str) {
        self.clock += 1;
        match self.used.get_mut(key) {
            Some(t) => *t = self.clock,
            None => {
                self.used.insert(key.to_string(), self.clock);
            }
        }
    }
}

/// The per-account state and the current engine.
pub struct Stream {
    engine: RwLock<Arc<Engine>>,
    pub(super) shards: Vec<Mutex<Shard>>,
    /// Records kept per account.
    pub(super) cap: usize,
    /// Where accounts beyond the memory bound live, and that bound per shard.
    pub(super) backing: Option<(Arc<Store>, usize)>,
}

fn shard_of(key: &str) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

/// Inserts `p` among records sorted by date: after those dated on or before it; a record of the
/// same date is replaced (a restated record). Without dates, appended. Keeps the last `cap`.
pub(super) fn insert(records: &mut Vec<Past>, p: Past, cap: usize) {
    match p.date {
        Some(d) => {
            let pos = records.partition_point(|r| r.date.is_some_and(|x| x <= d));
            if pos > 0 && records[pos - 1].date == Some(d) {
                records[pos - 1] = p;
            } else {
                records.insert(pos, p);
            }
        }
        None => records.push(p),
    }
    if records.len() > cap {
        let extra = records.len() - cap;
        records.drain(..extra);
    }
}

/// The records before one dated `date`: those dated strictly earlier (all, without dates).
pub(super) fn before(records: &[Past], date: Option<i32>) -> &[Past] {
    match date {
        Some(d) => &records[..records.partition_point(|r| r.date.is_some_and(|x| x < d))],
        None => records,
    }
}

impl Stream {
    pub fn new(engine: Engine, cap: usize) -> Stream {
        Stream {
            engine: RwLock::new(Arc::new(engine)),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            cap: cap.max(1),
            backing: None,
        }
    }

    /// Keeps at most about `max_accounts` accounts in memory: the least recently used beyond
    /// that are written to `store` and dropped, and read back from it when a record of theirs
    /// arrives.
    pub fn with_backing(mut self, store: Arc<Store>, max_accounts: usize) -> Stream {
        self.backing = Some((store, max_accounts.div_ceil(SHARDS).max(1)));
        self
    }

    /// The current engine.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Swaps in a new engine (after a retrain); the state is kept.
    pub fn swap(&self, engine: Engine) {
        *self.engine.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(engine);
    }

    pub(super) fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[shard_of(key)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Number of accounts with a state.
    pub fn accounts(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).accounts.len())
            .sum()
    }

    /// The account's records kept (oldest first).
    pub fn state_of(&self, key: &str) -> Vec<Past> {
        self.shard(key)
            .accounts
            .get(key)
            .cloned()
            .unwrap_or_default()
    }
}
