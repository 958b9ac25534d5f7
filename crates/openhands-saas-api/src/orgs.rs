//! Organizations, memberships and invitations: the rules, on the SQL schema.
//!
//! Every function acts for one caller (a user id) and checks the caller's membership
//! first: an org the caller does not belong to is "not found", whether or not it exists.
//! Membership changes run in a write transaction that serializes per organization (an
//! advisory lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), so two concurrent demotions
//! cannot both pass the "another owner remains" check and leave the org without an owner.

use crate::error::OrgError;
use crate::role::Role;
use chrono::{DateTime, Utc};
use openhands_sql_store::database::{Database, lock_key};
use openhands_sql_store::entity::{org_invitation, org_membership, organization, user};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use serde::Serialize;
use std::collections::HashMap;

/// Longest organization name accepted.
pub const MAX_ORG_NAME_LEN: usize = 255;
/// Longest e-mail address accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 320;

/// Who is acting: the authenticated user's id and, when the login knows it, e-mail.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub user_id: &'a str,
    pub email: Option<&'a str>,
}

/// One of the caller's organizations.
#[derive(Debug, Clone, Serialize)]
pub struct OrgSummary {
    pub id: String,
    pub name: String,
    /// The caller's role in it.
    pub role: Role,
    /// Whether it is the caller's current organization.
    pub is_current: bool,
    pub created_at: DateTime<Utc>,
}

/// A member of an organization.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub user_id: String,
    pub email: Option<String>,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

/// An invitation of an e-mail address.
#[derive(Debug, Clone, Serialize)]
pub struct Invitation {
    pub id: String,
    pub org_id: String,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
}

/// The caller's organization to act in, as `users.current_org_id` says (SaaS login sets
/// `UserScope::org_id` from it). `None` for an unknown user or one without a current org.
pub async fn current_org(db: &Database, user_id: &str) -> Result<Option<String>, OrgError> {
    Ok(user::Entity::find_by_id(user_id.to_owned())
        .one(db.connection())
        .await?
        .and_then(|u| u.current_org_id))
}

