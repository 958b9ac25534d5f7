//! `GET /api/conversations/{id}/events`: a paged read of the stored events.

use super::conversations::conversation_id_from;
use crate::error::ApiError;
use crate::state::AppState;
use crate::user::CurrentUser;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use openhands_core::event::{EventPage, EventQuery};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/conversations/{conversation_id}/events",
        web::get().to(read_events),
    );
}

/// Query of the events read.
#[derive(Debug, Deserialize, IntoParams)]
pub struct EventsQuery {
    /// First id, default 0.
    pub start_id: Option<u64>,
    /// Last id, inclusive.
    pub end_id: Option<u64>,
    /// Newest first.
    pub reverse: Option<bool>,
    /// 0 to 100, default 20.
    pub limit: Option<i64>,
}

/// A page of a conversation's events, read from the event store (no running agent needed).
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/events", tag = "conversations",
    params(("conversation_id" = String, Path), EventsQuery), responses(
    (status = 200, body = EventPage),
    (status = 400, description = "Invalid limit or conversation id", example = json!({"detail": "Invalid limit"})),
    (status = 404, description = "No such conversation")))]
pub async fn read_events(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = conversation_id_from(path)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT as i64);
    if !(0..=MAX_LIMIT as i64).contains(&limit) {
        return Err(ApiError::detail(StatusCode::BAD_REQUEST, "Invalid limit"));
    }
    let failed = |e: openhands_core::StoreError| {
        ApiError::internal(&e, json!({"detail": "Failed to read events"}))
    };
    let scope = user.scope();
    if state
        .ext
        .conversation_store
        .get(scope, &id)
        .await
        .map_err(failed)?
        .is_none()
    {
        return Err(ApiError::detail(
            StatusCode::NOT_FOUND,
            format!("Conversation {id} not found"),
        ));
    }
    let page = state
        .ext
        .event_store
        .read(
            scope,
            &id,
            EventQuery {
                start_id: query.start_id.unwrap_or(0),
                end_id: query.end_id,
                reverse: query.reverse.unwrap_or(false),
                limit: limit as usize,
            },
        )
        .await
        .map_err(failed)?;
    Ok(HttpResponse::Ok().json(page))
}
