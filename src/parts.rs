//! The files of a partitioned run, and merging them into the output of one run.
//!
//! A worker (`breakdesk run FILE --model M --partition I/N --out P`) writes the part `P`: the
//! same CSV or JSON Lines a run writes, for the rows of its accounts, ranked within the part
//! (see [`crate::partition`]). Beside it go its cluster summary and rejects report, as `run`
//! writes them, and two sidecars that `merge` reads:
//!
//! - `P.meta.json`: which partition of which input, the model, the columns and their types, the
//!   profile bound to the file, the rules' digest, the triage's summary and each cluster's top
//!   accounts;
//! - `P.rows.bin`: one record per row of the partition, written or not: its row, triage score,
//!   difference, cluster and flags, and for the triage's candidates what the analysts' verdicts
//!   are matched on (layout in [`PartRows`]).
//!
//! `merge` puts the parts back into what one run on the whole file with the same model writes:
//! the rows ranked across every part, the analysts' verdicts applied (read from the store, which
//! the workers do not have), the rows categorized again (the severity's "top share of the
//! flagged rows", the summary's rank and any rule that reads `rank` depend on the whole file),
//! and the cluster summary rebuilt from every row.

use crate::categorize::RulesError;
use crate::config::Config;
use crate::detect::cluster::ClusterSummary;
use crate::detect::triage::{Quiet, TriageSummary};
use crate::output::Format;
use crate::partition::Partition;
use crate::pipeline::{self, Analysis};
use crate::profile::Resolved;
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of the sidecars' layout.
pub const PART_FORMAT: u32 = 1;

const ROWS_MAGIC: &[u8; 8] = b"BDROWS\x00\x01";

/// Records whose cases a merge records at a time (see
/// [`pipeline::record_in_groups`]).
const CASE_GROUP: usize = 20_000;

/// Flags of a row in [`PartRows`].
pub const FLAGGED: u8 = 1;
pub const PROPOSED: u8 = 2;
pub const CANDIDATE: u8 = 4;

#[derive(Debug, thiserror::Error)]
pub enum PartError {
    #[error("cannot read {file}: {message}")]
    Read { file: String, message: String },
    #[error("cannot write {file}: {message}")]
    Write { file: String, message: String },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    /// Two parts that do not belong together.
    #[error("{file} does not go with {other}: {message}")]
    Mismatch {
        file: String,
        other: String,
        message: String,
    },
    #[error("{0}")]
    Incomplete(String),
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error(transparent)]
    Detect(#[from] pipeline::DetectError),
    #[error(transparent)]
    Cases(#[from] crate::cases::CaseError),
    #[error("building the merged table: {0}")]
    Table(#[from] PolarsError),
}

/// A column of a part and its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartColumn {
    pub name: String,
    pub dtype: String,
}

/// `P.meta.json`: what a part is and how to read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartMeta {
    pub format: u32,
    pub partition: Partition,
    /// [`crate::partition::HASH`].
    pub hash: String,
    pub input: String,
    pub history: Option<String>,
    /// Rows read from the whole file and its history, and rejected (every worker checks the
    /// whole file).
    pub rows_read: usize,
    pub history_rows_read: usize,
    pub rejected_rows: usize,
    /// Rows of this partition, and rows written to the part.
    pub rows: usize,
    pub written: usize,
    pub all_rows: bool,
    /// csv or jsonl.
    pub output: String,
    pub columns: Vec<PartColumn>,
    pub profile: String,
    /// The profile bound to the file's header (for the categorization at merge).
    pub resolved: Resolved,
    pub model_version: String,
    pub model_id: String,
    #[serde(with = "crate::detect::exact::scalar")]
    pub offset: f64,
    /// `[detect] own_z_min` of the worker: a candidate above it is unusual for its account.
    #[serde(with = "crate::detect::exact::scalar")]
    pub own_z_min: f64,
    /// Which root-cause rules the worker categorized with ([`rules_digest`]).
    pub rules: String,
    pub triage: TriageSummary,
    /// Clusters of the model, and each one's top accounts in this partition (`[cluster]
    /// top_accounts` of them). Accounts never span partitions, so the top accounts of the whole
    /// file are among the parts' own.
    pub clusters: usize,
    pub top_accounts: usize,
    pub tops: Vec<Vec<(String, usize)>>,
}

/// A candidate's fields the analysts' verdicts are matched on.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Position of the row in [`PartRows`].
    pub at: usize,
    pub key: String,
    /// Days since 1970-01-01.
    pub date: Option<i32>,
    pub age: f64,
    /// The detector's score and the own z.
    pub model: f64,
    pub own_z: f64,
}

/// `P.rows.bin`: every row of the partition (little-endian):
///
/// ```text
/// "BDROWS\0\x01"  u64 n
/// n × u64 bd_row   n × f64 score   n × f64 difference   n × u32 cluster
/// n × u8 flags (1 flagged, 2 proposed for auto-resolution, 4 a triage candidate)
/// u64 m, then per candidate: u64 at, f64 model score, f64 own z, f64 break age,
///   i32 date (days since 1970-01-01, i32::MIN for none), u32 key length, key bytes (UTF-8)
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartRows {
    pub bd_row: Vec<u64>,
    pub score: Vec<f64>,
    pub difference: Vec<f64>,
    pub cluster: Vec<u32>,
    pub flags: Vec<u8>,
    pub candidates: Vec<Candidate>,
}

impl PartRows {
    pub fn len(&self) -> usize {
        self.bd_row.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bd_row.is_empty()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.len();
        let mut b = Vec::with_capacity(16 + n * 29 + self.candidates.len() * 64);
        b.extend_from_slice(ROWS_MAGIC);
        b.extend_from_slice(&(n as u64).to_le_bytes());
        for v in &self.bd_row {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in &self.score {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in &self.difference {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in &self.cluster {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.flags);
        b.extend_from_slice(&(self.candidates.len() as u64).to_le_bytes());
        for c in &self.candidates {
            b.extend_from_slice(&(c.at as u64).to_le_bytes());
            b.extend_from_slice(&c.model.to_le_bytes());
            b.extend_from_slice(&c.own_z.to_le_bytes());
            b.extend_from_slice(&c.age.to_le_bytes());
            b.extend_from_slice(&c.date.unwrap_or(i32::MIN).to_le_bytes());
            b.extend_from_slice(&(c.key.len() as u32).to_le_bytes());
            b.extend_from_slice(c.key.as_bytes());
        }
        b
    }

    pub fn from_bytes(b: &[u8]) -> Result<PartRows, String> {
        let mut r = Reader { b, at: 0 };
        if r.take(8)? != ROWS_MAGIC {
            return Err("not a breakdesk part's rows file (wrong signature)".into());
        }
        let n = r.u64()? as usize;
        // Every row takes 29 bytes: a count the file cannot hold is refused before allocating.
        if n.saturating_mul(29) > b.len() {
            return Err(format!("it says {n} rows but is only {} bytes", b.len()));
        }
        let bd_row = (0..n).map(|_| r.u64()).collect::<Result<_, _>>()?;
        let score = (0..n).map(|_| r.f64()).collect::<Result<_, _>>()?;
        let difference = (0..n).map(|_| r.f64()).collect::<Result<_, _>>()?;
        let cluster = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
        let flags = r.take(n)?.to_vec();
        let m = r.u64()? as usize;
        if m > n {
            return Err(format!("{m} candidates among {n} rows"));
        }
        let mut candidates = Vec::with_capacity(m);
        for _ in 0..m {
            let at = r.u64()? as usize;
            if at >= n {
                return Err(format!("a candidate at row {at} of {n}"));
            }
            let model = r.f64()?;
            let own_z = r.f64()?;
            let age = r.f64()?;
            let date = r.i32()?;
            let len = r.u32()? as usize;
            let key = std::str::from_utf8(r.take(len)?)
                .map_err(|_| "a candidate's key is not UTF-8".to_string())?
                .to_string();
            candidates.push(Candidate {
                at,
                key,
                date: (date != i32::MIN).then_some(date),
                age,
                model,
                own_z,
            });
        }
        if r.at != b.len() {
            return Err(format!("{} bytes left after the rows", b.len() - r.at));
        }
        Ok(PartRows {
            bd_row,
            score,
            difference,
            cluster,
            flags,
            candidates,
        })
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| "the file ends too early (truncated?)".to_string())?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_le_bytes(self.array()?))
    }
}

/// `P.meta.json` beside a part `P`.
pub fn meta_path(part: &Path) -> PathBuf {
    crate::output::sibling_path(part, "meta", "json")
}

/// `P.rows.bin` beside a part `P`.
pub fn rows_path(part: &Path) -> PathBuf {
    crate::output::sibling_path(part, "rows", "bin")
}

/// Which root-cause rules a configuration categorizes with: `built-in`, or the SHA-256 of the
/// rules file it names.
pub fn rules_digest(cfg: &Config) -> String {
    use sha2::{Digest, Sha256};
    let p = cfg.categorize.rules.trim();
    if p.is_empty() {
        return "built-in".into();
    }
    match std::fs::read(p) {
        Ok(bytes) => format!("{:x}", Sha256::digest(&bytes)),
        Err(_) => format!("unreadable {p}"),
    }
}

fn dtype_name(d: &DataType) -> Option<&'static str> {
    Some(match d {
        DataType::Boolean => "bool",
        DataType::UInt8 => "u8",
        DataType::UInt16 => "u16",
        DataType::UInt32 => "u32",
        DataType::UInt64 => "u64",
        DataType::Int8 => "i8",
        DataType::Int16 => "i16",
        DataType::Int32 => "i32",
        DataType::Int64 => "i64",
        DataType::Float32 => "f32",
        DataType::Float64 => "f64",
        DataType::String => "str",
        DataType::Date => "date",
        _ => return None,
    })
}

