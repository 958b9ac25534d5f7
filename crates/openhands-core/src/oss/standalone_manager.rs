//! `oss.standalone`: the in-process conversation manager of OSS mode.
//!
//! It tracks the agent loops running in this process. Starting loops (the agent runtime)
//! arrives with the conversations issue; until then no loop runs and every conversation
//! reports `STOPPED`, which is the truth.

use crate::conversation::ConversationStatus;
use crate::error::StoreError;
use crate::extension::ConversationManager;
use crate::scope::UserScope;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// In-process manager.
#[derive(Default)]
pub struct StandaloneConversationManager {
    /// conversation id -> (owner, status) of running loops.
    running: RwLock<HashMap<String, (UserScope, ConversationStatus)>>,
}

#[async_trait]
impl ConversationManager for StandaloneConversationManager {
    async fn statuses(
        &self,
        scope: &UserScope,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, ConversationStatus>, StoreError> {
        let running = self.running.read().unwrap_or_else(|p| p.into_inner());
        if running.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(conversation_ids
            .iter()
            .filter_map(|id| {
                running
                    .get(id)
                    .filter(|(owner, _)| owner == scope)
                    .map(|(_, status)| (id.clone(), *status))
            })
            .collect())
    }

    async fn stop(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<ConversationStatus>, StoreError> {
        let mut running = self.running.write().unwrap_or_else(|p| p.into_inner());
        match running.get(conversation_id) {
            Some((owner, _)) if owner == scope => {
                Ok(running.remove(conversation_id).map(|(_, status)| status))
            }
            _ => Ok(None),
        }
    }

    async fn shutdown(&self) {
        self.running
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

crate::register_plugin!(
    crate::extension::ConversationManager,
    "oss.standalone",
    "Runs conversations in this process (single server)",
    |ctx| Ok(Arc::new(StandaloneConversationManager::default()))
);
