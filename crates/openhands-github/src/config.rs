//! The GitHub App's settings, read from the environment (the names OpenHands uses).
//!
//! | variable | meaning |
//! |---|---|
//! | `GITHUB_APP_CLIENT_ID` | the App's client id; the App JWT's `iss` (as OpenHands does) |
//! | `GITHUB_APP_PRIVATE_KEY` | the App's private key, PEM; literal `\n` escapes are unfolded |
//! | `GITHUB_APP_WEBHOOK_SECRET` | the webhook secret (HMAC-SHA256 key of `X-Hub-Signature-256`) |
//! | `GITHUB_API_URL` | REST API base, default `https://api.github.com` (GitHub Enterprise, tests) |
//!
//! The App is off (`Ok(None)`) when none of the three required variables is set; when some
//! are, each missing one is an error naming it. Errors and `Debug` never show the key or the
//! secret.

use secrecy::SecretString;

/// The public GitHub REST API.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

const CLIENT_ID: &str = "GITHUB_APP_CLIENT_ID";
const PRIVATE_KEY: &str = "GITHUB_APP_PRIVATE_KEY";
const WEBHOOK_SECRET: &str = "GITHUB_APP_WEBHOOK_SECRET";
const API_URL: &str = "GITHUB_API_URL";

/// Settings of the GitHub App.
pub struct GithubAppConfig {
    /// The App's client id (`Iv1...`/`Iv23...`), used as the JWT issuer.
    pub client_id: String,
    /// The App's private key, PEM, newlines unfolded.
    pub private_key: SecretString,
    /// The webhook secret.
    pub webhook_secret: SecretString,
    /// REST API base without a trailing `/`.
    pub api_url: String,
}

impl std::fmt::Debug for GithubAppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubAppConfig")
            .field("client_id", &self.client_id)
            .field("private_key", &"<redacted>")
            .field("webhook_secret", &"<redacted>")
            .field("api_url", &self.api_url)
            .finish()
    }
}

/// A missing or invalid setting (named, never with its value).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("the GitHub App is partly configured but `{0}` is not set")]
    Missing(&'static str),
    #[error("`{PRIVATE_KEY}` is not a PEM RSA private key")]
    InvalidPrivateKey,
    #[error("`{API_URL}` must start with http:// or https://")]
    InvalidApiUrl,
}

impl GithubAppConfig {
    /// Reads the settings from the process environment; `None` when the App is not configured.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment in production). The App's
    /// webhooks are on when its private key or webhook secret is set (then all three must
    /// be); the client id alone is not enough, since it also serves the linking of users'
    /// GitHub accounts, which needs no App key.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let (client_id, key, secret) = (get(CLIENT_ID), get(PRIVATE_KEY), get(WEBHOOK_SECRET));
        if key.is_none() && secret.is_none() {
            return Ok(None);
        }
        let client_id = client_id.ok_or(ConfigError::Missing(CLIENT_ID))?;
        let key = unfold_newlines(&key.ok_or(ConfigError::Missing(PRIVATE_KEY))?);
        let webhook_secret = secret.ok_or(ConfigError::Missing(WEBHOOK_SECRET))?;
        if !key.contains("-----BEGIN") {
            return Err(ConfigError::InvalidPrivateKey);
        }
        let api_url = get(API_URL)
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned())
            .trim()
            .trim_end_matches('/')
            .to_owned();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(ConfigError::InvalidApiUrl);
        }
        Ok(Some(Self {
            client_id: client_id.trim().to_owned(),
            private_key: SecretString::from(key),
            webhook_secret: SecretString::from(webhook_secret),
            api_url,
        }))
    }
}

