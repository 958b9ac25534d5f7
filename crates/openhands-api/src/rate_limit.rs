//! Turning [`RateDecision`]s into HTTP: the rate-limit headers and the per-user check.
//!
//! Two places ask the limiter: the `rate_limit` middleware per client IP (before anything
//! else; 429 `{"message": "Too many requests"}`, our existing shape) and [`check_user`] once
//! per authenticated request (429 `{"error": "Rate limit exceeded: 10 per 1 second"}`,
//! OpenHands SaaS's shape). Both send `Retry-After` and `X-RateLimit-Limit`, `-Remaining`
//! and `-Reset` (epoch seconds); a limiter whose backend is down and set to fail closed
//! gets a 503 with `Retry-After`, never a 500.

use crate::error::ApiError;
use crate::state::AppState;
use crate::user::CurrentUser;
use actix_web::http::StatusCode;
use openhands_core::config::RateWindow;
use openhands_core::extension::{RateDecision, RateKey};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `X-RateLimit-Limit`.
pub const LIMIT_HEADER: &str = "x-ratelimit-limit";
/// `X-RateLimit-Remaining`.
pub const REMAINING_HEADER: &str = "x-ratelimit-remaining";
/// `X-RateLimit-Reset`: when the window starts afresh, in seconds since the Unix epoch.
pub const RESET_HEADER: &str = "x-ratelimit-reset";

/// The key the user limit counts a user without an id under (the single OSS user).
pub const LOCAL_USER_KEY: &str = "local";

/// Whole seconds to wait, rounded up, at least 1 (`Retry-After` has no fractions).
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// The epoch second by which `after` has passed (rounded up).
pub fn reset_epoch(after: Duration) -> u64 {
    let at = SystemTime::now() + after;
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    since.as_secs() + u64::from(since.subsec_nanos() > 0)
}

/// `(name, value)` of the three `X-RateLimit-*` headers.
pub fn limit_headers(
    limit: u32,
    remaining: u32,
    reset_after: Duration,
) -> [(&'static str, String); 3] {
    [
        (LIMIT_HEADER, limit.to_string()),
        (REMAINING_HEADER, remaining.to_string()),
        (RESET_HEADER, reset_epoch(reset_after).to_string()),
    ]
}

/// Counts the request against the authenticated `user` (`user_rate_limit`). A refusal is
/// 429 in OpenHands' shape with `Retry-After` and the `X-RateLimit-*` headers; a limiter
/// that fails closed answers 503.
pub async fn check_user(state: &AppState, user: &CurrentUser) -> Result<(), ApiError> {
    let id = user.scope().user_id.as_deref().unwrap_or(LOCAL_USER_KEY);
    match state.ext.rate_limiter.check(RateKey::User(id)).await {
        RateDecision::Unlimited | RateDecision::Allowed { .. } => Ok(()),
        RateDecision::Limited {
            limit,
            period,
            retry_after,
        } => {
            let description = RateWindow::new(limit, period).describe();
            tracing::info!(user_id = %id, limit = %description, "user rate limited");
            let refused = ApiError::error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Rate limit exceeded: {description}"),
            )
            .with_header("retry-after", retry_after_seconds(retry_after).to_string());
            Err(limit_headers(limit, 0, retry_after)
                .into_iter()
                .fold(refused, |err, (name, value)| err.with_header(name, value)))
        }
        RateDecision::Unavailable { retry_after } => Err(ApiError::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Rate limiting is temporarily unavailable; retry shortly",
        )
        .with_header("retry-after", retry_after_seconds(retry_after).to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(100)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(60)), 60);
    }

    #[test]
    fn reset_is_an_epoch_second_not_before_the_window_ends() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let reset = reset_epoch(Duration::from_secs(30));
        assert!((now + 30..=now + 32).contains(&reset), "{now} {reset}");
    }
}
