//! The `CurrentUser` extractor: runs the configured [`UserAuth`] for a request.
//!
//! Every `/api` handler takes it, which is how OpenHands' session-key guard (and later the
//! SaaS login) applies to exactly the routes that need it.
//!
//! [`UserAuth`]: openhands_core::extension::UserAuth

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use openhands_core::extension::{AuthError, AuthenticatedUser, RequestHeaders};
use openhands_core::scope::UserScope;
use serde_json::json;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub AuthenticatedUser);

impl CurrentUser {
    pub fn scope(&self) -> &UserScope {
        &self.0.scope
    }
}

/// A request's headers, owned so the auth future can be `Send`.
struct OwnedHeaders(HeaderMap);

impl RequestHeaders for OwnedHeaders {
    fn header(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Runs the configured `UserAuth` on `headers`.
pub async fn authenticate(state: &AppState, headers: HeaderMap) -> Result<CurrentUser, ApiError> {
    state
        .ext
        .user_auth
        .authenticate(&OwnedHeaders(headers))
        .await
        .map(CurrentUser)
        .map_err(auth_error)
}

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let state = req.app_data::<Data<AppState>>().cloned();
        let headers = req.headers().clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                ApiError::internal(
                    &"AppState is not registered",
                    json!({"detail": "Server misconfigured"}),
                )
            })?;
            authenticate(&state, headers).await
        })
    }
}

fn auth_error(err: AuthError) -> ApiError {
    match err {
        AuthError::Unauthorized(message) => ApiError::detail(StatusCode::UNAUTHORIZED, message),
        AuthError::Forbidden { code, message } => ApiError::new(
            StatusCode::FORBIDDEN,
            json!({ "detail": message, "code": code }),
        ),
        AuthError::Unavailable(message) => {
            tracing::error!(error = %message, "authentication backend unavailable");
            ApiError::detail(
                StatusCode::SERVICE_UNAVAILABLE,
                "Authentication is temporarily unavailable; retry shortly",
            )
        }
    }
}
