//! Recording audit entries from handlers.
//!
//! Handlers call [`record`] after a change succeeded. The entry gets the client's address
//! from the request; a failure to record is logged as an error and never turns the user's
//! successful request into a failed one (the change is already made).

use crate::state::AppState;
use actix_web::HttpRequest;
use openhands_core::extension::AuditEntry;
use std::net::SocketAddr;

/// The client's address: the `Forwarded` / `X-Forwarded-For` address when a proxy set one,
/// else the peer; without a port.
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    let info = req.connection_info();
    let addr = info.realip_remote_addr()?;
    Some(match addr.parse::<SocketAddr>() {
        Ok(socket) => socket.ip().to_string(),
        Err(_) => addr.to_owned(),
    })
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
