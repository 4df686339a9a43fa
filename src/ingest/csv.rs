//! CSV reading: delimiter sniffing, encoding checks and a lazy polars scan that reads every
//! column as text (typing happens in `prepare`, where bad values can be reported per row).

use super::{IngestError, ROW_COL, RawTable};
use polars::prelude::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Delimiters `auto` chooses among.
const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];

/// The values of `[ingest] encoding` / `--encoding`.
pub const ENCODINGS: [&str; 5] = ["utf8", "lossy", "windows-1252", "utf-16le", "utf-16be"];

/// `auto` → None; a single character (or `\t`, `tab`) → Some(byte).
pub fn parse_delimiter(s: &str) -> Result<Option<u8>, String> {
    match s {
        "auto" => Ok(None),
        "\\t" | "tab" | "\t" => Ok(Some(b'\t')),
        _ if s.len() == 1 && s.is_ascii() && s != "\"" && s != "\n" && s != "\r" => {
            Ok(Some(s.as_bytes()[0]))
        }
        _ => Err(format!(
            "must be \"auto\" or a single ASCII character such as \",\" \";\" \"|\" or \"\\t\", found {s:?}"
        )),
    }
}

fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "tab".to_string(),
        _ => format!("'{}'", d as char),
    }
}

/// Splits one CSV line on `delim`, honouring double quotes.
pub fn split_line(line: &str, delim: u8) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c as u32 == delim as u32 {
            fields.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    fields.push(cur);
    fields
}

fn count_outside_quotes(line: &str, delim: u8) -> usize {
    let mut n = 0;
    let mut q = false;
    for b in line.bytes() {
        if b == b'"' {
            q = !q;
        } else if b == delim && !q {
            n += 1;
        }
    }
    n
}

/// The delimiter that splits the header into the most fields (ties: the earlier candidate).
pub fn sniff_delimiter(header_line: &str) -> u8 {
    let mut best = (b',', 0usize);
    for d in CANDIDATES {
        let n = count_outside_quotes(header_line, d);
        if n > best.1 {
            best = (d, n);
        }
    }
    best.0
}

/// A data record whose shape differs from the header's.
#[derive(Debug, Clone)]
struct Irregular {
    /// 0-based index among the data records (blank ones included, as polars counts them).
    index: usize,
    /// The line the record starts on (header = line 1).
    line: u64,
    fields: usize,
    /// Every field empty (a blank line, or only delimiters and spaces).
    blank: bool,
    /// The start of the record's text, for the rejects report.
    text: String,
}

/// What a pass over the file found: the header's field count and the records that differ.
#[derive(Debug, Default)]
struct Shape {
    header_fields: usize,
    records: usize,
    irregular: Vec<Irregular>,
}

/// One streaming pass over a CSV file: counts each record's fields (honouring quotes, so a quoted
/// field may hold delimiters and line breaks), notes blank records and records whose field count
/// differs from the header's, and, with `validate`, checks that the bytes are UTF-8 (naming the
/// line and byte of the first bad one). Lines without quotes take a fast path.
///
/// With `collect` (a record sink is present) it also keeps the bytes of the record being read
/// and notes each record it closes, for `scan` to hand on.
struct Scanner {
    delim: u8,
    in_quotes: bool,
    fields: usize,
    content: bool,
    start_line: u64,
    line: u64,
    /// -1 = the header.
    record: i64,
    prefix: Vec<u8>,
    shape: Shape,
    collect: bool,
    /// With `collect`: the bytes of the current record, line breaks included.
    rec: Vec<u8>,
    /// With `collect`: the record `end` just closed, (index, regular), until `emit` takes it.
    closed: Option<(i64, bool)>,
}

/// Receives each record of a `scan`: its index (-1 = the header, then 0.. for the data records,
/// blank and ragged ones included), its bytes as in the file (with its line break, when it has
/// one) and whether it is regular (not blank, as many fields as the header). `Ok(false)` stops
/// the scan.
type RecordSink<'a> = dyn FnMut(i64, &[u8], bool) -> Result<bool, IngestError> + 'a;

impl Scanner {
    fn new(delim: u8) -> Scanner {
        Scanner {
            delim,
            in_quotes: false,
            fields: 1,
            content: false,
            start_line: 1,
            line: 1,
            record: -1,
            prefix: Vec::new(),
            shape: Shape::default(),
            collect: false,
            rec: Vec::new(),
            closed: None,
        }
    }

