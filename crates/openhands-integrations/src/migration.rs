//! The `webhook_deliveries`, `integration_callbacks` and `integration_threads` tables, contributed through `ProviderMigrations` (no edit to the
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
    PayloadHash,
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

/// `integration_callbacks`: one row per started job, until its outcome is posted.
pub struct CallbacksMigration;

impl MigrationName for CallbacksMigration {
    fn name(&self) -> &str {
        "m20261123_000102_integrations_callbacks"
    }
}

#[derive(DeriveIden)]
enum IntegrationCallbacks {
    Table,
    Id,
    Provider,
    DeliveryId,
    ConversationId,
    UserId,
    OrgId,
    Job,
    Status,
    Attempts,
    LastError,
    NextCheckAt,
    EventCursor,
    LastMessage,
    Links,
    Outcome,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for CallbacksMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IntegrationCallbacks::Table)
                    .col(text(IntegrationCallbacks::Id).primary_key())
                    .col(text(IntegrationCallbacks::Provider))
                    .col(text(IntegrationCallbacks::DeliveryId))
                    .col(text(IntegrationCallbacks::ConversationId))
                    .col(text(IntegrationCallbacks::UserId))
                    .col(text_null(IntegrationCallbacks::OrgId))
                    .col(text(IntegrationCallbacks::Job))
                    .col(text(IntegrationCallbacks::Status))
                    .col(integer(IntegrationCallbacks::Attempts).default(0))
                    .col(text_null(IntegrationCallbacks::LastError))
                    .col(timestamp_with_time_zone(IntegrationCallbacks::NextCheckAt))
                    .col(big_integer(IntegrationCallbacks::EventCursor).default(0))
                    .col(text_null(IntegrationCallbacks::LastMessage))
                    .col(text(IntegrationCallbacks::Links).default("[]"))
                    .col(text_null(IntegrationCallbacks::Outcome))
                    .col(timestamp_with_time_zone(IntegrationCallbacks::CreatedAt))
                    .col(timestamp_with_time_zone(IntegrationCallbacks::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_integration_callbacks_conversation")
                    .table(IntegrationCallbacks::Table)
                    .col(IntegrationCallbacks::ConversationId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_integration_callbacks_due")
                    .table(IntegrationCallbacks::Table)
                    .col(IntegrationCallbacks::Status)
                    .col(IntegrationCallbacks::NextCheckAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IntegrationCallbacks::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// How PostgreSQL stores a delivery's payload. A GitHub payload is a few KB of JSON: above
/// PostgreSQL's default TOAST threshold (~2 KB) every insert compressed it with `pglz`, which
/// was a quarter of the database's CPU at the webhook route's full rate. Rows up to ~8 KB now
/// stay inline uncompressed, and larger payloads are compressed with `lz4` where the server
/// has it (PostgreSQL 14+ built with lz4; otherwise `pglz` stays). SQLite: nothing to do.
pub struct DeliveryStorageMigration;

impl MigrationName for DeliveryStorageMigration {
    fn name(&self) -> &str {
        "m20261204_000103_integrations_delivery_storage"
    }
}

/// `EXECUTE` defers parsing, so a server without `SET COMPRESSION` (before 14) or without
/// lz4 fails inside the block, where the error is caught.
const PREFER_LZ4: &str = "DO $$ BEGIN \
    EXECUTE 'ALTER TABLE webhook_deliveries ALTER COLUMN payload SET COMPRESSION lz4'; \
    EXCEPTION WHEN others THEN NULL; \
    END $$";

#[async_trait::async_trait]
impl MigrationTrait for DeliveryStorageMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE webhook_deliveries SET (toast_tuple_target = 8160)")
            .await?;
        db.execute_unprepared(PREFER_LZ4).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE webhook_deliveries RESET (toast_tuple_target)")
            .await?;
        Ok(())
    }
}

/// `webhook_deliveries.payload_hash`: the signed body's SHA-256, so a captured delivery
/// replayed under a new (unsigned) delivery id is recognised; indexed with the provider and
/// the arrival time for the window lookup.
pub struct PayloadHashMigration;

impl MigrationName for PayloadHashMigration {
    fn name(&self) -> &str {
        "m20261207_000104_integrations_delivery_payload_hash"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for PayloadHashMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookDeliveries::Table)
                    .add_column(text_null(WebhookDeliveries::PayloadHash))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_payload_hash")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Provider)
                    .col(WebhookDeliveries::PayloadHash)
                    .col(WebhookDeliveries::ReceivedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_webhook_deliveries_payload_hash")
                    .table(WebhookDeliveries::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookDeliveries::Table)
                    .drop_column(WebhookDeliveries::PayloadHash)
                    .to_owned(),
            )
            .await
    }
}

/// `integration_threads` (which conversation a user's requests on an issue or change request
/// continue) and `integration_callbacks.awaits_message` (a follow-up's callback ignores the
/// end of the task before it, until its message was taken in).
pub struct ThreadsMigration;

impl MigrationName for ThreadsMigration {
    fn name(&self) -> &str {
        "m20261207_000105_integrations_threads"
    }
}

#[derive(DeriveIden)]
enum IntegrationThreads {
    Table,
    Provider,
    Thread,
    UserId,
    OrgId,
    ConversationId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CallbackFollowUp {
    #[sea_orm(iden = "integration_callbacks")]
    Table,
    AwaitsMessage,
}

#[async_trait::async_trait]
impl MigrationTrait for ThreadsMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IntegrationThreads::Table)
                    .col(text(IntegrationThreads::Provider))
                    .col(text(IntegrationThreads::Thread))
                    .col(text(IntegrationThreads::UserId))
                    .col(text_null(IntegrationThreads::OrgId))
                    .col(text(IntegrationThreads::ConversationId))
                    .col(timestamp_with_time_zone(IntegrationThreads::CreatedAt))
                    .col(timestamp_with_time_zone(IntegrationThreads::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(IntegrationThreads::Provider)
                            .col(IntegrationThreads::Thread)
                            .col(IntegrationThreads::UserId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(CallbackFollowUp::Table)
                    .add_column(boolean(CallbackFollowUp::AwaitsMessage).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(CallbackFollowUp::Table)
                    .drop_column(CallbackFollowUp::AwaitsMessage)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(IntegrationThreads::Table).to_owned())
            .await
    }
}

inventory::submit! {
    openhands_migrations::ProviderMigrations {
        provider: "integrations",
        migrations: || {
            vec![
                Box::new(Migration),
                Box::new(CallbacksMigration),
                Box::new(DeliveryStorageMigration),
                Box::new(PayloadHashMigration),
                Box::new(ThreadsMigration),
            ]
        },
    }
}
