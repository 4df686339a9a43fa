//! Faults a store must survive: the service killed with SIGKILL while decisions stream in (every
//! decision it acknowledged is there afterwards), and a disk that fills up (a clear error, and a
//! store that opens once there is room again).

use crate::support::common;
use crate::support::dispatch_fixtures as fixtures;
use crate::support::service;

use breakdesk::cases::{Cases, Status};
use breakdesk::store::Store;
use serde_json::json;
use service::{post_json, repo, start};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn kill_minus_nine_under_load_loses_no_acknowledged_decision() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    // 2,400 pending cases, written through the library before the service starts.
    let ids: Vec<String> = {
        let store = Store::open(&data).unwrap();
        let cases = Cases::new(&store);
        (0..2_400)
            .map(|i| cases.upsert(&fixtures::record(i), false).unwrap().case.id)
            .collect()
    };
    let cfg = d.join("config.toml");
    std::fs::write(
        &cfg,
        "[logging]\nfile = false\n[[service.users]]\nname = \"ana\"\nrole = \"analyst\"\ntoken_env = \"T_ANA\"\n",
    )
    .unwrap();
    let token = "ana-kill-nine-5e7d1c";
    let h = repo(service::GL_HISTORY).display().to_string();
    let mut svc = start(
        d,
        &data,
        Some(&cfg),
        &["--history", &h],
        &[("T_ANA", token)],
    )
    .unwrap();
    let addr = svc.addr.clone();

    // Four clients accept cases as fast as the service answers; each 200 is an acknowledgement.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let ids: Vec<String> = ids.iter().skip(w).step_by(4).cloned().collect();
            let (acked, stop, addr) = (acked.clone(), stop.clone(), addr.clone());
            std::thread::spawn(move || {
                for id in ids {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let path = format!("/cases/{id}/decision");
                    // A request cut by the kill panics in the helper: it was not acknowledged.
                    let r = std::panic::catch_unwind(|| {
                        post_json(&addr, &path, &json!({"action": "accept"}), Some(token))
                    });
                    match r {
                        Ok(r) if r.status == 200 => acked.lock().unwrap().push(id),
                        _ => {}
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    while acked.lock().unwrap().len() < 1_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Kill while the clients are still sending.
    svc.child.kill().unwrap();
    svc.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 1_000, "only {} acknowledged", acked.len());
    assert!(
        acked.len() < ids.len(),
        "the kill came after every decision"
    );

    let store = Store::open(&data).expect("the store opens after kill -9");
    let cases = Cases::new(&store);
    for id in &acked {
        let c = cases.get(id).unwrap().expect("the case");
        assert_eq!(c.status, Status::Accepted, "{id} was acknowledged");
        let events = cases.events_for(id).unwrap();
        assert!(
            events.iter().any(|e| e.user == "ana"),
            "{id}: the decision's event"
        );
    }
}

/// Mounts a tmpfs of `size` at `at`; false when this machine does not allow it.
fn mount_tmpfs(at: &std::path::Path, size: &str) -> bool {
    std::fs::create_dir_all(at).unwrap();
    std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success())
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_the_store_opens_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("small");
    if !mount_tmpfs(&data, "600k") {
        eprintln!("not run: this machine does not let the tests mount a tmpfs (needs root)");
        return;
    }
    let _unmount = Unmount(data.clone());
    let root = repo("assets/samples");
    let run = |out: &str| {
        let mut c = common::breakdesk_cmd(d, &data);
        c.env("USER", "ana")
            .args([
                "run",
                root.join("gl_ihub_current.csv").to_str().unwrap(),
                "--history",
                root.join("gl_ihub_history.csv").to_str().unwrap(),
                "--out",
                d.join(out).to_str().unwrap(),
                "-q",
            ])
            .timeout(Duration::from_secs(60));
        common::outcome(c)
    };
    let (code, _, err) = run("a.csv");
    assert_eq!(code, 5, "a store error: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("no space left on the disk of the store"),
        "{err}"
    );
    // Room again: the store opens and the same run completes.
    remount(&data, "256m");
    let (code, _, err) = run("b.csv");
    assert_eq!(code, 0, "{err}");
    let mut c = common::breakdesk_cmd(d, &data);
    c.env("USER", "ana")
        .args(["cases", "list", "--format", "csv"]);
    let (code, list, err) = common::outcome(c);
    assert_eq!(code, 0, "{err}");
    assert!(list.lines().count() > 1);
}

/// The disk fills up under a running service (another program writes a large file): decisions
/// are refused with 507 and nothing is half-written; once there is room they go through again,
/// and the service stops cleanly.
#[test]
fn the_service_refuses_writes_while_its_disk_is_full_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("disk");
    if !mount_tmpfs(&data, "48m") {
        eprintln!("not run: this machine does not let the tests mount a tmpfs (needs root)");
        return;
    }
    let _unmount = Unmount(data.clone());
    let ids: Vec<String> = {
        let store = Store::open(&data).unwrap();
        let cases = Cases::new(&store);
        (0..3)
            .map(|i| cases.upsert(&fixtures::record(i), false).unwrap().case.id)
            .collect()
    };
    let cfg = d.join("config.toml");
    std::fs::write(&cfg, "[logging]\nfile = false\n").unwrap();
    let h = repo(service::GL_HISTORY).display().to_string();
    let svc = start(d, &data, Some(&cfg), &["--history", &h], &[]).unwrap();
    let accept = |id: &str| {
        post_json(
            &svc.addr,
            &format!("/cases/{id}/decision"),
            &json!({"action": "accept", "user": "ana"}),
            None,
        )
    };
    assert_eq!(accept(&ids[0]).status, 200);
    // Fill the disk to within 4 MB.
    let filler = data.join("filler.bin");
    let free = {
        let out = std::process::Command::new("df")
            .args(["-k", "--output=avail"])
            .arg(&data)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    std::fs::write(
        &filler,
        vec![0u8; ((free.saturating_sub(4096)) * 1024) as usize],
    )
    .unwrap();
    let r = accept(&ids[1]);
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disk is full")
    );
    let one = service::get(&svc.addr, &format!("/cases/{}", ids[1]), None).json();
    assert_eq!(
        one["case"]["status"], "PendingReview",
        "nothing was written"
    );
    // Room again.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(accept(&ids[1]).status, 200);
    assert!(svc.stop().success(), "a clean stop");
    let store = Store::open(&data).expect("the store opens");
    let c = Cases::new(&store).get(&ids[1]).unwrap().unwrap();
    assert_eq!(c.status, Status::Accepted);
}

fn remount(at: &std::path::Path, size: &str) {
    let ok = std::process::Command::new("mount")
        .args(["-o", &format!("remount,size={size}")])
        .arg(at)
        .status()
        .unwrap();
    assert!(ok.success());
}
