//! Writing results: the rows with their features as CSV or JSON Lines, and the rejects report.

use crate::ingest::prepare::Reject;
use crate::text::csv_field;
use polars::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "csv" => Ok(Format::Csv),
            "jsonl" => Ok(Format::Jsonl),
            _ => Err(format!("unknown output format {s:?}: use csv or jsonl")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
}

fn werr(path: &Path, e: impl std::fmt::Display) -> OutputError {
    OutputError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Columns that only duplicate an original column and are left out of the output.
pub fn output_columns(df: &DataFrame) -> Vec<PlSmallStr> {
    df.get_column_names()
        .into_iter()
        .filter(|n| !n.starts_with("bd_cat_"))
        .cloned()
        .collect()
}

/// Opens `path` for writing (`-` = standard output), creating parent directories.
pub(crate) fn open(path: &Path) -> Result<Box<dyn Write>, OutputError> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::BufWriter::new(std::io::stdout().lock())));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| werr(path, e))?;
    }
    let f = std::fs::File::create(path).map_err(|e| werr(path, e))?;
    Ok(Box::new(std::io::BufWriter::with_capacity(1 << 20, f)))
}

/// Writes a table. Dates are written as `YYYY-MM-DD`.
pub fn write_table(df: &DataFrame, path: &Path, format: Format) -> Result<(), OutputError> {
    write_table_after(df, None, path, format)
}

/// [`write_table`], with the CSV of the table's first columns rendered ahead ([`render_csv`],
/// while the rest were still being computed): only the columns after them are rendered now,
/// and appended to each line. Without it (or when it does not fit the table) the whole table
/// is rendered here; the file is the same either way.
pub fn write_table_after(
    df: &DataFrame,
    ahead: Option<&CsvLines>,
    path: &Path,
    format: Format,
) -> Result<(), OutputError> {
    if format == Format::Csv
        && let Some(ahead) = ahead
        && write_appended(df, ahead, path)?
    {
        return Ok(());
    }
    let names = output_columns(df);
    let mut df = df.select(names).map_err(|e| werr(path, e))?;
    let mut w = open(path)?;
    match format {
        Format::Csv => {
            neutralise_text(&mut df).map_err(|e| werr(path, e))?;
            CsvWriter::new(&mut w)
                .include_header(true)
                .with_date_format(Some("%Y-%m-%d".into()))
                .finish(&mut df)
                .map_err(|e| werr(path, e))?;
        }
        Format::Jsonl => write_jsonl(&df, &mut w).map_err(|e| werr(path, e))?,
    }
    w.flush().map_err(|e| werr(path, e))?;
    Ok(())
}

/// Writes `df` as CSV from the lines of its first columns rendered `ahead`, each followed by
/// the rest of its columns rendered now; false (nothing written) when `ahead` is not the CSV of
/// the table's first output columns for its rows.
fn write_appended(df: &DataFrame, ahead: &CsvLines, path: &Path) -> Result<bool, OutputError> {
    let names = output_columns(df);
    if ahead.rows() != df.height()
        || names.len() <= ahead.columns.len()
        || !names.starts_with(&ahead.columns)
    {
        return Ok(false);
    }
    let rest = df
        .select(names[ahead.columns.len()..].iter().cloned())
        .and_then(render_selected)
        .map_err(|e| werr(path, e))?;
    if rest.rows() != ahead.rows() {
        return Ok(false);
    }
    let mut w = open(path)?;
    for k in 0..ahead.ends.len() {
        w.write_all(ahead.line(k))
            .and_then(|_| w.write_all(b","))
            .and_then(|_| w.write_all(rest.line(k)))
            .and_then(|_| w.write_all(b"\n"))
            .map_err(|e| werr(path, e))?;
    }
    w.flush().map_err(|e| werr(path, e))?;
    Ok(true)
}

