//! End-to-end tests of the real `breakdesk` binary: the shipped samples, the generator, and every
//! kind of bad input (exit code and message).

use crate::support::common;

use assert_cmd::Command;
use common::{column, read_csv};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn bin() -> Command {
    let mut c = Command::cargo_bin("breakdesk").expect("binary builds");
    // Keep logs and any user config out of the developer's home.
    let home = tempfile::tempdir().expect("tempdir").keep();
    c.env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .timeout(std::time::Duration::from_secs(120));
    c
}

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/samples")
        .join(name)
}

struct Out {
    code: i32,
    stderr: String,
}

/// Runs the binary. This file tests ingest and features on every row, so `run` gets
/// `--all-rows` (detection output is tested in tests/it/detect.rs).
fn run(args: &[&str]) -> Out {
    let mut args = args.to_vec();
    if args.first() == Some(&"run") && !args.contains(&"--all-rows") {
        args.push("--all-rows");
    }
    let o = bin().args(&args).output().expect("runs");
    Out {
        code: o.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&o.stderr).to_string(),
    }
}

/// `breakdesk run FILE --out OUT EXTRA...`
fn run_on(file: &Path, out: &Path, extra: &[&str]) -> Out {
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    run(&args)
}

#[test]
fn sample_pair_runs_with_history_and_keeps_every_column() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let cur = sample("gl_ihub_current.csv");
    let o = run(&[
        "run",
        cur.to_str().unwrap(),
        "--history",
        sample("gl_ihub_history.csv").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("profile gl_ihub"), "{}", o.stderr);
    let (header, rows) = read_csv(&out);
    let (in_header, in_rows) = read_csv(&cur);
    for h in &in_header {
        assert!(header.contains(h), "input column {h} kept");
    }
    assert_eq!(rows.len(), in_rows.len(), "every current row is written");
    // Zero-padded company codes survive as text.
    assert!(column(&header, &rows, "Company").contains(&"00000"));
    // The first current record of each account changes against the last history record,
    // so days since last is never 0 for the first current day (history precedes it).
    let days = column(&header, &rows, "f_days_since_last");
    assert!(days.iter().all(|d| *d != "0.0"), "history gives context");
    // The history's placeholder-date row is in the rejects report.
    let (_, rejects) = read_csv(&dir.path().join("out.rejects.csv"));
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0][2], "As of Date");
    assert_eq!(rejects[0][3], "1900-01-01");
    // A disagreeing Balance Difference is a finding on the row, not a reject.
    let dq = column(&header, &rows, "bd_dq");
    assert!(
        dq.iter()
            .any(|d| d.contains("disagrees with GL Balance - IHub Balance"))
    );
}

#[test]
fn change_feature_is_computed_against_history() {
    let dir = tempfile::tempdir().unwrap();
    let hist = dir.path().join("h.csv");
    let cur = dir.path().join("c.csv");
    std::fs::write(
        &hist,
        "As of Date,Company,Account,AU,GL Balance,IHub Balance\n4/25/2024,00000,1,2,90,90\n2024-04-26,00000,1,2,95,95\n",
    )
    .unwrap();
    std::fs::write(
        &cur,
        "Asofdate,Company,Account,AU,GL Balance,IHub balance\n04-29-2024,00000,1,2,100,100\n45412,00000,1,2,130,100\n",
    )
    .unwrap();
    let out = dir.path().join("o.csv");
    let o = run(&[
        "run",
        cur.to_str().unwrap(),
        "--history",
        hist.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let (h, rows) = read_csv(&out);
    assert_eq!(
        column(&h, &rows, "f_change_balance_lhs"),
        vec!["5.0", "30.0"]
    );
    assert_eq!(column(&h, &rows, "f_days_since_last"), vec!["3.0", "1.0"]);
    assert_eq!(
        column(&h, &rows, "bd_date"),
        vec!["2024-04-29", "2024-04-30"]
    );
    assert_eq!(
        column(&h, &rows, "f_roll_mean_balance_lhs"),
        vec!["95.0", "108.33333333333333"]
    );
}

#[test]
fn trades_sample_carries_per_system_columns_through() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.jsonl");
    let input = sample("trades.csv");
    let o = run_on(&input, &out, &["--format", "jsonl", "--preset", "breaks"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("profile trades"), "{}", o.stderr);
    let (in_header, in_rows) = read_csv(&input);
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), in_rows.len());
    let sys_cols: Vec<&String> = in_header.iter().filter(|h| h.starts_with("SYS")).collect();
    assert!(sys_cols.len() >= 24, "{sys_cols:?}");
    for (line, row) in lines.iter().zip(&in_rows) {
        for c in &sys_cols {
            let i = in_header.iter().position(|h| h == *c).unwrap();
            let expected = &row[i];
            let got = line[c.as_str()].as_str().unwrap_or("");
            assert_eq!(got, expected, "column {c} untouched");
        }
        assert!(line["f_break_age"].as_f64().unwrap() >= 0.0);
    }
}