fn dtype_of(name: &str) -> Option<DataType> {
    Some(match name {
        "bool" => DataType::Boolean,
        "u8" => DataType::UInt8,
        "u16" => DataType::UInt16,
        "u32" => DataType::UInt32,
        "u64" => DataType::UInt64,
        "i8" => DataType::Int8,
        "i16" => DataType::Int16,
        "i32" => DataType::Int32,
        "i64" => DataType::Int64,
        "f32" => DataType::Float32,
        "f64" => DataType::Float64,
        "str" => DataType::String,
        "date" => DataType::Date,
        _ => return None,
    })
}

/// Where a worker's run came from, for its part's sidecars.
pub struct PartSource<'a> {
    pub partition: &'a Partition,
    pub input: &'a Path,
    pub history: Option<&'a Path>,
    pub all_rows: bool,
    pub format: Format,
}

fn werr(path: &Path, e: impl std::fmt::Display) -> PartError {
    PartError::Write {
        file: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes the sidecars of the part `out` that a worker's analysis `a` wrote. `store` is the
/// worker's (empty) store: the explanations are matched again to know the triage's candidates.
pub fn write_sidecars(
    cfg: &Config,
    out: &Path,
    a: &Analysis,
    src: &PartSource<'_>,
    store: &crate::store::Store,
) -> Result<(), PartError> {
    let (meta, rows) = describe_part(cfg, out, a, src, store)?;
    let rows_file = rows_path(out);
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&rows_file).map_err(|e| werr(&rows_file, e))?,
    );
    w.write_all(&rows.to_bytes())
        .and_then(|_| w.flush())
        .map_err(|e| werr(&rows_file, e))?;
    // The meta file last: a part whose meta file exists is complete.
    let meta_file = meta_path(out);
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| werr(&meta_file, e))?;
    std::fs::write(&meta_file, json).map_err(|e| werr(&meta_file, e))?;
    Ok(())
}

