//! Delimiters: the `[ingest] delimiter` setting, sniffing one from the header, splitting a line.

/// Delimiters `auto` chooses among.
pub(super) const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];

/// `auto` → None; a single character (or `\t`, `tab`) → Some(byte).
pub fn parse_delimiter(s: &str) -> Result<Option<u8>, String> {
    match s {
        "auto" => Ok(None),
        "\\t" | "tab" | "\t" => Ok(Some(b'\t')),
        _ if s.len() == 1 && s.is_ascii() && s != "\"" && s != "\n" && s != "\r" => {
            Ok(Some(s.as_bytes()[0]))
        }
        _ => Err(format!(
            "must be \"auto\" or a single ASCII character such as \",\" \";\" \"|\" or \"\\t\", found {s:?}"
        )),
    }
}

pub(super) fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "tab".to_string(),
        _ => format!("'{}'", d as char),
    }
}

/// Splits one CSV line on `delim`, honouring double quotes.
pub fn split_line(line: &str, delim: u8) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c as u32 == delim as u32 {
            fields.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    fields.push(cur);
    fields
}

pub(super) fn count_outside_quotes(line: &str, delim: u8) -> usize {
    let mut n = 0;
    let mut q = false;
    for b in line.bytes() {
        if b == b'"' {
            q = !q;
        } else if b == delim && !q {
            n += 1;
        }
    }
    n
}

/// The delimiter that splits the header into the most fields (ties: the earlier candidate).
pub fn sniff_delimiter(header_line: &str) -> u8 {
    let mut best = (b',', 0usize);
    for d in CANDIDATES {
        let n = count_outside_quotes(header_line, d);
        if n > best.1 {
            best = (d, n);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_picks_the_splitting_delimiter() {
        assert_eq!(sniff_delimiter("a,b,c"), b',');
        assert_eq!(sniff_delimiter("a;b;c"), b';');
        assert_eq!(sniff_delimiter("a\tb\tc"), b'\t');
        assert_eq!(sniff_delimiter("a|b|c"), b'|');
        // Commas inside quotes do not count.
        assert_eq!(sniff_delimiter("\"a,b,c,d\";e;f"), b';');
        assert_eq!(sniff_delimiter("single"), b',');
    }

    #[test]
    fn split_line_handles_quotes() {
        assert_eq!(
            split_line("a,\"b,c\",\"d \"\"e\"\"\"", b','),
            vec!["a", "b,c", "d \"e\""]
        );
        assert_eq!(split_line("x;;y", b';'), vec!["x", "", "y"]);
    }

    #[test]
    fn delimiter_setting_parses() {
        assert_eq!(parse_delimiter("auto"), Ok(None));
        assert_eq!(parse_delimiter(";"), Ok(Some(b';')));
        assert_eq!(parse_delimiter("\\t"), Ok(Some(b'\t')));
        assert!(parse_delimiter(",,").is_err());
        assert!(parse_delimiter("\"").is_err());
    }
}
