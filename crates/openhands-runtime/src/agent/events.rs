//! Builders of the events the agent emits, in OpenHands V0 JSON shape.
//!
//! Agent actions and their observations carry `tool_call_metadata` (`function_name`,
//! `tool_call_id`, `total_calls_in_response` and the `model_response` with the assistant
//! turn) in [`NewEvent::extra`], which is what [`super::history`] needs to rebuild the LLM
//! conversation from stored events. Agent actions also carry `llm_metrics`.

use crate::llm::{AssistantMessage, ToolCall};
use openhands_core::event::{EventBody, EventSource, NewEvent};
use openhands_core::tool_protocol::{CommandOutput, EditorCommand, EditorOutcome};
use serde_json::{Map, Value, json};

pub(crate) const IMPL_SOURCE: &str = "oh_aci";
pub(crate) const BAD_ACTION: &str = "AGENT_ERROR$BAD_ACTION";

/// The metadata linking events to one tool call of one LLM response.
#[derive(Debug, Clone)]
pub(crate) struct CallContext {
    pub tool_call_metadata: Value,
    pub llm_metrics: Value,
}

impl CallContext {
    pub fn new(
        response_id: &str,
        message: &AssistantMessage,
        call: &ToolCall,
        metrics: Value,
    ) -> Self {
        let tool_calls: Vec<Value> = message.tool_calls.iter().map(ToolCall::to_wire).collect();
        Self {
            tool_call_metadata: json!({
                "function_name": call.name,
                "tool_call_id": call.id,
                "total_calls_in_response": message.tool_calls.len(),
                "model_response": {
                    "id": response_id,
                    "choices": [{"index": 0, "message": {
                        "role": "assistant",
                        "content": message.content,
                        "tool_calls": tool_calls,
                    }}],
                },
            }),
            llm_metrics: metrics,
        }
    }
}

