//! The LLM conversation, derived from the events.
//!
//! The event log is the single source of truth: a conversation restarted from storage rebuilds
//! its messages from the stored events, so it continues exactly where it was. A running agent
//! does not rebuild them before every call (that is O(n) per call, O(n²) per task): its
//! [`Transcript`] is built from the history once, then fed each event as it is stored, and
//! keeps the messages serialized ([`MessageLog`]) so a call only copies bytes. Either way the
//! same rules apply:
//!
//! * user `message` actions → user messages (with their images);
//! * agent `message` actions → assistant text;
//! * events with `tool_call_metadata` → the assistant turn of their `model_response` (once
//!   per response), and observations → the tool result of their call (found through the
//!   metadata, or through `cause` → the action's call). A response is never recognised by
//!   the provider's response id: some OpenAI-compatible servers and proxies repeat it (or
//!   send none), and deduplicating on it once froze the history while the agent looped. An
//!   event belongs to the last assistant turn only while its call is still unanswered there;
//!   otherwise it starts a new turn;
//! * agent `message` actions with no text (an empty LLM reply) are not sent: they carry
//!   nothing, and some providers refuse empty assistant messages;
//! * a tool call without a result (the loop stopped, the user rejected an earlier call of
//!   the batch, or `finish`) gets a short placeholder result, because the API refuses
//!   assistant tool calls that are not answered;
//! * everything else (`agent_state_changed`, errors not tied to a call) is not sent.

use crate::llm::{ChatMessage, MessageLog, ToolCall};
use openhands_core::event::{Event, EventBody, EventSource};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;

/// The LLM messages for `events`, after the system prompt (what a [`Transcript`] of the same
/// events sends, unserialized).
#[cfg(test)]
pub(crate) fn build_messages(system_prompt: &str, events: &[Event]) -> Vec<ChatMessage> {
    let mut builder = Builder {
        messages: vec![ChatMessage::system(system_prompt)],
        ..Builder::default()
    };
    for event in events {
        builder.add(event);
    }
    builder.flush();
    builder.messages
}

/// The conversation as sent to the LLM, kept in step with the events.
#[derive(Debug)]
pub(crate) struct Transcript {
    builder: Builder,
    /// Every message completed so far, serialized; the builder only holds new ones briefly.
    log: MessageLog,
}

impl Transcript {
    /// The system prompt followed by the messages of the stored `events`.
    pub fn new(system_prompt: &str, events: &[Event]) -> Self {
        let mut log = MessageLog::new();
        log.push(&ChatMessage::system(system_prompt));
        let mut transcript = Self {
            builder: Builder::default(),
            log,
        };
        for event in events {
            transcript.builder.add(event);
        }
        transcript.drain();
        transcript
    }

    /// Takes a newly stored event into account.
    pub fn add(&mut self, event: &Event) {
        self.builder.add(event);
        self.drain();
    }

    /// The messages to send now: the log, plus placeholder results for calls still unanswered
    /// (not kept: a real result may still come, as a rebuild from the events would show).
    pub fn messages(&self) -> Cow<'_, MessageLog> {
        if self.builder.open_calls.is_empty() {
            return Cow::Borrowed(&self.log);
        }
        let mut log = self.log.clone();
        for (id, name) in &self.builder.open_calls {
            log.push(&placeholder(id, name));
        }
        Cow::Owned(log)
    }

    fn drain(&mut self) {
        for message in self.builder.messages.drain(..) {
            self.log.push(&message);
        }
    }
}

/// Whether the last meaningful event is a user message nobody answered yet.
pub(crate) fn awaits_reply(events: &[Event]) -> bool {
    events
        .iter()
        .rev()
        .find(|e| !is_state_change(e))
        .is_some_and(|e| {
            e.source == EventSource::User
                && matches!(&e.body, EventBody::Action { action, .. } if action == "message")
        })
}

/// The accumulated `(cost, prompt_tokens, completion_tokens)` of the last event carrying
/// `llm_metrics`, so totals continue across restarts.
pub(crate) fn last_metrics(events: &[Event]) -> (f64, u64, u64) {
    events
        .iter()
        .rev()
        .find_map(|e| e.extra.get("llm_metrics"))
        .map_or((0.0, 0, 0), |m| {
            let usage = &m["accumulated_token_usage"];
            (
                m["accumulated_cost"].as_f64().unwrap_or(0.0),
                usage["prompt_tokens"].as_u64().unwrap_or(0),
                usage["completion_tokens"].as_u64().unwrap_or(0),
            )
        })
}

fn is_state_change(event: &Event) -> bool {
    matches!(&event.body, EventBody::Observation { observation, .. } if observation == "agent_state_changed")
}

#[derive(Debug, Default)]
struct Builder {
    messages: Vec<ChatMessage>,
    /// The `model_response` of the last assistant turn, while it has calls unanswered.
    open_response: Option<Value>,
    /// Calls of the last assistant turn still waiting for a result, in order.
    open_calls: Vec<(String, String)>,
    /// Tool call id of each action event.
    action_calls: HashMap<u64, String>,
}

