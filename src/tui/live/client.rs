//! The live client: one background thread, with its own small tokio runtime, holds the
//! WebSocket (`GET /ws`) of a `breakdesk serve` and makes the REST calls the app asks for
//! (decisions, a case's audit trail, lists of cases). Everything it receives is turned into
//! [`LiveEvent`]s here — the JSON read, the record's amounts typed through its profile — and
//! sent to the app over a std channel, which the UI thread polls between keys. Nothing here
//! blocks the UI thread.
//!
//! The connection: `connecting` → `live`; when it drops or cannot be made, `reconnecting` after
//! a backoff (0.5 s doubling to 30 s, reset once connected). A refusal that retrying cannot
//! cure (a wrong URL, a missing or wrong token, no `/ws` route) ends in `error`. After each
//! connection the open cases are fetched, so what was decided or flagged while the client was
//! away is shown too.
//!
//! The client stops when the app drops its end ([`Client`]).

use super::{ConnState, LiveEvent, LiveRow, Refusal};
use crate::cases::{Case, Event, Status};
use crate::ingest::prepare::PrepareOptions;
use crate::profile::Profile;
use crate::realtime::record::RecordReader;
use futures_util::StreamExt;
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::mpsc as tmpsc;
use tokio_tungstenite::tungstenite;

/// How long a connection attempt or a REST call may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The first and the longest wait before connecting again.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Cases per page of `GET /cases` (the service's maximum).
const PAGE: usize = 10_000;
/// The statuses of the open cases fetched after connecting: work waiting for an analyst or a
/// supervisor.
pub const OPEN_STATUSES: [Status; 3] = [
    Status::PendingReview,
    Status::Returned,
    Status::AutoResolveProposed,
];

/// Where the service is and how to authenticate.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// The WebSocket URL, `ws://HOST:PORT/ws`.
    pub url: String,
    /// The bearer token sent with every request (the WebSocket's included). Never logged.
    pub token: Option<String>,
}

/// The service's WebSocket URL and the base of its REST routes.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    pub ws: Url,
    pub rest: Url,
}

/// Reads `ws://HOST:PORT/ws` (or a path ending in `/ws` behind a prefix): the REST routes are
/// the same address over HTTP, without the final `/ws`.
pub fn endpoints(url: &str) -> Result<Endpoints, String> {
    let ws = Url::parse(url.trim()).map_err(|e| format!("{url:?} is not a URL ({e})"))?;
    match ws.scheme() {
        "ws" => {}
        "wss" => {
            return Err(format!(
                "{url}: wss:// (TLS) is not supported by the live client; use ws:// to a service on this machine or through a tunnel (e.g. ssh -L)"
            ));
        }
        other => {
            return Err(format!(
                "{url}: the live URL is the service's WebSocket, ws://HOST:PORT/ws (not {other}://)"
            ));
        }
    }
    if ws.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url}: no host"));
    }
    let mut rest = ws.clone();
    rest.set_scheme("http")
        .map_err(|_| format!("{url}: cannot derive the REST address"))?;
    rest.set_query(None);
    rest.set_fragment(None);
    let path = ws.path().trim_end_matches('/');
    let base = path.strip_suffix("/ws").unwrap_or(path);
    rest.set_path(&format!("{base}/"));
    Ok(Endpoints { ws, rest })
}

/// What the app asks the client for.
#[derive(Debug)]
pub enum Request {
    /// `POST /cases/{id}/decision`; the answer comes back as [`LiveEvent::Decided`].
    Decide {
        batch: u64,
        case_id: String,
        body: Value,
    },
    /// `GET /cases/{id}`: the case and its audit trail ([`LiveEvent::Trail`]).
    Trail { case_id: String },
    /// `GET /cases?status=AutoResolveProposed` ([`LiveEvent::Approvals`]).
    Approvals,
    /// The open cases again ([`LiveEvent::OpenCases`]), e.g. after events were missed.
    OpenCases,
}

/// The app's end of the client.
pub struct Client {
    requests: tmpsc::UnboundedSender<Request>,
    pub(super) events: mpsc::Receiver<LiveEvent>,
}

