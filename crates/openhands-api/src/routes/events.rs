//! `GET /api/conversations/{id}/events`: a paged read of the stored events.
//!
//! A page is bounded by count (`limit`, at most 100) as in OpenHands, and also by size:
//! a hundred large observations made a 29 MB page, and eight concurrent reads took the
//! server from 386 to 691 MB. A page stops before the event that would take its JSON past
//! [`MAX_PAGE_BYTES`] and says `"has_more": true`, as a page cut by `limit` does, so
//! clients that page on `has_more` (and continue after the last id they got) need no
//! change. A page always holds at least one event, however large. The store is read
//! [`STORE_BATCH`] events at a time while the page fills, so no read holds more than that
//! many events in memory.

use super::conversations::conversation_id_from;
use crate::error::ApiError;
use crate::error::schema::ErrorDetail;
use crate::state::AppState;
use crate::user::CurrentUser;
use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use openhands_core::error::StoreError;
use openhands_core::event::{EventPage, EventQuery};
use openhands_core::extension::EventStore;
use openhands_core::scope::UserScope;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;
/// A page ends early rather than grow past this many bytes of JSON.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Events read from the store at a time while a page fills (the default `limit`, so a
/// default page is one read).
const STORE_BATCH: usize = DEFAULT_LIMIT;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/conversations/{conversation_id}/events",
        web::get().to(read_events),
    );
}

/// Query of the events read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// First id, default 0.
    pub start_id: Option<u64>,
    /// Last id, inclusive.
    pub end_id: Option<u64>,
    /// Newest first.
    pub reverse: Option<bool>,
    /// 0 to 100, default 20.
    #[param(minimum = 0, maximum = 100)]
    pub limit: Option<i64>,
}

/// A page of a conversation's events, read from the event store (no running agent needed).
/// A page ends early, with `has_more`, rather than grow past 4 MiB.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/events", tag = "conversations",
    params(("conversation_id" = String, Path), EventsQuery), security(("user" = [])), responses(
    (status = 200, body = EventPage),
    (status = 400, description = "Invalid limit or conversation id", body = ErrorDetail, example = json!({"detail": "Invalid limit"})),
    (status = 404, description = "No such conversation", body = ErrorDetail),
    (status = 503, description = "Storage unavailable for now; `Retry-After` says when to retry", body = ErrorDetail)))]
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
        ApiError::store(e, json!({"detail": "Failed to read events"}))
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
    let query = EventQuery {
        start_id: query.start_id.unwrap_or(0),
        end_id: query.end_id,
        reverse: query.reverse.unwrap_or(false),
        limit: limit as usize,
    };
    let page = read_page(
        state.ext.event_store.as_ref(),
        scope,
        &id,
        query,
        MAX_PAGE_BYTES,
    )
    .await
    .map_err(failed)?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(page))
}

/// The JSON of an [`EventPage`] for `query`, ended early (with `has_more`) before it grows
/// past `max_bytes`; see the module docs.
pub async fn read_page(
    store: &dyn EventStore,
    scope: &UserScope,
    conversation_id: &str,
    query: EventQuery,
    max_bytes: usize,
) -> Result<Vec<u8>, StoreError> {
    const HEAD: &[u8] = b"{\"events\":[";
    const TAIL: usize = b"],\"has_more\":false}".len();
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(HEAD);
    let mut next = query;
    let mut count = 0;
    let has_more = 'fill: loop {
        let want = (query.limit - count).min(STORE_BATCH);
        let batch = store
            .read(
                scope,
                conversation_id,
                EventQuery {
                    limit: want,
                    ..next
                },
            )
            .await?;
        let Some(last) = batch.events.last().map(|e| e.id) else {
            break batch.has_more;
        };
        for event in &batch.events {
            let before = out.len();
            if count > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, event)
                .map_err(|e| StoreError::Backend(format!("encoding event {}: {e}", event.id)))?;
            if count > 0 && out.len() + TAIL > max_bytes {
                out.truncate(before);
                break 'fill true;
            }
            count += 1;
        }
        if !batch.has_more || count == query.limit {
            break batch.has_more;
        }
        if next.reverse {
            match last.checked_sub(1) {
                Some(end) if end >= next.start_id => next.end_id = Some(end),
                _ => break false,
            }
        } else {
            next.start_id = last + 1;
        }
    };
    out.extend_from_slice(b"],\"has_more\":");
    out.extend_from_slice(if has_more { &b"true}"[..] } else { b"false}" });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openhands_core::event::NewEvent;
    use openhands_core::oss::FileEventStore;

    const ID: &str = "pagetest";

    /// A store holding one user message per size, of about that many bytes each.
    async fn store_of(sizes: &[usize]) -> (tempfile::TempDir, FileEventStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FileEventStore::new(dir.path().to_path_buf());
        for size in sizes {
            let text = "x".repeat(*size);
            store
                .append(
                    &UserScope::local(),
                    ID,
                    NewEvent::user_message(&text, vec![]),
                )
                .await
                .expect("append");
        }
        (dir, store)
    }

    async fn page(store: &FileEventStore, query: EventQuery, max: usize) -> (Vec<u64>, bool) {
        let bytes = read_page(store, &UserScope::local(), ID, query, max)
            .await
            .expect("page");
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        let ids = value["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["id"].as_u64())
            .collect();
        (ids, value["has_more"] == true)
    }

    fn query(start_id: u64, end_id: Option<u64>, reverse: bool, limit: usize) -> EventQuery {
        EventQuery {
            start_id,
            end_id,
            reverse,
            limit,
        }
    }

    #[tokio::test]
    async fn under_the_cap_a_page_is_byte_for_byte_the_stores_page() {
        let (_dir, store) = store_of(&[10; 130]).await;
        for q in [
            query(0, None, false, 20),
            query(0, None, false, 100),
            query(5, None, false, 100),
            query(120, None, false, 100),
            query(0, None, true, 100),
            query(3, Some(90), true, 45),
            query(3, Some(90), false, 100),
            query(0, None, false, 0),
            query(0, None, false, 1),
            query(200, None, false, 20),
        ] {
            let ours = read_page(&store, &UserScope::local(), ID, q, MAX_PAGE_BYTES)
                .await
                .expect("page");
            let theirs = store.read(&UserScope::local(), ID, q).await.expect("read");
            let theirs = serde_json::to_vec(&theirs).expect("json");
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{q:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_page_ends_before_the_event_that_would_pass_the_cap() {
        let (_dir, store) = store_of(&[400, 400, 400, 5000, 400]).await;
        let first = store
            .read(&UserScope::local(), ID, query(0, None, false, 1))
            .await
            .expect("read");
        let one = serde_json::to_vec(&first.events[0]).expect("json").len();
        // Room for two small events (and the page's own JSON), not three.
        let cap = 40 + 2 * one + one / 2;
        assert_eq!(
            page(&store, query(0, None, false, 20), cap).await,
            (vec![0, 1], true)
        );
        assert_eq!(
            page(&store, query(2, None, false, 20), cap).await,
            (vec![2], true)
        );
        // An event larger than the cap comes alone, so paging always moves on.
        assert_eq!(
            page(&store, query(3, None, false, 20), cap).await,
            (vec![3], true)
        );
        assert_eq!(
            page(&store, query(4, None, false, 20), cap).await,
            (vec![4], false)
        );
        assert_eq!(
            page(&store, query(0, None, true, 20), cap).await,
            (vec![4], true)
        );
        assert_eq!(
            page(&store, query(0, Some(2), true, 20), cap).await,
            (vec![2, 1], true)
        );
    }
}
