//! The `gitlab_webhooks` table (the installed hooks), contributed through
//! `ProviderMigrations` (provider `gitlab`), so `openhands migrate up` applies it with the
//! core schema and no edit to the migrations crate.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// Named `m<date>_<seq>_<provider>_<what>`, unique across core and providers.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000201_gitlab_webhooks"
    }
}

#[derive(DeriveIden)]
enum GitlabWebhooks {
    Table,
    WebhookId,
    UserId,
    OrgId,
    BaseUrl,
    ProjectId,
    GroupId,
    TargetPath,
    GitlabHookId,
    SecretSha256,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(GitlabWebhooks::Table)
                    .col(text(GitlabWebhooks::WebhookId).primary_key())
                    .col(text(GitlabWebhooks::UserId))
                    .col(text_null(GitlabWebhooks::OrgId))
                    .col(text(GitlabWebhooks::BaseUrl))
                    .col(big_integer_null(GitlabWebhooks::ProjectId))
                    .col(big_integer_null(GitlabWebhooks::GroupId))
                    .col(text(GitlabWebhooks::TargetPath))
                    .col(big_integer_null(GitlabWebhooks::GitlabHookId))
                    .col(text(GitlabWebhooks::SecretSha256))
                    .col(timestamp_with_time_zone(GitlabWebhooks::CreatedAt))
                    .col(timestamp_with_time_zone(GitlabWebhooks::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_gitlab_webhooks_target")
                    .table(GitlabWebhooks::Table)
                    .col(GitlabWebhooks::BaseUrl)
                    .col(GitlabWebhooks::ProjectId)
                    .col(GitlabWebhooks::GroupId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(GitlabWebhooks::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

inventory::submit! {
    openhands_migrations::ProviderMigrations {
        provider: "gitlab",
        migrations: || vec![Box::new(Migration)],
    }
}
