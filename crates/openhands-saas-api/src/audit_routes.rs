//! `GET /api/organizations/{org_id}/audit`: the org's audit log, for its owners and admins.
//!
//! `saas.sql_audit` writes who changed what in an org (memberships, roles, secrets...) to
//! `audit_log`; without a way to read it, the people accountable for an org could not see
//! those changes. Only owners and admins may (they manage the members the entries are
//! about); a member gets 403 `insufficient_role`, anyone else 404 `org_not_found`, as on
//! the other org routes. Entries come newest first, in pages like the conversation list:
//! `limit` (1 to 100, default 20) and an opaque `page_id` cursor from `next_page_id`, a
//! keyset on `(at desc, id desc)` served by the `(org_id, at)` index, which stays valid
//! while entries are added. Filters: `action` (exact) and `since` (inclusive) / `until`
//! (exclusive), RFC 3339. Bad values are 400 `invalid_request`; a NUL character or a
//! malformed query string is 422, as on the conversation routes.

use crate::error::OrgError;
use crate::orgs::require_member;
use crate::routes::Acting;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use openhands_api::AppState;
use openhands_api::contribution::{OpenApiContribution, RouteContribution, saas_mode};
use openhands_api::error::ApiError;
use openhands_api::error::schema::{ErrorDetail, ValidationErrors};
use openhands_api::user::CurrentUser;
use openhands_sql_store::entity::audit_log::{Column, Entity, Model};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Entries per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 20;
/// Most entries per page.
pub const MAX_LIMIT: usize = 100;

fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/organizations/{org_id}/audit").route(web::get().to(read_audit)),
    );
}

inventory::submit! {
    RouteContribution {
        name: "saas.audit",
        description: "GET /api/organizations/{org_id}/audit: the org's audit log for owners and admins (SaaS mode)",
        enabled: saas_mode,
        configure,
    }
}

inventory::submit! {
    OpenApiContribution {
        name: "saas.audit",
        enabled: saas_mode,
        document: <AuditDoc as OpenApi>::openapi,
    }
}

/// The OpenAPI description of the audit route, merged into `/openapi.json` in SaaS mode.
#[derive(OpenApi)]
#[openapi(paths(read_audit), components(schemas(AuditPage, AuditItem)))]
struct AuditDoc;

/// `GET /api/organizations/{org_id}/audit` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Opaque cursor from `next_page_id`.
    pub page_id: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Only entries with exactly this action, e.g. `org.member.role`.
    pub action: Option<String>,
    /// Only entries at or after this instant (RFC 3339, e.g. `2026-11-23T12:00:00Z`).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Only entries before this instant (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditItem {
    pub id: String,
    pub at: DateTime<Utc>,
    /// The user who acted (`null` for the system).
    #[schema(required)]
    pub actor_user_id: Option<String>,
    /// What was done, e.g. `org.member.invite`.
    pub action: String,
    /// What it was done to (a user id, an e-mail, a secret's name...).
    #[schema(required)]
    pub target: Option<String>,
    /// What changed (names and roles, never a secret value).
    #[schema(value_type = Object)]
    pub detail: Value,
    /// The client's address, as `trusted_proxies` lets the server know it.
    #[schema(required)]
    pub ip: Option<String>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub results: Vec<AuditItem>,
    /// The cursor of the next page; `null` on the last one.
    #[schema(required)]
    pub next_page_id: Option<String>,
}

/// The checked query.
struct Search {
    limit: usize,
    after: Option<(DateTime<Utc>, String)>,
    action: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    OrgError::Invalid(message.into()).into()
}

fn instant(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    // A `+` that was not percent-encoded arrives as a space.
    DateTime::parse_from_rfc3339(&value.trim().replace(' ', "+"))
        .map(|at| Some(at.with_timezone(&Utc)))
        .map_err(|_| {
            invalid(format!(
                "{name} must be an RFC 3339 instant such as 2026-11-23T12:00:00Z"
            ))
        })
}

fn encode_cursor(at: DateTime<Utc>, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.to_rfc3339()))
}

fn decode_cursor(cursor: &str) -> Option<(DateTime<Utc>, String)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (at, id) = text.split_once('|')?;
    let at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
    Some((at, id.to_owned()))
}

impl Search {
    fn from_query(query: AuditQuery) -> Result<Self, ApiError> {
        for (name, value) in [
            ("page_id", &query.page_id),
            ("action", &query.action),
            ("since", &query.since),
            ("until", &query.until),
        ] {
            ApiError::refuse_nul("query", name, value.as_deref().unwrap_or_default())?;
        }
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT as i64);
        let limit = usize::try_from(limit)
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| invalid(format!("limit must be 1 to {MAX_LIMIT}")))?;
        let after = match query.page_id.as_deref() {
            Some(cursor) => Some(
                decode_cursor(cursor).ok_or_else(|| invalid("page_id is not a valid cursor"))?,
            ),
            None => None,
        };
        Ok(Self {
            limit,
            after,
            action: query.action,
            since: instant("since", query.since.as_deref())?,
            until: instant("until", query.until.as_deref())?,
        })
    }
}

fn item(row: Model) -> AuditItem {
    let detail = match serde_json::from_str::<Value>(&row.detail) {
        Ok(object @ Value::Object(_)) => object,
        Ok(other) => json!({ "value": other }),
        Err(_) => json!({ "text": row.detail }),
    };
    AuditItem {
        id: row.id,
        at: row.at,
        actor_user_id: row.actor_user_id,
        action: row.action,
        target: row.target,
        detail,
        ip: row.ip,
    }
}

