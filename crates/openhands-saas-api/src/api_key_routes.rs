//! `/api/keys`: create, list and delete the caller's API keys (SaaS mode).
//!
//! OpenHands' paths and shapes: `POST /api/keys` takes `{name?, expires_at?}` and answers
//! the key's description with the plaintext `key`, the only time it is shown;
//! `GET /api/keys` lists descriptions (we add the display `prefix`); `DELETE
//! /api/keys/{key_id}` answers `{"message": "API key deleted successfully"}`. A bad name
//! or a past expiry is a 422 in FastAPI's validation shape, as OpenHands' pydantic model
//! gives; refusals are `{"detail", "code"}` as on the org routes. Keys belong to the
//! caller's current org, so a caller without one gets 403 `org_required`. Creating and
//! deleting are audited, with the key's id, name and display prefix, never the key.

use crate::api_keys::{self, ApiKeyError, ApiKeyInfo, KeyScope};
use crate::routes::Acting;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use openhands_api::AppState;
use openhands_api::audit;
use openhands_api::body::JsonBody;
use openhands_api::contribution::{OpenApiContribution, RouteContribution, saas_mode};
use openhands_api::error::ApiError;
use openhands_api::error::schema::{ErrorDetail, Message};
use openhands_api::user::CurrentUser;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::{OpenApi, ToSchema};

fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/keys")
            .route(web::get().to(list_keys))
            .route(web::post().to(create_key)),
    )
    .service(web::resource("/api/keys/{key_id}").route(web::delete().to(delete_key)));
}

inventory::submit! {
    RouteContribution {
        name: "saas.api_keys",
        description: "/api/keys: create, list and delete API keys (SaaS mode)",
        enabled: saas_mode,
        configure,
    }
}

inventory::submit! {
    OpenApiContribution {
        name: "saas.api_keys",
        enabled: saas_mode,
        document: <ApiKeysDoc as OpenApi>::openapi,
    }
}

/// The OpenAPI description of these routes, merged into `/openapi.json` in SaaS mode.
#[derive(OpenApi)]
#[openapi(
    paths(create_key, list_keys, delete_key),
    components(schemas(ApiKey, CreatedKey, CreateKey)),
    tags((name = "api-keys", description = "The caller's API keys in their current org (SaaS mode); send one as `Authorization: Bearer <key>`")),
)]
struct ApiKeysDoc;

/// A key as its owner may see it: never the key (only the OpenAPI document uses this type;
/// it mirrors [`ApiKeyInfo`]).
#[derive(ToSchema)]
#[allow(dead_code)]
struct ApiKey {
    id: String,
    name: String,
    /// The key's first characters (`ohk_` and 8 more), for telling keys apart.
    prefix: String,
    created_at: DateTime<Utc>,
    #[schema(required)]
    last_used_at: Option<DateTime<Utc>>,
    #[schema(required)]
    expires_at: Option<DateTime<Utc>>,
}

/// A key just made: its description and, this once, the key.
#[derive(ToSchema)]
#[allow(dead_code)]
struct CreatedKey {
    #[serde(flatten)]
    info: ApiKey,
    /// `ohk_` and 40 characters; shown only in this answer.
    key: String,
}

/// `POST /api/keys` body.
#[derive(Debug, Deserialize, ToSchema)]
struct CreateKey {
    /// At most 255 characters.
    #[serde(default)]
    name: Option<String>,
    /// An ISO 8601 timestamp in the future, e.g. `2030-01-31T12:00:00Z`.
    #[serde(default, deserialize_with = "optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<DateTime<Utc>>,
}

/// `POST /api/keys` answer: the description and, this once, the key.
#[derive(Serialize)]
struct Created<'a> {
    #[serde(flatten)]
    info: &'a ApiKeyInfo,
    key: &'a str,
}

/// The caller, who must have a user id and a current org.
struct KeyCaller {
    me: Acting,
    org_id: String,
}

impl KeyCaller {
    async fn of(user: &CurrentUser, state: &AppState) -> Result<Self, ApiError> {
        let me = Acting::of(user, state).await?;
        let org_id = user.scope().org_id.clone().ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                json!({
                    "detail": "API keys belong to an organization: create one or switch to one first",
                    "code": "org_required",
                }),
            )
        })?;
        Ok(Self { me, org_id })
    }

    fn scope(&self) -> KeyScope<'_> {
        KeyScope {
            user_id: &self.me.user_id,
            org_id: &self.org_id,
        }
    }
}

