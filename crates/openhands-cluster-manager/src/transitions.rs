//! One lock per conversation for its claim, start, stop and release on this replica.
//!
//! A conversation's transitions must not interleave here (a stop between a claim and the
//! run it starts would leave a run without a lease), but different conversations have
//! nothing to wait for each other: the limits they share are checked atomically in Redis
//! (see `lease`). One lock for the whole replica made a handover at shutdown, which moves
//! a hundred conversations at once, wait for each resume in turn on the taking replica.
//!
//! The map holds an entry only while someone holds or awaits that conversation's lock (a
//! waiter whose future is dropped mid-wait can leave an empty entry behind, which the next
//! lock of that conversation clears: a few bytes per conversation at most).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The per-conversation transition locks of one replica.
type Locks = Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>;

#[derive(Default)]
pub(crate) struct Transitions {
    locks: Locks,
}

/// Holds one conversation's transition lock; dropping it lets the next one in. It can be
/// moved into a spawned task (a resume that goes on after the claim was answered).
pub(crate) struct Transition {
    guard: Option<OwnedMutexGuard<()>>,
    conversation_id: String,
    locks: Locks,
}

fn locked(locks: &Locks) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AsyncMutex<()>>>> {
    locks.lock().unwrap_or_else(|p| p.into_inner())
}

impl Transitions {
    /// Waits for the conversation's lock (transitions of other conversations go on).
    pub(crate) async fn lock(&self, conversation_id: &str) -> Transition {
        let lock = locked(&self.locks)
            .entry(conversation_id.to_owned())
            .or_default()
            .clone();
        let guard = lock.lock_owned().await;
        Transition {
            guard: Some(guard),
            conversation_id: conversation_id.to_owned(),
            locks: self.locks.clone(),
        }
    }

    /// How many conversations have a lock entry (held or awaited).
    #[cfg(test)]
    fn entries(&self) -> usize {
        locked(&self.locks).len()
    }
}

impl Drop for Transition {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = locked(&self.locks);
        // Nobody else holds or awaits it when the map's reference is the only one left
        // (waiters clone the Arc under this same map lock before they wait).
        if locks
            .get(&self.conversation_id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&self.conversation_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn different_conversations_do_not_wait_for_each_other() {
        let transitions = Transitions::default();
        let _a = transitions.lock("a").await;
        let b = tokio::time::timeout(Duration::from_secs(1), transitions.lock("b")).await;
        assert!(b.is_ok(), "a lock on one conversation blocked another");
    }

    #[tokio::test]
    async fn the_same_conversation_waits_and_entries_go_away() {
        let transitions = Arc::new(Transitions::default());
        let first = transitions.lock("a").await;
        let waiting = {
            let transitions = transitions.clone();
            tokio::spawn(async move {
                let _second = transitions.lock("a").await;
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "a second lock on the same conversation did not wait"
        );
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the waiter never got the lock")
            .expect("the waiter panicked");
        assert_eq!(transitions.entries(), 0, "released locks stay in the map");
    }
}
