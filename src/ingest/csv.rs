//! CSV reading: delimiter sniffing, encoding checks and a lazy polars scan that reads every
//! column as text (typing happens in `prepare`, where bad values can be reported per row).

use super::{IngestError, ROW_COL, RawTable};
use polars::prelude::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

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
}

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
        }
    }

    /// One line, with its `\n` when it has one.
    fn line(&mut self, line: &[u8]) {
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
    fn finish(mut self) -> Shape {
        if !self.prefix.is_empty() || self.fields > 1 || self.content {
            self.end();
        }
        self.shape
    }
}

fn scan(path: &Path, display: &str, delim: u8, validate: bool) -> Result<Shape, IngestError> {
    let file = std::fs::File::open(path).map_err(|e| IngestError::io(display, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut sc = Scanner::new(delim);
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
        for i in memchr::memchr_iter(b'\n', chunk) {
            sc.line(&chunk[start..=i]);
            start = i + 1;
        }
        if start < chunk.len() {
            sc.line(&chunk[start..]);
        }
        offset += upto as u64;
        carry.drain(..upto);
        if eof {
            return Ok(sc.finish());
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

/// Reads a CSV file as text columns plus the row number of each record (its line, where the
/// header is line 1). Blank records are skipped and counted; a record with more or fewer fields
/// than the header is left out and reported as a reject.
pub fn read(path: &Path, cfg: &crate::config::IngestConfig) -> Result<RawTable, IngestError> {
    let display = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| IngestError::io(&display, e))?;
    if meta.is_dir() {
        return Err(IngestError::NotAFile { file: display });
    }
    if meta.len() == 0 {
        return Err(IngestError::Empty { file: display });
    }

    // Encoding: a UTF-16 byte-order mark decides; otherwise validate (during the scan below),
    // transcode, or let polars replace bad bytes.
    let mut _transcoded = None;
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
        _transcoded = Some(t);
    } else {
        match cfg.encoding.as_str() {
            "lossy" => encoding = CsvEncoding::LossyUtf8,
            "windows-1252" => {
                let t = transcode_cp1252(path, &display)?;
                scan_path = t.path().to_path_buf();
                _transcoded = Some(t);
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

    // One pass for the encoding and the shape of every record.
    let shape = scan(&scan_path, &display, delim, validate)?;

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
                source: display.clone(),
                row: u32::try_from(ir.line).unwrap_or(u32::MAX),
                column,
                value: ir.text.chars().take(80).collect(),
                reason,
                cell: None,
            });
        }
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
        scan(&p, "s.csv", b',', true).unwrap()
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
        match scan(&p, "s.csv", b',', true) {
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
}
