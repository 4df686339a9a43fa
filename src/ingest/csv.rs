//! CSV reading: delimiter sniffing, encoding checks and a lazy polars scan that reads every
//! column as text (typing happens in `prepare`, where bad values can be reported per row).

use super::{IngestError, ROW_COL, RawTable};
use polars::prelude::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

/// Delimiters `auto` chooses among.
const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];

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

/// Checks that a file is valid UTF-8, streaming; reports the line and byte of the first bad byte.
fn check_utf8(path: &Path, display: &str) -> Result<(), IngestError> {
    let file = std::fs::File::open(path).map_err(|e| IngestError::io(display, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut carry: Vec<u8> = Vec::new();
    let mut offset: u64 = 0; // bytes before `carry`
    let mut line: u64 = 1;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| IngestError::io(display, e))?;
        let eof = n == 0;
        carry.extend_from_slice(&buf[..n]);
        match std::str::from_utf8(&carry) {
            Ok(_) => {
                line += carry.iter().filter(|b| **b == b'\n').count() as u64;
                offset += carry.len() as u64;
                carry.clear();
            }
            Err(e) => {
                let good = e.valid_up_to();
                line += carry[..good].iter().filter(|b| **b == b'\n').count() as u64;
                if e.error_len().is_some() || eof {
                    let bad = carry[good];
                    return Err(IngestError::Encoding {
                        file: display.to_string(),
                        line,
                        byte: offset + good as u64,
                        value: format!("0x{bad:02X}"),
                    });
                }
                // An incomplete sequence at the end of the chunk: keep it for the next read.
                offset += good as u64;
                carry.drain(..good);
            }
        }
        if eof {
            return Ok(());
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

/// Reads a CSV file as text columns plus the spreadsheet-style row number of each record.
pub fn read(path: &Path, cfg: &crate::config::IngestConfig) -> Result<RawTable, IngestError> {
    let display = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| IngestError::io(&display, e))?;
    if meta.is_dir() {
        return Err(IngestError::NotAFile { file: display });
    }
    if meta.len() == 0 {
        return Err(IngestError::Empty { file: display });
    }

    // Encoding: validate, transcode, or let polars replace bad bytes.
    let mut _transcoded = None;
    let mut scan_path = path.to_path_buf();
    let mut encoding = CsvEncoding::Utf8;
    match cfg.encoding.as_str() {
        "lossy" => encoding = CsvEncoding::LossyUtf8,
        "windows-1252" => {
            let t = transcode_cp1252(path, &display)?;
            scan_path = t.path().to_path_buf();
            _transcoded = Some(t);
        }
        _ => check_utf8(path, &display)?,
    }

    // The header line, for sniffing and for clear messages.
    let mut first = String::new();
    {
        let f = std::fs::File::open(&scan_path).map_err(|e| IngestError::io(&display, e))?;
        let mut r = BufReader::new(f);
        let mut bytes = Vec::new();
        r.read_until(b'\n', &mut bytes)
            .map_err(|e| IngestError::io(&display, e))?;
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

    let path_str = scan_path.to_string_lossy().to_string();
    let lf = LazyCsvReader::new(PlRefPath::new(path_str.as_str()))
        .with_has_header(true)
        .with_separator(delim)
        .with_infer_schema_length(Some(0))
        .with_encoding(encoding)
        .with_missing_is_null(true)
        .with_row_index(Some(RowIndex {
            name: ROW_COL.into(),
            offset: 2,
        }))
        .finish()
        .map_err(|e| IngestError::parse(&display, e))?;
    let df = lf.collect().map_err(|e| IngestError::parse(&display, e))?;
    let header: Vec<String> = df
        .get_column_names()
        .iter()
        .filter(|n| n.as_str() != ROW_COL)
        .map(|n| n.to_string())
        .collect();
    if df.height() == 0 {
        return Err(IngestError::HeaderOnly {
            file: display,
            header: header.join(", "),
        });
    }
    Ok(RawTable {
        df,
        header,
        source: display,
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

    #[test]
    fn delimiter_setting_parses() {
        assert_eq!(parse_delimiter("auto"), Ok(None));
        assert_eq!(parse_delimiter(";"), Ok(Some(b';')));
        assert_eq!(parse_delimiter("\\t"), Ok(Some(b'\t')));
        assert!(parse_delimiter(",,").is_err());
        assert!(parse_delimiter("\"").is_err());
    }
}
