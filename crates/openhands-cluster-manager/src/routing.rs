//! Commands for a conversation owned by another replica.
//!
//! Each replica listens on two pub/sub channels on a connection of its own:
//! `<p>cm:cmd:{<replica>}` for commands on the conversations it owns and
//! `<p>cm:reply:{<replica>}` for the answers to its own commands. A command carries a
//! request id and the sender's replica id; the owner runs it as a local call and publishes
//! the outcome. Pub/sub is enough here: a command is answered or times out, never replayed,
//! and `PUBLISH` answering 0 receivers tells at once that the owner is not listening.

use crate::keys::Keys;
use futures_util::StreamExt;
use openhands_core::conversation::ConversationStatus;
use openhands_core::extension::{ConversationInput, ManagerError};
use openhands_core::scope::UserScope;
use openhands_redis::RedisPool;
use openhands_redis::redis;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Pause after the listener loses Redis before it subscribes again.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(500);

/// User input as it travels between replicas.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireInput {
    Message {
        content: String,
        image_urls: Vec<String>,
    },
    Confirm,
    Reject,
}

impl From<ConversationInput> for WireInput {
    fn from(input: ConversationInput) -> Self {
        match input {
            ConversationInput::Message {
                content,
                image_urls,
            } => WireInput::Message {
                content,
                image_urls,
            },
            ConversationInput::Confirm => WireInput::Confirm,
            ConversationInput::Reject => WireInput::Reject,
        }
    }
}

impl From<WireInput> for ConversationInput {
    fn from(input: WireInput) -> Self {
        match input {
            WireInput::Message {
                content,
                image_urls,
            } => ConversationInput::Message {
                content,
                image_urls,
            },
            WireInput::Confirm => ConversationInput::Confirm,
            WireInput::Reject => ConversationInput::Reject,
        }
    }
}

/// What the owner is asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Send {
        input: WireInput,
    },
    Stop,
    /// Claim and resume a conversation its owner has just released (handover at the
    /// owner's shutdown); sent to a live replica, not to an owner.
    TakeOver,
}

/// A command on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Command {
    pub request_id: String,
    pub reply_to: String,
    pub user_id: Option<String>,
    pub org_id: Option<String>,
    pub conversation_id: String,
    pub op: Op,
}

impl Command {
    pub fn scope(&self) -> UserScope {
        UserScope {
            user_id: self.user_id.clone(),
            org_id: self.org_id.clone(),
        }
    }
}

/// The owner's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Sent,
    Stopped {
        previous: Option<ConversationStatus>,
    },
    /// The conversation runs (on the asked replica, or on one that claimed it first).
    TakenOver,
    NotRunning,
    NotFound,
    Failed {
        message: String,
    },
}

impl Outcome {
    pub fn from_error(err: ManagerError) -> Self {
        match err {
            ManagerError::NotRunning(_) => Outcome::NotRunning,
            ManagerError::NotFound(_) => Outcome::NotFound,
            ManagerError::Failed(message) => Outcome::Failed { message },
            // Starts are never routed; a refusal for capacity travels as its message.
            other @ (ManagerError::CapacityReached { .. } | ManagerError::ShuttingDown) => {
                Outcome::Failed {
                    message: other.to_string(),
                }
            }
        }
    }

