//! `webhook_deliveries`: every accepted webhook delivery, before it is processed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub provider: String,
    /// The provider's id of the delivery; unique per provider.
    pub delivery_id: String,
    pub received_at: DateTimeUtc,
    /// `queued`, `processing`, `done`, `ignored`, `failed` (will retry) or `dead`.
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTimeUtc,
    /// The raw body as received (webhook bodies carry no secrets).
    pub payload: String,
    /// JSON `[[name, value], ...]` of the provider's event headers (signatures removed).
    pub headers: String,
    pub job_summary: Option<String>,
    pub conversation_id: Option<String>,
    /// Hex SHA-256 of the signed body; a second delivery with the same hash within
    /// [`crate::deliveries::PAYLOAD_WINDOW`] is a duplicate, whatever its delivery id.
    /// `None` for rows from before the column (and deliveries recorded without one).
    pub payload_hash: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
