//! Resources shared by the plugins of one server: a connection pool that the four SQL stores
//! use together, a Redis client, ...
//!
//! They belong to the server being built, not to the process: a process may build several
//! servers (tests do, and a restart in place does), and a pool opened on one server's runtime
//! must not outlive it into the next. So each `build_state` gets one [`SharedResources`]
//! (inside [`crate::registry::PluginContext`]) and constructors ask it for a resource by type
//! and key, building it on first use.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

type Entries = HashMap<(TypeId, String), Arc<dyn Any + Send + Sync>>;

/// Resources built once per server; cheap to clone (clones share the entries).
#[derive(Clone, Default)]
pub struct SharedResources {
    entries: Arc<tokio::sync::Mutex<Entries>>,
}

impl std::fmt::Debug for SharedResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedResources").finish_non_exhaustive()
    }
}

impl SharedResources {
    /// The resource of type `T` under `key`, built by `init` the first time it is asked for.
    /// Concurrent first calls build it once; a failed `init` leaves nothing behind, so a
    /// later call tries again.
    pub async fn get_or_try_init<T, E, F, Fut>(&self, key: &str, init: F) -> Result<T, E>
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut entries = self.entries.lock().await;
        let slot = (TypeId::of::<T>(), key.to_owned());
        if let Some(found) = entries.get(&slot).and_then(|v| v.downcast_ref::<T>()) {
            return Ok(found.clone());
        }
        let built = init().await?;
        entries.insert(slot, Arc::new(built.clone()));
        Ok(built)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn builds_once_per_type_and_key_and_retries_failures() {
        let shared = SharedResources::default();
        let builds = AtomicUsize::new(0);
        let build = |value: u32| {
            builds.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, String>(value) }
        };
        assert_eq!(shared.get_or_try_init("a", || build(1)).await, Ok(1));
        assert_eq!(shared.get_or_try_init("a", || build(2)).await, Ok(1));
        assert_eq!(shared.get_or_try_init("b", || build(3)).await, Ok(3));
        let other_type = shared
            .get_or_try_init("a", || async { Ok::<_, String>("text".to_owned()) })
            .await;
        assert_eq!(other_type.as_deref(), Ok("text"));
        assert_eq!(
            builds.load(Ordering::SeqCst),
            2,
            "the cached `a` was not rebuilt"
        );

        let failed = shared
            .get_or_try_init::<u64, _, _, _>("c", || async { Err("down".to_owned()) })
            .await;
        assert_eq!(failed, Err("down".to_owned()));
        assert_eq!(
            shared
                .get_or_try_init("c", || async { Ok::<u64, String>(9) })
                .await,
            Ok(9)
        );
        let clone = shared.clone();
        assert_eq!(
            clone
                .get_or_try_init("c", || async { Ok::<u64, String>(10) })
                .await,
            Ok(9)
        );
    }
}
