//! The e-mail routes the verification gate points users to (OpenHands' `/api/email*`):
//!
//! - `POST /api/email` `{"email"}` changes the account's address at the identity provider
//!   (marked unverified), records it, re-issues the session cookie with it and has the
//!   provider send the verification e-mail;
//! - `PUT /api/email/verify` sends that e-mail again (once a minute per user);
//! - `GET /api/email/verified` is where the e-mail's link lands: it refreshes the session
//!   so the provider's new `email_verified` claim takes effect, re-issues the cookie and
//!   redirects to `/settings/user`.
//!
//! Only Keycloak lets a client change an address or send the e-mail (its admin API,
//! [`crate::keycloak_admin`]); with another provider the first two answer 501 with a code
//! saying the provider manages addresses itself, and `verified` still works. The routes are
//! exempt from the e-mail gate (they are how one gets past it), not from login.

use crate::keycloak_admin::{AdminError, AdminLogin, KeycloakAdmin};
use crate::openapi::{AuthRefusal, ErrorBody, MessageBody};
use crate::routes::error;
use crate::service::OidcAuth;
use crate::session::Session;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use openhands_api::AppState;
use openhands_api::body::JsonBody;
use openhands_api::contribution::{OpenApiContribution, RouteContribution};
use openhands_api::error::ApiError;
use openhands_api::user::{AuthRequest, CurrentUser, PendingCookies};
use openhands_core::cache::TtlCache;
use openhands_core::config::Config;
use openhands_sql_store::Database;
use openhands_sql_store::entity::user;
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::{OpenApi, ToSchema};

/// Where the verification link lands, under the public URL.
pub const VERIFIED_PATH: &str = "/api/email/verified";
/// Where `verified` sends the browser afterwards, as in OpenHands.
const AFTER_VERIFIED: &str = "/settings/user";
/// The shortest time between two verification e-mails to one user.
const RESEND_INTERVAL: Duration = Duration::from_secs(60);
/// The longest address accepted (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;

/// What the e-mail routes need besides the login service.
pub struct EmailService {
    /// `None` when the provider is not Keycloak.
    admin: Option<KeycloakAdmin>,
    client_id: String,
    /// user id -> when the last verification e-mail was asked for.
    sent: TtlCache<String, Instant>,
}

impl std::fmt::Debug for EmailService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailService")
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl EmailService {
    /// Keycloak's admin API when `auth.keycloak_server_url` and `keycloak_realm_name` are
    /// set: as `admin` of `master` with `auth.keycloak_admin_password`, else as the app's
    /// client (its service account needs `manage-users`).
    pub fn from_config(config: &Config) -> Result<Self, AdminError> {
        let auth = &config.auth;
        let client_id = auth.client_id.clone().unwrap_or_default().trim().to_owned();
        let server = auth.keycloak_server_url.as_deref().map(str::trim);
        let realm = auth.keycloak_realm_name.as_deref().map(str::trim);
        let admin = match (server, realm) {
            (Some(server), Some(realm)) if !server.is_empty() && !realm.is_empty() => {
                let login = match (&auth.keycloak_admin_password, &auth.client_secret) {
                    (Some(password), _) => AdminLogin::MasterAdmin {
                        password: password.clone(),
                    },
                    (None, Some(secret)) => AdminLogin::ServiceAccount {
                        client_id: client_id.clone(),
                        client_secret: secret.clone(),
                    },
                    (None, None) => return Ok(Self::without_admin(client_id)),
                };
                Some(KeycloakAdmin::new(server, realm, login)?)
            }
            _ => None,
        };
        Ok(Self {
            admin,
            client_id,
            sent: TtlCache::new(RESEND_INTERVAL, 100_000),
        })
    }

    fn without_admin(client_id: String) -> Self {
        Self {
            admin: None,
            client_id,
            sent: TtlCache::new(RESEND_INTERVAL, 100_000),
        }
    }

    fn admin(&self) -> Result<&KeycloakAdmin, ApiError> {
        self.admin.as_ref().ok_or_else(|| {
            error(
                StatusCode::NOT_IMPLEMENTED,
                "email_managed_by_provider",
                "Your identity provider manages your e-mail address; change or verify it there",
            )
        })
    }

    /// Refuses a second e-mail within [`RESEND_INTERVAL`], else notes this one.
    fn throttle(&self, user_id: &str) -> Result<(), ApiError> {
        if let Some(at) = self.sent.get(&user_id.to_owned()) {
            let wait = RESEND_INTERVAL
                .saturating_sub(at.elapsed())
                .as_secs()
                .max(1);
            return Err(error(
                StatusCode::TOO_MANY_REQUESTS,
                "verification_throttled",
                format!("A verification e-mail was sent moments ago; try again in {wait} s"),
            )
            .with_header("retry-after", wait.to_string()));
        }
        self.sent.insert(user_id.to_owned(), Instant::now());
        Ok(())
    }
}