/// `llm_metrics` as OpenHands writes it.
pub(crate) fn llm_metrics(
    model: &str,
    cost: f64,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> Value {
    json!({
        "accumulated_cost": cost,
        "accumulated_token_usage": {
            "model": model,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        },
    })
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn action(action: &str, message: String, args: Value, ctx: Option<&CallContext>) -> NewEvent {
    let mut extra = Map::new();
    if let Some(ctx) = ctx {
        extra.insert("tool_call_metadata".into(), ctx.tool_call_metadata.clone());
        extra.insert("llm_metrics".into(), ctx.llm_metrics.clone());
    }
    NewEvent {
        source: EventSource::Agent,
        message,
        cause: None,
        body: EventBody::Action {
            action: action.into(),
            args: object(args),
        },
        extra,
    }
}

fn observation(
    kind: &str,
    message: String,
    content: String,
    extras: Value,
    cause: Option<u64>,
    ctx: Option<&CallContext>,
) -> NewEvent {
    let mut extra = Map::new();
    if let Some(ctx) = ctx {
        extra.insert("tool_call_metadata".into(), ctx.tool_call_metadata.clone());
    }
    NewEvent {
        source: EventSource::Environment,
        message,
        cause,
        body: EventBody::Observation {
            observation: kind.into(),
            content,
            extras: object(extras),
        },
        extra,
    }
}

/// A plain-text answer of the agent.
pub(crate) fn agent_message(content: &str, wait_for_response: bool, metrics: Value) -> NewEvent {
    let mut event = action(
        "message",
        content.to_owned(),
        json!({"content": content, "file_urls": [], "image_urls": [],
               "wait_for_response": wait_for_response, "security_risk": -1}),
        None,
    );
    event.extra.insert("llm_metrics".into(), metrics);
    event
}

pub(crate) fn run_action(
    command: &str,
    thought: &str,
    confirmation: &str,
    ctx: &CallContext,
) -> NewEvent {
    action(
        "run",
        format!("Running command: {command}"),
        json!({"command": command, "is_input": false, "thought": thought, "blocking": false,
               "is_static": false, "cwd": null, "hidden": false,
               "confirmation_state": confirmation, "security_risk": -1}),
        Some(ctx),
    )
}

pub(crate) fn run_observation(
    cause: u64,
    command: &str,
    out: &CommandOutput,
    ctx: &CallContext,
) -> NewEvent {
    let mut event = observation(
        "run",
        format!(
            "Command `{command}` executed with exit code {}.",
            out.exit_code
        ),
        out.output.clone(),
        json!({"command": command, "hidden": false, "metadata": {
            "exit_code": out.exit_code, "pid": -1, "username": null, "hostname": null,
            "working_dir": out.working_dir, "py_interpreter_path": null,
            "prefix": "", "suffix": ""}}),
        Some(cause),
        Some(ctx),
    );
    event
        .extra
        .insert("success".into(), Value::Bool(out.exit_code == 0));
    event
}

/// The `edit` action (or `read` for `view`) of an editor command.
pub(crate) fn editor_action(
    cmd: &EditorCommand,
    thought: &str,
    confirmation: &str,
    ctx: &CallContext,
) -> NewEvent {
    if let EditorCommand::View { path, view_range } = cmd {
        return action(
            "read",
            format!("Reading file: {path}"),
            json!({"path": path, "start": 0, "end": -1, "thought": thought,
                   "security_risk": -1, "impl_source": IMPL_SOURCE,
                   "view_range": view_range.map(|(a, b)| vec![a, b]),
                   "confirmation_state": confirmation}),
            Some(ctx),
        );
    }
    let (file_text, old_str, new_str, insert_line) = match cmd {
        EditorCommand::Create { file_text, .. } => (Some(file_text), None, None, None),
        EditorCommand::StrReplace {
            old_str, new_str, ..
        } => (None, Some(old_str), Some(new_str), None),
        EditorCommand::Insert {
            insert_line,
            new_str,
            ..
        } => (None, None, Some(new_str), Some(*insert_line)),
        EditorCommand::View { .. } | EditorCommand::UndoEdit { .. } => (None, None, None, None),
    };
    action(
        "edit",
        format!("Editing file: {} ({})", cmd.path(), cmd.name()),
        json!({"path": cmd.path(), "command": cmd.name(), "file_text": file_text,
               "old_str": old_str, "new_str": new_str, "insert_line": insert_line,
               "content": "", "start": 1, "end": -1, "thought": thought,
               "security_risk": -1, "impl_source": IMPL_SOURCE,
               "confirmation_state": confirmation}),
        Some(ctx),
    )
}

/// The observation of a successful editor command.
pub(crate) fn editor_observation(
    cause: u64,
    cmd: &EditorCommand,
    out: &EditorOutcome,
    ctx: &CallContext,
) -> NewEvent {
    if matches!(cmd, EditorCommand::View { .. }) {
        return observation(
            "read",
            format!("I read the file {}.", out.path),
            out.output.clone(),
            json!({"path": out.path, "impl_source": IMPL_SOURCE}),
            Some(cause),
            Some(ctx),
        );
    }
    observation(
        "edit",
        format!("I edited the file {}.", out.path),
        out.output.clone(),
        json!({"path": out.path, "prev_exist": out.prev_exist, "old_content": out.old_content,
               "new_content": out.new_content, "impl_source": IMPL_SOURCE, "diff": out.diff}),
        Some(cause),
        Some(ctx),
    )
}

pub(crate) fn think_action(thought: &str, ctx: &CallContext) -> NewEvent {
    action(
        "think",
        format!("I am thinking...: {thought}"),
        json!({"thought": thought}),
        Some(ctx),
    )
}

pub(crate) fn think_observation(cause: u64, ctx: &CallContext) -> NewEvent {
    observation(
        "think",
        "Your thought has been logged.".into(),
        "Your thought has been logged.".into(),
        json!({}),
        Some(cause),
        Some(ctx),
    )
}

pub(crate) fn finish_action(message: &str, thought: &str, ctx: &CallContext) -> NewEvent {
    action(
        "finish",
        message.to_owned(),
        json!({"final_thought": message, "outputs": {}, "thought": thought}),
        Some(ctx),
    )
}

/// An `error` observation; `cause` and `ctx` link it to a tool call when there is one.
pub(crate) fn error_observation(
    content: &str,
    error_id: &str,
    cause: Option<u64>,
    ctx: Option<&CallContext>,
) -> NewEvent {
    observation(
        "error",
        content.to_owned(),
        content.to_owned(),
        json!({"error_id": error_id}),
        cause,
        ctx,
    )
}

pub(crate) fn user_rejected(cause: u64, ctx: &CallContext) -> NewEvent {
    let text = "Action has been rejected by the user! Waiting for further user input.";
    observation(
        "user_rejected",
        text.into(),
        text.into(),
        json!({}),
        Some(cause),
        Some(ctx),
    )
}

pub(crate) fn state_changed(state: &str, reason: &str) -> NewEvent {
    observation(
        "agent_state_changed",
        String::new(),
        String::new(),
        json!({"agent_state": state, "reason": reason}),
        None,
        None,
    )
}
