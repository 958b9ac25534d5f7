//! SaaS mode's own HTTP surface: organizations, members, roles and invitations, plus the
//! SQL audit log.
//!
//! The open API (`openhands-api`) knows nothing of organizations; this crate adds them
//! without edits there: its routes are a [`RouteContribution`] mounted only in SaaS mode,
//! and `saas.sql_audit` is an [`AuditLog`] registered by name for the `saas` config class.
//! The rules (who may invite, remove, change roles; the last owner stays) are plain
//! functions in [`orgs`] and [`role`] over the sea-orm entities of `openhands-sql-store`,
//! each acting for one caller and scoped by the caller's membership.
//!
//! [`RouteContribution`]: openhands_api::contribution::RouteContribution
//! [`AuditLog`]: openhands_core::extension::AuditLog

pub mod audit;
mod db;
pub mod error;
pub mod orgs;
pub mod role;
mod routes;

pub use audit::SqlAuditLog;
pub use error::OrgError;
pub use orgs::current_org;
pub use role::Role;
