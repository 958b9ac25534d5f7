//! Error responses.
//!
//! OpenHands uses several body shapes (`{"error"}`, `{"message"}`, `{"detail"}`,
//! `{"status":"error","message","msg_id"}`); on compatible routes we keep the shape of the
//! route, so each handler picks one of these constructors. Internal failures are logged with
//! their cause and answered without it (causes may name paths; they never hold secrets).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Value, json};
use std::fmt;

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
        let loc: Vec<Value> = std::iter::once(Value::from("body"))
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
