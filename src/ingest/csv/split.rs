//! Splitting a CSV file into parts by account key in one streaming pass.

use super::reader::{irregular_rejects, open};
use super::scan::scan;
#[cfg(doc)]
use super::{read, split_line};
use crate::ingest::IngestError;
use polars::prelude::CsvEncoding;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How to split a CSV file (see [`split`]).
#[derive(Debug, Clone, Copy)]
pub struct SplitOptions<'a> {
    /// The key columns, by header name, in the order `bd_key` joins them. Empty: every record
    /// goes to part 0.
    pub keys: &'a [String],
    /// Number of parts (>= 1). A record goes to part `crate::partition::partition_of(key, count)`
    /// where key = the key fields (unquoted as a CSV reader does, then trimmed) joined with '|'.
    pub count: usize,
    /// Stop after this many regular data records (a head sample); None: the whole file.
    pub limit: Option<usize>,
    /// Keep only the records of this part (a partition's worker): [`Split::parts`] then holds
    /// that one part, and the other records are counted but written nowhere.
    pub only: Option<usize>,
    /// Directory the parts are written in; file names `{stem}-{i}.csv` and `{stem}-{i}.rows`.
    pub dir: &'a Path,
    pub stem: &'a str,
}

/// One part of a [`Split`].
#[derive(Debug, Clone, PartialEq)]
pub struct SplitPart {
    /// The header line, then the part's records, byte for byte as in the (decoded) file, each
    /// ending in a line break.
    pub csv: PathBuf,
    /// One little-endian u64 per record of the part: its row number in the original file as
    /// [`read`] numbers rows (`bd_row`: the index among all data records, blank and ragged ones
    /// included, + 2). See [`read_rows`].
    pub rows: PathBuf,
    pub records: usize,
    /// The size of `csv`.
    pub bytes: u64,
}

/// A CSV file split into parts by [`split`].
#[derive(Debug, Clone)]
pub struct Split {
    /// The original path as displayed.
    pub source: String,
    /// The parts, in order (only the one kept with [`SplitOptions::only`]).
    pub parts: Vec<SplitPart>,
    /// The ragged records (wrong field count) as [`read`] reports them, and the blank records
    /// counted as it counts them. These records are written to no part.
    pub rejects: Vec<crate::ingest::prepare::Reject>,
    pub blank_rows: usize,
    /// Data records seen (all of them, irregular included).
    pub records: usize,
    /// Bytes of the (decoded) file read, header included.
    pub bytes: u64,
    /// The read options that read a part back exactly as the original would have been read:
    /// the caller's with `delimiter` set to the delimiter found (no re-sniffing) and `encoding`
    /// UTF-8 when the file was decoded or validated, lossy when it was read lossily.
    pub read_opts: crate::ingest::ReadOptions,
}

/// A part being written.
struct PartWriter {
    csv_path: PathBuf,
    rows_path: PathBuf,
    csv: std::io::BufWriter<std::fs::File>,
    rows: std::io::BufWriter<std::fs::File>,
    records: usize,
    bytes: u64,
}

impl PartWriter {
    fn create(
        csv_path: PathBuf,
        rows_path: PathBuf,
        buf: usize,
    ) -> Result<PartWriter, IngestError> {
        let create = |p: &Path, cap: usize| {
            std::fs::File::create(p)
                .map(|f| std::io::BufWriter::with_capacity(cap, f))
                .map_err(|e| IngestError::io(&p.display().to_string(), e))
        };
        let csv = create(&csv_path, buf)?;
        let rows = create(&rows_path, (buf / 8).max(4096))?;
        Ok(PartWriter {
            csv_path,
            rows_path,
            csv,
            rows,
            records: 0,
            bytes: 0,
        })
    }

    /// A line of the part's csv file, given a line break when it has none.
    fn write_line(&mut self, bytes: &[u8]) -> Result<(), IngestError> {
        let err = |e| IngestError::io(&self.csv_path.display().to_string(), e);
        self.csv.write_all(bytes).map_err(err)?;
        self.bytes += bytes.len() as u64;
        if bytes.last() != Some(&b'\n') {
            self.csv.write_all(b"\n").map_err(err)?;
            self.bytes += 1;
        }
        Ok(())
    }

    fn write_record(&mut self, bytes: &[u8], row: u64) -> Result<(), IngestError> {
        self.write_line(bytes)?;
        self.rows
            .write_all(&row.to_le_bytes())
            .map_err(|e| IngestError::io(&self.rows_path.display().to_string(), e))?;
        self.records += 1;
        Ok(())
    }

