//! The HTTP client: requests, retries, circuit breaker and batches.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::limiter::RateLimiter;
use super::wire::{
    Usage, auth_header, config, endpoint_url, error_message, estimate_tokens, parse_chat_body,
    read_body, request_body, transport_error,
};
use super::{ChatOutcome, ChatRequest, LlmError, LlmSettings, is_retryable_status};
use crate::net::{is_loopback, jitter, parse_retry_after_capped};

/// Longest wait taken from a `Retry-After` (or `retry-after-ms`) header.
/// Longer values are cut to this so one unusual answer cannot stall a batch
/// for minutes; if the service is still busy, the next attempt is answered
/// with another 429 and the normal retry budget applies.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);

/// Upper bound for the connection phase of a request.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters of an [`LlmClient`], see [`LlmClient::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientStats {
    /// HTTP requests sent (every attempt, retries included).
    pub http_requests: u64,
    /// Attempts that were retries of an earlier failed attempt.
    pub retries: u64,
    /// Calls that returned message content.
    pub successes: u64,
    /// Calls that ended in an error after sending at least one request.
    pub failures: u64,
    /// Calls refused without any HTTP because the circuit was open.
    pub rejected_by_circuit: u64,
    /// Whether the circuit breaker has opened.
    pub circuit_open: bool,
    /// Prompt tokens reported by the server.
    pub prompt_tokens: u64,
    /// Completion tokens reported by the server.
    pub completion_tokens: u64,
    /// Total time calls spent waiting for the rate limiter.
    pub rate_limit_wait: Duration,
}

#[derive(Debug, Default)]
struct Counters {
    http_requests: AtomicU64,
    retries: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    rejected_by_circuit: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    rate_limit_wait_micros: AtomicU64,
    consecutive_failures: AtomicU32,
    circuit_open: AtomicBool,
}

/// Client for an OpenAI-compatible chat-completions endpoint.
///
/// One client is meant to serve a whole run: its rate limiter, concurrency
/// limit, circuit breaker and statistics are shared by every call, whether
/// made through [`LlmClient::complete`], [`LlmClient::complete_all`] or
/// [`LlmClient::complete_all_async`].
///
/// TLS uses rustls with the *ring* crypto provider. [`LlmClient::new`]
/// installs ring as the process-wide rustls default unless another provider
/// was installed before, in which case that one is used.
pub struct LlmClient {
    inner: Arc<Inner>,
    /// Runtime for the blocking batch API, created on first use and kept so
    /// pooled connections stay usable between batches.
    runtime: OnceLock<tokio::runtime::Runtime>,
}

struct Inner {
    settings: LlmSettings,
    url: reqwest::Url,
    auth: Option<(HeaderName, HeaderValue)>,
    http: reqwest::Client,
    limiter: RateLimiter,
    slots: Semaphore,
    counters: Counters,
}