/// What the sidecars of the part `out` say: its meta and its rows (see [`write_sidecars`]).
pub fn describe_part(
    cfg: &Config,
    out: &Path,
    a: &Analysis,
    src: &PartSource<'_>,
    store: &crate::store::Store,
) -> Result<(PartMeta, PartRows), PartError> {
    let df = &a.run.features.df;
    let det = &a.det;
    let n = df.height();
    let internal = |e: PolarsError| werr(out, e);
    let bd_row: Vec<u64> = df
        .column("bd_row")
        .and_then(|c| c.cast(&DataType::UInt64))
        .and_then(|c| c.u64().cloned())
        .map_err(internal)?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect();
    // The differences the cluster summary is computed on (as `pipeline::score` reads them).
    let difference = crate::features::column_f64(df, "bd_difference").unwrap_or(vec![0.0; n]);
    let (mut quiet, own_z) = pipeline::triage_inputs(df).map_err(|e| werr(out, e))?;
    pipeline::quiet_explained_and_judged(cfg, df, &a.run.profile, store, &mut quiet)?;
    let has_breaks = df.column(crate::features::IS_BREAK).is_ok();
    let mut flags = vec![0u8; n];
    let mut candidates = Vec::new();
    let keys = df.column("bd_key").ok().and_then(|c| c.str().ok().cloned());
    let dates: Option<Vec<Option<i32>>> = df
        .column("bd_date")
        .ok()
        .and_then(|c| c.cast(&DataType::Date).ok())
        .and_then(|c| {
            c.to_physical_repr()
                .i32()
                .ok()
                .map(|ca| ca.iter().collect())
        });
    let age = crate::features::column_f64(df, "f_break_age").unwrap_or(vec![0.0; n]);
    for i in 0..n {
        let mut f = 0;
        if det.scored.flag[i] {
            f |= FLAGGED;
        }
        if det.proposed.get(i).copied().unwrap_or(false) {
            f |= PROPOSED;
        }
        if has_breaks && quiet[i].is_none() {
            f |= CANDIDATE;
            candidates.push(Candidate {
                at: i,
                key: keys
                    .as_ref()
                    .and_then(|k| k.get(i))
                    .unwrap_or("")
                    .to_string(),
                date: dates.as_ref().and_then(|d| d[i]),
                age: age[i],
                model: det.scored.model[i],
                own_z: own_z[i],
            });
        }
        flags[i] = f;
    }
    let rows = PartRows {
        bd_row,
        score: det.scored.score.clone(),
        difference,
        cluster: det.scored.cluster.iter().map(|c| *c as u32).collect(),
        flags,
        candidates,
    };
    let mut columns = Vec::new();
    for name in crate::output::output_columns(&a.table) {
        let c = a.table.column(&name).map_err(internal)?;
        let dtype = dtype_name(c.dtype()).ok_or_else(|| {
            werr(
                out,
                format!(
                    "column {name} has type {}, which a part cannot carry",
                    c.dtype()
                ),
            )
        })?;
        columns.push(PartColumn {
            name: name.to_string(),
            dtype: dtype.to_string(),
        });
    }
    let k = det.bundle.centroids.as_ref().map_or(1, |c| c.k);
    let meta = PartMeta {
        format: PART_FORMAT,
        partition: *src.partition,
        hash: crate::partition::HASH.to_string(),
        input: src.input.display().to_string(),
        history: src.history.map(|h| h.display().to_string()),
        rows_read: a.run.rows_read,
        history_rows_read: a.run.history_rows_read,
        rejected_rows: a.run.rejected_rows,
        rows: n,
        written: a.table.height(),
        all_rows: src.all_rows,
        output: match src.format {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
        .to_string(),
        columns,
        profile: a.run.profile.clone(),
        resolved: a.run.resolved.clone(),
        model_version: det.bundle.version(),
        model_id: det.bundle.model_id.clone(),
        offset: det.bundle.offset,
        own_z_min: cfg.detect.own_z_min,
        rules: rules_digest(cfg),
        triage: det.scored.triage.clone(),
        clusters: k,
        top_accounts: cfg.cluster.top_accounts,
        tops: (0..k)
            .map(|c| {
                det.clusters
                    .iter()
                    .find(|s| s.cluster == c)
                    .map(|s| s.top_accounts.clone())
                    .unwrap_or_default()
            })
            .collect(),
    };
    Ok((meta, rows))
}

/// One part: its file, and what its sidecars say.
pub struct Part {
    pub path: PathBuf,
    pub meta: PartMeta,
    pub rows: PartRows,
}

fn read_part(path: &Path) -> Result<Part, PartError> {
    let shown = path.display().to_string();
    if !path.is_file() {
        return Err(PartError::Read {
            file: shown,
            message: "no such file".into(),
        });
    }
    let mp = meta_path(path);
    let bytes = std::fs::read(&mp).map_err(|e| PartError::Read {
        file: mp.display().to_string(),
        message: format!(
            "{e} (every part needs the sidecars `run --partition` writes beside it: {} and {})",
            mp.display(),
            rows_path(path).display()
        ),
    })?;
    let meta: PartMeta = serde_json::from_slice(&bytes).map_err(|e| PartError::Invalid {
        file: mp.display().to_string(),
        message: format!("not a part's meta file: {e}"),
    })?;
    if meta.format != PART_FORMAT {
        return Err(PartError::Invalid {
            file: mp.display().to_string(),
            message: format!(
                "part format {} (this build reads {PART_FORMAT})",
                meta.format
            ),
        });
    }
    let rp = rows_path(path);
    let bytes = std::fs::read(&rp).map_err(|e| PartError::Read {
        file: rp.display().to_string(),
        message: e.to_string(),
    })?;
    let rows = PartRows::from_bytes(&bytes).map_err(|message| PartError::Invalid {
        file: rp.display().to_string(),
        message,
    })?;
    if rows.len() != meta.rows {
        return Err(PartError::Invalid {
            file: rp.display().to_string(),
            message: format!(
                "{} rows, and {} says {}",
                rows.len(),
                mp.display(),
                meta.rows
            ),
        });
    }
    Ok(Part {
        path: path.to_path_buf(),
        meta,
        rows,
    })
}

/// Checks that `parts` are the partitions of one run, each once, all of them.
fn check_parts(parts: &[Part], cfg: &Config) -> Result<(), PartError> {
    let Some(first) = parts.first() else {
        return Err(PartError::Incomplete("no parts to merge".into()));
    };
    let a = &first.meta;
    let name = |p: &Part| p.path.display().to_string();
    for p in parts {
        let b = &p.meta;
        let mismatch = |message: String| PartError::Mismatch {
            file: name(p),
            other: name(first),
            message,
        };
        if b.hash != crate::partition::HASH {
            return Err(PartError::Invalid {
                file: meta_path(&p.path).display().to_string(),
                message: format!(
                    "its accounts were split by hash {:?}; this build splits by {:?}",
                    b.hash,
                    crate::partition::HASH
                ),
            });
        }
        if b.partition.count != a.partition.count {
            return Err(mismatch(format!(
                "it is partition {} and the other of {} partitions",
                b.partition, a.partition.count
            )));
        }
        if b.model_id != a.model_id || b.model_version != a.model_version {
            return Err(mismatch(format!(
                "it was scored by model {} and the other by {}",
                b.model_version, a.model_version
            )));
        }
        if (b.rows_read, b.history_rows_read, b.rejected_rows)
            != (a.rows_read, a.history_rows_read, a.rejected_rows)
        {
            return Err(mismatch(format!(
                "it comes from an input of {} rows ({} history rows, {} rejected), the other from {} ({}, {})",
                b.rows_read,
                b.history_rows_read,
                b.rejected_rows,
                a.rows_read,
                a.history_rows_read,
                a.rejected_rows
            )));
        }
        if b.all_rows != a.all_rows {
            return Err(mismatch(
                "one was written with --all-rows and the other without".into(),
            ));
        }
        if b.output != a.output {
            return Err(mismatch(format!(
                "it is {} and the other {}",
                b.output, a.output
            )));
        }
        if b.columns != a.columns {
            let at = b
                .columns
                .iter()
                .zip(&a.columns)
                .position(|(x, y)| x != y)
                .unwrap_or(b.columns.len().min(a.columns.len()));
            let show = |c: Option<&PartColumn>| {
                c.map(|c| format!("{} ({})", c.name, c.dtype))
                    .unwrap_or_else(|| "nothing".into())
            };
            return Err(mismatch(format!(
                "their columns differ: column {} is {} here and {} there",
                at + 1,
                show(b.columns.get(at)),
                show(a.columns.get(at))
            )));
        }
        if b.profile != a.profile || b.resolved != a.resolved {
            return Err(mismatch(format!(
                "it was read with profile {} bound to other columns than the other ({})",
                b.profile, a.profile
            )));
        }
        if b.clusters != a.clusters || b.top_accounts != a.top_accounts {
            return Err(mismatch(
                "their cluster summaries differ in shape ([cluster] top_accounts)".into(),
            ));
        }
        if b.own_z_min.to_bits() != a.own_z_min.to_bits() {
            return Err(mismatch(
                "their triage settings differ ([detect] own_z_min)".into(),
            ));
        }
    }
    let mine = rules_digest(cfg);
    if a.rules != mine {
        return Err(PartError::Invalid {
            file: meta_path(&first.path).display().to_string(),
            message: format!(
                "it was categorized with other root-cause rules ({}) than this configuration's ({mine}); merge with the workers' [categorize] rules",
                a.rules
            ),
        });
    }
    let n = a.partition.count;
    let mut seen: Vec<Option<&Part>> = vec![None; n];
    for p in parts {
        let i = p.meta.partition.index;
        if i >= n {
            return Err(PartError::Invalid {
                file: meta_path(&p.path).display().to_string(),
                message: format!("partition {} is not below {n}", p.meta.partition),
            });
        }
        if let Some(q) = seen[i] {
            return Err(PartError::Mismatch {
                file: name(p),
                other: name(q),
                message: format!(
                    "both are partition {}: the parts overlap (give each partition once)",
                    p.meta.partition
                ),
            });
        }
        seen[i] = Some(p);
    }
    let missing: Vec<String> = (0..n)
        .filter(|i| seen[*i].is_none())
        .map(|i| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() {
        return Err(PartError::Incomplete(format!(
            "missing partition{} {} of {n}: the merge needs every part (0/{n} to {}/{n})",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            n - 1
        )));
    }
    Ok(())
}

/// Undoes what writing a CSV does to formula-like text (a leading `'`, see
/// [`crate::text::neutralise`]), so the rules see the text the worker saw. Writing the merged
/// file neutralises it again, to the same cell.
fn unneutralise(s: &str) -> &str {
    match s.strip_prefix('\'') {
        Some(rest) if crate::text::is_formula_like(rest) => rest,
        _ => s,
    }
}

/// A part's table, with the types its meta file gives.
fn read_table(p: &Part) -> Result<DataFrame, PartError> {
    let file = p.path.display().to_string();
    let invalid = |message: String| PartError::Invalid {
        file: file.clone(),
        message,
    };
    let cols = &p.meta.columns;
    let table = if p.meta.output == "jsonl" {
        read_jsonl(&p.path, cols).map_err(invalid)?
    } else {
        let path = p.path.to_string_lossy().to_string();
        let raw = LazyCsvReader::new(PlRefPath::new(path.as_str()))
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .with_missing_is_null(true)
            .finish()
            .and_then(|lf| lf.collect())
            .map_err(|e| invalid(format!("not a readable CSV: {e}")))?;
        let header: Vec<String> = raw
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        check_header(&header, cols).map_err(&invalid)?;
        use rayon::prelude::*;
        let out: Vec<Column> = cols
            .par_iter()
            .map(|c| {
                let ca = raw
                    .column(&c.name)
                    .and_then(|c| c.str().cloned())
                    .map_err(|e| e.to_string())?;
                typed_from_text(&c.name, &c.dtype, &ca)
            })
            .collect::<Result<_, String>>()
            .map_err(&invalid)?;
        DataFrame::new(raw.height(), out).map_err(|e| invalid(e.to_string()))?
    };
    if table.height() != p.meta.written {
        return Err(invalid(format!(
            "{} rows, and its meta file says {} were written",
            table.height(),
            p.meta.written
        )));
    }
    Ok(table)
}

fn check_header(header: &[String], cols: &[PartColumn]) -> Result<(), String> {
    let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
    if header.iter().map(String::as_str).eq(names.iter().copied()) {
        return Ok(());
    }
    let at = header
        .iter()
        .zip(&names)
        .position(|(h, n)| h != n)
        .unwrap_or(header.len().min(names.len()));
    Err(format!(
        "its header does not match its meta file (and the other parts): column {} is {}, expected {}",
        at + 1,
        header
            .get(at)
            .map(|h| format!("{h:?}"))
            .unwrap_or_else(|| "missing".into()),
        names
            .get(at)
            .map(|h| format!("{h:?}"))
            .unwrap_or_else(|| "nothing".into()),
    ))
}

/// A column of type `dtype` from its text as a CSV holds it (empty = null).
fn typed_from_text(name: &str, dtype: &str, ca: &StringChunked) -> Result<Column, String> {
    let bad = |i: usize, v: &str| {
        format!(
            "row {} (data row {}), column {name}: {v:?} is not a {dtype}",
            i + 2,
            i + 1
        )
    };
    let dt = dtype_of(dtype).ok_or_else(|| format!("column {name} has an unknown type {dtype}"))?;
    let col = match dt {
        DataType::String => {
            let v: StringChunked = ca.iter().map(|s| s.map(unneutralise)).collect();
            v.with_name(name.into()).into_column()
        }
        DataType::Boolean => {
            let mut v = Vec::with_capacity(ca.len());
            for (i, s) in ca.iter().enumerate() {
                v.push(match s {
                    None | Some("") => None,
                    Some("true") => Some(true),
                    Some("false") => Some(false),
                    Some(x) => return Err(bad(i, x)),
                });
            }
            Column::new(name.into(), v)
        }
        DataType::Float32 | DataType::Float64 => {
            let mut v = Vec::with_capacity(ca.len());
            for (i, s) in ca.iter().enumerate() {
                v.push(match s {
                    None | Some("") => None,
                    Some(x) => Some(x.parse::<f64>().map_err(|_| bad(i, x))?),
                });
            }
            Column::new(name.into(), v)
                .cast(&dt)
                .map_err(|e| e.to_string())?
        }
        DataType::Date => {
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
            let mut v = Vec::with_capacity(ca.len());
            for (i, s) in ca.iter().enumerate() {
                v.push(match s {
                    None | Some("") => None,
                    Some(x) => Some(
                        (chrono::NaiveDate::parse_from_str(x, "%Y-%m-%d").map_err(|_| bad(i, x))?
                            - epoch)
                            .num_days() as i32,
                    ),
                });
            }
            Column::new(name.into(), v)
                .cast(&DataType::Date)
                .map_err(|e| e.to_string())?
        }
        dt if dt.is_unsigned_integer() => {
            let mut v = Vec::with_capacity(ca.len());
            for (i, s) in ca.iter().enumerate() {
                v.push(match s {
                    None | Some("") => None,
                    Some(x) => Some(x.parse::<u64>().map_err(|_| bad(i, x))?),
                });
            }
            Column::new(name.into(), v)
                .strict_cast(&dt)
                .map_err(|_| format!("column {name}: a value does not fit {dtype}"))?
        }
        dt => {
            let mut v = Vec::with_capacity(ca.len());
            for (i, s) in ca.iter().enumerate() {
                v.push(match s {
                    None | Some("") => None,
                    Some(x) => Some(x.parse::<i64>().map_err(|_| bad(i, x))?),
                });
            }
            Column::new(name.into(), v)
                .strict_cast(&dt)
                .map_err(|_| format!("column {name}: a value does not fit {dtype}"))?
        }
    };
    Ok(col)
}

/// A JSON Lines part: one object per row (as `run --format jsonl` writes), with every column.
fn read_jsonl(path: &Path, cols: &[PartColumn]) -> Result<DataFrame, String> {
    use serde_json::Value;
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut values: Vec<Vec<Value>> = vec![Vec::new(); cols.len()];
    let at: HashMap<&str, usize> = cols
        .iter()
        .enumerate()
        .map(|(k, c)| (c.name.as_str(), k))
        .collect();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let obj: serde_json::Map<String, Value> =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        if let Some(extra) = obj.keys().find(|k| !at.contains_key(k.as_str())) {
            return Err(format!(
                "line {}: column {extra:?} is not one of its meta file's (and the other parts')",
                i + 1
            ));
        }
        if obj.len() != cols.len() {
            let missing = cols
                .iter()
                .find(|c| !obj.contains_key(&c.name))
                .map(|c| c.name.as_str())
                .unwrap_or("");
            return Err(format!(
                "line {}: column {missing:?} of its meta file (and the other parts) is missing",
                i + 1
            ));
        }
        for (k, v) in obj {
            values[at[k.as_str()]].push(v);
        }
    }
    let n = values.first().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(cols.len());
    for (c, vs) in cols.iter().zip(values) {
        let bad = |i: usize, v: &Value| {
            format!(
                "line {}, column {}: {v} is not a {}",
                i + 1,
                c.name,
                c.dtype
            )
        };
        let dt = dtype_of(&c.dtype)
            .ok_or_else(|| format!("column {} has an unknown type {}", c.name, c.dtype))?;
        let name: PlSmallStr = c.name.as_str().into();
        let col = match dt {
            DataType::Boolean => {
                let mut v = Vec::with_capacity(n);
                for (i, x) in vs.iter().enumerate() {
                    v.push(match x {
                        Value::Null => None,
                        Value::Bool(b) => Some(*b),
                        x => return Err(bad(i, x)),
                    });
                }
                Column::new(name, v)
            }
            DataType::Float32 | DataType::Float64 => {
                let mut v = Vec::with_capacity(n);
                for (i, x) in vs.iter().enumerate() {
                    v.push(match x {
                        Value::Null => None,
                        Value::Number(num) => Some(num.as_f64().ok_or_else(|| bad(i, x))?),
                        x => return Err(bad(i, x)),
                    });
                }
                Column::new(name, v).cast(&dt).map_err(|e| e.to_string())?
            }
            dt if dt.is_integer() => {
                let mut v = Vec::with_capacity(n);
                for (i, x) in vs.iter().enumerate() {
                    v.push(match x {
                        Value::Null => None,
                        Value::Number(num) => Some(num.as_i64().ok_or_else(|| bad(i, x))?),
                        x => return Err(bad(i, x)),
                    });
                }
                Column::new(name, v)
                    .strict_cast(&dt)
                    .map_err(|_| format!("column {}: a value does not fit {}", c.name, c.dtype))?
            }
            // Strings and dates: the text, typed as for a CSV.
            _ => {
                let mut v: Vec<Option<String>> = Vec::with_capacity(n);
                for (i, x) in vs.iter().enumerate() {
                    v.push(match x {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        x => return Err(bad(i, x)),
                    });
                }
                let ca: StringChunked = v.iter().map(|s| s.as_deref()).collect();
                if dt == DataType::String {
                    ca.with_name(name).into_column()
                } else {
                    typed_from_text(&c.name, &c.dtype, &ca)?
                }
            }
        };
        out.push(col);
    }
    DataFrame::new(n, out).map_err(|e| e.to_string())
}

/// What `merge` does besides putting the parts together.
#[derive(Default)]
pub struct MergeOptions {
    /// Record a case per anomaly in the store (the single writer).
    pub record: bool,
    /// Where the merged output goes (`-`: standard output), and in which format (None: the
    /// parts').
    pub out: PathBuf,
    pub format: Option<Format>,
    /// Where the merge stages each part's rows (None: the system's temporary folder).
    pub stage_dir: Option<PathBuf>,
    /// With `record`: the day's cycle (every current row of the file) and what the run summary
    /// says of the file, to roll the profile's cases forward as a run does. Parts written by
    /// workers do not carry the day's other rows; a bounded-memory run builds the cycle as it
    /// goes.
    pub roll: Option<Roll>,
    /// With `record`: about how many records' cases are recorded at a time (0: 20,000). The
    /// cases are the same whatever the size; a smaller one holds less at once.
    pub case_group: usize,
}

/// What a merge needs to roll the cases forward.
pub struct Roll {
    pub cycle: Option<crate::cases::Cycle>,
    pub day: pipeline::DayFacts,
    /// The file, as the run summary names it.
    pub file: String,
}

/// The merged output.
pub struct Merged {
    /// Rows written to the output.
    pub written: usize,
    pub format: Format,
    pub all_rows: bool,
    pub clusters: Vec<ClusterSummary>,
    /// The triage over every part (with the verdicts applied at merge).
    pub triage: TriageSummary,
    /// Candidates an analyst had judged normal, quieted at merge (of them, how many flagged).
    pub judged: usize,
    pub judged_flagged: usize,
    pub parts: usize,
    pub rows_read: usize,
    pub rows: usize,
    pub model_version: String,
    pub profile: String,
    /// The written anomalies' buckets.
    pub buckets: crate::categorize::BucketTally,
    /// What the LLM pass did, when it is enabled.
    pub llm: Option<crate::categorize::llm::LlmReport>,
    /// The case of each written anomaly (with `record`).
    pub cases: Vec<pipeline::CaseMark>,
    /// The run summary, when the cases were rolled forward ([`MergeOptions::roll`]).
    pub summary: Option<crate::cycle::RunSummary>,
    /// The rejects report of the first part (every worker checks the whole file: they are all
    /// the same), when there is one.
    pub rejects: Option<PathBuf>,
    /// How long each step took.
    pub timings: Vec<(&'static str, std::time::Duration)>,
}

/// Where one row of the partitions stands in the merged whole.
struct AllRows {
    bd_row: Vec<u64>,
    score: Vec<f64>,
    difference: Vec<f64>,
    cluster: Vec<u32>,
    flags: Vec<u8>,
}

/// Merges `parts` (each written by `run --partition I/N` with the same model) into the output a
/// run on the whole file with that model writes. `store` gives the analysts' verdicts (with
/// `[feedback] enabled`) and the LLM's cache, and takes the cases with `opts.record`.
pub fn merge(
    cfg: &Config,
    parts: &[PathBuf],
    store: &crate::store::Store,
    opts: MergeOptions,
) -> Result<Merged, PartError> {
    // A glob over a directory of parts (`parts/*`) also names their cluster summaries, rejects
    // reports and sidecars: those are not parts.
    let beside: std::collections::HashSet<PathBuf> = parts
        .iter()
        .filter(|p| meta_path(p).is_file())
        .flat_map(|p| {
            [
                crate::output::sibling_path(p, "clusters", "csv"),
                crate::output::rejects_path(p),
                meta_path(p),
                rows_path(p),
            ]
        })
        .collect();
    let mut timings = Vec::new();
    let mut t = std::time::Instant::now();
    let mut lap = |name: &'static str, timings: &mut Vec<_>| {
        timings.push((name, t.elapsed()));
        t = std::time::Instant::now();
    };
    let parts: Vec<Part> = parts
        .iter()
        .filter(|p| !beside.contains(*p))
        .map(|p| read_part(p))
        .collect::<Result<_, _>>()?;
    lap("read sidecars", &mut timings);
    merge_parts(cfg, parts, store, opts, timings)
}

/// [`merge`] of parts already read (or described in memory by [`describe_part`]).
pub fn merge_parts(
    cfg: &Config,
    mut parts: Vec<Part>,
    store: &crate::store::Store,
    opts: MergeOptions,
    mut timings: Vec<(&'static str, std::time::Duration)>,
) -> Result<Merged, PartError> {
    let mut t = std::time::Instant::now();
    let lap = |name: &'static str, t: &mut std::time::Instant, timings: &mut Vec<_>| {
        timings.push((name, t.elapsed()));
        tracing::debug!(stage = name, resident_mib = ?crate::logging::resident_mib(), "merge stage done");
        *t = std::time::Instant::now();
    };
    check_parts(&parts, cfg)?;
    let meta = parts[0].meta.clone();

    // Every row of every part, in one list (moved out of the parts: held once); a row found in
    // two parts is refused. Row positions are kept as u32, as the ranks are.
    let lens: Vec<usize> = parts.iter().map(|p| p.rows.len()).collect();
    let total: usize = lens.iter().sum();
    if u32::try_from(total).is_err() {
        return Err(PartError::Invalid {
            file: parts[0].path.display().to_string(),
            message: format!("the parts hold {total} rows, more than a merge can rank"),
        });
    }
    let mut all = AllRows {
        bd_row: Vec::with_capacity(total),
        score: Vec::with_capacity(total),
        difference: Vec::with_capacity(total),
        cluster: Vec::with_capacity(total),
        flags: Vec::with_capacity(total),
    };
    for p in parts.iter_mut() {
        let r = &mut p.rows;
        all.bd_row.append(&mut std::mem::take(&mut r.bd_row));
        all.score.append(&mut std::mem::take(&mut r.score));
        all.difference
            .append(&mut std::mem::take(&mut r.difference));
        all.cluster.append(&mut std::mem::take(&mut r.cluster));
        all.flags.append(&mut std::mem::take(&mut r.flags));
    }
    let owner = |i: u32| -> &Part {
        let mut i = i as usize;
        let mut k = 0;
        while k + 1 < lens.len() && i >= lens[k] {
            i -= lens[k];
            k += 1;
        }
        &parts[k]
    };
    let mut by_row: Vec<u32> = (0..total as u32).collect();
    by_row.sort_unstable_by_key(|i| all.bd_row[*i as usize]);
    for w in by_row.windows(2) {
        if all.bd_row[w[0] as usize] == all.bd_row[w[1] as usize] {
            let (a, b) = (owner(w[0]), owner(w[1]));
            return Err(PartError::Mismatch {
                file: b.path.display().to_string(),
                other: a.path.display().to_string(),
                message: format!(
                    "both hold row {} of the input: the parts overlap",
                    all.bd_row[w[0] as usize]
                ),
            });
        }
    }

    // The analysts' verdicts: a candidate judged normal is quiet, as in a run that reads them.
    let mut triage = TriageSummary::default();
    for p in &parts {
        add_triage(&mut triage, &p.meta.triage);
    }
    let (judged, judged_flagged) =
        apply_verdicts(cfg, &parts, &lens, store, &mut all, &mut triage)?;

    // Ranks across every row: by triage score, then file order (as a run ranks).
    let mut order: Vec<u32> = (0..total as u32).collect();
    order.sort_unstable_by(|a, b| {
        let (a, b) = (*a as usize, *b as usize);
        all.score[a]
            .total_cmp(&all.score[b])
            .then(all.bd_row[a].cmp(&all.bd_row[b]))
    });
    let mut rank = vec![0u32; total];
    for (pos, i) in order.iter().enumerate() {
        rank[*i as usize] = (pos + 1) as u32;
    }
    drop(order);
    // A row's place among all of them: `by_row` is sorted by bd_row.
    let at_row = |r: u64| -> Option<usize> {
        by_row
            .binary_search_by_key(&r, |i| all.bd_row[*i as usize])
            .ok()
            .map(|k| by_row[k] as usize)
    };
    lap("ranks", &mut t, &mut timings);

    // The written rows in the output's order (by rank, or file order with every row), and each
    // row's position there.
    let written = |i: usize| meta.all_rows || all.flags[i] & (FLAGGED | PROPOSED) != 0;
    let mut out_rows: Vec<usize> = (0..total).filter(|i| written(*i)).collect();
    if meta.all_rows {
        out_rows.sort_unstable_by_key(|i| all.bd_row[*i]);
    } else {
        out_rows.sort_unstable_by_key(|i| rank[*i]);
    }
    let mut pos_of: Vec<u32> = vec![u32::MAX; total];
    for (k, i) in out_rows.iter().enumerate() {
        pos_of[*i] = k as u32;
    }
    let n_out = out_rows.len();
    // The records that get a case (every written row, or the anomalies among all rows), in the
    // output's order: each one's place among them, by output position, and its position.
    let is_case = |i: usize| !meta.all_rows || all.flags[i] & (FLAGGED | PROPOSED) != 0;
    let mut case_pos: Vec<u32> = Vec::new();
    let mut case_of_pos: Vec<u32> = Vec::new();
    if opts.record {
        case_of_pos = vec![u32::MAX; n_out];
        for (pos, i) in out_rows.iter().enumerate() {
            if is_case(*i) {
                case_of_pos[pos] = case_pos.len() as u32;
                case_pos.push(pos as u32);
            }
        }
    }
    drop(out_rows);

    let flagged_total = all.flags.iter().filter(|f| **f & FLAGGED != 0).count();
    let mut roll = opts.roll;
    if let Some(r) = roll.as_mut() {
        // The summary counts the day after the analysts' verdicts, as a run does.
        r.day.flagged = flagged_total;
        r.day.routine = pipeline::routine_breaks(&triage);
    }
    let rules = pipeline::rules_file(cfg)?;
    let format = opts.format.unwrap_or(if meta.output == "jsonl" {
        Format::Jsonl
    } else {
        Format::Csv
    });
    let stage = match &opts.stage_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| werr(d, e))?;
            tempfile::Builder::new()
                .prefix("merge-")
                .tempdir_in(d)
                .map_err(|e| werr(d, e))?
        }
        None => tempfile::tempdir().map_err(|e| werr(Path::new("temporary folder"), e))?,
    };

    // Each part in turn: its written rows with the merged score, flag and rank, categorized
    // again (the severity's top share, the summary's rank and any rule reading `rank` depend on
    // every part), staged on disk in the output's order; what the cases need is kept.
    let resolved = &meta.resolved;
    let mut staged: Vec<Staged> = Vec::with_capacity(parts.len());
    let mut spill = if opts.record {
        Some(CaseSpill::create(stage.path(), case_pos.len())?)
    } else {
        None
    };
    let mut buckets = crate::categorize::BucketTally::default();
    let mut llm: Option<crate::categorize::llm::LlmReport> = None;
    let (mut read_time, mut cat_time) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for (k, p) in parts.iter().enumerate() {
        let t0 = std::time::Instant::now();
        let table = read_table(p)?;
        let rows_of: Vec<u64> = table
            .column("bd_row")?
            .cast(&DataType::UInt64)?
            .u64()?
            .iter()
            .map(|v| v.unwrap_or(u64::MAX))
            .collect();
        let mut keep: Vec<(u32, usize, usize)> = Vec::new();
        for (r, bd_row) in rows_of.iter().enumerate() {
            let i = at_row(*bd_row).ok_or_else(|| PartError::Invalid {
                file: p.path.display().to_string(),
                message: format!("it holds row {bd_row}, which no part's rows file lists"),
            })?;
            if pos_of[i] != u32::MAX {
                keep.push((pos_of[i], r, i));
            }
        }
        keep.sort_unstable();
        let take = IdxCa::from_vec("take".into(), keep.iter().map(|k| k.1 as IdxSize).collect());
        let mut table = table.take(&take)?;
        table.with_column(Column::new(
            "score".into(),
            keep.iter().map(|k| all.score[k.2]).collect::<Vec<f64>>(),
        ))?;
        table.with_column(Column::new(
            "is_anomaly".into(),
            keep.iter()
                .map(|k| all.flags[k.2] & FLAGGED != 0)
                .collect::<Vec<bool>>(),
        ))?;
        table.with_column(Column::new(
            "rank".into(),
            keep.iter().map(|k| rank[k.2]).collect::<Vec<u32>>(),
        ))?;
        // The canonical categories the rules see.
        for role in &resolved.categoricals {
            let name = format!("bd_cat_{}", role.slug);
            if table.column(&name).is_ok() {
                continue;
            }
            if let Ok(c) = table.column(&role.header).and_then(|c| c.str().cloned()) {
                let v: StringChunked = c.iter().map(|v| Some(v.unwrap_or("").trim())).collect();
                table.with_column(v.with_name(name.into()).into_column())?;
            }
        }
        read_time += t0.elapsed();
        let t0 = std::time::Instant::now();
        let rows: Vec<usize> = (0..table.height())
            .filter(|r| is_case(keep[*r].2))
            .collect();
        let categorized =
            pipeline::categorize(cfg, &rules, &table, resolved, &rows, flagged_total, store)?;
        pipeline::with_categories(&mut table, &rows, &categorized.cats)?;
        add_llm(&mut llm, categorized.llm);
        cat_time += t0.elapsed();
        // The categorized rows' case inputs, spilled to the stage (named by their place among
        // the cases, as in one table of them).
        if let Some(spill) = spill.as_mut() {
            let at: Vec<u32> = rows
                .iter()
                .map(|r| case_of_pos[keep[*r].0 as usize])
                .collect();
            let (inputs, auto) = pipeline::break_inputs(
                &meta.profile,
                &table,
                &rows,
                &categorized.cats,
                &meta.model_version,
                Some(&at),
            )?;
            spill.put(&at, &inputs, &auto)?;
        }
        for c in &categorized.cats {
            buckets.add(c);
        }
        drop(categorized.cats);
        // The part's rows as the output writes them, without the case columns (added when the
        // staged parts are merged).
        let cols: Vec<PlSmallStr> = crate::output::output_columns(&table)
            .into_iter()
            .filter(|c| !CASE_COLUMNS.contains(&c.as_str()))
            .collect();
        let path = stage.path().join(format!("part-{k}.staged"));
        crate::output::write_table(&table.select(cols)?, &path, format)
            .map_err(|e| werr(&path, e))?;
        staged.push(Staged {
            path,
            pos: keep.iter().map(|k| k.0).collect(),
        });
        tracing::debug!(part = k, resident_mib = ?crate::logging::resident_mib(), "merge: part staged");
    }
    timings.push(("read parts", read_time));
    timings.push(("categorize", cat_time));
    lap("parts in all", &mut t, &mut timings);
    drop(pos_of);

    // The cases, in the output's order, group by group from the spill.
    drop(case_of_pos);
    let mut summary = None;
    let cases: Vec<pipeline::CaseMark> = match spill {
        Some(spill) => {
            let mut spill = spill.finish()?;
            let group = match opts.case_group {
                0 => CASE_GROUP,
                n => n,
            };
            let groups = pipeline::break_groups(spill.breaks(), group);
            let roll = roll.map(|r| (r.day, r.cycle, r.file));
            let (marks, s) =
                pipeline::record_groups(cfg, store, &groups, case_pos.len(), roll, |group| {
                    spill.take(group)
                })?;
            summary = s;
            lap("cases", &mut t, &mut timings);
            marks
        }
        None => Vec::new(),
    };

    // The staged parts merged into the output, in order, with the case columns.
    write_staged(&staged, n_out, &cases, &case_pos, &opts.out, format)?;
    drop(stage);
    lap("write", &mut t, &mut timings);
    let clusters = merge_clusters(&parts, &all, meta.clusters, meta.top_accounts);
    lap("clusters", &mut t, &mut timings);
    let rejects = crate::output::rejects_path(&parts[0].path);
    Ok(Merged {
        written: n_out,
        format,
        all_rows: meta.all_rows,
        clusters,
        triage,
        judged,
        judged_flagged,
        parts: parts.len(),
        rows_read: meta.rows_read,
        rows: total,
        model_version: meta.model_version.clone(),
        profile: meta.profile.clone(),
        buckets,
        llm,
        cases,
        summary,
        rejects: rejects.is_file().then_some(rejects),
        timings,
    })
}