    fn finish(self) -> Result<SplitPart, IngestError> {
        for (w, p) in [(self.csv, &self.csv_path), (self.rows, &self.rows_path)] {
            w.into_inner()
                .map_err(|e| IngestError::io(&p.display().to_string(), e.into_error()))?;
        }
        Ok(SplitPart {
            csv: self.csv_path,
            rows: self.rows_path,
            records: self.records,
            bytes: self.bytes,
        })
    }
}

/// Bytes of records the scan hands on to the writer at a time.
const BATCH_BYTES: usize = 4 << 20;

/// Records handed from the scan to the writer: each one's index among the data records (-1:
/// the header) and its place in `bytes`.
#[derive(Default)]
struct Batch {
    records: Vec<(i64, std::ops::Range<usize>)>,
    bytes: Vec<u8>,
}

impl Batch {
    fn push(&mut self, index: i64, rec: &[u8]) {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(rec);
        self.records.push((index, at..self.bytes.len()));
    }
}

/// Extracts the key of a record: the fields `cols` (indices into the record's fields) unquoted
/// exactly as [`split_line`] does, each trimmed, joined with `|`, as the UTF-8 bytes of the
/// text a reader builds (invalid bytes replaced as a lossy read replaces them). Works on bytes
/// and copies only the fields it needs.
struct KeyPicker {
    delim: u8,
    cols: Vec<usize>,
    /// Per field index up to the last key column: whether a key uses it.
    needed: Vec<bool>,
    /// Per field index: its unquoted bytes (key fields only).
    vals: Vec<Vec<u8>>,
    /// Per field index up to the last key column, when they hold no quote: where it starts
    /// and ends.
    spans: Vec<(usize, usize)>,
    key: Vec<u8>,
}

impl KeyPicker {
    fn new(delim: u8, cols: Vec<usize>) -> KeyPicker {
        let n = cols.iter().max().map_or(0, |m| m + 1);
        let mut needed = vec![false; n];
        for &c in &cols {
            needed[c] = true;
        }
        KeyPicker {
            delim,
            cols,
            needed,
            vals: vec![Vec::new(); n],
            spans: Vec::with_capacity(n),
            key: Vec::new(),
        }
    }

    /// The key of `record` (its bytes, a trailing line break allowed).
    fn key(&mut self, record: &[u8]) -> &[u8] {
        let line = without_line_break(record);
        // The fields up to the last key column, where they hold no quote (the common case),
        // are the bytes between the delimiters.
        if self.unquoted_spans(line) {
            self.key.clear();
            for (k, &c) in self.cols.iter().enumerate() {
                if k > 0 {
                    self.key.push(b'|');
                }
                if let Some(&(a, b)) = self.spans.get(c) {
                    push_trimmed(&mut self.key, &line[a..b]);
                }
            }
            return &self.key;
        }
        for v in &mut self.vals {
            v.clear();
        }
        let last = self.needed.len();
        let mut f = 0usize;
        let mut in_quotes = false;
        let mut i = 0;
        while i < line.len() {
            let b = line[i];
            let keep = if in_quotes {
                if b == b'"' {
                    if line.get(i + 1) == Some(&b'"') {
                        i += 1;
                        true
                    } else {
                        in_quotes = false;
                        false
                    }
                } else {
                    true
                }
            } else if b == b'"' {
                in_quotes = true;
                false
            } else if b == self.delim {
                f += 1;
                if f >= last {
                    break;
                }
                false
            } else {
                true
            };
            if keep && self.needed[f] {
                self.vals[f].push(b);
            }
            i += 1;
        }
        self.key.clear();
        for (k, &c) in self.cols.iter().enumerate() {
            if k > 0 {
                self.key.push(b'|');
            }
            push_trimmed(&mut self.key, &self.vals[c]);
        }
        &self.key
    }

