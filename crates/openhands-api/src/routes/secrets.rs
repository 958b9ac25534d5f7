//! `/api/secrets` (custom secrets, values write-only) and the git-provider token routes.

use crate::audit;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::error::schema::{ErrorDetail, ErrorText, Message, ValidationErrors};
use crate::state::AppState;
use crate::user::CurrentUser;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use openhands_core::StoreError;
use openhands_core::extension::AuditEntry;
use openhands_core::secret::Secret;
use openhands_core::secrets::{CustomSecretChange, ProviderToken, ProviderType};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Longest secret name accepted.
const MAX_SECRET_NAME_LEN: usize = 255;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/secrets", web::get().to(list_secrets))
        .route("/api/secrets", web::post().to(create_secret))
        .route("/api/secrets/{secret_id}", web::put().to(update_secret))
        .route("/api/secrets/{secret_id}", web::delete().to(delete_secret))
        .route("/api/add-git-providers", web::post().to(add_git_providers))
        .route(
            "/api/unset-provider-tokens",
            web::post().to(unset_provider_tokens),
        );
}

/// `POST /api/secrets` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CustomSecretModel {
    /// An environment variable name: letters, digits and `_`, not starting with a digit.
    #[schema(pattern = "^[A-Za-z_][A-Za-z0-9_]*$", max_length = 255)]
    pub name: String,
    #[schema(value_type = String, write_only)]
    pub value: Secret,
    #[serde(default)]
    pub description: Option<String>,
}

/// `PUT /api/secrets/{id}` body: rename and/or re-describe.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CustomSecretWithoutValueModel {
    /// The new name (the same rules as on creation).
    #[schema(pattern = "^[A-Za-z_][A-Za-z0-9_]*$", max_length = 255)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// One listed secret: never its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretNameModel {
    pub name: String,
    pub description: Option<String>,
}

/// `GET /api/secrets` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct GetCustomSecrets {
    pub custom_secrets: Vec<SecretNameModel>,
}

/// `POST /api/add-git-providers` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PostProviderModel {
    #[serde(default)]
    pub provider_tokens: BTreeMap<ProviderType, ProviderToken>,
    /// Accepted and ignored, as in OpenHands.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub mcp_config: Option<Value>,
}

/// A 400 of the secret changes: `{"message"}` for a taken name, `{"detail"}` when the store
/// refused the change (only the OpenAPI document uses this type).
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
enum AlreadyExistsOrInvalid {
    Taken(Message),
    Refused(ErrorDetail),
}

/// Secret names become environment variable names in the sandbox, so they must be valid ones.
fn check_secret_name(name: &str) -> Result<(), ApiError> {
    let mut chars = name.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let valid_rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid_start && valid_rest && name.len() <= MAX_SECRET_NAME_LEN {
        Ok(())
    } else {
        Err(ApiError::validation(
            "name",
            format!(
                "name: `{}` is not a valid secret name; use letters, digits and `_`, not starting with a digit, at most {MAX_SECRET_NAME_LEN} characters",
                name.chars().take(40).collect::<String>()
            ),
            "value_error",
        ))
    }
}

fn change_error(err: StoreError, fallback: &str) -> ApiError {
    match err {
        StoreError::AlreadyExists(what) => {
            ApiError::message(StatusCode::BAD_REQUEST, format!("{what} already exists"))
        }
        StoreError::NotFound(what) => {
            ApiError::error(StatusCode::NOT_FOUND, format!("{what} not found"))
        }
        StoreError::Invalid(message) => ApiError::detail(StatusCode::BAD_REQUEST, message),
        other => ApiError::store(other, json!({"error": fallback})),
    }
}

/// Refuses a NUL in a secret's name, value or description (422 naming the field).
fn refuse_nul(
    name: &str,
    value: Option<&Secret>,
    description: Option<&str>,
) -> Result<(), ApiError> {
    ApiError::refuse_nul("body", "name", name)?;
    if let Some(value) = value {
        ApiError::refuse_nul("body", "value", value.expose())?;
    }
    ApiError::refuse_nul("body", "description", description.unwrap_or_default())
}

/// An audit entry for a secret change by `user` (never with the value).
fn secret_audit(user: &CurrentUser, action: &str) -> AuditEntry {
    let scope = user.scope();
    AuditEntry::new(action, scope.user_id.clone()).org(scope.org_id.clone())
}