/// The case columns, last in the output.
const CASE_COLUMNS: [&str; 3] = ["case_id", "ticket", "case_status"];

/// A part's written rows staged on disk, in the output's order, and their positions there.
struct Staged {
    path: PathBuf,
    pos: Vec<u32>,
}

/// The case inputs of a merge's records, spilled to its stage part by part as they are
/// categorized and read back group by group, so the merge never holds them all: a record's
/// input is one byte (proposed for auto-resolution or not) then the input as JSON.
struct CaseSpill {
    path: PathBuf,
    w: std::io::BufWriter<std::fs::File>,
    len: u64,
    /// Each record's input (by its place among the cases): where it starts, its length and its
    /// break (a hash of its key and start date).
    index: Vec<SpillEntry>,
}

#[derive(Clone, Copy)]
struct SpillEntry {
    at: u64,
    len: u32,
    brk: u64,
}

const UNSPILLED: u64 = u64::MAX;

impl CaseSpill {
    fn create(dir: &Path, cases: usize) -> Result<CaseSpill, PartError> {
        let path = dir.join("cases.spill");
        let f = std::fs::File::create(&path).map_err(|e| werr(&path, e))?;
        Ok(CaseSpill {
            w: std::io::BufWriter::with_capacity(1 << 20, f),
            path,
            len: 0,
            index: vec![
                SpillEntry {
                    at: UNSPILLED,
                    len: 0,
                    brk: 0,
                };
                cases
            ],
        })
    }

