//! Reading the parts back: each part's sidecars and table, checked against the others.

use super::*;

/// One part: its file, and what its sidecars say.
pub struct Part {
    pub path: PathBuf,
    pub meta: PartMeta,
    pub rows: PartRows,
    /// The written rows, held in memory by a bounded run instead of written to `path` (the
    /// part's columns as its meta file names them); None: read from `path`.
    pub table: Option<DataFrame>,
}

pub(super) fn read_part(path: &Path) -> Result<Part, PartError> {
    let shown = path.display().to_string();
    if !path.is_file() {
        return Err(PartError::Read {
            file: shown,
            message: "no such file".into(),
        });
    }
    let mp = meta_path(path);
    let bytes = std::fs::read(&mp).map_err(|e| PartError::Read {
        file: mp.display().to_string(),
        message: format!(
            "{e} (every part needs the sidecars `run --partition` writes beside it: {} and {})",
            mp.display(),
            rows_path(path).display()
        ),
    })?;
    let meta: PartMeta = serde_json::from_slice(&bytes).map_err(|e| PartError::Invalid {
        file: mp.display().to_string(),
        message: format!("not a part's meta file: {e}"),
    })?;
    if meta.format != PART_FORMAT {
        return Err(PartError::Invalid {
            file: mp.display().to_string(),
            message: format!(
                "part format {} (this build reads {PART_FORMAT})",
                meta.format
            ),
        });
    }
    let rp = rows_path(path);
    let bytes = std::fs::read(&rp).map_err(|e| PartError::Read {
        file: rp.display().to_string(),
        message: e.to_string(),
    })?;
    let rows = PartRows::from_bytes(&bytes).map_err(|message| PartError::Invalid {
        file: rp.display().to_string(),
        message,
    })?;
    if rows.len() != meta.rows {
        return Err(PartError::Invalid {
            file: rp.display().to_string(),
            message: format!(
                "{} rows, and {} says {}",
                rows.len(),
                mp.display(),
                meta.rows
            ),
        });
    }
    Ok(Part {
        path: path.to_path_buf(),
        meta,
        rows,
        table: None,
    })
}

/// Checks that `parts` are the partitions of one run, each once, all of them.
pub(super) fn check_parts(parts: &[Part], settings: &Settings) -> Result<(), PartError> {
    let Some(first) = parts.first() else {
        return Err(PartError::Incomplete("no parts to merge".into()));
    };
    let a = &first.meta;
    for p in parts {
        check_same(first, p)?;
    }
    let mine = rules_digest(settings);
    if a.rules != mine {
        return Err(PartError::Invalid {
            file: meta_path(&first.path).display().to_string(),
            message: format!(
                "it was categorized with other root-cause rules ({}) than this configuration's ({mine}); merge with the workers' [categorize] rules",
                a.rules
            ),
        });
    }
    check_decimal(parts)?;
    check_coverage(parts, a.partition.count)
}