impl Client {
    /// Starts the client's thread; it connects at once. A URL it cannot use is reported as the
    /// `error` state (the command line checks it first with [`endpoints`]).
    pub fn spawn(opts: &LiveOptions, ingest: PrepareOptions) -> Client {
        let (req_tx, req_rx) = tmpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::channel();
        let opts = opts.clone();
        let spawned = std::thread::Builder::new()
            .name("breakdesk-live".into())
            .spawn({
                let ev_tx = ev_tx.clone();
                move || run(opts, ingest, ev_tx, req_rx)
            });
        if let Err(e) = spawned {
            let _ = ev_tx.send(LiveEvent::State(ConnState::Error(format!(
                "cannot start the live client: {e}"
            ))));
        }
        Client {
            requests: req_tx,
            events: ev_rx,
        }
    }

    /// Asks for something; false when the client has stopped.
    pub fn send(&self, r: Request) -> bool {
        self.requests.send(r).is_ok()
    }
}

fn run(
    opts: LiveOptions,
    ingest: PrepareOptions,
    tx: mpsc::Sender<LiveEvent>,
    requests: tmpsc::UnboundedReceiver<Request>,
) {
    let fail = |m: String| {
        let _ = tx.send(LiveEvent::State(ConnState::Error(m)));
    };
    let ends = match endpoints(&opts.url) {
        Ok(e) => e,
        Err(m) => return fail(m),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the live client: {e}")),
    };
    let api = match Api::new(ends.rest.clone(), opts.token.clone()) {
        Ok(a) => a,
        Err(m) => return fail(m),
    };
    rt.block_on(async move {
        // Ends when the app drops its end (the requests close) or stops listening.
        tokio::select! {
            _ = connection(ends.ws, opts.token, api.clone(), ingest.clone(), tx.clone()) => {}
            _ = serve_requests(requests, api, ingest, tx) => {}
        }
    });
}

/// The wait before connection attempt `attempt` (1 = the first retry).
pub fn backoff(attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(10);
    (BACKOFF_FIRST * factor).min(BACKOFF_MAX)
}

/// Holds the WebSocket, reconnecting with backoff. Returns when the app stops listening; after a
/// refusal retrying cannot cure it waits for the end.
async fn connection(
    url: Url,
    token: Option<String>,
    api: Api,
    ingest: PrepareOptions,
    tx: mpsc::Sender<LiveEvent>,
) {
    let send = |e: LiveEvent| tx.send(e).is_ok();
    let mut decoder = Decoder::new(ingest.clone());
    let mut attempt: u32 = 0;
    loop {
        if !send(LiveEvent::State(ConnState::Connecting { attempt })) {
            return;
        }
        let error = match open_socket(&url, token.as_deref()).await {
            Err(Failure::Permanent(m)) => {
                send(LiveEvent::State(ConnState::Error(m)));
                return std::future::pending().await;
            }
            Err(Failure::Transient(m)) => m,
            Ok(mut ws) => {
                attempt = 0;
                if !send(LiveEvent::State(ConnState::Live)) {
                    return;
                }
                // Subscribed first, then the open cases: nothing falls between the two.
                tokio::spawn(fetch_open(api.clone(), ingest.clone(), tx.clone()));
                loop {
                    match ws.next().await {
                        Some(Ok(tungstenite::Message::Text(t))) => {
                            if let Some(e) = decoder.decode(t.as_str())
                                && !send(e)
                            {
                                return;
                            }
                        }
                        Some(Ok(tungstenite::Message::Close(_))) | None => {
                            break "the service closed the connection".to_string();
                        }
                        // Pings are answered by the library; nothing else is expected.
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break e.to_string(),
                    }
                }
            }
        };
        attempt = attempt.saturating_add(1);
        let wait = backoff(attempt);
        if !send(LiveEvent::State(ConnState::Reconnecting {
            attempt,
            wait,
            error,
        })) {
            return;
        }
        tokio::time::sleep(wait).await;
    }
}