    /// Spills the inputs of the cases at places `at` (checked first, as recording checks them).
    fn put(
        &mut self,
        at: &[u32],
        inputs: &[crate::cases::BreakInput],
        auto: &[bool],
    ) -> Result<(), PartError> {
        use rayon::prelude::*;
        let encoded: Vec<Vec<u8>> = inputs
            .par_iter()
            .zip(auto)
            .map(|(input, auto)| {
                input.validate()?;
                let mut b = vec![u8::from(*auto)];
                serde_json::to_writer(&mut b, input)
                    .map_err(|e| crate::cases::CaseError::Invalid(e.to_string()))?;
                Ok(b)
            })
            .collect::<Result<_, crate::cases::CaseError>>()?;
        for ((k, b), input) in at.iter().zip(encoded).zip(inputs) {
            let len = u32::try_from(b.len()).map_err(|_| PartError::Invalid {
                file: self.path.display().to_string(),
                message: format!("the case input of break {} is too large", input.key),
            })?;
            let slot = self
                .index
                .get_mut(*k as usize)
                .filter(|e| e.at == UNSPILLED)
                .ok_or_else(|| PartError::Invalid {
                    file: self.path.display().to_string(),
                    message: format!("case {k} was spilled twice or is not a case"),
                })?;
            *slot = SpillEntry {
                at: self.len,
                len,
                brk: break_hash(&input.key, input.start_date),
            };
            self.w.write_all(&b).map_err(|e| werr(&self.path, e))?;
            self.len += u64::from(len);
        }
        Ok(())
    }

