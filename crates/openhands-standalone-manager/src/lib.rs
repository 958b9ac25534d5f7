//! `oss.standalone`: runs each conversation's agent loop as a task in this process.
//!
//! The manager owns, per conversation, the input channel of its agent task and a broadcast
//! channel of live messages. Every event goes through [`io::ConversationIo`], which stores it
//! (secrets masked) before publishing it, so a watcher can always catch up from the store.
//! At most `max_concurrent_conversations` run per user: starting another stops the least
//! recently active one and tells its watchers why. Conversations with no watcher and no
//! activity for `sandbox.close_delay` seconds are closed by a sweeper task.

mod io;
mod manager;
mod publisher;
mod runner;

pub use manager::StandaloneConversationManager;

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
