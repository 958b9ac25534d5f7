//! The `webhook_deliveries` table, contributed through `ProviderMigrations` (no edit to the
//! migrations crate).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// Named `m<date>_<seq>_<provider>_<what>`, unique across core and providers.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000101_integrations_webhook_deliveries"
    }
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    Provider,
    DeliveryId,
    ReceivedAt,
    Status,
    Attempts,
    LastError,
    NextAttemptAt,
    Payload,
    Headers,
    JobSummary,
    ConversationId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(text(WebhookDeliveries::Id).primary_key())
                    .col(text(WebhookDeliveries::Provider))
                    .col(text(WebhookDeliveries::DeliveryId))
                    .col(timestamp_with_time_zone(WebhookDeliveries::ReceivedAt))
                    .col(text(WebhookDeliveries::Status))
                    .col(integer(WebhookDeliveries::Attempts).default(0))
                    .col(text_null(WebhookDeliveries::LastError))
                    .col(timestamp_with_time_zone(WebhookDeliveries::NextAttemptAt))
                    .col(text(WebhookDeliveries::Payload))
                    .col(text(WebhookDeliveries::Headers).default("[]"))
                    .col(text_null(WebhookDeliveries::JobSummary))
                    .col(text_null(WebhookDeliveries::ConversationId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_webhook_deliveries_provider_delivery")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Provider)
                    .col(WebhookDeliveries::DeliveryId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Status)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

inventory::submit! {
    openhands_migrations::ProviderMigrations {
        provider: "integrations",
        migrations: || vec![Box::new(Migration)],
    }
}
