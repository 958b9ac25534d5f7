//! The login routes, mounted when `saas.oidc` is the selected `UserAuth`:
//!
//! - `GET /oauth/keycloak/login?redirect_url=/path` (ours: OpenHands' web app builds the
//!   provider URL itself, but PKCE needs a verifier the server keeps) redirects to the
//!   provider and sets the short-lived login cookie.
//! - `GET /oauth/keycloak/callback?code&state` (OpenHands' path) checks `state` against the
//!   login cookie, exchanges the code with the PKCE verifier, verifies the ID token and its
//!   nonce, creates or updates the user, sets the session cookie and redirects (to the
//!   terms page first when they are not accepted yet).
//! - `POST /api/logout`, `POST /api/authenticate`, `POST /api/accept_tos` as in OpenHands.
//!
//! Errors are `{"error": message, "code": code}`: 400 for a callback without code or with a
//! state that does not match, 401 when the provider refuses the code or the ID token fails
//! verification, 403 for a user not on the allowlist, 503 when the provider is unreachable.

use crate::provider::ProviderError;
use crate::service::OidcAuth;
use crate::session::{LOGIN_COOKIE, PendingLogin, Session};
use crate::users;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use openhands_api::AppState;
use openhands_api::contribution::RouteContribution;
use openhands_api::error::ApiError;
use openhands_api::user::{AuthRequest, CurrentUser, PendingCookies, authenticate};
use openhands_core::extension::RequestHeaders;
use openhands_core::registry::Slot;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

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
}

fn oidc_selected(state: &AppState) -> bool {
    state
        .ext
        .selected
        .iter()
        .any(|(slot, name)| *slot == Slot::UserAuth && name == SERVICE_KEY)
}

inventory::submit! {
    RouteContribution {
        name: "saas.auth",
        description: "OIDC login, logout, session check and terms acceptance",
        enabled: oidc_selected,
        configure,
    }
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, json!({ "error": message.into(), "code": code }))
}

/// The service the plugin built for this server.
async fn service(state: &AppState) -> Result<Arc<OidcAuth>, ApiError> {
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

fn base_url(auth: &OidcAuth, req: &HttpRequest) -> String {
    openhands_api::redirect::public_base_url(auth.public_url.as_deref(), req)
}

fn provider_failure(err: ProviderError) -> ApiError {
    match err {
        ProviderError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "identity provider unavailable");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_unavailable",
                "The identity provider is unreachable; try again shortly",
            )
        }
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

#[derive(Debug, Deserialize)]
struct LoginQuery {
    redirect_url: Option<String>,
}

async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, ApiError> {
    let auth = service(&state).await?;
    let redirect_uri = format!("{}{CALLBACK_PATH}", base_url(&auth, &req));
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
    let cookie = auth.cookies.login_header(&pending).map_err(|e| {
        ApiError::internal(
            &e,
            json!({"error": "Login failed", "code": "internal_error"}),
        )
    })?;
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, request.url))
        .insert_header((header::SET_COOKIE, cookie))
        .finish())
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
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
    let redirect_uri = format!("{}{CALLBACK_PATH}", base_url(&auth, &req));
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
        .map_err(|e| {
            refuse(ApiError::internal(
                &e,
                json!({"error": "Login failed", "code": "internal_error"}),
            ))
        })?;
    users::ensure_personal_org(&auth.db, &identity)
        .await
        .map_err(|e| {
            refuse(ApiError::internal(
                &e,
                json!({"error": "Login failed", "code": "internal_error"}),
            ))
        })?;
    let session = Session {
        sub: identity.subject.clone(),
        email: identity.email.map(|e| e.trim().to_lowercase()),
        email_verified: identity.email_verified,
        tos: record.tos_accepted,
        access_exp: tokens.access_expires_at,
        refresh: tokens.refresh_token,
    };
    let cookie = auth.cookies.session_header(&session).map_err(|e| {
        refuse(ApiError::internal(
            &e,
            json!({"error": "Login failed", "code": "internal_error"}),
        ))
    })?;
    tracing::info!(user = %session.sub, "logged in");
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

/// Always clears the cookie and answers 200; revokes the refresh token at the provider
/// when it can (failures are logged, not shown).
async fn logout(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let auth = service(&state).await?;
    let request = AuthRequest::of(&req);
    if let Some(refresh) = auth.session_of(&request).and_then(|s| s.refresh) {
        auth.forget_refresh(&refresh).await;
        match auth.provider.revoke(&refresh).await {
            Ok(true) => tracing::debug!("refresh token revoked at the provider"),
            Ok(false) => tracing::debug!("the provider offers no revocation"),
            Err(err) => tracing::warn!(error = %err, "revoking the refresh token failed"),
        }
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, auth.cookies.clear_session_header()))
        .json(json!({"message": "User logged out"})))
}

/// 200 when the caller is signed in (refreshing the session if due), else 401 and the
/// cookie cleared, as in OpenHands. Gate refusals keep their 403 and code.
async fn authenticate_route(
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

#[derive(Debug, Default, Deserialize)]
struct AcceptTos {
    redirect_url: Option<String>,
}

/// Records the acceptance and re-issues the session cookie with it.
async fn accept_tos(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    body: Option<web::Json<AcceptTos>>,
) -> Result<HttpResponse, ApiError> {
    let auth = service(&state).await?;
    let user_id = user.scope().user_id.clone().unwrap_or_default();
    let found = users::accept_tos(&auth.db, &user_id).await.map_err(|e| {
        ApiError::internal(
            &e,
            json!({"error": "Storage failed", "code": "internal_error"}),
        )
    })?;
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
    let session = refreshed.or_else(|| auth.session_of(&AuthRequest::of(&req)));
    if let Some(mut session) = session {
        session.tos = true;
        let cookie = auth.cookies.session_header(&session).map_err(|e| {
            ApiError::internal(
                &e,
                json!({"error": "Storage failed", "code": "internal_error"}),
            )
        })?;
        response.append_header((header::SET_COOKIE, cookie));
    }
    Ok(response.json(json!({ "redirect_url": redirect_url })))
}
