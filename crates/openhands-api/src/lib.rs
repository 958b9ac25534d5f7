//! The HTTP surface of the open API, kept apart from the wiring in `openhands-server`.
//!
//! Routes, field names and status codes follow the OpenHands server so that its clients work
//! unchanged; where OpenHands has a quirk (unknown `/api` paths answered with the web page,
//! any settings error reported as 401) we do the right thing and say so in `docs/`.
//! Handlers only talk to the extension points in [`AppState`], never to a concrete store.

pub mod agent_control;
pub mod audit;
pub mod body;
pub mod body_timeout;
pub mod client_ip;
pub mod contribution;
pub mod error;
pub mod event_feed;
pub mod gate;
pub mod host_check;
pub mod lifecycle;
pub mod methods;
pub mod middleware;
pub mod openapi;
pub mod origin;
pub mod rate_limit;
pub mod redirect;
pub mod routes;
pub mod sealed_cookie;
pub mod spa;
pub mod state;
pub mod strict_json;
pub mod system_stats;
pub mod trajectory;
pub mod user;

pub use state::AppState;

/// Answers query-string errors with 422 in FastAPI's shape, naming the parameter.
pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default().error_handler(|err, _req| {
        let message = err.to_string();
        error::ApiError::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::json!({"detail": [{"type": "query_invalid", "loc": ["query"], "msg": message}]}),
        )
        .into()
    })
}
