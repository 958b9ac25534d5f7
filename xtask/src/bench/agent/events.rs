//! Reading the server's events: WebSocket frames and trajectory entries.
//!
//! The agent measurements only need four things from an event (its id, its
//! timestamp, and whether it is the agent reaching `finished` or `error`), so
//! events are decoded into [`EventView`] and nothing else is kept. Pure functions,
//! tested without a server; every field comes from the network, so malformed input
//! is an error, never a panic.
//!
//! Frames are hot (the fan-out run reads hundreds of thousands), so an event frame
//! that starts the way the server writes events (`{"id":<n>,"timestamp":"<26
//! characters>"`) and is no state change is read from that prefix alone
//! ([`plain_event`]); any other frame is read into a [`Head`] that skips every other
//! key without building it; only the rare state-change and error frames are read in
//! full. Both readers
//! keep the last of duplicate keys, the way a browser's `JSON.parse` does: the
//! events the server reads back from its store (WebSocket replay, `GET .../events`)
//! repeat their body keys (`action`, `args`, `observation`, `content`, `extras`),
//! and a strict decoder would reject frames every web client accepts.

use std::fmt;

use anyhow::{Context, Result, bail, ensure};
use chrono::NaiveDateTime;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// The server's event timestamp format (local time, no zone); `%.f` also
/// accepts fewer or more fractional digits than the six the server writes.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// The observation that carries the agent's new state in `extras.agent_state`.
const STATE_CHANGED: &str = "agent_state_changed";
/// The agent state that ends a task successfully.
const FINISHED: &str = "finished";
/// The agent state that ends a task with a failure.
const ERROR: &str = "error";

/// What the measurements need from one event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventView {
    pub id: u64,
    pub timestamp: NaiveDateTime,
    /// `extras.agent_state` of an `agent_state_changed` observation.
    pub agent_state: Option<String>,
    /// `extras.reason` of the same observation (why an `error` state was entered).
    pub reason: Option<String>,
}

impl EventView {
    pub fn is_finished(&self) -> bool {
        self.agent_state.as_deref() == Some(FINISHED)
    }

    /// The reason, when this event puts the agent in the `error` state.
    pub fn error_reason(&self) -> Option<String> {
        (self.agent_state.as_deref() == Some(ERROR))
            .then(|| self.reason.clone().unwrap_or_default())
    }
}

/// One WebSocket text frame from the events socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Event(EventView),
    /// A `status_update` notice (or any other frame without an id): not an event.
    Notice,
    /// `{"error": true, "message": ...}`: the server refused something we sent.
    Error(String),
}

/// The fields of an event or frame the bench looks at; everything else is skipped.
#[derive(Debug, Deserialize)]
struct RawEvent {
    id: Option<u64>,
    timestamp: Option<String>,
    observation: Option<String>,
    extras: Option<Value>,
}

/// The keys that classify a frame; a later duplicate key wins.
#[derive(Debug, Default)]
struct Head {
    /// A number for events, a string (`STATUS$...`) for notices.
    id: Option<Value>,
    timestamp: Option<String>,
    observation: Option<String>,
    status_update: bool,
    error: bool,
}

/// The keys [`Head`] reads; the rest are skipped.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum HeadKey {
    Id,
    Timestamp,
    Observation,
    StatusUpdate,
    Error,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for Head {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(HeadVisitor)
    }
}

struct HeadVisitor;

