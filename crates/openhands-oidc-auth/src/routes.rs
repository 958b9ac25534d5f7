//! The login routes, mounted when `saas.oidc` is the selected `UserAuth`:
//!
//! - `GET /oauth/keycloak/login?redirect_url=/path` (ours: OpenHands' web app builds the
//!   provider URL itself, but PKCE needs a verifier the server keeps) redirects to the
//!   provider and sets the short-lived login cookie.
//! - `GET /oauth/keycloak/callback?code&state` (OpenHands' path) checks `state` against the
//!   login cookie, exchanges the code with the PKCE verifier, verifies the ID token and its
//!   nonce, creates or updates the user, sets the session cookie and redirects (to the
//!   terms page first when they are not accepted yet).
//! - `POST /api/logout` as in OpenHands (200 `{"message": "User logged out"}`), and it also
//!   revokes the session's server-side record, so a copy of the cookie dies with it.
//!   `POST /api/logout?everywhere=true` revokes every session of the signed-in user (all
//!   browsers); it needs a live session or an API key (401 otherwise), so an ended cookie
//!   cannot log its user out elsewhere.
//! - `POST /api/authenticate`, `POST /api/accept_tos` as in OpenHands.
//!
//! The session routes are in [`crate::session_routes`]; both are mounted together here.
//!
//! Errors are `{"error": message, "code": code}`: 400 for a callback without code or with a
//! state that does not match, 401 when the provider refuses the code or the ID token fails
//! verification, 403 for a user not on the allowlist, 503 when the provider (or the session
//! storage) is unreachable.

use crate::openapi::{AuthRefusal, ErrorBody, MessageBody, RedirectUrlBody};
use crate::provider::ProviderError;
use crate::service::OidcAuth;
use crate::session::{LOGIN_COOKIE, PendingLogin, Session};
use crate::session_store::Origin;
use crate::users;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use openhands_api::AppState;
use openhands_api::contribution::RouteContribution;
use openhands_api::error::ApiError;
use openhands_api::user::{AuthRequest, CurrentUser, PendingCookies, authenticate};
use openhands_core::extension::{AuthError, AuthType, RequestHeaders, UserAuth};
use openhands_core::registry::Slot;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// The `SharedResources` key under which the plugin leaves its service for these routes.
pub const SERVICE_KEY: &str = "saas.oidc";
/// The callback path, as in OpenHands.
pub const CALLBACK_PATH: &str = "/oauth/keycloak/callback";

fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/keycloak/login", web::get().to(login))
        .route(CALLBACK_PATH, web::get().to(callback))
        .route("/api/logout", web::post().to(logout))
        .route("/api/authenticate", web::post().to(authenticate_route))
        .route("/api/accept_tos", web::post().to(accept_tos));
    crate::session_routes::configure(cfg);
}

/// Whether `saas.oidc` is this server's `UserAuth` (its routes and their OpenAPI
/// description exist only then).
pub(crate) fn oidc_selected(state: &AppState) -> bool {
    state
        .ext
        .selected
        .iter()
        .any(|(slot, name)| *slot == Slot::UserAuth && name == SERVICE_KEY)
}

inventory::submit! {
    RouteContribution {
        name: "saas.auth",
        description: "OIDC login, logout, session check, terms acceptance, session listing and revocation",
        enabled: oidc_selected,
        configure,
    }
}

pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, json!({ "error": message.into(), "code": code }))
}

/// A 500 with the crate's error shape; the cause is logged, not shown.
pub(crate) fn internal(cause: &dyn std::fmt::Display, message: &str) -> ApiError {
    ApiError::internal(cause, json!({"error": message, "code": "internal_error"}))
}

/// The identity provider (its OIDC endpoints or Keycloak's admin API) did not answer: 503
/// `provider_unavailable`, the client may retry.
pub(crate) fn provider_unavailable(cause: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(error = %cause, "identity provider unavailable");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "provider_unavailable",
        "The identity provider is unreachable; try again shortly",
    )
}

/// The session storage failed: 503, the client may retry.
pub(crate) fn storage_unavailable(cause: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %cause, "session storage unavailable");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "Session storage is unavailable; try again shortly",
    )
}

/// The service the plugin built for this server.
pub(crate) async fn service(state: &AppState) -> Result<Arc<OidcAuth>, ApiError> {
    state
        .ext
        .shared
        .get_or_try_init::<Arc<OidcAuth>, ApiError, _, _>(SERVICE_KEY, || async {
            Err(ApiError::internal(
                &"the saas.oidc service is missing from the shared resources",
                json!({"error": "Login is not configured", "code": "internal_error"}),
            ))
        })
        .await
}

