//! The bridge between an agent loop and the rest of the server.

use async_trait::async_trait;
use openhands_core::StoreError;
use openhands_core::event::{Event, NewEvent, mask_secrets};
use openhands_core::extension::{ConversationStore, EventStore, LiveMessage, MonitoringListener};
use openhands_core::scope::UserScope;
use openhands_runtime::agent::AgentIo;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::broadcast;

/// Stores each event (secrets masked), then publishes it; accounts usage in the metadata.
pub struct ConversationIo {
    pub scope: UserScope,
    pub conversation_id: String,
    pub secrets: Vec<String>,
    pub event_store: Arc<dyn EventStore>,
    pub conversation_store: Arc<dyn ConversationStore>,
    pub monitoring: Arc<dyn MonitoringListener>,
    pub live: broadcast::Sender<LiveMessage>,
    pub last_active: Arc<Mutex<Instant>>,
}

impl ConversationIo {
    fn touch(&self) {
        *self.last_active.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }
}

#[async_trait]
impl AgentIo for ConversationIo {
    async fn emit(&self, mut event: NewEvent) -> Result<Event, StoreError> {
        mask_secrets(&mut event, &self.secrets);
        let stored = self
            .event_store
            .append(&self.scope, &self.conversation_id, event)
            .await?;
        self.touch();
        self.monitoring
            .on_session_event(&self.conversation_id, &stored);
        // No receiver is fine: nobody is watching.
        let _ = self.live.send(LiveMessage::event(&stored));
        Ok(stored)
    }

    async fn record_usage(
        &self,
        model: &str,
        prompt_tokens: u64,
        completion_tokens: u64,
        cost_usd: f64,
    ) {
        let result = async {
            let Some(mut meta) = self
                .conversation_store
                .get(&self.scope, &self.conversation_id)
                .await?
            else {
                return Ok(());
            };
            let prompt = i64::try_from(prompt_tokens).unwrap_or(i64::MAX);
            let completion = i64::try_from(completion_tokens).unwrap_or(i64::MAX);
            meta.prompt_tokens = meta.prompt_tokens.saturating_add(prompt);
            meta.completion_tokens = meta.completion_tokens.saturating_add(completion);
            meta.total_tokens = meta.prompt_tokens.saturating_add(meta.completion_tokens);
            meta.accumulated_cost += cost_usd;
            meta.llm_model = Some(model.to_owned());
            meta.last_updated_at = Some(chrono::Utc::now());
            self.conversation_store.save(&self.scope, &meta).await
        }
        .await;
        if let Err(err) = result {
            tracing::warn!(conversation_id = %self.conversation_id, error = %err, "recording LLM usage failed");
        }
    }
}
