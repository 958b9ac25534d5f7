//! Which OpenHands users linked a given git-provider account.
//!
//! Webhooks name the provider's user (a GitHub login), not ours, so an integration needs the
//! reverse of the per-scope secrets: the scopes whose provider token names that login. This
//! is the one query on `provider_tokens` that is not filtered by a scope, by design; it
//! returns scope ids only, never a token, and callers prove the claim with the token itself
//! (read through the scoped `SecretsStore`) before they trust it.

use crate::database::Database;
use crate::entity::provider_token;
use crate::error::backend;
use crate::scope::ScopeKey;
use openhands_core::secrets::ProviderType;
use openhands_core::{StoreError, UserScope};
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

/// At most this many scopes are returned for one login.
pub const MAX_SCOPES: u64 = 20;

/// The scopes whose stored `provider` token names the account `login` (compared
/// case-insensitively, as GitHub logins are), personal scopes first.
pub async fn scopes_linked_to(
    db: &Database,
    provider: ProviderType,
    login: &str,
) -> Result<Vec<UserScope>, StoreError> {
    let login = login.trim().to_lowercase();
    if login.is_empty() {
        return Ok(Vec::new());
    }
    let rows = provider_token::Entity::find()
        .filter(provider_token::Column::Provider.eq(provider.as_str()))
        .filter(Expr::expr(Func::lower(Expr::col(provider_token::Column::UserLogin))).eq(login))
        .order_by_asc(provider_token::Column::OrgId)
        .order_by_asc(provider_token::Column::UserId)
        .limit(MAX_SCOPES)
        .all(db.connection())
        .await
        .map_err(backend)?;
    Ok(rows
        .into_iter()
        .map(|row| UserScope {
            user_id: ScopeKey::optional(&row.user_id),
            org_id: ScopeKey::optional(&row.org_id),
        })
        .collect())
}
