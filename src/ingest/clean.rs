//! Parsing of the messy values real reconciliation exports contain: dates in several formats
//! (mixed within one column, Excel serial numbers, placeholder dates), amounts with float noise,
//! thousands separators or accounting negatives, and comments wrapped in JSON-ish brackets.
//! Everything here is a pure function of its input.

use chrono::{Datelike, NaiveDate};

pub use crate::header::{normalize_header, slug};

/// Days from 1970-01-01 to 1899-12-30, the day Excel's serial numbers count from.
const EXCEL_EPOCH_FROM_UNIX: i64 = -25569;

/// Options of date parsing (`[ingest]`'s dates, parsed).
#[derive(Debug, Clone, PartialEq)]
pub struct DateOptions {
    /// Placeholder dates meaning "missing", as days since 1970-01-01.
    pub placeholders: Vec<i32>,
    pub day_first: bool,
    pub excel_serial_min: i64,
    pub excel_serial_max: i64,
}

impl Default for DateOptions {
    fn default() -> Self {
        DateOptions {
            placeholders: vec![days(1900, 1, 1), days(1899, 12, 30), days(9999, 12, 31)],
            day_first: false,
            excel_serial_min: 32874,
            excel_serial_max: 73051,
        }
    }
}

/// The outcome of reading one date cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateCell {
    /// Days since 1970-01-01.
    Date(i32),
    /// Empty cell.
    Empty,
    /// A placeholder such as 1900-01-01 that means "missing".
    Placeholder,
    /// Not a date in any accepted format.
    Invalid,
}

fn days(y: i32, m: u32, d: u32) -> i32 {
    ymd_to_days(y, m, d).unwrap_or(0)
}

/// Days since 1970-01-01 for a calendar date, if it exists.
pub fn ymd_to_days(y: i32, m: u32, d: u32) -> Option<i32> {
    let date = NaiveDate::from_ymd_opt(y, m, d)?;
    Some(date.num_days_from_ce() - 719_163)
}

/// The calendar date of a day number (days since 1970-01-01).
pub fn days_to_date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days + 719_163)
}

/// `YYYY-MM-DD` as days since 1970-01-01.
pub fn parse_iso_date(s: &str) -> Option<i32> {
    let b = s.trim().as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    ymd_to_days(num(&b[0..4])? as i32, num(&b[5..7])?, num(&b[8..10])?)
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |a, c| a * 10 + (c - b'0') as u32))
}

fn month_from_name(s: &str) -> Option<u32> {
    const NAMES: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let l = s.to_ascii_lowercase();
    if l.len() < 3 {
        return None;
    }
    NAMES
        .iter()
        .position(|n| l.starts_with(n))
        .map(|i| i as u32 + 1)
}

fn expand_year(y: u32, len: usize) -> Option<i32> {
    match len {
        4 => Some(y as i32),
        // Two-digit years: 00–69 → 2000s, 70–99 → 1900s (the POSIX/pandas pivot).
        2 => Some(if y < 70 {
            2000 + y as i32
        } else {
            1900 + y as i32
        }),
        _ => None,
    }
}

/// Reads one date cell. Accepted forms, mixed freely within a column:
/// `2024-04-30` (optionally followed by a time), `2024/04/30`, `20240430`, `4/30/2024`,
/// `04-30-2024`, `30.04.2024`, `30-Apr-2024`, `Apr 30 2024`, two-digit years, and Excel serial
/// day numbers (`45412`, `45412.0`) within the configured range. For `a/b/yyyy` where both parts
/// could be a month, `day_first` decides; a part above 12 decides by itself.
pub fn parse_date(raw: &str, opts: &DateOptions) -> DateCell {
    let s = raw.trim().trim_matches('"').trim();
    if s.is_empty() {
        return DateCell::Empty;
    }
    match parse_date_inner(s, opts) {
        Some(d) if opts.placeholders.contains(&d) => DateCell::Placeholder,
        Some(d) => DateCell::Date(d),
        None => DateCell::Invalid,
    }
}

