//! sea-orm entities of the SaaS schema, one module per table.
//!
//! Hand-written to match `openhands-migrations` exactly (the migrations are the source of
//! truth; `tests/migrations.rs` checks both agree by using every entity on a migrated
//! database). JSON documents are `String` columns holding JSON text, and timestamps are
//! `DateTimeUtc`, so the same entities work on PostgreSQL and SQLite.

pub mod api_key;
pub mod audit_log;
pub mod conversation_metadata;
pub mod custom_secret;
pub mod event;
pub mod org_invitation;
pub mod org_membership;
pub mod organization;
pub mod provider_token;
pub mod user;
pub mod user_settings;
