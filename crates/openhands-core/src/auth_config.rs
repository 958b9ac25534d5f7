//! The `[auth]` section: SaaS login through OIDC (Keycloak or any provider), the session
//! cookie, and the gates a signed-in user passes.
//!
//! OpenHands deployments configure Keycloak with `KEYCLOAK_*` variables; those keep
//! working. Any other OIDC provider is named by its issuer URL (`OIDC_ISSUER_URL`). The
//! OSS config class ignores this section.
//!
//! The cookie keys are their own rotation list (`cookie_keys`), apart from the keys that
//! seal data at rest: a key that only ever seals short-lived cookies can be rotated (and
//! every browser logged out) without re-sealing the database, and a leak of one never
//! opens the other's values.

use crate::config::VersionedKey;
use crate::crypto::{KEY_LEN, MAX_KEY_ID_LEN, decode_key, is_valid_key_id};
use crate::secret::{Secret, serialize_redacted};
use serde::{Deserialize, Serialize};

/// Default absolute lifetime of a login session: 14 days.
pub const DEFAULT_SESSION_MAX_AGE_SECONDS: u64 = 14 * 24 * 3600;

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
    /// Password of Keycloak's `admin` user (realm `master`), for the admin API calls of the
    /// e-mail routes (change an address, send the verification e-mail), as OpenHands does.
    /// Without it those calls use the client's own credentials, whose service account then
    /// needs the `manage-users` role (the narrower grant). Env: `KEYCLOAK_ADMIN_PASSWORD`.
    #[serde(serialize_with = "serialize_redacted")]
    pub keycloak_admin_password: Option<Secret>,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// This server's public base URL, e.g. `https://app.example.com`; the login callback is
    /// `<public_url>/oauth/keycloak/callback`. Default: `https://<web_host>` when `web_host`
    /// is set. SaaS login refuses to start with neither: a redirect URI is never built from
    /// a request's `Host`. Env: `OPENHANDS_AUTH__PUBLIC_URL`.
    pub public_url: Option<String>,
    /// Keys that seal the login and session cookies, oldest first: the last seals, all open.
    /// The same forms as `secrets_keys` (`id:key` pairs separated by commas in env). When
    /// empty, each secrets key gives a cookie key by HKDF-SHA256 under its own label, so a
    /// data key never seals a cookie itself. Env: `OPENHANDS_COOKIE_KEYS`.
    #[serde(
        deserialize_with = "crate::config::versioned_keys",
        serialize_with = "crate::config::serialize_keys_redacted"
    )]
    pub cookie_keys: Vec<VersionedKey>,
    /// Seconds a login session lives at most, however often it is used or refreshed: the
    /// server-side session record expires then and the user logs in again.
    pub session_max_age_seconds: u64,
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
            keycloak_admin_password: None,
            scopes: vec!["email".into(), "profile".into()],
            public_url: None,
            cookie_keys: Vec::new(),
            session_max_age_seconds: DEFAULT_SESSION_MAX_AGE_SECONDS,
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

    /// The configured cookie keys as `(id, raw key)`, oldest first; empty when none is set
    /// (the login derives them from the secrets keys then). Checks ids (valid, unique) and
    /// key lengths; the error names the entry, never the key material.
    pub fn cookie_key_ring(&self) -> Result<Vec<(String, [u8; KEY_LEN])>, CookieKeyError> {
        let mut ring: Vec<(String, [u8; KEY_LEN])> = Vec::with_capacity(self.cookie_keys.len());
        for (index, entry) in self.cookie_keys.iter().enumerate() {
            let entry_no = index + 1;
            let id = entry.id.trim();
            if !is_valid_key_id(id) {
                return Err(CookieKeyError::Id { entry: entry_no });
            }
            if ring.iter().any(|(other, _)| other == id) {
                return Err(CookieKeyError::Duplicate { id: id.to_owned() });
            }
            let raw = decode_key(entry.key.expose()).map_err(|_| CookieKeyError::Key {
                entry: entry_no,
                id: id.to_owned(),
            })?;
            ring.push((id.to_owned(), raw));
        }
        Ok(ring)
    }
}