fn parse_date_inner(s: &str, opts: &DateOptions) -> Option<i32> {
    // Drop a time part: "2024-04-30 00:00:00", "2024-04-30T00:00:00Z", "4/30/2024 12:00 AM".
    let date_part = s.split(['T', ' ']).next().unwrap_or(s);
    let b = date_part.as_bytes();
    // Nothing before the time part ("T0227508", "T12:00"): not a date.
    if b.is_empty() {
        return None;
    }

    // Pure number: Excel serial (5 digits, optionally with a fraction) or YYYYMMDD.
    let dots = b.iter().filter(|c| **c == b'.').count();
    if dots <= 1 && b.iter().all(|c| c.is_ascii_digit() || *c == b'.') && b[0].is_ascii_digit() {
        if b.len() == 8 && b.iter().all(u8::is_ascii_digit) {
            return ymd_to_days(num(&b[0..4])? as i32, num(&b[4..6])?, num(&b[6..8])?);
        }
        let v: f64 = date_part.parse().ok()?;
        let serial = v.floor() as i64;
        if serial >= opts.excel_serial_min && serial <= opts.excel_serial_max {
            return i32::try_from(serial + EXCEL_EPOCH_FROM_UNIX).ok();
        }
        return None;
    }

    // "Apr 30 2024" / "April 30, 2024".
    if b[0].is_ascii_alphabetic() {
        let parts: Vec<&str> = s
            .split([' ', ','])
            .filter(|p| !p.is_empty())
            .take(3)
            .collect();
        if parts.len() == 3 {
            let m = month_from_name(parts[0])?;
            let d = num(parts[1].as_bytes())?;
            let y = expand_year(num(parts[2].as_bytes())?, parts[2].len())?;
            return ymd_to_days(y, m, d);
        }
        return None;
    }

    let sep = *b.iter().find(|c| matches!(c, b'-' | b'/' | b'.'))?;
    let parts: Vec<&str> = date_part.split(sep as char).collect();
    if parts.len() != 3 {
        return None;
    }
    let (p0, p1, p2) = (parts[0], parts[1], parts[2]);
    // Year first: 2024-04-30, 2024/4/30.
    if p0.len() == 4 {
        return ymd_to_days(
            num(p0.as_bytes())? as i32,
            num(p1.as_bytes())?,
            num(p2.as_bytes())?,
        );
    }
    let year = expand_year(num(p2.as_bytes())?, p2.len())?;
    // 30-Apr-2024.
    if let Some(m) = month_from_name(p1) {
        return ymd_to_days(year, m, num(p0.as_bytes())?);
    }
    let a = num(p0.as_bytes())?;
    let c = num(p1.as_bytes())?;
    // Dotted dates are European (day first) by convention.
    let day_first = if a > 12 {
        true
    } else if c > 12 {
        false
    } else {
        opts.day_first || sep == b'.'
    };
    if day_first {
        ymd_to_days(year, c, a)
    } else {
        ymd_to_days(year, a, c)
    }
}

/// The outcome of reading one numeric cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NumCell {
    Value(f64),
    Empty,
    Invalid,
}

/// Words exports use for "no value".
fn is_null_word(s: &str) -> bool {
    matches!(
        s,
        "-" | "--"
            | "NA"
            | "N/A"
            | "n/a"
            | "na"
            | "NULL"
            | "null"
            | "None"
            | "none"
            | "NaN"
            | "nan"
    )
}

/// The decimal separator of amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Decimal {
    /// `1,234.56`: decimal point, thousands commas.
    #[default]
    Point,
    /// `1.234,56` or `1 234,56`: decimal comma, thousands dots or spaces.
    Comma,
}

impl Decimal {
    /// `"auto"` → None; `"."` → Point; `","` → Comma.
    pub fn from_setting(s: &str) -> Result<Option<Decimal>, String> {
        match s {
            "auto" => Ok(None),
            "." => Ok(Some(Decimal::Point)),
            "," => Ok(Some(Decimal::Comma)),
            _ => Err(format!(
                "must be \"auto\", \".\" (1,234.56) or \",\" (1.234,56), found {s:?}"
            )),
        }
    }

