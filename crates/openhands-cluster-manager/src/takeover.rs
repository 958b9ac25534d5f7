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
//! conversation moved and keeps streaming from the same stream. What happens next depends
//! on the last state stored before ([`Resumption`]):
//!
//! - `running`: the agent was working. The new run goes on with the task at once, without
//!   a user message (`StartRequest::resume_work`); an action whose result was lost with the
//!   old owner first gets an observation saying so (never a silent second execution; see
//!   `openhands_runtime::agent::resume`).
//! - waiting for the user, for a confirmation, finished, or in error: it keeps waiting. A
//!   user message nobody answered yet is still answered at once.
//!
//! **Handover** at shutdown uses the same resume: the leaving replica drains its runs (each
//! agent leaves at a step boundary and stores `stopped`), releases them, and sends a
//! `take_over` command for each, all at once, to the live replicas (found by their heartbeat
//! keys), which claim and resume them with [`HANDED_OVER_REASON`]; when no replica accepts,
//! the conversation stays stopped. The `stopped` state the leaving run stored is skipped
//! when choosing the state to go on from. Each conversation moves as soon as its own agent
//! has left; its old sandbox is released meanwhile, so a background process the agent had
//! started there may outlive the move by the time the release takes (well under a second),
//! while the new owner's agent asks the LLM and starts its own sandbox.

use openhands_core::event::{Event, EventBody, EventQuery, EventSource, NewEvent};
use openhands_core::extension::EventStore;
use openhands_core::scope::UserScope;
use serde_json::{Map, json};

/// The `reason` of the takeover's status event.
pub const RESUMED_REASON: &str =
    "Resumed on another server: the server that ran this conversation stopped answering.";
/// The `reason` of the `stopped` state a replica shutting down stores before it hands the
/// conversation over.
pub const LEAVING_REASON: &str =
    "This server is shutting down; the conversation moves to another server.";
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

/// How a taken-over conversation goes on (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumption {
    /// The state the status event reports.
    pub agent_state: String,
    /// The agent was working: it goes on without waiting for the user.
    pub resume_work: bool,
}

/// How to go on after a takeover, from the last agent state stored (see the module doc).
pub async fn resumption(
    store: &dyn EventStore,
    scope: &UserScope,
    conversation_id: &str,
) -> Resumption {
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
        Some("running") => Resumption {
            agent_state: "running".to_owned(),
            resume_work: true,
        },
        None | Some("loading") => Resumption {
            agent_state: "awaiting_user_input".to_owned(),
            resume_work: false,
        },
        Some(state) => Resumption {
            agent_state: state.to_owned(),
            resume_work: false,
        },
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