/// The `SharedResources` key of the [`EmailService`].
const EMAIL_SERVICE_KEY: &str = "saas.oidc.email";

fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/email", web::post().to(change_email))
        .route("/api/email/verify", web::put().to(resend_verification))
        .route(VERIFIED_PATH, web::get().to(verified));
}

inventory::submit! {
    RouteContribution {
        name: "saas.email",
        description: "Change the account's e-mail address and verify it",
        enabled: crate::routes::oidc_selected,
        configure,
    }
}

fn admin_failure(err: AdminError) -> ApiError {
    match err {
        AdminError::EmailTaken => error(
            StatusCode::CONFLICT,
            "email_taken",
            "Another account already uses that e-mail address",
        ),
        AdminError::UnknownUser => error(
            StatusCode::NOT_FOUND,
            "user_not_found",
            "The identity provider does not know this account",
        ),
        AdminError::Unavailable(cause) => {
            crate::routes::provider_unavailable(&cause).with_header("retry-after", "5")
        }
        other => {
            tracing::error!(error = %other, "Keycloak admin API call failed");
            error(
                StatusCode::BAD_GATEWAY,
                "provider_error",
                "The identity provider refused the change; the administrator has been told",
            )
        }
    }
}

async fn services(state: &AppState) -> Result<(Arc<OidcAuth>, Arc<EmailService>), ApiError> {
    let auth = crate::routes::service(state).await?;
    let config = state.config.clone();
    let email = state
        .ext
        .shared
        .get_or_try_init::<Arc<EmailService>, ApiError, _, _>(EMAIL_SERVICE_KEY, || async move {
            EmailService::from_config(&config)
                .map(Arc::new)
                .map_err(|e| {
                    ApiError::internal(
                        &e,
                        json!({"error": "E-mail is misconfigured", "code": "internal_error"}),
                    )
                })
        })
        .await?;
    Ok((auth, email))
}

/// A syntactically plausible address, lower-cased: one `@`, a non-empty local part of
/// printable characters without spaces or quotes, a domain of letters, digits and hyphens
/// in dot-separated labels with at least one dot.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    if email.len() > MAX_EMAIL_LEN {
        return None;
    }
    let (local, domain) = email.split_once('@')?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_graphic() && !"@\"(),:;<>[\\]".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    (local_ok && domain_ok).then_some(email)
}

async fn record_email(
    db: &Database,
    user_id: &str,
    email: Option<String>,
    verified: bool,
) -> Result<(), ApiError> {
    let mut row = <user::ActiveModel as sea_orm::ActiveModelTrait>::default();
    row.id = Set(user_id.to_owned());
    if let Some(email) = email {
        row.email = Set(Some(email));
    }
    row.email_verified = Set(verified);
    user::Entity::update(row)
        .exec(db.connection())
        .await
        .map(|_| ())
        .or_else(|e| match e {
            sea_orm::DbErr::RecordNotUpdated => Ok(()),
            other => Err(crate::routes::storage_unavailable(&other)),
        })
}

