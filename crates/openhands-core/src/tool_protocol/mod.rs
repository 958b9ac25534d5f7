//! The tool protocol: how the server talks to the tool server inside a conversation's
//! sandbox.
//!
//! Everything that touches a workspace (the agent's shells and file editor, the file routes,
//! git status and diff, the zip download, uploads and the initial clone) is done by one small
//! process per conversation, the *tool server* (`openhands-tool-server`), which runs inside
//! the sandbox and sees nothing but the workspace. The server never opens a path inside a
//! workspace itself, so a symlink or a hostile `.git/config` planted by the agent can only
//! act inside the sandbox that the agent already controls.
//!
//! # Wire format (version [`PROTOCOL_VERSION`])
//!
//! A byte stream in each direction (the tool server's stdin and stdout for local sandboxes;
//! any ordered, reliable stream works, e.g. a TCP or Unix connection later). Each message
//! is a *frame*: a 4-byte big-endian length, then that many bytes of UTF-8 JSON
//! ([`framing`]). No frame is longer than [`MAX_FRAME_BYTES`]; a longer length ends the
//! connection.
//!
//! 1. The tool server speaks first with a [`Hello`]: `{"protocol": 1, "server": "...",
//!    "workspace": "/workspace"}`. The client refuses any other major version.
//! 2. The client sends [`RequestFrame`]s: `{"id": 7, "op": "bash_run", ...}` (the
//!    operations are the variants of [`Request`]). Ids are chosen by the client and unique
//!    per connection.
//! 3. The tool server answers every request exactly once with a [`ResponseFrame`]:
//!    `{"id": 7, "ok": {...}}` or `{"id": 7, "error": {"code": "not_found", "message":
//!    "..."}}` ([`ToolFailure`]). Requests run concurrently and may be answered out of
//!    order, except that the requests of one bash session run one at a time
//!    (`bash_interrupt` is the exception: it reaches a command that is still running).
//!
//! Binary payloads (uploads, downloads, archives) travel as standard base64 strings.
//!
//! The tool server runs as the conversation's tenant and must be assumed compromised by
//! the agent: the client bounds every frame, checks every answer's shape, and never
//! interprets paths it returns.

mod client;
pub mod framing;
mod messages;

pub use client::{ToolCallError, ToolClient};
pub use messages::*;

/// The protocol version this build speaks (major version; any change that an older peer
/// would misread bumps it).
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame either side accepts: 64 MiB (a zip of the workspace or a file upload,
/// base64-encoded, fits with room to spare under the limits of [`limits`]).
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// Size limits that requests carry and the tool server enforces.
pub mod limits {
    /// Largest file `read_file` returns (bytes).
    pub const MAX_READ_BYTES: u64 = 8 << 20;
    /// Largest archive `zip` returns (bytes).
    pub const MAX_ZIP_BYTES: u64 = 40 << 20;
    /// Largest single upload (bytes).
    pub const MAX_UPLOAD_BYTES: u64 = 40 << 20;
    /// Most entries `list_files` returns.
    pub const MAX_LIST_ENTRIES: usize = 10_000;
}
