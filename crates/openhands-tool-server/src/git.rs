//! The git the tool server runs itself: status, diff, ignore checks and the identity.
//!
//! The repository is the agent's, so its `.git/config` is hostile input: every such git
//! runs with `core.fsmonitor=false` and `core.hooksPath=/dev/null` on its command line
//! (which outranks any config file), without the system config, with a clean environment
//! (PATH, HOME, LANG) and with a timeout. `status` hashes racily-changed files through the
//! `filter.<driver>.clean`/`process` commands that `.gitattributes` names, so every filter
//! command the repository configures is blanked on the command line too
//! ([`filter_overrides`]). Reading `HEAD:path` uses `cat-file`, which never runs textconv
//! filters.

use crate::error::ToolError;
use crate::workspace::Workspace;
use openhands_core::tool_protocol::limits::MAX_READ_BYTES;
use openhands_core::tool_protocol::{GitChange, GitDiff};
use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Longest a status, diff or ignore check may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The identity of commits when the conversation sets none.
const DEFAULT_NAME: &str = "openhands";
const DEFAULT_EMAIL: &str = "openhands@all-hands.dev";

/// The clean environment of every git the tool server runs: PATH, HOME, LANG.
pub fn base_env(root: &Path) -> Vec<(String, String)> {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    vec![
        ("PATH".into(), var("PATH", DEFAULT_PATH)),
        ("HOME".into(), var("HOME", &root.display().to_string())),
        ("LANG".into(), var("LANG", "C.UTF-8")),
    ]
}

/// A hardened `git` in `root` (see the module docs).
pub fn command(root: &Path) -> Command {
    let mut git = Command::new("git");
    git.args([
        "-c",
        "core.fsmonitor=false",
        "-c",
        "core.hooksPath=/dev/null",
    ])
    .current_dir(root)
    .env_clear()
    .envs(base_env(root))
    .env("GIT_CONFIG_NOSYSTEM", "1")
    // Never a repository above the workspace (a data dir inside a checkout), and git's
    // messages in English, which the error mapping reads.
    .env("GIT_CEILING_DIRECTORIES", root.parent().unwrap_or(root))
    .env("LC_ALL", "C")
    .env("GIT_TERMINAL_PROMPT", "0")
    // Status does not refresh the index: no lock fights with the agent's own git.
    .env("GIT_OPTIONAL_LOCKS", "0")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    git
}

/// `-c` arguments that blank every filter command the repository's config names (an
/// empty command is no filter), and make none of them required.
async fn filter_overrides(root: &Path) -> Vec<String> {
    let listed = command(root)
        .args(["config", "--name-only", "--get-regexp", r"^filter\."])
        .output();
    let Ok(Ok(output)) = tokio::time::timeout(GIT_TIMEOUT, listed).await else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|key| {
            let (driver, setting) = key.rsplit_once('.')?;
            match setting {
                "clean" | "smudge" | "process" => Some(format!("{driver}.{setting}=")),
                "required" => Some(format!("{driver}.required=false")),
                _ => None,
            }
        })
        .flat_map(|setting| ["-c".to_owned(), setting])
        .collect()
}

