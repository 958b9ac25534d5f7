//! `/api/organizations...`: the org and role API of SaaS mode.
//!
//! OpenHands has no org routes on `main` (its org PR adds tables only), so the paths are
//! ours. Errors are `{"detail": message, "code": code}` (the shape `CurrentUser` uses for
//! 403s): 400 for a bad name, e-mail or role, 403 when the caller's role does not allow the
//! change, 404 for an org the caller is not a member of (existing or not), 409 for the
//! last-owner rule and duplicate memberships. Every successful change is audited.

use crate::db;
use crate::error::OrgError;
use crate::orgs::{self, Caller};
use crate::role::Role;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use openhands_api::AppState;
use openhands_api::audit;
use openhands_api::body::JsonBody;
use openhands_api::contribution::{RouteContribution, saas_mode};
use openhands_api::error::ApiError;
use openhands_api::user::CurrentUser;
use openhands_core::extension::AuditEntry;
use openhands_sql_store::Database;
use serde::Deserialize;
use serde_json::{Value, json};

fn configure(cfg: &mut web::ServiceConfig) {
    const ORGS: &str = "/api/organizations";
    let resource = |tail: &str| web::resource(format!("{ORGS}{tail}"));
    cfg.service(
        resource("")
            .route(web::get().to(list_orgs))
            .route(web::post().to(create_org)),
    )
    .service(resource("/current").route(web::get().to(current)))
    .service(resource("/invitations").route(web::get().to(my_invitations)))
    .service(resource("/{org_id}/members").route(web::get().to(list_members)))
    .service(
        resource("/{org_id}/members/{user_id}")
            .route(web::patch().to(change_role))
            .route(web::delete().to(remove_member)),
    )
    .service(resource("/{org_id}/invitations").route(web::post().to(invite)))
    .service(
        resource("/{org_id}/invitations/{invitation_id}/accept")
            .route(web::post().to(accept_invitation)),
    )
    .service(resource("/{org_id}/leave").route(web::post().to(leave)))
    .service(resource("/{org_id}/switch").route(web::post().to(switch)));
}

inventory::submit! {
    RouteContribution {
        name: "saas.orgs",
        description: "/api/organizations: orgs, members, roles, invitations (SaaS mode)",
        enabled: saas_mode,
        configure,
    }
}

/// `POST /api/organizations` body.
#[derive(Debug, Deserialize)]
struct CreateOrg {
    name: String,
}

/// `POST /api/organizations/{id}/invitations` body.
#[derive(Debug, Deserialize)]
struct InviteBody {
    email: String,
    #[serde(default = "default_role")]
    role: String,
}

fn default_role() -> String {
    Role::Member.as_str().to_owned()
}

/// `PATCH /api/organizations/{id}/members/{user_id}` body.
#[derive(Debug, Deserialize)]
struct RoleBody {
    role: String,
}

/// The authenticated caller with a user id (these routes, and the API key routes, have no
/// meaning for the id-less local user of OSS mode).
pub(crate) struct Acting {
    pub(crate) user_id: String,
    email: Option<String>,
    pub(crate) db: Database,
}

impl Acting {
    pub(crate) async fn of(user: &CurrentUser, state: &AppState) -> Result<Self, ApiError> {
        let user_id = user.scope().user_id.clone().ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                json!({"detail": "Organizations need a signed-in user", "code": "user_required"}),
            )
        })?;
        let db = db::for_request(state).await.map_err(|e| {
            ApiError::internal(
                &e,
                json!({"detail": "Database unavailable", "code": "internal_error"}),
            )
        })?;
        Ok(Self {
            user_id,
            email: user.0.email.clone(),
            db,
        })
    }

    fn caller(&self) -> Caller<'_> {
        Caller {
            user_id: &self.user_id,
            email: self.email.as_deref(),
        }
    }

    pub(crate) fn audit(&self, action: &str, org_id: &str) -> AuditEntry {
        AuditEntry::new(action, Some(self.user_id.clone())).org(Some(org_id.to_owned()))
    }
}

fn org_error(err: OrgError) -> ApiError {
    let status = match &err {
        OrgError::OrgNotFound | OrgError::MemberNotFound(_) | OrgError::InvitationNotFound => {
            StatusCode::NOT_FOUND
        }
        OrgError::Forbidden(_) => StatusCode::FORBIDDEN,
        OrgError::LastOwner(_) | OrgError::AlreadyMember => StatusCode::CONFLICT,
        OrgError::Invalid(_) => StatusCode::BAD_REQUEST,
        OrgError::Database(_) => {
            return ApiError::internal(
                &err,
                json!({"detail": "Something went wrong", "code": err.code()}),
            );
        }
    };
    ApiError::new(
        status,
        json!({"detail": err.to_string(), "code": err.code()}),
    )
}

fn parse_role(role: &str) -> Result<Role, ApiError> {
    role.parse().map_err(|e: crate::role::UnknownRole| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            json!({"detail": e.to_string(), "code": "invalid_role"}),
        )
    })
}

/// Creates an org; the caller becomes its owner and it becomes current.
async fn create_org(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<CreateOrg>,
) -> Result<HttpResponse, ApiError> {
    let me = Acting::of(&user, &state).await?;
    let org = orgs::create_org(&me.db, me.caller(), &body.name)
        .await
        .map_err(org_error)?;
    let entry = me
        .audit("org.create", &org.id)
        .target(org.id.clone())
        .detail(json!({"name": org.name}));
    audit::record(&state, &req, entry).await;
    Ok(HttpResponse::Created().json(org))
}

