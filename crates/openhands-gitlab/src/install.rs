//! Installing and removing the resolver's hook on a user's GitLab project, as OpenHands'
//! `install_gitlab_webhooks.py` does for one row: a project hook named "OpenHands Resolver"
//! that posts to `{public_url}/integration/gitlab/events` with a fresh secret token and the
//! custom headers `X-OpenHands-User-ID` and `X-OpenHands-Webhook-ID`, recorded in
//! `gitlab_webhooks` (the token hashed, see [`crate::store`]).
//!
//! [`install_for_user`], [`remove_for_user`] and [`install_on_maintained_projects`] are the
//! entries a CLI command, a route or a background job calls: they take the server's config
//! and the user, read the user's linked GitLab token and do the rest. The token needs the Maintainer role on the project (GitLab's rule for
//! managing hooks) and the `api` scope. Custom headers need GitLab 17.1 or later.
//!
//! Differences from OpenHands: the token is 32 random bytes from the OS (not `{user}-{uuid4}`,
//! which names the user inside the secret), it is stored hashed, and the hook subscribes only
//! to the events the resolver acts on (issues and notes, confidential ones included): no
//! merge request, job or pipeline events, which would only fill the delivery log.

use crate::api::{ApiError, GitlabApi, HookSpec};
use crate::config::GitlabSettings;
use crate::store::{HookStore, HookStoreError, Model, NewHook, secret_digest};
use crate::tokens::{TokenError, TokenSource};
use openhands_core::config::Config;
use openhands_core::crypto::Cipher;
use openhands_core::scope::UserScope;
use openhands_sql_store::SqlSecretsStore;
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::Arc;

/// Why a hook could not be installed or removed. Never holds a token.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the GitLab integration is not enabled (GITLAB_WEBHOOKS_ENABLED)")]
    Disabled,
    #[error("invalid GitLab settings: {0}")]
    Settings(String),
    #[error("the secrets key could not be loaded: {0}")]
    Cipher(String),
    #[error(transparent)]
    Store(#[from] HookStoreError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("user `{user}` has no linked GitLab token for {base_url}")]
    NoToken { user: String, base_url: String },
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("project {project} already has the hook {webhook_id}")]
    AlreadyInstalled { project: String, webhook_id: String },
    #[error("no installed hook {0} of this user")]
    NotFound(String),
    #[error("the system random generator failed")]
    Random,
}

/// A fresh hook secret: 32 random bytes, hex.
pub fn random_token() -> Result<String, InstallError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| InstallError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What installing one project hook needs.
#[derive(Debug, Clone)]
pub struct ProjectHook<'a> {
    /// The GitLab, without a trailing `/`.
    pub base_url: &'a str,
    /// The project's id or `group/project` path.
    pub project: &'a str,
    /// The installing user and their GitLab token (Maintainer on the project).
    pub scope: &'a UserScope,
    pub token: &'a str,
    /// This server's public URL.
    pub public_url: &'a str,
}

/// Creates the hook on GitLab and records it; refuses a project that already has one of
/// ours on this GitLab. If recording fails, the hook just created is deleted again.
pub async fn install_project_hook(
    api: &GitlabApi,
    hooks: &HookStore,
    request: &ProjectHook<'_>,
) -> Result<Model, InstallError> {
    let base = request.base_url;
    let project = api.project(base, request.token, request.project).await?;
    if let Some(existing) = hooks
        .for_project(base, project.id)
        .await?
        .into_iter()
        .next()
    {
        return Err(InstallError::AlreadyInstalled {
            project: project.path_with_namespace,
            webhook_id: existing.webhook_id,
        });
    }
    let webhook_id = uuid::Uuid::new_v4().to_string();
    let secret = random_token()?;
    let user_id = request.scope.user_id.clone().unwrap_or_default();
    let url = format!("{}/integration/gitlab/events", request.public_url);
    let spec = HookSpec {
        url: &url,
        token: &secret,
        webhook_id: &webhook_id,
        user_id: &user_id,
    };
    let hook_id = api
        .create_project_hook(base, request.token, project.id, &spec)
        .await?;
    let recorded = hooks
        .insert(NewHook {
            webhook_id,
            user_id,
            org_id: request.scope.org_id.clone(),
            base_url: base.to_owned(),
            project_id: Some(project.id),
            group_id: None,
            target_path: project.path_with_namespace,
            gitlab_hook_id: Some(hook_id),
            secret_sha256: secret_digest(&secret),
        })
        .await;
    match recorded {
        Ok(row) => Ok(row),
        Err(err) => {
            if let Err(undo) = api
                .delete_project_hook(base, request.token, project.id, hook_id)
                .await
            {
                tracing::warn!(project_id = project.id, hook_id, error = %undo,
                    "gitlab: removing a hook that could not be recorded failed");
            }
            Err(err.into())
        }
    }
}