impl Builder {
    fn add(&mut self, event: &Event) {
        let metadata = event.extra.get("tool_call_metadata");
        match &event.body {
            EventBody::Action { action, args } => {
                if action == "message" && metadata.is_none() {
                    let content = args
                        .get("content")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    self.flush();
                    match event.source {
                        EventSource::User => {
                            let images: Vec<String> = args
                                .get("image_urls")
                                .and_then(Value::as_array)
                                .map(|urls| {
                                    urls.iter()
                                        .filter_map(|u| u.as_str().map(str::to_owned))
                                        .collect()
                                })
                                .unwrap_or_default();
                            self.messages
                                .push(ChatMessage::user_with_images(content, &images));
                        }
                        EventSource::Agent | EventSource::Environment
                            if content.trim().is_empty() => {}
                        EventSource::Agent | EventSource::Environment => {
                            self.messages
                                .push(ChatMessage::assistant(Some(content.to_owned()), Vec::new()));
                        }
                    }
                } else if let Some(metadata) = metadata {
                    self.assistant_turn(metadata);
                    if let Some(id) = metadata.get("tool_call_id").and_then(Value::as_str) {
                        self.action_calls.insert(event.id, id.to_owned());
                    }
                }
            }
            EventBody::Observation {
                observation,
                content,
                extras,
            } => {
                if let Some(metadata) = metadata {
                    self.assistant_turn(metadata);
                }
                let call_id = metadata
                    .and_then(|m| m.get("tool_call_id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| event.cause.and_then(|c| self.action_calls.get(&c).cloned()));
                if let Some(call_id) = call_id {
                    self.answer(&call_id, tool_result_text(observation, content, extras));
                }
            }
        }
    }

    /// Adds the assistant turn of `metadata.model_response` unless the event belongs to the
    /// last turn: same response and its call (`tool_call_id`) still unanswered there, as for
    /// an action emitted again after its confirmation or the observation of an action. A call
    /// already answered means a new response, even if the provider repeated every id.
    fn assistant_turn(&mut self, metadata: &Value) {
        let response = &metadata["model_response"];
        let same_turn = !self.open_calls.is_empty()
            && self.open_response.as_ref() == Some(response)
            && match metadata.get("tool_call_id").and_then(Value::as_str) {
                Some(call_id) => self.open_calls.iter().any(|(id, _)| id == call_id),
                None => true,
            };
        if same_turn {
            return;
        }
        let message = &response["choices"][0]["message"];
        let calls: Vec<ToolCall> = message["tool_calls"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(ToolCall::from_wire)
            .collect();
        if calls.is_empty() {
            return;
        }
        self.flush();
        self.open_calls = calls
            .iter()
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect();
        self.open_response = Some(response.clone());
        let content = message["content"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        self.messages.push(ChatMessage::assistant(content, calls));
    }

    fn answer(&mut self, call_id: &str, text: String) {
        if let Some(pos) = self.open_calls.iter().position(|(id, _)| id == call_id) {
            self.open_calls.remove(pos);
            self.messages.push(ChatMessage::tool_result(call_id, text));
        }
    }

    /// Answers the calls of the last assistant turn that got no result.
    fn flush(&mut self) {
        self.open_response = None;
        for (id, name) in std::mem::take(&mut self.open_calls) {
            self.messages.push(placeholder(&id, &name));
        }
    }
}

/// The result given to a call that got none.
fn placeholder(call_id: &str, name: &str) -> ChatMessage {
    let text = if name == crate::tools::FINISH_TOOL {
        "The task was marked as finished."
    } else {
        "No result: this action was not executed."
    };
    ChatMessage::tool_result(call_id, text)
}

/// What the model reads as the result of a call.
fn tool_result_text(kind: &str, content: &str, extras: &serde_json::Map<String, Value>) -> String {
    if kind == "run" {
        let metadata = &extras.get("metadata").cloned().unwrap_or_default();
        let code = metadata["exit_code"].as_i64().unwrap_or(-1);
        let dir = metadata["working_dir"].as_str().unwrap_or_default();
        return format!(
            "{content}\n[Command finished with exit code {code}; working directory: {dir}]"
        );
    }
    if kind == "error" {
        return format!("ERROR: {content}");
    }
    content.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use openhands_core::event::NewEvent;
    use serde_json::json;

    fn stored(new: NewEvent, id: u64) -> Event {
        Event::from_new(new, id, "t".into())
    }

    #[test]
    fn unanswered_calls_get_placeholders_before_the_next_user_message() {
        let metadata = json!({"tool_call_id": "a", "function_name": "execute_bash",
            "model_response": {"id": "r1", "choices": [{"message": {"content": "plan",
              "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "execute_bash", "arguments": "{\"command\":\"ls\"}"}},
                {"id": "b", "type": "function", "function": {"name": "finish", "arguments": "{}"}}]}}]}});
        let mut action = NewEvent::user_message("x", vec![]);
        action.source = EventSource::Agent;
        action.body = EventBody::Action {
            action: "run".into(),
            args: serde_json::Map::new(),
        };
        action.extra.insert("tool_call_metadata".into(), metadata);
        let events = vec![
            stored(NewEvent::user_message("hello", vec![]), 0),
            stored(action.clone(), 1),
            stored(action, 2), // re-emitted after confirmation: same turn
            stored(NewEvent::user_message("next", vec![]), 3),
        ];
        let msgs = build_messages("sys", &events);
        assert_eq!(msgs.len(), 6, "{msgs:#?}");
        assert!(
            matches!(&msgs[2], ChatMessage::Assistant { content: Some(c), tool_calls } if c == "plan" && tool_calls.len() == 2)
        );
        assert_eq!(
            msgs[3],
            ChatMessage::tool_result("a", "No result: this action was not executed.")
        );
        assert_eq!(
            msgs[4],
            ChatMessage::tool_result("b", "The task was marked as finished.")
        );
        assert_eq!(msgs[5], ChatMessage::user("next"));
        assert!(awaits_reply(&events));

        // Fed one event at a time, the transcript sends what a rebuild would, at every step.
        let mut transcript = Transcript::new("sys", &[]);
        for (n, event) in events.iter().enumerate() {
            transcript.add(event);
            let rebuilt: MessageLog = build_messages("sys", &events[..=n]).iter().collect();
            assert_eq!(*transcript.messages(), rebuilt, "after event {n}");
        }
        let resumed = Transcript::new("sys", &events);
        assert_eq!(*resumed.messages(), *transcript.messages());
    }

    /// The events of one step: a `run` action and its observation, both carrying `metadata`.
    fn run_step(metadata: &serde_json::Value, first_id: u64) -> Vec<Event> {
        let mut action = NewEvent::user_message("x", vec![]);
        action.source = EventSource::Agent;
        action.body = EventBody::Action {
            action: "run".into(),
            args: serde_json::Map::new(),
        };
        action
            .extra
            .insert("tool_call_metadata".into(), metadata.clone());
        let mut observation = action.clone();
        observation.source = EventSource::Environment;
        observation.cause = Some(first_id);
        observation.body = EventBody::Observation {
            observation: "run".into(),
            content: format!("output {first_id}"),
            extras: serde_json::Map::new(),
        };
        vec![stored(action, first_id), stored(observation, first_id + 1)]
    }

    #[test]
    fn repeated_empty_or_missing_response_ids_are_separate_responses() {
        for response_id in [json!("same"), json!(""), serde_json::Value::Null] {
            // Everything repeated: response id, call id, content (a looping model).
            let metadata = json!({"tool_call_id": "call_0", "function_name": "execute_bash",
                "model_response": {"id": response_id, "choices": [{"message": {"content": null,
                  "tool_calls": [{"id": "call_0", "type": "function", "function":
                    {"name": "execute_bash", "arguments": "{\"command\":\"ls\"}"}}]}}]}});
            let mut events = vec![stored(NewEvent::user_message("hello", vec![]), 0)];
            for step in 0..3 {
                events.extend(run_step(&metadata, 1 + 2 * step));
            }
            let msgs = build_messages("sys", &events);
            let roles: Vec<&str> = msgs
                .iter()
                .map(|m| match m {
                    ChatMessage::System { .. } => "system",
                    ChatMessage::User { .. } => "user",
                    ChatMessage::Assistant { .. } => "assistant",
                    ChatMessage::Tool { .. } => "tool",
                })
                .collect();
            assert_eq!(
                roles,
                [
                    "system",
                    "user",
                    "assistant",
                    "tool",
                    "assistant",
                    "tool",
                    "assistant",
                    "tool"
                ],
                "response id {response_id}"
            );
            assert!(
                matches!(&msgs[7], ChatMessage::Tool { tool_call_id, content }
                    if tool_call_id == "call_0" && content.starts_with("output 5\n")),
                "{:?}",
                msgs[7]
            );

            let mut transcript = Transcript::new("sys", &[]);
            for (n, event) in events.iter().enumerate() {
                transcript.add(event);
                let rebuilt: MessageLog = build_messages("sys", &events[..=n]).iter().collect();
                assert_eq!(*transcript.messages(), rebuilt, "after event {n}");
            }
        }
    }

    #[test]
    fn an_empty_agent_reply_is_not_sent() {
        let mut reply = NewEvent::user_message("", vec![]);
        reply.source = EventSource::Agent;
        let events = vec![
            stored(NewEvent::user_message("hello", vec![]), 0),
            stored(reply, 1),
        ];
        assert_eq!(build_messages("sys", &events).len(), 2);
    }
}
