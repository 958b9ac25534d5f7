//! Turning the model's tool calls into actions, and refusing malformed ones with a message
//! the model can act on.

use crate::llm::ToolCall;
use crate::tools::{EDITOR_TOOL, EXECUTE_BASH_TOOL, FINISH_TOOL, THINK_TOOL};
use openhands_core::tool_protocol::EditorCommand;
use serde_json::{Map, Value};
use std::time::Duration;

/// Longest timeout the model may ask for one command.
const MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(3600);

/// A well-formed tool call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    Run {
        command: String,
        timeout: Option<Duration>,
    },
    Edit(EditorCommand),
    Think {
        thought: String,
    },
    Finish {
        message: String,
    },
}

/// Parses `call`; the error text is fed back to the model as the tool result.
pub(crate) fn parse(call: &ToolCall) -> Result<Action, String> {
    let args: Map<String, Value> = if call.arguments.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str::<Value>(&call.arguments) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(format!(
                    "the arguments of `{}` must be a JSON object",
                    call.name
                ));
            }
            Err(e) => {
                return Err(format!(
                    "the arguments of `{}` are not valid JSON ({e})",
                    call.name
                ));
            }
        }
    };
    let args = Args {
        tool: &call.name,
        map: &args,
    };
    match call.name.as_str() {
        EXECUTE_BASH_TOOL => Ok(Action::Run {
            command: args.string("command")?,
            timeout: args.timeout()?,
        }),
        EDITOR_TOOL => parse_editor(&args).map(Action::Edit),
        THINK_TOOL => Ok(Action::Think {
            thought: args.string("thought")?,
        }),
        FINISH_TOOL => Ok(Action::Finish {
            message: args.optional_string("message")?.unwrap_or_default(),
        }),
        other => Err(format!(
            "unknown tool `{other}`; the available tools are {EXECUTE_BASH_TOOL}, {EDITOR_TOOL}, {THINK_TOOL} and {FINISH_TOOL}"
        )),
    }
}

fn parse_editor(args: &Args<'_>) -> Result<EditorCommand, String> {
    let path = args.string("path")?;
    let command = args.string("command")?;
    Ok(match command.as_str() {
        "view" => EditorCommand::View {
            path,
            view_range: args.view_range()?,
        },
        "create" => EditorCommand::Create {
            path,
            file_text: args.string("file_text")?,
        },
        "str_replace" => EditorCommand::StrReplace {
            path,
            old_str: args.string("old_str")?,
            new_str: args.optional_string("new_str")?.unwrap_or_default(),
        },
        "insert" => EditorCommand::Insert {
            path,
            insert_line: args.integer("insert_line")?,
            new_str: args.string("new_str")?,
        },
        "undo_edit" => EditorCommand::UndoEdit { path },
        other => {
            return Err(format!(
                "unknown command `{other}` for {EDITOR_TOOL}; use view, create, str_replace, insert or undo_edit"
            ));
        }
    })
}

struct Args<'a> {
    tool: &'a str,
    map: &'a Map<String, Value>,
}

impl Args<'_> {
    fn missing(&self, name: &str) -> String {
        format!("missing required argument `{name}` for `{}`", self.tool)
    }

    fn wrong_type(&self, name: &str, expected: &str) -> String {
        format!("argument `{name}` of `{}` must be {expected}", self.tool)
    }

    fn optional_string(&self, name: &str) -> Result<Option<String>, String> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong_type(name, "a string")),
        }
    }

    fn string(&self, name: &str) -> Result<String, String> {
        self.optional_string(name)?
            .ok_or_else(|| self.missing(name))
    }

    fn integer(&self, name: &str) -> Result<i64, String> {
        match self.map.get(name) {
            None | Some(Value::Null) => Err(self.missing(name)),
            Some(Value::Number(n)) => n
                .as_i64()
                .ok_or_else(|| self.wrong_type(name, "an integer")),
            // Models sometimes quote numbers.
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map_err(|_| self.wrong_type(name, "an integer")),
            Some(_) => Err(self.wrong_type(name, "an integer")),
        }
    }

    fn timeout(&self) -> Result<Option<Duration>, String> {
        let secs = match self.map.get("timeout") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(_) => None,
        };
        match secs {
            Some(s) if s.is_finite() && s > 0.0 => {
                Ok(Some(Duration::from_secs_f64(s).min(MAX_COMMAND_TIMEOUT)))
            }
            _ => Err(self.wrong_type("timeout", "a positive number of seconds")),
        }
    }

    fn view_range(&self) -> Result<Option<(i64, i64)>, String> {
        match self.map.get("view_range") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) if items.len() == 2 => {
                match (items[0].as_i64(), items[1].as_i64()) {
                    (Some(a), Some(b)) => Ok(Some((a, b))),
                    _ => Err(self.wrong_type("view_range", "two integers")),
                }
            }
            Some(_) => Err(self.wrong_type("view_range", "an array of two integers")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: "c".into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn well_formed_calls_parse() {
        assert_eq!(
            parse(&call("execute_bash", r#"{"command":"ls","timeout":5}"#)),
            Ok(Action::Run {
                command: "ls".into(),
                timeout: Some(Duration::from_secs(5))
            })
        );
        assert_eq!(
            parse(&call(
                EDITOR_TOOL,
                r#"{"command":"view","path":"a","view_range":[1,-1]}"#
            )),
            Ok(Action::Edit(EditorCommand::View {
                path: "a".into(),
                view_range: Some((1, -1))
            }))
        );
        assert_eq!(
            parse(&call(
                EDITOR_TOOL,
                r#"{"command":"insert","path":"a","insert_line":"2","new_str":"x"}"#
            )),
            Ok(Action::Edit(EditorCommand::Insert {
                path: "a".into(),
                insert_line: 2,
                new_str: "x".into()
            }))
        );
        assert_eq!(
            parse(&call("finish", "")),
            Ok(Action::Finish {
                message: String::new()
            })
        );
    }

    #[test]
    fn malformed_calls_explain_what_is_wrong() {
        let cases = [
            (call("rm_rf", "{}"), "unknown tool `rm_rf`"),
            (call("execute_bash", "{not json"), "not valid JSON"),
            (call("execute_bash", "[1]"), "must be a JSON object"),
            (
                call("execute_bash", "{}"),
                "missing required argument `command`",
            ),
            (
                call("execute_bash", r#"{"command":"x","timeout":-1}"#),
                "positive number",
            ),
            (
                call(EDITOR_TOOL, r#"{"command":"create","path":"a"}"#),
                "`file_text`",
            ),
            (
                call(EDITOR_TOOL, r#"{"command":"delete","path":"a"}"#),
                "unknown command `delete`",
            ),
            (call("think", r#"{"thought":3}"#), "must be a string"),
        ];
        for (c, expected) in cases {
            let err = parse(&c).expect_err(expected);
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
    }
}
