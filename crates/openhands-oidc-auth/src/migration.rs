//! The `oidc_sessions` table, contributed through `ProviderMigrations` (no edit to the
//! migrations crate). Portable schema only, so it runs on PostgreSQL and SQLite alike; `down`
//! drops exactly what `up` made.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// Named `m<date>_<seq>_<provider>_<what>`, unique across core and providers.
pub struct SessionsMigration;

impl MigrationName for SessionsMigration {
    fn name(&self) -> &str {
        "m20261207_000201_oidc_sessions"
    }
}

#[derive(DeriveIden)]
enum OidcSessions {
    Table,
    Id,
    TokenHash,
    UserId,
    CreatedAt,
    ExpiresAt,
    LastSeenAt,
    RevokedAt,
    UserAgent,
    Ip,
}

#[async_trait::async_trait]
impl MigrationTrait for SessionsMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OidcSessions::Table)
                    .col(text(OidcSessions::Id).primary_key())
                    .col(text(OidcSessions::TokenHash))
                    .col(text(OidcSessions::UserId))
                    .col(timestamp_with_time_zone(OidcSessions::CreatedAt))
                    .col(timestamp_with_time_zone(OidcSessions::ExpiresAt))
                    .col(timestamp_with_time_zone(OidcSessions::LastSeenAt))
                    .col(timestamp_with_time_zone_null(OidcSessions::RevokedAt))
                    .col(text_null(OidcSessions::UserAgent))
                    .col(text_null(OidcSessions::Ip))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_oidc_sessions_token_hash")
                    .table(OidcSessions::Table)
                    .col(OidcSessions::TokenHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_oidc_sessions_user")
                    .table(OidcSessions::Table)
                    .col(OidcSessions::UserId)
                    .col(OidcSessions::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OidcSessions::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

inventory::submit! {
    openhands_migrations::ProviderMigrations {
        provider: "oidc",
        migrations: || vec![Box::new(SessionsMigration)],
    }
}
