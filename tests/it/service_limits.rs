//! The service facing browsers and bad clients: Host and Origin checks (DNS rebinding, pages on
//! other sites), a health route that says little without a token, an access log without
//! secrets, and bounds on connections, header reads, WebSocket clients and slow clients.

use crate::support::service;

use serde_json::{Value, json};
use service::{WsClient, get, gl_record, post_json, repo, request, start};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let p = dir.join("config.toml");
    std::fs::write(&p, format!("[logging]\nfile = false\n{extra}")).unwrap();
    p
}

fn history() -> String {
    repo(service::GL_HISTORY).display().to_string()
}

/// Sends `head` (a request head, with its blank line) and returns the status code (0 when the
/// connection closed without an answer).
fn raw_status(addr: &str, head: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn host_and_origin_are_checked_and_health_says_little_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let users = "[service]\nallowed_hosts = [\"recon-desk.internal\"]\n\
                 allowed_origins = [\"https://recon-desk.internal\"]\n\
                 [[service.users]]\nname = \"sue\"\nrole = \"supervisor\"\ntoken_env = \"T_SUE\"\n";
    let cfg = config(dir.path(), users);
    let token = "sue-0c5e2d9b7f13";
    let svc = start(
        dir.path(),
        &dir.path().join("data"),
        Some(&cfg),
        &["--history", &history()],
        &[("T_SUE", token)],
    )
    .unwrap();
    let a = svc.addr.clone();
    let auth = format!("Authorization: Bearer {token}\r\n");

    // Host: IP addresses, localhost and the configured names pass; any other name is refused,
    // on every route (a rebinding page cannot read /health either).
    for (host, want) in [
        (a.as_str(), 200),
        ("localhost:8080", 200),
        ("[::1]:8080", 200),
        ("recon-desk.internal", 200),
        ("RECON-DESK.internal:443", 200),
        ("attacker.example:8080", 403),
        ("127.0.0.1.attacker.example", 403),
    ] {
        let got = raw_status(
            &a,
            &format!("GET /health HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"),
        );
        assert_eq!(got, want, "Host: {host}");
    }
    let got = raw_status(
        &a,
        &format!("GET /cases HTTP/1.1\r\nHost: evil.example\r\n{auth}Connection: close\r\n\r\n"),
    );
    assert_eq!(got, 403);

    // Origin: a page on another site cannot POST or open the WebSocket, even with a token; the
    // configured origin can; clients that send none pass.
    let rec = gl_record("2024-03-13", "110200", 5.0, 5.0).to_string();
    let post = |origin: Option<&str>| {
        let mut h = vec![("Content-Type", "application/json"), ("Authorization", "")];
        let bearer = format!("Bearer {token}");
        h[1].1 = bearer.as_str();
        if let Some(o) = origin {
            h.push(("Origin", o));
        }
        request(&a, "POST", "/realtime_anomaly", &h, rec.as_bytes()).status
    };
    assert_eq!(post(Some("https://evil.example")), 403);
    assert_eq!(post(Some("null")), 403);
    assert_eq!(post(Some("https://recon-desk.internal")), 200);
    assert_eq!(post(None), 200);
    let ws_head = |origin: &str| {
        format!(
            "GET /ws HTTP/1.1\r\nHost: {a}\r\n{auth}Origin: {origin}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    assert_eq!(raw_status(&a, &ws_head("https://evil.example")), 403);
    // A GET from a page on another site is only a read: not refused for its Origin.
    let r = request(
        &a,
        "GET",
        "/me",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Origin", "https://evil.example"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);

    // /health: without a token, the status and nothing else; with one, the details.
    let bare = get(&a, "/health", None);
    assert_eq!(bare.status, 200);
    assert_eq!(bare.json(), json!({"status": "ok"}));
    let full = get(&a, "/health", Some(token)).json();
    assert_eq!(full["profile"], "gl_ihub", "{full}");
    assert!(full["model_version"].is_string());
    assert!(svc.stop().success());
}

#[test]
fn the_access_log_has_one_line_per_request_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config.toml");
    std::fs::write(
        &p,
        "[logging]\nfile = true\nlevel = \"info\"\n\
         [[service.users]]\nname = \"sue\"\nrole = \"supervisor\"\ntoken_env = \"T_SUE\"\n",
    )
    .unwrap();
    let token = "sue-access-9a8b7c6d5e";
    let data = dir.path().join("data");
    let svc = start(
        dir.path(),
        &data,
        Some(&p),
        &["--history", &history()],
        &[("T_SUE", token)],
    )
    .unwrap();
    let a = svc.addr.clone();
    let secret_comment = "account number 4111111111111111 in a comment";
    let mut rec = gl_record("2024-03-13", "110200", 9632957.84, 3632957.84);
    rec["Comments"] = json!(secret_comment);
    assert_eq!(
        post_json(&a, "/realtime_anomaly", &rec, Some(token)).status,
        200
    );
    assert_eq!(get(&a, "/cases/BRK-NOPE", Some(token)).status, 404);
    assert_eq!(get(&a, "/cases", None).status, 401);
    assert!(svc.stop().success());

    let mut lines = Vec::new();
    for e in std::fs::read_dir(data.join("logs")).unwrap().flatten() {
        lines.extend(
            std::fs::read_to_string(e.path())
                .unwrap()
                .lines()
                .map(str::to_string),
        );
    }
    let access: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "breakdesk::access")
        .collect();
    let find = |route: &str, status: u64| {
        access
            .iter()
            .find(|v| v["fields"]["route"] == route && v["fields"]["status"] == status)
            .unwrap_or_else(|| panic!("no access line for {route} {status}: {access:?}"))
            .clone()
    };
    let scored = find("/realtime_anomaly", 200);
    assert_eq!(scored["fields"]["method"], "POST");
    assert_eq!(scored["fields"]["user"], "sue");
    assert!(scored["fields"]["latency_us"].as_u64().is_some());
    // The route template, never the id asked for.
    let missing = find("/cases/{id}", 404);
    assert!(!missing.to_string().contains("BRK-NOPE"));
    assert_eq!(find("/cases", 401)["fields"]["user"], "-");
    for l in &lines {
        assert!(!l.contains(token), "a token in the log: {l}");
        assert!(!l.contains("4111111111111111"), "a body in the log: {l}");
    }
}

#[test]
fn slow_and_silent_clients_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[service]\nmax_connections = 3\nread_timeout_secs = 2\nmax_ws_clients = 1\n\
         ws_queue_events = 4\nmax_body_bytes = 33554432\n",
    );
    let svc = start(
        dir.path(),
        &dir.path().join("data"),
        Some(&cfg),
        &["--history", &history()],
        &[],
    )
    .unwrap();
    let a = svc.addr.clone();

    // A client that sends half a request head is cut off after the read timeout.
    let mut half = TcpStream::connect(&a).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = half.read_to_end(&mut buf);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(15),
        "closed after {waited:?}"
    );
    // So is a kept-alive connection that stays idle.
    let mut idle = TcpStream::connect(&a).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let t = Instant::now();
    let mut all = Vec::new();
    let _ = idle.read_to_end(&mut all);
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    assert!(t.elapsed() >= Duration::from_millis(1500) && t.elapsed() < Duration::from_secs(15));

    // Connections beyond max_connections wait until one is free: three silent connections hold
    // every slot, and a request on a fourth is answered only once the timeout frees them.
    let silent: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&a).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(get(&a, "/health", None).status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "answered after {:?}",
        t.elapsed()
    );
    drop(silent);

    // One WebSocket client at most: a second is refused with 503 while the first is connected.
    let mut slow = ws_handshake(&a);
    let second = raw_status(
        &a,
        &format!(
            "GET /ws HTTP/1.1\r\nHost: {a}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ),
    );
    assert_eq!(second, 503);

    // The first client reads nothing while anomalies with large records are posted: once its
    // socket is full and 4 more events are queued, it is disconnected with a reason.
    let accounts = history_accounts();
    let comment = "c".repeat(9_000);
    let mut flagged = 0;
    for day in 0..60 {
        if flagged >= 1_500 {
            break;
        }
        let date = format!("2024-04-{:02}", 1 + day % 28);
        let date = if day >= 28 {
            date.replace("-04-", "-05-")
        } else {
            date
        };
        let records: Vec<Value> = accounts
            .iter()
            .enumerate()
            .map(|(i, acct)| {
                let mut r = acct.clone();
                r["As of Date"] = json!(date);
                let gl: f64 = 1.0e7 + (day * 1000 + i) as f64 * 37.0;
                r["GL Balance"] = json!(format!("{gl:.2}"));
                r["IHub Balance"] = json!("0.00");
                r["Comments"] = json!(comment);
                r
            })
            .collect();
        let r = post_json(&a, "/batch_anomaly", &json!({"records": records}), None);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        flagged += r.json()["anomalies"].as_u64().unwrap();
    }
    assert!(flagged >= 1_500, "only {flagged} anomalies posted");
    let reason = read_until_close(&mut slow);
    assert!(reason.contains("too slow"), "closed with {reason:?}");
    // Its slot is free again.
    std::thread::sleep(Duration::from_millis(200));
    assert!(WsClient::connect(&a, None).is_ok());
    assert!(svc.stop().success());
}

