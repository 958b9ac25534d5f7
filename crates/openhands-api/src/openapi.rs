//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations and the
//! types' `ToSchema` derives, rendered once at start-up and served at `/openapi.json`.
//! Provider crates add their routes' descriptions with
//! [`OpenApiContribution`](crate::contribution::OpenApiContribution).

use crate::routes::{
    control, conversations, events, files, health, options, runtime, secrets, settings,
};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "OpenHands server (Rust)",
        description = "Open API of the agent-platform server, wire-compatible with the OpenHands server where the routes overlap."
    ),
    paths(
        health::alive, health::health, health::server_info, health::ready,
        options::models, options::agents, options::security_analyzers, options::config,
        settings::get_settings, settings::post_settings, settings::reset_settings,
        secrets::list_secrets, secrets::create_secret, secrets::update_secret, secrets::delete_secret,
        secrets::add_git_providers, secrets::unset_provider_tokens, runtime::refresh_tokens,
        conversations::create_conversation, conversations::list_conversations,
        conversations::get_conversation, conversations::rename_conversation,
        conversations::delete_conversation, events::read_events,
        control::start, control::stop, control::message, control::post_event, crate::trajectory::trajectory,
        files::list_files, files::select_file, files::zip_directory, files::upload_files,
        files::git_changes, files::git_diff,
    ),
    tags(
        (name = "health", description = "Liveness, readiness and process figures (no auth)"),
        (name = "options", description = "Choices offered to the web app"),
        (name = "settings", description = "User settings; secrets are write-only"),
        (name = "secrets", description = "Custom secrets and git-provider tokens; values are write-only"),
        (name = "conversations", description = "Conversations and their events; live events at GET /api/conversations/{conversation_id}/events/socket (WebSocket)"),
        (name = "files", description = "A conversation's workspace"),
    )
)]
pub struct ApiDoc;

/// The document of this server as JSON bytes: the open API's routes, plus those of every
/// contribution mounted for `state` (SaaS routes, integrations).
pub fn render(state: &AppState) -> Vec<u8> {
    let mut document = ApiDoc::openapi();
    for contribution in crate::contribution::OpenApiContribution::registered() {
        if (contribution.enabled)(state) {
            document.merge((contribution.document)());
        }
    }
    document
        .to_json()
        .map(String::into_bytes)
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "OpenAPI document could not be rendered");
            b"{}".to_vec()
        })
}

/// `GET /openapi.json`.
pub async fn serve(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi_json.clone())
}
