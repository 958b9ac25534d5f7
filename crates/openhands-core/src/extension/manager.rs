//! Running conversations.

use crate::conversation::{ConversationMetadata, ConversationStatus};
use crate::event::Event;
use crate::scope::UserScope;
use crate::secrets::UserSecrets;
use crate::settings::Settings;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Something watchers of a conversation receive live.
#[derive(Debug, Clone)]
pub enum LiveMessage {
    /// A stored event, serialized once for every watcher.
    Event { id: u64, json: Arc<str> },
    /// Stored events published together, in id order (an action and its observation that
    /// followed at once): one message wakes each watcher once and leaves in one write.
    Events(Arc<[LiveEvent]>),
    /// A status notice in OpenHands' `status_update` shape, not stored.
    Notice(Value),
}

/// One stored event of an [`LiveMessage::Events`] batch.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub id: u64,
    pub json: Arc<str>,
}

impl LiveEvent {
    /// A stored event, serialized once for every watcher.
    pub fn of(event: &Event) -> Self {
        let json = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
        Self {
            id: event.id,
            json: json.into(),
        }
    }
}

impl LiveMessage {
    /// The live form of a stored event.
    pub fn event(event: &Event) -> Self {
        let LiveEvent { id, json } = LiveEvent::of(event);
        LiveMessage::Event { id, json }
    }

    /// The live form of events stored one after the other: one `Event`, or one `Events`.
    pub fn batch(mut events: Vec<LiveEvent>) -> Option<Self> {
        match events.len() {
            0 => None,
            1 => events
                .pop()
                .map(|LiveEvent { id, json }| LiveMessage::Event { id, json }),
            _ => Some(LiveMessage::Events(events.into())),
        }
    }

    /// This message as single messages (a batch split into its events), in order.
    pub fn into_singles(self) -> Vec<LiveMessage> {
        match self {
            LiveMessage::Events(events) => events
                .iter()
                .map(|e| LiveMessage::Event {
                    id: e.id,
                    json: e.json.clone(),
                })
                .collect(),
            single => vec![single],
        }
    }
}

/// The live feed of one conversation. A receiver that falls behind gets `Lagged`; the
/// sender never waits for it.
pub type LiveReceiver = tokio::sync::broadcast::Receiver<LiveMessage>;

/// Input from the user to a running conversation.
#[derive(Debug, Clone)]
pub enum ConversationInput {
    Message {
        content: String,
        image_urls: Vec<String>,
    },
    Confirm,
    Reject,
}

/// Everything needed to start (or resume) a conversation's agent.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub scope: UserScope,
    pub metadata: ConversationMetadata,
    pub settings: Settings,
    pub secrets: UserSecrets,
    /// Extra instructions for this conversation only.
    pub conversation_instructions: Option<String>,
    /// Set when another server takes the conversation over while its agent was working
    /// (the owner died or shut down): the agent goes on with the task without waiting for
    /// the user. Starts on a user's behalf leave it `false`.
    pub resume_work: bool,
}

/// Why a manager call failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("conversation {0} is not running")]
    NotRunning(String),
    #[error("conversation {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
    /// The server (or cluster) runs the most conversations `max_running_conversations`
    /// allows. Nothing was stopped to make room: another user's work is never evicted for
    /// capacity. The caller may retry later.
    #[error(
        "the server runs the most conversations it allows at once ({limit}); try again in a moment"
    )]
    CapacityReached { limit: u32 },
    /// This server is shutting down and starts nothing new; another server (or this one
    /// after its restart) will. The caller may retry at once.
    #[error("this server is shutting down; try again in a moment")]
    ShuttingDown,
}

/// Owns the agent loops of running conversations.
///
/// Guarantees: statuses reflect the truth at the time of the call; `stop` is idempotent;
/// a conversation of one scope is never visible to another; every event is stored before
/// it is published to watchers.
#[async_trait]
pub trait ConversationManager: Send + Sync {
    /// The live status of each listed conversation that is not stopped. A conversation
    /// missing from the answer is `STOPPED`.
    async fn statuses(
        &self,
        scope: &UserScope,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, ConversationStatus>, ManagerError>;

    /// Whether a start for `scope` would be admitted now: `CapacityReached` when the
    /// server (or cluster) runs the most conversations it allows and the user has no run of
    /// their own to swap out. A cheap check made before anything is created, so a refused
    /// start leaves nothing behind; [`start`](Self::start) still decides for good.
    async fn admits(&self, _scope: &UserScope) -> Result<(), ManagerError> {
        Ok(())
    }

    /// Starts the agent loop, or does nothing when it runs. Returns the status after.
    async fn start(&self, request: StartRequest) -> Result<ConversationStatus, ManagerError>;

    /// Stops the conversation's agent loop. Returns its status before stopping, or `None`
    /// when it was not running.
    async fn stop(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<ConversationStatus>, ManagerError>;

    /// Delivers user input to a running conversation.
    async fn send(
        &self,
        scope: &UserScope,
        conversation_id: &str,
        input: ConversationInput,
    ) -> Result<(), ManagerError>;

    /// Subscribes to the live feed (running or not: a later start publishes to it).
    async fn subscribe(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<LiveReceiver, ManagerError>;

    /// A watcher attached or detached (used for idle close).
    fn watcher_count_changed(&self, conversation_id: &str, delta: i64);

    /// Ends this server's runs at server shutdown, refusing new starts from the first
    /// moment: each agent leaves at its next step boundary (an LLM call in flight is
    /// abandoned, a command may finish until `shutdown_drain_ms`), stores `stopped`, and a
    /// clustered manager hands the conversation to a live replica, which goes on with the
    /// work. Returns once every run has ended (or was aborted).
    async fn shutdown(&self);
}
