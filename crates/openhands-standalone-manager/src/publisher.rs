//! The live feed of one conversation, published in bursts.
//!
//! An agent step often stores two events back to back (an action and the observation of an
//! instant tool such as `think`). Sent one by one, each would wake all of a conversation's
//! watchers and cost each of them a socket write; with 1,000 watchers that is 2,000 wakes
//! and writes for one step. So an action waits here for what follows it, and its
//! observation takes it along in one [`LiveMessage::Events`]: one wake and one write per
//! watcher. An observation closes the burst at once: waiting longer would only add delay,
//! as nothing in a step comes after its observation. An action whose tool runs longer
//! than [`LINGER`] goes out alone when that time is up. A notice first sends the events
//! before it, so order is kept. One timer per burst, for the conversation, instead of one
//! per watcher.

use openhands_core::event::{Event, EventBody};
use openhands_core::extension::{LiveEvent, LiveMessage, LiveReceiver};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// How long a stored action waits for its observation.
pub const LINGER: Duration = Duration::from_millis(1);

/// Publishes one conversation's live messages; see the module docs.
pub struct LivePublisher {
    sender: broadcast::Sender<LiveMessage>,
    /// Events stored but not yet sent; `Some` while a flush is scheduled.
    pending: Mutex<Option<Vec<LiveEvent>>>,
}

impl LivePublisher {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            sender: broadcast::channel(capacity.max(1)).0,
            pending: Mutex::new(None),
        })
    }

    pub fn subscribe(&self) -> LiveReceiver {
        self.sender.subscribe()
    }

    /// Publishes a stored event: an observation at once, with the events waiting before it;
    /// an action after [`LINGER`] at the latest, with the events stored meanwhile.
    pub fn event(self: &Arc<Self>, event: &Event) {
        let live = LiveEvent::of(event);
        let mut pending = self.lock();
        if matches!(event.body, EventBody::Observation { .. }) {
            // Any flush still scheduled finds nothing left, or a later burst, which it
            // then sends early: harmless.
            pending.get_or_insert_with(Vec::new).push(live);
            self.send_pending(&mut pending);
            return;
        }
        match pending.as_mut() {
            Some(events) => events.push(live),
            None => {
                *pending = Some(vec![live]);
                let publisher = Arc::clone(self);
                let flush = async move {
                    tokio::time::sleep(LINGER).await;
                    publisher.flush();
                };
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => {
                        runtime.spawn(flush);
                    }
                    // No runtime to wait on (a manager driven outside one): send at once.
                    Err(_) => {
                        drop(pending);
                        self.flush();
                    }
                }
            }
        }
    }

    /// Sends the pending events, then `notice`.
    pub fn notice(&self, notice: Value) {
        let mut pending = self.lock();
        self.send_pending(&mut pending);
        // No receiver is fine: nobody is watching.
        let _ = self.sender.send(LiveMessage::Notice(notice));
    }

    /// Sends the pending events now.
    pub fn flush(&self) {
        let mut pending = self.lock();
        self.send_pending(&mut pending);
    }

    /// Sends under the lock, so a concurrent notice cannot overtake these events.
    fn send_pending(&self, pending: &mut Option<Vec<LiveEvent>>) {
        if let Some(message) = pending.take().and_then(LiveMessage::batch) {
            let _ = self.sender.send(message);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<LiveEvent>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openhands_core::event::NewEvent;

    fn stored(id: u64, text: &str) -> Event {
        let new = NewEvent::user_message(text, vec![]);
        Event {
            id,
            timestamp: "2026-12-04T21:00:00.000000".to_owned(),
            source: new.source,
            message: new.message,
            cause: new.cause,
            body: new.body,
            extra: new.extra,
        }
    }

    fn observed(id: u64, cause: u64) -> Event {
        let json = serde_json::json!({
            "id": id, "timestamp": "2026-12-04T21:00:00.000000", "source": "agent",
            "cause": cause, "observation": "think", "content": "", "extras": {},
        });
        serde_json::from_value(json).expect("an observation event")
    }

    fn ids(message: &LiveMessage) -> Vec<u64> {
        match message {
            LiveMessage::Event { id, .. } => vec![*id],
            LiveMessage::Events(events) => events.iter().map(|e| e.id).collect(),
            LiveMessage::Notice(_) => vec![],
        }
    }

    #[tokio::test]
    async fn events_stored_together_go_out_as_one_message() {
        let publisher = LivePublisher::new(16);
        let mut rx = publisher.subscribe();
        publisher.event(&stored(0, "a"));
        publisher.event(&stored(1, "b"));
        assert!(rx.try_recv().is_err(), "nothing before the linger");
        let message = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("published after the linger")
            .expect("a message");
        assert_eq!(ids(&message), vec![0, 1]);
        assert!(matches!(message, LiveMessage::Events(_)));

        publisher.event(&stored(2, "c"));
        let single = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("published")
            .expect("a message");
        assert!(
            matches!(single, LiveMessage::Event { id: 2, .. }),
            "{single:?}"
        );
    }

    #[tokio::test]
    async fn a_notice_never_overtakes_the_events_before_it() {
        let publisher = LivePublisher::new(16);
        let mut rx = publisher.subscribe();
        publisher.event(&stored(0, "last words"));
        publisher.notice(serde_json::json!({"status_update": true}));
        let first = rx.try_recv().expect("the event, sent before the notice");
        assert_eq!(ids(&first), vec![0]);
        assert!(matches!(rx.try_recv(), Ok(LiveMessage::Notice(_))));
        // The scheduled flush finds nothing left to send.
        tokio::time::sleep(LINGER * 5).await;
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn an_observation_goes_out_at_once_with_the_action_before_it() {
        let publisher = LivePublisher::new(16);
        let mut rx = publisher.subscribe();
        publisher.event(&stored(0, "think about it"));
        assert!(
            rx.try_recv().is_err(),
            "the action waits for its observation"
        );
        publisher.event(&observed(1, 0));
        let burst = rx.try_recv().expect("sent without waiting for the linger");
        assert_eq!(ids(&burst), vec![0, 1]);

        publisher.event(&observed(2, 0));
        let alone = rx
            .try_recv()
            .expect("a lone observation is not held either");
        assert_eq!(ids(&alone), vec![2]);

        // The flush scheduled for the first action may still fire: it sends a later
        // action early, and never anything twice.
        publisher.event(&stored(3, "next"));
        let next = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the action goes out within the linger")
            .expect("a message");
        assert_eq!(ids(&next), vec![3]);
        tokio::time::sleep(LINGER * 5).await;
        assert!(rx.try_recv().is_err(), "nothing sent twice");
    }
}
