//! `saas.sql_conversations`: conversation metadata rows, listed newest first.
//!
//! A conversation belongs to the scope that first saved it: `save` is one
//! `INSERT ... ON CONFLICT DO UPDATE ... WHERE` that only updates a row of the same scope,
//! so no other user or organization can take over an id, even racing. `search` pages with
//! a keyset cursor on `(created_at desc, conversation_id asc)`, served by the
//! `(user_id, org_id, created_at desc, conversation_id)` index, and stays valid while
//! conversations are added.

use crate::database::Database;
use crate::entity::conversation_metadata::{ActiveModel, Column, Entity, Model};
use crate::entity::event;
use crate::error::{backend, corrupt, retry_read};
use crate::scope::ScopeKey;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SubsecRound, Utc};
use openhands_core::conversation::{ConversationMetadata, ConversationPage, ConversationQuery};
use openhands_core::extension::ConversationStore;
use openhands_core::{StoreError, UserScope};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

const WHAT: &str = "conversation_metadata";

/// Conversation metadata in SQL.
pub struct SqlConversationStore {
    db: Database,
}

impl SqlConversationStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

/// Timestamps are kept to the microsecond, PostgreSQL's precision, so what is read back
/// (and the cursors built from it) equals what was written on both databases.
fn stored_instant(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

fn enum_text<T: Serialize>(value: &Option<T>) -> Option<String> {
    value
        .as_ref()
        .and_then(|v| serde_json::to_value(v).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
}

fn text_enum<T: DeserializeOwned>(
    text: Option<String>,
    column: &str,
) -> Result<Option<T>, StoreError> {
    text.map(|t| {
        serde_json::from_value(serde_json::Value::String(t.clone()))
            .map_err(|_| corrupt(WHAT, format!("{column} `{t}` is not a known value")))
    })
    .transpose()
}

fn to_row(key: &ScopeKey, meta: &ConversationMetadata) -> Result<ActiveModel, StoreError> {
    let pr_number = serde_json::to_string(&meta.pr_number)
        .map_err(|e| StoreError::Backend(format!("pr_number serialization: {e}")))?;
    Ok(ActiveModel {
        conversation_id: Set(meta.conversation_id.clone()),
        user_id: Set(key.user_id.clone()),
        org_id: Set(key.org_id.clone()),
        title: Set(meta.title.clone()),
        selected_repository: Set(meta.selected_repository.clone()),
        selected_branch: Set(meta.selected_branch.clone()),
        git_provider: Set(enum_text(&meta.git_provider)),
        trigger: Set(enum_text(&meta.trigger)),
        status: Set(None),
        pr_number: Set(pr_number),
        llm_model: Set(meta.llm_model.clone()),
        accumulated_cost: Set(meta.accumulated_cost),
        prompt_tokens: Set(meta.prompt_tokens),
        completion_tokens: Set(meta.completion_tokens),
        total_tokens: Set(meta.total_tokens),
        sandbox_id: Set(meta.sandbox_id.clone()),
        conversation_version: Set(meta.conversation_version.clone()),
        conversation_instructions: Set(meta.conversation_instructions.clone()),
        created_at: Set(stored_instant(meta.created_at)),
        last_updated_at: Set(meta.last_updated_at.map(stored_instant)),
    })
}

/// Refuses a NUL in the text columns that carry user input, on both databases alike:
/// PostgreSQL cannot store one, and SQLite would keep what PostgreSQL refuses.
fn refuse_nul(meta: &ConversationMetadata) -> Result<(), StoreError> {
    let columns = [
        ("conversation_id", Some(&meta.conversation_id)),
        ("title", meta.title.as_ref()),
        ("selected_repository", meta.selected_repository.as_ref()),
        ("selected_branch", meta.selected_branch.as_ref()),
        ("llm_model", meta.llm_model.as_ref()),
        ("sandbox_id", meta.sandbox_id.as_ref()),
        ("conversation_version", meta.conversation_version.as_ref()),
        (
            "conversation_instructions",
            meta.conversation_instructions.as_ref(),
        ),
    ];
    match columns
        .iter()
        .find(|(_, value)| value.is_some_and(|v| v.contains('\0')))
    {
        Some((column, _)) => Err(StoreError::Invalid(format!(
            "{WHAT}.{column} must not contain NUL characters (U+0000)"
        ))),
        None => Ok(()),
    }
}

fn from_row(row: Model) -> Result<ConversationMetadata, StoreError> {
    let pr_number = serde_json::from_str(&row.pr_number)
        .map_err(|e| corrupt(WHAT, format!("pr_number: {e}")))?;
    Ok(ConversationMetadata {
        conversation_id: row.conversation_id,
        selected_repository: row.selected_repository,
        user_id: ScopeKey::optional(&row.user_id),
        org_id: ScopeKey::optional(&row.org_id),
        selected_branch: row.selected_branch,
        git_provider: text_enum(row.git_provider, "git_provider")?,
        title: row.title,
        last_updated_at: row.last_updated_at,
        trigger: text_enum(row.trigger, "trigger")?,
        pr_number,
        created_at: row.created_at,
        llm_model: row.llm_model,
        accumulated_cost: row.accumulated_cost,
        prompt_tokens: row.prompt_tokens,
        completion_tokens: row.completion_tokens,
        total_tokens: row.total_tokens,
        sandbox_id: row.sandbox_id,
        conversation_version: row.conversation_version,
        conversation_instructions: row.conversation_instructions,
    })
}

fn scoped(key: &ScopeKey) -> Condition {
    Condition::all()
        .add(Column::UserId.eq(&key.user_id))
        .add(Column::OrgId.eq(&key.org_id))
}

fn encode_cursor(at: DateTime<Utc>, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.to_rfc3339()))
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, String), StoreError> {
    let invalid = || StoreError::Invalid(format!("page_id `{cursor}` is not a valid cursor"));
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (at, id) = text.split_once('|').ok_or_else(invalid)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| invalid())?;
    Ok((at.with_timezone(&Utc), id.to_owned()))
}

