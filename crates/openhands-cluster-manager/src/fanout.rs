//! Fan-out of a conversation's live feed through a Redis Stream.
//!
//! The owner runs a [`Forwarder`]: it follows the standalone manager's broadcast (events
//! there are already stored) and `XADD`s each message to `<p>cm:events:{<id>}` in event-id
//! order, reading any event it missed (a lagged broadcast) back from the event store, so the
//! stream holds every event from the claim on without gap or duplicate. Every replica with
//! watchers runs a [`relay`]: one `XREAD BLOCK` loop per conversation on a connection of
//! its own, feeding a local broadcast that the watchers' sockets subscribe to. The relay
//! starts at the stream's last entry as of `subscribe`, so anything stored after the
//! watcher subscribed reaches it (the socket's replay covers what came before, and it drops
//! ids it already sent); it too drops duplicates and fills gaps from the event store.
//!
//! Streams rather than pub/sub: a stream is read from a position, so a relay that
//! reconnects (or a slow one) continues where it stopped instead of losing messages.

use crate::keys::Keys;
use openhands_core::event::EventQuery;
use openhands_core::extension::{EventStore, LiveEvent, LiveMessage, LiveReceiver};
use openhands_core::scope::UserScope;
use openhands_redis::redis::{self, Value};
use openhands_redis::{RedisError, RedisPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

/// Entries a stream keeps at least (trimmed with `MAXLEN ~`); older ones are read from the
/// event store.
const STREAM_MAXLEN: u64 = 10_000;
/// A stream disappears this long after its last entry.
const STREAM_TTL_MS: u64 = 24 * 60 * 60 * 1000;
/// How long one `XREAD` blocks; a relay checks for remaining watchers this often.
const READ_BLOCK_MS: u64 = 1_000;
/// Pause after a Redis failure before trying again.
const RETRY_AFTER: Duration = Duration::from_millis(250);
/// Attempts at one `XADD` before the entry is given up (watchers then fill the gap from the
/// store at the next event).
const XADD_ATTEMPTS: u32 = 40;

/// Where gaps are read from.
#[derive(Clone)]
pub struct GapSource {
    pub store: Arc<dyn EventStore>,
    pub scope: UserScope,
    pub conversation_id: String,
}

impl GapSource {
    /// Stored events with ids in `from..to` (`to` `None`: to the end), as live messages.
    async fn read(&self, from: u64, to: Option<u64>) -> Vec<LiveMessage> {
        let query = EventQuery {
            start_id: from,
            end_id: to.map(|t| t.saturating_sub(1)),
            reverse: false,
            limit: usize::MAX,
        };
        match self
            .store
            .read(&self.scope, &self.conversation_id, query)
            .await
        {
            Ok(page) => page
                .events
                .iter()
                .filter(|e| e.id >= from && to.is_none_or(|t| e.id < t))
                .map(LiveMessage::event)
                .collect(),
            Err(err) => {
                tracing::warn!(conversation_id = %self.conversation_id, error = %err, "reading missed events failed");
                Vec::new()
            }
        }
    }
}

/// Keeps a feed in id order: drops what was sent, fills what is missing.
struct Sequencer {
    last: Option<u64>,
    gaps: GapSource,
}

impl Sequencer {
    /// The messages to pass on for `message`, in order.
    async fn admit(&mut self, message: LiveMessage) -> Vec<LiveMessage> {
        let LiveMessage::Event { id, .. } = &message else {
            return vec![message];
        };
        let id = *id;
        let mut out = Vec::new();
        match self.last {
            Some(last) if id <= last => return out,
            Some(last) if id > last + 1 => out.extend(self.gaps.read(last + 1, Some(id)).await),
            _ => {}
        }
        out.push(message);
        self.last = Some(id);
        out
    }

    /// Everything stored after the last message passed on (after a lagged broadcast).
    async fn catch_up(&mut self) -> Vec<LiveMessage> {
        let Some(last) = self.last else {
            return Vec::new();
        };
        let missed = self.gaps.read(last + 1, None).await;
        if let Some(LiveMessage::Event { id, .. }) = missed.last() {
            self.last = Some(*id);
        }
        missed
    }
}

/// The owner's side of one conversation's stream.
pub struct Forwarder {
    finish: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Forwarder {
    /// Forwards `live` (subscribed before the run starts) to the conversation's stream.
    /// `after`: the id of the last event already in the stream (a takeover publishes its
    /// status event first), so a missing next one is read from the store.
    pub fn spawn(
        pool: RedisPool,
        keys: &Keys,
        gaps: GapSource,
        live: LiveReceiver,
        after: Option<u64>,
    ) -> Self {
        let (finish, finished) = oneshot::channel();
        let stream = keys.events(&gaps.conversation_id);
        let task = tokio::spawn(forward(pool, stream, gaps, live, after, finished));
        Self {
            finish: Some(finish),
            task,
        }
    }

    /// Publishes what the run already broadcast, then ends.
    pub async fn finish(mut self) {
        if let Some(finish) = self.finish.take() {
            let _ = finish.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

async fn forward(
    pool: RedisPool,
    stream: String,
    gaps: GapSource,
    mut live: LiveReceiver,
    after: Option<u64>,
    mut finished: oneshot::Receiver<()>,
) {
    let mut sequencer = Sequencer { last: after, gaps };
    loop {
        let received = tokio::select! {
            biased;
            received = live.recv() => received,
            _ = &mut finished => {
                // The run has ended: what it broadcast is queued; publish it, then stop.
                loop {
                    match live.try_recv() {
                        Ok(message) => {
                            for single in message.into_singles() {
                                for message in sequencer.admit(single).await {
                                    xadd(&pool, &stream, &message).await;
                                }
                            }
                        }
                        Err(broadcast::error::TryRecvError::Lagged(_)) => {
                            for message in sequencer.catch_up().await {
                                xadd(&pool, &stream, &message).await;
                            }
                        }
                        Err(_) => return,
                    }
                }
            }
        };
        let messages = match received {
            Ok(message) => {
                let mut admitted = Vec::new();
                for single in message.into_singles() {
                    admitted.extend(sequencer.admit(single).await);
                }
                regroup(admitted)
            }
            Err(broadcast::error::RecvError::Lagged(_)) => sequencer.catch_up().await,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        for message in messages {
            xadd(&pool, &stream, &message).await;
        }
    }
}

/// Messages in order, with runs of consecutive events joined into one batch each.
fn regroup(messages: Vec<LiveMessage>) -> Vec<LiveMessage> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    for message in messages {
        match message {
            LiveMessage::Event { id, json } => batch.push(LiveEvent { id, json }),
            other => {
                out.extend(LiveMessage::batch(std::mem::take(&mut batch)));
                out.push(other);
            }
        }
    }
    out.extend(LiveMessage::batch(batch));
    out
}

/// The stream entries (field lists) of a message: one per event, one for a notice.
fn entry_fields(message: &LiveMessage) -> Vec<Vec<(&'static str, String)>> {
    let event = |id: u64, json: &str| vec![("event_id", id.to_string()), ("json", json.to_owned())];
    match message {
        LiveMessage::Event { id, json } => vec![event(*id, json)],
        LiveMessage::Events(events) => events.iter().map(|e| event(e.id, &e.json)).collect(),
        LiveMessage::Notice(notice) => vec![vec![("notice", notice.to_string())]],
    }
}

/// Appends a message's entries to the stream in one `MULTI`/`EXEC` (a relay blocked on the
/// stream then reads them together), retrying a failing Redis for a while.
pub async fn xadd(pool: &RedisPool, stream: &str, message: &LiveMessage) {
    let entries = entry_fields(message);
    if entries.is_empty() {
        return;
    }
    for attempt in 1..=XADD_ATTEMPTS {
        let key = stream.to_owned();
        let entries = entries.clone();
        let result: Result<(), RedisError> = pool
            .run(|mut connection| async move {
                let mut pipe = redis::pipe();
                pipe.atomic();
                for fields in entries {
                    pipe.cmd("XADD")
                        .arg(&key)
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(STREAM_MAXLEN)
                        .arg("*")
                        .arg(fields)
                        .ignore();
                }
                pipe.cmd("PEXPIRE")
                    .arg(&key)
                    .arg(STREAM_TTL_MS)
                    .ignore()
                    .query_async(&mut connection)
                    .await
            })
            .await;
        match result {
            Ok(()) => return,
            Err(err) if attempt == 1 || attempt == XADD_ATTEMPTS => {
                tracing::warn!(stream, attempt, error = %err, "publishing a conversation event to Redis failed");
            }
            Err(_) => {}
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

/// The id of the stream's newest entry (`0-0` when there is none): a relay reads after it.
pub async fn stream_position(pool: &RedisPool, stream: &str) -> Result<String, RedisError> {
    let key = stream.to_owned();
    let newest: Value = pool
        .run(|mut connection| async move {
            redis::cmd("XREVRANGE")
                .arg(key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut connection)
                .await
        })
        .await?;
    Ok(entries(newest)
        .into_iter()
        .next()
        .map(|(id, _)| id)
        .unwrap_or_else(|| "0-0".to_owned()))
}

/// `(entry id, fields)` of an `XRANGE`-shaped reply.
fn entries(value: Value) -> Vec<(String, Vec<(String, String)>)> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| {
            let Value::Array(mut pair) = item else {
                return None;
            };
            if pair.len() != 2 {
                return None;
            }
            let fields = pair.pop()?;
            let id: String = redis::from_redis_value(pair.pop()?).ok()?;
            let fields: Vec<(String, String)> = redis::from_redis_value(fields).ok()?;
            Some((id, fields))
        })
        .collect()
}

/// Entries of an `XREAD` reply on one stream (RESP2 array or RESP3 map).
fn read_entries(value: Value) -> Vec<(String, Vec<(String, String)>)> {
    match value {
        Value::Array(streams) => streams
            .into_iter()
            .flat_map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => pair.pop().map(entries),
                _ => None,
            })
            .flatten()
            .collect(),
        Value::Map(streams) => streams
            .into_iter()
            .flat_map(|(_, entries_value)| entries(entries_value))
            .collect(),
        _ => Vec::new(),
    }
}

/// The live message an entry carries.
fn message_of(fields: &[(String, String)]) -> Option<LiveMessage> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let (Some(id), Some(json)) = (field("event_id"), field("json")) {
        return Some(LiveMessage::Event {
            id: id.parse().ok()?,
            json: json.into(),
        });
    }
    field("notice")
        .and_then(|notice| serde_json::from_str(notice).ok())
        .map(LiveMessage::Notice)
}

/// Follows the stream from `position` into `sender` until `keep_going` says to stop (it is
/// asked after each read, at least every [`READ_BLOCK_MS`]).
pub async fn relay(
    pool: RedisPool,
    stream: String,
    mut position: String,
    gaps: GapSource,
    sender: broadcast::Sender<LiveMessage>,
    keep_going: impl Fn() -> bool,
) {
    let mut sequencer = Sequencer { last: None, gaps };
    let mut connection = None;
    let response_timeout = Duration::from_millis(READ_BLOCK_MS) + pool.timeout();
    while keep_going() {
        if connection.is_none() {
            match pool.dedicated(response_timeout).await {
                Ok(fresh) => connection = Some(fresh),
                Err(err) => {
                    tracing::warn!(stream, error = %err, "following a conversation stream: no Redis connection");
                    tokio::time::sleep(RETRY_AFTER).await;
                    continue;
                }
            }
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        let read: redis::RedisResult<Value> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(100)
            .arg("BLOCK")
            .arg(READ_BLOCK_MS)
            .arg("STREAMS")
            .arg(&stream)
            .arg(&position)
            .query_async(conn)
            .await;
        match read {
            Ok(value) => {
                // What one read returns goes out as few messages as possible: the events
                // between notices as one batch, so each watcher wakes and writes once.
                let mut batch = Vec::new();
                for (id, fields) in read_entries(value) {
                    position = id;
                    let Some(message) = message_of(&fields) else {
                        continue;
                    };
                    for message in sequencer.admit(message).await {
                        match message {
                            LiveMessage::Event { id, json } => batch.push(LiveEvent { id, json }),
                            other => {
                                send_batch(&sender, &mut batch);
                                let _ = sender.send(other);
                            }
                        }
                    }
                }
                send_batch(&sender, &mut batch);
            }
            Err(err) => {
                tracing::warn!(stream, error = %err, "reading a conversation stream failed");
                connection = None;
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// Sends the events gathered so far as one message. No watcher left is fine: the relay's
/// `keep_going` ends its loop.
fn send_batch(sender: &broadcast::Sender<LiveMessage>, batch: &mut Vec<LiveEvent>) {
    if let Some(message) = LiveMessage::batch(std::mem::take(batch)) {
        let _ = sender.send(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u64) -> LiveMessage {
        LiveMessage::Event {
            id,
            json: format!("{{\"id\":{id}}}").into(),
        }
    }

    #[test]
    fn runs_of_events_become_one_batch_each_and_notices_keep_their_place() {
        let notice = LiveMessage::Notice(serde_json::json!({"status_update": true}));
        let out = regroup(vec![event(1), event(2), notice, event(3)]);
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(matches!(&out[0], LiveMessage::Events(e) if e.iter().map(|e| e.id).eq([1, 2])));
        assert!(matches!(&out[1], LiveMessage::Notice(_)));
        assert!(matches!(&out[2], LiveMessage::Event { id: 3, .. }));
        // A batch is one stream entry per event, in order.
        let entries = entry_fields(&out[0]);
        let ids: Vec<&str> = entries.iter().map(|f| f[0].1.as_str()).collect();
        assert_eq!(ids, ["1", "2"]);
        assert_eq!(entry_fields(&out[1])[0][0].0, "notice");
    }

    #[test]
    fn entries_decode_events_and_notices() {
        let reply = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"k".to_vec()),
            Value::Array(vec![
                Value::Array(vec![
                    Value::BulkString(b"1-0".to_vec()),
                    Value::Array(vec![
                        Value::BulkString(b"event_id".to_vec()),
                        Value::BulkString(b"3".to_vec()),
                        Value::BulkString(b"json".to_vec()),
                        Value::BulkString(b"{\"id\":3}".to_vec()),
                    ]),
                ]),
                Value::Array(vec![
                    Value::BulkString(b"2-0".to_vec()),
                    Value::Array(vec![
                        Value::BulkString(b"notice".to_vec()),
                        Value::BulkString(b"{\"status_update\":true}".to_vec()),
                    ]),
                ]),
            ]),
        ])]);
        let got = read_entries(reply);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, "2-0");
        assert!(matches!(
            message_of(&got[0].1),
            Some(LiveMessage::Event { id: 3, .. })
        ));
        assert!(matches!(
            message_of(&got[1].1),
            Some(LiveMessage::Notice(_))
        ));
    }
}
