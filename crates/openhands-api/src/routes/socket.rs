//! Live events over a WebSocket: `GET /api/conversations/{id}/events/socket`.
//!
//! On connect the socket subscribes to the conversation's live feed *first*, then replays
//! stored events after `latest_event_id`, then forwards live ones, skipping ids it already
//! sent. Events are stored before they are published, so this gives no gap and no
//! duplicate. Text frames from the client are OpenHands action dicts (a `message`, or
//! `change_agent_state` to confirm, reject or stop). A watcher too slow to keep up is
//! closed with a reason (the agent never waits for it); pings keep the connection alive.
//! Browsers cannot set headers on a WebSocket, so `session_api_key` may come as a query
//! parameter.

use super::conversations::conversation_id_from;
use crate::agent_control::{deliver, parse_action};
use crate::error::ApiError;
use crate::state::AppState;
use crate::user::{CurrentUser, authenticate};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use futures_util::StreamExt;
use openhands_core::conversation::ConversationMetadata;
use openhands_core::event::{Event, EventQuery};
use openhands_core::extension::{LiveMessage, LiveReceiver};
use openhands_core::oss::SESSION_API_KEY_HEADER;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How often the server pings an idle socket.
const PING_EVERY: Duration = Duration::from_secs(20);
/// Events read from the store per replay page.
const REPLAY_PAGE: usize = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/conversations/{conversation_id}/events/socket",
        web::get().to(socket),
    );
}

#[derive(Debug, Deserialize)]
pub struct SocketQuery {
    /// Last event id the client has; replay starts after it. Default -1 (everything).
    pub latest_event_id: Option<i64>,
    pub session_api_key: Option<String>,
}

/// Upgrades to a WebSocket streaming the conversation's events.
pub async fn socket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<SocketQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = conversation_id_from(path)?;
    let mut headers = req.headers().clone();
    let query_key = query
        .session_api_key
        .as_deref()
        .filter(|_| !headers.contains_key(SESSION_API_KEY_HEADER))
        .and_then(|key| HeaderValue::from_str(key).ok());
    if let Some(value) = query_key {
        headers.insert(HeaderName::from_static(SESSION_API_KEY_HEADER), value);
    }
    let user = authenticate(&state, headers).await?;
    let metadata = state
        .ext
        .conversation_store
        .get(user.scope(), &id)
        .await
        .map_err(|e| ApiError::internal(&e, json!({"detail": "Storage failed"})))?
        .ok_or_else(|| {
            ApiError::detail(
                StatusCode::NOT_FOUND,
                format!("Conversation {id} not found"),
            )
        })?;
    let live = state
        .ext
        .conversation_manager
        .subscribe(user.scope(), &id)
        .await
        .map_err(|e| {
            ApiError::internal(&e, json!({"detail": "Could not watch the conversation"}))
        })?;
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        ApiError::detail(
            StatusCode::BAD_REQUEST,
            format!("WebSocket upgrade failed: {e}"),
        )
    })?;
    let latest = query.latest_event_id.unwrap_or(-1).max(-1);
    actix_web::rt::spawn(async move {
        let manager = state.ext.conversation_manager.clone();
        manager.watcher_count_changed(&id, 1);
        let reason = Watcher {
            state,
            user,
            metadata,
            session: session.clone(),
            last_sent: latest,
        }
        .run(live, stream)
        .await;
        manager.watcher_count_changed(&id, -1);
        let _ = session.close(reason).await;
    });
    Ok(response)
}

struct Watcher {
    state: web::Data<AppState>,
    user: CurrentUser,
    metadata: ConversationMetadata,
    session: Session,
    last_sent: i64,
}

impl Watcher {
    /// Runs until the socket ends; returns the close reason to send.
    async fn run(
        mut self,
        mut live: LiveReceiver,
        mut stream: MessageStream,
    ) -> Option<CloseReason> {
        if self.replay().await.is_err() {
            return None;
        }
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                message = live.recv() => match message {
                    Ok(LiveMessage::Event { id, json }) => {
                        if self.send_json(id, &json).await.is_err() {
                            return None;
                        }
                    }
                    Ok(LiveMessage::Notice(notice)) => {
                        if self.session.text(notice.to_string()).await.is_err() {
                            return None;
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        return Some(CloseReason {
                            code: CloseCode::Policy,
                            description: Some(format!(
                                "watcher too slow: {missed} messages missed; reconnect with latest_event_id={}",
                                self.last_sent
                            )),
                        });
                    }
                    Err(RecvError::Closed) => return Some(CloseCode::Away.into()),
                },
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Text(text))) => self.handle_client_text(&text).await,
                    Some(Ok(Message::Ping(bytes))) => {
                        if self.session.pong(&bytes).await.is_err() {
                            return None;
                        }
                    }
                    Some(Ok(Message::Close(reason))) => return reason,
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return None,
                },
                _ = ping.tick() => {
                    if self.session.ping(b"").await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    async fn replay(&mut self) -> Result<(), ()> {
        loop {
            let start_id = u64::try_from(self.last_sent + 1).unwrap_or(0);
            let query = EventQuery {
                start_id,
                end_id: None,
                reverse: false,
                limit: REPLAY_PAGE,
            };
            let page = self
                .state
                .ext
                .event_store
                .read(self.user.scope(), &self.metadata.conversation_id, query)
                .await
                .map_err(|e| tracing::error!(error = %e, "replaying events failed"))?;
            for event in &page.events {
                self.send_event(event).await?;
            }
            if !page.has_more || page.events.is_empty() {
                return Ok(());
            }
        }
    }

    async fn send_event(&mut self, event: &Event) -> Result<(), ()> {
        let text = serde_json::to_string(event).map_err(|_| ())?;
        self.send_json(event.id, &text).await
    }

    /// Sends an event's JSON unless this watcher already has it.
    async fn send_json(&mut self, id: u64, json: &str) -> Result<(), ()> {
        let id = i64::try_from(id).unwrap_or(i64::MAX);
        if id <= self.last_sent {
            return Ok(());
        }
        self.session.text(json.to_owned()).await.map_err(|_| ())?;
        self.last_sent = id;
        Ok(())
    }

    async fn handle_client_text(&mut self, text: &str) {
        let result = match serde_json::from_str(text) {
            Ok(value) => match parse_action(&value) {
                Ok(action) => deliver(
                    &self.state,
                    self.user.scope(),
                    self.metadata.clone(),
                    action,
                )
                .await
                .map_err(|e| e.body.to_string()),
                Err(message) => Err(message),
            },
            Err(e) => Err(format!("not JSON: {e}")),
        };
        if let Err(message) = result {
            let _ = self
                .session
                .text(json!({"error": true, "message": message}).to_string())
                .await;
        }
    }
}
