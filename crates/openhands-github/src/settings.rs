//! The GitHub integration's settings: the App ([`GithubAppConfig`]) plus what the webhooks
//! need, read from the environment (names OpenHands deployers use where one exists).
//!
//! | variable | meaning |
//! |---|---|
//! | `GITHUB_APP_CLIENT_ID`, `GITHUB_APP_PRIVATE_KEY`, `GITHUB_APP_WEBHOOK_SECRET`, `GITHUB_API_URL` | the App, see [`crate::config`]; the integration is on when they are set |
//! | `GITHUB_WEBHOOKS_ENABLED` | default on; off answers every delivery `200` "disabled" (as OpenHands) |
//! | `GITHUB_TRIGGER_LABEL` | the issue label that starts a job (default `openhands`) |
//! | `GITHUB_TRIGGER_MENTION` | the mention that starts a job from a comment (default `@openhands`) |
//! | `GITHUB_APP_BOT_LOGIN` | the App's bot login (`<slug>[bot]`); its comments never trigger (any `Bot` sender is ignored anyway) |
//! | `GITHUB_WEB_URL` | GitHub's web address, for links and clones (default from `GITHUB_API_URL`: `https://github.com`, or the GHES host) |
//! | `GITHUB_WEBHOOK_MAX_ATTEMPTS`, `GITHUB_WEBHOOK_BACKOFF_MS` | retries of a failing delivery or callback (5, 2000) |
//!
//! Links to conversations use the server's public URL (`auth.public_url`, else
//! `https://{WEB_HOST}`).
//!
//! Tests cannot set environment variables (`unsafe` in Rust 2024, and racy), so a config can
//! be installed for one data directory ([`GithubSettings::install_for`]), as the Gitea crate
//! does.

use crate::config::{ConfigError, DEFAULT_API_URL, GithubAppConfig};
use openhands_core::config::Config;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Every variable the integration reads (documented in `docs/github-app.md`, tested).
pub const VARIABLES: [&str; 12] = [
    "GITHUB_APP_CLIENT_ID",
    "GITHUB_APP_PRIVATE_KEY",
    "GITHUB_APP_WEBHOOK_SECRET",
    "GITHUB_API_URL",
    "GITHUB_WEB_URL",
    "GITHUB_WEBHOOKS_ENABLED",
    "GITHUB_TRIGGER_LABEL",
    "GITHUB_TRIGGER_MENTION",
    "GITHUB_APP_BOT_LOGIN",
    "GITHUB_WEBHOOK_MAX_ATTEMPTS",
    "GITHUB_WEBHOOK_BACKOFF_MS",
    "WEB_HOST",
];

/// Everything the GitHub integration needs.
#[derive(Debug)]
pub struct GithubSettings {
    pub app: GithubAppConfig,
    /// `GITHUB_WEBHOOKS_ENABLED`.
    pub webhooks_enabled: bool,
    /// The trigger label, compared case-insensitively.
    pub label: String,
    /// The trigger mention, with its `@`.
    pub mention: String,
    /// The App's bot login, lower-cased, when known.
    pub bot_login: Option<String>,
    /// GitHub's web base, without a trailing `/`.
    pub web_url: String,
    /// This server's public base URL, for links to conversations.
    pub public_url: Option<String>,
    pub max_attempts: u32,
    pub backoff_ms: u64,
}

/// A missing or invalid setting (named, never with its value).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error(transparent)]
    App(#[from] ConfigError),
    #[error("`{0}` is not a valid number")]
    NotANumber(&'static str),
    #[error("`{0}` must not be empty")]
    Empty(&'static str),
}

fn installed() -> &'static Mutex<HashMap<String, Arc<GithubSettings>>> {
    static INSTALLED: OnceLock<Mutex<HashMap<String, Arc<GithubSettings>>>> = OnceLock::new();
    INSTALLED.get_or_init(Default::default)
}

fn flag(value: Option<String>, default: bool) -> bool {
    match value.map(|v| v.trim().to_ascii_lowercase()) {
        None => default,
        Some(v) if v.is_empty() => default,
        Some(v) => matches!(v.as_str(), "1" | "true" | "yes" | "on"),
    }
}

/// GitHub's web address for an API base: `https://api.github.com` → `https://github.com`;
/// GitHub Enterprise Server's `https://host/api/v3` → `https://host`.
pub fn web_url_of(api_url: &str) -> String {
    if api_url == DEFAULT_API_URL {
        return "https://github.com".to_owned();
    }
    api_url
        .strip_suffix("/api/v3")
        .unwrap_or(api_url)
        .to_owned()
}

/// The server's public base URL: `auth.public_url`, else `https://{web_host}`.
pub fn public_url_of(config: &Config) -> Option<String> {
    config
        .auth
        .public_url
        .clone()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| {
            config
                .web_host
                .as_ref()
                .filter(|h| !h.trim().is_empty())
                .map(|h| format!("https://{}", h.trim()))
        })
        .map(|u| u.trim().trim_end_matches('/').to_owned())
}

impl GithubSettings {
    /// Uses `settings` for the server whose `file_store_path` is `data_dir` (tests).
    pub fn install_for(data_dir: &str, settings: GithubSettings) {
        installed()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(data_dir.to_owned(), Arc::new(settings));
    }

