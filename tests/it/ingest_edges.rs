//! Malformed and foreign-locale input through the real `breakdesk run` (and `POST
//! /batch_anomaly`): decimal commas, ragged, truncated and blank records, amounts whose
//! difference overflows, UTF-16 exports, workbook cells that cannot be read, and a workbook whose
//! declared size would not fit in memory. Fixtures are in tests/fixtures/ingest/; workbooks are
//! generated here.

use crate::support::common;
use crate::support::service;

use common::{breakdesk_cmd, column, outcome, read_csv};
use rust_xlsxwriter::{Format, Formula, Workbook};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ingest")
        .join(name)
}

struct Run {
    code: i32,
    stderr: String,
    out: PathBuf,
}

impl Run {
    fn rejects(&self) -> Vec<Vec<String>> {
        let p = self.out.with_extension("rejects.csv");
        if !p.exists() {
            return Vec::new();
        }
        let (h, rows) = read_csv(&p);
        assert_eq!(h, ["file", "row", "column", "value", "reason", "cell"]);
        rows
    }
    fn column(&self, name: &str) -> Vec<String> {
        let (h, rows) = read_csv(&self.out);
        column(&h, &rows, name)
            .into_iter()
            .map(String::from)
            .collect()
    }
}

/// `breakdesk [--config C] run FILE --all-rows --out DIR/out.csv EXTRA...`, with `config` (TOML)
/// written to a file when given.
fn run(dir: &Path, file: &Path, config: Option<&str>, extra: &[&str]) -> Run {
    let out = dir.join("out.csv");
    let _ = std::fs::remove_file(out.with_extension("rejects.csv"));
    let mut c = breakdesk_cmd(dir, &dir.join("data"));
    if let Some(text) = config {
        let p = dir.join("config.toml");
        std::fs::write(&p, format!("[logging]\nfile = false\n{text}")).unwrap();
        c.args(["--config", p.to_str().unwrap()]);
    }
    c.env("USER", "ana")
        .args(["run", file.to_str().unwrap(), "--all-rows", "--out"])
        .arg(&out)
        .args(extra);
    let (code, _, stderr) = outcome(c);
    assert!(!stderr.contains("panicked"), "{stderr}");
    Run { code, stderr, out }
}

const LAX: &str = "[ingest]\nmax_reject_share = 0.5\n";

#[test]
fn european_export_reads_decimal_commas_and_dotted_dates() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &fixture("eu_semicolon.csv"), None, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "amounts: decimal comma (1.234,56), detected from GL Balance, IHub Balance, Balance Difference"
        ),
        "{}",
        r.stderr
    );
    assert!(r.rejects().is_empty());
    assert_eq!(
        r.column("bd_balance_lhs"),
        ["1234.56", "2500.5", "-12.5", "1000000.0"]
    );
    assert_eq!(r.column("bd_difference"), ["0.0", "500.0", "0.0", "10.0"]);
    assert_eq!(
        r.column("bd_date"),
        ["2024-01-29", "2024-01-30", "2024-01-31", "2024-02-01"]
    );
    // The original text is kept as it was.
    assert_eq!(r.column("GL Balance")[0], "1.234,56");

    // Set explicitly, the summary says so; the opposite setting rejects what it cannot read.
    let r = run(
        dir.path(),
        &fixture("eu_semicolon.csv"),
        Some("[ingest]\ndecimal = \",\"\n"),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("amounts: decimal comma (1.234,56), set by [ingest] decimal"),
        "{}",
        r.stderr
    );
    let r = run(
        dir.path(),
        &fixture("eu_semicolon.csv"),
        Some("[ingest]\ndecimal = \".\"\n"),
        &[],
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
    let rej = r.rejects();
    assert_eq!(rej[0][0], fixture("eu_semicolon.csv").display().to_string());
    assert_eq!(
        rej[0][1..5],
        ["2", "GL Balance", "1.234,56", "not a number"]
    );
}

