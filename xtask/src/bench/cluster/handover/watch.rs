//! The handover measurement's watchers: a task per conversation reads its WebSocket from
//! the first event on, says when the agent is mid-task, then notes when it read each sign
//! of the handover ([`Trace`]); [`Phases`] sums the traces up.
//!
//! For the status event and the next step it also notes how long after its own
//! `timestamp` (taken by the server before storing it) the frame was read, which tells
//! the server's work from the delivery to the watcher.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Local};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{self, Message};

use super::{HANDOVER_TIMEOUT, Handover};
use crate::bench::agent::events::{self, EventView, Frame};
use crate::bench::agent::watcher::Socket;
use crate::bench::cluster::takeover::{RESUMED_REASON, is_move, wait_mid_turn};
use crate::bench::stats::DelaySummary;

/// The start of the handover status event's `reason`.
const HANDED_OVER_REASON: &str = "Moved to another server";
/// The agent state that goes on working after a handover.
const RUNNING: &str = "running";
/// The agent state a drained agent stores on the victim.
const STOPPED: &str = "stopped";
/// Failures named in the report; the rest are counted.
const FAILURES_LISTED: usize = 5;

/// A conversation and the task that reads its watcher; the task ends when this is dropped.
pub(super) struct Watched {
    pub(super) id: String,
    pub(super) trace: Arc<Mutex<Trace>>,
    pub(super) task: JoinHandle<()>,
}

impl Watched {
    /// Starts reading `socket`: `ready` hears once the agent is mid-task (or why not),
    /// then the trace fills in as the handover goes.
    pub(super) fn start(
        id: String,
        mut socket: Socket,
        ready: mpsc::UnboundedSender<Result<()>>,
    ) -> Self {
        let trace = Arc::new(Mutex::new(Trace::default()));
        let shared = Arc::clone(&trace);
        let conversation = id.clone();
        let task = tokio::spawn(async move {
            let mid_turn = wait_mid_turn(&mut socket)
                .await
                .with_context(|| format!("conversation {conversation}"));
            let mid_turn_ok = mid_turn.is_ok();
            // The receiver only goes when the measurement failed.
            let _ = ready.send(mid_turn);
            if mid_turn_ok {
                follow(&mut socket, &shared).await;
            }
        });
        Self { id, trace, task }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the watcher into `trace` until the handover's next step, or until something
/// ends the watch.
async fn follow(socket: &mut Socket, trace: &Mutex<Trace>) {
    loop {
        let text = next_text(socket).await;
        let read = Instant::now();
        let read_at = SystemTime::now();
        let after_status_event = lock(trace).handed_over.is_some();
        let seen = match text {
            Ok(Some(text)) => classify(&text, after_status_event, read_at),
            Ok(None) => Seen::Ended("the survivor closed the watcher".to_owned()),
            Err(err) => Seen::Ended(format!("{err:#}")),
        };
        if lock(trace).record(seen, read) {
            return;
        }
    }
}

/// The next text frame of the socket, `None` once it closed; pings are skipped. The
/// frame is kept as text: whether an event is an action is not in [`events::EventView`].
async fn next_text(socket: &mut Socket) -> Result<Option<tungstenite::Utf8Bytes>> {
    while let Some(message) = socket.next().await {
        match message {
            Ok(Message::Text(text)) => return Ok(Some(text)),
            Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => break,
            Ok(_) => {}
            Err(err) => bail!("reading the events socket: {err}"),
        }
    }
    Ok(None)
}

/// What a frame means to the handover.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// The victim drained the agent.
    Stopped,
    /// The handover's status event, with the state the agent goes on from and how long
    /// after its timestamp it was read (µs).
    HandedOver { state: String, lag_us: u32 },
    /// A takeover's status event: the conversation moved without a handover.
    Resumed,
    /// An action of the agent, with how long after its timestamp it was read (µs).
    Action { lag_us: u32 },
    /// Nothing that matters here.
    Other,
    /// The watch is over (closed, refused, an error state, an unreadable frame).
    Ended(String),
}

/// Classifies one text frame read at `read_at`; actions are only looked for when
/// `want_action` (after the status event), sparing a full parse of every frame before it.
fn classify(text: &str, want_action: bool, read_at: SystemTime) -> Seen {
    let event = match events::parse_frame(text) {
        Ok(Frame::Event(event)) => event,
        Ok(Frame::Notice) => return Seen::Other,
        Ok(Frame::Error(message)) => return Seen::Ended(format!("watcher refused: {message}")),
        Err(err) => return Seen::Ended(format!("{err:#}")),
    };
    let (state, reason) = (event.agent_state.as_deref(), event.reason.as_deref());
    if is_move(state, reason, HANDED_OVER_REASON) {
        return Seen::HandedOver {
            state: state.unwrap_or_default().to_owned(),
            lag_us: lag(&event, read_at),
        };
    }
    if is_move(state, reason, RESUMED_REASON) {
        return Seen::Resumed;
    }
    if let Some(reason) = event.error_reason() {
        return Seen::Ended(format!("the agent entered the error state: {reason}"));
    }
    match state {
        Some(STOPPED) => Seen::Stopped,
        None if want_action && is_agent_action(text) => Seen::Action {
            lag_us: lag(&event, read_at),
        },
        _ => Seen::Other,
    }
}

/// How long after its `timestamp` (server local time) an event was read at `read_at`, µs.
fn lag(event: &EventView, read_at: SystemTime) -> u32 {
    events::delay_micros(DateTime::<Local>::from(read_at).naive_local(), event)
}

/// Whether an event frame is an action of the agent (`"source": "agent"`, an `action`).
fn is_agent_action(text: &str) -> bool {
    text.contains("\"action\"")
        && serde_json::from_str::<Value>(text).is_ok_and(|event| {
            event.get("action").is_some_and(Value::is_string)
                && event.get("source").and_then(Value::as_str) == Some("agent")
        })
}

/// When one conversation's watcher read each sign of the handover.
#[derive(Debug, Default)]
pub(super) struct Trace {
    stopped: Option<Instant>,
    handed_over: Option<Instant>,
    /// The status event's and the next step's timestamps to their reads, µs.
    status_lag_us: Option<u32>,
    step_lag_us: Option<u32>,
    /// The state the status event reported.
    state: String,
    resumed: Option<Instant>,
    next_step: Option<Instant>,
    /// Why the watch ended without a next step.
    ended: Option<String>,
}

impl Trace {
    /// Notes what a frame read at `at` was; true once the watch is over.
    fn record(&mut self, seen: Seen, at: Instant) -> bool {
        match seen {
            Seen::Stopped if self.handed_over.is_none() => {
                self.stopped.get_or_insert(at);
                false
            }
            Seen::HandedOver { state, lag_us } if self.handed_over.is_none() => {
                self.handed_over = Some(at);
                self.status_lag_us = Some(lag_us);
                let waits = state != RUNNING;
                if waits {
                    self.ended = Some(format!(
                        "handed over as `{state}`: the agent waits instead of going on"
                    ));
                }
                self.state = state;
                waits
            }
            Seen::Resumed if self.handed_over.is_none() => {
                self.resumed = Some(at);
                true
            }
            Seen::Action { lag_us } if self.handed_over.is_some() => {
                self.next_step = Some(at);
                self.step_lag_us = Some(lag_us);
                true
            }
            Seen::Ended(why) => {
                self.ended = Some(why);
                true
            }
            _ => false,
        }
    }

