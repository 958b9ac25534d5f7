//! SaaS mode's own HTTP surface: organizations, members, roles, invitations and API keys,
//! plus the SQL audit log.
//!
//! The open API (`openhands-api`) knows nothing of organizations; this crate adds them
//! without edits there: its routes are a [`RouteContribution`] mounted only in SaaS mode,
//! and `saas.sql_audit` is an [`AuditLog`] registered by name for the `saas` config class.
//! The rules (who may invite, remove, change roles; the last owner stays) are plain
//! functions in [`orgs`] and [`role`] over the sea-orm entities of `openhands-sql-store`,
//! each acting for one caller and scoped by the caller's membership. [`api_keys`] holds the
//! API key rules and [`verify_api_key`], which the auth layer calls for
//! `Authorization: Bearer <key>`.
//! The audit log is read back by org owners and admins at
//! `GET /api/organizations/{org_id}/audit` (`audit_routes`).
//!
//! [`RouteContribution`]: openhands_api::contribution::RouteContribution
//! [`AuditLog`]: openhands_core::extension::AuditLog

mod api_key_routes;
pub mod api_keys;
pub mod audit;
mod audit_routes;
mod db;
pub mod error;
pub mod orgs;
pub mod role;
mod routes;

pub use api_keys::{ApiKeyOwner, verify_api_key};
pub use audit::SqlAuditLog;
pub use error::OrgError;
pub use orgs::current_org;
pub use role::Role;
