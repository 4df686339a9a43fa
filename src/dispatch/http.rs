//! What the Jira and webhook clients share: the reqwest client (rustls/ring, optional extra CA,
//! no redirects, a timeout per request), a bounded exchange, and the rule that sorts an answer
//! into sent / retry / park.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::outbox::{RETRY_AFTER_MAX, SendOutcome};

/// Largest answer body read.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Longest server message kept in an error.
const MAX_ERROR_CHARS: usize = 300;

/// A parsed endpoint setting (`http` or `https`, with a host); the error names `key`.
pub(crate) fn parse_url(value: &str, key: &str) -> Result<reqwest::Url, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("{key} is empty"));
    }
    let url = reqwest::Url::parse(value)
        .map_err(|e| format!("{key} {value:?} is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "{key} {value:?} must be an http:// or https:// URL with a host"
        ));
    }
    Ok(url)
}

/// The HTTP client of a channel: rustls with ring (installed by the dispatcher), the platform's
/// roots plus `ca_pem`, `timeout` per request, no redirects (a create request must not turn into
/// a GET elsewhere), no proxy for this machine.
pub(crate) fn client(
    timeout: Duration,
    ca_pem: Option<&[u8]>,
    url: &reqwest::Url,
    key: &str,
) -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("breakdesk/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("{key} holds no usable certificate: {e}"))?;
        builder = builder.tls_certs_merge(certs);
    }
    if crate::net::is_loopback(url) {
        builder = builder.no_proxy();
    }
    builder
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// An answer read in full.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends the request and reads the answer; a failure before an answer is a transient outcome
/// (`what` says which request; `secret` is kept out of messages).
pub(crate) async fn exchange(
    request: reqwest::RequestBuilder,
    what: &str,
    timeout: Duration,
) -> Result<Answer, SendOutcome> {
    let transient = |error: String| SendOutcome::Transient {
        error,
        retry_after: None,
    };
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Err(transient(format!(
                "{what}: no answer within {} s",
                timeout.as_secs_f64()
            )));
        }
        Err(e) => return Err(transient(format!("{what}: {}", crate::net::error_chain(e)))),
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => {
                return Err(transient(format!(
                    "{what}: the answer did not complete within {} s",
                    timeout.as_secs_f64()
                )));
            }
            Err(e) => return Err(transient(format!("{what}: {}", crate::net::error_chain(e)))),
        }
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// The outcome of a non-success answer: 429 (with its `Retry-After`), 408 and 5xx — and the
/// statuses in `also_transient` — are retried; any other status is permanent.
pub(crate) fn failure(
    answer: &Answer,
    what: &str,
    secret: Option<&str>,
    also_transient: &[u16],
) -> SendOutcome {
    let message = error_message(&answer.body, answer.status, secret);
    let error = format!("{what}: HTTP {} {message}", answer.status);
    let status = answer.status;
    if status == 429
        || status == 408
        || (500..600).contains(&status)
        || also_transient.contains(&status)
    {
        let retry_after = crate::net::parse_retry_after_capped(
            &answer.headers,
            chrono::Utc::now(),
            RETRY_AFTER_MAX,
        );
        SendOutcome::Transient { error, retry_after }
    } else {
        SendOutcome::Permanent { error }
    }
}

/// The server's message: Jira's `errorMessages` and `errors`, or `error` / `message`, else the
/// start of the body.
pub(crate) fn error_message(body: &[u8], status: u16, secret: Option<&str>) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(list) = v.get("errorMessages").and_then(Value::as_array) {
            parts.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
        }
        if let Some(map) = v.get("errors").and_then(Value::as_object) {
            parts.extend(map.iter().map(|(k, m)| {
                format!(
                    "{k}: {}",
                    m.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| m.to_string())
                )
            }));
        }
        if parts.is_empty() {
            let error = v.get("error");
            if let Some(m) = error
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .or_else(|| error.and_then(Value::as_str))
                .or_else(|| v.get("message").and_then(Value::as_str))
            {
                parts.push(m.to_string());
            }
        }
    }
    let text = if parts.is_empty() {
        String::from_utf8_lossy(body).into_owned()
    } else {
        parts.join("; ")
    };
    let cleaned = crate::text::clean_text(&text, MAX_ERROR_CHARS, secret);
    if !cleaned.is_empty() {
        return cleaned;
    }
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|c| c.canonical_reason())
        .unwrap_or("no details")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str, headers: &[(&'static str, &str)]) -> Answer {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        Answer {
            status,
            headers: h,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn answers_are_sorted_into_retry_and_park() {
        let retry =
            |a: &Answer| matches!(failure(a, "x", None, &[]), SendOutcome::Transient { .. });
        assert!(retry(&answer(500, "", &[])));
        assert!(retry(&answer(503, "", &[])));
        assert!(retry(&answer(408, "", &[])));
        assert!(retry(&answer(429, "", &[])));
        assert!(!retry(&answer(400, "", &[])));
        assert!(!retry(&answer(401, "", &[])));
        assert!(!retry(&answer(404, "", &[])));
        assert!(!retry(&answer(302, "", &[])));
        assert!(matches!(
            failure(&answer(409, "", &[]), "x", None, &[409]),
            SendOutcome::Transient { .. }
        ));
        match failure(&answer(429, "", &[("retry-after", "7")]), "x", None, &[]) {
            SendOutcome::Transient { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            other => panic!("{other:?}"),
        }
        // Longer than the LLM client's cap: the outbox waits durably.
        match failure(&answer(429, "", &[("retry-after", "600")]), "x", None, &[]) {
            SendOutcome::Transient { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(600)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn jira_error_bodies_are_read_and_secrets_hidden() {
        let body =
            r#"{"errorMessages":["Bad request"],"errors":{"project":"project is required"}}"#;
        assert_eq!(
            error_message(body.as_bytes(), 400, None),
            "Bad request; project: project is required"
        );
        assert_eq!(
            error_message(b"token s3cret rejected", 401, Some("s3cret")),
            "token [redacted] rejected"
        );
        assert_eq!(error_message(b"", 503, None), "Service Unavailable");
    }
}
