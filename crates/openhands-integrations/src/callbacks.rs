//! Durable finish callbacks: each started job gets an `integration_callbacks` row, and the
//! worker posts its outcome once the conversation ends.
//!
//! Why stored and not a live subscription: the server that started a conversation may
//! restart (or, in a cluster, another replica may own the conversation) before it ends, and
//! a subscription dies with its process. The row survives; any server's worker reads the
//! conversation's events from the event store (where every event is stored before anyone
//! sees it), from the row's cursor on, until an `agent_state_changed` to an ending state.
//! It then keeps the outcome in the row and calls the integration's `on_finished`, retrying
//! with the integration's backoff until `max_attempts`, then `dead`.
//!
//! A server takes a due row with a conditional update that moves `next_check_at` to the end
//! of a lease, so two workers never check (or post) the same row at once; a row whose server
//! died is due again after the lease. A crash between posting and marking the row `done`
//! posts again after the lease: at least once, not exactly once, in that window only.

use crate::callback_entity::{ActiveModel, Column, Entity, Model};
use crate::worker::{FINISHED_STATES, Runtime};
use chrono::{DateTime, Utc};
use openhands_core::event::{Event, EventBody, EventQuery, EventSource};
use openhands_core::extension::{Job, Outcome};
use openhands_core::scope::UserScope;
use openhands_sql_store::Database;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use std::sync::Arc;

/// How often a running conversation's new events are read.
pub const CHECK_INTERVAL: chrono::Duration = chrono::Duration::milliseconds(500);
/// How long a server holds a row it is checking or posting.
pub const LEASE: chrono::Duration = chrono::Duration::minutes(5);
/// The wait after the event store could not be read.
const READ_RETRY: chrono::Duration = chrono::Duration::seconds(5);
/// Events read per page.
const PAGE: usize = 200;
/// Links kept per outcome.
const MAX_LINKS: usize = 20;

/// A callback's place in its life.
pub mod status {
    /// The conversation runs (or its outcome waits to be posted again).
    pub const WATCHING: &str = "watching";
    /// The outcome was posted.
    pub const DONE: &str = "done";
    /// Posting failed `max_attempts` times, or the row is unusable.
    pub const DEAD: &str = "dead";
}

/// Stores the callback of a job whose conversation is about to start.
pub async fn register(
    db: &Database,
    provider: &str,
    delivery_id: &str,
    conversation_id: &str,
    job: &Job,
) -> Result<String, DbErr> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let row = ActiveModel {
        id: Set(id.clone()),
        provider: Set(provider.to_owned()),
        delivery_id: Set(delivery_id.to_owned()),
        conversation_id: Set(conversation_id.to_owned()),
        user_id: Set(job.user_id.clone()),
        org_id: Set(job.org_id.clone()),
        job: Set(serde_json::to_string(job).unwrap_or_else(|_| "{}".to_owned())),
        status: Set(status::WATCHING.to_owned()),
        attempts: Set(0),
        last_error: Set(None),
        next_check_at: Set(now),
        event_cursor: Set(0),
        last_message: Set(None),
        links: Set("[]".to_owned()),
        outcome: Set(None),
        awaits_message: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    };
    Entity::insert(row)
        .exec_without_returning(db.connection())
        .await?;
    Ok(id)
}

/// Watches a thread's conversation again for a follow-up `job` (see [`crate::threads`]):
/// its events from `cursor` on, and an ending state only after the follow-up's user
/// message. The conversation's callback row is reused (one per conversation), reset to
/// this job; returns its id.
pub async fn follow_up(
    db: &Database,
    provider: &str,
    delivery_id: &str,
    conversation_id: &str,
    job: &Job,
    cursor: i64,
) -> Result<String, DbErr> {
    let existing = Entity::find()
        .filter(Column::ConversationId.eq(conversation_id))
        .one(db.connection())
        .await?;
    let Some(existing) = existing else {
        let id = register(db, provider, delivery_id, conversation_id, job).await?;
        update(db, &id, status::WATCHING, |m| {
            m.event_cursor = Set(cursor);
            m.awaits_message = Set(true);
        })
        .await?;
        return Ok(id);
    };
    let job = serde_json::to_string(job).unwrap_or_else(|_| "{}".to_owned());
    update(db, &existing.id, status::WATCHING, |m| {
        m.delivery_id = Set(delivery_id.to_owned());
        m.job = Set(job);
        m.attempts = Set(0);
        m.last_error = Set(None);
        m.next_check_at = Set(Utc::now());
        m.event_cursor = Set(cursor);
        m.last_message = Set(None);
        m.links = Set("[]".to_owned());
        m.outcome = Set(None);
        m.awaits_message = Set(true);
    })
    .await?;
    Ok(existing.id)
}

