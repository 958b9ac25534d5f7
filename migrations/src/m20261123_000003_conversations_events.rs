//! Conversation metadata and the append-only event log, scoped by user and org.
//!
//! The list index `(user_id, org_id, created_at desc, conversation_id)` serves the newest-
//! first, cursor-paged search without a sort. Events have no foreign key to the metadata:
//! the event log of a conversation may be written before its metadata row exists.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ConversationMetadata {
    Table,
    ConversationId,
    UserId,
    OrgId,
    Title,
    SelectedRepository,
    SelectedBranch,
    GitProvider,
    Trigger,
    Status,
    PrNumber,
    LlmModel,
    AccumulatedCost,
    PromptTokens,
    CompletionTokens,
    TotalTokens,
    SandboxId,
    ConversationVersion,
    ConversationInstructions,
    CreatedAt,
    LastUpdatedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    ConversationId,
    Id,
    UserId,
    OrgId,
    Body,
    Timestamp,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ConversationMetadata as C;
        manager
            .create_table(
                Table::create()
                    .table(C::Table)
                    .col(text(C::ConversationId).primary_key())
                    .col(text(C::UserId))
                    .col(text(C::OrgId))
                    .col(text_null(C::Title))
                    .col(text_null(C::SelectedRepository))
                    .col(text_null(C::SelectedBranch))
                    .col(text_null(C::GitProvider))
                    .col(text_null(C::Trigger))
                    .col(text_null(C::Status))
                    .col(text(C::PrNumber).default("[]"))
                    .col(text_null(C::LlmModel))
                    .col(double(C::AccumulatedCost).default(0.0))
                    .col(big_integer(C::PromptTokens).default(0))
                    .col(big_integer(C::CompletionTokens).default(0))
                    .col(big_integer(C::TotalTokens).default(0))
                    .col(text_null(C::SandboxId))
                    .col(text_null(C::ConversationVersion))
                    .col(text_null(C::ConversationInstructions))
                    .col(timestamp_with_time_zone(C::CreatedAt))
                    .col(timestamp_with_time_zone_null(C::LastUpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_conversation_metadata_scope_created")
                    .table(C::Table)
                    .col(C::UserId)
                    .col(C::OrgId)
                    .col((C::CreatedAt, IndexOrder::Desc))
                    .col(C::ConversationId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .col(text(Events::ConversationId))
                    .col(big_integer(Events::Id))
                    .col(text(Events::UserId))
                    .col(text(Events::OrgId))
                    .col(text(Events::Body))
                    .col(timestamp_with_time_zone(Events::Timestamp))
                    .primary_key(Index::create().col(Events::ConversationId).col(Events::Id))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Events::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ConversationMetadata::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
