//! The tool server: one small process per conversation, inside the conversation's sandbox,
//! that does everything touching the workspace, spoken to over the tool protocol
//! ([`openhands_core::tool_protocol`]).
//!
//! # Why a separate process
//!
//! The workspace belongs to the agent, which runs arbitrary code: any path in it may be a
//! symlink to somewhere else, and its `.git/config` may name programs for git to run. If
//! the server opened workspace paths or ran git there itself, each of those would act with
//! the server's rights, on the server's files. Instead the server never opens a path inside
//! a workspace: it asks this process, which runs inside the sandbox and sees nothing but the
//! workspace, so whatever a planted symlink or config achieves, it achieves only inside the
//! sandbox the agent already controls. The checks here (confinement of paths, no symlink
//! following on writes and archives, hardened git) are defence in depth for the unisolated
//! `oss.process` mode and for the server's users' sake (a download must not contain files
//! from outside the workspace).
//!
//! # Modules
//!
//! * [`serve`](crate::serve()) and [`ServeOptions`]: the protocol loop (`serve.rs`), usable over any
//!   byte stream, in-process too; `handlers.rs` dispatches each request;
//! * `bash/` and `session.rs`: persistent shells, by session name, with timeouts,
//!   interrupts and restarts;
//! * `editor/`: the `str_replace` file editor with per-connection undo;
//! * `workspace.rs`: the confinement of every path to the workspace;
//! * `files.rs` (list, read, upload), `archive.rs` (zip), `git.rs` (status, diff, ignore
//!   checks, identity), `clone.rs` (the initial clone with credentials kept out of argv);
//! * `limits.rs`: rlimits, the workspace disk limit and notes naming the limit that stopped
//!   a command; `seccomp.rs`: the system-call filter; `relay.rs`: the egress relay;
//! * [`cli`]: the program's command line (used by `main.rs`, and available to a server
//!   binary that offers the tool server as a subcommand).

mod archive;
mod bash;
pub mod cli;
mod clone;
mod editor;
mod error;
mod files;
mod git;
mod handlers;
pub mod limits;
mod output;
mod relay;
pub mod seccomp;
mod serve;
mod session;
mod workspace;

pub use error::ToolError;
pub use serve::{ServeError, ServeOptions, serve, server_name};