    /// The setting that chooses it: `.` or `,` (see [`Decimal::from_setting`]).
    pub fn setting(self) -> &'static str {
        match self {
            Decimal::Point => ".",
            Decimal::Comma => ",",
        }
    }

    /// How the convention is written in messages: `decimal comma (1.234,56)`.
    pub fn describe(self) -> &'static str {
        match self {
            Decimal::Point => "decimal point (1,234.56)",
            Decimal::Comma => "decimal comma (1.234,56)",
        }
    }
}

/// Reads one amount with a decimal point: `1234.5`, `-1,234.50`, `(1,234.50)` (accounting
/// negative), `1234.50-`, `$1,234`, `€ 12`, `1.2e6`, `+5`. Thousands separators are commas. The
/// value is rounded to `decimals` places, which removes float noise such as
/// `20000.009999999998` → `20000.01`.
pub fn parse_number(raw: &str, decimals: u32) -> NumCell {
    parse_number_with(raw, decimals, Decimal::Point)
}

/// Reads one amount in the given convention (see [`parse_number`]); with [`Decimal::Comma`],
/// `1.234,56`, `1 234,56` (spaces or no-break spaces between groups) and `-12,5` are read.
pub fn parse_number_with(raw: &str, decimals: u32, decimal: Decimal) -> NumCell {
    // A plain number (nearly every amount cell) reads as it is; with a decimal comma, a point
    // groups thousands, so only one without a point.
    if is_bare_decimal(raw) && (decimal == Decimal::Point || !raw.contains('.')) {
        return match raw.parse::<f64>() {
            Ok(v) if v.is_finite() => NumCell::Value(round_to(v, decimals)),
            _ => NumCell::Invalid,
        };
    }
    parse_number_in_full(raw, decimals, decimal)
}

/// `-?[0-9]+(\.[0-9]+)?`: digits, with a minus before and decimals after a point or not.
fn is_bare_decimal(s: &str) -> bool {
    let b = s.as_bytes();
    let b = b.strip_prefix(b"-").unwrap_or(b);
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(p) => (&b[..p], Some(&b[p + 1..])),
        None => (b, None),
    };
    !int.is_empty()
        && int.iter().all(u8::is_ascii_digit)
        && frac.is_none_or(|f| !f.is_empty() && f.iter().all(u8::is_ascii_digit))
}

/// [`parse_number_with`] of any cell: signs, brackets, currency symbols and separators.
fn parse_number_in_full(raw: &str, decimals: u32, decimal: Decimal) -> NumCell {
    let mut s = raw.trim();
    if s.is_empty() || is_null_word(s) {
        return NumCell::Empty;
    }
    let mut negative = false;
    if s.starts_with('(') && s.ends_with(')') && s.len() > 2 {
        negative = true;
        s = s[1..s.len() - 1].trim();
    }
    if let Some(rest) = s.strip_suffix('-')
        && !rest.is_empty()
        && !rest.ends_with(['e', 'E'])
    {
        negative = !negative;
        s = rest.trim();
    }
    // Currency symbols and codes before or after the number.
    s = s.trim_start_matches(['$', '€', '£', '¥']).trim();
    s = s.trim_end_matches(['$', '€', '£', '¥']).trim();
    if let Some(rest) = s.strip_prefix('-') {
        let rest = rest.trim_start_matches(['$', '€', '£', '¥']).trim();
        negative = !negative;
        s = rest;
    }
    let cleaned: std::borrow::Cow<str> = match decimal {
        Decimal::Point if s.contains(',') => match ungroup(s, ',', '.') {
            Some(c) => c.into(),
            None => return NumCell::Invalid,
        },
        Decimal::Point => s.into(),
        Decimal::Comma => {
            // Spaces between digit groups (fr) become group separators; then `.` groups, `,` decimals.
            let spaced: std::borrow::Cow<str> = if s.contains([' ', '\u{a0}', '\u{202f}']) {
                s.replace([' ', '\u{a0}', '\u{202f}'], ".").into()
            } else {
                s.into()
            };
            let grouped: std::borrow::Cow<str> = if spaced.contains('.') {
                match ungroup(&spaced, '.', ',') {
                    Some(c) => c.into(),
                    None => return NumCell::Invalid,
                }
            } else {
                spaced
            };
            if grouped.contains(',') {
                grouped.replacen(',', ".", 1).into()
            } else {
                grouped
            }
        }
    };
    let cleaned = cleaned.trim_start_matches('+');
    if cleaned.is_empty()
        || !cleaned
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'))
    {
        return NumCell::Invalid;
    }
    match cleaned.parse::<f64>() {
        Ok(v) if v.is_finite() => {
            let v = if negative { -v } else { v };
            NumCell::Value(round_to(v, decimals))
        }
        _ => NumCell::Invalid,
    }
}

