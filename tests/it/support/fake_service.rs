//! A loopback stand-in for `breakdesk serve`'s WebSocket and case routes, for the live TUI's
//! tests: `GET /ws` sends `hello` and then whatever the test pushes (or closes the socket when
//! told); the REST routes are answered by the test's handler; every request is recorded. With
//! a token, every route answers 401 without `Authorization: Bearer <token>`, as the service
//! does. 127.0.0.1 with an OS-chosen port; stops when dropped.
#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// One REST request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Debug, Clone)]
enum Push {
    Text(String),
    Close,
}

type Handler = dyn Fn(&Req) -> (u16, Value) + Send + Sync;

struct Shared {
    token: Option<String>,
    handler: Box<Handler>,
    push: broadcast::Sender<Push>,
    requests: Mutex<Vec<Req>>,
    connections: AtomicUsize,
    ws_attempts: AtomicUsize,
}

pub struct FakeService {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeService {
    /// Starts the fake; `handler` answers the REST requests (status, JSON body).
    pub fn start(
        token: Option<&str>,
        handler: impl Fn(&Req) -> (u16, Value) + Send + Sync + 'static,
    ) -> FakeService {
        let (push, _) = broadcast::channel(256);
        let shared = Arc::new(Shared {
            token: token.map(str::to_string),
            handler: Box::new(handler),
            push,
            requests: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            ws_attempts: AtomicUsize::new(0),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let st = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new()
                    .route("/ws", axum::routing::get(ws))
                    .fallback(rest)
                    .with_state(st);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        FakeService {
            addr,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The WebSocket URL.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Sends a message to every connected client.
    pub fn push(&self, v: &Value) {
        let _ = self.shared.push.send(Push::Text(v.to_string()));
    }

    /// Closes every client's socket (the client should reconnect).
    pub fn close_sockets(&self) {
        let _ = self.shared.push.send(Push::Close);
    }

    /// WebSocket connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests of `/ws`, refused ones included.
    pub fn ws_attempts(&self) -> usize {
        self.shared.ws_attempts.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeService {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        // Open WebSockets keep a graceful shutdown waiting: closing them ends it.
        let _ = self.shared.push.send(Push::Close);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn authorized(st: &Shared, headers: &HeaderMap) -> bool {
    match &st.token {
        None => true,
        Some(t) => {
            headers.get("authorization").and_then(|v| v.to_str().ok())
                == Some(format!("Bearer {t}").as_str())
        }
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": {"status": 401, "message": "missing or wrong bearer token (Authorization: Bearer <token>)"}})),
    )
        .into_response()
}

async fn ws(State(st): State<Arc<Shared>>, req: axum::extract::Request) -> Response {
    st.ws_attempts.fetch_add(1, Ordering::SeqCst);
    if !authorized(&st, req.headers()) {
        return unauthorized();
    }
    let (mut parts, _) = req.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    upgrade.on_upgrade(move |socket| stream(socket, st))
}

async fn stream(mut socket: WebSocket, st: Arc<Shared>) {
    // Subscribed before hello, as the service is: what is pushed after hello arrives.
    let mut rx = st.push.subscribe();
    st.connections.fetch_add(1, Ordering::SeqCst);
    let hello = json!({"type": "hello", "model_version": "iforest-test-1", "profile": "gl_ihub"});
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Ok(Push::Text(t)) => {
                    if socket.send(Message::Text(t.into())).await.is_err() {
                        return;
                    }
                }
                Ok(Push::Close) | Err(_) => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            m = socket.recv() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn rest(
    State(st): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Req {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    st.requests.lock().unwrap().push(req.clone());
    if !authorized(&st, &headers) {
        return unauthorized();
    }
    let (status, body) = (st.handler)(&req);
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}