    /// The spill, written, to be read back: every case must have been spilled.
    fn finish(mut self) -> Result<SpillReader, PartError> {
        self.w.flush().map_err(|e| werr(&self.path, e))?;
        if let Some(k) = self.index.iter().position(|e| e.at == UNSPILLED) {
            return Err(PartError::Invalid {
                file: self.path.display().to_string(),
                message: format!("case {k} of {} was never spilled", self.index.len()),
            });
        }
        let f = std::fs::File::open(&self.path).map_err(|e| werr(&self.path, e))?;
        Ok(SpillReader {
            r: std::io::BufReader::with_capacity(1 << 20, f),
            pos: 0,
            path: self.path,
            index: self.index,
        })
    }
}

/// Which break a case input is of, as a number (equal for the same key and start date).
fn break_hash(key: &str, start: chrono::NaiveDate) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    start.hash(&mut h);
    h.finish()
}

struct SpillReader {
    path: PathBuf,
    r: std::io::BufReader<std::fs::File>,
    pos: u64,
    index: Vec<SpillEntry>,
}

impl SpillReader {
    /// Each case's break, by place.
    fn breaks(&self) -> impl Iterator<Item = u64> + '_ {
        self.index.iter().map(|e| e.brk)
    }

    /// The inputs of the cases at places `group` (read in the file's order, handed back in the
    /// group's), with whether each is proposed for auto-resolution.
    fn take(
        &mut self,
        group: &[usize],
    ) -> Result<(Vec<crate::cases::BreakInput>, Vec<bool>), crate::cases::CaseError> {
        use rayon::prelude::*;
        use std::io::{Read, Seek};
        let bad = |e: &dyn std::fmt::Display| {
            crate::cases::CaseError::Invalid(format!(
                "reading the merge's case inputs back from {}: {e}",
                self.path.display()
            ))
        };
        if let Some(k) = group.iter().find(|k| **k >= self.index.len()) {
            return Err(bad(&format_args!("case {k} is not in the spill")));
        }
        let mut by_at: Vec<usize> = (0..group.len()).collect();
        by_at.sort_unstable_by_key(|j| self.index[group[*j]].at);
        let mut raw: Vec<Vec<u8>> = vec![Vec::new(); group.len()];
        for j in by_at {
            let e = self.index[group[j]];
            if e.at != self.pos {
                let ahead = e.at.checked_sub(self.pos).filter(|d| *d < (1 << 20));
                match ahead {
                    Some(d) => self.r.seek_relative(d as i64),
                    None => self.r.seek(std::io::SeekFrom::Start(e.at)).map(|_| ()),
                }
                .map_err(|e| bad(&e))?;
            }
            let mut b = vec![0u8; e.len as usize];
            self.r.read_exact(&mut b).map_err(|e| bad(&e))?;
            self.pos = e.at + u64::from(e.len);
            raw[j] = b;
        }
        let decoded: Vec<(crate::cases::BreakInput, bool)> = raw
            .par_iter()
            .map(|b| match b.split_first() {
                Some((auto, json)) => serde_json::from_slice(json)
                    .map(|input| (input, *auto == 1))
                    .map_err(|e| bad(&e)),
                None => Err(bad(&"an empty record")),
            })
            .collect::<Result<_, _>>()?;
        Ok(decoded.into_iter().unzip())
    }
}

