//! What an installed binary gives its user, through the real binary: `--version` (commit,
//! date, store schema, TLS), shell completions and manual pages generated from the command
//! line (every subcommand in them), and `breakdesk health`, the container's health check,
//! against the real service and a loopback server.

use crate::support::common;
use crate::support::http_server;
use crate::support::service;

use std::path::Path;

use common::{breakdesk_cmd, outcome};
use serde_json::json;

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut c = breakdesk_cmd(dir, &dir.join("data"));
    c.env("USER", "ana").args(args);
    outcome(c)
}

/// The subcommands `breakdesk help` lists (its "Commands:" section), `help` aside.
fn subcommands(dir: &Path) -> Vec<String> {
    let (code, out, err) = run(dir, &["help"]);
    assert_eq!(code, 0, "{err}");
    let names: Vec<String> = out
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect();
    assert!(names.len() >= 20, "{out}");
    for n in ["doctor", "completions", "man", "health", "serve", "cases"] {
        assert!(names.iter().any(|x| x == n), "{n} not in {names:?}");
    }
    names
}

/// The commit this checkout is at, when git can say and the checkout is this package's own
/// (as build.rs decides).
fn head_commit() -> Option<String> {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let top = std::fs::canonicalize(git(&["rev-parse", "--show-toplevel"])?).ok()?;
    let here = std::fs::canonicalize(env!("CARGO_MANIFEST_DIR")).ok()?;
    (top == here).then(|| git(&["rev-parse", "HEAD"])).flatten()
}

