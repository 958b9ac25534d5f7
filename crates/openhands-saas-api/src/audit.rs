//! `saas.sql_audit`: audit entries as rows of `audit_log`.
//!
//! One insert per entry, outside the change's own transaction: the change is already
//! committed when it is audited, and a failed insert is reported to the caller (who logs
//! it) rather than undoing a change the user has been told succeeded.

use crate::db;
use async_trait::async_trait;
use openhands_core::extension::{AuditEntry, AuditError, AuditLog};
use openhands_sql_store::Database;
use openhands_sql_store::entity::audit_log;
use sea_orm::{ActiveValue::Set, EntityTrait};
use std::sync::Arc;

/// Writes audit entries to the `audit_log` table.
pub struct SqlAuditLog {
    db: Database,
}

impl SqlAuditLog {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait]
impl AuditLog for SqlAuditLog {
    async fn record(&self, entry: &AuditEntry) -> Result<(), AuditError> {
        let row = audit_log::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            at: Set(entry.at),
            actor_user_id: Set(entry.actor_user_id.clone()),
            org_id: Set(entry.org_id.clone()),
            action: Set(entry.action.clone()),
            target: Set(entry.target.clone()),
            detail: Set(entry.detail.to_string()),
            ip: Set(entry.ip.clone()),
        };
        audit_log::Entity::insert(row)
            .exec_without_returning(self.db.connection())
            .await
            .map(|_| ())
            .map_err(|e| AuditError {
                action: entry.action.clone(),
                message: e.to_string(),
            })
    }
}

openhands_core::register_plugin!(
    openhands_core::extension::AuditLog,
    "saas.sql_audit",
    "Audit entries (org, role and secret changes) as rows of the SQL audit_log table",
    |ctx| Ok(Arc::new(SqlAuditLog::new(db::for_plugin(ctx).await?)))
);
