//! `provider_tokens`: a user's git-provider token; token values are sealed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub provider: String,
    pub token_sealed: String,
    pub host: Option<String>,
    /// The provider's id of the user (`ProviderToken::user_id`).
    pub user_login: Option<String>,
    pub expires_at: Option<DateTimeUtc>,
    pub refresh_token_sealed: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