    /// The partition (of `count`) of `record`'s key: [`crate::partition::partition_of_bytes`]
    /// of [`KeyPicker::key`], hashed as the fields are read when none of them holds a quote or
    /// a byte beyond ASCII (the common case).
    fn partition(&mut self, record: &[u8], count: usize) -> usize {
        use crate::partition::{FNV_OFFSET, fnv1a64_extend, partition_of_hash};
        let line = without_line_break(record);
        // The key's fields are ASCII in the common case (so trimmed as bytes).
        if self.unquoted_spans(line) && line[..self.spans.last().map_or(0, |s| s.1)].is_ascii() {
            let ws = |b: &u8| matches!(b, b'\t'..=b'\r' | b' ');
            let mut h = FNV_OFFSET;
            for (k, &c) in self.cols.iter().enumerate() {
                if k > 0 {
                    h = fnv1a64_extend(h, b"|");
                }
                let Some(&(a, b)) = self.spans.get(c) else {
                    continue;
                };
                let mut field = &line[a..b];
                if field.first().is_some_and(ws) || field.last().is_some_and(ws) {
                    let from = field.iter().position(|b| !ws(b)).unwrap_or(field.len());
                    let to = field.iter().rposition(|b| !ws(b)).map_or(from, |z| z + 1);
                    field = &field[from..to];
                }
                h = fnv1a64_extend(h, field);
            }
            return partition_of_hash(h, count);
        }
        crate::partition::partition_of_bytes(self.key(record), count)
    }

    /// The spans of the fields of `line` up to the last key column (fewer when the line has
    /// fewer fields), when none of them holds a quote; false when one does.
    fn unquoted_spans(&mut self, line: &[u8]) -> bool {
        self.spans.clear();
        super::bytes::leading_spans(line, self.delim, self.needed.len(), &mut self.spans)
    }
}

/// A record's bytes without its line break (`\n` or `\r\n`), when it has one.
fn without_line_break(record: &[u8]) -> &[u8] {
    match record.strip_suffix(b"\n") {
        Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
        None => record,
    }
}

/// Appends `bytes` to `key` as text (UTF-8, or read lossily) with white space trimmed at both
/// ends, as `str::trim` trims.
fn push_trimmed(key: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_ascii() {
        // The white space of ASCII: tab, line feed, vertical tab, form feed, carriage return
        // and space.
        let ws = |b: &u8| matches!(b, b'\t'..=b'\r' | b' ');
        let a = bytes.iter().position(|b| !ws(b)).unwrap_or(bytes.len());
        let z = bytes.iter().rposition(|b| !ws(b)).map_or(a, |z| z + 1);
        key.extend_from_slice(&bytes[a..z]);
        return;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => key.extend_from_slice(s.trim().as_bytes()),
        Err(_) => key.extend_from_slice(String::from_utf8_lossy(bytes).trim().as_bytes()),
    }
}

/// Splits a CSV file into `opts.count` parts by account key in one streaming pass: each regular
/// data record is copied, byte for byte as in the (decoded) file, to the part of its key
/// ([`crate::partition::partition_of`] of the trimmed key fields joined with `|`, the way
/// `prepare` builds `bd_key`), and its original row number to the part's `.rows` file. Blank
/// and ragged records go to no part; they are reported as [`read`] reports them. Reading a part
/// with [`Split::read_opts`] gives the original's rows of that part (`bd_row` = the position in
/// the part; [`read_rows`] maps it back).
///
/// The part files are removed again when the split fails.
pub fn split(
    path: &Path,
    cfg: &crate::ingest::ReadOptions,
    opts: &SplitOptions,
) -> Result<Split, IngestError> {
    let mut created: Vec<PathBuf> = Vec::new();
    let out = split_into(path, cfg, opts, &mut created);
    if out.is_err() {
        for p in &created {
            std::fs::remove_file(p).ok();
        }
    }
    out
}

