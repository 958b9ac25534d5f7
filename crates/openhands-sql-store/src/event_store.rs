//! `saas.sql_events`: the append-only event log, one row per event.
//!
//! Ids run 0, 1, 2, ... per conversation without gaps or repeats, and the row is committed
//! before `append` returns. On PostgreSQL an append is one `INSERT ... SELECT` of the newest
//! id + 1: one round trip, as a live event waits for it, and index lookups only, however
//! long the log. Two appends racing for one id (rare: one replica owns a conversation) meet
//! at the `(conversation_id, id)` primary key, and the loser tries again with the next id:
//! every failed try is another append's success. SQLite appends inside a write transaction
//! (its write lock), which reads the last id and inserts the next one. A conversation's
//! events belong to the scope that appended the first one: appends and reads from any other
//! scope see nothing.

use crate::database::{Database, lock_key};
use crate::entity::event::{ActiveModel, Column, Entity};
use crate::error::{backend, corrupt, retry_read};
use crate::scope::ScopeKey;
use async_trait::async_trait;
use openhands_core::event::{Event, EventPage, EventQuery, NewEvent, event_timestamp_now};
use openhands_core::extension::EventStore;
use openhands_core::{StoreError, UserScope};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr, Statement,
};
use serde_json::Value;

const WHAT: &str = "events";
/// Tries of one append on PostgreSQL; each failed try means another append succeeded.
const APPEND_ATTEMPTS: usize = 64;

/// Events in SQL.
pub struct SqlEventStore {
    db: Database,
}

impl SqlEventStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn to_i64(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// The stored body: the event's JSON without `id` (kept in its own column).
fn body_of(event: &Event) -> Result<String, StoreError> {
    let mut value = serde_json::to_value(event)
        .map_err(|e| StoreError::Backend(format!("event serialization: {e}")))?;
    if let Value::Object(map) = &mut value {
        map.remove("id");
    }
    Ok(value.to_string())
}

fn event_of(id: i64, body: &str) -> Result<Event, StoreError> {
    let Value::Object(mut map) = serde_json::from_str(body).map_err(|e| corrupt(WHAT, e))? else {
        return Err(corrupt(WHAT, format!("event {id} is not a JSON object")));
    };
    map.insert("id".into(), Value::from(id));
    Event::from_map(map).map_err(|reason| corrupt(WHAT, reason))
}

/// [`SqlEventStore::insert_next`]: `$1` conversation, `$2` user, `$3` org, `$4` body,
/// `$5` timestamp.
const INSERT_NEXT: &str = "INSERT INTO events (conversation_id, id, user_id, org_id, body, timestamp) \
     SELECT $1, COALESCE(newest.id + 1, 0), $2, $3, $4, $5 \
     FROM (SELECT 1) AS one LEFT JOIN ( \
         SELECT id, user_id, org_id FROM events WHERE conversation_id = $1 \
         ORDER BY id DESC LIMIT 1 \
     ) AS newest ON TRUE \
     WHERE newest.id IS NULL OR (newest.user_id = $2 AND newest.org_id = $3) \
     RETURNING id";

fn not_found(conversation_id: &str) -> StoreError {
    StoreError::NotFound(format!("Conversation {conversation_id}"))
}

impl SqlEventStore {
    /// Appends `event` as the conversation's next id in one statement (PostgreSQL); `None`
    /// when the conversation's events belong to another scope. The newest row gives both the
    /// next id and the owning scope, read through the primary key whatever the log's length.
    /// A concurrent append of the same id fails on the primary key.
    async fn insert_next(
        &self,
        key: &ScopeKey,
        conversation_id: &str,
        event: &Event,
    ) -> Result<Option<i64>, DbErr> {
        let body = body_of(event).map_err(|e| DbErr::Custom(e.to_string()))?;
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            INSERT_NEXT,
            [
                conversation_id.into(),
                key.user_id.as_str().into(),
                key.org_id.as_str().into(),
                body.into(),
                chrono::Utc::now().into(),
            ],
        );
        match self.db.connection().query_one_raw(statement).await? {
            Some(inserted) => inserted.try_get::<i64>("", "id").map(Some),
            None => Ok(None),
        }
    }

    /// Appends `event` (its id and timestamp set here) inside a write transaction holding
    /// the conversation's lock, so the next id cannot be taken meanwhile (SQLite).
    async fn append_locked(
        &self,
        key: &ScopeKey,
        conversation_id: &str,
        mut event: Event,
    ) -> Result<Event, StoreError> {
        let txn = self.db.begin_write().await.map_err(backend)?;
        lock_key(&txn, &format!("{WHAT}\u{1f}{conversation_id}"))
            .await
            .map_err(backend)?;
        let foreign = Entity::find()
            .filter(Column::ConversationId.eq(conversation_id))
            .filter(
                Condition::any()
                    .add(Column::UserId.ne(&key.user_id))
                    .add(Column::OrgId.ne(&key.org_id)),
            )
            .count(&txn)
            .await
            .map_err(backend)?;
        if foreign > 0 {
            return Err(not_found(conversation_id));
        }
        let last: Option<i64> = Entity::find()
            .select_only()
            .column_as(Column::Id.max(), "last")
            .filter(Column::ConversationId.eq(conversation_id))
            .into_tuple()
            .one(&txn)
            .await
            .map_err(backend)?
            .flatten();
        let id = last.map_or(0, |last| last.saturating_add(1));
        event.id = u64::try_from(id).unwrap_or_default();
        event.timestamp = event_timestamp_now();
        let row = ActiveModel {
            conversation_id: Set(conversation_id.to_owned()),
            id: Set(id),
            user_id: Set(key.user_id.clone()),
            org_id: Set(key.org_id.clone()),
            body: Set(body_of(&event)?),
            timestamp: Set(chrono::Utc::now()),
        };
        Entity::insert(row)
            .exec_without_returning(&txn)
            .await
            .map_err(backend)?;
        txn.commit().await.map_err(backend)?;
        Ok(event)
    }
}