/// An unusable `auth.cookie_keys` entry; names the entry, never the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CookieKeyError {
    #[error(
        "key `auth.cookie_keys` (`OPENHANDS_COOKIE_KEYS`) entry {entry}: expected `<id>:<base64 key>` \
         with an id of 1-{MAX_KEY_ID_LEN} characters of A-Z, a-z, 0-9, `_`, `-`"
    )]
    Id { entry: usize },
    #[error("key `auth.cookie_keys` (`OPENHANDS_COOKIE_KEYS`): id `{id}` is given twice")]
    Duplicate { id: String },
    #[error(
        "key `auth.cookie_keys` (`OPENHANDS_COOKIE_KEYS`) entry {entry} (id `{id}`): expected \
         base64 of {KEY_LEN} bytes"
    )]
    Key { entry: usize, id: String },
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

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error
    fn cookie_keys_load_from_env_or_file_and_are_redacted() {
        use crate::config::Config;
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        figment::Jail::expect_with(|jail| {
            let load = |jail: &figment::Jail| {
                Config::from_figment(Config::figment(&jail.directory().join("openhands.toml")))
                    .expect("config")
            };
            let defaults = load(jail).auth;
            assert!(defaults.cookie_keys.is_empty());
            assert_eq!(
                defaults.session_max_age_seconds,
                DEFAULT_SESSION_MAX_AGE_SECONDS
            );
            jail.create_file(
                "openhands.toml",
                &format!(
                    "[auth]\nsession_max_age_seconds = 60\n[[auth.cookie_keys]]\nid = \"f1\"\nkey = \"{key}\"\n"
                ),
            )?;
            let from_file = load(jail).auth;
            assert_eq!(from_file.session_max_age_seconds, 60);
            assert_eq!(from_file.cookie_key_ring().expect("ring")[0].0, "f1");
            jail.set_env("OPENHANDS_COOKIE_KEYS", format!("e1:{key}, e2:{key}"));
            let config = load(jail);
            let ids: Vec<String> = config
                .auth
                .cookie_key_ring()
                .expect("ring")
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            assert_eq!(ids, ["e1", "e2"], "env wins over the file");
            let dump = serde_json::to_string(&config).expect("dump");
            assert!(dump.contains("e1") && !dump.contains(key), "{dump}");
            Ok(())
        });
    }

    #[test]
    fn cookie_keys_are_checked_without_showing_them() {
        use base64::Engine;
        let good = base64::engine::general_purpose::STANDARD.encode([7u8; KEY_LEN]);
        let keys = |entries: &[(&str, &str)]| AuthConfig {
            cookie_keys: entries
                .iter()
                .map(|(id, key)| VersionedKey::new(*id, Secret::new(*key)))
                .collect(),
            ..AuthConfig::default()
        };
        assert!(
            AuthConfig::default()
                .cookie_key_ring()
                .expect("none")
                .is_empty()
        );
        let ring = keys(&[("c1", &good), ("c2", &good)])
            .cookie_key_ring()
            .expect("valid");
        assert_eq!(ring.len(), 2);
        assert_eq!(ring[1].0, "c2");
        for (bad, entry) in [
            (keys(&[("", &good)]), "entry 1"),
            (keys(&[("c1", &good), ("c1", &good)]), "twice"),
            (keys(&[("c1", "not-a-key-at-all")]), "entry 1 (id `c1`)"),
        ] {
            let err = bad.cookie_key_ring().expect_err("refused").to_string();
            assert!(err.contains(entry), "{err}");
            assert!(err.contains("OPENHANDS_COOKIE_KEYS"), "{err}");
            assert!(!err.contains(&good) && !err.contains("not-a-key"), "{err}");
        }
    }
}