fn split_into(
    path: &Path,
    cfg: &crate::ingest::ReadOptions,
    opts: &SplitOptions,
    created: &mut Vec<PathBuf>,
) -> Result<Split, IngestError> {
    if opts.count == 0 {
        return Err(IngestError::Config {
            message: format!(
                "cannot split {} into 0 parts: the number of parts must be at least 1",
                path.display()
            ),
        });
    }
    let opened = open(path, cfg)?;
    let display = opened.display.clone();

    // The key columns, by header name (the BOM-less header, as `read` names columns; a name
    // that matches no header cell exactly may match one with its spaces trimmed).
    let mut cols = Vec::with_capacity(opts.keys.len());
    for k in opts.keys {
        let at = opened
            .header
            .iter()
            .position(|h| h == k)
            .or_else(|| opened.header.iter().position(|h| h.trim() == k.trim()));
        match at {
            Some(i) => cols.push(i),
            None => {
                return Err(IngestError::Data {
                    file: display,
                    message: format!(
                        "no key column {k:?} in the header (columns: {})",
                        opened.header.join(", ")
                    ),
                });
            }
        }
    }
    let mut picker = (!cols.is_empty()).then(|| KeyPicker::new(opened.delim, cols));
    if let Some(o) = opts.only.filter(|o| *o >= opts.count) {
        return Err(IngestError::Config {
            message: format!(
                "cannot keep part {o} of {} in {} parts",
                path.display(),
                opts.count
            ),
        });
    }

    // The parts written: all of them, or the one kept.
    let written: Vec<usize> = match opts.only {
        Some(o) => vec![o],
        None => (0..opts.count).collect(),
    };
    // 256 KiB buffers, less when there are many parts (at most 64 MiB in all).
    let buf = ((64usize << 20) / written.len()).clamp(16 << 10, 256 << 10);
    let mut parts = Vec::with_capacity(written.len());
    for &i in &written {
        let csv = opts.dir.join(format!("{}-{i}.csv", opts.stem));
        let rows = opts.dir.join(format!("{}-{i}.rows", opts.stem));
        created.push(csv.clone());
        created.push(rows.clone());
        parts.push(PartWriter::create(csv, rows, buf)?);
    }

    let count = opts.count;
    let only = opts.only;
    let limit = opts.limit;
    let mut records = 0usize;
    let mut regular = 0usize;
    let mut bytes = 0u64;
    let mut stopped = false;
    // Two threads: this one scans the file and hands the header and the regular records on in
    // batches; the other one picks each record's key and writes it to its part.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(4);
    // Keeping one part, the scan picks the keys and hands on that part's records only.
    let mut scan_keys = if only.is_some() { picker.take() } else { None };
    let (writers, keys) = (&mut parts, &mut picker);
    let (shape, written) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<(), IngestError> {
            for batch in rx {
                for (index, at) in &batch.records {
                    let rec = &batch.bytes[at.clone()];
                    if *index < 0 {
                        for p in writers.iter_mut() {
                            p.write_line(rec)?;
                        }
                        continue;
                    }
                    let part = match keys.as_mut() {
                        Some(kp) if count > 1 => {
                            crate::partition::partition_of_bytes(kp.key(rec), count)
                        }
                        _ => 0,
                    };
                    // Keeping one part, the scan handed on that part's records only.
                    let slot = if only.is_some() { 0 } else { part };
                    writers[slot].write_record(rec, *index as u64 + 2)?;
                }
            }
            Ok(())
        });
        let mut batch = Batch::default();
        let mut sink = |index: i64, rec: &[u8], is_regular: bool| -> Result<bool, IngestError> {
            bytes += rec.len() as u64;
            if index < 0 {
                batch.push(index, rec);
                stopped = limit == Some(0);
                return Ok(!stopped);
            }
            records += 1;
            if !is_regular {
                return Ok(true);
            }
            // Keeping one part, the records of the others are counted, not handed on.
            let kept = match only {
                Some(o) => {
                    let part = match scan_keys.as_mut() {
                        Some(kp) if count > 1 => kp.partition(rec, count),
                        _ => 0,
                    };
                    part == o
                }
                None => true,
            };
            if kept {
                batch.push(index, rec);
                // The writer stopped (its error is reported below): so does the scan.
                if batch.bytes.len() >= BATCH_BYTES && tx.send(std::mem::take(&mut batch)).is_err()
                {
                    return Ok(false);
                }
            }
            regular += 1;
            stopped = limit.is_some_and(|l| regular >= l);
            Ok(!stopped)
        };
        let shape = scan(
            &opened.scan_path,
            &display,
            opened.delim,
            opened.validate,
            Some(&mut sink),
        );
        if !batch.records.is_empty() {
            tx.send(batch).ok();
        }
        drop(tx);
        let written = writer.join().unwrap_or_else(|_| {
            Err(IngestError::Data {
                file: display.clone(),
                message: "the split's writer stopped unexpectedly".into(),
            })
        });
        (shape, written)
    });
    // A write that failed is the cause of a scan cut short.
    written?;
    let shape = shape?;

    let (rejects, blank_rows) = irregular_rejects(&shape, &opened.header, &display);
    if regular == 0 && rejects.is_empty() && !stopped {
        return Err(IngestError::HeaderOnly {
            file: display,
            header: opened.header.join(", "),
        });
    }
    let parts = parts
        .into_iter()
        .map(PartWriter::finish)
        .collect::<Result<Vec<_>, _>>()?;

    let mut read_opts = cfg.clone();
    read_opts.delimiter = Some(opened.delim);
    read_opts.encoding = match opened.encoding {
        CsvEncoding::LossyUtf8 => super::Encoding::Lossy,
        _ => super::Encoding::Utf8,
    };
    Ok(Split {
        source: display,
        parts,
        rejects,
        blank_rows,
        records,
        bytes,
        read_opts,
    })
}

