//! Recording audit entries from handlers.
//!
//! Handlers call [`record`] after a change succeeded. The entry gets the client's address
//! from the request (the peer, or what a trusted proxy forwarded: [`crate::client_ip`]); a failure to record is logged as an error and never turns the user's
//! successful request into a failed one (the change is already made).

use crate::state::AppState;
use actix_web::HttpRequest;
use openhands_core::extension::AuditEntry;

/// The client's address as [`crate::client_ip`] decides it (forwarding headers count only
/// from a trusted proxy), without a port.
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    crate::client_ip::client_ip(req).map(|ip| ip.to_string())
}

/// Records `entry` with the client's address; logs instead of failing.
pub async fn record(state: &AppState, req: &HttpRequest, entry: AuditEntry) {
    let entry = entry.ip(client_ip(req));
    if let Err(err) = state.ext.audit_log.record(&entry).await {
        tracing::error!(
            error = %err,
            action = %entry.action,
            actor_user_id = entry.actor_user_id.as_deref().unwrap_or(""),
            "audit log write failed"
        );
    }
}
