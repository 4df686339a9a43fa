//! Excel workbooks (.xlsx, .xlsm, .xls, .ods) through calamine: the first sheet or a named one,
//! first non-empty row as the header, every cell turned into the text a CSV export would hold.

use super::{IngestError, ROW_COL, RawTable};
use calamine::{Data, Reader, open_workbook_auto};
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
        Data::Error(e) => Some(format!("#{e:?}")),
    }
}

fn float_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

pub fn read(path: &Path, sheet: Option<&str>) -> Result<RawTable, IngestError> {
    let display = path.display().to_string();
    let mut wb = open_workbook_auto(path).map_err(|e| IngestError::Workbook {
        file: display.clone(),
        message: e.to_string(),
    })?;
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
    let range = wb
        .worksheet_range(&name)
        .map_err(|e| IngestError::Workbook {
            file: display.clone(),
            message: format!("sheet {name:?}: {e}"),
        })?;
    let (start_row, _) = range.start().unwrap_or((0, 0));
    let mut rows = range
        .rows()
        .enumerate()
        .filter(|(_, r)| r.iter().any(|c| !matches!(c, Data::Empty)));
    let Some((_, header_cells)) = rows.next() else {
        return Err(IngestError::Empty { file: display });
    };
    let mut header: Vec<String> = header_cells
        .iter()
        .map(|c| cell_text(c).unwrap_or_default().trim().to_string())
        .collect();
    // Trailing unnamed columns are formatting leftovers.
    while header.last().is_some_and(String::is_empty) {
        header.pop();
    }
    let width = header.len();
    let mut cols: Vec<Vec<Option<String>>> = vec![Vec::new(); width];
    let mut row_numbers: Vec<IdxSize> = Vec::new();
    for (i, r) in rows {
        for (j, col) in cols.iter_mut().enumerate() {
            col.push(r.get(j).and_then(cell_text));
        }
        // Spreadsheet row number: 1-based, counting from the sheet's first used row.
        row_numbers.push((start_row as usize + i + 1) as IdxSize);
    }
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
    Ok(RawTable {
        df,
        header,
        source: display,
    })
}
