//! The background worker: takes due deliveries from the log, parses them into jobs, starts
//! the job's conversation, records the outcome (retrying failures with backoff, then
//! dead-lettering them), and watches each started conversation to call the integration's
//! callback once when it finishes.

use crate::deliveries::{self, Status};
use crate::entity::Model;
use chrono::Utc;
use openhands_core::conversation::{ConversationMetadata, ConversationTrigger};
use openhands_core::event::NewEvent;
use openhands_core::extension::{
    Integration, Job, LiveMessage, LiveReceiver, Outcome, StartRequest, WebhookHeaders,
};
use openhands_core::registry::Extensions;
use openhands_sql_store::Database;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How often the worker looks for due deliveries when nothing wakes it.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The agent states that end a job's conversation.
pub const FINISHED_STATES: [&str; 3] = ["finished", "error", "awaiting_user_input"];

/// What the route and the worker of one server share.
pub struct Runtime {
    pub db: Database,
    pub integrations: Vec<Arc<dyn Integration>>,
    pub ext: Extensions,
    /// Wakes the worker when a delivery is recorded.
    pub wake: Notify,
}

impl Runtime {
    /// The enabled integration named `provider`.
    pub fn integration(&self, provider: &str) -> Option<Arc<dyn Integration>> {
        self.integrations
            .iter()
            .find(|i| i.name() == provider)
            .cloned()
    }
}

/// Why starting a job failed (retried).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("user `{0}` has no settings; store LLM settings for this user")]
    NoSettings(String),
    #[error("user `{0}` has no LLM API key in their settings")]
    NoLlmKey(String),
    #[error("storage failed: {0}")]
    Store(String),
    #[error("starting the conversation failed: {0}")]
    Start(String),
}

