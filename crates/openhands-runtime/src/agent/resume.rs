//! Picking up work that was cut short: the action whose result never came, and what a
//! drained agent owes before it leaves.
//!
//! An agent can end between storing an action and storing its observation: its server was
//! killed (`kill -9`, a lost node), or it was stopped in the middle of a command. Whether the
//! command ran, partly ran or never started is unknown. Running it again silently could do
//! a thing twice (a `git push`, a payment, an appended line); pretending it never ran could
//! skip it. So the next run of the agent, on whichever server, first stores an `error`
//! observation for that action ([`ACTION_INTERRUPTED`]) saying exactly that, linked to the
//! action like a real result, and the LLM sees it as the call's result: it checks the
//! workspace before deciding. Nothing here ever executes the action again.
//!
//! Only the last action of the agent can be in that state (the loop stores each result
//! before the next action), and only while no user message came after it.
//!
//! An action still awaiting the user's confirmation when the agent ended is not forgotten
//! either: the next run asks about it again ([`pending_confirmation`]), so a confirmation
//! sent after a restart or a move executes it, as it would have before.

use crate::llm::ToolCall;
use openhands_core::event::{Event, EventBody, EventSource};
use serde_json::Value;

/// `error_id` of the observation stored for an action whose result was lost.
pub const ACTION_INTERRUPTED: &str = "AGENT_ERROR$ACTION_INTERRUPTED";

/// The result recorded for an action whose result was lost (see the module doc).
pub(crate) const LOST_RESULT: &str = "The result of this action was lost: the agent was \
     interrupted (its server stopped or was lost) before the action reported back. It may or \
     may not have run, completely or in part. Check its effects (files, processes, remote \
     state) before running it again.";

/// The result recorded for a command cut short because its server was shutting down and
/// the command did not finish within the drain deadline.
pub(crate) const CUT_SHORT_RESULT: &str = "This command was interrupted: the server running it \
     was shutting down and the command did not finish in time. It may have run in part. Check \
     its effects before running it again.";

/// The agent's last action when it is still waiting for a result that will never come: an
/// executed kind (`run`, `edit`, `read`), confirmed (or stored without confirmation), with no
/// observation caused by it and no user message after it.
pub(crate) fn lost_action(events: &[Event]) -> Option<&Event> {
    let position = events.iter().rposition(|e| {
        e.source == EventSource::Agent && matches!(e.body, EventBody::Action { .. })
    })?;
    let action = &events[position];
    let EventBody::Action { action: kind, args } = &action.body else {
        return None;
    };
    let executes = matches!(kind.as_str(), "run" | "edit" | "read");
    let confirmed = args
        .get("confirmation_state")
        .and_then(Value::as_str)
        .is_none_or(|state| state == "confirmed");
    if !executes || !confirmed || !action.extra.contains_key("tool_call_metadata") {
        return None;
    }
    let answered_or_overtaken = events[position + 1..].iter().any(|e| {
        e.cause == Some(action.id)
            || (e.source == EventSource::User && matches!(e.body, EventBody::Action { .. }))
    });
    (!answered_or_overtaken).then_some(action)
}

/// The agent's last action when it still awaits the user's confirmation: stored as
/// `awaiting_confirmation`, with neither a decision (a `confirmed` or `rejected` copy) nor a
/// user message after it.
pub(crate) fn pending_confirmation(events: &[Event]) -> Option<&Event> {
    let position = events.iter().rposition(|e| {
        e.source == EventSource::Agent && matches!(e.body, EventBody::Action { .. })
    })?;
    let action = &events[position];
    let EventBody::Action { args, .. } = &action.body else {
        return None;
    };
    let awaiting =
        args.get("confirmation_state").and_then(Value::as_str) == Some("awaiting_confirmation");
    let overtaken = events[position + 1..]
        .iter()
        .any(|e| e.source == EventSource::User && matches!(e.body, EventBody::Action { .. }));
    (awaiting && !overtaken).then_some(action)
}

/// The tool call a stored action came from, rebuilt from its `tool_call_metadata`.
pub(crate) fn tool_call_of(action: &Event) -> Option<ToolCall> {
    let metadata = action.extra.get("tool_call_metadata")?;
    let id = metadata.get("tool_call_id")?.as_str()?;
    metadata["model_response"]["choices"][0]["message"]["tool_calls"]
        .as_array()?
        .iter()
        .filter_map(ToolCall::from_wire)
        .find(|call| call.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openhands_core::event::NewEvent;
    use serde_json::{Map, json};

    fn stored(id: u64, source: EventSource, body: EventBody, cause: Option<u64>) -> Event {
        let mut extra = Map::new();
        if source == EventSource::Agent {
            extra.insert("tool_call_metadata".into(), json!({"tool_call_id": "c1"}));
        }
        let new = NewEvent {
            source,
            message: String::new(),
            cause,
            body,
            extra,
        };
        Event::from_new(new, id, "t".into())
    }

    fn run(id: u64, confirmation: &str) -> Event {
        let args = json!({"command": "echo 1 >> counter", "confirmation_state": confirmation});
        let Value::Object(args) = args else {
            unreachable!()
        };
        stored(
            id,
            EventSource::Agent,
            EventBody::Action {
                action: "run".into(),
                args,
            },
            None,
        )
    }

    fn observation(id: u64, cause: u64) -> Event {
        stored(
            id,
            EventSource::Environment,
            EventBody::Observation {
                observation: "run".into(),
                content: "done".into(),
                extras: Map::new(),
            },
            Some(cause),
        )
    }

    fn user_message(id: u64) -> Event {
        Event::from_new(NewEvent::user_message("again", Vec::new()), id, "t".into())
    }

    #[test]
    fn a_confirmed_command_without_result_is_lost() {
        let events = vec![user_message(0), run(1, "confirmed")];
        assert_eq!(lost_action(&events).map(|e| e.id), Some(1));
    }

    #[test]
    fn answered_awaiting_or_overtaken_commands_are_not() {
        let answered = vec![user_message(0), run(1, "confirmed"), observation(2, 1)];
        assert!(lost_action(&answered).is_none());
        let awaiting = vec![user_message(0), run(1, "awaiting_confirmation")];
        assert!(lost_action(&awaiting).is_none());
        let overtaken = vec![run(0, "confirmed"), user_message(1)];
        assert!(lost_action(&overtaken).is_none());
        // An earlier command's result does not answer the last one.
        let earlier = vec![run(0, "confirmed"), observation(1, 0), run(2, "confirmed")];
        assert_eq!(lost_action(&earlier).map(|e| e.id), Some(2));
    }
}