/// The parts read their amounts with one decimal separator (a part whose amounts read alike
/// either way goes with any).
fn check_decimal(parts: &[Part]) -> Result<(), PartError> {
    let mut first: Option<(&Part, &str)> = None;
    for p in parts {
        let Some(d) = p.meta.decimal.as_deref() else {
            continue;
        };
        match first {
            None => first = Some((p, d)),
            Some((q, e)) if e != d => {
                let describe = |s: &str| match s {
                    "," => crate::ingest::clean::Decimal::Comma.describe(),
                    _ => crate::ingest::clean::Decimal::Point.describe(),
                };
                return Err(PartError::Mismatch {
                    file: p.path.display().to_string(),
                    other: q.path.display().to_string(),
                    message: format!(
                        "its amounts were read with a {} and the other's with a {}: the file's amounts do not agree on the decimal separator; set [ingest] decimal = \".\" or \",\"",
                        describe(d),
                        describe(e)
                    ),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A part against the first: the same hash, partition count, model, input, output, columns,
/// profile, cluster summary shape and triage settings.
fn check_same(first: &Part, p: &Part) -> Result<(), PartError> {
    let a = &first.meta;
    let name = |p: &Part| p.path.display().to_string();
    let b = &p.meta;
    let mismatch = |message: String| PartError::Mismatch {
        file: name(p),
        other: name(first),
        message,
    };
    if b.hash != crate::partition::HASH {
        return Err(PartError::Invalid {
            file: meta_path(&p.path).display().to_string(),
            message: format!(
                "its accounts were split by hash {:?}; this build splits by {:?}",
                b.hash,
                crate::partition::HASH
            ),
        });
    }
    if b.partition.count != a.partition.count {
        return Err(mismatch(format!(
            "it is partition {} and the other of {} partitions",
            b.partition, a.partition.count
        )));
    }
    if b.model_id != a.model_id || b.model_version != a.model_version {
        return Err(mismatch(format!(
            "it was scored by model {} and the other by {}",
            b.model_version, a.model_version
        )));
    }
    let shared = |m: &PartMeta| (m.rejects.shared.rows, m.rejects.shared.history_rows);
    if (b.rows_read, b.history_rows_read, shared(b))
        != (a.rows_read, a.history_rows_read, shared(a))
        || b.rejects.shared != a.rejects.shared
    {
        return Err(mismatch(format!(
            "it comes from an input of {} rows ({} history rows, {} rejected by every worker), the other from {} ({}, {})",
            b.rows_read,
            b.history_rows_read,
            b.rejects
                .shared
                .rows
                .saturating_add(b.rejects.shared.history_rows),
            a.rows_read,
            a.history_rows_read,
            a.rejects
                .shared
                .rows
                .saturating_add(a.rejects.shared.history_rows),
        )));
    }
    if b.all_rows != a.all_rows {
        return Err(mismatch(
            "one was written with --all-rows and the other without".into(),
        ));
    }
    if b.output != a.output {
        return Err(mismatch(format!(
            "it is {} and the other {}",
            b.output, a.output
        )));
    }
    if b.columns != a.columns {
        let at = b
            .columns
            .iter()
            .zip(&a.columns)
            .position(|(x, y)| x != y)
            .unwrap_or(b.columns.len().min(a.columns.len()));
        let show = |c: Option<&PartColumn>| {
            c.map(|c| format!("{} ({})", c.name, c.dtype))
                .unwrap_or_else(|| "nothing".into())
        };
        return Err(mismatch(format!(
            "their columns differ: column {} is {} here and {} there",
            at + 1,
            show(b.columns.get(at)),
            show(a.columns.get(at))
        )));
    }
    if b.profile != a.profile || b.resolved != a.resolved {
        return Err(mismatch(format!(
            "it was read with profile {} bound to other columns than the other ({})",
            b.profile, a.profile
        )));
    }
    if b.clusters != a.clusters || b.top_accounts != a.top_accounts {
        return Err(mismatch(
            "their cluster summaries differ in shape ([cluster] top_accounts)".into(),
        ));
    }
    if b.own_z_min.to_bits() != a.own_z_min.to_bits() {
        return Err(mismatch(
            "their triage settings differ ([detect] own_z_min)".into(),
        ));
    }
    Ok(())
}

/// Every partition of `n` given once.
fn check_coverage(parts: &[Part], n: usize) -> Result<(), PartError> {
    let name = |p: &Part| p.path.display().to_string();
    let mut seen: Vec<Option<&Part>> = vec![None; n];
    for p in parts {
        let i = p.meta.partition.index;
        if i >= n {
            return Err(PartError::Invalid {
                file: meta_path(&p.path).display().to_string(),
                message: format!("partition {} is not below {n}", p.meta.partition),
            });
        }
        if let Some(q) = seen[i] {
            return Err(PartError::Mismatch {
                file: name(p),
                other: name(q),
                message: format!(
                    "both are partition {}: the parts overlap (give each partition once)",
                    p.meta.partition
                ),
            });
        }
        seen[i] = Some(p);
    }
    let missing: Vec<String> = (0..n)
        .filter(|i| seen[*i].is_none())
        .map(|i| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() {
        return Err(PartError::Incomplete(format!(
            "missing partition{} {} of {n}: the merge needs every part (0/{n} to {}/{n})",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            n - 1
        )));
    }
    Ok(())
}

/// Undoes what writing a CSV does to formula-like text (a leading `'`, see
/// [`crate::text::neutralise`]), so the rules see the text the worker saw. Writing the merged
/// file neutralises it again, to the same cell.
pub(super) fn unneutralise(s: &str) -> &str {
    match s.strip_prefix('\'') {
        Some(rest) if crate::text::is_formula_like(rest) => rest,
        _ => s,
    }
}

/// A part's table, with the types its meta file gives: `held` (the part's rows held in memory),
/// else read from its file.
pub(super) fn read_table(p: &Part, held: Option<DataFrame>) -> Result<DataFrame, PartError> {
    let file = p.path.display().to_string();
    let invalid = |message: String| PartError::Invalid {
        file: file.clone(),
        message,
    };
    let cols = &p.meta.columns;
    let header_of = |df: &DataFrame| -> Vec<String> {
        df.get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect()
    };
    let table = if let Some(table) = held {
        check_header(&header_of(&table), cols).map_err(&invalid)?;
        table
    } else if p.meta.output == "jsonl" {
        read_jsonl(&p.path, cols).map_err(invalid)?
    } else if let Some(table) = read_table_file(p) {
        table
    } else if let Some(table) = read_csv_typed(&p.path, cols) {
        table
    } else {
        // Read as text and typed column by column, which names the first value that is not of
        // its column's type.
        let raw = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .map_parse_options(|o| o.with_missing_is_null(true))
            .try_into_reader_with_file_path(Some(p.path.clone()))
            .and_then(|r| r.finish())
            .map_err(|e| invalid(format!("not a readable CSV: {e}")))?;
        check_header(&header_of(&raw), cols).map_err(&invalid)?;
        use rayon::prelude::*;
        let out: Vec<Column> = cols
            .par_iter()
            .map(|c| {
                let ca = raw
                    .column(&c.name)
                    .and_then(|c| c.str().cloned())
                    .map_err(|e| e.to_string())?;
                typed_from_text(&c.name, &c.dtype, &ca)
            })
            .collect::<Result<_, String>>()
            .map_err(&invalid)?;
        DataFrame::new(raw.height(), out).map_err(|e| invalid(e.to_string()))?
    };
    if table.height() != p.meta.written {
        return Err(invalid(format!(
            "{} rows, and its meta file says {} were written",
            table.height(),
            p.meta.written
        )));
    }
    Ok(table)
}

/// A CSV part's table from the table file beside it (see [`super::table`]), when it was
/// written for this very file and reads whole; None: the CSV is read instead (a damaged table
/// file is logged).
fn read_table_file(p: &Part) -> Option<DataFrame> {
    match super::table::read_table_bin(&p.path, &p.meta.columns) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(part = %p.path.display(), error = %e, "the part's table file is damaged: its CSV is read");
            None
        }
    }
}

/// A CSV part read with its columns' types (as the meta file gives them), when every value is
/// one of its type: the numbers parsed as they are read, the text as [`typed_from_text`] reads
/// it. None when the header is not the meta file's or a value does not parse (the caller then
/// reads it as text, and says which).
pub(super) fn read_csv_typed(path: &Path, cols: &[PartColumn]) -> Option<DataFrame> {
    let mut schema = Schema::default();
    for c in cols {
        schema.with_column(c.name.as_str().into(), dtype_of(&c.dtype)?);
    }
    // The header as the file has it (a schema names the columns itself).
    let head = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_n_rows(Some(0))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .ok()?;
    let header: Vec<String> = head
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    check_header(&header, cols).ok()?;
    let mut df = CsvReadOptions::default()
        .with_has_header(true)
        .with_schema(Some(std::sync::Arc::new(schema)))
        .map_parse_options(|o| o.with_missing_is_null(true))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .ok()?;
    // Text as the worker saw it (see `unneutralise`), changed only where a cell was.
    for c in cols.iter().filter(|c| c.dtype == "str") {
        let ca = df.column(&c.name).ok()?.str().ok()?;
        if ca
            .iter()
            .flatten()
            .any(|s| unneutralise(s).len() != s.len())
        {
            let v: StringChunked = ca.iter().map(|s| s.map(unneutralise)).collect();
            df.with_column(v.with_name(c.name.as_str().into()).into_column())
                .ok()?;
        }
    }
    Some(df)
}

pub(super) fn check_header(header: &[String], cols: &[PartColumn]) -> Result<(), String> {
    let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
    if header.iter().map(String::as_str).eq(names.iter().copied()) {
        return Ok(());
    }
    let at = header
        .iter()
        .zip(&names)
        .position(|(h, n)| h != n)
        .unwrap_or(header.len().min(names.len()));
    Err(format!(
        "its header does not match its meta file (and the other parts): column {} is {}, expected {}",
        at + 1,
        header
            .get(at)
            .map(|h| format!("{h:?}"))
            .unwrap_or_else(|| "missing".into()),
        names
            .get(at)
            .map(|h| format!("{h:?}"))
            .unwrap_or_else(|| "nothing".into()),
    ))
}

/// A column of type `dtype` from its text as a CSV holds it (empty = null).
pub(super) fn typed_from_text(
    name: &str,
    dtype: &str,
    ca: &StringChunked,
) -> Result<Column, String> {
    let bad = |i: usize, v: &str| {
        format!(
            "row {} (data row {}), column {name}: {v:?} is not a {dtype}",
            i + 2,
            i + 1
        )
    };
    let dt = dtype_of(dtype).ok_or_else(|| format!("column {name} has an unknown type {dtype}"))?;
    let col = match dt {
        DataType::String => {
            let v: StringChunked = ca.iter().map(|s| s.map(unneutralise)).collect();
            v.with_name(name.into()).into_column()
        }
        DataType::Boolean => {
            let mut v = Vec::with_capacity(ca.len());
            for (i, s) in ca.iter().enumerate() {
                v.push(match s {
                    None | Some("") => None,
                    Some("true") => Some(true),
                    Some("false") => Some(false),
                    Some(x) => return Err(bad(i, x)),
                });
            }
            Column::new(name.into(), v)
        }
        DataType::Float32 | DataType::Float64 => {
            let mut v = Vec::with_capacity(ca.len());
            for (i, s) in ca.iter().enumerate() {
                v.push(match s {
                    None | Some("") => None,
                    Some(x) => Some(x.parse::<f64>().map_err(|_| bad(i, x))?),
                });
            }
            Column::new(name.into(), v)
                .cast(&dt)
                .map_err(|e| e.to_string())?
        }
        DataType::Date => {
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
            let mut v = Vec::with_capacity(ca.len());
            for (i, s) in ca.iter().enumerate() {
                v.push(match s {
                    None | Some("") => None,
                    Some(x) => Some(
                        (chrono::NaiveDate::parse_from_str(x, "%Y-%m-%d").map_err(|_| bad(i, x))?
                            - epoch)
                            .num_days() as i32,
                    ),
                });
            }
            Column::new(name.into(), v)
                .cast(&DataType::Date)
                .map_err(|e| e.to_string())?
        }
        dt if dt.is_unsigned_integer() => {
            let mut v = Vec::with_capacity(ca.len());
            for (i, s) in ca.iter().enumerate() {
                v.push(match s {
                    None | Some("") => None,
                    Some(x) => Some(x.parse::<u64>().map_err(|_| bad(i, x))?),
                });
            }
            Column::new(name.into(), v)
                .strict_cast(&dt)
                .map_err(|_| format!("column {name}: a value does not fit {dtype}"))?
        }
        dt => {
            let mut v = Vec::with_capacity(ca.len());
            for (i, s) in ca.iter().enumerate() {
                v.push(match s {
                    None | Some("") => None,
                    Some(x) => Some(x.parse::<i64>().map_err(|_| bad(i, x))?),
                });
            }
            Column::new(name.into(), v)
                .strict_cast(&dt)
                .map_err(|_| format!("column {name}: a value does not fit {dtype}"))?
        }
    };
    Ok(col)
}

/// A JSON Lines part: one object per row (as `run --format jsonl` writes), with every column.
pub(super) fn read_jsonl(path: &Path, cols: &[PartColumn]) -> Result<DataFrame, String> {
    use serde_json::Value;
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut values: Vec<Vec<Value>> = vec![Vec::new(); cols.len()];
    let at: HashMap<&str, usize> = cols
        .iter()
        .enumerate()
        .map(|(k, c)| (c.name.as_str(), k))
        .collect();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let obj: serde_json::Map<String, Value> =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        if let Some(extra) = obj.keys().find(|k| !at.contains_key(k.as_str())) {
            return Err(format!(
                "line {}: column {extra:?} is not one of its meta file's (and the other parts')",
                i + 1
            ));
        }
        if obj.len() != cols.len() {
            let missing = cols
                .iter()
                .find(|c| !obj.contains_key(&c.name))
                .map(|c| c.name.as_str())
                .unwrap_or("");
            return Err(format!(
                "line {}: column {missing:?} of its meta file (and the other parts) is missing",
                i + 1
            ));
        }
        for (k, v) in obj {
            values[at[k.as_str()]].push(v);
        }
    }
    let n = values.first().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(cols.len());
    for (c, vs) in cols.iter().zip(values) {
        let bad = |i: usize, v: &Value| {
            format!(
                "line {}, column {}: {v} is not a {}",
                i + 1,
                c.name,
                c.dtype
            )
        };
        let dt = dtype_of(&c.dtype)
            .ok_or_else(|| format!("column {} has an unknown type {}", c.name, c.dtype))?;
        let name: PlSmallStr = c.name.as_str().into();
        let col = match dt {
            DataType::Boolean => {
                let mut v = Vec::with_capacity(n);
                for (i, x) in vs.iter().enumerate() {
                    v.push(match x {
                        Value::Null => None,
                        Value::Bool(b) => Some(*b),
                        x => return Err(bad(i, x)),
                    });
                }
                Column::new(name, v)
            }
            DataType::Float32 | DataType::Float64 => {
                let mut v = Vec::with_capacity(n);
                for (i, x) in vs.iter().enumerate() {
                    v.push(match x {
                        Value::Null => None,
                        Value::Number(num) => Some(num.as_f64().ok_or_else(|| bad(i, x))?),
                        x => return Err(bad(i, x)),
                    });
                }
                Column::new(name, v).cast(&dt).map_err(|e| e.to_string())?
            }
            dt if dt.is_integer() => {
                let mut v = Vec::with_capacity(n);
                for (i, x) in vs.iter().enumerate() {
                    v.push(match x {
                        Value::Null => None,
                        Value::Number(num) => Some(num.as_i64().ok_or_else(|| bad(i, x))?),
                        x => return Err(bad(i, x)),
                    });
                }
                Column::new(name, v)
                    .strict_cast(&dt)
                    .map_err(|_| format!("column {}: a value does not fit {}", c.name, c.dtype))?
            }
            // Strings and dates: the text, typed as for a CSV.
            _ => {
                let mut v: Vec<Option<String>> = Vec::with_capacity(n);
                for (i, x) in vs.iter().enumerate() {
                    v.push(match x {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        x => return Err(bad(i, x)),
                    });
                }
                let ca: StringChunked = v.iter().map(|s| s.as_deref()).collect();
                if dt == DataType::String {
                    ca.with_name(name).into_column()
                } else {
                    typed_from_text(&c.name, &c.dtype, &ca)?
                }
            }
        };
        out.push(col);
    }
    DataFrame::new(n, out).map_err(|e| e.to_string())
}