/// One record per account of the history (its identifying fields), to post later dates for.
fn history_accounts() -> Vec<Value> {
    let text = std::fs::read_to_string(repo(service::GL_HISTORY)).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 8 {
            continue;
        }
        let key = f[1..5].join("|");
        if !seen.insert(key) {
            continue;
        }
        let mut r = serde_json::Map::new();
        for (i, h) in header.iter().enumerate().take(7) {
            r.insert(h.to_string(), json!(f[i]));
        }
        r.insert("Match Status".into(), json!("Break"));
        out.push(Value::Object(r));
    }
    assert!(out.len() >= 50, "{} accounts", out.len());
    out
}

/// Opens a WebSocket by hand (so that nothing reads it until asked).
fn ws_handshake(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(
        format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// Reads server frames (unmasked) until a close frame; returns its reason.
fn read_until_close(s: &mut TcpStream) -> String {
    let mut frames = 0;
    loop {
        let mut h = [0u8; 2];
        if s.read_exact(&mut h).is_err() {
            return format!("(connection ended without a close frame after {frames} frames)");
        }
        let opcode = h[0] & 0x0f;
        let mut len = (h[1] & 0x7f) as u64;
        if len == 126 {
            let mut e = [0u8; 2];
            s.read_exact(&mut e).unwrap();
            len = u16::from_be_bytes(e) as u64;
        } else if len == 127 {
            let mut e = [0u8; 8];
            s.read_exact(&mut e).unwrap();
            len = u64::from_be_bytes(e);
        }
        let mut payload = vec![0u8; len as usize];
        s.read_exact(&mut payload).unwrap();
        frames += 1;
        if opcode == 0x8 {
            return String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).to_string();
        }
    }
}

/// Account states beyond `max_accounts_in_memory` live in the store: the service holds fewer
/// than the history has, and each account's next record still sees all of its history.
#[test]
fn account_states_beyond_the_memory_bound_come_back_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    // 64 shards of one account each.
    let cfg = config(dir.path(), "[service]\nmax_accounts_in_memory = 1\n");
    let svc = start(
        dir.path(),
        &dir.path().join("data"),
        Some(&cfg),
        &["--history", &history()],
        &[],
    )
    .unwrap();
    let a = svc.addr.clone();
    let held = |a: &str| get(a, "/health", None).json()["accounts"].as_u64().unwrap();
    assert!(held(&a) <= 64, "{} accounts in memory", held(&a));
    let accounts = history_accounts();
    assert_eq!(accounts.len(), 100);
    for acct in &accounts {
        let mut r = acct.clone();
        r["As of Date"] = json!("2024-04-02");
        r["GL Balance"] = json!("100.00");
        r["IHub Balance"] = json!("100.00");
        let got = post_json(&a, "/realtime_anomaly", &r, None).json();
        assert!(
            got["previous_records"].as_u64().unwrap() >= 30,
            "{}: {got}",
            r["Account"]
        );
    }
    assert!(held(&a) <= 64);
    assert!(svc.stop().success());
}
