//! Takeover: conversations whose owner died are claimed and resumed by another replica.
//!
//! Every replica sweeps the status hash about three times per lease (`cluster.lease_ms`)
//! for *orphans*: records whose owner key is gone. Claim and release write the key and the
//! record together, so a record without its key means the owner stopped renewing without
//! releasing: it died (or paused longer than the lease, and then stops its own run at its
//! next renewal). Each replica tries the ordinary atomic claim (`SET NX`) on each orphan;
//! the first one wins and resumes the conversation from the stored events, the others see
//! the claim refused and move on. Whichever replica sweeps first takes over: there is no
//! leader and nothing to elect, and a replica that is itself in trouble does not renew
//! its heartbeat and does not sweep.
//!
//! The new owner first stores an `agent_state_changed` event through the event store (so
//! ids stay gap-free: the dead owner appends nothing any more) and publishes it to the
//! conversation's stream, so every watcher, on any surviving replica, sees that the
//! conversation moved and keeps streaming from the same stream. Its `agent_state` is the
//! last state stored before, with `running`/`loading` (a turn cut short) reported as
//! `awaiting_user_input`: a resumed agent owing a reply to a user message calls the LLM at
//! once and says `running` itself; otherwise it waits for the user.
//!
//! **Handover** at shutdown uses the same resume: the leaving replica stops each run,
//! releases it, and sends a `take_over` command to a live replica (found by its heartbeat
//! key), which claims and resumes it with [`HANDED_OVER_REASON`]; when no replica accepts,
//! the conversation stays stopped, as before. The `stopped` state the leaving run stored is
//! skipped when choosing the state to report.

use openhands_core::event::{Event, EventBody, EventQuery, EventSource, NewEvent};
use openhands_core::extension::EventStore;
use openhands_core::scope::UserScope;
use serde_json::{Map, json};

/// The `reason` of the takeover's status event.
pub const RESUMED_REASON: &str =
    "Resumed on another server: the server that ran this conversation stopped answering.";
/// The `reason` of the status event of a handover at shutdown.
pub const HANDED_OVER_REASON: &str =
    "Moved to another server: the server that ran this conversation is shutting down.";

fn agent_state(event: &Event) -> Option<&str> {
    match &event.body {
        EventBody::Observation {
            observation,
            extras,
            ..
        } if observation == "agent_state_changed" => {
            extras.get("agent_state").and_then(|s| s.as_str())
        }
        _ => None,
    }
}

/// The agent state to report after a takeover (see the module doc).
pub async fn state_after_takeover(
    store: &dyn EventStore,
    scope: &UserScope,
    conversation_id: &str,
) -> String {
    let query = EventQuery {
        start_id: 0,
        end_id: None,
        reverse: true,
        limit: 200,
    };
    let last = match store.read(scope, conversation_id, query).await {
        Ok(page) => {
            // Newest first, whatever order the store answered in.
            let mut events: Vec<&Event> = page.events.iter().collect();
            events.sort_by_key(|e| std::cmp::Reverse(e.id));
            // `stopped` is what a handover's stop wrote just before; the state before it
            // is the one to go on from.
            events
                .into_iter()
                .filter_map(agent_state)
                .find(|state| *state != "stopped")
                .map(str::to_owned)
        }
        Err(err) => {
            tracing::warn!(conversation_id, error = %err, "reading the last agent state failed");
            None
        }
    };
    match last.as_deref() {
        None | Some("running" | "loading") => "awaiting_user_input".to_owned(),
        Some(state) => state.to_owned(),
    }
}

/// The status event a takeover (or handover) stores.
pub fn resumed_event(agent_state: &str, reason: &str) -> NewEvent {
    let mut extras = Map::new();
    extras.insert("agent_state".into(), json!(agent_state));
    extras.insert("reason".into(), json!(reason));
    NewEvent {
        source: EventSource::Environment,
        message: String::new(),
        cause: None,
        body: EventBody::Observation {
            observation: "agent_state_changed".into(),
            content: String::new(),
            extras,
        },
        extra: Map::new(),
    }
}
