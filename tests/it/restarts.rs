//! What survives a stop: the service restarts on its own store for both sample profiles, after
//! a clean stop and after kill -9; the store is its owner's alone; one damaged case does not
//! hide the others from `cases list` or `GET /cases`.

use crate::support::common;
use crate::support::service;

use service::{get, repo, start};
use std::path::Path;
use std::time::{Duration, Instant};

fn config(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("config.toml");
    std::fs::write(
        &p,
        "[logging]\nfile = false\n[service]\npersist_interval_ms = 100\n",
    )
    .unwrap();
    p
}

/// The accounts the service holds, once it reports some.
fn accounts(addr: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = get(addr, "/health", None).json()["accounts"]
            .as_u64()
            .unwrap_or(0);
        if n > 0 || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_service_restarts_on_its_state_after_a_clean_stop_and_after_kill_minus_nine() {
    for (history, profile) in [
        ("assets/samples/trades.csv", "trades"),
        (service::GL_HISTORY, "gl_ihub"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cfg = config(d);
        let data = d.join("data");
        let h = repo(history).display().to_string();
        let svc = start(d, &data, Some(&cfg), &["--history", &h], &[]).unwrap();
        let seeded = accounts(&svc.addr);
        assert!(seeded > 0, "{history}: the state is seeded");
        assert!(svc.stop().success(), "{history}: a clean stop");

        // A clean restart reads every account's state back (a missing side, NaN, included).
        // Without the history, the states can only come from the store.
        let mut svc = start(d, &data, Some(&cfg), &["--profile", profile], &[])
            .unwrap_or_else(|e| panic!("{history}: restart after a clean stop: {e}"));
        assert_eq!(accounts(&svc.addr), seeded, "{history}");
        // kill -9, after the state was written at least once more.
        std::thread::sleep(Duration::from_millis(300));
        svc.child.kill().unwrap();
        svc.child.wait().unwrap();
        let svc = start(d, &data, Some(&cfg), &["--profile", profile], &[])
            .unwrap_or_else(|e| panic!("{history}: restart after kill -9: {e}"));
        assert_eq!(accounts(&svc.addr), seeded, "{history}");
        assert!(svc.stop().success());

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let store = data.join("store");
            let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{history}: the store's directory");
            for e in std::fs::read_dir(&store).unwrap().flatten() {
                if e.file_type().unwrap().is_file() {
                    let mode = e.metadata().unwrap().permissions().mode() & 0o777;
                    assert_eq!(mode, 0o600, "{}", e.path().display());
                }
            }
        }
    }
}

#[test]
fn one_unreadable_case_is_reported_and_the_rest_listed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = repo("assets/samples");
    let (code, _, err) = common::bd(
        d,
        &[
            "run",
            root.join("gl_ihub_current.csv").to_str().unwrap(),
            "--history",
            root.join("gl_ihub_history.csv").to_str().unwrap(),
            "--out",
            d.join("out.csv").to_str().unwrap(),
            "-q",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, before, _) = common::bd(d, &["cases", "list", "--format", "jsonl"]);
    assert_eq!(code, 0);
    let ids: Vec<String> = before
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(ids.len() >= 2, "{before}");
    let damaged = &ids[0];
    {
        let store = breakdesk::store::Store::open(&d.join("data")).unwrap();
        store
            .overwrite_case_bytes(damaged, b"{\"id\": \"half a case")
            .unwrap();
    }

    let (code, list, err) = common::bd(d, &["cases", "list", "--format", "jsonl"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(list.lines().count(), ids.len() - 1, "the rest are listed");
    assert!(!list.contains(damaged.as_str()));
    assert!(
        err.contains(&format!("case {damaged} is unreadable")),
        "{err}"
    );
    let (code, table, _) = common::bd(d, &["cases", "list"]);
    assert_eq!(code, 0);
    assert!(table.contains(&ids[1]) || table.lines().count() >= ids.len() - 1);

    // The service lists the rest too, and names the damaged case.
    let cfg = config(d);
    let h = repo(service::GL_HISTORY).display().to_string();
    let svc = start(d, &d.join("data"), Some(&cfg), &["--history", &h], &[]).unwrap();
    let r = get(&svc.addr, "/cases?limit=10000", None);
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(
        body["total"],
        ids.len() as u64 - 1,
        "{}",
        body["unreadable"]
    );
    assert_eq!(body["unreadable"][0]["case_id"], damaged.as_str());
    assert!(svc.stop().success());
}
