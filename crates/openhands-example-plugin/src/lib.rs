//! An example provider crate.
//!
//! It shows the whole contract of a provider: depend on `openhands-core`, implement an
//! extension-point trait, register it with [`openhands_core::register_plugin!`]. Nothing in
//! core or server names these types; the server links the crate behind its
//! `example-plugin` feature, and config selects the implementations by name:
//!
//! ```toml
//! [plugins]
//! settings_store = "example.memory_settings"
//! monitoring_listener = "example.counting_monitor"
//! ```
//!
//! It also contributes a route (`GET /api/example/status`, see [`routes`]), mounted only
//! when its settings store is selected: the pattern SaaS and integration crates follow.
//!
//! The tests in `tests/` run the real server with these selected.

pub mod routes;

use async_trait::async_trait;
use openhands_core::StoreError;
use openhands_core::event::Event;
use openhands_core::extension::{MonitoringListener, SettingsStore};
use openhands_core::scope::UserScope;
use openhands_core::settings::Settings;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Settings kept in process memory: nothing touches the disk.
#[derive(Default)]
pub struct MemorySettingsStore {
    by_user: Mutex<HashMap<Option<String>, Settings>>,
}

#[async_trait]
impl SettingsStore for MemorySettingsStore {
    async fn load(&self, scope: &UserScope) -> Result<Option<Settings>, StoreError> {
        let map = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(&scope.user_id).cloned())
    }

    async fn store_merged(
        &self,
        scope: &UserScope,
        incoming: Settings,
    ) -> Result<Settings, StoreError> {
        let mut map = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        let merged = incoming.merged_over(map.get(&scope.user_id));
        map.insert(scope.user_id.clone(), merged.clone());
        Ok(merged)
    }

    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

openhands_core::register_plugin!(
    openhands_core::extension::SettingsStore,
    "example.memory_settings",
    "Example provider: settings in process memory (lost on restart)",
    |ctx| Ok(Arc::new(MemorySettingsStore::default()))
);

/// Conversations created since start-up, counted by [`CountingMonitor`].
pub static CONVERSATIONS_CREATED: AtomicU64 = AtomicU64::new(0);

/// Counts monitoring hooks in process-wide counters.
#[derive(Default)]
pub struct CountingMonitor;

impl MonitoringListener for CountingMonitor {
    fn on_create_conversation(&self, _scope: &UserScope, _conversation_id: &str) {
        CONVERSATIONS_CREATED.fetch_add(1, Ordering::SeqCst);
    }

    fn on_session_event(&self, _conversation_id: &str, _event: &Event) {}

    fn on_agent_session_start(&self, _conversation_id: &str, _success: bool, _duration: Duration) {}
}

openhands_core::register_plugin!(
    openhands_core::extension::MonitoringListener,
    "example.counting_monitor",
    "Example provider: counts created conversations",
    |ctx| Ok(Arc::new(CountingMonitor))
);
