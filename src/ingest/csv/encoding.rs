//! Encodings: the `[ingest] encoding` values and decoding Windows-1252 and UTF-16 files to UTF-8.

use crate::ingest::IngestError;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

/// The values of `[ingest] encoding` / `--encoding`.
pub const ENCODINGS: [&str; 5] = ["utf8", "lossy", "windows-1252", "utf-16le", "utf-16be"];

/// The text encoding of a CSV file (a UTF-16 byte-order mark overrides it): one of
/// [`ENCODINGS`], parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8, checked while the file is scanned (invalid bytes are an error).
    #[default]
    Utf8,
    /// UTF-8, invalid bytes replaced.
    Lossy,
    /// Windows-1252, decoded to UTF-8 first.
    Windows1252,
    /// UTF-16 without a byte-order mark, little- or big-endian.
    Utf16Le,
    Utf16Be,
}

impl Encoding {
    /// The setting's name (one of [`ENCODINGS`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf8",
            Encoding::Lossy => "lossy",
            Encoding::Windows1252 => "windows-1252",
            Encoding::Utf16Le => "utf-16le",
            Encoding::Utf16Be => "utf-16be",
        }
    }
}

impl std::str::FromStr for Encoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Encoding, String> {
        [
            Encoding::Utf8,
            Encoding::Lossy,
            Encoding::Windows1252,
            Encoding::Utf16Le,
            Encoding::Utf16Be,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
        .ok_or_else(|| format!("must be one of {}, found {s:?}", ENCODINGS.join(", ")))
    }
}

/// Windows-1252 code points for bytes 0x80–0x9F (the rest of the byte range is Latin-1).
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
];

/// Decodes a Windows-1252 file into a UTF-8 temporary file, streaming.
pub(super) fn transcode_cp1252(
    path: &Path,
    display: &str,
) -> Result<tempfile::NamedTempFile, IngestError> {
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
pub(super) enum Utf16 {
    Le,
    Be,
}

/// Decodes a UTF-16 file (after its byte-order mark, if any) into a UTF-8 temporary file,
/// streaming. An unpaired surrogate is an error naming its byte offset.
pub(super) fn transcode_utf16(
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
pub(super) fn head(path: &Path, display: &str, n: usize) -> Result<Vec<u8>, IngestError> {
    let f = std::fs::File::open(path).map_err(|e| IngestError::io(display, e))?;
    let mut buf = Vec::with_capacity(n);
    f.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|e| IngestError::io(display, e))?;
    Ok(buf)
}
