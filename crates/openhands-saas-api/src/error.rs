//! Why an organization operation was refused or failed.
//!
//! Each refusal carries a stable machine-readable code (`OrgError::code`) that the routes
//! put next to the message, so clients can react without parsing English. This module is
//! also the one place that maps them to HTTP (`From<OrgError> for ApiError`): 400 for bad
//! input, 403 when a role or a limit does not allow it, 404 for an org the caller is not a
//! member of, 409 for conflicts, 500 (cause logged, not shown) for the database.

use actix_web::http::StatusCode;
use openhands_api::error::ApiError;
use sea_orm::DbErr;
use serde_json::json;

/// An org operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    /// The org does not exist or the caller is not a member: the two are not told apart.
    #[error("organization not found")]
    OrgNotFound,
    #[error("member `{0}` not found in this organization")]
    MemberNotFound(String),
    #[error("invitation not found")]
    InvitationNotFound,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("the organization's last owner cannot {0}; make another member owner first")]
    LastOwner(&'static str),
    #[error("user is already a member of this organization")]
    AlreadyMember,
    #[error("{0}")]
    Invalid(String),
    /// `orgs.max_owned_per_user`: the caller owns that many organizations already.
    #[error(
        "you own {limit} organizations, the most one user may own (orgs.max_owned_per_user); leave one, after making another member its owner, to create another"
    )]
    OrgLimitReached { limit: u32 },
    #[error("database error: {0}")]
    Database(#[from] DbErr),
}

impl OrgError {
    /// The machine-readable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            OrgError::OrgNotFound => "org_not_found",
            OrgError::MemberNotFound(_) => "member_not_found",
            OrgError::InvitationNotFound => "invitation_not_found",
            OrgError::Forbidden(_) => "insufficient_role",
            OrgError::LastOwner(_) => "last_owner",
            OrgError::AlreadyMember => "already_member",
            OrgError::Invalid(_) => "invalid_request",
            OrgError::OrgLimitReached { .. } => "org_limit_reached",
            OrgError::Database(_) => "internal_error",
        }
    }

    /// The HTTP status of the refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            OrgError::OrgNotFound | OrgError::MemberNotFound(_) | OrgError::InvitationNotFound => {
                StatusCode::NOT_FOUND
            }
            OrgError::Forbidden(_) | OrgError::OrgLimitReached { .. } => StatusCode::FORBIDDEN,
            OrgError::LastOwner(_) | OrgError::AlreadyMember => StatusCode::CONFLICT,
            OrgError::Invalid(_) => StatusCode::BAD_REQUEST,
            OrgError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// `{"detail": message, "code": code}` with [`OrgError::status`]; a database failure is
/// logged and answered without its cause.
impl From<OrgError> for ApiError {
    fn from(err: OrgError) -> Self {
        if let OrgError::Database(cause) = err {
            let code = "internal_error";
            return ApiError::store(
                openhands_sql_store::store_error(cause),
                json!({"detail": "Something went wrong", "code": code}),
            );
        }
        ApiError::new(
            err.status(),
            json!({"detail": err.to_string(), "code": err.code()}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_org_limit_is_a_403_naming_the_limit() {
        let answer = ApiError::from(OrgError::OrgLimitReached { limit: 10 });
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert_eq!(answer.body["code"], "org_limit_reached");
        let detail = answer.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("10") && detail.contains("max_owned_per_user"),
            "{detail}"
        );
    }

    #[test]
    fn database_causes_are_not_shown() {
        let answer = ApiError::from(OrgError::Database(DbErr::Custom("secret cause".into())));
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!answer.body.to_string().contains("secret cause"));
    }
}