fn key_error(err: ApiKeyError) -> ApiError {
    if let ApiKeyError::Database(cause) = err {
        return ApiError::store(
            openhands_sql_store::store_error(cause),
            json!({"detail": "Something went wrong", "code": "internal_error"}),
        );
    }
    let status = match &err {
        ApiKeyError::NameTooLong => {
            return ApiError::validation("name", err.to_string(), "string_too_long");
        }
        ApiKeyError::ExpiryInPast => {
            return ApiError::validation(
                "expires_at",
                format!("Value error, {err}"),
                "value_error",
            );
        }
        ApiKeyError::NotFound => StatusCode::NOT_FOUND,
        ApiKeyError::NotMember => StatusCode::FORBIDDEN,
        ApiKeyError::Random | ApiKeyError::Database(_) => {
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

/// Creates a key in the caller's current org; the answer holds the only copy of it.
#[utoipa::path(post, path = "/api/keys", tag = "api-keys", security(("user" = [])), request_body = CreateKey, responses(
    (status = 200, body = CreatedKey),
    (status = 403, description = "No current org (`org_required`), or no signed-in user", body = ErrorDetail)))]
async fn create_key(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<HttpResponse, ApiError> {
    let caller = KeyCaller::of(&user, &state).await?;
    let created = api_keys::create(
        &caller.me.db,
        caller.scope(),
        body.name.as_deref(),
        body.expires_at,
    )
    .await
    .map_err(key_error)?;
    let info = &created.info;
    let entry = caller
        .me
        .audit("api_key.create", &caller.org_id)
        .target(info.id.clone())
        .detail(json!({"name": info.name, "prefix": info.prefix, "expires_at": info.expires_at}));
    audit::record(&state, &req, entry).await;
    // Not cached anywhere: the server's `cache_control` middleware marks every API answer
    // `no-store`.
    Ok(HttpResponse::Ok().json(Created {
        info,
        key: created.key.expose(),
    }))
}

/// The caller's keys in their current org, newest first.
#[utoipa::path(get, path = "/api/keys", tag = "api-keys", security(("user" = [])), responses(
    (status = 200, body = Vec<ApiKey>),
    (status = 403, description = "No current org (`org_required`), or no signed-in user", body = ErrorDetail)))]
async fn list_keys(
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = KeyCaller::of(&user, &state).await?;
    let keys = api_keys::list(&caller.me.db, caller.scope())
        .await
        .map_err(key_error)?;
    Ok(HttpResponse::Ok().json(keys))
}

/// Deletes one of the caller's keys; from then on it authenticates nothing.
#[utoipa::path(delete, path = "/api/keys/{key_id}", tag = "api-keys",
    params(("key_id" = String, Path, description = "The key's `id`")), security(("user" = [])), responses(
    (status = 200, body = Message, example = json!({"message": "API key deleted successfully"})),
    (status = 403, description = "No current org (`org_required`), or no signed-in user", body = ErrorDetail),
    (status = 404, description = "No such key of the caller's (`api_key_not_found`)", body = ErrorDetail)))]
async fn delete_key(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = KeyCaller::of(&user, &state).await?;
    let deleted = api_keys::delete(&caller.me.db, caller.scope(), &path)
        .await
        .map_err(key_error)?;
    let entry = caller
        .me
        .audit("api_key.delete", &caller.org_id)
        .target(deleted.id.clone())
        .detail(json!({"name": deleted.name, "prefix": deleted.prefix}));
    audit::record(&state, &req, entry).await;
    Ok(HttpResponse::Ok().json(json!({"message": "API key deleted successfully"})))
}

/// Serde helper: an optional ISO 8601 timestamp, `null` meaning none.
fn optional_timestamp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    parse_timestamp(&text).map(Some).ok_or_else(|| {
        serde::de::Error::custom("expected an ISO 8601 timestamp such as 2030-01-31T12:00:00Z")
    })
}

/// RFC 3339 with an offset, or without one (what Python's `isoformat()` gives for a naive
/// datetime), then taken as UTC.
fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.to_utc());
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|at| at.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_and_without_offset_are_read_as_instants() {
        let at = |s: &str| parse_timestamp(s).map(|t| t.to_rfc3339());
        let noon = Some("2030-01-31T12:00:00+00:00".to_owned());
        assert_eq!(at("2030-01-31T12:00:00Z"), noon);
        assert_eq!(at("2030-01-31T14:00:00+02:00"), noon);
        assert_eq!(at("2030-01-31T12:00:00"), noon);
        assert_eq!(
            at("2030-01-31T12:00:00.250"),
            Some("2030-01-31T12:00:00.250+00:00".to_owned())
        );
        for bad in ["", "tomorrow", "2030-13-01T00:00:00Z", "1900000000"] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn create_body_fields_are_optional() {
        let body: CreateKey = serde_json::from_str("{}").expect("empty object");
        assert!(body.name.is_none() && body.expires_at.is_none());
        let body: CreateKey =
            serde_json::from_str(r#"{"name": null, "expires_at": null}"#).expect("nulls");
        assert!(body.name.is_none() && body.expires_at.is_none());
        assert!(serde_json::from_str::<CreateKey>(r#"{"expires_at": "soon"}"#).is_err());
    }
}