    /// The settings for this server: installed ones, else the environment; `None` when the
    /// App is not configured.
    pub fn for_server(config: &Config) -> Result<Option<Arc<Self>>, SettingsError> {
        if let Some(found) = installed()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&config.file_store_path)
        {
            return Ok(Some(found.clone()));
        }
        // The client id is also a core key (`github_app_client_id`, from the same variable or
        // from `openhands.toml`); the rest are this crate's own variables.
        let client_id =
            Some(config.github_app_client_id.trim().to_owned()).filter(|c| !c.is_empty());
        let lookup = |name: &str| match name {
            "GITHUB_APP_CLIENT_ID" => client_id.clone().or_else(|| std::env::var(name).ok()),
            _ => std::env::var(name).ok(),
        };
        Ok(Self::from_lookup(lookup, public_url_of(config))?.map(Arc::new))
    }

    /// Reads the settings through `lookup` (the environment in production).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        public_url: Option<String>,
    ) -> Result<Option<Self>, SettingsError> {
        let Some(app) = GithubAppConfig::from_lookup(&lookup)? else {
            return Ok(None);
        };
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let number = |name: &'static str, default: u64| match get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| SettingsError::NotANumber(name)),
        };
        let label = get("GITHUB_TRIGGER_LABEL").unwrap_or_else(|| "openhands".to_owned());
        let mut mention = get("GITHUB_TRIGGER_MENTION").unwrap_or_else(|| "@openhands".to_owned());
        if !mention.starts_with('@') {
            mention.insert(0, '@');
        }
        if mention.len() < 2 {
            return Err(SettingsError::Empty("GITHUB_TRIGGER_MENTION"));
        }
        let web_url = get("GITHUB_WEB_URL")
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| web_url_of(&app.api_url));
        Ok(Some(Self {
            webhooks_enabled: flag(lookup("GITHUB_WEBHOOKS_ENABLED"), true),
            label,
            mention,
            bot_login: get("GITHUB_APP_BOT_LOGIN").map(|l| l.to_ascii_lowercase()),
            web_url,
            public_url,
            max_attempts: u32::try_from(number("GITHUB_WEBHOOK_MAX_ATTEMPTS", 5)?)
                .map_err(|_| SettingsError::NotANumber("GITHUB_WEBHOOK_MAX_ATTEMPTS"))?,
            backoff_ms: number("GITHUB_WEBHOOK_BACKOFF_MS", 2_000)?,
            app,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\\nK\\n-----END RSA PRIVATE KEY-----\\n";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut map: HashMap<String, String> = [
            ("GITHUB_APP_CLIENT_ID", "Iv23abc"),
            ("GITHUB_APP_PRIVATE_KEY", PEM),
            ("GITHUB_APP_WEBHOOK_SECRET", "hunter2"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in pairs {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_docs_name_every_variable() {
        const GUIDE: &str = include_str!("../../../docs/github-app.md");
        const REFERENCE: &str = include_str!("../../../docs/configuration.md");
        for name in VARIABLES {
            let quoted = format!("`{name}`");
            assert!(
                GUIDE.contains(&quoted),
                "{name} missing from docs/github-app.md"
            );
            assert!(
                REFERENCE.contains(&quoted),
                "{name} missing from docs/configuration.md"
            );
        }
    }

    #[test]
    fn defaults_follow_openhands() {
        let settings = GithubSettings::from_lookup(env(&[]), None)
            .expect("valid")
            .expect("configured");
        assert!(settings.webhooks_enabled);
        assert_eq!(settings.label, "openhands");
        assert_eq!(settings.mention, "@openhands");
        assert_eq!(settings.web_url, "https://github.com");
        assert_eq!((settings.max_attempts, settings.backoff_ms), (5, 2_000));
    }

    #[test]
    fn overrides_are_read_and_the_mention_gets_its_at() {
        let settings = GithubSettings::from_lookup(
            env(&[
                ("GITHUB_WEBHOOKS_ENABLED", "false"),
                ("GITHUB_TRIGGER_LABEL", "fix-me"),
                ("GITHUB_TRIGGER_MENTION", "robot"),
                ("GITHUB_API_URL", "https://ghe.example.com/api/v3"),
                ("GITHUB_APP_BOT_LOGIN", "Acme-OpenHands[bot]"),
            ]),
            Some("https://app.example".into()),
        )
        .expect("valid")
        .expect("configured");
        assert!(!settings.webhooks_enabled);
        assert_eq!(settings.label, "fix-me");
        assert_eq!(settings.mention, "@robot");
        assert_eq!(settings.web_url, "https://ghe.example.com");
        assert_eq!(settings.bot_login.as_deref(), Some("acme-openhands[bot]"));
    }

    #[test]
    fn off_without_the_app_and_numbers_are_checked() {
        assert!(matches!(
            GithubSettings::from_lookup(|_| None, None),
            Ok(None)
        ));
        let err = GithubSettings::from_lookup(env(&[("GITHUB_WEBHOOK_MAX_ATTEMPTS", "x")]), None)
            .expect_err("not a number");
        assert_eq!(
            err,
            SettingsError::NotANumber("GITHUB_WEBHOOK_MAX_ATTEMPTS")
        );
    }
}
