//! `oss.process`: the tool server as a local process in `<workspaces dir>/<id>`.
//!
//! No isolation beyond the directory: this is the single-user laptop default, where the
//! agent acts with the user's own rights. SaaS mode refuses it unless
//! `sandbox.allow_unisolated` is set.

use crate::sandbox_host::{ProcessLauncher, ToolServerSandbox, locate_tool_server};
use std::sync::Arc;
use std::time::Duration;

crate::register_plugin!(
    crate::extension::Sandbox,
    "oss.process",
    "The tool server as a local process in <workspaces dir>/<id> (no isolation; single-user default)",
    |ctx| {
        let sandbox = &ctx.config.sandbox;
        let program = locate_tool_server(sandbox.tool_server.as_deref())
            .map_err(|e| crate::registry::PluginError(e.to_string()))?;
        Ok(Arc::new(ToolServerSandbox::new(
            &sandbox.workspaces_dir(&ctx.data_dir),
            ProcessLauncher::new(program),
            Duration::from_secs(sandbox.idle_tool_server_seconds.max(1)),
        )))
    }
);
