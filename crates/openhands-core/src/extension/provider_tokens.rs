//! Where a starting conversation gets its git-provider tokens.
//!
//! Tokens set by hand (personal access tokens) do not expire, and the OSS default
//! (`oss.stored_tokens`) hands them over as stored. Tokens linked by OAuth do: GitHub App
//! user tokens live eight hours, GitLab and Bitbucket tokens two. A source that knows the
//! providers' OAuth clients (SaaS: `saas.git_oauth`) refreshes a token that is about to
//! expire and stores the new pair before handing it over, so the agent does not start with
//! a token that dies during its work.

use crate::scope::UserScope;
use crate::secrets::{ProviderToken, ProviderType, UserSecrets};
use async_trait::async_trait;

/// Why a fresh token could not be had. The message names the provider and the cause,
/// never a token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the {} token could not be refreshed: {message}", provider.as_str())]
pub struct ProviderTokenError {
    pub provider: ProviderType,
    pub message: String,
}

/// Gives conversations usable provider tokens.
///
/// Guarantees: returns the stored token unchanged when it is not about to expire (or
/// cannot expire); a refreshed token is stored before it is returned; concurrent calls for
/// the same user and provider refresh once; errors never contain token values.
#[async_trait]
pub trait ProviderTokenSource: Send + Sync {
    /// `token` (the stored token of `provider` for `scope`), or a refreshed one.
    async fn fresh_token(
        &self,
        scope: &UserScope,
        provider: ProviderType,
        token: ProviderToken,
    ) -> Result<ProviderToken, ProviderTokenError>;
}

/// `secrets` with every provider token passed through `source`. A token that cannot be
/// refreshed stays as stored (it may still work for a while; if not, the clone or the
/// agent's git calls say so), and the failure is logged without the token.
pub async fn fresh_secrets(
    source: &dyn ProviderTokenSource,
    scope: &UserScope,
    mut secrets: UserSecrets,
) -> UserSecrets {
    let providers: Vec<ProviderType> = secrets.provider_tokens.keys().copied().collect();
    for provider in providers {
        let Some(stored) = secrets.provider_tokens.get(&provider).cloned() else {
            continue;
        };
        match source.fresh_token(scope, provider, stored).await {
            Ok(fresh) => {
                secrets.provider_tokens.insert(provider, fresh);
            }
            Err(err) => tracing::warn!(
                user_id = scope.user_id.as_deref().unwrap_or_default(),
                provider = provider.as_str(),
                error = %err,
                "using the stored provider token"
            ),
        }
    }
    secrets
}
