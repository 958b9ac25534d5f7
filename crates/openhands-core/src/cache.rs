//! A small time-bounded cache for per-request reads that change rarely.
//!
//! Every authenticated request needs a few answers (the caller's current org, an API key's
//! owner, the settings page) that are database reads and change rarely. Caching them takes
//! those reads off the hot path; each user of this cache documents how stale its entries may
//! be and what invalidates them.
//!
//! Entries expire by age; when the map reaches its capacity it is cleared (a burst of
//! distinct callers costs one round of reads, never unbounded memory).
//!
//! A cache that is invalidated on writes has a race: a reader loads the old value, a writer
//! commits and invalidates, then the reader inserts the old value it loaded. The *epoch*
//! closes it: every invalidation advances it, a reader notes it before loading and
//! [`TtlCache::insert_if_unchanged`] drops the value when an invalidation came in between.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A map whose entries live for `ttl`; a zero TTL caches nothing.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    epoch: AtomicU64,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            epoch: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the cache keeps anything at all.
    pub fn is_enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The value under `key` if it is younger than the TTL.
    pub fn get(&self, key: &K) -> Option<V> {
        if !self.is_enabled() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, value)| value.clone())
    }

    /// Stores `value` unconditionally (for caches without invalidation).
    pub fn insert(&self, key: K, value: V) {
        if !self.is_enabled() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        Self::insert_locked(&mut entries, self.capacity, key, value);
    }

    /// The current epoch; note it before loading a value to insert with
    /// [`Self::insert_if_unchanged`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Stores `value` unless an invalidation happened since `epoch` was read. Returns
    /// whether it was stored.
    pub fn insert_if_unchanged(&self, key: K, value: V, epoch: u64) -> bool {
        if !self.is_enabled() {
            return false;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Invalidations advance the epoch while holding the lock, so this check and the
        // insert cannot straddle one.
        if self.epoch.load(Ordering::Acquire) != epoch {
            return false;
        }
        Self::insert_locked(&mut entries, self.capacity, key, value);
        true
    }

    /// Forgets `key` and advances the epoch.
    pub fn invalidate(&self, key: &K) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.remove(key);
    }

    /// Forgets everything and advances the epoch.
    pub fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    fn insert_locked(entries: &mut HashMap<K, (Instant, V)>, capacity: usize, key: K, value: V) {
        if entries.len() >= capacity && !entries.contains_key(&key) {
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

    #[test]
    fn a_value_loaded_before_an_invalidation_is_not_cached() {
        let cache = TtlCache::new(Duration::from_secs(60), 10);
        let before_load = cache.epoch();
        cache.invalidate(&"settings");
        assert!(!cache.insert_if_unchanged("settings", "old", before_load));
        assert_eq!(cache.get(&"settings"), None);

        let fresh = cache.epoch();
        assert!(cache.insert_if_unchanged("settings", "new", fresh));
        assert_eq!(cache.get(&"settings"), Some("new"));
    }

    #[test]
    fn invalidate_and_clear_forget_entries() {
        let cache = TtlCache::new(Duration::from_secs(60), 10);
        cache.insert("a", 1);
        cache.insert("b", 2);
        cache.invalidate(&"a");
        assert_eq!((cache.get(&"a"), cache.get(&"b")), (None, Some(2)));
        cache.clear();
        assert_eq!(cache.get(&"b"), None);
    }
}
