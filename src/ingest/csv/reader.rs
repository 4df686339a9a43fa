//! Opening a CSV file (checks, encoding, header, delimiter) and reading it as text columns.

use super::delimiter::{
    CANDIDATES, count_outside_quotes, delimiter_name, sniff_delimiter, split_line,
};
use super::encoding::{Encoding, Utf16, head, transcode_cp1252, transcode_utf16};
use super::scan::{Shape, scan};
use crate::ingest::{IngestError, ROW_COL, RawTable, ReadOptions};
use polars::prelude::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// A CSV file made ready for a pass: decoded to UTF-8 when it needs to be (the temporary copy
/// lives as long as this), its delimiter known and its header line checked.
pub(super) struct Opened {
    pub(super) display: String,
    /// The file to read: the original, or its UTF-8 transcoding.
    pub(super) scan_path: PathBuf,
    pub(super) _transcoded: Option<tempfile::NamedTempFile>,
    pub(super) encoding: CsvEncoding,
    /// Check that the bytes are UTF-8 during the scan.
    pub(super) validate: bool,
    pub(super) delim: u8,
    /// The header line split on the delimiter (after a UTF-8 byte-order mark).
    pub(super) header: Vec<String>,
}

/// The prologue of every CSV pass: the file's checks, its encoding (a UTF-16 byte-order mark
/// decides; otherwise validate during the scan, transcode, or let polars replace bad bytes), its
/// header line and its delimiter (set, or sniffed from the header).
pub(super) fn open(path: &Path, cfg: &ReadOptions) -> Result<Opened, IngestError> {
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
    let utf16 = match (bom.as_slice(), cfg.encoding) {
        ([0xFF, 0xFE], _) => Some((Utf16::Le, 2)),
        ([0xFE, 0xFF], _) => Some((Utf16::Be, 2)),
        (_, Encoding::Utf16Le) => Some((Utf16::Le, 0)),
        (_, Encoding::Utf16Be) => Some((Utf16::Be, 0)),
        _ => None,
    };
    if let Some((order, skip)) = utf16 {
        let t = transcode_utf16(path, &display, order, skip)?;
        scan_path = t.path().to_path_buf();
        transcoded = Some(t);
    } else {
        match cfg.encoding {
            Encoding::Lossy => encoding = CsvEncoding::LossyUtf8,
            Encoding::Windows1252 => {
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
    let delim = cfg.delimiter.unwrap_or_else(|| sniff_delimiter(first));
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
pub(super) fn irregular_rejects(
    shape: &Shape,
    header: &[String],
    display: &str,
) -> (Vec<crate::ingest::prepare::Reject>, usize) {
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
        rejects.push(crate::ingest::prepare::Reject {
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
pub fn read(path: &Path, cfg: &ReadOptions) -> Result<RawTable, IngestError> {
    let Opened {
        display,
        scan_path,
        _transcoded,
        encoding,
        validate,
        delim,
        header: _,
    } = open(path, cfg)?;

    // One pass for the encoding and the shape of every record, beside polars' read of the
    // same file (its own threads): neither waits for the other. The reader skips the extra
    // fields of ragged records, which are reported from the shape below; a file the scan
    // refuses (bad encoding) gets the scan's message, whatever the reader said.
    let (shape, df) = rayon::join(
        || scan(&scan_path, &display, delim, validate, None),
        || {
            CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(Some(0))
                .with_row_index(Some(RowIndex {
                    name: ROW_COL.into(),
                    offset: 2,
                }))
                .map_parse_options(|p| {
                    p.with_separator(delim)
                        .with_encoding(encoding)
                        .with_missing_is_null(true)
                        .with_truncate_ragged_lines(true)
                })
                .try_into_reader_with_file_path(Some(scan_path.clone()))
                .and_then(|r| r.finish())
        },
    );
    let shape = shape?;
    let mut df = df.map_err(|e| IngestError::parse(&display, e))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file large enough to be read in several parts on every core, whose quoted fields hold
    /// line breaks (LF and CRLF), doubled quotes and delimiters, with ragged and blank records
    /// among them: each record's fields and row number come out as written.
    #[test]
    fn quoted_line_breaks_are_read_across_the_parts_of_a_large_file() {
        let n = 120_000;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let mut text = String::from("Key,Amount,Comment\r\n");
        let mut want: Vec<(u32, String, String, String)> = Vec::new();
        let mut record = 2u32;
        for i in 0..n {
            let comment = match i % 6 {
                0 => format!("line one\nline two, \"{i}\""),
                1 => format!("crlf\r\n{i}"),
                2 => String::new(),
                _ => format!("plain {i}"),
            };
            if i % 9_999 == 5 {
                // A ragged record, then a blank line: neither is a row, both are numbered.
                text.push_str("x,1,c,extra\n\n");
                record += 2;
            }
            let quoted = format!("\"{}\"", comment.replace('"', "\"\""));
            text.push_str(&format!("K{i},{}.25,{quoted}", i % 1000));
            text.push_str(if i % 2 == 0 { "\n" } else { "\r\n" });
            want.push((record, format!("K{i}"), format!("{}.25", i % 1000), comment));
            record += 1;
        }
        f.write_all(text.as_bytes()).unwrap();
        let raw = read(f.path(), &ReadOptions::default()).unwrap();
        assert_eq!(raw.header, ["Key", "Amount", "Comment"]);
        assert_eq!(raw.df.height(), n);
        assert_eq!(raw.rejects.len(), n.div_ceil(9_999));
        let col = |name: &str| -> Vec<String> {
            raw.df
                .column(name)
                .unwrap()
                .str()
                .unwrap()
                .iter()
                .map(|v| v.unwrap_or("").to_string())
                .collect()
        };
        let rows: Vec<u32> = raw
            .df
            .column(ROW_COL)
            .unwrap()
            .cast(&DataType::UInt32)
            .unwrap()
            .u32()
            .unwrap()
            .into_no_null_iter()
            .collect();
        let (keys, amounts, comments) = (col("Key"), col("Amount"), col("Comment"));
        for (k, (row, key, amount, comment)) in want.iter().enumerate() {
            assert_eq!(
                (&rows[k], &keys[k], &amounts[k], &comments[k]),
                (row, key, amount, comment),
                "record {k}"
            );
        }
    }
}
