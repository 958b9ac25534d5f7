//! `/api/settings` and `/api/reset-settings`.

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::error::schema::{ErrorDetail, ErrorText, Message, ValidationErrors};
use crate::state::AppState;
use crate::user::CurrentUser;
use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use bytes::Bytes;
use openhands_core::scope::UserScope;
use openhands_core::settings::{GetSettingsModel, Settings};
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/settings", web::get().to(get_settings))
        .route("/api/settings", web::post().to(post_settings))
        .route("/api/reset-settings", web::post().to(reset_settings));
}

/// The stored settings, secrets replaced by `*_set` flags.
///
/// Served from [`SettingsViews`](openhands_core::settings_views::SettingsViews) when this
/// replica has the body; every write to the settings or secrets invalidates it.
#[utoipa::path(get, path = "/api/settings", tag = "settings", security(("user" = [])), responses(
    (status = 200, body = GetSettingsModel),
    (status = 404, description = "No settings stored", body = ErrorText, example = json!({"error": "Settings not found"})),
    (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn get_settings(
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let scope = user.scope();
    let views = &state.ext.settings_views;
    if let Some(body) = views.get(scope) {
        return Ok(json_body(body));
    }
    let epoch = views.epoch();
    let body = load_settings_body(&state, scope).await?;
    views.remember(scope, body.clone(), epoch);
    Ok(json_body(body))
}

fn json_body(body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body)
}

/// The `GET /api/settings` body, read from the stores.
async fn load_settings_body(state: &AppState, scope: &UserScope) -> Result<Bytes, ApiError> {
    let body = || json!({"error": "Something went wrong loading settings"});
    let failed = |e| ApiError::store(e, body());
    let (settings, secrets) = tokio::join!(
        state.ext.settings_store.load(scope),
        state.ext.secrets_store.load(scope)
    );
    let settings = settings
        .map_err(failed)?
        .ok_or_else(|| ApiError::error(StatusCode::NOT_FOUND, "Settings not found"))?;
    let provider_tokens_set = secrets
        .map_err(failed)?
        .unwrap_or_default()
        .provider_tokens_set();
    let model = GetSettingsModel::new(settings, Some(provider_tokens_set));
    serde_json::to_vec(&model)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(&e, body()))
}

/// Replaces the settings; `llm_api_key`, `llm_model`, `llm_base_url`, `search_api_key` and
/// `user_consents_to_analytics` keep their stored value when left out.
#[utoipa::path(post, path = "/api/settings", tag = "settings", security(("user" = [])), request_body = Settings, responses(
    (status = 200, body = Message, example = json!({"message": "Settings stored"})),
    (status = 422, description = "A field is invalid (a NUL character in any string, too); `detail[0].loc` names it", body = ValidationErrors),
    (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn post_settings(
    user: CurrentUser,
    state: web::Data<AppState>,
    JsonBody(incoming): JsonBody<Settings>,
) -> Result<HttpResponse, ApiError> {
    incoming
        .validate()
        .map_err(|e| ApiError::validation(&e.field, e.to_string(), "value_error"))?;
    state
        .ext
        .settings_store
        .store_merged(user.scope(), incoming)
        .await
        .map_err(|e| {
            ApiError::store(e, json!({"error": "Something went wrong storing settings"}))
        })?;
    Ok(HttpResponse::Ok().json(json!({"message": "Settings stored"})))
}

/// Removed in OpenHands; always 410.
#[utoipa::path(post, path = "/api/reset-settings", tag = "settings", security(("user" = [])), responses(
    (status = 410, description = "Removed", body = ErrorText)))]
pub async fn reset_settings(_user: CurrentUser) -> HttpResponse {
    HttpResponse::Gone().json(json!({"error": "Reset settings functionality has been removed."}))
}
