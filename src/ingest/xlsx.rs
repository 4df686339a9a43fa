//! Excel workbooks (.xlsx, .xlsm, .xls, .ods) through calamine: the first sheet or a named one,
//! first non-empty row as the header, every cell turned into the text a CSV export would hold.

use super::{IngestError, ROW_COL, RawTable, SheetInfo};
use calamine::{Data, Dimensions, Reader, Sheets, open_workbook_auto};
use polars::prelude::*;
use std::path::Path;

/// Days between Excel's day 0 (1899-12-30) and 1970-01-01.
const EXCEL_TO_UNIX_DAYS: f64 = 25569.0;

/// The text of one cell: numbers without a spurious `.0`, dates as ISO `YYYY-MM-DD`.
fn cell_text(c: &Data) -> Option<String> {
    match c {
        Data::Empty => None,
        Data::String(s) => Some(s.clone()),
        Data::Int(i) => Some(i.to_string()),
        Data::Float(f) => Some(float_text(*f)),
        Data::Bool(b) => Some(if *b { "TRUE" } else { "FALSE" }.to_string()),
        Data::DateTime(dt) => {
            let serial = dt.as_f64();
            if dt.is_duration() {
                return Some(float_text(serial));
            }
            let days = (serial - EXCEL_TO_UNIX_DAYS).floor() as i32;
            Some(match super::clean::days_to_date(days) {
                Some(d) => d.format("%Y-%m-%d").to_string(),
                None => float_text(serial),
            })
        }
        Data::DateTimeIso(s) | Data::DurationIso(s) => Some(s.clone()),
        Data::Error(e) => Some(e.to_string()),
    }
}

fn float_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// A column's letters: 0 → `A`, 25 → `Z`, 26 → `AA`, 16383 → `XFD`.
pub fn column_letters(col: u32) -> String {
    let mut n = col as u64 + 1;
    let mut out = Vec::new();
    while n > 0 {
        let r = ((n - 1) % 26) as u8;
        out.push(b'A' + r);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// A sheet name as a cell reference writes it: `Sheet1`, or `'My sheet'` when it needs quotes.
pub fn sheet_ref(name: &str) -> String {
    if name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        name.to_string()
    } else {
        format!("'{}'", name.replace('\'', "''"))
    }
}

/// `A1:XFD1048576` for 0-based (row, col) corners.
fn range_ref(start: (u32, u32), end: (u32, u32)) -> String {
    format!(
        "{}{}:{}{}",
        column_letters(start.1),
        start.0 as u64 + 1,
        column_letters(end.1),
        end.0 as u64 + 1
    )
}

/// The cells of one sheet as they stream in, with the used range checked against `max_cells`
/// at every cell, so a sheet that declares or holds a huge range is refused before anything
/// proportional to its size is allocated.
struct Collector<'a> {
    file: &'a str,
    sheet: &'a str,
    max_cells: u64,
    /// (row, col, text) of every non-empty cell.
    cells: Vec<(u32, u32, String)>,
    min: (u32, u32),
    max: (u32, u32),
}

impl Collector<'_> {
    fn check(&self, start: (u32, u32), end: (u32, u32), what: &str) -> Result<(), IngestError> {
        let rows = end.0.saturating_sub(start.0) as u64 + 1;
        let cols = end.1.saturating_sub(start.1) as u64 + 1;
        let cells = rows.saturating_mul(cols);
        if cells > self.max_cells {
            return Err(IngestError::SheetTooLarge {
                file: self.file.to_string(),
                sheet: self.sheet.to_string(),
                size: format!(
                    "{what} {rows} rows × {cols} columns ({}, {cells} cells > {})",
                    range_ref(start, end),
                    self.max_cells
                ),
            });
        }
        Ok(())
    }

    fn declared(&self, d: Dimensions) -> Result<(), IngestError> {
        if d.start <= d.end && d != Dimensions::default() {
            self.check(d.start, d.end, "declares")?;
        }
        Ok(())
    }

    fn push(&mut self, (row, col): (u32, u32), value: &Data) -> Result<(), IngestError> {
        let Some(text) = cell_text(value).filter(|t| !t.trim().is_empty()) else {
            return Ok(());
        };
        if self.cells.is_empty() {
            self.min = (row, col);
            self.max = (row, col);
        } else {
            self.min = (self.min.0.min(row), self.min.1.min(col));
            self.max = (self.max.0.max(row), self.max.1.max(col));
            self.check(self.min, self.max, "uses")?;
        }
        self.cells.push((row, col, text));
        Ok(())
    }
}