#[test]
fn ambiguous_decimal_separator_is_refused_until_set() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture("eu_ambiguous.csv");
    let r = run(dir.path(), &f, None, &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    for needle in [
        "eu_ambiguous.csv",
        "cannot tell the decimal separator",
        "GL Balance \"1,234\" reads as 1234 with a decimal point or 1.234 with a decimal comma",
        "[ingest] decimal",
    ] {
        assert!(r.stderr.contains(needle), "{needle:?} in {}", r.stderr);
    }
    let r = run(dir.path(), &f, Some("[ingest]\ndecimal = \",\"\n"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.column("bd_balance_lhs"), ["1.234", "2.5", "100.0"]);
    let r = run(dir.path(), &f, Some("[ingest]\ndecimal = \".\"\n"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.column("bd_balance_lhs"), ["1234.0", "2500.0", "100.0"]);
    // A bad setting is a configuration error naming the key.
    let r = run(dir.path(), &f, Some("[ingest]\ndecimal = \"comma\"\n"), &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("ingest.decimal"), "{}", r.stderr);
}

#[test]
fn a_record_with_extra_fields_is_rejected_and_the_rest_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture("extra_field.csv");
    // 1 of 4 rows is more than the default 5 %: exit 4, with the report written.
    let r = run(dir.path(), &f, None, &[]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("1 of 4 rows rejected"), "{}", r.stderr);
    let rej = r.rejects();
    assert_eq!(rej.len(), 1);
    assert_eq!(rej[0][0], f.display().to_string());
    assert_eq!(
        rej[0][1..5],
        [
            "4",
            "field 8",
            "2024-01-31,00000,1001,0042,300.25,300.25,0.00,late,entry",
            "9 fields, header has 7"
        ]
    );
    // Allowed by max_reject_share: the other rows are analysed.
    let r = run(dir.path(), &f, Some(LAX), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("4 rows, 1 rejected"), "{}", r.stderr);
    assert_eq!(r.column("bd_row"), ["2", "3", "5"]);
    assert_eq!(r.rejects().len(), 1);
}

#[test]
fn a_truncated_record_or_an_empty_key_is_rejected_not_read_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &fixture("truncated.csv"), Some(LAX), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rej = r.rejects();
    assert_eq!(rej.len(), 1, "{rej:?}");
    assert_eq!(
        rej[0][1..5],
        [
            "4",
            "Account",
            "1/31/2024,00000",
            "2 fields, header has 7: the record ends before Account"
        ]
    );
    assert!(
        !r.column("bd_key").iter().any(|k| k.starts_with("00000||")),
        "no key with empty parts"
    );
    assert_eq!(r.column("bd_row"), ["2", "3", "5"]);

    let r = run(dir.path(), &fixture("empty_key.csv"), Some(LAX), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rej = r.rejects();
    assert_eq!(rej.len(), 1, "{rej:?}");
    assert_eq!(rej[0][1], "4");
    assert_eq!(rej[0][2], "Account");
    assert!(rej[0][4].contains("a key column is empty"), "{rej:?}");
}

#[test]
fn blank_lines_are_skipped_and_counted_never_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &fixture("blank_lines.csv"), None, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("4 rows, 0 rejected, 5 blank skipped"),
        "{}",
        r.stderr
    );
    assert!(r.rejects().is_empty());
    // Row numbers are the file's lines.
    assert_eq!(r.column("bd_row"), ["2", "4", "6", "8"]);
}

#[test]
fn an_overflowing_difference_is_a_reject_naming_column_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &fixture("overflow.csv"), Some(LAX), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("NaN"), "{}", r.stderr);
    let rej = r.rejects();
    assert_eq!(rej.len(), 1, "{rej:?}");
    assert_eq!(rej[0][1..4], ["4", "GL Balance", "1e308"]);
    assert!(
        rej[0][4].starts_with("difference is not finite: GL Balance - IHub Balance"),
        "{rej:?}"
    );
}