impl fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmClient")
            .field("endpoint", &self.inner.url.as_str())
            .field("settings", &self.inner.settings)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl LlmClient {
    /// Checks the settings and prepares the HTTP client. No request is sent.
    ///
    /// Fails with [`LlmError::Config`] for an unusable base URL (not http or
    /// https, no host, or carrying a query or fragment), an empty model name,
    /// an empty Azure API version, `concurrency` or `max_tokens` of 0, a zero
    /// timeout, a temperature outside 0..=2, or an API key that cannot be
    /// sent in an HTTP header.
    pub fn new(settings: LlmSettings) -> Result<Self, LlmError> {
        let url = endpoint_url(&settings)?;
        if settings.model.trim().is_empty() {
            return Err(config("the model name is empty"));
        }
        if settings.concurrency == 0 {
            return Err(config("concurrency must be at least 1"));
        }
        if settings.max_tokens == 0 {
            return Err(config("max_tokens must be at least 1"));
        }
        if settings.timeout.is_zero() {
            return Err(config("the timeout must be longer than zero"));
        }
        if !settings.temperature.is_finite() || !(0.0..=2.0).contains(&settings.temperature) {
            return Err(config("the temperature must be between 0 and 2"));
        }
        let auth = auth_header(&settings)?;

        // Only the first installation wins; an error means a provider is
        // already installed, which reqwest then uses.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("breakdesk/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.timeout.min(MAX_CONNECT_TIMEOUT))
            .pool_idle_timeout(Duration::from_secs(60));
        if is_loopback(&url) {
            // A model served on this machine is never reached through a proxy.
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| config(format!("cannot set up the HTTP client: {e}")))?;

        let limiter = RateLimiter::new(
            settings.requests_per_minute,
            settings.tokens_per_minute,
            settings.rate_burst_window,
        );
        let slots = Semaphore::new(settings.concurrency.min(Semaphore::MAX_PERMITS));
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                url,
                auth,
                http,
                limiter,
                slots,
                counters: Counters::default(),
            }),
            runtime: OnceLock::new(),
        })
    }

    /// The settings this client was built with.
    pub fn settings(&self) -> &LlmSettings {
        &self.inner.settings
    }

    /// The full URL requests are sent to (contains no credentials unless the
    /// base URL did).
    pub fn endpoint(&self) -> &str {
        self.inner.url.as_str()
    }

    /// Sends one request, retrying as configured, and returns its outcome.
    ///
    /// Never panics on any server answer. Waits for the shared rate limiter
    /// and for a free concurrency slot before every attempt. Returns
    /// [`LlmError::CircuitOpen`] at once, without any HTTP, when the circuit
    /// breaker has opened.
    ///
    /// Must run inside a tokio runtime with time and I/O enabled (any
    /// `#[tokio::main]` runtime is).
    pub async fn complete(&self, req: &ChatRequest) -> ChatOutcome {
        self.inner.complete(req).await
    }

    /// Runs all `reqs` with at most [`LlmSettings::concurrency`] requests in
    /// flight and returns their outcomes in input order. Blocks until all are
    /// done.
    ///
    /// The work runs on a multi-threaded tokio runtime owned by this client,
    /// created on first use and reused by later batches. When called from
    /// inside an async runtime (where blocking on another runtime is not
    /// allowed), the batch is driven from a helper thread and the calling
    /// thread blocks until it ends; async code should prefer
    /// [`LlmClient::complete_all_async`].
    ///
    /// `on_done(index, &outcome)` is called once per request as it finishes,
    /// in completion order, from the thread driving the batch.
    pub fn complete_all(
        &self,
        reqs: &[ChatRequest],
        on_done: impl Fn(usize, &ChatOutcome) + Send + Sync,
    ) -> Vec<ChatOutcome> {
        if reqs.is_empty() {
            return Vec::new();
        }
        let runtime = match self.runtime() {
            Ok(runtime) => runtime,
            Err(error) => {
                return (0..reqs.len())
                    .map(|index| {
                        let outcome = ChatOutcome::failed(error.clone(), Duration::ZERO);
                        on_done(index, &outcome);
                        outcome
                    })
                    .collect();
            }
        };
        let batch = run_batch(Arc::clone(&self.inner), reqs.to_vec(), &on_done);
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(
                |scope| match scope.spawn(|| runtime.block_on(batch)).join() {
                    Ok(outcomes) => outcomes,
                    Err(panic) => std::panic::resume_unwind(panic),
                },
            )
        } else {
            runtime.block_on(batch)
        }
    }

    /// Async form of [`LlmClient::complete_all`] for callers already inside a
    /// tokio runtime: the requests run as tasks on the current runtime.
    /// Dropping the returned future cancels the requests not yet finished.
    pub async fn complete_all_async(
        &self,
        reqs: &[ChatRequest],
        on_done: impl Fn(usize, &ChatOutcome) + Send + Sync,
    ) -> Vec<ChatOutcome> {
        run_batch(Arc::clone(&self.inner), reqs.to_vec(), &on_done).await
    }

    /// Current counters: requests sent, retries, successes, failures, calls
    /// refused by the open circuit, reported tokens and rate-limit waiting.
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            http_requests: c.http_requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            successes: c.successes.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            rejected_by_circuit: c.rejected_by_circuit.load(Ordering::Relaxed),
            circuit_open: c.circuit_open.load(Ordering::Relaxed),
            prompt_tokens: c.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: c.completion_tokens.load(Ordering::Relaxed),
            rate_limit_wait: Duration::from_micros(
                c.rate_limit_wait_micros.load(Ordering::Relaxed),
            ),
        }
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, LlmError> {
        if let Some(runtime) = self.runtime.get() {
            return Ok(runtime);
        }
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 4);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("breakdesk-llm")
            .enable_all()
            .build()
            .map_err(|e| LlmError::Transport(format!("cannot start the async runtime: {e}")))?;
        // If another thread won the race, its runtime is kept and ours is
        // shut down without blocking.
        if let Err(unused) = self.runtime.set(runtime) {
            unused.shutdown_background();
        }
        self.runtime
            .get()
            .ok_or_else(|| LlmError::Transport("cannot start the async runtime".into()))
    }
}

