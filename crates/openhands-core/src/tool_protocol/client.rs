//! The server's side of the tool protocol: many concurrent calls over one connection.
//!
//! One task reads answers and hands each to the call waiting for its id; calls write their
//! frame under a lock. When the connection ends (the sandbox stopped or was killed), every
//! waiting call and every later one fails with [`ToolCallError::Disconnected`], carrying the
//! reason the sandbox recorded with [`ToolClient::set_exit_reason`] when there is one.

use super::PROTOCOL_VERSION;
use super::framing::{FrameError, read_frame, write_frame};
use super::messages::{Hello, Request, RequestFrame, ResponseFrame, ToolFailure};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

/// How long the tool server gets to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closed connection waits for its owner to say why the tool server ended.
const EXIT_REASON_WAIT: Duration = Duration::from_secs(2);

type Reply = Result<serde_json::Value, ToolFailure>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolCallError {
    /// The tool server answered with a failure (its message is for the LLM and the user).
    #[error(transparent)]
    Failed(#[from] ToolFailure),
    /// The connection to the tool server is gone.
    #[error("the sandbox is not running: {0}")]
    Disconnected(String),
    /// The tool server said something that does not follow the protocol.
    #[error("the sandbox's tool server broke the protocol: {0}")]
    Protocol(String),
}

#[derive(Default)]
struct Shared {
    pending: HashMap<u64, oneshot::Sender<Reply>>,
    /// Set once the connection is gone; later calls fail at once with it.
    closed: Option<String>,
    /// Why the sandbox ended, recorded by its owner (e.g. "the memory limit was reached").
    exit_reason: Option<String>,
}

/// A connection to one tool server.
pub struct ToolClient {
    hello: Hello,
    writer: tokio::sync::Mutex<Writer>,
    shared: Arc<Mutex<Shared>>,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ToolClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolClient")
            .field("hello", &self.hello)
            .finish_non_exhaustive()
    }
}

impl Drop for ToolClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ToolClient {
    /// Waits for the tool server's [`Hello`] on `reader`, checks the version, and starts
    /// reading answers.
    pub async fn connect<R, W>(reader: R, writer: W) -> Result<Self, ToolCallError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (_never, exit) = oneshot::channel();
        Self::connect_with_exit(reader, writer, exit).await
    }

    /// Like [`Self::connect`], for a tool server whose owner learns why it ended: when the
    /// connection ends, waiting calls wait (briefly) for `exit` and fail with its reason.
    pub async fn connect_with_exit<R, W>(
        mut reader: R,
        writer: W,
        exit: oneshot::Receiver<Option<String>>,
    ) -> Result<Self, ToolCallError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let hello: Hello = tokio::time::timeout(HELLO_TIMEOUT, read_frame(&mut reader))
            .await
            .map_err(|_| {
                ToolCallError::Disconnected("the tool server did not start in time".into())
            })?
            .map_err(|e| match e {
                FrameError::Closed | FrameError::Io(_) => ToolCallError::Disconnected(format!(
                    "the tool server ended before it started ({e})"
                )),
                other => ToolCallError::Protocol(other.to_string()),
            })?;
        if hello.protocol != PROTOCOL_VERSION {
            return Err(ToolCallError::Protocol(format!(
                "the tool server speaks protocol version {}, this server {PROTOCOL_VERSION}",
                hello.protocol
            )));
        }
        let shared = Arc::new(Mutex::new(Shared::default()));
        let reader = tokio::spawn(read_answers(reader, shared.clone(), exit));
        Ok(Self {
            hello,
            writer: tokio::sync::Mutex::new(Box::new(writer)),
            shared,
            next_id: AtomicU64::new(1),
            reader,
        })
    }

    /// What the tool server said when it started.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The workspace as the tools see it.
    pub fn workspace(&self) -> &str {
        &self.hello.workspace
    }

    /// Whether the connection is still open.
    pub fn is_connected(&self) -> bool {
        lock(&self.shared).closed.is_none()
    }

    /// Records why the sandbox ended; calls failing from now on say so.
    pub fn set_exit_reason(&self, reason: impl Into<String>) {
        lock(&self.shared).exit_reason = Some(reason.into());
    }

    fn disconnected(&self, fallback: &str) -> ToolCallError {
        let shared = lock(&self.shared);
        let reason = shared
            .exit_reason
            .clone()
            .or_else(|| shared.closed.clone())
            .unwrap_or_else(|| fallback.to_owned());
        ToolCallError::Disconnected(reason)
    }

    /// Sends `request` and waits for its answer, parsed as `T`.
    pub async fn call<T: DeserializeOwned>(&self, request: Request) -> Result<T, ToolCallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut shared = lock(&self.shared);
            if shared.closed.is_some() {
                drop(shared);
                return Err(self.disconnected("the connection was closed"));
            }
            shared.pending.insert(id, tx);
        }
        let frame = RequestFrame { id, request };
        let written = {
            let mut writer = self.writer.lock().await;
            write_frame(&mut *writer, &frame).await
        };
        if let Err(e) = written {
            lock(&self.shared).pending.remove(&id);
            return Err(match e {
                FrameError::TooLarge(_) | FrameError::Json(_) => {
                    ToolCallError::Protocol(e.to_string())
                }
                FrameError::Io(_) | FrameError::Closed => self.disconnected(&e.to_string()),
            });
        }
        let value = match rx.await {
            Ok(Ok(value)) => value,
            Ok(Err(failure)) => return Err(ToolCallError::Failed(failure)),
            Err(_) => return Err(self.disconnected("the connection was closed")),
        };
        serde_json::from_value(value).map_err(|e| ToolCallError::Protocol(e.to_string()))
    }
}

