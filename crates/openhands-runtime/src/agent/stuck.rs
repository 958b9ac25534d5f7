//! Stuck detection: noticing that the agent repeats itself, so the loop stops it long before
//! `max_iterations`.
//!
//! Why it exists: an LLM that loops (or an OpenAI-compatible server that makes it loop, e.g. by
//! repeating response ids) otherwise runs the same command until the iteration limit, which
//! once meant 171 identical commands in 5 s with nothing noticing. OpenHands stops such an
//! agent with its `StuckDetector`; this is the same idea over our events.
//!
//! The detector is fed every stored event (as the transcript is) and keeps only the last few
//! steps since the last user message, which resets it. A step is an action with its
//! observation, or an empty LLM reply, or a plain-text reply. Actions are compared by meaning
//! (tool name and arguments, without ids, thoughts, timestamps or confirmation state),
//! observations by kind, content and exit code. The patterns, as in OpenHands:
//!
//! * the same action and the same observation [`REPEATS`] times in a row;
//! * the same action ending in an error [`ERROR_REPEATS`] times in a row;
//! * two action/observation pairs alternating for [`ALTERNATION_STEPS`] steps;
//! * [`EMPTY_REPLIES`] empty LLM replies (no text, no tool call) in a row.

use openhands_core::event::{Event, EventBody, EventSource};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::fmt;

/// Identical action/observation pairs in a row that count as a loop.
pub(crate) const REPEATS: usize = 4;
/// Identical actions ending in an error in a row that count as a loop.
pub(crate) const ERROR_REPEATS: usize = 3;
/// Steps of two alternating action/observation pairs that count as a loop.
pub(crate) const ALTERNATION_STEPS: usize = 6;
/// Empty LLM replies in a row that count as a loop.
pub(crate) const EMPTY_REPLIES: usize = 3;

/// Action arguments that do not change what an action does. `thought` is the LLM's comment
/// beside a command, except for the `think` tool, where it is the whole action (and the
/// observation is always the same): ignoring it there made every fourth thought in a row a
/// "loop".
const VOLATILE_ARGS: &[&str] = &["thought", "confirmation_state", "security_risk"];
/// The action whose `thought` is what it does.
const THINK_ACTION: &str = "think";

/// What the agent did, by meaning.
#[derive(Debug, Clone, PartialEq)]
struct ActionKey {
    tool: String,
    arguments: Value,
}

/// What came back, by meaning.
#[derive(Debug, Clone, PartialEq)]
struct ObservationKey {
    kind: String,
    content: String,
    exit_code: Option<i64>,
}

impl ObservationKey {
    fn is_error(&self) -> bool {
        self.kind == "error"
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Pair(ActionKey, ObservationKey),
    /// An LLM reply with neither text nor tool call.
    Empty,
    /// A plain-text reply.
    Text,
}

/// The pattern the agent was caught in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stuck {
    /// The same action got the same observation [`REPEATS`] times in a row.
    RepeatedAction { tool: String },
    /// The same action ended in an error [`ERROR_REPEATS`] times in a row.
    RepeatedError { tool: String },
    /// Two action/observation pairs alternated for [`ALTERNATION_STEPS`] steps.
    Alternating { first: String, second: String },
    /// [`EMPTY_REPLIES`] empty LLM replies in a row.
    EmptyReplies,
}

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RepeatedAction { tool } => write!(
                f,
                "the same action (`{tool}` with the same arguments) got the same observation {REPEATS} times in a row"
            ),
            Self::RepeatedError { tool } => write!(
                f,
                "the same action (`{tool}` with the same arguments) ended in an error {ERROR_REPEATS} times in a row"
            ),
            Self::Alternating { first, second } => write!(
                f,
                "the agent alternated between two actions (`{first}` and `{second}`) and their observations for {ALTERNATION_STEPS} steps"
            ),
            Self::EmptyReplies => write!(
                f,
                "the LLM gave {EMPTY_REPLIES} empty replies in a row (no text, no tool call)"
            ),
        }
    }
}