enum Failure {
    /// Worth retrying (the service is down, restarting, unreachable).
    Transient(String),
    /// Retrying cannot help (bad URL, no or wrong token, no such route).
    Permanent(String),
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_socket(url: &Url, token: Option<&str>) -> Result<Socket, Failure> {
    use tungstenite::client::IntoClientRequest;
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| Failure::Permanent(e.to_string()))?;
    if let Some(t) = token {
        let v = format!("Bearer {t}")
            .parse()
            .map_err(|_| Failure::Permanent("the token is not a valid header value".into()))?;
        req.headers_mut().insert("Authorization", v);
    }
    match tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(req)).await {
        Err(_) => Err(Failure::Transient(format!(
            "no answer within {} s",
            TIMEOUT.as_secs()
        ))),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(resp))) => {
            let status = resp.status();
            let message = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string));
            let text = match message {
                Some(m) => format!("{status}: {m}"),
                None => status.to_string(),
            };
            if matches!(status.as_u16(), 400 | 401 | 403 | 404 | 405) {
                Err(Failure::Permanent(text))
            } else {
                Err(Failure::Transient(text))
            }
        }
        Ok(Err(e @ tungstenite::Error::Url(_))) => Err(Failure::Permanent(e.to_string())),
        Ok(Err(tungstenite::Error::Io(e))) => Err(Failure::Transient(e.to_string())),
        Ok(Err(e)) => Err(Failure::Transient(e.to_string())),
    }
}

/// Fetches the open cases (every page of each open status) and reports them as rows.
async fn fetch_open(api: Api, ingest: PrepareOptions, tx: mpsc::Sender<LiveEvent>) {
    let mut all = Vec::new();
    for status in OPEN_STATUSES {
        match api.cases(status).await {
            Ok(mut c) => all.append(&mut c),
            Err(r) => {
                let _ = tx.send(LiveEvent::OpenCases(Err(r.message)));
                return;
            }
        }
    }
    // Oldest ticket first: they are numbered as they were opened.
    all.sort_by(|a, b| a.ticket.cmp(&b.ticket));
    let mut decoder = Decoder::new(ingest);
    let rows = all.iter().map(|c| decoder.row_of_case(c)).collect();
    let _ = tx.send(LiveEvent::OpenCases(Ok(rows)));
}

async fn serve_requests(
    mut requests: tmpsc::UnboundedReceiver<Request>,
    api: Api,
    ingest: PrepareOptions,
    tx: mpsc::Sender<LiveEvent>,
) {
    while let Some(r) = requests.recv().await {
        let (api, tx, ingest) = (api.clone(), tx.clone(), ingest.clone());
        // Each call on its own: a slow one holds up nothing else.
        tokio::spawn(async move {
            let event = match r {
                Request::Decide {
                    batch,
                    case_id,
                    body,
                } => {
                    let result = api.decide(&case_id, &body).await;
                    LiveEvent::Decided {
                        batch,
                        case_id,
                        result,
                    }
                }
                Request::Trail { case_id } => {
                    let result = api
                        .case(&case_id)
                        .await
                        .map(|(c, events)| (Box::new(c), events))
                        .map_err(|r| r.message);
                    LiveEvent::Trail { case_id, result }
                }
                Request::OpenCases => {
                    fetch_open(api, ingest, tx).await;
                    return;
                }
                Request::Approvals => LiveEvent::Approvals(
                    api.cases(Status::AutoResolveProposed)
                        .await
                        .map_err(|r| r.message),
                ),
            };
            let _ = tx.send(event);
        });
    }
}

/// The REST routes the app uses.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

#[derive(Deserialize)]
struct CaseAnswer {
    case: Case,
}

#[derive(Deserialize)]
struct CaseWithEvents {
    case: Case,
    events: Vec<Event>,
}

#[derive(Deserialize)]
struct CaseList {
    total: usize,
    cases: Vec<Case>,
}

