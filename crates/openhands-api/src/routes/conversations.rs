//! `/api/conversations`: create, list, get, rename, delete.
//!
//! Creating records the metadata and the first user message, then starts the agent, which
//! answers that message. A blank `repository` is no repository, and no string of the
//! request may hold a NUL (422 naming it). Paging accepts `limit` 0 to 100 as the events
//! route does (0 is an empty page), and answers anything else `400 {"detail": "Invalid
//! limit"}` like it.

use crate::agent_control::start_agent;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::error::schema::{ErrorDetail, StatusError, ValidationErrors};
use crate::state::AppState;
use crate::user::CurrentUser;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use openhands_core::StoreError;
use openhands_core::conversation::{
    ConversationInfo, ConversationMetadata, ConversationQuery, ConversationStatus,
    ConversationTrigger, new_conversation_id, validate_conversation_id,
};
use openhands_core::event::NewEvent;
use openhands_core::extension::{AuthType, ManagerError};
use openhands_core::secrets::ProviderType;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

/// Default and largest page size of the list.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;
/// Longest title accepted by PATCH.
const MAX_TITLE_LEN: usize = 200;
/// Model prefixes that need no API key (OpenHands: AWS Bedrock and local Lemonade).
const KEYLESS_MODEL_PREFIXES: [&str; 2] = ["bedrock/", "lemonade/"];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/conversations", web::post().to(create_conversation))
        .route("/api/conversations", web::get().to(list_conversations))
        .route(
            "/api/conversations/{conversation_id}",
            web::get().to(get_conversation),
        )
        .route(
            "/api/conversations/{conversation_id}",
            web::patch().to(rename_conversation),
        )
        .route(
            "/api/conversations/{conversation_id}",
            web::delete().to(delete_conversation),
        );
}

/// A suggested task that becomes the first message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SuggestedTask {
    pub git_provider: Option<ProviderType>,
    pub task_type: String,
    pub repo: String,
    pub issue_number: i64,
    pub title: String,
}

impl SuggestedTask {
    fn prompt(&self) -> String {
        let what = match self.task_type.as_str() {
            "MERGE_CONFLICTS" => "resolve the merge conflicts of pull request",
            "FAILING_CHECKS" => "fix the failing checks of pull request",
            "UNRESOLVED_COMMENTS" => "address the unresolved review comments of pull request",
            "OPEN_PR" => "finish pull request",
            _ => "resolve issue",
        };
        format!(
            "Please {what} #{} in the repository {} (\"{}\").",
            self.issue_number, self.repo, self.title
        )
    }
}

/// A request to create a microagent in a repository.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateMicroagent {
    pub repo: String,
    #[serde(default)]
    pub git_provider: Option<ProviderType>,
    #[serde(default)]
    pub title: Option<String>,
}

/// `POST /api/conversations` body (OpenHands' `InitSessionRequest`); unknown keys are refused.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitSessionRequest {
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub git_provider: Option<ProviderType>,
    #[serde(default)]
    pub selected_branch: Option<String>,
    #[serde(default)]
    pub initial_user_msg: Option<String>,
    #[serde(default)]
    pub image_urls: Option<Vec<String>>,
    #[serde(default)]
    pub replay_json: Option<String>,
    #[serde(default)]
    pub suggested_task: Option<SuggestedTask>,
    #[serde(default)]
    pub create_microagent: Option<CreateMicroagent>,
    #[serde(default)]
    pub conversation_instructions: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub mcp_config: Option<Value>,
    /// Only accepted when `ALLOW_SET_CONVERSATION_ID` is on.
    #[serde(default)]
    pub conversation_id: Option<String>,
}

/// OpenHands' `ConversationResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationResponse {
    pub status: &'static str,
    pub conversation_id: String,
    pub message: Option<String>,
    pub conversation_status: Option<ConversationStatus>,
}

/// `GET /api/conversations` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Opaque cursor from `next_page_id`.
    pub page_id: Option<String>,
    /// 0 to 100, default 20 (0: an empty page).
    #[param(minimum = 0, maximum = 100)]
    pub limit: Option<i64>,
    pub selected_repository: Option<String>,
    pub conversation_trigger: Option<ConversationTrigger>,
    /// Accepted for compatibility; there are no sub-conversations here.
    pub include_sub_conversations: Option<bool>,
}

/// `GET /api/conversations` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationInfoResultSet {
    pub results: Vec<ConversationInfo>,
    pub next_page_id: Option<String>,
}

/// `PATCH /api/conversations/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConversationRequest {
    pub title: String,
}

/// A 400 of conversation creation: OpenHands' `{"status": "error", ...}` for a refusal, or
/// `{"detail"}` for an invalid id (only the OpenAPI document uses this type).
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
enum StatusOrDetail {
    Status(StatusError),
    Detail(ErrorDetail),
}

