//! Partitioned runs through the real binary: `run --model M --partition I/N` on each partition
//! (as separate, concurrent processes, each with its own data directory), then `merge`, give
//! the output of one run on the whole file with the same model; bad partitions, models and
//! parts are refused with a clear error.

use crate::support::common;

use breakdesk::partition::partition_of;
use common::{bd, column, read_csv};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A generated file, a model trained on it, and its four parts.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    file: String,
    model: String,
    parts: Vec<PathBuf>,
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `breakdesk ARGS` started (not waited for), with a private home and its own data directory.
fn spawn(root: &Path, data: &str, args: &[&str]) -> std::process::Child {
    let home = root.join("home");
    std::process::Command::new(env!("CARGO_BIN_EXE_breakdesk"))
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("USER", "ana")
        .arg("--data-dir")
        .arg(root.join(data))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts")
}

/// Runs partitions `0..n` of `file` concurrently, one process each; returns the parts.
fn partitions(root: &Path, file: &str, model: &str, n: usize, extra: &[&str]) -> Vec<PathBuf> {
    let ext = if extra.contains(&"jsonl") {
        "jsonl"
    } else {
        "csv"
    };
    let parts: Vec<PathBuf> = (0..n)
        .map(|i| root.join(format!("part-{i}-of-{n}.{ext}")))
        .collect();
    let children: Vec<std::process::Child> = (0..n)
        .map(|i| {
            let p = format!("{i}/{n}");
            let mut args = vec![
                "run",
                file,
                "--model",
                model,
                "--partition",
                &p,
                "--out",
                s(&parts[i]),
                "-q",
            ];
            args.extend_from_slice(extra);
            spawn(root, &format!("worker{i}"), &args)
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().expect("waits");
        assert!(
            o.status.success(),
            "partition {i}/{n} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    parts
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let file = root.join("f.csv");
        let model = root.join("model.json");
        common::ok(
            &root,
            &[
                "generate",
                "--profile",
                "gl_ihub",
                "--rows",
                "20000",
                "--seed",
                "3",
                "--out",
                s(&file),
            ],
        );
        common::ok(&root, &["train", s(&file), "--export", s(&model), "-q"]);
        let parts = partitions(&root, s(&file), s(&model), 4, &[]);
        Fixture {
            _dir: dir,
            file: s(&file).to_string(),
            model: s(&model).to_string(),
            root,
            parts,
        }
    })
}

/// `breakdesk ARGS` with its store in `dir/<data>`.
fn bd_in(dir: &Path, data: &str, args: &[&str]) -> (i32, String, String) {
    let mut c = common::breakdesk_cmd(dir, &dir.join(data));
    c.env("USER", "ana").args(args);
    common::outcome(c)
}

const CASE_COLUMNS: [&str; 3] = ["case_id", "ticket", "case_status"];

/// Asserts two tables hold the same rows in the same order, column for column, except `skip`.
fn assert_same_rows(
    (ha, ra): &(Vec<String>, Vec<Vec<String>>),
    (hb, rb): &(Vec<String>, Vec<Vec<String>>),
    skip: &[&str],
) {
    assert_eq!(ha, hb, "same columns in the same order");
    assert_eq!(ra.len(), rb.len(), "same number of rows");
    for (k, (a, b)) in ra.iter().zip(rb).enumerate() {
        for (i, name) in ha.iter().enumerate() {
            if skip.contains(&name.as_str()) {
                continue;
            }
            assert_eq!(a[i], b[i], "row {} column {name}", k + 1);
        }
    }
}

#[test]
fn four_partitions_merged_equal_one_run_on_the_same_model() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Each part holds only its own accounts, by the documented hash.
    let mut part_rows = 0;
    for (i, p) in f.parts.iter().enumerate() {
        let (h, rows) = read_csv(p);
        for key in column(&h, &rows, "bd_key") {
            assert_eq!(partition_of(key, 4), i, "{key} in part {i}");
        }
        // A worker leaves the root-cause columns to the merge.
        for c in ["bucket", "severity", "summary"] {
            assert!(
                column(&h, &rows, c).iter().all(|v| v.is_empty()),
                "{c} in part {i}"
            );
        }
        part_rows += rows.len();
        assert!(
            breakdesk::parts::meta_path(p).is_file() && breakdesk::parts::rows_path(p).is_file()
        );
    }

    let single = d.join("single.csv");
    let (code, _, err) = bd_in(
        d,
        "single",
        &[
            "run",
            &f.file,
            "--model",
            &f.model,
            "--out",
            s(&single),
            "-q",
        ],
    );
    assert_eq!(code, 0, "{err}");

    // A glob over the parts' directory also names their cluster summaries: they are skipped.
    let merged = d.join("merged.csv");
    let mut args = vec!["merge".to_string()];
    for p in &f.parts {
        args.push(s(p).to_string());
        args.push(s(&breakdesk::output::sibling_path(p, "clusters", "csv")).to_string());
    }
    args.extend(["--out".into(), s(&merged).to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = bd_in(d, "merge", &args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("merged 4 parts"), "{err}");

    let a = read_csv(&single);
    let b = read_csv(&merged);
    assert!(a.1.len() > 500, "the file has anomalies: {}", a.1.len());
    assert_eq!(
        part_rows,
        a.1.len(),
        "the parts hold the anomalies between them"
    );
    assert_same_rows(&a, &b, &CASE_COLUMNS);
    // The merge categorized every written row.
    assert!(column(&b.0, &b.1, "bucket").iter().all(|v| !v.is_empty()));
    // Ranks run 1.. across the parts (not each part's own), as in the single run.
    let ranks: Vec<u32> = column(&b.0, &b.1, "rank")
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]) && ranks[0] == 1);
    // The partitions recorded no cases.
    assert!(column(&b.0, &b.1, "case_id").iter().all(|c| c.is_empty()));
    // The cluster summary is rebuilt from every row of every part.
    assert_eq!(
        std::fs::read_to_string(d.join("single.clusters.csv")).unwrap(),
        std::fs::read_to_string(d.join("merged.clusters.csv")).unwrap()
    );

    // Merge as the single writer: the same cases as the single run opened.
    let recorded = d.join("recorded.csv");
    let (code, _, err) = bd_in(
        d,
        "merge-store",
        &[&args[..args.len() - 1], &[s(&recorded), "--record"]].concat(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("recorded"), "{err}");
    let c = read_csv(&recorded);
    assert_same_rows(&a, &c, &["ticket"]);
    assert!(
        column(&c.0, &c.1, "ticket")
            .iter()
            .all(|t| t.starts_with("BRK-"))
    );
    let (code, out, err) = bd_in(d, "merge-store", &["cases", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() > 100, "{out}");
}

#[test]
fn jsonl_parts_of_every_row_merge_back_in_file_order() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let extra = ["--all-rows", "--format", "jsonl"];
    let parts = partitions(d, &f.file, &f.model, 2, &extra);
    // A JSON Lines part is read as it is: no table file beside it.
    assert!(
        parts
            .iter()
            .all(|p| !breakdesk::parts::table_path(p).exists())
    );
    let single = d.join("single.jsonl");
    let (code, _, err) = bd_in(
        d,
        "single",
        &[
            &["run", f.file.as_str(), "--model", f.model.as_str()][..],
            &extra,
            &["--out", s(&single), "-q"],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    let merged = d.join("merged.jsonl");
    let (code, _, err) = bd_in(
        d,
        "merge",
        &["merge", s(&parts[0]), s(&parts[1]), "--out", s(&merged)],
    );
    assert_eq!(code, 0, "{err}");
    let read = |p: &Path| -> Vec<serde_json::Map<String, serde_json::Value>> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (a, b) = (read(&single), read(&merged));
    assert_eq!(a.len(), 20_000);
    assert_eq!(a.len(), b.len());
    let mut last = 0;
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            x.keys().collect::<Vec<_>>(),
            y.keys().collect::<Vec<_>>(),
            "same columns"
        );
        for (k, v) in x {
            if !CASE_COLUMNS.contains(&k.as_str()) {
                assert_eq!(v, &y[k], "bd_row {} column {k}", x["bd_row"]);
            }
        }
        let row = y["bd_row"].as_u64().unwrap();
        assert!(row > last, "file order");
        last = row;
    }
    assert_eq!(
        std::fs::read_to_string(d.join("single.clusters.csv")).unwrap(),
        std::fs::read_to_string(d.join("merged.clusters.csv")).unwrap()
    );
}

