//! The service (`breakdesk serve`): REST and WebSocket over the same pipeline.
//!
//! - `GET /health`, `GET /openapi.json`;
//! - `POST /realtime_anomaly` (one record), `POST /batch_anomaly` (a list);
//! - `GET /cases`, `GET /cases/{id}`, `POST /cases/{id}/decision`;
//! - `POST /retrain` (in the background; the new model is swapped in when it is ready);
//! - `GET /ws`: events as JSON text messages (`anomaly`, `status`, `dispatch`, `model`).
//!
//! Bound to loopback by default. When the shared token variable (`[service] token_env`) is set
//! or `[[service.users]]` are configured, every route but `/health` needs
//! `Authorization: Bearer <token>`; binding elsewhere without one is refused. Who decides comes
//! from the token: a user's token acts as that user in that user's role; without users the
//! service is analyst-only.

mod rest;
mod ws;

use crate::config::Config;
use crate::realtime::{Engine, Stream};
use crate::store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

pub use rest::router;

/// The OpenAPI document of the routes.
pub const OPENAPI: &str = include_str!("openapi.json");

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Start(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What `serve` needs besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Overrides `[service] bind`.
    pub bind: Option<SocketAddr>,
    /// Overrides `[service] history`.
    pub history: Option<PathBuf>,
    /// Overrides `[service] profile`.
    pub profile: Option<String>,
}

/// Shared by every request.
pub struct AppState {
    pub cfg: Config,
    /// The run's settings, converted from `cfg` once.
    pub settings: crate::pipeline::Settings,
    pub store: Arc<Store>,
    pub stream: Arc<Stream>,
    pub rules: Arc<crate::categorize::RulesFile>,
    pub events: broadcast::Sender<Arc<str>>,
    pub token: Option<String>,
    /// `[[service.users]]` with their tokens: who a request is comes from these.
    pub users: Vec<UserToken>,
    pub history: Option<PathBuf>,
    pub profile: Option<String>,
    pub retraining: AtomicBool,
    /// WebSocket clients connected now (at most `[service] max_ws_clients`).
    pub ws_clients: std::sync::atomic::AtomicUsize,
    pub started: Instant,
    pub worker: Mutex<Option<crate::dispatch::OutboxSender>>,
    stop: Arc<AtomicBool>,
}

/// A service user and the bearer token that identifies them (never logged).
pub struct UserToken {
    pub name: String,
    pub role: crate::cases::Role,
    pub token: String,
}

impl std::fmt::Debug for UserToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Reads each `[[service.users]]` token from its variable. A user whose variable is unset or
/// empty, or two users (or a user and the shared token) with the same token, stop the start:
/// a token must name one person.
pub fn user_tokens(cfg: &Config) -> Result<Vec<UserToken>, ServeError> {
    use crate::cases::Role;
    let shared = std::env::var(&cfg.service.token_env).ok();
    let mut out: Vec<UserToken> = Vec::new();
    for u in &cfg.service.users {
        let token = std::env::var(&u.token_env)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                ServeError::Config(format!(
                    "service user {:?}: the environment variable {} (its token_env) is unset or empty",
                    u.name, u.token_env
                ))
            })?;
        if out.iter().any(|o| o.token == token) || shared.as_deref() == Some(token.as_str()) {
            return Err(ServeError::Config(format!(
                "service user {:?}: the token in {} is also another user's (or [service] token_env's); each user needs a token of their own",
                u.name, u.token_env
            )));
        }
        let role = if u.role == "supervisor" {
            Role::Supervisor
        } else {
            Role::Analyst
        };
        out.push(UserToken {
            name: u.name.trim().to_string(),
            role,
            token,
        });
    }
    Ok(out)
}

impl AppState {
    /// Sends an event to the WebSocket clients (none listening is fine).
    pub fn emit(&self, event: serde_json::Value) {
        let _ = self.events.send(Arc::from(event.to_string()));
    }

