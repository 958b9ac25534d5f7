//! Hooks for metrics and analytics.

use crate::event::Event;
use crate::scope::UserScope;
use std::time::Duration;

/// Observes what happens in the server. Calls are synchronous and must return quickly and
/// never fail: queue work elsewhere if it is slow.
pub trait MonitoringListener: Send + Sync {
    /// A conversation was created.
    fn on_create_conversation(&self, scope: &UserScope, conversation_id: &str);

    /// An event was stored.
    fn on_session_event(&self, conversation_id: &str, event: &Event);

    /// An agent session start finished, successfully or not.
    fn on_agent_session_start(&self, conversation_id: &str, success: bool, duration: Duration);
}
