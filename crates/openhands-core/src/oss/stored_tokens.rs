//! `oss.stored_tokens`: conversations get the provider tokens as stored.
//!
//! A single-user install sets personal access tokens by hand; they do not expire and there
//! is no OAuth client to refresh them with.

use crate::extension::{ProviderTokenError, ProviderTokenSource};
use crate::scope::UserScope;
use crate::secrets::{ProviderToken, ProviderType};
use async_trait::async_trait;
use std::sync::Arc;

/// Hands tokens over unchanged.
#[derive(Debug, Default)]
pub struct StoredProviderTokens;

#[async_trait]
impl ProviderTokenSource for StoredProviderTokens {
    async fn fresh_token(
        &self,
        _scope: &UserScope,
        _provider: ProviderType,
        token: ProviderToken,
    ) -> Result<ProviderToken, ProviderTokenError> {
        Ok(token)
    }
}

crate::register_plugin!(
    crate::extension::ProviderTokenSource,
    "oss.stored_tokens",
    "Conversations get git-provider tokens as stored (no refresh)",
    |ctx| Ok(Arc::new(StoredProviderTokens))
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extension::fresh_secrets;
    use crate::secrets::UserSecrets;

    #[tokio::test]
    async fn tokens_pass_through_unchanged() {
        let mut secrets = UserSecrets::default();
        secrets
            .provider_tokens
            .insert(ProviderType::Gitlab, ProviderToken::plain("glpat-1"));
        let fresh = fresh_secrets(&StoredProviderTokens, &UserScope::user("u"), secrets).await;
        assert_eq!(
            fresh.provider_tokens[&ProviderType::Gitlab]
                .token
                .as_ref()
                .map(|t| t.expose()),
            Some("glpat-1")
        );
    }
}
