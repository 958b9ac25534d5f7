//! `openhands webhooks list|replay`: what the server binary runs against the database.

use crate::deliveries::{self, DeliveryError, Status};
use crate::entity::Model;
use openhands_sql_store::Database;

/// One line per delivery: id, provider, delivery id, status, attempts, received, summary,
/// error.
pub fn line(row: &Model) -> String {
    format!(
        "{}  {:<8} {:<38} {:<10} attempts={} received={} {}{}",
        row.id,
        row.provider,
        row.delivery_id,
        row.status,
        row.attempts,
        row.received_at.to_rfc3339(),
        row.job_summary.as_deref().unwrap_or("-"),
        row.last_error
            .as_deref()
            .map(|e| format!("  error: {e}"))
            .unwrap_or_default()
    )
}

/// `openhands webhooks list [--status <s>]`.
pub async fn list(
    db: &Database,
    status: Option<Status>,
    mut emit: impl FnMut(String),
) -> Result<usize, DeliveryError> {
    let rows = deliveries::list(db, status).await?;
    for row in &rows {
        emit(line(row));
    }
    emit(format!("{} deliver(ies)", rows.len()));
    Ok(rows.len())
}

/// `openhands webhooks replay <id>`: queue a dead or failed delivery again; a running
/// server processes it within its poll interval.
pub async fn replay(
    db: &Database,
    id: &str,
    mut emit: impl FnMut(String),
) -> Result<(), DeliveryError> {
    let row = deliveries::replay(db, id).await?;
    emit(format!(
        "queued {} again ({} {}); a running server picks it up",
        row.id, row.provider, row.delivery_id
    ));
    Ok(())
}
