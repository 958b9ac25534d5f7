//! The linking routes, mounted in SaaS mode when `saas.git_oauth` is the provider-token
//! source and at least one provider is configured. Every route needs a signed-in user.
//!
//! - `GET /api/git-oauth/{provider}/login?redirect_url=/path` redirects to the provider's
//!   authorization page with a fresh `state` (and a PKCE challenge for GitHub and GitLab),
//!   remembered in the sealed `openhands_git_oauth` cookie.
//! - `GET /api/git-oauth/{provider}/callback?code&state` checks `state` and the user
//!   against the cookie, exchanges the code, reads the provider account's name, stores the
//!   token (with its refresh token and expiry) through the user's `SecretsStore`, and
//!   redirects to the local path the login named.
//! - `DELETE /api/git-oauth/{provider}` forgets the linked token.
//!
//! Errors are `{"error": message, "code": code}`: 404 `unknown_provider` /
//! `provider_not_configured` / `not_linked`; 400 `link_refused` (the user said no at the
//! provider), `missing_code`, `link_expired`, `bad_state`, `code_rejected`; 503
//! `provider_unavailable`. Never 401 for a provider's refusal: the user is signed in here,
//! and a 401 would make the web app end the session.

use crate::providers::OAuthError;
use crate::service::GitOAuth;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use openhands_api::AppState;
use openhands_api::contribution::{OpenApiContribution, RouteContribution, saas_mode};
use openhands_api::error::ApiError;
use openhands_api::error::schema::{ErrorText, Message};
use openhands_api::user::{AuthRequest, CurrentUser};
use openhands_core::extension::{AuditEntry, RequestHeaders};
use openhands_core::registry::Slot;
use openhands_core::secrets::{ProviderToken, ProviderTokenChange, ProviderType};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi};

/// The `SharedResources` key under which the plugin leaves its service for these routes.
pub const SERVICE_KEY: &str = "saas.git_oauth";

fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/git-oauth/{provider}/login", web::get().to(login))
        .route(
            "/api/git-oauth/{provider}/callback",
            web::get().to(callback),
        )
        .route("/api/git-oauth/{provider}", web::delete().to(unlink));
}

/// SaaS mode, `saas.git_oauth` selected, and some provider configured.
fn enabled(state: &AppState) -> bool {
    let selected = state
        .ext
        .selected
        .iter()
        .any(|(slot, name)| *slot == Slot::ProviderTokenSource && name == SERVICE_KEY);
    selected && saas_mode(state) && crate::any_provider_configured(&state.config)
}

inventory::submit! {
    RouteContribution {
        name: "saas.git_oauth",
        description: "Link GitHub, GitLab and Bitbucket accounts by OAuth, and unlink them",
        enabled,
        configure,
    }
}

inventory::submit! {
    OpenApiContribution {
        name: "saas.git_oauth",
        enabled,
        document: <GitOAuthDoc as OpenApi>::openapi,
    }
}

/// The OpenAPI description of these routes, merged into `/openapi.json` when they are
/// mounted.
#[derive(OpenApi)]
#[openapi(
    paths(login, callback, unlink),
    tags((name = "git-oauth", description = "Link GitHub, GitLab and Bitbucket accounts by OAuth (SaaS mode); errors are `{\"error\", \"code\"}`")),
)]
struct GitOAuthDoc;

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, json!({ "error": message.into(), "code": code }))
}

fn internal(cause: &dyn std::fmt::Display, message: &str) -> ApiError {
    ApiError::internal(cause, json!({"error": message, "code": "internal_error"}))
}

/// The service the plugin built for this server.
async fn service(state: &AppState) -> Result<Arc<GitOAuth>, ApiError> {
    state
        .ext
        .shared
        .get_or_try_init::<Arc<GitOAuth>, ApiError, _, _>(SERVICE_KEY, || async {
            Err(internal(
                &"the saas.git_oauth service is missing from the shared resources",
                "Linking accounts is not configured",
            ))
        })
        .await
}

