//! The [`ConversationManager`] implementation: the standalone manager runs the agent loops
//! this replica owns; Redis decides who owns what, carries the events to other replicas
//! and brings commands to the owner.

mod moves;

use crate::fanout::{Forwarder, GapSource, relay, stream_position, xadd};
use crate::keys::Keys;
use crate::lease::{AtLimit, Claim, Leases, OwnerRecord, Renewal};
use crate::routing::{Command, Handler, Op, Outcome, Router};
use crate::transitions::Transitions;
use crate::watchers::{self, LocalWatchers};
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
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// How long a claim lasts without renewal by default (`cluster.lease_ms`); an owner renews
/// every third of it. A heartbeat key lives as long.
pub const LEASE: Duration = Duration::from_secs(15);
/// How long a command routed to the owner may take by default (`cluster.command_timeout_ms`).
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
    services: Services,
    /// `cluster.lease_ms`: lease and heartbeat lifetime.
    lease: Duration,
    watcher_buffer: usize,
    /// `max_concurrent_conversations`, cluster-wide.
    per_user: u32,
    /// `shutdown_drain_ms`: how long a command may finish at shutdown.
    drain_deadline: Duration,
    owned: Mutex<HashMap<String, Owned>>,
    relays: Mutex<HashMap<String, broadcast::Sender<LiveMessage>>>,
    /// The WebSocket watchers of this replica, announced in Redis for idle close.
    watchers: LocalWatchers,
    /// Set at shutdown: no more takeovers here.
    shutting_down: AtomicBool,
    /// Serializes each conversation's claims, releases and local stops.
    transitions: Transitions,
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
        // The cluster-wide cap is kept in Redis (see `lease`); a per-replica count of the
        // same cap would only refuse starts the cluster has room for.
        let local_config = Arc::new(Config {
            max_running_conversations: 0,
            ..(*config).clone()
        });
        let local = StandaloneConversationManager::new(local_config, services.clone());
        local.spawn_idle_sweeper();
        let cluster = &config.cluster;
        let lease = cluster.lease();
        let shared = Arc::new(Shared {
            local,
            keys: Keys::new(pool.key_prefix()),
            leases: Leases::new(
                pool.clone(),
                &replica_id,
                lease,
                config.max_concurrent_conversations,
            )
            .with_global_cap(config.max_running_conversations),
            router: Arc::new(Router::new(
                pool.clone(),
                &replica_id,
                cluster.command_timeout(),
            )),
            pool,
            event_store: services.event_store.clone(),
            services,
            lease,
            per_user: config.max_concurrent_conversations.max(1),
            drain_deadline: config.shutdown_drain(),
            watcher_buffer: config.watcher_buffer.max(1),
            owned: Mutex::new(HashMap::new()),
            relays: Mutex::new(HashMap::new()),
            watchers: LocalWatchers::default(),
            shutting_down: AtomicBool::new(false),
            transitions: Transitions::default(),
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
        let ticker = tokio::spawn(tick(Arc::downgrade(&shared), cluster.renew_interval()));
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
    async fn handle(self: &Arc<Self>, command: Command) -> Outcome {
        let scope = command.scope();
        let id = command.conversation_id.clone();
        match command.op {
            Op::Send { input } => {
                if !self.owns(&scope, &id) {
                    return Outcome::NotRunning;
                }
                match self.send_owned(&scope, &id, input.into()).await {
                    Ok(()) => Outcome::Sent,
                    Err(err) => Outcome::from_error(err),
                }
            }
            Op::Stop => match self.stop_owned(&scope, &id).await {
                Ok(previous) => Outcome::Stopped { previous },
                Err(err) => Outcome::from_error(err),
            },
            Op::TakeOver => self.take_over(&scope, &id).await,
        }
    }

    /// Stops a run of this replica and gives its lease up.
    async fn stop_owned(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<ConversationStatus>, ManagerError> {
        let _transition = self.transitions.lock(conversation_id).await;
        let previous = self.local.stop(scope, conversation_id).await?;
        let owned = {
            let mut owned = self.owned();
            match owned.get(conversation_id) {
                Some(o) if &o.scope == scope => owned.remove(conversation_id),
                _ => None,
            }
        };
        self.local.set_watched_elsewhere(conversation_id, false);
        if let Some(owned) = owned {
            owned.forwarder.finish().await;
            if let Err(err) = self.leases.release(conversation_id, scope).await {
                tracing::warn!(conversation_id, error = %err, "releasing a conversation failed; its lease will run out");
            }
        }
        Ok(previous)
    }

    /// Forgets a run that ended by itself (idle close, failure cleared) or whose lease was
    /// lost, releasing the lease when still held.
    async fn drop_owned(&self, conversation_id: &str, release: bool) {
        let _transition = self.transitions.lock(conversation_id).await;
        let Some(owned) = self.owned().remove(conversation_id) else {
            return;
        };
        self.local.set_watched_elsewhere(conversation_id, false);
        if !release {
            let _ = self.local.stop(&owned.scope, conversation_id).await;
        }
        owned.forwarder.finish().await;
        if release && let Err(err) = self.leases.release(conversation_id, &owned.scope).await {
            tracing::warn!(conversation_id, error = %err, "releasing a conversation failed; its lease will run out");
        }
    }

    /// One round of upkeep: heartbeat, ended runs, status changes, due renewals.
    async fn upkeep(&self) {
        let replica = self.leases.replica_id().to_owned();
        let heartbeat = self.keys.replica(&replica);
        let beating = !self.shutting_down.load(Ordering::SeqCst);
        let ttl = u64::try_from(self.lease.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        if beating
            && let Err(err) = self
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
        self.share_watchers().await;
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
            if status == published && renewed.elapsed() < self.lease / 3 {
                continue;
            }
            match self.leases.renew(&id, &scope, status).await {
                Ok(renewal @ (Renewal::Renewed | Renewal::Reclaimed)) => {
                    if renewal == Renewal::Reclaimed {
                        tracing::info!(conversation_id = %id, "Redis had lost its data; claimed the running conversation again");
                    }
                    if let Some(o) = self.owned().get_mut(&id) {
                        o.published = status;
                        o.renewed = Instant::now();
                    }
                }
                Ok(Renewal::Lost) => {
                    tracing::warn!(conversation_id = %id, "lost the lease of a running conversation; stopping it here");
                    self.drop_owned(&id, false).await;
                }
                Err(err) => {
                    tracing::warn!(conversation_id = %id, error = %err, "renewing a conversation lease failed");
                }
            }
        }
    }

    /// Announces this replica's watchers, then tells the local runs which of them are
    /// watched on any replica (so idle close spares them; see [`crate::watchers`]).
    async fn share_watchers(&self) {
        let publication = self.watchers.due(self.lease / 3);
        if let Err(err) = watchers::publish(
            &self.pool,
            &self.keys,
            self.leases.replica_id(),
            self.lease,
            &publication,
        )
        .await
        {
            tracing::warn!(error = %err, "announcing this replica's watchers failed");
            self.watchers.retry(publication);
        }
        let owned: Vec<String> = self.owned().keys().cloned().collect();
        match watchers::watched(&self.pool, &self.keys, &owned).await {
            Ok(watched) => {
                for (id, watched) in owned.iter().zip(watched) {
                    self.local.set_watched_elsewhere(id, watched);
                }
            }
            // Unknown: the flags stay as they were (a watched conversation stays open).
            Err(err) => {
                tracing::warn!(error = %err, "counting the watchers of other replicas failed")
            }
        }
    }

    /// Input for a run of this replica; the conversation counts as active now for the
    /// per-user limit.
    async fn send_owned(
        &self,
        scope: &UserScope,
        conversation_id: &str,
        input: ConversationInput,
    ) -> Result<(), ManagerError> {
        self.local.send(scope, conversation_id, input).await?;
        if let Err(err) = self.leases.touch(conversation_id, scope).await {
            tracing::warn!(conversation_id, error = %err, "recording a conversation's activity in Redis failed");
        }
        Ok(())
    }

    /// Stops the user's conversations that a claim pushed over the per-user limit, wherever
    /// they run and in whichever of the user's orgs, telling their watchers why (as the
    /// standalone manager does).
    async fn evict(&self, scope: &UserScope, conversation_ids: &[String]) {
        if conversation_ids.is_empty() {
            return;
        }
        // Each runs for its own scope (the user in another org, maybe): stops check it.
        let records = self
            .leases
            .records(conversation_ids)
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(error = %err, "reading the scopes of conversations to stop failed");
                Vec::new()
            });
        for (index, id) in conversation_ids.iter().enumerate() {
            let scope = records
                .get(index)
                .and_then(Option::as_ref)
                .map(OwnerRecord::scope)
                .filter(|own| own.user_id.is_some() && own.user_id == scope.user_id)
                .unwrap_or_else(|| scope.clone());
            let scope = &scope;
            let notice = json!({
                "status_update": true, "type": "error", "id": "AGENT_ERROR$TOO_MANY_CONVERSATIONS",
                "message": format!(
                    "Too many conversations at once. This one was stopped to start another; at most {} run at the same time.",
                    self.per_user
                ),
            });
            xadd(
                &self.pool,
                &self.keys.events(id),
                &LiveMessage::Notice(notice),
            )
            .await;
            tracing::info!(conversation_id = %id, "stopping a conversation over the user's limit");
            if let Err(err) = self.stop_anywhere(scope, id).await {
                tracing::warn!(conversation_id = %id, error = %err, "stopping a conversation over the user's limit failed");
            }
        }
    }

    /// Claims a conversation that is to start here (evicting over the user's limit).
    async fn claim_to_start(&self, id: &str, scope: &UserScope) -> Result<Claim, ManagerError> {
        self.leases
            .claim(id, scope, ConversationStatus::Starting, AtLimit::Evict)
            .await
            .map_err(|e| redis_failed("claiming the conversation in Redis", e))
    }

    /// The status its owner published for a conversation of `scope`, if it runs anywhere.
    async fn owner_status(
        &self,
        scope: &UserScope,
        id: &str,
    ) -> Result<Option<ConversationStatus>, ManagerError> {
        let record: Option<OwnerRecord> = self
            .leases
            .records(&[id.to_owned()])
            .await
            .map_err(|e| redis_failed("reading the conversation's owner from Redis", e))?
            .into_iter()
            .next()
            .flatten();
        Ok(record.filter(|r| r.belongs_to(scope)).map(|r| r.status))
    }

    /// Stops the conversation here when this replica runs it, else asks its owner.
    async fn stop_anywhere(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<ConversationStatus>, ManagerError> {
        if self.owns(scope, conversation_id) {
            return self.stop_owned(scope, conversation_id).await;
        }
        let owner = self
            .leases
            .owner(conversation_id)
            .await
            .map_err(|e| redis_failed("finding the conversation's owner in Redis", e))?;
        match owner {
            Some(owner) if owner != self.leases.replica_id() => {
                match self
                    .router
                    .request(&owner, scope, conversation_id, Op::Stop)
                    .await?
                {
                    Outcome::Stopped { previous } => Ok(previous),
                    other => Err(other.into_error(conversation_id)),
                }
            }
            // Not running anywhere (or a lease of ours without a run): stopping is a no-op.
            _ => self.stop_owned(scope, conversation_id).await,
        }
    }

    /// Runs a conversation this replica has just claimed (under `transitions`), with a
    /// forwarder to its stream; gives the claim up when the run does not start. `after`:
    /// the last event id already published to the stream.
    async fn run_claimed(
        &self,
        request: StartRequest,
        after: Option<u64>,
    ) -> Result<ConversationStatus, ManagerError> {
        let id = request.metadata.conversation_id.clone();
        let scope = request.scope.clone();
        // Subscribed before the run starts, so the forwarder sees its first event.
        let live = match self.local.subscribe(&scope, &id).await {
            Ok(live) => live,
            Err(err) => {
                let _ = self.leases.release(&id, &scope).await;
                return Err(err);
            }
        };
        let forwarder = Forwarder::spawn(
            self.pool.clone(),
            &self.keys,
            GapSource {
                store: self.event_store.clone(),
                scope: scope.clone(),
                conversation_id: id.clone(),
            },
            live,
            after,
        );
        match self.local.start(request).await {
            Ok(status) => {
                self.owned().insert(
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
                let _ = self.leases.release(&id, &scope).await;
                Err(err)
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

async fn tick(shared: Weak<Shared>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut swept: Option<Instant> = None;
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.upkeep().await;
        if swept.is_none_or(|at| at.elapsed() >= shared.lease / 3) {
            swept = Some(Instant::now());
            shared.take_over_orphans().await;
        }
    }
}

#[async_trait]
impl ConversationManager for ClusterConversationManager {
    async fn admits(&self, scope: &UserScope) -> Result<(), ManagerError> {
        if self.shared.shutting_down.load(Ordering::SeqCst) {
            return Err(ManagerError::ShuttingDown);
        }
        let leases = &self.shared.leases;
        let cap = leases.global_cap();
        if cap == 0 {
            return Ok(());
        }
        let running = leases
            .running_in_cluster_now()
            .await
            .map_err(|e| redis_failed("counting running conversations", e))?;
        if running < u64::from(cap) {
            return Ok(());
        }
        let own = leases
            .running_of(scope)
            .await
            .map_err(|e| redis_failed("listing the user's conversations", e))?;
        if own.len() >= self.shared.per_user as usize {
            return Ok(());
        }
        Err(ManagerError::CapacityReached { limit: cap })
    }

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
        let mut transition = shared.transitions.lock(&id).await;
        if shared.owns(&scope, &id) {
            return shared.local.start(request).await;
        }
        if shared.shutting_down.load(Ordering::SeqCst) {
            return Err(ManagerError::ShuttingDown);
        }
        let mut claim = shared.claim_to_start(&id, &scope).await?;
        if claim == Claim::Refused
            && shared.owner_status(&scope, &id).await? == Some(ConversationStatus::Error)
        {
            // The owner's run failed, and starting again replaces a failed run, as on one
            // server: its owner stops it (giving the lease up) and this replica claims it.
            // Stops take `transitions` themselves, so it is let go meanwhile.
            drop(transition);
            shared.stop_anywhere(&scope, &id).await?;
            transition = shared.transitions.lock(&id).await;
            if shared.owns(&scope, &id) {
                return shared.local.start(request).await;
            }
            claim = shared.claim_to_start(&id, &scope).await?;
        }
        if claim == Claim::AtCapacity {
            if let Err(err) = shared.leases.release(&id, &scope).await {
                tracing::warn!(conversation_id = %id, error = %err, "releasing a refused claim failed; its lease will run out");
            }
            tracing::info!(conversation_id = %id, "refusing a start: the cluster is at capacity");
            return Err(ManagerError::CapacityReached {
                limit: shared.leases.global_cap(),
            });
        }
        let Claim::Won { evict } = claim else {
            // Another replica runs it: starting is a no-op, as for a running conversation.
            return Ok(shared
                .owner_status(&scope, &id)
                .await?
                .unwrap_or(ConversationStatus::Starting));
        };
        let started = shared.run_claimed(request, None).await;
        // Stops take `transitions` themselves (here, or on the owner of a routed stop).
        drop(transition);
        shared.evict(&scope, &evict).await;
        started
    }

    async fn stop(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<ConversationStatus>, ManagerError> {
        self.shared.stop_anywhere(scope, conversation_id).await
    }

    async fn send(
        &self,
        scope: &UserScope,
        conversation_id: &str,
        input: ConversationInput,
    ) -> Result<(), ManagerError> {
        let shared = &self.shared;
        if shared.owns(scope, conversation_id) {
            return shared.send_owned(scope, conversation_id, input).await;
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
        self.shared.watchers.changed(conversation_id, delta);
    }

    async fn shutdown(&self) {
        // The heartbeat goes first, so no replica hands its conversations to this one.
        self.shared.shutting_down.store(true, Ordering::SeqCst);
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
        self.shared.hand_over().await;
        // Watchers here are gone with the HTTP server: owners elsewhere need not wait a lease.
        let withdrawn = self.shared.watchers.withdraw_all();
        if let Err(err) = watchers::publish(
            &self.shared.pool,
            &self.shared.keys,
            self.shared.leases.replica_id(),
            self.shared.lease,
            &withdrawn,
        )
        .await
        {
            tracing::warn!(error = %err, "withdrawing this replica's watchers failed; they expire after a lease");
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
