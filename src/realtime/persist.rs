//! Writing the state to the store and reading it back (or seeding it from the history file).

use super::StreamError;
use super::features::Past;
use super::state::{Shard, Stream, insert};
use crate::store::Store;
use std::collections::HashMap;

pub(super) fn state_key(profile: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(profile.len() + key.len() + 1);
    k.extend_from_slice(profile.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

impl Stream {
    /// An account's state from the backing store (None when it has none, or it is unreadable).
    pub(super) fn fetch(&self, store: &Store, profile: &str, key: &str) -> Option<Vec<Past>> {
        let k = state_key(profile, key);
        let found = store.stream_states(&k).ok()?;
        let (_, v) = found.into_iter().find(|(sk, _)| *sk == k)?;
        serde_json::from_slice(&v)
            .map_err(|e| tracing::warn!(account = %key, error = %e, "unreadable account state"))
            .ok()
    }

    /// Evicts the least recently used accounts of a shard beyond the memory bound, writing each
    /// changed one to the store first (one that cannot be written stays). `keep` is never evicted.
    pub(super) fn evict(&self, shard: &mut Shard, profile: &str, keep: &str) {
        let Some((store, bound)) = &self.backing else {
            return;
        };
        while shard.accounts.len() > *bound {
            let victim = shard
                .accounts
                .keys()
                .filter(|k| k.as_str() != keep)
                .min_by_key(|k| shard.used.get(k.as_str()).copied().unwrap_or(0))
                .cloned();
            let Some(victim) = victim else { return };
            if shard.dirty.contains(&victim) {
                let bytes = shard
                    .accounts
                    .get(&victim)
                    .map(|r| serde_json::to_vec(r).unwrap_or_default())
                    .unwrap_or_default();
                if let Err(e) = store.put_stream_states(&[(state_key(profile, &victim), bytes)]) {
                    tracing::warn!(error = %e, "an account state could not be written; kept in memory");
                    return;
                }
                shard.dirty.remove(&victim);
            }
            shard.accounts.remove(&victim);
            shard.used.remove(&victim);
        }
    }

    /// Writes the states changed since the last call to the store. Returns how many.
    pub fn persist(&self, store: &Store) -> Result<usize, crate::store::StoreError> {
        let profile = self.engine().profile.clone();
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for s in &self.shards {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            let dirty: Vec<String> = s.dirty.drain().collect();
            for k in dirty {
                if let Some(r) = s.accounts.get(&k) {
                    out.push((
                        state_key(&profile, &k),
                        serde_json::to_vec(r).unwrap_or_default(),
                    ));
                }
            }
        }
        let n = out.len();
        if n > 0 {
            store.put_stream_states(&out)?;
        }
        // Written: accounts beyond the memory bound (a seeded history) can go now.
        for s in &self.shards {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            self.evict(&mut s, &profile, "");
        }
        Ok(n)
    }

    /// Reads the states of the engine's profile back from the store (as many as the memory bound
    /// holds; the others are read when their records arrive). Returns how many accounts the
    /// store has; a state that cannot be read is logged and left out.
    pub fn load(&self, store: &Store) -> Result<usize, StreamError> {
        let profile = self.engine().profile.clone();
        let prefix = state_key(&profile, "");
        let mut n = 0;
        for (k, v) in store.stream_states(&prefix)? {
            let key = String::from_utf8_lossy(&k[prefix.len()..]).to_string();
            // One damaged state costs that account its context, not the service its start.
            let records: Vec<Past> = match serde_json::from_slice(&v) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(account = %key, error = %e, "unreadable account state left out");
                    continue;
                }
            };
            let mut shard = self.shard(&key);
            let room = self
                .backing
                .as_ref()
                .is_none_or(|(_, bound)| shard.accounts.len() < *bound);
            if room {
                shard.touch(&key);
                shard.accounts.insert(key, records);
            }
            n += 1;
        }
        Ok(n)
    }

    /// Seeds the state from a prepared table (the history file's rows): each account's records
    /// in date order, the last `cap` kept. Marks them to be persisted.
    pub fn seed(
        &self,
        df: &polars::prelude::DataFrame,
        resolved: &crate::profile::Resolved,
    ) -> Result<usize, String> {
        let rows = pasts_of_table(df, resolved).map_err(|e| e.to_string())?;
        let mut by_key: HashMap<String, Vec<Past>> = HashMap::new();
        for (k, p) in rows {
            by_key.entry(k).or_default().push(p);
        }
        let n = by_key.len();
        for (k, mut v) in by_key {
            // Stable: records of one date keep their file order.
            v.sort_by_key(|p| p.date.unwrap_or(i32::MIN));
            let mut records = Vec::with_capacity(v.len().min(self.cap));
            for p in v {
                insert(&mut records, p, self.cap);
            }
            let mut s = self.shard(&k);
            s.dirty.insert(k.clone());
            s.accounts.insert(k, records);
        }
        Ok(n)
    }
}

/// Each row of a prepared table as (account key, record).
pub(super) fn pasts_of_table(
    df: &polars::prelude::DataFrame,
    resolved: &crate::profile::Resolved,
) -> Result<Vec<(String, Past)>, polars::prelude::PolarsError> {
    use crate::features::column_f64;
    use crate::ingest::prepare::crit_col;
    use polars::prelude::*;
    let n = df.height();
    let f = |name: &str| -> Result<Vec<f64>, PolarsError> {
        column_f64(df, name).map_err(|e| PolarsError::ComputeError(e.to_string().into()))
    };
    let keys: Vec<String> = match df.column("bd_key") {
        Ok(c) => c
            .str()?
            .iter()
            .map(|v| v.unwrap_or("").to_string())
            .collect(),
        Err(_) => vec![String::new(); n],
    };
    let dates: Vec<Option<i32>> = match df.column("bd_date") {
        Ok(c) => c.to_physical_repr().i32()?.iter().collect(),
        Err(_) => vec![None; n],
    };
    let mut crit: Vec<[Vec<f64>; 4]> = Vec::new();
    for c in &resolved.criteria {
        let (l, r) = if c.is_pair() {
            (f(&crit_col(&c.name, "lhs"))?, f(&crit_col(&c.name, "rhs"))?)
        } else {
            (vec![f64::NAN; n], vec![f64::NAN; n])
        };
        crit.push([
            l,
            r,
            f(&crit_col(&c.name, "diff"))?,
            f(&crit_col(&c.name, "tol"))?,
        ]);
    }
    Ok((0..n)
        .map(|i| {
            let c: Vec<[f64; 4]> = crit
                .iter()
                .map(|v| [v[0][i], v[1][i], v[2][i], v[3][i]])
                .collect();
            let within = c.first().is_none_or(|c| c[2].abs() <= c[3] + 1e-9);
            (
                keys[i].clone(),
                Past {
                    date: dates[i],
                    crit: c,
                    within,
                },
            )
        })
        .collect())
}