fn provider_failure(err: ProviderError) -> ApiError {
    match err {
        ProviderError::Unavailable(cause) => provider_unavailable(&cause),
        ProviderError::Refused(cause) => {
            tracing::info!(error = %cause, "login code refused by the provider");
            error(
                StatusCode::UNAUTHORIZED,
                "code_rejected",
                "The identity provider refused the login code; log in again",
            )
        }
        ProviderError::InvalidIdToken(cause) => {
            tracing::warn!(error = %cause, "ID token rejected");
            error(
                StatusCode::UNAUTHORIZED,
                "id_token_invalid",
                "The identity provider's ID token failed verification; log in again",
            )
        }
        ProviderError::Config(cause) => ApiError::internal(
            &cause,
            json!({"error": "Login is misconfigured", "code": "internal_error"}),
        ),
    }
}

/// `GET /oauth/keycloak/login` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LoginQuery {
    /// A local path to land on after the login (anything else lands on `/`).
    redirect_url: Option<String>,
}

/// Starts a login: redirects to the provider (PKCE, `state`, nonce) and sets the
/// short-lived login cookie. The redirect URI is the configured public URL's callback.
#[utoipa::path(get, path = "/oauth/keycloak/login", tag = "auth", params(LoginQuery),
    responses(
        (status = 302, description = "To the provider's authorization endpoint; sets `openhands_login`",
            headers(("Location" = String, description = "The provider's authorization URL"))),
        (status = 422, description = "Invalid query string"),
        (status = 500, description = "Login is misconfigured", body = ErrorBody),
        (status = 503, description = "The provider is unreachable (`provider_unavailable`)", body = ErrorBody)))]
pub(crate) async fn login(
    state: web::Data<AppState>,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, ApiError> {
    let auth = service(&state).await?;
    let redirect_uri = auth.callback_url();
    let request = auth
        .provider
        .authorization_request(&redirect_uri)
        .await
        .map_err(provider_failure)?;
    let pending = PendingLogin {
        state: request.state,
        nonce: request.nonce,
        pkce_verifier: request.pkce_verifier,
        redirect: openhands_api::redirect::safe_local_path(query.redirect_url.as_deref()),
        expires: chrono::Utc::now().timestamp() + crate::session::LOGIN_TTL_SECONDS,
    };
    let cookie = auth
        .cookies
        .login_header(&pending)
        .map_err(|e| internal(&e, "Login failed"))?;
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, request.url))
        .insert_header((header::SET_COOKIE, cookie))
        .finish())
}

/// `GET /oauth/keycloak/callback` query (what the provider appends).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// Must equal the `state` sealed in the login cookie.
    state: Option<String>,
    /// Set by the provider when it ended the login.
    error: Option<String>,
    error_description: Option<String>,
}

/// The provider's redirect back: checks `state`, exchanges the code, verifies the ID
/// token, creates the session record and sets the session cookie.
#[utoipa::path(get, path = "/oauth/keycloak/callback", tag = "auth", params(CallbackQuery),
    responses(
        (status = 302, description = "Logged in: to the page, or first to `/accept-tos`; sets `keycloak_auth`",
            headers(("Location" = String, description = "A local path"))),
        (status = 400, description = "`missing_code`, `login_refused`, `login_expired` or `bad_state`", body = ErrorBody),
        (status = 401, description = "`code_rejected` or `id_token_invalid`", body = ErrorBody),
        (status = 403, description = "`not_allowed`: not on the allowlist", body = ErrorBody),
        (status = 422, description = "Invalid query string"),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 503, description = "The provider or the session storage is unreachable", body = ErrorBody)))]
