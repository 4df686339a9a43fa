//! Text written where someone else's program reads it: CSV fields a spreadsheet opens,
//! strings printed to a terminal, one-line messages from a remote server, amounts for people. Values come from source files and comments an attacker may
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
    if is_formula_like(s) {
        return true;
    }
    // Printable ASCII, tabs and line breaks are safe: only text with another byte (a control
    // character, or a character beyond ASCII) is read character by character.
    let plain = |b: u8| (b' '..=b'~').contains(&b) || matches!(b, b'\t' | b'\n' | b'\r');
    !s.bytes().all(plain)
        && s.chars()
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

/// Single-line, length-limited text safe to show to a user: control
/// characters become spaces, runs of whitespace collapse, the API key (if
/// the server echoed it) is replaced.
pub fn clean_text(text: &str, max_chars: usize, api_key: Option<&str>) -> String {
    let mut text = text.to_string();
    if let Some(key) = api_key.map(str::trim).filter(|k| !k.is_empty()) {
        text = text.replace(key, "[redacted]");
    }
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut cleaned: String = collapsed
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max_chars)
        .collect();
    if collapsed.chars().count() > max_chars {
        cleaned.push('…');
    }
    cleaned
}

/// A number for people: thousands separators, two decimals for amounts, up to six for small
/// values, integers without decimals.
pub fn fmt_amount(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let decimals: u32 = if v.fract() == 0.0 {
        0
    } else if v.abs() >= 1.0 {
        2
    } else {
        6
    };
    let mut out = String::with_capacity(24);
    if v < 0.0 {
        out.push('-');
    }
    match rounded_digits(v.abs(), decimals) {
        Some((int, frac)) => {
            let mut digits = int.to_string();
            group_thousands(&digits, &mut out);
            if decimals > 0 {
                digits.clear();
                let s = frac.to_string();
                for _ in s.len()..decimals as usize {
                    digits.push('0');
                }
                digits.push_str(&s);
                push_decimals(&mut out, &digits, decimals);
            }
        }
        None => {
            let s = format!("{:.*}", decimals as usize, v.abs());
            let (int, frac) = s.split_once('.').unwrap_or((s.as_str(), ""));
            group_thousands(int, &mut out);
            push_decimals(&mut out, frac, decimals);
        }
    }
    out
}

/// The decimals `frac` of a number written with `decimals` places, as [`fmt_amount`] shows
/// them: trailing zeros dropped, but two places for an amount that keeps any.
fn push_decimals(out: &mut String, frac: &str, decimals: u32) {
    let f = frac.trim_end_matches('0');
    if !f.is_empty() {
        out.push('.');
        out.push_str(f);
        if decimals == 2 && f.len() == 1 {
            out.push('0');
        }
    }
}

/// `a` (finite, not negative) rounded to `decimals` places as `format!("{:.*}")` rounds it,
/// as its integer part and its decimals (a number below 10^decimals); None when integer
/// arithmetic cannot be sure of that rounding (a large `a`, or one within reach of a tie).
fn rounded_digits(a: f64, decimals: u32) -> Option<(u64, u64)> {
    if decimals == 0 {
        // An integral value below 2^53 is that integer exactly.
        return (a < 9.0e15).then_some((a as u64, 0));
    }
    if a >= 1.0e9 {
        return None;
    }
    let p = 10u64.pow(decimals);
    // `a * p` is within a few units in its last place of the exact product (well under
    // 1e-5 here): unless it lies that close to a half, it rounds as the exact value does.
    let scaled = a * p as f64;
    if (scaled - scaled.floor() - 0.5).abs() < 1.0e-4 {
        return None;
    }
    let r = scaled.round() as u64;
    Some((r / p, r % p))
}

/// `v` with `decimals` places and `,` between thousands: `-1,234,567.80`.
pub fn thousands(v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').unwrap_or((s.as_str(), ""));
    let mut out = String::with_capacity(s.len() + s.len() / 3 + 1);
    if v < 0.0 && s.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        out.push('-');
    }
    group_thousands(int, &mut out);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Appends the digits `int` with `,` between thousands.
