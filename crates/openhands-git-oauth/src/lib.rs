//! SaaS mode: users link their GitHub, GitLab and Bitbucket accounts by OAuth, and
//! conversations get tokens that are refreshed before they expire.
//!
//! OpenHands brokers these tokens through Keycloak's identity providers; we talk to the
//! providers directly, as an OAuth client of each (the `oauth2` crate does the protocol).
//! A linked token is stored like any provider token, through the user's `SecretsStore`
//! (sealed at rest, scoped by user and org), together with its refresh token and expiry.
//!
//! Pieces, each with one job:
//! - [`providers`]: each provider's endpoints and quirks; authorization URL, code and
//!   refresh grants, and the account name behind a token.
//! - [`link_cookie`]: the sealed cookie that carries a link from its redirect to its
//!   callback.
//! - [`service`]: [`GitOAuth`], the configured apps and [`GitOAuth::fresh_provider_token`]
//!   (one refresh per token, the new pair stored before it is used); it is the
//!   `saas.git_oauth` [`ProviderTokenSource`](openhands_core::extension::ProviderTokenSource).
//! - [`routes`]: link (login and callback) and unlink.
//!
//! See `docs/git-providers.md`.

pub mod link_cookie;
pub mod providers;
pub mod routes;
pub mod service;

pub use providers::{OAuthError, ProviderApp, SetupError};
pub use service::{GitOAuth, RefreshError};

use openhands_core::config::Config;
use openhands_core::registry::PluginError;
use std::sync::Arc;

/// Whether the config names a client id and secret for at least one provider.
pub fn any_provider_configured(config: &Config) -> bool {
    providers::LINKABLE
        .into_iter()
        .any(|provider| ProviderApp::from_config(config, provider).is_ok_and(|app| app.is_some()))
}

openhands_core::register_plugin!(
    openhands_core::extension::ProviderTokenSource,
    "saas.git_oauth",
    "Git-provider tokens linked by OAuth, refreshed (and stored) before they expire",
    |ctx| {
        let store = ctx.services()?.secrets_store;
        let service = Arc::new(
            GitOAuth::from_config(&ctx.config, ctx.cipher.clone(), store)
                .map_err(|e| PluginError(e.to_string()))?,
        );
        let linkable: Vec<&str> = service.linkable().iter().map(|p| p.as_str()).collect();
        tracing::info!(providers = ?linkable, "git provider linking");
        let shared = service.clone();
        ctx.shared
            .get_or_try_init::<Arc<GitOAuth>, PluginError, _, _>(routes::SERVICE_KEY, || async {
                Ok(shared)
            })
            .await?;
        Ok(service)
    }
);
