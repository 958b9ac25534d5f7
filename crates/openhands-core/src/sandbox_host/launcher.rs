//! How a sandbox implementation starts the tool server of one conversation.

use crate::extension::SandboxError;
use async_trait::async_trait;
use std::path::Path;

/// How much a sandbox keeps the agent from the host, for logs and `/ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A plain local process with the server's rights (`oss.process`).
    None,
    /// Separate namespaces, seccomp and limits (`saas.bwrap`).
    Isolated,
}

/// Starts tool servers: as a local process, inside bubblewrap, ...
///
/// The [`crate::sandbox_host::ToolServerSandbox`] owns the workspaces and the running tool
/// servers; a launcher only knows how to start one and what to clean up afterwards.
#[async_trait]
pub trait ToolServerLauncher: Send + Sync + 'static {
    /// Starts the tool server of `conversation_id` working in `workspace` (a host directory
    /// that exists and that the server created). The child's stdin and stdout must be
    /// piped (they carry the tool protocol); its stderr should be piped too (it is logged)
    /// or null. It must be spawned with `kill_on_drop(true)`.
    async fn launch(
        &self,
        conversation_id: &str,
        workspace: &Path,
    ) -> Result<LaunchedToolServer, SandboxError>;

    /// What this launcher isolates.
    fn isolation(&self) -> Isolation;

    /// The workspace path a tool server launched for `workspace` reports in its hello,
    /// when known in advance (see [`crate::extension::Sandbox::workspace_path`]).
    fn reported_workspace(&self, _workspace: &Path) -> Option<String> {
        None
    }

    /// Problems that weaken the sandbox without stopping the server (no cgroups, running
    /// as root), for the log and `/ready`.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A started tool server.
pub struct LaunchedToolServer {
    pub child: tokio::process::Child,
    /// Variables the tools' shells get on top of the conversation's own (e.g. the proxy).
    pub extra_env: Vec<(String, String)>,
    /// What the launch set up besides the process (cgroups, a proxy listener); dropped
    /// after the process ended.
    pub resources: Box<dyn LaunchResources>,
}

impl std::fmt::Debug for LaunchedToolServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchedToolServer")
            .field("child", &self.child.id())
            .finish_non_exhaustive()
    }
}

/// Resources of one launch. Dropping them releases them.
pub trait LaunchResources: Send + Sync {
    /// Ends every process the sandbox started (the tool server, its shells and whatever
    /// they started, including processes that left their session). Called when the
    /// conversation stops; idempotent.
    fn kill_all(&self) {}

    /// After the tool server ended: the limit that ended it, in words for the user
    /// ("the memory limit of 2 GiB was reached"), if one did.
    fn exit_reason(&self) -> Option<String> {
        None
    }
}

/// Nothing to release.
#[derive(Debug, Default)]
pub struct NoResources;

impl LaunchResources for NoResources {}
