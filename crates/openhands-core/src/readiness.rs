//! Readiness checks that plugins add for the backends they use, so `/ready` can report
//! them without the API crate knowing the backends (it must not depend on Redis, say).
//!
//! The checks of one server live in its [`SharedResources`]: a plugin that opens a shared
//! backend (the Redis pool) registers a named check once, and `/ready` runs all of them
//! next to the stores' own health checks.

use crate::shared::SharedResources;
use futures_util::future::BoxFuture;
use std::sync::{Arc, Mutex};

/// One check: `Ok` when the backend answers, else what went wrong (no secrets).
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The named checks of one server; clones share the list.
#[derive(Clone, Default)]
pub struct ReadinessChecks {
    checks: Arc<Mutex<Vec<(String, Check)>>>,
}

impl std::fmt::Debug for ReadinessChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

const SHARED_KEY: &str = "readiness-checks";

impl ReadinessChecks {
    /// The checks of the server that `shared` belongs to.
    pub async fn of(shared: &SharedResources) -> Self {
        shared
            .get_or_try_init(SHARED_KEY, || async {
                Ok::<_, std::convert::Infallible>(Self::default())
            })
            .await
            .unwrap_or_else(|never| match never {})
    }

    /// Adds a check under `name`, replacing one of the same name.
    pub fn add(&self, name: &str, check: Check) {
        let mut checks = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        checks.retain(|(n, _)| n != name);
        checks.push((name.to_owned(), check));
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    /// Every check, sorted by name.
    pub fn all(&self) -> Vec<(String, Check)> {
        let mut checks = self
            .checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        checks.sort_by(|a, b| a.0.cmp(&b.0));
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_are_shared_per_server_and_replaced_by_name() {
        let shared = SharedResources::default();
        let checks = ReadinessChecks::of(&shared).await;
        checks.add("redis", Arc::new(|| Box::pin(async { Ok(()) })));
        checks.add("redis", Arc::new(|| Box::pin(async { Err("down".into()) })));
        let again = ReadinessChecks::of(&shared).await;
        assert_eq!(again.names(), vec!["redis".to_owned()]);
        let (_, check) = again.all().pop().expect("a check");
        assert_eq!(check().await, Err("down".to_owned()));
        let other = ReadinessChecks::of(&SharedResources::default()).await;
        assert!(other.names().is_empty());
    }
}
