//! The REST routes.

mod case_routes;

use super::AppState;
use crate::cases::{CaseError, Role};
use axum::Extension;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use case_routes::{decide, get_case, list_cases};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

type Shared = Arc<AppState>;

/// An error answer: `{"error": {"status", "message", "field"?}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }
    fn field(status: StatusCode, field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: Some(field.into()),
        }
    }
    /// A failure of the service itself: the details go to the log under a reference, the
    /// answer says only that and the reference (never internals: paths, types, data).
    fn internal(message: impl Into<String>) -> ApiError {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let reference = format!(
            "E{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        tracing::error!(error = %message.into(), reference = %reference, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error (reference {reference}: the service's log has the details)"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut e = json!({"status": self.status.as_u16(), "message": self.message});
        if let Some(f) = self.field {
            e["field"] = json!(f);
        }
        (self.status, Json(json!({ "error": e }))).into_response()
    }
}

impl From<CaseError> for ApiError {
    fn from(e: CaseError) -> ApiError {
        match &e {
            CaseError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            CaseError::Store(crate::store::StoreError::DiskFull { .. }) => {
                tracing::error!(error = %e, "the store's disk is full");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "the service's disk is full: nothing was written; try again when there is room",
                )
            }
            CaseError::Invalid(_) | CaseError::NoteRequired { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            CaseError::NeedsSupervisor { .. }
            | CaseError::MakerChecker { .. }
            | CaseError::NotOwner { .. }
            | CaseError::NotAllowed(_) => ApiError::new(StatusCode::FORBIDDEN, e.to_string()),
            CaseError::Store(_) | CaseError::Corrupt { .. } => ApiError::internal(e.to_string()),
            _ => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        }
    }
}

/// A JSON body whose rejections are answered as [`ApiError`]s: 400 for malformed JSON, 422 for
/// JSON of the wrong shape (naming the field), 413 for a body over the limit, 415 without a
/// JSON content type.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(r) => Err(rejection(r)),
        }
    }
}

fn rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("malformed JSON: {}", e.body_text()),
        ),
        JsonRejection::JsonDataError(e) => {
            // serde's message names the field ("missing field `action`", "unknown variant …").
            let text = e.body_text();
            let field = text
                .split('`')
                .nth(1)
                .map(str::to_string)
                .filter(|_| text.contains("field"));
            ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: text,
                field,
            }
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON, sent with Content-Type: application/json",
        ),
        other => {
            let status = other.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    status,
                    "the request body is larger than the limit ([service] max_body_bytes)",
                )
            } else {
                ApiError::new(status, other.body_text())
            }
        }
    }
}

/// Every route, with the body limit and the bearer check.
pub fn router(state: Shared) -> Router {
    let limit = state.cfg.service.max_body_bytes;
    let protected = Router::new()
        .route("/realtime_anomaly", post(realtime))
        .route("/batch_anomaly", post(batch))
        .route("/cases", get(list_cases))
        .route("/cases/{id}", get(get_case))
        .route("/cases/{id}/decision", post(decide))
        .route("/retrain", post(retrain))
        .route("/me", get(me))
        .route("/runs", get(list_runs))
        .route("/runs/latest", get(latest_run))
        .route("/ws", get(super::ws::handler))
        .route("/openapi.json", get(openapi))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .route_layer(axum::middleware::from_fn(access_log))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route; GET /openapi.json lists them",
    )
}

/// Who sent a request, as its bearer token says.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No token is configured (a loopback service): anyone on this machine, analyst-only.
    Open,
    /// The shared token of `[service] token_env`: scores and reads; analyst-only decisions
    /// when no users are configured, none when they are.
    Shared,
    /// A `[[service.users]]` token: this person in this role.
    User { name: String, role: Role },
}