/// Validates the `{conversation_id}` path segment (400 `{"detail"}` as OpenHands).
pub fn conversation_id_from(path: web::Path<String>) -> Result<String, ApiError> {
    let id = path.into_inner();
    validate_conversation_id(&id)
        .map_err(|e| ApiError::detail(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(id)
}

fn manager_failure(err: openhands_core::extension::ManagerError) -> ApiError {
    ApiError::internal(&err, json!({"status": "error", "message": err.to_string()}))
}

fn store_failure(err: StoreError) -> ApiError {
    ApiError::store(
        err,
        json!({"status": "error", "message": "Storage failed; see the server log"}),
    )
}

/// `Some` text that is not blank, trimmed.
fn non_blank(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Creates a conversation from the user's settings.
#[utoipa::path(post, path = "/api/conversations", tag = "conversations", security(("user" = [])), request_body = InitSessionRequest, responses(
    (status = 200, body = ConversationResponse),
    (status = 400, description = "No settings (`CONFIGURATION$SETTINGS_NOT_FOUND`), no LLM key (`STATUS$ERROR_LLM_AUTHENTICATION`), a repository that cannot be cloned (`status` shape), or an invalid `conversation_id` (`detail`)",
        body = inline(StatusOrDetail)),
    (status = 409, description = "A conversation with that id exists (`CONVERSATION$ALREADY_EXISTS`)", body = StatusError),
    (status = 422, description = "Unknown or invalid field, or a NUL character in a string", body = ValidationErrors),
    (status = 503, description = "Storage unavailable for now, or the server runs the most conversations it allows (`capacity_reached`, `max_running_conversations`), or it is shutting down (`server_shutting_down`: retry at once, another server answers); `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn create_conversation(
    user: CurrentUser,
    state: web::Data<AppState>,
    JsonBody(mut request): JsonBody<InitSessionRequest>,
) -> Result<HttpResponse, ApiError> {
    ApiError::refuse_nul_in(&request)?;
    request.repository = non_blank(request.repository.take());
    request.selected_branch = non_blank(request.selected_branch.take());
    let scope = user.scope().clone();
    let conversation_id = match request.conversation_id.take() {
        Some(_) if !state.config.allow_set_conversation_id => {
            return Err(ApiError::validation(
                "conversation_id",
                "conversation_id: extra inputs are not permitted (set ALLOW_SET_CONVERSATION_ID=1 to allow)",
                "extra_forbidden",
            ));
        }
        Some(id) => {
            validate_conversation_id(&id)
                .map_err(|e| ApiError::detail(StatusCode::BAD_REQUEST, e.to_string()))?;
            id
        }
        None => new_conversation_id(),
    };
    let settings = state
        .ext
        .settings_store
        .load(&scope)
        .await
        .map_err(store_failure)?
        .ok_or_else(|| {
            ApiError::status_error(
                StatusCode::BAD_REQUEST,
                "Settings not found",
                "CONFIGURATION$SETTINGS_NOT_FOUND",
            )
        })?;
    let model = settings.llm_model.clone().unwrap_or_default();
    let keyless = KEYLESS_MODEL_PREFIXES.iter().any(|p| model.starts_with(p));
    if !settings.llm_api_key_set() && !keyless {
        return Err(ApiError::status_error(
            StatusCode::BAD_REQUEST,
            "Error authenticating with the LLM provider. Please check your API key",
            "STATUS$ERROR_LLM_AUTHENTICATION",
        ));
    }

    let mut trigger = ConversationTrigger::Gui;
    let mut initial_message = request.initial_user_msg.take();
    if let Some(task) = &request.suggested_task {
        trigger = ConversationTrigger::SuggestedTask;
        initial_message = Some(task.prompt());
        if request.repository.is_none() {
            request.repository = Some(task.repo.clone());
            request.git_provider = request.git_provider.or(task.git_provider);
        }
    } else if let Some(microagent) = &request.create_microagent {
        trigger = ConversationTrigger::MicroagentManagement;
        if request.repository.is_none() {
            request.repository = Some(microagent.repo.clone());
        }
        request.git_provider = request.git_provider.or(microagent.git_provider);
    }
    if user.0.auth_type == Some(AuthType::Bearer) {
        trigger = ConversationTrigger::OpenhandsApi;
    }
    if let Some(repository) = &request.repository {
        // The same check runs again before the clone; refusing here loses nothing.
        openhands_core::repository::clone_target(
            repository,
            request.git_provider,
            None,
            &state.ext.repository_policy,
        )
        .map_err(|refused| {
            ApiError::status_error(StatusCode::BAD_REQUEST, refused.message, refused.code)
        })?;
    }

    if state
        .ext
        .conversation_store
        .get(&scope, &conversation_id)
        .await
        .map_err(store_failure)?
        .is_some()
    {
        return Err(ApiError::status_error(
            StatusCode::CONFLICT,
            format!("Conversation {conversation_id} already exists"),
            "CONVERSATION$ALREADY_EXISTS",
        ));
    }
    // A full server refuses before anything is stored, so a retry does not leave a stopped
    // copy behind. Any other failure of the check leaves the decision to the start.
    match state.ext.conversation_manager.admits(&scope).await {
        Err(e @ ManagerError::CapacityReached { .. }) => {
            return Err(crate::agent_control::capacity_reached(&e.to_string()));
        }
        Err(e @ ManagerError::ShuttingDown) => {
            return Err(crate::agent_control::shutting_down(&e.to_string()));
        }
        Err(other) => tracing::warn!(error = %other, "capacity pre-check failed"),
        Ok(()) => {}
    }
    let mut metadata = ConversationMetadata::new(
        conversation_id.clone(),
        scope.user_id.clone(),
        chrono::Utc::now(),
    );
    metadata.org_id = scope.org_id.clone();
    metadata.selected_repository = request.repository;
    metadata.selected_branch = request.selected_branch;
    metadata.git_provider = request.git_provider;
    metadata.trigger = Some(trigger);
    metadata.llm_model = settings.llm_model;
    metadata.conversation_instructions = request
        .conversation_instructions
        .filter(|i| !i.trim().is_empty());
    state
        .ext
        .conversation_store
        .save(&scope, &metadata)
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists(what) => ApiError::status_error(
                StatusCode::CONFLICT,
                format!("{what} already exists"),
                "CONVERSATION$ALREADY_EXISTS",
            ),
            // E.g. a NUL in the model name of settings stored before NUL was refused.
            StoreError::Invalid(message) => {
                ApiError::status_error(StatusCode::BAD_REQUEST, message, "STATUS$ERROR")
            }
            other => store_failure(other),
        })?;
    if let Some(text) = initial_message.filter(|t| !t.trim().is_empty()) {
        let event = NewEvent::user_message(&text, request.image_urls.unwrap_or_default());
        let stored = state
            .ext
            .event_store
            .append(&scope, &conversation_id, event)
            .await
            .map_err(store_failure)?;
        state
            .ext
            .monitoring
            .on_session_event(&conversation_id, &stored);
    }
    state
        .ext
        .monitoring
        .on_create_conversation(&scope, &conversation_id);
    let status = start_agent(&state, &scope, metadata).await.map_err(|e| {
        e.into_api_error(|e| {
            ApiError::internal(
                &e,
                json!({"status": "error", "message": format!("Failed to start conversation: {e}"), "msg_id": "STATUS$ERROR"}),
            )
        })
    })?;
    Ok(HttpResponse::Ok().json(ConversationResponse {
        status: "ok",
        conversation_id,
        message: None,
        conversation_status: Some(status),
    }))
}

/// The user's conversations, newest first, hiding those older than
/// `conversation_max_age_seconds`.
#[utoipa::path(get, path = "/api/conversations", tag = "conversations", params(ListQuery), security(("user" = [])), responses(
    (status = 200, body = ConversationInfoResultSet),
    (status = 400, description = "Invalid `limit` or `page_id`", body = ErrorDetail, example = json!({"detail": "Invalid limit"})),
    (status = 422, description = "A query parameter is malformed or holds a NUL character", body = ValidationErrors),
    (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn list_conversations(
    user: CurrentUser,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT as i64);
    let Some(limit) = usize::try_from(limit).ok().filter(|l| *l <= MAX_LIMIT) else {
        return Err(ApiError::detail(StatusCode::BAD_REQUEST, "Invalid limit"));
    };
    for (name, value) in [
        ("page_id", &query.page_id),
        ("selected_repository", &query.selected_repository),
    ] {
        ApiError::refuse_nul("query", name, value.as_deref().unwrap_or_default())?;
    }
    if limit == 0 {
        return Ok(HttpResponse::Ok().json(ConversationInfoResultSet {
            results: Vec::new(),
            next_page_id: None,
        }));
    }
    let max_age = chrono::Duration::seconds(
        i64::try_from(state.config.conversation_max_age_seconds).unwrap_or(i64::MAX / 1000),
    );
    let search = ConversationQuery {
        page_id: query.page_id,
        limit,
        created_after: chrono::Utc::now().checked_sub_signed(max_age),
        selected_repository: query.selected_repository,
        trigger: query.conversation_trigger,
    };
    let scope = user.scope();
    let page = state
        .ext
        .conversation_store
        .search(scope, &search)
        .await
        .map_err(|e| match e {
            StoreError::Invalid(message) => ApiError::detail(StatusCode::BAD_REQUEST, message),
            other => store_failure(other),
        })?;
    let ids: Vec<String> = page
        .results
        .iter()
        .map(|m| m.conversation_id.clone())
        .collect();
    let statuses = state
        .ext
        .conversation_manager
        .statuses(scope, &ids)
        .await
        .map_err(manager_failure)?;
    let results = page
        .results
        .into_iter()
        .map(|meta| {
            let status = statuses
                .get(&meta.conversation_id)
                .copied()
                .unwrap_or(ConversationStatus::Stopped);
            ConversationInfo::from_metadata(meta, status)
        })
        .collect();
    Ok(HttpResponse::Ok().json(ConversationInfoResultSet {
        results,
        next_page_id: page.next_page_id,
    }))
}

/// One conversation, or `null` when it does not exist.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}", tag = "conversations",
    params(("conversation_id" = String, Path)), security(("user" = [])), responses(
    (status = 200, description = "The conversation, or `null` when there is none", body = Option<ConversationInfo>),
    (status = 400, description = "Invalid conversation id", body = ErrorDetail),
    (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn get_conversation(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = conversation_id_from(path)?;
    let scope = user.scope();
    let Some(meta) = state
        .ext
        .conversation_store
        .get(scope, &id)
        .await
        .map_err(store_failure)?
    else {
        return Ok(HttpResponse::Ok().json(Value::Null));
    };
    let status = state
        .ext
        .conversation_manager
        .statuses(scope, std::slice::from_ref(&id))
        .await
        .map_err(manager_failure)?
        .remove(&id)
        .unwrap_or(ConversationStatus::Stopped);
    Ok(HttpResponse::Ok().json(ConversationInfo::from_metadata(meta, status)))
}

/// Renames a conversation; answers `true`.
#[utoipa::path(patch, path = "/api/conversations/{conversation_id}", tag = "conversations",
    params(("conversation_id" = String, Path)), security(("user" = [])), request_body = UpdateConversationRequest, responses(
    (status = 200, body = bool, content_type = "application/json"),
    (status = 400, description = "Invalid conversation id", body = ErrorDetail),
    (status = 404, description = "`CONVERSATION$NOT_FOUND`", body = StatusError),
    (status = 422, description = "Title empty, longer than 200 characters or holding a NUL character", body = ValidationErrors),
    (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn rename_conversation(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<UpdateConversationRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = conversation_id_from(path)?;
    ApiError::refuse_nul("body", "title", &body.title)?;
    let title = body.title.trim();
    let length = title.chars().count();
    if length == 0 || length > MAX_TITLE_LEN {
        return Err(ApiError::validation(
            "title",
            format!("title: must be 1 to {MAX_TITLE_LEN} characters after trimming, got {length}"),
            "string_length",
        ));
    }
    let scope = user.scope();
    let mut meta = state
        .ext
        .conversation_store
        .get(scope, &id)
        .await
        .map_err(store_failure)?
        .ok_or_else(|| {
            ApiError::status_error(
                StatusCode::NOT_FOUND,
                "Conversation not found",
                "CONVERSATION$NOT_FOUND",
            )
        })?;
    meta.title = Some(title.to_owned());
    meta.last_updated_at = Some(chrono::Utc::now());
    state
        .ext
        .conversation_store
        .save(scope, &meta)
        .await
        .map_err(|e| {
            ApiError::store(
                e,
                json!({"status": "error", "message": "Failed to update conversation", "msg_id": "CONVERSATION$UPDATE_ERROR"}),
            )
        })?;
    Ok(HttpResponse::Ok().json(true))
}

/// Deletes a conversation and everything stored under it; `false` when it did not exist.
#[utoipa::path(delete, path = "/api/conversations/{conversation_id}", tag = "conversations",
    params(("conversation_id" = String, Path)), security(("user" = [])), responses(
    (status = 200, description = "`true` when it was deleted, `false` when there was none", body = bool, content_type = "application/json"),
    (status = 400, description = "Invalid conversation id", body = ErrorDetail),
    (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn delete_conversation(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = conversation_id_from(path)?;
    let scope = user.scope();
    let exists = state
        .ext
        .conversation_store
        .get(scope, &id)
        .await
        .map_err(store_failure)?
        .is_some();
    if !exists {
        return Ok(HttpResponse::Ok().json(false));
    }
    state
        .ext
        .conversation_manager
        .stop(scope, &id)
        .await
        .map_err(manager_failure)?;
    state.ext.sandbox.remove(scope, &id).await.map_err(|e| {
        ApiError::internal(
            &e,
            json!({"status": "error", "message": "Removing the workspace failed"}),
        )
    })?;
    state
        .ext
        .event_store
        .delete_all(scope, &id)
        .await
        .map_err(store_failure)?;
    let deleted = state
        .ext
        .conversation_store
        .delete(scope, &id)
        .await
        .map_err(store_failure)?;
    Ok(HttpResponse::Ok().json(deleted))
}
