//! Where a conversation's tools run.

use crate::scope::UserScope;
use crate::secret::Secret;
use crate::secrets::ProviderType;
use async_trait::async_trait;
use std::path::PathBuf;

/// What a conversation needs from its sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub scope: UserScope,
    pub conversation_id: String,
    /// `owner/repo`, or a git URL (including `file://` and local paths).
    pub repository: Option<String>,
    pub branch: Option<String>,
    pub git_provider: Option<ProviderType>,
    /// Token to clone with, and its host.
    pub git_token: Option<(Secret, Option<String>)>,
    /// Exported to the tools as environment variables.
    pub env: Vec<(String, Secret)>,
    pub git_user_name: Option<String>,
    pub git_user_email: Option<String>,
}

/// A sandbox ready for tools.
#[derive(Debug, Clone)]
pub struct PreparedSandbox {
    /// The workspace the tools work in.
    pub workspace_dir: PathBuf,
    /// Environment for the tools, secrets included.
    pub env: Vec<(String, Secret)>,
}

/// Why a sandbox could not be prepared. Messages never contain tokens.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    Setup(String),
    #[error("sandbox I/O failed: {0}")]
    Io(String),
}

/// Prepares and removes conversation sandboxes.
///
/// Guarantees: a workspace belongs to one conversation of one scope; `prepare` is idempotent
/// (preparing an existing workspace reuses it, so a restarted conversation keeps its files);
/// tokens never appear in errors or logs.
#[async_trait]
pub trait Sandbox: Send + Sync {
    /// Creates (or reuses) the workspace, cloning the repository on first use.
    async fn prepare(&self, spec: SandboxSpec) -> Result<PreparedSandbox, SandboxError>;

    /// The workspace directory when it exists.
    async fn workspace(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<PathBuf>, SandboxError>;

    /// Deletes the workspace.
    async fn remove(&self, scope: &UserScope, conversation_id: &str) -> Result<(), SandboxError>;
}
