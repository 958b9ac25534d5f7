//! Why an organization operation was refused or failed.
//!
//! Each refusal carries a stable machine-readable code (`OrgError::code`) that the routes
//! put next to the message, so clients can react without parsing English.

use sea_orm::DbErr;

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
            OrgError::Database(_) => "internal_error",
        }
    }
}
