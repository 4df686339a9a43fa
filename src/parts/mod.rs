//! The files of a partitioned run, and merging them into the output of one run.
//!
//! A worker (`breakdesk run FILE --model M --partition I/N --out P`) writes the part `P`: the
//! same CSV or JSON Lines a run writes, for the rows of its accounts, ranked within the part
//! (see [`crate::partition`]), with the root-cause columns empty (the merge categorizes). Beside it go its cluster summary and rejects report, as `run`
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
//! the workers do not have), the rows categorized (the severity's "top share of the
//! flagged rows", the summary's rank and any rule that reads `rank` depend on the whole file),
//! and the cluster summary rebuilt from every row.

use crate::categorize::RulesError;
use crate::detect::cluster::ClusterSummary;
use crate::detect::triage::{Quiet, TriageSummary};
use crate::output::Format;
use crate::partition::Partition;
use crate::pipeline::Settings;
use crate::pipeline::{self, Analysis};
use crate::profile::Resolved;
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

mod merge;
mod read;
mod spill;
mod table;

pub use merge::*;
pub use read::*;
use spill::*;
pub use table::table_path;

/// Version of the sidecars' layout.
pub const PART_FORMAT: u32 = 2;

const ROWS_MAGIC: &[u8; 8] = b"BDROWS\x00\x01";

/// Records whose cases a merge records at a time, at most (see [`pipeline::break_groups`]).
/// Each group reads and rewrites the store's whole index once (about 0.1-0.2 s at 5,000,000
/// rows, whatever the group's size): at 5,000,000 rows 50,000 took 3.2-3.3 s against 3.7 s for
/// 20,000; with 100,000 (three groups instead of six) the groups' recording took 1.77-1.80 s
/// against 2.19 s in instrumented runs, and the 20,000,000-row run peaked at 2,587 MiB
/// (BENCHMARKS.md).
const CASE_GROUP: usize = 100_000;

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
    /// Too many of the whole file's rows were rejected, with every reject (for the report).
    #[error("{error}")]
    TooManyRejects {
        error: Box<crate::ingest::IngestError>,
        rejects: Vec<crate::ingest::prepare::Reject>,
    },
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error(transparent)]
    Detect(#[from] pipeline::DetectError),
    #[error(transparent)]
    Cases(#[from] crate::cases::CaseError),
    #[error("building the merged table: {0}")]
    Table(#[from] PolarsError),
    /// Stopped on request ([`MergeOptions::cancel`]) before anything was recorded or written.
    #[error("cancelled")]
    Cancelled,
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
    /// Rows read from the whole file and its history (every worker counts them).
    pub rows_read: usize,
    pub history_rows_read: usize,
    /// The rejected rows every worker reports alike, and this partition's own (the merge adds
    /// the parts' own up and checks the whole file's share).
    pub rejects: pipeline::PartitionRejects,
    /// The decimal separator the amounts were read with (`.` or `,`): set, or detected from this
    /// partition's amounts; None when none of them reads differently either way. The parts of
    /// one file must agree.
    pub decimal: Option<String>,
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
pub fn rules_digest(settings: &Settings) -> String {
    use sha2::{Digest, Sha256};
    let Some(p) = &settings.categorize.rules else {
        return "built-in".into();
    };
    match std::fs::read(p) {
        Ok(bytes) => format!("{:x}", Sha256::digest(&bytes)),
        Err(_) => format!("unreadable {}", p.display()),
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

/// Writes the sidecars of the part `out` that a worker's analysis `a` wrote. The triage's
/// candidates are those of the analysis (a worker's store is empty: no analyst's verdict made
/// a candidate quiet; the merge applies them).
pub fn write_sidecars(
    settings: &Settings,
    out: &Path,
    a: &Analysis,
    src: &PartSource<'_>,
) -> Result<(), PartError> {
    let (meta, rows) = describe_part(settings, out, a, src)?;
    let rows_file = rows_path(out);
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&rows_file).map_err(|e| werr(&rows_file, e))?,
    );
    w.write_all(&rows.to_bytes())
        .and_then(|_| w.flush())
        .map_err(|e| werr(&rows_file, e))?;
    // A CSV part's table, typed, for the merge; none beside a JSON Lines part.
    let table_file = table_path(out);
    if src.format == Format::Csv {
        table::write_table_bin(out, &a.table, &meta.columns)?;
    } else if table_file.is_file() {
        std::fs::remove_file(&table_file).map_err(|e| werr(&table_file, e))?;
    }
    // The meta file last: a part whose meta file exists is complete.
    let meta_file = meta_path(out);
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| werr(&meta_file, e))?;
    std::fs::write(&meta_file, json).map_err(|e| werr(&meta_file, e))?;
    Ok(())
}

/// The written table's columns and their types, as the part's sidecar names them.
fn part_columns(out: &Path, table: &DataFrame) -> Result<Vec<PartColumn>, PartError> {
    let internal = |e: PolarsError| werr(out, e);
    let mut columns = Vec::new();
    for name in crate::output::output_columns(table) {
        let c = table.column(&name).map_err(internal)?;
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
    Ok(columns)
}

/// What the sidecars of the part `out` say: its meta and its rows (see [`write_sidecars`]).
pub fn describe_part(
    settings: &Settings,
    out: &Path,
    a: &Analysis,
    src: &PartSource<'_>,
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
    let (quiet, own_z) = (&det.quiet, &det.own_z);
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
    let columns = part_columns(out, &a.table)?;
    let k = det.bundle.centroids.as_ref().map_or(1, |c| c.k);
    let meta = PartMeta {
        format: PART_FORMAT,
        partition: *src.partition,
        hash: crate::partition::HASH.to_string(),
        input: src.input.display().to_string(),
        history: src.history.map(|h| h.display().to_string()),
        rows_read: a.run.rows_read,
        history_rows_read: a.run.history_rows_read,
        rejects: a.run.partition_rejects.clone().unwrap_or_default(),
        decimal: match a.run.decimal.how {
            crate::ingest::prepare::DecimalSource::NoEvidence => None,
            _ => Some(a.run.decimal.decimal.setting().to_string()),
        },
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
        own_z_min: settings.detect.triage.own_z_min,
        rules: rules_digest(settings),
        triage: det.scored.triage.clone(),
        clusters: k,
        top_accounts: settings.detect.top_accounts,
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
