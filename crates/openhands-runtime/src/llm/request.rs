//! Request bodies assembled from parts that were serialized once.
//!
//! An agent sends the whole conversation on every call, and the conversation only grows. Turning
//! it into JSON again each time (or worse, into a `serde_json::Value` tree first) makes a task of
//! n calls cost O(n²) allocations. [`MessageLog`] serializes each message once, when it is
//! appended, and a call then only copies bytes; the tool schemas are serialized once per process
//! (see [`crate::tools::tool_specs_json`]).

use super::wire::{ChatMessage, ToolSpec};
use serde_json::Value;

/// Chat messages kept as their serialized JSON, in order, ready to be sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageLog {
    /// The messages' JSON objects separated by commas (the inside of the `messages` array).
    json: String,
    count: usize,
}

impl MessageLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `message` (serialized now, once).
    pub fn push(&mut self, message: &ChatMessage) {
        // A `ChatMessage` holds only strings and lists: serializing it cannot fail, but should
        // it ever, the message becomes `null` rather than a panic or a corrupt body.
        let json = serde_json::to_string(message).unwrap_or_else(|_| "null".to_owned());
        if self.count > 0 {
            self.json.push(',');
        }
        self.json.push_str(&json);
        self.count += 1;
    }

    /// How many messages the log holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the log holds no message.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The messages as a JSON array (for tests and diagnostics).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&format!("[{}]", self.json)).unwrap_or(Value::Null)
    }

    /// The serialized messages, comma-separated, without the brackets.
    pub(crate) fn json(&self) -> &str {
        &self.json
    }
}

impl<'a> FromIterator<&'a ChatMessage> for MessageLog {
    fn from_iter<I: IntoIterator<Item = &'a ChatMessage>>(messages: I) -> Self {
        let mut log = Self::new();
        for message in messages {
            log.push(message);
        }
        log
    }
}

/// The `tools` array for `tools`, serialized (empty when there are none).
pub fn tools_json(tools: &[ToolSpec]) -> String {
    if tools.is_empty() {
        return String::new();
    }
    Value::Array(tools.iter().map(ToolSpec::to_wire).collect()).to_string()
}

/// The request body: `model`, the logged `messages`, and `tools_json` (an already serialized
/// array, left out when empty).
pub(crate) fn request_bytes(model: &str, messages: &MessageLog, tools_json: &str) -> Vec<u8> {
    let model = Value::String(model.to_owned()).to_string();
    let mut body = Vec::with_capacity(messages.json().len() + tools_json.len() + model.len() + 40);
    body.extend_from_slice(b"{\"model\":");
    body.extend_from_slice(model.as_bytes());
    body.extend_from_slice(b",\"messages\":[");
    body.extend_from_slice(messages.json().as_bytes());
    body.push(b']');
    if !tools_json.is_empty() {
        body.extend_from_slice(b",\"tools\":");
        body.extend_from_slice(tools_json.as_bytes());
    }
    body.push(b'}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolCall;
    use serde_json::json;

    #[test]
    fn body_from_parts_equals_the_serialized_request() {
        let messages = vec![
            ChatMessage::system("sys \"quoted\""),
            ChatMessage::user("hi"),
            ChatMessage::assistant(
                None,
                vec![ToolCall {
                    id: "c1".into(),
                    name: "think".into(),
                    arguments: "{\"thought\":\"x\"}".into(),
                }],
            ),
            ChatMessage::tool_result("c1", "ok"),
        ];
        let tools = crate::tools::tool_specs();
        let log: MessageLog = messages.iter().collect();
        assert_eq!(log.len(), 4);
        let body: Value =
            serde_json::from_slice(&request_bytes("gpt-4o", &log, &tools_json(&tools)))
                .expect("valid JSON");
        let wire_tools: Vec<Value> = tools.iter().map(ToolSpec::to_wire).collect();
        assert_eq!(
            body,
            json!({"model": "gpt-4o", "messages": messages, "tools": wire_tools})
        );
        assert_eq!(log.to_value(), json!(messages));
    }

    #[test]
    fn no_tools_and_no_messages_still_make_valid_json() {
        let body: Value =
            serde_json::from_slice(&request_bytes("m", &MessageLog::new(), &tools_json(&[])))
                .expect("valid JSON");
        assert_eq!(body, json!({"model": "m", "messages": []}));
    }
}
