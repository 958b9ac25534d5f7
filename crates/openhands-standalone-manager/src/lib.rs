//! `oss.standalone`: runs each conversation's agent loop as a task in this process.
//!
//! The manager owns, per conversation, the input channel of its agent task and a broadcast
//! channel of live messages. Every event goes through [`io::ConversationIo`], which stores it
//! (secrets masked) before publishing it, so a watcher can always catch up from the store.
//! At most `max_concurrent_conversations` run per user, counted across all of the user's
//! organizations (orgs are free to create, so a per-org count would multiply the limit):
//! starting another stops the user's least recently active one, in whichever org, and tells
//! its watchers why. At most `max_running_conversations` run on the server (`0`: no cap);
//! at the cap a start is refused with `ManagerError::CapacityReached`, never made room for
//! by stopping another user's work. Conversations with no watcher and no activity for
//! `sandbox.close_delay` seconds are closed by a sweeper task.
//!
//! Agent tasks run on the runtime current when the manager was built (the server builds it
//! on one that outlives its HTTP workers). At shutdown, [`StandaloneConversationManager::drain`]
//! ends every run at its next step boundary (see `openhands_runtime::agent::AgentInput::Drain`)
//! and waits for them, refusing new starts with `ManagerError::ShuttingDown`.

mod io;
mod manager;
mod publisher;
mod runner;

pub use manager::{DrainingRun, SHUTDOWN_REASON, StandaloneConversationManager};

use std::sync::Arc;

openhands_core::register_plugin!(
    openhands_core::extension::ConversationManager,
    "oss.standalone",
    "Runs conversations as tasks in this process (single server)",
    |ctx| {
        let manager = StandaloneConversationManager::new(ctx.config.clone(), ctx.services()?);
        manager.spawn_idle_sweeper();
        Ok(Arc::new(manager))
    }
);