/// The provider named in the path, when it can be linked here.
fn provider_of(auth: &GitOAuth, name: &str) -> Result<ProviderType, ApiError> {
    let provider = crate::providers::LINKABLE
        .into_iter()
        .find(|p| p.as_str() == name)
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                "unknown_provider",
                format!("Unknown git provider `{name}`; use github, gitlab or bitbucket"),
            )
        })?;
    if auth.app(provider).is_none() {
        return Err(error(
            StatusCode::NOT_FOUND,
            "provider_not_configured",
            format!("Linking {name} accounts is not configured on this server"),
        ));
    }
    Ok(provider)
}

fn base_url(auth: &GitOAuth, req: &HttpRequest) -> String {
    openhands_api::redirect::public_base_url(auth.public_url.as_deref(), req)
}

fn callback_url(auth: &GitOAuth, req: &HttpRequest, provider: ProviderType) -> String {
    format!(
        "{}/api/git-oauth/{}/callback",
        base_url(auth, req),
        provider.as_str()
    )
}

fn provider_failure(provider: ProviderType, err: OAuthError) -> ApiError {
    let name = provider.as_str();
    match err {
        OAuthError::Refused(reason) => {
            tracing::info!(provider = name, reason = %reason, "link code refused by the provider");
            error(
                StatusCode::BAD_REQUEST,
                "code_rejected",
                format!("{name} refused the authorization ({reason}); link the account again"),
            )
        }
        OAuthError::Unavailable(cause) => {
            tracing::warn!(provider = name, error = %cause, "git provider unavailable");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_unavailable",
                format!("{name} is unreachable; try again shortly"),
            )
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LoginQuery {
    /// A local path of the web app to return to (default `/`).
    redirect_url: Option<String>,
}

/// Starts linking: redirects to the provider's authorization page.
#[utoipa::path(get, path = "/api/git-oauth/{provider}/login", tag = "git-oauth",
    params(("provider" = String, Path, description = "`github`, `gitlab` or `bitbucket`", example = "github"), LoginQuery),
    security(("user" = [])), responses(
    (status = 302, description = "To the provider; sets the `openhands_git_oauth` cookie"),
    (status = 404, description = "Unknown provider, or not configured here (`unknown_provider`, `provider_not_configured`)", body = ErrorText),
    (status = 503, description = "The provider is unreachable (`provider_unavailable`)", body = ErrorText)))]
async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<String>,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, ApiError> {
    let auth = service(&state).await?;
    let provider = provider_of(&auth, &path)?;
    let Some(app) = auth.app(provider) else {
        return Err(internal(&"app vanished", "Linking failed"));
    };
    let authorization = app
        .authorization(&callback_url(&auth, &req, provider))
        .map_err(|e| provider_failure(provider, e))?;
    let pending = crate::link_cookie::PendingLink {
        provider,
        state: authorization.state,
        pkce_verifier: authorization.pkce_verifier,
        redirect: openhands_api::redirect::safe_local_path(query.redirect_url.as_deref()),
        user_id: user.scope().user_id.clone().unwrap_or_default(),
        expires: chrono::Utc::now().timestamp() + crate::link_cookie::LINK_TTL_SECONDS,
    };
    let cookie = auth
        .cookies
        .header(&pending)
        .map_err(|e| internal(&e, "Linking failed"))?;
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, authorization.url))
        .insert_header((header::SET_COOKIE, cookie))
        .finish())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// Set by the provider when the user said no.
    error: Option<String>,
    error_description: Option<String>,
}

/// Where the provider sends the user back: stores the token and redirects to the web app.
#[utoipa::path(get, path = "/api/git-oauth/{provider}/callback", tag = "git-oauth",
    params(("provider" = String, Path, description = "`github`, `gitlab` or `bitbucket`", example = "github"), CallbackQuery),
    security(("user" = [])), responses(
    (status = 302, description = "Linked: to the path the login named; clears the cookie"),
    (status = 400, description = "Refused, expired or not started here (`link_refused`, `missing_code`, `link_expired`, `bad_state`, `code_rejected`)", body = ErrorText),
    (status = 404, description = "Unknown provider, or not configured here", body = ErrorText),
    (status = 503, description = "The provider is unreachable (`provider_unavailable`)", body = ErrorText)))]