#[test]
fn utf16_exports_are_transcoded_by_their_byte_order_mark() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &fixture("utf16_bom.txt"), None, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.column("Comments")[0], "Révision €");
    assert_eq!(r.column("bd_balance_lhs"), ["100.0", "250.5", "300.25"]);

    // Without a byte-order mark: refused, naming UTF-16 and the setting; then read when told.
    let f = fixture("utf16_nobom.csv");
    let r = run(dir.path(), &f, None, &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("UTF-16") && r.stderr.contains("--encoding utf-16le"),
        "{}",
        r.stderr
    );
    let r = run(dir.path(), &f, None, &["--encoding", "utf-16le"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.column("Comments")[0], "Révision €");
}

/// A GL workbook: header in row 1 (after `title` rows), then `rows`.
fn workbook(path: &Path, title: bool, rows: &[[&str; 7]]) {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Recon").unwrap();
    let mut r0 = 0;
    if title {
        ws.merge_range(0, 0, 0, 6, "GL vs IHub, January", &Format::new())
            .unwrap();
        r0 = 1;
    }
    let header = [
        "As of Date",
        "Company",
        "Account",
        "AU",
        "GL Balance",
        "IHub Balance",
        "Balance Difference",
    ];
    for (c, h) in header.iter().enumerate() {
        ws.write_string(r0, c as u16, *h).unwrap();
    }
    for (i, row) in rows.iter().enumerate() {
        let r = r0 + 1 + i as u32;
        for (c, v) in row.iter().enumerate() {
            let c = c as u16;
            if v.is_empty() {
                continue;
            } else if let Some(f) = v.strip_prefix('=') {
                ws.write_formula(r, c, Formula::new(format!("={f}")).set_result("#DIV/0!"))
                    .unwrap();
            } else if c >= 4 && v.parse::<f64>().is_ok() {
                ws.write_number(r, c, v.parse::<f64>().unwrap()).unwrap();
            } else {
                ws.write_string(r, c, *v).unwrap();
            }
        }
    }
    wb.save(path).unwrap();
}

