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
use openhands_api::contribution::{OpenApiContribution, RouteContribution, saas_mode};
use openhands_api::error::ApiError;
use openhands_api::error::schema::ErrorDetail;
use openhands_api::user::CurrentUser;
use openhands_core::extension::AuditEntry;
use openhands_sql_store::Database;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{OpenApi, ToSchema};

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

inventory::submit! {
    OpenApiContribution {
        name: "saas.orgs",
        enabled: saas_mode,
        document: <OrgsDoc as OpenApi>::openapi,
    }
}

/// The OpenAPI description of these routes, merged into `/openapi.json` in SaaS mode.
#[derive(OpenApi)]
#[openapi(
    paths(
        create_org, list_orgs, current, my_invitations, list_members, change_role,
        remove_member, invite, accept_invitation, leave, switch,
    ),
    components(schemas(OrgSummary, Member, Invitation, RoleName)),
    tags((name = "organizations", description = "Organizations, members, roles and invitations (SaaS mode); errors are `{\"detail\", \"code\"}`")),
)]
struct OrgsDoc;

/// A role: `owner`, `admin` or `member` (only the OpenAPI document uses the types down to
/// `OrgsDoc`; they mirror the answers built in `orgs`).
#[derive(ToSchema)]
#[schema(as = Role)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum RoleName {
    Owner,
    Admin,
    Member,
}

/// One of the caller's organizations.
#[derive(ToSchema)]
#[allow(dead_code)]
struct OrgSummary {
    id: String,
    name: String,
    /// The caller's role in it.
    role: RoleName,
    /// Whether it is the caller's current organization.
    is_current: bool,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// A member of an organization.
#[derive(ToSchema)]
#[allow(dead_code)]
struct Member {
    user_id: String,
    #[schema(required)]
    email: Option<String>,
    role: RoleName,
    joined_at: chrono::DateTime<chrono::Utc>,
}

/// An invitation of an e-mail address.
#[derive(ToSchema)]
#[allow(dead_code)]
struct Invitation {
    id: String,
    org_id: String,
    email: String,
    role: RoleName,
    #[schema(required)]
    invited_by: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    #[schema(required)]
    accepted_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `GET /api/organizations`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct OrgList {
    organizations: Vec<OrgSummary>,
    #[schema(required)]
    current_org_id: Option<String>,
}

/// The caller's current org.
#[derive(ToSchema)]
#[allow(dead_code)]
struct CurrentOrg {
    #[schema(required)]
    current_org_id: Option<String>,
}

/// An open invitation addressed to the caller, with the org's name.
#[derive(ToSchema)]
#[allow(dead_code)]
struct MyInvitation {
    #[serde(flatten)]
    invitation: Invitation,
    org_name: String,
}

/// `GET /api/organizations/invitations`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct MyInvitations {
    invitations: Vec<MyInvitation>,
}

/// `GET /api/organizations/{org_id}/members`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct Members {
    members: Vec<Member>,
}

/// A new invitation, and whether its address belongs to a user already.
#[derive(ToSchema)]
#[allow(dead_code)]
struct NewInvitation {
    #[serde(flatten)]
    invitation: Invitation,
    user_exists: bool,
}

/// A member's new role.
#[derive(ToSchema)]
#[allow(dead_code)]
struct RoleChanged {
    org_id: String,
    user_id: String,
    role: RoleName,
}

/// A member removed.
#[derive(ToSchema)]
#[allow(dead_code)]
struct MemberRemoved {
    org_id: String,
    user_id: String,
    removed: bool,
}

/// The caller left.
#[derive(ToSchema)]
#[allow(dead_code)]
struct OrgLeft {
    org_id: String,
    left: bool,
}

/// `POST /api/organizations` body.
#[derive(Debug, Deserialize, ToSchema)]
struct CreateOrg {
    name: String,
}

/// `POST /api/organizations/{id}/invitations` body.
#[derive(Debug, Deserialize, ToSchema)]
struct InviteBody {
    email: String,
    /// `owner`, `admin` or `member` (the default).
    #[serde(default = "default_role")]
    #[schema(nullable = false)]
    role: String,
}

fn default_role() -> String {
    Role::Member.as_str().to_owned()
}

/// `PATCH /api/organizations/{id}/members/{user_id}` body.
#[derive(Debug, Deserialize, ToSchema)]
struct RoleBody {
    /// `owner`, `admin` or `member`.
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
            ApiError::store(
                openhands_core::StoreError::Unavailable(e.to_string()),
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

/// The one mapping of org errors to HTTP is in `crate::error`.
fn org_error(err: OrgError) -> ApiError {
    err.into()
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
#[utoipa::path(post, path = "/api/organizations", tag = "organizations", security(("user" = [])),
    request_body = CreateOrg, responses(
    (status = 201, description = "Created; the caller is its owner and it is now current", body = OrgSummary),
    (status = 400, description = "Invalid name (`invalid_request`)", body = ErrorDetail),
    (status = 403, description = "The caller owns `orgs.max_owned_per_user` orgs already (`org_limit_reached`), or no signed-in user (`user_required`)", body = ErrorDetail)))]
async fn create_org(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<CreateOrg>,
) -> Result<HttpResponse, ApiError> {
    let me = Acting::of(&user, &state).await?;
    let max_owned = state.config.orgs.max_owned_per_user;
    let org = orgs::create_org_within_limit(&me.db, me.caller(), &body.name, max_owned)
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
#[utoipa::path(get, path = "/api/organizations", tag = "organizations", security(("user" = [])), responses(
    (status = 200, body = OrgList),
    (status = 403, description = "No signed-in user (`user_required`)", body = ErrorDetail)))]
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
#[utoipa::path(get, path = "/api/organizations/current", tag = "organizations", security(("user" = [])), responses(
    (status = 200, body = CurrentOrg),
    (status = 403, description = "No signed-in user (`user_required`)", body = ErrorDetail)))]
