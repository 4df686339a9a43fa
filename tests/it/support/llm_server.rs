//! Loopback chat-completions server for breakdesk's LLM client tests and
//! benchmarks.
//!
//! The server listens on 127.0.0.1 with an OS-chosen port, runs on its own
//! thread and tokio runtime (so blocking code can use it), answers every
//! request with whatever a scripted handler returns, and records what it
//! received. It stops when dropped.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

/// What the server answers to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code (an invalid one becomes 500).
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// Response body, sent as is.
    pub body: String,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Reply {
    /// A 200 answer with `content`, finish_reason "stop" and small usage.
    pub fn ok(content: &str) -> Self {
        Self::chat(content, "stop")
    }

    /// A 200 answer with `content` and `finish_reason`.
    pub fn chat(content: &str, finish_reason: &str) -> Self {
        Self::status(200, chat_body(content, finish_reason))
    }

    /// Any status with a raw body.
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// An OpenAI-style error answer: `{"error":{"message":..}}`.
    pub fn error(status: u16, message: &str) -> Self {
        Self::status(
            status,
            json!({"error": {"message": message, "type": "test_error"}}).to_string(),
        )
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Answers only after `delay`.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A chat-completions JSON body with one choice and usage 10/5.
pub fn chat_body(content: &str, finish_reason: &str) -> String {
    chat_body_with_usage(content, finish_reason, 10, 5)
}

/// A chat-completions JSON body with one choice and the given usage.
pub fn chat_body_with_usage(
    content: &str,
    finish_reason: &str,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> String {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000u64,
        "model": "test-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": finish_reason,
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    })
    .to_string()
}

/// The text of the user message in a chat-completions request body.
pub fn user_message(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|messages| messages.iter().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Query string without `?`, if any.
    pub query: Option<String>,
    /// Headers with lower-case names, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Body parsed as JSON (`Value::Null` if it is not JSON).
    pub body: Value,
    /// Raw body text.
    pub raw_body: String,
    /// When the request arrived.
    pub received_at: Instant,
}

impl RecordedRequest {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Value, usize) -> Reply + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    count: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// Decrements the in-flight counter even when the client hangs up early.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running loopback server; stops when dropped.
pub struct LlmServer {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LlmServer {
    /// Starts a server whose answers come from `handler(request body, request
    /// number)`, numbers starting at 0 in arrival order.
    pub fn start(handler: impl Fn(&Value, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind a loopback port for the test server");
        listener
            .set_nonblocking(true)
            .expect("make the test server socket non-blocking");
        let addr = listener.local_addr().expect("test server address");
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            count: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let thread = serve_in_thread("llm-test-server", "LLM", listener, app, stopped);
        Self {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Starts a server that answers every request with `reply`.
    pub fn always(reply: Reply) -> Self {
        Self::start(move |_, _| reply.clone())
    }

    /// Base URL to put in the client settings: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Socket address the server listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Number of requests received so far.
    pub fn request_count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// Largest number of requests that were being handled at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// All requests received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The JSON bodies received so far, in arrival order.
    pub fn bodies(&self) -> Vec<Value> {
        self.requests().into_iter().map(|r| r.body).collect()
    }

    /// The headers of every request received so far, in arrival order.
    pub fn headers(&self) -> Vec<Vec<(String, String)>> {
        self.requests().into_iter().map(|r| r.headers).collect()
    }
}

impl Drop for LlmServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now_in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _in_flight = InFlight(&shared.in_flight);
    shared
        .max_in_flight
        .fetch_max(now_in_flight, Ordering::SeqCst);

    let raw_body = String::from_utf8_lossy(&body).into_owned();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let recorded = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: json.clone(),
        raw_body,
        received_at: Instant::now(),
    };
    // Number and record are taken under one lock so numbers follow the
    // order of the recorded list.
    let number = {
        let mut requests = shared
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        requests.push(recorded);
        shared.count.fetch_add(1, Ordering::SeqCst)
    };

    let reply = (shared.handler)(&json, number);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (name, value) in &reply.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(Body::from(reply.body)).unwrap_or_else(|_| {
        let mut response = Response::new(Body::from("invalid scripted reply"));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response
    })
}

/// Serves `app` on `listener` from a thread of its own (a tokio runtime of 2 workers) until
/// `stopped` fires; `what` names the server in a failure message. Connections still open (for
/// example a delayed answer the client gave up on) are dropped with the runtime.
pub fn serve_in_thread(
    name: &str,
    what: &'static str,
    listener: std::net::TcpListener,
    app: Router,
    stopped: tokio::sync::oneshot::Receiver<()>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("test server runtime");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("test server listener");
                tokio::select! {
                    result = axum::serve(listener, app) => {
                        if let Err(error) = result {
                            eprintln!("test {what} server failed: {error}");
                        }
                    }
                    _ = stopped => {}
                }
            });
            runtime.shutdown_background();
        })
        .expect("start the test server thread")
}
