//! `/api/options/*`: what the web app may offer.

use crate::state::AppState;
use crate::user::CurrentUser;
use actix_web::{HttpResponse, web};
use serde_json::json;
use utoipa::ToSchema;

/// Model ids offered in the settings form (free text is accepted too). LiteLLM-style ids,
/// since any OpenAI-compatible endpoint or LiteLLM proxy can serve them.
pub const SUPPORTED_MODELS: &[&str] = &[
    "anthropic/claude-3-5-haiku-20241022",
    "anthropic/claude-3-7-sonnet-20250219",
    "anthropic/claude-opus-4-20250514",
    "anthropic/claude-sonnet-4-20250514",
    "anthropic/claude-sonnet-4-5-20250929",
    "deepseek/deepseek-chat",
    "gemini/gemini-2.5-flash",
    "gemini/gemini-2.5-pro",
    "mistral/devstral-medium-2507",
    "mistral/devstral-small-2507",
    "openai/gpt-4.1",
    "openai/gpt-4.1-mini",
    "openai/gpt-4o",
    "openai/gpt-4o-mini",
    "openai/gpt-5",
    "openai/gpt-5-mini",
    "openai/o3",
    "openai/o4-mini",
    "openhands/claude-sonnet-4-20250514",
];

/// Agents this server can run.
pub const AGENTS: &[&str] = &["CodeActAgent"];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/options/models", web::get().to(models))
        .route("/api/options/agents", web::get().to(agents))
        .route(
            "/api/options/security-analyzers",
            web::get().to(security_analyzers),
        )
        .route("/api/options/config", web::get().to(config));
}

/// Model ids.
#[utoipa::path(get, path = "/api/options/models", tag = "options", security(("user" = [])),
    responses((status = 200, body = Vec<String>)))]
pub async fn models(_user: CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(SUPPORTED_MODELS)
}

/// Agent names, sorted.
#[utoipa::path(get, path = "/api/options/agents", tag = "options", security(("user" = [])),
    responses((status = 200, body = Vec<String>)))]
pub async fn agents(_user: CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(AGENTS)
}

/// Security analyzers, sorted. None is built in yet, so the list is empty.
#[utoipa::path(get, path = "/api/options/security-analyzers", tag = "options", security(("user" = [])),
    responses((status = 200, body = Vec<String>)))]
pub async fn security_analyzers(_user: CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(Vec::<String>::new())
}

/// `GET /api/options/config` (only the OpenAPI document uses these types).
#[derive(ToSchema)]
#[allow(dead_code)]
struct WebAppConfig {
    /// `oss` or `saas`.
    #[schema(rename = "APP_MODE")]
    app_mode: String,
    #[schema(rename = "GITHUB_CLIENT_ID")]
    github_client_id: String,
    #[schema(rename = "POSTHOG_CLIENT_KEY")]
    posthog_client_key: String,
    #[schema(rename = "FEATURE_FLAGS")]
    feature_flags: FeatureFlags,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct FeatureFlags {
    #[schema(rename = "ENABLE_BILLING")]
    enable_billing: bool,
    #[schema(rename = "HIDE_LLM_SETTINGS")]
    hide_llm_settings: bool,
}

/// Mode and feature flags for the web app.
#[utoipa::path(get, path = "/api/options/config", tag = "options", security(("user" = [])),
    responses((status = 200, body = WebAppConfig,
    example = json!({"APP_MODE": "oss", "GITHUB_CLIENT_ID": "", "POSTHOG_CLIENT_KEY": "",
                     "FEATURE_FLAGS": {"ENABLE_BILLING": false, "HIDE_LLM_SETTINGS": false}}))))]
pub async fn config(_user: CurrentUser, state: web::Data<AppState>) -> HttpResponse {
    let c = &state.config;
    HttpResponse::Ok().json(json!({
        "APP_MODE": state.ext.app_mode,
        "GITHUB_CLIENT_ID": c.github_app_client_id,
        "POSTHOG_CLIENT_KEY": c.posthog_client_key,
        "FEATURE_FLAGS": {
            "ENABLE_BILLING": c.enable_billing,
            "HIDE_LLM_SETTINGS": c.hide_llm_settings,
        },
    }))
}
