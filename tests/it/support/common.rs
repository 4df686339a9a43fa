//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

/// Reads a CSV written by breakdesk (header + rows) with a small RFC 4180 reader.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).expect("output exists");
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut q = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (q, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => q = false,
            (true, c) => field.push(c),
            (false, '"') => q = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    let header = rows.remove(0);
    (header, rows)
}

/// The values of one column by header name.
pub fn column<'a>(header: &[String], rows: &'a [Vec<String>], name: &str) -> Vec<&'a str> {
    let i = header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    rows.iter().map(|r| r[i].as_str()).collect()
}

/// The real binary with a private home under `dir` (no user config file is picked up) and its
/// store in `data_dir`, bounded in time.
pub fn breakdesk_cmd(dir: &Path, data_dir: &Path) -> assert_cmd::Command {
    let home = dir.join("home");
    let mut c = assert_cmd::Command::cargo_bin("breakdesk").expect("binary builds");
    c.env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .args(["--data-dir", data_dir.to_str().expect("utf-8 path")])
        .timeout(std::time::Duration::from_secs(300));
    c
}

/// Exit code, standard output and standard error of a finished command.
pub fn outcome(mut c: assert_cmd::Command) -> (i32, String, String) {
    let o = c.output().expect("runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// `breakdesk ARGS` as user `ana`, with its store in `dir/data`: exit code, stdout, stderr.
pub fn bd(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut c = breakdesk_cmd(dir, &dir.join("data"));
    c.env("USER", "ana").args(args);
    outcome(c)
}

/// [`bd`], which must succeed: stderr then stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = bd(dir, args);
    assert_eq!(code, 0, "breakdesk {args:?} failed: {err}");
    err + &out
}

/// The path of a shipped sample.
pub fn sample(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/samples")
        .join(name)
        .display()
        .to_string()
}
