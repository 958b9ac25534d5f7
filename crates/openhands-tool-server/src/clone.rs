//! Cloning the conversation's repository into the (empty) workspace.
//!
//! Credentials never appear in git's argv, in `.git/config` or in the remote URL: they are
//! put in two environment variables of that one git process, and a credential helper given
//! with `git -c` (which is not saved in the clone) echoes them when git asks. Helpers from
//! other config files are reset first (`credential.helper=` empties the list), prompts are
//! off, and the password is scrubbed from any text git prints before it is returned.
//!
//! Unlike the git of `crate::git`, a clone reads the system and user configuration (an
//! image may set proxies or certificates there); the workspace is empty, so there is no
//! repository configuration to distrust yet. On failure or timeout (git's whole process
//! group is killed) whatever the clone left is removed.

use crate::error::ToolError;
use crate::git;
use openhands_core::tool_protocol::GitCredentials;
use rustix::process::{Pid, Signal};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// The credential helper: answers `get` with the two variables, ignores `store`/`erase`.
const CREDENTIAL_HELPER: &str = "credential.helper=!f() { test \"$1\" = get || exit 0; echo \"username=$OH_GIT_USERNAME\"; echo \"password=$OH_GIT_PASSWORD\"; }; f";
const USERNAME_VAR: &str = "OH_GIT_USERNAME";
const PASSWORD_VAR: &str = "OH_GIT_PASSWORD";
/// Most of git's messages kept for the error.
const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// What replaces the password in messages.
const HIDDEN: &str = "<secret_hidden>";

/// One clone request.
#[derive(Debug)]
pub struct CloneSpec<'a> {
    pub url: &'a str,
    pub branch: Option<&'a str>,
    pub credentials: Option<&'a GitCredentials>,
    pub timeout: Duration,
    /// Variables of the configured environment git needs too (the proxy).
    pub env: Vec<(String, String)>,
}

/// Clones into `root` unless it holds a repository already; `Ok(false)` then.
pub async fn clone(root: &Path, spec: CloneSpec<'_>) -> Result<bool, ToolError> {
    if git::is_repository(root) {
        return Ok(false);
    }
    if has_entries(root)? {
        return Err(ToolError::CloneFailed(
            "the workspace is not empty and is not a git repository, so nothing can be cloned into it; empty it or start a new conversation".into(),
        ));
    }
    if spec.url.trim().is_empty() {
        return Err(ToolError::InvalidArgument("the clone URL is empty".into()));
    }
    if let Some(c) = spec.credentials
        && [&c.username, &c.password]
            .iter()
            .any(|v| v.contains(['\n', '\r', '\0']))
    {
        return Err(ToolError::InvalidArgument(
            "git credentials cannot contain line breaks or NUL".into(),
        ));
    }
    let mut command = Command::new("git");
    command
        .args(["-c", "credential.helper=", "-c", CREDENTIAL_HELPER])
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
        ])
        .args(["clone", "--quiet"]);
    if let Some(branch) = spec.branch {
        command.args(["--branch", branch]);
    }
    command
        .args(["--", spec.url, "."])
        .current_dir(root)
        .env_clear()
        .envs(git::base_env(root))
        .envs(spec.env)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GCM_INTERACTIVE", "never")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(c) = spec.credentials {
        command
            .env(USERNAME_VAR, &c.username)
            .env(PASSWORD_VAR, &c.password);
    }
    let scrub = |text: &str| match spec.credentials {
        Some(c) if !c.password.is_empty() => text.replace(&c.password, HIDDEN),
        _ => text.to_owned(),
    };
    let mut child = command
        .spawn()
        .map_err(|e| ToolError::CloneFailed(format!("git could not be run: {e}")))?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    let stderr = tokio::spawn(read_bounded(child.stderr.take()));
    let failure = match tokio::time::timeout(spec.timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => return Ok(true),
        Ok(Ok(status)) => {
            let stderr = stderr.await.unwrap_or_default();
            let stderr = String::from_utf8_lossy(&stderr);
            let reason = match stderr.trim() {
                "" => format!("git exited with {status}"),
                text => text.to_owned(),
            };
            format!("cloning {} failed: {}", scrub(spec.url), scrub(&reason))
        }
        Ok(Err(e)) => format!("git could not be run: {e}"),
        Err(_) => {
            // git's helpers (e.g. git-remote-https) are in its process group, which still
            // exists: git has not been reaped.
            if let Some(pid) = pgid.and_then(Pid::from_raw) {
                let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            }
            let _ = child.kill().await;
            format!(
                "cloning {} did not finish within {} seconds",
                scrub(spec.url),
                spec.timeout.as_secs_f64()
            )
        }
    };
    clear(root).await;
    Err(ToolError::CloneFailed(failure))
}

/// Reads all of `pipe`, keeping the first [`MAX_MESSAGE_BYTES`].
async fn read_bounded(pipe: Option<tokio::process::ChildStderr>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else {
        return kept;
    };
    let mut chunk = [0u8; 8192];
    while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
        let room = MAX_MESSAGE_BYTES.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
    kept
}

fn has_entries(root: &Path) -> Result<bool, ToolError> {
    let mut entries = std::fs::read_dir(root).map_err(|e| ToolError::io(root, e))?;
    Ok(entries.next().is_some())
}

/// Removes what a failed clone left (the workspace was empty before it).
async fn clear(root: &Path) {
    let root = root.to_owned();
    let _ = tokio::task::spawn_blocking(move || {
        let Ok(entries) = std::fs::read_dir(&root) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // Neither removal follows symlinks.
            let removed = match entry.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
            if let Err(e) = removed {
                tracing::warn!(error = %e, "could not clean up after a failed clone");
            }
        }
    })
    .await;
}