/// Forgets the callback of a conversation that did not start.
pub async fn remove(db: &Database, id: &str) -> Result<(), DbErr> {
    Entity::delete_by_id(id.to_owned())
        .exec(db.connection())
        .await?;
    Ok(())
}

/// Every callback, newest first (for tests and diagnostics).
pub async fn list(db: &Database) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .order_by_desc(Column::CreatedAt)
        .limit(500)
        .all(db.connection())
        .await
}

/// Checks every due callback once.
pub async fn process_due(runtime: &Arc<Runtime>) -> Result<(), DbErr> {
    let now = Utc::now();
    let due = Entity::find()
        .filter(Column::Status.eq(status::WATCHING))
        .filter(Column::NextCheckAt.lte(now))
        .order_by_asc(Column::NextCheckAt)
        .limit(50)
        .all(runtime.db.connection())
        .await?;
    for row in due {
        if claim(&runtime.db, &row.id, now).await? {
            process(runtime, row).await?;
        }
    }
    Ok(())
}

/// Holds a due row for [`LEASE`]; false when another server took it first.
async fn claim(db: &Database, id: &str, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let result = Entity::update_many()
        .col_expr(Column::NextCheckAt, Expr::value(now + LEASE))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(status::WATCHING))
        .filter(Column::NextCheckAt.lte(now))
        .exec(db.connection())
        .await?;
    Ok(result.rows_affected == 1)
}

/// What reading a conversation's new events found.
struct Scan {
    cursor: i64,
    last_message: Option<String>,
    links: Vec<String>,
    /// The ending agent state, if the conversation ended.
    ended: Option<String>,
    /// A follow-up's message has not been seen yet (endings before it do not count).
    awaits_message: bool,
}

async fn process(runtime: &Arc<Runtime>, row: Model) -> Result<(), DbErr> {
    let db = &runtime.db;
    let Some(integration) = runtime.integration(&row.provider) else {
        let error = format!(
            "integration `{}` is not enabled on this server",
            row.provider
        );
        return update(db, &row.id, status::WATCHING, |m| {
            m.last_error = Set(Some(error));
            m.next_check_at = Set(Utc::now() + chrono::Duration::minutes(1));
        })
        .await;
    };
    let job: Job = match serde_json::from_str(&row.job) {
        Ok(job) => job,
        Err(err) => {
            let error = format!("stored job is unreadable: {err}");
            return update(db, &row.id, status::DEAD, |m| {
                m.last_error = Set(Some(error))
            })
            .await;
        }
    };
    let stored = row
        .outcome
        .as_deref()
        .and_then(|o| serde_json::from_str::<Outcome>(o).ok());
    let outcome = match stored {
        Some(outcome) => outcome,
        None => match scan(runtime, &row).await {
            Err(error) => {
                tracing::warn!(conversation_id = %row.conversation_id, error = %error,
                    "callback: reading the conversation's events failed");
                return update(db, &row.id, status::WATCHING, |m| {
                    m.last_error = Set(Some(error));
                    m.next_check_at = Set(Utc::now() + READ_RETRY);
                })
                .await;
            }
            Ok(scan) => {
                let links = serde_json::to_string(&scan.links).unwrap_or_else(|_| "[]".into());
                let Some(agent_state) = scan.ended else {
                    return update(db, &row.id, status::WATCHING, |m| {
                        m.event_cursor = Set(scan.cursor);
                        m.last_message = Set(scan.last_message);
                        m.links = Set(links);
                        m.awaits_message = Set(scan.awaits_message);
                        m.next_check_at = Set(Utc::now() + CHECK_INTERVAL);
                    })
                    .await;
                };
                let outcome = Outcome {
                    conversation_id: row.conversation_id.clone(),
                    agent_state,
                    message: scan.last_message.clone(),
                    links: scan.links,
                };
                let json = serde_json::to_string(&outcome).ok();
                update(db, &row.id, status::WATCHING, |m| {
                    m.event_cursor = Set(scan.cursor);
                    m.last_message = Set(scan.last_message);
                    m.links = Set(links);
                    m.outcome = Set(json);
                    m.next_check_at = Set(Utc::now() + LEASE);
                })
                .await?;
                outcome
            }
        },
    };
    match integration.on_finished(&job, &outcome).await {
        Ok(()) => {
            tracing::info!(conversation_id = %row.conversation_id, provider = %row.provider,
                agent_state = %outcome.agent_state, "callback posted");
            update(db, &row.id, status::DONE, |m| m.last_error = Set(None)).await
        }
        Err(err) => {
            let attempts = row.attempts.saturating_add(1);
            let policy = integration.retry_policy();
            let tries = u32::try_from(attempts).unwrap_or(u32::MAX);
            let error = err.to_string();
            tracing::warn!(conversation_id = %row.conversation_id, provider = %row.provider,
                attempts, error = %error, "callback failed");
            let (next_status, wait) = if tries >= policy.max_attempts {
                (status::DEAD, 0)
            } else {
                (status::WATCHING, policy.backoff_ms(tries))
            };
            let wait = i64::try_from(wait).unwrap_or(i64::MAX);
            update(db, &row.id, next_status, |m| {
                m.attempts = Set(attempts);
                m.last_error = Set(Some(error));
                m.next_check_at = Set(Utc::now() + chrono::Duration::milliseconds(wait));
            })
            .await
        }
    }
}

