//! Which conversation a user's requests on one issue or change request continue.
//!
//! A job names its thread (`Job::thread`, e.g. `acme/app#7`). The first request on a thread
//! starts a conversation and records it here, per provider, thread and user; a later
//! comment by the same user that asks the agent again (`Job::follow_up`) is delivered to that
//! conversation as a user message instead of starting another, so the agent keeps what it
//! learned and the branch it made. Another user's request on the same thread gets a
//! conversation of their own: a conversation belongs to one user.

use chrono::Utc;
use openhands_core::scope::UserScope;
use openhands_sql_store::Database;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait, QueryFilter};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "integration_threads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub provider: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub thread: String,
    /// The user whose conversation it is (`''` for none).
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    pub org_id: Option<String>,
    pub conversation_id: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn user_key(scope: &UserScope) -> String {
    scope.user_id.clone().unwrap_or_default()
}

/// The conversation of `scope`'s requests on `thread`, if one was started (in the same org).
pub async fn find(
    db: &Database,
    provider: &str,
    thread: &str,
    scope: &UserScope,
) -> Result<Option<String>, DbErr> {
    let row = Entity::find()
        .filter(Column::Provider.eq(provider))
        .filter(Column::Thread.eq(thread))
        .filter(Column::UserId.eq(user_key(scope)))
        .one(db.connection())
        .await?;
    Ok(row
        .filter(|row| row.org_id == scope.org_id)
        .map(|row| row.conversation_id))
}

/// Records (or replaces) the conversation of `scope`'s requests on `thread`.
pub async fn record(
    db: &Database,
    provider: &str,
    thread: &str,
    scope: &UserScope,
    conversation_id: &str,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let row = ActiveModel {
        provider: Set(provider.to_owned()),
        thread: Set(thread.to_owned()),
        user_id: Set(user_key(scope)),
        org_id: Set(scope.org_id.clone()),
        conversation_id: Set(conversation_id.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    };
    Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Column::Provider, Column::Thread, Column::UserId])
                .update_columns([Column::OrgId, Column::ConversationId, Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(db.connection())
        .await?;
    Ok(())
}
