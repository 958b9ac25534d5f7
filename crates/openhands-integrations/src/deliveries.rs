//! The delivery log: insert (deduplicated per provider), claim due rows, record outcomes,
//! list and replay. Every status change is one `UPDATE ... WHERE status = <expected>`, so two
//! workers never process the same delivery at once.
//!
//! Deduplication has two keys. The provider's delivery id catches its own redeliveries, but
//! it is an unsigned header: a captured delivery (body and valid signature) replays under any
//! new id. So the SHA-256 of the signed body is kept too ([`payload_hash`]), and a second
//! delivery of the same body within [`PAYLOAD_WINDOW`] is a duplicate as well: refused when
//! it is recorded, and (should two batches race) skipped by the worker, which runs only the
//! earliest row of a body ([`earlier_with_same_payload`]).

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
use std::fmt::Write as _;

/// How long a signed body counts as seen: the same body again within this window (under any
/// delivery id) is a duplicate. Long enough for any replay of a captured delivery that a
/// provider's own retries would not explain; short enough that the lookup stays small.
pub const PAYLOAD_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// Hex SHA-256 of a webhook body, exactly as received (the bytes the signature covers).
pub fn payload_hash(body: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

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
    /// The provider sent this delivery id before, or the same signed body within
    /// [`PAYLOAD_WINDOW`].
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
        payload_hash: Set(None),
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
    /// [`payload_hash`] of the signed body; `None` skips the body check.
    pub payload_hash: Option<String>,
}

/// Stores `deliveries` as `queued` in one statement (one round trip, one commit):
/// `INSERT ... ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id`. In order, each
/// is `New` with its row id, or `Duplicate` when its delivery id was stored before (also by
/// an earlier delivery of the same batch), or its body was within [`PAYLOAD_WINDOW`] (looked
/// up first; such a delivery is not stored).
pub async fn record_many(
    db: &Database,
    deliveries: &[NewDelivery],
) -> Result<Vec<Recorded>, DeliveryError> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    let mut seen = bodies_seen(db, deliveries, now).await?;
    // `None`: a repeated body, not inserted.
    let ids: Vec<Option<String>> = deliveries
        .iter()
        .map(|delivery| {
            let repeated = delivery
                .payload_hash
                .as_ref()
                .is_some_and(|hash| !seen.insert((delivery.provider.clone(), hash.clone())));
            (!repeated).then(|| uuid::Uuid::new_v4().to_string())
        })
        .collect();
    let rows: Vec<ActiveModel> = ids
        .iter()
        .zip(deliveries)
        .filter_map(|(id, delivery)| Some((id.as_ref()?, delivery)))
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
            payload_hash: Set(delivery.payload_hash.clone()),
        })
        .collect();
    let stored: HashSet<String> = if rows.is_empty() {
        HashSet::new()
    } else {
        let inserted = Entity::insert_many(rows)
            .on_conflict_do_nothing_on([Column::Provider, Column::DeliveryId])
            .exec_with_returning_keys(db.connection())
            .await?;
        match inserted {
            TryInsertResult::Inserted(keys) => keys.into_iter().collect(),
            TryInsertResult::Empty | TryInsertResult::Conflicted => HashSet::new(),
        }
    };
    Ok(ids
        .into_iter()
        .map(|id| match id {
            Some(id) if stored.contains(&id) => Recorded::New(id),
            _ => Recorded::Duplicate,
        })
        .collect())
}

/// `(provider, payload_hash)` of the stored deliveries within [`PAYLOAD_WINDOW`] whose body
/// is one of `deliveries`'.
async fn bodies_seen(
    db: &Database,
    deliveries: &[NewDelivery],
    now: DateTime<Utc>,
) -> Result<HashSet<(String, String)>, DeliveryError> {
    let hashes: HashSet<&str> = deliveries
        .iter()
        .filter_map(|d| d.payload_hash.as_deref())
        .collect();
    if hashes.is_empty() {
        return Ok(HashSet::new());
    }
    let found: Vec<(String, Option<String>)> = Entity::find()
        .select_only()
        .column(Column::Provider)
        .column(Column::PayloadHash)
        .filter(Column::PayloadHash.is_in(hashes))
        .filter(Column::ReceivedAt.gte(now - PAYLOAD_WINDOW))
        .into_tuple()
        .all(db.connection())
        .await?;
    Ok(found
        .into_iter()
        .filter_map(|(provider, hash)| Some((provider, hash?)))
        .collect())
}

/// The delivery id of an earlier row (by arrival, then row id) of the same provider with
/// `row`'s body within [`PAYLOAD_WINDOW`]: when there is one, `row` is a replay that raced
/// it into the log (two batches in flight) and must start nothing.
pub async fn earlier_with_same_payload(
    db: &Database,
    row: &Model,
) -> Result<Option<String>, DeliveryError> {
    let Some(hash) = row.payload_hash.as_deref() else {
        return Ok(None);
    };
    let found: Vec<(String, String, DateTime<Utc>)> = Entity::find()
        .select_only()
        .column(Column::Id)
        .column(Column::DeliveryId)
        .column(Column::ReceivedAt)
        .filter(Column::Provider.eq(row.provider.as_str()))
        .filter(Column::PayloadHash.eq(hash))
        .filter(Column::Id.ne(row.id.as_str()))
        .filter(Column::ReceivedAt.gte(row.received_at - PAYLOAD_WINDOW))
        .filter(Column::ReceivedAt.lte(row.received_at))
        .into_tuple()
        .all(db.connection())
        .await?;
    Ok(found
        .into_iter()
        .filter(|(id, _, at)| (*at, id.as_str()) < (row.received_at, row.id.as_str()))
        .min_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)))
        .map(|(_, delivery_id, _)| delivery_id))
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
