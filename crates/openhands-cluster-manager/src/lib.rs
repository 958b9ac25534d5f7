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
//!
//! Not yet: takeover of a dead owner's conversations, the cluster-wide per-user limit,
//! handover at shutdown, idle close that counts watchers on other replicas (see
//! `docs/cluster.md`).
//!
//! [`StandaloneConversationManager`]: openhands_standalone_manager::StandaloneConversationManager

pub mod fanout;
pub mod keys;
pub mod lease;
mod manager;
pub mod routing;

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
        let manager = ClusterConversationManager::start(
            ctx.config.clone(),
            ctx.services()?,
            pool,
            new_replica_id(),
        )
        .await;
        Ok(Arc::new(manager))
    }
);