    /// Signal to the next step, or why there was none.
    fn next_step_since(&self, signalled: Instant) -> std::result::Result<u32, String> {
        let since = |at: Instant| micros(at.saturating_duration_since(signalled));
        if let Some(at) = self.next_step {
            return Ok(since(at));
        }
        let seen = match (self.handed_over, self.resumed) {
            (Some(at), _) => format!(
                "handed over after {} ms (as `{}`), no next step",
                since(at) / 1000,
                self.state
            ),
            (None, Some(at)) => format!(
                "not handed over: taken over after {} ms (the lease ran out)",
                since(at) / 1000
            ),
            (None, None) => "not handed over".to_owned(),
        };
        Err(match &self.ended {
            Some(why) => format!("{seen}; {why}"),
            None => format!("{seen} within {HANDOVER_TIMEOUT:?}"),
        })
    }
}

/// Each conversation's phases since the signal, in µs, and the failures.
#[derive(Debug, Default)]
pub(super) struct Phases {
    drained: Vec<u32>,
    status_event: Vec<u32>,
    status_lag: Vec<u32>,
    next_step: Vec<u32>,
    step_lag: Vec<u32>,
    failures: Vec<String>,
}

impl Phases {
    pub(super) fn add(&mut self, id: &str, trace: &Trace, signalled: Instant) {
        let since = |at: Instant| micros(at.saturating_duration_since(signalled));
        self.drained.extend(trace.stopped.map(since));
        self.status_event.extend(trace.handed_over.map(since));
        self.status_lag.extend(trace.status_lag_us);
        match trace.next_step_since(signalled) {
            Ok(step) => {
                self.next_step.push(step);
                self.step_lag.extend(trace.step_lag_us);
            }
            Err(why) => self.failures.push(format!("{id}: {why}")),
        }
    }

