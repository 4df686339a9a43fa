//! Reading reconciliation files (CSV of any size, Excel workbooks) into text columns, then typing
//! them through a profile with a rejects report (`prepare`).

pub mod clean;
pub mod csv;
pub mod prepare;
pub mod xlsx;

use polars::prelude::DataFrame;
use std::path::Path;

/// The row-number column every raw table carries: the record's row as a spreadsheet shows it
/// (header = row 1, first data row = row 2).
pub const ROW_COL: &str = "bd_row";

/// A file as read: text columns under their original headers, plus `bd_row`.
#[derive(Debug, Clone)]
pub struct RawTable {
    pub df: DataFrame,
    pub header: Vec<String>,
    pub source: String,
    /// Records the reader left out because they cannot be aligned with the header (more or
    /// fewer fields than it has); one per record.
    pub rejects: Vec<prepare::Reject>,
    /// Blank lines (or rows whose every cell is empty) skipped.
    pub blank_rows: usize,
    /// Workbooks: the sheet read, for the cell of a reject.
    pub sheet: Option<SheetInfo>,
}

/// The sheet a workbook table comes from.
#[derive(Debug, Clone)]
pub struct SheetInfo {
    pub name: String,
    /// The sheet column (0 = A) of the table's first column.
    pub first_col: u32,
}

impl RawTable {
    /// A table read without incident.
    pub fn new(df: DataFrame, header: Vec<String>, source: String) -> RawTable {
        RawTable {
            df,
            header,
            source,
            rejects: Vec::new(),
            blank_rows: 0,
            sheet: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("file not found: {file}")]
    NotFound { file: String },
    #[error("cannot read {file}: {message}")]
    Io { file: String, message: String },
    #[error("{file} is a directory, not a file")]
    NotAFile { file: String },
    #[error("{file} is empty (no header, no rows)")]
    Empty { file: String },
    #[error("{file} has a header but no data rows (columns: {header})")]
    HeaderOnly { file: String, header: String },
    #[error(
        "{file} is not valid UTF-8: byte {value} at line {line} (byte offset {byte}). If the file comes from a Latin-1 export, use --encoding windows-1252 (or `lossy` to replace bad bytes)"
    )]
    Encoding {
        file: String,
        line: u64,
        byte: u64,
        value: String,
    },
    #[error(
        "{file}: the header is a single column when split on {used}, but it contains {looks_like}; the file looks delimited by {looks_like} — pass --delimiter or set [ingest] delimiter (header: {header})"
    )]
    WrongDelimiter {
        file: String,
        used: String,
        looks_like: String,
        header: String,
    },
    #[error("cannot parse {file} as CSV: {message}")]
    Parse { file: String, message: String },
    #[error("cannot read workbook {file}: {message}")]
    Workbook { file: String, message: String },
    #[error("{file} has no sheet named {sheet:?}; sheets: {sheets}")]
    NoSuchSheet {
        file: String,
        sheet: String,
        sheets: String,
    },
    #[error(
        "{file}: unsupported file type {ext:?}; breakdesk reads .csv, .txt, .tsv and Excel workbooks (.xlsx, .xlsm, .xls, .ods)"
    )]
    Unsupported { file: String, ext: String },
    #[error("{message}")]
    Config { message: String },
    #[error(
        "{file}: {rejected} of {total} rows rejected ({share:.1}%), more than the allowed {max:.1}% ([ingest] max_reject_share); see the rejects report{report}"
    )]
    TooManyRejects {
        file: String,
        rejected: usize,
        total: usize,
        share: f64,
        max: f64,
        report: String,
    },
    #[error("{file}: every row was rejected ({total} rows); see the rejects report{report}")]
    AllRejected {
        file: String,
        total: usize,
        report: String,
    },
    #[error("{file}: sheet {sheet:?} {size}, more than [ingest] max_cells; it was not read")]
    SheetTooLarge {
        file: String,
        sheet: String,
        /// `declares 1048576 rows × 16384 columns (A1:XFD1048576, 17179869184 cells > 50000000)`
        size: String,
    },
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    #[error("{file}: {message}")]
    Data { file: String, message: String },
}

impl IngestError {
    pub(crate) fn io(file: &str, e: std::io::Error) -> IngestError {
        if e.kind() == std::io::ErrorKind::NotFound {
            IngestError::NotFound {
                file: file.to_string(),
            }
        } else {
            IngestError::Io {
                file: file.to_string(),
                message: e.to_string(),
            }
        }
    }

    pub(crate) fn parse(file: &str, e: polars::prelude::PolarsError) -> IngestError {
        let msg = e.to_string();
        // polars reports invalid UTF-8 and ragged rows with long hints; keep the first line.
        let first = msg.lines().next().unwrap_or(&msg).trim().to_string();
        if first.to_lowercase().contains("no such file") {
            return IngestError::NotFound {
                file: file.to_string(),
            };
        }
        IngestError::Parse {
            file: file.to_string(),
            message: first,
        }
    }
}

/// How files are read into text columns.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// The text encoding of CSV files (a UTF-16 byte-order mark overrides it).
    pub encoding: csv::Encoding,
    /// The CSV delimiter; None: sniffed from the header line.
    pub delimiter: Option<u8>,
    /// The workbook sheet read when the caller names none; None: the first sheet.
    pub sheet: Option<String>,
    /// A workbook sheet larger than this many cells (rows × columns) is refused.
    pub max_cells: u64,
}

impl Default for ReadOptions {
    /// As `config/default.toml` sets `[ingest]`.
    fn default() -> Self {
        ReadOptions {
            encoding: csv::Encoding::Utf8,
            delimiter: None,
            sheet: None,
            max_cells: 50_000_000,
        }
    }
}

/// Everything ingest needs: how files are read, how their cells are typed, and the share of
/// rejected rows a file may have before a run refuses it.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestOptions {
    pub read: ReadOptions,
    pub prepare: prepare::PrepareOptions,
    /// The largest share (0–1) of a file's rows that may be rejected.
    pub max_reject_share: f64,
}

impl Default for IngestOptions {
    /// As `config/default.toml` sets `[ingest]`.
    fn default() -> Self {
        IngestOptions {
            read: ReadOptions::default(),
            prepare: prepare::PrepareOptions::default(),
            max_reject_share: 0.05,
        }
    }
}

/// Reads a CSV or Excel file (chosen by extension) as text columns.
pub fn read(path: &Path, cfg: &ReadOptions, sheet: Option<&str>) -> Result<RawTable, IngestError> {
    let display = path.display().to_string();
    if !path.exists() {
        return Err(IngestError::NotFound { file: display });
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "xlsx" | "xlsm" | "xls" | "xlsb" | "ods" => {
            let sheet = sheet.or(cfg.sheet.as_deref());
            xlsx::read(path, sheet, cfg.max_cells)
        }
        "csv" | "txt" | "tsv" | "" | "dat" => csv::read(path, cfg),
        _ => Err(IngestError::Unsupported { file: display, ext }),
    }
}