/// Who the request's bearer token says the caller is; None when tokens are configured and it
/// carries none of them. Every token is compared in constant time (no early exit, so the time
/// does not say which matched), and none is ever logged.
fn identify(state: &AppState, headers: &axum::http::HeaderMap) -> Option<Caller> {
    if state.token.is_none() && state.users.is_empty() {
        return Some(Caller::Open);
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .as_bytes();
    let mut found = None;
    for u in &state.users {
        if constant_time_eq(given, u.token.as_bytes()) {
            found = Some(Caller::User {
                name: u.name.clone(),
                role: u.role,
            });
        }
    }
    if let Some(t) = &state.token
        && constant_time_eq(given, t.as_bytes())
    {
        found = found.or(Some(Caller::Shared));
    }
    found
}

/// The bearer check: the caller found is put in the request's extensions (for the decision
/// route and the access log); no valid token is a 401.
async fn auth(State(state): State<Shared>, mut req: Request, next: Next) -> Response {
    let Some(caller) = identify(&state, req.headers()) else {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        )
        .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return r;
    };
    if let Caller::User { name, .. } = &caller
        && let Some(u) = req.extensions().get::<AccessUser>()
    {
        u.set(name.clone());
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The authenticated user of a request, filled in by [`auth`] for the access log.
#[derive(Clone, Default)]
struct AccessUser(Arc<std::sync::OnceLock<String>>);

impl AccessUser {
    fn set(&self, name: String) {
        let _ = self.0.set(name);
    }
}

/// One JSON log line per request (target `breakdesk::access`): method, route (the path template, never
/// ids or query strings), status, latency and the authenticated user. Never a token or a body.
async fn access_log(mut req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "(unmatched)".to_string());
    let user = AccessUser::default();
    req.extensions_mut().insert(user.clone());
    let response = next.run(req).await;
    tracing::info!(
        target: "breakdesk::access",
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        user = user.0.get().map(String::as_str).unwrap_or("-"),
        "request"
    );
    response
}

/// Browser safety for a service on loopback. `Host` must be an IP address, `localhost` or one
/// of `[service] allowed_hosts` (a page on another site reaching 127.0.0.1 through a name it
/// controls — DNS rebinding — is refused); an `Origin` header on /ws or a state-changing request
/// must be one of `[service] allowed_origins` (clients that are not browsers send none).
async fn guard(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(host) = req.headers().get(header::HOST) {
        let host = host.to_str().unwrap_or("");
        if !host_allowed(host, &state.cfg.service.allowed_hosts) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "the Host header names neither an IP address, localhost nor one of [service] allowed_hosts",
            )
            .into_response();
        }
    }
    let changes_state = req.method() != axum::http::Method::GET
        && req.method() != axum::http::Method::HEAD
        && req.method() != axum::http::Method::OPTIONS;
    let websocket = req.uri().path() == "/ws";
    if (changes_state || websocket)
        && let Some(origin) = req.headers().get(header::ORIGIN)
    {
        let origin = origin.to_str().unwrap_or("");
        let allowed = state
            .cfg
            .service
            .allowed_origins
            .iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin));
        if !allowed {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "requests from a browser page need its origin in [service] allowed_origins",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Whether a `Host` header value (name or address, with an optional port) may be served.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [::1]:8080
        return rest
            .split(']')
            .next()
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map(|(h, _)| h)
            .unwrap_or(host)
    };
    name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed
            .iter()
            .any(|a| a.trim().eq_ignore_ascii_case(name.trim_end_matches('.')))
}