    /// The user the service acts as.
    pub fn actor(&self) -> crate::cases::Actor {
        crate::cases::Actor::analyst(self.cfg.service.user.clone())
    }
}

/// The model for the service's profile: the saved one when its schema matches the history's
/// features, else trained on the history (and saved). Also returns the history's prepared run,
/// for seeding the state.
fn load_engine(
    cfg: &crate::pipeline::Settings,
    store: &Store,
    history: Option<&PathBuf>,
    profile: Option<&str>,
    force: bool,
) -> Result<(Engine, Option<crate::pipeline::RunOutput>), String> {
    use crate::pipeline::{self, DetectOptions, RunOptions, TrainMode};
    match history {
        Some(h) => {
            let opts = RunOptions {
                input: h.clone(),
                profile: profile.map(str::to_string),
                ..RunOptions::default()
            };
            let cancel = AtomicBool::new(false);
            let mut run = pipeline::run(cfg, &opts, "", &mut |_| {}, &cancel)
                .map_err(|e| format!("reading the history {}: {e}", h.display()))?;
            let dopts = DetectOptions {
                train: if force {
                    TrainMode::Force
                } else {
                    TrainMode::Auto
                },
                ..DetectOptions::default()
            };
            let det = pipeline::score(cfg, &mut run, store, &dopts)
                .map_err(|e| format!("the model for {}: {e}", h.display()))?;
            let status = det.status.describe();
            let engine = Engine::new(cfg, run.resolved.clone(), det.bundle, status)?;
            Ok((engine, Some(run)))
        }
        None => {
            let spec = profile.ok_or_else(|| {
                "no history file: give --history (or [service] history), or name the profile of a saved model with --profile".to_string()
            })?;
            let p = crate::profile::Profile::by_name_or_path(spec).map_err(|e| e.to_string())?;
            let header = p.canonical_header();
            let resolved = p
                .resolve(&header, "records", &[])
                .map_err(|e| e.to_string())?;
            let dopts = DetectOptions::default();
            let spec = pipeline::train_spec(cfg, &dopts);
            let key = format!("{}/{}", p.name, spec.detector.as_str());
            let bytes = store
                .get_model(&key)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!("no saved model {key} and no history file to train one: give --history (or [service] history)")
                })?;
            let bundle = crate::detect::model::ModelBundle::from_json(&bytes)
                .map_err(|e| format!("the saved model {key}: {e}"))?;
            // Without records to compare with, only the training size can be checked.
            let mut status = "loaded".to_string();
            let min = cfg.detect.fitness.min_training_rows;
            if bundle.training_rows < min {
                let why = format!(
                    "the saved model {} was trained on {} rows, fewer than [detect] min_training_rows ({min})",
                    bundle.version(),
                    bundle.training_rows
                );
                if cfg.detect.policy == pipeline::ModelPolicy::Refuse {
                    return Err(format!(
                        "{why} (model policy refuse: give --history to train one)"
                    ));
                }
                tracing::warn!(why = %why, "saved model kept");
                status = format!("loaded although {why}: give --history to train a new one");
            }
            let engine = Engine::new(cfg, resolved, bundle, status)?;
            Ok((engine, None))
        }
    }
}

