//! Watchers on every replica keep a conversation open.
//!
//! The owner closes a conversation that nobody watches and that was idle for
//! `sandbox.close_delay` (the standalone manager's idle sweeper). In a cluster the watchers
//! of a conversation may sit on any replica, and the owner only sees its own WebSockets. So
//! each replica announces the conversations it has watchers for in Redis, and the owner asks
//! before closing:
//!
//! - `<p>cm:watchers:{<conversation>}` is a sorted set, one member per replica with watchers,
//!   scored with a deadline (now + `cluster.lease_ms`). A replica refreshes its members about
//!   three times per lease, adds a newly watched conversation at its next upkeep, and removes
//!   its member when its last watcher leaves. A replica that dies stops refreshing: its
//!   members count no more after one lease, like its conversation leases; one that shuts
//!   down removes them.
//! - The owner counts the members whose deadline has not passed, at every upkeep, and tells
//!   its standalone manager whether the conversation is watched elsewhere.

use crate::keys::Keys;
use openhands_redis::{RedisError, RedisPool, redis};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Default)]
struct Counts {
    /// Watchers connected to this replica, per conversation (only counts above zero).
    watching: HashMap<String, i64>,
    /// Watched since the last publication: announced at the next upkeep.
    added: HashSet<String>,
    /// No longer watched here: the member is removed at the next upkeep.
    left: HashSet<String>,
    /// When every member was last refreshed.
    refreshed: Option<Instant>,
}

/// What one replica tells the cluster about its watchers.
#[derive(Default)]
pub struct LocalWatchers {
    counts: Mutex<Counts>,
}

/// The Redis commands of one publication.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Publication {
    /// Conversations whose member is added or refreshed.
    pub watched: Vec<String>,
    /// Conversations whose member is removed.
    pub left: Vec<String>,
}

impl LocalWatchers {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A watcher of this replica connected (`delta` > 0) or left (< 0).
    pub fn changed(&self, conversation_id: &str, delta: i64) {
        let mut counts = self.counts();
        let before = counts.watching.get(conversation_id).copied().unwrap_or(0);
        let after = (before + delta).max(0);
        if after > 0 {
            counts.watching.insert(conversation_id.to_owned(), after);
        } else {
            counts.watching.remove(conversation_id);
        }
        if before == 0 && after > 0 {
            counts.left.remove(conversation_id);
            counts.added.insert(conversation_id.to_owned());
        } else if before > 0 && after == 0 {
            counts.added.remove(conversation_id);
            counts.left.insert(conversation_id.to_owned());
        }
    }

    /// What to write now: the new members (all of them once `refresh_every` passed) and
    /// the members to remove.
    pub fn due(&self, refresh_every: Duration) -> Publication {
        let mut counts = self.counts();
        let full = counts
            .refreshed
            .is_none_or(|at| at.elapsed() >= refresh_every);
        let mut watched: Vec<String> = if full {
            counts.refreshed = Some(Instant::now());
            counts.watching.keys().cloned().collect()
        } else {
            counts.added.iter().cloned().collect()
        };
        watched.sort();
        counts.added.clear();
        let mut left: Vec<String> = counts.left.drain().collect();
        left.sort();
        Publication { watched, left }
    }

    /// Every member this replica may have written, to remove at shutdown.
    pub fn withdraw_all(&self) -> Publication {
        let mut counts = self.counts();
        let mut left: Vec<String> = counts
            .watching
            .keys()
            .chain(counts.left.iter())
            .cloned()
            .collect();
        left.sort();
        left.dedup();
        counts.added.clear();
        counts.left.clear();
        Publication {
            watched: Vec::new(),
            left,
        }
    }

    /// Puts a publication back after Redis refused it, to be tried at the next upkeep.
    pub fn retry(&self, publication: Publication) {
        let mut counts = self.counts();
        for id in publication.watched {
            if counts.watching.contains_key(&id) {
                counts.added.insert(id);
            }
        }
        for id in publication.left {
            if !counts.watching.contains_key(&id) {
                counts.left.insert(id);
            }
        }
    }
}