/// Watches the events since the last user message for a loop.
#[derive(Debug, Default)]
pub(crate) struct StuckDetector {
    /// The last steps, oldest first; never more than the longest pattern needs.
    steps: VecDeque<Step>,
    /// Actions still waiting for their observation: (event id, tool call id, key).
    pending: Vec<(u64, Option<String>, ActionKey)>,
}

impl StuckDetector {
    /// A detector that has seen `events` (only those since the last user message count).
    pub fn new(events: &[Event]) -> Self {
        let mut detector = Self::default();
        for event in events {
            detector.add(event);
        }
        detector
    }

    /// Takes a newly stored event into account.
    pub fn add(&mut self, event: &Event) {
        let metadata = event.extra.get("tool_call_metadata");
        match &event.body {
            EventBody::Action { action, args } => {
                if action == "message" && metadata.is_none() {
                    if event.source == EventSource::User {
                        self.steps.clear();
                        self.pending.clear();
                    } else {
                        let empty = args
                            .get("content")
                            .and_then(Value::as_str)
                            .is_none_or(|c| c.trim().is_empty());
                        self.push(if empty { Step::Empty } else { Step::Text });
                    }
                } else if let Some(metadata) = metadata {
                    let call_id = call_id(metadata);
                    // An action emitted again (after its confirmation) replaces the first one.
                    self.pending
                        .retain(|(_, id, _)| call_id.is_none() || *id != call_id);
                    self.pending
                        .push((event.id, call_id, action_key(action, args, metadata)));
                }
            }
            EventBody::Observation {
                observation,
                content,
                extras,
            } => {
                let call_id = metadata.and_then(call_id);
                let position = self.pending.iter().position(|(id, call, _)| {
                    Some(*id) == event.cause || (call_id.is_some() && *call == call_id)
                });
                let action = match (position, metadata) {
                    (Some(pos), _) => self.pending.remove(pos).2,
                    // A refused tool call: no action, only this error.
                    (None, Some(metadata)) => called_key(metadata),
                    (None, None) => return,
                };
                let observation = ObservationKey {
                    kind: observation.clone(),
                    content: content.clone(),
                    exit_code: extras
                        .get("metadata")
                        .and_then(|m| m.get("exit_code"))
                        .and_then(Value::as_i64),
                };
                self.push(Step::Pair(action, observation));
            }
        }
    }

    fn push(&mut self, step: Step) {
        if self.steps.len() == ALTERNATION_STEPS.max(REPEATS) {
            self.steps.pop_front();
        }
        self.steps.push_back(step);
    }

    /// The loop the last steps show, if any.
    pub fn check(&self) -> Option<Stuck> {
        let last =
            |n: usize| (self.steps.len() >= n).then(|| self.steps.range(self.steps.len() - n..));
        if last(EMPTY_REPLIES).is_some_and(|mut s| s.all(|step| *step == Step::Empty)) {
            return Some(Stuck::EmptyReplies);
        }
        let pairs = |n: usize| -> Option<Vec<(&ActionKey, &ObservationKey)>> {
            last(n)?
                .map(|step| match step {
                    Step::Pair(action, observation) => Some((action, observation)),
                    Step::Empty | Step::Text => None,
                })
                .collect()
        };
        if let Some(pairs) = pairs(REPEATS)
            && pairs.iter().all(|p| *p == pairs[0])
        {
            return Some(Stuck::RepeatedAction {
                tool: pairs[0].0.tool.clone(),
            });
        }
        if let Some(pairs) = pairs(ERROR_REPEATS)
            && pairs.iter().all(|(a, o)| *a == pairs[0].0 && o.is_error())
        {
            return Some(Stuck::RepeatedError {
                tool: pairs[0].0.tool.clone(),
            });
        }
        if let Some(pairs) = pairs(ALTERNATION_STEPS)
            && pairs[0] != pairs[1]
            && pairs.iter().enumerate().all(|(i, p)| *p == pairs[i % 2])
        {
            return Some(Stuck::Alternating {
                first: pairs[0].0.tool.clone(),
                second: pairs[1].0.tool.clone(),
            });
        }
        None
    }
}