impl Drop for LlmClient {
    fn drop(&mut self) {
        // Dropping a runtime normally blocks, which panics inside async code;
        // shutting it down in the background is safe everywhere.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl ChatOutcome {
    fn failed(error: LlmError, elapsed: Duration) -> Self {
        Self {
            result: Err(error),
            attempts: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            elapsed,
        }
    }
}

/// Runs a batch with one worker task per concurrency slot, each taking the
/// next request index in turn. Outcomes come back over a channel so that
/// `on_done` runs on the driving task and needs no `'static` bound.
async fn run_batch(
    inner: Arc<Inner>,
    reqs: Vec<ChatRequest>,
    on_done: &(dyn Fn(usize, &ChatOutcome) + Send + Sync),
) -> Vec<ChatOutcome> {
    let count = reqs.len();
    if count == 0 {
        return Vec::new();
    }
    let reqs: Arc<[ChatRequest]> = reqs.into();
    let next = Arc::new(AtomicUsize::new(0));
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..inner.settings.concurrency.min(count) {
        let inner = Arc::clone(&inner);
        let reqs = Arc::clone(&reqs);
        let next = Arc::clone(&next);
        let sender = sender.clone();
        workers.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = reqs.get(index) else { break };
                let outcome = inner.complete(req).await;
                if sender.send((index, outcome)).is_err() {
                    break;
                }
            }
        });
    }
    drop(sender);

    let mut outcomes: Vec<Option<ChatOutcome>> = vec![None; count];
    while let Some((index, outcome)) = receiver.recv().await {
        on_done(index, &outcome);
        if let Some(slot) = outcomes.get_mut(index) {
            *slot = Some(outcome);
        }
    }
    while let Some(joined) = workers.join_next().await {
        if let Err(error) = joined {
            tracing::error!(%error, "LLM batch worker ended abnormally");
        }
    }
    outcomes
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| {
            outcome.unwrap_or_else(|| {
                let outcome = ChatOutcome::failed(
                    LlmError::Transport("the request task ended unexpectedly".into()),
                    Duration::ZERO,
                );
                on_done(index, &outcome);
                outcome
            })
        })
        .collect()
}

/// What one HTTP attempt produced.
struct Attempt {
    result: Result<String, LlmError>,
    usage: Option<Usage>,
    retry_after: Option<Duration>,
}

impl Attempt {
    fn error(error: LlmError) -> Self {
        Self {
            result: Err(error),
            usage: None,
            retry_after: None,
        }
    }
}

impl Inner {
    fn circuit_open(&self) -> bool {
        self.counters.circuit_open.load(Ordering::Acquire)
    }

    async fn complete(&self, req: &ChatRequest) -> ChatOutcome {
        let started = Instant::now();
        if self.circuit_open() {
            self.counters
                .rejected_by_circuit
                .fetch_add(1, Ordering::Relaxed);
            return ChatOutcome::failed(LlmError::CircuitOpen, started.elapsed());
        }

        let body = request_body(&self.settings, req);
        let estimate = estimate_tokens(&self.settings, req);
        let mut outcome = ChatOutcome::failed(LlmError::CircuitOpen, Duration::ZERO);
        let result = loop {
            if outcome.attempts > 0 && self.circuit_open() {
                // Another call opened the circuit while this one was retrying.
                break Err(LlmError::CircuitOpen);
            }
            let attempt = self.attempt(&body, estimate).await;
            outcome.attempts += 1;
            if let Some(usage) = attempt.usage {
                outcome.prompt_tokens = outcome.prompt_tokens.saturating_add(usage.prompt_tokens);
                outcome.completion_tokens = outcome
                    .completion_tokens
                    .saturating_add(usage.completion_tokens);
            }
            match attempt.result {
                Ok(content) => break Ok(content),
                Err(error)
                    if error.is_retryable() && outcome.attempts <= self.settings.max_retries =>
                {
                    let delay =
                        retry_delay(&self.settings, outcome.attempts - 1, attempt.retry_after);
                    tracing::warn!(
                        attempt = outcome.attempts,
                        delay_ms = delay.as_millis() as u64,
                        %error,
                        "LLM request failed; retrying"
                    );
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                }
                Err(error) => break Err(error),
            }
        };
        self.record(&result, outcome.attempts);
        outcome.result = result;
        outcome.elapsed = started.elapsed();
        outcome
    }

