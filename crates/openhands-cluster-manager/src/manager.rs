//! The [`ConversationManager`] implementation: the standalone manager runs the agent loops
//! this replica owns; Redis decides who owns what, carries the events to other replicas
//! and brings commands to the owner.

use crate::fanout::{Forwarder, GapSource, relay, stream_position};
use crate::keys::Keys;
use crate::lease::{Leases, OwnerRecord};
use crate::routing::{Command, Handler, Op, Outcome, Router};
use async_trait::async_trait;
use openhands_core::config::Config;
use openhands_core::conversation::ConversationStatus;
use openhands_core::extension::{
    ConversationInput, ConversationManager, EventStore, LiveMessage, LiveReceiver, ManagerError,
    StartRequest,
};
use openhands_core::registry::Services;
use openhands_core::scope::UserScope;
use openhands_redis::{RedisError, RedisPool, redis};
use openhands_standalone_manager::StandaloneConversationManager;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// How long a claim lasts without renewal; an owner renews every third of it.
pub const LEASE: Duration = Duration::from_secs(15);
/// How often the owner publishes status changes (and checks for ended runs).
const TICK: Duration = Duration::from_millis(250);
/// How long a heartbeat key lives without renewal.
const HEARTBEAT_TTL: Duration = Duration::from_secs(15);
/// How long a command routed to the owner may take to be answered.
pub const ROUTE_TIMEOUT: Duration = Duration::from_secs(10);

fn redis_failed(what: &str, err: RedisError) -> ManagerError {
    ManagerError::Failed(format!("{what}: {err}"))
}

/// A conversation this replica owns.
struct Owned {
    scope: UserScope,
    /// The status last written to Redis.
    published: ConversationStatus,
    renewed: Instant,
    forwarder: Forwarder,
}

