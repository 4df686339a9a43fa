//! A small SMTP sink on 127.0.0.1 for the dispatch tests: EHLO, STARTTLS (tokio-rustls with a
//! certificate made at test time by rcgen), implicit TLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT. It records every message with whether the session was encrypted and who
//! logged in, and can be switched to refuse service (421) or to stall (accept and never greet).
//!
//! It runs on its own thread and runtime, and stops when dropped.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How the server protects a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Plain first; STARTTLS offered (and AUTH only after it).
    StartTls,
    /// TLS from the first byte (port 465 style).
    Implicit,
    /// No TLS at all (a local relay).
    Plain,
}

/// What the server does with a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Serve SMTP.
    Up,
    /// Answer `421` and hang up (a server refusing service).
    Down,
    /// Accept and never answer (the client waits until its timeout or until it is killed).
    Stall,
}

/// One message as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// `MAIL FROM` address.
    pub from: String,
    /// `RCPT TO` addresses.
    pub to: Vec<String>,
    /// The message with dot-stuffing removed (CRLF line ends).
    pub data: String,
    /// Whether the session was encrypted when DATA was sent.
    pub tls: bool,
    /// Whether the encryption came from STARTTLS.
    pub starttls: bool,
    /// The login (user, password) of the session, if any.
    pub auth: Option<(String, String)>,
}

/// The certificate authority and server certificate of one test server.
pub struct TestPki {
    /// The CA certificate (PEM) a client must trust.
    pub ca_pem: String,
    server_config: Arc<rustls::ServerConfig>,
}

impl TestPki {
    /// A fresh CA and a server certificate for 127.0.0.1 and localhost signed by it.
    pub fn new() -> TestPki {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "breakdesk test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        let key = rcgen::KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &ca).expect("server certificate");
        let der_key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
            .expect("server key DER");
        let server_config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone(), ca.der().clone()], der_key)
            .expect("server TLS config");
        TestPki {
            ca_pem: ca.pem(),
            server_config: Arc::new(server_config),
        }
    }

    /// Writes the CA certificate to `path` (for `ca_file` settings).
    pub fn write_ca(&self, path: &std::path::Path) {
        std::fs::write(path, &self.ca_pem).expect("write the CA certificate");
    }
}

struct Shared {
    mode: Mutex<Mode>,
    security: Security,
    tls: tokio_rustls::TlsAcceptor,
    messages: Mutex<Vec<Received>>,
    connections: AtomicUsize,
    refused: AtomicUsize,
    stalled: AtomicUsize,
}

/// A running SMTP sink; stops when dropped.
pub struct SmtpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SmtpServer {
    /// Starts a server on 127.0.0.1 (an OS-chosen port, or `port`) with `pki`'s certificate.
    pub fn start(pki: &TestPki, security: Security, mode: Mode) -> SmtpServer {
        Self::start_on(pki, security, mode, 0)
    }

    /// As [`SmtpServer::start`], on a given port (to come back up where a stopped one was).
    pub fn start_on(pki: &TestPki, security: Security, mode: Mode, port: u16) -> SmtpServer {
        let listener = bind(port);
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("address");
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            security,
            tls: tokio_rustls::TlsAcceptor::from(pki.server_config.clone()),
            messages: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            stalled: AtomicUsize::new(0),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("smtp-test-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("SMTP test server runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("SMTP listener");
                    let accept = async {
                        loop {
                            let Ok((stream, _)) = listener.accept().await else {
                                continue;
                            };
                            let state = Arc::clone(&state);
                            tokio::spawn(async move {
                                let _ = serve(stream, state).await;
                            });
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stopped => {}
                    }
                });
                runtime.shutdown_background();
            })
            .expect("start the SMTP test server");
        SmtpServer {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switches what new connections get.
    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// The messages received so far.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.messages.lock().unwrap().clone()
    }

    /// Connections accepted so far (served, refused or stalled).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections answered with 421.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Connections left waiting.
    pub fn stalled(&self) -> usize {
        self.shared.stalled.load(Ordering::SeqCst)
    }

    /// Waits until `cond` holds (checked every 10 ms), at most `limit`.
    pub fn wait_for(&self, limit: Duration, cond: impl Fn(&SmtpServer) -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if cond(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        cond(self)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bind(port: u16) -> std::net::TcpListener {
    // A port just released may linger briefly.
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return l,
            Err(e) if Instant::now() < end && port != 0 => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("bind 127.0.0.1:{port}: {e}"),
        }
    }
}