    /// Updates the counters and the circuit breaker for a finished call.
    fn record(&self, result: &Result<String, LlmError>, attempts: u32) {
        let counters = &self.counters;
        match result {
            Ok(_) => {
                counters.successes.fetch_add(1, Ordering::Relaxed);
                counters.consecutive_failures.store(0, Ordering::Relaxed);
            }
            // The service answered properly; the prompt or limit is at fault.
            Err(LlmError::Truncated) => {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                counters.consecutive_failures.store(0, Ordering::Relaxed);
            }
            Err(LlmError::CircuitOpen) if attempts == 0 => {
                counters.rejected_by_circuit.fetch_add(1, Ordering::Relaxed);
            }
            Err(LlmError::CircuitOpen) => {
                counters.failures.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                let streak = counters
                    .consecutive_failures
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                let threshold = self.settings.failure_threshold;
                if threshold > 0
                    && streak >= threshold
                    && !counters.circuit_open.swap(true, Ordering::AcqRel)
                {
                    tracing::warn!(
                        consecutive_failures = streak,
                        %error,
                        "LLM circuit opened; no further LLM requests will be sent"
                    );
                }
            }
        }
    }

    /// One HTTP request: concurrency slot, rate limit, send, read, parse.
    async fn attempt(&self, body: &Value, estimate: u64) -> Attempt {
        let Ok(_slot) = self.slots.acquire().await else {
            return Attempt::error(LlmError::Transport("the client is shutting down".into()));
        };
        let waited = self.limiter.acquire(estimate).await;
        if !waited.is_zero() {
            self.counters
                .rate_limit_wait_micros
                .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        }

        self.counters.http_requests.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .http
            .post(self.url.clone())
            .header(ACCEPT, "application/json")
            .json(body);
        if let Some((name, value)) = &self.auth {
            request = request.header(name.clone(), value.clone());
        }

        let started = Instant::now();
        let attempt =
            match tokio::time::timeout(self.settings.timeout, self.exchange(request)).await {
                Ok(attempt) => attempt,
                Err(_) => Attempt::error(LlmError::Timeout),
            };
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            ok = attempt.result.is_ok(),
            "LLM request finished"
        );

        if let Some(usage) = attempt.usage {
            let actual = u64::from(usage.prompt_tokens) + u64::from(usage.completion_tokens);
            self.counters
                .prompt_tokens
                .fetch_add(u64::from(usage.prompt_tokens), Ordering::Relaxed);
            self.counters
                .completion_tokens
                .fetch_add(u64::from(usage.completion_tokens), Ordering::Relaxed);
            if actual > estimate {
                self.limiter.charge_tokens(actual - estimate);
            }
        }
        attempt
    }

    async fn exchange(&self, request: reqwest::RequestBuilder) -> Attempt {
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Attempt::error(transport_error(error)),
        };
        let status = response.status().as_u16();
        let retry_after = parse_retry_after(response.headers(), chrono::Utc::now());
        let body = match read_body(&mut response).await {
            Ok(body) => body,
            Err(error) => return Attempt::error(error),
        };
        if !(200..300).contains(&status) {
            let message = error_message(&body, status, self.settings.api_key.as_deref());
            return Attempt {
                result: Err(LlmError::Http { status, message }),
                usage: None,
                retry_after: retry_after.filter(|_| is_retryable_status(status)),
            };
        }
        let (result, usage) = parse_chat_body(&body);
        Attempt {
            result,
            usage,
            retry_after: None,
        }
    }
}

/// Backoff before retry number `retry + 1`: `base · 2^retry` capped at
/// `backoff_max`, plus up to a quarter of that as random jitter. A
/// `Retry-After` from the server replaces it: the wait is then that value
/// (capped at [`RETRY_AFTER_CAP`]) plus up to half of `backoff_base` (at most
/// 500 ms) of jitter, so it is never shorter than the server asked for.
fn retry_delay(settings: &LlmSettings, retry: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(RETRY_AFTER_CAP)
            + jitter(settings.backoff_base.min(Duration::from_secs(1)) / 2);
    }
    let factor = 2u32.saturating_pow(retry);
    let delay = settings
        .backoff_base
        .saturating_mul(factor)
        .min(settings.backoff_max);
    delay + jitter(delay / 4)
}

