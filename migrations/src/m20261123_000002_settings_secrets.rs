//! Per-user settings, custom secrets and git-provider tokens, scoped by user and org.
//!
//! Secret values live only in `*_sealed` columns. Names of custom secrets are checked by
//! the database (1 to 255 characters), so no path can store an unusable row.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UserSettings {
    Table,
    UserId,
    OrgId,
    Settings,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CustomSecrets {
    Table,
    UserId,
    OrgId,
    Name,
    ValueSealed,
    Description,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ProviderTokens {
    Table,
    UserId,
    OrgId,
    Provider,
    TokenSealed,
    Host,
    UserLogin,
    ExpiresAt,
    RefreshTokenSealed,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UserSettings::Table)
                    .col(text(UserSettings::UserId))
                    .col(text(UserSettings::OrgId))
                    .col(text(UserSettings::Settings))
                    .col(timestamp_with_time_zone(UserSettings::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(UserSettings::UserId)
                            .col(UserSettings::OrgId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CustomSecrets::Table)
                    .col(text(CustomSecrets::UserId))
                    .col(text(CustomSecrets::OrgId))
                    .col(
                        text(CustomSecrets::Name)
                            .check(Expr::cust("length(name) BETWEEN 1 AND 255")),
                    )
                    .col(text(CustomSecrets::ValueSealed))
                    .col(text(CustomSecrets::Description).default(""))
                    .col(timestamp_with_time_zone(CustomSecrets::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(CustomSecrets::UserId)
                            .col(CustomSecrets::OrgId)
                            .col(CustomSecrets::Name),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ProviderTokens::Table)
                    .col(text(ProviderTokens::UserId))
                    .col(text(ProviderTokens::OrgId))
                    .col(text(ProviderTokens::Provider))
                    .col(text(ProviderTokens::TokenSealed))
                    .col(text_null(ProviderTokens::Host))
                    .col(text_null(ProviderTokens::UserLogin))
                    .col(timestamp_with_time_zone_null(ProviderTokens::ExpiresAt))
                    .col(text_null(ProviderTokens::RefreshTokenSealed))
                    .primary_key(
                        Index::create()
                            .col(ProviderTokens::UserId)
                            .col(ProviderTokens::OrgId)
                            .col(ProviderTokens::Provider),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ProviderTokens::Table.into_iden(),
            CustomSecrets::Table.into_iden(),
            UserSettings::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
