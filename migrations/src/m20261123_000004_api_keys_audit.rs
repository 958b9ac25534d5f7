//! API keys (only a hash of the key is stored) and the audit log.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    UserId,
    OrgId,
    Name,
    Prefix,
    KeyHash,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    ActorUserId,
    OrgId,
    Action,
    Target,
    Detail,
    Ip,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(text(ApiKeys::Id).primary_key())
                    .col(text(ApiKeys::UserId))
                    .col(text(ApiKeys::OrgId))
                    .col(text(ApiKeys::Name))
                    .col(text(ApiKeys::Prefix))
                    .col(text_uniq(ApiKeys::KeyHash))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_keys_user")
                            .from(ApiKeys::Table, ApiKeys::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_api_keys_scope")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::UserId)
                    .col(ApiKeys::OrgId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(text(AuditLog::Id).primary_key())
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(text_null(AuditLog::ActorUserId))
                    .col(text_null(AuditLog::OrgId))
                    .col(text(AuditLog::Action))
                    .col(text_null(AuditLog::Target))
                    .col(text(AuditLog::Detail).default("{}"))
                    .col(text_null(AuditLog::Ip))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_log_org_at")
                    .table(AuditLog::Table)
                    .col(AuditLog::OrgId)
                    .col(AuditLog::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