/// Adds a part's LLM report to the merge's.
fn add_llm(
    sum: &mut Option<crate::categorize::llm::LlmReport>,
    part: Option<crate::categorize::llm::LlmReport>,
) {
    let Some(p) = part else { return };
    let Some(s) = sum.as_mut() else {
        *sum = Some(p);
        return;
    };
    s.rows += p.rows;
    s.distinct += p.distinct;
    s.cache_hits += p.cache_hits;
    s.asked += p.asked;
    s.http_requests += p.http_requests;
    s.used += p.used;
    for (k, v) in p.fallbacks {
        *s.fallbacks.entry(k).or_default() += v;
    }
    s.circuit_open |= p.circuit_open;
}

/// The records of a CSV file written by the output (RFC 4180: a quoted field may hold line
/// breaks), one at a time, each with its line break.
struct Records<R: std::io::BufRead> {
    r: R,
    buf: Vec<u8>,
}

impl<R: std::io::BufRead> Records<R> {
    fn next(&mut self) -> std::io::Result<Option<&[u8]>> {
        self.buf.clear();
        let mut quotes = 0usize;
        loop {
            let start = self.buf.len();
            let n = self.r.read_until(b'\n', &mut self.buf)?;
            quotes += memchr::memchr_iter(b'"', &self.buf[start..]).count();
            if n == 0 || quotes.is_multiple_of(2) {
                return Ok((!self.buf.is_empty()).then_some(&self.buf[..]));
            }
        }
    }
}

/// A text cell as the CSV output writes it: neutralised, quoted when it holds the delimiter, a
/// quote or a line break, and `""` when empty.
fn csv_cell(s: &str) -> String {
    let s = crate::text::csv_text(s);
    if s.is_empty() {
        return "\"\"".into();
    }
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.into_owned()
    }
}

/// Writes the output from the staged parts: the rows in order of position, each with its
/// case's id, ticket and status (`cases`, at `case_pos`, ascending; empty for the others).
fn write_staged(
    staged: &[Staged],
    n_out: usize,
    cases: &[pipeline::CaseMark],
    case_pos: &[u32],
    out: &Path,
    format: Format,
) -> Result<(), PartError> {
    let mut readers: Vec<Records<std::io::BufReader<std::fs::File>>> = Vec::new();
    for s in staged {
        let f = std::fs::File::open(&s.path).map_err(|e| PartError::Read {
            file: s.path.display().to_string(),
            message: e.to_string(),
        })?;
        readers.push(Records {
            r: std::io::BufReader::with_capacity(1 << 20, f),
            buf: Vec::new(),
        });
    }
    let bad = |s: &Staged, e: &dyn std::fmt::Display| PartError::Invalid {
        file: s.path.display().to_string(),
        message: e.to_string(),
    };
    let mut w = crate::output::open(out).map_err(|e| werr(out, e))?;
    let wr = |e: std::io::Error| werr(out, e);
    if format == Format::Csv {
        // Every staged part starts with the same header: the first's is the output's.
        let mut header: Option<Vec<u8>> = None;
        for (r, s) in readers.iter_mut().zip(staged) {
            let h = r
                .next()
                .map_err(|e| bad(s, &e))?
                .unwrap_or_default()
                .to_vec();
            header.get_or_insert(h);
        }
        let mut h = header.unwrap_or_default();
        while matches!(h.last(), Some(b'\n' | b'\r')) {
            h.pop();
        }
        w.write_all(&h).map_err(wr)?;
        w.write_all(b",case_id,ticket,case_status\n").map_err(wr)?;
    }
    // The next row of each part, by position.
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(u32, usize, usize)>> = staged
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.pos.is_empty())
        .map(|(k, s)| std::cmp::Reverse((s.pos[0], k, 0)))
        .collect();
    let mut next_case = 0usize;
    let mut written = 0usize;
    while let Some(std::cmp::Reverse((pos, k, at))) = heap.pop() {
        let s = &staged[k];
        let rec = readers[k]
            .next()
            .map_err(|e| bad(s, &e))?
            .ok_or_else(|| bad(s, &"it ends before its last row"))?;
        let mut rec = rec;
        while matches!(rec.last(), Some(b'\n' | b'\r')) {
            rec = &rec[..rec.len() - 1];
        }
        let case = (case_pos.get(next_case) == Some(&pos)).then(|| {
            next_case += 1;
            &cases[next_case - 1]
        });
        let (id, ticket, status) = match case {
            Some(c) => (c.id.as_str(), c.ticket.as_str(), c.status.as_str()),
            None => ("", "", ""),
        };
        match format {
            Format::Csv => {
                w.write_all(rec).map_err(wr)?;
                for v in [id, ticket, status] {
                    w.write_all(b",").map_err(wr)?;
                    w.write_all(csv_cell(v).as_bytes()).map_err(wr)?;
                }
                w.write_all(b"\n").map_err(wr)?;
            }
            Format::Jsonl => {
                let mut obj: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(rec).map_err(|e| bad(s, &e))?;
                for (name, v) in CASE_COLUMNS.iter().zip([id, ticket, status]) {
                    obj.insert(name.to_string(), serde_json::Value::String(v.to_string()));
                }
                serde_json::to_writer(&mut w, &serde_json::Value::Object(obj))
                    .map_err(|e| werr(out, e))?;
                w.write_all(b"\n").map_err(wr)?;
            }
        }
        written += 1;
        if let Some(p) = s.pos.get(at + 1) {
            heap.push(std::cmp::Reverse((*p, k, at + 1)));
        }
    }
    if written != n_out || next_case != cases.len() {
        return Err(PartError::Invalid {
            file: out.display().to_string(),
            message: format!(
                "the merge wrote {written} rows of {n_out} ({next_case} of {} cases)",
                cases.len()
            ),
        });
    }
    w.flush().map_err(wr)?;
    Ok(())
}

