//! Runs over the memory budget through the real binary: the file is split by account into spill
//! parts, scored part by part and merged. The output (rows, order, scores, categories, case ids
//! and tickets), the cluster summary, the rejects report and the cases' roll-forward are those of
//! a run that reads the whole file with the same model.

use crate::support::common;

use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `breakdesk ARGS` with its store in `dir/<data>`: exit code, stdout, stderr.
fn bd_in(dir: &Path, data: &str, args: &[&str]) -> (i32, String, String) {
    let mut c = common::breakdesk_cmd(dir, &dir.join(data));
    c.env("USER", "ana").args(args);
    common::outcome(c)
}

fn ok_in(dir: &Path, data: &str, args: &[&str]) -> String {
    let (code, out, err) = bd_in(dir, data, args);
    assert_eq!(code, 0, "breakdesk {args:?} failed: {err}");
    err + &out
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The number of parts a run's summary says it split the file into.
fn parts_of(stderr: &str) -> usize {
    let at = stderr
        .find("split by account into ")
        .unwrap_or_else(|| panic!("the run was not split: {stderr}"));
    stderr[at + "split by account into ".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number of parts")
}

/// How many parts kept their written rows in memory for the merge, as the summary says.
fn held_of(stderr: &str) -> usize {
    let at = stderr
        .find(" of them with their written rows kept in memory")
        .unwrap_or_else(|| panic!("no held parts in the summary: {stderr}"));
    stderr[..at]
        .rsplit(['(', ' '])
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number of held parts")
}

/// Asserts the spill folder of the data directory `data` holds nothing.
fn assert_spill_removed(data: &Path) {
    let left: Vec<_> = std::fs::read_dir(data.join("spill"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "the spill files are removed: {left:?}");
}

/// Asserts two outputs (and their cluster summaries) are the same bytes.
fn assert_same_output(a: &Path, b: &Path) {
    let (ta, tb) = (bytes(a), bytes(b));
    assert!(!ta.is_empty());
    if ta != tb {
        let (ha, ra) = common::read_csv(a);
        let (hb, rb) = common::read_csv(b);
        assert_eq!(ha, hb, "same columns");
        assert_eq!(ra.len(), rb.len(), "same number of rows");
        for (k, (x, y)) in ra.iter().zip(&rb).enumerate() {
            for (i, name) in ha.iter().enumerate() {
                assert_eq!(x[i], y[i], "row {} column {name}", k + 1);
            }
        }
        panic!("{} and {} differ in their bytes", a.display(), b.display());
    }
    let clusters = |p: &Path| {
        p.with_file_name(format!(
            "{}.clusters.csv",
            p.file_stem().and_then(|s| s.to_str()).unwrap_or("")
        ))
    };
    assert_eq!(
        bytes(&clusters(a)),
        bytes(&clusters(b)),
        "same cluster summary"
    );
}

/// The large case: 200,000 generated rows, one run that reads the file whole and one split into
/// parts under a 64 MiB budget, with the model the split run trained (on its largest part).
#[test]
fn a_file_over_the_budget_gives_the_output_of_a_whole_run_on_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let file = root.join("big.csv");
    ok_in(
        root,
        "gen",
        &[
            "generate",
            "--rows",
            "200000",
            "--seed",
            "11",
            "--out",
            s(&file),
            "-q",
        ],
    );
    // Parts of 2 MiB at least (the default floor, 16 MiB, would keep this file whole).
    let cfg = root.join("parts.toml");
    std::fs::write(&cfg, "[run]\nmin_part_mb = 2\n").unwrap();
    // Split without a model: trained on the largest part's accounts and saved in the store.
    let split_out = root.join("split.csv");
    let err = ok_in(
        root,
        "split",
        &[
            "--config",
            s(&cfg),
            "run",
            s(&file),
            "--memory-mb",
            "64",
            "--out",
            s(&split_out),
        ],
    );
    let n = parts_of(&err);
    assert!(
        n >= 4,
        "a 64 MiB budget splits 200,000 rows in several parts: {err}"
    );
    // 15 % of the budget holds the written rows of some parts at least.
    let held = held_of(&err);
    assert!((1..=n).contains(&held), "{held} of {n}: {err}");
    assert!(err.contains("200000 rows"), "{err}");
    assert!(
        err.contains("cases: "),
        "the cases are recorded and rolled forward: {err}"
    );
    assert_spill_removed(&root.join("split"));

    let model = root.join("model.json");
    ok_in(
        root,
        "split",
        &[
            "model",
            "export",
            "--profile",
            "gl_ihub",
            "--out",
            s(&model),
        ],
    );
    // `train` under the same budget trains the same model, on the same part, holding one part.
    let trained = root.join("trained.json");
    let err = ok_in(
        root,
        "train",
        &[
            "--config",
            s(&cfg),
            "train",
            s(&file),
            "--memory-mb",
            "64",
            "--export",
            s(&trained),
        ],
    );
    assert!(
        err.contains(&format!("split by account into {n} parts")),
        "{err}"
    );
    let bundle = |p: &Path| {
        let mut v: serde_json::Value = serde_json::from_slice(&bytes(p)).unwrap();
        v.as_object_mut().unwrap().remove("trained_at");
        v
    };
    assert!(
        bundle(&trained) == bundle(&model),
        "train over the budget exports the model the split run trained"
    );
    assert_spill_removed(&root.join("train"));
    // Read whole (no bound), the model differs: it is trained on every account.
    let whole_model = root.join("whole-model.json");
    let err = ok_in(
        root,
        "train-whole",
        &[
            "train",
            s(&file),
            "--memory-mb",
            "0",
            "--export",
            s(&whole_model),
        ],
    );
    assert!(!err.contains("split by account"), "{err}");
    assert!(bundle(&whole_model) != bundle(&model));

    // The same model, the whole file read at once (no bound) and split again, in fresh stores,
    // every part's written rows through a part file this time.
    let written = root.join("written.toml");
    std::fs::write(&written, "[run]\nmin_part_mb = 2\nheld_share = 0\n").unwrap();
    let whole_out = root.join("whole.csv");
    let err = ok_in(
        root,
        "whole",
        &[
            "run",
            s(&file),
            "--model",
            s(&model),
            "--memory-mb",
            "0",
            "--out",
            s(&whole_out),
        ],
    );
    assert!(!err.contains("split by account"), "{err}");
    let again_out = root.join("again.csv");
    let err = ok_in(
        root,
        "again",
        &[
            "--config",
            s(&written),
            "run",
            s(&file),
            "--model",
            s(&model),
            "--memory-mb",
            "64",
            "--out",
            s(&again_out),
        ],
    );
    assert_eq!(parts_of(&err), n);
    assert_eq!(held_of(&err), 0, "{err}");
    assert_same_output(&whole_out, &again_out);
    // The split run that trained the model wrote the same rows, cases and tickets too.
    assert_same_output(&whole_out, &split_out);
    let (h, rows) = common::read_csv(&whole_out);
    assert!(rows.len() > 1000, "the run flags rows: {}", rows.len());
    assert!(
        common::column(&h, &rows, "ticket")
            .iter()
            .all(|t| !t.is_empty()),
        "every written anomaly has its case"
    );
    // The stores hold the same cases.
    let list = |data: &str| ok_in(root, data, &["cases", "list", "--format", "csv"]);
    let (a, b) = (list("whole"), list("again"));
    assert!(a.lines().count() > 1000);
    assert_eq!(a, b, "the same cases in both stores");
}

/// A config that makes every file "too large": 2,000 bytes of memory per byte of CSV.
fn tight_config(root: &Path) -> PathBuf {
    let cfg = root.join("tight.toml");
    std::fs::write(
        &cfg,
        "[run]\nmemory_mb = 64\nbytes_per_byte = 2000.0\nmin_part_mb = 0\n",
    )
    .unwrap();
    cfg
}

/// Runs `file` (with `history`) with `model` into `data`, whole (`--memory-mb 0`) or split
/// (`--config tight`); returns stderr.
fn run_with(
    root: &Path,
    data: &str,
    split: Option<&Path>,
    model: &Path,
    file: &Path,
    history: Option<&Path>,
    out: &Path,
) -> String {
    let mut args: Vec<String> = Vec::new();
    if let Some(cfg) = split {
        args.extend(["--config".into(), s(cfg).into()]);
    }
    args.extend(["run".into(), s(file).into()]);
    if let Some(h) = history {
        args.extend(["--history".into(), s(h).into()]);
    }
    args.extend([
        "--model".into(),
        s(model).into(),
        "--out".into(),
        s(out).into(),
    ]);
    if split.is_none() {
        args.extend(["--memory-mb".into(), "0".into()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = ok_in(root, data, &refs);
    assert_eq!(err.contains("split by account"), split.is_some(), "{err}");
    err
}

/// Two days (the sample pair: the history file, then the current file with that history), the
/// second with a ragged record and a record without its key: rows, rejects (with their rows in
/// the original file) and the cases rolled forward over both days are those of whole runs.
#[test]
fn history_rejects_and_the_roll_forward_are_those_of_whole_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let tight = tight_config(root);
    let day1 = PathBuf::from(common::sample("gl_ihub_history.csv"));
    let day2 = root.join("current.csv");
    let text = std::fs::read_to_string(common::sample("gl_ihub_current.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let fields = lines[0].split(',').count();
    let mut no_key = vec![String::new(); fields];
    no_key[fields - 3] = "12.00".into();
    lines.insert(40, "1,2,3".into());
    lines.insert(90, no_key.join(","));
    std::fs::write(&day2, lines.join("\n") + "\n").unwrap();
    let model = root.join("model.json");
    ok_in(
        root,
        "model",
        &["train", s(&day1), "--export", s(&model), "-q"],
    );

    let mut summaries = Vec::new();
    // What a killed run left in the split store's spill folder is removed by the next run.
    let stale = root.join("split/spill/run-left-by-a-killed-run");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("current-0.csv"), "a,b\n1,2\n").unwrap();
    let kept = root.join("split/spill/not-a-spill-folder");
    std::fs::create_dir_all(&kept).unwrap();
    for (split, data) in [(None, "whole"), (Some(tight.as_path()), "split")] {
        let out1 = root.join(format!("{data}-1.csv"));
        run_with(root, data, split, &model, &day1, None, &out1);
        let out2 = root.join(format!("{data}-2.csv"));
        let err = run_with(root, data, split, &model, &day2, Some(&day1), &out2);
        let mut cases: Vec<String> = err
            .lines()
            .filter(|l| l.starts_with("cases: ") || l.starts_with("cycle "))
            .map(str::to_string)
            .collect();
        assert_eq!(cases.len(), 2, "{err}");
        // Rows read and rejected (the sample holds one bad row of its own).
        let at = err.find(" rejected").expect("a count of rejected rows");
        let rejected = err[..at].rsplit(' ').next().unwrap_or("").to_string();
        assert_eq!(rejected, "3", "{err}");
        cases.push(rejected);
        summaries.push(cases);
    }
    assert_eq!(
        summaries[0], summaries[1],
        "the same cycle and roll-forward"
    );
    assert!(!stale.exists(), "the stale spill folder is removed");
    assert!(kept.exists(), "other folders are left alone");
    assert_same_output(&root.join("whole-1.csv"), &root.join("split-1.csv"));
    assert_same_output(&root.join("whole-2.csv"), &root.join("split-2.csv"));
    // The rejects name the original file and rows (the ragged record is line 41, the keyless
    // one row 91), as a whole run's do.
    let rejects = |data: &str| bytes(&root.join(format!("{data}-2.rejects.csv")));
    let (w, p) = (rejects("whole"), rejects("split"));
    assert_eq!(w, p, "the same rejects report");
    let report = String::from_utf8_lossy(&w);
    assert!(report.contains(s(&day2)), "{report}");
    assert!(
        report.contains(",41,") && report.contains(",91,"),
        "{report}"
    );
    // Two days of cases: the same ids, tickets and statuses in both stores.
    let list = |data: &str| ok_in(root, data, &["cases", "list", "--format", "csv"]);
    let (a, b) = (list("whole"), list("split"));
    assert!(a.lines().count() > 10, "{a}");
    assert_eq!(a, b, "the same cases after two days");
}

/// A messy export (quoted comments that hold line breaks and delimiters, mixed date formats,
/// float noise) split into parts reads as the whole file does.
#[test]
fn a_messy_export_splits_as_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let tight = tight_config(root);
    let file = root.join("messy.csv");
    ok_in(
        root,
        "gen",
        &[
            "generate",
            "--rows",
            "8000",
            "--seed",
            "4",
            "--messy",
            "--out",
            s(&file),
            "-q",
        ],
    );
    // Comments that hold line breaks, delimiters and quotes on some rows with none.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut wrapped = 0;
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i > 0 && i % 97 == 0 && l.ends_with(',') {
                wrapped += 1;
                format!("{l}\"first line\nsecond, with \"\"quotes\"\"\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(wrapped > 10, "{wrapped} comments wrapped");
    std::fs::write(&file, lines.join("\r\n")).unwrap();
    let model = root.join("model.json");
    ok_in(
        root,
        "model",
        &["train", s(&file), "--export", s(&model), "-q"],
    );
    let whole = root.join("whole.csv");
    run_with(root, "whole", None, &model, &file, None, &whole);
    let split = root.join("split.csv");
    run_with(root, "split", Some(&tight), &model, &file, None, &split);
    assert_same_output(&whole, &split);
    // Every row, in file order, too.
    let whole_all = root.join("whole-all.csv");
    let split_all = root.join("split-all.csv");
    let all = |data: &str, cfg: Option<&Path>, out: &Path| {
        let mut args: Vec<&str> = Vec::new();
        if let Some(c) = cfg {
            args.extend(["--config", s(c)]);
        }
        args.extend([
            "run",
            s(&file),
            "--model",
            s(&model),
            "--all-rows",
            "--out",
            s(out),
        ]);
        if cfg.is_none() {
            args.extend(["--memory-mb", "0"]);
        }
        ok_in(root, data, &args)
    };
    all("whole-all", None, &whole_all);
    all("split-all", Some(&tight), &split_all);
    assert_same_output(&whole_all, &split_all);
}

/// Bad budgets are refused naming the flag or the key; a workbook is read whole.
#[test]
fn bad_budgets_are_refused_and_workbooks_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let file = common::sample("gl_ihub_current.csv");
    let (code, _, err) = bd_in(root, "d", &["run", &file, "--memory-mb", "10", "-q"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--memory-mb") && err.contains("10"), "{err}");
    let cfg = root.join("bad.toml");
    std::fs::write(&cfg, "[run]\nbytes_per_byte = 0.5\n").unwrap();
    let (code, _, err) = bd_in(root, "d", &["--config", s(&cfg), "run", &file, "-q"]);
    assert_ne!(code, 0);
    assert!(err.contains("run.bytes_per_byte"), "{err}");
    for share in ["1.5", "-0.1", "nan"] {
        std::fs::write(&cfg, format!("[run]\nheld_share = {share}\n")).unwrap();
        let (code, _, err) = bd_in(root, "d", &["--config", s(&cfg), "run", &file, "-q"]);
        assert_ne!(code, 0, "{share}");
        assert!(
            err.contains("run.held_share") && err.contains("from 0 to 1"),
            "{share}: {err}"
        );
    }
    let tight = tight_config(root);
    let out = root.join("wb.csv");
    let err = ok_in(
        root,
        "d",
        &[
            "--config",
            s(&tight),
            "run",
            &common::sample("gl_ihub_workbook.xlsx"),
            "--out",
            s(&out),
        ],
    );
    assert!(!err.contains("split by account"), "{err}");
    // A file whose parts would be smaller than `[run] min_part_mb` is read whole, over budget.
    let small_parts = root.join("small.toml");
    std::fs::write(
        &small_parts,
        "[run]\nmemory_mb = 64\nbytes_per_byte = 2000.0\n",
    )
    .unwrap();
    let err = ok_in(
        root,
        "d",
        &["--config", s(&small_parts), "run", &file, "--out", s(&out)],
    );
    assert!(!err.contains("split by account"), "{err}");
    assert!(err.contains("1000 rows"), "{err}");
}

/// Recording a run's cases in small groups (as a bounded run's merge does, to hold one group at
/// a time) gives each record the case, ticket and status one batch gives it, and the same run
/// summary: over two days (the sample pair), so breaks open, clear within the file, persist,
/// reappear and clear the next day, with groups of 3 records.
#[test]
fn cases_recorded_in_small_groups_are_those_of_one_batch() {
    use breakdesk::pipeline::{self, AnalyzeOptions, DayFacts, RunOptions};
    let dir = tempfile::tempdir().unwrap();
    let cfg = breakdesk::wiring::check::from_user_toml("", Path::new("groups-test.toml")).unwrap();
    let cfg = breakdesk::wiring::run::settings(&cfg).unwrap();
    let whole = breakdesk::store::Store::open(&dir.path().join("whole")).unwrap();
    let grouped = breakdesk::store::Store::open(&dir.path().join("grouped")).unwrap();
    let days = [
        RunOptions {
            input: common::sample("gl_ihub_history.csv").into(),
            ..Default::default()
        },
        RunOptions {
            input: common::sample("gl_ihub_current.csv").into(),
            history: Some(common::sample("gl_ihub_history.csv").into()),
            ..Default::default()
        },
    ];
    for (day, opts) in days.iter().enumerate() {
        // The whole store analyses the day and records its cases in one batch.
        let a = pipeline::analyze(
            &cfg,
            opts,
            &AnalyzeOptions::default(),
            &whole,
            "",
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .expect("the analysis runs");
        assert!(a.rows.len() > 10, "day {day}: {} anomalies", a.rows.len());
        // The grouped store records the same records, 3 at a time.
        let cycle =
            breakdesk::cycle::cycle_of(&a.run.features.df, &a.run.profile, cfg.cases.absent);
        let (marks, mut summary) = pipeline::record_and_roll_in_chunks(
            &cfg,
            &grouped,
            &a.table,
            &a.rows,
            &a.categorized.cats,
            &a.det.bundle.version(),
            &DayFacts::of(&a.run, &a.det),
            cycle,
            &opts.input.display().to_string(),
            3,
        )
        .expect("recorded in groups");
        assert_eq!(marks.len(), a.cases.len());
        for (k, (m, c)) in marks.iter().zip(&a.cases).enumerate() {
            assert_eq!(
                (&m.id, &m.ticket, m.status),
                (&c.id, &c.ticket, c.status),
                "day {day}, record {k}"
            );
        }
        summary.at = a.summary.at.clone();
        assert_eq!(summary, a.summary, "day {day}: the same run summary");
        if day == 1 {
            assert!(
                summary.cleared > 0 && summary.persisting > 0,
                "the second day clears and keeps cases: {summary:?}"
            );
        }
    }
}

/// An account with two breaks in one file (the first clears within it) and another account
/// between them: recorded one record per group, each break has its own case, tickets follow the
/// records' order and the summary counts the same, as in one batch.
#[test]
fn a_break_cleared_within_the_file_and_back_is_a_new_case_in_groups_as_in_one_batch() {
    use breakdesk::cases::{Cycle, CycleRecord};
    use breakdesk::categorize::{Categorization, Decider, Severity};
    use breakdesk::pipeline::{self, DayFacts};
    use polars::prelude::*;
    let d = |s: &str| -> chrono::NaiveDate { s.parse().unwrap() };
    // Flagged records in rank order: A's first break (1 Jan), B, then A's second (4 Jan).
    let table = df!(
        "bd_key" => ["A|1", "B|1", "A|1"],
        "bd_date" => ["2024-01-01", "2024-01-01", "2024-01-04"],
        "f_break_age" => [0.0, 0.0, 0.0],
        "score" => [0.9, 0.8, 0.7],
        "rank" => [1.0, 2.0, 3.0],
        "bd_difference" => [100.0, 50.0, 120.0],
        "Account" => ["A", "B", "A"],
    )
    .unwrap();
    let cat = Categorization {
        bucket: "Timing Issue".into(),
        confidence: 0.8,
        rule: "timing".into(),
        details: String::new(),
        severity: Severity::Medium,
        severity_reason: String::new(),
        summary: "out".into(),
        auto_resolve: false,
        is_break: true,
        decided_by: Decider::Rules,
        note: String::new(),
        explained: false,
    };
    let cats = vec![cat.clone(), cat.clone(), cat];
    let cycle = || {
        let mut c = Cycle {
            profile: "gl_ihub".into(),
            ..Default::default()
        };
        let rec = |date: &str, out: bool, difference: f64, start: &str| CycleRecord {
            date: d(date),
            out,
            difference,
            start: d(start),
        };
        c.records.insert(
            "A|1".into(),
            vec![
                rec("2024-01-01", true, 100.0, "2024-01-01"),
                rec("2024-01-02", false, 0.0, "2024-01-02"),
                rec("2024-01-03", false, 0.0, "2024-01-03"),
                rec("2024-01-04", true, 120.0, "2024-01-04"),
            ],
        );
        c.records.insert(
            "B|1".into(),
            vec![
                rec("2024-01-01", true, 50.0, "2024-01-01"),
                rec("2024-01-04", true, 50.0, "2024-01-01"),
            ],
        );
        c.dates = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
            .iter()
            .map(|s| d(s))
            .collect();
        c
    };
    let cfg = breakdesk::wiring::check::from_user_toml("", Path::new("groups-test.toml")).unwrap();
    let cfg = breakdesk::wiring::run::settings(&cfg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let day = DayFacts {
        profile: "gl_ihub".into(),
        rows: 3,
        flagged: 3,
        routine: 0,
    };
    let mut got = Vec::new();
    for (name, group) in [("batch", 100), ("groups", 1)] {
        let store = breakdesk::store::Store::open(&dir.path().join(name)).unwrap();
        let (marks, summary) = pipeline::record_and_roll_in_chunks(
            &cfg,
            &store,
            &table,
            &[0, 1, 2],
            &cats,
            "test",
            &day,
            Some(cycle()),
            "f.csv",
            group,
        )
        .unwrap();
        got.push((
            marks,
            summary.new_cases,
            summary.reappeared,
            summary.cleared,
        ));
    }
    let (batch, groups) = (&got[0], &got[1]);
    assert_ne!(
        batch.0[0].id, batch.0[2].id,
        "two breaks of A, two cases: {batch:?}"
    );
    assert_eq!(batch.1, 3, "three new cases: {batch:?}");
    assert_eq!(
        batch, groups,
        "groups of one record give what one batch gives"
    );
}