/// One page of `org_id`'s entries matching `search`, newest first.
async fn page(
    db: &openhands_sql_store::Database,
    org_id: &str,
    search: Search,
) -> Result<AuditPage, OrgError> {
    let mut select = Entity::find().filter(Column::OrgId.eq(org_id));
    if let Some(action) = search.action {
        select = select.filter(Column::Action.eq(action));
    }
    if let Some(since) = search.since {
        select = select.filter(Column::At.gte(since));
    }
    if let Some(until) = search.until {
        select = select.filter(Column::At.lt(until));
    }
    if let Some((at, id)) = search.after {
        select = select.filter(
            Condition::any().add(Column::At.lt(at)).add(
                Condition::all()
                    .add(Column::At.eq(at))
                    .add(Column::Id.lt(id)),
            ),
        );
    }
    let rows = select
        .order_by_desc(Column::At)
        .order_by_desc(Column::Id)
        .limit(u64::try_from(search.limit).unwrap_or(MAX_LIMIT as u64) + 1)
        .all(db.connection())
        .await?;
    let more = rows.len() > search.limit;
    let results: Vec<AuditItem> = rows.into_iter().take(search.limit).map(item).collect();
    let next_page_id = more
        .then(|| results.last().map(|last| encode_cursor(last.at, &last.id)))
        .flatten();
    Ok(AuditPage {
        results,
        next_page_id,
    })
}

/// The org's audit log, newest first (owners and admins).
#[utoipa::path(get, path = "/api/organizations/{org_id}/audit", tag = "organizations",
    params(("org_id" = String, Path, description = "The organization's id"), AuditQuery),
    security(("user" = [])), responses(
    (status = 200, body = AuditPage),
    (status = 400, description = "`limit` outside 1 to 100, a `page_id` that is not a cursor, or `since`/`until` not RFC 3339 (`invalid_request`)", body = ErrorDetail),
    (status = 403, description = "A member who is neither owner nor admin (`insufficient_role`), or no signed-in user (`user_required`)", body = ErrorDetail),
    (status = 404, description = "Not a member of such an org (`org_not_found`)", body = ErrorDetail),
    (status = 422, description = "A query parameter holds a NUL character", body = ValidationErrors),
    (status = 500, description = "The database failed (`internal_error`; the cause is logged)", body = ErrorDetail)))]
async fn read_audit(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let search = Search::from_query(query.into_inner())?;
    let me = Acting::of(&user, &state).await?;
    let org_id = path.into_inner();
    let role = require_member(me.db.connection(), &org_id, &me.user_id).await?;
    if !role.manages_members() {
        return Err(OrgError::Forbidden("only owners and admins can read the audit log").into());
    }
    let page = page(&me.db, &org_id, search).await?;
    Ok(HttpResponse::build(StatusCode::OK).json(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(limit: Option<i64>, page_id: Option<&str>, since: Option<&str>) -> AuditQuery {
        AuditQuery {
            page_id: page_id.map(str::to_owned),
            limit,
            action: None,
            since: since.map(str::to_owned),
            until: None,
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let at = Utc::now();
        let cursor = encode_cursor(at, "id-1");
        assert_eq!(decode_cursor(&cursor), Some((at, "id-1".to_owned())));
        assert_eq!(decode_cursor("not a cursor"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("no-bar")), None);
    }

    #[test]
    fn limits_outside_one_to_a_hundred_are_400() {
        for bad in [0, -1, 101] {
            let err = Search::from_query(query(Some(bad), None, None)).err();
            assert_eq!(
                err.map(|e| e.status),
                Some(StatusCode::BAD_REQUEST),
                "{bad}"
            );
        }
        for good in [1, 100] {
            assert!(Search::from_query(query(Some(good), None, None)).is_ok());
        }
        let default = Search::from_query(query(None, None, None)).map(|s| s.limit);
        assert_eq!(default.ok(), Some(DEFAULT_LIMIT));
    }

    #[test]
    fn instants_are_rfc_3339_even_with_an_unencoded_plus() {
        let search = Search::from_query(query(None, None, Some("2026-11-23T14:00:00 02:00")));
        let since = search.ok().and_then(|s| s.since).map(|at| at.to_rfc3339());
        assert_eq!(since.as_deref(), Some("2026-11-23T12:00:00+00:00"));
        let err = Search::from_query(query(None, None, Some("yesterday"))).err();
        assert_eq!(err.map(|e| e.status), Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn a_nul_in_the_query_is_422() {
        let err = Search::from_query(query(None, Some("a\0b"), None)).err();
        assert_eq!(
            err.map(|e| e.status),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
    }

    #[test]
    fn stored_details_are_always_objects() {
        let row = |detail: &str| Model {
            id: "i".into(),
            at: Utc::now(),
            actor_user_id: None,
            org_id: None,
            action: "a".into(),
            target: None,
            detail: detail.into(),
            ip: None,
        };
        assert_eq!(
            item(row(r#"{"role":"admin"}"#)).detail,
            json!({"role": "admin"})
        );
        assert_eq!(item(row("[1]")).detail, json!({"value": [1]}));
        assert_eq!(item(row("oops")).detail, json!({"text": "oops"}));
    }
}