/// Hands each answer to its caller until the connection ends, then fails the rest.
async fn read_answers<R: AsyncRead + Unpin>(
    mut reader: R,
    shared: Arc<Mutex<Shared>>,
    exit: oneshot::Receiver<Option<String>>,
) {
    let reason = loop {
        let frame: ResponseFrame = match read_frame(&mut reader).await {
            Ok(frame) => frame,
            Err(FrameError::Closed) => break "the tool server ended".to_owned(),
            Err(e) => break format!("reading from the tool server failed: {e}"),
        };
        let reply = match (frame.ok, frame.error) {
            (Some(value), None) => Ok(value),
            (None, Some(failure)) => Err(failure),
            _ => break format!("answer {} has neither or both of ok and error", frame.id),
        };
        let waiter = lock(&shared).pending.remove(&frame.id);
        if let Some(waiter) = waiter {
            let _ = waiter.send(reply);
        }
    };
    // The owner sees the process end just after the stream does; its reason is better.
    let exit_reason = tokio::time::timeout(EXIT_REASON_WAIT, exit)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    let mut shared = lock(&shared);
    if shared.exit_reason.is_none() {
        shared.exit_reason = exit_reason;
    }
    shared.closed = Some(reason);
    // Dropping the senders fails every waiting call with `Disconnected`.
    shared.pending.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tool_protocol::{Done, FailureCode};
    use serde_json::json;

    async fn fake_server(
        hello_protocol: u32,
    ) -> (ToolClient, tokio::io::DuplexStream, tokio::io::DuplexStream) {
        let (client_read, mut server_write) = tokio::io::duplex(1 << 16);
        let (server_read, client_write) = tokio::io::duplex(1 << 16);
        let hello = Hello {
            protocol: hello_protocol,
            server: "fake".into(),
            workspace: "/workspace".into(),
        };
        write_frame(&mut server_write, &hello).await.expect("hello");
        let client = ToolClient::connect(client_read, client_write)
            .await
            .expect("connects");
        (client, server_read, server_write)
    }

    #[tokio::test]
    async fn answers_reach_their_callers_out_of_order() {
        let (client, mut server_read, mut server_write) = fake_server(PROTOCOL_VERSION).await;
        let client = Arc::new(client);
        let first = tokio::spawn({
            let client = client.clone();
            async move { client.call::<Done>(Request::Ping).await }
        });
        let second = tokio::spawn({
            let client = client.clone();
            async move { client.call::<Done>(Request::GitChanges).await }
        });
        let a: RequestFrame = read_frame(&mut server_read).await.expect("first request");
        let b: RequestFrame = read_frame(&mut server_read).await.expect("second request");
        let (ping, changes) = if a.request == Request::Ping {
            (a, b)
        } else {
            (b, a)
        };
        let failure = ToolFailure::new(FailureCode::NotARepository, "not a repository");
        write_frame(
            &mut server_write,
            &json!({"id": changes.id, "error": failure}),
        )
        .await
        .expect("answer");
        write_frame(&mut server_write, &json!({"id": ping.id, "ok": {}}))
            .await
            .expect("answer");
        assert!(first.await.expect("joins").is_ok());
        match second.await.expect("joins") {
            Err(ToolCallError::Failed(f)) => assert_eq!(f.code, FailureCode::NotARepository),
            other => panic!("expected the failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_closed_connection_fails_waiting_and_later_calls_with_the_exit_reason() {
        let (client, server_read, server_write) = fake_server(PROTOCOL_VERSION).await;
        let client = Arc::new(client);
        let waiting = tokio::spawn({
            let client = client.clone();
            async move { client.call::<Done>(Request::Ping).await }
        });
        tokio::task::yield_now().await;
        client.set_exit_reason("the memory limit of 512 MiB was reached");
        drop((server_read, server_write));
        for result in [
            waiting.await.expect("joins"),
            client.call::<Done>(Request::Ping).await,
        ] {
            match result {
                Err(ToolCallError::Disconnected(reason)) => {
                    assert!(reason.contains("memory limit"), "{reason}")
                }
                other => panic!("expected a disconnect, got {other:?}"),
            }
        }
        assert!(!client.is_connected());
    }

    #[tokio::test]
    async fn another_protocol_version_is_refused() {
        let (client_read, mut server_write) = tokio::io::duplex(1024);
        let (_server_read, client_write) = tokio::io::duplex(1024);
        let hello = Hello {
            protocol: PROTOCOL_VERSION + 1,
            server: "future".into(),
            workspace: "/workspace".into(),
        };
        write_frame(&mut server_write, &hello).await.expect("hello");
        let result = ToolClient::connect(client_read, client_write).await;
        assert!(matches!(result, Err(ToolCallError::Protocol(m)) if m.contains("version")));
    }
}