#[async_trait]
impl EventStore for SqlEventStore {
    async fn append(
        &self,
        scope: &UserScope,
        conversation_id: &str,
        event: NewEvent,
    ) -> Result<Event, StoreError> {
        let key = ScopeKey::of(scope);
        let mut event = Event::from_new(event, 0, event_timestamp_now());
        if self.db.backend() != DbBackend::Postgres {
            return self.append_locked(&key, conversation_id, event).await;
        }
        for _ in 0..APPEND_ATTEMPTS {
            match self.insert_next(&key, conversation_id, &event).await {
                Ok(Some(id)) => {
                    event.id = u64::try_from(id).unwrap_or_default();
                    return Ok(event);
                }
                Ok(None) => return Err(not_found(conversation_id)),
                // Another append took that id (so the log moved on): take the next one.
                Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                    event.timestamp = event_timestamp_now();
                }
                Err(err) => return Err(backend(err)),
            }
        }
        Err(StoreError::Backend(format!(
            "appending to the events of conversation {conversation_id}: other appends took the \
             next id {APPEND_ATTEMPTS} times in a row"
        )))
    }

    async fn read(
        &self,
        scope: &UserScope,
        conversation_id: &str,
        query: EventQuery,
    ) -> Result<EventPage, StoreError> {
        let key = ScopeKey::of(scope);
        let mut select = Entity::find()
            .filter(Column::ConversationId.eq(conversation_id))
            .filter(Column::UserId.eq(&key.user_id))
            .filter(Column::OrgId.eq(&key.org_id))
            .filter(Column::Id.gte(to_i64(query.start_id)));
        if let Some(end) = query.end_id {
            select = select.filter(Column::Id.lte(to_i64(end)));
        }
        select = if query.reverse {
            select.order_by_desc(Column::Id)
        } else {
            select.order_by_asc(Column::Id)
        };
        let select = select.limit(crate::paging::limit_plus_one(query.limit));
        let rows = retry_read(|| select.clone().all(self.db.connection()))
            .await
            .map_err(backend)?;
        let has_more = rows.len() > query.limit;
        let events = rows
            .into_iter()
            .take(query.limit)
            .map(|row| event_of(row.id, &row.body))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EventPage { events, has_more })
    }

    async fn delete_all(&self, scope: &UserScope, conversation_id: &str) -> Result<(), StoreError> {
        let key = ScopeKey::of(scope);
        Entity::delete_many()
            .filter(Column::ConversationId.eq(conversation_id))
            .filter(Column::UserId.eq(&key.user_id))
            .filter(Column::OrgId.eq(&key.org_id))
            .exec(self.db.connection())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(backend)
    }
}
