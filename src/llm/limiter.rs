//! Shared request and token budget per minute.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Token-bucket rate limiter shared by all calls of one [`LlmClient`](super::LlmClient).
///
/// Two buckets refill continuously: one for requests, one for estimated
/// tokens. Each holds at most the `burst_window` share of its per-minute
/// allowance (but always room for one request). A caller *reserves* its cost
/// right away, which may drive a bucket below zero; it then sleeps until the
/// bucket has refilled to zero. Reservations are therefore served in the order
/// they were made, waiting is a single timer sleep (no polling), and a request
/// larger than the bucket is delayed instead of blocking forever.
///
/// Tokens are estimated before sending as `prompt characters / 4 +
/// max_tokens`. When the server's `usage` reports more than the estimate, the
/// difference is charged afterwards with [`RateLimiter::charge_tokens`]. A
/// smaller actual use is not refunded, because OpenAI counts `max_tokens`
/// against the limit when it admits a request.
#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    capacity: f64,
    per_second: f64,
    level: f64,
    updated: Instant,
}

impl Bucket {
    fn new(
        per_minute: u32,
        burst_window: Duration,
        min_capacity: f64,
        now: Instant,
    ) -> Option<Self> {
        if per_minute == 0 {
            return None;
        }
        let per_second = f64::from(per_minute) / 60.0;
        let capacity = (per_second * burst_window.as_secs_f64()).max(min_capacity);
        Some(Self {
            capacity,
            per_second,
            level: capacity,
            updated: now,
        })
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.level = (self.level + elapsed * self.per_second).min(self.capacity);
        self.updated = now;
    }

    /// Takes `cost` and returns how long until the bucket is back at zero.
    fn take(&mut self, cost: f64, now: Instant) -> Duration {
        self.refill(now);
        self.level -= cost;
        if self.level >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.level / self.per_second)
        }
    }
}

impl RateLimiter {
    /// A limiter for `requests_per_minute` and `tokens_per_minute` (0 means
    /// no limit for that bucket) whose buckets hold `burst_window` worth of
    /// allowance.
    pub fn new(requests_per_minute: u32, tokens_per_minute: u32, burst_window: Duration) -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(Buckets {
                requests: Bucket::new(requests_per_minute, burst_window, 1.0, now),
                tokens: Bucket::new(tokens_per_minute, burst_window, 1.0, now),
            }),
        }
    }

    /// A limiter that never waits.
    pub fn unlimited() -> Self {
        Self::new(0, 0, Duration::ZERO)
    }

    /// True when neither requests nor tokens are limited.
    pub fn is_unlimited(&self) -> bool {
        let state = self.lock();
        state.requests.is_none() && state.tokens.is_none()
    }

    /// Reserves one request costing `tokens` and returns how long the caller
    /// must wait before sending it. The reservation holds even if the caller
    /// then gives up.
    pub fn reserve(&self, tokens: u64) -> Duration {
        let now = Instant::now();
        let mut state = self.lock();
        let mut wait = Duration::ZERO;
        if let Some(bucket) = state.requests.as_mut() {
            wait = wait.max(bucket.take(1.0, now));
        }
        if let Some(bucket) = state.tokens.as_mut() {
            wait = wait.max(bucket.take(tokens as f64, now));
        }
        wait
    }

    /// Reserves one request costing `tokens` and sleeps until it may be sent.
    /// Returns the time waited.
    pub async fn acquire(&self, tokens: u64) -> Duration {
        let wait = self.reserve(tokens);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }

    /// Charges `tokens` more to the token bucket, for a request that used more
    /// than was reserved for it. Later reservations wait for it.
    pub fn charge_tokens(&self, tokens: u64) {
        if tokens == 0 {
            return;
        }
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(bucket) = state.tokens.as_mut() {
            bucket.refill(now);
            bucket.level -= tokens as f64;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        // The state is plain numbers that stay consistent even if a holder
        // panicked, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_waits() {
        let limiter = RateLimiter::unlimited();
        assert!(limiter.is_unlimited());
        for _ in 0..1000 {
            assert_eq!(limiter.reserve(1_000_000), Duration::ZERO);
        }
    }

    #[test]
    fn requests_are_spaced_after_the_burst() {
        // 60 per minute = 1 per second, bucket of 3 requests.
        let limiter = RateLimiter::new(60, 0, Duration::from_secs(3));
        assert!(!limiter.is_unlimited());
        for _ in 0..3 {
            assert_eq!(limiter.reserve(0), Duration::ZERO);
        }
        let fourth = limiter.reserve(0);
        let fifth = limiter.reserve(0);
        assert!(fourth > Duration::from_millis(900) && fourth <= Duration::from_secs(1));
        assert!(fifth > Duration::from_millis(1900) && fifth <= Duration::from_secs(2));
    }

    #[test]
    fn large_token_costs_wait_instead_of_blocking_forever() {
        // 600 tokens per minute = 10 per second; bucket holds 10.
        let limiter = RateLimiter::new(0, 600, Duration::from_secs(1));
        assert_eq!(limiter.reserve(10), Duration::ZERO);
        let wait = limiter.reserve(50);
        assert!(wait > Duration::from_millis(4900) && wait <= Duration::from_secs(5));
    }

    #[test]
    fn extra_charges_delay_later_reservations() {
        let limiter = RateLimiter::new(0, 600, Duration::from_secs(1));
        assert_eq!(limiter.reserve(5), Duration::ZERO);
        limiter.charge_tokens(25);
        // Level is now 10 - 5 - 25 = -20; another 5 tokens make it -25.
        let wait = limiter.reserve(5);
        assert!(wait > Duration::from_millis(2400) && wait <= Duration::from_millis(2500));
    }
}
