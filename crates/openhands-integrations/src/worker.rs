//! The background worker: takes due deliveries from the log, parses them into jobs, lets
//! the integration admit them, starts the job's conversation, records the outcome (retrying
//! failures with backoff, then dead-lettering them), and runs the durable finish callbacks
//! ([`crate::callbacks`]).

use crate::callbacks;
use crate::deliveries::{self, Status};
use crate::entity::Model;
use crate::follow_up;
use crate::threads;
use async_trait::async_trait;
use chrono::Utc;
use openhands_core::conversation::{ConversationMetadata, ConversationTrigger};
use openhands_core::event::NewEvent;
use openhands_core::extension::{
    Admission, Integration, Job, JobContext, StartFailure, StartRequest, WebhookHeaders,
};
use openhands_core::registry::{Extensions, Services};
use openhands_core::scope::UserScope;
use openhands_core::secrets::ProviderType;
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
    /// Records verified deliveries in batches.
    pub intake: crate::intake::Intake,
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

/// The [`JobContext`] integrations admit jobs with: the server's services and the
/// linked-account lookup on its database.
struct Context<'a> {
    runtime: &'a Runtime,
}

#[async_trait]
impl JobContext for Context<'_> {
    fn services(&self) -> &Services {
        &self.runtime.ext.services
    }

    async fn linked_scopes(
        &self,
        provider: ProviderType,
        login: &str,
    ) -> Result<Vec<UserScope>, openhands_core::StoreError> {
        openhands_sql_store::linked_accounts::scopes_linked_to(&self.runtime.db, provider, login)
            .await
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
    #[error("admitting the job failed: {0}")]
    Admit(String),
}

impl JobError {
    /// The failure as the asker hears of it.
    pub fn failure(&self) -> StartFailure {
        match self {
            JobError::NoSettings(_) | JobError::NoLlmKey(_) => StartFailure::NoLlmSettings,
            _ => StartFailure::Other,
        }
    }
}

