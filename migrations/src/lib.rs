//! Database migrations for SaaS mode.
//!
//! OSS mode stores files and needs no schema. The sea-orm migrations that SaaS mode runs
//! (`openhands migrate up|down|status`) land here with the SaaS storage work; until then the
//! crate only reserves its place in the workspace, and lists no migration.

/// Names of the migrations this crate provides, oldest first.
pub fn migration_names() -> &'static [&'static str] {
    &[]
}
