//! Text written where someone else's program reads it: CSV fields a spreadsheet opens, and
//! strings printed to a terminal. Values come from source files and comments an attacker may
//! have written, so both are made inert here.

use std::borrow::Cow;

/// Whether a text cell would be read by a spreadsheet as a formula (or DDE command): it begins
/// with `=`, `+`, `-`, `@`, a tab or a carriage return and is not a plain number. OWASP's list;
/// `-12.5` and `+3` stay numbers.
pub fn is_formula_like(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    matches!(first, '=' | '+' | '-' | '@' | '\t' | '\r') && !is_plain_number(s)
}

/// Digits with an optional sign, thousands commas, a decimal point and an exponent.
fn is_plain_number(s: &str) -> bool {
    let t = s.trim();
    t.chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | ',' | 'e' | 'E'))
        && t.chars().any(|c| c.is_ascii_digit())
        && t.replace(',', "").parse::<f64>().is_ok()
}

/// A text cell made inert for spreadsheets: formula-like text gets a leading `'` (shown by
/// Excel and LibreOffice as the text itself, never evaluated).
pub fn neutralise(s: &str) -> Cow<'_, str> {
    if is_formula_like(s) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Whether [`csv_text`] changes `s`.
pub fn needs_csv_cleaning(s: &str) -> bool {
    is_formula_like(s)
        || s.chars()
            .any(|c| is_unsafe_for_terminal(c) && !matches!(c, '\t' | '\n' | '\r'))
}

/// The text of a CSV cell as written: neutralised when a spreadsheet would run it as a
/// formula, and without control characters other than tab and line breaks (an escape sequence
/// in a comment must not reach the terminal of whoever prints the file).
pub fn csv_text(s: &str) -> Cow<'_, str> {
    if !needs_csv_cleaning(s) {
        return Cow::Borrowed(s);
    }
    let s = neutralise(s);
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\t' | '\n' | '\r' => c,
                c if is_unsafe_for_terminal(c) => '\u{FFFD}',
                c => c,
            })
            .collect(),
    )
}

/// A CSV field (RFC 4180) of [`csv_text`]: quoted when it holds a comma, a quote or a line
/// break, and always when it was neutralised.
pub fn csv_field(s: &str) -> String {
    let formula = is_formula_like(s);
    let s = csv_text(s);
    if formula || s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.into_owned()
    }
}

/// Characters that change what a terminal shows rather than being shown: control characters
/// (escape sequences start with one), and the bidirectional overrides that reorder text.
fn is_unsafe_for_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A string safe to print on a terminal: tabs and line breaks become spaces, every other
/// control character (ESC of an escape sequence included) and bidirectional override becomes
/// `�`, so a value from a file can neither move the cursor nor recolour or hide the output.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_for_terminal) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\t' | '\n' | '\r' => ' ',
                c if is_unsafe_for_terminal(c) => '\u{FFFD}',
                c => c,
            })
            .collect(),
    )
}

/// JSON text safe to print on a terminal, still the same JSON: control characters JSON leaves
/// raw (DEL, C1) and bidirectional overrides are written as `\uXXXX` escapes. They can only
/// occur inside strings, where such an escape means the same character.
pub fn json_terminal_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_for_terminal) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_unsafe_for_terminal(c) && c != '\n' {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_numbers_stay_numbers() {
        assert_eq!(
            csv_field("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        for s in [
            "+1+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
            "=1",
        ] {
            let f = csv_field(s);
            assert!(f.starts_with("\"'"), "{s:?} -> {f}");
        }
        for s in [
            "-12.5",
            "+3",
            "-1,234.56",
            "1e-3",
            "plain",
            "",
            "a=b",
            "00000",
        ] {
            assert!(!is_formula_like(s), "{s:?}");
        }
        assert_eq!(csv_field("-12.5"), "-12.5");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a\u{1b}[2Jb"), "a\u{FFFD}[2Jb");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        // "-" alone and "-inf" are text that starts with a minus: neutralised.
        assert!(is_formula_like("-"));
        assert!(is_formula_like("-inf"));
    }

    #[test]
    fn terminal_output_carries_no_control_characters() {
        let hostile = "ok\u{1b}[2J\u{1b}]0;title\u{7}\u{202E}txt.exe\u{9b}31m\tend\n";
        let safe = terminal_safe(hostile);
        assert!(!safe.chars().any(is_unsafe_for_terminal), "{safe:?}");
        assert!(safe.starts_with("ok\u{FFFD}[2J"), "{safe:?}");
        assert!(safe.ends_with(" end "), "{safe:?}");
        assert!(matches!(terminal_safe("plain text"), Cow::Borrowed(_)));
        let json =
            serde_json::to_string(&serde_json::json!({"c": "a\u{9b}31m\u{202E}b\u{7f}"})).unwrap();
        let safe = json_terminal_safe(&json);
        assert!(!safe.chars().any(is_unsafe_for_terminal), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["c"], "a\u{9b}31m\u{202E}b\u{7f}");
    }
}