/// Runs a hardened git with `args` (and the repository's filters blanked) and waits for it.
async fn run(root: &Path, args: &[&str]) -> Result<std::process::Output, ToolError> {
    let output = command(root)
        .args(filter_overrides(root).await)
        .args(args)
        .output();
    tokio::time::timeout(GIT_TIMEOUT, output)
        .await
        .map_err(|_| {
            ToolError::Command(format!(
                "git {} did not finish within {} seconds",
                args.first().unwrap_or(&""),
                GIT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| ToolError::Command(format!("git could not be run: {e}")))
}

/// Whether the workspace holds a repository (`.git`, not followed if it is a symlink).
pub fn is_repository(root: &Path) -> bool {
    std::fs::symlink_metadata(root.join(".git")).is_ok()
}

fn require_repository(root: &Path) -> Result<(), ToolError> {
    if is_repository(root) {
        Ok(())
    } else {
        Err(ToolError::NotARepository)
    }
}

/// The entries (workspace-relative, directories ending with `/`) git ignores; none when the
/// workspace is not a repository or git fails.
pub async fn ignored(root: &Path, entries: &[String]) -> HashSet<String> {
    if entries.is_empty() || !is_repository(root) {
        return HashSet::new();
    }
    let child = command(root)
        .args(["check-ignore", "-z", "--stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return HashSet::new();
    };
    let input: Vec<u8> = entries
        .iter()
        .flat_map(|e| e.trim_end_matches('/').bytes().chain([0]))
        .collect();
    if let Some(mut stdin) = child.stdin.take() {
        // Written while git answers (it may answer before reading everything).
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
    }
    match tokio::time::timeout(GIT_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => output
            .stdout
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
        _ => HashSet::new(),
    }
}

/// Changed files against `HEAD`, untracked ones as added.
pub async fn changes(root: &Path) -> Result<Vec<GitChange>, ToolError> {
    require_repository(root)?;
    let output = run(
        root,
        &["status", "--porcelain=v1", "-z", "--untracked-files=all"],
    )
    .await?;
    if !output.status.success() {
        return Err(ToolError::Command(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    Ok(parse_porcelain_z(&output.stdout))
}

/// The changes of `git status --porcelain=v1 -z` output, with OpenHands' letters.
pub fn parse_porcelain_z(output: &[u8]) -> Vec<GitChange> {
    let mut changes = Vec::new();
    let mut records = output.split(|&b| b == 0);
    while let Some(record) = records.next() {
        if record.len() < 4 {
            continue;
        }
        let record = String::from_utf8_lossy(record);
        let (code, path) = record.split_at(3);
        let code = code.trim();
        if code.starts_with('R') || code.starts_with('C') {
            // The original path follows as its own record.
            records.next();
        }
        changes.push(GitChange {
            status: status_letter(code).to_owned(),
            path: path.to_owned(),
        });
    }
    changes
}

/// OpenHands' letter of a porcelain status code.
fn status_letter(code: &str) -> &'static str {
    match code {
        "??" | "A" | "AM" => "A",
        c if c.contains('D') => "D",
        c if c.starts_with('R') => "R",
        c if c.contains('U') => "U",
        _ => "M",
    }
}

/// The text of `path` now and at `HEAD` (each empty when absent or not text).
pub async fn diff(ws: &Workspace, path: &str) -> Result<GitDiff, ToolError> {
    require_repository(ws.root())?;
    let file = ws.resolve(path)?;
    let relative = ws.relative(&file);
    let shown = ws.show(&file);
    let modified = tokio::task::spawn_blocking(move || {
        match crate::files::read_limited(&file, &shown, MAX_READ_BYTES) {
            Ok(bytes) => Ok(String::from_utf8(bytes).unwrap_or_default()),
            Err(e @ ToolError::TooLarge(_)) => Err(e),
            Err(_) => Ok(String::new()),
        }
    })
    .await
    .map_err(|e| ToolError::Command(format!("reading failed: {e}")))??;
    let spec = format!("HEAD:{relative}");
    let output = run(ws.root(), &["cat-file", "blob", spec.as_str()]).await?;
    let original = if output.status.success() {
        String::from_utf8(output.stdout).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(GitDiff { modified, original })
}

/// Sets the commit identity of the repository in `root` (defaults for missing parts).
pub async fn set_identity(
    root: &Path,
    name: Option<&str>,
    email: Option<&str>,
) -> Result<(), ToolError> {
    for (key, value) in [
        ("user.name", name.unwrap_or(DEFAULT_NAME)),
        ("user.email", email.unwrap_or(DEFAULT_EMAIL)),
    ] {
        let output = run(root, &["config", key, value]).await?;
        if !output.status.success() {
            return Err(ToolError::Command(format!(
                "git config {key} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(status: &str, path: &str) -> GitChange {
        GitChange {
            status: status.into(),
            path: path.into(),
        }
    }

    #[test]
    fn porcelain_records_map_to_openhands_letters() {
        let output = b"?? new file.txt\0 M src/a.rs\0 D gone.txt\0R  new name\0old name\0UU both.txt\0A  added\0";
        assert_eq!(
            parse_porcelain_z(output),
            vec![
                change("A", "new file.txt"),
                change("M", "src/a.rs"),
                change("D", "gone.txt"),
                change("R", "new name"),
                change("U", "both.txt"),
                change("A", "added"),
            ]
        );
        assert!(parse_porcelain_z(b"").is_empty());
    }
}