#[test]
fn bad_partition_values_are_refused_naming_the_flag_and_the_value() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.csv");
    for (bad, why) in [
        ("4/4", "numbered from 0"),
        ("x/4", "is not I/N"),
        ("1/0", "between 1 and"),
        ("3", "is not I/N"),
    ] {
        let (code, _, err) = bd(
            dir.path(),
            &[
                "run",
                &f.file,
                "--model",
                &f.model,
                "--partition",
                bad,
                "--out",
                s(&out),
            ],
        );
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(
            err.contains("--partition") && err.contains(bad) && err.contains(why),
            "{bad}: {err}"
        );
        assert!(!out.exists());
    }
    // A partition needs a model file, and a file to write its sidecars beside.
    let (code, _, err) = bd(
        dir.path(),
        &["run", &f.file, "--partition", "0/2", "--out", s(&out)],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--model"), "{err}");
    let (code, _, err) = bd(
        dir.path(),
        &[
            "run",
            &f.file,
            "--model",
            &f.model,
            "--partition",
            "0/2",
            "--out",
            "-",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--out FILE"), "{err}");
}

#[test]
fn a_model_for_another_profile_or_no_model_is_refused_naming_the_file() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.csv");
    let trades = common::sample("trades.csv");
    let (code, _, err) = bd(
        dir.path(),
        &[
            "run",
            &trades,
            "--model",
            &f.model,
            "--partition",
            "1/2",
            "--out",
            s(&out),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&f.model) && err.contains("profile gl_ihub") && err.contains("trades"),
        "{err}"
    );
    // Another feature preset than the model's.
    let (code, _, err) = bd(
        dir.path(),
        &[
            "run",
            &f.file,
            "--model",
            &f.model,
            "--preset",
            "seed",
            "--out",
            s(&out),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&f.model) && err.contains("preset"), "{err}");
    // A file that is not a model bundle, and one that does not exist.
    let not_model = dir.path().join("not-a-model.json");
    std::fs::write(&not_model, "{\"rows\": 3}").unwrap();
    for m in [s(&not_model), "missing-model.json"] {
        let (code, _, err) = bd(
            dir.path(),
            &["run", &f.file, "--model", m, "--out", s(&out)],
        );
        assert_eq!(code, 3, "{err}");
        assert!(err.contains(m) && err.contains("model file"), "{err}");
    }
    assert!(!out.exists());
}

/// Copies a part and its sidecars to `to` (a part path); returns it.
/// A merge whose output cannot be written (a full disk) stops with an error naming the output,
/// while another thread is still putting the rows together: nothing hangs or panics.
#[cfg(target_os = "linux")]
#[test]
fn a_merge_onto_a_full_disk_fails_naming_the_output() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["merge"];
    args.extend(f.parts.iter().map(|p| s(p)));
    args.extend(["--out", "/dev/full"]);
    let (code, _, err) = bd(dir.path(), &args);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("/dev/full") && err.contains("No space left"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn copy_part(from: &Path, to: &Path) -> PathBuf {
    std::fs::copy(from, to).unwrap();
    std::fs::copy(
        breakdesk::parts::meta_path(from),
        breakdesk::parts::meta_path(to),
    )
    .unwrap();
    std::fs::copy(
        breakdesk::parts::rows_path(from),
        breakdesk::parts::rows_path(to),
    )
    .unwrap();
    to.to_path_buf()
}

/// A part's sidecars do not outlive it: a JSON Lines part written where a CSV part was leaves
/// no table file, and a run that is not a partition's leaves none of them.
#[test]
fn a_part_rewritten_or_replaced_by_a_run_leaves_no_stale_sidecars() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = copy_part(&f.parts[0], &d.join("p.csv"));
    std::fs::copy(
        breakdesk::parts::table_path(&f.parts[0]),
        breakdesk::parts::table_path(&out),
    )
    .unwrap();
    let sidecars = [
        breakdesk::parts::meta_path(&out),
        breakdesk::parts::rows_path(&out),
        breakdesk::parts::table_path(&out),
    ];
    let base = [
        "run",
        f.file.as_str(),
        "--model",
        f.model.as_str(),
        "--out",
        s(&out),
        "-q",
    ];
    let (code, _, err) = bd_in(
        d,
        "jsonl",
        &[&base[..], &["--partition", "0/4", "--format", "jsonl"]].concat(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(sidecars[0].is_file() && sidecars[1].is_file());
    assert!(!sidecars[2].exists(), "a JSON Lines part has no table file");
    std::fs::copy(breakdesk::parts::table_path(&f.parts[0]), &sidecars[2]).unwrap();
    let (code, _, err) = bd_in(d, "plain", &base);
    assert_eq!(code, 0, "{err}");
    for p in &sidecars {
        assert!(!p.exists(), "{} is left", p.display());
    }
}

/// A CSV part's table file lets the merge skip parsing the CSV: merging with the table files,
/// without them, or with one damaged or written for another CSV gives the same bytes.
#[test]
fn merging_from_the_parts_tables_equals_merging_their_csv() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for p in &f.parts {
        assert!(breakdesk::parts::table_path(p).is_file(), "{}", p.display());
    }
    let merge_into = |name: &str, parts: &[PathBuf]| -> Vec<u8> {
        let out = d.join(format!("{name}.csv"));
        let mut args = vec!["merge".to_string()];
        args.extend(parts.iter().map(|p| s(p).to_string()));
        args.extend(["--out".into(), s(&out).to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = bd_in(d, name, &args);
        assert_eq!(code, 0, "{name}: {err}");
        std::fs::read(&out).unwrap()
    };
    let with_tables = merge_into("tables", &f.parts);
    assert!(with_tables.len() > 10_000);

    // Copies of the parts: without table files, then with them, one damaged and one written
    // for another part's CSV.
    let copies: Vec<PathBuf> = f
        .parts
        .iter()
        .enumerate()
        .map(|(i, p)| copy_part(p, &d.join(format!("c{i}.csv"))))
        .collect();
    assert_eq!(merge_into("csv", &copies), with_tables);
    for (p, c) in f.parts.iter().zip(&copies) {
        std::fs::copy(
            breakdesk::parts::table_path(p),
            breakdesk::parts::table_path(c),
        )
        .unwrap();
    }
    let damaged = breakdesk::parts::table_path(&copies[1]);
    let bytes = std::fs::read(&damaged).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::copy(
        breakdesk::parts::table_path(&f.parts[3]),
        breakdesk::parts::table_path(&copies[2]),
    )
    .unwrap();
    assert_eq!(merge_into("mixed", &copies), with_tables);
}

fn merge_fails(d: &Path, parts: &[&Path]) -> String {
    let out = d.join("merged.csv");
    let mut args = vec!["merge"];
    args.extend(parts.iter().map(|p| s(p)));
    args.extend(["--out", s(&out)]);
    let (code, _, err) = bd(d, &args);
    assert_eq!(code, 3, "{err}");
    assert!(!out.exists(), "nothing written");
    err
}

#[test]
fn merge_refuses_mismatched_headers_overlapping_and_missing_parts() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p: Vec<&Path> = f.parts.iter().map(PathBuf::as_path).collect();

    // A part whose header is not the others'.
    let odd = copy_part(p[1], &d.join("odd.csv"));
    let text = std::fs::read_to_string(&odd).unwrap();
    std::fs::write(&odd, text.replacen("bd_key", "account_key", 1)).unwrap();
    let err = merge_fails(d, &[p[0], &odd, p[2], p[3]]);
    assert!(
        err.contains("odd.csv") && err.contains("header") && err.contains("account_key"),
        "{err}"
    );

    // Two such parts (the merge stages parts side by side): the error is the first one's.
    let odd3 = copy_part(p[3], &d.join("odd3.csv"));
    let text = std::fs::read_to_string(&odd3).unwrap();
    std::fs::write(&odd3, text.replacen("bd_key", "other_key", 1)).unwrap();
    let err = merge_fails(d, &[p[0], &odd, p[2], &odd3]);
    assert!(
        err.contains("odd.csv") && err.contains("account_key") && !err.contains("odd3.csv"),
        "{err}"
    );

    // A part with a value that is not of its column's type: the row and column are named.
    let bad = copy_part(p[2], &d.join("bad.csv"));
    let (h, rows) = read_csv(&bad);
    let at = h.iter().position(|c| c == "bd_difference").unwrap();
    let text = std::fs::read_to_string(&bad).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut cells = rows[1].clone();
    cells[at] = "twelve".into();
    assert!(
        !rows[1].iter().any(|c| c.contains('\n')),
        "a one-line record"
    );
    lines[2] = cells
        .iter()
        .map(|c| {
            if c.contains([',', '"']) || c.is_empty() {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let err = merge_fails(d, &[p[0], p[1], &bad, p[3]]);
    assert!(
        err.contains("bad.csv")
            && err.contains("row 3")
            && err.contains("bd_difference")
            && err.contains("\"twelve\" is not a f64"),
        "{err}"
    );

    // A meta file claiming more rejected rows than any count holds: refused as too many
    // rejects, not added up past the largest number.
    let huge = |from: &Path, name: &str| {
        let part = copy_part(from, &d.join(name));
        let meta = breakdesk::parts::meta_path(&part);
        let mut m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
        m["rejects"]["own"]["rows"] = serde_json::json!(u64::MAX);
        std::fs::write(&meta, m.to_string()).unwrap();
        part
    };
    let (h1, h2) = (huge(p[1], "huge1.csv"), huge(p[2], "huge2.csv"));
    let out = d.join("huge-merged.csv");
    let (code, _, err) = bd(
        d,
        &["merge", s(p[0]), s(&h1), s(&h2), s(p[3]), "--out", s(&out)],
    );
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("rejected") && !err.contains("panicked"),
        "{err}"
    );

    // The same part twice.
    let err = merge_fails(d, &[p[0], p[1], p[1], p[2], p[3]]);
    assert!(
        err.contains("overlap") && err.contains("partition 1/4"),
        "{err}"
    );

    // Parts that claim different partitions but hold the same rows.
    let dup = copy_part(p[0], &d.join("dup.csv"));
    let meta = breakdesk::parts::meta_path(&dup);
    let text = std::fs::read_to_string(&meta).unwrap();
    let text = text.replacen("\"index\": 0", "\"index\": 1", 1);
    std::fs::write(&meta, text).unwrap();
    let err = merge_fails(d, &[p[0], &dup, p[2], p[3]]);
    assert!(
        err.contains("dup.csv") && err.contains("both hold row") && err.contains("overlap"),
        "{err}"
    );

    // A missing partition.
    let err = merge_fails(d, &[p[0], p[1], p[3]]);
    assert!(err.contains("missing partition 2/4"), "{err}");

    // A file without its sidecars (e.g. a single run's output).
    let lone = d.join("lone.csv");
    std::fs::copy(p[0], &lone).unwrap();
    let err = merge_fails(d, &[&lone]);
    assert!(err.contains("lone.meta.json"), "{err}");

    // Parts of another split of the same file.
    let two = partitions(d, &f.file, &f.model, 2, &[]);
    let err = merge_fails(d, &[p[0], p[1], &two[0]]);
    assert!(
        err.contains("of 4 partitions") || err.contains("partition 0/2"),
        "{err}"
    );
    assert!(f.root.is_dir());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn merge_applies_the_analysts_verdicts_from_its_store_as_a_run_does() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = d.join("first.csv");
    let args = |out: &Path| {
        vec![
            "run".to_string(),
            f.file.clone(),
            "--model".into(),
            f.model.clone(),
            "--out".into(),
            s(out).into(),
            "-q".into(),
        ]
    };
    let run = |data: &str, out: &Path| {
        let a = args(out);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (code, _, err) = bd_in(d, data, &a);
        assert_eq!(code, 0, "{err}");
        read_csv(out)
    };
    // Analysts reject some of the cases as normal for their account.
    let (h, rows) = run("store", &first);
    let status = column(&h, &rows, "case_status");
    let pending: Vec<&str> = column(&h, &rows, "case_id")
        .into_iter()
        .zip(status)
        .filter(|(_, s)| *s == "PendingReview")
        .map(|(id, _)| id)
        .collect();
    for id in pending.iter().step_by(7).take(12) {
        let (code, _, err) = bd_in(
            d,
            "store",
            &["cases", "decide", id, "reject", "--reason", "normal here"],
        );
        assert_eq!(code, 0, "{err}");
    }
    // The merge reads the same verdicts from (a copy of) the store.
    copy_dir(&d.join("store"), &d.join("copy"));
    let again = run("store", &d.join("again.csv"));
    assert!(again.1.len() < rows.len(), "some breaks are judged normal");
    let merged = d.join("merged.csv");
    let mut margs = vec!["merge"];
    margs.extend(f.parts.iter().map(|p| s(p)));
    margs.extend(["--out", s(&merged)]);
    let (code, _, err) = bd_in(d, "copy", &margs);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("judged normal by an analyst quieted"), "{err}");
    assert_same_rows(&again, &read_csv(&merged), &CASE_COLUMNS);
    assert_eq!(
        std::fs::read_to_string(d.join("again.clusters.csv")).unwrap(),
        std::fs::read_to_string(d.join("merged.clusters.csv")).unwrap()
    );
}

#[test]
fn records_are_cut_in_groups_of_about_equal_size_each_break_in_its_first_records_group() {
    use breakdesk::pipeline::break_groups;
    // Records 0..n of breaks numbered by `brk`: a break's records go together, groups keep the
    // records' order, and the groups are about equal (no small group left at the end).
    let check = |brks: &[u32], chunk: usize| {
        let groups = break_groups(brks.iter().copied(), chunk);
        let mut seen: Vec<usize> = groups.iter().flatten().copied().collect();
        assert!(groups.iter().all(|g| g.windows(2).all(|w| w[0] < w[1])));
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..brks.len()).collect::<Vec<_>>(),
            "every record once"
        );
        let group_of = |k: usize| groups.iter().position(|g| g.contains(&k)).unwrap();
        for (k, b) in brks.iter().enumerate() {
            let first = brks.iter().position(|x| x == b).unwrap();
            assert_eq!(
                group_of(k),
                group_of(first),
                "record {k} with its break's first"
            );
        }
        groups
    };
    // One record a break: 250 records in groups of at most 100 are three groups of 83-84.
    let one_each: Vec<u32> = (0..250).collect();
    let sizes: Vec<usize> = check(&one_each, 100).iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![84, 84, 82]);
    // Exactly twice the size: two full groups; fewer records than the size: one group.
    assert_eq!(check(&one_each[..200], 100).len(), 2);
    assert_eq!(check(&one_each[..99], 100).len(), 1);
    // Breaks of several records spread through the file: the 300 breaks begin in the first
    // 300 records, which groups of 125 (1,000 records in 8 groups at most) cut in three.
    let spread: Vec<u32> = (0..1_000u32).map(|k| (k * 7919) % 300).collect();
    let groups = check(&spread, 128);
    assert_eq!(groups.len(), 3);
    assert!(check(&[], 10).is_empty());
}

#[test]
fn merged_cases_recorded_a_few_at_a_time_are_those_recorded_in_one_group() {
    use breakdesk::cases::{CaseFilter, Cases};
    use breakdesk::parts::{MergeOptions, merge};
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = breakdesk::wiring::check::from_user_toml("", Path::new("merge-groups.toml")).unwrap();
    let cfg = breakdesk::wiring::run::settings(&cfg).unwrap();
    // The anomalies only (every written row a case), and every row (only the anomalies cases).
    let all_rows = partitions(d, &f.file, &f.model, 3, &["--all-rows"]);
    for (name, parts) in [("anomalies", f.parts.clone()), ("all-rows", all_rows)] {
        let mut seen = Vec::new();
        for group in [0, 7] {
            let store = breakdesk::store::Store::open(&d.join(format!("{name}-{group}"))).unwrap();
            let out = d.join(format!("{name}-{group}.csv"));
            let merged = merge(
                &cfg,
                &parts,
                &store,
                MergeOptions {
                    record: true,
                    out: out.clone(),
                    case_group: group,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{name}, groups of {group}: {e}"));
            assert!(merged.cases.len() > 500, "{name}: {}", merged.cases.len());
            let (h, rows) = read_csv(&out);
            let cases = Cases::new(&store).list(&CaseFilter::default()).unwrap();
            // A break of several records gets one case: fewer cases than records.
            assert!(
                cases.len() < merged.cases.len(),
                "{name}: {} cases of {} records",
                cases.len(),
                merged.cases.len()
            );
            let ids = column(&h, &rows, "case_id");
            assert_eq!(
                ids.iter().filter(|c| !c.is_empty()).count(),
                merged.cases.len(),
                "{name}: each recorded row names its case"
            );
            let cases: Vec<_> = cases
                .into_iter()
                .map(|c| {
                    (
                        c.id,
                        c.ticket,
                        c.status,
                        c.key,
                        c.start_date,
                        c.last_date,
                        c.rank,
                    )
                })
                .collect();
            seen.push((std::fs::read(&out).unwrap(), cases));
        }
        assert!(
            seen[0] == seen[1],
            "{name}: groups of 7 record the cases (and write the output) as one group does"
        );
    }
}

/// A generated file cut into a history (its first three fifths) and a current file, written
/// in `root` after `edit` changed their data lines (`edit(current, lines)`; lines with a quote
/// are left as they are, so that a naive split on commas is exact). Returns (current,
/// history).
fn cut_file(root: &Path, seed: &str, edit: &dyn Fn(bool, &mut Vec<String>)) -> (PathBuf, PathBuf) {
    let generated = root.join("generated.csv");
    common::ok(
        root,
        &[
            "generate",
            "--rows",
            "6000",
            "--seed",
            seed,
            "--out",
            s(&generated),
            "-q",
        ],
    );
    let text = std::fs::read_to_string(&generated).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header = lines.remove(0);
    let cut = lines.len() * 3 / 5;
    let mut history = lines[..cut].to_vec();
    let mut current = lines[cut..].to_vec();
    edit(false, &mut history);
    edit(true, &mut current);
    let write = |name: &str, body: &[String]| {
        let p = root.join(name);
        std::fs::write(&p, format!("{header}\n{}\n", body.join("\n"))).unwrap();
        p
    };
    (
        write("current.csv", &current),
        write("history.csv", &history),
    )
}

/// Sets field `at` of a data line without quotes.
fn set_field(line: &mut String, at: usize, value: &str) {
    if line.contains('"') {
        return;
    }
    let mut f: Vec<&str> = line.split(',').collect();
    f[at] = value;
    *line = f.join(",");
}

/// Keeps the lines of partition `index` of `n` whose first ten fields (up to the amounts) hold
/// no quote, so that they can be split on commas, and gives each of them to `edit` as its
/// fields (the status and comment left joined in the last).
fn edit_partition(lines: &mut Vec<String>, index: usize, n: usize, edit: &dyn Fn(&mut [String])) {
    lines.retain(|l| {
        partition_of(&key_of(l), n) != index || !l.splitn(11, ',').take(10).any(|f| f.contains('"'))
    });
    for l in lines.iter_mut() {
        if partition_of(&key_of(l), n) == index {
            let mut f: Vec<String> = l.splitn(11, ',').map(str::to_string).collect();
            edit(&mut f);
            *l = f.join(",");
        }
    }
}

/// The account key of a generated gl_ihub line (Company|Account|AU|Currency).
fn key_of(line: &str) -> String {
    let f: Vec<&str> = line.split(',').collect();
    [f[1], f[2], f[3], f[4]].map(str::trim).join("|")
}

/// Runs `args` in `d` with its own data directory; (exit code, stderr).
fn run_in(d: &Path, data: &str, args: &[&str]) -> (i32, String) {
    let (code, _, err) = bd_in(d, data, args);
    (code, err)
}

/// The lines of a rejects report, its header aside.
fn report_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn workers_keep_their_records_and_the_merge_reports_every_reject_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Rows the reader rejects (an extra field) and blank lines, and rows the checks reject (an
    // amount that is not one, a placeholder date), in the file and its history, across the
    // partitions.
    let (cur, hist) = cut_file(d, "9", &|current, lines| {
        for (i, l) in lines.iter_mut().enumerate() {
            if i % 97 == 5 {
                set_field(l, 7, "n/a");
            }
            if !current && i % 89 == 3 {
                set_field(l, 0, "1900-01-01");
            }
            if i % 103 == 7 {
                set_field(l, 10, "Break");
                set_field(l, 7, "12.5");
                set_field(l, 8, "not an amount");
            }
            if i % 501 == 11 && !l.contains('"') {
                l.push_str(",extra");
            }
            if i % 700 == 13 {
                l.insert(0, '\n');
            }
        }
    });
    let model = d.join("model.json");
    let (code, err) = run_in(
        d,
        "train",
        &[
            "train",
            s(&cur),
            "--history",
            s(&hist),
            "--export",
            s(&model),
            "-q",
        ],
    );
    assert_eq!(code, 0, "{err}");

    let single = d.join("single.csv");
    let (code, err) = run_in(
        d,
        "single",
        &[
            "run",
            s(&cur),
            "--history",
            s(&hist),
            "--model",
            s(&model),
            "--out",
            s(&single),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let whole = report_lines(&breakdesk::output::rejects_path(&single));
    let reader = whole.iter().filter(|l| l.contains("fields")).count();
    assert!(reader >= 4, "records with an extra field: {whole:?}");
    assert!(whole.len() > 100, "{}", whole.len());

    let parts = partitions(d, s(&cur), s(&model), 4, &["--history", s(&hist)]);
    // Each worker reports the reader's rejects of the whole files and its own rows' rejects.
    let mut seen: std::collections::BTreeSet<String> = Default::default();
    for p in &parts {
        let own = report_lines(&breakdesk::output::rejects_path(p));
        assert!(
            own.len() < whole.len() && own.len() >= reader,
            "{}",
            own.len()
        );
        seen.extend(own);
    }
    let all: std::collections::BTreeSet<String> = whole.iter().cloned().collect();
    assert_eq!(
        seen, all,
        "the workers' reports together are the whole run's"
    );

    let merged = d.join("merged.csv");
    let mut args = vec!["merge"];
    args.extend(parts.iter().map(|p| s(p)));
    args.extend(["--out", s(&merged)]);
    let (code, err) = run_in(d, "merge", &args);
    assert_eq!(code, 0, "{err}");
    assert_same_rows(&read_csv(&single), &read_csv(&merged), &CASE_COLUMNS);
    // The whole run's report, in its order.
    assert_eq!(
        std::fs::read_to_string(breakdesk::output::rejects_path(&single)).unwrap(),
        std::fs::read_to_string(breakdesk::output::rejects_path(&merged)).unwrap()
    );
    let rows = std::fs::read_to_string(&cur)
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .count();
    assert!(
        err.contains(&format!("rows of the file's {rows})")),
        "{err}"
    );

    // Forty partitions of the small file: some have no records (their worker reads the whole
    // files), and they merge alike.
    let many = partitions(d, s(&cur), s(&model), 40, &["--history", s(&hist)]);
    let merged40 = d.join("merged40.csv");
    let mut args = vec!["merge"];
    args.extend(many.iter().map(|p| s(p)));
    args.extend(["--out", s(&merged40)]);
    let (code, err) = run_in(d, "merge40", &args);
    assert_eq!(code, 0, "{err}");
    // Partitions that hold none of the file's rows (their meta file says so).
    let empty = many
        .iter()
        .filter(|p| {
            let meta = std::fs::read_to_string(breakdesk::parts::meta_path(p)).unwrap();
            let m: serde_json::Value = serde_json::from_str(&meta).unwrap();
            m["rows"] == 0
        })
        .count();
    assert!(empty > 0, "some partitions hold no record");
    assert_same_rows(&read_csv(&single), &read_csv(&merged40), &CASE_COLUMNS);
    assert_eq!(
        std::fs::read_to_string(breakdesk::output::rejects_path(&single)).unwrap(),
        std::fs::read_to_string(breakdesk::output::rejects_path(&merged40)).unwrap()
    );
}

#[test]
fn too_many_rejects_of_the_whole_file_fail_the_merge_with_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // One row in twelve with an amount that is not one: 8 % of the file, above the 5 % allowed,
    // but no worker sees the whole file's share.
    let (cur, _) = cut_file(d, "4", &|current, lines| {
        if current {
            for (i, l) in lines.iter_mut().enumerate() {
                if i % 12 == 0 {
                    set_field(l, 7, "not an amount");
                }
            }
        }
    });
    let model = &fixture().model;
    let single = d.join("single.csv");
    let (code, err) = run_in(
        d,
        "single",
        &["run", s(&cur), "--model", model, "--out", s(&single), "-q"],
    );
    assert_eq!(code, 4, "{err}");
    let whole = report_lines(&breakdesk::output::rejects_path(&single));
    assert!(err.contains("max_reject_share"), "{err}");

    let parts = partitions(d, s(&cur), model, 3, &[]);
    let merged = d.join("merged.csv");
    let mut args = vec!["merge"];
    args.extend(parts.iter().map(|p| s(p)));
    args.extend(["--out", s(&merged)]);
    let (code, err) = run_in(d, "merge", &args);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains(s(&cur)) && err.contains("max_reject_share") && err.contains("rejected"),
        "{err}"
    );
    assert!(!merged.exists(), "nothing merged");
    assert_eq!(
        report_lines(&breakdesk::output::rejects_path(&merged)),
        whole,
        "the whole file's report is left beside the output"
    );
}

#[test]
fn partitions_that_read_amounts_with_different_decimal_separators_do_not_merge() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The accounts of partition 0 of 2 write their amounts with a decimal comma.
    let (cur, _) = cut_file(d, "6", &|current, lines| {
        if !current {
            return;
        }
        edit_partition(lines, 0, 2, &|f| {
            for v in &mut f[7..10] {
                *v = format!("\"{}\"", v.replace('.', ","));
            }
        });
    });
    let model = &fixture().model;
    let (code, err) = run_in(
        d,
        "single",
        &[
            "run",
            s(&cur),
            "--model",
            model,
            "--out",
            s(&d.join("single.csv")),
            "-q",
        ],
    );
    assert_ne!(code, 0, "the whole file cannot tell: {err}");
    assert!(err.contains("decimal"), "{err}");

    let parts = partitions(d, s(&cur), model, 2, &[]);
    let merged = d.join("merged.csv");
    let (code, err) = run_in(
        d,
        "merge",
        &["merge", s(&parts[0]), s(&parts[1]), "--out", s(&merged)],
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("decimal comma")
            && err.contains("decimal point")
            && err.contains("[ingest] decimal"),
        "{err}"
    );
    assert!(!merged.exists());
}

#[test]
fn a_partition_whose_amounts_alone_cannot_tell_the_decimal_separator_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The accounts of partition 0 of 2 hold only amounts such as `1,234`, which read either
    // way; the other accounts' amounts settle it for the whole file (a decimal point).
    let (cur, _) = cut_file(d, "8", &|current, lines| {
        if !current {
            return;
        }
        edit_partition(lines, 0, 2, &|f| {
            f[7] = "\"1,234\"".into();
            f[8] = "\"1,234\"".into();
            f[9] = "0".into();
        });
    });
    let model = &fixture().model;
    let single = d.join("single.csv");
    let (code, err) = run_in(
        d,
        "single",
        &["run", s(&cur), "--model", model, "--out", s(&single), "-q"],
    );
    assert_eq!(code, 0, "{err}");

    // Partition 0's worker cannot tell from its own records: it reads the whole file, as the
    // single run does, and the parts merge to the single run's output.
    let parts = partitions(d, s(&cur), model, 2, &[]);
    let merged = d.join("merged.csv");
    let (code, err) = run_in(
        d,
        "merge",
        &["merge", s(&parts[0]), s(&parts[1]), "--out", s(&merged)],
    );
    assert_eq!(code, 0, "{err}");
    assert_same_rows(&read_csv(&single), &read_csv(&merged), &CASE_COLUMNS);
}