/// Reads a workbook sheet (the first one unless `sheet` names one) as text columns. Leading
/// title rows (one filled cell above a wider header) are skipped; a header cell merged across
/// columns is refused, since the columns it covers would have no name.
pub fn read(path: &Path, sheet: Option<&str>, max_cells: u64) -> Result<RawTable, IngestError> {
    // The workbook reader parses untrusted zip and XML; a damaged file that makes it panic (an
    // end-before-start `<dimension>` underflows in calamine's debug builds) is reported as such.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_sheet(path, sheet, max_cells)
    }))
    .unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown");
        Err(IngestError::Workbook {
            file: path.display().to_string(),
            message: format!("the workbook is damaged; the reader failed ({why})"),
        })
    })
}

/// The cells of a sheet as collected: the sheet's name, its non-empty cells, the top-left
/// corner of their range and the ranges merged in the sheet (.xlsx only).
struct SheetCells {
    name: String,
    /// (row, col, text) of every non-empty cell.
    cells: Vec<(u32, u32, String)>,
    min: (u32, u32),
    merged: Vec<Dimensions>,
}

fn read_sheet(path: &Path, sheet: Option<&str>, max_cells: u64) -> Result<RawTable, IngestError> {
    let display = path.display().to_string();
    let SheetCells {
        name,
        mut cells,
        min,
        merged,
    } = sheet_cells(path, sheet, max_cells)?;
    // Rows in order (a writer may list them otherwise), cells in column order within a row.
    cells.sort_by_key(|(r, c, _)| (*r, *c));
    let mut rows: Vec<(u32, Vec<(u32, String)>)> = Vec::new();
    for (r, c, t) in cells {
        match rows.last_mut() {
            Some((lr, v)) if *lr == r => v.push((c, t)),
            _ => rows.push((r, vec![(c, t)])),
        }
    }
    if rows.is_empty() {
        return Err(IngestError::Empty { file: display });
    }
    // The header: the first row with two or more filled cells (rows above it are titles).
    let h = rows.iter().position(|(_, v)| v.len() >= 2).unwrap_or(0);
    let mut rows = rows.split_off(h);
    let (header_row, header_cells) = rows.remove(0);
    let header_row = &header_row;
    let first_col = min.1;
    if let Some(m) = merged
        .iter()
        .find(|m| m.start.0 <= *header_row && *header_row <= m.end.0 && m.start.1 < m.end.1)
    {
        return Err(IngestError::Workbook {
            file: display,
            message: format!(
                "sheet {name:?}: header cell {} is merged across columns, so the columns it covers have no name of their own; unmerge it and give each column its header",
                range_ref(m.start, m.end)
            ),
        });
    }
    let width = header_cells
        .last()
        .map_or(0, |(c, _)| (c - first_col) as usize + 1);
    let mut header: Vec<String> = vec![String::new(); width];
    for (c, t) in &header_cells {
        header[(c - first_col) as usize] = t.trim().to_string();
    }
    table(display, name, first_col, header, *header_row, rows)
}

/// Opens the workbook, finds the sheet (`sheet`, or the first one) and collects its cells.
fn sheet_cells(
    path: &Path,
    sheet: Option<&str>,
    max_cells: u64,
) -> Result<SheetCells, IngestError> {
    let display = path.display().to_string();
    let wb_err = |message: String| IngestError::Workbook {
        file: display.clone(),
        message,
    };
    let mut wb = open_workbook_auto(path).map_err(|e| wb_err(e.to_string()))?;
    let names = wb.sheet_names().to_vec();
    let name = match sheet {
        Some(s) => names
            .iter()
            .find(|n| n.as_str() == s || n.eq_ignore_ascii_case(s))
            .cloned()
            .ok_or_else(|| IngestError::NoSuchSheet {
                file: display.clone(),
                sheet: s.to_string(),
                sheets: names.join(", "),
            })?,
        None => names.first().cloned().ok_or_else(|| IngestError::Empty {
            file: display.clone(),
        })?,
    };
    let mut col = Collector {
        file: &display,
        sheet: &name,
        max_cells,
        cells: Vec::new(),
        min: (0, 0),
        max: (0, 0),
    };
    let sheet_err = |e: &dyn std::fmt::Display| wb_err(format!("sheet {name:?}: {e}"));
    let mut merged: Vec<Dimensions> = Vec::new();
    match &mut wb {
        Sheets::Xlsx(x) => {
            // Merged cells are only needed for the header; a workbook without them is fine.
            merged = x.merge_cells_by_sheet_name(&name).unwrap_or_default();
            let mut r = x.worksheet_cells_reader(&name).map_err(|e| sheet_err(&e))?;
            col.declared(r.dimensions())?;
            while let Some(c) = r.next_cell().map_err(|e| sheet_err(&e))? {
                col.push(c.get_position(), &Data::from(c.get_value().clone()))?;
            }
        }
        Sheets::Xlsb(x) => {
            let mut r = x.worksheet_cells_reader(&name).map_err(|e| sheet_err(&e))?;
            col.declared(r.dimensions())?;
            while let Some(c) = r.next_cell().map_err(|e| sheet_err(&e))? {
                col.push(c.get_position(), &Data::from(c.get_value().clone()))?;
            }
        }
        // .xls sheets are at most 65,536 × 256 cells; .ods is read whole by calamine.
        _ => {
            let range = wb.worksheet_range(&name).map_err(|e| sheet_err(&e))?;
            for (r, c, v) in range.used_cells() {
                let (r0, c0) = range.start().unwrap_or((0, 0));
                col.push((r0 + r as u32, c0 + c as u32), v)?;
            }
        }
    }
    let Collector { cells, min, .. } = col;
    Ok(SheetCells {
        name,
        cells,
        min,
        merged,
    })
}

