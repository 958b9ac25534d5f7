//! Live events over a WebSocket: `GET /api/conversations/{id}/events/socket`.
//!
//! The response body is an [`EventFeed`]: stored events after `latest_event_id`, then live
//! ones, with no gap and no duplicate (see [`crate::event_feed`]). This module does the
//! upgrade and runs the reading side: text frames from the client are OpenHands action
//! dicts (a `message`, or `change_agent_state` to confirm, reject or stop), pings are
//! answered, and the server pings every [`PING_EVERY`] to keep idle connections open. At a
//! graceful shutdown, once the conversations were handed over, the socket closes with 1012
//! (service restart) so the client reconnects at once (see [`crate::lifecycle`]).
//! Browsers cannot set headers on a WebSocket, so `session_api_key` may come as a query
//! parameter. Browsers do send `Origin`, and no CORS rule stops a page on another site from
//! opening a WebSocket: [`crate::origin::OriginCheck`] refuses such upgrades before this
//! handler runs.

use super::conversations::conversation_id_from;
use crate::agent_control::{deliver, parse_action};
use crate::error::ApiError;
use crate::event_feed::{Control, EventFeed, OnDrop, ReplaySource};
use crate::lifecycle::RESTART_CLOSE_REASON;
use crate::state::AppState;
use crate::user::{AuthRequest, CurrentUser, PendingCookies, authenticate};
use actix_http::ws::{CloseCode, CloseReason, Codec, Frame, Item, ProtocolError};
use actix_web::body::{BodyStream, MessageBody};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use bytes::BytesMut;
use futures_util::StreamExt;
use openhands_core::conversation::ConversationMetadata;
use openhands_core::oss::SESSION_API_KEY_HEADER;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::codec::Decoder;

/// How often the server pings an idle socket.
const PING_EVERY: Duration = Duration::from_secs(20);
/// The largest message a client may send (a user message with its text). The codec's
/// `max_size` bounds each frame; a message sent as a text frame and continuation frames is
/// bounded here as it is reassembled (it was not: 400 MiB of continuations grew the server
/// from 37 to 910 MB). Either way the socket is closed with 1009 (message too big).
const MAX_CLIENT_MESSAGE: usize = 1024 * 1024;
/// Frames the reading side may queue for the feed before it stops reading.
const CONTROL_QUEUE: usize = 16;

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
    let mut request = AuthRequest::of(&req);
    let headers = &mut request.headers;
    let query_key = query
        .session_api_key
        .as_deref()
        .filter(|_| !headers.contains_key(SESSION_API_KEY_HEADER))
        .and_then(|key| HeaderValue::from_str(key).ok());
    if let Some(value) = query_key {
        headers.insert(HeaderName::from_static(SESSION_API_KEY_HEADER), value);
    }
    let user = authenticate(&state, request).await?;
    // A session refreshed by this connect must reach the browser whatever the answer (the
    // upgrade or an error), or its next request would present the spent refresh token.
    if !user.0.set_cookies.is_empty() {
        req.extensions_mut()
            .insert(PendingCookies(user.0.set_cookies.clone()));
    }
    // Opening a socket counts against the user's limit like any authenticated request.
    crate::rate_limit::check_user(&state, &user).await?;
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
    let mut response = actix_http::ws::handshake(req.head()).map_err(|e| {
        ApiError::detail(
            StatusCode::BAD_REQUEST,
            format!("WebSocket upgrade failed: {e}"),
        )
    })?;
    let manager = state.ext.conversation_manager.clone();
    let live = manager.subscribe(user.scope(), &id).await.map_err(|e| {
        ApiError::internal(&e, json!({"detail": "Could not watch the conversation"}))
    })?;
    manager.watcher_count_changed(&id, 1);
    let on_drop = {
        let id = id.clone();
        OnDrop::new(move || manager.watcher_count_changed(&id, -1))
    };
    let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let replay = ReplaySource {
        store: state.ext.event_store.clone(),
        scope: user.scope().clone(),
        conversation_id: id,
    };
    let latest = query.latest_event_id.unwrap_or(-1);
    let feed = EventFeed::new(replay, latest, live, control_rx, on_drop);
    actix_web::rt::spawn(
        ClientSide {
            state,
            user,
            metadata,
            control,
        }
        .run(body),
    );
    let response = response
        .message_body(BodyStream::new(feed).boxed())
        .map_err(|e| ApiError::internal(&e, json!({"detail": "WebSocket upgrade failed"})))?;
    Ok(response.into())
}

