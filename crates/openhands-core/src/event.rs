//! Events: the actions and observations of a conversation, in OpenHands' V0 JSON shape.
//!
//! An event is either an *action* (`action` + `args`) or an *observation* (`observation` +
//! `content` + `extras`), with `id`, `timestamp`, `source`, `message` and optional `cause`.
//! Other top-level keys OpenHands uses (`tool_call_metadata`, `llm_metrics`, `timeout`,
//! `success`) are kept verbatim in [`Event::extra`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Who produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    Agent,
    User,
    Environment,
}

/// The action or observation part of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EventBody {
    Action {
        action: String,
        #[serde(default)]
        #[schema(value_type = Object)]
        args: Map<String, Value>,
    },
    Observation {
        observation: String,
        #[serde(default)]
        content: String,
        #[serde(default)]
        #[schema(value_type = Object)]
        extras: Map<String, Value>,
    },
}

/// An event not yet appended: the event store assigns `id` and `timestamp`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub source: EventSource,
    pub message: String,
    pub cause: Option<u64>,
    pub body: EventBody,
    pub extra: Map<String, Value>,
}

impl NewEvent {
    /// A user message, as `POST /api/conversations` records its `initial_user_msg`.
    pub fn user_message(content: &str, image_urls: Vec<String>) -> Self {
        let mut args = Map::new();
        args.insert("content".into(), Value::String(content.to_owned()));
        args.insert("file_urls".into(), Value::Array(Vec::new()));
        args.insert(
            "image_urls".into(),
            Value::Array(image_urls.into_iter().map(Value::String).collect()),
        );
        args.insert("wait_for_response".into(), Value::Bool(false));
        args.insert("security_risk".into(), Value::from(-1));
        Self {
            source: EventSource::User,
            message: content.to_owned(),
            cause: None,
            body: EventBody::Action {
                action: "message".into(),
                args,
            },
            extra: Map::new(),
        }
    }
}

/// A stored event. Deserialized by hand (see [`Event::from_map`]): with two flattened
/// fields serde would hand the body's keys to `extra` as well, and they would be written
/// twice on the way out.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Event {
    pub id: u64,
    /// Local time, ISO-8601 without zone, as OpenHands writes it.
    pub timestamp: String,
    pub source: EventSource,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<u64>,
    #[serde(flatten)]
    pub body: EventBody,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(deserializer)?;
        Event::from_map(map).map_err(serde::de::Error::custom)
    }
}

impl Event {
    /// Splits a JSON object into the envelope, the action or observation body, and the
    /// remaining top-level keys.
    pub fn from_map(mut map: Map<String, Value>) -> Result<Self, String> {
        let id = map
            .remove("id")
            .and_then(|v| v.as_u64())
            .ok_or("event has no numeric `id`")?;
        let timestamp = match map.remove("timestamp") {
            Some(Value::String(t)) => t,
            _ => return Err("event has no `timestamp` string".into()),
        };
        let source: EventSource = map
            .remove("source")
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| format!("event `source`: {e}"))?
            .ok_or("event has no `source`")?;
        let message = match map.remove("message") {
            Some(Value::String(m)) => m,
            _ => String::new(),
        };
        let cause = map.remove("cause").and_then(|v| v.as_u64());
        let take_object = |map: &mut Map<String, Value>, key: &str| match map.remove(key) {
            Some(Value::Object(object)) => object,
            _ => Map::new(),
        };
        let body = if let Some(action) = map.remove("action") {
            let action = action
                .as_str()
                .ok_or("`action` is not a string")?
                .to_owned();
            EventBody::Action {
                action,
                args: take_object(&mut map, "args"),
            }
        } else if let Some(observation) = map.remove("observation") {
            let observation = observation
                .as_str()
                .ok_or("`observation` is not a string")?
                .to_owned();
            let content = match map.remove("content") {
                Some(Value::String(c)) => c,
                _ => String::new(),
            };
            EventBody::Observation {
                observation,
                content,
                extras: take_object(&mut map, "extras"),
            }
        } else {
            return Err("event has neither `action` nor `observation`".into());
        };
        Ok(Self {
            id,
            timestamp,
            source,
            message,
            cause,
            body,
            extra: map,
        })
    }

    /// Gives `new` its id and timestamp.
    pub fn from_new(new: NewEvent, id: u64, timestamp: String) -> Self {
        Self {
            id,
            timestamp,
            source: new.source,
            message: new.message,
            cause: new.cause,
            body: new.body,
            extra: new.extra,
        }
    }
}

/// A paged read of one conversation's events (`GET .../events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventQuery {
    pub start_id: u64,
    /// Inclusive upper bound.
    pub end_id: Option<u64>,
    pub reverse: bool,
    pub limit: usize,
}

/// One page of events.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    pub has_more: bool,
}

