//! Smoke test of the real binary in a pseudo-terminal: tmux runs `breakdesk open` on the
//! fixture, the test reads the screen until the table is there, presses keys and checks that
//! the program quits cleanly and leaves the terminal usable. Under CI (where `.ci/run` installs
//! tmux) a missing tmux is a failure; elsewhere the test says it was skipped.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

struct Server {
    socket: String,
}

impl Server {
    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "t"]).stdout).to_string()
    }

    fn wait_for(&self, what: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "{what:?} did not appear within {timeout:?}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[test]
fn the_binary_opens_the_table_and_quits_in_a_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "tmux is missing under CI (.ci/run installs it)"
        );
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let data = dir.path().join("data");
    let root = env!("CARGO_MANIFEST_DIR");
    let bin = env!("CARGO_BIN_EXE_breakdesk");
    let q = |p: &Path| format!("'{}'", p.display());
    let cmd = format!(
        "HOME={home} XDG_CONFIG_HOME={config} USER=ana {bin} --data-dir {data} open tests/data/tui_gl_current.csv --history tests/data/tui_gl_history.csv; echo \"EXITED $?\"; sleep 60",
        home = q(&home),
        config = q(&home.join("config")),
        bin = q(Path::new(bin)),
        data = q(&data),
    );
    let server = Server {
        socket: format!("breakdesk-test-{}", std::process::id()),
    };
    let out = server.tmux(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "140",
        "-y",
        "36",
        "-c",
        root,
        &cmd,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The case queue first; 1 shows the records.
    let s = server.wait_for("Case 1/", Duration::from_secs(180));
    assert!(s.contains("breakdesk · Queue"), "{s}");
    assert!(
        s.contains("take") && s.contains("note"),
        "footer hints: {s}"
    );
    server.tmux(&["send-keys", "-t", "t", "1"]);
    let s = server.wait_for("Row 1/", Duration::from_secs(10));
    assert!(s.contains("breakdesk · Anomalies"), "{s}");
    assert!(
        s.contains("accept") && s.contains("help"),
        "footer hints: {s}"
    );
    // Detail pane, help, back, quit.
    server.tmux(&["send-keys", "-t", "t", "Enter"]);
    server.wait_for("audit trail", Duration::from_secs(10));
    server.tmux(&["send-keys", "-t", "t", "?"]);
    server.wait_for("Help", Duration::from_secs(10));
    server.tmux(&["send-keys", "-t", "t", "Escape"]);
    server.tmux(&["send-keys", "-t", "t", "q"]);
    let s = server.wait_for("EXITED", Duration::from_secs(20));
    assert!(s.contains("EXITED 0"), "{s}");
    // The alternate screen is gone: the shell's output is on the normal screen.
    assert!(!s.contains("Row 1/"), "{s}");
}
