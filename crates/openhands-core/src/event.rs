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

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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

impl Event {
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
