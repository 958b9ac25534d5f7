//! The crate's own settings, read from its own environment variables.
//!
//! Core's `Config` refuses unknown fields (`deny_unknown_fields`), and a provider crate must
//! plug in without editing core, so Gitea's settings are not in it. They are read here, at
//! server start, from:
//!
//! | variable | meaning |
//! |---|---|
//! | `GITEA_WEBHOOKS_ENABLED` | `true`/`1` turns the integration on |
//! | `GITEA_BASE_URL` | e.g. `https://gitea.example.com` (the API is `{base}/api/v1`) |
//! | `GITEA_WEBHOOK_SECRET` | the webhook's secret (HMAC-SHA256 key) |
//! | `GITEA_TOKEN` | an access token of the bot account (posts comments) |
//! | `GITEA_USER_ID` | the OpenHands user every Gitea job runs for (this slice) |
//! | `GITEA_BOT_LOGIN` | the bot's Gitea login; its own comments are ignored (default `openhands`) |
//! | `GITEA_MAX_ATTEMPTS`, `GITEA_BACKOFF_MS` | retries of a failing delivery (5, 2000) |
//!
//! When enabled, a missing or invalid variable is an error naming it (never its value); the
//! framework logs it at start-up and does not mount the webhook route.
//! Values that are secrets never appear in `Debug` output or errors.
//!
//! Embedders and tests that cannot set process environment variables (setting them is
//! `unsafe` in Rust 2024) register a config for one data directory with
//! [`GiteaConfig::install_for`]; it takes precedence over the environment for a server
//! whose `file_store_path` is that directory.

use openhands_core::config::Config;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Settings of the Gitea integration.
#[derive(Clone)]
pub struct GiteaConfig {
    pub base_url: String,
    pub webhook_secret: String,
    pub token: String,
    /// The OpenHands user jobs run for.
    pub user_id: String,
    pub bot_login: String,
    pub max_attempts: u32,
    pub backoff_ms: u64,
}

impl std::fmt::Debug for GiteaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GiteaConfig")
            .field("base_url", &self.base_url)
            .field("webhook_secret", &"<redacted>")
            .field("token", &"<redacted>")
            .field("user_id", &self.user_id)
            .field("bot_login", &self.bot_login)
            .finish_non_exhaustive()
    }
}

/// A missing or invalid setting (named, never with its value).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("GITEA_WEBHOOKS_ENABLED is on but `{0}` is not set")]
    Missing(&'static str),
    #[error("`{0}` is not a valid number")]
    NotANumber(&'static str),
}

fn installed() -> &'static Mutex<HashMap<String, GiteaConfig>> {
    static INSTALLED: OnceLock<Mutex<HashMap<String, GiteaConfig>>> = OnceLock::new();
    INSTALLED.get_or_init(Default::default)
}

impl GiteaConfig {
    /// Uses `config` for the server whose `file_store_path` is `data_dir` (see module docs).
    pub fn install_for(data_dir: &str, config: GiteaConfig) {
        installed()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(data_dir.to_owned(), config);
    }

    /// The settings for this server: installed ones, else the environment; `None` when the
    /// integration is off.
    pub fn for_server(config: &Config) -> Result<Option<Self>, ConfigError> {
        if let Some(found) = installed()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&config.file_store_path)
        {
            return Ok(Some(found.clone()));
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment in production).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let on = lookup("GITEA_WEBHOOKS_ENABLED").is_some_and(|v| {
            matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")
        });
        if !on {
            return Ok(None);
        }
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let number = |name: &'static str, default: u64| match lookup(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| ConfigError::NotANumber(name)),
        };
        Ok(Some(Self {
            base_url: required("GITEA_BASE_URL")?.trim_end_matches('/').to_owned(),
            webhook_secret: required("GITEA_WEBHOOK_SECRET")?,
            token: required("GITEA_TOKEN")?,
            user_id: required("GITEA_USER_ID")?,
            bot_login: lookup("GITEA_BOT_LOGIN").unwrap_or_else(|| "openhands".to_owned()),
            max_attempts: u32::try_from(number("GITEA_MAX_ATTEMPTS", 5)?)
                .map_err(|_| ConfigError::NotANumber("GITEA_MAX_ATTEMPTS"))?,
            backoff_ms: number("GITEA_BACKOFF_MS", 2_000)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn off_unless_enabled() {
        assert!(matches!(GiteaConfig::from_lookup(env(&[])), Ok(None)));
    }

    #[test]
    fn enabled_without_a_secret_names_the_variable() {
        let err = GiteaConfig::from_lookup(env(&[
            ("GITEA_WEBHOOKS_ENABLED", "true"),
            ("GITEA_BASE_URL", "http://g"),
        ]))
        .expect_err("missing");
        assert_eq!(err, ConfigError::Missing("GITEA_WEBHOOK_SECRET"));
    }

    #[test]
    fn debug_redacts_secrets() {
        let config = GiteaConfig::from_lookup(env(&[
            ("GITEA_WEBHOOKS_ENABLED", "1"),
            ("GITEA_BASE_URL", "http://g/"),
            ("GITEA_WEBHOOK_SECRET", "hunter2"),
            ("GITEA_TOKEN", "tok-123"),
            ("GITEA_USER_ID", "u1"),
        ]))
        .expect("valid")
        .expect("enabled");
        assert_eq!(config.base_url, "http://g");
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok-123"),
            "{shown}"
        );
    }
}
