//! Database schema of SaaS mode, as reversible sea-orm migrations.
//!
//! OSS mode stores files and needs no schema. SaaS mode keeps users, organizations, settings,
//! secrets, conversations, events, API keys and the audit log in PostgreSQL (or SQLite on a
//! single box); [`Migrator`] creates and removes that schema. Every migration is written with
//! sea-query's portable schema builder, so the same code runs on both databases, and every
//! `down` drops exactly what its `up` created.
//!
//! # Conventions of the schema
//!
//! * Ids are text (uuid strings). Timestamps are `timestamp with time zone` (text holding an
//!   RFC 3339 instant on SQLite). JSON documents are text columns holding JSON, so the
//!   same entity works on both databases.
//! * Tables of per-user data (`user_settings`, `custom_secrets`, `provider_tokens`,
//!   `conversation_metadata`, `events`) carry `user_id` and `org_id` and have no foreign key
//!   to `users`: the stores also serve scopes without a user row (the local user of OSS-like
//!   set-ups is the empty string `''`). Every query on them filters by both columns.
//! * Columns ending in `_sealed` hold values sealed by `openhands_core::crypto::Cipher`,
//!   never plain text.
//!
//! # Migrations from provider crates
//!
//! A provider crate (an integration, billing, ...) that needs its own tables does not edit
//! this crate. It writes ordinary sea-orm migrations and submits them next to its code:
//!
//! ```ignore
//! inventory::submit! {
//!     openhands_migrations::ProviderMigrations {
//!         provider: "github",
//!         migrations: || vec![Box::new(m20261201_000001_github_installations::Migration)],
//!     }
//! }
//! ```
//!
//! [`Migrator::migrations`] returns the core migrations first, then each linked provider's,
//! providers sorted by name (inventory order is unspecified), each in the order it gave. So
//! a provider migration may rely on every core table. Like plugins, a provider's migrations
//! exist only when its crate is linked into the binary; names must be unique across the
//! whole list (use a `m<date>_<seq>_<provider>_<what>` name), which [`Migrator::check_names`]
//! verifies.

use sea_orm_migration::prelude::*;

mod m20261123_000001_users_orgs;
mod m20261123_000002_settings_secrets;
mod m20261123_000003_conversations_events;
mod m20261123_000004_api_keys_audit;
pub mod runner;

/// Migrations contributed by a provider crate (see the crate docs).
pub struct ProviderMigrations {
    /// Name of the contributing provider, e.g. `github`; orders providers.
    pub provider: &'static str,
    /// The provider's migrations, oldest first.
    pub migrations: fn() -> Vec<Box<dyn MigrationTrait>>,
}

inventory::collect!(ProviderMigrations);

/// Runs the whole schema: the core migrations, then the linked providers'.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

/// Two migrations in the list share a name, so the migration table cannot tell them apart.
#[derive(Debug, thiserror::Error)]
#[error("migration name `{name}` is used twice (providers: {providers})")]
pub struct DuplicateMigration {
    pub name: String,
    pub providers: String,
}

impl Migrator {
    /// The core schema, oldest first.
    pub fn core_migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_users_orgs::Migration),
            Box::new(m20261123_000002_settings_secrets::Migration),
            Box::new(m20261123_000003_conversations_events::Migration),
            Box::new(m20261123_000004_api_keys_audit::Migration),
        ]
    }

    /// The registered provider contributions, sorted by provider name.
    pub fn providers() -> Vec<&'static ProviderMigrations> {
        let mut providers: Vec<_> = inventory::iter::<ProviderMigrations>.into_iter().collect();
        providers.sort_by_key(|p| p.provider);
        providers
    }

    /// `(owner, migration name)` for every migration, in order; the owner is `core` or the
    /// provider's name.
    pub fn names() -> Vec<(&'static str, String)> {
        let core = Self::core_migrations()
            .into_iter()
            .map(|m| ("core", m.name().to_owned()));
        let providers = Self::providers().into_iter().flat_map(|p| {
            (p.migrations)()
                .into_iter()
                .map(move |m| (p.provider, m.name().to_owned()))
        });
        core.chain(providers).collect()
    }

    /// Fails when two migrations share a name.
    pub fn check_names() -> Result<(), DuplicateMigration> {
        let mut seen = std::collections::HashMap::new();
        for (owner, name) in Self::names() {
            if let Some(first) = seen.insert(name.clone(), owner) {
                return Err(DuplicateMigration {
                    name,
                    providers: format!("{first}, {owner}"),
                });
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = Self::core_migrations();
        for provider in Self::providers() {
            all.extend((provider.migrations)());
        }
        all
    }
}

/// Names of the core migrations, oldest first.
pub fn migration_names() -> Vec<String> {
    Migrator::core_migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_migrations_are_named_by_date_and_in_order() {
        let names = migration_names();
        assert_eq!(names.len(), 4);
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(names.iter().all(|n| n.starts_with("m2026")));
        Migrator::check_names().expect("unique names");
    }
}
