//! The tool definitions the LLM sees (JSON schema in OpenAI's function-calling format).
//!
//! Names and parameters follow OpenHands' CodeAct agent, so prompts and habits carry over.

use crate::llm::{ToolSpec, tools_json};
use serde_json::json;
use std::sync::LazyLock;

/// [`tool_specs`] serialized once per process: every conversation sends the same schemas on
/// every call, so neither the specs nor their JSON are rebuilt or held per conversation.
static TOOL_SPECS_JSON: LazyLock<String> = LazyLock::new(|| tools_json(&tool_specs()));

/// The `tools` array of every agent request, serialized (built on first use, then shared).
pub fn tool_specs_json() -> &'static str {
    &TOOL_SPECS_JSON
}

/// Runs a shell command in the persistent session.
pub const EXECUTE_BASH_TOOL: &str = "execute_bash";
/// Views, creates and edits files.
pub const EDITOR_TOOL: &str = "str_replace_based_edit_tool";
/// Logs a thought without side effects.
pub const THINK_TOOL: &str = "think";
/// Ends the task.
pub const FINISH_TOOL: &str = "finish";

/// The four tools of the agent.
pub fn tool_specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: EXECUTE_BASH_TOOL.into(),
            description: "Execute a bash command in the workspace's persistent shell.\n\
                * State persists between calls: `cd`, exported variables and functions remain.\n\
                * One command per call; chain with `&&` or `;` when needed.\n\
                * Long-running commands are interrupted after `timeout` seconds; run servers in the background (`cmd > log 2>&1 &`).\n\
                * Commands get no interactive input (stdin is empty); use non-interactive flags.\n\
                * Output longer than 30000 characters is cut in the middle; redirect to a file and inspect it in parts when needed."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "The bash command to execute."},
                    "timeout": {"type": "number", "description": "Optional. Seconds to wait before the command is interrupted."}
                },
                "required": ["command"]
            }),
        },
        ToolSpec {
            name: EDITOR_TOOL.into(),
            description: "View, create and edit files in the workspace.\n\
                * `view` on a file shows it with line numbers (like `cat -n`); on a directory it lists non-hidden entries up to 2 levels deep.\n\
                * `create` writes a new file; it refuses to overwrite an existing one.\n\
                * `str_replace` replaces `old_str`, which must occur exactly once (whitespace included), with `new_str`.\n\
                * `insert` inserts `new_str` after line `insert_line` (0 inserts at the top).\n\
                * `undo_edit` reverts the last edit of the file.\n\
                * Paths are absolute or relative to the workspace and must stay inside it."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "undo_edit"], "description": "The command to run."},
                    "path": {"type": "string", "description": "Path of the file or directory."},
                    "file_text": {"type": "string", "description": "Required for `create`: the content of the new file."},
                    "old_str": {"type": "string", "description": "Required for `str_replace`: the exact text to replace."},
                    "new_str": {"type": "string", "description": "For `str_replace`: the replacement (empty when omitted). Required for `insert`: the text to insert."},
                    "insert_line": {"type": "integer", "description": "Required for `insert`: the line after which `new_str` is inserted."},
                    "view_range": {"type": "array", "items": {"type": "integer"}, "description": "Optional for `view` on a file: [start, end] line numbers, 1-based; end -1 means to the end."}
                },
                "required": ["command", "path"]
            }),
        },
        ToolSpec {
            name: THINK_TOOL.into(),
            description: "Log a thought: reasoning, a plan, or a hypothesis to check. It changes nothing in the workspace.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"thought": {"type": "string", "description": "The thought to log."}},
                "required": ["thought"]
            }),
        },
        ToolSpec {
            name: FINISH_TOOL.into(),
            description: "Finish the task when it is done (and verified) or cannot be done. Summarise what was done and anything left to the user.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"message": {"type": "string", "description": "Final message to the user."}},
                "required": ["message"]
            }),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_json_is_the_serialized_specs() {
        let parsed: serde_json::Value =
            serde_json::from_str(tool_specs_json()).expect("valid JSON");
        let expected: Vec<serde_json::Value> = tool_specs().iter().map(ToolSpec::to_wire).collect();
        assert_eq!(parsed, serde_json::Value::Array(expected));
    }

    #[test]
    fn every_tool_has_an_object_schema_with_required_fields_it_defines() {
        let specs = tool_specs();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [EXECUTE_BASH_TOOL, EDITOR_TOOL, THINK_TOOL, FINISH_TOOL]
        );
        for spec in &specs {
            assert_eq!(spec.parameters["type"], "object");
            for required in spec.parameters["required"].as_array().expect("required") {
                let name = required.as_str().expect("string");
                assert!(
                    spec.parameters["properties"].get(name).is_some(),
                    "{}: {name} not defined",
                    spec.name
                );
            }
        }
    }
}