fn add_triage(sum: &mut TriageSummary, part: &TriageSummary) {
    sum.rows += part.rows;
    sum.breaks += part.breaks;
    sum.candidates += part.candidates;
    sum.flagged += part.flagged;
    sum.flagged_own += part.flagged_own;
    sum.flagged_peers += part.flagged_peers;
    for (k, n) in &part.quiet_breaks {
        *sum.quiet_breaks.entry(k.clone()).or_default() += n;
    }
}

/// Quiets the candidates an analyst judged normal (the store's rejected cases, as
/// [`pipeline::quiet_explained_and_judged`] matches them): their score becomes a quiet row's and
/// their flag goes. Returns how many, and how many of them were flagged.
fn apply_verdicts(
    cfg: &Config,
    parts: &[Part],
    lens: &[usize],
    store: &crate::store::Store,
    all: &mut AllRows,
    triage: &mut TriageSummary,
) -> Result<(usize, usize), PartError> {
    if !cfg.feedback.enabled {
        return Ok((0, 0));
    }
    let cands: Vec<(usize, &Candidate)> = {
        let mut base = 0;
        let mut v = Vec::new();
        for (p, len) in parts.iter().zip(lens) {
            v.extend(p.rows.candidates.iter().map(|c| (base + c.at, c)));
            base += len;
        }
        v
    };
    if !cfg.feedback.enabled || cands.is_empty() {
        return Ok((0, 0));
    }
    let profile = &parts[0].meta.profile;
    let df = DataFrame::new(
        cands.len(),
        vec![
            Column::new(crate::features::IS_BREAK.into(), vec![true; cands.len()]),
            Column::new(
                "bd_key".into(),
                cands
                    .iter()
                    .map(|(_, c)| c.key.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "bd_date".into(),
                cands.iter().map(|(_, c)| c.date).collect::<Vec<_>>(),
            )
            .cast(&DataType::Date)?,
            Column::new(
                "bd_difference".into(),
                cands
                    .iter()
                    .map(|(i, _)| all.difference[*i])
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "f_break_age".into(),
                cands.iter().map(|(_, c)| c.age).collect::<Vec<_>>(),
            ),
        ],
    )?;
    let mut quiet = vec![None; cands.len()];
    pipeline::quiet_explained_and_judged(cfg, &df, profile, store, &mut quiet)?;
    let own_z_min = parts[0].meta.own_z_min;
    let offset = parts[0].meta.offset;
    let (mut judged, mut judged_flagged) = (0, 0);
    for (k, (i, c)) in cands.iter().enumerate() {
        if quiet[k] != Some(Quiet::Judged) {
            continue;
        }
        // As the triage scores a quiet row, and counts it.
        let m = if c.model.is_finite() { c.model } else { 0.0 };
        all.score[*i] = 1.0 + m.max(-1.0);
        judged += 1;
        triage.candidates -= 1;
        *triage
            .quiet_breaks
            .entry(Quiet::Judged.describe())
            .or_default() += 1;
        if all.flags[*i] & FLAGGED != 0 {
            judged_flagged += 1;
            all.flags[*i] &= !FLAGGED;
            triage.flagged -= 1;
            let z = Some(c.own_z)
                .filter(|z| z.is_finite() && *z > 0.0)
                .unwrap_or(0.0);
            if z > own_z_min {
                triage.flagged_own -= 1;
            } else if m < offset {
                triage.flagged_peers -= 1;
            }
        }
        all.flags[*i] &= !CANDIDATE;
    }
    Ok((judged, judged_flagged))
}

/// The cluster summary over every row, as [`crate::detect::cluster::summarize`] computes it for
/// one run: the differences of each cluster sorted, summed in that order, their median; the top
/// accounts from the parts' own (an account is in one part only).
fn merge_clusters(parts: &[Part], all: &AllRows, k: usize, top: usize) -> Vec<ClusterSummary> {
    let mut diffs: Vec<Vec<f64>> = vec![Vec::new(); k];
    let mut anomalies = vec![0usize; k];
    for i in 0..all.bd_row.len() {
        let c = all.cluster[i] as usize;
        if c < k {
            diffs[c].push(all.difference[i]);
            if all.flags[i] & FLAGGED != 0 {
                anomalies[c] += 1;
            }
        }
    }
    (0..k)
        .map(|c| {
            let d = &mut diffs[c];
            d.sort_by(f64::total_cmp);
            let tops: Vec<(String, usize)> = parts
                .iter()
                .flat_map(|p| p.meta.tops.get(c).cloned().unwrap_or_default())
                .collect();
            ClusterSummary::of(c, anomalies[c], d, tops, top)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_file_round_trips_and_refuses_damage() {
        let rows = PartRows {
            bd_row: vec![2, 5, 9],
            score: vec![-0.61, 0.25, f64::NAN],
            difference: vec![12.5, 0.0, -3.0],
            cluster: vec![0, 2, 1],
            flags: vec![FLAGGED | CANDIDATE, PROPOSED, 0],
            candidates: vec![Candidate {
                at: 0,
                key: "00001|1000|Zürich".into(),
                date: Some(19_800),
                age: 3.0,
                model: -0.55,
                own_z: 7.25,
            }],
        };
        let b = rows.to_bytes();
        let back = PartRows::from_bytes(&b).unwrap();
        assert_eq!(back.bd_row, rows.bd_row);
        assert_eq!(back.candidates, rows.candidates);
        assert!(back.score[2].is_nan() && back.score[..2] == rows.score[..2]);
        assert!(
            PartRows::from_bytes(&b[..b.len() - 1])
                .unwrap_err()
                .contains("ends too early")
        );
        assert!(
            PartRows::from_bytes(b"not a part file")
                .unwrap_err()
                .contains("signature")
        );
        let mut huge = b.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(PartRows::from_bytes(&huge).is_err());
    }

    #[test]
    fn text_cells_are_typed_back_exactly() {
        let ca: StringChunked = [Some("0.1"), Some("-1e300"), None, Some("NaN")]
            .into_iter()
            .collect();
        let c = typed_from_text("x", "f64", &ca).unwrap();
        let v: Vec<Option<f64>> = c.f64().unwrap().iter().collect();
        assert_eq!(v[0], Some(0.1));
        assert_eq!(v[1], Some(-1e300));
        assert_eq!(v[2], None);
        assert!(v[3].unwrap().is_nan());
        let ca: StringChunked = [Some("2024-02-29")].into_iter().collect();
        let c = typed_from_text("d", "date", &ca).unwrap();
        assert_eq!(c.dtype(), &DataType::Date);
        let ca: StringChunked = [Some("x1")].into_iter().collect();
        let e = typed_from_text("rank", "u32", &ca).unwrap_err();
        assert!(e.contains("rank") && e.contains("x1"), "{e}");
        let ca: StringChunked = [Some("'=SUM(A1)"), Some("'plain")].into_iter().collect();
        let c = typed_from_text("c", "str", &ca).unwrap();
        let v: Vec<Option<&str>> = c.str().unwrap().iter().collect();
        assert_eq!(v, vec![Some("=SUM(A1)"), Some("'plain")]);
    }
}
