//! Scoring records one at a time, as they arrive (the service's realtime route).
//!
//! Each account keeps its last records (its *state*); a record's features are computed against
//! the records of its account dated before it, with the formulas of [`crate::features`], and the
//! record then joins the state. A stream of records therefore scores as a daily batch run would,
//! with everything before the day as history. Flagged records are categorized by the same rules
//! (and LLM, when configured) and recorded as cases like a file's anomalies.
//!
//! The state lives in memory, sharded by account, and is written to the store about once a
//! second ([`Stream::persist`]); at start it is read back, or seeded from the history file.

pub mod features;
pub mod record;

use crate::config::Config;
use crate::detect::matrix::Matrix;
use crate::detect::model::ModelBundle;
use crate::store::Store;
use features::{Past, Plan};
use record::{Canonical, FieldError, RecordReader};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};

const SHARDS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("scoring failed: {0}")]
    Model(String),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// The model and how records are read: swapped as a whole when a retrain finishes.
pub struct Engine {
    pub profile: String,
    pub reader: RecordReader,
    pub plan: Plan,
    pub bundle: ModelBundle,
    pub version: String,
    /// How the model was obtained (loaded, trained because missing, …).
    pub status: String,
    /// The triage's thresholds.
    pub triage: crate::detect::triage::TriageParams,
    /// The rules file (its explanations quiet the breaks a comment explains).
    pub rules: crate::categorize::RulesFile,
}

impl Engine {
    pub fn new(
        cfg: &Config,
        resolved: crate::profile::Resolved,
        bundle: ModelBundle,
        status: String,
    ) -> Result<Engine, String> {
        let plan = Plan::new(
            &resolved,
            bundle.preset,
            cfg.features.rolling_window,
            cfg.features.rolling_min_periods,
            &crate::features::routine_params(&cfg.features),
            &bundle.feature_names,
            &bundle.encoders,
        )?;
        Ok(Engine {
            profile: resolved.profile.name.clone(),
            reader: RecordReader::new(resolved, &cfg.ingest).with_limits(record::RecordLimits {
                max_fields: cfg.service.max_record_fields,
                max_chars: cfg.service.max_field_chars,
            }),
            plan,
            version: bundle.version(),
            bundle,
            status,
            triage: crate::pipeline::triage_params(cfg),
            rules: crate::pipeline::rules_file(cfg).map_err(|e| e.to_string())?,
        })
    }
}

/// One scored record.
#[derive(Debug, Clone)]
pub struct Observed {
    pub record: Canonical,
    pub features: Vec<f64>,
    pub score: f64,
    pub model_score: f64,
    pub decision: f64,
    pub flag: bool,
    /// A break its comment explains, proposed for auto-resolution: a case is opened although it
    /// is not flagged.
    pub proposed: bool,
    /// Why the record is not a candidate (None: a break nothing explains).
    pub quiet: Option<crate::detect::triage::Quiet>,
    /// How unusual the record's unexplained part is for its account.
    pub own_z: f64,
    pub cluster: usize,
    pub top_features: String,
    /// The run context (`runs::RUN_COLUMNS`), for flagged records.
    pub run_context: Option<Vec<f64>>,
    /// How many earlier records of the account the features saw.
    pub previous: usize,
    /// Days since the record's break began (`f_break_age` of a file run; 0 within tolerance).
    pub break_age: f64,
    pub model_version: String,
}

#[derive(Default)]
struct Shard {
    accounts: HashMap<String, Vec<Past>>,
    dirty: HashSet<String>,
    /// When each account in memory was last used (a counter), to evict the least recent.
    used: HashMap<String, u64>,
    clock: u64,
}