/// Sets the row's status, `updated_at`, and whatever `change` sets.
async fn update(
    db: &Database,
    id: &str,
    new_status: &str,
    change: impl FnOnce(&mut ActiveModel),
) -> Result<(), DbErr> {
    let mut model = ActiveModel {
        id: Set(id.to_owned()),
        status: Set(new_status.to_owned()),
        updated_at: Set(Utc::now()),
        ..Default::default()
    };
    change(&mut model);
    Entity::update(model).exec(db.connection()).await?;
    Ok(())
}

/// Reads the conversation's events after the row's cursor, up to its end if it ended.
async fn scan(runtime: &Arc<Runtime>, row: &Model) -> Result<Scan, String> {
    let scope = UserScope {
        user_id: Some(row.user_id.clone()).filter(|u| !u.is_empty()),
        org_id: row.org_id.clone(),
    };
    let mut found = Scan {
        cursor: row.event_cursor,
        last_message: row.last_message.clone(),
        links: serde_json::from_str(&row.links).unwrap_or_default(),
        ended: None,
        awaits_message: row.awaits_message,
    };
    loop {
        let query = EventQuery {
            start_id: u64::try_from(found.cursor).unwrap_or(0),
            end_id: None,
            reverse: false,
            limit: PAGE,
        };
        let page = runtime
            .ext
            .event_store
            .read(&scope, &row.conversation_id, query)
            .await
            .map_err(|e| e.to_string())?;
        for event in &page.events {
            found.cursor = i64::try_from(event.id)
                .unwrap_or(i64::MAX)
                .saturating_add(1);
            if let Some(state) = observe(event, &mut found) {
                found.ended = Some(state);
                return Ok(found);
            }
        }
        if !page.has_more || page.events.is_empty() {
            return Ok(found);
        }
    }
}

/// Notes the event's message and links; the ending agent state if it ends the conversation.
fn observe(event: &Event, found: &mut Scan) -> Option<String> {
    if event.source == EventSource::User {
        if matches!(&event.body, EventBody::Action { action, .. } if action == "message") {
            found.awaits_message = false;
        }
        return None;
    }
    match &event.body {
        EventBody::Observation {
            observation,
            extras,
            ..
        } if observation == "agent_state_changed" => {
            let state = extras.get("agent_state").and_then(|s| s.as_str())?;
            return (FINISHED_STATES.contains(&state) && !found.awaits_message)
                .then(|| state.to_owned());
        }
        EventBody::Observation { content, .. } => collect_links(content, &mut found.links),
        EventBody::Action { args, .. } => {
            for key in ["content", "thought", "final_thought"] {
                if let Some(text) = args.get(key).and_then(|v| v.as_str()) {
                    collect_links(text, &mut found.links);
                }
            }
        }
    }
    collect_links(&event.message, &mut found.links);
    if event.source == EventSource::Agent && !event.message.trim().is_empty() {
        found.last_message = Some(event.message.clone());
    }
    None
}

/// Adds the `http(s)` URLs in `text` to `links` (no repeats, at most [`MAX_LINKS`]).
pub fn collect_links(text: &str, links: &mut Vec<String>) {
    let mut rest = text;
    while links.len() < MAX_LINKS {
        let Some(start) = rest
            .match_indices("http")
            .map(|(i, _)| i)
            .find(|&i| rest[i..].starts_with("https://") || rest[i..].starts_with("http://"))
        else {
            return;
        };
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | ']' | '`')
            })
            .unwrap_or(tail.len());
        let link = tail[..end].trim_end_matches(['.', ',', ';', ':', '!', '?']);
        if link.len() > "https://".len() && !links.iter().any(|l| l == link) {
            links.push(link.to_owned());
        }
        rest = &tail[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_found_once_without_trailing_punctuation() {
        let mut links = Vec::new();
        collect_links(
            "Opened https://github.com/a/b/pull/3. See (https://github.com/a/b/tree/fix) and \
             https://github.com/a/b/pull/3 again; http://x.test/y",
            &mut links,
        );
        assert_eq!(
            links,
            vec![
                "https://github.com/a/b/pull/3",
                "https://github.com/a/b/tree/fix",
                "http://x.test/y"
            ]
        );
    }
}