struct Shared {
    local: StandaloneConversationManager,
    pool: RedisPool,
    keys: Keys,
    leases: Leases,
    router: Arc<Router>,
    event_store: Arc<dyn EventStore>,
    watcher_buffer: usize,
    owned: Mutex<HashMap<String, Owned>>,
    relays: Mutex<HashMap<String, broadcast::Sender<LiveMessage>>>,
    /// Serializes claims, releases and local stops.
    transitions: tokio::sync::Mutex<()>,
    background: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for task in self
            .background
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

/// Runs the conversations this replica owns, and reaches the others through Redis.
pub struct ClusterConversationManager {
    shared: Arc<Shared>,
}

impl ClusterConversationManager {
    /// A manager for replica `replica_id`, with its background tasks (heartbeat, leases,
    /// command listener) started; returns once the listener is subscribed or after the
    /// Redis timeout.
    pub async fn start(
        config: Arc<Config>,
        services: Services,
        pool: RedisPool,
        replica_id: String,
    ) -> Self {
        let local = StandaloneConversationManager::new(config.clone(), services.clone());
        local.spawn_idle_sweeper();
        let shared = Arc::new(Shared {
            local,
            keys: Keys::new(pool.key_prefix()),
            leases: Leases::new(pool.clone(), &replica_id, LEASE),
            router: Arc::new(Router::new(pool.clone(), &replica_id, ROUTE_TIMEOUT)),
            pool,
            event_store: services.event_store.clone(),
            watcher_buffer: config.watcher_buffer.max(1),
            owned: Mutex::new(HashMap::new()),
            relays: Mutex::new(HashMap::new()),
            transitions: tokio::sync::Mutex::new(()),
            background: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&shared);
        let handler: Handler = Arc::new(move |command: Command| {
            let weak = weak.clone();
            Box::pin(async move {
                match weak.upgrade() {
                    Some(shared) => shared.handle(command).await,
                    None => Outcome::Failed {
                        message: "the replica is shutting down".into(),
                    },
                }
            })
        });
        let (ready, subscribed) = tokio::sync::oneshot::channel();
        let listener = tokio::spawn(shared.router.clone().listen(handler, ready));
        let ticker = tokio::spawn(tick(Arc::downgrade(&shared)));
        shared.background().extend([listener, ticker]);
        let _ = tokio::time::timeout(
            shared.pool.timeout().max(Duration::from_secs(1)),
            subscribed,
        )
        .await;
        tracing::info!(replica = %replica_id, "clustered conversation manager started");
        Self { shared }
    }

    /// This replica's id.
    pub fn replica_id(&self) -> &str {
        self.shared.leases.replica_id()
    }
}

impl Shared {
    fn background(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.background.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn owned(&self) -> std::sync::MutexGuard<'_, HashMap<String, Owned>> {
        self.owned.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn relays(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<LiveMessage>>> {
        self.relays.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn owns(&self, scope: &UserScope, conversation_id: &str) -> bool {
        self.owned()
            .get(conversation_id)
            .is_some_and(|o| &o.scope == scope)
    }

    /// A command routed here by another replica.
    async fn handle(&self, command: Command) -> Outcome {
        let scope = command.scope();
        let id = command.conversation_id.clone();
        match command.op {
            Op::Send { input } => {
                if !self.owns(&scope, &id) {
                    return Outcome::NotRunning;
                }
                match self.local.send(&scope, &id, input.into()).await {
                    Ok(()) => Outcome::Sent,
                    Err(err) => Outcome::from_error(err),
                }
            }
            Op::Stop => match self.stop_owned(&scope, &id).await {
                Ok(previous) => Outcome::Stopped { previous },
                Err(err) => Outcome::from_error(err),
            },
        }
    }

    /// Stops a run of this replica and gives its lease up.
    async fn stop_owned(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<ConversationStatus>, ManagerError> {
        let _transition = self.transitions.lock().await;
        let previous = self.local.stop(scope, conversation_id).await?;
        let owned = {
            let mut owned = self.owned();
            match owned.get(conversation_id) {
                Some(o) if &o.scope == scope => owned.remove(conversation_id),
                _ => None,
            }
        };
        if let Some(owned) = owned {
            owned.forwarder.finish().await;
            if let Err(err) = self.leases.release(conversation_id).await {
                tracing::warn!(conversation_id, error = %err, "releasing a conversation failed; its lease will run out");
            }
        }
        Ok(previous)
    }

    /// Forgets a run that ended by itself (idle close, failure cleared) or whose lease was
    /// lost, releasing the lease when still held.
    async fn drop_owned(&self, conversation_id: &str, release: bool) {
        let _transition = self.transitions.lock().await;
        let Some(owned) = self.owned().remove(conversation_id) else {
            return;
        };
        if !release {
            let _ = self.local.stop(&owned.scope, conversation_id).await;
        }
        owned.forwarder.finish().await;
        if release && let Err(err) = self.leases.release(conversation_id).await {
            tracing::warn!(conversation_id, error = %err, "releasing a conversation failed; its lease will run out");
        }
    }

    /// One round of upkeep: heartbeat, ended runs, status changes, due renewals.
    async fn upkeep(&self) {
        let replica = self.leases.replica_id().to_owned();
        let heartbeat = self.keys.replica(&replica);
        let ttl = u64::try_from(HEARTBEAT_TTL.as_millis()).unwrap_or(u64::MAX);
        if let Err(err) = self
            .pool
            .run(|mut connection| async move {
                redis::cmd("SET")
                    .arg(heartbeat)
                    .arg(replica)
                    .arg("PX")
                    .arg(ttl)
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await
        {
            tracing::warn!(error = %err, "replica heartbeat failed");
        }
        let owned: Vec<(String, UserScope, ConversationStatus, Instant)> = self
            .owned()
            .iter()
            .map(|(id, o)| (id.clone(), o.scope.clone(), o.published, o.renewed))
            .collect();
        for (id, scope, published, renewed) in owned {
            let status = self
                .local
                .statuses(&scope, std::slice::from_ref(&id))
                .await
                .ok()
                .and_then(|s| s.get(&id).copied());
            let Some(status) = status else {
                // The run ended here (idle close, or a stop in the standalone manager).
                self.drop_owned(&id, true).await;
                continue;
            };
            if status == published && renewed.elapsed() < LEASE / 3 {
                continue;
            }
            match self.leases.renew(&id, &scope, status).await {
                Ok(true) => {
                    if let Some(o) = self.owned().get_mut(&id) {
                        o.published = status;
                        o.renewed = Instant::now();
                    }
                }
                Ok(false) => {
                    tracing::warn!(conversation_id = %id, "lost the lease of a running conversation; stopping it here");
                    self.drop_owned(&id, false).await;
                }
                Err(err) => {
                    tracing::warn!(conversation_id = %id, error = %err, "renewing a conversation lease failed");
                }
            }
        }
    }

    /// Ends a relay with no watcher left; true when it should keep going.
    fn relay_wanted(&self, conversation_id: &str, sender: &broadcast::Sender<LiveMessage>) -> bool {
        let mut relays = self.relays();
        if sender.receiver_count() > 0 {
            return true;
        }
        if relays
            .get(conversation_id)
            .is_some_and(|s| s.same_channel(sender))
        {
            relays.remove(conversation_id);
        }
        false
    }
}

async fn tick(shared: Weak<Shared>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.upkeep().await;
    }
}

#[async_trait]
impl ConversationManager for ClusterConversationManager {
    async fn statuses(
        &self,
        scope: &UserScope,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, ConversationStatus>, ManagerError> {
        let shared = &self.shared;
        let (mine, others): (Vec<String>, Vec<String>) = conversation_ids
            .iter()
            .cloned()
            .partition(|id| shared.owns(scope, id));
        let mut statuses = shared.local.statuses(scope, &mine).await?;
        let records = shared
            .leases
            .records(&others)
            .await
            .map_err(|e| redis_failed("reading conversation statuses from Redis", e))?;
        for (id, record) in others.into_iter().zip(records) {
            if let Some(record) = record.filter(|r| r.belongs_to(scope)) {
                statuses.insert(id, record.status);
            }
        }
        Ok(statuses)
    }

    async fn start(&self, request: StartRequest) -> Result<ConversationStatus, ManagerError> {
        let shared = &self.shared;
        let id = request.metadata.conversation_id.clone();
        let scope = request.scope.clone();
        let _transition = shared.transitions.lock().await;
        if shared.owns(&scope, &id) {
            return shared.local.start(request).await;
        }
        let claimed = shared
            .leases
            .claim(&id, &scope, ConversationStatus::Starting)
            .await
            .map_err(|e| redis_failed("claiming the conversation in Redis", e))?;
        if !claimed {
            // Another replica runs it: starting is a no-op, as for a running conversation.
            let record: Option<OwnerRecord> = shared
                .leases
                .records(std::slice::from_ref(&id))
                .await
                .map_err(|e| redis_failed("reading the conversation's owner from Redis", e))?
                .into_iter()
                .next()
                .flatten();
            return Ok(record
                .filter(|r| r.belongs_to(&scope))
                .map_or(ConversationStatus::Starting, |r| r.status));
        }
        // Subscribed before the run starts, so the forwarder sees its first event.
        let live = shared.local.subscribe(&scope, &id).await?;
        let forwarder = Forwarder::spawn(
            shared.pool.clone(),
            &shared.keys,
            GapSource {
                store: shared.event_store.clone(),
                scope: scope.clone(),
                conversation_id: id.clone(),
            },
            live,
        );
        match shared.local.start(request).await {
            Ok(status) => {
                shared.owned().insert(
                    id,
                    Owned {
                        scope,
                        published: ConversationStatus::Starting,
                        renewed: Instant::now(),
                        forwarder,
                    },
                );
                Ok(status)
            }
            Err(err) => {
                forwarder.finish().await;
                let _ = shared.leases.release(&id).await;
                Err(err)
            }
        }
    }

    async fn stop(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<ConversationStatus>, ManagerError> {
        let shared = &self.shared;
        if shared.owns(scope, conversation_id) {
            return shared.stop_owned(scope, conversation_id).await;
        }
        let owner = shared
            .leases
            .owner(conversation_id)
            .await
            .map_err(|e| redis_failed("finding the conversation's owner in Redis", e))?;
        match owner {
            Some(owner) if owner != shared.leases.replica_id() => {
                match shared
                    .router
                    .request(&owner, scope, conversation_id, Op::Stop)
                    .await?
                {
                    Outcome::Stopped { previous } => Ok(previous),
                    other => Err(other.into_error(conversation_id)),
                }
            }
            // Not running anywhere (or a lease of ours without a run): stopping is a no-op.
            _ => shared.stop_owned(scope, conversation_id).await,
        }
    }

    async fn send(
        &self,
        scope: &UserScope,
        conversation_id: &str,
        input: ConversationInput,
    ) -> Result<(), ManagerError> {
        let shared = &self.shared;
        if shared.owns(scope, conversation_id) {
            return shared.local.send(scope, conversation_id, input).await;
        }
        let owner = shared
            .leases
            .owner(conversation_id)
            .await
            .map_err(|e| redis_failed("finding the conversation's owner in Redis", e))?;
        let Some(owner) = owner.filter(|o| o != shared.leases.replica_id()) else {
            return Err(ManagerError::NotRunning(conversation_id.to_owned()));
        };
        let op = Op::Send {
            input: input.into(),
        };
        match shared
            .router
            .request(&owner, scope, conversation_id, op)
            .await?
        {
            Outcome::Sent => Ok(()),
            other => Err(other.into_error(conversation_id)),
        }
    }

    async fn subscribe(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<LiveReceiver, ManagerError> {
        let shared = &self.shared;
        if let Some(sender) = shared.relays().get(conversation_id) {
            return Ok(sender.subscribe());
        }
        let stream = shared.keys.events(conversation_id);
        let position = stream_position(&shared.pool, &stream)
            .await
            .map_err(|e| redis_failed("following the conversation's events in Redis", e))?;
        let mut relays = shared.relays();
        if let Some(sender) = relays.get(conversation_id) {
            return Ok(sender.subscribe());
        }
        let (sender, receiver) = broadcast::channel(shared.watcher_buffer);
        relays.insert(conversation_id.to_owned(), sender.clone());
        drop(relays);
        let weak = Arc::downgrade(shared);
        let id = conversation_id.to_owned();
        let wanted_sender = sender.clone();
        let keep_going = move || {
            weak.upgrade()
                .is_some_and(|s| s.relay_wanted(&id, &wanted_sender))
        };
        let gaps = GapSource {
            store: shared.event_store.clone(),
            scope: scope.clone(),
            conversation_id: conversation_id.to_owned(),
        };
        let pool = shared.pool.clone();
        let task = tokio::spawn(relay(pool, stream, position, gaps, sender, keep_going));
        let mut background = shared.background();
        background.retain(|t| !t.is_finished());
        background.push(task);
        Ok(receiver)
    }

    fn watcher_count_changed(&self, conversation_id: &str, delta: i64) {
        self.shared
            .local
            .watcher_count_changed(conversation_id, delta);
    }

    async fn shutdown(&self) {
        let owned: Vec<(String, UserScope)> = self
            .shared
            .owned()
            .iter()
            .map(|(id, o)| (id.clone(), o.scope.clone()))
            .collect();
        for (id, scope) in owned {
            let _ = self.shared.stop_owned(&scope, &id).await;
        }
        let heartbeat = self.shared.keys.replica(self.shared.leases.replica_id());
        let _ = self
            .shared
            .pool
            .run(|mut connection| async move {
                redis::cmd("DEL")
                    .arg(heartbeat)
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await;
        for task in self.shared.background().drain(..) {
            task.abort();
        }
    }
}