async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<String>,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let auth = service(&state).await?;
    let clear = auth.cookies.clear_header();
    let refuse = |err: ApiError| err.with_header("set-cookie", clear.clone());
    let provider = provider_of(&auth, &path).map_err(refuse)?;
    let name = provider.as_str();
    if let Some(reason) = &query.error {
        let detail = query.error_description.as_deref().unwrap_or(reason);
        return Err(refuse(error(
            StatusCode::BAD_REQUEST,
            "link_refused",
            format!("{name} did not link the account: {detail}"),
        )));
    }
    let Some(code) = query.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(refuse(error(
            StatusCode::BAD_REQUEST,
            "missing_code",
            "Missing code in request params",
        )));
    };
    let now = chrono::Utc::now().timestamp();
    let pending = AuthRequest::of(&req)
        .cookie(crate::link_cookie::LINK_COOKIE)
        .and_then(|value| auth.cookies.open(value, now))
        .ok_or_else(|| {
            refuse(error(
                StatusCode::BAD_REQUEST,
                "link_expired",
                "This link was not started here or took too long; start again",
            ))
        })?;
    let scope = user.scope().clone();
    let given_state = query.state.as_deref().unwrap_or_default();
    let same_user = scope.user_id.as_deref() == Some(pending.user_id.as_str());
    if pending.provider != provider
        || !same_user
        || !openhands_core::secret::constant_time_eq(given_state, &pending.state)
    {
        return Err(refuse(error(
            StatusCode::BAD_REQUEST,
            "bad_state",
            "The link state does not match; start again",
        )));
    }
    let Some(app) = auth.app(provider) else {
        return Err(refuse(internal(&"app vanished", "Linking failed")));
    };
    let issued = app
        .exchange_code(
            code,
            &callback_url(&auth, &req, provider),
            pending.pkce_verifier.as_deref(),
        )
        .await
        .map_err(|e| refuse(provider_failure(provider, e)))?;
    let login = app
        .login_of(&issued.access_token)
        .await
        .map_err(|e| refuse(provider_failure(provider, e)))?;
    let token = ProviderToken {
        token: Some(issued.access_token),
        user_id: Some(login.clone()),
        host: app.host().map(str::to_owned),
        refresh_token: issued.refresh_token,
        expires_at: issued.expires_at,
    };
    auth.store()
        .change_provider_token(&scope, provider, ProviderTokenChange::Set(token))
        .await
        .map_err(|e| refuse(internal(&e, "Storing the linked account failed")))?;
    let entry = AuditEntry::new("secret.provider_token.link", scope.user_id.clone())
        .org(scope.org_id.clone())
        .target(name)
        .detail(json!({ "provider": name, "login": login }));
    openhands_api::audit::record(&state, &req, entry).await;
    tracing::info!(
        user_id = scope.user_id.as_deref().unwrap_or_default(),
        provider = name,
        "git provider account linked"
    );
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, pending.redirect))
        .append_header((header::SET_COOKIE, clear))
        .finish())
}

/// Forgets the linked account's token.
#[utoipa::path(delete, path = "/api/git-oauth/{provider}", tag = "git-oauth",
    params(("provider" = String, Path, description = "`github`, `gitlab` or `bitbucket`", example = "github")),
    security(("user" = [])), responses(
    (status = 200, body = Message, example = json!({"message": "github account unlinked"})),
    (status = 404, description = "Unknown provider, not configured, or nothing linked (`not_linked`)", body = ErrorText)))]
async fn unlink(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let auth = service(&state).await?;
    let provider = provider_of(&auth, &path)?;
    let name = provider.as_str();
    let scope = user.scope();
    let removed = auth
        .store()
        .change_provider_token(scope, provider, ProviderTokenChange::Remove)
        .await
        .map_err(|e| internal(&e, "Unlinking the account failed"))?;
    if !removed {
        return Err(error(
            StatusCode::NOT_FOUND,
            "not_linked",
            format!("No {name} account is linked"),
        ));
    }
    let entry = AuditEntry::new("secret.provider_token.unlink", scope.user_id.clone())
        .org(scope.org_id.clone())
        .target(name)
        .detail(json!({ "provider": name }));
    openhands_api::audit::record(&state, &req, entry).await;
    Ok(HttpResponse::Ok().json(json!({ "message": format!("{name} account unlinked") })))
}
