//! `integration_callbacks`: one row per started job, kept until its outcome is posted, so a
//! restart (or another replica) still posts it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "integration_callbacks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub provider: String,
    /// The `webhook_deliveries` row that started the job.
    pub delivery_id: String,
    /// Unique: one callback per conversation (a follow-up on a thread reuses it).
    pub conversation_id: String,
    /// The conversation's scope (`''` for none), to read its events.
    pub user_id: String,
    pub org_id: Option<String>,
    /// The job as JSON (what the provider's callback needs).
    pub job: String,
    /// `watching`, `done` or `dead`.
    pub status: String,
    /// Failed attempts to post the outcome.
    pub attempts: i32,
    pub last_error: Option<String>,
    /// When to look again; while a server works on the row, the end of its lease.
    pub next_check_at: DateTimeUtc,
    /// The id of the next event to read.
    pub event_cursor: i64,
    /// The agent's last message so far.
    pub last_message: Option<String>,
    /// JSON array of the links seen so far.
    pub links: String,
    /// The outcome as JSON, once the conversation ended (kept while posting is retried).
    pub outcome: Option<String>,
    /// A follow-up's callback: an ending state counts only after the follow-up's user
    /// message was stored (the task before it may still end first).
    pub awaits_message: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