/// `GET /me`: who the token says the caller is (`user` null without a user token), and the
/// role decisions are taken in.
async fn me(State(state): State<Shared>, Extension(caller): Extension<Caller>) -> Json<Value> {
    match caller {
        Caller::User { name, role } => Json(json!({"user": name, "role": role.to_string()})),
        Caller::Open | Caller::Shared => Json(json!({
            "user": null,
            "role": "analyst",
            "decisions": if state.users.is_empty() { "analyst-only, the body names the user" } else { "need a user token" },
        })),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /health`: without a valid token (when tokens are configured) only `{"status": "ok"}`
/// or `{"status": "error"}` (503); with one, the model, the store and the state.
async fn health(State(state): State<Shared>, headers: axum::http::HeaderMap) -> Response {
    let store_ok = state.store.schema_version();
    if identify(&state, &headers).is_none() {
        return match store_ok {
            Ok(_) => Json(json!({"status": "ok"})).into_response(),
            Err(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "error"})),
            )
                .into_response(),
        };
    }
    let engine = state.stream.engine();
    let store = match store_ok {
        Ok(v) => json!({"status": "ok", "schema_version": v}),
        Err(e) => json!({"status": "error", "error": e.to_string()}),
    };
    Json(json!({
        "status": "ok",
        "model_version": engine.version,
        "model_status": engine.status,
        "profile": engine.profile,
        "features": engine.plan.names.len(),
        "accounts": state.stream.accounts(),
        "retraining": state.retraining.load(std::sync::atomic::Ordering::Relaxed),
        "store": store,
        "uptime_secs": state.started.elapsed().as_secs(),
    }))
    .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI).into_response()
}

fn field_error(e: crate::realtime::StreamError, at: Option<usize>) -> ApiError {
    match e {
        crate::realtime::StreamError::Field(f) => {
            let field = match at {
                Some(i) => format!("records[{i}].{}", f.field),
                None => f.field.clone(),
            };
            ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                field.clone(),
                format!("{field}: {}", f.message),
            )
        }
        other => ApiError::internal(other.to_string()),
    }
}

fn anomaly_event(r: &crate::realtime::RecordResult, fields: &[(String, String)]) -> Value {
    json!({
        "type": "anomaly",
        "result": r,
        "fields": fields.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<String, Value>>(),
    })
}

/// `POST /realtime_anomaly`: one record (a JSON object of its fields).
async fn realtime(
    State(state): State<Shared>,
    Body(body): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    let Value::Object(record) = body else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body must be a JSON object of the record's fields",
        ));
    };
    let obs = state
        .stream
        .observe(&record)
        .map_err(|e| field_error(e, None))?;
    let engine = state.stream.engine();
    // A flagged record writes its case; a record of an account with an outstanding case rolls
    // that case forward (cleared, or persisting with the latest difference).
    let writes = obs.flag
        || obs.proposed
        || crate::cases::Cases::new(&state.store)
            .roll_writes(&crate::realtime::cycle_of_observed(
                &engine.profile,
                std::slice::from_ref(&obs),
            ))
            .map_err(|e| ApiError::internal(e.to_string()))?;
    let st = state.clone();
    let work = move || {
        crate::realtime::triage(
            &st.settings,
            &st.rules,
            &st.store,
            &engine,
            std::slice::from_ref(&obs),
            false,
        )
        .map(|t| (t, obs))
        .map_err(ApiError::internal)
    };
    // Only then does the record write to the store: off the async workers.
    let (t, obs) = if writes {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??
    } else {
        work()?
    };
    let r = &t.results[0];
    if r.is_anomaly {
        state.emit(anomaly_event(r, &obs.record.fields));
    }
    Ok(Json(
        serde_json::to_value(r).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

/// `POST /batch_anomaly`: `{"records": [...]}` or a bare list. Every record is read first; one
/// that cannot be read fails the request (422 naming `records[i].field`) and nothing is scored.
async fn batch(
    State(state): State<Shared>,
    Body(body): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    let list = match body {
        Value::Array(v) => v,
        Value::Object(mut m) => match m.remove("records") {
            Some(Value::Array(v)) => v,
            Some(_) => {
                return Err(ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "records",
                    "records must be a list of record objects",
                ));
            }
            None => {
                return Err(ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "records",
                    "missing field `records` (a list of record objects)",
                ));
            }
        },
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the body must be {\"records\": [...]} or a list of record objects",
            ));
        }
    };
    let max = state.cfg.service.max_batch_records;
    if list.len() > max {
        return Err(ApiError::field(
            StatusCode::PAYLOAD_TOO_LARGE,
            "records",
            format!(
                "{} records; at most {max} per request ([service] max_batch_records)",
                list.len()
            ),
        ));
    }
    let mut records = Vec::with_capacity(list.len());
    for (i, v) in list.into_iter().enumerate() {
        match v {
            Value::Object(m) => records.push(m),
            _ => {
                return Err(ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("records[{i}]"),
                    format!("records[{i}] must be an object of the record's fields"),
                ));
            }
        }
    }
    let st = state.clone();
    let out = tokio::task::spawn_blocking(move || batch_work(&st, &records))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(out))
}

fn batch_work(state: &Shared, records: &[Map<String, Value>]) -> Result<Value, ApiError> {
    let engine = state.stream.engine();
    // Read everything first: a bad record fails the request before any state changes.
    let mut dates = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let c = engine
            .reader
            .read(r)
            .map_err(|e| field_error(e.into(), Some(i)))?;
        dates.push(c.date);
    }
    // In date order (stable), so each account's records see the ones before them.
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by_key(|i| dates[*i].unwrap_or(i32::MIN));
    let mut obs = Vec::with_capacity(records.len());
    for &i in &order {
        obs.push(
            state
                .stream
                .observe(&records[i])
                .map_err(|e| field_error(e, Some(i)))?,
        );
    }
    let t = crate::realtime::triage(
        &state.settings,
        &state.rules,
        &state.store,
        &engine,
        &obs,
        true,
    )
    .map_err(ApiError::internal)?;
    let mut results: Vec<Option<&crate::realtime::RecordResult>> = vec![None; records.len()];
    for (k, &i) in order.iter().enumerate() {
        results[i] = Some(&t.results[k]);
        if t.results[k].is_anomaly {
            state.emit(anomaly_event(&t.results[k], &obs[k].record.fields));
        }
    }
    let flagged = t.cases.len();
    let summary = batch_summary(state, &engine, &obs, &t)?;
    let mut email = Value::Null;
    if state.cfg.service.batch_email && !t.cases.is_empty() {
        email = match crate::dispatch::queue_summary_email(
            &state.store,
            &crate::wiring::dispatch::email(&state.cfg.email),
            &t.cases,
            &state.actor(),
        ) {
            Ok(id) => {
                if let Some(w) = state
                    .worker
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                {
                    w.flush_now();
                }
                json!({"queued": true, "outbox_item": id})
            }
            Err(e) => json!({"queued": false, "error": e.to_string()}),
        };
    }
    Ok(json!({
        "records": records.len(),
        "anomalies": flagged,
        "model_version": engine.version,
        "results": results,
        "summary": summary,
        "email": email,
    }))
}

/// The run summary of a batch (a reconciliation cycle of the records sent), recorded in the
/// store for `GET /runs/latest`.
fn batch_summary(
    state: &Shared,
    engine: &crate::realtime::Engine,
    obs: &[crate::realtime::Observed],
    t: &crate::realtime::Triaged,
) -> Result<crate::cycle::RunSummary, ApiError> {
    let cycle = crate::realtime::cycle_of_observed(&engine.profile, obs);
    let breaks = cycle
        .records
        .values()
        .flat_map(|r| r.iter())
        .filter(|r| r.out)
        .count();
    let mut summary = crate::cycle::RunSummary {
        profile: engine.profile.clone(),
        as_of: cycle.as_of().map(|d| d.to_string()),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        file: "POST /batch_anomaly".into(),
        rows: obs.len(),
        matched: obs.len().saturating_sub(breaks),
        breaks,
        flagged: obs.iter().filter(|o| o.flag).count(),
        routine: obs
            .iter()
            .filter(|o| matches!(o.quiet, Some(crate::detect::triage::Quiet::Routine(_))))
            .count(),
        ..Default::default()
    };
    summary.count_cases(&t.changes, &t.roll);
    // A batch is a cycle of its own accounts: its tallies cover their outstanding cases (not
    // every case of the profile, which would be read on every request).
    let all = crate::cases::Cases::new(&state.store)
        .outstanding_cases_of(&cycle)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    summary.tally(&all, &state.cfg.cases.age_bands);
    let bytes = serde_json::to_vec(&summary).map_err(|e| ApiError::internal(e.to_string()))?;
    state
        .store
        .put_run(&bytes)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(summary)
}

#[derive(Deserialize)]
struct RunsQuery {
    limit: Option<usize>,
}

fn stored_runs(state: &Shared, n: usize) -> Result<Vec<Value>, ApiError> {
    let raw = state
        .store
        .runs(n)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(raw
        .iter()
        .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
        .collect())
}

/// `GET /runs?limit=N`: the latest run summaries (file runs and batches), the latest first
/// (20 by default, at most 1,000).
async fn list_runs(
    State(state): State<Shared>,
    axum::extract::Query(q): axum::extract::Query<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    let n = q.limit.unwrap_or(20).clamp(1, 1000);
    Ok(Json(json!({ "runs": stored_runs(&state, n)? })))
}

/// `GET /runs/latest`: the latest run summary, or 404 when nothing has run yet.
async fn latest_run(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    match stored_runs(&state, 1)?.into_iter().next() {
        Some(v) => Ok(Json(v)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no run recorded yet (a file run or a batch records one)",
        )),
    }
}

/// `POST /retrain`: 202 when started, 409 when one is running.
async fn retrain(State(state): State<Shared>) -> Result<(StatusCode, Json<Value>), ApiError> {
    if super::start_retrain(&state) {
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({"status": "started", "model_version": state.stream.engine().version})),
        ))
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "a retrain is already running",
        ))
    }
}
