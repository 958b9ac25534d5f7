//! Seeing and ending login sessions, one's own and, for an org's owners and admins, a
//! member's:
//!
//! - `GET /api/sessions`: the caller's live sessions (public id, times, user agent, IP,
//!   and which one is this request's), most recently used first.
//! - `DELETE /api/sessions/{session_id}`: revokes one of the caller's own sessions; any
//!   other id, another user's included, is 404 `session_not_found`, so ids of other users'
//!   sessions cannot be probed.
//! - `DELETE /api/organizations/{org_id}/members/{user_id}/sessions`: an owner or admin of
//!   the org revokes every session of a member (a lost laptop, an offboarding), audited as
//!   `session.revoke_all`. Plain members get 403 `insufficient_role`, admins acting on an
//!   owner too (the org rules of `openhands-saas-api`: admins act on everyone but owners);
//!   an org the caller is not in, or a user who is not a member, is 404.
//!
//! "Log out everywhere" is `POST /api/logout?everywhere=true` ([`crate::routes`]).
//! A revoked session ends on this replica at once and on the others within
//! `auth.lookup_cache_ms`. API-key callers may use these routes too (they list and end
//! browser sessions; keys are revoked at `/api/keys`).

use crate::openapi::{AuthRefusal, ErrorBody};
use crate::routes::{error, service, storage_unavailable};
use crate::session_store::{SessionRecord, token_hash};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use openhands_api::AppState;
use openhands_api::audit;
use openhands_api::error::ApiError;
use openhands_api::user::{AuthRequest, CurrentUser};
use openhands_core::extension::{AuditEntry, AuthType};
use openhands_saas_api::OrgError;
use openhands_saas_api::orgs::{self, Caller};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// Longest org or user id looked up (longer ones are not ids: 404).
const MAX_ID_LEN: usize = 255;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/sessions").route(web::get().to(list_sessions)))
        .service(
            web::resource("/api/sessions/{session_id}").route(web::delete().to(revoke_session)),
        )
        .service(
            web::resource("/api/organizations/{org_id}/members/{user_id}/sessions")
                .route(web::delete().to(revoke_member_sessions)),
        );
}

/// One live session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The session's public id (not its secret token).
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// Written at most once a minute.
    pub last_seen_at: DateTime<Utc>,
    /// The end of its absolute lifetime (`auth.session_max_age_seconds` after the login).
    pub expires_at: DateTime<Utc>,
    /// The `User-Agent` of the login, truncated.
    pub user_agent: Option<String>,
    /// The client address of the login.
    pub ip: Option<String>,
    /// Whether this is the session of the request's own cookie.
    pub current: bool,
}

/// `GET /api/sessions` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

/// `DELETE /api/sessions/{session_id}` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionRevoked {
    pub id: String,
    pub revoked: bool,
}

/// `DELETE /api/organizations/{org_id}/members/{user_id}/sessions` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberSessionsRevoked {
    pub org_id: String,
    pub user_id: String,
    /// How many live sessions were revoked (0 when the member had none).
    pub sessions_revoked: u64,
}

fn view(record: SessionRecord, current_hash: Option<&str>) -> SessionView {
    SessionView {
        current: current_hash == Some(record.token_hash.as_str()),
        id: record.id,
        created_at: record.created_at,
        last_seen_at: record.last_seen_at,
        expires_at: record.expires_at,
        user_agent: record.user_agent,
        ip: record.ip,
    }
}

/// The caller's user id (`saas.oidc` always has one).
fn caller_id(user: &CurrentUser) -> Result<String, ApiError> {
    user.scope().user_id.clone().ok_or_else(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
            "User is not authenticated",
        )
    })
}

/// The token hash of the request's cookie session, when the request was authenticated by
/// that cookie.
fn current_hash(
    req: &HttpRequest,
    user: &CurrentUser,
    auth: &crate::service::OidcAuth,
) -> Option<String> {
    if user.0.auth_type != Some(AuthType::Cookie) {
        return None;
    }
    auth.session_of(&AuthRequest::of(req))
        .map(|s| token_hash(&s.token))
}

/// Whether a path segment can be an org or user id at all.
fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && !id.chars().any(char::is_control)
}

/// The caller's live sessions.
#[utoipa::path(get, path = "/api/sessions", tag = "auth",
    responses(
        (status = 200, description = "Live sessions, most recently used first", body = SessionList),
        (status = 401, description = "Not signed in", body = AuthRefusal),
        (status = 403, description = "A gate refused", body = AuthRefusal),
        (status = 429, description = "The user's rate limit"),
        (status = 503, description = "The session storage or the login backend is unreachable", body = AuthRefusal)))]
pub(crate) async fn list_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let auth = service(&state).await?;
    let user_id = caller_id(&user)?;
    let current = current_hash(&req, &user, &auth);
    let sessions = auth
        .sessions
        .list_live(&user_id)
        .await
        .map_err(|e| storage_unavailable(&e))?
        .into_iter()
        .map(|record| view(record, current.as_deref()))
        .collect();
    Ok(HttpResponse::Ok().json(SessionList { sessions }))
}

