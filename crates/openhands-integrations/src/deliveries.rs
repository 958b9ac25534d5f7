//! The delivery log: insert (deduplicated per provider), claim due rows, record outcomes,
//! list and replay. Every status change is one `UPDATE ... WHERE status = <expected>`, so two
//! workers never process the same delivery at once.

use crate::entity::{ActiveModel, Column, Entity, Model};
use chrono::{DateTime, Utc};
use openhands_sql_store::Database;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    SqlErr, TryInsertResult,
};
use std::collections::HashSet;
use std::fmt;

/// A delivery's place in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Stored, waiting for the worker.
    Queued,
    /// A worker holds it.
    Processing,
    /// Its job was started.
    Done,
    /// The provider's parser said there is nothing to do (e.g. the bot's own comment).
    Ignored,
    /// The last attempt failed; retried at `next_attempt_at`.
    Failed,
    /// Out of attempts (or unparseable); kept with its error for `openhands webhooks replay`.
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Processing => "processing",
            Status::Done => "done",
            Status::Ignored => "ignored",
            Status::Failed => "failed",
            Status::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Status::Queued,
            Status::Processing,
            Status::Done,
            Status::Ignored,
            Status::Failed,
            Status::Dead,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("delivery log query failed: {0}")]
    Db(#[from] DbErr),
    #[error("delivery `{0}` not found")]
    NotFound(String),
    #[error("delivery `{id}` is {status}; only dead or failed deliveries can be replayed")]
    NotReplayable { id: String, status: String },
    #[error("recording the delivery failed: {0}")]
    Write(String),
}

/// The result of recording a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A new row, with its id.
    New(String),
    /// The provider sent this delivery id before.
    Duplicate,
}

/// Stores a delivery as `queued`, or reports a duplicate delivery id.
pub async fn record(
    db: &Database,
    provider: &str,
    delivery_id: &str,
    payload: &str,
    headers: &[(String, String)],
) -> Result<Recorded, DeliveryError> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let row = ActiveModel {
        id: Set(id.clone()),
        provider: Set(provider.to_owned()),
        delivery_id: Set(delivery_id.to_owned()),
        received_at: Set(now),
        status: Set(Status::Queued.as_str().to_owned()),
        attempts: Set(0),
        last_error: Set(None),
        next_attempt_at: Set(now),
        payload: Set(payload.to_owned()),
        headers: Set(serde_json::to_string(headers).unwrap_or_else(|_| "[]".to_owned())),
        job_summary: Set(None),
        conversation_id: Set(None),
    };
    match Entity::insert(row).exec(db.connection()).await {
        Ok(_) => Ok(Recorded::New(id)),
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Ok(Recorded::Duplicate)
        }
        Err(err) => Err(err.into()),
    }
}

/// One delivery for [`record_many`].
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub provider: String,
    pub delivery_id: String,
    pub payload: String,
    /// The headers kept with the delivery (never signatures or credentials).
    pub headers: Vec<(String, String)>,
}

/// Stores `deliveries` as `queued` in one statement (one round trip, one commit):
/// `INSERT ... ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id`. In order, each
/// is `New` with its row id, or `Duplicate` when its delivery id was stored before (also by
/// an earlier delivery of the same batch).
pub async fn record_many(
    db: &Database,
    deliveries: &[NewDelivery],
) -> Result<Vec<Recorded>, DeliveryError> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    let ids: Vec<String> = deliveries
        .iter()
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let rows = ids
        .iter()
        .zip(deliveries)
        .map(|(id, delivery)| ActiveModel {
            id: Set(id.clone()),
            provider: Set(delivery.provider.clone()),
            delivery_id: Set(delivery.delivery_id.clone()),
            received_at: Set(now),
            status: Set(Status::Queued.as_str().to_owned()),
            attempts: Set(0),
            last_error: Set(None),
            next_attempt_at: Set(now),
            payload: Set(delivery.payload.clone()),
            headers: Set(
                serde_json::to_string(&delivery.headers).unwrap_or_else(|_| "[]".to_owned())
            ),
            job_summary: Set(None),
            conversation_id: Set(None),
        });
    let inserted = Entity::insert_many(rows)
        .on_conflict_do_nothing_on([Column::Provider, Column::DeliveryId])
        .exec_with_returning_keys(db.connection())
        .await?;
    let stored: HashSet<String> = match inserted {
        TryInsertResult::Inserted(keys) => keys.into_iter().collect(),
        TryInsertResult::Empty | TryInsertResult::Conflicted => HashSet::new(),
    };
    Ok(ids
        .into_iter()
        .map(|id| {
            if stored.contains(&id) {
                Recorded::New(id)
            } else {
                Recorded::Duplicate
            }
        })
        .collect())
}

