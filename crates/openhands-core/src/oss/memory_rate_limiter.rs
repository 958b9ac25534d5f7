//! `oss.memory`: rate limits in process memory, for a single server.
//!
//! Per client IP, a token bucket: OpenHands allows 10 requests per second per IP with bursts
//! to 20, and *delays* requests 11-20 by a second. We keep the rate and burst but answer at
//! once: a request is served while the bucket has a token, else refused with the time until
//! the next token.
//!
//! Per user (`user_rate_limit`), fixed windows counted like `saas.redis_rate_limit` does in
//! Redis: a window starts with its first request, a request is served only while every window
//! has room, and only served requests are counted.

use crate::config::{RateLimitSetting, RateWindows};
use crate::extension::{RateDecision, RateKey, RateLimiter, WindowState, fixed_window_decision};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Buckets are forgotten after this long without a request.
const IDLE_FORGET: Duration = Duration::from_secs(60);
/// Above this many keys, idle buckets and expired windows are swept.
const SWEEP_ABOVE: usize = 10_000;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// One window's counter for one user: `count` served requests since `started`.
#[derive(Clone, Copy)]
struct Counter {
    count: u32,
    started: Instant,
}

/// Fixed windows per user.
struct UserWindows {
    windows: RateWindows,
    counters: Mutex<HashMap<String, Vec<Counter>>>,
}

impl UserWindows {
    fn check_at(&self, user: &str, now: Instant) -> RateDecision {
        let windows = self.windows.windows();
        let mut all = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() > SWEEP_ABOVE {
            all.retain(|_, counters| {
                counters
                    .iter()
                    .zip(windows)
                    .any(|(c, w)| c.count > 0 && now < c.started + w.period)
            });
        }
        let counters = all.entry(user.to_owned()).or_insert_with(|| {
            vec![
                Counter {
                    count: 0,
                    started: now
                };
                windows.len()
            ]
        });
        for (counter, window) in counters.iter_mut().zip(windows) {
            if now >= counter.started + window.period {
                counter.count = 0;
            }
            if counter.count == 0 {
                counter.started = now;
            }
        }
        let served = counters.iter().zip(windows).all(|(c, w)| c.count < w.limit);
        if served {
            for counter in counters.iter_mut() {
                counter.count += 1;
            }
        }
        let states: Vec<WindowState> = counters
            .iter()
            .zip(windows)
            .map(|(c, w)| WindowState {
                window: *w,
                used: c.count,
                resets_in: (c.started + w.period).saturating_duration_since(now),
            })
            .collect();
        fixed_window_decision(&states, served)
    }
}

/// Token buckets per client IP and, when configured, fixed windows per user.
pub struct MemoryRateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
    users: Option<UserWindows>,
}

impl MemoryRateLimiter {
    /// Per IP, `per_second` steady rate with bursts to `2 * per_second`; no user limit.
    pub fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self {
            per_second,
            burst: per_second * 2.0,
            buckets: Mutex::new(HashMap::new()),
            users: None,
        }
    }

    /// Adds a per-user limit of `windows`.
    pub fn with_user_windows(mut self, windows: RateWindows) -> Self {
        self.users = Some(UserWindows {
            windows,
            counters: Mutex::new(HashMap::new()),
        });
        self
    }

    /// The decision for `key` at time `now` (exposed for tests).
    pub fn check_at(&self, key: RateKey<'_>, now: Instant) -> RateDecision {
        match key {
            RateKey::Ip(ip) => self.check_ip_at(ip, now),
            RateKey::User(user) => match &self.users {
                Some(users) => users.check_at(user, now),
                None => RateDecision::Unlimited,
            },
        }
    }

    fn check_ip_at(&self, key: &str, now: Instant) -> RateDecision {
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
                reset_after: Duration::from_secs_f64(
                    (self.burst - bucket.tokens) / self.per_second,
                ),
            }
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            RateDecision::Limited {
                limit,
                // A full bucket refills in `burst / rate`.
                period: Duration::from_secs_f64(self.burst / self.per_second),
                retry_after: Duration::from_secs_f64(wait),
            }
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, key: RateKey<'_>) -> RateDecision {
        self.check_at(key, Instant::now())
    }
}

crate::register_plugin!(
    crate::extension::RateLimiter,
    "oss.memory",
    "In process memory: per-IP token bucket (OPENHANDS_RATE_LIMIT per second, burst x2), per-user fixed windows",
    |ctx| {
        let rate = match ctx.config.rate_limit {
            RateLimitSetting::PerSecond(n) => n,
            RateLimitSetting::Off => 10,
        };
        let app_mode = crate::registry::select_class(&ctx.config)
            .map(|class| class.app_mode)
            .unwrap_or("oss");
        let limiter = MemoryRateLimiter::new(rate);
        Ok(Arc::new(
            match ctx.config.user_rate_limit.effective(app_mode) {
                Some(windows) => limiter.with_user_windows(windows),
                None => limiter,
            },
        ))
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
                matches!(
                    limiter.check_at(RateKey::Ip("ip"), now),
                    RateDecision::Allowed { .. }
                ),
                "request {i} is within the burst"
            );
        }
        match limiter.check_at(RateKey::Ip("ip"), now) {
            RateDecision::Limited {
                retry_after, limit, ..
            } => {
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
            limiter.check_at(RateKey::Ip("a"), now);
        }
        assert!(matches!(
            limiter.check_at(RateKey::Ip("b"), now),
            RateDecision::Allowed { .. }
        ));
        let later = now + Duration::from_millis(100);
        assert!(matches!(
            limiter.check_at(RateKey::Ip("a"), later),
            RateDecision::Allowed { .. }
        ));
        assert!(matches!(
            limiter.check_at(RateKey::Ip("a"), later),
            RateDecision::Limited { .. }
        ));
    }

    #[test]
    fn user_windows_count_served_requests_per_user_and_expire() {
        let windows = "2/s,3/min".parse().expect("windows");
        let limiter = MemoryRateLimiter::new(10).with_user_windows(windows);
        let now = Instant::now();
        let user = |id, at| limiter.check_at(RateKey::User(id), at);
        assert_eq!(
            user("u1", now),
            RateDecision::Allowed {
                limit: 2,
                remaining: 1,
                reset_after: Duration::from_secs(1)
            }
        );
        assert!(matches!(user("u1", now), RateDecision::Allowed { .. }));
        assert_eq!(
            user("u1", now),
            RateDecision::Limited {
                limit: 2,
                period: Duration::from_secs(1),
                retry_after: Duration::from_secs(1)
            }
        );
        assert!(
            matches!(user("u2", now), RateDecision::Allowed { .. }),
            "users are independent"
        );
        let later = now + Duration::from_secs(1);
        assert!(matches!(
            user("u1", later),
            RateDecision::Allowed { remaining: 0, .. }
        ));
        assert!(matches!(
            user("u1", later),
            RateDecision::Limited { limit: 3, .. }
        ));
        assert!(matches!(
            user("u1", now + Duration::from_secs(61)),
            RateDecision::Allowed { .. }
        ));
    }

    #[test]
    fn users_are_unlimited_without_user_windows() {
        let limiter = MemoryRateLimiter::new(1);
        for _ in 0..10 {
            assert_eq!(
                limiter.check_at(RateKey::User("u"), Instant::now()),
                RateDecision::Unlimited
            );
        }
    }
}
