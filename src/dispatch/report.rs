//! The dispatch report: HTML, plain text and CSV renderings of a set of cases (counts by bucket,
//! severity and status; the top breaks by absolute difference; tickets; model versions), with
//! optional masking of account identifiers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};

use crate::cases::Case;
use crate::text::fmt_amount;

/// What to render.
pub(crate) struct Options {
    /// The heading (the email's subject).
    pub title: String,
    /// How many breaks the top list shows.
    pub top: usize,
    /// Mask account identifiers (the parts of each case's key).
    pub mask: bool,
    /// When the report was made.
    pub generated_at: DateTime<Utc>,
    /// The latest reconciliation cycle's summary, as lines, when there is one.
    pub cycle: Option<Vec<String>>,
}

/// The three renderings.
pub(crate) struct Rendered {
    pub html: String,
    pub text: String,
    pub csv: String,
}

/// Severities from the most to the least urgent (others follow in name order).
const SEVERITY_ORDER: [&str; 4] = ["Critical", "High", "Medium", "Low"];

/// The CSV columns.
pub(crate) const CSV_HEADER: [&str; 19] = crate::cases::case_columns([
    "bucket_rule",
    "model_version",
    "due",
    "overdue",
    "owner",
    "cleared_on",
]);

/// "accepted" when every case has that status, else "reviewed".
pub(crate) fn status_label(cases: &[Case]) -> String {
    match cases.first() {
        Some(first) if cases.iter().all(|c| c.status == first.status) => {
            first.status.as_str().to_lowercase()
        }
        _ => "reviewed".to_string(),
    }
}

/// Counts of cases and total absolute difference per name, most cases first.
fn counts<'a>(
    cases: &'a [Case],
    key: impl Fn(&'a Case) -> &'a str,
    order: &[&str],
) -> Vec<(&'a str, usize, f64)> {
    let mut by: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for c in cases {
        let e = by.entry(key(c)).or_default();
        e.0 += 1;
        e.1 += c.difference.abs();
    }
    let mut rows: Vec<(&str, usize, f64)> = by.into_iter().map(|(k, (n, d))| (k, n, d)).collect();
    if order.is_empty() {
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    } else {
        let rank = |s: &str| order.iter().position(|o| *o == s).unwrap_or(order.len());
        rows.sort_by(|a, b| rank(a.0).cmp(&rank(b.0)).then(a.0.cmp(b.0)));
    }
    rows
}

/// Masks every part of a `|`-joined key, keeping the last two characters of each:
/// `00000|1001|0042` → `***00|**01|**42`.
pub(crate) fn mask_key(key: &str) -> String {
    key.split('|').map(mask_part).collect::<Vec<_>>().join("|")
}

fn mask_part(part: &str) -> String {
    let n = part.chars().count();
    if n <= 2 {
        return part.to_string();
    }
    part.chars()
        .enumerate()
        .map(|(i, ch)| if i + 2 < n { '*' } else { ch })
        .collect()
}

/// Masks, in free text, every occurrence of a part of `key` (three characters or longer).
pub(crate) fn mask_text(text: &str, key: &str) -> String {
    let mut parts: Vec<&str> = key.split('|').filter(|p| p.chars().count() > 2).collect();
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let mut out = text.to_string();
    for p in parts {
        out = out.replace(p, &mask_part(p));
    }
    out
}

/// A case's key and summary as the report shows them.
fn shown(c: &Case, mask: bool) -> (String, String) {
    if mask {
        (mask_key(&c.key), mask_text(&c.summary, &c.key))
    } else {
        (c.key.clone(), c.summary.clone())
    }
}