    /// `handover` with these phases' figures.
    pub(super) fn summarise(self, handover: Handover) -> Handover {
        Handover {
            drained: DelaySummary::of(self.drained),
            status_event: DelaySummary::of(self.status_event),
            status_event_lag: DelaySummary::of(self.status_lag),
            next_step: DelaySummary::of(self.next_step),
            next_step_lag: DelaySummary::of(self.step_lag),
            failures: self.failures.len(),
            failure_examples: self.failures.into_iter().take(FAILURES_LISTED).collect(),
            ..handover
        }
    }
}

fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

/// The trace, also after a reading task panicked (what it noted stays valid).
pub(super) fn lock(trace: &Mutex<Trace>) -> MutexGuard<'_, Trace> {
    trace.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::super::example;
    use super::*;

    const THINK_ACTION: &str = r#"{"id":12,"timestamp":"2025-01-02T03:04:05.000001","source":"agent","message":"","action":"think","args":{"thought":"bench step 7"}}"#;
    const THINK_RESULT: &str = r#"{"id":13,"timestamp":"2025-01-02T03:04:05.000002","source":"agent","message":"","cause":12,"observation":"think","content":"","extras":{}}"#;
    const USER_MESSAGE: &str = r#"{"id":0,"timestamp":"2025-01-02T03:04:05.000000","source":"user","action":"message","args":{"content":"go"}}"#;

    fn state_change(state: &str, reason: &str) -> String {
        serde_json::json!({
            "id": 11,
            "timestamp": "2025-01-02T03:04:05.000000",
            "source": "environment",
            "observation": "agent_state_changed",
            "content": "",
            "extras": {"agent_state": state, "reason": reason},
        })
        .to_string()
    }

    #[test]
    fn frames_classify_by_state_reason_and_source() {
        let read_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_787_045);
        let seen = |text: &str, want_action| classify(text, want_action, read_at);
        let moved = state_change(
            "running",
            "Moved to another server: the server that ran this conversation is shutting down.",
        );
        assert!(matches!(
            seen(&moved, false),
            Seen::HandedOver { state, .. } if state == "running"
        ));
        let resumed = state_change(
            "running",
            "Resumed on another server: it stopped answering.",
        );
        assert_eq!(seen(&resumed, true), Seen::Resumed);
        let leaving = state_change(
            "stopped",
            "This server is shutting down; the conversation moves to another server.",
        );
        assert_eq!(seen(&leaving, false), Seen::Stopped);
        assert!(matches!(
            seen(&state_change("error", "boom"), true),
            Seen::Ended(why) if why.contains("boom")
        ));
        assert!(matches!(seen(THINK_ACTION, true), Seen::Action { .. }));
        assert_eq!(seen(THINK_ACTION, false), Seen::Other, "not looked for");
        assert_eq!(seen(THINK_RESULT, true), Seen::Other, "an observation");
        assert_eq!(seen(USER_MESSAGE, true), Seen::Other, "the user's action");
        assert!(matches!(seen("not json", true), Seen::Ended(_)));
    }

    #[test]
    fn the_next_step_is_the_first_action_after_the_status_event() {
        let signalled = Instant::now();
        let at = |ms| signalled + Duration::from_millis(ms);
        let mut trace = Trace::default();
        let action = || Seen::Action { lag_us: 2_000 };
        let handed_over = |state: &str| Seen::HandedOver {
            state: state.to_owned(),
            lag_us: 1_000,
        };
        assert!(!trace.record(action(), at(10)), "before the handover");
        assert!(!trace.record(Seen::Stopped, at(100)));
        assert!(!trace.record(handed_over("running"), at(300)));
        assert!(!trace.record(Seen::Other, at(350)));
        assert!(trace.record(action(), at(420)));
        assert_eq!(trace.next_step_since(signalled), Ok(420_000));

        let mut phases = Phases::default();
        phases.add("c1", &trace, signalled);
        let mut waiting = Trace::default();
        assert!(waiting.record(handed_over("awaiting_user_input"), at(250)));
        phases.add("c2", &waiting, signalled);
        let mut taken = Trace::default();
        assert!(taken.record(Seen::Resumed, at(3_200)));
        phases.add("c3", &taken, signalled);
        phases.add("c4", &Trace::default(), signalled);
        let handover = phases.summarise(example(0.0));
        assert_eq!(handover.next_step.deliveries, 1);
        assert_eq!(handover.next_step.p99_ms, 420.0);
        assert_eq!(handover.next_step_lag.p99_ms, 2.0);
        assert_eq!(handover.status_event_lag.deliveries, 2);
        assert_eq!(handover.drained.p50_ms, 100.0);
        assert_eq!(handover.handed_over(), 2, "c1 and c2 saw the status event");
        assert_eq!(handover.failures, 3);
        assert_eq!(handover.clean_p99_ms(), None, "a failure fails the figure");
        let failures = handover.failure_examples.join("\n");
        assert!(
            failures.contains("c2: handed over after 250 ms (as `awaiting_user_input`)"),
            "{failures}"
        );
        assert!(failures.contains("c3: not handed over: taken over after 3200 ms"));
        assert!(failures.contains("c4: not handed over within 30s"));
    }
}
