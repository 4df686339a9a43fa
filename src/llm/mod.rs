//! Client for OpenAI-compatible chat-completions services.
//!
//! breakdesk can optionally ask a large language model to sort reconciliation
//! anomalies into root-cause buckets. This module is only the transport layer
//! for that: it sends one chat-completions request per [`ChatRequest`] and
//! hands back the raw message content in a [`ChatOutcome`]. Prompt building,
//! caching, validation of the answer and redaction of sensitive data happen in
//! the layers above.
//!
//! What this layer takes care of:
//!
//! * **HTTP**: `POST {base_url}/chat/completions` with `model`, `messages`
//!   (system, user), `temperature`, `max_tokens` and `response_format`.
//!   OpenAI-style (`Authorization: Bearer`) and Azure-style (`api-key` header
//!   plus `?api-version=`) authentication.
//! * **Limits**: a shared request/token budget per minute ([`RateLimiter`]) and
//!   a maximum number of requests in flight ([`LlmSettings::concurrency`]).
//! * **Retries**: 408, 429, 5xx, timeouts and connection errors are retried
//!   with exponential backoff and jitter; `Retry-After` is honoured.
//! * **Circuit breaker**: after [`LlmSettings::failure_threshold`] consecutive
//!   failed calls the client stops talking to the service for good and every
//!   later call fails fast with [`LlmError::CircuitOpen`].
//!
//! Nothing in this module logs prompts, answers or the API key.

mod client;
mod limiter;
mod wire;

use std::fmt;
use std::time::Duration;

pub use client::{ClientStats, LlmClient};
/// HTTP helpers the dispatch clients share with the LLM client.
pub use limiter::RateLimiter;

/// Which `response_format` is sent with every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseFormat {
    /// Structured outputs: `{"type":"json_schema","json_schema":{"name":..,"strict":true,"schema":..}}`
    /// built from [`ChatRequest::schema_name`] and [`ChatRequest::schema`].
    #[default]
    JsonSchema,
    /// JSON mode: `{"type":"json_object"}` (the schema is not sent).
    JsonObject,
    /// No `response_format` field at all, for servers that reject it.
    None,
}

/// Name of the JSON field that carries the completion token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenLimitField {
    /// `max_tokens`, understood by nearly every OpenAI-compatible server.
    #[default]
    MaxTokens,
    /// `max_completion_tokens`, required by OpenAI's reasoning models.
    MaxCompletionTokens,
}

/// Settings of an [`LlmClient`]. Build with [`LlmSettings::new`] and adjust
/// fields with struct update syntax.
///
/// The `Debug` output never shows the API key.
#[derive(Clone)]
pub struct LlmSettings {
    /// Base URL of the service, for example `https://api.openai.com/v1`,
    /// `http://127.0.0.1:11434/v1` or, for Azure,
    /// `https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT`.
    /// Requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    /// Model name sent in every request.
    pub model: String,
    /// API key, read from the environment by the caller. Sent as
    /// `Authorization: Bearer KEY` (or `api-key: KEY` for Azure); never logged.
    /// An empty or blank key counts as no key.
    pub api_key: Option<String>,
    /// When set, Azure OpenAI conventions are used: the key goes in an
    /// `api-key` header and `?api-version=VALUE` is appended to the URL.
    pub azure_api_version: Option<String>,
    /// `response_format` sent with every request.
    pub response_format: ResponseFormat,
    /// Sampling temperature; breakdesk uses 0 for repeatable answers.
    pub temperature: f32,
    /// Completion token limit per request.
    pub max_tokens: u32,
    /// Field name used for [`LlmSettings::max_tokens`].
    pub token_limit_field: TokenLimitField,
    /// Time limit for one HTTP request, from sending it to having read the
    /// whole answer. Each retry gets the full limit again.
    pub timeout: Duration,
    /// How many times a retryable failure is retried (so at most
    /// `max_retries + 1` HTTP requests per call).
    pub max_retries: u32,
    /// First backoff delay; it doubles after every retry.
    pub backoff_base: Duration,
    /// Upper bound of the exponential backoff delay (before jitter).
    pub backoff_max: Duration,
    /// Requests per minute across all calls of this client; 0 = unlimited.
    pub requests_per_minute: u32,
    /// Estimated tokens per minute across all calls of this client;
    /// 0 = unlimited. See [`RateLimiter`] for how tokens are estimated.
    pub tokens_per_minute: u32,
    /// How much of the per-minute allowance may be spent back to back
    /// before calls are spaced out at the steady rate. The default, 10 s,
    /// lets a sixth of the per-minute budget go out at once; 60 s gives a
    /// plain one-minute bucket. At least one request can always start.
    pub rate_burst_window: Duration,
    /// Maximum number of HTTP requests in flight at once (at least 1).
    pub concurrency: usize,
    /// After this many consecutive failed calls (each after its retries) the
    /// circuit opens and stays open for the rest of the client's life.
    /// 0 disables the circuit breaker.
    pub failure_threshold: u32,
}

