//! The outgoing half of an events socket: a response body that *is* the watcher.
//!
//! Delivering one event to 1,000 watchers is 1,000 socket writes, and the fan-out delay
//! is how long that sweep takes. So a watcher has no task and no channel of its own: the
//! HTTP connection polls this stream directly, the conversation's broadcast wakes it,
//! and each poll drains every message that is ready into one buffer. Bursts (an action and
//! its observation) arrive as one [`LiveMessage::Events`] from the publisher, which lingers
//! once per conversation, so each watcher wakes once and writes once per burst, with no
//! timer of its own.
//!
//! Order of a feed: stored events after `latest_event_id` (replay, read page by page),
//! then live events, skipping ids already sent. The broadcast is subscribed *before* the
//! replay is read and events are stored before they are published, so nothing falls
//! between the two and nothing is sent twice. Frames from the client's side of the
//! socket (pongs, error replies, pings, a close) come in through a [`Control`] channel.
//!
//! A watcher that falls more than the broadcast's capacity behind gets a close frame
//! saying how to resume; the agent never waits for it, because the broadcast overwrites
//! and the connection only reads the feed as fast as the client takes it.

use actix_http::ws::{CloseCode, CloseReason, OpCode, Parser};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use futures_util::future::BoxFuture;
use futures_util::task::AtomicWaker;
use openhands_core::error::StoreError;
use openhands_core::event::{EventPage, EventQuery};
use openhands_core::extension::{EventStore, LiveMessage, LiveReceiver};
use openhands_core::scope::UserScope;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use tokio::sync::mpsc;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// Events read from the store per replay page.
const REPLAY_PAGE: usize = 100;
/// A poll stops gathering live messages once this much is buffered.
const FLUSH_AT: usize = 64 * 1024;
/// A feed keeps a buffer of at most this much room between writes (see `hand_out`).
const KEEP_BUFFER: usize = 16 * 1024;

/// Control frames carry at most 125 bytes; two of them are the close code.
const MAX_CLOSE_DESCRIPTION: usize = 123;

/// Cuts `text` to at most `max` bytes without splitting a character.
fn truncate_to_boundary(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// A frame the reading side asks the feed to send.
#[derive(Debug)]
pub enum Control {
    Text(String),
    Ping(Bytes),
    Pong(Bytes),
    /// Send this close frame and end the socket.
    Close(Option<CloseReason>),
}

/// Where replayed events come from.
pub struct ReplaySource {
    pub store: Arc<dyn EventStore>,
    pub scope: UserScope,
    pub conversation_id: String,
}

impl ReplaySource {
    /// Reads the next `limit` events in a task of its own. A store read may queue for a
    /// lock the agent also takes (the file store's per-conversation id lock); a future
    /// polled only when the client's socket has room could be granted that lock and then
    /// sit on it, stalling the agent behind a slow watcher. A task always runs to the end.
    /// The streamed trajectory reads its pages through here for the same reason.
    pub(crate) fn page_after(
        &self,
        last_sent: i64,
        limit: usize,
    ) -> BoxFuture<'static, Result<EventPage, StoreError>> {
        let store = Arc::clone(&self.store);
        let scope = self.scope.clone();
        let id = self.conversation_id.clone();
        let query = EventQuery {
            // `last_sent` comes from the client (`latest_event_id`): any i64, `i64::MAX` included.
            start_id: u64::try_from(last_sent.saturating_add(1)).unwrap_or(0),
            end_id: None,
            reverse: false,
            limit,
        };
        let read = tokio::spawn(async move { store.read(&scope, &id, query).await });
        Box::pin(async move {
            read.await
                .map_err(|e| StoreError::Backend(format!("replay task failed: {e}")))?
        })
    }
}

/// The waker the control channel is polled with: it notes that the channel woke the
/// feed, then wakes the connection.
///
/// A feed is polled once per live burst for each watcher (1,000 of them on a busy
/// conversation), and control frames are rare. Polling the channel on every one of
/// those polls read its queue twice, on memory nothing else had touched since the last
/// burst, which made it the largest cost of ours on the delivery path. With this waker
/// the feed polls the channel only when the channel has woken it.
struct ControlWake {
    woken: AtomicBool,
    connection: AtomicWaker,
}

impl Wake for ControlWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.connection.wake();
    }
}

/// Runs when the feed is dropped, that is when the connection has ended.
pub struct OnDrop(Option<Box<dyn FnOnce() + Send>>);

impl OnDrop {
    pub fn new(action: impl FnOnce() + Send + 'static) -> Self {
        Self(Some(Box::new(action)))
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(action) = self.0.take() {
            action();
        }
    }
}