#[test]
fn the_version_names_the_commit_its_date_the_store_schema_and_the_tls_provider() {
    let dir = tempfile::tempdir().unwrap();
    let (code, long, err) = run(dir.path(), &["--version"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        long.starts_with(&format!("breakdesk {}\n", env!("CARGO_PKG_VERSION"))),
        "{long}"
    );
    let commit = head_commit().unwrap_or_else(|| "unknown".to_string());
    assert!(
        long.contains(&format!("commit:       {commit}\n")),
        "{long}"
    );
    let date = long
        .lines()
        .find_map(|l| l.strip_prefix("commit date:  "))
        .unwrap_or_else(|| panic!("no date in {long}"));
    assert!(
        date == "unknown" || chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(),
        "{date}"
    );
    assert!(
        long.contains(&format!(
            "store schema: {}",
            breakdesk::store::SCHEMA_VERSION
        )),
        "{long}"
    );
    assert!(long.contains("tls:          rustls with ring"), "{long}");

    let (code, short, _) = run(dir.path(), &["-V"]);
    assert_eq!(code, 0);
    assert_eq!(short.lines().count(), 1, "{short}");
    assert!(
        short.starts_with(&format!("breakdesk {} (", env!("CARGO_PKG_VERSION")))
            && short.contains(commit.get(..12).unwrap_or(&commit)),
        "{short}"
    );
}

#[test]
fn completions_name_every_subcommand_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    let names = subcommands(dir.path());
    let (code, bash, err) = run(dir.path(), &["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    assert!(bash.contains("complete -F _breakdesk"), "not a bash script");
    for n in &names {
        // The case that completes the subcommand's own arguments.
        assert!(bash.contains(&format!("breakdesk,{n})")), "{n}");
    }
    // Flags of subcommands too.
    for flag in ["--llm", "--all-rows", "--history", "--data-dir"] {
        assert!(bash.contains(flag), "{flag}");
    }
    for (shell, marker) in [
        ("zsh", "#compdef breakdesk"),
        ("fish", "complete -c breakdesk"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[breakdesk]"),
    ] {
        let (code, script, err) = run(dir.path(), &["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(script.contains(marker), "{shell}");
        assert!(script.contains("doctor"), "{shell}");
    }
}

#[test]
fn an_unknown_shell_is_refused_with_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(dir.path(), &["completions", "nope"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("invalid value 'nope'")
            && err.contains("bash")
            && err.contains("zsh")
            && err.contains("fish")
            && err.contains("powershell"),
        "{err}"
    );
}

#[test]
fn the_man_page_names_every_subcommand_and_the_global_flags() {
    let dir = tempfile::tempdir().unwrap();
    let names = subcommands(dir.path());
    let (code, page, err) = run(dir.path(), &["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(page.contains(".TH breakdesk 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    for n in &names {
        // roff escapes '-' as '\-'.
        assert!(
            page.contains(&format!("breakdesk\\-{}", n.replace('-', "\\-"))),
            "{n} not in the page"
        );
    }
    for flag in [
        "\\-\\-config",
        "\\-\\-data\\-dir",
        "\\-\\-quiet",
        "\\-\\-version",
    ] {
        assert!(page.contains(flag), "{flag}");
    }
}

#[test]
fn man_dir_writes_a_page_per_command_with_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let names = subcommands(dir.path());
    let out = dir.path().join("man/man1");
    let (code, stdout, err) = run(dir.path(), &["man", "--dir", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.is_empty());
    assert!(err.contains("manual pages into"), "{err}");
    assert!(out.join("breakdesk.1").is_file());
    for n in &names {
        let page = out.join(format!("breakdesk-{n}.1"));
        assert!(page.is_file(), "{}", page.display());
    }
    assert!(out.join("breakdesk-cases-decide.1").is_file(), "nested");
    let doctor = std::fs::read_to_string(out.join("breakdesk-doctor.1")).unwrap();
    assert!(doctor.contains("\\-\\-llm") && doctor.contains("\\-\\-timeout"));
    let run_page = std::fs::read_to_string(out.join("breakdesk-run.1")).unwrap();
    assert!(run_page.contains("\\-\\-all\\-rows"));

    // A directory that cannot be made is named.
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let (code, _, err) = run(dir.path(), &["man", "--dir", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot write the manual pages into"), "{err}");
}

#[test]
fn health_passes_on_the_real_service_and_fails_when_it_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let history = service::repo(service::GL_HISTORY);
    let svc = service::start(
        dir.path(),
        &data,
        None,
        &["--history", history.to_str().unwrap()],
        &[],
    )
    .expect("the service starts");
    let url = format!("http://{}/health", svc.addr);
    let (code, out, err) = run(dir.path(), &["health", "--url", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok"), "{out}");

    // The default URL comes from BREAKDESK_BIND, an unspecified address asked on loopback.
    let mut c = breakdesk_cmd(dir.path(), &data);
    c.env("BREAKDESK_BIND", format!("0.0.0.0:{}", svc.port()))
        .arg("health");
    let (code, out, err) = outcome(c);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("127.0.0.1:{}/health: ok", svc.port())),
        "{out}"
    );

    // While it runs, doctor reports the store held by it.
    let mut c = breakdesk_cmd(dir.path(), &data);
    c.env("USER", "ana").arg("doctor");
    let (code, out, _) = outcome(c);
    assert_eq!(code, 8, "{out}");
    assert!(out.contains("in use by another breakdesk process"), "{out}");

    svc.stop();
    let (code, _, err) = run(dir.path(), &["health", "--url", &url, "--timeout", "2"]);
    assert_eq!(code, 1);
    assert!(err.contains("unhealthy") && err.contains(&url), "{err}");
}

#[test]
fn health_fails_on_an_error_status_and_on_an_answer_that_is_not_breakdesk() {
    let dir = tempfile::tempdir().unwrap();
    let server = http_server::HttpServer::start(|r| match r.path.as_str() {
        "/health" => http_server::Reply::json(503, json!({"status": "error"})),
        _ => http_server::Reply::json(200, json!({"hello": "world"})),
    });
    let (code, _, err) = run(
        dir.path(),
        &["health", "--url", &format!("{}/health", server.url())],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("HTTP 503") && err.contains("\"error\""),
        "{err}"
    );
    let (code, _, err) = run(
        dir.path(),
        &["health", "--url", &format!("{}/other", server.url())],
    );
    assert_eq!(code, 1);
    assert!(err.contains("not a breakdesk health answer"), "{err}");
    let (code, _, err) = run(dir.path(), &["health", "--url", "ftp://x/health"]);
    assert_eq!(code, 1);
    assert!(err.contains("http://"), "{err}");
}

#[test]
fn serve_reads_its_bind_address_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = breakdesk_cmd(dir.path(), &dir.path().join("data"));
    c.env("BREAKDESK_BIND", "not-an-address").arg("serve");
    let (code, _, err) = outcome(c);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not-an-address") && err.contains("--bind"),
        "{err}"
    );
}

/// The JSON-array arguments of the last Dockerfile line that starts with `prefix`.
fn exec_form(dockerfile: &str, prefix: &str) -> Vec<String> {
    let line = dockerfile
        .lines()
        .map(str::trim)
        .rfind(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in the Dockerfile"));
    let array = &line[line.find('[').expect("exec form")..];
    serde_json::from_str(array).unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn the_container_recipe_runs_the_service_as_a_non_root_user_with_commands_the_binary_has() {
    let text = std::fs::read_to_string(service::repo("Dockerfile")).unwrap();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "multi-stage: {froms:?}");
    assert!(froms[0].starts_with("FROM rust:") && froms[0].ends_with(" AS build"));
    assert!(froms[1].starts_with("FROM debian:") && froms[1].contains("slim"));
    let user = text
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "{user}"
    );
    assert!(text.contains("VOLUME [\"/data\"]"));
    assert!(text.contains("BREAKDESK_BIND=0.0.0.0:8080"));

    // The entry point and the health check parse with the real binary.
    let dir = tempfile::tempdir().unwrap();
    let entry = exec_form(&text, "ENTRYPOINT");
    let cmd = exec_form(&text, "CMD [");
    assert_eq!(entry[0], "breakdesk");
    assert_eq!(cmd, ["serve"]);
    let health = exec_form(&text, "CMD [\"breakdesk\", \"health\"");
    for args in [
        entry[1..].iter().chain(&cmd).cloned().collect::<Vec<_>>(),
        health[1..].to_vec(),
    ] {
        let mut c = assert_cmd::Command::cargo_bin("breakdesk").unwrap();
        c.env("HOME", dir.path()).args(&args).arg("--help");
        let (code, out, err) = outcome(c);
        assert_eq!(code, 0, "breakdesk {args:?}: {err}");
        assert!(out.contains("Usage: breakdesk"), "{out}");
    }
}

#[test]
fn bash_completes_subcommands_and_their_flags_with_the_generated_script() {
    let dir = tempfile::tempdir().unwrap();
    let (code, script, err) = run(dir.path(), &["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    let file = dir.path().join("breakdesk.bash");
    std::fs::write(&file, script).unwrap();
    // What bash offers after `breakdesk doc<TAB>` and `breakdesk doctor --l<TAB>`.
    let probe = format!(
        "source {}\n\
         COMP_WORDS=(breakdesk doc); COMP_CWORD=1; _breakdesk breakdesk doc breakdesk; echo \"${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=(breakdesk doctor --l); COMP_CWORD=2; _breakdesk breakdesk --l doctor; echo \"${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=(breakdesk completions ''); COMP_CWORD=2; _breakdesk breakdesk '' completions; echo \"${{COMPREPLY[*]}}\"\n",
        file.display()
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &probe])
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines[0], "doctor", "{text}");
    assert_eq!(lines[1], "--llm", "{text}");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        assert!(lines[2].split(' ').any(|w| w == shell), "{text}");
    }
}