/// The data rows below the header as text columns plus `bd_row` (rows with no cell in the
/// header's columns are skipped and counted as blank).
fn table(
    display: String,
    name: String,
    first_col: u32,
    header: Vec<String>,
    header_row: u32,
    rows: Vec<(u32, Vec<(u32, String)>)>,
) -> Result<RawTable, IngestError> {
    let width = header.len();
    let mut cols: Vec<Vec<Option<String>>> = vec![Vec::new(); width];
    let mut row_numbers: Vec<IdxSize> = Vec::new();
    let mut last_row = header_row;
    for (r, cells) in rows {
        let mut values: Vec<Option<String>> = vec![None; width];
        let mut any = false;
        for (c, t) in cells {
            if let Some(slot) = values.get_mut((c - first_col) as usize) {
                *slot = Some(t);
                any = true;
            }
        }
        if !any {
            continue;
        }
        for (colv, v) in cols.iter_mut().zip(values) {
            colv.push(v);
        }
        // Spreadsheet row number: 1-based.
        row_numbers.push((r as usize + 1) as IdxSize);
        last_row = r;
    }
    let blank_rows = (last_row - header_row) as usize - row_numbers.len();
    if row_numbers.is_empty() {
        return Err(IngestError::HeaderOnly {
            file: display,
            header: header.join(", "),
        });
    }
    let mut columns: Vec<Column> = Vec::with_capacity(width + 1);
    columns.push(Column::new(ROW_COL.into(), row_numbers));
    for (i, (h, values)) in header.iter().zip(cols).enumerate() {
        let name = if h.is_empty() {
            format!("column_{}", i + 1)
        } else {
            h.clone()
        };
        columns.push(Column::new(name.into(), values));
    }
    let header: Vec<String> = columns[1..].iter().map(|c| c.name().to_string()).collect();
    let df = DataFrame::new_infer_height(columns).map_err(|e| IngestError::Workbook {
        file: display.clone(),
        message: e.to_string(),
    })?;
    let mut t = RawTable::new(df, header, display);
    t.blank_rows = blank_rows;
    t.sheet = Some(SheetInfo { name, first_col });
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workbook_that_makes_the_reader_panic_is_an_error() {
        // A fuzzed workbook whose merged-cell range ends before it starts: calamine subtracts
        // the corners, which overflows (a panic where overflow checks are on).
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/workbook_ingest/regress_dimension_end_before_start.xlsx");
        let bytes = std::fs::read(corpus).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged.xlsx");
        std::fs::write(&path, &bytes[1..]).unwrap();
        let outcome = read(&path, None, 1_000_000);
        // Without overflow checks calamine wraps around instead; any answer is fine there.
        if cfg!(debug_assertions) {
            match outcome {
                Err(IngestError::Workbook { message, .. }) => {
                    assert!(message.contains("damaged"), "{message}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn column_letters_and_refs() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(16383), "XFD");
        assert_eq!(range_ref((0, 0), (1048575, 16383)), "A1:XFD1048576");
        assert_eq!(sheet_ref("Sheet1"), "Sheet1");
        assert_eq!(sheet_ref("My sheet"), "'My sheet'");
    }
}