/// The current local time in OpenHands' event timestamp format.
pub fn event_timestamp_now() -> String {
    chrono::Local::now()
        .naive_local()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn action_event_has_openhands_shape() {
        let event = Event::from_new(NewEvent::user_message("hi", vec![]), 3, "t".into());
        let value = serde_json::to_value(&event).expect("json");
        assert_eq!(
            value,
            json!({"id":3,"timestamp":"t","source":"user","message":"hi","action":"message",
                   "args":{"content":"hi","file_urls":[],"image_urls":[],"wait_for_response":false,"security_risk":-1}})
        );
    }

    #[test]
    fn read_back_events_write_each_key_once() {
        let raw = r#"{"id":1,"timestamp":"t","source":"agent","message":"m","action":"think","args":{"thought":"x"},"llm_metrics":{"accumulated_cost":0.1}}"#;
        let event: Event = serde_json::from_str(raw).expect("parse");
        let text = serde_json::to_string(&event).expect("json");
        for key in ["\"action\"", "\"args\"", "\"id\"", "\"llm_metrics\""] {
            assert_eq!(text.matches(key).count(), 1, "{key} in {text}");
        }
        assert!(event.extra.contains_key("llm_metrics"));
        assert!(
            serde_json::from_str::<Event>(r#"{"id":1,"timestamp":"t","source":"agent"}"#).is_err()
        );
    }

    #[test]
    fn observation_event_round_trips_with_extra_keys() {
        let raw = json!({"id":7,"timestamp":"t","source":"environment","message":"","cause":6,
            "observation":"agent_state_changed","content":"","extras":{"agent_state":"awaiting_user_input","reason":""},
            "success":true});
        let event: Event = serde_json::from_value(raw.clone()).expect("parse");
        assert!(matches!(event.body, EventBody::Observation { .. }));
        assert_eq!(event.extra.get("success"), Some(&json!(true)));
        assert_eq!(serde_json::to_value(&event).expect("json"), raw);
    }
}

/// What stands in for a secret value in stored and sent events.
pub const SECRET_PLACEHOLDER: &str = "<secret_hidden>";

/// Top-level keys never rewritten by [`mask_secrets`] (as OpenHands).
const UNMASKED_KEYS: [&str; 7] = [
    "timestamp",
    "id",
    "source",
    "cause",
    "action",
    "observation",
    "message",
];

/// Replaces every occurrence of each secret value in the event's strings with
/// `<secret_hidden>`, recursively through objects and arrays. The `message` summary is
/// masked too (OpenHands leaves it, which leaks a secret echoed by a command).
pub fn mask_secrets(event: &mut NewEvent, secrets: &[String]) {
    let secrets: Vec<&str> = secrets
        .iter()
        .map(String::as_str)
        .filter(|s| s.len() >= 3)
        .collect();
    if secrets.is_empty() {
        return;
    }
    mask_string(&mut event.message, &secrets);
    match &mut event.body {
        EventBody::Action { args, .. } => mask_map(args, &secrets),
        EventBody::Observation {
            content, extras, ..
        } => {
            mask_string(content, &secrets);
            mask_map(extras, &secrets);
        }
    }
    event
        .extra
        .iter_mut()
        .filter(|(k, _)| !UNMASKED_KEYS.contains(&k.as_str()))
        .for_each(|(_, v)| mask_value(v, &secrets));
}

fn mask_string(text: &mut String, secrets: &[&str]) {
    for secret in secrets {
        if text.contains(secret) {
            *text = text.replace(secret, SECRET_PLACEHOLDER);
        }
    }
}

fn mask_map(map: &mut Map<String, Value>, secrets: &[&str]) {
    map.values_mut().for_each(|v| mask_value(v, secrets));
}

fn mask_value(value: &mut Value, secrets: &[&str]) {
    match value {
        Value::String(s) => mask_string(s, secrets),
        Value::Array(items) => items.iter_mut().for_each(|v| mask_value(v, secrets)),
        Value::Object(map) => mask_map(map, secrets),
        _ => {}
    }
}

#[cfg(test)]
mod masking_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_hidden_everywhere_in_the_event() {
        let mut extras = Map::new();
        extras.insert("command".into(), json!("echo hunter2"));
        extras.insert("metadata".into(), json!({"nested": ["x hunter2 y"]}));
        let mut event = NewEvent {
            source: EventSource::Environment,
            message: "Command `echo hunter2` executed".into(),
            cause: Some(1),
            body: EventBody::Observation {
                observation: "run".into(),
                content: "hunter2\n".into(),
                extras,
            },
            extra: Map::new(),
        };
        mask_secrets(&mut event, &["hunter2".to_owned()]);
        let text = serde_json::to_string(&Event::from_new(event, 2, "t".into())).expect("json");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(text.matches(SECRET_PLACEHOLDER).count(), 4, "{text}");
    }
}
