//! The conversation's tool server as the agent reaches it: running, or still being started
//! by its sandbox while the agent already asks the LLM.
//!
//! A conversation taken over by another server resumes its work at once, and starting a
//! sandbox (namespaces, a process, a handshake, the environment, perhaps a clone) costs as
//! much as an LLM answer, many times more when a whole replica's conversations move
//! together. The first LLM call needs only the workspace's path, which the sandbox knows
//! in advance ([`openhands_core::extension::Sandbox::workspace_path`]); the first tool call
//! waits for the tool server. A sandbox that failed to start fails every call with the
//! reason.

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use openhands_core::tool_protocol::{Request, ToolCallError, ToolClient};
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;

type Started = Shared<BoxFuture<'static, Result<Arc<ToolClient>, String>>>;

/// The agent's handle on its tool server (cheap to clone).
#[derive(Clone)]
pub struct SandboxTools {
    workspace: Arc<str>,
    client: Started,
}

impl SandboxTools {
    /// A tool server that is running.
    pub fn ready(client: Arc<ToolClient>) -> Self {
        Self {
            workspace: client.workspace().into(),
            client: futures_util::future::ready(Ok(client)).boxed().shared(),
        }
    }

    /// A tool server being started by `starting`, which runs from now on (spawned on the
    /// current Tokio runtime) whether or not a call waits for it yet; `workspace` is the
    /// path the server will report.
    pub fn starting<F>(workspace: String, starting: F) -> Self
    where
        F: Future<Output = Result<Arc<ToolClient>, String>> + Send + 'static,
    {
        let task = tokio::spawn(starting);
        let client = async move {
            match task.await {
                Ok(started) => started,
                Err(err) => Err(format!("starting the sandbox was cut short: {err}")),
            }
        }
        .boxed()
        .shared();
        Self {
            workspace: workspace.into(),
            client,
        }
    }

    /// The workspace's path as the tools see it.
    pub fn workspace(&self) -> &str {
        &self.workspace
    }

    /// Waits until the tool server runs; the reason when it could not be started.
    pub async fn started(&self) -> Result<Arc<ToolClient>, String> {
        self.client.clone().await
    }

    /// Calls a tool (see [`ToolClient::call`]), once the tool server runs.
    pub async fn call<T: DeserializeOwned>(&self, request: Request) -> Result<T, ToolCallError> {
        let client = self.started().await.map_err(|reason| {
            ToolCallError::Disconnected(format!("it could not be started: {reason}"))
        })?;
        client.call(request).await
    }
}

impl From<Arc<ToolClient>> for SandboxTools {
    fn from(client: Arc<ToolClient>) -> Self {
        Self::ready(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openhands_core::tool_protocol::Done;

    #[tokio::test]
    async fn a_sandbox_that_failed_to_start_fails_calls_with_the_reason() {
        let tools = SandboxTools::starting("/workspace".into(), async {
            Err("the clone failed".to_owned())
        });
        assert_eq!(tools.workspace(), "/workspace");
        let err = tools
            .call::<Done>(Request::BashInterrupt {
                session: "main".into(),
            })
            .await
            .expect_err("a call went through a sandbox that never started");
        assert!(err.to_string().contains("the clone failed"), "{err}");
    }

    #[tokio::test]
    async fn the_start_runs_before_any_call_waits_for_it() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _tools = SandboxTools::starting("/workspace".into(), async move {
            let _ = tx.send(());
            Err("not needed".to_owned())
        });
        tokio::time::timeout(std::time::Duration::from_secs(1), rx)
            .await
            .expect("the sandbox start waited for a tool call")
            .expect("the start was dropped");
    }
}
