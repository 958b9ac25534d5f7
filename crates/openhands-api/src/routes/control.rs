//! Driving a conversation: `/start`, `/stop`, `/message`, POST `/events`, `/trajectory`.

use super::conversations::{ConversationResponse, conversation_id_from};
use crate::agent_control::{
    StartError, UserAction, deliver, manager_failure, parse_action, start_agent,
};
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::error::schema::{ErrorDetail, StatusError, Success, SuccessError};
use crate::state::AppState;
use crate::user::CurrentUser;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use openhands_core::conversation::{ConversationMetadata, ConversationStatus};
use openhands_core::secrets::ProviderType;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let base = "/api/conversations/{conversation_id}";
    cfg.route(&format!("{base}/start"), web::post().to(start))
        .route(&format!("{base}/stop"), web::post().to(stop))
        .route(&format!("{base}/message"), web::post().to(message))
        .route(&format!("{base}/events"), web::post().to(post_event))
        .route(
            &format!("{base}/trajectory"),
            web::get().to(crate::trajectory::trajectory),
        );
}

/// How a route answers for a conversation that does not exist (OpenHands' shapes differ).
#[derive(Clone, Copy)]
enum Missing {
    /// `{"status": "error", "conversation_id": id}`
    StatusError,
    /// `{"success": false, "error": "Conversation <id> not found"}`
    Success,
    /// `{"detail": "Conversation <id> not found"}`
    Detail,
}

/// The user's conversation, or a 404 in the route's shape.
async fn owned(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    missing: Missing,
) -> Result<ConversationMetadata, ApiError> {
    let found = state
        .ext
        .conversation_store
        .get(user.scope(), id)
        .await
        .map_err(|e| ApiError::store(e, json!({"status": "error", "conversation_id": id})))?;
    found.ok_or_else(|| {
        let message = format!("Conversation {id} not found");
        match missing {
            Missing::StatusError => ApiError::new(
                StatusCode::NOT_FOUND,
                json!({"status": "error", "conversation_id": id}),
            ),
            Missing::Success => ApiError::new(
                StatusCode::NOT_FOUND,
                json!({"success": false, "error": message}),
            ),
            Missing::Detail => ApiError::detail(StatusCode::NOT_FOUND, message),
        }
    })
}

/// A 400 of `POST .../events` (only the OpenAPI document uses this type).
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
enum SuccessErrorOrDetail {
    Refused(SuccessError),
    Detail(ErrorDetail),
}

/// `POST .../start` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StartBody {
    /// Used in SaaS mode to pick tokens; OSS uses the stored tokens.
    #[serde(default)]
    pub providers_set: Option<Vec<ProviderType>>,
}

/// Starts the agent (or reports it running).
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/start", tag = "conversations",
    params(("conversation_id" = String, Path)), security(("user" = [])), request_body = StartBody, responses(
    (status = 200, body = ConversationResponse),
    (status = 400, description = "Invalid conversation id", body = ErrorDetail),
    (status = 404, description = "No such conversation", body = StatusError),
    (status = 503, description = "Storage unavailable for now, or the server runs the most conversations it allows (`capacity_reached`, `max_running_conversations`), or it is shutting down (`server_shutting_down`: retry at once, another server answers); `Retry-After` says when to retry", body = ErrorDetail),
    (status = 500, description = "The agent could not be started (e.g. no settings stored)", body = StatusError)))]
pub async fn start(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(_body): JsonBody<StartBody>,
) -> Result<HttpResponse, ApiError> {
    let id = conversation_id_from(path)?;
    let metadata = owned(&state, &user, &id, Missing::StatusError).await?;
    let status = start_agent(&state, user.scope(), metadata).await.map_err(|e| {
        e.into_api_error(|e| {
            if !matches!(e, StartError::SettingsMissing) {
                tracing::error!(conversation_id = %id, error = %e, "starting a conversation failed");
            }
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"status": "error", "conversation_id": id, "message": format!("Failed to start conversation: {e}")}),
            )
        })
    })?;
    Ok(HttpResponse::Ok().json(ConversationResponse {
        status: "ok",
        conversation_id: id,
        message: None,
        conversation_status: Some(status),
    }))
}

/// Stops the agent.
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/stop", tag = "conversations",
    params(("conversation_id" = String, Path)), security(("user" = [])), responses(
    (status = 200, body = ConversationResponse),
    (status = 400, description = "Invalid conversation id", body = ErrorDetail),
    (status = 404, description = "No such conversation", body = StatusError),
    (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn stop(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = conversation_id_from(path)?;
    owned(&state, &user, &id, Missing::StatusError).await?;
    let before = state
        .ext
        .conversation_manager
        .stop(user.scope(), &id)
        .await
        .map_err(manager_failure)?;
    let (message, status) = match before {
        Some(status) => ("Conversation stopped successfully", status),
        None => ("Conversation was not running", ConversationStatus::Stopped),
    };
    Ok(HttpResponse::Ok().json(ConversationResponse {
        status: "ok",
        conversation_id: id,
        message: Some(message.to_owned()),
        conversation_status: Some(status),
    }))
}

/// `POST .../message` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MessageBody {
    pub message: String,
}

/// Sends a user message; a stopped conversation is started to answer it.
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/message", tag = "conversations",
    params(("conversation_id" = String, Path)), security(("user" = [])), request_body = MessageBody, responses(
    (status = 200, body = Success, example = json!({"success": true})),
    (status = 400, description = "Invalid conversation id", body = ErrorDetail),
    (status = 404, description = "No such conversation", body = SuccessError),
    (status = 503, description = "Storage unavailable for now, or the server runs the most conversations it allows (`capacity_reached`, `max_running_conversations`), or it is shutting down (`server_shutting_down`: retry at once, another server answers); `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn message(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<MessageBody>,
) -> Result<HttpResponse, ApiError> {
    let id = conversation_id_from(path)?;
    let metadata = owned(&state, &user, &id, Missing::Success).await?;
    let action = UserAction::Message {
        content: body.message,
        image_urls: Vec::new(),
    };
    deliver(&state, user.scope(), metadata, action).await?;
    Ok(HttpResponse::Ok().json(json!({"success": true})))
}

/// Sends a client action (`message`, or `change_agent_state` to `user_confirmed`,
/// `user_rejected` or `stopped`).
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/events", tag = "conversations",
    params(("conversation_id" = String, Path)), security(("user" = [])), request_body = Object, responses(
    (status = 200, body = Success, example = json!({"success": true})),
    (status = 400, description = "Unsupported action (`success` shape), or an invalid conversation id (`detail`)", body = inline(SuccessErrorOrDetail)),
    (status = 404, description = "No such conversation", body = ErrorDetail),
    (status = 409, description = "Nothing to confirm or reject: the agent is not running", body = SuccessError),
    (status = 503, description = "Storage unavailable for now, or the server runs the most conversations it allows (`capacity_reached`, `max_running_conversations`), or it is shutting down (`server_shutting_down`: retry at once, another server answers); `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn post_event(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = conversation_id_from(path)?;
    let metadata = owned(&state, &user, &id, Missing::Detail).await?;
    let action = parse_action(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            json!({"success": false, "error": e}),
        )
    })?;
    deliver(&state, user.scope(), metadata, action).await?;
    Ok(HttpResponse::Ok().json(json!({"success": true})))
}
