//! The [`ConversationManager`] implementation.

use crate::io::ConversationIo;
use crate::publisher::LivePublisher;
use crate::runner::{Task, TaskEnd, TaskInput, ended_notice, secret_values};
use async_trait::async_trait;
use openhands_core::config::Config;
use openhands_core::conversation::ConversationStatus;
use openhands_core::extension::{
    ConversationInput, ConversationManager, LiveReceiver, ManagerError, StartRequest, fresh_secrets,
};
use openhands_core::registry::Services;
use openhands_core::runtime_keys::RUNTIME_KEY_ENV;
use openhands_core::scope::UserScope;
use openhands_core::secrets::CustomSecret;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// How long a stopping agent may take before its task is aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The `reason` of the `stopped` state a shutdown stores on a single server.
pub const SHUTDOWN_REASON: &str = "The server shut down. Send a message to continue.";

struct Running {
    scope: UserScope,
    status: ConversationStatus,
    inputs: mpsc::Sender<TaskInput>,
    last_active: Arc<Mutex<Instant>>,
    /// The agent's task; taken by a drain, which waits for it.
    task: Option<JoinHandle<()>>,
    /// Becomes true when the agent's run has returned (its events stored and sent), before
    /// its sandbox is released and the task ends.
    left: watch::Receiver<bool>,
    /// Distinguishes this run from a later one of the same conversation.
    generation: u64,
}

#[derive(Default)]
struct Inner {
    running: HashMap<String, Running>,
    live: HashMap<String, Arc<LivePublisher>>,
    watchers: HashMap<String, i64>,
    /// Conversations watched through other servers (a clustered manager around this one
    /// says so): not idle either.
    watched_elsewhere: HashSet<String>,
    next_generation: u64,
    /// Capacity of each live channel (`watcher_buffer`).
    watcher_buffer: usize,
    /// Set by [`StandaloneConversationManager::drain`]: nothing new starts.
    draining: bool,
}

impl Inner {
    fn live_sender(&mut self, conversation_id: &str) -> Arc<LivePublisher> {
        let capacity = self.watcher_buffer;
        self.live
            .entry(conversation_id.to_owned())
            .or_insert_with(|| LivePublisher::new(capacity))
            .clone()
    }
}

/// A run told to drain (see [`StandaloneConversationManager::begin_drain`]).
pub struct DrainingRun {
    pub conversation_id: String,
    pub scope: UserScope,
    inputs: mpsc::Sender<TaskInput>,
    task: JoinHandle<()>,
    left: watch::Receiver<bool>,
}

impl DrainingRun {
    /// Waits until the agent has left (its events stored and sent; its sandbox may still
    /// be being released): a command still running at `until` is interrupted, and a run
    /// still going [`STOP_GRACE`] after that is aborted.
    pub async fn agent_left(&mut self, until: tokio::time::Instant) {
        let mut left = self.left.clone();
        // An error means the task ended (or was aborted) without saying so: it has left.
        let leaving = async move {
            let _ = left.wait_for(|left| *left).await;
        };
        tokio::pin!(leaving);
        if tokio::time::timeout_at(until, &mut leaving).await.is_ok() {
            return;
        }
        tracing::warn!(conversation_id = %self.conversation_id, "a command outlived the shutdown's drain deadline; interrupting it");
        let _ = self.inputs.send(TaskInput::Stop).await;
        if tokio::time::timeout_at(until + STOP_GRACE, &mut leaving)
            .await
            .is_err()
        {
            tracing::warn!(conversation_id = %self.conversation_id, "agent did not stop in time; aborting it");
            self.task.abort();
        }
    }

    /// Waits until the run's task has ended, its sandbox released (after
    /// [`Self::agent_left`], which bounds how long the agent may take).
    pub async fn finished(self) {
        if tokio::time::timeout(STOP_GRACE, self.task).await.is_err() {
            tracing::warn!(conversation_id = %self.conversation_id, "releasing a drained run's sandbox took too long; leaving it");
        }
    }

