//! `saas.bwrap`: the bubblewrap launcher with its egress proxy, as a registered sandbox.
//!
//! In network mode `proxy` each launch first binds the conversation's egress proxy on the
//! socket that the sandbox sees as `/run/openhands/proxy.sock`; the proxy lives exactly as
//! long as the sandbox's processes (it is dropped with the launch's resources).

use crate::bwrap::BwrapLauncher;
use crate::egress::{CompiledPolicy, EgressProxy};
use async_trait::async_trait;
use openhands_core::config::{NetworkMode, SandboxConfig};
use openhands_core::extension::SandboxError;
use openhands_core::sandbox_host::{
    Isolation, LaunchResources, LaunchedToolServer, ToolServerLauncher, ToolServerSandbox,
    locate_tool_server,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The bubblewrap launcher and, in `proxy` mode, the egress policy of its proxies.
#[derive(Debug)]
pub struct IsolatedLauncher {
    bwrap: BwrapLauncher,
    egress: Option<Arc<CompiledPolicy>>,
}

impl IsolatedLauncher {
    /// Checks that sandboxes work on this machine (see [`BwrapLauncher::new`]) and compiles
    /// the network policy; `runtime_dir` is a server-private directory.
    pub fn new(config: &SandboxConfig, runtime_dir: PathBuf) -> Result<Self, SandboxError> {
        let egress = match config.network.mode {
            NetworkMode::Proxy => Some(Arc::new(
                CompiledPolicy::compile(&config.network)
                    .map_err(|e| SandboxError::Setup(e.to_string()))?,
            )),
            NetworkMode::None | NetworkMode::Open => None,
        };
        let program = locate_tool_server(config.tool_server.as_deref())?;
        let bwrap = BwrapLauncher::new(config, program.program, runtime_dir)
            .map_err(|e| SandboxError::Setup(e.to_string()))?
            .with_tool_server_args(program.leading_args);
        Ok(Self { bwrap, egress })
    }

    /// The bubblewrap launcher underneath.
    pub fn bwrap(&self) -> &BwrapLauncher {
        &self.bwrap
    }
}

/// A launch's resources with the proxy that serves it.
struct WithProxy {
    inner: Box<dyn LaunchResources>,
    _proxy: EgressProxy,
}

impl LaunchResources for WithProxy {
    fn kill_all(&self) {
        self.inner.kill_all();
    }

    fn exit_reason(&self) -> Option<String> {
        self.inner.exit_reason()
    }
}

#[async_trait]
impl ToolServerLauncher for IsolatedLauncher {
    async fn launch(
        &self,
        conversation_id: &str,
        workspace: &Path,
    ) -> Result<LaunchedToolServer, SandboxError> {
        let proxy = match &self.egress {
            Some(policy) => {
                let socket = self
                    .bwrap
                    .prepare_proxy_socket(conversation_id)
                    .map_err(|e| SandboxError::Setup(e.to_string()))?;
                let proxy = EgressProxy::bind(&socket, policy.clone(), conversation_id.to_owned())
                    .map_err(|e| SandboxError::Setup(format!("starting the egress proxy: {e}")))?;
                Some(proxy)
            }
            None => None,
        };
        let mut launched = self.bwrap.launch(conversation_id, workspace).await?;
        if let Some(proxy) = proxy {
            launched.resources = Box::new(WithProxy {
                inner: launched.resources,
                _proxy: proxy,
            });
        }
        Ok(launched)
    }

    fn isolation(&self) -> Isolation {
        Isolation::Isolated
    }

    fn reported_workspace(&self, workspace: &Path) -> Option<String> {
        self.bwrap.reported_workspace(workspace)
    }

    fn warnings(&self) -> Vec<String> {
        self.bwrap.preflight_warnings()
    }
}

openhands_core::register_plugin!(
    openhands_core::extension::Sandbox,
    "saas.bwrap",
    "The tool server inside bubblewrap: own namespaces, seccomp, cgroup limits, egress through a filtering proxy (SaaS default)",
    |ctx| {
        let config = &ctx.config.sandbox;
        let runtime_dir = ctx.data_dir.join("run").join("sandboxes");
        let launcher = IsolatedLauncher::new(config, runtime_dir)
            .map_err(|e| openhands_core::registry::PluginError(e.to_string()))?;
        for warning in launcher.warnings() {
            tracing::warn!("sandbox: {warning}");
        }
        Ok(Arc::new(ToolServerSandbox::new(
            &config.workspaces_dir(&ctx.data_dir),
            launcher,
            Duration::from_secs(config.idle_tool_server_seconds.max(1)),
        )))
    }
);