fn group_thousands(int: &str, out: &mut String) {
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
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
    fn a_cell_needs_cleaning_exactly_when_it_holds_a_formula_or_an_unsafe_character() {
        // Every character of the first two Unicode blocks, the bidirectional marks and a few
        // beyond, alone and inside plain text.
        let chars = (0u32..0x300)
            .chain(0x2000..0x2070)
            .chain([0xFEFF, 0xFFFD, 0x1F600])
            .filter_map(char::from_u32);
        for c in chars {
            let unsafe_char = is_unsafe_for_terminal(c) && !matches!(c, '\t' | '\n' | '\r');
            for s in [c.to_string(), format!("ab{c}cd"), format!("12{c}")] {
                let expected = is_formula_like(&s) || unsafe_char;
                assert_eq!(needs_csv_cleaning(&s), expected, "{s:?}");
                assert_eq!(matches!(csv_text(&s), Cow::Owned(_)), expected, "{s:?}");
            }
        }
        assert!(!needs_csv_cleaning("GL Balance 1,234.50\tnote\r\n"));
        assert!(needs_csv_cleaning("ok\u{7f}"));
        assert!(needs_csv_cleaning("caf\u{e9} \u{202E}gpj.exe"));
        assert!(!needs_csv_cleaning("caf\u{e9}"));
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

    #[test]
    fn amounts_for_people() {
        assert_eq!(fmt_amount(1234567.891), "1,234,567.89");
        assert_eq!(fmt_amount(-1000.5), "-1,000.50");
        assert_eq!(fmt_amount(42.0), "42");
        assert_eq!(fmt_amount(-0.0125), "-0.0125");
        assert_eq!(fmt_amount(999.0), "999");
        assert_eq!(fmt_amount(f64::NAN), "");
        assert_eq!(fmt_amount(99.996), "100");
        assert_eq!(fmt_amount(-0.0), "0");
        assert_eq!(fmt_amount(0.125), "0.125");
        assert_eq!(fmt_amount(2.675), "2.67");
        assert_eq!(fmt_amount(1.005), "1");
        assert_eq!(fmt_amount(-1e300), format!("-{}", thousands(1e300, 0)));
    }

    /// `fmt_amount` with the rounding left to the float formatter.
    fn fmt_amount_by_format(v: f64) -> String {
        if !v.is_finite() {
            return String::new();
        }
        let decimals: u32 = if v.fract() == 0.0 {
            0
        } else if v.abs() >= 1.0 {
            2
        } else {
            6
        };
        let s = format!("{:.*}", decimals as usize, v.abs());
        let (int, frac) = s.split_once('.').unwrap_or((s.as_str(), ""));
        let mut out = String::new();
        if v < 0.0 {
            out.push('-');
        }
        group_thousands(int, &mut out);
        push_decimals(&mut out, frac, decimals);
        out
    }

    #[test]
    fn amounts_are_written_as_the_float_formatter_rounds_them() {
        let mut x: u64 = 11;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x
        };
        let mut values: Vec<f64> = Vec::new();
        for _ in 0..200_000 {
            let r = next();
            let unit = (r >> 11) as f64 / (1u64 << 53) as f64;
            let magnitude = 10f64.powi((r % 24) as i32 - 9);
            let v = unit * magnitude;
            // Values near a tie of the last place shown, integers and cents.
            let near = (v * 1000.0).round() / 1000.0 + 0.005;
            let sign = if r & 1 == 0 { 1.0 } else { -1.0 };
            values.extend([
                sign * v,
                sign * near,
                sign * v.round(),
                sign * (v * 100.0).round() / 100.0,
            ]);
        }
        values.extend([
            0.5,
            1.5,
            0.0000005,
            0.0000015,
            999_999_999.995,
            1e9 + 0.5,
            9.0e15,
        ]);
        for v in values {
            assert_eq!(fmt_amount(v), fmt_amount_by_format(v), "{v:?}");
        }
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1234567.8, 2), "1,234,567.80");
        assert_eq!(thousands(-1234.5, 2), "-1,234.50");
        assert_eq!(thousands(999.0, 2), "999.00");
        assert_eq!(thousands(-0.001, 2), "0.00");
        assert_eq!(thousands(0.0, 0), "0");
    }
}
