//! Starting the real tool-server binary and talking to it, for the integration tests.

#![allow(dead_code)]

use openhands_core::tool_protocol::{
    CommandOutput, FailureCode, Request, ToolCallError, ToolClient,
};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};

/// A running tool server with its workspace and a directory beside it ("outside").
pub struct Server {
    pub client: ToolClient,
    pub child: Child,
    /// The workspace (canonical).
    pub ws: PathBuf,
    /// A directory next to the workspace, which no operation may reach.
    pub outside: PathBuf,
    pub tmp: tempfile::TempDir,
}

/// Starts the binary on a fresh workspace with `args`.
pub async fn start(args: &[&str]) -> Server {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().canonicalize().expect("canonical");
    let ws = root.join("ws");
    let outside = root.join("outside");
    std::fs::create_dir(&ws).expect("mkdir ws");
    std::fs::create_dir(&outside).expect("mkdir outside");
    std::fs::write(outside.join("secret.txt"), "top secret\n").expect("write secret");
    start_in(tmp, ws, outside, args).await
}

/// Starts the binary on `ws`.
pub async fn start_in(
    tmp: tempfile::TempDir,
    ws: PathBuf,
    outside: PathBuf,
    args: &[&str],
) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_openhands-tool-server"))
        .arg("--workspace")
        .arg(&ws)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the tool server starts");
    let stdout = child.stdout.take().expect("stdout");
    let stdin = child.stdin.take().expect("stdin");
    let client = ToolClient::connect(stdout, stdin)
        .await
        .expect("the tool server says hello");
    Server {
        client,
        child,
        ws,
        outside,
        tmp,
    }
}

impl Server {
    pub async fn call<T: DeserializeOwned>(&self, request: Request) -> Result<T, ToolCallError> {
        self.client.call(request).await
    }

    /// Runs `command` in session `main` (10 s timeout).
    pub async fn bash(&self, command: &str) -> CommandOutput {
        self.bash_in("main", command).await
    }

    pub async fn bash_in(&self, session: &str, command: &str) -> CommandOutput {
        self.call(Request::BashRun {
            session: session.into(),
            command: command.into(),
            timeout_ms: 10_000,
        })
        .await
        .expect("bash_run answers")
    }

    /// The failure code of a request that must fail.
    pub async fn failure(&self, request: Request) -> (FailureCode, String) {
        match self.call::<serde_json::Value>(request).await {
            Err(ToolCallError::Failed(failure)) => (failure.code, failure.message),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}

/// Runs `git` in `dir` with a fixed identity; panics when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Makes `dir` a repository with `files` committed.
pub fn repo_with(dir: &Path, files: &[(&str, &str)]) {
    git(dir, &["init", "-q"]);
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "initial"]);
}

/// Whether the process `pid` is gone (or a zombie waiting to be reaped).
pub fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}
