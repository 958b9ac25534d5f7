//! A small time-bounded cache for per-request lookups that may be a little stale.
//!
//! Every authenticated request needs the caller's current org, and an API-key request its
//! key's owner; both are database reads whose answers change rarely. Caching them for a
//! second or two takes those reads off the hot path. The cost is bounded and documented
//! (`docs/login.md`): an org switch, a removal from an org or a revoked key takes effect on
//! a replica within the TTL, not at once.
//!
//! Entries expire by age; when the map reaches its capacity it is cleared (a burst of
//! distinct callers costs one round of reads, never unbounded memory).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A map whose entries live for `ttl`.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value under `key` if it is younger than the TTL.
    pub fn get(&self, key: &K) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, value)| value.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_capacity_bounds_memory() {
        let cache = TtlCache::new(Duration::from_millis(30), 2);
        cache.insert("a", 1);
        assert_eq!(cache.get(&"a"), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(&"a"), None, "expired");
        cache.insert("a", 1);
        cache.insert("b", 2);
        cache.insert("c", 3);
        assert_eq!(cache.get(&"a"), None, "cleared at capacity");
        assert_eq!(cache.get(&"c"), Some(3));
        let off = TtlCache::new(Duration::ZERO, 2);
        off.insert("a", 1);
        assert_eq!(off.get(&"a"), None, "a zero TTL caches nothing");
    }
}
