use super::{Live, LiveRow, col};
use crate::tui::column_store::{Column, ColumnStore, Kind, TextCol, short_status};
use crate::tui::results::{Loaded, RunInfo};
use std::collections::HashMap;

/// What a live table starts as: the columns, no rows.
pub(super) fn empty(url: &str) -> Loaded {
    let num = |title: &str, field: &str, kind: Kind| Column::num(title, field, kind, Vec::new());
    let text = |title: &str, field: &str| Column::text(title, field, TextCol::default());
    let cols = vec![
        num("#", "seq", Kind::Integer),
        text("key", "key"),
        text("date", "date"),
        num("difference", "difference", Kind::Amount),
        num("lhs", "lhs", Kind::Amount),
        num("rhs", "rhs", Kind::Amount),
        text("status", "status"),
        text("severity", "severity"),
        text("bucket", "bucket"),
        num("conf", "confidence", Kind::Number { decimals: 2 }),
        num("score", "score", Kind::Number { decimals: 4 }),
        num("cluster", "cluster", Kind::Integer),
        text("ticket", "ticket"),
        text("top features", "top_features"),
        text("rule", "rule"),
        text("summary", "summary"),
        text("by", "categorized_by"),
        num("decision", "decision", Kind::Number { decimals: 4 }),
        text("case", "case_id"),
    ];
    debug_assert_eq!(cols.len(), col::FIELDS);
    let mut table = ColumnStore {
        cols,
        rows: 0,
        frozen: col::DATE + 1,
        flagged: Vec::new(),
        known: Default::default(),
    };
    let k = &mut table.known;
    k.key = Some(col::KEY);
    k.date = Some(col::DATE);
    k.difference = Some(col::DIFFERENCE);
    k.lhs = Some(col::LHS);
    k.rhs = Some(col::RHS);
    k.status = Some(col::STATUS);
    k.severity = Some(col::SEVERITY);
    k.bucket = Some(col::BUCKET);
    k.confidence = Some(col::CONFIDENCE);
    k.score = Some(col::SCORE);
    k.cluster = Some(col::CLUSTER);
    k.ticket = Some(col::TICKET);
    k.top_features = Some(col::TOP_FEATURES);
    k.rule = Some(col::RULE);
    k.summary = Some(col::SUMMARY);
    k.categorized_by = Some(col::BY);
    k.decision = Some(col::DECISION);
    k.case_id = Some(col::CASE);
    Loaded {
        source: url.to_string(),
        history: None,
        table,
        complete: true,
        clusters: Vec::new(),
        info: RunInfo {
            // Until the service's hello names its profile.
            profile: "live".into(),
            model_status: "the service's".into(),
            ..RunInfo::default()
        },
        frame: None,
        by_key: Vec::new(),
        history_points: Vec::new(),
        case_rows: HashMap::new(),
        file_columns_from: col::FIELDS,
        queue: Vec::new(),
        queue_error: None,
        summary: None,
        trend: Vec::new(),
    }
}

/// Writes a record into the table: a new row, or (same key and date) its row again — wholly
/// when `overwrite`, else only its case's status. Returns the row and whether it is new.
pub(super) fn put_row(
    live: &mut Live,
    d: &mut Loaded,
    row: &LiveRow,
    overwrite: bool,
) -> (u32, bool) {
    let id = (row.key.clone(), row.date.clone());
    let existing = live.rows.get(&id).copied();
    let t = &mut d.table;
    let r = existing.map_or(t.rows, |r| r as usize);
    let new = existing.is_none();
    if !new && !overwrite {
        if !row.status.is_empty() {
            t.cols[col::STATUS].put_text(r, short_status(&row.status));
        }
        return (r as u32, false);
    }
    // Columns for fields not seen before (empty on the earlier rows).
    for (name, _) in &row.fields {
        if live.fields.contains_key(name) {
            continue;
        }
        let field = crate::tui::column_store::filter_name(name);
        if t.cols.iter().any(|c| c.field == field) {
            continue; // named like a result column: shown there already
        }
        let blank = TextCol::from_values(std::iter::repeat_n(None, t.rows));
        t.cols.push(Column::text(name, &field, blank));
        live.fields.insert(name.clone(), t.cols.len() - 1);
    }
    if let Some([diff, lhs, rhs]) = &row.titles {
        for (c, title) in [(col::DIFFERENCE, diff), (col::LHS, lhs), (col::RHS, rhs)] {
            if t.cols[c].title != *title {
                t.cols[c].retitle(title);
            }
        }
    }
    let nums = [
        (col::SEQ, (r + 1) as f64),
        (col::DIFFERENCE, row.difference),
        (col::LHS, row.lhs),
        (col::RHS, row.rhs),
        (col::CONFIDENCE, row.confidence),
        (col::SCORE, row.score),
        (col::CLUSTER, row.cluster),
        (col::DECISION, row.decision),
    ];
    for (c, v) in nums {
        t.cols[c].put_num(r, v);
    }
    let texts = [
        (col::KEY, row.key.as_str()),
        (col::DATE, row.date.as_str()),
        (col::STATUS, short_status(&row.status)),
        (col::SEVERITY, row.severity.as_str()),
        (col::BUCKET, row.bucket.as_str()),
        (col::TICKET, row.ticket.as_str()),
        (col::TOP_FEATURES, row.top_features.as_str()),
        (col::RULE, row.rule.as_str()),
        (col::SUMMARY, row.summary.as_str()),
        (col::BY, row.categorized_by.as_str()),
        (col::CASE, row.case_id.as_str()),
    ];
    for (c, v) in texts {
        t.cols[c].put_text(r, v);
    }
    let given: HashMap<&str, &str> = row
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (name, &c) in &live.fields {
        match given.get(name.as_str()) {
            Some(v) => t.cols[c].put_text(r, v),
            None if new => t.cols[c].put_text(r, ""),
            None => {}
        }
    }
    if new {
        t.rows += 1;
        t.flagged.push(true);
        live.rows.insert(id, r as u32);
        // The account's rows, in date order (the balance chart).
        if let Some(code) = key_code(t, r) {
            if d.by_key.len() <= code {
                d.by_key.resize(code + 1, Vec::new());
            }
            d.by_key[code].push(r as u32);
            let dates = &t.cols[col::DATE];
            d.by_key[code]
                .sort_by(|a, b| dates.text_at(*a as usize).cmp(dates.text_at(*b as usize)));
        }
    }
    if !row.case_id.is_empty() {
        let rows = d.case_rows.entry(row.case_id.clone()).or_default();
        if !rows.contains(&(r as u32)) {
            rows.push(r as u32);
        }
    }
    (r as u32, new)
}

fn key_code(t: &ColumnStore, row: usize) -> Option<usize> {
    match &t.cols[col::KEY].data {
        crate::tui::column_store::Data::Text(k) => k.codes.get(row).map(|c| *c as usize),
        crate::tui::column_store::Data::Num(_) => None,
    }
}
