//! The `CurrentUser` extractor: runs the configured [`UserAuth`] for a request.
//!
//! Every `/api` handler takes it, which is how OpenHands' session-key guard (and later the
//! SaaS login) applies to exactly the routes that need it. After a successful login it
//! counts the request against the user's rate limit (`user_rate_limit`), once per request,
//! as OpenHands SaaS does.
//!
//! [`UserAuth`]: openhands_core::extension::UserAuth

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
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

/// What auth sees of a request, owned so the auth future can be `Send`.
pub struct AuthRequest {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
}

impl AuthRequest {
    pub fn of(req: &HttpRequest) -> Self {
        Self {
            method: req.method().as_str().to_owned(),
            path: req.path().to_owned(),
            headers: req.headers().clone(),
        }
    }
}

impl RequestHeaders for AuthRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn method(&self) -> &str {
        &self.method
    }
    fn path(&self) -> &str {
        &self.path
    }
}

/// `Set-Cookie` values that auth asked the response to carry (a refreshed session); the
/// [`session_cookies`](crate::middleware::session_cookies) middleware adds them.
#[derive(Debug, Clone, Default)]
pub struct PendingCookies(pub Vec<String>);

/// Marks a request whose user was already counted against `user_rate_limit`.
#[derive(Debug, Clone, Copy)]
struct UserRateCounted;

/// Runs the configured `UserAuth` on `request`. Callers that do not go through the
/// [`CurrentUser`] extractor (the event WebSocket) call
/// [`check_user`](crate::rate_limit::check_user) themselves afterwards.
pub async fn authenticate(state: &AppState, request: AuthRequest) -> Result<CurrentUser, ApiError> {
    state
        .ext
        .user_auth
        .authenticate(&request)
        .await
        .map(CurrentUser)
        .map_err(auth_error)
}

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let state = req.app_data::<Data<AppState>>().cloned();
        let request = AuthRequest::of(req);
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                ApiError::internal(
                    &"AppState is not registered",
                    json!({"detail": "Server misconfigured"}),
                )
            })?;
            let user = authenticate(&state, request).await?;
            // First, so that a refreshed session reaches the client even on a 429.
            if !user.0.set_cookies.is_empty() {
                req.extensions_mut()
                    .insert(PendingCookies(user.0.set_cookies.clone()));
            }
            // Once per request, however many extractors ask for the user.
            if req.extensions().get::<UserRateCounted>().is_none() {
                req.extensions_mut().insert(UserRateCounted);
                crate::rate_limit::check_user(&state, &user).await?;
            }
            Ok(user)
        })
    }
}

/// The response to an authentication failure (401 with the cookie cleared for an ended
/// session, 403 with the gate's code, 503 when the backend is unavailable).
pub fn auth_error(err: AuthError) -> ApiError {
    match err {
        AuthError::Unauthorized(message) => ApiError::detail(StatusCode::UNAUTHORIZED, message),
        AuthError::SessionEnded {
            message,
            clear_cookie,
        } => ApiError::detail(StatusCode::UNAUTHORIZED, message)
            .with_header("set-cookie", clear_cookie),
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
