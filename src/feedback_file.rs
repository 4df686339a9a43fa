//! The analysts' feedback file: a CSV that names cases and gives each a verdict, for
//! [`crate::cases::Cases::import_feedback`].
//!
//! Columns (header names ignore case, spaces and underscores):
//! - the case: `case_id` (also `case`, `ticket`) — a case id or ticket; or `profile`, the record's
//!   key and `date`. The key is a `key` column (the key columns joined with `|`, as `cases list`
//!   shows it), or the profile's own key columns (e.g. Company, Account, AU, Currency);
//! - `label` (also `feedback`, `verdict`, `decision`): accept / 1 / true (a true break) or
//!   reject / 0 / false (a false positive);
//! - `reason` (also `comment`, `comments`): required to reject.

use crate::cases::FeedbackRow;
use crate::ingest::clean::normalize_header;
use crate::profile::Profile;

/// Why a feedback file cannot be read at all (bad rows are reported by the import instead).
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct FeedbackFileError {
    pub file: String,
    pub message: String,
}

/// Splits CSV text into records (RFC 4180: quoted fields may hold commas, quotes and line
/// breaks). Returns each record with the line it starts on (1-based).
pub fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut record = Vec::new();
    let mut quoted = false;
    let mut line = 1;
    let mut start = 1;
    let mut chars = text.trim_start_matches('\u{feff}').chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                if !(record.len() == 1 && record[0].trim().is_empty()) {
                    out.push((start, std::mem::take(&mut record)));
                }
                record.clear();
                line += 1;
                start = line;
                any = false;
                continue;
            }
            c => field.push(c),
        }
        any = true;
    }
    if quoted {
        return Err(format!("line {start}: a quoted field is not closed"));
    }
    if any || !field.is_empty() || !record.is_empty() {
        record.push(field);
        if !(record.len() == 1 && record[0].trim().is_empty()) {
            out.push((start, record));
        }
    }
    Ok(out)
}

fn column(header: &[String], names: &[&str]) -> Option<usize> {
    let wanted: Vec<String> = names.iter().map(|n| normalize_header(n)).collect();
    header
        .iter()
        .position(|h| wanted.contains(&normalize_header(h)))
}

/// Reads a feedback file's rows. `profile` (a name or path; the `profile` column of each row
/// otherwise) tells which columns make the key when there is no `key` column.
pub fn parse(
    text: &str,
    file: &str,
    profile: Option<&str>,
) -> Result<Vec<FeedbackRow>, FeedbackFileError> {
    let err = |message: String| FeedbackFileError {
        file: file.to_string(),
        message,
    };
    let recs = records(text).map_err(err)?;
    let Some(((_, header), rows)) = recs.split_first() else {
        return Err(err("the file is empty (expected a header row)".into()));
    };
    let case = column(header, &["case_id", "case", "ticket"]);
    let label = column(header, &["label", "feedback", "verdict", "decision"]);
    let reason = column(header, &["reason", "comment", "comments"]);
    let profile_col = column(header, &["profile"]);
    let date = column(header, &["date", "as_of_date", "as of date", "trade_date"]);
    let key = column(header, &["key"]);
    let Some(label) = label else {
        return Err(err(format!(
            "no label column (label, feedback, verdict or decision) in the header: {}",
            header.join(", ")
        )));
    };
    // The key from the profile's key columns, when there is no `key` column.
    let key_cols: Option<Vec<usize>> = match (key, profile) {
        (None, Some(p)) => {
            let p = Profile::by_name_or_path(p).map_err(|e| err(e.to_string()))?;
            let mut cols = Vec::new();
            for k in &p.keys {
                let names: Vec<&str> = k.names().iter().map(String::as_str).collect();
                match column(header, &names) {
                    Some(c) => cols.push(c),
                    None => {
                        if case.is_none() {
                            return Err(err(format!(
                                "no case_id column, no key column and no {} column (a key column of profile {})",
                                k.names().first().map_or("?", |s| s.as_str()),
                                p.name
                            )));
                        }
                        cols.clear();
                        break;
                    }
                }
            }
            // Optional key columns count when the file has them, as they do in `bd_key`.
            if !cols.is_empty() {
                for k in &p.optional_keys {
                    let names: Vec<&str> = k.names().iter().map(String::as_str).collect();
                    if let Some(c) = column(header, &names) {
                        cols.push(c);
                    }
                }
            }
            (!cols.is_empty()).then_some(cols)
        }
        _ => None,
    };
    if case.is_none() && ((key.is_none() && key_cols.is_none()) || date.is_none()) {
        return Err(err(format!(
            "each row must name its case: a case_id (or ticket) column, or profile, key and date columns; the header has: {}",
            header.join(", ")
        )));
    }
    let get = |rec: &[String], c: Option<usize>| -> Option<String> {
        c.and_then(|c| rec.get(c))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    Ok(rows
        .iter()
        .map(|(line, rec)| FeedbackRow {
            line: *line,
            case_id: get(rec, case),
            profile: get(rec, profile_col).or_else(|| profile.map(str::to_string)),
            key: get(rec, key).or_else(|| {
                key_cols.as_ref().map(|cols| {
                    cols.iter()
                        .map(|c| rec.get(*c).map_or("", |v| v.trim()))
                        .collect::<Vec<_>>()
                        .join("|")
                })
            }),
            date: get(rec, date),
            label: get(rec, Some(label)).unwrap_or_default(),
            reason: get(rec, reason),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quoted_fields_and_multiline_records() {
        let r = records("a,b\r\n\"x, y\",\"he said \"\"no\"\"\"\n\"two\nlines\",z\n\n").unwrap();
        assert_eq!(
            r,
            vec![
                (1, vec!["a".to_string(), "b".to_string()]),
                (2, vec!["x, y".to_string(), "he said \"no\"".to_string()]),
                (3, vec!["two\nlines".to_string(), "z".to_string()]),
            ]
        );
        assert!(records("a,\"b\n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn reads_case_ids_or_profile_key_columns() {
        let rows = parse(
            "Ticket,Label,Comment\nBRK-20240501-000001,accept,\nC-0123456789ab,reject,fee\n",
            "f.csv",
            None,
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].case_id.as_deref(), Some("BRK-20240501-000001"));
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[1].reason.as_deref(), Some("fee"));

        let rows = parse(
            "Company,Account,AU,Currency,As of Date,feedback,reason\n00000,201000,1750,USD,2024-05-01,0,known fee\n",
            "f.csv",
            Some("gl_ihub"),
        )
        .unwrap();
        assert_eq!(rows[0].key.as_deref(), Some("00000|201000|1750|USD"));
        assert_eq!(rows[0].profile.as_deref(), Some("gl_ihub"));
        assert_eq!(rows[0].date.as_deref(), Some("2024-05-01"));
        assert_eq!(rows[0].label, "0");
    }

    #[test]
    fn names_what_is_missing() {
        let e = parse("case_id,reason\nC-1,x\n", "f.csv", None).unwrap_err();
        assert!(e.to_string().contains("f.csv: no label column"), "{e}");
        let e = parse("key,label\nK,1\n", "f.csv", None).unwrap_err();
        assert!(e.to_string().contains("must name its case"), "{e}");
        let e = parse("", "f.csv", None).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }
}
