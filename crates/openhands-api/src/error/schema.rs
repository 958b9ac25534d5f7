//! The error bodies of [`ApiError`](super::ApiError), as OpenAPI schemas.
//!
//! Only the document uses these types: handlers build their bodies with the constructors of
//! `ApiError` (whose JSON is what these describe), and `#[utoipa::path]` annotations and
//! provider crates name them (`body = ErrorDetail`). Every error is a JSON object; which of
//! its fields carries the message depends on the route (OpenHands' routes differ).

#![allow(dead_code)]

use utoipa::ToSchema;

/// `{"detail": message}`, FastAPI's shape, with a machine-readable `code` on our own
/// refusals (`csrf_rejected`, `host_not_allowed`, an org rule...).
#[derive(ToSchema)]
pub struct ErrorDetail {
    pub detail: String,
    #[schema(nullable = false)]
    pub code: Option<String>,
}

/// `{"detail": [issue, ...]}`: FastAPI's 422, naming each invalid field.
#[derive(ToSchema)]
pub struct ValidationErrors {
    pub detail: Vec<ValidationIssue>,
}

/// One invalid field of a [`ValidationErrors`].
#[derive(ToSchema)]
pub struct ValidationIssue {
    /// What is wrong: `missing`, `json_invalid`, `value_error`, `string_too_long`...
    #[schema(rename = "type")]
    pub kind: String,
    /// Where: `body`, `query` or `path`, then the field's path.
    pub loc: Vec<String>,
    /// A message for people, naming the field.
    pub msg: String,
}

/// `{"error": message}`, with a machine-readable `code` on our own routes.
#[derive(ToSchema)]
pub struct ErrorText {
    pub error: String,
    #[schema(nullable = false)]
    pub code: Option<String>,
}

/// `{"message": text}`: an error of the routes with that shape (the rate limit's 429), or
/// the confirmation of a change.
#[derive(ToSchema)]
pub struct Message {
    pub message: String,
}

/// `{"status": "error", ...}`, the conversation routes' shape: `message` and `msg_id` (a
/// key the web app translates), or the `conversation_id` that was not found.
#[derive(ToSchema)]
pub struct StatusError {
    #[schema(example = "error")]
    pub status: String,
    #[schema(nullable = false)]
    pub message: Option<String>,
    #[schema(nullable = false)]
    pub msg_id: Option<String>,
    #[schema(nullable = false)]
    pub conversation_id: Option<String>,
}

/// `{"success": false, "error": message}`, the shape of the routes that drive an agent.
#[derive(ToSchema)]
pub struct SuccessError {
    #[schema(example = false)]
    pub success: bool,
    pub error: String,
}

/// `{"success": true}`.
#[derive(ToSchema)]
pub struct Success {
    #[schema(example = true)]
    pub success: bool,
}