/// Removes thousands separators `sep` from the integer part (before `dec` or an exponent): they
/// are accepted only between groups of exactly three digits after a first group of one to three.
fn ungroup(s: &str, sep: char, dec: char) -> Option<String> {
    let int_part = s.split([dec, 'e', 'E']).next().unwrap_or("");
    let groups: Vec<&str> = int_part.trim_start_matches('+').split(sep).collect();
    let ok = groups.len() > 1
        && !groups[0].is_empty()
        && groups[0].len() <= 3
        && groups[1..].iter().all(|g| g.len() == 3);
    // A separator after the decimal part (`1.5,000` with a decimal point) is not grouping.
    let rest = &s[int_part.len()..];
    (ok && !rest.contains(sep)).then(|| s.replace(sep, ""))
}

/// What one amount cell says about the decimal separator, from its text alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalHint {
    /// Reads the same either way (`100`, empty) or reads neither way (`abc`).
    Neutral,
    /// Reads either way, to different values (`1,234`, `1.234`, `0.125`).
    Ambiguous,
    /// Reads only with a decimal point (`12.5`, `1,234.56`).
    Point,
    /// Reads only with a decimal comma (`12,5`, `1.234,56`).
    Comma,
}

/// Classifies one amount cell for decimal detection. Cheap for the common case (a plain number
/// with at most one separator); the full parsers decide the rest.
pub fn decimal_hint(raw: &str) -> DecimalHint {
    let b = raw.as_bytes();
    let mut seps = 0usize;
    let mut sep = 0u8;
    let mut digits_before = 0usize;
    let mut digits_after = 0usize;
    let mut other = false;
    for &c in b {
        match c {
            b'0'..=b'9' => {
                if seps == 0 {
                    digits_before += 1
                } else {
                    digits_after += 1
                }
            }
            b'.' | b',' => {
                seps += 1;
                sep = c;
            }
            b'-' | b'+' | b' ' | b'(' | b')' => {}
            _ => other = true,
        }
    }
    if seps == 0 {
        return DecimalHint::Neutral;
    }
    if seps == 1 && !other {
        // `1,234` / `0.125`: a group separator one way, a decimal separator the other.
        if digits_after == 3 && (1..=3).contains(&digits_before) {
            return DecimalHint::Ambiguous;
        }
        return if digits_before == 0 && digits_after == 0 {
            DecimalHint::Neutral
        } else if sep == b'.' {
            DecimalHint::Point
        } else {
            DecimalHint::Comma
        };
    }
    let point = matches!(parse_number_with(raw, 0, Decimal::Point), NumCell::Value(_));
    let comma = matches!(parse_number_with(raw, 0, Decimal::Comma), NumCell::Value(_));
    match (point, comma) {
        (true, false) => DecimalHint::Point,
        (false, true) => DecimalHint::Comma,
        (true, true) => {
            let p = parse_number_with(raw, 12, Decimal::Point);
            let c = parse_number_with(raw, 12, Decimal::Comma);
            if p == c {
                DecimalHint::Neutral
            } else {
                DecimalHint::Ambiguous
            }
        }
        (false, false) => DecimalHint::Neutral,
    }
}

/// Rounds to `decimals` places; values too large for the scaled form are returned as they are.
pub fn round_to(v: f64, decimals: u32) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    let scaled = v * scale;
    if scaled.abs() >= 9.0e15 {
        return v;
    }
    let r = scaled.round() / scale;
    // Avoid "-0" in outputs.
    if r == 0.0 { 0.0 } else { r }
}

