//! `saas.git_oauth`: the configured provider apps, the link cookie, and fresh tokens.
//!
//! [`GitOAuth::fresh_provider_token`] is what conversations go through (as the
//! [`ProviderTokenSource`] of SaaS mode): a linked token that expires within the refresh
//! margin is refreshed at its provider and the new pair stored before it is returned.
//!
//! **One refresh per token.** GitHub, GitLab and Bitbucket rotate refresh tokens: using
//! one twice fails (and may revoke the grant). Callers for the same user, org and provider
//! queue on one async lock in this process; each reads the stored token again once it
//! holds the lock, so only the first refreshes and the others get its result. Across
//! servers there is no lock: a second server may refresh with the refresh token the first
//! just used, and be refused. So a refused refresh reads the stored token again, and when
//! it changed (another server stored its refresh) that token is the answer. The new pair is
//! written with [`ProviderTokenChange::Refreshed`], which lands only over the token that
//! was refreshed: a refresh racing with an unlink, a re-link or a settings change never
//! resurrects the old link.
//!
//! **The margin.** OpenHands refreshes when a token expires within four hours
//! (`git_oauth.refresh_margin_seconds`). GitLab and Bitbucket tokens live two hours, so a
//! four-hour margin would refresh every token at every use: the margin is at most half the
//! provider's token lifetime (the lifetime it last issued, else the documented one).

use crate::link_cookie::LinkCookies;
use crate::providers::{LINKABLE, OAuthError, ProviderApp, SetupError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use openhands_core::StoreError;
use openhands_core::config::Config;
use openhands_core::crypto::Cipher;
use openhands_core::extension::{ProviderTokenError, ProviderTokenSource, SecretsStore};
use openhands_core::scope::UserScope;
use openhands_core::secrets::{ProviderToken, ProviderTokenChange, ProviderType};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Why a fresh token could not be had. Never holds a token.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(
        "{provider} is not configured for OAuth on this server, so its token cannot be refreshed"
    )]
    NotConfigured { provider: &'static str },
    #[error("the {provider} token expires but has no refresh token; link the account again")]
    NoRefreshToken { provider: &'static str },
    #[error("{provider} refused to refresh the token ({reason}); link the account again")]
    Refused {
        provider: &'static str,
        reason: String,
    },
    #[error("{provider} could not be reached to refresh the token: {reason}")]
    Unavailable {
        provider: &'static str,
        reason: String,
    },
    #[error("reading or storing the {provider} token failed: {source}")]
    Store {
        provider: &'static str,
        #[source]
        source: StoreError,
    },
}

type RefreshKey = (String, String, ProviderType);

/// Linking and refreshing git-provider tokens for one server.
pub struct GitOAuth {
    apps: BTreeMap<ProviderType, ProviderApp>,
    store: Arc<dyn SecretsStore>,
    pub cookies: LinkCookies,
    /// A configured public base URL (`auth.public_url`, or `https://<web_host>`).
    pub public_url: Option<String>,
    margin: chrono::Duration,
    refreshing: Mutex<HashMap<RefreshKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for GitOAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitOAuth")
            .field("apps", &self.apps)
            .field("margin", &self.margin)
            .finish_non_exhaustive()
    }
}