fn call_id(metadata: &Value) -> Option<String> {
    metadata
        .get("tool_call_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// An action by meaning: its tool and its arguments without the volatile ones.
fn action_key(action: &str, args: &Map<String, Value>, metadata: &Value) -> ActionKey {
    let tool = metadata
        .get("function_name")
        .and_then(Value::as_str)
        .unwrap_or(action);
    let arguments: Map<String, Value> = args
        .iter()
        .filter(|(k, _)| {
            !VOLATILE_ARGS.contains(&k.as_str()) || (action == THINK_ACTION && *k == "thought")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ActionKey {
        tool: tool.to_owned(),
        arguments: Value::Object(arguments),
    }
}

/// The call a refused tool call's metadata names, by meaning (its raw arguments).
fn called_key(metadata: &Value) -> ActionKey {
    let tool = metadata
        .get("function_name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let id = metadata.get("tool_call_id");
    let arguments = metadata["model_response"]["choices"][0]["message"]["tool_calls"]
        .as_array()
        .and_then(|calls| calls.iter().find(|c| c.get("id") == id))
        .map(|c| c["function"]["arguments"].clone())
        .unwrap_or_default();
    ActionKey {
        tool: tool.to_owned(),
        arguments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::events::{self, CallContext};
    use crate::llm::{AssistantMessage, ToolCall};
    use openhands_core::event::NewEvent;
    use openhands_core::tool_protocol::CommandOutput;
    use serde_json::json;

    /// Builds a history the way the loop stores it: ids in order, every response with the
    /// same provider id (ids must not matter).
    #[derive(Default)]
    struct History {
        events: Vec<Event>,
        calls: u64,
    }

    impl History {
        fn store(&mut self, event: NewEvent) -> u64 {
            let id = self.events.len() as u64;
            self.events.push(Event::from_new(
                event,
                id,
                format!("2025-01-01T00:00:{id:02}"),
            ));
            id
        }

        fn context(&mut self, tool: &str, arguments: Value) -> CallContext {
            self.calls += 1;
            let call = ToolCall {
                id: format!("call_{}", self.calls),
                name: tool.into(),
                arguments: arguments.to_string(),
            };
            let message = AssistantMessage {
                content: Some(format!("attempt {}", self.calls)),
                tool_calls: vec![call.clone()],
            };
            CallContext::new("same-id", &message, &call, json!({}))
        }

        fn user(&mut self, text: &str) {
            self.store(NewEvent::user_message(text, vec![]));
        }

        /// A command with its output.
        fn run(&mut self, command: &str, output: &str, exit_code: i32) {
            let ctx = self.context("execute_bash", json!({ "command": command }));
            let thought = format!("thought {}", self.calls);
            let action = self.store(events::run_action(command, &thought, "confirmed", &ctx));
            let out = CommandOutput {
                output: output.into(),
                exit_code,
                timed_out: false,
                truncated: false,
                working_dir: "/ws".into(),
            };
            self.store(events::run_observation(action, command, &out, &ctx));
        }

        /// A command the tool server could not run.
        fn failing_run(&mut self, command: &str, error: &str) {
            let ctx = self.context("execute_bash", json!({ "command": command }));
            let action = self.store(events::run_action(command, "", "confirmed", &ctx));
            self.store(events::error_observation(
                error,
                "",
                Some(action),
                Some(&ctx),
            ));
        }

        /// A tool call refused before any action (malformed arguments).
        fn refused_call(&mut self, raw_arguments: &str) {
            self.calls += 1;
            let call = ToolCall {
                id: format!("call_{}", self.calls),
                name: "execute_bash".into(),
                arguments: raw_arguments.into(),
            };
            let message = AssistantMessage {
                content: None,
                tool_calls: vec![call.clone()],
            };
            let ctx = CallContext::new("same-id", &message, &call, json!({}));
            self.store(events::error_observation(
                "Invalid tool call",
                events::BAD_ACTION,
                None,
                Some(&ctx),
            ));
        }

        /// A `think` step (its observation is always the same).
        fn think(&mut self, thought: &str) {
            let ctx = self.context("think", json!({ "thought": thought }));
            let action = self.store(events::think_action(thought, &ctx));
            self.store(events::think_observation(action, &ctx));
        }

        fn reply(&mut self, text: &str) {
            self.store(events::agent_message(text, false, json!({})));
            self.store(events::state_changed("running", ""));
        }

        fn check(&self) -> Option<Stuck> {
            StuckDetector::new(&self.events).check()
        }
    }

    #[test]
    fn the_same_action_and_observation_four_times_is_stuck() {
        let mut h = History::default();
        h.user("go");
        for _ in 0..REPEATS - 1 {
            h.run("ls", "a.txt\n", 0);
        }
        assert_eq!(h.check(), None, "three repeats are not yet a loop");
        h.run("ls", "a.txt\n", 0);
        let stuck = h.check();
        assert_eq!(
            stuck,
            Some(Stuck::RepeatedAction {
                tool: "execute_bash".into()
            })
        );
        let text = stuck.map(|s| s.to_string()).unwrap_or_default();
        assert!(text.contains("same observation 4 times"), "{text}");
    }

    /// Regression: `thought` was ignored for `think` too, so four different thoughts in a row
    /// were "the same action with the same observation".
    #[test]
    fn different_thoughts_in_a_row_are_not_stuck_but_the_same_one_is() {
        let mut h = History::default();
        h.user("go");
        for n in 0..2 * REPEATS {
            h.think(&format!("idea {n}"));
        }
        assert_eq!(h.check(), None);
        for _ in 0..REPEATS {
            h.think("the same idea");
        }
        assert_eq!(
            h.check(),
            Some(Stuck::RepeatedAction {
                tool: "think".into()
            })
        );
    }

    #[test]
    fn the_same_action_with_different_arguments_is_not_stuck() {
        let mut h = History::default();
        h.user("go");
        for n in 0..2 * REPEATS {
            h.run(&format!("echo {n}"), "same output\n", 0);
        }
        assert_eq!(h.check(), None);
    }

    #[test]
    fn the_same_action_with_a_changing_observation_is_not_stuck() {
        let mut h = History::default();
        h.user("go");
        for n in 0..2 * REPEATS {
            h.run("date", &format!("second {n}\n"), 0);
        }
        assert_eq!(h.check(), None);
    }

    #[test]
    fn a_user_message_in_between_resets_the_count() {
        let mut h = History::default();
        h.user("go");
        for _ in 0..REPEATS - 1 {
            h.run("ls", "a.txt\n", 0);
        }
        h.user("try once more");
        h.run("ls", "a.txt\n", 0);
        assert_eq!(h.check(), None);

        // Fed one event at a time, the detector agrees with one built from the history.
        let mut detector = StuckDetector::default();
        for event in &h.events {
            detector.add(event);
        }
        assert_eq!(detector.check(), None);
        for _ in 0..REPEATS - 1 {
            h.run("ls", "a.txt\n", 0);
        }
        assert!(h.check().is_some());
    }

    #[test]
    fn the_same_action_ending_in_an_error_three_times_is_stuck() {
        let mut h = History::default();
        h.user("go");
        h.failing_run("make", "the shell exited (1)");
        h.failing_run("make", "the shell exited (2)");
        assert_eq!(h.check(), None);
        h.failing_run("make", "the shell exited (3)");
        let stuck = h.check();
        assert_eq!(
            stuck,
            Some(Stuck::RepeatedError {
                tool: "execute_bash".into()
            })
        );
        let text = stuck.map(|s| s.to_string()).unwrap_or_default();
        assert!(text.contains("error 3 times"), "{text}");
    }

    #[test]
    fn the_same_malformed_tool_call_three_times_is_stuck() {
        let mut h = History::default();
        h.user("go");
        for _ in 0..ERROR_REPEATS {
            h.refused_call("{not json");
        }
        assert_eq!(
            h.check(),
            Some(Stuck::RepeatedError {
                tool: "execute_bash".into()
            })
        );
    }

    #[test]
    fn errors_of_different_actions_are_not_stuck() {
        let mut h = History::default();
        h.user("go");
        h.failing_run("make", "boom");
        h.failing_run("make test", "boom");
        h.failing_run("make", "boom");
        assert_eq!(h.check(), None);
    }

    #[test]
    fn alternating_between_two_pairs_for_six_steps_is_stuck() {
        let mut h = History::default();
        h.user("go");
        for _ in 0..ALTERNATION_STEPS / 2 - 1 {
            h.run("cd a", "", 0);
            h.run("cd ..", "", 0);
        }
        h.run("cd a", "", 0);
        assert_eq!(h.check(), None, "five steps are not yet a loop");
        h.run("cd ..", "", 0);
        let stuck = h.check();
        assert_eq!(
            stuck,
            Some(Stuck::Alternating {
                first: "execute_bash".into(),
                second: "execute_bash".into()
            })
        );
        let text = stuck.map(|s| s.to_string()).unwrap_or_default();
        assert!(text.contains("alternated"), "{text}");
    }

    #[test]
    fn alternating_with_a_third_action_in_between_is_not_stuck() {
        let mut h = History::default();
        h.user("go");
        h.run("cd a", "", 0);
        h.run("cd ..", "", 0);
        h.run("cd a", "", 0);
        h.run("ls", "x\n", 0);
        h.run("cd a", "", 0);
        h.run("cd ..", "", 0);
        assert_eq!(h.check(), None);
    }

    #[test]
    fn three_empty_replies_in_a_row_are_stuck() {
        let mut h = History::default();
        h.user("go");
        h.reply("");
        h.reply("  ");
        assert_eq!(h.check(), None);
        h.reply("");
        let stuck = h.check();
        assert_eq!(stuck, Some(Stuck::EmptyReplies));
        let text = stuck.map(|s| s.to_string()).unwrap_or_default();
        assert!(text.contains("3 empty replies"), "{text}");
    }

    #[test]
    fn empty_replies_broken_by_an_action_or_a_user_message_are_not_stuck() {
        let mut h = History::default();
        h.user("go");
        h.reply("");
        h.reply("");
        h.run("ls", "", 0);
        h.reply("");
        assert_eq!(h.check(), None);
        h.reply("");
        h.user("hello?");
        h.reply("");
        assert_eq!(h.check(), None);
    }

    #[test]
    fn an_action_confirmed_after_asking_counts_once() {
        let mut h = History::default();
        h.user("go");
        for _ in 0..REPEATS - 1 {
            let ctx = h.context("execute_bash", json!({"command": "ls"}));
            h.store(events::run_action("ls", "", "awaiting_confirmation", &ctx));
            let action = h.store(events::run_action("ls", "", "confirmed", &ctx));
            let out = CommandOutput {
                output: "a\n".into(),
                exit_code: 0,
                timed_out: false,
                truncated: false,
                working_dir: "/ws".into(),
            };
            h.store(events::run_observation(action, "ls", &out, &ctx));
        }
        assert_eq!(h.check(), None, "three confirmed runs, not six");
        h.run("ls", "a\n", 0);
        assert!(h.check().is_some());
    }
}