#[test]
fn workbook_sample_loads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.csv");
    let o = run(&[
        "run",
        sample("gl_ihub_workbook.xlsx").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let (h, rows) = read_csv(&out);
    assert!(rows.len() > 1000);
    assert!(column(&h, &rows, "Company").contains(&"00000"));
    assert!(
        column(&h, &rows, "bd_date")
            .iter()
            .all(|d| d.starts_with("2024-"))
    );
    let o = run(&[
        "run",
        sample("gl_ihub_workbook.xlsx").to_str().unwrap(),
        "--sheet",
        "Nope",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 3);
    assert!(
        o.stderr.contains("no sheet named \"Nope\"") && o.stderr.contains("Sheet1"),
        "{}",
        o.stderr
    );
}

#[test]
fn generator_is_reproducible_and_labels_point_at_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    let b = dir.path().join("b.csv");
    let labels = dir.path().join("l.csv");
    for (p, l) in [(&a, Some(&labels)), (&b, None)] {
        let mut args = vec![
            "generate",
            "--profile",
            "gl_ihub",
            "--rows",
            "3000",
            "--seed",
            "5",
            "--out",
        ];
        args.push(p.to_str().unwrap());
        if let Some(l) = l {
            args.push("--labels");
            args.push(l.to_str().unwrap());
        }
        let o = run(&args);
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let (h, rows) = read_csv(&a);
    let (_, labels) = read_csv(&labels);
    assert!(!labels.is_empty());
    let gl = column(&h, &rows, "GL Balance");
    let ih = column(&h, &rows, "IHub Balance");
    for l in &labels {
        let i: usize = l[0].parse::<usize>().unwrap() - 2;
        let d: f64 = gl[i].parse::<f64>().unwrap() - ih[i].parse::<f64>().unwrap();
        assert!(
            d.abs() >= 0.01,
            "labelled row {} ({}) has a difference",
            l[0],
            l[1]
        );
    }
    let o = run(&["generate", "--rows", "0", "--out", a.to_str().unwrap()]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("rows"), "{}", o.stderr);
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

const GOOD: &str = "As of Date,Company,Account,AU,GL Balance,IHub Balance,Balance Difference\n2024-04-29,00000,1,2,100,100,0\n2024-04-30,00000,1,2,110,100,10\n";

#[test]
fn bad_inputs_exit_non_zero_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("o.csv");
    let out = out.to_str().unwrap();
    let cases: Vec<(PathBuf, Vec<&str>, i32, Vec<&str>)> = vec![
        (d.join("missing.csv"), vec![], 3, vec!["file not found", "missing.csv"]),
        (write(d, "empty.csv", b""), vec![], 3, vec!["empty.csv is empty"]),
        (
            write(d, "header.csv", b"As of Date,Company,Account,AU,GL Balance,IHub Balance\n"),
            vec![],
            3,
            vec!["header.csv has a header but no data rows", "GL Balance"],
        ),
        (
            write(d, "semi.csv", GOOD.replace(',', ";").as_bytes()),
            vec!["--delimiter", ","],
            3,
            vec!["looks delimited by ';'", "--delimiter"],
        ),
        (
            write(
                d,
                "latin1.csv",
                b"As of Date,Company,Account,AU,GL Balance,IHub Balance,Comments\n2024-04-29,1,2,3,1,1,ok\n2024-04-30,1,2,3,1,1,r\xe9vision\n",
            ),
            vec![],
            3,
            vec!["not valid UTF-8", "0xE9", "line 3", "windows-1252"],
        ),
        (
            write(d, "cols.csv", b"As of Date,Company,Account,GL Balance\n2024-04-29,1,2,5\n"),
            vec![],
            3,
            vec!["cannot tell which profile", "gl_ihub: lacks `AU`", "columns found: As of Date, Company, Account, GL Balance"],
        ),
        (
            write(d, "cols2.csv", b"As of Date,Company,Account,GL Balance\n2024-04-29,1,2,5\n"),
            vec!["--profile", "gl_ihub"],
            3,
            vec!["profile gl_ihub needs column(s) `AU`, `IHub Balance`", "columns found: As of Date, Company, Account, GL Balance"],
        ),
        (
            write(d, "ragged.csv", format!("{GOOD}2024-05-01,00000,1,2,1,1,0,extra,fields\n").as_bytes()),
            vec![],
            4,
            vec!["1 of 3 rows rejected", "ragged.csv"],
        ),
        (
            write(d, "bad.ods2", b"x"),
            vec![],
            3,
            vec!["unsupported file type"],
        ),
        (
            write(d, "values.csv", b"As of Date,Company,Account,AU,GL Balance,IHub Balance\n2024-04-29,1,2,3,abc,1\n2024-04-30,1,2,3,1,1\n"),
            vec![],
            4,
            vec!["1 of 2 rows rejected (50.0%)", "max_reject_share", "values_out.rejects.csv"],
        ),
        (
            write(d, "allbad.csv", b"As of Date,Company,Account,AU,GL Balance,IHub Balance\nnope,1,2,3,1,1\n"),
            vec![],
            4,
            vec!["every row was rejected"],
        ),
        (write(d, "ok.csv", GOOD.as_bytes()), vec!["--profile", "nosuch"], 2, vec!["unknown profile \"nosuch\""]),
        (write(d, "ok2.csv", GOOD.as_bytes()), vec!["--format", "xml"], 2, vec!["unknown output format"]),
    ];
    for (file, extra, code, needles) in cases {
        let mut args = vec!["run", file.to_str().unwrap(), "--out"];
        let own_out;
        if file.file_name().unwrap() == "values.csv" {
            own_out = d.join("values_out.csv").to_str().unwrap().to_string();
            args.push(&own_out);
        } else {
            args.push(out);
        }
        args.extend(extra.iter());
        let o = run(&args);
        assert_eq!(o.code, code, "{}: {}", file.display(), o.stderr);
        assert!(o.stderr.starts_with("error: "), "{}", o.stderr);
        for n in needles {
            assert!(
                o.stderr.contains(n),
                "{}: expected {n:?} in {}",
                file.display(),
                o.stderr
            );
        }
        assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    }
    // The rejects report of the failed run names the row, column, value and reason.
    let report = std::fs::read_to_string(d.join("values_out.rejects.csv")).unwrap();
    assert!(
        report.contains(",2,GL Balance,abc,not a number"),
        "{report}"
    );
}

#[test]
fn recoverable_inputs_load_with_the_right_option() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("o.csv");
    // A semicolon file loads with the default `auto` delimiter.
    let semi = write(d, "semi.csv", GOOD.replace(',', ";").as_bytes());
    let o = run_on(&semi, &out, &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // A Windows-1252 file loads when told so, and the accent is decoded.
    let latin = write(
        d,
        "latin1.csv",
        b"As of Date,Company,Account,AU,GL Balance,IHub Balance,Comments\n2024-04-29,1,2,3,1,1,r\xe9vision \x80\n2024-04-30,1,2,3,1,1,\n",
    );
    let o = run_on(&latin, &out, &["--encoding", "windows-1252"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let (h, rows) = read_csv(&out);
    assert_eq!(column(&h, &rows, "bd_comment"), vec!["révision €", ""]);
    // A few bad rows under the threshold: the run goes on and reports them.
    let mut text = String::from(GOOD);
    for i in 0..40 {
        text.push_str(&format!("2024-05-{:02},00000,1,2,{i},{i},0\n", i % 28 + 1));
    }
    text.push_str("2024-06-01,00000,1,2,12x,1,0\n");
    let some = write(d, "some.csv", text.as_bytes());
    let o = run_on(&some, &out, &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("1 rejected"), "{}", o.stderr);
    let (_, rej) = read_csv(&d.join("o.rejects.csv"));
    assert_eq!(rej[0][1..5], ["44", "GL Balance", "12x", "not a number"]);
}

#[test]
fn generic_profile_scores_listed_columns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = write(d, "g.csv", b"id,x,y,label\na,1,2,n\nb,3,4,y\n");
    let out = d.join("o.csv");
    let o = run_on(&f, &out, &["--profile", "generic", "--columns", "x,y"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let (h, rows) = read_csv(&out);
    assert_eq!(column(&h, &rows, "f_num_x"), vec!["1.0", "3.0"]);
    assert_eq!(column(&h, &rows, "label"), vec!["n", "y"]);
    let o = run_on(&f, &out, &["--profile", "generic", "--columns", "x,zz"]);
    assert_eq!(o.code, 3);
    assert!(o.stderr.contains("`zz`"), "{}", o.stderr);
}

#[test]
fn config_errors_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = write(d, "ok.csv", GOOD.as_bytes());
    let out = d.join("o.csv");
    for (text, needle) in [
        (
            "[ingest]\nmax_reject_share = \"lots\"\n",
            "`ingest.max_reject_share`",
        ),
        (
            "[ingest]\nnot_a_key = 1\n",
            "unknown key `ingest.not_a_key`",
        ),
    ] {
        let cfg = write(d, "user.toml", text.as_bytes());
        let o = run(&[
            "--config",
            cfg.to_str().unwrap(),
            "run",
            f.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.code, 2, "{}", o.stderr);
        assert!(o.stderr.contains(needle), "{}", o.stderr);
        assert!(o.stderr.contains("user.toml"), "{}", o.stderr);
    }
    // A valid user file changes behaviour: a stricter reject threshold fails the run.
    let cfg = write(d, "strict.toml", b"[ingest]\nmax_reject_share = 0.0\n");
    let bad = write(
        d,
        "onebad.csv",
        format!("{GOOD}2024-05-01,00000,1,2,x,1,0\n").as_bytes(),
    );
    let o = run(&[
        "--config",
        cfg.to_str().unwrap(),
        "run",
        bad.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 4, "{}", o.stderr);
}

#[test]
fn profiles_command_prints_loadable_toml() {
    let o = bin().args(["profiles", "gl_ihub"]).output().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    let p = breakdesk::profile::Profile::from_toml(&text, "printed").unwrap();
    assert_eq!(p, breakdesk::profile::Profile::builtin("gl_ihub").unwrap());
    let listed = bin().arg("profiles").output().unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    let names: HashMap<&str, &str> = listed.lines().filter_map(|l| l.split_once(' ')).collect();
    assert!(
        names.contains_key("gl_ihub")
            && names.contains_key("trades")
            && names.contains_key("generic")
    );
}

#[test]
fn json_logs_go_to_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = write(d, "ok.csv", GOOD.as_bytes());
    let data = d.join("data");
    let o = run(&[
        "run",
        f.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--quiet",
        "--out",
        d.join("o.csv").to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.is_empty(), "--quiet prints nothing: {}", o.stderr);
    let logs: Vec<PathBuf> = std::fs::read_dir(data.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let text = std::fs::read_to_string(&logs[0]).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each log line is JSON"))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["message"] == "read" && e["fields"]["profile"] == "gl_ihub"),
        "{text}"
    );
}

#[test]
fn a_profile_with_nothing_to_score_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let profile = write(d, "bare.toml", b"name = \"bare\"\nkeys = [\"Id\"]\n");
    let f = write(d, "f.csv", b"Id,Note\n1,a\n2,b\n");
    let out = d.join("o.csv");
    let o = run_on(&f, &out, &["--profile", profile.to_str().unwrap()]);
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(o.stderr.contains("nothing to score"), "{}", o.stderr);
}