#[async_trait]
impl ConversationStore for SqlConversationStore {
    async fn save(
        &self,
        scope: &UserScope,
        metadata: &ConversationMetadata,
    ) -> Result<(), StoreError> {
        let key = ScopeKey::of(scope);
        let org_differs = metadata
            .org_id
            .as_ref()
            .is_some_and(|org| scope.org_id.as_ref() != Some(org));
        if metadata.user_id != scope.user_id || org_differs {
            return Err(StoreError::Invalid(
                "metadata user does not match the caller".into(),
            ));
        }
        refuse_nul(metadata)?;
        let updated = [
            Column::Title,
            Column::SelectedRepository,
            Column::SelectedBranch,
            Column::GitProvider,
            Column::Trigger,
            Column::PrNumber,
            Column::LlmModel,
            Column::AccumulatedCost,
            Column::PromptTokens,
            Column::CompletionTokens,
            Column::TotalTokens,
            Column::SandboxId,
            Column::ConversationVersion,
            Column::ConversationInstructions,
            Column::CreatedAt,
            Column::LastUpdatedAt,
        ];
        // Qualified by the table name, these columns are the existing row's.
        let only_own_row = scoped(&key);
        let written = Entity::insert(to_row(&key, metadata)?)
            .on_conflict(
                OnConflict::column(Column::ConversationId)
                    .update_columns(updated)
                    .action_cond_where(only_own_row)
                    .to_owned(),
            )
            .exec_without_returning(self.db.connection())
            .await
            .map_err(backend)?;
        if written == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "Conversation {}",
                metadata.conversation_id
            )));
        }
        Ok(())
    }

    async fn get(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<ConversationMetadata>, StoreError> {
        let key = ScopeKey::of(scope);
        retry_read(|| {
            Entity::find_by_id(conversation_id.to_owned())
                .filter(scoped(&key))
                .one(self.db.connection())
        })
        .await
        .map_err(backend)?
        .map(from_row)
        .transpose()
    }

    async fn delete(&self, scope: &UserScope, conversation_id: &str) -> Result<bool, StoreError> {
        let key = ScopeKey::of(scope);
        let txn = self.db.begin_write().await.map_err(backend)?;
        let removed = Entity::delete_many()
            .filter(Column::ConversationId.eq(conversation_id))
            .filter(scoped(&key))
            .exec(&txn)
            .await
            .map_err(backend)?
            .rows_affected;
        if removed == 0 {
            return Ok(false);
        }
        event::Entity::delete_many()
            .filter(event::Column::ConversationId.eq(conversation_id))
            .filter(event::Column::UserId.eq(&key.user_id))
            .filter(event::Column::OrgId.eq(&key.org_id))
            .exec(&txn)
            .await
            .map_err(backend)?;
        txn.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn search(
        &self,
        scope: &UserScope,
        query: &ConversationQuery,
    ) -> Result<ConversationPage, StoreError> {
        let key = ScopeKey::of(scope);
        let mut select = Entity::find().filter(scoped(&key));
        if let Some(cursor) = query.page_id.as_deref() {
            let (at, id) = decode_cursor(cursor)?;
            select = select.filter(
                Condition::any().add(Column::CreatedAt.lt(at)).add(
                    Condition::all()
                        .add(Column::CreatedAt.eq(at))
                        .add(Column::ConversationId.gt(id)),
                ),
            );
        }
        if let Some(min) = query.created_after {
            select = select.filter(Column::CreatedAt.gte(stored_instant(min)));
        }
        if let Some(repository) = &query.selected_repository {
            select = select.filter(Column::SelectedRepository.eq(repository));
        }
        if let Some(trigger) = enum_text(&query.trigger) {
            select = select.filter(Column::Trigger.eq(trigger));
        }
        let select = select
            .order_by_desc(Column::CreatedAt)
            .order_by_asc(Column::ConversationId)
            .limit(crate::paging::limit_plus_one(query.limit));
        let rows = retry_read(|| select.clone().all(self.db.connection()))
            .await
            .map_err(backend)?;
        let more = rows.len() > query.limit;
        let results = rows
            .into_iter()
            .take(query.limit)
            .map(from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_id = if more {
            results
                .last()
                .map(|m| encode_cursor(m.created_at, &m.conversation_id))
        } else {
            None
        };
        Ok(ConversationPage {
            results,
            next_page_id,
        })
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(backend)
    }
}
