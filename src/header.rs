//! Column headers as people write them: normalised for matching (`As of Date` finds
//! `asofdate`) and slugged for derived column names (`GL Balance` → `gl_balance`). A leaf: the
//! profiles, the readers and the feedback file match headers alike, and it imports nothing of
//! the crate.

/// Normalises a header for matching: case, spaces, underscores (and a UTF-8 BOM) are ignored.
pub fn normalize_header(h: &str) -> String {
    h.trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// A lower-case identifier for a column in derived column names: `GL Balance` → `gl_balance`.
pub fn slug(h: &str) -> String {
    let mut out = String::new();
    for c in h.trim_start_matches('\u{feff}').chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_normalisation_and_slugs() {
        assert_eq!(normalize_header("As of Date"), "asofdate");
        assert_eq!(normalize_header("Asofdate"), "asofdate");
        assert_eq!(normalize_header("IHub balance"), "ihubbalance");
        assert_eq!(normalize_header("SETTLE_DATE"), "settledate");
        assert_eq!(normalize_header("\u{feff}Company"), "company");
        assert_eq!(slug("GL Balance"), "gl_balance");
        assert_eq!(slug("PRICE DIFFERENCE"), "price_difference");
        assert_eq!(slug("Balance  (diff)"), "balance_diff");
    }
}
