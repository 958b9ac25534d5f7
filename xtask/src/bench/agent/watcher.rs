//! WebSocket watchers of a conversation's events socket.
//!
//! A watcher is what a browser tab is to the server: one socket that replays the
//! stored events and then streams live ones. The measurements open many of them,
//! so this module only connects and turns frames into [`Incoming`] values with
//! the time they arrived, read before any parsing so the client's own work does
//! not count as delivery delay.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use std::sync::OnceLock;

use chrono::{FixedOffset, Local, NaiveDateTime, Utc};
use futures_util::{Stream, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use super::events::{self, Frame};

/// Bytes a socket reads at a time. tungstenite zero-fills its whole read buffer
/// before every read (128 KiB by default), which made that memset a quarter of
/// the bench's CPU in the fan-out run; events are a few hundred bytes each.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// An open events socket.
pub type Socket = WebSocketStream<TcpStream>;

/// What the next frame of a socket was.
#[derive(Debug)]
pub enum Incoming {
    /// A text frame, with the local time it was read.
    Frame(NaiveDateTime, Frame),
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
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let (socket, _response) = client_async_with_config(url.as_str(), stream, Some(config))
        .await
        .with_context(|| format!("WebSocket handshake for conversation {id}"))?;
    Ok(socket)
}

/// The local time, as the server writes event timestamps: UTC plus the local offset read
/// once. `Local::now()` reads the `TZ` variable on every call, which under the environment
/// lock was a twentieth of the bench's CPU in the fan-out run; a bench run is too short to
/// cross a change of the offset.
fn local_now() -> NaiveDateTime {
    static OFFSET: OnceLock<FixedOffset> = OnceLock::new();
    let offset = *OFFSET.get_or_init(|| *Local::now().offset());
    Utc::now().with_timezone(&offset).naive_local()
}

/// Reads the next text or close frame; pings and binary frames are skipped.
pub async fn next<S>(socket: &mut S) -> Result<Incoming>
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    loop {
        let Some(message) = socket.next().await else {
            return Ok(Incoming::Closed("connection ended".to_owned()));
        };
        let received = local_now();
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