impl LlmSettings {
    /// Settings with breakdesk's defaults: JSON-schema answers, temperature 0,
    /// 1024 completion tokens, 60 s timeout, 3 retries with backoff from
    /// 500 ms up to 20 s, no rate limit, 4 requests in flight, circuit opening
    /// after 5 consecutive failures.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            azure_api_version: None,
            response_format: ResponseFormat::JsonSchema,
            temperature: 0.0,
            max_tokens: 1024,
            token_limit_field: TokenLimitField::MaxTokens,
            timeout: Duration::from_secs(60),
            max_retries: 3,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(20),
            requests_per_minute: 0,
            tokens_per_minute: 0,
            rate_burst_window: Duration::from_secs(10),
            concurrency: 4,
            failure_threshold: 5,
        }
    }
}

impl fmt::Debug for LlmSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmSettings")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field(
                "api_key",
                &self
                    .api_key
                    .as_ref()
                    .map(|_| "<redacted>")
                    .unwrap_or("<none>"),
            )
            .field("azure_api_version", &self.azure_api_version)
            .field("response_format", &self.response_format)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("token_limit_field", &self.token_limit_field)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("tokens_per_minute", &self.tokens_per_minute)
            .field("rate_burst_window", &self.rate_burst_window)
            .field("concurrency", &self.concurrency)
            .field("failure_threshold", &self.failure_threshold)
            .finish()
    }
}

/// One chat-completions request: a system and a user message plus the JSON
/// schema the answer must follow.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// System message.
    pub system: String,
    /// User message.
    pub user: String,
    /// Schema name for `response_format.json_schema.name`. Characters outside
    /// `[A-Za-z0-9_-]` are replaced by `_` and it is cut to 64 characters.
    pub schema_name: String,
    /// JSON schema of the expected answer (sent with
    /// [`ResponseFormat::JsonSchema`] only).
    pub schema: serde_json::Value,
}

impl ChatRequest {
    /// Builds a request from its four parts.
    pub fn new(
        system: impl Into<String>,
        user: impl Into<String>,
        schema_name: impl Into<String>,
        schema: serde_json::Value,
    ) -> Self {
        Self {
            system: system.into(),
            user: user.into(),
            schema_name: schema_name.into(),
            schema,
        }
    }
}

/// Result of one call of [`LlmClient::complete`], retries included.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatOutcome {
    /// The message content (`choices[0].message.content`) or why there is none.
    pub result: Result<String, LlmError>,
    /// HTTP requests sent for this call (0 when the circuit was already open).
    pub attempts: u32,
    /// Prompt tokens reported by the server, summed over all attempts.
    pub prompt_tokens: u32,
    /// Completion tokens reported by the server, summed over all attempts.
    pub completion_tokens: u32,
    /// Wall time of the call, including rate-limit waits and backoff.
    pub elapsed: Duration,
}

impl ChatOutcome {
    /// True when the call produced message content.
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }

    /// The message content, if the call succeeded.
    pub fn content(&self) -> Option<&str> {
        self.result.as_deref().ok()
    }
}

/// Why a call produced no usable message content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The server answered with a non-success HTTP status (after retries,
    /// for retryable ones). `message` is the server's error message, shortened.
    #[error("LLM service answered HTTP {status}: {message}")]
    Http {
        /// HTTP status code.
        status: u16,
        /// Error message from the body (`error.message` when present).
        message: String,
    },
    /// No complete answer within [`LlmSettings::timeout`].
    #[error("LLM request timed out")]
    Timeout,
    /// The service could not be reached or the connection broke.
    #[error("could not reach the LLM service: {0}")]
    Transport(String),
    /// `finish_reason` was `length`: the answer was cut short by `max_tokens`.
    #[error("LLM answer was cut short by the token limit (finish_reason \"length\")")]
    Truncated,
    /// The body is not a usable chat-completions answer.
    #[error("unexpected answer from the LLM service: {0}")]
    BadResponse(String),
    /// Too many consecutive failures earlier; no request was sent.
    #[error("LLM calls stopped after repeated failures (circuit open)")]
    CircuitOpen,
    /// The settings are unusable.
    #[error("invalid LLM settings: {0}")]
    Config(String),
}

impl LlmError {
    /// True for failures that are worth another attempt: timeouts, transport
    /// errors, and HTTP 408, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Timeout | LlmError::Transport(_) => true,
            LlmError::Http { status, .. } => is_retryable_status(*status),
            _ => false,
        }
    }
}

pub(crate) fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..=599).contains(&status)
}
