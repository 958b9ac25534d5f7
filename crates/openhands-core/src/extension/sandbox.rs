//! Where a conversation's tools run.
//!
//! A sandbox provides a *tool server* per conversation (`crate::tool_protocol`): the one
//! process that touches the workspace. The agent's tools and the file routes both talk to
//! it; the server itself never opens a path inside a workspace.

use crate::repository::CloneTarget;
use crate::sandbox_host::Isolation;
use crate::scope::UserScope;
use crate::secret::Secret;
use crate::tool_protocol::ToolClient;
use async_trait::async_trait;
use std::sync::Arc;

/// What a conversation needs from its sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub scope: UserScope,
    pub conversation_id: String,
    /// The repository to clone on first use, already checked against the server's
    /// repository policy (`crate::repository`).
    pub clone: Option<CloneTarget>,
    pub branch: Option<String>,
    /// Exported to the tools as environment variables.
    pub env: Vec<(String, Secret)>,
    pub git_user_name: Option<String>,
    pub git_user_email: Option<String>,
}

/// A sandbox ready for tools.
#[derive(Debug, Clone)]
pub struct PreparedSandbox {
    /// The conversation's tool server, configured with its environment.
    pub tools: Arc<ToolClient>,
}

/// Why a sandbox could not be prepared. Messages never contain tokens.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    Setup(String),
    #[error("sandbox I/O failed: {0}")]
    Io(String),
}

/// Prepares, hands out and removes conversation sandboxes.
///
/// Guarantees: a workspace belongs to one conversation of one scope; `prepare` is idempotent
/// (preparing an existing workspace reuses it, so a restarted conversation keeps its files);
/// tokens never appear in errors or logs; after `release` or `remove` no process the
/// conversation started is left (for isolated sandboxes).
#[async_trait]
pub trait Sandbox: Send + Sync {
    /// Starts (or reuses) the conversation's tool server for the agent, sets its
    /// environment, and clones the repository on first use.
    async fn prepare(&self, spec: SandboxSpec) -> Result<PreparedSandbox, SandboxError>;

    /// A tool server for the file routes: the conversation's running one, or one started
    /// for a while when the workspace exists; `None` when there is no workspace.
    async fn tools(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<Arc<ToolClient>>, SandboxError>;

    /// The conversation stopped: ends every process its sandbox started.
    async fn release(&self, conversation_id: &str);

    /// The workspace path the conversation's tool server will report, known before
    /// [`Self::prepare`] starts it; `None` when it cannot be known in advance. With it, a
    /// resumed agent asks the LLM while its sandbox is still starting.
    fn workspace_path(&self, _conversation_id: &str) -> Option<String> {
        None
    }

    /// Deletes the workspace (after ending its processes).
    async fn remove(&self, scope: &UserScope, conversation_id: &str) -> Result<(), SandboxError>;

    /// What this sandbox isolates.
    fn isolation(&self) -> Isolation;

    /// Problems that weaken the sandbox without stopping the server, for `/ready`.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}