/// The caller's orgs with their role, and the current one.
async fn list_orgs(
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let me = Acting::of(&user, &state).await?;
    let (organizations, current_org_id) = orgs::list_orgs(&me.db, me.caller())
        .await
        .map_err(org_error)?;
    Ok(HttpResponse::Ok()
        .json(json!({"organizations": organizations, "current_org_id": current_org_id})))
}

/// The caller's current org id (`null` when none).
async fn current(user: CurrentUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let me = Acting::of(&user, &state).await?;
    let current_org_id = orgs::current_org(&me.db, &me.user_id)
        .await
        .map_err(org_error)?;
    Ok(HttpResponse::Ok().json(json!({"current_org_id": current_org_id})))
}

/// Open invitations addressed to the caller's e-mail.
async fn my_invitations(
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let me = Acting::of(&user, &state).await?;
    let invitations: Vec<Value> = orgs::my_invitations(&me.db, me.caller())
        .await
        .map_err(org_error)?
        .into_iter()
        .map(|(invitation, org_name)| {
            let mut value = serde_json::to_value(&invitation).unwrap_or(Value::Null);
            if let Some(obj) = value.as_object_mut() {
                obj.insert("org_name".into(), Value::String(org_name));
            }
            value
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"invitations": invitations})))
}

/// The members of an org the caller belongs to.
async fn list_members(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let me = Acting::of(&user, &state).await?;
    let members = orgs::list_members(&me.db, me.caller(), &path)
        .await
        .map_err(org_error)?;
    Ok(HttpResponse::Ok().json(json!({"members": members})))
}

/// Invites an e-mail address with a role (owners and admins).
async fn invite(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<InviteBody>,
) -> Result<HttpResponse, ApiError> {
    let me = Acting::of(&user, &state).await?;
    let role = parse_role(&body.role)?;
    let org_id = path.into_inner();
    let (invitation, user_exists) = orgs::invite(&me.db, me.caller(), &org_id, &body.email, role)
        .await
        .map_err(org_error)?;
    let entry = me
        .audit("org.member.invite", &org_id)
        .target(invitation.email.clone())
        .detail(json!({"invitation_id": invitation.id, "role": role, "user_exists": user_exists}));
    audit::record(&state, &req, entry).await;
    let mut body = serde_json::to_value(&invitation).unwrap_or(Value::Null);
    if let Some(obj) = body.as_object_mut() {
        obj.insert("user_exists".into(), Value::Bool(user_exists));
    }
    Ok(HttpResponse::Created().json(body))
}

/// Accepts an invitation addressed to the caller's e-mail.
async fn accept_invitation(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let me = Acting::of(&user, &state).await?;
    let (org_id, invitation_id) = path.into_inner();
    let invitation = orgs::accept_invitation(&me.db, me.caller(), &org_id, &invitation_id)
        .await
        .map_err(org_error)?;
    let entry = me
        .audit("org.member.accept", &org_id)
        .target(me.user_id.clone())
        .detail(json!({"invitation_id": invitation.id, "role": invitation.role}));
    audit::record(&state, &req, entry).await;
    Ok(HttpResponse::Ok().json(invitation))
}

/// Changes a member's role (owners and admins; only owners grant or take `owner`).
async fn change_role(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    JsonBody(body): JsonBody<RoleBody>,
) -> Result<HttpResponse, ApiError> {
    let me = Acting::of(&user, &state).await?;
    let role = parse_role(&body.role)?;
    let (org_id, target) = path.into_inner();
    let old = orgs::change_role(&me.db, me.caller(), &org_id, &target, role)
        .await
        .map_err(org_error)?;
    let entry = me
        .audit("org.member.role", &org_id)
        .target(target.clone())
        .detail(json!({"from": old, "to": role}));
    audit::record(&state, &req, entry).await;
    Ok(HttpResponse::Ok().json(json!({"org_id": org_id, "user_id": target, "role": role})))
}

/// Removes a member (owners and admins; only owners remove owners).
async fn remove_member(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let me = Acting::of(&user, &state).await?;
    let (org_id, target) = path.into_inner();
    let old = orgs::remove_member(&me.db, me.caller(), &org_id, &target)
        .await
        .map_err(org_error)?;
    let action = if target == me.user_id {
        "org.leave"
    } else {
        "org.member.remove"
    };
    let entry = me
        .audit(action, &org_id)
        .target(target.clone())
        .detail(json!({"role": old}));
    audit::record(&state, &req, entry).await;
    Ok(HttpResponse::Ok().json(json!({"org_id": org_id, "user_id": target, "removed": true})))
}

/// The caller leaves an org (not as its last owner).
async fn leave(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let me = Acting::of(&user, &state).await?;
    let org_id = path.into_inner();
    let old = orgs::leave(&me.db, me.caller(), &org_id)
        .await
        .map_err(org_error)?;
    let entry = me
        .audit("org.leave", &org_id)
        .target(me.user_id.clone())
        .detail(json!({"role": old}));
    audit::record(&state, &req, entry).await;
    Ok(HttpResponse::Ok().json(json!({"org_id": org_id, "left": true})))
}

/// Makes an org the caller's current one (members only).
async fn switch(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let me = Acting::of(&user, &state).await?;
    let org_id = path.into_inner();
    orgs::switch_org(&me.db, me.caller(), &org_id)
        .await
        .map_err(org_error)?;
    let entry = me.audit("org.switch", &org_id).target(org_id.clone());
    audit::record(&state, &req, entry).await;
    Ok(HttpResponse::Ok().json(json!({"current_org_id": org_id})))
}