/// Deletes hook `webhook_id` of `scope`'s on GitLab (a hook already gone there is fine) and
/// forgets it.
pub async fn remove_project_hook(
    api: &GitlabApi,
    hooks: &HookStore,
    scope: &UserScope,
    token: &str,
    webhook_id: &str,
) -> Result<(), InstallError> {
    let user = scope.user_id.clone().unwrap_or_default();
    let row = hooks
        .find(webhook_id)
        .await?
        .filter(|row| row.user_id == user && row.org_id == scope.org_id)
        .ok_or_else(|| InstallError::NotFound(webhook_id.to_owned()))?;
    if let (Some(project), Some(hook)) = (row.project_id, row.gitlab_hook_id) {
        let (project, hook) = (
            u64::try_from(project).unwrap_or_default(),
            u64::try_from(hook).unwrap_or_default(),
        );
        api.delete_project_hook(&row.base_url, token, project, hook)
            .await?;
    }
    hooks.delete(webhook_id).await?;
    Ok(())
}

/// What the entries below share: the settings, the hooks table, the user's token.
struct Context {
    settings: Arc<GitlabSettings>,
    hooks: HookStore,
    api: GitlabApi,
    token: String,
}

async fn context(config: &Config, scope: &UserScope) -> Result<Context, InstallError> {
    let settings = GitlabSettings::for_server(config)
        .map_err(|e| InstallError::Settings(e.to_string()))?
        .ok_or(InstallError::Disabled)?;
    let hooks = HookStore::connect(config).await?;
    let cipher = Cipher::from_config(config, &config.data_dir())
        .map_err(|e| InstallError::Cipher(e.to_string()))?;
    let secrets = SqlSecretsStore::new(hooks.database().clone(), Arc::new(cipher));
    let source = TokenSource {
        secrets: &secrets,
        refresher: None,
    };
    let token = source
        .token(scope, &settings.base_url)
        .await?
        .ok_or_else(|| InstallError::NoToken {
            user: scope.user_id.clone().unwrap_or_default(),
            base_url: settings.base_url.clone(),
        })?;
    Ok(Context {
        hooks,
        api: GitlabApi::new()?,
        token: token.expose().to_owned(),
        settings,
    })
}

/// Installs the hook on `project` (id or path) of the configured GitLab (`GITLAB_BASE_URL`)
/// for `scope`, with their linked GitLab token: what `openhands gitlab install` runs.
pub async fn install_for_user(
    config: &Config,
    scope: &UserScope,
    project: &str,
) -> Result<Model, InstallError> {
    let ctx = context(config, scope).await?;
    let request = ProjectHook {
        base_url: &ctx.settings.base_url,
        project,
        scope,
        token: &ctx.token,
        public_url: &ctx.settings.public_url,
    };
    install_project_hook(&ctx.api, &ctx.hooks, &request).await
}

/// Removes `scope`'s hook `webhook_id` with their linked GitLab token: what `openhands
/// gitlab remove` runs.
pub async fn remove_for_user(
    config: &Config,
    scope: &UserScope,
    webhook_id: &str,
) -> Result<(), InstallError> {
    let ctx = context(config, scope).await?;
    remove_project_hook(&ctx.api, &ctx.hooks, scope, &ctx.token, webhook_id).await
}

/// What installing on every maintained project did.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Hooks installed now.
    pub installed: Vec<Model>,
    /// Projects that already had the hook.
    pub already: Vec<String>,
    /// Projects where installing failed, with why.
    pub failed: Vec<(String, String)>,
}

/// Installs the hook on every project of the configured GitLab that `scope` maintains and
/// that does not have it yet (OpenHands' cron job over synced repositories, for one user);
/// one project's failure does not stop the others. Safe to run again.
pub async fn install_on_maintained_projects(
    config: &Config,
    scope: &UserScope,
) -> Result<Sweep, InstallError> {
    let ctx = context(config, scope).await?;
    let base = ctx.settings.base_url.as_str();
    let mut sweep = Sweep::default();
    for project in ctx.api.maintained_projects(base, &ctx.token).await? {
        let id = project.id.to_string();
        let request = ProjectHook {
            base_url: base,
            project: &id,
            scope,
            token: &ctx.token,
            public_url: &ctx.settings.public_url,
        };
        match install_project_hook(&ctx.api, &ctx.hooks, &request).await {
            Ok(row) => sweep.installed.push(row),
            Err(InstallError::AlreadyInstalled { project, .. }) => sweep.already.push(project),
            Err(err) => sweep
                .failed
                .push((project.path_with_namespace, err.to_string())),
        }
    }
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_64_hex_characters() {
        let (a, b) = (random_token(), random_token());
        let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