/// What the renderings show, worked out once from the cases.
struct Overview<'a> {
    by_bucket: Vec<(&'a str, usize, f64)>,
    by_severity: Vec<(&'a str, usize, f64)>,
    by_status: Vec<(&'a str, usize, f64)>,
    /// The top breaks by absolute difference.
    top: Vec<&'a Case>,
    models: Vec<&'a str>,
    tickets: Vec<&'a str>,
    jira: Vec<String>,
    generated: String,
    total: f64,
    today: NaiveDate,
    overdue: usize,
}

impl<'a> Overview<'a> {
    fn of(cases: &'a [Case], o: &Options) -> Overview<'a> {
        let by_bucket = counts(cases, |c| c.bucket.as_str(), &[]);
        let by_severity = counts(cases, |c| c.severity.as_str(), &SEVERITY_ORDER);
        let by_status = counts(cases, |c| c.status.as_str(), &[]);
        let mut top: Vec<&Case> = cases.iter().collect();
        top.sort_by(|a, b| {
            b.difference
                .abs()
                .total_cmp(&a.difference.abs())
                .then(a.ticket.cmp(&b.ticket))
        });
        top.truncate(o.top);
        let mut models: Vec<&str> = cases.iter().map(|c| c.model_version.as_str()).collect();
        models.sort_unstable();
        models.dedup();
        let tickets: Vec<&str> = cases.iter().map(|c| c.ticket.as_str()).collect();
        let jira: Vec<String> = cases
            .iter()
            .filter_map(|c| c.jira_key.as_ref().map(|k| format!("{} → {k}", c.ticket)))
            .collect();
        let generated = o.generated_at.format("%Y-%m-%d %H:%M UTC").to_string();
        let total: f64 = cases.iter().map(|c| c.difference.abs()).sum();
        let today = o.generated_at.date_naive();
        let overdue = cases.iter().filter(|c| c.overdue(today)).count();
        Overview {
            by_bucket,
            by_severity,
            by_status,
            top,
            models,
            tickets,
            jira,
            generated,
            total,
            today,
            overdue,
        }
    }

    /// A case's due date, marked when overdue.
    fn due_of(&self, c: &Case) -> String {
        match c.due {
            Some(d) if c.overdue(self.today) => format!("{d} (overdue)"),
            Some(d) => d.to_string(),
            None => String::new(),
        }
    }
}

/// Renders the report of `cases`.
pub(crate) fn render(cases: &[Case], o: &Options) -> Rendered {
    let v = Overview::of(cases, o);
    Rendered {
        html: html(cases, o, &v),
        text: text(cases, o, &v),
        csv: csv(cases, o, v.today),
    }
}

/// The HTML rendering.
fn html(cases: &[Case], o: &Options, v: &Overview<'_>) -> String {
    // ----- HTML
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head>\n\
         <body style=\"font-family: sans-serif\">\n<h2>{t}</h2>\n\
         <p>{n} case(s), total absolute difference {total}{od}. Generated {g} by breakdesk.</p>\n",
        t = esc(&o.title),
        n = cases.len(),
        total = esc(&fmt_amount(v.total)),
        od = if v.overdue > 0 {
            format!("; <b style=\"color: #b00020\">{} overdue</b>", v.overdue)
        } else {
            String::new()
        },
        g = esc(&v.generated),
    );
    if let Some(lines) = &o.cycle {
        h.push_str("<h3>Latest cycle</h3>\n<p id=\"cycle\">");
        let shown: Vec<String> = lines.iter().map(|l| esc(l)).collect();
        h.push_str(&shown.join("<br>\n"));
        h.push_str("</p>\n");
    }
    for (heading, rows) in [
        ("By bucket", &v.by_bucket),
        ("By severity", &v.by_severity),
        ("By status", &v.by_status),
    ] {
        let _ = write!(
            h,
            "<h3>{heading}</h3>\n<table id=\"{id}\" border=\"1\" cellpadding=\"4\" cellspacing=\"0\">\n\
             <tr><th>{col}</th><th>cases</th><th>absolute difference</th></tr>\n",
            id = heading.to_lowercase().replace(' ', "-"),
            col = heading.trim_start_matches("By "),
        );
        for (name, n, d) in rows.iter() {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td align=\"right\">{n}</td><td align=\"right\">{}</td></tr>",
                esc(name),
                esc(&fmt_amount(*d))
            );
        }
        h.push_str("</table>\n");
    }
    let _ = write!(
        h,
        "<h3>Top {} break(s) by absolute difference</h3>\n\
         <table id=\"top-breaks\" border=\"1\" cellpadding=\"4\" cellspacing=\"0\">\n\
         <tr><th>ticket</th><th>bucket</th><th>severity</th><th>status</th><th>key</th>\
         <th>last date</th><th>age (days)</th><th>difference</th><th>Jira</th><th>summary</th>\
         <th>due</th><th>owner</th></tr>\n",
        v.top.len()
    );
    for c in &v.top {
        let (key, summary) = shown(c, o.mask);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td align=\"right\">{}</td><td align=\"right\">{}</td><td>{}</td><td>{}</td>\
             <td{}>{}</td><td>{}</td></tr>",
            esc(&c.ticket),
            esc(&c.bucket),
            esc(&c.severity),
            esc(c.status.as_str()),
            esc(&key),
            c.last_date,
            c.age_days(),
            esc(&fmt_amount(c.difference)),
            esc(c.jira_key.as_deref().unwrap_or("")),
            esc(&summary),
            if c.overdue(v.today) {
                " style=\"color: #b00020; font-weight: bold\""
            } else {
                ""
            },
            esc(&v.due_of(c)),
            esc(c.owner.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table>\n");
    let _ = writeln!(h, "<p><b>Tickets:</b> {}</p>", esc(&v.tickets.join(", ")));
    if !v.jira.is_empty() {
        let _ = writeln!(h, "<p><b>Jira:</b> {}</p>", esc(&v.jira.join(", ")));
    }
    let _ = write!(
        h,
        "<p><b>Model version:</b> {}</p>\n<p>The attached CSV, when present, lists every case.</p>\n</body></html>\n",
        esc(&v.models.join(", "))
    );
    h
}

/// The plain text rendering.
fn text(cases: &[Case], o: &Options, v: &Overview<'_>) -> String {
    // ----- plain text
    let mut t = String::new();
    let _ = write!(
        t,
        "{}\n\n{} case(s), total absolute difference {}{}. Generated {} by breakdesk.\n",
        o.title,
        cases.len(),
        fmt_amount(v.total),
        if v.overdue > 0 {
            format!("; {} overdue", v.overdue)
        } else {
            String::new()
        },
        v.generated
    );
    if let Some(lines) = &o.cycle {
        t.push_str("\nLatest cycle:\n");
        for l in lines {
            let _ = writeln!(t, "  {l}");
        }
    }
    for (heading, rows) in [
        ("By bucket", &v.by_bucket),
        ("By severity", &v.by_severity),
        ("By status", &v.by_status),
    ] {
        let _ = write!(t, "\n{heading}:\n");
        for (name, n, d) in rows.iter() {
            let _ = writeln!(t, "  {name:<24} {n:>6}  {:>18}", fmt_amount(*d));
        }
    }
    let _ = write!(
        t,
        "\nTop {} break(s) by absolute difference:\n",
        v.top.len()
    );
    for c in &v.top {
        let (key, summary) = shown(c, o.mask);
        let _ = writeln!(
            t,
            "  {} {} ({}, {}) key {} last {} age {}d difference {}{}{}{}\n    {}",
            c.ticket,
            c.bucket,
            c.severity,
            c.status.as_str(),
            key,
            c.last_date,
            c.age_days(),
            fmt_amount(c.difference),
            c.due
                .map(|_| format!(" due {}", v.due_of(c)))
                .unwrap_or_default(),
            c.owner
                .as_deref()
                .map(|o| format!(" owner {o}"))
                .unwrap_or_default(),
            c.jira_key
                .as_deref()
                .map(|k| format!(" Jira {k}"))
                .unwrap_or_default(),
            summary
        );
    }
    let _ = write!(t, "\nTickets: {}\n", v.tickets.join(", "));
    if !v.jira.is_empty() {
        let _ = writeln!(t, "Jira: {}", v.jira.join(", "));
    }
    let _ = writeln!(t, "Model version: {}", v.models.join(", "));
    t
}

/// The CSV rendering: every case.
fn csv(cases: &[Case], o: &Options, today: NaiveDate) -> String {
    // ----- CSV
    let mut csv = CSV_HEADER.join(",");
    csv.push_str("\r\n");
    for c in cases {
        let (key, summary) = shown(c, o.mask);
        let mut fields = c.csv_head(key, summary);
        fields.extend([
            c.bucket_rule.clone(),
            c.model_version.clone(),
            c.due.map(|d| d.to_string()).unwrap_or_default(),
            c.overdue(today).to_string(),
            c.owner.clone().unwrap_or_default(),
            c.cleared_on.map(|d| d.to_string()).unwrap_or_default(),
        ]);
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        csv.push_str(&line.join(","));
        csv.push_str("\r\n");
    }
    csv
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) use crate::text::csv_field;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_the_last_two_characters_of_each_key_part() {
        assert_eq!(mask_key("00000|1001|0042"), "***00|**01|**42");
        assert_eq!(mask_key("AB|X"), "AB|X");
        assert_eq!(
            mask_text(
                "Company 00000, account 1001 (AU 0042): 1001 again",
                "00000|1001|0042"
            ),
            "Company ***00, account **01 (AU **42): **01 again"
        );
    }

    #[test]
    fn overdue_undecided_cases_are_marked_in_every_rendering() {
        use chrono::TimeZone;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let opened = Utc.with_ymd_and_hms(2024, 5, 1, 9, 0, 0).unwrap();
        let cases = crate::cases::Cases::with_clock(&store, move || opened);
        let day = chrono::NaiveDate::from_ymd_opt(2024, 4, 30).unwrap();
        let input = crate::cases::BreakInput {
            profile: "gl_ihub".into(),
            key: "00000|1001".into(),
            start_date: day,
            date: day,
            bucket: "Timing Issue".into(),
            bucket_rule: "timing".into(),
            confidence: 0.8,
            severity: "High".into(),
            summary: "late posting".into(),
            score: -0.5,
            rank: 1,
            difference: 250.0,
            model_version: "m".into(),
            row: serde_json::Map::new(),
        };
        let c = cases.upsert(&input, false).unwrap().case;
        assert_eq!(
            c.due,
            chrono::NaiveDate::from_ymd_opt(2024, 5, 3),
            "High: 2 days"
        );
        let at = |d: u32| Options {
            title: "Breaks".into(),
            top: 5,
            mask: false,
            generated_at: Utc.with_ymd_and_hms(2024, 5, d, 12, 0, 0).unwrap(),
            cycle: (d == 10).then(|| vec!["cases: 1 new, 2 <persisting>".to_string()]),
        };
        let late = render(std::slice::from_ref(&c), &at(10));
        assert!(late.html.contains("1 overdue"), "{}", late.html);
        assert!(late.html.contains("2024-05-03 (overdue)"), "{}", late.html);
        assert!(
            late.text.contains("due 2024-05-03 (overdue)"),
            "{}",
            late.text
        );
        assert!(late.html.contains("<h3>Latest cycle</h3>"), "{}", late.html);
        assert!(late.html.contains("2 &lt;persisting&gt;"), "{}", late.html);
        assert!(
            late.text.contains("Latest cycle:\n  cases: 1 new"),
            "{}",
            late.text
        );
        let row = late.csv.lines().nth(1).unwrap();
        assert!(row.ends_with(",2024-05-03,true,,"), "{row}");
        let early = render(std::slice::from_ref(&c), &at(2));
        assert!(!early.html.contains("overdue"), "{}", early.html);
        assert!(!early.html.contains("Latest cycle"), "{}", early.html);
        assert!(
            early
                .csv
                .lines()
                .nth(1)
                .unwrap()
                .ends_with(",2024-05-03,false,,")
        );
    }

    #[test]
    fn html_and_csv_escape_what_they_carry() {
        assert_eq!(esc("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
