//! `oss.memory`: a per-key token bucket in process memory.
//!
//! OpenHands allows 10 requests per second per IP with bursts to 20, and *delays* requests
//! 11-20 by a second. We keep the rate and burst but answer at once: a request is served while
//! the bucket has a token, else refused with the time until the next token.

use crate::config::RateLimitSetting;
use crate::extension::{RateDecision, RateLimiter};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Buckets are forgotten after this long without a request.
const IDLE_FORGET: Duration = Duration::from_secs(60);
/// Above this many keys, idle buckets are swept.
const SWEEP_ABOVE: usize = 10_000;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets keyed by client.
pub struct MemoryRateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl MemoryRateLimiter {
    /// `per_second` steady rate with bursts to `2 * per_second`.
    pub fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self {
            per_second,
            burst: per_second * 2.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The decision for `key` at time `now` (exposed for tests).
    pub fn check_at(&self, key: &str, now: Instant) -> RateDecision {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > SWEEP_ABOVE {
            buckets.retain(|_, b| now.duration_since(b.updated) < IDLE_FORGET);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        let limit = self.burst as u32;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            RateDecision::Allowed {
                limit,
                remaining: bucket.tokens.floor() as u32,
            }
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            RateDecision::Limited {
                limit,
                retry_after: Duration::from_secs_f64(wait),
            }
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, key: &str) -> RateDecision {
        self.check_at(key, Instant::now())
    }
}

crate::register_plugin!(
    crate::extension::RateLimiter,
    "oss.memory",
    "Per-client token bucket in process memory (OPENHANDS_RATE_LIMIT per second, burst x2)",
    |ctx| {
        let rate = match ctx.config.rate_limit {
            RateLimitSetting::PerSecond(n) => n,
            RateLimitSetting::Off => 10,
        };
        Ok(Arc::new(MemoryRateLimiter::new(rate)))
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_of_twice_the_rate_then_refuses() {
        let limiter = MemoryRateLimiter::new(10);
        let now = Instant::now();
        for i in 0..20 {
            assert!(
                matches!(limiter.check_at("ip", now), RateDecision::Allowed { .. }),
                "request {i} is within the burst"
            );
        }
        match limiter.check_at("ip", now) {
            RateDecision::Limited { retry_after, limit } => {
                assert_eq!(limit, 20);
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_millis(100));
            }
            other => panic!("expected limited, got {other:?}"),
        }
    }

    #[test]
    fn refills_at_the_steady_rate_and_keys_are_independent() {
        let limiter = MemoryRateLimiter::new(10);
        let now = Instant::now();
        for _ in 0..20 {
            limiter.check_at("a", now);
        }
        assert!(matches!(
            limiter.check_at("b", now),
            RateDecision::Allowed { .. }
        ));
        let later = now + Duration::from_millis(100);
        assert!(matches!(
            limiter.check_at("a", later),
            RateDecision::Allowed { .. }
        ));
        assert!(matches!(
            limiter.check_at("a", later),
            RateDecision::Limited { .. }
        ));
    }
}
