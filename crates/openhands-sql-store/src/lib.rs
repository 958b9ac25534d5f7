//! The stores of SaaS mode on SQL: PostgreSQL in production, SQLite on a single box.
//!
//! Four implementations of `openhands-core`'s storage traits, registered by name for the
//! `saas` config class: `saas.sql_settings`, `saas.sql_secrets`, `saas.sql_conversations`
//! and `saas.sql_events`. They run the same code on both databases through sea-orm, on the
//! schema of `openhands-migrations` (the [`entity`] modules mirror it).
//!
//! Rules every store here follows:
//!
//! * **Scoped.** Every query filters by `user_id` and `org_id` of the caller's
//!   [`UserScope`](openhands_core::UserScope); an absent id is the empty string, so the
//!   local scope of OSS-like set-ups works too ([`scope::ScopeKey`]). The one exception is
//!   [`linked_accounts`], the reverse lookup webhooks need (provider login to scopes); it
//!   returns scope ids only, never a value.
//! * **Atomic.** A change of several rows (replacing a user's secrets, a conversation and
//!   its events) runs in one transaction: on failure the old rows stay. Read-modify-write
//!   changes serialize per scope ([`database::Database::begin_write`]).
//! * **Sealed.** Secret values are sealed with the configured
//!   [`Cipher`](openhands_core::crypto::Cipher) before they reach a row, bound to their
//!   field as associated data ([`sealing`]); a tampered row is an error, never garbage.
//! * **One pool.** The four stores built for one database URL share one connection pool
//!   ([`server_database`], one pool per server).
//! * **Failures that say what to do.** A lost or refused connection is
//!   `StoreError::Unavailable` (the API's 503 with `Retry-After`), and the stores' reads
//!   try once more on a fresh connection first; a NUL in a text column is
//!   `StoreError::Invalid`, refused by name in conversation metadata on both databases.

pub mod conversation_store;
pub mod copy;
pub mod database;
pub mod entity;
mod error;
pub mod event_store;
pub mod linked_accounts;
mod paging;
mod plugins;
pub use plugins::{database as plugin_database, server_database};
pub mod rotation;
pub mod scope;
mod sealed_tables;
pub mod sealing;
pub mod secrets_store;
pub mod settings_store;

pub use conversation_store::SqlConversationStore;
pub use database::{Database, DatabaseError, PoolOptions};
pub use error::backend as store_error;
pub use event_store::SqlEventStore;
pub use rotation::{
    RotationError, RotationProgress, RotationReport, RotationStatus, rotate, rotation_status,
};
pub use secrets_store::SqlSecretsStore;
pub use settings_store::SqlSettingsStore;