/// Reads a `.rows` file of a [`SplitPart`] back: the original row number of each record.
pub fn read_rows(path: &Path) -> Result<Vec<u64>, IngestError> {
    let display = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| IngestError::io(&display, e))?;
    if bytes.len() % 8 != 0 {
        return Err(IngestError::Data {
            file: display,
            message: format!(
                "not a row-number file: {} bytes, not a multiple of 8",
                bytes.len()
            ),
        });
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::{read, split_line};
    use super::*;
    use crate::ingest::ROW_COL;
    use polars::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn ingest_cfg() -> crate::ingest::ReadOptions {
        crate::ingest::ReadOptions::default()
    }

    /// Each row of a table by its `bd_row`: its cells under `header`.
    fn rows_of(df: &DataFrame, header: &[String]) -> BTreeMap<u64, Vec<Option<String>>> {
        let rows = df.column(ROW_COL).unwrap().cast(&DataType::UInt64).unwrap();
        let rows: Vec<u64> = rows.u64().unwrap().into_no_null_iter().collect();
        let cols: Vec<&StringChunked> = header
            .iter()
            .map(|h| df.column(h).unwrap().str().unwrap())
            .collect();
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let cells = cols.iter().map(|c| c.get(i).map(str::to_string)).collect();
                (*r, cells)
            })
            .collect()
    }

    fn split_opts<'a>(keys: &'a [String], count: usize, dir: &'a Path) -> SplitOptions<'a> {
        SplitOptions {
            keys,
            count,
            limit: None,
            only: None,
            dir,
            stem: "part",
        }
    }

    /// Splits `path` and checks that the parts, read back with `read_opts` and mapped through
    /// their `.rows`, are exactly the original's rows, each in the part of its key, and that
    /// the rejects and blank rows are the original's. Returns the split and each original row's
    /// part.
    fn check_split(
        path: &Path,
        cfg: &crate::ingest::ReadOptions,
        keys: &[String],
        count: usize,
        out: &Path,
    ) -> (Split, BTreeMap<u64, usize>) {
        let sp = split(path, cfg, &split_opts(keys, count, out)).unwrap();
        let orig = read(path, cfg).unwrap();
        let want = rows_of(&orig.df, &orig.header);
        assert_eq!(sp.parts.len(), count);
        assert_eq!(sp.source, path.display().to_string());
        let mut got: BTreeMap<u64, (usize, Vec<Option<String>>)> = BTreeMap::new();
        for (i, part) in sp.parts.iter().enumerate() {
            assert_eq!(part.csv, out.join(format!("part-{i}.csv")));
            assert_eq!(part.rows, out.join(format!("part-{i}.rows")));
            assert_eq!(std::fs::metadata(&part.csv).unwrap().len(), part.bytes);
            let rows = read_rows(&part.rows).unwrap();
            assert_eq!(rows.len(), part.records);
            if part.records == 0 {
                continue;
            }
            let t = read(&part.csv, &sp.read_opts).unwrap();
            assert_eq!(t.header, orig.header);
            assert!(t.rejects.is_empty(), "{:?}", t.rejects);
            assert_eq!(t.blank_rows, 0);
            assert_eq!(t.df.height(), part.records);
            for (r, cells) in rows_of(&t.df, &t.header) {
                let orig_row = rows[(r - 2) as usize];
                assert!(
                    got.insert(orig_row, (i, cells)).is_none(),
                    "row {orig_row} twice"
                );
            }
        }
        let cells: BTreeMap<u64, Vec<Option<String>>> =
            got.iter().map(|(r, (_, c))| (*r, c.clone())).collect();
        assert_eq!(cells, want);
        // Each row in the part of its key (the trimmed key values joined with `|`).
        let at: Vec<usize> = keys
            .iter()
            .map(|k| orig.header.iter().position(|h| h == k).unwrap())
            .collect();
        let mut parts_of_key: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for (r, row) in &want {
            let key = at
                .iter()
                .map(|i| row[*i].as_deref().unwrap_or("").trim())
                .collect::<Vec<_>>()
                .join("|");
            let part = got[r].0;
            if keys.is_empty() {
                assert_eq!(part, 0);
            } else {
                assert_eq!(part, crate::partition::partition_of(&key, count), "{key}");
            }
            parts_of_key.entry(key).or_default().insert(part);
        }
        assert!(parts_of_key.values().all(|p| p.len() == 1));
        assert_eq!(sp.rejects, orig.rejects);
        assert_eq!(sp.blank_rows, orig.blank_rows);
        // Keeping one part (a partition's worker) writes that part alone, byte for byte as the
        // whole split writes it, and counts the whole file alike.
        for (i, part) in sp.parts.iter().enumerate() {
            let one = tempfile::tempdir().unwrap();
            let kept = split(
                path,
                cfg,
                &SplitOptions {
                    only: Some(i),
                    stem: "kept",
                    ..split_opts(keys, count, one.path())
                },
            )
            .unwrap();
            assert_eq!(kept.parts.len(), 1);
            let k = &kept.parts[0];
            assert_eq!(k.csv, one.path().join(format!("kept-{i}.csv")));
            assert_eq!((k.records, k.bytes), (part.records, part.bytes));
            assert_eq!(
                std::fs::read(&k.csv).unwrap(),
                std::fs::read(&part.csv).unwrap()
            );
            assert_eq!(
                std::fs::read(&k.rows).unwrap(),
                std::fs::read(&part.rows).unwrap()
            );
            assert_eq!(
                std::fs::read_dir(one.path()).unwrap().count(),
                2,
                "only the kept part's files"
            );
            assert_eq!((kept.records, kept.bytes), (sp.records, sp.bytes));
            assert_eq!(
                (&kept.rejects, kept.blank_rows),
                (&sp.rejects, sp.blank_rows)
            );
        }
        let e = split(
            path,
            cfg,
            &SplitOptions {
                only: Some(count),
                ..split_opts(keys, count, out)
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(&format!("part {count} of")), "{e}");
        (sp, got.into_iter().map(|(r, (p, _))| (r, p)).collect())
    }

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn split_parts_read_back_as_the_original() {
        let mut t = String::from("acct,ccy,amount,memo\r\n");
        t += " A1 ,EUR,10,\"hello, world\"\r\n";
        t += "A2,USD,20,\"line1\r\nline2\"\r\n";
        t += "\r\n";
        t += "A1,EUR,30\r\n"; // ragged: 3 fields
        t += "\"A 3\",GBP,40,x\r\n";
        t += "  A1,EUR  ,50,\"q \"\"quoted\"\", here\"\r\n";
        t += ",,,\r\n"; // blank
        t += "A4,EUR,60,\"multi\r\nline, with comma\",extra\r\n"; // ragged: 5 fields, 2 lines
        for i in 0..40 {
            t += &format!("K{},{} ,{i},\"n,{i}\"\r\n", i % 13, ["EUR", "USD"][i % 2]);
        }
        t += "\" A2 \",USD,70,last"; // a quoted key with spaces; no line break at the end
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(&p, &t).unwrap();
        let cfg = ingest_cfg();
        let out = tempfile::tempdir().unwrap();
        let (sp, part_of) = check_split(&p, &cfg, &keys(&["acct", "ccy"]), 3, out.path());
        assert!(sp.parts.iter().all(|p| p.records > 0));
        assert_eq!(sp.records, 49);
        assert_eq!(sp.bytes, t.len() as u64);
        assert_eq!(sp.blank_rows, 2);
        assert_eq!(
            sp.rejects.iter().map(|r| r.row).collect::<Vec<_>>(),
            vec![6, 10]
        );
        assert_eq!(sp.read_opts.delimiter, Some(b','));
        assert_eq!(sp.read_opts.encoding, super::super::Encoding::Utf8);
        // Rows of one key together: ` A1 |EUR` (row 2) and `  A1|EUR  ` (row 7); `A2|USD`
        // (row 3) and `" A2 "|USD` (the last row, 50).
        assert_eq!(part_of[&2], part_of[&7]);
        assert_eq!(part_of[&3], part_of[&50]);
        assert_eq!(part_of[&6], crate::partition::partition_of("A 3|GBP", 3));
        // Byte for byte, each record ending in a line break.
        let text = std::fs::read_to_string(&sp.parts[part_of[&3]].csv).unwrap();
        assert!(text.starts_with("acct,ccy,amount,memo\r\n"));
        assert!(text.contains("A2,USD,20,\"line1\r\nline2\"\r\n"));
        assert!(text.ends_with("\" A2 \",USD,70,last\n"));
        let total: u64 = sp.parts.iter().map(|p| p.records as u64).sum();
        assert_eq!(total, 45);
    }

    /// A file of several of the writer's batches (`BATCH_BYTES`), with quoted line breaks,
    /// blank and ragged records all along: every record in its part, in order, as read.
    #[test]
    fn split_of_many_batches_reads_back_as_the_original() {
        let mut t = String::from("acct,ccy,amount,memo\n");
        let mut i = 0usize;
        while t.len() < 3 * BATCH_BYTES + 1000 {
            match i % 997 {
                5 => t += "\n",
                7 => t += "A1,EUR,1\n",
                _ => {
                    t += &format!(
                        "K{},{},{i},\"memo {i}\nnext line, {}\"\n",
                        i % 101,
                        ["EUR", "USD", "GBP"][i % 3],
                        "x".repeat(i % 40)
                    )
                }
            }
            i += 1;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(&p, &t).unwrap();
        let out = tempfile::tempdir().unwrap();
        let (sp, _) = check_split(&p, &ingest_cfg(), &keys(&["acct", "ccy"]), 4, out.path());
        assert_eq!(sp.bytes, t.len() as u64);
        assert_eq!(sp.records, i);
        let irregular = (0..i).filter(|k| matches!(k % 997, 5 | 7)).count();
        assert_eq!(sp.rejects.len() + sp.blank_rows, irregular);
        let total: usize = sp.parts.iter().map(|p| p.records).sum();
        assert_eq!(total, i - irregular);
        // Each part's rows in the file's order.
        for part in &sp.parts {
            let rows = read_rows(&part.rows).unwrap();
            assert!(rows.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn split_with_a_limit_writes_the_first_regular_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(&p, "a,b\n1,x\n\n2,y\n1,2,3\n3,z\n4,w\n").unwrap();
        let out = tempfile::tempdir().unwrap();
        let opts = SplitOptions {
            limit: Some(2),
            ..split_opts(&[], 1, out.path())
        };
        let sp = split(&p, &ingest_cfg(), &opts).unwrap();
        assert_eq!(sp.parts.len(), 1);
        assert_eq!(sp.parts[0].records, 2);
        assert_eq!(read_rows(&sp.parts[0].rows).unwrap(), vec![2, 4]);
        assert_eq!(
            std::fs::read_to_string(&sp.parts[0].csv).unwrap(),
            "a,b\n1,x\n2,y\n"
        );
        assert_eq!((sp.records, sp.blank_rows, sp.rejects.len()), (3, 1, 0));
        let t = read(&sp.parts[0].csv, &sp.read_opts).unwrap();
        let orig = read(&p, &ingest_cfg()).unwrap();
        let want: BTreeMap<u64, Vec<Option<String>>> = rows_of(&orig.df, &orig.header)
            .into_iter()
            .take(2)
            .collect();
        let rows = read_rows(&sp.parts[0].rows).unwrap();
        let got: BTreeMap<u64, Vec<Option<String>>> = rows_of(&t.df, &t.header)
            .into_iter()
            .map(|(r, c)| (rows[(r - 2) as usize], c))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn split_decoded_files_read_back_as_the_original() {
        // Windows-1252, `;`-delimited.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("latin.csv");
        let mut b: Vec<u8> = b"Konto;W\xe4hrung;Betrag\n".to_vec();
        for i in 0..30 {
            b.extend_from_slice(match i % 4 {
                0 => b"M\xfcller;\x80;".as_slice(),
                1 => b" Caf\xe9 ;EUR;".as_slice(),
                2 => b"\"M\xfcller \";\x80 ;".as_slice(),
                _ => b"Stra\xdfe;\x80;".as_slice(),
            });
            b.extend_from_slice(format!("{i}\n").as_bytes());
        }
        std::fs::write(&p, &b).unwrap();
        let mut cfg = ingest_cfg();
        cfg.encoding = super::super::Encoding::Windows1252;
        for o in ["o1", "o2", "o3", "o4"] {
            std::fs::create_dir(dir.path().join(o)).unwrap();
        }
        let (sp, _) = check_split(
            &p,
            &cfg,
            &keys(&["Konto", "Währung"]),
            3,
            &dir.path().join("o1"),
        );
        assert_eq!(sp.read_opts.encoding, super::super::Encoding::Utf8);
        assert_eq!(sp.read_opts.delimiter, Some(b';'));

        // UTF-16LE with a byte-order mark, tab-delimited.
        let p = dir.path().join("wide.csv");
        let mut text = String::from("Compte\tDevise\tMontant\r\n");
        for i in 0..30 {
            text += &format!("Élan {}\t€\t{i}\r\n", i % 7);
        }
        text += "\"Élan 1\"\t€\t\"99\"";
        let mut b = vec![0xFF, 0xFE];
        for u in text.encode_utf16() {
            b.extend_from_slice(&u.to_le_bytes());
        }
        std::fs::write(&p, &b).unwrap();
        let (sp, _) = check_split(
            &p,
            &ingest_cfg(),
            &keys(&["Compte", "Devise"]),
            4,
            &dir.path().join("o2"),
        );
        assert_eq!(sp.read_opts.encoding, super::super::Encoding::Utf8);
        assert_eq!(sp.read_opts.delimiter, Some(b'\t'));

        // Read lossily: the parts keep the bad bytes and are read lossily too.
        let p = dir.path().join("lossy.csv");
        std::fs::write(&p, b"k,v\nr\xe9v,1\nab,2\n r\xe9v ,3\n").unwrap();
        let mut cfg = ingest_cfg();
        cfg.encoding = super::super::Encoding::Lossy;
        let (sp, part_of) = check_split(&p, &cfg, &keys(&["k"]), 2, &dir.path().join("o3"));
        assert_eq!(sp.read_opts.encoding, super::super::Encoding::Lossy);
        assert_eq!(part_of[&2], part_of[&4]);

        // A UTF-8 byte-order mark: the first column is named without it.
        let p = dir.path().join("bom.csv");
        std::fs::write(&p, "\u{feff}acct,n\na,1\nb,2\nc,3\n").unwrap();
        let (sp, _) = check_split(
            &p,
            &ingest_cfg(),
            &keys(&["acct"]),
            2,
            &dir.path().join("o4"),
        );
        assert_eq!(sp.records, 3);
    }

    #[test]
    fn split_names_a_missing_key_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(&p, "acct,amount\na,1\n").unwrap();
        let out = tempfile::tempdir().unwrap();
        let k = keys(&["acct", "Currency"]);
        match split(&p, &ingest_cfg(), &split_opts(&k, 2, out.path())) {
            Err(e @ IngestError::Data { .. }) => {
                let m = e.to_string();
                assert!(m.contains("\"Currency\"") && m.contains("in.csv"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    }

    #[test]
    fn split_fails_as_read_does() {
        let dir = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("empty.csv", ""),
            ("header.csv", "a,b\n"),
            ("blank.csv", "a,b\n\n,\n"),
            ("bad.csv", "a,b\n1,r\u{e9}v\n"),
        ] {
            let p = dir.path().join(name);
            let bytes = if name == "bad.csv" {
                b"a,b\n1,r\xe9v\n".to_vec()
            } else {
                text.as_bytes().to_vec()
            };
            std::fs::write(&p, bytes).unwrap();
            let want = read(&p, &ingest_cfg()).unwrap_err().to_string();
            let got = split(&p, &ingest_cfg(), &split_opts(&[], 2, out.path()))
                .unwrap_err()
                .to_string();
            assert_eq!(got, want);
        }
        // Failed splits leave no files behind.
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
        // A file of ragged records only is not "header only": read reports rejects.
        let p = dir.path().join("ragged.csv");
        std::fs::write(&p, "a,b\n1\n").unwrap();
        let sp = split(&p, &ingest_cfg(), &split_opts(&[], 2, out.path())).unwrap();
        assert_eq!(sp.rejects, read(&p, &ingest_cfg()).unwrap().rejects);
    }

    #[test]
    fn key_picker_unquotes_as_split_line_does() {
        let lines = [
            "a,b,c",
            " a , \"b,\" ,c",
            "\"x \"\"y\"\"\",,z",
            "a\"b,c\"d,e",
            "\"\",\"\"\"\",\"q\"",
            "é,\"ü,\",ß\r\n",
            "one",
            ",,",
            " a b ,\tc, d \r\n",
            "é, ü ,ß,,,\n",
            "k1, k2 ,\"x,y\",z",
            "\u{b}v\u{c},\u{a0}w\u{3000},\u{85}x",
        ];
        for line in lines {
            let want = split_line(line.trim_end_matches(['\r', '\n']), b',');
            for cols in [vec![0], vec![1], vec![2, 0], vec![0, 1, 2], vec![1, 1]] {
                let mut kp = KeyPicker::new(b',', cols.clone());
                let expect = cols
                    .iter()
                    .map(|c| want.get(*c).map_or("", |s| s.trim()))
                    .collect::<Vec<_>>()
                    .join("|");
                assert_eq!(
                    kp.key(line.as_bytes()),
                    expect.as_bytes(),
                    "{line:?} {cols:?}"
                );
                // The partition hashed as the fields are read is the key's.
                for count in [1, 2, 3, 4, 7, 1000] {
                    assert_eq!(
                        kp.partition(line.as_bytes(), count),
                        crate::partition::partition_of(&expect, count),
                        "{line:?} {cols:?} {count}"
                    );
                }
            }
        }
    }
}