/// Builds the service's state: opens the model (training it when needed), reads the account
/// states back or seeds them from the history, and starts the outbox worker.
pub fn prepare(
    cfg: Config,
    store: Arc<Store>,
    opts: &ServeOptions,
) -> Result<Arc<AppState>, ServeError> {
    let history = opts.history.clone().or_else(|| {
        let h = cfg.service.history.trim();
        (!h.is_empty()).then(|| PathBuf::from(h))
    });
    let profile = opts.profile.clone().or_else(|| {
        let p = cfg.service.profile.trim();
        (!p.is_empty()).then(|| p.to_string())
    });
    let token = std::env::var(&cfg.service.token_env)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let users = user_tokens(&cfg)?;
    let settings = crate::wiring::run::settings(&cfg).map_err(ServeError::Config)?;
    let (engine, run) = load_engine(
        &settings,
        &store,
        history.as_ref(),
        profile.as_deref(),
        false,
    )
    .map_err(ServeError::Start)?;
    tracing::info!(model = %engine.version, status = %engine.status, "service model");
    let stream = Arc::new(
        Stream::new(engine, cfg.service.state_records)
            .with_backing(store.clone(), cfg.service.max_accounts_in_memory),
    );
    let loaded = stream
        .load(&store)
        .map_err(|e| ServeError::Start(e.to_string()))?;
    if loaded == 0
        && let Some(run) = &run
    {
        let n = stream
            .seed(&run.features.df, &run.resolved)
            .map_err(|e| ServeError::Start(format!("seeding the account states: {e}")))?;
        stream
            .persist(&store)
            .map_err(|e| ServeError::Start(e.to_string()))?;
        tracing::info!(accounts = n, "account states seeded from the history");
    } else {
        tracing::info!(accounts = loaded, "account states read from the store");
    }
    // Each record finds its account's outstanding cases through their markers; a store written
    // before they existed gets them once.
    let marked = crate::cases::Cases::new(&store)
        .index_outstanding()
        .map_err(|e| ServeError::Start(format!("indexing the outstanding cases: {e}")))?;
    if marked > 0 {
        tracing::info!(cases = marked, "outstanding cases indexed");
    }
    let rules =
        crate::pipeline::rules_file(&settings).map_err(|e| ServeError::Config(e.to_string()))?;
    let dispatcher =
        crate::dispatch::outbox::Dispatcher::new(&crate::wiring::dispatch::options(&cfg))
            .map_err(|e| ServeError::Config(e.to_string()))?;
    let worker = crate::dispatch::OutboxSender::spawn(store.clone(), dispatcher);
    let (events, _) = broadcast::channel(cfg.service.ws_queue_events);
    Ok(Arc::new(AppState {
        cfg,
        settings,
        store,
        stream,
        rules: Arc::new(rules),
        events,
        token,
        users,
        history,
        profile,
        retraining: AtomicBool::new(false),
        ws_clients: std::sync::atomic::AtomicUsize::new(0),
        started: Instant::now(),
        worker: Mutex::new(Some(worker)),
        stop: Arc::new(AtomicBool::new(false)),
    }))
}

/// Retrains on the history in the background and swaps the new model in; emits a `model` event.
/// Returns false when a retrain is already running.
pub fn start_retrain(state: &Arc<AppState>) -> bool {
    if state.retraining.swap(true, Ordering::SeqCst) {
        return false;
    }
    let st = state.clone();
    std::thread::spawn(move || {
        let engine = st.stream.engine();
        let profile = st.profile.clone().or_else(|| Some(engine.profile.clone()));
        let out = load_engine(
            &st.settings,
            &st.store,
            st.history.as_ref(),
            profile.as_deref(),
            true,
        );
        match out {
            Ok((engine, _)) => {
                let version = engine.version.clone();
                st.stream.swap(engine);
                tracing::info!(model = %version, "retrained model swapped in");
                st.emit(serde_json::json!({"type": "model", "status": "swapped", "model_version": version}));
            }
            Err(e) => {
                tracing::warn!(error = %e, "retrain failed");
                st.emit(serde_json::json!({"type": "model", "status": "failed", "error": e}));
            }
        }
        st.retraining.store(false, Ordering::SeqCst);
    });
    true
}