impl<'de> Visitor<'de> for HeadVisitor {
    type Value = Head;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
        let mut head = Head::default();
        while let Some(key) = map.next_key::<HeadKey>()? {
            match key {
                HeadKey::Id => head.id = Some(map.next_value()?),
                HeadKey::Timestamp => head.timestamp = map.next_value()?,
                HeadKey::Observation => head.observation = map.next_value()?,
                HeadKey::StatusUpdate => {
                    map.next_value::<IgnoredAny>()?;
                    head.status_update = true;
                }
                HeadKey::Error => head.error = map.next_value::<Value>()? == Value::Bool(true),
                HeadKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(head)
    }
}

#[derive(Debug, Deserialize)]
struct RawTrajectory {
    trajectory: Vec<RawEvent>,
}

/// Classifies one text frame of the events socket.
pub fn parse_frame(text: &str) -> Result<Frame> {
    if let Some(event) = plain_event(text) {
        return Ok(Frame::Event(event));
    }
    let head: Head = serde_json::from_str(text)
        .with_context(|| format!("frame is not an event object: {}", prefix(text)))?;
    if head.status_update {
        return Ok(Frame::Notice);
    }
    if head.error {
        let full: Value = serde_json::from_str(text).context("error frame")?;
        let message = full.get("message").map_or_else(String::new, text_of);
        return Ok(Frame::Error(message));
    }
    let Some(id) = head.id else {
        return Ok(Frame::Notice);
    };
    let event = if head.observation.as_deref() == Some(STATE_CHANGED) {
        // Rare, and the one kind whose `extras` matter: read it in full.
        serde_json::from_str::<Value>(text)
            .and_then(RawEvent::deserialize)
            .map_err(anyhow::Error::from)
            .and_then(view)
    } else {
        let id = id
            .as_u64()
            .with_context(|| format!("event id {id} is not a number"));
        id.and_then(|id| {
            Ok(EventView {
                id,
                timestamp: event_timestamp(id, head.timestamp.as_deref())?,
                agent_state: None,
                reason: None,
            })
        })
    };
    event
        .map(Frame::Event)
        .with_context(|| format!("frame is not an event: {}", prefix(text)))
}

/// The events of a `GET .../trajectory` body, in the order the server sent them.
pub fn parse_trajectory(body: &[u8]) -> Result<Vec<EventView>> {
    let raw: RawTrajectory = serde_json::from_slice::<Value>(body)
        .and_then(RawTrajectory::deserialize)
        .context("trajectory body is not {\"trajectory\": [...]}")?;
    raw.trajectory.into_iter().map(view).collect()
}

fn view(raw: RawEvent) -> Result<EventView> {
    let id = raw.id.context("event without an id")?;
    let timestamp = event_timestamp(id, raw.timestamp.as_deref())?;
    let state_change = raw.observation.as_deref() == Some(STATE_CHANGED);
    let extras = raw.extras.as_ref().filter(|_| state_change);
    let field = |name: &str| {
        extras
            .and_then(|extras| extras.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Ok(EventView {
        id,
        timestamp,
        agent_state: field("agent_state"),
        reason: field("reason"),
    })
}

/// The id and timestamp of an event frame in the server's own layout, read without a JSON
/// parser: `None` for anything else (a state change, a notice, another key order), which
/// [`parse_frame`] then reads in full. Reading a few hundred thousand frames, the JSON
/// scan and the timestamp format were a fifth of the bench's CPU.
fn plain_event(text: &str) -> Option<EventView> {
    let rest = text.strip_prefix(r#"{"id":"#)?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let (id, rest) = rest.split_at(digits);
    let rest = rest.strip_prefix(r#","timestamp":""#)?;
    let timestamp = fixed_timestamp(rest.get(..26)?)?;
    if rest.get(26..27)? != "\"" || text.contains(STATE_CHANGED) {
        return None;
    }
    Some(EventView {
        id: id.parse().ok()?,
        timestamp,
        agent_state: None,
        reason: None,
    })
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff`, the only layout the server writes.
fn fixed_timestamp(text: &str) -> Option<NaiveDateTime> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        bytes.get(range)?.iter().try_fold(0u32, |n, b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ];
    if bytes.len() != 26 || separators.iter().any(|&(at, c)| bytes.get(at) != Some(&c)) {
        return None;
    }
    let year = i32::try_from(number(0..4)?).ok()?;
    chrono::NaiveDate::from_ymd_opt(year, number(5..7)?, number(8..10)?)?.and_hms_micro_opt(
        number(11..13)?,
        number(14..16)?,
        number(17..19)?,
        number(20..26)?,
    )
}

fn event_timestamp(id: u64, timestamp: Option<&str>) -> Result<NaiveDateTime> {
    timestamp
        .with_context(|| format!("event {id} has no timestamp"))
        .and_then(parse_timestamp)
}

/// Parses the server's `%Y-%m-%dT%H:%M:%S%.6f` local timestamp.
pub fn parse_timestamp(text: &str) -> Result<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, TIMESTAMP_FORMAT).with_context(|| {
        format!(
            "event timestamp `{}` is not {TIMESTAMP_FORMAT}",
            prefix(text)
        )
    })
}

/// The first event that ends the agent's task: `Ok(Some(index))` for `finished`,
/// an error carrying the reason for `error`, `Ok(None)` while it still works.
pub fn task_end(events: &[EventView]) -> Result<Option<usize>> {
    for (index, event) in events.iter().enumerate() {
        if let Some(reason) = event.error_reason() {
            bail!(
                "the agent stopped in the error state (event {}): {reason}",
                event.id
            );
        }
        if event.is_finished() {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// Events per second between the first and the last event's timestamps:
/// `(events - 1) / span`, the rate at which the server produced them.
pub fn events_per_second(events: &[EventView]) -> Result<(f64, f64)> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        bail!("no events");
    };
    ensure!(events.len() >= 2, "one event gives no rate");
    let micros = (last.timestamp - first.timestamp)
        .num_microseconds()
        .context("event span overflows")?;
    ensure!(
        micros > 0,
        "events {}..{} share one timestamp; no rate can be computed",
        first.id,
        last.id
    );
    let seconds = micros as f64 / 1e6;
    Ok((seconds, (events.len() - 1) as f64 / seconds))
}

/// Delivery delay of an event received at `received`, in µs; negative (a clock
/// step) counts as 0 and anything past `u32::MAX` µs saturates.
pub fn delay_micros(received: NaiveDateTime, event: &EventView) -> u32 {
    let micros = (received - event.timestamp)
        .num_microseconds()
        .unwrap_or(i64::MAX)
        .max(0);
    u32::try_from(micros).unwrap_or(u32::MAX)
}

fn text_of(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// The start of untrusted text, for error messages.
fn prefix(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const THINK: &str = r#"{"id":3,"timestamp":"2025-01-02T03:04:05.250000","source":"agent",
        "message":"","action":"think","args":{"thought":"x"}}"#;
    const FINISHED_STATE: &str = r#"{"id":9,"timestamp":"2025-01-02T03:04:06.000000",
        "source":"environment","message":"","observation":"agent_state_changed",
        "content":"","extras":{"agent_state":"finished","reason":""}}"#;

    fn event(text: &str) -> Result<EventView> {
        match parse_frame(text)? {
            Frame::Event(event) => Ok(event),
            other => bail!("not an event: {other:?}"),
        }
    }

    #[test]
    fn reads_id_timestamp_and_state() -> Result<()> {
        let think = event(THINK)?;
        assert_eq!(think.id, 3);
        assert_eq!(think.timestamp.to_string(), "2025-01-02 03:04:05.250");
        assert!(!think.is_finished());
        assert!(event(FINISHED_STATE)?.is_finished());
        Ok(())
    }

    #[test]
    fn agent_state_only_counts_on_state_change_observations() -> Result<()> {
        let other = r#"{"id":1,"timestamp":"2025-01-02T03:04:05.000000",
            "observation":"think","extras":{"agent_state":"finished"}}"#;
        assert!(!event(other)?.is_finished());
        Ok(())
    }

    #[test]
    fn duplicate_keys_keep_the_last_like_json_parse() -> Result<()> {
        // What the server sends when it replays a stored observation.
        let replayed = r#"{"id":1,"timestamp":"2025-01-02T03:04:05.000000","source":"environment",
            "message":"","observation":"agent_state_changed","content":"",
            "extras":{"agent_state":"finished","reason":""},"content":"",
            "extras":{"agent_state":"finished","reason":""},"observation":"agent_state_changed"}"#;
        assert!(event(replayed)?.is_finished());
        let think = r#"{"id":2,"timestamp":"2025-01-02T03:04:05.000000","observation":"think",
            "content":"ok","extras":{},"content":"ok","extras":{},"observation":"think"}"#;
        assert_eq!(event(think)?.id, 2);
        let action = r#"{"id":0,"timestamp":"2025-01-02T03:04:05.000000","action":"message",
            "args":{"content":"go"},"action":"message","args":{"content":"go"}}"#;
        assert_eq!(event(action)?.id, 0);
        Ok(())
    }

    #[test]
    fn the_server_layout_is_read_from_its_prefix_like_the_full_parse() -> Result<()> {
        let frames = [
            THINK,
            FINISHED_STATE,
            r#"{"id":12,"timestamp":"2025-01-02T03:04:05.000001","source":"agent","observation":"think","content":"agent_state_changed","extras":{}}"#,
            r#"{"id":7,"timestamp":"2025-12-31T23:59:59.999999","source":"user","action":"message"}"#,
        ];
        for frame in frames {
            let full: Head = serde_json::from_str(frame)?;
            let expected = EventView {
                id: full.id.and_then(|id| id.as_u64()).context("an id")?,
                timestamp: parse_timestamp(full.timestamp.as_deref().context("a timestamp")?)?,
                agent_state: None,
                reason: None,
            };
            match plain_event(frame) {
                Some(fast) => assert_eq!(fast, expected, "{frame}"),
                None => assert!(frame.contains(STATE_CHANGED), "not read fast: {frame}"),
            }
        }
        let compact = |s: &str| s.split_whitespace().collect::<String>();
        assert_eq!(plain_event(&compact(THINK)).map(|e| e.id), Some(3));
        assert!(
            plain_event(&compact(FINISHED_STATE)).is_none(),
            "state changes are read in full"
        );
        assert!(event(&compact(FINISHED_STATE))?.is_finished());
        Ok(())
    }

    #[test]
    fn other_layouts_fall_back_to_the_full_parse() -> Result<()> {
        let others = [
            r#"{"timestamp":"2025-01-02T03:04:05.000000","id":4}"#,
            r#"{"id":4,"timestamp":"2025-01-02T03:04:05.5"}"#,
            r#"{"id":4,"timestamp":"2025-01-02 03:04:05.000000"}"#,
            r#"{"id":4,"timestamp":"2025-13-02T03:04:05.000000"}"#,
            r#"{"id":"STATUS$READY","timestamp":"2025-01-02T03:04:05.000000"}"#,
            r#"{"id":,"timestamp":"2025-01-02T03:04:05.000000"}"#,
        ];
        for frame in others {
            assert!(plain_event(frame).is_none(), "{frame}");
        }
        assert_eq!(event(others[0])?.id, 4, "other key orders still parse");
        assert_eq!(
            event(others[1])?.timestamp.to_string(),
            "2025-01-02 03:04:05.500"
        );
        assert!(
            parse_frame(others[3]).is_err(),
            "month 13 is no date either way"
        );
        Ok(())
    }

    #[test]
    fn notices_and_errors_are_not_events() -> Result<()> {
        let notice = r#"{"id":"STATUS$SETTING_UP_WORKSPACE","message":"Setting up the workspace",
            "status_update":true,"type":"info"}"#;
        assert_eq!(parse_frame(notice)?, Frame::Notice);
        let refused = r#"{"error":true,"message":"conversation not running"}"#;
        assert_eq!(
            parse_frame(refused)?,
            Frame::Error("conversation not running".to_owned())
        );
        Ok(())
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert!(parse_frame("not json").is_err());
        assert!(parse_frame(r#"{"id":1}"#).is_err(), "no timestamp");
        assert!(parse_frame(r#"{"id":1,"timestamp":"yesterday"}"#).is_err());
        assert!(parse_frame(r#"{"id":-1,"timestamp":"2025-01-02T03:04:05"}"#).is_err());
    }

    #[test]
    fn trajectory_parses_in_order() -> Result<()> {
        let body = format!(r#"{{"trajectory":[{THINK},{FINISHED_STATE}]}}"#);
        let events = parse_trajectory(body.as_bytes())?;
        assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 9]);
        assert!(parse_trajectory(br#"{"trajectory":null}"#).is_err());
        Ok(())
    }

    #[test]
    fn task_end_finds_finish_and_fails_on_error() -> Result<()> {
        let think = event(THINK)?;
        let finished = event(FINISHED_STATE)?;
        assert_eq!(task_end(std::slice::from_ref(&think))?, None);
        assert_eq!(task_end(&[think.clone(), finished])?, Some(1));
        let failed = EventView {
            agent_state: Some("error".to_owned()),
            reason: Some("Agent reached maximum iteration limit".to_owned()),
            ..think.clone()
        };
        let err = task_end(&[think, failed]).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("maximum iteration")));
        Ok(())
    }

    #[test]
    fn rate_is_intervals_over_span() -> Result<()> {
        let at = |id, ts: &str| -> Result<EventView> {
            Ok(EventView {
                id,
                timestamp: parse_timestamp(ts)?,
                agent_state: None,
                reason: None,
            })
        };
        let events = [
            at(0, "2025-01-02T03:04:05.000000")?,
            at(1, "2025-01-02T03:04:05.100000")?,
            at(2, "2025-01-02T03:04:05.500000")?,
        ];
        let (seconds, rate) = events_per_second(&events)?;
        assert!((seconds - 0.5).abs() < 1e-9);
        assert!((rate - 4.0).abs() < 1e-9);
        assert!(events_per_second(&events[..1]).is_err());
        assert!(events_per_second(&[events[0].clone(), events[0].clone()]).is_err());
        Ok(())
    }

    #[test]
    fn delays_are_clamped() -> Result<()> {
        let think = event(THINK)?;
        let later = parse_timestamp("2025-01-02T03:04:05.262500")?;
        assert_eq!(delay_micros(later, &think), 12_500);
        let earlier = parse_timestamp("2025-01-02T03:04:05.000000")?;
        assert_eq!(delay_micros(earlier, &think), 0);
        let much_later = parse_timestamp("2025-02-02T03:04:05.000000")?;
        assert_eq!(delay_micros(much_later, &think), u32::MAX);
        Ok(())
    }
}
