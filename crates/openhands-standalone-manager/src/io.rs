//! The bridge between an agent loop and the rest of the server.
//!
//! Usage (tokens, cost) is added up in memory and written to the conversation metadata at
//! most once per [`USAGE_FLUSH_EVERY`] and whenever the agent stops working (any state
//! other than `running`): a durable metadata write per LLM call would halve the events a
//! conversation can produce per second.

use crate::publisher::LivePublisher;
use async_trait::async_trait;
use openhands_core::StoreError;
use openhands_core::event::{Event, NewEvent, mask_secrets};
use openhands_core::extension::{ConversationStore, EventStore, MonitoringListener};
use openhands_core::scope::UserScope;
use openhands_runtime::agent::AgentIo;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest time usage stays only in memory while the agent works.
pub const USAGE_FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Usage not yet written to the metadata.
#[derive(Debug)]
pub struct PendingUsage {
    model: Option<String>,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost_usd: f64,
    last_flush: Instant,
}

impl Default for PendingUsage {
    fn default() -> Self {
        Self {
            model: None,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: 0.0,
            last_flush: Instant::now(),
        }
    }
}

/// Stores each event (secrets masked), then publishes it; accounts usage in the metadata.
pub struct ConversationIo {
    pub scope: UserScope,
    pub conversation_id: String,
    pub secrets: Vec<String>,
    pub event_store: Arc<dyn EventStore>,
    pub conversation_store: Arc<dyn ConversationStore>,
    pub monitoring: Arc<dyn MonitoringListener>,
    pub live: Arc<LivePublisher>,
    pub last_active: Arc<Mutex<Instant>>,
    pub usage: Mutex<PendingUsage>,
}

impl ConversationIo {
    fn touch(&self) {
        *self.last_active.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Writes the usage gathered so far into the metadata.
    pub async fn flush_usage(&self) {
        let pending = {
            let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
            let taken = std::mem::take(&mut *usage);
            if taken.model.is_none() {
                return;
            }
            taken
        };
        let result = async {
            let Some(mut meta) = self
                .conversation_store
                .get(&self.scope, &self.conversation_id)
                .await?
            else {
                return Ok(());
            };
            let prompt = i64::try_from(pending.prompt_tokens).unwrap_or(i64::MAX);
            let completion = i64::try_from(pending.completion_tokens).unwrap_or(i64::MAX);
            meta.prompt_tokens = meta.prompt_tokens.saturating_add(prompt);
            meta.completion_tokens = meta.completion_tokens.saturating_add(completion);
            meta.total_tokens = meta.prompt_tokens.saturating_add(meta.completion_tokens);
            meta.accumulated_cost += pending.cost_usd;
            meta.llm_model = pending.model;
            meta.last_updated_at = Some(chrono::Utc::now());
            self.conversation_store.save(&self.scope, &meta).await
        }
        .await;
        if let Err(err) = result {
            tracing::warn!(conversation_id = %self.conversation_id, error = %err, "recording LLM usage failed");
        }
    }
}

/// True for an `agent_state_changed` event to any state but `running`.
fn agent_paused(event: &Event) -> bool {
    match &event.body {
        openhands_core::event::EventBody::Observation {
            observation,
            extras,
            ..
        } => {
            observation == "agent_state_changed"
                && extras.get("agent_state").and_then(|s| s.as_str()) != Some("running")
        }
        openhands_core::event::EventBody::Action { .. } => false,
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
        self.live.event(&stored);
        if agent_paused(&stored) {
            self.flush_usage().await;
        }
        Ok(stored)
    }

    async fn record_usage(
        &self,
        model: &str,
        prompt_tokens: u64,
        completion_tokens: u64,
        cost_usd: f64,
    ) {
        let due = {
            let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
            usage.model = Some(model.to_owned());
            usage.prompt_tokens = usage.prompt_tokens.saturating_add(prompt_tokens);
            usage.completion_tokens = usage.completion_tokens.saturating_add(completion_tokens);
            usage.cost_usd += cost_usd;
            usage.last_flush.elapsed() >= USAGE_FLUSH_EVERY
        };
        if due {
            self.flush_usage().await;
        }
    }
}