    pub fn into_error(self, conversation_id: &str) -> ManagerError {
        match self {
            Outcome::NotRunning => ManagerError::NotRunning(conversation_id.to_owned()),
            Outcome::NotFound => ManagerError::NotFound(conversation_id.to_owned()),
            Outcome::Failed { message } => ManagerError::Failed(message),
            other => ManagerError::Failed(format!(
                "unexpected answer from the owner of conversation {conversation_id}: {other:?}"
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reply {
    request_id: String,
    outcome: Outcome,
}

/// Runs a command this replica received; given by the manager.
pub type Handler =
    Arc<dyn Fn(Command) -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync>;

/// Sends commands to owners and waits for their answers.
pub struct Router {
    pool: RedisPool,
    keys: Keys,
    replica_id: String,
    timeout: Duration,
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
}

impl Router {
    pub fn new(pool: RedisPool, replica_id: &str, timeout: Duration) -> Self {
        Self {
            keys: Keys::new(pool.key_prefix()),
            pool,
            replica_id: replica_id.to_owned(),
            timeout,
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Outcome>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks `owner` to run `op` and waits for its outcome.
    pub async fn request(
        &self,
        owner: &str,
        scope: &UserScope,
        conversation_id: &str,
        op: Op,
    ) -> Result<Outcome, ManagerError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let command = Command {
            request_id: request_id.clone(),
            reply_to: self.replica_id.clone(),
            user_id: scope.user_id.clone(),
            org_id: scope.org_id.clone(),
            conversation_id: conversation_id.to_owned(),
            op,
        };
        let payload = serde_json::to_string(&command)
            .map_err(|e| ManagerError::Failed(format!("encoding a command: {e}")))?;
        let (tx, rx) = oneshot::channel();
        self.pending().insert(request_id.clone(), tx);
        let channel = self.keys.commands(owner);
        let published = self
            .pool
            .run(|mut connection| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async::<i64>(&mut connection)
                    .await
            })
            .await;
        let unreachable = match published {
            Ok(0) => Some(format!(
                "replica {owner}, which runs conversation {conversation_id}, is not listening"
            )),
            Ok(_) => None,
            Err(err) => Some(format!(
                "reaching replica {owner}, which runs conversation {conversation_id}: {err}"
            )),
        };
        if let Some(message) = unreachable {
            self.pending().remove(&request_id);
            return Err(ManagerError::Failed(message));
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            _ => {
                self.pending().remove(&request_id);
                Err(ManagerError::Failed(format!(
                    "replica {owner}, which runs conversation {conversation_id}, did not answer within {} ms",
                    self.timeout.as_millis()
                )))
            }
        }
    }

    fn answer(&self, reply: Reply) {
        if let Some(waiting) = self.pending().remove(&reply.request_id) {
            let _ = waiting.send(reply.outcome);
        }
    }

    async fn publish_reply(&self, to: &str, reply: Reply) {
        let Ok(payload) = serde_json::to_string(&reply) else {
            return;
        };
        let channel = self.keys.replies(to);
        let sent = self
            .pool
            .run(|mut connection| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async::<i64>(&mut connection)
                    .await
            })
            .await;
        if let Err(err) = sent {
            tracing::warn!(replica = to, error = %err, "answering a routed command failed");
        }
    }

    /// Listens for commands and replies until the router is dropped; resubscribes after a
    /// lost connection. `ready` fires once the first subscription holds.
    pub async fn listen(self: Arc<Self>, handler: Handler, ready: oneshot::Sender<()>) {
        let weak = Arc::downgrade(&self);
        let commands = self.keys.commands(&self.replica_id);
        let replies = self.keys.replies(&self.replica_id);
        let pool = self.pool.clone();
        drop(self);
        let mut ready = Some(ready);
        loop {
            let mut pubsub = match pool.pubsub().await {
                Ok(pubsub) => pubsub,
                Err(err) => {
                    tracing::warn!(error = %err, "routing: no Redis connection");
                    tokio::time::sleep(RESUBSCRIBE_AFTER).await;
                    if weak.strong_count() == 0 {
                        return;
                    }
                    continue;
                }
            };
            if let Err(err) = pubsub.subscribe(&[&commands, &replies]).await {
                tracing::warn!(error = %err, "routing: subscribing failed");
                tokio::time::sleep(RESUBSCRIBE_AFTER).await;
                continue;
            }
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let Some(router) = weak.upgrade() else { return };
                let channel = message.get_channel_name().to_owned();
                let Ok(payload) = message.get_payload::<String>() else {
                    continue;
                };
                if channel == replies {
                    match serde_json::from_str::<Reply>(&payload) {
                        Ok(reply) => router.answer(reply),
                        Err(err) => tracing::warn!(error = %err, "routing: unreadable reply"),
                    }
                    continue;
                }
                let command = match serde_json::from_str::<Command>(&payload) {
                    Ok(command) => command,
                    Err(err) => {
                        tracing::warn!(error = %err, "routing: unreadable command");
                        continue;
                    }
                };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let reply_to = command.reply_to.clone();
                    let request_id = command.request_id.clone();
                    let outcome = handler(command).await;
                    router
                        .publish_reply(
                            &reply_to,
                            Reply {
                                request_id,
                                outcome,
                            },
                        )
                        .await;
                });
            }
            if weak.strong_count() == 0 {
                return;
            }
            tracing::warn!("routing: lost the Redis subscription; subscribing again");
            tokio::time::sleep(RESUBSCRIBE_AFTER).await;
        }
    }
}