impl Api {
    fn new(base: Url, token: Option<String>) -> Result<Api, String> {
        // Only the first installation wins; the service's address is plain HTTP, but the
        // client is built the way every HTTP client of the product is.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("breakdesk/", env!("CARGO_PKG_VERSION")))
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if crate::net::is_loopback(&base) {
            b = b.no_proxy();
        }
        let http = b
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Api { http, base, token })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty();
            p.extend(segments);
        }
        u
    }

    /// Sends a request; a 2xx answer's JSON, or why not (the service's message for a refusal).
    async fn call(&self, req: reqwest::RequestBuilder, what: &Url) -> Result<Value, Refusal> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.map_err(|e| Refusal {
            status: None,
            message: format!("no answer from {what}: {}", crate::net::error_chain(e)),
        })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| Refusal {
            status: Some(status.as_u16()),
            message: format!("the answer of {what} was cut short: {e}"),
        })?;
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        let message = json["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{what} answered {status}"));
        Err(Refusal {
            status: Some(status.as_u16()),
            message,
        })
    }

    fn read<T: serde::de::DeserializeOwned>(v: Value, what: &Url) -> Result<T, Refusal> {
        serde_json::from_value(v).map_err(|e| Refusal {
            status: None,
            message: format!("the answer of {what} cannot be read: {e}"),
        })
    }

    async fn decide(&self, case_id: &str, body: &Value) -> Result<Box<Case>, Refusal> {
        let url = self.url(&["cases", case_id, "decision"]);
        let v = self
            .call(self.http.post(url.clone()).json(body), &url)
            .await?;
        Self::read::<CaseAnswer>(v, &url).map(|a| Box::new(a.case))
    }

    async fn case(&self, case_id: &str) -> Result<(Case, Vec<Event>), Refusal> {
        let url = self.url(&["cases", case_id]);
        let v = self.call(self.http.get(url.clone()), &url).await?;
        Self::read::<CaseWithEvents>(v, &url).map(|a| (a.case, a.events))
    }

    /// Every case with this status (page by page).
    async fn cases(&self, status: Status) -> Result<Vec<Case>, Refusal> {
        let mut out = Vec::new();
        loop {
            let mut url = self.url(&["cases"]);
            url.query_pairs_mut()
                .append_pair("status", status.as_str())
                .append_pair("limit", &PAGE.to_string())
                .append_pair("offset", &out.len().to_string());
            let v = self.call(self.http.get(url.clone()), &url).await?;
            let page: CaseList = Self::read(v, &url)?;
            let got = page.cases.len();
            out.extend(page.cases);
            if got == 0 || out.len() >= page.total {
                return Ok(out);
            }
        }
    }
}

// ----- reading the service's messages ---------------------------------------------------------

/// A record's result as the service sends it (numbers may be null: a NaN is sent so).
#[derive(Debug, Deserialize)]
struct ResultMsg {
    #[serde(default)]
    profile: String,
    #[serde(default)]
    key: String,
    date: Option<String>,
    score: Option<f64>,
    decision: Option<f64>,
    cluster: Option<f64>,
    #[serde(default)]
    top_features: String,
    bucket: Option<String>,
    bucket_confidence: Option<f64>,
    bucket_rule: Option<String>,
    severity: Option<String>,
    summary: Option<String>,
    categorized_by: Option<String>,
    case_id: Option<String>,
    ticket: Option<String>,
    case_status: Option<String>,
    #[serde(default)]
    model_version: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Msg {
    Hello {
        #[serde(default)]
        model_version: String,
        #[serde(default)]
        profile: String,
    },
    Anomaly {
        result: Box<ResultMsg>,
        #[serde(default)]
        fields: Map<String, Value>,
    },
    Status(super::StatusChange),
    Dispatch {
        item: Option<u64>,
        #[serde(default)]
        channel: String,
        #[serde(default)]
        status: String,
        error: Option<String>,
    },
    Model {
        #[serde(default)]
        status: String,
        model_version: Option<String>,
        error: Option<String>,
    },
    Lagged {
        #[serde(default)]
        missed: u64,
    },
    #[serde(other)]
    Unknown,
}

/// Turns the service's messages (and cases) into the app's events and rows. A record's amounts
/// are typed through its profile (a built-in one, resolved on the record's own field names), so
/// they read as they do in a file; for another profile the fields are shown as they are.
pub struct Decoder {
    ingest: PrepareOptions,
    readers: HashMap<(String, Vec<String>), Option<RecordReader>>,
}

impl Decoder {
    pub fn new(ingest: PrepareOptions) -> Decoder {
        Decoder {
            ingest,
            readers: HashMap::new(),
        }
    }

