//! `oss.log_audit`: audit entries as structured log lines (target `audit`).
//!
//! A single-user install has no database to keep them in; the log is where an operator
//! already looks, and a log shipper can route the `audit` target elsewhere.

use crate::extension::{AuditEntry, AuditError, AuditLog};
use async_trait::async_trait;
use std::sync::Arc;

/// Writes each entry as one `info` line with target `audit`.
#[derive(Default)]
pub struct LogAuditLog;

#[async_trait]
impl AuditLog for LogAuditLog {
    async fn record(&self, entry: &AuditEntry) -> Result<(), AuditError> {
        tracing::info!(
            target: "audit",
            at = %entry.at.to_rfc3339(),
            actor_user_id = entry.actor_user_id.as_deref().unwrap_or(""),
            org_id = entry.org_id.as_deref().unwrap_or(""),
            action = %entry.action,
            target_id = entry.target.as_deref().unwrap_or(""),
            detail = %entry.detail,
            ip = entry.ip.as_deref().unwrap_or(""),
            "audit"
        );
        Ok(())
    }
}

crate::register_plugin!(
    crate::extension::AuditLog,
    "oss.log_audit",
    "Writes audit entries (org, role and secret changes) as structured log lines",
    |ctx| Ok(Arc::new(LogAuditLog))
);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn recording_to_the_log_never_fails() {
        let entry = AuditEntry::new("secret.create", Some("u1".into()))
            .target("TOKEN")
            .ip(Some("127.0.0.1".into()));
        assert!(LogAuditLog.record(&entry).await.is_ok());
    }
}
