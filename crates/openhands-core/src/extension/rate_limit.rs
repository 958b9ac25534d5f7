//! Request rate limiting.
//!
//! One limiter serves two kinds of keys with their own limits: the client IP of every request
//! (`rate_limit`, checked by a middleware before anything else) and the user of every
//! authenticated request (`user_rate_limit`, checked once right after authentication).

use async_trait::async_trait;
use std::fmt;
use std::time::Duration;

/// Whom a request is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateKey<'a> {
    /// The client IP, for the `rate_limit` setting.
    Ip(&'a str),
    /// The authenticated user's id, for the `user_rate_limit` setting.
    User(&'a str),
}

impl RateKey<'_> {
    /// `ip` or `user`, e.g. for storage keys and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            RateKey::Ip(_) => "ip",
            RateKey::User(_) => "user",
        }
    }

    /// The IP or the user id.
    pub fn id(&self) -> &str {
        match self {
            RateKey::Ip(id) | RateKey::User(id) => id,
        }
    }
}

impl fmt::Display for RateKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// No limit is configured for this kind of key: serve it, send no rate-limit headers.
    Unlimited,
    /// Serve it; `remaining` requests are left in the tightest window, which starts afresh
    /// after `reset_after`.
    Allowed {
        limit: u32,
        remaining: u32,
        reset_after: Duration,
    },
    /// Refuse it (429): `limit` requests per `period` are used up; the client may retry after
    /// `retry_after`, when that window starts afresh.
    Limited {
        limit: u32,
        period: Duration,
        retry_after: Duration,
    },
    /// The limiter's backend does not answer and the limiter is set to fail closed: refuse
    /// (503) and let the client retry after `retry_after`. Never a 500.
    Unavailable { retry_after: Duration },
}

/// Counts requests per key (client IP, user id).
///
/// Guarantees: answers promptly (a backend call is bounded by a short timeout); a backend
/// failure never becomes an error: the limiter answers `Allowed`/`Unlimited` (fail open, the
/// default) or `Unavailable` (fail closed) as configured, and says so in the log without
/// writing a line per request.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Records one request for `key` and says whether to serve it.
    async fn check(&self, key: RateKey<'_>) -> RateDecision;
}

/// One fixed window's state after a check: the window, the requests counted in it (this one
/// included when it was served) and the time until it starts afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    pub window: crate::config::RateWindow,
    pub used: u32,
    pub resets_in: Duration,
}

/// The decision for a request checked against several fixed windows at once, the same for
/// every limiter that counts in fixed windows. Served: report the window with the fewest
/// requests left (the later reset on a tie). Refused: report the full window that frees up
/// last, so `Retry-After` is never too early.
pub fn fixed_window_decision(states: &[WindowState], served: bool) -> RateDecision {
    if served {
        states
            .iter()
            .min_by_key(|s| {
                (
                    s.window.limit.saturating_sub(s.used),
                    std::cmp::Reverse(s.resets_in),
                )
            })
            .map(|s| RateDecision::Allowed {
                limit: s.window.limit,
                remaining: s.window.limit.saturating_sub(s.used),
                reset_after: s.resets_in,
            })
            .unwrap_or(RateDecision::Unlimited)
    } else {
        states
            .iter()
            .filter(|s| s.used >= s.window.limit)
            .max_by_key(|s| s.resets_in)
            .or_else(|| states.iter().max_by_key(|s| s.resets_in))
            .map(|s| RateDecision::Limited {
                limit: s.window.limit,
                period: s.window.period,
                retry_after: s.resets_in,
            })
            .unwrap_or(RateDecision::Unlimited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateWindow;

    fn state(limit: u32, period_s: u64, used: u32, resets_in_s: u64) -> WindowState {
        WindowState {
            window: RateWindow::new(limit, Duration::from_secs(period_s)),
            used,
            resets_in: Duration::from_secs(resets_in_s),
        }
    }

    #[test]
    fn served_reports_the_window_with_fewest_requests_left() {
        let states = [state(10, 1, 3, 1), state(100, 60, 98, 40)];
        assert_eq!(
            fixed_window_decision(&states, true),
            RateDecision::Allowed {
                limit: 100,
                remaining: 2,
                reset_after: Duration::from_secs(40)
            }
        );
        assert_eq!(fixed_window_decision(&[], true), RateDecision::Unlimited);
    }

    #[test]
    fn refused_reports_the_full_window_that_frees_up_last() {
        let states = [state(10, 1, 10, 1), state(100, 60, 100, 40)];
        assert_eq!(
            fixed_window_decision(&states, false),
            RateDecision::Limited {
                limit: 100,
                period: Duration::from_secs(60),
                retry_after: Duration::from_secs(40)
            }
        );
        let only_second = [state(10, 1, 10, 1), state(100, 60, 50, 40)];
        assert!(matches!(
            fixed_window_decision(&only_second, false),
            RateDecision::Limited { limit: 10, .. }
        ));
    }
}