/// Names and descriptions of the custom secrets; values are never returned.
#[utoipa::path(get, path = "/api/secrets", tag = "secrets", security(("user" = [])), responses(
    (status = 200, body = GetCustomSecrets),
    (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn list_secrets(
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let secrets = state
        .ext
        .secrets_store
        .load(user.scope())
        .await
        .map_err(|e| ApiError::store(e, json!({"error": "Failed to get secret names"})))?
        .unwrap_or_default();
    let custom_secrets = secrets
        .custom_secrets
        .into_iter()
        .map(|(name, s)| SecretNameModel {
            name,
            description: Some(s.description),
        })
        .collect();
    Ok(HttpResponse::Ok().json(GetCustomSecrets { custom_secrets }))
}

/// Adds a custom secret.
#[utoipa::path(post, path = "/api/secrets", tag = "secrets", security(("user" = [])), request_body = CustomSecretModel, responses(
    (status = 201, body = Message, example = json!({"message": "Secret created successfully"})),
    (status = 400, description = "A secret of that name exists (`message`), or the store refused it (`detail`)",
        body = inline(AlreadyExistsOrInvalid), example = json!({"message": "Secret NAME already exists"})),
    (status = 422, description = "Invalid name or body", body = ValidationErrors),
    (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn create_secret(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<CustomSecretModel>,
) -> Result<HttpResponse, ApiError> {
    refuse_nul(&body.name, Some(&body.value), body.description.as_deref())?;
    check_secret_name(&body.name)?;
    let name = body.name.clone();
    state
        .ext
        .secrets_store
        .change_custom_secret(
            user.scope(),
            CustomSecretChange::Create {
                name: body.name,
                value: body.value,
                description: body.description.unwrap_or_default(),
            },
        )
        .await
        .map_err(|e| change_error(e, "Something went wrong creating secret"))?;
    let entry = secret_audit(&user, "secret.create")
        .target(name.clone())
        .detail(json!({ "name": name }));
    audit::record(&state, &req, entry).await;
    Ok(HttpResponse::Created().json(json!({"message": "Secret created successfully"})))
}

/// Renames and/or re-describes a secret; its value is unchanged.
#[utoipa::path(put, path = "/api/secrets/{secret_id}", tag = "secrets",
    params(("secret_id" = String, Path, description = "The secret's name")),
    security(("user" = [])), request_body = CustomSecretWithoutValueModel, responses(
    (status = 200, body = Message, example = json!({"message": "Secret updated successfully"})),
    (status = 404, body = ErrorText, example = json!({"error": "Secret with ID NAME not found"})),
    (status = 400, description = "The new name is taken (`message`), or the store refused it (`detail`)", body = inline(AlreadyExistsOrInvalid)),
    (status = 422, description = "Invalid name or body", body = ValidationErrors),
    (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn update_secret(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<CustomSecretWithoutValueModel>,
) -> Result<HttpResponse, ApiError> {
    refuse_nul(&body.name, None, body.description.as_deref())?;
    check_secret_name(&body.name)?;
    let name = path.into_inner();
    let new_name = body.name.clone();
    let description_changed = body.description.is_some();
    state
        .ext
        .secrets_store
        .change_custom_secret(
            user.scope(),
            CustomSecretChange::Update {
                name: name.clone(),
                new_name: body.name,
                description: body.description,
            },
        )
        .await
        .map_err(|e| change_error(e, "Something went wrong updating secret"))?;
    let entry = secret_audit(&user, "secret.update")
        .target(name.clone())
        .detail(json!({
            "name": name,
            "new_name": new_name,
            "description_changed": description_changed,
        }));
    audit::record(&state, &req, entry).await;
    Ok(HttpResponse::Ok().json(json!({"message": "Secret updated successfully"})))
}

/// Deletes a secret.
#[utoipa::path(delete, path = "/api/secrets/{secret_id}", tag = "secrets",
    params(("secret_id" = String, Path, description = "The secret's name")),
    security(("user" = [])), responses(
    (status = 200, body = Message, example = json!({"message": "Secret deleted successfully"})),
    (status = 404, body = ErrorText, example = json!({"error": "Secret with ID NAME not found"})),
    (status = 400, description = "The store refused the change", body = ErrorDetail),
    (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn delete_secret(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    state
        .ext
        .secrets_store
        .change_custom_secret(
            user.scope(),
            CustomSecretChange::Delete { name: name.clone() },
        )
        .await
        .map_err(|e| change_error(e, "Something went wrong deleting secret"))?;
    let entry = secret_audit(&user, "secret.delete")
        .target(name.clone())
        .detail(json!({ "name": name }));
    audit::record(&state, &req, entry).await;
    Ok(HttpResponse::Ok().json(json!({"message": "Secret deleted successfully"})))
}

/// Stores git-provider tokens. The map replaces the stored one; an entry without a token
/// keeps the stored token and takes the new host.
#[utoipa::path(post, path = "/api/add-git-providers", tag = "secrets", security(("user" = [])), request_body = PostProviderModel, responses(
    (status = 200, body = Message, example = json!({"message": "Git providers stored"})),
    (status = 422, description = "Invalid body, or a NUL character in a string", body = ValidationErrors),
    (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn add_git_providers(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<PostProviderModel>,
) -> Result<HttpResponse, ApiError> {
    for (provider, token) in &body.provider_tokens {
        let field = |name: &str| format!("provider_tokens.{}.{name}", provider.as_str());
        let secret = token.token.as_ref().map(Secret::expose);
        for (name, value) in [
            ("token", secret),
            ("host", token.host.as_deref()),
            ("user_id", token.user_id.as_deref()),
        ] {
            ApiError::refuse_nul("body", &field(name), value.unwrap_or_default())?;
        }
    }
    let providers: Vec<Value> = body
        .provider_tokens
        .keys()
        .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
        .collect();
    state
        .ext
        .secrets_store
        .replace_provider_tokens(user.scope(), body.provider_tokens)
        .await
        .map_err(|e| {
            ApiError::store(
                e,
                json!({"error": "Something went wrong storing git providers"}),
            )
        })?;
    let entry = secret_audit(&user, "secret.provider_tokens.replace")
        .detail(json!({ "providers": providers }));
    audit::record(&state, &req, entry).await;
    Ok(HttpResponse::Ok().json(json!({"message": "Git providers stored"})))
}

/// Removes every git-provider token; custom secrets stay.
#[utoipa::path(post, path = "/api/unset-provider-tokens", tag = "secrets", security(("user" = [])), responses(
    (status = 200, body = Message, example = json!({"message": "Unset Git provider tokens"})),
    (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn unset_provider_tokens(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .ext
        .secrets_store
        .replace_provider_tokens(user.scope(), BTreeMap::new())
        .await
        .map_err(|e| {
            ApiError::store(e, json!({"error": "Something went wrong unsetting tokens"}))
        })?;
    audit::record(
        &state,
        &req,
        secret_audit(&user, "secret.provider_tokens.unset"),
    )
    .await;
    Ok(HttpResponse::Ok().json(json!({"message": "Unset Git provider tokens"})))
}