/// Writes `publication` for `replica`: members scored now + `lease`, the keys expiring a
/// lease after the last write.
pub async fn publish(
    pool: &RedisPool,
    keys: &Keys,
    replica: &str,
    lease: Duration,
    publication: &Publication,
) -> Result<(), RedisError> {
    if publication.watched.is_empty() && publication.left.is_empty() {
        return Ok(());
    }
    let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
    let deadline = now_ms().saturating_add(lease_ms);
    let mut pipe = redis::pipe();
    for id in &publication.watched {
        let key = keys.watchers(id);
        pipe.cmd("ZADD")
            .arg(&key)
            .arg(deadline)
            .arg(replica)
            .ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(lease_ms).ignore();
    }
    for id in &publication.left {
        pipe.cmd("ZREM")
            .arg(keys.watchers(id))
            .arg(replica)
            .ignore();
    }
    pool.run(|mut connection| async move { pipe.query_async::<()>(&mut connection).await })
        .await
}

/// For each conversation, whether a replica (this one included) announced watchers whose
/// deadline has not passed.
pub async fn watched(
    pool: &RedisPool,
    keys: &Keys,
    conversation_ids: &[String],
) -> Result<Vec<bool>, RedisError> {
    if conversation_ids.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let mut pipe = redis::pipe();
    for id in conversation_ids {
        pipe.cmd("ZCOUNT")
            .arg(keys.watchers(id))
            .arg(now)
            .arg("+inf");
    }
    let counts: Vec<u64> = pool
        .run(|mut connection| async move { pipe.query_async(&mut connection).await })
        .await?;
    Ok(counts.into_iter().map(|count| count > 0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_watcher_is_announced_and_the_last_one_leaving_is_removed() {
        let local = LocalWatchers::default();
        let hour = Duration::from_secs(3600);
        // The first publication refreshes everything (nothing yet).
        assert_eq!(local.due(hour), Publication::default());
        local.changed("c1", 1);
        local.changed("c1", 1);
        assert_eq!(local.due(hour).watched, vec!["c1".to_owned()]);
        assert_eq!(local.due(hour), Publication::default(), "nothing new");
        local.changed("c1", -1);
        assert_eq!(local.due(hour), Publication::default(), "one watcher left");
        local.changed("c1", -1);
        assert_eq!(local.due(hour).left, vec!["c1".to_owned()]);
    }

    #[test]
    fn a_watcher_that_comes_and_goes_between_upkeeps_leaves_no_member() {
        let local = LocalWatchers::default();
        let _ = local.due(Duration::from_secs(3600));
        local.changed("c1", 1);
        local.changed("c1", -1);
        let due = local.due(Duration::from_secs(3600));
        assert!(due.watched.is_empty());
        assert_eq!(due.left, vec!["c1".to_owned()], "removing is harmless");
    }

    #[test]
    fn every_member_is_refreshed_once_the_period_passed() {
        let local = LocalWatchers::default();
        local.changed("c1", 1);
        local.changed("c2", 1);
        let _ = local.due(Duration::from_secs(3600));
        assert_eq!(
            local.due(Duration::ZERO).watched,
            vec!["c1".to_owned(), "c2".to_owned()]
        );
    }

    #[test]
    fn at_shutdown_every_member_is_withdrawn() {
        let local = LocalWatchers::default();
        local.changed("c1", 1);
        local.changed("c2", 1);
        local.changed("c2", -1);
        assert_eq!(
            local.withdraw_all(),
            Publication {
                watched: Vec::new(),
                left: vec!["c1".to_owned(), "c2".to_owned()],
            }
        );
    }

    #[test]
    fn a_refused_publication_is_tried_again() {
        let local = LocalWatchers::default();
        let _ = local.due(Duration::from_secs(3600));
        local.changed("c1", 1);
        let due = local.due(Duration::from_secs(3600));
        local.retry(due);
        assert_eq!(
            local.due(Duration::from_secs(3600)).watched,
            vec!["c1".to_owned()]
        );
    }
}
