//! The GitLab tokens the integration acts with. GitLab has no App identity like GitHub's, so,
//! as in OpenHands, every call is made with a user's own token: the asker's (proving their
//! account link, checking their role, answering them), or, for an asker with no linked
//! account, the token of the user who installed the hook.
//!
//! A token is sent only to the GitLab that issued it ([`same_host`]): a hook row names its
//! GitLab, and a self-managed host must never see a gitlab.com token (or another host's),
//! whatever a payload says about its sender.

use openhands_core::extension::ProviderTokenSource;
use openhands_core::extension::SecretsStore;
use openhands_core::scope::UserScope;
use openhands_core::secret::Secret;
use openhands_core::secrets::ProviderType;

/// `host[:port]` of an http(s) URL, lower-cased; the port only when it is not the scheme's
/// default.
fn authority_of_url(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_ascii_lowercase();
    Some(match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// Whether a GitLab token issued by `token_host` (a provider token's `host`: a bare host,
/// `host:port` or a URL; `None` is gitlab.com) may be sent to the GitLab at `base_url`.
pub fn same_host(token_host: Option<&str>, base_url: &str) -> bool {
    let Some(target) = authority_of_url(base_url) else {
        return false;
    };
    let issuer = match token_host.map(str::trim).filter(|h| !h.is_empty()) {
        None => "gitlab.com".to_owned(),
        Some(host) if host.contains("://") => match authority_of_url(host) {
            Some(authority) => authority,
            None => return false,
        },
        Some(host) => host.trim_end_matches('/').to_ascii_lowercase(),
    };
    issuer == target
}

/// Why a token could not be read (storage, never the token).
#[derive(Debug, thiserror::Error)]
#[error("reading the GitLab token of user `{user}` failed: {reason}")]
pub struct TokenError {
    pub user: String,
    pub reason: String,
}

/// Where tokens come from: the user's stored secrets, refreshed when a refresher is known
/// (the server's provider-token source, lent while a job is admitted).
pub struct TokenSource<'a> {
    pub secrets: &'a dyn SecretsStore,
    pub refresher: Option<&'a dyn ProviderTokenSource>,
}

impl TokenSource<'_> {
    /// `scope`'s GitLab token, if they have one that belongs to the GitLab at `base_url`.
    pub async fn token(
        &self,
        scope: &UserScope,
        base_url: &str,
    ) -> Result<Option<Secret>, TokenError> {
        let user = scope.user_id.clone().unwrap_or_default();
        let stored = self
            .secrets
            .load(scope)
            .await
            .map_err(|e| TokenError {
                user: user.clone(),
                reason: e.to_string(),
            })?
            .and_then(|mut s| s.provider_tokens.remove(&ProviderType::Gitlab));
        let Some(stored) = stored else {
            return Ok(None);
        };
        if !same_host(stored.host.as_deref(), base_url) {
            return Ok(None);
        }
        let token = match self.refresher {
            None => stored,
            Some(refresher) => match refresher
                .fresh_token(scope, ProviderType::Gitlab, stored.clone())
                .await
            {
                Ok(fresh) => fresh,
                Err(err) => {
                    tracing::info!(user_id = %user, error = %err, "gitlab: using the stored token");
                    stored
                }
            },
        };
        Ok(token.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_goes_only_to_the_gitlab_that_issued_it() {
        assert!(same_host(None, "https://gitlab.com"));
        assert!(!same_host(None, "https://gitlab.example.com"));
        assert!(same_host(
            Some("gitlab.example.com"),
            "https://GitLab.example.com"
        ));
        assert!(same_host(
            Some("https://gitlab.example.com/"),
            "https://gitlab.example.com"
        ));
        assert!(same_host(Some("127.0.0.1:8080"), "http://127.0.0.1:8080"));
        assert!(!same_host(Some("127.0.0.1:8080"), "http://127.0.0.1:9090"));
        assert!(!same_host(
            Some("gitlab.example.com"),
            "https://gitlab.example.com.evil.io"
        ));
        assert!(!same_host(Some("gitlab.com"), "not a url"));
    }
}
