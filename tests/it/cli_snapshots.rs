//! The command line's output under insta snapshots (tests/it/snapshots/it__cli_snapshots__*):
//! every command's help, and what a run of the shipped sample prints, lists and exports. What
//! changes from run to run (today's date in tickets and due dates, timestamps, elapsed seconds,
//! temporary paths) is masked; the rest must not change unnoticed.

use crate::support::common::{bd, sample};
use std::path::Path;

/// Every command and subcommand (`help` aside).
const COMMANDS: [&str; 36] = [
    "",
    "open",
    "serve",
    "run",
    "merge",
    "train",
    "retrain",
    "feedback",
    "feedback import",
    "evaluate",
    "model",
    "model list",
    "model export",
    "generate",
    "profiles",
    "config",
    "cases",
    "cases list",
    "cases show",
    "cases decide",
    "cases assign",
    "cases take",
    "cases release",
    "cases note",
    "cases flag",
    "audit",
    "export",
    "dispatch",
    "outbox",
    "outbox list",
    "outbox flush",
    "outbox retry",
    "outbox cancel",
    "rules",
    "doctor",
    "completions",
];

/// The masks: the run's date in tickets, dates after the sample's (due dates, decisions),
/// timestamps, elapsed seconds and the test's temporary directory.
fn masked(text: &str, dir: &Path) -> String {
    let text = text.replace(&dir.display().to_string(), "[DIR]");
    let masks = [
        (r"BRK-\d{8}-", "BRK-[DATE]-"),
        (
            r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2}| UTC)?",
            "[TIMESTAMP]",
        ),
        (r"20(2[5-9]|[3-9]\d)-\d{2}-\d{2}", "[DATE]"),
        (r"in \d+\.\d+ s", "in [SECS] s"),
    ];
    masks.iter().fold(text, |t, (pattern, with)| {
        regex::Regex::new(pattern)
            .expect("a valid pattern")
            .replace_all(&t, *with)
            .into_owned()
    })
}

macro_rules! assert_masked {
    ($name:expr, $text:expr, $dir:expr) => {
        insta::assert_snapshot!($name, masked(&$text, $dir));
    };
}

#[test]
fn every_commands_help() {
    let dir = tempfile::tempdir().unwrap();
    for command in COMMANDS {
        let mut args: Vec<&str> = command.split_whitespace().collect();
        args.push("--help");
        let (code, out, err) = bd(dir.path(), &args);
        assert_eq!(code, 0, "breakdesk {command} --help: {err}");
        let name = if command.is_empty() {
            "help".to_string()
        } else {
            format!("help_{}", command.replace(' ', "_"))
        };
        assert_masked!(name, out, dir.path());
    }
}

#[test]
fn a_run_of_the_sample_prints_lists_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let (code, stdout, err) = bd(
        dir.path(),
        &[
            "run",
            &sample("gl_ihub_current.csv"),
            "--history",
            &sample("gl_ihub_history.csv"),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout, "", "run writes to its --out file, not to stdout");
    assert_masked!("run_summary", err, dir.path());

    let (code, list, err) = bd(dir.path(), &["cases", "list"]);
    assert_eq!(code, 0, "{err}");
    assert_masked!("cases_list", list, dir.path());

    // The first case waiting for review, shown, accepted, and in the audit trail and the export.
    let ticket = list
        .lines()
        .find(|l| l.contains(" PendingReview "))
        .and_then(|l| l.split_whitespace().next())
        .expect("a case")
        .to_string();
    let (code, shown, err) = bd(dir.path(), &["cases", "show", &ticket]);
    assert_eq!(code, 0, "{err}");
    assert_masked!("cases_show", shown, dir.path());
    let (code, decided, err) = bd(
        dir.path(),
        &["cases", "decide", &ticket, "accept", "--role", "analyst"],
    );
    assert_eq!(code, 0, "{err}");
    assert_masked!("cases_decide", format!("{decided}{err}"), dir.path());
    let (code, audit, err) = bd(dir.path(), &["audit", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    assert_masked!("audit_csv", audit, dir.path());
    let exported = dir.path().join("accepted.csv");
    let (code, _, err) = bd(
        dir.path(),
        &[
            "export",
            "--status",
            "accepted",
            "--out",
            exported.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let export = std::fs::read_to_string(&exported).unwrap();
    assert_masked!("export_accepted", export, dir.path());
}

#[test]
fn errors_name_what_was_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.csv");
    for (name, args, expected) in [
        (
            "error_missing_file",
            vec!["run", missing.to_str().unwrap()],
            3,
        ),
        (
            "error_bad_format",
            vec!["cases", "list", "--format", "xml"],
            2,
        ),
        (
            "error_unknown_case",
            vec!["cases", "show", "BRK-00000000-000001"],
            3,
        ),
    ] {
        let (code, out, err) = bd(dir.path(), &args);
        assert_eq!(code, expected, "{name}: {err}");
        assert_masked!(name, format!("{out}{err}"), dir.path());
    }
}
