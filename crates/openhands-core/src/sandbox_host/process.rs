//! `oss.process`'s launcher: the tool server as a plain child process, and where to find
//! the tool server program.

use super::launcher::{Isolation, LaunchedToolServer, NoResources, ToolServerLauncher};
use crate::extension::SandboxError;
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The tool server's file name.
pub const TOOL_SERVER_NAME: &str = "openhands-tool-server";

/// How to start the tool server: a program and the arguments before its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolServerProgram {
    pub program: PathBuf,
    /// `["tool-server"]` when the program is the server binary itself.
    pub leading_args: Vec<String>,
}

/// Finds the tool server: `configured` when set (an error when it does not exist), else
/// `openhands-tool-server` next to the running binary or one directory up (test binaries
/// live in `target/<profile>/deps`), else the running binary's own `tool-server`
/// subcommand when the running binary is the server (`openhands`).
pub fn locate_tool_server(configured: Option<&str>) -> Result<ToolServerProgram, SandboxError> {
    if let Some(path) = configured.filter(|p| !p.trim().is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(ToolServerProgram {
                program: path,
                leading_args: Vec::new(),
            })
        } else {
            Err(SandboxError::Setup(format!(
                "sandbox.tool_server is {}, which is not a file",
                path.display()
            )))
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| SandboxError::Setup(format!("cannot find the running binary: {e}")))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let candidates = [Some(dir), dir.parent()];
    for candidate in candidates.into_iter().flatten() {
        let path = candidate.join(TOOL_SERVER_NAME);
        if path.is_file() {
            return Ok(ToolServerProgram {
                program: path,
                leading_args: Vec::new(),
            });
        }
    }
    if exe.file_stem().is_some_and(|s| s == "openhands") {
        return Ok(ToolServerProgram {
            program: exe,
            leading_args: vec!["tool-server".into()],
        });
    }
    Err(SandboxError::Setup(format!(
        "the tool server program {TOOL_SERVER_NAME} was not found next to {} \
         (build it with `cargo build -p openhands-tool-server`, or set sandbox.tool_server)",
        exe.display()
    )))
}

/// Starts the tool server as a local process working in the workspace, with the server's
/// rights (the laptop default: the agent acts as the user).
#[derive(Debug, Clone)]
pub struct ProcessLauncher {
    program: ToolServerProgram,
}

impl ProcessLauncher {
    pub fn new(program: ToolServerProgram) -> Self {
        Self { program }
    }
}

#[async_trait]
impl ToolServerLauncher for ProcessLauncher {
    async fn launch(
        &self,
        _conversation_id: &str,
        workspace: &Path,
    ) -> Result<LaunchedToolServer, SandboxError> {
        let mut command = tokio::process::Command::new(&self.program.program);
        command
            .args(&self.program.leading_args)
            .arg("--workspace")
            .arg(workspace)
            .current_dir(workspace)
            // The server's own environment (its keys) stays out; shells get what the
            // conversation configures.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().map_err(|e| {
            SandboxError::Setup(format!(
                "starting the tool server {} failed: {e}",
                self.program.program.display()
            ))
        })?;
        Ok(LaunchedToolServer {
            child,
            extra_env: Vec::new(),
            resources: Box::new(NoResources),
        })
    }

    fn reported_workspace(&self, workspace: &Path) -> Option<String> {
        // The tool server canonicalizes its workspace; it may not exist yet, its parent does.
        let canonical = workspace.canonicalize().ok().or_else(|| {
            let parent = workspace.parent()?.canonicalize().ok()?;
            Some(parent.join(workspace.file_name()?))
        })?;
        Some(canonical.display().to_string())
    }

    fn isolation(&self) -> Isolation {
        Isolation::None
    }
}