/// The body of an events socket; see the module docs.
pub struct EventFeed {
    replay: ReplaySource,
    page: Option<BoxFuture<'static, Result<EventPage, StoreError>>>,
    live: BroadcastStream<LiveMessage>,
    control: mpsc::Receiver<Control>,
    control_wake: Arc<ControlWake>,
    last_sent: i64,
    buf: BytesMut,
    /// A close frame is buffered (or the client is gone): end after the buffer.
    ending: bool,
    _on_drop: OnDrop,
}

impl EventFeed {
    /// A feed replaying after `latest_event_id` (-1 for everything), then following `live`.
    pub fn new(
        replay: ReplaySource,
        latest_event_id: i64,
        live: LiveReceiver,
        control: mpsc::Receiver<Control>,
        on_drop: OnDrop,
    ) -> Self {
        let last_sent = latest_event_id.max(-1);
        // Woken to begin with: the first poll reads the channel and registers with it.
        let control_wake = Arc::new(ControlWake {
            woken: AtomicBool::new(true),
            connection: AtomicWaker::new(),
        });
        Self {
            page: Some(replay.page_after(last_sent, REPLAY_PAGE)),
            replay,
            live: BroadcastStream::new(live),
            control,
            control_wake,
            last_sent,
            buf: BytesMut::new(),
            ending: false,
            _on_drop: on_drop,
        }
    }

    fn text(&mut self, text: &str) {
        Parser::write_message(&mut self.buf, text, OpCode::Text, true, false);
    }

    /// Buffers an event unless this watcher already has it.
    fn event(&mut self, id: u64, json: &str) {
        let id = i64::try_from(id).unwrap_or(i64::MAX);
        if id > self.last_sent {
            self.text(json);
            self.last_sent = id;
        }
    }

    fn close(&mut self, mut reason: Option<CloseReason>) {
        if let Some(description) = reason.as_mut().and_then(|r| r.description.as_mut()) {
            truncate_to_boundary(description, MAX_CLOSE_DESCRIPTION);
        }
        Parser::write_close(&mut self.buf, reason, false);
        self.ending = true;
    }

    /// The buffered bytes as one chunk for the connection to write; the buffer is left empty.
    ///
    /// A live burst (a few hundred bytes to a few KB) is copied into an allocation of its
    /// exact size, and the buffer keeps its room for the next burst. Freezing the buffer
    /// itself would hand over a vector with spare room, which `Bytes` can only wrap in a
    /// reference-counted header of its own: a second allocation and an atomic decrement
    /// when the connection drops the chunk, for each of 1,000 watchers per burst (4 to
    /// 5% of a replica's CPU in the cluster delivery run). A replay page can be far
    /// larger; it is handed over as it is, so that an idle watcher does not keep that room.
    fn hand_out(&mut self) -> Bytes {
        if self.buf.capacity() <= KEEP_BUFFER {
            let chunk = Bytes::copy_from_slice(&self.buf);
            self.buf.clear();
            chunk
        } else {
            std::mem::take(&mut self.buf).freeze()
        }
    }

    fn drain_control(&mut self, cx: &mut Context<'_>) {
        self.control_wake.connection.register(cx.waker());
        if !self.control_wake.woken.swap(false, Ordering::AcqRel) {
            return;
        }
        let waker = Waker::from(Arc::clone(&self.control_wake));
        let mut control_cx = Context::from_waker(&waker);
        while !self.ending {
            match self.control.poll_recv(&mut control_cx) {
                Poll::Ready(Some(Control::Text(text))) => self.text(&text),
                Poll::Ready(Some(Control::Ping(bytes))) => {
                    Parser::write_message(&mut self.buf, bytes, OpCode::Ping, true, false);
                }
                Poll::Ready(Some(Control::Pong(bytes))) => {
                    Parser::write_message(&mut self.buf, bytes, OpCode::Pong, true, false);
                }
                Poll::Ready(Some(Control::Close(reason))) => self.close(reason),
                // The reading side ended: the client is gone.
                Poll::Ready(None) => self.ending = true,
                Poll::Pending => return,
            }
        }
    }

