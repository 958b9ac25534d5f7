//! Starting agents and turning user actions into conversation input, shared by the REST
//! routes and the WebSocket.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use openhands_core::conversation::{ConversationMetadata, ConversationStatus};
use openhands_core::event::NewEvent;
use openhands_core::extension::{ConversationInput, ManagerError, StartRequest};
use openhands_core::scope::UserScope;
use serde_json::{Value, json};

/// Why an agent could not be started.
#[derive(Debug)]
pub enum StartError {
    SettingsMissing,
    /// The server runs `max_running_conversations` already (the manager's message).
    AtCapacity(String),
    /// This server is shutting down (the manager's message).
    ShuttingDown(String),
    Failed(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::SettingsMissing => f.write_str("Settings not found"),
            StartError::AtCapacity(message)
            | StartError::ShuttingDown(message)
            | StartError::Failed(message) => f.write_str(message),
        }
    }
}

impl StartError {
    /// The answer to a start that failed: a full server is [`capacity_reached`] on every
    /// route; anything else is what `otherwise` builds in the route's own shape.
    pub fn into_api_error(self, otherwise: impl FnOnce(StartError) -> ApiError) -> ApiError {
        match self {
            StartError::AtCapacity(message) => capacity_reached(&message),
            StartError::ShuttingDown(message) => shutting_down(&message),
            other => otherwise(other),
        }
    }
}

/// Seconds a client is asked to wait before starting a conversation again on a full server.
pub const CAPACITY_RETRY_AFTER_SECONDS: u32 = 30;

/// 503 `{"detail", "code": "capacity_reached"}` with `Retry-After`: the server (or cluster)
/// runs the most conversations `max_running_conversations` allows. Not a failure of this
/// request, so not logged as one; nothing was stopped to make room.
pub fn capacity_reached(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"detail": message, "code": "capacity_reached"}),
    )
    .with_header("retry-after", CAPACITY_RETRY_AFTER_SECONDS.to_string())
}

/// 503 `{"detail", "code": "server_shutting_down"}` with `Retry-After: 1`: this server is
/// draining for a shutdown and starts nothing; the load balancer sends the retry to another
/// server (`/ready` already answers 503 here).
pub fn shutting_down(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"detail": message, "code": "server_shutting_down"}),
    )
    .with_header("retry-after", "1".to_owned())
}

/// Starts (or finds running) the agent of a stored conversation with the user's current
/// settings and secrets.
pub async fn start_agent(
    state: &AppState,
    scope: &UserScope,
    metadata: ConversationMetadata,
) -> Result<ConversationStatus, StartError> {
    let failed = |e: &dyn std::fmt::Display| StartError::Failed(e.to_string());
    let (settings, secrets) = tokio::join!(
        state.ext.settings_store.load(scope),
        state.ext.secrets_store.load(scope)
    );
    let settings = settings
        .map_err(|e| failed(&e))?
        .ok_or(StartError::SettingsMissing)?;
    let secrets = secrets.map_err(|e| failed(&e))?.unwrap_or_default();
    let conversation_instructions = metadata.conversation_instructions.clone();
    state
        .ext
        .conversation_manager
        .start(StartRequest {
            scope: scope.clone(),
            metadata,
            settings,
            secrets,
            conversation_instructions,
            resume_work: false,
        })
        .await
        .map_err(|e| match e {
            ManagerError::CapacityReached { .. } => StartError::AtCapacity(e.to_string()),
            ManagerError::ShuttingDown => StartError::ShuttingDown(e.to_string()),
            other => failed(&other),
        })
}

/// A user action from a client, in OpenHands' action-dict shape.
pub enum UserAction {
    Message {
        content: String,
        image_urls: Vec<String>,
    },
    Confirm,
    Reject,
    Stop,
}

/// Parses `{"action": "...", "args": {...}}` as sent by OpenHands clients.
pub fn parse_action(value: &Value) -> Result<UserAction, String> {
    let action = value
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let args = value.get("args").cloned().unwrap_or_else(|| json!({}));
    match action {
        "message" => {
            let content = args
                .get("content")
                .and_then(Value::as_str)
                .ok_or("a message action needs args.content")?
                .to_owned();
            let image_urls = args
                .get("image_urls")
                .and_then(Value::as_array)
                .map(|urls| {
                    urls.iter()
                        .filter_map(|u| u.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            Ok(UserAction::Message {
                content,
                image_urls,
            })
        }
        "change_agent_state" => match args.get("agent_state").and_then(Value::as_str) {
            Some("user_confirmed") => Ok(UserAction::Confirm),
            Some("user_rejected") => Ok(UserAction::Reject),
            Some("stopped") => Ok(UserAction::Stop),
            other => Err(format!(
                "agent_state {other:?} is not supported; use user_confirmed, user_rejected or stopped"
            )),
        },
        "" => Err("the body needs an `action`".to_owned()),
        other => Err(format!("action `{other}` cannot be sent by a client")),
    }
}

/// Delivers a user action. A message to a conversation that is not running is stored
/// and starts the agent, which then answers it.
pub async fn deliver(
    state: &AppState,
    scope: &UserScope,
    metadata: ConversationMetadata,
    action: UserAction,
) -> Result<(), ApiError> {
    let id = metadata.conversation_id.clone();
    let manager = &state.ext.conversation_manager;
    let input = match action {
        UserAction::Stop => {
            manager.stop(scope, &id).await.map_err(manager_failure)?;
            return Ok(());
        }
        UserAction::Confirm => ConversationInput::Confirm,
        UserAction::Reject => ConversationInput::Reject,
        UserAction::Message {
            content,
            image_urls,
        } => ConversationInput::Message {
            content,
            image_urls,
        },
    };
    match manager.send(scope, &id, input.clone()).await {
        Ok(()) => Ok(()),
        Err(ManagerError::NotRunning(_)) => {
            let ConversationInput::Message {
                content,
                image_urls,
            } = input
            else {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    json!({"success": false, "error": "The agent is not running, so there is nothing to confirm"}),
                ));
            };
            let event = NewEvent::user_message(&content, image_urls);
            state
                .ext
                .event_store
                .append(scope, &id, event)
                .await
                .map_err(|e| {
                    ApiError::internal(
                        &e,
                        json!({"success": false, "error": "Failed to store the message"}),
                    )
                })?;
            start_agent(state, scope, metadata).await.map_err(|e| {
                e.into_api_error(|e| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        json!({"success": false, "error": format!("Failed to start conversation: {e}")}),
                    )
                })
            })?;
            Ok(())
        }
        Err(other) => Err(manager_failure(other)),
    }
}

/// A manager failure as a 500 in the per-conversation routes' shape.
pub fn manager_failure(err: ManagerError) -> ApiError {
    ApiError::internal(&err, json!({"success": false, "error": err.to_string()}))
}