impl Shard {
    fn touch(&mut self, key: &str) {
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
    shards: Vec<Mutex<Shard>>,
    /// Records kept per account.
    cap: usize,
    /// Where accounts beyond the memory bound live, and that bound per shard.
    backing: Option<(Arc<Store>, usize)>,
}

fn shard_of(key: &str) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

fn state_key(profile: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(profile.len() + key.len() + 1);
    k.extend_from_slice(profile.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// Inserts `p` among records sorted by date: after those dated on or before it; a record of the
/// same date is replaced (a restated record). Without dates, appended. Keeps the last `cap`.
fn insert(records: &mut Vec<Past>, p: Past, cap: usize) {
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

/// Why a record is not a triage candidate, as the file pipeline decides it
/// ([`crate::pipeline::triage_inputs`]): within tolerance, or routine for its account.
fn quiet_of(
    me: &Past,
    rec: &Canonical,
    own: Option<&crate::routine::Own>,
) -> Option<crate::detect::triage::Quiet> {
    use crate::detect::triage::Quiet;
    if rec.crit.is_empty() {
        return None;
    }
    if !me.is_break() {
        return Some(Quiet::WithinTolerance);
    }
    own.and_then(|o| o.routine).map(Quiet::Routine)
}

/// The records before one dated `date`: those dated strictly earlier (all, without dates).
fn before(records: &[Past], date: Option<i32>) -> &[Past] {
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

    /// An account's state from the backing store (None when it has none, or it is unreadable).
    fn fetch(&self, store: &Store, profile: &str, key: &str) -> Option<Vec<Past>> {
        let k = state_key(profile, key);
        let found = store.stream_states(&k).ok()?;
        let (_, v) = found.into_iter().find(|(sk, _)| *sk == k)?;
        serde_json::from_slice(&v)
            .map_err(|e| tracing::warn!(account = %key, error = %e, "unreadable account state"))
            .ok()
    }

    /// Evicts the least recently used accounts of a shard beyond the memory bound, writing each
    /// changed one to the store first (one that cannot be written stays). `keep` is never evicted.
    fn evict(&self, shard: &mut Shard, profile: &str, keep: &str) {
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

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Shard> {
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

    /// Reads one record, scores it against its account's earlier records and adds it to the
    /// state. Nothing changes when the record cannot be read.
    pub fn observe(
        &self,
        record: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Observed, StreamError> {
        let engine = self.engine();
        let rec = engine.reader.read(record)?;
        let me = Past::of(&rec);
        let mut shard = self.shard(&rec.key);
        if !shard.accounts.contains_key(&rec.key)
            && let Some((store, _)) = &self.backing
            && let Some(records) = self.fetch(store, &engine.profile, &rec.key)
        {
            shard.accounts.insert(rec.key.clone(), records);
        }
        shard.touch(&rec.key);
        let records = shard.accounts.entry(rec.key.clone()).or_default();
        let prev = before(records, rec.date);
        let own = engine.plan.own(&me, prev);
        let features = engine.plan.compute_with(&rec, &me, prev, own.as_ref());
        let x = Matrix::new(1, features.len(), features.clone()).map_err(StreamError::Model)?;
        let own_me = own.as_ref().and_then(|o| o.me().copied());
        let mut quiet = quiet_of(&me, &rec, own_me.as_ref());
        let mut proposed = false;
        if quiet.is_none()
            && !rec.crit.is_empty()
            && rec.dq.is_empty()
            && let Some(e) = engine
                .rules
                .explanation(&engine.profile, rec.comment.as_deref().unwrap_or(""))
        {
            quiet = Some(crate::detect::triage::Quiet::Explained);
            proposed = engine.rules.explained_auto_resolves(e);
        }
        let own_z = own_me.map_or(0.0, |o| o.own_z);
        let s = engine
            .bundle
            .score_triaged(
                &x,
                None,
                false,
                Some(crate::detect::model::Triage {
                    quiet: &[quiet],
                    own_z: &[own_z],
                    params: &engine.triage,
                }),
            )
            .map_err(|e| StreamError::Model(e.to_string()))?;
        let flag = s.flag[0];
        let run_context = (flag || proposed).then(|| features::run_context(&me, prev));
        let previous = prev.len();
        let break_age = engine.plan.break_age(&rec, &me, prev);
        insert(records, me, self.cap);
        if !shard.dirty.contains(&rec.key) {
            shard.dirty.insert(rec.key.clone());
        }
        self.evict(&mut shard, &engine.profile, &rec.key);
        drop(shard);
        let top_features =
            crate::detect::model::top_attributions(&s.attributions[0], &engine.plan.names, 3);
        Ok(Observed {
            record: rec,
            features,
            score: s.score[0],
            model_score: s.model[0],
            decision: s.decision[0],
            flag,
            proposed,
            quiet,
            own_z,
            cluster: s.cluster[0],
            top_features,
            run_context,
            previous,
            break_age,
            model_version: engine.version.clone(),
        })
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
fn pasts_of_table(
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

/// What the service answers for a record.
#[derive(Debug, Clone, Serialize)]
pub struct RecordResult {
    pub profile: String,
    pub key: String,
    pub date: Option<String>,
    /// The triage score (lower ranks first; see docs/detection.md, "Triage").
    pub score: f64,
    /// The detector's own score.
    pub model_score: f64,
    pub decision: f64,
    pub is_anomaly: bool,
    /// Why the record is not flagged whatever its score: "within tolerance", "routine: standing
    /// item" (or another pattern of the account), "explained by its comment"; null for a break
    /// nothing explains.
    pub quiet: Option<String>,
    /// How unusual the record's unexplained part is for its account (0 without enough history).
    pub own_z: f64,
    pub cluster: usize,
    pub top_features: String,
    /// The features by name.
    pub features: serde_json::Map<String, serde_json::Value>,
    /// Earlier records of the account the features saw.
    pub previous_records: usize,
    pub bucket: Option<String>,
    pub bucket_confidence: Option<f64>,
    pub bucket_rule: Option<String>,
    pub severity: Option<String>,
    pub summary: Option<String>,
    pub auto_resolve: Option<bool>,
    pub categorized_by: Option<String>,
    pub case_id: Option<String>,
    pub ticket: Option<String>,
    pub case_status: Option<String>,
    pub data_quality: Vec<String>,
    pub model_version: String,
}

fn date_text(d: Option<i32>) -> Option<String> {
    d.and_then(crate::ingest::clean::days_to_date)
        .map(|d| d.format("%Y-%m-%d").to_string())
}

/// The anomalies of a set of observations categorized and recorded as cases.
pub struct Triaged {
    pub results: Vec<RecordResult>,
    /// The cases opened or updated (one per flagged record, in order).
    pub cases: Vec<crate::cases::Case>,
    /// What each flagged record's upsert did (in the order of `cases`).
    pub changes: Vec<crate::cases::UpsertOutcome>,
    /// What the records did to the outstanding cases of their accounts.
    pub roll: crate::cases::RollOutcome,
    pub llm: Option<crate::categorize::llm::LlmReport>,
}

/// Categorizes the flagged observations (rules, then the LLM when configured) and records their
/// cases in one durable transaction; `ranked` ranks them among themselves (a batch) so the
/// severity can use the rank, as in a file run. Returns a result per observation, in order.
pub fn triage(
    cfg: &Config,
    rules: &crate::categorize::RulesFile,
    store: &Store,
    engine: &Engine,
    obs: &[Observed],
    ranked: bool,
) -> Result<Triaged, String> {
    // The flagged records, and the explained breaks proposed for auto-resolution.
    let flagged: Vec<usize> = (0..obs.len())
        .filter(|i| obs[*i].flag || obs[*i].proposed)
        .collect();
    let mut results: Vec<RecordResult> = obs
        .iter()
        .map(|o| RecordResult {
            profile: engine.profile.clone(),
            key: o.record.key.clone(),
            date: date_text(o.record.date),
            score: o.score,
            model_score: o.model_score,
            decision: o.decision,
            is_anomaly: o.flag,
            quiet: o.quiet.map(|q| q.describe()),
            own_z: o.own_z,
            cluster: o.cluster,
            top_features: o.top_features.clone(),
            features: engine
                .plan
                .names
                .iter()
                .zip(&o.features)
                .map(|(n, v)| (n.clone(), serde_json::json!(v)))
                .collect(),
            previous_records: o.previous,
            bucket: None,
            bucket_confidence: None,
            bucket_rule: None,
            severity: None,
            summary: None,
            auto_resolve: None,
            categorized_by: None,
            case_id: None,
            ticket: None,
            case_status: None,
            data_quality: o.record.dq.clone(),
            model_version: o.model_version.clone(),
        })
        .collect();
    if flagged.is_empty() {
        let roll = roll_observed(cfg, store, engine, obs, &[])?;
        return Ok(Triaged {
            results,
            cases: Vec::new(),
            changes: Vec::new(),
            roll,
            llm: None,
        });
    }
    let items: Vec<&Observed> = flagged.iter().map(|i| &obs[*i]).collect();
    let rank: Vec<u32> = if ranked {
        let scores: Vec<f64> = items.iter().map(|o| o.score).collect();
        let r = crate::detect::model::ranks(&scores);
        r.into_iter().map(|v| v as u32).collect()
    } else {
        // A record on its own is ranked among itself.
        vec![1; items.len()]
    };
    let table =
        frame(engine, &items, &rank).map_err(|e| format!("building the record table: {e}"))?;
    let rows: Vec<usize> = (0..items.len()).collect();
    let flagged_total = if ranked { items.len() } else { 0 };
    let cat = crate::pipeline::categorize(
        cfg,
        rules,
        &table,
        &engine.reader.resolved,
        &rows,
        flagged_total,
        store,
    )
    .map_err(|e| e.to_string())?;
    let outcomes = crate::pipeline::record_case_outcomes(
        store,
        &cfg.cases,
        &engine.profile,
        &table,
        &rows,
        &cat.cats,
        &engine.version,
        None,
    )
    .map_err(|e| e.to_string())?;
    let roll = roll_observed(cfg, store, engine, obs, &outcomes)?;
    let cases: Vec<crate::cases::Case> = outcomes.iter().map(|o| o.case.clone()).collect();
    for ((i, c), case) in flagged.iter().zip(&cat.cats).zip(&cases) {
        let r = &mut results[*i];
        r.bucket = Some(c.bucket.clone());
        r.bucket_confidence = Some(c.confidence);
        r.bucket_rule = Some(c.rule.clone());
        r.severity = Some(c.severity.as_str().to_string());
        r.summary = Some(c.summary.clone());
        r.auto_resolve = Some(c.auto_resolve);
        r.categorized_by = Some(c.decided_by.as_str().to_string());
        r.case_id = Some(case.id.clone());
        r.ticket = Some(case.ticket.clone());
        r.case_status = Some(case.status.as_str().to_string());
    }
    Ok(Triaged {
        results,
        cases,
        changes: outcomes,
        roll,
        llm: cat.llm,
    })
}

/// The cycle of some observed records: each account's records with their break flag,
/// difference and the date their break began.
pub fn cycle_of_observed(profile: &str, obs: &[Observed]) -> crate::cases::Cycle {
    let mut cycle = crate::cases::Cycle {
        profile: profile.to_string(),
        keyed: true,
        ..Default::default()
    };
    for o in obs {
        if let (Some(d), Some(first)) = (o.record.date, o.record.crit.first()) {
            let out = o.record.brk.unwrap_or(!o.record.within.unwrap_or(true));
            cycle.push_day(&o.record.key, d, out, first.diff, o.break_age);
        }
    }
    cycle.seal();
    cycle
}

/// Rolls the cases of the observed records' accounts forward (a service record is a
/// reconciliation cycle of its account): back within tolerance clears, a persisting break takes
/// the latest date and difference. Accounts without an outstanding case cost one index read.
fn roll_observed(
    cfg: &Config,
    store: &Store,
    engine: &Engine,
    obs: &[Observed],
    outcomes: &[crate::cases::UpsertOutcome],
) -> Result<crate::cases::RollOutcome, String> {
    let mut cycle = cycle_of_observed(&engine.profile, obs);
    if cycle.records.is_empty() {
        return Ok(Default::default());
    }
    cycle.opened = outcomes
        .iter()
        .filter(|o| o.change == crate::cases::Change::Created)
        .map(|o| o.case.id.clone())
        .collect();
    crate::cases::Cases::new(store)
        .rolling(cfg.cases.roll())
        .roll_forward(&cycle)
        .map_err(|e| e.to_string())
}

/// The table of flagged records a file run would have: the records' own fields, the canonical
/// `bd_*` columns, the features, the run context and the detection columns.
fn frame(
    engine: &Engine,
    items: &[&Observed],
    rank: &[u32],
) -> Result<polars::prelude::DataFrame, polars::prelude::PolarsError> {
    use crate::ingest::prepare::crit_col;
    use polars::prelude::*;
    let r = &engine.reader.resolved;
    let n = items.len();
    let mut cols: Vec<Column> = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut push = |cols: &mut Vec<Column>, c: Column| {
        if names.insert(c.name().to_string()) {
            cols.push(c);
        } else if let Some(slot) = cols.iter_mut().find(|x| x.name() == c.name()) {
            *slot = c;
        }
    };
    // The records' own fields (the union, in first-seen order; missing → empty).
    let mut own: Vec<String> = Vec::new();
    for o in items {
        for (k, _) in &o.record.fields {
            if !own.contains(k) {
                own.push(k.clone());
            }
        }
    }
    for k in &own {
        let v: Vec<String> = items
            .iter()
            .map(|o| {
                o.record
                    .fields
                    .iter()
                    .find(|(f, _)| f == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            })
            .collect();
        push(&mut cols, Column::new(k.as_str().into(), v));
    }
    let date_col = crate::ingest::prepare::date_column;
    let num = |f: &dyn Fn(&Observed) -> f64| -> Vec<f64> { items.iter().map(|o| f(o)).collect() };
    if !r.keys.is_empty() {
        let v: Vec<String> = items.iter().map(|o| o.record.key.clone()).collect();
        push(&mut cols, Column::new("bd_key".into(), v));
    }
    if r.date.is_some() {
        push(
            &mut cols,
            date_col("bd_date", items.iter().map(|o| o.record.date).collect()),
        );
    }
    for (i, c) in r.criteria.iter().enumerate() {
        if c.is_pair() {
            push(
                &mut cols,
                Column::new(
                    crit_col(&c.name, "lhs").into(),
                    num(&|o| o.record.crit[i].lhs),
                ),
            );
            push(
                &mut cols,
                Column::new(
                    crit_col(&c.name, "rhs").into(),
                    num(&|o| o.record.crit[i].rhs),
                ),
            );
            if c.difference.is_some() {
                push(
                    &mut cols,
                    Column::new(
                        crit_col(&c.name, "given").into(),
                        num(&|o| o.record.crit[i].given.unwrap_or(f64::NAN)),
                    ),
                );
            }
        }
        push(
            &mut cols,
            Column::new(
                crit_col(&c.name, "diff").into(),
                num(&|o| o.record.crit[i].diff),
            ),
        );
        push(
            &mut cols,
            Column::new(
                crit_col(&c.name, "tol").into(),
                num(&|o| o.record.crit[i].tol),
            ),
        );
    }
    if !r.criteria.is_empty() {
        push(
            &mut cols,
            Column::new("bd_difference".into(), num(&|o| o.record.crit[0].diff)),
        );
        push(
            &mut cols,
            Column::new(
                "bd_within_tolerance".into(),
                items
                    .iter()
                    .map(|o| o.record.within.unwrap_or(true))
                    .collect::<Vec<bool>>(),
            ),
        );
    }
    if items.iter().any(|o| o.record.brk.is_some()) {
        push(
            &mut cols,
            Column::new(
                "bd_break".into(),
                items
                    .iter()
                    .map(|o| o.record.brk.unwrap_or(false))
                    .collect::<Vec<bool>>(),
            ),
        );
    }
    if r.comment.is_some() {
        let v: Vec<String> = items
            .iter()
            .map(|o| o.record.comment.clone().unwrap_or_default())
            .collect();
        push(&mut cols, Column::new("bd_comment".into(), v));
    }
    for (i, role) in r.categoricals.iter().enumerate() {
        let v: Vec<String> = items.iter().map(|o| o.record.cats[i].clone()).collect();
        push(
            &mut cols,
            Column::new(format!("bd_cat_{}", role.slug).into(), v),
        );
    }
    for (i, role) in r.numeric.iter().enumerate() {
        push(
            &mut cols,
            Column::new(
                format!("bd_num_{}", role.slug).into(),
                num(&|o| o.record.nums[i]),
            ),
        );
    }
    for (i, role) in r.extra_dates.iter().enumerate() {
        let v: Vec<Option<i32>> = items.iter().map(|o| o.record.extra_dates[i]).collect();
        if r.trade_date.as_deref() == Some(role.header.as_str()) {
            push(&mut cols, date_col("bd_trade_date", v.clone()));
        }
        push(&mut cols, date_col(&format!("bd_date_{}", role.slug), v));
    }
    let dq: Vec<String> = items.iter().map(|o| o.record.dq.join("; ")).collect();
    push(&mut cols, Column::new("bd_dq".into(), dq));
    for (j, name) in engine.plan.names.iter().enumerate() {
        push(
            &mut cols,
            Column::new(name.as_str().into(), num(&|o| o.features[j])),
        );
    }
    // The break's age, as a file run reports it (whether or not the model uses it).
    push(
        &mut cols,
        Column::new("f_break_age".into(), num(&|o| o.break_age)),
    );
    for (j, name) in crate::runs::RUN_COLUMNS.iter().enumerate() {
        let v = num(&|o| {
            o.run_context
                .as_ref()
                .and_then(|c| c.get(j).copied())
                .unwrap_or(f64::NAN)
        });
        push(&mut cols, Column::new((*name).into(), v));
    }
    push(&mut cols, Column::new("score".into(), num(&|o| o.score)));
    push(
        &mut cols,
        Column::new("decision".into(), num(&|o| o.decision)),
    );
    push(
        &mut cols,
        Column::new(
            "is_anomaly".into(),
            items.iter().map(|o| o.flag).collect::<Vec<bool>>(),
        ),
    );
    push(&mut cols, Column::new("rank".into(), rank.to_vec()));
    push(
        &mut cols,
        Column::new(
            "cluster".into(),
            items.iter().map(|o| o.cluster as u32).collect::<Vec<u32>>(),
        ),
    );
    push(
        &mut cols,
        Column::new(
            "top_features".into(),
            items
                .iter()
                .map(|o| o.top_features.clone())
                .collect::<Vec<String>>(),
        ),
    );
    push(
        &mut cols,
        Column::new(
            "model_version".into(),
            items
                .iter()
                .map(|o| o.model_version.clone())
                .collect::<Vec<String>>(),
        ),
    );
    DataFrame::new(n, cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{FeatureOptions, Preset, apply_encoders, column_f64, compute};
    use crate::ingest::prepare::{PrepareOptions, Prepared, prepare};
    use polars::prelude::*;

    fn sample(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/samples")
            .join(name)
    }

    fn keep(p: &Prepared, mask: Vec<bool>) -> Prepared {
        let mut out = p.clone();
        out.df =
            p.df.filter(&BooleanChunked::from_iter_values(
                "m".into(),
                mask.into_iter(),
            ))
            .unwrap();
        out
    }

    fn dates(p: &Prepared) -> Vec<i32> {
        p.df.column("bd_date")
            .unwrap()
            .to_physical_repr()
            .i32()
            .unwrap()
            .into_no_null_iter()
            .collect()
    }

    /// The raw row `i` of a prepared table as a JSON record of its own (text) columns.
    fn record(
        p: &Prepared,
        header: &[String],
        i: usize,
    ) -> serde_json::Map<String, serde_json::Value> {
        header
            .iter()
            .map(|h| {
                let v =
                    p.df.column(h.as_str())
                        .unwrap()
                        .str()
                        .unwrap()
                        .get(i)
                        .unwrap_or("");
                (h.clone(), serde_json::Value::String(v.to_string()))
            })
            .collect()
    }

    /// Streams every current record (seeded with the history), and compares each record's
    /// features with a batch run of its date, with everything dated before as history.
    fn parity(history: &Prepared, current: &Prepared, header: &[String], preset: Preset) -> usize {
        parity_counting(history, current, header, preset, &mut 0)
    }

    /// [`parity`], counting the routine breaks met in `routine_seen`.
    fn parity_counting(
        history: &Prepared,
        current: &Prepared,
        header: &[String],
        preset: Preset,
        routine_seen: &mut usize,
    ) -> usize {
        let cfg = Config::defaults();
        let opts = FeatureOptions {
            preset,
            window: cfg.features.rolling_window,
            min_periods: cfg.features.rolling_min_periods,
            routine: crate::features::routine_params(&cfg.features),
        };
        // The model's encoders: fitted on the history.
        let base = compute(history, None, &opts).unwrap();
        let reader = RecordReader::new(current.resolved.clone(), &cfg.ingest);
        let plan = Plan::new(
            &current.resolved,
            preset,
            opts.window,
            opts.min_periods,
            &opts.routine,
            &base.names,
            &base.encoders,
        )
        .unwrap();
        let mut state: HashMap<String, Vec<Past>> = HashMap::new();
        for (k, p) in pasts_of_table(&history.df, &history.resolved).unwrap() {
            insert(state.entry(k).or_default(), p, usize::MAX);
        }
        let cur_dates = dates(current);
        let mut days: Vec<i32> = cur_dates.clone();
        days.sort();
        days.dedup();
        let mut compared = 0;
        for d in days {
            let today = keep(current, cur_dates.iter().map(|x| *x == d).collect());
            let earlier = keep(current, cur_dates.iter().map(|x| *x < d).collect());
            let mut hist = history.clone();
            hist.df = history.df.vstack(&earlier.df).unwrap();
            let mut fs = compute(&today, Some(&hist), &opts).unwrap();
            apply_encoders(&mut fs, &base.encoders).unwrap();
            assert_eq!(fs.names, base.names);
            let batch: Vec<Vec<f64>> = fs
                .names
                .iter()
                .map(|n| column_f64(&fs.df, n).unwrap())
                .collect();
            // Stream the day's records (file order), then compare.
            let mut streamed = Vec::new();
            let batch_routine: Vec<u32> = match fs.df.column(crate::features::OWN_ROUTINE) {
                Ok(c) => c
                    .str()
                    .unwrap()
                    .iter()
                    .map(|t| {
                        t.and_then(crate::routine::Reason::parse)
                            .map_or(0, |r| r.code() as u32)
                    })
                    .collect(),
                Err(_) => vec![0; fs.df.height()],
            };
            let batch_z = match fs.df.column(crate::features::OWN_Z) {
                Ok(_) => column_f64(&fs.df, crate::features::OWN_Z).unwrap(),
                Err(_) => vec![0.0; fs.df.height()],
            };
            for i in 0..today.df.height() {
                let rec = reader.read(&record(&today, header, i)).unwrap();
                let records = state.entry(rec.key.clone()).or_default();
                let me = Past::of(&rec);
                let prev = before(records, rec.date);
                let f = plan.compute(&rec, &me, prev);
                // The own normal agrees too: the routine reason and the own z.
                let own = plan.own(&me, prev).and_then(|o| o.me().copied());
                let code = own.and_then(|o| o.routine).map_or(0, |r| r.code() as u32);
                assert_eq!(code, batch_routine[i], "day {d}, row {i}: routine reason");
                let z = own.map_or(0.0, |o| o.own_z);
                assert!(
                    (z - batch_z[i]).abs() <= 1e-9 * (1.0 + z.abs()),
                    "day {d}, row {i}: own z streamed {z}, batch {}",
                    batch_z[i]
                );
                if code != 0 {
                    *routine_seen += 1;
                }
                streamed.push(f);
            }
            for i in 0..today.df.height() {
                let rec = reader.read(&record(&today, header, i)).unwrap();
                insert(
                    state.entry(rec.key.clone()).or_default(),
                    Past::of(&rec),
                    usize::MAX,
                );
            }
            for (i, f) in streamed.iter().enumerate() {
                for (j, n) in fs.names.iter().enumerate() {
                    let (a, b) = (f[j], batch[j][i]);
                    assert!(
                        (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                        "day {d}, row {i}, {n}: streamed {a}, batch {b}"
                    );
                }
                compared += 1;
            }
        }
        compared
    }

    fn read(path: &std::path::Path, profile: &str) -> (Prepared, Vec<String>) {
        let cfg = Config::defaults();
        let raw = crate::ingest::read(path, &cfg.ingest, None).unwrap();
        let p = crate::profile::Profile::builtin(profile).unwrap();
        let r = p.resolve(&raw.header, &raw.source, &[]).unwrap();
        let prepared = prepare(&raw, &r, &PrepareOptions::from_config(&cfg.ingest)).unwrap();
        (prepared, raw.header.clone())
    }

    #[test]
    fn streamed_features_equal_daily_batch_features_gl_ihub() {
        let (h, _) = read(&sample("gl_ihub_history.csv"), "gl_ihub");
        let (c, header) = read(&sample("gl_ihub_current.csv"), "gl_ihub");
        for preset in Preset::ALL {
            let n = parity(&h, &c, &header, preset);
            assert_eq!(n, c.df.height());
        }
    }

    #[test]
    fn streamed_features_equal_daily_batch_features_trades() {
        // The first dates as history, the rest streamed.
        let (all, header) = read(&sample("trades.csv"), "trades");
        let d = dates(&all);
        let mut sorted = d.clone();
        sorted.sort();
        let cut = sorted[sorted.len() / 2];
        let h = keep(&all, d.iter().map(|x| *x < cut).collect());
        let c = keep(&all, d.iter().map(|x| *x >= cut).collect());
        for preset in Preset::ALL {
            let n = parity(&h, &c, &header, preset);
            assert!(n > 100, "{n} records compared");
        }
    }

    #[test]
    fn streamed_features_and_routine_equal_daily_batch_on_routine_accounts() {
        // A generated file whose accounts include standing items, lags and month-end accruals:
        // the first 45 dates as history, the rest streamed day by day.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gl.csv");
        let mut f = std::fs::File::create(&path).unwrap();
        let opts = crate::generate::GenerateOptions {
            rows: 3000,
            seed: 7,
            routine_share: 0.5,
            ..Default::default()
        };
        crate::generate::generate(&opts, &mut f, None).unwrap();
        drop(f);
        let (all, header) = read(&path, "gl_ihub");
        let d = dates(&all);
        let mut sorted = d.clone();
        sorted.sort();
        sorted.dedup();
        let cut = sorted[45];
        let h = keep(&all, d.iter().map(|x| *x < cut).collect());
        let c = keep(&all, d.iter().map(|x| *x >= cut).collect());
        for preset in Preset::ALL {
            let mut routine = 0;
            let n = parity_counting(&h, &c, &header, preset, &mut routine);
            assert_eq!(n, c.df.height());
            assert!(routine > 100, "{routine} routine breaks compared");
        }
    }

    #[test]
    fn insert_keeps_date_order_replaces_a_restated_record_and_caps() {
        let p = |d: i32, v: f64| Past {
            date: Some(d),
            crit: vec![[v, 0.0, v, 0.01]],
            within: false,
        };
        let mut r = Vec::new();
        insert(&mut r, p(3, 3.0), 3);
        insert(&mut r, p(1, 1.0), 3);
        insert(&mut r, p(2, 2.0), 3);
        insert(&mut r, p(2, 20.0), 3);
        assert_eq!(
            r.iter()
                .map(|x| (x.date.unwrap(), x.crit[0][0]))
                .collect::<Vec<_>>(),
            vec![(1, 1.0), (2, 20.0), (3, 3.0)]
        );
        assert_eq!(before(&r, Some(3)).len(), 2);
        assert_eq!(before(&r, Some(1)).len(), 0);
        insert(&mut r, p(4, 4.0), 3);
        assert_eq!(r.first().unwrap().date, Some(2));
        assert_eq!(r.len(), 3);
    }
}