/// The reading side of one socket.
struct ClientSide {
    state: web::Data<AppState>,
    user: CurrentUser,
    metadata: ConversationMetadata,
    control: mpsc::Sender<Control>,
}

impl ClientSide {
    /// Reads frames until the client closes, the connection ends or the feed is gone.
    async fn run(self, mut body: web::Payload) {
        let mut codec = Codec::new().max_size(MAX_CLIENT_MESSAGE);
        let mut buf = BytesMut::new();
        let mut fragments: Option<BytesMut> = None;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let lifecycle = self.state.lifecycle.clone();
        loop {
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        if !self.on_frame(frame, &mut fragments).await {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(err) => {
                        self.close_for(&err).await;
                        return;
                    }
                }
            }
            tokio::select! {
                chunk = body.next() => match chunk {
                    Some(Ok(bytes)) => buf.extend_from_slice(&bytes),
                    Some(Err(_)) | None => return,
                },
                _ = ping.tick() => {
                    if self.control.send(Control::Ping(bytes::Bytes::new())).await.is_err() {
                        return;
                    }
                }
                () = self.control.closed() => return,
                () = lifecycle.sockets_closing() => {
                    // Code 1012: clients reconnect at once, to a live server.
                    let reason = CloseReason {
                        code: CloseCode::Restart,
                        description: Some(RESTART_CLOSE_REASON.to_owned()),
                    };
                    let _ = self.control.send(Control::Close(Some(reason))).await;
                    return;
                }
            }
        }
    }

    /// Handles one frame; false ends the reading side.
    async fn on_frame(&self, frame: Frame, fragments: &mut Option<BytesMut>) -> bool {
        let message = match frame {
            Frame::Text(bytes) => bytes,
            Frame::Continuation(Item::FirstText(bytes)) => {
                *fragments = Some(BytesMut::from(&bytes[..]));
                return true;
            }
            Frame::Continuation(Item::Continue(bytes)) => {
                if let Some(parts) = fragments.as_mut() {
                    if parts.len() + bytes.len() > MAX_CLIENT_MESSAGE {
                        self.close_for(&ProtocolError::Overflow).await;
                        return false;
                    }
                    parts.extend_from_slice(&bytes);
                }
                return true;
            }
            Frame::Continuation(Item::Last(bytes)) => match fragments.take() {
                Some(parts) if parts.len() + bytes.len() > MAX_CLIENT_MESSAGE => {
                    self.close_for(&ProtocolError::Overflow).await;
                    return false;
                }
                Some(mut parts) => {
                    parts.extend_from_slice(&bytes);
                    parts.freeze()
                }
                None => return true,
            },
            Frame::Ping(bytes) => return self.control.send(Control::Pong(bytes)).await.is_ok(),
            Frame::Close(reason) => {
                let _ = self.control.send(Control::Close(reason)).await;
                return false;
            }
            Frame::Pong(_) | Frame::Binary(_) | Frame::Continuation(Item::FirstBinary(_)) => {
                return true;
            }
        };
        let reply = match std::str::from_utf8(&message) {
            Ok(text) => self.handle_text(text).await,
            Err(_) => Err("not UTF-8 text".to_owned()),
        };
        match reply {
            Ok(()) => true,
            Err(message) => {
                let error = json!({"error": true, "message": message}).to_string();
                self.control.send(Control::Text(error)).await.is_ok()
            }
        }
    }

    async fn handle_text(&self, text: &str) -> Result<(), String> {
        let value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let action = parse_action(&value)?;
        deliver(
            &self.state,
            self.user.scope(),
            self.metadata.clone(),
            action,
        )
        .await
        .map_err(|e| e.body.to_string())
    }

    /// Closes the socket after a frame that breaks the protocol or the size limit.
    async fn close_for(&self, err: &ProtocolError) {
        let code = match err {
            ProtocolError::Overflow => CloseCode::Size,
            _ => CloseCode::Protocol,
        };
        let reason = CloseReason {
            code,
            description: Some(err.to_string()),
        };
        let _ = self.control.send(Control::Close(Some(reason))).await;
    }
}