    /// [`Self::agent_left`], then [`Self::finished`].
    pub async fn ended(mut self, until: tokio::time::Instant) {
        self.agent_left(until).await;
        self.finished().await;
    }
}

/// Runs agent loops as tasks of this process.
pub struct StandaloneConversationManager {
    config: Arc<Config>,
    services: Services,
    inner: Arc<Mutex<Inner>>,
    /// Where agent tasks run: the runtime current when the manager was built. The server
    /// builds it on a runtime of its own that outlives the HTTP workers, so a shutdown can
    /// drain the agents after the workers stopped (a task spawned from a request handler
    /// would otherwise live on that worker's runtime, and die with it).
    tasks: tokio::runtime::Handle,
}

impl StandaloneConversationManager {
    /// A manager whose agents run on the current Tokio runtime (see `tasks`).
    pub fn new(config: Arc<Config>, services: Services) -> Self {
        Self {
            tasks: tokio::runtime::Handle::current(),
            services,
            inner: Arc::new(Mutex::new(Inner {
                watcher_buffer: config.watcher_buffer,
                ..Inner::default()
            })),
            config,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the background task that closes idle, unwatched conversations.
    pub fn spawn_idle_sweeper(&self) {
        let close_delay = Duration::from_secs(self.config.sandbox.close_delay);
        if close_delay.is_zero() {
            return;
        }
        let period = (close_delay / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        let inner: Weak<Mutex<Inner>> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Some(inner) = inner.upgrade() else { return };
                let idle: Vec<(String, mpsc::Sender<TaskInput>)> = {
                    let guard = inner.lock().unwrap_or_else(|p| p.into_inner());
                    guard
                        .running
                        .iter()
                        .filter(|(id, run)| {
                            let watched = guard.watchers.get(*id).copied().unwrap_or(0) > 0
                                || guard.watched_elsewhere.contains(*id);
                            let last = *run.last_active.lock().unwrap_or_else(|p| p.into_inner());
                            !watched && last.elapsed() >= close_delay
                        })
                        .map(|(id, run)| (id.clone(), run.inputs.clone()))
                        .collect()
                };
                for (id, inputs) in idle {
                    tracing::info!(conversation_id = %id, "closing idle conversation");
                    let _ = inputs.send(TaskInput::Stop).await;
                }
            }
        });
    }