    /// One text message of the WebSocket as an event; `None` for a message of another kind
    /// (or one that cannot be read: logged).
    pub fn decode(&mut self, text: &str) -> Option<LiveEvent> {
        let msg: Msg = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable live message");
                return None;
            }
        };
        Some(match msg {
            Msg::Hello {
                model_version,
                profile,
            } => LiveEvent::Hello {
                model_version,
                profile,
            },
            Msg::Anomaly { result, fields } => {
                LiveEvent::Anomaly(Box::new(self.row_of_result(&result, &fields)))
            }
            Msg::Status(change) => LiveEvent::Status(change),
            Msg::Dispatch {
                item,
                channel,
                status,
                error,
            } => LiveEvent::Dispatch {
                item,
                channel,
                status,
                error,
            },
            Msg::Model {
                status,
                model_version,
                error,
            } => LiveEvent::Model {
                status,
                model_version,
                error,
            },
            Msg::Lagged { missed } => LiveEvent::Lagged(missed),
            Msg::Unknown => return None,
        })
    }

    fn row_of_result(&mut self, r: &ResultMsg, fields: &Map<String, Value>) -> LiveRow {
        let mut row = LiveRow {
            key: r.key.clone(),
            date: r.date.clone().unwrap_or_default(),
            score: r.score.unwrap_or(f64::NAN),
            decision: r.decision.unwrap_or(f64::NAN),
            cluster: r.cluster.unwrap_or(f64::NAN),
            top_features: r.top_features.clone(),
            bucket: r.bucket.clone().unwrap_or_default(),
            confidence: r.bucket_confidence.unwrap_or(f64::NAN),
            rule: r.bucket_rule.clone().unwrap_or_default(),
            severity: r.severity.clone().unwrap_or_default(),
            summary: r.summary.clone().unwrap_or_default(),
            categorized_by: r.categorized_by.clone().unwrap_or_default(),
            case_id: r.case_id.clone().unwrap_or_default(),
            ticket: r.ticket.clone().unwrap_or_default(),
            status: r.case_status.clone().unwrap_or_default(),
            model_version: r.model_version.clone(),
            ..LiveRow::default()
        };
        self.fill_fields(&mut row, &r.profile, fields);
        row
    }

    /// A case's latest record as a row (the open cases fetched after connecting).
    pub fn row_of_case(&mut self, c: &Case) -> LiveRow {
        let mut row = LiveRow {
            key: c.key.clone(),
            date: c.last_date.format("%Y-%m-%d").to_string(),
            difference: c.difference,
            score: c.score,
            bucket: c.bucket.clone(),
            confidence: c.confidence,
            rule: c.bucket_rule.clone(),
            severity: c.severity.clone(),
            summary: c.summary.clone(),
            case_id: c.id.clone(),
            ticket: c.ticket.clone(),
            status: c.status.as_str().to_string(),
            model_version: c.model_version.clone(),
            ..LiveRow::default()
        };
        self.fill_fields(&mut row, &c.profile, &c.row);
        row
    }

    /// The record's fields, and its first criteria's amounts when its profile reads it.
    fn fill_fields(&mut self, row: &mut LiveRow, profile: &str, fields: &Map<String, Value>) {
        let mut shown_as_amounts: Vec<String> = Vec::new();
        if let Some(reader) = self.reader(profile, fields)
            && let Ok(c) = reader.read(fields)
            && let (Some(crit), Some(v)) = (reader.resolved.criteria.first(), c.crit.first())
        {
            if v.diff.is_finite() {
                row.difference = v.diff;
            }
            row.lhs = v.lhs;
            row.rhs = v.rhs;
            row.titles = Some([
                crit.difference
                    .clone()
                    .unwrap_or_else(|| "difference".into()),
                crit.lhs.clone().unwrap_or_else(|| "lhs".into()),
                crit.rhs.clone().unwrap_or_else(|| "rhs".into()),
            ]);
            shown_as_amounts.extend(
                [&crit.difference, &crit.lhs, &crit.rhs]
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
        row.fields = fields
            .iter()
            .filter(|(k, _)| !shown_as_amounts.contains(k))
            .map(|(k, v)| {
                let text = match v {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect();
    }

    fn reader(&mut self, profile: &str, fields: &Map<String, Value>) -> Option<&RecordReader> {
        let names: Vec<String> = fields.keys().cloned().collect();
        let ingest = &self.ingest;
        self.readers
            .entry((profile.to_string(), names))
            .or_insert_with_key(|(profile, names)| {
                let p = Profile::builtin(profile)?;
                let resolved = p.resolve(names, "the record", &[]).ok()?;
                Some(RecordReader::new(resolved, ingest))
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_from_the_websocket_url() {
        let e = endpoints("ws://127.0.0.1:8080/ws").unwrap();
        assert_eq!(e.rest.as_str(), "http://127.0.0.1:8080/");
        let e = endpoints("ws://desk.example:9000/breakdesk/ws").unwrap();
        assert_eq!(e.rest.as_str(), "http://desk.example:9000/breakdesk/");
        let err = endpoints("http://127.0.0.1:8080/ws").unwrap_err();
        assert!(err.contains("ws://HOST:PORT/ws"), "{err}");
        let err = endpoints("wss://desk.example/ws").unwrap_err();
        assert!(err.contains("wss://"), "{err}");
        assert!(endpoints("not a url").is_err());
    }

    #[test]
    fn api_urls_keep_the_prefix_and_escape_ids() {
        let e = endpoints("ws://h:1/p/ws").unwrap();
        let api = Api::new(e.rest, None).unwrap();
        assert_eq!(
            api.url(&["cases", "a/b", "decision"]).as_str(),
            "http://h:1/p/cases/a%2Fb/decision"
        );
    }

    #[test]
    fn backoff_doubles_to_a_ceiling() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(7), Duration::from_secs(30));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn decodes_each_message_kind() {
        let mut d = Decoder::new(PrepareOptions::default());
        let hello = d
            .decode(r#"{"type":"hello","model_version":"m1","profile":"gl_ihub"}"#)
            .unwrap();
        assert!(
            matches!(hello, LiveEvent::Hello { ref model_version, .. } if model_version == "m1")
        );
        let anomaly = serde_json::json!({
            "type": "anomaly",
            "result": {
                "profile": "gl_ihub", "key": "00000|110200|7052|USD", "date": "2024-03-13",
                "score": -0.61, "decision": -0.1, "is_anomaly": true, "cluster": 2,
                "top_features": "f_x (50%)", "features": {}, "previous_records": 20,
                "bucket": "New Issue", "bucket_confidence": 0.5, "bucket_rule": "fallback",
                "severity": "High", "summary": "s", "auto_resolve": false,
                "categorized_by": "rules", "case_id": "c1", "ticket": "BRK-1",
                "case_status": "PendingReview", "data_quality": [], "model_version": "m1"
            },
            "fields": {
                "As of Date": "2024-03-13", "Company": "00000", "Account": "110200", "AU": "7052",
                "Currency": "USD", "GL Balance": "9,632,957.84", "IHub Balance": "3632957.84",
                "Balance Difference": "6000000.00", "Match Status": "Break", "Comments": ""
            }
        });
        let Some(LiveEvent::Anomaly(row)) = d.decode(&anomaly.to_string()) else {
            panic!("an anomaly row");
        };
        assert_eq!(row.case_id, "c1");
        assert_eq!(row.status, "PendingReview");
        assert_eq!(row.lhs, 9_632_957.84);
        assert_eq!(row.rhs, 3_632_957.84);
        assert!((row.difference - 6_000_000.0).abs() < 1e-6);
        let titles = row.titles.clone().unwrap();
        assert_eq!(titles[1], "GL Balance");
        // The amounts are columns of their own; the other fields are kept as text.
        assert!(row.fields.iter().all(|(k, _)| k != "GL Balance"));
        assert!(
            row.fields
                .iter()
                .any(|(k, v)| k == "Account" && v == "110200")
        );
        let status = d
            .decode(r#"{"type":"status","case_id":"c1","ticket":"BRK-1","action":"accept","from":"PendingReview","to":"Accepted","user":"bob"}"#)
            .unwrap();
        assert!(matches!(status, LiveEvent::Status(ref c) if c.to == "Accepted"));
        assert!(matches!(
            d.decode(r#"{"type":"lagged","missed":7}"#),
            Some(LiveEvent::Lagged(7))
        ));
        assert!(d.decode(r#"{"type":"something_new"}"#).is_none());
        assert!(d.decode("not json").is_none());
    }

    #[test]
    fn a_record_of_an_unknown_profile_keeps_its_fields_as_text() {
        let mut d = Decoder::new(PrepareOptions::default());
        let msg = serde_json::json!({
            "type": "anomaly",
            "result": {"profile": "custom", "key": "k", "date": null, "score": null, "decision": null},
            "fields": {"Amount": "12.5"}
        });
        let Some(LiveEvent::Anomaly(row)) = d.decode(&msg.to_string()) else {
            panic!("an anomaly row");
        };
        assert!(row.difference.is_nan() && row.titles.is_none());
        assert_eq!(row.fields, vec![("Amount".to_string(), "12.5".to_string())]);
    }
}