/// A table's CSV as [`write_table`] writes it, kept in memory line by line (the header first):
/// the columns it covers, the text, and where each line ends (before its line feed).
pub struct CsvLines {
    columns: Vec<PlSmallStr>,
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl CsvLines {
    /// Data lines (the header aside).
    pub fn rows(&self) -> usize {
        self.ends.len().saturating_sub(1)
    }

    /// Line `k` (0 = the header) without its line feed.
    fn line(&self, k: usize) -> &[u8] {
        let start = if k == 0 { 0 } else { self.ends[k - 1] + 1 };
        &self.text[start..self.ends[k]]
    }
}

/// The most rows whose CSV [`render_csv`] is asked to hold ahead: the rendering is kept in
/// memory whole (about 1.4 KB a row with the summaries), where the table written at once is
/// streamed. A run's anomalies (a few percent of a file that fits in memory) stay under it;
/// every row of a large file (`--all-rows`) does not, and is written as before.
pub const RENDER_AHEAD_MAX_ROWS: usize = 250_000;

/// The CSV of the output columns `df` has now, rendered as [`write_table`] would write them.
/// A run renders its table while the cases are recorded; [`write_table_after`] then adds the
/// case columns.
pub fn render_csv(df: &DataFrame) -> PolarsResult<CsvLines> {
    render_selected(df.select(output_columns(df))?)
}

fn render_selected(mut df: DataFrame) -> PolarsResult<CsvLines> {
    neutralise_text(&mut df)?;
    let mut text = Vec::new();
    CsvWriter::new(&mut text)
        .include_header(true)
        .with_date_format(Some("%Y-%m-%d".into()))
        .finish(&mut df)?;
    let ends = line_ends(&text);
    if ends.len() != df.height() + 1 || ends.last().is_some_and(|e| e + 1 != text.len()) {
        return Err(PolarsError::ComputeError(
            format!(
                "internal: {} CSV lines rendered for {} rows",
                ends.len(),
                df.height()
            )
            .into(),
        ));
    }
    Ok(CsvLines {
        columns: df.get_column_names().into_iter().cloned().collect(),
        text,
        ends,
    })
}

/// Where each CSV record of `text` ends: its line feeds outside quoted fields (a quote inside
/// a quoted field is doubled, so counting quotes tells inside from outside).
fn line_ends(text: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut quoted = false;
    let mut from = 0;
    while let Some(p) = memchr::memchr2(b'"', b'\n', &text[from..]) {
        let at = from + p;
        if text[at] == b'"' {
            quoted = !quoted;
        } else if !quoted {
            ends.push(at);
        }
        from = at + 1;
    }
    ends
}

/// Text cells a spreadsheet would run as formulas get a leading `'`, and control characters
/// are replaced ([`crate::text::csv_text`]); only the string columns that need it are rewritten.
fn neutralise_text(df: &mut DataFrame) -> PolarsResult<()> {
    rewrite_text_columns(df, |ca| {
        ca.iter()
            .flatten()
            .any(crate::text::needs_csv_cleaning)
            .then(|| ca.iter().map(|v| v.map(crate::text::csv_text)).collect())
    })
}

/// Replaces each text column of `df` with what `f` makes of it (None: left as it is); the
/// columns are rewritten on every core.
pub fn rewrite_text_columns(
    df: &mut DataFrame,
    f: impl Fn(&StringChunked) -> Option<StringChunked> + Sync,
) -> PolarsResult<()> {
    use rayon::prelude::*;
    let texts: Vec<(PlSmallStr, StringChunked)> = df
        .columns()
        .iter()
        .filter(|c| c.dtype() == &DataType::String)
        .map(|c| Ok((c.name().clone(), c.str()?.clone())))
        .collect::<PolarsResult<_>>()?;
    let fixed: Vec<(PlSmallStr, StringChunked)> = texts
        .into_par_iter()
        .filter_map(|(name, ca)| f(&ca).map(|fixed| (name, fixed)))
        .collect();
    for (name, fixed) in fixed {
        df.replace(&name, fixed.with_name(name.clone()).into_series().into())?;
    }
    Ok(())
}

fn json_value(v: AnyValue) -> serde_json::Value {
    use serde_json::Value;
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(b),
        AnyValue::String(s) => Value::String(s.to_string()),
        AnyValue::StringOwned(s) => Value::String(s.to_string()),
        AnyValue::Float64(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        AnyValue::Float32(f) => serde_json::Number::from_f64(f as f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        AnyValue::Int64(i) => Value::from(i),
        AnyValue::Int32(i) => Value::from(i),
        AnyValue::Int16(i) => Value::from(i),
        AnyValue::Int8(i) => Value::from(i),
        AnyValue::UInt64(i) => Value::from(i),
        AnyValue::UInt32(i) => Value::from(i),
        AnyValue::UInt16(i) => Value::from(i),
        AnyValue::UInt8(i) => Value::from(i),
        AnyValue::Date(d) => crate::ingest::clean::days_to_date(d)
            .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
            .unwrap_or(Value::Null),
        other => Value::String(other.to_string()),
    }
}

/// One JSON object per row, keys in column order.
fn write_jsonl(df: &DataFrame, w: &mut dyn Write) -> Result<(), Box<dyn std::error::Error>> {
    let mut df = df.clone();
    df.rechunk_mut();
    let cols = df.columns();
    let names: Vec<String> = cols.iter().map(|c| c.name().to_string()).collect();
    for i in 0..df.height() {
        let mut obj = serde_json::Map::with_capacity(cols.len());
        for (c, name) in cols.iter().zip(&names) {
            obj.insert(name.clone(), json_value(c.get(i)?));
        }
        serde_json::to_writer(&mut *w, &serde_json::Value::Object(obj))?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// A file beside an output file: `out.csv` → `out.<tag>.<ext>` (for `-`: `breakdesk.<tag>.<ext>`).
pub fn sibling_path(out: &Path, tag: &str, ext: &str) -> PathBuf {
    if out.as_os_str() == "-" {
        return PathBuf::from(format!("breakdesk.{tag}.{ext}"));
    }
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "breakdesk".into());
    out.with_file_name(format!("{stem}.{tag}.{ext}"))
}

/// The rejects report beside an output file: `out.csv` → `out.rejects.csv`.
pub fn rejects_path(out: &Path) -> PathBuf {
    sibling_path(out, "rejects", "csv")
}

/// The cluster summary: one line per cluster.
pub fn write_clusters(
    clusters: &[crate::detect::cluster::ClusterSummary],
    path: &Path,
) -> Result<(), OutputError> {
    let mut w = open(path)?;
    let mut body = String::from(
        "cluster,size,anomalies,anomaly_share,mean_difference,median_difference,total_abs_difference,top_accounts\n",
    );
    for c in clusters {
        let top: Vec<String> = c
            .top_accounts
            .iter()
            .map(|(k, n)| format!("{k} ({n})"))
            .collect();
        body.push_str(&format!(
            "{},{},{},{:.4},{:.2},{:.2},{:.2},{}\n",
            c.cluster,
            c.size,
            c.anomalies,
            c.anomaly_share,
            c.mean_difference,
            c.median_difference,
            c.total_abs_difference,
            csv_field(&top.join("; "))
        ));
    }
    w.write_all(body.as_bytes()).map_err(|e| werr(path, e))?;
    w.flush().map_err(|e| werr(path, e))?;
    Ok(())
}

/// Writes the rejects report: file, row, column, value, reason.
pub fn write_rejects(rejects: &[Reject], path: &Path) -> Result<(), OutputError> {
    let mut w = open(path)?;
    let mut body = String::from("file,row,column,value,reason,cell\n");
    for r in rejects {
        body.push_str(&format!(
            "{},{},{},{},{},{}\n",
            csv_field(&r.source),
            r.row,
            csv_field(&r.column),
            csv_field(&r.value),
            csv_field(&r.reason),
            csv_field(r.cell.as_deref().unwrap_or(""))
        ));
    }
    w.write_all(body.as_bytes()).map_err(|e| werr(path, e))?;
    w.flush().map_err(|e| werr(path, e))?;
    Ok(())
}

/// Writes a raw table as an Excel workbook the way reconciliation exports look: the profile's
/// date columns as Excel dates, its amount columns as numbers, everything else as text (so
/// zero-padded codes such as `00000` stay text). Cells that do not parse are written as text.
pub fn write_xlsx(
    raw: &crate::ingest::RawTable,
    resolved: &crate::profile::Resolved,
    path: &Path,
) -> Result<(), OutputError> {
    use crate::ingest::clean::{self, DateCell, DateOptions, NumCell};
    use rust_xlsxwriter::{ExcelDateTime, Format as XFormat, Workbook};
    const EXCEL_MAX_ROWS: usize = 1_048_575;
    if raw.df.height() > EXCEL_MAX_ROWS {
        return Err(werr(
            path,
            format!(
                "{} rows do not fit in one Excel sheet (at most {EXCEL_MAX_ROWS})",
                raw.df.height()
            ),
        ));
    }
    let mut dates: Vec<&str> = resolved.date.iter().map(String::as_str).collect();
    dates.extend(resolved.extra_dates.iter().map(|r| r.header.as_str()));
    let mut amounts: Vec<&str> = resolved.numeric.iter().map(|r| r.header.as_str()).collect();
    for c in &resolved.criteria {
        for h in [&c.lhs, &c.rhs, &c.difference, &c.tolerance_column]
            .into_iter()
            .flatten()
        {
            amounts.push(h);
        }
    }
    let date_fmt = XFormat::new().set_num_format("m/d/yyyy");
    let opts = DateOptions::default();
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    for (j, h) in raw.header.iter().enumerate() {
        let col = j as u16;
        ws.write_string(0, col, h).map_err(|e| werr(path, e))?;
        let ca = raw
            .df
            .column(h)
            .and_then(|c| c.str().cloned())
            .map_err(|e| werr(path, e))?;
        let is_date = dates.contains(&h.as_str());
        let is_amount = amounts.contains(&h.as_str());
        for (i, v) in ca.iter().enumerate() {
            let Some(v) = v else { continue };
            let row = i as u32 + 1;
            let written = if is_date {
                match clean::parse_date(v, &opts) {
                    DateCell::Date(d) => clean::days_to_date(d).and_then(|d| {
                        use chrono::Datelike;
                        ExcelDateTime::from_ymd(d.year() as u16, d.month() as u8, d.day() as u8)
                            .ok()
                    }),
                    _ => None,
                }
                .map(|dt| {
                    ws.write_datetime_with_format(row, col, &dt, &date_fmt)
                        .map(|_| ())
                })
            } else if is_amount {
                match clean::parse_number(v, 6) {
                    NumCell::Value(x) => Some(ws.write_number(row, col, x).map(|_| ())),
                    _ => None,
                }
            } else {
                None
            };
            match written {
                Some(r) => r.map_err(|e| werr(path, e))?,
                None => {
                    ws.write_string(row, col, v).map_err(|e| werr(path, e))?;
                }
            }
        }
    }
    wb.save(path).map_err(|e| werr(path, e))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cases and their audit trail as CSV and JSON lines (`cases list`, `cases show`, `audit`, `export`)

/// The columns of a case, as `cases list --format csv`, `cases show` and `export` write them.
pub const CASE_COLUMNS: [&str; 19] = crate::cases::case_columns([
    "first_difference",
    "change",
    "cleared_on",
    "due",
    "overdue",
    "owner",
]);

/// A case's values for [`CASE_COLUMNS`], as text.
pub fn case_fields(c: &crate::cases::Case) -> Vec<String> {
    let mut fields = c.csv_head(c.key.clone(), c.summary.clone());
    fields.extend([
        c.first_difference
            .map(|d| format!("{d}"))
            .unwrap_or_default(),
        c.previous_difference
            .map(|d| format!("{}", c.difference - d))
            .unwrap_or_default(),
        c.cleared_on.map(|d| d.to_string()).unwrap_or_default(),
        c.due.map(|d| d.to_string()).unwrap_or_default(),
        if c.overdue(chrono::Utc::now().date_naive()) {
            "true"
        } else {
            "false"
        }
        .to_string(),
        c.owner.clone().unwrap_or_default(),
    ]);
    fields
}

/// A JSON value of a record as text: a string as it is, anything else as JSON.
fn record_text(v: &serde_json::Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// `s` as a CSV field; for a terminal (`terminal`), without the characters that would change
/// what it shows ([`crate::text::terminal_safe`]).
fn csv_cell(s: &str, terminal: bool) -> String {
    if terminal {
        csv_field(&crate::text::terminal_safe(s))
    } else {
        csv_field(s)
    }
}

/// Writes `cases` as CSV: a header of [`CASE_COLUMNS`], then one line per case. With `record`,
/// each case's record follows its columns: the union of the records' columns, in first-seen
/// order (`export`). `terminal`: the values are made safe to show on a terminal.
pub fn write_cases_csv(
    w: &mut dyn Write,
    cases: &[crate::cases::Case],
    record: bool,
    terminal: bool,
) -> std::io::Result<()> {
    let mut cols: Vec<String> = Vec::new();
    if record {
        for c in cases {
            for k in c.row.keys() {
                if !cols.contains(k) {
                    cols.push(k.clone());
                }
            }
        }
    }
    let mut head: Vec<String> = CASE_COLUMNS.iter().map(|s| s.to_string()).collect();
    head.extend(cols.iter().map(|c| csv_field(c)));
    writeln!(w, "{}", head.join(","))?;
    for c in cases {
        let mut l: Vec<String> = case_fields(c)
            .iter()
            .map(|f| csv_cell(f, terminal))
            .collect();
        for k in &cols {
            let v = c.row.get(k).map(record_text).unwrap_or_default();
            l.push(csv_field(&v));
        }
        writeln!(w, "{}", l.join(","))?;
    }
    Ok(())
}

/// Writes audit events as CSV (`audit`): a header, then one line per event. `terminal`: the
/// values are made safe to show on a terminal.
pub fn write_events_csv(
    w: &mut dyn Write,
    events: &[crate::cases::Event],
    terminal: bool,
) -> std::io::Result<()> {
    writeln!(
        w,
        "seq,at,user,role,case_id,ticket,action,from,to,reason,model_version"
    )?;
    for e in events {
        let action = serde_json::to_value(e.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let fields = [
            e.seq.to_string(),
            e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            e.user.clone(),
            e.role.map(|r| r.to_string()).unwrap_or_default(),
            e.case_id.clone(),
            e.ticket.clone(),
            action,
            e.from.map(|s| s.as_str().to_string()).unwrap_or_default(),
            e.to.map(|s| s.as_str().to_string()).unwrap_or_default(),
            e.reason.clone().unwrap_or_default(),
            e.model_version.clone(),
        ];
        let l: Vec<String> = fields.iter().map(|f| csv_cell(f, terminal)).collect();
        writeln!(w, "{}", l.join(","))?;
    }
    Ok(())
}

/// Writes `items` as JSON lines, one object per line.
pub fn write_json_lines<T: serde::Serialize>(
    w: &mut dyn Write,
    items: &[T],
) -> std::io::Result<()> {
    for item in items {
        serde_json::to_writer(&mut *w, item)?;
        writeln!(w)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table with the cells a CSV writer must quote or neutralise, in the columns rendered
    /// ahead and in the ones added after.
    fn awkward_table(rows: usize) -> DataFrame {
        let texts = [
            "plain",
            "",
            "a,b",
            "say \"hi\"",
            "two\nlines",
            "cr\r\nlf",
            "=SUM(A1:A9)",
            "-2+3",
            "esc\u{1b}[31m",
            "\"\n\"",
            "café",
        ];
        let pick = |k: usize| -> Vec<Option<&str>> {
            (0..rows)
                .map(|i| (i % 7 != 3).then(|| texts[(i * k + 1) % texts.len()]))
                .collect()
        };
        DataFrame::new_infer_height(vec![
            Column::new("rank".into(), (0..rows as u32).collect::<Vec<_>>()),
            Column::new("Comments".into(), pick(1)),
            Column::new("bd_cat_company".into(), pick(2)),
            Column::new(
                "score".into(),
                (0..rows).map(|i| -(i as f64) / 7.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "As of Date".into(),
                (0..rows).map(|i| 19_000 + i as i32).collect::<Vec<_>>(),
            )
            .cast(&DataType::Date)
            .unwrap(),
            Column::new("summary".into(), pick(3)),
        ])
        .unwrap()
    }

    fn with_case_columns(mut df: DataFrame) -> DataFrame {
        let n = df.height();
        let texts = ["C-1", "", "x,y", "=1+1", "q\"\n"];
        for (j, name) in ["case_id", "ticket", "case_status"].iter().enumerate() {
            let v: Vec<&str> = (0..n).map(|i| texts[(i + j) % texts.len()]).collect();
            df.with_column(Column::new((*name).into(), v)).unwrap();
        }
        df
    }

    #[test]
    fn a_table_rendered_ahead_is_written_as_the_whole_table_is() {
        let dir = tempfile::tempdir().unwrap();
        for rows in [0, 1, 2, 40] {
            let table = awkward_table(rows);
            let ahead = render_csv(&table).unwrap();
            assert_eq!(ahead.rows(), rows);
            let full = with_case_columns(table);
            let (whole, after) = (dir.path().join("whole.csv"), dir.path().join("after.csv"));
            write_table(&full, &whole, Format::Csv).unwrap();
            assert!(write_appended(&full, &ahead, &after).unwrap());
            let whole = std::fs::read(&whole).unwrap();
            assert_eq!(std::fs::read(&after).unwrap(), whole, "{rows} rows");
            let text = String::from_utf8(whole).unwrap();
            assert!(text.starts_with(
                "rank,Comments,score,As of Date,summary,case_id,ticket,case_status\n"
            ));
            if rows == 40 {
                // Quoted line breaks, neutralised formulas and escapes are in the file.
                assert!(text.contains("\"two\nlines\""), "{text}");
                assert!(text.contains("'=SUM(A1:A9)"), "{text}");
                assert!(!text.contains('\u{1b}'));
            }
        }
    }

    #[test]
    fn a_rendering_that_does_not_fit_the_table_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let table = awkward_table(12);
        let full = with_case_columns(table.clone());
        let whole = dir.path().join("whole.csv");
        write_table(&full, &whole, Format::Csv).unwrap();
        let whole = std::fs::read(&whole).unwrap();
        // Fewer rows, other columns, or every column already rendered: the table is written
        // whole, as it is now.
        for stale in [
            render_csv(&table.slice(0, 5)).unwrap(),
            render_csv(&table.select(["rank", "score"]).unwrap()).unwrap(),
            render_csv(&full).unwrap(),
        ] {
            let p = dir.path().join("after.csv");
            assert!(!write_appended(&full, &stale, &p).unwrap());
            write_table_after(&full, Some(&stale), &p, Format::Csv).unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), whole);
        }
        // JSON Lines ignores a CSV rendering.
        let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        write_table(&full, &a, Format::Jsonl).unwrap();
        write_table_after(&full, Some(&render_csv(&table).unwrap()), &b, Format::Jsonl).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    }

    #[test]
    fn csv_records_end_at_line_feeds_outside_quotes() {
        assert_eq!(line_ends(b"a,b\n\"x\ny\",\"\"\"\"\n\n"), vec![3, 14, 15]);
        assert_eq!(line_ends(b""), Vec::<usize>::new());
    }

    #[test]
    fn rejects_report_is_valid_csv() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        write_rejects(
            &[Reject {
                source: "a.csv".into(),
                row: 7,
                column: "GL Balance".into(),
                value: "1,2\"x".into(),
                reason: "not a number".into(),
                cell: None,
            }],
            &p,
        )
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "file,row,column,value,reason,cell\na.csv,7,GL Balance,\"1,2\"\"x\",not a number,\n"
        );
        assert_eq!(
            rejects_path(Path::new("out/anoms.csv")),
            PathBuf::from("out/anoms.rejects.csv")
        );
    }

    #[test]
    fn jsonl_has_one_object_per_row_with_iso_dates() {
        let df = DataFrame::new_infer_height(vec![
            Column::new("a".into(), vec![1.5f64, 2.0]),
            Int32Chunked::from_vec("d".into(), vec![19843, 19844])
                .into_date()
                .into_column(),
            Column::new("s".into(), vec![Some("x"), None]),
        ])
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.jsonl");
        write_table(&df, &p, Format::Jsonl).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["d"], "2024-04-30");
        assert_eq!(lines[0]["a"], 1.5);
        assert!(lines[1]["s"].is_null());
    }
}
