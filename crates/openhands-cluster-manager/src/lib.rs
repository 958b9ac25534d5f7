//! `saas.clustered`: the conversation manager for several server replicas behind a load
//! balancer, sharing one database and one Redis.
//!
//! Each running conversation is owned by one replica, which runs its agent loop with the
//! standalone manager's machinery ([`StandaloneConversationManager`], by composition). Redis
//! holds the rest (keys in [`keys`]):
//!
//! - **Ownership** ([`lease`]): a replica claims a conversation with `SET NX PX` and renews
//!   the lease while the run lasts; it releases it (compare-and-delete) when the run ends.
//!   Replicas announce themselves with a heartbeat key.
//! - **Fan-out** ([`fanout`]): the owner appends every stored event to a Redis Stream;
//!   watchers on any replica read it, in event-id order, gaps filled from the event store.
//! - **Routing** ([`routing`]): `send` and `stop` on a replica that does not own the
//!   conversation go to the owner over pub/sub and wait for its answer.
//! - **Statuses**: the owner keeps a status record next to its lease; any replica answers
//!   from it.
//! - **Takeover and handover** ([`takeover`]): replicas sweep for conversations whose
//!   owner's lease ran out, claim and resume them, telling watchers with a stored status
//!   event; a replica shutting down hands its conversations to a live one the same way.
//! - **Idle close** ([`watchers`]): each replica announces the conversations it has
//!   WebSocket watchers for; the owner does not close a conversation watched anywhere.
//! - **Limits**: the claim script counts each user's running conversations in Redis, in
//!   all of the user's orgs, so `max_concurrent_conversations` holds across replicas and
//!   orgs; the least recently active ones are stopped wherever they run. The same script
//!   counts the cluster's running conversations against `max_running_conversations`: at
//!   the cap a start is refused (`ManagerError::CapacityReached`), another user's run is
//!   never stopped to make room.
//!
//! Timings come from `[cluster]` ([`ClusterConfig`]).
//!
//! [`ClusterConfig`]: openhands_core::config::ClusterConfig
//! [`StandaloneConversationManager`]: openhands_standalone_manager::StandaloneConversationManager

pub mod fanout;
pub mod keys;
pub mod lease;
mod manager;
pub mod routing;
pub mod takeover;
mod transitions;
pub mod watchers;

pub use manager::{ClusterConversationManager, LEASE, ROUTE_TIMEOUT};

use std::sync::Arc;

/// A fresh id for this replica (a restarted process is a new replica).
pub fn new_replica_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

openhands_core::register_plugin!(
    openhands_core::extension::ConversationManager,
    "saas.clustered",
    "Runs conversations on many replicas: ownership leases, events and commands through Redis",
    |ctx| {
        let pool = openhands_redis::server_pool(ctx).await?;
        let replica_id = ctx
            .config
            .cluster
            .replica_id
            .clone()
            .unwrap_or_else(new_replica_id);
        let manager = ClusterConversationManager::start(
            ctx.config.clone(),
            ctx.services()?,
            pool,
            replica_id,
        )
        .await;
        Ok(Arc::new(manager))
    }
);
