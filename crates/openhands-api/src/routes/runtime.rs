//! `GET /api/refresh-tokens`: a conversation's runtime asks for a fresh git-provider token
//! for the conversation's owner.
//!
//! The caller is not a user but a runtime, so this route takes no session: it takes the
//! runtime's session key (minted at the conversation's start, see
//! [`openhands_core::runtime_keys`]) in `X-Session-API-Key`, which names the conversation
//! and its owner. A key for another conversation, a forged key, or a key of a deleted
//! conversation is 403. The token goes through the provider-token source, so an OAuth
//! token about to expire is refreshed (and stored) first.

use crate::error::ApiError;
use crate::error::schema::{ErrorDetail, ErrorText, ValidationErrors};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use openhands_core::oss::SESSION_API_KEY_HEADER;
use openhands_core::secrets::ProviderType;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/refresh-tokens", web::get().to(refresh_tokens));
}

/// `provider` and `sid` (the conversation id), both required.
#[derive(Debug, Deserialize)]
pub struct RefreshQuery {
    provider: Option<String>,
    sid: Option<String>,
}

fn refused() -> ApiError {
    ApiError::error(
        StatusCode::FORBIDDEN,
        "Invalid session API key for this conversation",
    )
}

fn query_field<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| query_error(name, "Field required", "missing"))
}

fn query_error(name: &str, message: &str, kind: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"detail": [{"type": kind, "loc": ["query", name], "msg": message}]}),
    )
}

/// `{"token": ...}` (only the OpenAPI document uses this type).
#[derive(ToSchema)]
#[allow(dead_code)]
struct FreshToken {
    token: String,
}

/// A fresh token of `provider` for the owner of conversation `sid`.
#[utoipa::path(get, path = "/api/refresh-tokens", tag = "secrets",
    params(
        ("provider" = ProviderType, Query, description = "github, gitlab, bitbucket, ..."),
        ("sid" = String, Query, description = "The conversation id"),
        ("X-Session-API-Key" = String, Header, description = "The runtime's session key (its `SESSION_API_KEY`)")),
    responses(
        (status = 200, body = FreshToken, example = json!({"token": "gho_..."})),
        (status = 403, description = "Missing key, or a key not made for this conversation", body = ErrorText),
        (status = 404, description = "The owner has no token for this provider", body = ErrorText),
        (status = 422, description = "`provider` or `sid` missing or invalid", body = ValidationErrors),
        (status = 502, description = "The provider refused to refresh the token", body = ErrorText),
        (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn refresh_tokens(
    req: HttpRequest,
    query: web::Query<RefreshQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let provider_name = query_field(&query.provider, "provider")?;
    let sid = query_field(&query.sid, "sid")?;
    let provider: ProviderType = serde_json::from_value(Value::from(provider_name))
        .map_err(|_| query_error("provider", "Not a known git provider", "enum"))?;
    let presented = req
        .headers()
        .get(SESSION_API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(refused)?;
    let scope = state
        .ext
        .runtime_keys
        .verify(sid, presented)
        .ok_or_else(refused)?;
    let failed = |e: openhands_core::StoreError| {
        ApiError::store(
            e,
            json!({"error": "Something went wrong loading the token"}),
        )
    };
    // A deleted conversation's runtime has no business asking any more.
    let exists = state
        .ext
        .conversation_store
        .get(&scope, sid)
        .await
        .map_err(failed)?
        .is_some();
    if !exists {
        return Err(refused());
    }
    let stored = state
        .ext
        .secrets_store
        .load(&scope)
        .await
        .map_err(failed)?
        .and_then(|mut secrets| secrets.provider_tokens.remove(&provider))
        .filter(|token| token.token.is_some());
    let not_found = || {
        ApiError::error(
            StatusCode::NOT_FOUND,
            format!(
                "No {} token for this conversation's user",
                provider.as_str()
            ),
        )
    };
    let stored = stored.ok_or_else(not_found)?;
    let fresh = state
        .ext
        .provider_tokens
        .fresh_token(&scope, provider, stored)
        .await
        .map_err(|e| {
            tracing::warn!(provider = provider.as_str(), error = %e.message, "refreshing a runtime's token failed");
            ApiError::error(
                StatusCode::BAD_GATEWAY,
                format!(
                    "The {} token could not be refreshed; the user may need to link the account again",
                    provider.as_str()
                ),
            )
        })?;
    let token = fresh.token.ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(json!({ "token": token.expose() })))
}
