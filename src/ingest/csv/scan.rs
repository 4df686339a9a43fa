//! The streaming pass over a CSV file: record shapes, UTF-8 validation, records handed on.

use crate::ingest::IngestError;
use std::io::Read;
use std::path::Path;

/// A data record whose shape differs from the header's.
#[derive(Debug, Clone)]
pub(super) struct Irregular {
    /// 0-based index among the data records (blank ones included, as polars counts them).
    pub(super) index: usize,
    /// The line the record starts on (header = line 1).
    pub(super) line: u64,
    pub(super) fields: usize,
    /// Every field empty (a blank line, or only delimiters and spaces).
    pub(super) blank: bool,
    /// The start of the record's text, for the rejects report.
    pub(super) text: String,
}

/// What a pass over the file found: the header's field count and the records that differ.
#[derive(Debug, Default)]
pub(super) struct Shape {
    pub(super) header_fields: usize,
    pub(super) records: usize,
    pub(super) irregular: Vec<Irregular>,
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
pub(super) type RecordSink<'a> = dyn FnMut(i64, &[u8], bool) -> Result<bool, IngestError> + 'a;

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
        self.fields_of(line);
        // A record read on one line is handed on from the line itself; one that goes on
        // keeps its lines until it ends.
        if self.collect && (self.closed.is_none() || !self.rec.is_empty()) {
            self.rec.extend_from_slice(line);
        }
    }

    /// Counts the fields of `line` into the record being read, closing it at its line break.
    fn fields_of(&mut self, line: &[u8]) {
        let d = self.delim;
        if !self.in_quotes
            && let Some(delims) = super::bytes::delims_unless_quoted(line, d)
        {
            self.fields += delims;
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

    /// Hands the record just closed (if any) to `sink`: its lines kept, or else `line`, the
    /// line it was read on. False: the sink asks to stop.
    fn emit(&mut self, line: &[u8], sink: &mut RecordSink) -> Result<bool, IngestError> {
        match self.closed.take() {
            None => Ok(true),
            Some((index, regular)) => {
                let rec = if self.rec.is_empty() { line } else { &self.rec };
                let go = sink(index, rec, regular)?;
                self.rec.clear();
                Ok(go)
            }
        }
    }
}

/// One pass over the file (see [`Scanner`]); with `sink`, every record is handed to it as it
/// ends (a sink that returns `Ok(false)` ends the pass early: the shape then covers the records
/// seen so far).
pub(super) fn scan(
    path: &Path,
    display: &str,
    delim: u8,
    validate: bool,
    mut sink: Option<&mut RecordSink>,
) -> Result<Shape, IngestError> {
    let mut file = std::fs::File::open(path).map_err(|e| IngestError::io(display, e))?;
    let mut sc = Scanner::new(delim);
    sc.collect = sink.is_some();
    // The file is read into `buf` after the unfinished line of the read before (`filled`
    // bytes), and its whole lines are scanned where they lie.
    let mut buf = vec![0u8; 1 << 20];
    let mut filled = 0usize;
    let mut offset: u64 = 0; // bytes before `buf`
    loop {
        if filled == buf.len() {
            // A line longer than the buffer.
            buf.resize(buf.len() * 2, 0);
        }
        let n = match file.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(IngestError::io(display, e)),
        };
        let eof = n == 0;
        let seen = filled;
        filled += n;
        // Whole lines only (the rest waits for the next read); everything at the end.
        let upto = if eof {
            filled
        } else {
            match memchr::memrchr(b'\n', &buf[seen..filled]) {
                Some(i) => seen + i + 1,
                None => continue,
            }
        };
        let chunk = &buf[..upto];
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
                    let line = &chunk[start..=i];
                    sc.line(line);
                    start = i + 1;
                    if !sc.emit(line, sink)? {
                        return Ok(sc.shape);
                    }
                }
            }
        }
        if start < chunk.len() {
            sc.line(&chunk[start..]);
        }
        offset += upto as u64;
        if eof {
            sc.finish();
            if let Some(sink) = sink.as_deref_mut() {
                sc.emit(&[], sink)?;
            }
            return Ok(sc.shape);
        }
        buf.copy_within(upto..filled, 0);
        filled -= upto;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn scan_hands_on_each_record_as_it_is_in_the_file() {
        // A quoted field over two lines, a line longer than the read buffer, a blank record,
        // and a last record without a line break.
        let long = "x".repeat(3 << 20);
        let text = format!("a,b\r\n1,\"two\nlines\"\n2,{long}\n\n3,\"q,\"\"\"");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(&p, &text).unwrap();
        let mut got: Vec<(i64, String, bool)> = Vec::new();
        let mut sink = |i: i64, rec: &[u8], regular: bool| {
            got.push((i, String::from_utf8(rec.to_vec()).unwrap(), regular));
            Ok(true)
        };
        let shape = scan(&p, "s.csv", b',', true, Some(&mut sink)).unwrap();
        let want: Vec<(i64, String, bool)> = vec![
            (-1, "a,b\r\n".into(), true),
            (0, "1,\"two\nlines\"\n".into(), true),
            (1, format!("2,{long}\n"), true),
            (2, "\n".into(), false),
            (3, "3,\"q,\"\"\"".into(), true),
        ];
        assert_eq!(got, want);
        assert_eq!(shape.records, 4);
        assert_eq!(shape.irregular.len(), 1);
        assert_eq!((shape.irregular[0].index, shape.irregular[0].line), (2, 5));
        // Bytes of the file that records were handed on from, all of them.
        let handed: usize = want.iter().map(|w| w.1.len()).sum();
        assert_eq!(handed, text.len());
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
}
