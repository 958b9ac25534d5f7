//! `saas.sql_events`: the append-only event log, one row per event.
//!
//! `append` assigns the next id inside a write transaction that holds the conversation's
//! lock (PostgreSQL advisory lock; SQLite's write lock), so ids run 0, 1, 2, ... without
//! gaps or repeats under concurrent appends, and the row is committed before `append`
//! returns. The `(conversation_id, id)` primary key is the last line of defence. A
//! conversation's events belong to the scope that appended the first one: appends and
//! reads from any other scope see nothing.

use crate::database::{Database, lock_key};
use crate::entity::event::{ActiveModel, Column, Entity};
use crate::error::{backend, corrupt};
use crate::scope::ScopeKey;
use async_trait::async_trait;
use openhands_core::event::{Event, EventPage, EventQuery, NewEvent, event_timestamp_now};
use openhands_core::extension::EventStore;
use openhands_core::{StoreError, UserScope};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::Value;

const WHAT: &str = "events";

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

#[async_trait]
impl EventStore for SqlEventStore {
    async fn append(
        &self,
        scope: &UserScope,
        conversation_id: &str,
        event: NewEvent,
    ) -> Result<Event, StoreError> {
        let key = ScopeKey::of(scope);
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
            return Err(StoreError::NotFound(format!(
                "Conversation {conversation_id}"
            )));
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
        let event = Event::from_new(
            event,
            u64::try_from(id).unwrap_or_default(),
            event_timestamp_now(),
        );
        let row = ActiveModel {
            conversation_id: Set(conversation_id.to_owned()),
            id: Set(id),
            user_id: Set(key.user_id),
            org_id: Set(key.org_id),
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
        let rows = select
            .limit(crate::paging::limit_plus_one(query.limit))
            .all(self.db.connection())
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
