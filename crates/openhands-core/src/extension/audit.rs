//! The audit log: who changed what, in which organization, when and from where.
//!
//! Security-relevant changes (organization membership, roles, secrets) are recorded through
//! this extension point so that an operator can answer "who did this?" afterwards. OSS mode
//! writes a structured log line (`oss.log_audit`); SaaS mode keeps rows in the database.
//! An entry never holds a secret value: `detail` names what changed, not its content.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// One audited action.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// The user who acted; `None` for the single local user of OSS mode.
    pub actor_user_id: Option<String>,
    /// The organization the action concerns (or the actor's current one).
    pub org_id: Option<String>,
    /// Dotted action name, e.g. `org.member.invite`, `secret.update`.
    pub action: String,
    /// What was acted on (a user id, an org id, a secret name), when there is one.
    pub target: Option<String>,
    /// Details as a JSON object. Never a secret value.
    pub detail: serde_json::Value,
    /// The client's address as the server saw it.
    pub ip: Option<String>,
}

impl AuditEntry {
    /// An entry for `action` by `actor_user_id`, timestamped now, with no other details.
    pub fn new(action: impl Into<String>, actor_user_id: Option<String>) -> Self {
        Self {
            at: Utc::now(),
            actor_user_id,
            org_id: None,
            action: action.into(),
            target: None,
            detail: serde_json::Value::Object(Default::default()),
            ip: None,
        }
    }

    pub fn org(mut self, org_id: Option<String>) -> Self {
        self.org_id = org_id;
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn ip(mut self, ip: Option<String>) -> Self {
        self.ip = ip;
        self
    }
}

/// Why an entry could not be recorded.
#[derive(Debug, thiserror::Error)]
#[error("recording audit entry `{action}` failed: {message}")]
pub struct AuditError {
    pub action: String,
    pub message: String,
}

/// Records audit entries.
///
/// Guarantees: an entry is durable (or written to the log) when `record` returns `Ok`.
/// Callers record after a change succeeded; a failed `record` must not undo or fail the
/// change, so callers log the error instead of returning it to the client.
#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record(&self, entry: &AuditEntry) -> Result<(), AuditError>;
}
