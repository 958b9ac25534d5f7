//! Running conversations.

use crate::conversation::ConversationStatus;
use crate::error::StoreError;
use crate::scope::UserScope;
use async_trait::async_trait;
use std::collections::HashMap;

/// Owns the agent loops of running conversations.
///
/// Guarantees: statuses reflect the truth at the time of the call; `stop` and `close` are
/// idempotent; a conversation of one scope is never visible to another.
#[async_trait]
pub trait ConversationManager: Send + Sync {
    /// The live status of each listed conversation that is not stopped. A conversation
    /// missing from the answer is `STOPPED`.
    async fn statuses(
        &self,
        scope: &UserScope,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, ConversationStatus>, StoreError>;

    /// Stops the conversation's agent loop. Returns its status before stopping, or `None`
    /// when it was not running.
    async fn stop(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<ConversationStatus>, StoreError>;

    /// Stops everything at server shutdown.
    async fn shutdown(&self);
}