impl GitOAuth {
    /// The apps the config names (none is fine: nothing can be linked, stored tokens pass
    /// through), the cookie settings of the login, and `store` to keep tokens in.
    pub fn from_config(
        config: &Config,
        cipher: Arc<Cipher>,
        store: Arc<dyn SecretsStore>,
    ) -> Result<Self, SetupError> {
        let mut apps = BTreeMap::new();
        for provider in LINKABLE {
            if let Some(app) = ProviderApp::from_config(config, provider)? {
                apps.insert(provider, app);
            }
        }
        let public_url = config
            .auth
            .public_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| u.trim_end_matches('/').to_owned())
            .or_else(|| {
                config
                    .web_host
                    .as_deref()
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(|h| format!("https://{h}"))
            });
        let secure = config.auth.cookie_secure.unwrap_or_else(|| {
            !public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("http://"))
        });
        let margin_seconds =
            i64::try_from(config.git_oauth.refresh_margin_seconds).unwrap_or(i64::MAX);
        Ok(Self {
            apps,
            store,
            cookies: LinkCookies::new(cipher, secure),
            public_url,
            margin: chrono::Duration::try_seconds(margin_seconds).unwrap_or(chrono::Duration::MAX),
            refreshing: Mutex::new(HashMap::new()),
        })
    }

    /// The app of `provider`, when it is configured.
    pub fn app(&self, provider: ProviderType) -> Option<&ProviderApp> {
        self.apps.get(&provider)
    }

    /// The providers users can link here.
    pub fn linkable(&self) -> Vec<ProviderType> {
        self.apps.keys().copied().collect()
    }

    /// Where tokens are kept.
    pub fn store(&self) -> &Arc<dyn SecretsStore> {
        &self.store
    }

    /// How long before expiry a token of `provider` is refreshed.
    pub fn margin(&self, provider: ProviderType) -> chrono::Duration {
        match self.app(provider) {
            Some(app) => self.margin.min(app.token_lifetime() / 2),
            None => self.margin,
        }
    }

    /// Whether `token` expires within the margin at `now`. Tokens without expiry never do.
    pub fn is_due(
        &self,
        provider: ProviderType,
        token: &ProviderToken,
        now: DateTime<Utc>,
    ) -> bool {
        token
            .expires_at
            .is_some_and(|expires| expires - now <= self.margin(provider))
    }

    async fn stored(
        &self,
        scope: &UserScope,
        provider: ProviderType,
    ) -> Result<Option<ProviderToken>, RefreshError> {
        let secrets = self
            .store
            .load(scope)
            .await
            .map_err(|source| RefreshError::Store {
                provider: provider.as_str(),
                source,
            })?;
        Ok(secrets.and_then(|mut s| s.provider_tokens.remove(&provider)))
    }

    /// The lock that serializes refreshes of one user's token at one provider.
    fn refresh_lock(&self, key: &RefreshKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(key.clone()).or_default().clone()
    }

    /// Drops the lock of `key` when nobody but the map and the caller holds it.
    fn release_lock(&self, key: &RefreshKey, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&lock) <= 2 {
            locks.remove(key);
        }
    }

    /// The stored token of `provider` for `scope`, refreshed first (and the new pair
    /// stored) when it expires within the margin. `Ok(None)` when nothing is linked.
    pub async fn fresh_provider_token(
        &self,
        scope: &UserScope,
        provider: ProviderType,
    ) -> Result<Option<ProviderToken>, RefreshError> {
        let Some(token) = self.stored(scope, provider).await? else {
            return Ok(None);
        };
        if !self.is_due(provider, &token, Utc::now()) {
            return Ok(Some(token));
        }
        let key = (
            scope.user_id.clone().unwrap_or_default(),
            scope.org_id.clone().unwrap_or_default(),
            provider,
        );
        let lock = self.refresh_lock(&key);
        let result = {
            let _held = lock.lock().await;
            // Whoever held the lock before may have refreshed it already.
            match self.stored(scope, provider).await {
                Ok(Some(token)) if self.is_due(provider, &token, Utc::now()) => {
                    self.refresh(scope, provider, token).await.map(Some)
                }
                other => other,
            }
        };
        self.release_lock(&key, lock);
        result
    }

    /// Refreshes `token` and stores the new pair over it. Runs under the refresh lock.
    async fn refresh(
        &self,
        scope: &UserScope,
        provider: ProviderType,
        token: ProviderToken,
    ) -> Result<ProviderToken, RefreshError> {
        let name = provider.as_str();
        let app = self
            .app(provider)
            .ok_or(RefreshError::NotConfigured { provider: name })?;
        let (Some(access), Some(refresh)) = (token.token.clone(), token.refresh_token.clone())
        else {
            return Err(RefreshError::NoRefreshToken { provider: name });
        };
        let user_id = scope.user_id.as_deref().unwrap_or_default();
        let issued = match app.refresh(&refresh).await {
            Ok(issued) => issued,
            Err(OAuthError::Refused(reason)) => {
                // Another server may have used this refresh token a moment ago and stored
                // the result: then that is the fresh token.
                if let Some(current) = self.stored(scope, provider).await?
                    && current.token != Some(access)
                {
                    tracing::info!(
                        user_id,
                        provider = name,
                        "token refreshed elsewhere meanwhile"
                    );
                    return Ok(current);
                }
                tracing::warn!(user_id, provider = name, reason = %reason, "token refresh refused");
                return Err(RefreshError::Refused {
                    provider: name,
                    reason,
                });
            }
            Err(OAuthError::Unavailable(reason)) => {
                return Err(RefreshError::Unavailable {
                    provider: name,
                    reason,
                });
            }
        };
        let fresh = ProviderToken {
            token: Some(issued.access_token),
            refresh_token: issued.refresh_token,
            expires_at: issued.expires_at,
            user_id: token.user_id.clone(),
            host: token.host.clone(),
        };
        let change = ProviderTokenChange::Refreshed {
            previous: access,
            token: fresh.clone(),
        };
        let stored = self
            .store
            .change_provider_token(scope, provider, change)
            .await
            .map_err(|source| {
                // The provider has rotated the refresh token; the new one is lost with this
                // write, so the next refresh will ask the user to link again.
                tracing::error!(user_id, provider = name, error = %source, "storing a refreshed token failed");
                RefreshError::Store {
                    provider: name,
                    source,
                }
            })?;
        if stored {
            tracing::info!(user_id, provider = name, "provider token refreshed");
            return Ok(fresh);
        }
        // The stored token changed while we refreshed (unlinked, linked again, replaced):
        // that one is the user's current choice.
        tracing::info!(
            user_id,
            provider = name,
            "token changed during its refresh; keeping the stored one"
        );
        self.stored(scope, provider)
            .await?
            .ok_or(RefreshError::Refused {
                provider: name,
                reason: "the account was unlinked meanwhile".into(),
            })
    }
}

#[async_trait]
impl ProviderTokenSource for GitOAuth {
    async fn fresh_token(
        &self,
        scope: &UserScope,
        provider: ProviderType,
        token: ProviderToken,
    ) -> Result<ProviderToken, ProviderTokenError> {
        if !self.is_due(provider, &token, Utc::now()) {
            return Ok(token);
        }
        let failed = |message: String| ProviderTokenError { provider, message };
        match self.fresh_provider_token(scope, provider).await {
            Ok(Some(fresh)) => Ok(fresh),
            Ok(None) => Err(failed("the account was unlinked meanwhile".into())),
            Err(err) => Err(failed(err.to_string())),
        }
    }
}