/// How long a claim holds a delivery. A row still `processing` after this (its server died
/// mid-attempt) is due again and its next claim counts as a new attempt.
pub const PROCESSING_LEASE: chrono::Duration = chrono::Duration::minutes(5);

/// The statuses a worker may claim once `next_attempt_at` has passed (for `processing`,
/// `next_attempt_at` is the end of the claim's lease).
const CLAIMABLE: [&str; 3] = ["queued", "failed", "processing"];

/// Ids of deliveries due now (queued, failed with `next_attempt_at` passed, or processing
/// with an expired lease), oldest first.
pub async fn due(db: &Database, now: DateTime<Utc>) -> Result<Vec<String>, DeliveryError> {
    let rows = Entity::find()
        .filter(Column::Status.is_in(CLAIMABLE))
        .filter(Column::NextAttemptAt.lte(now))
        .order_by_asc(Column::ReceivedAt)
        .limit(50)
        .all(db.connection())
        .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Takes a due delivery for processing (counting the attempt, holding it for
/// [`PROCESSING_LEASE`]); `None` when another worker took it first or it is no longer due.
pub async fn claim(db: &Database, id: &str) -> Result<Option<Model>, DeliveryError> {
    let now = Utc::now();
    let result = Entity::update_many()
        .col_expr(Column::Status, Expr::value(Status::Processing.as_str()))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .col_expr(Column::NextAttemptAt, Expr::value(now + PROCESSING_LEASE))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.is_in(CLAIMABLE))
        .filter(Column::NextAttemptAt.lte(now))
        .exec(db.connection())
        .await?;
    if result.rows_affected == 0 {
        return Ok(None);
    }
    Ok(Entity::find_by_id(id.to_owned())
        .one(db.connection())
        .await?)
}

/// Records the end of an attempt.
pub async fn finish(
    db: &Database,
    id: &str,
    status: Status,
    summary: Option<&str>,
    conversation_id: Option<&str>,
    error: Option<&str>,
    next_attempt_at: Option<DateTime<Utc>>,
) -> Result<(), DeliveryError> {
    let mut update = Entity::update_many()
        .col_expr(Column::Status, Expr::value(status.as_str()))
        .col_expr(Column::LastError, Expr::value(error.map(str::to_owned)))
        .filter(Column::Id.eq(id));
    if let Some(summary) = summary {
        update = update.col_expr(Column::JobSummary, Expr::value(summary.to_owned()));
    }
    if let Some(conversation_id) = conversation_id {
        update = update.col_expr(
            Column::ConversationId,
            Expr::value(conversation_id.to_owned()),
        );
    }
    if let Some(at) = next_attempt_at {
        update = update.col_expr(Column::NextAttemptAt, Expr::value(at));
    }
    update.exec(db.connection()).await?;
    Ok(())
}

/// Deliveries, newest first, optionally with one status.
pub async fn list(db: &Database, status: Option<Status>) -> Result<Vec<Model>, DeliveryError> {
    let mut query = Entity::find().order_by_desc(Column::ReceivedAt);
    if let Some(status) = status {
        query = query.filter(Column::Status.eq(status.as_str()));
    }
    Ok(query.limit(500).all(db.connection()).await?)
}

/// One delivery.
pub async fn get(db: &Database, id: &str) -> Result<Model, DeliveryError> {
    Entity::find_by_id(id.to_owned())
        .one(db.connection())
        .await?
        .ok_or_else(|| DeliveryError::NotFound(id.to_owned()))
}

/// Puts a dead (or failed) delivery back in the queue with fresh attempts; a running
/// server's worker picks it up within its poll interval.
pub async fn replay(db: &Database, id: &str) -> Result<Model, DeliveryError> {
    let row = get(db, id).await?;
    let status = Status::parse(&row.status);
    if !matches!(status, Some(Status::Dead | Status::Failed)) {
        return Err(DeliveryError::NotReplayable {
            id: id.to_owned(),
            status: row.status,
        });
    }
    Entity::update_many()
        .col_expr(Column::Status, Expr::value(Status::Queued.as_str()))
        .col_expr(Column::Attempts, Expr::value(0))
        .col_expr(Column::NextAttemptAt, Expr::value(Utc::now()))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(row.status.as_str()))
        .exec(db.connection())
        .await?;
    get(db, id).await
}
