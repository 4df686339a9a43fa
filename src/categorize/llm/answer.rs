//! An LLM answer: checked against the buckets and the row's own numbers, and kept within what
//! the rules gave.

use crate::categorize::Categorization;
use serde_json::Value;

/// Numbers cited in a text (dates and identifiers like KEY1 excluded).
pub(super) fn cited_numbers(text: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts_number = c.is_ascii_digit()
            || ((c == '-' || c == '+' || c == '.')
                && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()));
        let after_word = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if !starts_number || after_word {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < chars.len()
            && (chars[i].is_ascii_digit()
                || ((chars[i] == ','
                    || chars[i] == '.'
                    || chars[i] == '-'
                    || chars[i] == '/'
                    || chars[i] == ':')
                    && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())))
        {
            i += 1;
        }
        let tok: String = chars[start..i].iter().collect();
        let body = tok.trim_start_matches(['-', '+']);
        // Dates (2024-01-05, 1/5/2024) and times are not amounts.
        if body.contains('-') || body.contains('/') || body.contains(':') {
            continue;
        }
        let clean: String = tok.chars().filter(|c| *c != ',' && *c != '+').collect();
        if let Ok(v) = clean.parse::<f64>() {
            // Small whole numbers (days, counts, list items) are not checked.
            if clean.contains('.') || v.abs() >= 100.0 {
                out.push(v);
            }
        }
    }
    out
}

fn record_numbers(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.push(x);
            }
        }
        Value::String(s) => out.extend(cited_numbers(s)),
        Value::Array(a) => a.iter().for_each(|x| record_numbers(x, out)),
        Value::Object(m) => m.values().for_each(|x| record_numbers(x, out)),
        _ => {}
    }
}

/// Whether `v` is one of the row's numbers (sign ignored, rounding to the cent allowed, or as a percentage).
fn is_row_number(v: f64, row: &[f64]) -> bool {
    let a = v.abs();
    row.iter().any(|r| {
        let b = r.abs();
        let close = |x: f64| (a - x).abs() <= 0.0051_f64.max(x * 1e-3);
        close(b) || close(b * 100.0)
    })
}

/// A validated answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub bucket: String,
    pub confidence: f64,
    pub summary: String,
    pub details: String,
}

/// Checks an answer against the buckets and the row's numbers; Err is the reason it is not used.
pub fn validate(
    content: &str,
    buckets: &[String],
    fallback: &str,
    record: &Value,
) -> Result<Answer, String> {
    let text = content.trim();
    // Some servers wrap JSON in a code fence even in JSON mode.
    let text = text
        .strip_prefix("```json")
        .or_else(|| text.strip_prefix("```"))
        .map(|t| t.trim_end().trim_end_matches("```").trim())
        .unwrap_or(text);
    let v: Value = serde_json::from_str(text).map_err(|e| format!("answer is not JSON ({e})"))?;
    let obj = v.as_object().ok_or("answer is not a JSON object")?;
    let get = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("")
    };
    let raw_bucket = get("bucket");
    let bucket = buckets
        .iter()
        .find(|b| b.eq_ignore_ascii_case(raw_bucket))
        .ok_or_else(|| format!("bucket {raw_bucket:?} is not in the list"))?
        .clone();
    let summary = get("summary").to_string();
    if summary.is_empty() {
        return Err("answer has no summary".into());
    }
    let details = get("details").to_string();
    if bucket == fallback && details.is_empty() {
        return Err(format!("{fallback} without details"));
    }
    let sev = get("severity");
    if !sev.is_empty() && crate::categorize::Severity::parse(sev).is_none() {
        return Err(format!(
            "severity {sev:?} is not Low, Medium, High or Critical"
        ));
    }
    let confidence = obj
        .get("confidence")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite())
        .map(|c| c.clamp(0.0, 1.0))
        .unwrap_or(0.8);
    let mut row = Vec::new();
    record_numbers(record, &mut row);
    for n in cited_numbers(&summary)
        .into_iter()
        .chain(cited_numbers(&details))
    {
        if !is_row_number(n, &row) {
            return Err(format!("cites {n} which is not in the row"));
        }
    }
    Ok(Answer {
        bucket,
        confidence,
        summary,
        details,
    })
}

/// Keeps an LLM categorization `c` within what the rules gave: it is proposed for
/// auto-resolution only if the rules proposed it, and its severity is at least the rules'. Returns
/// what was capped, for the row's note.
pub(super) fn cap_to_rules(c: &mut Categorization, rules: &Categorization) -> Vec<String> {
    let mut capped = Vec::new();
    if c.auto_resolve && !rules.auto_resolve {
        c.auto_resolve = false;
        capped.push(format!(
            "not proposed for auto-resolution: the LLM chose {}, the rules did not propose it",
            c.bucket
        ));
    }
    if c.severity < rules.severity {
        capped.push(format!(
            "severity kept at {} from the rules ({} gives {})",
            rules.severity.as_str(),
            c.bucket,
            c.severity.as_str()
        ));
        c.severity_reason = format!(
            "{}; at least {} as the rules gave for {}: {}",
            c.severity_reason,
            rules.severity.as_str(),
            rules.bucket,
            rules.severity_reason
        );
        c.severity = rules.severity;
    }
    capped
}