    /// One line, with its `\n` when it has one.
    fn line(&mut self, line: &[u8]) {
        if self.collect {
            self.rec.extend_from_slice(line);
        }
        let d = self.delim;
        if !self.in_quotes && memchr::memchr(b'"', line).is_none() {
            self.fields += line.iter().filter(|b| **b == d).count();
            if !self.content {
                self.content = line
                    .iter()
                    .any(|b| *b != d && !matches!(b, b'\r' | b'\n' | b' ' | b'\t'));
            }
            if self.fields != self.shape.header_fields || !self.content || self.record < 0 {
                self.prefix.extend_from_slice(&line[..line.len().min(120)]);
            }
            if line.last() == Some(&b'\n') {
                self.end();
            }
            return;
        }
        if self.prefix.len() < 120 {
            self.prefix
                .extend_from_slice(&line[..line.len().min(120 - self.prefix.len())]);
        }
        for &b in line {
            if b == b'"' {
                self.in_quotes = !self.in_quotes;
            } else if self.in_quotes {
                self.content = true;
            } else if b == d {
                self.fields += 1;
            } else if b == b'\n' {
                self.end();
            } else if !matches!(b, b'\r' | b' ' | b'\t') {
                self.content = true;
            }
        }
        if self.in_quotes && line.last() == Some(&b'\n') {
            // A quoted field goes on to the next line.
            self.line += 1;
        }
    }

    fn end(&mut self) {
        if self.collect {
            let regular =
                self.record < 0 || (self.content && self.fields == self.shape.header_fields);
            self.closed = Some((self.record, regular));
        }
        if self.record < 0 {
            self.shape.header_fields = self.fields;
        } else {
            if !self.content || self.fields != self.shape.header_fields {
                let text = String::from_utf8_lossy(&self.prefix);
                self.shape.irregular.push(Irregular {
                    index: self.record as usize,
                    line: self.start_line,
                    fields: self.fields,
                    blank: !self.content,
                    text: text.trim_end_matches(['\r', '\n']).to_string(),
                });
            }
            self.shape.records += 1;
        }
        self.record += 1;
        self.line += 1;
        self.start_line = self.line;
        self.fields = 1;
        self.content = false;
        self.in_quotes = false;
        self.prefix.clear();
    }

    /// The last record when the file does not end with a line break.
    fn finish(&mut self) {
        if !self.prefix.is_empty() || self.fields > 1 || self.content {
            self.end();
        }
    }

    /// Hands the record just closed (if any) to `sink`; false: the sink asks to stop.
    fn emit(&mut self, sink: &mut RecordSink) -> Result<bool, IngestError> {
        match self.closed.take() {
            None => Ok(true),
            Some((index, regular)) => {
                let go = sink(index, &self.rec, regular)?;
                self.rec.clear();
                Ok(go)
            }
        }
    }
}

/// One pass over the file (see [`Scanner`]); with `sink`, every record is handed to it as it
/// ends (a sink that returns `Ok(false)` ends the pass early: the shape then covers the records
/// seen so far).
fn scan(
    path: &Path,
    display: &str,
    delim: u8,
    validate: bool,
    mut sink: Option<&mut RecordSink>,
) -> Result<Shape, IngestError> {
    let file = std::fs::File::open(path).map_err(|e| IngestError::io(display, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut sc = Scanner::new(delim);
    sc.collect = sink.is_some();
    let mut carry: Vec<u8> = Vec::new();
    let mut offset: u64 = 0; // bytes before `carry`
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| IngestError::io(display, e))?;
        let eof = n == 0;
        carry.extend_from_slice(&buf[..n]);
        // Whole lines only (the rest waits for the next read); everything at the end.
        let upto = if eof {
            carry.len()
        } else {
            match memchr::memrchr(b'\n', &carry) {
                Some(i) => i + 1,
                None => continue,
            }
        };
        let chunk = &carry[..upto];
        if validate && let Err(e) = std::str::from_utf8(chunk) {
            let good = e.valid_up_to();
            let line = sc.line + memchr::memchr_iter(b'\n', &chunk[..good]).count() as u64;
            return Err(IngestError::Encoding {
                file: display.to_string(),
                line,
                byte: offset + good as u64,
                value: format!("0x{:02X}", chunk[good]),
            });
        }
        let mut start = 0;
        match sink.as_deref_mut() {
            None => {
                for i in memchr::memchr_iter(b'\n', chunk) {
                    sc.line(&chunk[start..=i]);
                    start = i + 1;
                }
            }
            Some(sink) => {
                for i in memchr::memchr_iter(b'\n', chunk) {
                    sc.line(&chunk[start..=i]);
                    start = i + 1;
                    if !sc.emit(sink)? {
                        return Ok(sc.shape);
                    }
                }
            }
        }
        if start < chunk.len() {
            sc.line(&chunk[start..]);
        }
        offset += upto as u64;
        carry.drain(..upto);
        if eof {
            sc.finish();
            if let Some(sink) = sink.as_deref_mut() {
                sc.emit(sink)?;
            }
            return Ok(sc.shape);
        }
    }
}