    /// Whether the conversation has watchers connected to other servers, which keep it
    /// from being closed as idle as local watchers do. When the last of them leaves, the
    /// idle delay starts again from now.
    pub fn set_watched_elsewhere(&self, conversation_id: &str, watched: bool) {
        let mut inner = self.lock();
        let changed = if watched {
            inner.watched_elsewhere.insert(conversation_id.to_owned())
        } else {
            inner.watched_elsewhere.remove(conversation_id)
        };
        if changed && let Some(run) = inner.running.get(conversation_id) {
            *run.last_active.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
    }

    /// Ends every run at its next step boundary and waits for them (see
    /// [`TaskInput::Drain`]); from now on nothing starts here. A command still running after
    /// `deadline` is interrupted, and a run still going [`STOP_GRACE`] after that is aborted.
    /// Runs stay listed until they end. Returns the conversations that were running, with
    /// their scopes.
    pub async fn drain(&self, reason: &str, deadline: Duration) -> Vec<(String, UserScope)> {
        let until = tokio::time::Instant::now() + deadline;
        let runs = self.begin_drain(reason).await;
        let drained = runs
            .iter()
            .map(|run| (run.conversation_id.clone(), run.scope.clone()));
        let drained: Vec<(String, UserScope)> = drained.collect();
        futures_util::future::join_all(runs.into_iter().map(|run| run.ended(until))).await;
        drained
    }

    /// The first half of [`Self::drain`]: tells every run to drain and refuses new ones
    /// from now on; each [`DrainingRun`] is then awaited on its own, so a caller can move
    /// each conversation on as soon as its own run has ended.
    pub async fn begin_drain(&self, reason: &str) -> Vec<DrainingRun> {
        let runs: Vec<DrainingRun> = {
            let mut inner = self.lock();
            inner.draining = true;
            inner
                .running
                .iter_mut()
                .filter_map(|(id, run)| {
                    Some(DrainingRun {
                        task: run.task.take()?,
                        conversation_id: id.clone(),
                        scope: run.scope.clone(),
                        inputs: run.inputs.clone(),
                        left: run.left.clone(),
                    })
                })
                .collect()
        };
        for run in &runs {
            let _ = run.inputs.send(TaskInput::Drain(reason.to_owned())).await;
        }
        runs
    }
    /// The least recently active running conversation of the user of `scope` (in any of
    /// their orgs) and its scope, when the user is at the limit.
    fn eviction_candidate(&self, scope: &UserScope) -> Option<(String, UserScope)> {
        let inner = self.lock();
        let mine: Vec<(&String, &Running)> = inner
            .running
            .iter()
            .filter(|(_, r)| same_limit_holder(&r.scope, scope))
            .collect();
        let limit = self.config.max_concurrent_conversations.max(1) as usize;
        if mine.len() < limit {
            return None;
        }
        mine.into_iter()
            .min_by_key(|(_, r)| *r.last_active.lock().unwrap_or_else(|p| p.into_inner()))
            .map(|(id, r)| (id.clone(), r.scope.clone()))
    }

    /// Whether the server already runs `max_running_conversations` (`0`: no cap) besides
    /// `id`. Runs that failed hold no sandbox and do not count.
    fn at_capacity(inner: &Inner, cap: u32, id: &str) -> bool {
        cap > 0
            && inner
                .running
                .iter()
                .filter(|(other, r)| other.as_str() != id && r.status != ConversationStatus::Error)
                .count()
                >= cap as usize
    }

    fn refuse_at_capacity(id: &str, cap: u32) -> ManagerError {
        tracing::info!(
            conversation_id = id,
            cap,
            "refusing a start: the server runs the most conversations it allows"
        );
        ManagerError::CapacityReached { limit: cap }
    }
}

/// Waits [`STOP_GRACE`] for a stopped run's task, then aborts it.
async fn stop_in_grace(conversation_id: &str, mut task: JoinHandle<()>) {
    if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
        tracing::warn!(conversation_id, "agent did not stop in time; aborting it");
        task.abort();
    }
}

/// Whether two scopes count against the same `max_concurrent_conversations`: the same user
/// in any of their organizations (orgs are free to create, so a per-org count would let a
/// user multiply the limit); a scope without a user (OSS's local user) only with itself.
fn same_limit_holder(a: &UserScope, b: &UserScope) -> bool {
    match (&a.user_id, &b.user_id) {
        (Some(a_user), Some(b_user)) => a_user == b_user,
        (None, None) => a.org_id == b.org_id,
        _ => false,
    }
}