/// Runs forever: processes due deliveries, then sleeps until woken or the poll interval.
pub async fn run(runtime: Arc<Runtime>) {
    loop {
        if let Err(err) = process_due(&runtime).await {
            tracing::warn!(error = %err, "webhook worker: reading the delivery log failed");
        }
        if let Err(err) = callbacks::process_due(&runtime).await {
            tracing::warn!(error = %err, "webhook worker: reading the callbacks failed");
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
    // Normally refused when recorded; this catches a replay recorded by a concurrent batch.
    if let Some(first) = deliveries::earlier_with_same_payload(db, &row).await? {
        tracing::warn!(delivery = %row.id, provider = %row.provider, first_delivery = %first,
            "webhook body already delivered under another delivery id; ignored");
        let summary = format!("duplicate of delivery {first} (the same signed body)");
        return deliveries::finish(
            db,
            &row.id,
            Status::Ignored,
            Some(&summary),
            None,
            None,
            None,
        )
        .await;
    }
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
    let admitted = integration
        .admit(&Context { runtime }, job.clone())
        .await
        .map_err(|e| JobError::Admit(e.to_string()));
    let job = match admitted {
        Ok(Admission::Run(job)) => job,
        Ok(Admission::Ignore(reason)) => {
            tracing::info!(delivery = %row.id, provider = %row.provider, reason = %reason,
                "webhook ignored");
            let summary = format!("{} (ignored: {reason})", job.summary);
            return deliveries::finish(
                db,
                &row.id,
                Status::Ignored,
                Some(&summary),
                None,
                None,
                None,
            )
            .await;
        }
        Ok(Admission::Refuse(reason)) => {
            tracing::info!(delivery = %row.id, provider = %row.provider, reason = %reason,
                "webhook refused");
            return deliveries::finish(
                db,
                &row.id,
                Status::Dead,
                Some(&job.summary),
                None,
                Some(&reason),
                None,
            )
            .await;
        }
        Err(err) => return failed(runtime, &integration, &row, &job, err).await,
    };
    match start_job(runtime, &row.id, &integration, &job).await {
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
        Err(err) => failed(runtime, &integration, &row, &job, err).await,
    }
}

/// Records a failed attempt: retried after the backoff, or dead after the last attempt
/// (then the integration tells the asker, for a job that could not start).
async fn failed(
    runtime: &Arc<Runtime>,
    integration: &Arc<dyn Integration>,
    row: &Model,
    job: &Job,
    err: JobError,
) -> Result<(), deliveries::DeliveryError> {
    let db = &runtime.db;
    let policy = integration.retry_policy();
    let attempts = u32::try_from(row.attempts).unwrap_or(u32::MAX);
    let error = err.to_string();
    tracing::warn!(delivery = %row.id, provider = %row.provider, attempts,
        error = %error, "webhook job failed");
    if attempts < policy.max_attempts {
        let wait = i64::try_from(policy.backoff_ms(attempts)).unwrap_or(i64::MAX);
        let next = Utc::now() + chrono::Duration::milliseconds(wait);
        return deliveries::finish(
            db,
            &row.id,
            Status::Failed,
            Some(&job.summary),
            None,
            Some(&error),
            Some(next),
        )
        .await;
    }
    deliveries::finish(
        db,
        &row.id,
        Status::Dead,
        Some(&job.summary),
        None,
        Some(&error),
        None,
    )
    .await?;
    // An admission error means the provider could not be asked; it cannot be told either.
    if !matches!(err, JobError::Admit(_))
        && let Err(told) = integration.on_start_failed(job, err.failure()).await
    {
        tracing::warn!(delivery = %row.id, provider = %row.provider, error = %told,
            "telling the asker that the job failed did not work");
    }
    Ok(())
}

/// Creates and starts the job's conversation for the job's user (as `POST
/// /api/conversations` does), with its durable finish callback stored first, or continues
/// the conversation of the job's thread ([`crate::follow_up`]). Returns the conversation id.
pub async fn start_job(
    runtime: &Arc<Runtime>,
    delivery_id: &str,
    integration: &Arc<dyn Integration>,
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
    let provider = integration.name();
    if let Some(existing) = follow_up::existing_conversation(runtime, provider, job, &scope).await?
    {
        let continuation = follow_up::Continuation {
            provider,
            delivery_id,
            conversation_id: &existing,
            settings,
            secrets,
        };
        follow_up::continue_conversation(runtime, job, continuation).await?;
        return Ok(existing);
    }
    let conversation_id = openhands_core::conversation::new_conversation_id();
    let mut metadata =
        ConversationMetadata::new(conversation_id.clone(), scope.user_id.clone(), Utc::now());
    metadata.org_id = scope.org_id.clone();
    metadata.selected_repository = job.repository.clone();
    metadata.selected_branch = job.branch.clone();
    metadata.git_provider = job.git_provider;
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
    // Stored before the start, so an end is never missed; forgotten if the start fails.
    let callback = callbacks::register(&runtime.db, provider, delivery_id, &conversation_id, job)
        .await
        .map_err(|e| store(&e))?;
    let started = ext
        .conversation_manager
        .start(StartRequest {
            scope: scope.clone(),
            metadata,
            settings,
            secrets,
            conversation_instructions: None,
            resume_work: false,
        })
        .await;
    if let Err(err) = started {
        if let Err(removed) = callbacks::remove(&runtime.db, &callback).await {
            tracing::warn!(conversation_id = %conversation_id, error = %removed,
                "forgetting the callback of a conversation that did not start failed");
        }
        return Err(JobError::Start(err.to_string()));
    }
    if let Some(thread) = &job.thread
        && let Err(err) =
            threads::record(&runtime.db, provider, thread, &scope, &conversation_id).await
    {
        // The conversation runs; a later comment on the thread then starts another one.
        tracing::warn!(conversation_id = %conversation_id, error = %err,
            "recording the thread of a started conversation failed");
    }
    Ok(conversation_id)
}
