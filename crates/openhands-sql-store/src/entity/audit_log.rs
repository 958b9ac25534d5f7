//! `audit_log`: who did what, when and from where.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub at: DateTimeUtc,
    pub actor_user_id: Option<String>,
    pub org_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    /// JSON object with the details of the action (never a secret value).
    pub detail: String,
    pub ip: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