pub(crate) async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let auth = service(&state).await?;
    let clear_login = auth.cookies.clear_login_header();
    let refuse = |err: ApiError| err.with_header("set-cookie", clear_login.clone());
    if let Some(reason) = &query.error {
        let detail = query.error_description.as_deref().unwrap_or(reason);
        return Err(refuse(error(
            StatusCode::BAD_REQUEST,
            "login_refused",
            format!("The identity provider ended the login: {detail}"),
        )));
    }
    let Some(code) = query.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(refuse(error(
            StatusCode::BAD_REQUEST,
            "missing_code",
            "Missing code in request params",
        )));
    };
    let request = AuthRequest::of(&req);
    let pending = request
        .cookie(LOGIN_COOKIE)
        .and_then(|value| auth.cookies.open_login(value).ok())
        .filter(|p| p.expires > chrono::Utc::now().timestamp())
        .ok_or_else(|| {
            refuse(error(
                StatusCode::BAD_REQUEST,
                "login_expired",
                "This login was not started here or took too long; log in again",
            ))
        })?;
    let given_state = query.state.as_deref().unwrap_or_default();
    if !openhands_core::secret::constant_time_eq(given_state, &pending.state) {
        return Err(refuse(error(
            StatusCode::BAD_REQUEST,
            "bad_state",
            "The login state does not match; log in again",
        )));
    }
    let redirect_uri = auth.callback_url();
    let tokens = auth
        .provider
        .exchange_code(code, &pending.pkce_verifier, &redirect_uri, &pending.nonce)
        .await
        .map_err(|e| refuse(provider_failure(e)))?;
    let identity = tokens.identity.clone().ok_or_else(|| {
        refuse(provider_failure(ProviderError::InvalidIdToken(
            "no identity".into(),
        )))
    })?;
    if !auth
        .allowlist
        .allows(identity.username.as_deref(), identity.email.as_deref())
    {
        tracing::info!(user = %identity.subject, "login refused: not on the allowlist");
        return Err(refuse(error(
            StatusCode::FORBIDDEN,
            "not_allowed",
            "This account is not on the allowlist yet",
        )));
    }
    let record = users::upsert_on_login(&auth.db, &identity)
        .await
        .map_err(|e| refuse(internal(&e, "Login failed")))?;
    users::ensure_personal_org(&auth.db, &identity)
        .await
        .map_err(|e| refuse(internal(&e, "Login failed")))?;
    let origin = Origin {
        user_agent: request.header("user-agent"),
        ip: openhands_api::audit::client_ip(&req),
    };
    let (session_record, token) = auth
        .sessions
        .create(&identity.subject, origin)
        .await
        .map_err(|e| refuse(storage_unavailable(&e)))?;
    let session = Session {
        token,
        sub: identity.subject.clone(),
        email: identity.email.map(|e| e.trim().to_lowercase()),
        email_verified: identity.email_verified,
        tos: record.tos_accepted,
        access_exp: tokens.access_expires_at,
        refresh: tokens.refresh_token,
    };
    let cookie = auth
        .session_cookie(&session, &session_record)
        .map_err(|e| refuse(internal(&e, "Login failed")))?;
    tracing::info!(user = %session.sub, session_id = %session_record.id, "logged in");
    let target = if auth.require_tos && !session.tos {
        format!(
            "/accept-tos?redirect_url={}",
            url::form_urlencoded::byte_serialize(pending.redirect.as_bytes()).collect::<String>()
        )
    } else {
        pending.redirect
    };
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, target))
        .append_header((header::SET_COOKIE, cookie))
        .append_header((header::SET_COOKIE, clear_login))
        .finish())
}

/// `POST /api/logout` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogoutQuery {
    /// `true`: revoke every session of the user (all browsers), not only this one.
    #[serde(default)]
    everywhere: Option<bool>,
}

/// `POST /api/logout` body.
#[derive(Debug, serde::Serialize, ToSchema)]
pub(crate) struct LogoutBody {
    /// `User logged out`.
    message: String,
    /// With `everywhere=true`: how many sessions were revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    sessions_revoked: Option<u64>,
}

/// Clears the cookie, revokes the session's record (a copied cookie stops working at once)
/// and the refresh token at the provider (failures there are logged, not shown). With
/// `everywhere=true`, revokes every session of the signed-in user.
#[utoipa::path(post, path = "/api/logout", tag = "auth", params(LogoutQuery),
    responses(
        (status = 200, description = "Logged out; the cookie is cleared", body = LogoutBody),
        (status = 401, description = "`everywhere=true` without a live session or API key (`not_authenticated`)", body = ErrorBody),
        (status = 403, description = "`everywhere=true` refused by a gate or the CSRF check", body = ErrorBody),
        (status = 422, description = "Invalid query string (`everywhere` must be `true` or `false`)"),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 503, description = "The session storage or the login backend is unreachable", body = ErrorBody)))]
pub(crate) async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LogoutQuery>,
) -> Result<HttpResponse, ApiError> {
    let auth = service(&state).await?;
    let request = AuthRequest::of(&req);
    let clear = auth.cookies.clear_session_header();
    let session = auth.session_of(&request);
    let mut sessions_revoked = None;
    if query.everywhere.unwrap_or(false) {
        let user = auth
            .authenticate(&request)
            .await
            .map_err(|e| auth_refusal(e).with_header("set-cookie", clear.clone()))?;
        let user_id = user.scope.user_id.unwrap_or_default();
        let revoked = auth
            .sessions
            .revoke_all(&user_id)
            .await
            .map_err(|e| storage_unavailable(&e).with_header("set-cookie", clear.clone()))?;
        tracing::info!(user = %user_id, revoked, "logged out everywhere");
        sessions_revoked = Some(revoked);
    } else if let Some(session) = &session {
        auth.sessions
            .revoke_token(&session.token)
            .await
            .map_err(|e| storage_unavailable(&e).with_header("set-cookie", clear.clone()))?;
    }
    if let Some(refresh) = session.and_then(|s| s.refresh) {
        auth.forget_refresh(&refresh).await;
        match auth.provider.revoke(&refresh).await {
            Ok(true) => tracing::debug!("refresh token revoked at the provider"),
            Ok(false) => tracing::debug!("the provider offers no revocation"),
            Err(err) => tracing::warn!(error = %err, "revoking the refresh token failed"),
        }
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, clear))
        .json(LogoutBody {
            message: "User logged out".into(),
            sessions_revoked,
        }))
}

