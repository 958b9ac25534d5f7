//! A later request on a thread continues the thread's conversation (see [`crate::threads`]):
//! the follow-up's text reaches the running agent as a user message, or is stored and the
//! conversation started again when it is not running; its callback watches the conversation
//! from there and reports when this request's work ends.

use crate::callbacks;
use crate::threads;
use crate::worker::{JobError, Runtime};
use openhands_core::event::{EventQuery, NewEvent};
use openhands_core::extension::{ConversationInput, Job, ManagerError, StartRequest};
use openhands_core::scope::UserScope;
use openhands_core::secrets::UserSecrets;
use openhands_core::settings::Settings;
use std::sync::Arc;

fn store(e: &dyn std::fmt::Display) -> JobError {
    JobError::Store(e.to_string())
}

/// The conversation this job continues: the thread's, when the job may follow up
/// (`Job::follow_up`) and the conversation still exists.
pub async fn existing_conversation(
    runtime: &Arc<Runtime>,
    provider: &str,
    job: &Job,
    scope: &UserScope,
) -> Result<Option<String>, JobError> {
    let (Some(thread), Some(_)) = (&job.thread, &job.follow_up) else {
        return Ok(None);
    };
    let Some(id) = threads::find(&runtime.db, provider, thread, scope)
        .await
        .map_err(|e| store(&e))?
    else {
        return Ok(None);
    };
    // A deleted conversation is not continued: the request starts a new one.
    let exists = runtime
        .ext
        .conversation_store
        .get(scope, &id)
        .await
        .map_err(|e| store(&e))?
        .is_some();
    Ok(exists.then_some(id))
}

/// What [`continue_conversation`] needs besides the job.
pub struct Continuation<'a> {
    pub provider: &'a str,
    pub delivery_id: &'a str,
    pub conversation_id: &'a str,
    pub settings: Settings,
    pub secrets: UserSecrets,
}

/// Delivers the job's follow-up to the thread's conversation (see the module doc).
pub async fn continue_conversation(
    runtime: &Arc<Runtime>,
    job: &Job,
    continuation: Continuation<'_>,
) -> Result<(), JobError> {
    let ext = &runtime.ext;
    let scope = job.scope();
    let id = continuation.conversation_id;
    let message = job
        .follow_up
        .clone()
        .unwrap_or_else(|| job.instructions.clone());
    let newest = ext
        .event_store
        .read(
            &scope,
            id,
            EventQuery {
                start_id: 0,
                end_id: None,
                reverse: true,
                limit: 1,
            },
        )
        .await
        .map_err(|e| store(&e))?;
    let cursor = newest.events.first().map_or(0, |e| {
        i64::try_from(e.id).unwrap_or(i64::MAX).saturating_add(1)
    });
    callbacks::follow_up(
        &runtime.db,
        continuation.provider,
        continuation.delivery_id,
        id,
        job,
        cursor,
    )
    .await
    .map_err(|e| store(&e))?;
    let input = ConversationInput::Message {
        content: message.clone(),
        image_urls: Vec::new(),
    };
    match ext.conversation_manager.send(&scope, id, input).await {
        Ok(()) => return Ok(()),
        Err(ManagerError::NotRunning(_)) => {}
        Err(other) => return Err(JobError::Start(other.to_string())),
    }
    // Not running: the message is stored, and the agent, started again, answers it.
    ext.event_store
        .append(&scope, id, NewEvent::user_message(&message, Vec::new()))
        .await
        .map_err(|e| store(&e))?;
    let metadata = ext
        .conversation_store
        .get(&scope, id)
        .await
        .map_err(|e| store(&e))?
        .ok_or_else(|| JobError::Start(format!("conversation {id} no longer exists")))?;
    let conversation_instructions = metadata.conversation_instructions.clone();
    ext.conversation_manager
        .start(StartRequest {
            scope,
            metadata,
            settings: continuation.settings,
            secrets: continuation.secrets,
            conversation_instructions,
            resume_work: false,
        })
        .await
        .map_err(|e| JobError::Start(e.to_string()))?;
    Ok(())
}