/// Revokes one of the caller's own sessions (this one included: its cookie is cleared).
#[utoipa::path(delete, path = "/api/sessions/{session_id}", tag = "auth",
    params(("session_id" = String, Path, description = "A session's public id, from `GET /api/sessions`")),
    responses(
        (status = 200, description = "Revoked", body = SessionRevoked),
        (status = 401, description = "Not signed in", body = AuthRefusal),
        (status = 403, description = "A gate or the CSRF check refused", body = AuthRefusal),
        (status = 404, description = "`session_not_found`: not a live session of the caller", body = ErrorBody),
        (status = 429, description = "The user's rate limit"),
        (status = 503, description = "The session storage or the login backend is unreachable", body = AuthRefusal)))]
pub(crate) async fn revoke_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let auth = service(&state).await?;
    let user_id = caller_id(&user)?;
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "No such session",
        )
    };
    let id = uuid::Uuid::parse_str(&path)
        .map_err(|_| not_found())?
        .hyphenated()
        .to_string();
    let current = current_hash(&req, &user, &auth);
    let revoked = auth
        .sessions
        .revoke_one(&user_id, &id)
        .await
        .map_err(|e| storage_unavailable(&e))?
        .ok_or_else(not_found)?;
    tracing::info!(user = %user_id, session_id = %id, "session revoked by its user");
    let mut response = HttpResponse::Ok();
    if current.as_deref() == Some(revoked.token_hash.as_str()) {
        response.insert_header((header::SET_COOKIE, auth.cookies.clear_session_header()));
    }
    Ok(response.json(SessionRevoked { id, revoked: true }))
}

/// An org owner or admin revokes every session of a member.
#[utoipa::path(delete, path = "/api/organizations/{org_id}/members/{user_id}/sessions", tag = "auth",
    params(
        ("org_id" = String, Path, description = "An organization the caller manages"),
        ("user_id" = String, Path, description = "A member of it")),
    responses(
        (status = 200, description = "Revoked; audited as `session.revoke_all`", body = MemberSessionsRevoked),
        (status = 401, description = "Not signed in", body = AuthRefusal),
        (status = 403, description = "`insufficient_role` (plain members; admins acting on an owner), or a gate or the CSRF check refused", body = AuthRefusal),
        (status = 404, description = "`org_not_found` (not the caller's org) or `member_not_found`", body = ErrorBody),
        (status = 429, description = "The user's rate limit"),
        (status = 503, description = "The storage or the login backend is unreachable", body = AuthRefusal)))]
pub(crate) async fn revoke_member_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let auth = service(&state).await?;
    let actor = caller_id(&user)?;
    let (org_id, target) = path.into_inner();
    if !plausible_id(&org_id) {
        return Err(org_error(OrgError::OrgNotFound));
    }
    if !plausible_id(&target) {
        return Err(org_error(OrgError::MemberNotFound(String::new())));
    }
    let caller = Caller {
        user_id: &actor,
        email: user.0.email.as_deref(),
    };
    let members = orgs::list_members(&auth.db, caller, &org_id)
        .await
        .map_err(org_error)?;
    let role_of = |id: &str| members.iter().find(|m| m.user_id == id).map(|m| m.role);
    let my_role = role_of(&actor).ok_or_else(|| org_error(OrgError::OrgNotFound))?;
    if !my_role.manages_members() {
        return Err(org_error(OrgError::Forbidden(
            "only owners and admins can revoke a member's sessions",
        )));
    }
    let target_role =
        role_of(&target).ok_or_else(|| org_error(OrgError::MemberNotFound(target.clone())))?;
    if !my_role.may_handle(target_role) {
        return Err(org_error(OrgError::Forbidden(
            "only an owner can revoke an owner's sessions",
        )));
    }
    let revoked = auth
        .sessions
        .revoke_all(&target)
        .await
        .map_err(|e| storage_unavailable(&e))?;
    let entry = AuditEntry::new("session.revoke_all", Some(actor.clone()))
        .org(Some(org_id.clone()))
        .target(target.clone())
        .detail(json!({"sessions_revoked": revoked, "role": target_role}));
    audit::record(&state, &req, entry).await;
    tracing::info!(actor = %actor, user = %target, org = %org_id, revoked, "member sessions revoked");
    Ok(HttpResponse::Ok().json(MemberSessionsRevoked {
        org_id,
        user_id: target,
        sessions_revoked: revoked,
    }))
}

fn org_error(err: OrgError) -> ApiError {
    let status = match &err {
        OrgError::OrgNotFound | OrgError::MemberNotFound(_) | OrgError::InvitationNotFound => {
            StatusCode::NOT_FOUND
        }
        OrgError::Forbidden(_) => StatusCode::FORBIDDEN,
        OrgError::Database(cause) => return storage_unavailable(cause),
        // Listing members refuses with none of the others; should it one day, a conflict
        // is the nearest meaning for those rules (last owner, limits).
        _ => StatusCode::CONFLICT,
    };
    error(status, err.code(), err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plausible_ids_are_looked_up() {
        assert!(plausible_id("alice"));
        assert!(plausible_id("0b6f3c2e-1d2a-4c55-9a57-2f1f2b9f8a10"));
        assert!(!plausible_id(""));
        assert!(!plausible_id("a\u{0}b"));
        assert!(!plausible_id(&"x".repeat(MAX_ID_LEN + 1)));
    }
}