/// A port on 127.0.0.1 that nothing listens on now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let mode = *shared.mode.lock().unwrap();
    match mode {
        Mode::Down => {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let mut stream = stream;
            stream
                .write_all(b"421 4.3.2 Service not available, closing channel\r\n")
                .await?;
            return stream.shutdown().await;
        }
        Mode::Stall => {
            shared.stalled.fetch_add(1, Ordering::SeqCst);
            // Hold the connection open without a word until the client goes away.
            let mut buf = [0u8; 256];
            let mut stream = stream;
            loop {
                match tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => {}
                }
            }
        }
        Mode::Up => {}
    }
    match shared.security {
        Security::Implicit => {
            let tls = shared.tls.accept(stream).await?;
            session(tls, &shared, true, false, true).await.map(|_| ())
        }
        Security::Plain => session(stream, &shared, false, false, true)
            .await
            .map(|_| ()),
        Security::StartTls => {
            match session(stream, &shared, false, false, true).await? {
                Some(plain) => {
                    let tls = shared.tls.accept(plain).await?;
                    // After STARTTLS the client starts over with EHLO (no new greeting).
                    session(tls, &shared, true, true, false).await.map(|_| ())
                }
                None => Ok(()),
            }
        }
    }
}

/// Serves one SMTP session on `stream`. Returns the stream when the client asked for
/// STARTTLS (to continue over TLS), else `None` when the session ended.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    shared: &Shared,
    tls: bool,
    starttls: bool,
    greet: bool,
) -> std::io::Result<Option<S>> {
    let mut io = BufReader::new(stream);
    if greet {
        io.get_mut()
            .write_all(b"220 127.0.0.1 ESMTP breakdesk-test\r\n")
            .await?;
    }
    let mut from = String::new();
    let mut to: Vec<String> = Vec::new();
    let mut auth: Option<(String, String)> = None;
    let mut line = String::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    loop {
        line.clear();
        if io.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let mut r = String::from("250-127.0.0.1 greets you\r\n250-8BITMIME\r\n");
            if shared.security == Security::StartTls && !tls {
                r.push_str("250-STARTTLS\r\n");
            }
            if tls || shared.security == Security::Plain {
                r.push_str("250-AUTH PLAIN LOGIN\r\n");
            }
            r.push_str("250 SIZE 10485760\r\n");
            r
        } else if upper.starts_with("HELO") {
            "250 127.0.0.1\r\n".into()
        } else if upper == "STARTTLS" {
            if tls || shared.security != Security::StartTls {
                "502 5.5.1 not offered\r\n".into()
            } else {
                io.get_mut()
                    .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                    .await?;
                io.get_mut().flush().await?;
                return Ok(Some(io.into_inner()));
            }
        } else if upper.starts_with("AUTH PLAIN") {
            let initial = cmd.get(10..).unwrap_or("").trim().to_string();
            let encoded = if initial.is_empty() {
                io.get_mut().write_all(b"334 \r\n").await?;
                line.clear();
                io.read_line(&mut line).await?;
                line.trim().to_string()
            } else {
                initial
            };
            let decoded = b64.decode(encoded.as_bytes()).unwrap_or_default();
            let parts: Vec<String> = decoded
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).to_string())
                .collect();
            if parts.len() == 3 {
                auth = Some((parts[1].clone(), parts[2].clone()));
                "235 2.7.0 Authentication successful\r\n".into()
            } else {
                "501 5.5.2 bad AUTH PLAIN\r\n".into()
            }
        } else if upper.starts_with("AUTH LOGIN") {
            io.get_mut().write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            line.clear();
            io.read_line(&mut line).await?;
            let user =
                String::from_utf8_lossy(&b64.decode(line.trim()).unwrap_or_default()).to_string();
            io.get_mut().write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            line.clear();
            io.read_line(&mut line).await?;
            let pass =
                String::from_utf8_lossy(&b64.decode(line.trim()).unwrap_or_default()).to_string();
            auth = Some((user, pass));
            "235 2.7.0 Authentication successful\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = angle(&cmd[10..]);
            to.clear();
            "250 2.1.0 Ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            to.push(angle(&cmd[8..]));
            "250 2.1.5 Ok\r\n".into()
        } else if upper == "DATA" {
            io.get_mut()
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                line.clear();
                if io.read_line(&mut line).await? == 0 {
                    return Ok(None);
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                data.push_str(unstuffed);
            }
            let n = {
                let mut m = shared.messages.lock().unwrap();
                m.push(Received {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                    tls,
                    starttls,
                    auth: auth.clone(),
                });
                m.len()
            };
            format!("250 2.0.0 Ok: queued as TEST{n}\r\n")
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            "250 2.0.0 Ok\r\n".into()
        } else if upper == "NOOP" {
            "250 2.0.0 Ok\r\n".into()
        } else if upper == "QUIT" {
            io.get_mut().write_all(b"221 2.0.0 Bye\r\n").await?;
            let _ = io.get_mut().shutdown().await;
            return Ok(None);
        } else {
            "502 5.5.2 Command not recognized\r\n".into()
        };
        io.get_mut().write_all(reply.as_bytes()).await?;
        io.get_mut().flush().await?;
    }
}

fn angle(s: &str) -> String {
    let s = s.trim();
    let inner = s
        .strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .map(|(a, _)| a)
        .unwrap_or(s);
    inner.to_string()
}
