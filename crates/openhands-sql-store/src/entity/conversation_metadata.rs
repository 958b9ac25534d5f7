//! `conversation_metadata`: the metadata of one conversation, owned by a user and org.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "conversation_metadata")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub conversation_id: String,
    pub user_id: String,
    pub org_id: String,
    pub title: Option<String>,
    pub selected_repository: Option<String>,
    pub selected_branch: Option<String>,
    pub git_provider: Option<String>,
    pub trigger: Option<String>,
    pub status: Option<String>,
    /// JSON array of pull-request numbers.
    pub pr_number: String,
    pub llm_model: Option<String>,
    pub accumulated_cost: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub sandbox_id: Option<String>,
    pub conversation_version: Option<String>,
    pub conversation_instructions: Option<String>,
    pub created_at: DateTimeUtc,
    pub last_updated_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