/// Background threads: account states to the store every `persist_interval_ms`, and the outbox
/// worker's results to the WebSocket clients.
fn spawn_background(state: &Arc<AppState>) -> Vec<std::thread::JoinHandle<()>> {
    let mut out = Vec::new();
    let st = state.clone();
    out.push(std::thread::spawn(move || {
        let every = Duration::from_millis(st.cfg.service.persist_interval_ms);
        let mut last = Instant::now();
        while !st.stop.load(Ordering::Relaxed) {
            // Short naps, so a stop is noticed quickly.
            std::thread::sleep(every.min(Duration::from_millis(100)));
            if last.elapsed() < every {
                continue;
            }
            last = Instant::now();
            if let Err(e) = st.stream.persist(&st.store) {
                tracing::warn!(error = %e, "writing the account states");
            }
        }
    }));
    let st = state.clone();
    out.push(std::thread::spawn(move || {
        while !st.stop.load(Ordering::Relaxed) {
            let events: Vec<crate::dispatch::SenderEvent> = {
                let w = st.worker.lock().unwrap_or_else(|e| e.into_inner());
                match w.as_ref() {
                    Some(w) => w.events().try_iter().collect(),
                    None => Vec::new(),
                }
            };
            for e in events {
                if let crate::dispatch::SenderEvent::Attempted {
                    id,
                    channel,
                    outcome,
                    item,
                } = e
                {
                    st.emit(serde_json::json!({
                        "type": "dispatch",
                        "item": id,
                        "channel": channel.as_str(),
                        "status": item.status.name(),
                        "outcome": format!("{outcome:?}"),
                        "tickets": item.tickets,
                        "error": item.last_error,
                    }));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }));
    out
}

/// The address to bind, checked against the token rule.
pub fn bind_address(cfg: &Config, opts: &ServeOptions) -> Result<SocketAddr, ServeError> {
    let addr = match opts.bind {
        Some(a) => a,
        None => cfg.service.bind.parse().map_err(|_| {
            ServeError::Config(format!(
                "service.bind {:?} is not an address and port",
                cfg.service.bind
            ))
        })?,
    };
    let token = std::env::var(&cfg.service.token_env)
        .ok()
        .filter(|t| !t.trim().is_empty());
    if !addr.ip().is_loopback() && token.is_none() && cfg.service.users.is_empty() {
        return Err(ServeError::Config(format!(
            "binding to {addr} (not loopback) needs bearer tokens: [[service.users]], or the environment variable {} ([service] token_env)",
            cfg.service.token_env
        )));
    }
    Ok(addr)
}

/// Runs the service until Ctrl-C (or SIGTERM): binds, serves, and on the way out writes the
/// account states and stops the outbox worker. `ready` is called with the bound address.
pub fn serve(
    state: Arc<AppState>,
    addr: SocketAddr,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("breakdesk-serve")
        .build()
        .map_err(|e| ServeError::Start(e.to_string()))?;
    let background = spawn_background(&state);
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        tracing::info!(addr = %bound, "service listening");
        ready(bound);
        accept_loop(listener, state.clone()).await;
        Ok(())
    });
    state.stop.store(true, Ordering::Relaxed);
    for t in background {
        let _ = t.join();
    }
    if let Err(e) = state.stream.persist(&state.store) {
        tracing::warn!(error = %e, "writing the account states");
    }
    if let Some(w) = state
        .worker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        w.stop();
    }
    let _ = state.store.flush();
    result
}

/// Serves connections until Ctrl-C or SIGTERM: at most `[service] max_connections` at once
/// (more wait in the listen queue), each HTTP/1 connection closed when a client takes longer
/// than `read_timeout_secs` to send a request's headers or to start its next request. On the
/// way out, open connections finish their requests (at most 10 s).
async fn accept_loop(listener: tokio::net::TcpListener, state: Arc<AppState>) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let app = router(state.clone());
    let limit = Arc::new(tokio::sync::Semaphore::new(
        state.cfg.service.max_connections,
    ));
    let read_timeout = Duration::from_secs(state.cfg.service.read_timeout_secs);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut open = tokio::task::JoinSet::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        while open.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(read_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()))
            .with_upgrades();
        let mut stop = stop_rx.clone();
        open.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    // Finish the request in progress, then close.
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(permit);
        });
    }
    let _ = stop_tx.send(true);
    let drained = async { while open.join_next().await.is_some() {} };
    tokio::select! {
        _ = drained => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("connections still open after 10 s; stopping anyway");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
