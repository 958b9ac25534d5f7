//! `oss.process`: tools run as local processes in `<data dir>/workspaces/<conversation id>`.
//!
//! No isolation beyond the directory: this is the single-user laptop default, where the
//! agent acts with the user's own rights. The repository is cloned with the `git` command
//! on first use; the token goes into the clone URL and is scrubbed from any error text.

use crate::conversation::validate_conversation_id;
use crate::extension::{PreparedSandbox, Sandbox, SandboxError, SandboxSpec};
use crate::scope::UserScope;
use crate::secrets::ProviderType;
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Longest a clone may take.
const CLONE_TIMEOUT: Duration = Duration::from_secs(600);

/// Local-process sandboxes.
pub struct ProcessSandbox {
    root: PathBuf,
}

impl ProcessSandbox {
    /// Sandboxes under `<data_dir>/workspaces`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("workspaces"),
        }
    }

    fn dir(&self, conversation_id: &str) -> Result<PathBuf, SandboxError> {
        validate_conversation_id(conversation_id)
            .map_err(|e| SandboxError::Setup(e.to_string()))?;
        Ok(self.root.join(conversation_id))
    }
}

/// The URL to clone `repository` from. Plain `owner/repo` names go to the provider's host
/// (or the token's host) over HTTPS with the token as credentials; URLs and local paths are
/// used as they are.
pub fn clone_url(
    repository: &str,
    provider: Option<ProviderType>,
    token: Option<(&str, Option<&str>)>,
) -> String {
    let is_location = repository.contains("://")
        || repository.starts_with('/')
        || repository.starts_with("file:")
        || repository.starts_with("git@");
    if is_location {
        return repository.to_owned();
    }
    let provider = provider.unwrap_or(ProviderType::Github);
    let default_host = match provider {
        ProviderType::Gitlab => "gitlab.com",
        ProviderType::Bitbucket => "bitbucket.org",
        ProviderType::Github | ProviderType::EnterpriseSso => "github.com",
    };
    let host = token
        .and_then(|(_, host)| host)
        .filter(|h| !h.is_empty())
        .unwrap_or(default_host);
    let credentials = token
        .map(|(secret, _)| match provider {
            ProviderType::Gitlab => format!("oauth2:{secret}@"),
            ProviderType::Bitbucket => format!("x-token-auth:{secret}@"),
            ProviderType::Github | ProviderType::EnterpriseSso => {
                format!("x-access-token:{secret}@")
            }
        })
        .unwrap_or_default();
    format!(
        "https://{credentials}{host}/{}.git",
        repository.trim_end_matches(".git")
    )
}

async fn git(dir: &Path, args: &[&str]) -> Result<std::process::Output, SandboxError> {
    let run = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(CLONE_TIMEOUT, run)
        .await
        .map_err(|_| SandboxError::Setup(format!("git {} timed out", args.first().unwrap_or(&""))))?
        .map_err(|e| SandboxError::Setup(format!("cannot run git: {e}")))
}

#[async_trait]
impl Sandbox for ProcessSandbox {
    async fn prepare(&self, spec: SandboxSpec) -> Result<PreparedSandbox, SandboxError> {
        let dir = self.dir(&spec.conversation_id)?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| SandboxError::Io(format!("{}: {e}", dir.display())))?;
        let has_repo = dir.join(".git").exists();
        if let (Some(repository), false) = (&spec.repository, has_repo) {
            let token = spec
                .git_token
                .as_ref()
                .map(|(t, h)| (t.expose(), h.as_deref()));
            let url = clone_url(repository, spec.git_provider, token);
            let target = dir.display().to_string();
            let mut args = vec!["clone", "--quiet"];
            if let Some(branch) = &spec.branch {
                args.extend(["--branch", branch.as_str()]);
            }
            args.extend(["--", url.as_str(), target.as_str()]);
            let output = git(&self.root, &args).await?;
            if !output.status.success() {
                let mut message = String::from_utf8_lossy(&output.stderr).trim().to_owned();
                if let Some((secret, _)) = &spec.git_token {
                    message = message.replace(secret.expose(), "<secret_hidden>");
                }
                let _ = tokio::fs::remove_dir_all(&dir).await;
                return Err(SandboxError::Setup(format!(
                    "cloning {repository} failed: {message}"
                )));
            }
        }
        if dir.join(".git").exists() {
            for (key, value) in [
                (
                    "user.name",
                    spec.git_user_name.as_deref().unwrap_or("openhands"),
                ),
                (
                    "user.email",
                    spec.git_user_email
                        .as_deref()
                        .unwrap_or("openhands@all-hands.dev"),
                ),
            ] {
                git(&dir, &["config", key, value]).await?;
            }
        }
        Ok(PreparedSandbox {
            workspace_dir: dir,
            env: spec.env,
        })
    }

    async fn workspace(
        &self,
        _scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<PathBuf>, SandboxError> {
        let dir = self.dir(conversation_id)?;
        Ok(dir.is_dir().then_some(dir))
    }

    async fn remove(&self, _scope: &UserScope, conversation_id: &str) -> Result<(), SandboxError> {
        let dir = self.dir(conversation_id)?;
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SandboxError::Io(format!("{}: {e}", dir.display()))),
        }
    }
}

crate::register_plugin!(
    crate::extension::Sandbox,
    "oss.process",
    "Local processes in <data dir>/workspaces/<id> (no isolation; single-user default)",
    |ctx| Ok(Arc::new(ProcessSandbox::new(&ctx.data_dir)))
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_urls_carry_the_token_for_each_provider() {
        assert_eq!(
            clone_url("octo/repo", Some(ProviderType::Github), Some(("ghp", None))),
            "https://x-access-token:ghp@github.com/octo/repo.git"
        );
        assert_eq!(
            clone_url(
                "g/r",
                Some(ProviderType::Gitlab),
                Some(("glp", Some("gl.example")))
            ),
            "https://oauth2:glp@gl.example/g/r.git"
        );
        assert_eq!(clone_url("a/b", None, None), "https://github.com/a/b.git");
        assert_eq!(
            clone_url("/srv/repo.git", None, Some(("t", None))),
            "/srv/repo.git"
        );
        assert_eq!(clone_url("file:///srv/r", None, None), "file:///srv/r");
    }
}
