//! Error responses.
//!
//! OpenHands uses several body shapes (`{"error"}`, `{"message"}`, `{"detail"}`,
//! `{"status":"error","message","msg_id"}`); on compatible routes we keep the shape of the
//! route, so each handler picks one of these constructors. Internal failures are logged with
//! their cause and answered without it (causes may name paths; they never hold secrets).
//! A store that cannot be reached for now ([`StoreError::Unavailable`], e.g. a lost
//! database connection) is not an internal failure: [`ApiError::store`] answers it with
//! 503 and `Retry-After`, so clients and load balancers retry instead of giving up.
//!
//! [`schema`] names these body shapes for the OpenAPI document.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use openhands_core::StoreError;
use openhands_core::settings::{NUL_REFUSED, nul_path};
use serde::Serialize;
use serde_json::{Value, json};
use std::fmt;

pub mod schema;

/// Seconds a client is asked to wait before retrying after a 503 for an unreachable store.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// An error answer: a status and a JSON body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
    /// Extra response headers (name, value), e.g. a `Set-Cookie` that ends a session.
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// `{"detail": message}`, FastAPI's default shape.
    pub fn detail(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, json!({ "detail": message.into() }))
    }

    /// `{"error": message}`.
    pub fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, json!({ "error": message.into() }))
    }

    /// `{"message": message}`.
    pub fn message(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, json!({ "message": message.into() }))
    }

    /// `{"status":"error","message","msg_id"}`, the conversation routes' shape.
    pub fn status_error(status: StatusCode, message: impl Into<String>, msg_id: &str) -> Self {
        Self::new(
            status,
            json!({ "status": "error", "message": message.into(), "msg_id": msg_id }),
        )
    }

    /// A 422 validation error in FastAPI's shape, naming the field.
    pub fn validation(field_path: &str, message: impl Into<String>, kind: &str) -> Self {
        Self::validation_in("body", field_path, message, kind)
    }

    /// A 422 validation error of a field of `location` (`body`, `query`, `path`).
    pub fn validation_in(
        location: &str,
        field_path: &str,
        message: impl Into<String>,
        kind: &str,
    ) -> Self {
        let loc: Vec<Value> = std::iter::once(Value::from(location))
            .chain(
                field_path
                    .split('.')
                    .filter(|s| !s.is_empty() && *s != "?")
                    .map(Value::from),
            )
            .collect();
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "detail": [{ "type": kind, "loc": loc, "msg": message.into() }] }),
        )
    }

    /// Logs `cause` and answers `status` with `body`.
    pub fn internal(cause: &dyn fmt::Display, body: Value) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, body)
    }

    /// A store's failure: 503 `{"detail"}` with `Retry-After` when the store cannot be
    /// reached for now, else [`ApiError::internal`] with `body` (the route's 500 shape).
    pub fn store(err: StoreError, body: Value) -> Self {
        match err {
            StoreError::Unavailable(reason) => {
                tracing::warn!(error = %reason, "storage unavailable");
                Self::detail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Storage is temporarily unavailable; retry shortly",
                )
                .with_header("retry-after", RETRY_AFTER_SECONDS.to_string())
            }
            other => Self::internal(&other, body),
        }
    }

    /// A 422 naming the first string of the body `request` that holds U+0000 (see
    /// [`nul_path`] for why none is accepted).
    pub fn refuse_nul_in(request: &impl Serialize) -> Result<(), Self> {
        let found = serde_json::to_value(request)
            .ok()
            .as_ref()
            .and_then(nul_path);
        match found {
            Some(path) => Err(Self::nul_in("body", &path)),
            None => Ok(()),
        }
    }

    /// A 422 when `value`, the field `field` of `location` (`body`, `query`), holds U+0000.
    pub fn refuse_nul(location: &str, field: &str, value: &str) -> Result<(), Self> {
        if value.contains('\0') {
            return Err(Self::nul_in(location, field));
        }
        Ok(())
    }

    fn nul_in(location: &str, field: &str) -> Self {
        Self::validation_in(
            location,
            field,
            format!("{field}: {NUL_REFUSED}"),
            "string_pattern_mismatch",
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.body)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        for (name, value) in &self.headers {
            response.append_header((name.as_str(), value.as_str()));
        }
        response.json(&self.body)
    }
}
