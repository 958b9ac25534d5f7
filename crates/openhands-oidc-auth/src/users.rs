//! The `users` rows that logins create and update, and the terms-of-service flag.

use crate::provider::Identity;
use chrono::Utc;
use openhands_sql_store::Database;
use openhands_sql_store::entity::user;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

/// What a login learns from the `users` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub tos_accepted: bool,
}

/// Creates the user on first login, or updates e-mail, verification and login time (the
/// ID token is the source of truth for those). The id is the provider's subject.
pub async fn upsert_on_login(
    db: &Database,
    identity: &Identity,
) -> Result<UserRecord, sea_orm::DbErr> {
    let now = Utc::now();
    let email = identity.email.as_deref().map(|e| e.trim().to_lowercase());
    user::Entity::insert(user::ActiveModel {
        id: Set(identity.subject.clone()),
        oidc_subject: Set(identity.subject.clone()),
        email: Set(email),
        email_verified: Set(identity.email_verified),
        tos_accepted_at: Set(None),
        created_at: Set(now),
        last_login_at: Set(Some(now)),
        current_org_id: Set(None),
    })
    .on_conflict(
        OnConflict::column(user::Column::Id)
            .update_columns([
                user::Column::Email,
                user::Column::EmailVerified,
                user::Column::LastLoginAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(db.connection())
    .await?;
    let row = user::Entity::find_by_id(identity.subject.clone())
        .one(db.connection())
        .await?;
    Ok(UserRecord {
        tos_accepted: row.is_some_and(|r| r.tos_accepted_at.is_some()),
    })
}

/// Gives a user who belongs to no organization a personal one, made current, so that
/// everything scoped by org (settings, API keys) works from the first login. A user who
/// left every org gets a new personal one the same way.
pub async fn ensure_personal_org(
    db: &Database,
    identity: &Identity,
) -> Result<(), openhands_saas_api::OrgError> {
    let caller = openhands_saas_api::orgs::Caller {
        user_id: &identity.subject,
        email: identity.email.as_deref(),
    };
    let (orgs, _) = openhands_saas_api::orgs::list_orgs(db, caller).await?;
    if !orgs.is_empty() {
        return Ok(());
    }
    let who = identity
        .username
        .as_deref()
        .or(identity.email.as_deref())
        .unwrap_or(&identity.subject);
    let name: String = format!("{who}'s workspace").chars().take(60).collect();
    openhands_saas_api::orgs::create_org(db, caller, &name).await?;
    Ok(())
}

/// Records that the user accepted the terms now (kept when already set).
pub async fn accept_tos(db: &Database, user_id: &str) -> Result<bool, sea_orm::DbErr> {
    let result = user::Entity::update_many()
        .col_expr(user::Column::TosAcceptedAt, Expr::value(Some(Utc::now())))
        .filter(user::Column::Id.eq(user_id))
        .filter(user::Column::TosAcceptedAt.is_null())
        .exec(db.connection())
        .await?;
    if result.rows_affected > 0 {
        return Ok(true);
    }
    Ok(user::Entity::find_by_id(user_id.to_owned())
        .one(db.connection())
        .await?
        .is_some())
}

/// The e-mail and its verification of a user (for API-key callers, who carry no ID token).
pub async fn email_of(
    db: &Database,
    user_id: &str,
) -> Result<Option<(Option<String>, bool)>, sea_orm::DbErr> {
    Ok(user::Entity::find_by_id(user_id.to_owned())
        .one(db.connection())
        .await?
        .map(|u| (u.email, u.email_verified)))
}