/// Reads `retry-after-ms` (OpenAI) or `Retry-After` (seconds or an HTTP
/// date), capped at [`RETRY_AFTER_CAP`].
fn parse_retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    parse_retry_after_capped(headers, now, RETRY_AFTER_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ResponseFormat;
    use crate::llm::wire::{MAX_ERROR_CHARS, chat_content, schema_name};
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("test header"));
        }
        map
    }

    #[test]
    fn retry_after_seconds_date_and_milliseconds() {
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2026 07:28:00 GMT")
            .expect("date")
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "2")]), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after(
                &headers(&[("retry-after", "Wed, 21 Oct 2026 07:28:05 GMT")]),
                now
            ),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after(
                &headers(&[("retry-after", "Wed, 21 Oct 2026 07:27:00 GMT")]),
                now
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(
                &headers(&[("retry-after-ms", "250"), ("retry-after", "9")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "86400")]), now),
            Some(RETRY_AFTER_CAP)
        );
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "soon")]), now),
            None
        );
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "-3")]), now),
            None
        );
        assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let mut settings = LlmSettings::new("http://127.0.0.1:1/v1", "m");
        settings.backoff_base = Duration::from_millis(100);
        settings.backoff_max = Duration::from_millis(350);
        let within = |d: Duration, low: u64, high: u64| {
            d >= Duration::from_millis(low) && d <= Duration::from_millis(high)
        };
        assert!(within(retry_delay(&settings, 0, None), 100, 125));
        assert!(within(retry_delay(&settings, 1, None), 200, 250));
        assert!(within(retry_delay(&settings, 2, None), 350, 438));
        assert!(within(retry_delay(&settings, 40, None), 350, 438));
        let honoured = retry_delay(&settings, 0, Some(Duration::from_secs(3)));
        assert!(within(honoured, 3000, 3050));
    }

    #[test]
    fn schema_names_are_made_acceptable() {
        assert_eq!(schema_name("root_cause"), "root_cause");
        assert_eq!(schema_name("root cause/v2"), "root_cause_v2");
        assert_eq!(schema_name(""), "answer");
        assert_eq!(schema_name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn estimate_counts_characters_and_completion_limit() {
        let mut settings = LlmSettings::new("http://127.0.0.1:1/v1", "m");
        settings.max_tokens = 100;
        settings.response_format = ResponseFormat::JsonObject;
        let req = ChatRequest::new("abcd", "efghi", "s", json!({"type": "object"}));
        assert_eq!(estimate_tokens(&settings, &req), 3 + 100);
    }

    #[test]
    fn content_parts_and_refusals() {
        let parts = json!({"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, "finish_reason": "stop"}]});
        assert_eq!(chat_content(&parts), Ok("ab".to_string()));
        let refusal = json!({"choices": [{"message": {"content": null, "refusal": "no"}, "finish_reason": "stop"}]});
        assert!(
            matches!(chat_content(&refusal), Err(LlmError::BadResponse(m)) if m.contains("refused"))
        );
        let filtered =
            json!({"choices": [{"message": {"content": "x"}, "finish_reason": "content_filter"}]});
        assert!(matches!(
            chat_content(&filtered),
            Err(LlmError::BadResponse(_))
        ));
    }

    #[test]
    fn error_messages_are_short_single_line_and_hide_the_key() {
        let body =
            br#"{"error": {"message": "Incorrect API key provided: sk-secret-123.\nSee docs."}}"#;
        let message = error_message(body, 401, Some("sk-secret-123"));
        assert_eq!(message, "Incorrect API key provided: [redacted]. See docs.");
        let long = "e".repeat(1000);
        assert_eq!(
            error_message(long.as_bytes(), 500, None).chars().count(),
            MAX_ERROR_CHARS + 1
        );
        assert_eq!(error_message(b"", 503, None), "Service Unavailable");
    }

    #[test]
    fn loopback_detection() {
        let url = |s: &str| reqwest::Url::parse(s).expect("url");
        assert!(is_loopback(&url("http://127.0.0.1:8080/v1")));
        assert!(is_loopback(&url("http://localhost:11434/v1")));
        assert!(is_loopback(&url("http://[::1]:8080/v1")));
        assert!(!is_loopback(&url("https://api.openai.com/v1")));
    }
}
