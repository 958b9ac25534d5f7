//! `GET /api/conversations/{id}/trajectory`, streamed.
//!
//! OpenHands answers `{"trajectory": [every event]}`. Building that answer whole held every
//! event of a conversation, twice (as events and as JSON), per request; a long
//! conversation made that hundreds of megabytes. This handler writes the same bytes as a
//! chunked body instead: the head, then the events [`PAGE`] at a time (each page read in a
//! task of its own, like the socket's replay, so a slow reader never sits on a store lock
//! the agent needs), then the tail. Memory per request is one page.
//!
//! The first page is read before answering, so a store that fails at once still gets
//! OpenHands' 500 `{"trajectory": null, "error"}`. A failure after the answer has begun
//! can only cut the body short: the stream ends with an error, the connection is dropped
//! without the last chunk, and the client sees an incomplete response, never a complete
//! looking but partial trajectory.
//!
//! It lives outside `routes::control` (the non-streaming handler there is mounted after
//! this one and so no longer answers); see `configure`.

use crate::error::ApiError;
use crate::error::schema::ErrorDetail;
use crate::event_feed::ReplaySource;
use crate::routes::conversations::conversation_id_from;
use crate::state::AppState;
use crate::user::CurrentUser;
use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use futures_util::stream;
use openhands_core::event::{Event, EventPage};
use serde_json::json;
use utoipa::ToSchema;

/// Events read from the store per chunk.
const PAGE: usize = 20;

fn read_failed(err: &dyn std::fmt::Display) -> ApiError {
    ApiError::internal(
        err,
        json!({"trajectory": null, "error": "Failed to read events"}),
    )
}

/// The answer's shape (only the OpenAPI document uses this type).
#[derive(ToSchema)]
#[allow(dead_code)]
struct Trajectory {
    trajectory: Vec<Event>,
}

/// Every stored event of the conversation, streamed; see the module docs.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/trajectory", tag = "conversations",
    params(("conversation_id" = String, Path)), security(("user" = [])), responses(
    (status = 200, description = "`{\"trajectory\": [event, ...]}`, every stored event", body = Trajectory),
    (status = 400, description = "Invalid conversation id", body = ErrorDetail),
    (status = 404, description = "No such conversation", body = ErrorDetail),
    (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
pub async fn trajectory(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = conversation_id_from(path)?;
    let found = state
        .ext
        .conversation_store
        .get(user.scope(), &id)
        .await
        .map_err(|e| ApiError::store(e, json!({"status": "error", "conversation_id": id})))?;
    if found.is_none() {
        return Err(ApiError::detail(
            StatusCode::NOT_FOUND,
            format!("Conversation {id} not found"),
        ));
    }
    let source = ReplaySource {
        store: state.ext.event_store.clone(),
        scope: user.scope().clone(),
        conversation_id: id,
    };
    let first = source
        .page_after(-1, PAGE)
        .await
        .map_err(|e| read_failed(&e))?;
    let body = stream::unfold(Some(Step::First(first, source)), next_chunk);
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .streaming(body))
}

/// Where the stream is.
enum Step {
    /// The first page, already read.
    First(EventPage, ReplaySource),
    /// Events after this id are still to come.
    After(i64, ReplaySource),
    /// Only the tail is left.
    Tail,
}

async fn next_chunk(step: Option<Step>) -> Option<(Result<Bytes, actix_web::Error>, Option<Step>)> {
    let (page, source, head) = match step? {
        Step::First(page, source) => (page, source, true),
        Step::After(last, source) => match source.page_after(last, PAGE).await {
            Ok(page) => (page, source, false),
            Err(err) => {
                tracing::error!(error = %err, "streaming a trajectory failed");
                let err = actix_web::error::ErrorInternalServerError("reading events failed");
                return Some((Err(err), None));
            }
        },
        Step::Tail => return Some((Ok(Bytes::from_static(b"]}")), None)),
    };
    let mut chunk = Vec::with_capacity(1024);
    if head {
        chunk.extend_from_slice(b"{\"trajectory\":[");
    }
    for (n, event) in page.events.iter().enumerate() {
        if !head || n > 0 {
            chunk.push(b',');
        }
        if let Err(err) = serde_json::to_writer(&mut chunk, event) {
            tracing::error!(error = %err, id = event.id, "encoding an event failed");
            let err = actix_web::error::ErrorInternalServerError("encoding events failed");
            return Some((Err(err), None));
        }
    }
    let last = page.events.last().map(|e| e.id);
    let next = match last {
        Some(id) if page.has_more => Step::After(i64::try_from(id).unwrap_or(i64::MAX), source),
        _ => Step::Tail,
    };
    // A first page with no events writes `[` and the tail closes it.
    if !head && page.events.is_empty() {
        return Some((Ok(Bytes::from_static(b"]}")), None));
    }
    Some((Ok(Bytes::from(chunk)), Some(next)))
}