/// Windows-1252 code points for bytes 0x80–0x9F (the rest of the byte range is Latin-1).
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
];

/// Decodes a Windows-1252 file into a UTF-8 temporary file, streaming.
fn transcode_cp1252(path: &Path, display: &str) -> Result<tempfile::NamedTempFile, IngestError> {
    let input = std::fs::File::open(path).map_err(|e| IngestError::io(display, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let tmp = tempfile::NamedTempFile::new().map_err(|e| IngestError::io(display, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
    let mut s = String::with_capacity(1 << 21);
    loop {
        let chunk = reader.fill_buf().map_err(|e| IngestError::io(display, e))?;
        if chunk.is_empty() {
            break;
        }
        s.clear();
        for &b in chunk {
            s.push(match b {
                0x80..=0x9F => CP1252_HIGH[(b - 0x80) as usize],
                _ => b as char,
            });
        }
        let n = chunk.len();
        reader.consume(n);
        out.write_all(s.as_bytes())
            .map_err(|e| IngestError::io(display, e))?;
    }
    out.flush().map_err(|e| IngestError::io(display, e))?;
    drop(out);
    Ok(tmp)
}

/// A UTF-16 file's byte order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Utf16 {
    Le,
    Be,
}

/// Decodes a UTF-16 file (after its byte-order mark, if any) into a UTF-8 temporary file,
/// streaming. An unpaired surrogate is an error naming its byte offset.
fn transcode_utf16(
    path: &Path,
    display: &str,
    order: Utf16,
    skip: usize,
) -> Result<tempfile::NamedTempFile, IngestError> {
    let input = std::fs::File::open(path).map_err(|e| IngestError::io(display, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let tmp = tempfile::NamedTempFile::new().map_err(|e| IngestError::io(display, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
    let mut pending: Vec<u8> = Vec::new();
    let mut units: Vec<u16> = Vec::new();
    let mut s = String::new();
    let mut offset: u64 = skip as u64;
    let mut skipped = 0usize;
    loop {
        let chunk = reader.fill_buf().map_err(|e| IngestError::io(display, e))?;
        let eof = chunk.is_empty();
        let take = chunk.len();
        let from = (skip - skipped).min(take);
        skipped += from;
        pending.extend_from_slice(&chunk[from..]);
        reader.consume(take);
        let even = pending.len() & !1;
        units.clear();
        units.extend(pending[..even].chunks_exact(2).map(|p| match order {
            Utf16::Le => u16::from_le_bytes([p[0], p[1]]),
            Utf16::Be => u16::from_be_bytes([p[0], p[1]]),
        }));
        // A high surrogate at the end waits for its pair.
        let mut used = units.len();
        if !eof && units.last().is_some_and(|u| (0xD800..0xDC00).contains(u)) {
            used -= 1;
        }
        s.clear();
        for (k, c) in char::decode_utf16(units[..used].iter().copied()).enumerate() {
            match c {
                Ok(c) => s.push(c),
                Err(e) => {
                    return Err(IngestError::Data {
                        file: display.to_string(),
                        message: format!(
                            "not valid UTF-16: unpaired surrogate 0x{:04X} near byte {}",
                            e.unpaired_surrogate(),
                            offset + 2 * k as u64
                        ),
                    });
                }
            }
        }
        out.write_all(s.as_bytes())
            .map_err(|e| IngestError::io(display, e))?;
        offset += 2 * used as u64;
        pending.drain(..2 * used);
        if eof {
            if !pending.is_empty() {
                return Err(IngestError::Data {
                    file: display.to_string(),
                    message: format!("not valid UTF-16: an odd number of bytes ({offset} + 1)"),
                });
            }
            break;
        }
    }
    out.flush().map_err(|e| IngestError::io(display, e))?;
    drop(out);
    Ok(tmp)
}

/// The first bytes of a file (for its byte-order mark).
fn head(path: &Path, display: &str, n: usize) -> Result<Vec<u8>, IngestError> {
    let f = std::fs::File::open(path).map_err(|e| IngestError::io(display, e))?;
    let mut buf = Vec::with_capacity(n);
    f.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|e| IngestError::io(display, e))?;
    Ok(buf)
}

/// A CSV file made ready for a pass: decoded to UTF-8 when it needs to be (the temporary copy
/// lives as long as this), its delimiter known and its header line checked.
struct Opened {
    display: String,
    /// The file to read: the original, or its UTF-8 transcoding.
    scan_path: PathBuf,
    _transcoded: Option<tempfile::NamedTempFile>,
    encoding: CsvEncoding,
    /// Check that the bytes are UTF-8 during the scan.
    validate: bool,
    delim: u8,
    /// The header line split on the delimiter (after a UTF-8 byte-order mark).
    header: Vec<String>,
}

/// The prologue of every CSV pass: the file's checks, its encoding (a UTF-16 byte-order mark
/// decides; otherwise validate during the scan, transcode, or let polars replace bad bytes), its
/// header line and its delimiter (set, or sniffed from the header).
fn open(path: &Path, cfg: &crate::config::IngestConfig) -> Result<Opened, IngestError> {
    let display = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| IngestError::io(&display, e))?;
    if meta.is_dir() {
        return Err(IngestError::NotAFile { file: display });
    }
    if meta.len() == 0 {
        return Err(IngestError::Empty { file: display });
    }

    let mut transcoded = None;
    let mut scan_path = path.to_path_buf();
    let mut encoding = CsvEncoding::Utf8;
    let mut validate = false;
    let bom = head(path, &display, 2)?;
    let utf16 = match (bom.as_slice(), cfg.encoding.as_str()) {
        ([0xFF, 0xFE], _) => Some((Utf16::Le, 2)),
        ([0xFE, 0xFF], _) => Some((Utf16::Be, 2)),
        (_, "utf-16le") => Some((Utf16::Le, 0)),
        (_, "utf-16be") => Some((Utf16::Be, 0)),
        _ => None,
    };
    if let Some((order, skip)) = utf16 {
        let t = transcode_utf16(path, &display, order, skip)?;
        scan_path = t.path().to_path_buf();
        transcoded = Some(t);
    } else {
        match cfg.encoding.as_str() {
            "lossy" => encoding = CsvEncoding::LossyUtf8,
            "windows-1252" => {
                let t = transcode_cp1252(path, &display)?;
                scan_path = t.path().to_path_buf();
                transcoded = Some(t);
            }
            _ => validate = true,
        }
    }

    // The header line, for sniffing and for clear messages.
    let mut first = String::new();
    {
        let f = std::fs::File::open(&scan_path).map_err(|e| IngestError::io(&display, e))?;
        let mut r = BufReader::new(f);
        let mut bytes = Vec::new();
        r.read_until(b'\n', &mut bytes)
            .map_err(|e| IngestError::io(&display, e))?;
        if utf16.is_none() && bytes.contains(&0) {
            // ASCII text in UTF-16 without a byte-order mark: every other byte is NUL.
            return Err(IngestError::Data {
                file: display,
                message: "the header contains NUL bytes: the file looks like UTF-16 without a byte-order mark; pass --encoding utf-16le (or utf-16be), or set [ingest] encoding".into(),
            });
        }
        first.push_str(&String::from_utf8_lossy(&bytes));
    }
    let first = first
        .trim_end_matches(['\n', '\r'])
        .trim_start_matches('\u{feff}');
    if first.trim().is_empty() {
        return Err(IngestError::Empty { file: display });
    }
    let configured =
        parse_delimiter(&cfg.delimiter).map_err(|m| IngestError::Config { message: m })?;
    let delim = configured.unwrap_or_else(|| sniff_delimiter(first));
    let header = split_line(first, delim);
    if header.len() == 1 {
        // One column: almost always the wrong delimiter.
        if let Some(other) = CANDIDATES
            .iter()
            .copied()
            .filter(|d| *d != delim)
            .max_by_key(|d| count_outside_quotes(first, *d))
            .filter(|d| count_outside_quotes(first, *d) > 0)
        {
            return Err(IngestError::WrongDelimiter {
                file: display,
                used: delimiter_name(delim),
                looks_like: delimiter_name(other),
                header: first.chars().take(120).collect(),
            });
        }
    }
    Ok(Opened {
        display,
        scan_path,
        _transcoded: transcoded,
        encoding,
        validate,
        delim,
        header,
    })
}

/// The ragged records of a pass as rejects (`header`: the column names, for the column a short
/// record ends before), and the number of blank records.
fn irregular_rejects(
    shape: &Shape,
    header: &[String],
    display: &str,
) -> (Vec<super::prepare::Reject>, usize) {
    let mut rejects = Vec::new();
    let mut blank_rows = 0;
    for ir in &shape.irregular {
        if ir.blank {
            blank_rows += 1;
            continue;
        }
        let (column, reason) = if ir.fields > shape.header_fields {
            (
                format!("field {}", shape.header_fields + 1),
                format!("{} fields, header has {}", ir.fields, shape.header_fields),
            )
        } else {
            let missing = header.get(ir.fields).cloned().unwrap_or_default();
            (
                missing.clone(),
                format!(
                    "{} fields, header has {}: the record ends before {missing}",
                    ir.fields, shape.header_fields
                ),
            )
        };
        rejects.push(super::prepare::Reject {
            source: display.to_string(),
            row: u32::try_from(ir.line).unwrap_or(u32::MAX),
            column,
            value: ir.text.chars().take(80).collect(),
            reason,
            cell: None,
        });
    }
    (rejects, blank_rows)
}

/// Reads a CSV file as text columns plus the row number of each record (its line, where the
/// header is line 1). Blank records are skipped and counted; a record with more or fewer fields
/// than the header is left out and reported as a reject.
pub fn read(path: &Path, cfg: &crate::config::IngestConfig) -> Result<RawTable, IngestError> {
    let Opened {
        display,
        scan_path,
        _transcoded,
        encoding,
        validate,
        delim,
        header: _,
    } = open(path, cfg)?;

    // One pass for the encoding and the shape of every record.
    let shape = scan(&scan_path, &display, delim, validate, None)?;

    let path_str = scan_path.to_string_lossy().to_string();
    let lf = LazyCsvReader::new(PlRefPath::new(path_str.as_str()))
        .with_has_header(true)
        .with_separator(delim)
        .with_infer_schema_length(Some(0))
        .with_encoding(encoding)
        .with_missing_is_null(true)
        // Records with extra fields are reported below; the reader must not stop on them.
        .with_truncate_ragged_lines(!shape.irregular.is_empty())
        .with_row_index(Some(RowIndex {
            name: ROW_COL.into(),
            offset: 2,
        }))
        .finish()
        .map_err(|e| IngestError::parse(&display, e))?;
    let mut df = lf.collect().map_err(|e| IngestError::parse(&display, e))?;
    let header: Vec<String> = df
        .get_column_names()
        .iter()
        .filter(|n| n.as_str() != ROW_COL)
        .map(|n| n.to_string())
        .collect();

    let mut rejects = Vec::new();
    let mut blank_rows = 0;
    if !shape.irregular.is_empty() {
        if shape.records != df.height() {
            return Err(IngestError::Parse {
                file: display,
                message: format!(
                    "the CSV reader found {} records where a count of the lines found {}; check the quoting of fields that hold line breaks",
                    df.height(),
                    shape.records
                ),
            });
        }
        let mut keep = vec![true; df.height()];
        for ir in &shape.irregular {
            keep[ir.index] = false;
        }
        (rejects, blank_rows) = irregular_rejects(&shape, &header, &display);
        let mask = BooleanChunked::from_iter_values("keep".into(), keep.into_iter());
        df = df
            .filter(&mask)
            .map_err(|e| IngestError::parse(&display, e))?;
    }
    if df.height() == 0 && rejects.is_empty() {
        return Err(IngestError::HeaderOnly {
            file: display,
            header: header.join(", "),
        });
    }
    Ok(RawTable {
        df,
        header,
        source: display,
        rejects,
        blank_rows,
        sheet: None,
    })
}

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
    pub parts: Vec<SplitPart>,
    /// The ragged records (wrong field count) as [`read`] reports them, and the blank records
    /// counted as it counts them. These records are written to no part.
    pub rejects: Vec<super::prepare::Reject>,
    pub blank_rows: usize,
    /// Data records seen (all of them, irregular included).
    pub records: usize,
    /// Bytes of the (decoded) file read, header included.
    pub bytes: u64,
    /// The ingest settings that read a part back exactly as the original would have been read:
    /// the caller's with `delimiter` set to the delimiter found (no re-sniffing) and `encoding`
    /// `utf8` when the file was decoded or validated, `lossy` when it was read lossily.
    pub read_cfg: crate::config::IngestConfig,
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

/// Extracts the key of a record: the fields `cols` (indices into the record's fields) unquoted
/// exactly as [`split_line`] does, each trimmed, joined with `|`. Works on bytes and copies only
/// the fields it needs.
struct KeyPicker {
    delim: u8,
    cols: Vec<usize>,
    /// Per field index up to the last key column: whether a key uses it.
    needed: Vec<bool>,
    /// Per field index: its unquoted bytes (key fields only).
    vals: Vec<Vec<u8>>,
    key: String,
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
            key: String::new(),
        }
    }

    /// The key of `record` (its bytes, a trailing line break allowed).
    fn key(&mut self, record: &[u8]) -> &str {
        let mut line = record;
        if let Some(l) = line.strip_suffix(b"\n") {
            line = l;
            if let Some(l) = line.strip_suffix(b"\r") {
                line = l;
            }
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
                self.key.push('|');
            }
            self.key
                .push_str(String::from_utf8_lossy(&self.vals[c]).trim());
        }
        &self.key
    }
}

/// Splits a CSV file into `opts.count` parts by account key in one streaming pass: each regular
/// data record is copied, byte for byte as in the (decoded) file, to the part of its key
/// ([`crate::partition::partition_of`] of the trimmed key fields joined with `|`, the way
/// `prepare` builds `bd_key`), and its original row number to the part's `.rows` file. Blank
/// and ragged records go to no part; they are reported as [`read`] reports them. Reading a part
/// with [`Split::read_cfg`] gives the original's rows of that part (`bd_row` = the position in
/// the part; [`read_rows`] maps it back).
///
/// The part files are removed again when the split fails.
pub fn split(
    path: &Path,
    cfg: &crate::config::IngestConfig,
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
    cfg: &crate::config::IngestConfig,
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

    // 256 KiB buffers, less when there are many parts (at most 64 MiB in all).
    let buf = ((64usize << 20) / opts.count).clamp(16 << 10, 256 << 10);
    let mut parts = Vec::with_capacity(opts.count);
    for i in 0..opts.count {
        let csv = opts.dir.join(format!("{}-{i}.csv", opts.stem));
        let rows = opts.dir.join(format!("{}-{i}.rows", opts.stem));
        created.push(csv.clone());
        created.push(rows.clone());
        parts.push(PartWriter::create(csv, rows, buf)?);
    }

    let count = opts.count;
    let limit = opts.limit;
    let mut records = 0usize;
    let mut regular = 0usize;
    let mut bytes = 0u64;
    let mut stopped = false;
    let mut sink = |index: i64, rec: &[u8], is_regular: bool| -> Result<bool, IngestError> {
        bytes += rec.len() as u64;
        if index < 0 {
            for p in parts.iter_mut() {
                p.write_line(rec)?;
            }
            stopped = limit == Some(0);
            return Ok(!stopped);
        }
        records += 1;
        if !is_regular {
            return Ok(true);
        }
        let part = match picker.as_mut() {
            Some(kp) if count > 1 => crate::partition::partition_of(kp.key(rec), count),
            _ => 0,
        };
        parts[part].write_record(rec, index as u64 + 2)?;
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
    )?;

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

    let mut read_cfg = cfg.clone();
    read_cfg.delimiter = match opened.delim {
        b'\t' => "tab".to_string(),
        d => (d as char).to_string(),
    };
    read_cfg.encoding = match opened.encoding {
        CsvEncoding::LossyUtf8 => "lossy",
        _ => "utf8",
    }
    .to_string();
    Ok(Split {
        source: display,
        parts,
        rejects,
        blank_rows,
        records,
        bytes,
        read_cfg,
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
    use super::*;

    #[test]
    fn sniffing_picks_the_splitting_delimiter() {
        assert_eq!(sniff_delimiter("a,b,c"), b',');
        assert_eq!(sniff_delimiter("a;b;c"), b';');
        assert_eq!(sniff_delimiter("a\tb\tc"), b'\t');
        assert_eq!(sniff_delimiter("a|b|c"), b'|');
        // Commas inside quotes do not count.
        assert_eq!(sniff_delimiter("\"a,b,c,d\";e;f"), b';');
        assert_eq!(sniff_delimiter("single"), b',');
    }

    #[test]
    fn split_line_handles_quotes() {
        assert_eq!(
            split_line("a,\"b,c\",\"d \"\"e\"\"\"", b','),
            vec!["a", "b,c", "d \"e\""]
        );
        assert_eq!(split_line("x;;y", b';'), vec!["x", "", "y"]);
    }

    fn shape(text: &str) -> Shape {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(&p, text).unwrap();
        scan(&p, "s.csv", b',', true, None).unwrap()
    }

    #[test]
    fn scan_finds_blank_and_ragged_records_with_their_lines() {
        let s = shape("a,b,c\n1,2,3\n\n1,2\n\"x\ny\",2,3\n1,2,3,4\n,,\n1,\"2,\",3");
        assert_eq!(s.header_fields, 3);
        assert_eq!(s.records, 7);
        let got: Vec<(usize, u64, usize, bool)> = s
            .irregular
            .iter()
            .map(|i| (i.index, i.line, i.fields, i.blank))
            .collect();
        // The quoted line break keeps `"x\ny",2,3` one record (lines 5–6).
        assert_eq!(
            got,
            vec![
                (1, 3, 1, true),
                (2, 4, 2, false),
                (4, 7, 4, false),
                (5, 8, 3, true)
            ]
        );
        assert_eq!(s.irregular[1].text, "1,2");
        let s = shape("a,b\r\n1,2\r\n");
        assert!(s.irregular.is_empty());
        assert_eq!(s.records, 1);
    }

    #[test]
    fn scan_names_the_line_of_invalid_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(&p, b"a,b\n1,2\n1,r\xe9v\n").unwrap();
        match scan(&p, "s.csv", b',', true, None) {
            Err(IngestError::Encoding {
                line, byte, value, ..
            }) => assert_eq!((line, byte, value.as_str()), (3, 11, "0xE9")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn delimiter_setting_parses() {
        assert_eq!(parse_delimiter("auto"), Ok(None));
        assert_eq!(parse_delimiter(";"), Ok(Some(b';')));
        assert_eq!(parse_delimiter("\\t"), Ok(Some(b'\t')));
        assert!(parse_delimiter(",,").is_err());
        assert!(parse_delimiter("\"").is_err());
    }
    use std::collections::{BTreeMap, BTreeSet};

    fn ingest_cfg() -> crate::config::IngestConfig {
        crate::config::Config::defaults().ingest
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
            dir,
            stem: "part",
        }
    }

    /// Splits `path` and checks that the parts, read back with `read_cfg` and mapped through
    /// their `.rows`, are exactly the original's rows, each in the part of its key, and that
    /// the rejects and blank rows are the original's. Returns the split and each original row's
    /// part.
    fn check_split(
        path: &Path,
        cfg: &crate::config::IngestConfig,
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
            let t = read(&part.csv, &sp.read_cfg).unwrap();
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
        assert_eq!(sp.read_cfg.delimiter, ",");
        assert_eq!(sp.read_cfg.encoding, "utf8");
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
        let t = read(&sp.parts[0].csv, &sp.read_cfg).unwrap();
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
        cfg.encoding = "windows-1252".into();
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
        assert_eq!(sp.read_cfg.encoding, "utf8");
        assert_eq!(sp.read_cfg.delimiter, ";");

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
        assert_eq!(sp.read_cfg.encoding, "utf8");
        assert_eq!(sp.read_cfg.delimiter, "tab");

        // Read lossily: the parts keep the bad bytes and are read lossily too.
        let p = dir.path().join("lossy.csv");
        std::fs::write(&p, b"k,v\nr\xe9v,1\nab,2\n r\xe9v ,3\n").unwrap();
        let mut cfg = ingest_cfg();
        cfg.encoding = "lossy".into();
        let (sp, part_of) = check_split(&p, &cfg, &keys(&["k"]), 2, &dir.path().join("o3"));
        assert_eq!(sp.read_cfg.encoding, "lossy");
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
                assert_eq!(kp.key(line.as_bytes()), expect, "{line:?} {cols:?}");
            }
        }
    }
}