/// The caller's session, refreshed at the provider now (so new claims are read), and the
/// `Set-Cookie` carrying it; `None` for callers without a session cookie (API keys).
async fn refreshed_cookie(
    auth: &OidcAuth,
    req: &HttpRequest,
) -> Result<Option<(Session, String)>, ApiError> {
    // When auth already refreshed this request's session, start from that one (a rotated
    // refresh token may not be used twice) and drop its pending cookie.
    let pending =
        req.extensions_mut()
            .remove::<PendingCookies>()
            .and_then(|PendingCookies(cookies)| {
                cookies
                    .iter()
                    .find_map(|c| auth.cookies.open_session_header(c))
            });
    let Some(mut session) = pending.or_else(|| auth.session_of(&AuthRequest::of(req))) else {
        return Ok(None);
    };
    let record = auth
        .live_record(&session)
        .await
        .map_err(openhands_api::user::auth_error)?;
    if let Some(refresh) = &session.refresh {
        auth.forget_refresh(refresh).await;
    }
    session.access_exp = 0;
    let (session, _) = auth
        .current_session(session)
        .await
        .map_err(openhands_api::user::auth_error)?;
    let cookie = auth.session_cookie(&session, &record).map_err(|e| {
        ApiError::internal(
            &e,
            json!({"error": "Login failed", "code": "internal_error"}),
        )
    })?;
    Ok(Some((session, cookie)))
}

/// `POST /api/email` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeEmail {
    /// The new address (trimmed and lower-cased).
    email: String,
}

/// `POST /api/email` answer.
#[derive(ToSchema)]
#[allow(dead_code)] // only the document uses it
pub struct EmailChanged {
    message: String,
    email: String,
    /// Always `false`: the new address is unverified until its link is followed.
    email_verified: bool,
    /// Whether the provider accepted to send the verification e-mail.
    verification_sent: bool,
}

/// The description of these routes in `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    paths(change_email, resend_verification, verified),
    components(schemas(ChangeEmail, EmailChanged)),
    tags((name = "auth", description = "SaaS login (OIDC), logout, terms acceptance and login sessions"))
)]
pub struct EmailApiDoc;

inventory::submit! {
    OpenApiContribution {
        name: "saas.email",
        enabled: crate::routes::oidc_selected,
        document: <EmailApiDoc as OpenApi>::openapi,
    }
}

#[utoipa::path(post, path = "/api/email", tag = "auth", request_body = ChangeEmail,
    responses(
        (status = 200, description = "Address changed (unverified); the session cookie is re-issued", body = EmailChanged),
        (status = 400, description = "`invalid_email`", body = ErrorBody),
        (status = 401, description = "Not logged in, or the session ended", body = AuthRefusal),
        (status = 403, description = "Refused by the terms gate or the CSRF check", body = AuthRefusal),
        (status = 404, description = "`user_not_found` at the provider", body = ErrorBody),
        (status = 409, description = "`email_taken`: another account has the address", body = ErrorBody),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Not a JSON body"),
        (status = 422, description = "Malformed body"),
        (status = 500, description = "Internal error (a session cookie that could not be sealed)", body = ErrorBody),
        (status = 501, description = "`email_managed_by_provider`: the provider is not Keycloak", body = ErrorBody),
        (status = 502, description = "`provider_error`: the provider refused the change", body = ErrorBody),
        (status = 503, description = "The provider or the session storage is unreachable", body = AuthRefusal)))]
