//! The `[auth]` section: SaaS login through OIDC (Keycloak or any provider), the session
//! cookie, and the gates a signed-in user passes.
//!
//! OpenHands deployments configure Keycloak with `KEYCLOAK_*` variables; those keep
//! working. Any other OIDC provider is named by its issuer URL (`OIDC_ISSUER_URL`). The
//! OSS config class ignores this section.

use crate::secret::{Secret, serialize_redacted};
use serde::{Deserialize, Serialize};

/// SaaS login settings (`[auth]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The provider's issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    /// Wins over the Keycloak settings. Env: `OIDC_ISSUER_URL`.
    pub issuer_url: Option<String>,
    /// Keycloak base URL as this server reaches it. With `keycloak_realm_name` it gives the
    /// issuer `<url>/realms/<realm>`. Env: `KEYCLOAK_SERVER_URL`.
    pub keycloak_server_url: Option<String>,
    /// Keycloak realm. Env: `KEYCLOAK_REALM_NAME`.
    pub keycloak_realm_name: Option<String>,
    /// OAuth client id. Env: `OIDC_CLIENT_ID` or `KEYCLOAK_CLIENT_ID`.
    pub client_id: Option<String>,
    /// OAuth client secret. Env: `OIDC_CLIENT_SECRET` or `KEYCLOAK_CLIENT_SECRET`.
    #[serde(serialize_with = "serialize_redacted")]
    pub client_secret: Option<Secret>,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// This server's public base URL, e.g. `https://app.example.com`; the login callback is
    /// `<public_url>/oauth/keycloak/callback`. Default: `https://<web_host>` when `web_host`
    /// is set, else the request's own host (http only for localhost).
    /// Env: `OPENHANDS_AUTH__PUBLIC_URL`.
    pub public_url: Option<String>,
    /// Mark the session cookie `Secure`. Default: yes, except when the public URL is plain
    /// http (local development).
    pub cookie_secure: Option<bool>,
    /// Refuse users whose e-mail the provider has not verified (403 `email_not_verified`).
    #[serde(deserialize_with = "crate::config::flexible_bool")]
    pub require_verified_email: bool,
    /// Refuse users until they accept the terms of service (403 `tos_not_accepted`).
    #[serde(deserialize_with = "crate::config::flexible_bool")]
    pub require_tos: bool,
    /// A file of allowed user names or e-mails, one per line (case-insensitive).
    /// Env: `GITHUB_USER_LIST_FILE`.
    pub allowlist_file: Option<String>,
    /// Turn the allowlist off even when a file is named. Env: `DISABLE_WAITLIST`.
    #[serde(deserialize_with = "crate::config::flexible_bool")]
    pub disable_waitlist: bool,
    /// Seconds a cached provider discovery document and key set stay fresh.
    pub discovery_ttl_seconds: u64,
    /// Milliseconds a replica reuses a caller's current org and an API key's owner before
    /// reading them again; an org switch or a revoked key takes effect within this. 0 turns
    /// the cache off.
    pub lookup_cache_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer_url: None,
            keycloak_server_url: None,
            keycloak_realm_name: None,
            client_id: None,
            client_secret: None,
            scopes: vec!["email".into(), "profile".into()],
            public_url: None,
            cookie_secure: None,
            require_verified_email: true,
            require_tos: true,
            allowlist_file: None,
            disable_waitlist: false,
            discovery_ttl_seconds: 3600,
            lookup_cache_ms: 1000,
        }
    }
}

impl AuthConfig {
    /// The issuer to discover: `issuer_url`, else the Keycloak realm's issuer.
    pub fn issuer(&self) -> Option<String> {
        if let Some(url) = self.issuer_url.as_deref().filter(|u| !u.trim().is_empty()) {
            return Some(url.trim().trim_end_matches('/').to_owned());
        }
        let server = self
            .keycloak_server_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())?;
        let realm = self
            .keycloak_realm_name
            .as_deref()
            .filter(|r| !r.trim().is_empty())?;
        Some(format!(
            "{}/realms/{}",
            server.trim().trim_end_matches('/'),
            realm.trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_prefers_the_explicit_url_then_keycloak() {
        let mut auth = AuthConfig {
            keycloak_server_url: Some("https://kc.example.com/".into()),
            keycloak_realm_name: Some("allhands".into()),
            ..AuthConfig::default()
        };
        assert_eq!(
            auth.issuer().as_deref(),
            Some("https://kc.example.com/realms/allhands")
        );
        auth.issuer_url = Some("https://idp.example.com/".into());
        assert_eq!(auth.issuer().as_deref(), Some("https://idp.example.com"));
        auth.issuer_url = None;
        auth.keycloak_realm_name = None;
        assert_eq!(auth.issuer(), None);
    }
}
