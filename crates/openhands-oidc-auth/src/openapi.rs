//! The OpenAPI description of this crate's routes, merged into the server's `/openapi.json`
//! exactly when they are mounted (`saas.oidc` selected), so the document describes the
//! server that serves it. It is fuzzed against the running server, so every status code a
//! route can answer is declared, with the body shapes it really has: this crate's own
//! refusals are `{"error", "code"}` ([`ErrorBody`]); refusals by the shared `CurrentUser`
//! extractor are `{"detail", "code"?}`, so statuses that either can produce are
//! [`AuthRefusal`].

use crate::routes::{self, oidc_selected};
use crate::session_routes::{
    self, MemberSessionsRevoked, SessionList, SessionRevoked, SessionView,
};
use openhands_api::contribution::OpenApiContribution;
use utoipa::{OpenApi, ToSchema};

/// This crate's error shape.
#[derive(ToSchema)]
#[allow(dead_code)] // only the document uses it
pub struct ErrorBody {
    /// What went wrong, for people.
    error: String,
    /// A stable code for programs, e.g. `session_not_found`.
    code: String,
}

/// The shared authentication layer's error shape.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DetailBody {
    detail: String,
    /// Set on 403s (`csrf_rejected`, `tos_not_accepted`, `email_not_verified`).
    code: Option<String>,
}

/// A refusal by this crate or by the shared authentication layer.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum AuthRefusal {
    Error(ErrorBody),
    Detail(DetailBody),
}

/// `{"message"}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MessageBody {
    message: String,
}

/// `POST /api/accept_tos` answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RedirectUrlBody {
    /// A local path.
    redirect_url: String,
}

#[derive(OpenApi)]
#[openapi(
    paths(
        routes::login, routes::callback, routes::logout, routes::authenticate_route,
        routes::accept_tos, session_routes::list_sessions, session_routes::revoke_session,
        session_routes::revoke_member_sessions,
    ),
    components(schemas(
        ErrorBody, DetailBody, AuthRefusal, MessageBody, RedirectUrlBody, SessionView,
        SessionList, SessionRevoked, MemberSessionsRevoked,
    )),
    tags((name = "auth", description = "SaaS login (OIDC), logout, terms acceptance and login sessions"))
)]
pub struct AuthApiDoc;

inventory::submit! {
    OpenApiContribution {
        name: "saas.auth",
        enabled: oidc_selected,
        document: <AuthApiDoc as utoipa::OpenApi>::openapi,
    }
}