/// The caller's `users` row, created on first use. The id comes from the login; until the
/// OIDC login stores the real subject, the id stands in for it (OpenHands uses the
/// identity provider's subject as the user id). A known e-mail fills an empty one.
pub async fn ensure_user<C: ConnectionTrait>(
    conn: &C,
    caller: Caller<'_>,
) -> Result<user::Model, OrgError> {
    let email = caller.email.map(normalize_email);
    user::Entity::insert(user::ActiveModel {
        id: Set(caller.user_id.to_owned()),
        oidc_subject: Set(caller.user_id.to_owned()),
        email: Set(email.clone()),
        email_verified: Set(false),
        tos_accepted_at: Set(None),
        created_at: Set(Utc::now()),
        last_login_at: Set(None),
        current_org_id: Set(None),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(conn)
    .await?;
    let mut row = user::Entity::find_by_id(caller.user_id.to_owned())
        .one(conn)
        .await?
        .ok_or_else(|| {
            OrgError::Database(sea_orm::DbErr::Custom(
                "the users row vanished right after its insert".into(),
            ))
        })?;
    if row.email.is_none() && email.is_some() {
        user::Entity::update_many()
            .col_expr(user::Column::Email, Expr::value(email.clone()))
            .filter(user::Column::Id.eq(caller.user_id))
            .exec(conn)
            .await?;
        row.email = email;
    }
    Ok(row)
}

/// Creates an organization with the caller as its owner and makes it the caller's
/// current one, whatever the caller owns already (the first login's own org).
pub async fn create_org(
    db: &Database,
    caller: Caller<'_>,
    name: &str,
) -> Result<OrgSummary, OrgError> {
    create_org_within_limit(db, caller, name, 0).await
}

/// [`create_org`], refused with [`OrgError::OrgLimitReached`] when the caller owns
/// `max_owned` organizations already (`orgs.max_owned_per_user`; `0`: no limit): orgs are
/// free to create, so per-org quotas would otherwise multiply with them.
pub async fn create_org_within_limit(
    db: &Database,
    caller: Caller<'_>,
    name: &str,
    max_owned: u32,
) -> Result<OrgSummary, OrgError> {
    let name = check_org_name(name)?;
    let txn = db.begin_write().await?;
    // One creation per user at a time (PostgreSQL; SQLite's write lock already does), so
    // two at once cannot both pass the count.
    lock_key(&txn, &format!("orgs_owned_by:{}", caller.user_id)).await?;
    ensure_user(&txn, caller).await?;
    if max_owned > 0 {
        let owned = org_membership::Entity::find()
            .filter(org_membership::Column::UserId.eq(caller.user_id))
            .filter(org_membership::Column::Role.eq(Role::Owner.as_str()))
            .count(&txn)
            .await?;
        if owned >= u64::from(max_owned) {
            return Err(OrgError::OrgLimitReached { limit: max_owned });
        }
    }
    let now = Utc::now();
    let id = uuid::Uuid::new_v4().to_string();
    organization::Entity::insert(organization::ActiveModel {
        id: Set(id.clone()),
        name: Set(name.clone()),
        created_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;
    org_membership::Entity::insert(org_membership::ActiveModel {
        org_id: Set(id.clone()),
        user_id: Set(caller.user_id.to_owned()),
        role: Set(Role::Owner.as_str().to_owned()),
        created_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;
    set_current_org(&txn, caller.user_id, Some(&id)).await?;
    txn.commit().await?;
    Ok(OrgSummary {
        id,
        name,
        role: Role::Owner,
        is_current: true,
        created_at: now,
    })
}

/// The caller's organizations (oldest membership first) and the current one.
pub async fn list_orgs(
    db: &Database,
    caller: Caller<'_>,
) -> Result<(Vec<OrgSummary>, Option<String>), OrgError> {
    let conn = db.connection();
    let me = ensure_user(conn, caller).await?;
    let memberships = org_membership::Entity::find()
        .filter(org_membership::Column::UserId.eq(caller.user_id))
        .order_by_asc(org_membership::Column::CreatedAt)
        .all(conn)
        .await?;
    let ids: Vec<String> = memberships.iter().map(|m| m.org_id.clone()).collect();
    let orgs: HashMap<String, organization::Model> = organization::Entity::find()
        .filter(organization::Column::Id.is_in(ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect();
    let current = me.current_org_id;
    let mut out = Vec::with_capacity(memberships.len());
    for m in memberships {
        let Some(org) = orgs.get(&m.org_id) else {
            continue;
        };
        out.push(OrgSummary {
            is_current: current.as_deref() == Some(org.id.as_str()),
            id: org.id.clone(),
            name: org.name.clone(),
            role: parse_role(&m.role)?,
            created_at: org.created_at,
        });
    }
    Ok((out, current))
}

/// The members of an organization the caller belongs to.
pub async fn list_members(
    db: &Database,
    caller: Caller<'_>,
    org_id: &str,
) -> Result<Vec<Member>, OrgError> {
    let conn = db.connection();
    require_member(conn, org_id, caller.user_id).await?;
    let memberships = org_membership::Entity::find()
        .filter(org_membership::Column::OrgId.eq(org_id))
        .order_by_asc(org_membership::Column::CreatedAt)
        .all(conn)
        .await?;
    let ids: Vec<String> = memberships.iter().map(|m| m.user_id.clone()).collect();
    let emails: HashMap<String, Option<String>> = user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|u| (u.id, u.email))
        .collect();
    memberships
        .into_iter()
        .map(|m| {
            Ok(Member {
                email: emails.get(&m.user_id).cloned().flatten(),
                role: parse_role(&m.role)?,
                user_id: m.user_id,
                joined_at: m.created_at,
            })
        })
        .collect()
}

/// Invites `email` with `role`. Owners and admins only; only an owner may invite an owner.
/// Returns the invitation and whether a user with that e-mail already exists.
pub async fn invite(
    db: &Database,
    caller: Caller<'_>,
    org_id: &str,
    email: &str,
    role: Role,
) -> Result<(Invitation, bool), OrgError> {
    let email = check_email(email)?;
    let txn = db.begin_write().await?;
    lock_org(&txn, org_id).await?;
    let my_role = require_member(&txn, org_id, caller.user_id).await?;
    if !my_role.manages_members() {
        return Err(OrgError::Forbidden(
            "only owners and admins can invite members",
        ));
    }
    if !my_role.may_handle(role) {
        return Err(OrgError::Forbidden(
            "only an owner can grant the owner role",
        ));
    }
    let existing = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&txn)
        .await?;
    if let Some(existing) = &existing
        && role_of(&txn, org_id, &existing.id).await?.is_some()
    {
        return Err(OrgError::AlreadyMember);
    }
    let invitation = Invitation {
        id: uuid::Uuid::new_v4().to_string(),
        org_id: org_id.to_owned(),
        email,
        role,
        invited_by: Some(caller.user_id.to_owned()),
        created_at: Utc::now(),
        accepted_at: None,
    };
    org_invitation::Entity::insert(org_invitation::ActiveModel {
        id: Set(invitation.id.clone()),
        org_id: Set(invitation.org_id.clone()),
        email: Set(invitation.email.clone()),
        role: Set(role.as_str().to_owned()),
        invited_by: Set(invitation.invited_by.clone()),
        created_at: Set(invitation.created_at),
        accepted_at: Set(None),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok((invitation, existing.is_some()))
}

/// The open invitations addressed to the caller's e-mail, oldest first, with the org's
/// name (the caller is not a member yet, so this is how they learn of the org).
pub async fn my_invitations(
    db: &Database,
    caller: Caller<'_>,
) -> Result<Vec<(Invitation, String)>, OrgError> {
    let conn = db.connection();
    let me = ensure_user(conn, caller).await?;
    let Some(email) = me.email.as_deref().map(normalize_email) else {
        return Ok(Vec::new());
    };
    let rows = org_invitation::Entity::find()
        .filter(org_invitation::Column::Email.eq(email))
        .filter(org_invitation::Column::AcceptedAt.is_null())
        .order_by_asc(org_invitation::Column::CreatedAt)
        .all(conn)
        .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.org_id.clone()).collect();
    let names: HashMap<String, String> = organization::Entity::find()
        .filter(organization::Column::Id.is_in(ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    rows.into_iter()
        .map(|r| {
            let name = names.get(&r.org_id).cloned().unwrap_or_default();
            Ok((
                Invitation {
                    role: parse_role(&r.role)?,
                    id: r.id,
                    org_id: r.org_id,
                    email: r.email,
                    invited_by: r.invited_by,
                    created_at: r.created_at,
                    accepted_at: r.accepted_at,
                },
                name,
            ))
        })
        .collect()
}

/// Accepts an open invitation addressed to the caller's e-mail: the caller becomes a
/// member with the invited role (and the org becomes current if the caller had none).
/// Any other invitation is "not found", so ids cannot be probed.
pub async fn accept_invitation(
    db: &Database,
    caller: Caller<'_>,
    org_id: &str,
    invitation_id: &str,
) -> Result<Invitation, OrgError> {
    let txn = db.begin_write().await?;
    lock_org(&txn, org_id).await?;
    let me = ensure_user(&txn, caller).await?;
    let row = org_invitation::Entity::find_by_id(invitation_id.to_owned())
        .filter(org_invitation::Column::OrgId.eq(org_id))
        .filter(org_invitation::Column::AcceptedAt.is_null())
        .one(&txn)
        .await?
        .ok_or(OrgError::InvitationNotFound)?;
    let addressed_to_me = me
        .email
        .as_deref()
        .is_some_and(|mine| normalize_email(mine) == normalize_email(&row.email));
    if !addressed_to_me {
        return Err(OrgError::InvitationNotFound);
    }
    if role_of(&txn, org_id, caller.user_id).await?.is_some() {
        return Err(OrgError::AlreadyMember);
    }
    let role = parse_role(&row.role)?;
    let now = Utc::now();
    org_membership::Entity::insert(org_membership::ActiveModel {
        org_id: Set(org_id.to_owned()),
        user_id: Set(caller.user_id.to_owned()),
        role: Set(role.as_str().to_owned()),
        created_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;
    org_invitation::Entity::update_many()
        .col_expr(org_invitation::Column::AcceptedAt, Expr::value(now))
        .filter(org_invitation::Column::Id.eq(invitation_id))
        .exec(&txn)
        .await?;
    if me.current_org_id.is_none() {
        set_current_org(&txn, caller.user_id, Some(org_id)).await?;
    }
    txn.commit().await?;
    Ok(Invitation {
        id: row.id,
        org_id: row.org_id,
        email: row.email,
        role,
        invited_by: row.invited_by,
        created_at: row.created_at,
        accepted_at: Some(now),
    })
}

/// Removes `target` from the org; returns the role they had. Owners and admins only; only
/// an owner may remove an owner; the last owner stays. Removing oneself is leaving.
pub async fn remove_member(
    db: &Database,
    caller: Caller<'_>,
    org_id: &str,
    target: &str,
) -> Result<Role, OrgError> {
    if target == caller.user_id {
        return leave(db, caller, org_id).await;
    }
    let txn = db.begin_write().await?;
    lock_org(&txn, org_id).await?;
    let my_role = require_member(&txn, org_id, caller.user_id).await?;
    if !my_role.manages_members() {
        return Err(OrgError::Forbidden(
            "only owners and admins can remove members",
        ));
    }
    let target_role = role_of(&txn, org_id, target)
        .await?
        .ok_or_else(|| OrgError::MemberNotFound(target.to_owned()))?;
    if !my_role.may_handle(target_role) {
        return Err(OrgError::Forbidden("only an owner can remove an owner"));
    }
    if target_role == Role::Owner && owner_count(&txn, org_id).await? <= 1 {
        return Err(OrgError::LastOwner("be removed"));
    }
    delete_membership(&txn, org_id, target).await?;
    txn.commit().await?;
    Ok(target_role)
}

/// Changes `target`'s role; returns the previous one. Owners and admins only; only an
/// owner may grant the owner role or change an owner's role; the last owner stays owner.
pub async fn change_role(
    db: &Database,
    caller: Caller<'_>,
    org_id: &str,
    target: &str,
    new_role: Role,
) -> Result<Role, OrgError> {
    let txn = db.begin_write().await?;
    lock_org(&txn, org_id).await?;
    let my_role = require_member(&txn, org_id, caller.user_id).await?;
    if !my_role.manages_members() {
        return Err(OrgError::Forbidden(
            "only owners and admins can change roles",
        ));
    }
    let old_role = role_of(&txn, org_id, target)
        .await?
        .ok_or_else(|| OrgError::MemberNotFound(target.to_owned()))?;
    if !my_role.may_handle(old_role) {
        return Err(OrgError::Forbidden(
            "only an owner can change an owner's role",
        ));
    }
    if !my_role.may_handle(new_role) {
        return Err(OrgError::Forbidden(
            "only an owner can grant the owner role",
        ));
    }
    if old_role == Role::Owner && new_role != Role::Owner && owner_count(&txn, org_id).await? <= 1 {
        return Err(OrgError::LastOwner("be demoted"));
    }
    org_membership::Entity::update_many()
        .col_expr(org_membership::Column::Role, Expr::value(new_role.as_str()))
        .filter(org_membership::Column::OrgId.eq(org_id))
        .filter(org_membership::Column::UserId.eq(target))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(old_role)
}

/// The caller leaves the org; returns the role they had. The last owner cannot leave.
pub async fn leave(db: &Database, caller: Caller<'_>, org_id: &str) -> Result<Role, OrgError> {
    let txn = db.begin_write().await?;
    lock_org(&txn, org_id).await?;
    let my_role = require_member(&txn, org_id, caller.user_id).await?;
    if my_role == Role::Owner && owner_count(&txn, org_id).await? <= 1 {
        return Err(OrgError::LastOwner("leave"));
    }
    delete_membership(&txn, org_id, caller.user_id).await?;
    txn.commit().await?;
    Ok(my_role)
}

/// Makes `org_id` the caller's current organization; the caller must be a member.
pub async fn switch_org(db: &Database, caller: Caller<'_>, org_id: &str) -> Result<(), OrgError> {
    let txn = db.begin_write().await?;
    ensure_user(&txn, caller).await?;
    require_member(&txn, org_id, caller.user_id).await?;
    set_current_org(&txn, caller.user_id, Some(org_id)).await?;
    txn.commit().await?;
    Ok(())
}

/// Serializes membership changes of one org (PostgreSQL; SQLite's write lock already does).
async fn lock_org(txn: &sea_orm::DatabaseTransaction, org_id: &str) -> Result<(), OrgError> {
    Ok(lock_key(txn, &format!("org_memberships:{org_id}")).await?)
}

/// The role of `user_id` in `org_id`, if a member.
async fn role_of<C: ConnectionTrait>(
    conn: &C,
    org_id: &str,
    user_id: &str,
) -> Result<Option<Role>, OrgError> {
    org_membership::Entity::find_by_id((org_id.to_owned(), user_id.to_owned()))
        .one(conn)
        .await?
        .map(|m| parse_role(&m.role))
        .transpose()
}

/// The caller's role, or "org not found" for a non-member.
pub(crate) async fn require_member<C: ConnectionTrait>(
    conn: &C,
    org_id: &str,
    user_id: &str,
) -> Result<Role, OrgError> {
    role_of(conn, org_id, user_id)
        .await?
        .ok_or(OrgError::OrgNotFound)
}

async fn owner_count<C: ConnectionTrait>(conn: &C, org_id: &str) -> Result<u64, OrgError> {
    Ok(org_membership::Entity::find()
        .filter(org_membership::Column::OrgId.eq(org_id))
        .filter(org_membership::Column::Role.eq(Role::Owner.as_str()))
        .count(conn)
        .await?)
}

/// Deletes a membership and, if the org was the user's current one, clears it.
async fn delete_membership<C: ConnectionTrait>(
    conn: &C,
    org_id: &str,
    user_id: &str,
) -> Result<(), OrgError> {
    org_membership::Entity::delete_many()
        .filter(org_membership::Column::OrgId.eq(org_id))
        .filter(org_membership::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    user::Entity::update_many()
        .col_expr(
            user::Column::CurrentOrgId,
            Expr::value(Option::<String>::None),
        )
        .filter(user::Column::Id.eq(user_id))
        .filter(user::Column::CurrentOrgId.eq(org_id))
        .exec(conn)
        .await?;
    Ok(())
}

async fn set_current_org<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    org_id: Option<&str>,
) -> Result<(), OrgError> {
    user::Entity::update_many()
        .col_expr(
            user::Column::CurrentOrgId,
            Expr::value(org_id.map(str::to_owned)),
        )
        .filter(user::Column::Id.eq(user_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// A stored role; anything else means the row was written outside this code.
fn parse_role(stored: &str) -> Result<Role, OrgError> {
    stored.parse().map_err(|e: crate::role::UnknownRole| {
        OrgError::Database(sea_orm::DbErr::Custom(format!("stored {e}")))
    })
}

fn check_org_name(name: &str) -> Result<String, OrgError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_ORG_NAME_LEN {
        return Err(OrgError::Invalid(format!(
            "organization name must be 1 to {MAX_ORG_NAME_LEN} characters"
        )));
    }
    Ok(name.to_owned())
}

/// E-mail addresses are compared case-insensitively, so they are kept lowercased.
fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn check_email(email: &str) -> Result<String, OrgError> {
    let email = normalize_email(email);
    let well_formed = email.len() <= MAX_EMAIL_LEN
        && !email.chars().any(char::is_whitespace)
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if well_formed {
        Ok(email)
    } else {
        Err(OrgError::Invalid(
            "email must be an address like name@example.com".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_lowercased() {
        assert_eq!(
            check_email(" Ann@Example.COM ").ok().as_deref(),
            Some("ann@example.com")
        );
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@localhost",
            "a nn@example.com",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn org_names_are_trimmed_and_bounded() {
        assert_eq!(check_org_name("  Acme ").ok().as_deref(), Some("Acme"));
        assert!(check_org_name("   ").is_err());
        assert!(check_org_name(&"x".repeat(MAX_ORG_NAME_LEN + 1)).is_err());
    }
}
