//! Ctrl-C and SIGTERM through the real binary: a run stops at its next stage, removes its spill
//! folder, writes no output and records no case, and exits 130 (SIGINT) or 143 (SIGTERM).

use crate::support::common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A generated file of `rows` rows in `root`, its labels beside it (`big.labels.csv`).
fn generated(root: &Path, rows: &str) -> PathBuf {
    let file = root.join("big.csv");
    let (code, _, err) = common::bd(
        root,
        &[
            "generate",
            "--rows",
            rows,
            "--seed",
            "5",
            "--out",
            s(&file),
            "--labels",
            s(&root.join("big.labels.csv")),
            "-q",
        ],
    );
    assert_eq!(code, 0, "{err}");
    file
}

/// `breakdesk ARGS` started with its store in `data`, SIGINT and SIGTERM at their default
/// actions (a test harness started in the background inherits SIGINT ignored).
fn start(root: &Path, data: &Path, args: &[&str]) -> std::process::Child {
    let home = root.join("home");
    let mut c = Command::new(env!("CARGO_BIN_EXE_breakdesk"));
    c.env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("USER", "ana")
        .args(["--data-dir", s(data)])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only `signal`, which is async-signal-safe, is called.
    unsafe {
        c.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    c.spawn().expect("breakdesk starts")
}

/// Waits (at most two minutes) for `child` to end: its exit code and standard error.
fn finish(mut child: std::process::Child) -> (i32, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waits") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).expect("reads stderr");
            }
            return (status.code().unwrap_or(-1), err);
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("breakdesk did not end within two minutes of its interruption");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &std::process::Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("a pid");
    // SAFETY: kill only sends a signal to the child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "the signal is sent");
}

/// The folders in `data`'s spill folder.
fn spill_of(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data.join("spill"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Whether `child` has a handler for `sig` (its `SigCgt` mask in /proc).
fn catches(child: &std::process::Child, sig: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|status| {
            let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (sig - 1)) != 0)
}

/// Waits (at most a minute) until `ready` holds.
fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let waited = Instant::now();
    while !ready() {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "no {what} within a minute"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// An interrupted command ended with `code`, said so, and left no output in `out`, nothing in
/// the spill folder of `data` and no case in its store.
fn assert_left_nothing(root: &Path, data: &Path, out: &Path, ended: (i32, String), code: i32) {
    let (got, err) = ended;
    assert_eq!(got, code, "{err}");
    assert!(
        err.contains("interrupted: stopped before its output was written; no case was recorded"),
        "{err}"
    );
    assert!(!out.exists(), "no output is written");
    assert!(spill_of(data).is_empty(), "{:?}", spill_of(data));
    assert_no_case(root, data);
}

/// No case in the store `data`.
fn assert_no_case(root: &Path, data: &Path) {
    let mut c = common::breakdesk_cmd(root, data);
    c.env("USER", "ana")
        .args(["cases", "list", "--format", "csv"]);
    let (code, out, err) = common::outcome(c);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "only the header: {out}");
}

#[test]
fn an_interrupted_run_stops_at_its_next_stage_and_leaves_nothing_half_done() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let file = generated(root, "200000");

    // Over the memory budget: Ctrl-C once the file is being split into the spill folder.
    let cfg = root.join("parts.toml");
    std::fs::write(&cfg, "[run]\nmin_part_mb = 2\n").unwrap();
    let data = root.join("split");
    let out = root.join("split.csv");
    let child = start(
        root,
        &data,
        &[
            "--config",
            s(&cfg),
            "run",
            s(&file),
            "--memory-mb",
            "64",
            "--out",
            s(&out),
            "-q",
        ],
    );
    wait_until("spill folder", || !spill_of(&data).is_empty());
    signal(&child, libc::SIGINT);
    assert_left_nothing(root, &data, &out, finish(child), 130);

    // A whole run, stopped by SIGTERM while it reads the file.
    let data = root.join("whole");
    let out = root.join("whole.csv");
    let child = start(
        root,
        &data,
        &["run", s(&file), "--memory-mb", "0", "--out", s(&out), "-q"],
    );
    wait_until("SIGTERM handler", || catches(&child, libc::SIGTERM));
    // Twice at once, as `timeout` signals a command and then its process group: one
    // interruption, not a second one that would end the process at once.
    signal(&child, libc::SIGTERM);
    signal(&child, libc::SIGTERM);
    assert_left_nothing(root, &data, &out, finish(child), 143);

    // A merge of two partitions, interrupted while it stages the parts.
    let model = root.join("model.json");
    let (code, _, err) = common::bd(
        root,
        &[
            "train",
            s(&file),
            "--memory-mb",
            "0",
            "--export",
            s(&model),
            "-q",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let mut parts = Vec::new();
    for i in 0..2 {
        let part = root.join(format!("part{i}.csv"));
        let (code, _, err) = common::bd(
            root,
            &[
                "run",
                s(&file),
                "--model",
                s(&model),
                "--partition",
                &format!("{i}/2"),
                "--out",
                s(&part),
                "-q",
            ],
        );
        assert_eq!(code, 0, "{err}");
        parts.push(part);
    }
    let data = root.join("merge");
    let out = root.join("merged.csv");
    let mut args = vec!["merge", s(&parts[0]), s(&parts[1]), "--record"];
    args.extend(["--out", s(&out), "-q"]);
    let child = start(root, &data, &args);
    wait_until("stage folder", || !spill_of(&data).is_empty());
    signal(&child, libc::SIGINT);
    assert_left_nothing(root, &data, &out, finish(child), 130);

    // `evaluate`, interrupted while it reads the file.
    let data = root.join("evaluate");
    let labels = root.join("big.labels.csv");
    let child = start(
        root,
        &data,
        &["evaluate", s(&file), "--labels", s(&labels), "-q"],
    );
    wait_until("SIGINT handler", || catches(&child, libc::SIGINT));
    signal(&child, libc::SIGINT);
    let (code, err) = finish(child);
    assert_eq!(code, 130, "{err}");
    assert!(err.contains("interrupted: stopped before"), "{err}");

    // The same run, not interrupted, writes its output and records its cases.
    let child = start(
        root,
        &data,
        &["run", s(&file), "--memory-mb", "0", "--out", s(&out), "-q"],
    );
    let (code, err) = finish(child);
    assert_eq!(code, 0, "{err}");
    assert!(out.exists());
}