#[async_trait]
impl ConversationManager for StandaloneConversationManager {
    async fn statuses(
        &self,
        scope: &UserScope,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, ConversationStatus>, ManagerError> {
        let inner = self.lock();
        Ok(conversation_ids
            .iter()
            .filter_map(|id| {
                inner
                    .running
                    .get(id)
                    .filter(|r| &r.scope == scope)
                    .map(|r| (id.clone(), r.status))
            })
            .collect())
    }

    async fn admits(&self, scope: &UserScope) -> Result<(), ManagerError> {
        let cap = self.config.max_running_conversations;
        if self.lock().draining {
            return Err(ManagerError::ShuttingDown);
        }
        let full = Self::at_capacity(&self.lock(), cap, "");
        if full && self.eviction_candidate(scope).is_none() {
            return Err(ManagerError::CapacityReached { limit: cap });
        }
        Ok(())
    }

    async fn start(&self, mut request: StartRequest) -> Result<ConversationStatus, ManagerError> {
        let id = request.metadata.conversation_id.clone();
        {
            let mut inner = self.lock();
            if inner.draining {
                return Err(ManagerError::ShuttingDown);
            }
            match inner.running.get(&id).map(|r| r.status) {
                // A failed run has ended; starting again replaces it.
                Some(ConversationStatus::Error) => {
                    inner.running.remove(&id);
                }
                Some(status) => return Ok(status),
                None => {}
            }
            // Refused early when full, unless the user is at their own limit: then one of
            // their own runs makes room, which leaves the total as it was.
            let cap = self.config.max_running_conversations;
            if Self::at_capacity(&inner, cap, &id) {
                drop(inner);
                if self.eviction_candidate(&request.scope).is_none() {
                    return Err(Self::refuse_at_capacity(&id, cap));
                }
            }
        }
        // Tokens about to expire are refreshed (and stored) now, before the sandbox and
        // the event masking see them: the sandbox clones with the fresh token and exports
        // it, and its value is masked in events like any other secret.
        request.secrets = fresh_secrets(
            &*self.services.provider_tokens,
            &request.scope,
            std::mem::take(&mut request.secrets),
        )
        .await;
        // The runtime's key for `/api/refresh-tokens` travels as one more secret: exported
        // to the tools and masked in events like the others.
        if let Some(key) = self.services.runtime_keys.mint(&request.scope, &id) {
            request.secrets.custom_secrets.insert(
                RUNTIME_KEY_ENV.to_owned(),
                CustomSecret {
                    secret: key,
                    description: "Session key of this conversation's runtime".to_owned(),
                },
            );
        }
        if let Some((evicted, evicted_scope)) = self.eviction_candidate(&request.scope) {
            let notice = json!({
                "status_update": true, "type": "error", "id": "AGENT_ERROR$TOO_MANY_CONVERSATIONS",
                "message": format!(
                    "Too many conversations at once. This one was stopped to start another; at most {} run at the same time.",
                    self.config.max_concurrent_conversations
                ),
            });
            self.lock().live_sender(&evicted).notice(notice);
            self.stop(&evicted_scope, &evicted).await?;
        }
        let (tx, rx) = mpsc::channel(64);
        let last_active = Arc::new(Mutex::new(Instant::now()));
        let mut inner = self.lock();
        if inner.draining {
            return Err(ManagerError::ShuttingDown);
        }
        if let Some(status) = inner.running.get(&id).map(|r| r.status) {
            return Ok(status);
        }
        // Checked again under the lock the run is inserted under: two starts that both
        // passed the early check cannot both take the last place.
        let cap = self.config.max_running_conversations;
        if Self::at_capacity(&inner, cap, &id) {
            return Err(Self::refuse_at_capacity(&id, cap));
        }
        let live = inner.live_sender(&id);
        inner.next_generation += 1;
        let generation = inner.next_generation;
        let io = Arc::new(ConversationIo {
            scope: request.scope.clone(),
            conversation_id: id.clone(),
            secrets: secret_values(&request),
            event_store: self.services.event_store.clone(),
            conversation_store: self.services.conversation_store.clone(),
            monitoring: self.services.monitoring.clone(),
            live: live.clone(),
            last_active: last_active.clone(),
            usage: Mutex::new(Default::default()),
        });
        let weak = Arc::downgrade(&self.inner);
        let running_id = id.clone();
        let on_running = Box::new(move || {
            if let Some(inner) = weak.upgrade() {
                let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(run) = guard
                    .running
                    .get_mut(&running_id)
                    .filter(|r| r.generation == generation)
                {
                    run.status = ConversationStatus::Running;
                }
            }
        });
        let task = Task {
            request: request.clone(),
            io,
            event_store: self.services.event_store.clone(),
            sandbox: self.services.sandbox.clone(),
            repository_policy: self.services.repository_policy.clone(),
            llm_egress_allow: self.config.llm_egress_allow.clone(),
            max_command_timeout: Duration::from_secs(
                self.config.sandbox.limits.command_timeout_seconds,
            ),
            on_running,
        };
        let sandbox = self.services.sandbox.clone();
        let weak = Arc::downgrade(&self.inner);
        let task_id = id.clone();
        let monitoring = self.services.monitoring.clone();
        let started = Instant::now();
        let (left_tx, left) = watch::channel(false);
        let handle = self.tasks.spawn(async move {
            let (end, sandbox_tools) = task.run(rx).await;
            // Stored events go out before anyone learns that the agent left (a handover
            // moves the conversation on from here, while the sandbox is being released).
            live.flush();
            left_tx.send_replace(true);
            // A sandbox still starting (a resumed run's) is seen through first, so the
            // release finds every process it has to end.
            if let Some(tools) = sandbox_tools {
                let _ = tools.started().await;
            }
            // Whatever the agent left running ends with its run.
            sandbox.release(&task_id).await;
            monitoring.on_agent_session_start(
                &task_id,
                matches!(end, TaskEnd::Stopped),
                started.elapsed(),
            );
            // What the run stored went out before `left` (above); the notice follows it.
            if let Some(notice) = ended_notice(&end) {
                live.notice(notice);
            }
            if let Some(inner) = weak.upgrade() {
                let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
                let current = guard
                    .running
                    .get(&task_id)
                    .is_some_and(|r| r.generation == generation);
                match (&end, current) {
                    (TaskEnd::Failed(_), true) => {
                        if let Some(run) = guard.running.get_mut(&task_id) {
                            run.status = ConversationStatus::Error;
                        }
                    }
                    (TaskEnd::Stopped, true) => {
                        guard.running.remove(&task_id);
                    }
                    _ => {}
                }
            }
        });
        inner.running.insert(
            id,
            Running {
                scope: request.scope,
                status: ConversationStatus::Starting,
                inputs: tx,
                last_active,
                task: Some(handle),
                left,
                generation,
            },
        );
        Ok(ConversationStatus::Starting)
    }

    async fn stop(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<ConversationStatus>, ManagerError> {
        let run = {
            let mut inner = self.lock();
            match inner.running.get(conversation_id) {
                Some(run) if &run.scope == scope => inner.running.remove(conversation_id),
                _ => None,
            }
        };
        let Some(run) = run else { return Ok(None) };
        let status = run.status;
        let _ = run.inputs.send(TaskInput::Stop).await;
        // Without its task, the run is being drained, which waits for it.
        if let Some(task) = run.task {
            stop_in_grace(conversation_id, task).await;
        }
        Ok(Some(status))
    }

    async fn send(
        &self,
        scope: &UserScope,
        conversation_id: &str,
        input: ConversationInput,
    ) -> Result<(), ManagerError> {
        let (inputs, last_active) = {
            let inner = self.lock();
            let run = inner
                .running
                .get(conversation_id)
                .filter(|r| &r.scope == scope && r.status != ConversationStatus::Error)
                .ok_or_else(|| ManagerError::NotRunning(conversation_id.to_owned()))?;
            (run.inputs.clone(), run.last_active.clone())
        };
        *last_active.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        inputs
            .send(TaskInput::User(input))
            .await
            .map_err(|_| ManagerError::NotRunning(conversation_id.to_owned()))
    }

    async fn subscribe(
        &self,
        _scope: &UserScope,
        conversation_id: &str,
    ) -> Result<LiveReceiver, ManagerError> {
        Ok(self.lock().live_sender(conversation_id).subscribe())
    }

    fn watcher_count_changed(&self, conversation_id: &str, delta: i64) {
        let mut inner = self.lock();
        let count = inner
            .watchers
            .entry(conversation_id.to_owned())
            .or_insert(0);
        *count = (*count + delta).max(0);
        if *count == 0 {
            inner.watchers.remove(conversation_id);
        }
        if let Some(run) = inner.running.get(conversation_id) {
            *run.last_active.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
    }

    async fn shutdown(&self) {
        let drained = self
            .drain(SHUTDOWN_REASON, self.config.shutdown_drain())
            .await;
        if !drained.is_empty() {
            tracing::info!(
                conversations = drained.len(),
                "stopped the running conversations for the shutdown"
            );
        }
    }
}