    /// Advances the replay; true once it is complete.
    fn drive_replay(&mut self, cx: &mut Context<'_>) -> bool {
        while let Some(page) = self.page.as_mut() {
            match page.as_mut().poll(cx) {
                Poll::Pending => return false,
                Poll::Ready(Err(err)) => {
                    tracing::error!(error = %err, "replaying events failed");
                    self.page = None;
                    self.close(Some(CloseReason {
                        code: CloseCode::Error,
                        description: Some("reading stored events failed".to_owned()),
                    }));
                    return false;
                }
                Poll::Ready(Ok(page)) => {
                    for event in &page.events {
                        match serde_json::to_string(event) {
                            Ok(json) => self.event(event.id, &json),
                            Err(err) => tracing::error!(error = %err, "encoding an event failed"),
                        }
                    }
                    self.page = (page.has_more && !page.events.is_empty())
                        .then(|| self.replay.page_after(self.last_sent, REPLAY_PAGE));
                    if self.buf.len() >= FLUSH_AT {
                        // Hand this out first; the next poll continues the replay.
                        cx.waker().wake_by_ref();
                        return false;
                    }
                }
            }
        }
        true
    }

    fn drain_live(&mut self, cx: &mut Context<'_>) {
        while !self.ending && self.buf.len() < FLUSH_AT {
            match Pin::new(&mut self.live).poll_next(cx) {
                Poll::Ready(Some(Ok(LiveMessage::Event { id, json }))) => self.event(id, &json),
                Poll::Ready(Some(Ok(LiveMessage::Events(events)))) => {
                    for event in events.iter() {
                        self.event(event.id, &event.json);
                    }
                }
                Poll::Ready(Some(Ok(LiveMessage::Notice(notice)))) => {
                    self.text(&notice.to_string());
                }
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(missed)))) => {
                    let description = format!(
                        "watcher too slow: {missed} messages missed; reconnect with latest_event_id={}",
                        self.last_sent
                    );
                    self.close(Some(CloseReason {
                        code: CloseCode::Policy,
                        description: Some(description),
                    }));
                }
                Poll::Ready(None) => self.close(Some(CloseCode::Away.into())),
                Poll::Pending => return,
            }
        }
        if self.buf.len() >= FLUSH_AT {
            cx.waker().wake_by_ref();
        }
    }
}

impl Stream for EventFeed {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.drain_control(cx);
        if !this.ending && this.drive_replay(cx) {
            this.drain_live(cx);
        }
        if !this.buf.is_empty() {
            return Poll::Ready(Some(Ok(this.hand_out())));
        }
        if this.ending {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::ws::{Codec, Frame};
    use futures_util::StreamExt;
    use openhands_core::event::{Event, NewEvent};
    use openhands_core::oss::FileEventStore;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    use tokio::sync::broadcast;
    use tokio_util::codec::Decoder;

    const CONVERSATION: &str = "feedtest";

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<dyn EventStore>,
        live: broadcast::Sender<LiveMessage>,
        control: mpsc::Sender<Control>,
        dropped: Arc<AtomicBool>,
    }

    async fn fixture(stored: usize, capacity: usize) -> (Fixture, EventFeed) {
        fixture_of((0..stored).map(|i| format!("m{i}")), capacity).await
    }

