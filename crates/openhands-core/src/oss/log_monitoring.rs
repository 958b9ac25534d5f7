//! `oss.log`: monitoring hooks written to the debug log.

use crate::event::Event;
use crate::extension::MonitoringListener;
use crate::scope::UserScope;
use std::sync::Arc;
use std::time::Duration;

/// Logs each hook at debug level.
#[derive(Default)]
pub struct LogMonitoringListener;

impl MonitoringListener for LogMonitoringListener {
    fn on_create_conversation(&self, scope: &UserScope, conversation_id: &str) {
        tracing::debug!(user_id = ?scope.user_id, conversation_id, "conversation created");
    }

    fn on_session_event(&self, conversation_id: &str, event: &Event) {
        tracing::debug!(conversation_id, event_id = event.id, "event stored");
    }

    fn on_agent_session_start(&self, conversation_id: &str, success: bool, duration: Duration) {
        tracing::debug!(
            conversation_id,
            success,
            duration_ms = duration.as_millis() as u64,
            "agent session start"
        );
    }
}

crate::register_plugin!(
    crate::extension::MonitoringListener,
    "oss.log",
    "Writes monitoring hooks to the debug log",
    |ctx| Ok(Arc::new(LogMonitoringListener))
);