async fn change_email(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    JsonBody(body): JsonBody<ChangeEmail>,
) -> Result<HttpResponse, ApiError> {
    let (auth, email_service) = services(&state).await?;
    let user_id = user.scope().user_id.clone().unwrap_or_default();
    let email = normalize_email(&body.email).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_email",
            "That is not a valid e-mail address",
        )
    })?;
    let admin = email_service.admin()?;
    admin
        .change_email(&user_id, &email)
        .await
        .map_err(admin_failure)?;
    record_email(&auth.db, &user_id, Some(email.clone()), false).await?;
    let mut response = HttpResponse::Ok();
    if let Some((_, cookie)) = refreshed_cookie(&auth, &req).await? {
        response.append_header((header::SET_COOKIE, cookie));
    }
    let redirect_uri = format!("{}{VERIFIED_PATH}", auth.public_url);
    email_service.sent.insert(user_id.clone(), Instant::now());
    let sent = match admin
        .send_verify_email(&user_id, &redirect_uri, &email_service.client_id)
        .await
    {
        Ok(()) => true,
        Err(err) => {
            // The address changed; only the e-mail failed, and the user can ask again.
            tracing::warn!(user = %user_id, error = %err, "verification e-mail not sent");
            false
        }
    };
    tracing::info!(user = %user_id, "e-mail address changed");
    Ok(response.json(json!({
        "message": if sent {
            "E-mail address updated; check your inbox for the verification link"
        } else {
            "E-mail address updated, but the verification e-mail could not be sent; ask again with PUT /api/email/verify"
        },
        "email": email,
        "email_verified": false,
        "verification_sent": sent,
    })))
}

#[utoipa::path(put, path = "/api/email/verify", tag = "auth",
    responses(
        (status = 200, description = "Verification e-mail sent", body = MessageBody),
        (status = 401, description = "Not logged in, or the session ended", body = AuthRefusal),
        (status = 403, description = "Refused by the terms gate or the CSRF check", body = AuthRefusal),
        (status = 404, description = "`user_not_found` at the provider", body = ErrorBody),
        (status = 429, description = "`verification_throttled`: one e-mail a minute", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 501, description = "`email_managed_by_provider`: the provider is not Keycloak", body = ErrorBody),
        (status = 502, description = "`provider_error`", body = ErrorBody),
        (status = 503, description = "The provider or the session storage is unreachable", body = AuthRefusal)))]
async fn resend_verification(
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let (auth, email_service) = services(&state).await?;
    let user_id = user.scope().user_id.clone().unwrap_or_default();
    let admin = email_service.admin()?;
    email_service.throttle(&user_id)?;
    let redirect_uri = format!("{}{VERIFIED_PATH}", auth.public_url);
    admin
        .send_verify_email(&user_id, &redirect_uri, &email_service.client_id)
        .await
        .map_err(admin_failure)?;
    Ok(HttpResponse::Ok().json(json!({"message": "Verification e-mail sent"})))
}

#[utoipa::path(get, path = "/api/email/verified", tag = "auth",
    responses(
        (status = 302, description = "Claims re-read from the provider; to `/settings/user` with the session cookie re-issued",
            headers(("Location" = String, description = "`/settings/user`"))),
        (status = 401, description = "Not logged in, or the session ended", body = AuthRefusal),
        (status = 403, description = "Refused by the terms gate", body = AuthRefusal),
        (status = 500, description = "Internal error (a session cookie that could not be sealed)", body = ErrorBody),
        (status = 503, description = "The provider or the session storage is unreachable", body = AuthRefusal)))]
async fn verified(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let (auth, _) = services(&state).await?;
    let user_id = user.scope().user_id.clone().unwrap_or_default();
    let mut response = HttpResponse::Found();
    response.insert_header((header::LOCATION, AFTER_VERIFIED));
    if let Some((session, cookie)) = refreshed_cookie(&auth, &req).await? {
        record_email(
            &auth.db,
            &user_id,
            session.email.clone(),
            session.email_verified,
        )
        .await?;
        response.append_header((header::SET_COOKIE, cookie));
    }
    Ok(response.finish())
}

#[cfg(test)]
mod tests {
    use super::normalize_email;

    #[test]
    fn plausible_addresses_are_lower_cased_and_others_refused() {
        assert_eq!(
            normalize_email("  Alice.Smith+tag@Example.CO.uk "),
            Some("alice.smith+tag@example.co.uk".into())
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@example",
            "alice@@example.com",
            "al ice@example.com",
            "alice@exa_mple.com",
            "alice@-example.com",
            "alice@example.c0m",
            ".alice@example.com",
            "al..ice@example.com",
            "alice<x>@example.com",
            "alice@example..com",
            "alice\u{0}@example.com",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(normalize_email(&long), None);
    }
}