    /// A feed of a conversation that holds one user message per text.
    async fn fixture_of(
        texts: impl Iterator<Item = String>,
        capacity: usize,
    ) -> (Fixture, EventFeed) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn EventStore> = Arc::new(FileEventStore::new(dir.path().to_path_buf()));
        for text in texts {
            store
                .append(
                    &UserScope::local(),
                    CONVERSATION,
                    NewEvent::user_message(&text, vec![]),
                )
                .await
                .expect("append");
        }
        let (live, receiver) = broadcast::channel(capacity);
        let (control, control_rx) = mpsc::channel(4);
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&dropped);
        let feed = EventFeed::new(
            ReplaySource {
                store: Arc::clone(&store),
                scope: UserScope::local(),
                conversation_id: CONVERSATION.to_owned(),
            },
            -1,
            receiver,
            control_rx,
            OnDrop::new(move || flag.store(true, Ordering::SeqCst)),
        );
        let fixture = Fixture {
            _dir: dir,
            store,
            live,
            control,
            dropped,
        };
        (fixture, feed)
    }

    /// What a client reads: the frames of every chunk until the feed has nothing ready
    /// for a moment, and whether the feed ended.
    async fn read(feed: &mut EventFeed) -> (Vec<Frame>, bool) {
        let mut codec = Codec::new().client_mode();
        let mut bytes = BytesMut::new();
        let mut ended = false;
        loop {
            match tokio::time::timeout(Duration::from_millis(100), feed.next()).await {
                Ok(Some(Ok(chunk))) => bytes.extend_from_slice(&chunk),
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode(&mut bytes).expect("valid frames") {
            frames.push(frame);
        }
        assert!(bytes.is_empty(), "no partial frame left");
        (frames, ended)
    }

    fn event_ids(frames: &[Frame]) -> Vec<u64> {
        frames
            .iter()
            .filter_map(|frame| match frame {
                Frame::Text(text) => {
                    let value: serde_json::Value = serde_json::from_slice(text).ok()?;
                    value["id"].as_u64()
                }
                _ => None,
            })
            .collect()
    }

    async fn store(fixture: &Fixture, text: &str) -> Event {
        fixture
            .store
            .append(
                &UserScope::local(),
                CONVERSATION,
                NewEvent::user_message(text, vec![]),
            )
            .await
            .expect("append")
    }

    async fn publish(fixture: &Fixture, text: &str) -> Event {
        let event = store(fixture, text).await;
        fixture
            .live
            .send(LiveMessage::event(&event))
            .expect("a receiver");
        event
    }

    #[tokio::test]
    async fn replays_then_follows_live_without_gap_or_duplicate() {
        let (fixture, mut feed) = fixture(3, 16).await;
        // Published before the feed is first polled: also in the replay, sent once.
        let overlap = publish(&fixture, "overlap").await;
        assert_eq!(overlap.id, 3);
        let (frames, ended) = read(&mut feed).await;
        assert_eq!(event_ids(&frames), vec![0, 1, 2, 3]);
        assert!(!ended);

        publish(&fixture, "live 1").await;
        publish(&fixture, "live 2").await;
        fixture
            .live
            .send(LiveMessage::Notice(
                serde_json::json!({"status_update": true}),
            ))
            .expect("a receiver");
        let (frames, _) = read(&mut feed).await;
        assert_eq!(event_ids(&frames), vec![4, 5]);
        assert_eq!(frames.len(), 3, "the notice too: {frames:?}");
    }

    #[tokio::test]
    async fn a_batch_goes_out_in_order_in_one_chunk_without_what_was_sent() {
        let (fixture, mut feed) = fixture(2, 16).await;
        let (frames, _) = read(&mut feed).await;
        assert_eq!(event_ids(&frames), vec![0, 1]);
        let mut batch = Vec::new();
        for text in ["a", "b", "c"] {
            let event = store(&fixture, text).await;
            batch.push(openhands_core::extension::LiveEvent::of(&event));
        }
        // Id 1 again (already sent), then 2..=4.
        let resent = fixture
            .store
            .read(
                &UserScope::local(),
                CONVERSATION,
                EventQuery {
                    start_id: 1,
                    end_id: Some(1),
                    reverse: false,
                    limit: 1,
                },
            )
            .await
            .expect("read");
        batch.insert(
            0,
            openhands_core::extension::LiveEvent::of(&resent.events[0]),
        );
        fixture
            .live
            .send(LiveMessage::Events(batch.into()))
            .expect("a receiver");
        let chunk = tokio::time::timeout(Duration::from_secs(5), feed.next())
            .await
            .expect("ready")
            .expect("a chunk")
            .expect("bytes");
        let mut codec = Codec::new().client_mode();
        let mut bytes = BytesMut::from(&chunk[..]);
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode(&mut bytes).expect("valid frames") {
            frames.push(frame);
        }
        assert_eq!(
            event_ids(&frames),
            vec![2, 3, 4],
            "one chunk, in order, no repeat"
        );
    }

    #[tokio::test]
    async fn a_feed_keeps_room_for_live_bursts_but_not_for_a_large_replay() {
        let long = "x".repeat(400);
        let (fixture, mut feed) = fixture_of((0..100).map(|i| format!("{i} {long}")), 16).await;
        let (frames, _) = read(&mut feed).await;
        assert_eq!(event_ids(&frames), (0..100).collect::<Vec<_>>());
        assert!(
            feed.buf.capacity() <= KEEP_BUFFER,
            "an idle watcher keeps {} bytes of replay buffer",
            feed.buf.capacity()
        );

        for burst in 0..3 {
            publish(&fixture, &format!("live {burst}")).await;
            let (frames, _) = read(&mut feed).await;
            assert_eq!(event_ids(&frames), vec![100 + burst]);
            assert!(feed.buf.is_empty(), "every chunk was handed out whole");
            assert!(
                feed.buf.capacity() > 0,
                "the buffer is kept for the next burst"
            );
        }
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_closed_with_how_to_resume() {
        let (fixture, mut feed) = fixture(2, 4).await;
        let (frames, _) = read(&mut feed).await;
        assert_eq!(event_ids(&frames), vec![0, 1]);

        // The agent publishes ten events while this watcher is not polled: the sender
        // never waits, and the watcher has lost some of them.
        for i in 0..10 {
            publish(&fixture, &format!("burst {i}")).await;
        }
        let (frames, ended) = read(&mut feed).await;
        assert!(ended, "the feed ends after the close frame");
        assert_eq!(event_ids(&frames), Vec::<u64>::new());
        match frames.last() {
            Some(Frame::Close(Some(reason))) => {
                assert_eq!(reason.code, CloseCode::Policy);
                let description = reason.description.as_deref().unwrap_or_default();
                assert!(
                    description.contains("watcher too slow")
                        && description.contains("latest_event_id=1"),
                    "{description}"
                );
            }
            other => panic!("expected a policy close, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn control_frames_are_sent_and_a_close_ends_the_feed() {
        let (fixture, mut feed) = fixture(0, 4).await;
        fixture
            .control
            .send(Control::Pong(Bytes::from_static(b"p")))
            .await
            .expect("queued");
        fixture
            .control
            .send(Control::Text("{\"error\":true}".to_owned()))
            .await
            .expect("queued");
        fixture
            .control
            .send(Control::Close(Some(CloseCode::Normal.into())))
            .await
            .expect("queued");
        let (frames, ended) = read(&mut feed).await;
        assert!(ended);
        assert!(
            matches!(&frames[0], Frame::Pong(b) if &b[..] == b"p"),
            "{frames:?}"
        );
        assert!(matches!(&frames[1], Frame::Text(t) if &t[..] == b"{\"error\":true}"));
        assert!(
            matches!(&frames[2], Frame::Close(Some(r)) if r.code == CloseCode::Normal),
            "{frames:?}"
        );
        drop(feed);
        assert!(
            fixture.dropped.load(Ordering::SeqCst),
            "watcher count released"
        );
    }

    #[tokio::test]
    async fn a_control_frame_queued_while_the_feed_waits_goes_out_and_live_events_still_follow() {
        let (fixture, mut feed) = fixture(1, 4).await;
        let (frames, _) = read(&mut feed).await;
        assert_eq!(event_ids(&frames), vec![0]);
        // The feed now waits on both channels; the control one must wake it by itself.
        let next = tokio::spawn(async move {
            let chunk = feed.next().await;
            (feed, chunk)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        fixture
            .control
            .send(Control::Ping(Bytes::from_static(b"hi")))
            .await
            .expect("queued");
        let (mut feed, chunk) = tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("the control frame woke the feed")
            .expect("task");
        let mut bytes = BytesMut::from(&chunk.expect("a chunk").expect("bytes")[..]);
        let frame = Codec::new()
            .client_mode()
            .decode(&mut bytes)
            .expect("valid");
        assert!(
            matches!(&frame, Some(Frame::Ping(b)) if &b[..] == b"hi"),
            "{frame:?}"
        );
        // Live events keep coming after it, and so do later control frames.
        let event = publish(&fixture, "after").await;
        fixture
            .control
            .send(Control::Pong(Bytes::from_static(b"p")))
            .await
            .expect("queued");
        let (frames, ended) = read(&mut feed).await;
        assert!(!ended);
        assert_eq!(event_ids(&frames), vec![event.id]);
        assert!(
            frames
                .iter()
                .any(|f| matches!(f, Frame::Pong(b) if &b[..] == b"p")),
            "{frames:?}"
        );
    }

    #[tokio::test]
    async fn the_feed_ends_when_the_client_side_or_the_conversation_goes_away() {
        let (client_gone, mut feed) = fixture(1, 4).await;
        let (frames, _) = read(&mut feed).await;
        assert_eq!(event_ids(&frames), vec![0]);
        drop(client_gone.control);
        let (frames, ended) = read(&mut feed).await;
        assert!(ended && frames.is_empty(), "{frames:?}");

        let (conversation_gone, mut feed) = fixture(0, 4).await;
        drop(conversation_gone.live);
        let (frames, ended) = read(&mut feed).await;
        assert!(ended);
        assert!(
            matches!(frames.last(), Some(Frame::Close(Some(r))) if r.code == CloseCode::Away),
            "{frames:?}"
        );
    }

    #[test]
    fn close_descriptions_are_cut_on_a_character_boundary() {
        let mut text = "é".repeat(100);
        truncate_to_boundary(&mut text, MAX_CLOSE_DESCRIPTION);
        assert_eq!(text.len(), 122);
        let mut short = "fine".to_owned();
        truncate_to_boundary(&mut short, MAX_CLOSE_DESCRIPTION);
        assert_eq!(short, "fine");
    }
}
