//! Helpers of the generator's unit tests: options, running, and reading the files back.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::{BreakKind, GenProfile, GenerateOptions, GenerateSummary, LABELS_HEADER, generate};

/// Options without routine accounts: every unlabelled row matches.
pub(super) fn opts(profile: GenProfile, rows: usize, seed: u64, messy: bool) -> GenerateOptions {
    GenerateOptions {
        profile,
        rows,
        seed,
        messy,
        routine_share: 0.0,
        ..GenerateOptions::default()
    }
}

pub(super) fn run(o: &GenerateOptions) -> (String, String, GenerateSummary) {
    let mut out: Vec<u8> = Vec::new();
    let mut lab: Vec<u8> = Vec::new();
    let s = generate(o, &mut out, Some(&mut lab)).expect("generate");
    (
        String::from_utf8(out).expect("utf8 data"),
        String::from_utf8(lab).expect("utf8 labels"),
        s,
    )
}

/// Minimal RFC 4180 line splitter (no embedded newlines in generated files).
pub(super) fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, in_q) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => in_q = false,
            ('"', false) if cur.is_empty() => in_q = true,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

pub(super) fn rows_of(csv: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = csv.lines();
    let header = split_csv(lines.next().expect("header"));
    let rows: Vec<Vec<String>> = lines.map(split_csv).collect();
    for r in &rows {
        assert_eq!(r.len(), header.len(), "field count in {r:?}");
    }
    (header, rows)
}

/// Parse an amount the way an ingest would: round to 6 decimals, then to `scale`.
pub(super) fn units(s: &str, scale: i32) -> i64 {
    let v: f64 = s.parse().unwrap_or_else(|_| panic!("number {s:?}"));
    let v6 = (v * 1e6).round() / 1e6;
    (v6 * 10f64.powi(scale)).round() as i64
}

pub(super) fn parse_date(s: &str) -> Option<NaiveDate> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%m/%d/%Y") {
        return Some(d);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%m-%d-%Y") {
        return Some(d);
    }
    let n: i64 = s.parse().ok()?;
    NaiveDate::from_ymd_opt(1899, 12, 30)?.checked_add_signed(chrono::Duration::days(n))
}

/// Labels as row number -> (kind, group).
pub(super) fn labels_of(lab: &str) -> BTreeMap<usize, (String, String)> {
    let mut lines = lab.lines();
    assert_eq!(lines.next(), Some(LABELS_HEADER));
    let mut m = BTreeMap::new();
    let mut last = 0;
    for l in lines {
        let f = split_csv(l);
        assert_eq!(f.len(), 3, "{l}");
        let row: usize = f[0].parse().expect("row number");
        assert!(row > last, "labels sorted and unique");
        last = row;
        assert!(f[1].parse::<BreakKind>().is_ok(), "kind {}", f[1]);
        m.insert(row, (f[1].clone(), f[2].clone()));
    }
    m
}

pub(super) fn has_long_decimals(csv: &str) -> bool {
    csv.split([',', '\n'])
        .any(|f| f.parse::<f64>().is_ok() && f.find('.').is_some_and(|p| f.len() - p > 10))
}