#[test]
fn workbook_cells_that_cannot_be_read_are_rejected_by_sheet_and_cell() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("recon.xlsx");
    let good = |d: &'static str| [d, "00000", "1001", "0042", "100", "90", "10"];
    workbook(
        &f,
        true,
        &[
            good("2024-01-26"),
            ["2024-01-29", "00000", "1001", "0042", "n/a yet", "90", "10"],
            ["2024-01-30", "00000", "", "0042", "100", "90", "10"],
            ["2024-01-31", "00000", "1001", "0042", "=1/0", "90", "10"],
            good("2024-02-01"),
            good("2024-02-02"),
        ],
    );
    let r = run(dir.path(), &f, Some(LAX), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rej = r.rejects();
    let by_cell: Vec<(&str, &str, &str, &str)> = rej
        .iter()
        .map(|r| (r[5].as_str(), r[2].as_str(), r[3].as_str(), r[4].as_str()))
        .collect();
    // In the sheet's order.
    assert_eq!(
        by_cell,
        [
            ("Recon!E4", "GL Balance", "n/a yet", "not a number"),
            (
                "Recon!C5",
                "Account",
                "",
                "a key column is empty; the record cannot be matched to its account"
            ),
            (
                "Recon!E6",
                "GL Balance",
                "#DIV/0!",
                "formula error in the workbook cell"
            ),
        ],
        "{rej:?}"
    );
    // The merged title row above the header is skipped; rows are the sheet's rows.
    assert_eq!(r.column("bd_row"), ["3", "7", "8"]);

    // A header cell merged across two columns leaves one without a name: refused, naming it.
    let f2 = dir.path().join("merged.xlsx");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in ["As of Date", "Company", "Account", "AU"]
        .iter()
        .enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    ws.merge_range(0, 4, 0, 5, "Balances", &Format::new())
        .unwrap();
    ws.write_string(1, 0, "2024-01-31").unwrap();
    wb.save(&f2).unwrap();
    let r = run(dir.path(), &f2, None, &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("header cell E1:F1 is merged across columns"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_workbook_declaring_a_huge_sheet_is_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bomb.xlsx");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "As of Date").unwrap();
    ws.write_string(1_048_575, 16_383, "x").unwrap();
    wb.save(&f).unwrap();
    assert!(std::fs::metadata(&f).unwrap().len() < 20_000);

    let mut c = breakdesk_cmd(dir.path(), &dir.path().join("data"));
    c.args(["run", f.to_str().unwrap(), "--out"])
        .arg(dir.path().join("o.csv"))
        .timeout(Duration::from_secs(20));
    let t = Instant::now();
    let (code, _, stderr) = outcome(c);
    assert_eq!(code, 3, "{stderr}");
    for needle in [
        "bomb.xlsx",
        "sheet \"Sheet1\" declares 1048576 rows × 16384 columns (A1:XFD1048576, 17179869184 cells > 50000000)",
        "[ingest] max_cells",
    ] {
        assert!(stderr.contains(needle), "{needle:?} in {stderr}");
    }
    assert!(t.elapsed() < Duration::from_secs(20));

    // A sheet without a declared size whose cells span the same range (a committed 1.5 KB file):
    // refused while its cells are read, before the range is allocated.
    let mut c = breakdesk_cmd(dir.path(), &dir.path().join("data"));
    c.args([
        "run",
        fixture("bomb_undeclared.xlsx").to_str().unwrap(),
        "--out",
    ])
    .arg(dir.path().join("o.csv"))
    .timeout(Duration::from_secs(20));
    let (code, _, stderr) = outcome(c);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("sheet \"Data\" uses 1048576 rows × 16384 columns (A1:XFD1048576"),
        "{stderr}"
    );

    // A smaller limit refuses an ordinary sheet the same way.
    let small = dir.path().join("small.xlsx");
    workbook(
        &small,
        false,
        &[["2024-01-31", "0", "1", "2", "1", "1", "0"]],
    );
    let r = run(dir.path(), &small, Some("[ingest]\nmax_cells = 10\n"), &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("2 rows × 7 columns"), "{}", r.stderr);
}

#[test]
fn batch_anomaly_refuses_unreadable_records_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "[logging]\nfile = false\n").unwrap();
    let h = service::repo(service::GL_HISTORY).display().to_string();
    let svc = service::start(
        dir.path(),
        &dir.path().join("data"),
        Some(&cfg),
        &["--history", &h],
        &[],
    )
    .unwrap();
    let a = svc.addr.clone();
    let post = |records: serde_json::Value| {
        service::post_json(&a, "/batch_anomaly", &json!({ "records": records }), None)
    };
    let good = service::gl_record("2024-03-12", "999002", 5.0, 5.0);

    // An empty key field.
    let mut no_account = service::gl_record("2024-03-13", "999002", 5.0, 5.0);
    no_account["Account"] = json!("");
    let r = post(json!([good.clone(), no_account]));
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["field"], "records[1].Account");

    // A difference that overflows.
    let mut huge = service::gl_record("2024-03-13", "999002", 5.0, 5.0);
    huge["GL Balance"] = json!(1e308);
    huge["IHub Balance"] = json!(-1e308);
    let r = post(json!([good.clone(), huge]));
    assert_eq!(r.status, 422);
    let body = r.json();
    assert_eq!(body["error"]["field"], "records[1].GL Balance");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("difference is not finite"),
        "{body}"
    );

    // Decimal commas in text are read as such; an ambiguous amount asks for the setting.
    let mut eu = service::gl_record("2024-03-13", "999002", 5.0, 5.0);
    eu["GL Balance"] = json!("1.234,50");
    eu["IHub Balance"] = json!("1.234,50");
    eu["Balance Difference"] = json!("0,00");
    let r = post(json!([good.clone(), eu]));
    assert_eq!(r.status, 200, "{}", r.json());
    let mut amb = service::gl_record("2024-03-14", "999002", 5.0, 5.0);
    amb["GL Balance"] = json!("1,234");
    amb["IHub Balance"] = json!("1,234");
    amb["Balance Difference"] = json!("0");
    let r = post(json!([amb]));
    assert_eq!(r.status, 422);
    let body = r.json();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[ingest] decimal"),
        "{body}"
    );
}
