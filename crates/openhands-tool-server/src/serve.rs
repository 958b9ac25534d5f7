//! The protocol loop: say hello, read requests, run each in its own task, write answers.
//!
//! Reading and writing run side by side in the caller's task (answers go through a channel
//! to the one writer), so `serve` works over any byte stream, in-process too. When the
//! reader ends, every shell's process group is killed, the requests still running are
//! dropped, and `serve` returns.

use crate::error::ToolError;
use crate::handlers::State;
use crate::workspace::Workspace;
use openhands_core::tool_protocol::framing::{FrameError, read_frame, write_frame};
use openhands_core::tool_protocol::{
    FailureCode, Hello, PROTOCOL_VERSION, RequestFrame, ResponseFrame, ToolFailure,
};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// How the tool server serves one connection.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The workspace directory (must exist).
    pub workspace: PathBuf,
    /// The workspace as the tools see it: what [`Hello::workspace`] says, the name paths
    /// are shown under and accepted with (default: the workspace's path).
    pub shown_workspace: String,
    /// Disk use above which commands get a note and writes are refused; 0: no limit.
    pub max_workspace_bytes: u64,
    /// CPU seconds each process started from a shell may use (`ulimit -t` in every shell,
    /// not a limit of the long-lived tool server itself); 0: no limit.
    pub shell_cpu_seconds: u64,
}

impl ServeOptions {
    /// Options for `workspace`, shown as itself, without limits.
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        let workspace = workspace.into();
        Self {
            shown_workspace: workspace.display().to_string(),
            workspace,
            max_workspace_bytes: 0,
            shell_cpu_seconds: 0,
        }
    }
}

/// Why serving stopped before the connection ended cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The workspace cannot be used.
    #[error("the workspace cannot be used: {0}")]
    Workspace(#[from] ToolError),
    /// The connection failed or carried a frame over the size limit.
    #[error(transparent)]
    Connection(#[from] FrameError),
}

/// The name this build gives in its hello.
pub fn server_name() -> String {
    format!("openhands-tool-server {}", env!("CARGO_PKG_VERSION"))
}

/// Serves the tool protocol on `reader`/`writer` until the reader ends.
pub async fn serve<R, W>(reader: R, mut writer: W, options: ServeOptions) -> Result<(), ServeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let ws = Workspace::new(&options.workspace, Some(&options.shown_workspace))?;
    let state = Arc::new(State::new(
        ws,
        options.max_workspace_bytes,
        options.shell_cpu_seconds,
    ));
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        server: server_name(),
        workspace: state.workspace().shown_root(),
    };
    write_frame(&mut writer, &hello).await?;
    let (answers, outbox) = mpsc::unbounded_channel();
    let (result, ()) = tokio::join!(
        read_requests(reader, state, answers),
        write_answers(writer, outbox)
    );
    result
}

async fn read_requests<R: AsyncRead + Unpin>(
    mut reader: R,
    state: Arc<State>,
    answers: mpsc::UnboundedSender<ResponseFrame>,
) -> Result<(), ServeError> {
    let mut running = JoinSet::new();
    let result = loop {
        let frame: serde_json::Value = match read_frame(&mut reader).await {
            Ok(frame) => frame,
            Err(FrameError::Closed) => break Ok(()),
            Err(FrameError::Json(e)) => {
                tracing::warn!(error = %e, "a frame is not JSON; ignored");
                continue;
            }
            Err(e) => break Err(e.into()),
        };
        while running.try_join_next().is_some() {}
        let parsed = RequestFrame::deserialize(&frame);
        match parsed {
            Ok(RequestFrame { id, request }) => {
                drop(frame);
                let state = state.clone();
                let answers = answers.clone();
                running.spawn(async move {
                    let answer = answer(id, state.handle(request).await);
                    let _ = answers.send(answer);
                });
            }
            Err(e) => {
                let Some(id) = frame.get("id").and_then(serde_json::Value::as_u64) else {
                    tracing::warn!("a frame without an id; ignored");
                    continue;
                };
                let op = frame.get("op").and_then(|op| op.as_str()).unwrap_or("");
                let failure = if e.to_string().starts_with("unknown variant") {
                    ToolFailure::new(
                        FailureCode::Unsupported,
                        format!("this tool server does not know the operation `{op}`"),
                    )
                } else {
                    ToolFailure::new(
                        FailureCode::InvalidArgument,
                        format!("the `{op}` request is malformed: {e}"),
                    )
                };
                let _ = answers.send(answer(id, Err(failure)));
            }
        }
    };
    state.kill_shells();
    running.shutdown().await;
    result
}

fn answer(id: u64, reply: Result<serde_json::Value, ToolFailure>) -> ResponseFrame {
    match reply {
        Ok(value) => ResponseFrame {
            id,
            ok: Some(value),
            error: None,
        },
        Err(failure) => ResponseFrame {
            id,
            ok: None,
            error: Some(failure),
        },
    }
}

async fn write_answers<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut outbox: mpsc::UnboundedReceiver<ResponseFrame>,
) {
    while let Some(frame) = outbox.recv().await {
        let id = frame.id;
        let written = match write_frame(&mut writer, &frame).await {
            Err(FrameError::TooLarge(bytes)) => {
                drop(frame);
                let failure = ToolFailure::new(
                    FailureCode::TooLarge,
                    format!("the answer ({bytes} bytes) is larger than a frame may be"),
                );
                write_frame(&mut writer, &answer(id, Err(failure))).await
            }
            other => other,
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "writing an answer failed; no more answers are sent");
            break;
        }
    }
}
