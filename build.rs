//! Records the git commit and commit date the binary is built from, for `breakdesk --version`.
//!
//! From a clone, `git` answers; from a tarball or a container build without `.git`, the values
//! are "unknown" (or `BREAKDESK_BUILD_COMMIT` / `BREAKDESK_BUILD_DATE` when the builder sets
//! them). This script never fails the build.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn from_env(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether git's work tree is this package's directory (not an enclosing repository, as when
/// the sources were unpacked inside some other checkout).
fn in_own_repository() -> bool {
    let Some(top) = git(&["rev-parse", "--show-toplevel"]) else {
        return false;
    };
    let here = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    match (std::fs::canonicalize(top), std::fs::canonicalize(here)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let own = in_own_repository();
    let commit = from_env("BREAKDESK_BUILD_COMMIT")
        .or_else(|| own.then(|| git(&["rev-parse", "HEAD"])).flatten());
    let date = from_env("BREAKDESK_BUILD_DATE").or_else(|| {
        own.then(|| git(&["log", "-1", "--format=%cd", "--date=short", "HEAD"]))
            .flatten()
    });
    // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it points to (a commit), and
    // packed-refs (a branch packed by git gc). `--git-path` resolves them in worktrees too.
    // Only existing files are named: a missing one would make cargo rerun this every build.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(reference);
    }
    for name in watched.into_iter().filter(|_| own) {
        if let Some(path) = git(&["rev-parse", "--git-path", &name])
            && std::path::Path::new(&path).is_file()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!(
        "cargo:rustc-env=BREAKDESK_GIT_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
    println!(
        "cargo:rustc-env=BREAKDESK_GIT_DATE={}",
        date.unwrap_or_else(|| "unknown".into())
    );
}