/// Runs forever: processes due deliveries, then sleeps until woken or the poll interval.
pub async fn run(runtime: Arc<Runtime>) {
    loop {
        if let Err(err) = process_due(&runtime).await {
            tracing::warn!(error = %err, "webhook worker: reading the delivery log failed");
        }
        tokio::select! {
            _ = runtime.wake.notified() => {}
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

/// Processes every delivery due now.
pub async fn process_due(runtime: &Arc<Runtime>) -> Result<(), deliveries::DeliveryError> {
    for id in deliveries::due(&runtime.db, Utc::now()).await? {
        if let Some(row) = deliveries::claim(&runtime.db, &id).await? {
            process(runtime, row).await?;
        }
    }
    Ok(())
}

async fn process(runtime: &Arc<Runtime>, row: Model) -> Result<(), deliveries::DeliveryError> {
    let db = &runtime.db;
    let Some(integration) = runtime.integration(&row.provider) else {
        let error = format!(
            "integration `{}` is not enabled on this server",
            row.provider
        );
        return deliveries::finish(db, &row.id, Status::Dead, None, None, Some(&error), None).await;
    };
    let headers = WebhookHeaders(serde_json::from_str(&row.headers).unwrap_or_default());
    let job = match integration.parse(&headers, row.payload.as_bytes()) {
        Ok(Some(job)) => job,
        Ok(None) => {
            tracing::info!(delivery = %row.id, provider = %row.provider, "webhook ignored");
            return deliveries::finish(db, &row.id, Status::Ignored, None, None, None, None).await;
        }
        Err(err) => {
            // The same bytes will not parse next time: dead at once.
            let error = format!("unparseable payload: {err}");
            return deliveries::finish(db, &row.id, Status::Dead, None, None, Some(&error), None)
                .await;
        }
    };
    match start_job(runtime, integration.clone(), &job).await {
        Ok(conversation_id) => {
            tracing::info!(delivery = %row.id, provider = %row.provider,
                conversation_id = %conversation_id, user_id = %job.user_id, "webhook job started");
            deliveries::finish(
                db,
                &row.id,
                Status::Done,
                Some(&job.summary),
                Some(&conversation_id),
                None,
                None,
            )
            .await
        }
        Err(err) => {
            let policy = integration.retry_policy();
            let attempts = u32::try_from(row.attempts).unwrap_or(u32::MAX);
            let error = err.to_string();
            tracing::warn!(delivery = %row.id, provider = %row.provider, attempts,
                error = %error, "webhook job failed");
            if attempts >= policy.max_attempts {
                deliveries::finish(
                    db,
                    &row.id,
                    Status::Dead,
                    Some(&job.summary),
                    None,
                    Some(&error),
                    None,
                )
                .await
            } else {
                let wait = i64::try_from(policy.backoff_ms(attempts)).unwrap_or(i64::MAX);
                let next = Utc::now() + chrono::Duration::milliseconds(wait);
                deliveries::finish(
                    db,
                    &row.id,
                    Status::Failed,
                    Some(&job.summary),
                    None,
                    Some(&error),
                    Some(next),
                )
                .await
            }
        }
    }
}

/// Creates and starts the job's conversation for the job's user (as `POST
/// /api/conversations` does), and starts its finish watcher. Returns the conversation id.
pub async fn start_job(
    runtime: &Arc<Runtime>,
    integration: Arc<dyn Integration>,
    job: &Job,
) -> Result<String, JobError> {
    let ext = &runtime.ext;
    let scope = job.scope();
    let store = |e: &dyn std::fmt::Display| JobError::Store(e.to_string());
    let settings = ext
        .settings_store
        .load(&scope)
        .await
        .map_err(|e| store(&e))?
        .ok_or_else(|| JobError::NoSettings(job.user_id.clone()))?;
    if !settings.llm_api_key_set() {
        return Err(JobError::NoLlmKey(job.user_id.clone()));
    }
    let secrets = ext
        .secrets_store
        .load(&scope)
        .await
        .map_err(|e| store(&e))?
        .unwrap_or_default();
    let conversation_id = openhands_core::conversation::new_conversation_id();
    let mut metadata =
        ConversationMetadata::new(conversation_id.clone(), scope.user_id.clone(), Utc::now());
    metadata.org_id = scope.org_id.clone();
    metadata.selected_repository = job.repository.clone();
    metadata.selected_branch = job.branch.clone();
    metadata.trigger = Some(ConversationTrigger::Resolver);
    metadata.llm_model = settings.llm_model.clone();
    ext.conversation_store
        .save(&scope, &metadata)
        .await
        .map_err(|e| store(&e))?;
    let stored = ext
        .event_store
        .append(
            &scope,
            &conversation_id,
            NewEvent::user_message(&job.instructions, Vec::new()),
        )
        .await
        .map_err(|e| store(&e))?;
    ext.monitoring.on_session_event(&conversation_id, &stored);
    ext.monitoring
        .on_create_conversation(&scope, &conversation_id);
    // Subscribed before the start, so no state change is missed.
    let feed = ext
        .conversation_manager
        .subscribe(&scope, &conversation_id)
        .await
        .map_err(|e| JobError::Start(e.to_string()))?;
    ext.conversation_manager
        .start(StartRequest {
            scope,
            metadata,
            settings,
            secrets,
            conversation_instructions: None,
        })
        .await
        .map_err(|e| JobError::Start(e.to_string()))?;
    tokio::spawn(watch(
        feed,
        conversation_id.clone(),
        integration,
        job.clone(),
    ));
    Ok(conversation_id)
}

/// Waits for the conversation to finish, then calls the callback once.
async fn watch(
    mut feed: LiveReceiver,
    conversation_id: String,
    integration: Arc<dyn Integration>,
    job: Job,
) {
    use tokio::sync::broadcast::error::RecvError;
    let mut last_message: Option<String> = None;
    let outcome = loop {
        match feed.recv().await {
            Ok(LiveMessage::Event { json, .. }) => {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&json) else {
                    continue;
                };
                if event["source"] == "agent"
                    && let Some(text) = event["message"].as_str().filter(|t| !t.is_empty())
                    && event["observation"] != "agent_state_changed"
                {
                    last_message = Some(text.to_owned());
                }
                let state = event["extras"]["agent_state"].as_str().unwrap_or_default();
                if event["observation"] == "agent_state_changed" && FINISHED_STATES.contains(&state)
                {
                    break Outcome {
                        conversation_id: conversation_id.clone(),
                        agent_state: state.to_owned(),
                        message: last_message.clone(),
                    };
                }
            }
            Ok(LiveMessage::Notice(_)) | Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        }
    };
    match integration.on_finished(&job, &outcome).await {
        Ok(()) => tracing::info!(conversation_id = %conversation_id,
            provider = integration.name(), agent_state = %outcome.agent_state, "callback posted"),
        Err(err) => tracing::warn!(conversation_id = %conversation_id,
            provider = integration.name(), error = %err, "callback failed"),
    }
}
