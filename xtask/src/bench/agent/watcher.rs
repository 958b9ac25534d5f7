//! WebSocket watchers of a conversation's events socket.
//!
//! A watcher is what a browser tab is to the server: one socket that replays the
//! stored events and then streams live ones. The measurements open many of them,
//! so this module only connects and turns frames into [`Incoming`] values with
//! two times: when the frame's bytes arrived at the socket (the kernel's stamp, see
//! [`super::arrival`]) and when the bench read it, before any parsing so the
//! client's own work does not count as delivery delay.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, Utc};
use futures_util::StreamExt;
use std::time::SystemTime;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use super::arrival::ArrivalStream;
use super::events::{self, Frame};

/// Bytes a socket reads at a time. tungstenite zero-fills its whole read buffer
/// before every read (128 KiB by default), which made that memset a quarter of
/// the bench's CPU in the fan-out run; events are a few hundred bytes each.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// An open events socket.
pub type Socket = WebSocketStream<ArrivalStream>;

/// When a frame reached a watcher, in the local time of the server's event timestamps.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// When its bytes arrived at the socket.
    pub arrived: NaiveDateTime,
    /// When the bench read it (later than `arrived` by the bench's own queue).
    pub read: NaiveDateTime,
}

/// What the next frame of a socket was.
#[derive(Debug)]
pub enum Incoming {
    /// A text frame, with the times it arrived and was read.
    Frame(Received, Frame),
    /// The server closed the socket (with its reason, if it gave one) or the
    /// connection ended.
    Closed(String),
}

/// Opens the events socket of conversation `id`, replaying from the first event.
pub async fn connect(addr: SocketAddr, id: &str) -> Result<Socket> {
    let url = format!("ws://{addr}/api/conversations/{id}/events/socket?latest_event_id=-1");
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting a watcher to {addr}"))?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let stream = ArrivalStream::new(stream).context("turning on arrival stamps")?;
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let (socket, _response) = client_async_with_config(url.as_str(), stream, Some(config))
        .await
        .with_context(|| format!("WebSocket handshake for conversation {id}"))?;
    Ok(socket)
}

/// `at` in local time, as the server writes event timestamps: UTC plus the local offset read
/// once. `Local::now()` reads the `TZ` variable on every call, which under the environment
/// lock was a twentieth of the bench's CPU in the fan-out run; a bench run is too short to
/// cross a change of the offset.
fn local(at: SystemTime) -> NaiveDateTime {
    static OFFSET: OnceLock<FixedOffset> = OnceLock::new();
    let offset = *OFFSET.get_or_init(|| *Local::now().offset());
    DateTime::<Utc>::from(at)
        .with_timezone(&offset)
        .naive_local()
}

/// Reads the next text or close frame; pings and binary frames are skipped.
pub async fn next(socket: &mut Socket) -> Result<Incoming> {
    loop {
        let Some(message) = socket.next().await else {
            return Ok(Incoming::Closed("connection ended".to_owned()));
        };
        let read = SystemTime::now();
        // A frame decoded from bytes already buffered arrived with the last read.
        let arrived = socket.get_ref().arrival().unwrap_or(read);
        let received = Received {
            arrived: local(arrived),
            read: local(read),
        };
        match message {
            Ok(Message::Text(text)) => {
                let frame = events::parse_frame(text.as_str())?;
                return Ok(Incoming::Frame(received, frame));
            }
            Ok(Message::Close(frame)) => {
                let reason = frame.map_or_else(
                    || "no reason given".to_owned(),
                    |f| format!("{}: {}", f.code, f.reason.as_str()),
                );
                return Ok(Incoming::Closed(reason));
            }
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => {
                return Ok(Incoming::Closed("connection closed".to_owned()));
            }
            Err(err) => bail!("reading the events socket: {err}"),
        }
    }
}