async fn current(user: CurrentUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let me = Acting::of(&user, &state).await?;
    let current_org_id = orgs::current_org(&me.db, &me.user_id)
        .await
        .map_err(org_error)?;
    Ok(HttpResponse::Ok().json(json!({"current_org_id": current_org_id})))
}

/// Open invitations addressed to the caller's e-mail.
#[utoipa::path(get, path = "/api/organizations/invitations", tag = "organizations", security(("user" = [])), responses(
    (status = 200, body = MyInvitations),
    (status = 403, description = "No signed-in user (`user_required`)", body = ErrorDetail)))]
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
#[utoipa::path(get, path = "/api/organizations/{org_id}/members", tag = "organizations",
    params(("org_id" = String, Path, description = "The organization's id")), security(("user" = [])), responses(
    (status = 200, body = Members),
    (status = 403, description = "No signed-in user (`user_required`)", body = ErrorDetail),
    (status = 404, description = "Not a member of such an org (`org_not_found`)", body = ErrorDetail)))]
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
#[utoipa::path(post, path = "/api/organizations/{org_id}/invitations", tag = "organizations",
    params(("org_id" = String, Path, description = "The organization's id")), security(("user" = [])), request_body = InviteBody, responses(
    (status = 201, body = NewInvitation),
    (status = 400, description = "Invalid e-mail (`invalid_request`) or role (`invalid_role`)", body = ErrorDetail),
    (status = 403, description = "The caller's role may not invite with this role (`insufficient_role`)", body = ErrorDetail),
    (status = 404, description = "Not a member of such an org (`org_not_found`)", body = ErrorDetail),
    (status = 409, description = "Already a member (`already_member`)", body = ErrorDetail)))]
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
#[utoipa::path(post, path = "/api/organizations/{org_id}/invitations/{invitation_id}/accept", tag = "organizations",
    params(("org_id" = String, Path, description = "The organization's id"), ("invitation_id" = String, Path)), security(("user" = [])), responses(
    (status = 200, body = Invitation),
    (status = 403, description = "Not addressed to the caller (`insufficient_role`) or no signed-in user", body = ErrorDetail),
    (status = 404, description = "No such open invitation (`invitation_not_found`, `org_not_found`)", body = ErrorDetail),
    (status = 409, description = "Already a member (`already_member`)", body = ErrorDetail)))]
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
#[utoipa::path(patch, path = "/api/organizations/{org_id}/members/{user_id}", tag = "organizations",
    params(("org_id" = String, Path, description = "The organization's id"), ("user_id" = String, Path, description = "The member's user id")), security(("user" = [])),
    request_body = RoleBody, responses(
    (status = 200, body = RoleChanged),
    (status = 400, description = "Unknown role (`invalid_role`)", body = ErrorDetail),
    (status = 403, description = "The caller's role does not allow it (`insufficient_role`)", body = ErrorDetail),
    (status = 404, description = "No such org or member (`org_not_found`, `member_not_found`)", body = ErrorDetail),
    (status = 409, description = "It would leave the org without an owner (`last_owner`)", body = ErrorDetail)))]
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
#[utoipa::path(delete, path = "/api/organizations/{org_id}/members/{user_id}", tag = "organizations",
    params(("org_id" = String, Path, description = "The organization's id"), ("user_id" = String, Path, description = "The member's user id")), security(("user" = [])), responses(
    (status = 200, body = MemberRemoved),
    (status = 403, description = "The caller's role does not allow it (`insufficient_role`)", body = ErrorDetail),
    (status = 404, description = "No such org or member (`org_not_found`, `member_not_found`)", body = ErrorDetail),
    (status = 409, description = "It would leave the org without an owner (`last_owner`)", body = ErrorDetail)))]
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
#[utoipa::path(post, path = "/api/organizations/{org_id}/leave", tag = "organizations",
    params(("org_id" = String, Path, description = "The organization's id")), security(("user" = [])), responses(
    (status = 200, body = OrgLeft),
    (status = 403, description = "No signed-in user (`user_required`)", body = ErrorDetail),
    (status = 404, description = "Not a member of such an org (`org_not_found`)", body = ErrorDetail),
    (status = 409, description = "The caller is its last owner (`last_owner`)", body = ErrorDetail)))]
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
#[utoipa::path(post, path = "/api/organizations/{org_id}/switch", tag = "organizations",
    params(("org_id" = String, Path, description = "The organization's id")), security(("user" = [])), responses(
    (status = 200, body = CurrentOrg),
    (status = 403, description = "No signed-in user (`user_required`)", body = ErrorDetail),
    (status = 404, description = "Not a member of such an org (`org_not_found`)", body = ErrorDetail)))]
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
