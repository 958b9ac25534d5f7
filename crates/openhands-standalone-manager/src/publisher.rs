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
//! per watcher; the timer of a burst that its observation already took along does nothing,
//! so it cannot send the next step's action ahead of that action's observation.

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
    pending: Mutex<Pending>,
}

/// Events stored but not yet sent, and which burst they are.
#[derive(Default)]
struct Pending {
    /// `Some` while a flush is scheduled for them.
    events: Option<Vec<LiveEvent>>,
    /// Counts bursts, so that the timer of a burst that has gone out already (its
    /// observation took it along) cannot send a later action before its observation.
    burst: u64,
}

impl LivePublisher {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            sender: broadcast::channel(capacity.max(1)).0,
            pending: Mutex::new(Pending::default()),
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
            // The flush still scheduled for this burst finds it gone and does nothing.
            pending.events.get_or_insert_with(Vec::new).push(live);
            self.send_pending(&mut pending);
            return;
        }
        match pending.events.as_mut() {
            Some(events) => events.push(live),
            None => {
                pending.events = Some(vec![live]);
                let burst = pending.burst;
                let publisher = Arc::clone(self);
                let flush = async move {
                    tokio::time::sleep(LINGER).await;
                    publisher.flush_burst(burst);
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

    /// The timer of burst `burst`: sends it if it is still waiting.
    fn flush_burst(&self, burst: u64) {
        let mut pending = self.lock();
        if pending.burst == burst {
            self.send_pending(&mut pending);
        }
    }

    /// Sends under the lock, so a concurrent notice cannot overtake these events.
    fn send_pending(&self, pending: &mut Pending) {
        if let Some(events) = pending.events.take() {
            pending.burst = pending.burst.wrapping_add(1);
            if let Some(message) = LiveMessage::batch(events) {
                let _ = self.sender.send(message);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
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

        // The next action waits for its own linger, and nothing goes out twice.
        publisher.event(&stored(3, "next"));
        let next = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the action goes out within the linger")
            .expect("a message");
        assert_eq!(ids(&next), vec![3]);
        tokio::time::sleep(LINGER * 5).await;
        assert!(rx.try_recv().is_err(), "nothing sent twice");
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_of_a_burst_already_sent_does_not_send_the_next_action_alone() {
        let publisher = LivePublisher::new(16);
        let mut rx = publisher.subscribe();
        publisher.event(&stored(0, "think"));
        publisher.event(&observed(1, 0));
        assert_eq!(ids(&rx.try_recv().expect("the first burst")), vec![0, 1]);

        // The next action comes before the first burst's timer is up, and its observation
        // after it: they still go out together.
        tokio::time::sleep(LINGER / 2).await;
        publisher.event(&stored(2, "think again"));
        tokio::time::sleep(LINGER * 3 / 4).await;
        assert!(
            rx.try_recv().is_err(),
            "the first burst's timer sent the next action without its observation"
        );
        publisher.event(&observed(3, 2));
        assert_eq!(ids(&rx.try_recv().expect("the second burst")), vec![2, 3]);
        tokio::time::sleep(LINGER * 2).await;
        assert!(rx.try_recv().is_err(), "nothing sent twice");
    }
}
