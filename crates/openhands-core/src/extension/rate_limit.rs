//! Request rate limiting.

use async_trait::async_trait;
use std::time::Duration;

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Serve it; `remaining` requests are left in the current window.
    Allowed { limit: u32, remaining: u32 },
    /// Refuse it; the client may retry after the given time.
    Limited { limit: u32, retry_after: Duration },
}

/// Counts requests per key (client IP, user id).
///
/// Guarantees: never blocks the request (answers at once); a backend failure must not turn
/// into an error for the client (implementations decide to fail open or closed by config).
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Records one request for `key` and says whether to serve it.
    async fn check(&self, key: &str) -> RateDecision;
}