/// An authentication failure in this crate's shape: 401 `not_authenticated`, a gate's 403
/// with its code, 503 when the backend is unreachable.
pub(crate) fn auth_refusal(err: AuthError) -> ApiError {
    match err {
        AuthError::Unauthorized(_) | AuthError::SessionEnded { .. } => error(
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
            "User is not authenticated",
        ),
        AuthError::Forbidden { code, message } => error(StatusCode::FORBIDDEN, &code, message),
        AuthError::Unavailable(cause) => storage_unavailable(&cause),
    }
}

/// 200 when the caller is signed in (refreshing the session if due), else 401 and the
/// cookie cleared, as in OpenHands. Gate refusals keep their 403 and code.
#[utoipa::path(post, path = "/api/authenticate", tag = "auth",
    responses(
        (status = 200, description = "Signed in", body = MessageBody,
            example = json!({"message": "User authenticated"})),
        (status = 401, description = "Not signed in; the cookie is cleared",
            example = json!({"error": "User is not authenticated"})),
        (status = 403, description = "A gate or the CSRF check refused (`detail`, `code`)", body = AuthRefusal),
        (status = 503, description = "The provider or the session storage is unreachable", body = AuthRefusal)))]
pub(crate) async fn authenticate_route(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let auth = service(&state).await?;
    match authenticate(&state, AuthRequest::of(&req)).await {
        Ok(user) => {
            let mut response = HttpResponse::Ok();
            for cookie in &user.0.set_cookies {
                response.append_header((header::SET_COOKIE, cookie.as_str()));
            }
            Ok(response.json(json!({"message": "User authenticated"})))
        }
        Err(err) if err.status == StatusCode::UNAUTHORIZED => Err(ApiError::error(
            StatusCode::UNAUTHORIZED,
            "User is not authenticated",
        )
        .with_header("set-cookie", auth.cookies.clear_session_header())),
        Err(err) => Err(err),
    }
}

/// `POST /api/accept_tos` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct AcceptTos {
    /// A local path to go to next (anything else becomes `/`).
    redirect_url: Option<String>,
}

/// Records the acceptance and re-issues the session cookie with it.
#[utoipa::path(post, path = "/api/accept_tos", tag = "auth",
    request_body(content = Option<AcceptTos>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "Accepted; a cookie session gets a cookie that says so", body = RedirectUrlBody),
        (status = 401, description = "Not signed in", body = AuthRefusal),
        (status = 403, description = "A gate or the CSRF check refused", body = AuthRefusal),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
        (status = 429, description = "The user's rate limit"),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 503, description = "The login backend is unreachable", body = AuthRefusal)))]
pub(crate) async fn accept_tos(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    body: Option<web::Json<AcceptTos>>,
) -> Result<HttpResponse, ApiError> {
    let auth = service(&state).await?;
    let user_id = user.scope().user_id.clone().unwrap_or_default();
    let found = users::accept_tos(&auth.db, &user_id)
        .await
        .map_err(|e| internal(&e, "Storage failed"))?;
    if !found {
        return Err(error(
            StatusCode::NOT_FOUND,
            "user_not_found",
            "Unknown user",
        ));
    }
    let redirect_url = openhands_api::redirect::safe_local_path(
        body.and_then(|b| b.into_inner().redirect_url).as_deref(),
    );
    let mut response = HttpResponse::Ok();
    // A cookie session carries the flag: re-issue it. When auth just refreshed the session,
    // start from the refreshed one and drop its pending cookie (it still says "not accepted").
    let refreshed =
        req.extensions_mut()
            .remove::<PendingCookies>()
            .and_then(|PendingCookies(cookies)| {
                cookies
                    .iter()
                    .find_map(|c| auth.cookies.open_session_header(c))
            });
    let by_cookie = user.0.auth_type == Some(AuthType::Cookie);
    let session = refreshed.or_else(|| auth.session_of(&AuthRequest::of(&req)));
    if let Some(mut session) = session.filter(|_| by_cookie) {
        // Auth found the record live a moment ago; re-read it (through the cache) for the
        // cookie's remaining lifetime.
        let record = auth.live_record(&session).await.map_err(auth_refusal)?;
        session.tos = true;
        let cookie = auth
            .session_cookie(&session, &record)
            .map_err(|e| internal(&e, "Storage failed"))?;
        response.append_header((header::SET_COOKIE, cookie));
    }
    Ok(response.json(json!({ "redirect_url": redirect_url })))
}
