//! The `[git_oauth]` section: the OAuth apps through which SaaS users link their GitHub,
//! GitLab and Bitbucket accounts, and when linked tokens are refreshed.
//!
//! OpenHands deployments name the apps with `GITHUB_APP_CLIENT_ID`,
//! `GITHUB_APP_CLIENT_SECRET`, `GITLAB_APP_CLIENT_ID`, ...; those keep working. GitHub's
//! client id is the top-level `github_app_client_id` (which `/api/options/config` already
//! echoes), so `[git_oauth.github]` holds only the rest. A provider is offered when its id
//! and secret are both set. The OSS config class ignores this section.

use crate::secret::{Secret, serialize_redacted};
use serde::{Deserialize, Serialize};

/// Linking git-provider accounts by OAuth (`[git_oauth]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitOAuthConfig {
    /// GitHub (or GitHub Enterprise Server); the client id is `github_app_client_id`.
    pub github: GithubOAuthConfig,
    /// GitLab (gitlab.com or self-managed).
    pub gitlab: OAuthAppConfig,
    /// Bitbucket Cloud.
    pub bitbucket: OAuthAppConfig,
    /// Refresh a linked token when it expires within this many seconds (OpenHands: four
    /// hours). Never more than half the provider's token lifetime, so a token just issued
    /// is not refreshed at once.
    pub refresh_margin_seconds: u64,
}

impl Default for GitOAuthConfig {
    fn default() -> Self {
        Self {
            github: GithubOAuthConfig::default(),
            gitlab: OAuthAppConfig::default(),
            bitbucket: OAuthAppConfig::default(),
            refresh_margin_seconds: 4 * 3600,
        }
    }
}

/// The GitHub App (or OAuth App) through which users link GitHub (`[git_oauth.github]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GithubOAuthConfig {
    /// The app's client secret. Env: `GITHUB_APP_CLIENT_SECRET`.
    #[serde(serialize_with = "serialize_redacted")]
    pub client_secret: Option<Secret>,
    /// Where users authorize and tokens are issued: `https://github.com` (default), or a
    /// GitHub Enterprise Server's `https://<host>`.
    pub base_url: Option<String>,
    /// The REST API: `https://api.github.com` (default), or `<base_url>/api/v3` for
    /// GitHub Enterprise Server (the default when `base_url` is set).
    pub api_url: Option<String>,
    /// Scopes to ask for. GitHub Apps take their permissions from the app and need none
    /// (default); an OAuth App needs e.g. `["repo", "read:user"]`.
    pub scopes: Option<Vec<String>>,
}

/// An OAuth application registered at GitLab or Bitbucket.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthAppConfig {
    /// The application's client id (GitLab: "Application ID", Bitbucket: consumer "Key").
    /// Env: `GITLAB_APP_CLIENT_ID`, `BITBUCKET_APP_CLIENT_ID`.
    pub client_id: Option<String>,
    /// Its secret. Env: `GITLAB_APP_CLIENT_SECRET`, `BITBUCKET_APP_CLIENT_SECRET`.
    #[serde(serialize_with = "serialize_redacted")]
    pub client_secret: Option<Secret>,
    /// Where users authorize and tokens are issued: `https://gitlab.com`,
    /// `https://bitbucket.org` (defaults), or a self-managed GitLab's URL.
    pub base_url: Option<String>,
    /// The REST API: GitLab `<base_url>/api/v4`, Bitbucket `https://api.bitbucket.org`
    /// (defaults).
    pub api_url: Option<String>,
    /// Scopes to ask for. GitLab default: `["api", "read_user"]`; Bitbucket takes the
    /// consumer's permissions and needs none.
    pub scopes: Option<Vec<String>>,
}

/// A value when it is set and not blank, trimmed.
pub fn non_blank(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}
