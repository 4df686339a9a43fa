//! The real `breakdesk serve` on 127.0.0.1 (a free port), a small HTTP/1.1 client over a
//! TcpStream (so malformed and oversized requests can be sent as they are), and a WebSocket
//! client.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const GL_HISTORY: &str = "assets/samples/gl_ihub_history.csv";

pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A running service; stopped (SIGTERM, then kill) on drop.
pub struct Service {
    pub child: Child,
    pub addr: String,
    /// What the service printed on stderr, line by line, as it comes.
    pub stderr: mpsc::Receiver<String>,
}

/// Starts `breakdesk serve --bind 127.0.0.1:0` with `args`, the data dir `data`, a private home
/// under `dir`, and `env`; waits (at most 240 s: it may train a model) until it listens.
pub fn start(
    dir: &Path,
    data: &Path,
    config: Option<&Path>,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<Service, String> {
    let home = dir.join("home");
    let mut c = Command::new(env!("CARGO_BIN_EXE_breakdesk"));
    c.env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("BREAKDESK_API_TOKEN")
        .args(["--data-dir", data.to_str().unwrap()]);
    if let Some(cfg) = config {
        c.args(["--config", cfg.to_str().unwrap()]);
    }
    c.arg("serve").args(args);
    if !args.contains(&"--bind") {
        c.args(["--bind", "127.0.0.1:0"]);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| e.to_string())?;
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap().to_string();
                    return Ok(Service {
                        child,
                        addr,
                        stderr: rx,
                    });
                }
                seen.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    // Drain what is left.
                    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
                        seen.push(l);
                    }
                    return Err(format!("exited with {status}: {}", seen.join("\n")));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().map_err(|e| e.to_string())?;
                return Err(format!("exited with {status}: {}", seen.join("\n")));
            }
        }
    }
    let _ = child.kill();
    Err(format!("did not start within 240 s: {}", seen.join("\n")))
}

impl Service {
    /// Stops the service with SIGTERM (a clean stop) and waits for it (at most 30 s).
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A response: status, headers (lower-case names), body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request (`Connection: close`) and reads the whole answer (10 s at most).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (e.g. 413) before reading everything: a failed write is fine.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    // The service sends a Content-Length (no chunked bodies).
    let body = raw[split + 4..].to_vec();
    Response {
        status,
        headers,
        body,
    }
}

pub fn post_json(addr: &str, path: &str, body: &Value, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        h.push(("Authorization", a.as_str()));
    }
    request(addr, "POST", path, &h, body.to_string().as_bytes())
}

pub fn get(addr: &str, path: &str, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![];
    if let Some(a) = &auth {
        h.push(("Authorization", a.as_str()));
    }
    request(addr, "GET", path, &h, b"")
}

/// A gl_ihub record.
pub fn gl_record(date: &str, account: &str, gl: f64, ihub: f64) -> Value {
    serde_json::json!({
        "As of Date": date,
        "Company": "00000",
        "Account": account,
        "AU": "7052",
        "Currency": "USD",
        "Primary Account": format!("{account}-Test"),
        "Secondary Account": format!("IHUB-{account}"),
        "GL Balance": format!("{gl:.2}"),
        "IHub Balance": format!("{ihub:.2}"),
        "Balance Difference": format!("{:.2}", gl - ihub),
        "Match Status": if (gl - ihub).abs() > 0.01 { "Break" } else { "Match" },
        "Comments": "",
    })
}

/// A WebSocket client on its own thread: messages (text) arrive on the channel.
pub struct WsClient {
    pub messages: mpsc::Receiver<Value>,
}

impl WsClient {
    pub fn connect(addr: &str, token: Option<&str>) -> Result<WsClient, String> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("ws://{addr}/ws");
        let mut req = url.into_client_request().map_err(|e| e.to_string())?;
        if let Some(t) = token {
            req.headers_mut()
                .insert("Authorization", format!("Bearer {t}").parse().unwrap());
        }
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let conn = tokio::time::timeout(
                    Duration::from_secs(10),
                    tokio_tungstenite::connect_async(req),
                )
                .await;
                let mut ws = match conn {
                    Ok(Ok((ws, _))) => {
                        let _ = ready_tx.send(Ok(()));
                        ws
                    }
                    Ok(Err(e)) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                    Err(_) => {
                        let _ = ready_tx.send(Err("timed out".into()));
                        return;
                    }
                };
                // At most 120 s of listening.
                let end = tokio::time::Instant::now() + Duration::from_secs(120);
                while let Ok(Some(Ok(m))) = tokio::time::timeout_at(end, ws.next()).await {
                    if let tokio_tungstenite::tungstenite::Message::Text(t) = m
                        && let Ok(v) = serde_json::from_str::<Value>(t.as_str())
                        && tx.send(v).is_err()
                    {
                        break;
                    }
                }
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(15))
            .map_err(|e| e.to_string())??;
        Ok(WsClient { messages: rx })
    }

    /// The next message whose `type` is `kind` (others are skipped), within `limit`.
    pub fn next_of(&self, kind: &str, limit: Duration) -> Option<Value> {
        let end = Instant::now() + limit;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.messages.recv_timeout(left) {
                Ok(v) if v["type"] == kind => return Some(v),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }
}