/// Cleans a comment: strips wrappers such as `{"…"}`, `[{…}]` or `["…"]` that some exports put
/// around free text, pulls the text out of JSON objects (`[{"comment": "…"}]`), and collapses
/// runs of whitespace and line breaks. Returns an empty string for an empty comment.
pub fn clean_comment(raw: &str) -> String {
    let s = raw.trim();
    if s.is_empty() {
        return String::new();
    }
    if (s.starts_with('[') || s.starts_with('{'))
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(s)
    {
        let mut parts = Vec::new();
        collect_strings(&v, &mut parts);
        return collapse_ws(&parts.join("; "));
    }
    let mut t = s;
    loop {
        let before = t;
        for (open, close) in [('[', ']'), ('{', '}'), ('"', '"'), ('\'', '\'')] {
            if t.len() >= 2 && t.starts_with(open) && t.ends_with(close) {
                t = t[open.len_utf8()..t.len() - close.len_utf8()].trim();
            }
        }
        if t == before {
            break;
        }
    }
    collapse_ws(t)
}

fn collect_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_string()),
        serde_json::Value::Number(n) => out.push(n.to_string()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, dd: u32) -> DateCell {
        DateCell::Date(ymd_to_days(y, m, dd).unwrap())
    }

    #[test]
    fn dates_in_every_field_format() {
        let o = DateOptions::default();
        assert_eq!(parse_date("4/30/2024", &o), d(2024, 4, 30));
        assert_eq!(parse_date("2024-04-30", &o), d(2024, 4, 30));
        assert_eq!(parse_date("02-26-2025", &o), d(2025, 2, 26));
        assert_eq!(parse_date("45412", &o), d(2024, 4, 30));
        assert_eq!(parse_date("45412.0", &o), d(2024, 4, 30));
        assert_eq!(parse_date("45412.75", &o), d(2024, 4, 30));
        assert_eq!(parse_date("2024-04-30 00:00:00", &o), d(2024, 4, 30));
        assert_eq!(parse_date("2024-04-30T13:45:00Z", &o), d(2024, 4, 30));
        assert_eq!(parse_date("4/30/2024 12:00:00 AM", &o), d(2024, 4, 30));
        assert_eq!(parse_date("2024/4/30", &o), d(2024, 4, 30));
        assert_eq!(parse_date("20240430", &o), d(2024, 4, 30));
        assert_eq!(parse_date("30.04.2024", &o), d(2024, 4, 30));
        assert_eq!(parse_date("30-Apr-2024", &o), d(2024, 4, 30));
        assert_eq!(parse_date("Apr 30 2024", &o), d(2024, 4, 30));
        assert_eq!(parse_date("April 30, 2024", &o), d(2024, 4, 30));
        assert_eq!(parse_date("4/30/24", &o), d(2024, 4, 30));
        assert_eq!(parse_date("  2024-04-30  ", &o), d(2024, 4, 30));
    }

    #[test]
    fn a_time_without_a_date_is_invalid_not_a_panic() {
        // The text before `T` or a space is the date; an empty one indexed past the end.
        let o = DateOptions::default();
        for raw in ["T0227508", "T12:00", "T", "\"T1\""] {
            assert_eq!(parse_date(raw, &o), DateCell::Invalid, "{raw}");
        }
    }

    #[test]
    fn excel_serial_epoch_matches_excel() {
        let o = DateOptions::default();
        // Excel shows 1 Jan 2000 as serial 36526 and 1 Mar 1990 as 32933.
        assert_eq!(parse_date("36526", &o), d(2000, 1, 1));
        assert_eq!(parse_date("32933", &o), d(1990, 3, 1));
        // Outside the configured serial range: not a date.
        assert_eq!(parse_date("123", &o), DateCell::Invalid);
        assert_eq!(parse_date("99999", &o), DateCell::Invalid);
    }

    #[test]
    fn ambiguous_dates_follow_day_first() {
        let us = DateOptions::default();
        let eu = DateOptions {
            day_first: true,
            ..DateOptions::default()
        };
        assert_eq!(parse_date("04/05/2024", &us), d(2024, 4, 5));
        assert_eq!(parse_date("04/05/2024", &eu), d(2024, 5, 4));
        // A part above 12 decides by itself whatever the option.
        assert_eq!(parse_date("30/04/2024", &us), d(2024, 4, 30));
        assert_eq!(parse_date("04/30/2024", &eu), d(2024, 4, 30));
    }

    #[test]
    fn placeholders_empty_and_invalid() {
        let o = DateOptions::default();
        assert_eq!(parse_date("1900-01-01", &o), DateCell::Placeholder);
        assert_eq!(parse_date("1/1/1900", &o), DateCell::Placeholder);
        assert_eq!(parse_date("", &o), DateCell::Empty);
        assert_eq!(parse_date("   ", &o), DateCell::Empty);
        assert_eq!(parse_date("2024-02-30", &o), DateCell::Invalid);
        assert_eq!(parse_date("13/13/2024", &o), DateCell::Invalid);
        assert_eq!(parse_date("yesterday", &o), DateCell::Invalid);
        assert_eq!(parse_date("2024-04", &o), DateCell::Invalid);
        assert_eq!(parse_date("1.2.3.4", &o), DateCell::Invalid);
        assert_eq!(parse_date("-", &o), DateCell::Invalid);
    }

    #[test]
    fn days_round_trip() {
        let x = ymd_to_days(2024, 4, 30).unwrap();
        assert_eq!(x, 19843);
        assert_eq!(
            days_to_date(x).unwrap(),
            NaiveDate::from_ymd_opt(2024, 4, 30).unwrap()
        );
        assert_eq!(ymd_to_days(1970, 1, 1), Some(0));
    }

    #[test]
    fn numbers_with_noise_and_accounting_forms() {
        assert_eq!(
            parse_number("20000.009999999998", 6),
            NumCell::Value(20000.01)
        );
        assert_eq!(parse_number("1,234.50", 6), NumCell::Value(1234.5));
        assert_eq!(
            parse_number("-1,234,567.891", 6),
            NumCell::Value(-1234567.891)
        );
        assert_eq!(parse_number("(1,234.50)", 6), NumCell::Value(-1234.5));
        assert_eq!(parse_number("1234.50-", 6), NumCell::Value(-1234.5));
        assert_eq!(parse_number("$1,234", 6), NumCell::Value(1234.0));
        assert_eq!(parse_number("-$12.5", 6), NumCell::Value(-12.5));
        assert_eq!(parse_number("€ 12", 6), NumCell::Value(12.0));
        assert_eq!(parse_number("1.5e3", 6), NumCell::Value(1500.0));
        assert_eq!(parse_number("+5", 6), NumCell::Value(5.0));
        assert_eq!(parse_number(" 0 ", 6), NumCell::Value(0.0));
        assert_eq!(parse_number("-0.0000001", 6), NumCell::Value(0.0));
        assert_eq!(parse_number("0.1234567", 2), NumCell::Value(0.12));
    }

    #[test]
    fn numbers_empty_and_invalid() {
        assert_eq!(parse_number("", 6), NumCell::Empty);
        assert_eq!(parse_number("N/A", 6), NumCell::Empty);
        assert_eq!(parse_number("-", 6), NumCell::Empty);
        assert_eq!(parse_number("abc", 6), NumCell::Invalid);
        assert_eq!(parse_number("12a", 6), NumCell::Invalid);
        assert_eq!(parse_number("1,23", 6), NumCell::Invalid);
        assert_eq!(parse_number("1.2.3", 6), NumCell::Invalid);
        assert_eq!(parse_number("inf", 6), NumCell::Invalid);
        assert_eq!(parse_number("1e999", 6), NumCell::Invalid);
    }

    #[test]
    fn numbers_with_a_decimal_comma() {
        let c = |s| parse_number_with(s, 6, Decimal::Comma);
        assert_eq!(c("1.234,56"), NumCell::Value(1234.56));
        assert_eq!(c("-1.234.567,891"), NumCell::Value(-1234567.891));
        assert_eq!(c("1 234,56"), NumCell::Value(1234.56));
        assert_eq!(c("1\u{a0}234,56"), NumCell::Value(1234.56));
        assert_eq!(c("(12,5)"), NumCell::Value(-12.5));
        assert_eq!(c("12,50-"), NumCell::Value(-12.5));
        assert_eq!(c("€ 1.000"), NumCell::Value(1000.0));
        assert_eq!(c("100"), NumCell::Value(100.0));
        assert_eq!(c(""), NumCell::Empty);
        assert_eq!(c("12.5"), NumCell::Invalid);
        assert_eq!(c("1,234.56"), NumCell::Invalid);
        assert_eq!(c("1,2,3"), NumCell::Invalid);
        // With a decimal point, a comma after the decimals is not a group separator.
        assert_eq!(parse_number("1.234,56", 6), NumCell::Invalid);
        assert_eq!(parse_number("1,234.5,6", 6), NumCell::Invalid);
    }

    #[test]
    fn a_plain_number_reads_as_the_full_parser_reads_it() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut cells: Vec<String> = [
            "0",
            "-0",
            "0.0",
            "-0.000",
            "007.50",
            "948.71",
            "-5309779.26",
            "12",
            "1.",
            ".5",
            "-",
            "-.5",
            "1.2.3",
            "+12",
            "12-",
            "1e5",
            "99999999999999999999999.5",
            "0.0000001",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..20_000 {
            let digits: u32 = rng.gen_range(1..16);
            let int: u64 = rng.gen_range(0..10u64.pow(digits));
            let frac: u32 = rng.gen_range(0..1000);
            let sign = if rng.gen_bool(0.5) { "-" } else { "" };
            cells.push(match rng.gen_range(0..3) {
                0 => format!("{sign}{int}"),
                1 => format!("{sign}{int}.{frac}"),
                _ => format!("{sign}{int}.{frac:03}"),
            });
        }
        for cell in &cells {
            for decimals in [0, 2, 6] {
                for decimal in [Decimal::Point, Decimal::Comma] {
                    let (fast, full) = (
                        parse_number_with(cell, decimals, decimal),
                        parse_number_in_full(cell, decimals, decimal),
                    );
                    let same = match (&fast, &full) {
                        (NumCell::Value(a), NumCell::Value(b)) => a.to_bits() == b.to_bits(),
                        (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
                    };
                    assert!(
                        same,
                        "{cell:?} {decimals} {decimal:?}: {fast:?} vs {full:?}"
                    );
                }
            }
        }
        assert!(is_bare_decimal("-948.71") && is_bare_decimal("0"));
        for s in [
            "", "-", ".5", "1.", "+1", "1,234", " 1", "1e3", "--1", "1.2.3",
        ] {
            assert!(!is_bare_decimal(s), "{s:?}");
        }
    }

    #[test]
    fn decimal_hints_tell_which_way_a_value_reads() {
        use DecimalHint::*;
        for (v, h) in [
            ("100", Neutral),
            ("", Neutral),
            ("abc", Neutral),
            ("12.5", Point),
            ("-948.71", Point),
            ("1,234.56", Point),
            ("1,234,567", Point),
            ("1234.567", Point),
            ("1.5e3", Point),
            ("12,5", Comma),
            ("1.234,56", Comma),
            ("1.234.567", Comma),
            ("1234,567", Comma),
            ("(1.234,56)", Comma),
            ("€ 1.234,56", Comma),
            ("1,234", Ambiguous),
            ("1.234", Ambiguous),
            ("0.125", Ambiguous),
            ("1.2.3", Neutral),
        ] {
            assert_eq!(decimal_hint(v), h, "{v:?}");
        }
    }

    #[test]
    fn comments_lose_their_wrappers() {
        assert_eq!(
            clean_comment("{\"Timing - posted next day\"}"),
            "Timing - posted next day"
        );
        assert_eq!(clean_comment("[{\"Under review\"}]"), "Under review");
        assert_eq!(clean_comment("[\"a\", \"b\"]"), "a; b");
        assert_eq!(
            clean_comment("[{\"comment\": \"FX reval pending\"}]"),
            "FX reval pending"
        );
        assert_eq!(
            clean_comment("  plain   text\nnext line "),
            "plain text next line"
        );
        assert_eq!(clean_comment("{}"), "");
        assert_eq!(clean_comment(""), "");
        // Brackets inside the text are kept.
        assert_eq!(clean_comment("see [JIRA-12]"), "see [JIRA-12]");
    }
}
