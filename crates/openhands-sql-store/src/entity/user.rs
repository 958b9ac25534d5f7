//! `users`: accounts signed in through OIDC.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub oidc_subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub tos_accepted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub last_login_at: Option<DateTimeUtc>,
    pub current_org_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