/// Turns literal `\n` escapes (a PEM squeezed onto one env line) into newlines, as OpenHands
/// does with `GITHUB_APP_PRIVATE_KEY.replace('\\n', '\n')`; a real multi-line PEM is unchanged.
pub fn unfold_newlines(value: &str) -> String {
    value.replace("\\n", "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    const PEM: &str =
        "-----BEGIN RSA PRIVATE KEY-----\\nTOPSECRETKEY\\n-----END RSA PRIVATE KEY-----\\n";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn full() -> Vec<(&'static str, &'static str)> {
        vec![
            (CLIENT_ID, "Iv23abc"),
            (PRIVATE_KEY, PEM),
            (WEBHOOK_SECRET, "hunter2"),
        ]
    }

    #[test]
    fn unfold_turns_escaped_newlines_into_newlines() {
        assert_eq!(unfold_newlines("a\\nb\\n"), "a\nb\n");
        assert_eq!(unfold_newlines("a\nb"), "a\nb");
    }

    #[test]
    fn off_when_nothing_is_set() {
        assert_eq!(
            GithubAppConfig::from_lookup(env(&[])).map(|c| c.is_none()),
            Ok(true)
        );
    }

    #[test]
    fn reads_the_settings_and_defaults_the_api_url() {
        let config = GithubAppConfig::from_lookup(env(&full()))
            .expect("valid")
            .expect("configured");
        assert_eq!(config.client_id, "Iv23abc");
        assert_eq!(config.api_url, DEFAULT_API_URL);
        assert_eq!(
            config.private_key.expose_secret(),
            "-----BEGIN RSA PRIVATE KEY-----\nTOPSECRETKEY\n-----END RSA PRIVATE KEY-----\n"
        );
    }

    #[test]
    fn api_url_override_loses_its_trailing_slash() {
        let mut vars = full();
        vars.push((API_URL, "https://ghe.example.com/api/v3/"));
        let config = GithubAppConfig::from_lookup(env(&vars))
            .expect("valid")
            .expect("configured");
        assert_eq!(config.api_url, "https://ghe.example.com/api/v3");
    }

    #[test]
    fn the_client_id_alone_is_account_linking_not_the_app() {
        assert!(
            GithubAppConfig::from_lookup(env(&[(CLIENT_ID, "Iv23abc")]))
                .expect("not an error")
                .is_none()
        );
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err =
            GithubAppConfig::from_lookup(env(&[(CLIENT_ID, "Iv23abc"), (WEBHOOK_SECRET, "s")]))
                .expect_err("missing key");
        assert_eq!(err, ConfigError::Missing(PRIVATE_KEY));
        let err = GithubAppConfig::from_lookup(env(&[(CLIENT_ID, "Iv23abc"), (PRIVATE_KEY, PEM)]))
            .expect_err("missing secret");
        assert_eq!(err, ConfigError::Missing(WEBHOOK_SECRET));
        let err = GithubAppConfig::from_lookup(env(&[(WEBHOOK_SECRET, "hunter2")]))
            .expect_err("missing client id");
        assert_eq!(err, ConfigError::Missing(CLIENT_ID));
    }

    #[test]
    fn a_key_that_is_not_pem_is_refused_without_echoing_it() {
        let err = GithubAppConfig::from_lookup(env(&[
            (CLIENT_ID, "Iv23abc"),
            (PRIVATE_KEY, "TOPSECRETKEY"),
            (WEBHOOK_SECRET, "hunter2"),
        ]))
        .expect_err("not pem");
        assert_eq!(err, ConfigError::InvalidPrivateKey);
        assert!(!err.to_string().contains("TOPSECRETKEY"));
    }

    #[test]
    fn a_bad_api_url_is_refused() {
        let mut vars = full();
        vars.push((API_URL, "api.github.com"));
        let err = GithubAppConfig::from_lookup(env(&vars)).expect_err("bad url");
        assert_eq!(err, ConfigError::InvalidApiUrl);
    }

    #[test]
    fn debug_redacts_the_key_and_the_secret() {
        let config = GithubAppConfig::from_lookup(env(&full()))
            .expect("valid")
            .expect("configured");
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("TOPSECRETKEY") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(shown.contains("Iv23abc"), "{shown}");
    }
}
