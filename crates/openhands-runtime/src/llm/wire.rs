//! The chat-completions JSON, by hand.
//!
//! Requests: `messages` with roles `system`/`user`/`assistant`/`tool`, assistant `tool_calls`
//! (`{id, type: "function", function: {name, arguments}}` where `arguments` is a JSON *string*),
//! `tool_call_id` on tool results, and `tools` (`{type: "function", function: {name,
//! description, parameters}}`). Responses: `id`, `choices[0].message`, `usage`. Unknown
//! response fields are ignored.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One message of the conversation sent to the LLM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    System {
        content: String,
    },
    User {
        content: MessageContent,
    },
    Assistant {
        content: Option<String>,
        #[serde(
            default,
            skip_serializing_if = "Vec::is_empty",
            with = "wire_tool_calls"
        )]
        tool_calls: Vec<ToolCall>,
    },
    Tool {
        tool_call_id: String,
        content: String,
    },
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::System {
            content: content.into(),
        }
    }

    /// A plain-text user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::User {
            content: MessageContent::Text(content.into()),
        }
    }

    /// A user message with images (sent as content parts); plain text when there are none.
    pub fn user_with_images(content: impl Into<String>, image_urls: &[String]) -> Self {
        if image_urls.is_empty() {
            return Self::user(content);
        }
        let mut parts = vec![ContentPart::Text {
            text: content.into(),
        }];
        parts.extend(image_urls.iter().map(|url| ContentPart::ImageUrl {
            image_url: ImageUrl { url: url.clone() },
        }));
        Self::User {
            content: MessageContent::Parts(parts),
        }
    }

    /// An assistant turn.
    pub fn assistant(content: Option<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self::Assistant {
            content,
            tool_calls,
        }
    }

    /// The result of a tool call.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self::Tool {
            tool_call_id: tool_call_id.into(),
            content: content.into(),
        }
    }
}

/// A user message's content: a string, or text and image parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a multi-part user message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

/// An image reference (`https://...` or a `data:` URL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    pub url: String,
}

/// A tool call made by the assistant. `arguments` is the raw JSON string the model produced
/// (it may be malformed; the agent reports that back to the model).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl ToolCall {
    /// The OpenAI wire shape of this call.
    pub fn to_wire(&self) -> Value {
        json!({
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        })
    }

    /// Parses the OpenAI wire shape; `arguments` given as an object (some providers do that)
    /// is turned back into a string.
    pub fn from_wire(value: &Value) -> Option<Self> {
        let function = value.get("function")?;
        let arguments = match function.get("arguments") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        Some(Self {
            id: value.get("id")?.as_str()?.to_owned(),
            name: function.get("name")?.as_str()?.to_owned(),
            arguments,
        })
    }
}

mod wire_tool_calls {
    use super::ToolCall;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    /// `{id, type, function: {name, arguments}}`, written straight to the serializer (no
    /// intermediate `Value`: this runs for every assistant turn of every request).
    #[derive(Serialize)]
    struct Wire<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
        function: Function<'a>,
    }

    #[derive(Serialize)]
    struct Function<'a> {
        name: &'a str,
        arguments: &'a str,
    }

    pub fn serialize<S: Serializer>(calls: &[ToolCall], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(calls.iter().map(|call| Wire {
            id: &call.id,
            kind: "function",
            function: Function {
                name: &call.name,
                arguments: &call.arguments,
            },
        }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ToolCall>, D::Error> {
        let wire = Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default();
        wire.iter()
            .map(|v| ToolCall::from_wire(v).ok_or_else(|| D::Error::custom("malformed tool call")))
            .collect()
    }
}

/// A tool the model may call: name, description and a JSON schema of its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

impl ToolSpec {
    /// The OpenAI wire shape (`{type: "function", function: {...}}`).
    pub fn to_wire(&self) -> Value {
        json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        })
    }
}

/// What the assistant answered: text, tool calls, or both.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssistantMessage {
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
}

/// Token counts of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// The decoded answer of one chat-completions call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatResponse {
    pub message: AssistantMessage,
    pub usage: Usage,
    /// The provider's response id (`chatcmpl-...`), when given.
    pub response_id: Option<String>,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    tool_calls: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// Decodes a response body; the error names what was missing.
pub(crate) fn parse_response(body: &str) -> Result<ChatResponse, String> {
    let wire: WireResponse = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let choice = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| "response has no choices".to_owned())?;
    let content = match choice.message.content {
        Some(Value::String(s)) => Some(s),
        // Some providers answer with content parts; keep their text.
        Some(Value::Array(parts)) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    }
    .filter(|s| !s.is_empty());
    let tool_calls = choice
        .message
        .tool_calls
        .unwrap_or_default()
        .iter()
        .map(|v| ToolCall::from_wire(v).ok_or_else(|| format!("malformed tool call: {v}")))
        .collect::<Result<Vec<_>, _>>()?;
    let usage = wire.usage.map_or_else(Usage::default, |u| Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
    });
    Ok(ChatResponse {
        message: AssistantMessage {
            content,
            tool_calls,
        },
        usage,
        response_id: wire.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_serialize_in_openai_shape() {
        let msgs = vec![
            ChatMessage::system("sys"),
            ChatMessage::user_with_images("look", &["http://img".to_owned()]),
            ChatMessage::assistant(
                None,
                vec![ToolCall {
                    id: "c1".into(),
                    name: "think".into(),
                    arguments: "{\"thought\":\"x\"}".into(),
                }],
            ),
            ChatMessage::tool_result("c1", "ok"),
            ChatMessage::assistant(Some("done".into()), vec![]),
        ];
        let log: super::super::MessageLog = msgs.iter().collect();
        let bytes = super::super::request::request_bytes("gpt-4o", &log, "");
        let body: Value = serde_json::from_slice(&bytes).expect("valid JSON");
        assert_eq!(
            body,
            json!({"model":"gpt-4o","messages":[
                {"role":"system","content":"sys"},
                {"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"http://img"}}]},
                {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"think","arguments":"{\"thought\":\"x\"}"}}]},
                {"role":"tool","tool_call_id":"c1","content":"ok"},
                {"role":"assistant","content":"done"}
            ]})
        );
        let back: Vec<ChatMessage> =
            serde_json::from_value(body["messages"].clone()).expect("round trip");
        assert_eq!(back, msgs);
    }

    #[test]
    fn response_parses_tool_calls_usage_and_ignores_unknown_fields() {
        let body = json!({"id":"chatcmpl-1","object":"chat.completion","system_fingerprint":"x",
            "choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,"refusal":null,
              "tool_calls":[{"id":"call_1","type":"function","function":{"name":"execute_bash","arguments":"{\"command\":\"ls\"}"}}]}}],
            "usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{}}});
        let parsed = parse_response(&body.to_string()).expect("parses");
        assert_eq!(parsed.response_id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(parsed.message.content, None);
        assert_eq!(parsed.message.tool_calls[0].name, "execute_bash");
        assert_eq!(
            parsed.message.tool_calls[0].arguments,
            "{\"command\":\"ls\"}"
        );
        assert_eq!(
            parsed.usage,
            Usage {
                prompt_tokens: 12,
                completion_tokens: 3
            }
        );
    }

    #[test]
    fn response_without_choices_is_an_error() {
        let err = parse_response("{\"choices\":[]}").expect_err("no choices");
        assert!(err.contains("no choices"), "{err}");
    }
}
