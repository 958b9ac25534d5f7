//! Sandboxes built from a tool-server launcher: workspaces, running tool servers, stops.
//!
//! [`ToolServerSandbox`] is the [`Sandbox`] of every implementation that runs the tool
//! server (`openhands_core::tool_protocol`) as a child process: `oss.process` launches it
//! as a plain process, `saas.bwrap` inside bubblewrap. It owns what they share:
//!
//! * the workspace directories, `<workspaces dir>/<conversation id>` (`sandbox.workspaces_dir`,
//!   by default `<data dir>/workspaces`), which the server creates and deletes as wholes
//!   but never looks inside;
//! * one running tool server per conversation, started by [`Sandbox::prepare`] for the
//!   agent or by [`Sandbox::tools`] for the file routes; one started only for the file
//!   routes ends after `sandbox.idle_tool_server_seconds` without use, one the agent
//!   uses ends with [`Sandbox::release`];
//! * the end of a tool server: every waiting call learns why (a limit, a crash), and
//!   [`LaunchResources::kill_all`] takes every process of the sandbox with it.

mod launcher;
mod live;
mod process;

pub use launcher::{
    Isolation, LaunchResources, LaunchedToolServer, NoResources, ToolServerLauncher,
};
pub use process::{ProcessLauncher, TOOL_SERVER_NAME, ToolServerProgram, locate_tool_server};

use crate::conversation::validate_conversation_id;
use crate::extension::{PreparedSandbox, Sandbox, SandboxError, SandboxSpec};
use crate::scope::UserScope;
use crate::tool_protocol::{CloneReply, Done, Request, ToolCallError, ToolClient};
use async_trait::async_trait;
use live::{LiveSandboxes, Use};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What the start-up log and `/ready` say when SaaS mode runs without isolation.
pub const UNISOLATED_WARNING: &str =
    "the sandbox isolates nothing (sandbox.allow_unisolated = true)";

/// Longest a clone may take.
const CLONE_TIMEOUT: Duration = Duration::from_secs(600);

/// A [`Sandbox`] whose tools are a tool server started by `L`.
pub struct ToolServerSandbox<L: ToolServerLauncher> {
    root: PathBuf,
    live: Arc<LiveSandboxes<L>>,
}

impl<L: ToolServerLauncher> ToolServerSandbox<L> {
    /// Sandboxes with workspaces under `workspaces` (see
    /// [`crate::sandbox_config::SandboxConfig::workspaces_dir`]); a tool server started only
    /// for the file routes lives `idle` after its last use.
    pub fn new(workspaces: &Path, launcher: L, idle: Duration) -> Self {
        Self {
            root: workspaces.to_owned(),
            live: LiveSandboxes::new(launcher, idle),
        }
    }

    fn dir(&self, conversation_id: &str) -> Result<PathBuf, SandboxError> {
        validate_conversation_id(conversation_id)
            .map_err(|e| SandboxError::Setup(e.to_string()))?;
        Ok(self.root.join(conversation_id))
    }

    /// The launcher, e.g. for its start-up warnings.
    pub fn launcher(&self) -> &L {
        self.live.launcher()
    }
}

fn setup_error(doing: &str, e: ToolCallError) -> SandboxError {
    SandboxError::Setup(format!("{doing} failed: {e}"))
}

#[async_trait]
impl<L: ToolServerLauncher> Sandbox for ToolServerSandbox<L> {
    async fn prepare(&self, spec: SandboxSpec) -> Result<PreparedSandbox, SandboxError> {
        let dir = self.dir(&spec.conversation_id)?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| SandboxError::Io(format!("creating the workspace: {e}")))?;
        let (tools, extra_env) = self
            .live
            .get_or_launch(&spec.conversation_id, &dir, Use::Agent)
            .await?;
        let mut env: Vec<(String, String)> = extra_env;
        env.extend(
            spec.env
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_owned())),
        );
        tools
            .call::<Done>(Request::Configure {
                env,
                git_user_name: spec.git_user_name.clone(),
                git_user_email: spec.git_user_email.clone(),
            })
            .await
            .map_err(|e| setup_error("configuring the sandbox", e))?;
        if let Some(target) = &spec.clone {
            // The tool server writes the configured git identity into a fresh clone.
            tools
                .call::<CloneReply>(Request::Clone {
                    url: target.url.clone(),
                    branch: spec.branch.clone(),
                    credentials: target.credentials.clone(),
                    timeout_ms: u64::try_from(CLONE_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
                })
                .await
                .map_err(|e| {
                    SandboxError::Setup(format!("cloning {} failed: {e}", target.display))
                })?;
        }
        Ok(PreparedSandbox { tools })
    }

    async fn tools(
        &self,
        _scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<Arc<ToolClient>>, SandboxError> {
        let dir = self.dir(conversation_id)?;
        if let Some(tools) = self.live.running(conversation_id) {
            return Ok(Some(tools));
        }
        if !tokio::fs::try_exists(&dir).await.unwrap_or(false) {
            return Ok(None);
        }
        let (tools, _) = self
            .live
            .get_or_launch(conversation_id, &dir, Use::Files)
            .await?;
        Ok(Some(tools))
    }

    async fn release(&self, conversation_id: &str) {
        self.live.stop(conversation_id).await;
    }

    fn workspace_path(&self, conversation_id: &str) -> Option<String> {
        let dir = self.dir(conversation_id).ok()?;
        self.live.launcher().reported_workspace(&dir)
    }

    async fn remove(&self, _scope: &UserScope, conversation_id: &str) -> Result<(), SandboxError> {
        let dir = self.dir(conversation_id)?;
        self.live.stop(conversation_id).await;
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SandboxError::Io(format!("removing the workspace: {e}"))),
        }
    }

    fn isolation(&self) -> Isolation {
        self.live.launcher().isolation()
    }

    fn warnings(&self) -> Vec<String> {
        self.live.launcher().warnings()
    }
}
