//! Helpers for talking HTTP to someone else's server, shared by the LLM client and the
//! dispatch channels: whether an address is this machine, retry waits with jitter and the
//! server's `Retry-After`, and a transport error told in one line.

use rand::Rng;
use reqwest::header::HeaderMap;
use std::time::Duration;

/// Whether the URL's host is this machine (localhost or a loopback address).
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A random duration from zero to `up_to`.
pub fn jitter(up_to: Duration) -> Duration {
    let micros = u64::try_from(up_to.as_micros()).unwrap_or(u64::MAX);
    if micros == 0 {
        return Duration::ZERO;
    }
    Duration::from_micros(rand::thread_rng().gen_range(0..=micros))
}

/// Reads `retry-after-ms` or `Retry-After` (seconds or an HTTP date), capped at `cap` (the
/// outbox waits durably, so it honours longer waits than a call in progress does).
pub fn parse_retry_after_capped(
    headers: &HeaderMap,
    now: chrono::DateTime<chrono::Utc>,
    cap: Duration,
) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let from_secs = |secs: f64| {
        (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(cap.as_secs_f64())))
    };
    if let Some(wait) = text("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|ms| from_secs(ms / 1000.0))
    {
        return Some(wait);
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return from_secs(secs);
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO).min(cap))
}

/// The error and its causes in one line, without the URL (the caller knows the endpoint).
pub fn error_chain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
