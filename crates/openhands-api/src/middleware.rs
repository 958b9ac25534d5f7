//! Middleware, in OpenHands' order: rate limit -> cache control -> CORS -> routes, with our
//! request id and access log outermost.
//!
//! `openhands-server` wraps them (actix applies the last `wrap` first):
//! `.wrap(cors(..)).wrap(from_fn(cache_control)).wrap(from_fn(rate_limit)).wrap(from_fn(request_log))`.

use crate::rate_limit;
use crate::state::AppState;
use actix_cors::Cors;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{Error, HttpMessage, HttpResponse};
use openhands_core::extension::{RateDecision, RateKey};
use std::time::Instant;
use tracing::Instrument;

/// Header carrying the request id, accepted from the client when well-formed.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the current request, stored in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn valid_client_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Gives each request an id (echoed in `X-Request-Id`), a tracing span carrying it, and
/// one structured log line when it completes.
pub async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_client_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    if let Some(state) = req.app_data::<Data<AppState>>() {
        state.touch();
    }
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let path = req.path().to_owned();
    let peer = req.peer_addr().map(|a| a.ip());
    let span = tracing::info_span!("request", request_id = %request_id);
    let result = next.call(req).instrument(span.clone()).await;
    let _entered = span.enter();
    match result {
        Ok(mut res) => {
            let status = res.status().as_u16();
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                res.headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
            }
            tracing::info!(
                method = %method,
                path = %path,
                status,
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                peer = ?peer,
                "request"
            );
            Ok(res)
        }
        Err(err) => {
            tracing::warn!(method = %method, path = %path, error = %err, "request failed");
            Err(err)
        }
    }
}

/// Per-client-IP rate limit through the configured [`RateLimiter`]; `/assets` is exempt.
/// Refused requests get 429 `{"message":"Too many requests"}` with `Retry-After` at once
/// (OpenHands sleeps them instead); served ones carry `X-RateLimit-Limit`, `-Remaining` and
/// `-Reset` unless an inner limit (the per-user one) already set them. A limiter whose
/// backend is down and set to fail closed gets 503 with `Retry-After`.
///
/// [`RateLimiter`]: openhands_core::extension::RateLimiter
pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let limiter = req
        .app_data::<Data<AppState>>()
        .map(|s| s.ext.rate_limiter.clone());
    let (Some(limiter), false) = (limiter, req.path().starts_with("/assets")) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let key = crate::client_ip::client_ip(req.request())
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".to_owned());
    match limiter.check(RateKey::Ip(&key)).await {
        RateDecision::Unlimited => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        RateDecision::Allowed {
            limit,
            remaining,
            reset_after,
        } => {
            let mut res = next.call(req).await?;
            let headers = res.headers_mut();
            if !headers.contains_key(rate_limit::LIMIT_HEADER) {
                for (name, value) in rate_limit::limit_headers(limit, remaining, reset_after) {
                    if let Ok(value) = HeaderValue::from_str(&value) {
                        headers.insert(HeaderName::from_static(name), value);
                    }
                }
            }
            Ok(res.map_into_left_body())
        }
        RateDecision::Limited {
            limit, retry_after, ..
        } => {
            tracing::warn!(client = %key, "rate limited");
            let mut response = HttpResponse::TooManyRequests();
            response.insert_header((
                header::RETRY_AFTER,
                rate_limit::retry_after_seconds(retry_after),
            ));
            for header in rate_limit::limit_headers(limit, 0, retry_after) {
                response.insert_header(header);
            }
            let response = response.json(serde_json::json!({"message": "Too many requests"}));
            Ok(req.into_response(response).map_into_right_body())
        }
        RateDecision::Unavailable { retry_after } => {
            let response = HttpResponse::ServiceUnavailable()
                .insert_header((
                    header::RETRY_AFTER,
                    rate_limit::retry_after_seconds(retry_after),
                ))
                .json(serde_json::json!({
                    "message": "Rate limiting is temporarily unavailable; retry shortly"
                }));
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

/// `/assets` (hashed file names) may be cached forever; everything else must not be cached.
pub async fn cache_control(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let assets = req.path().starts_with("/assets");
    let mut res = next.call(req).await?;
    let ok = res.status() == StatusCode::OK;
    let headers = res.headers_mut();
    if assets && ok {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=2592000, immutable"),
        );
    } else if !assets {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store, must-revalidate, max-age=0"),
        );
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        headers.insert(header::EXPIRES, HeaderValue::from_static("0"));
    }
    Ok(res)
}

/// The web app's policy: its own scripts only (Vite emits no inline script), inline styles
/// (component libraries set them), images from itself and data URLs, API and WebSocket calls
/// to itself, never framed.
const APP_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; font-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; \
base-uri 'self'; form-action 'self'; frame-ancestors 'none'";
/// Everything else (JSON, files) only needs to refuse framing.
const API_CSP: &str = "frame-ancestors 'none'";

/// Security headers on every response: `nosniff`, no framing (CSP `frame-ancestors` and
/// `X-Frame-Options` for old browsers), a referrer policy, and for HTML (the web app) a
/// content security policy. A header a handler set itself is kept.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mut res = next.call(req).await?;
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let headers = res.headers_mut();
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            if html { APP_CSP } else { API_CSP },
        ),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    Ok(res)
}

/// CORS as OpenHands: the origins in `PERMITTED_CORS_ORIGINS`, or when that is empty any
/// origin whose host is `localhost` or `127.0.0.1` (we also accept `[::1]`). Credentials,
/// all methods and all headers are allowed.
pub fn cors(permitted: &[String]) -> Cors {
    let permitted: Vec<String> = permitted
        .iter()
        .map(|o| o.trim_end_matches('/').to_owned())
        .collect();
    Cors::default()
        .allowed_origin_fn(move |origin, _head| {
            let Ok(origin) = origin.to_str() else {
                return false;
            };
            if permitted.is_empty() {
                is_localhost_origin(origin)
            } else {
                permitted.iter().any(|p| p == origin)
            }
        })
        .allow_any_method()
        .allow_any_header()
        .supports_credentials()
        .max_age(3600)
}

/// True for `scheme://localhost[:port]`, `127.0.0.1` and `[::1]`.
pub fn is_localhost_origin(origin: &str) -> bool {
    let Some((_, rest)) = origin.split_once("://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// Adds the `Set-Cookie` values that auth left in [`PendingCookies`] (a refreshed session)
/// to the response, whatever the handler answered.
///
/// [`PendingCookies`]: crate::user::PendingCookies
pub async fn session_cookies(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mut res = next.call(req).await?;
    let pending = res
        .request()
        .extensions_mut()
        .remove::<crate::user::PendingCookies>();
    if let Some(crate::user::PendingCookies(cookies)) = pending {
        for cookie in cookies {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                res.headers_mut().append(header::SET_COOKIE, value);
            }
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_origins_are_recognised() {
        assert!(is_localhost_origin("http://localhost:3001"));
        assert!(is_localhost_origin("https://127.0.0.1"));
        assert!(is_localhost_origin("http://[::1]:8080"));
        assert!(!is_localhost_origin("http://localhost.evil.example"));
        assert!(!is_localhost_origin("http://evil.example/localhost"));
        assert!(!is_localhost_origin("localhost"));
    }

    #[test]
    fn client_request_ids_are_checked() {
        assert!(valid_client_id("abc-123_X"));
        assert!(!valid_client_id(""));
        assert!(!valid_client_id("has space"));
        assert!(!valid_client_id(&"a".repeat(65)));
    }
}
