//! The GitLab integration's settings, read from its own environment variables.
//!
//! Core's `Config` refuses unknown fields and a provider crate plugs in without editing core,
//! so these are read here, at server start:
//!
//! | variable | meaning |
//! |---|---|
//! | `GITLAB_WEBHOOKS_ENABLED` | `true`/`1` turns the integration on (default off) |
//! | `GITLAB_BASE_URL` | the GitLab that hooks are installed on by default (`https://gitlab.com`; a self-managed host's `https://gitlab.example.com`); each installed hook keeps its own |
//! | `GITLAB_TRIGGER_LABEL` | the issue label that starts a job (default `openhands`) |
//! | `GITLAB_TRIGGER_MENTION` | the mention that starts a job from a note (default `@openhands`) |
//! | `GITLAB_BOT_LOGIN` | a GitLab username whose notes never trigger (e.g. a bot account) |
//! | `GITLAB_WEBHOOK_MAX_ATTEMPTS`, `GITLAB_WEBHOOK_BACKOFF_MS` | retries of a failing delivery or callback (5, 2000) |
//!
//! The server's public URL (`auth.public_url`, else `https://{WEB_HOST}`) is required when the
//! integration is on: hooks point at `{public_url}/integration/gitlab/events` and replies link
//! to conversations there. There are no secrets among these settings: each hook's secret
//! token lives (hashed) in the `gitlab_webhooks` table, see [`crate::store`].
//!
//! Tests cannot set environment variables (`unsafe` in Rust 2024, and racy), so settings can
//! be installed for one data directory ([`GitlabSettings::install_for`]), as the Gitea and
//! GitHub crates do.

use openhands_core::config::Config;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// gitlab.com, the default host.
pub const GITLAB_COM: &str = "https://gitlab.com";

/// Every variable the integration reads (documented in `docs/gitlab.md`, tested).
pub const VARIABLES: [&str; 6] = [
    "GITLAB_WEBHOOKS_ENABLED",
    "GITLAB_BASE_URL",
    "GITLAB_TRIGGER_LABEL",
    "GITLAB_TRIGGER_MENTION",
    "GITLAB_BOT_LOGIN",
    "GITLAB_WEBHOOK_MAX_ATTEMPTS",
];

/// Everything the GitLab integration needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitlabSettings {
    /// The default GitLab, without a trailing `/`.
    pub base_url: String,
    /// The trigger label, compared case-insensitively.
    pub label: String,
    /// The trigger mention, with its `@`.
    pub mention: String,
    /// A username whose notes never trigger.
    pub bot_login: Option<String>,
    /// This server's public base URL, without a trailing `/`.
    pub public_url: String,
    pub max_attempts: u32,
    pub backoff_ms: u64,
}

/// A missing or invalid setting (named, never with its value).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "GITLAB_WEBHOOKS_ENABLED is on but the server's public URL is not set: set `auth.public_url` or `WEB_HOST`"
    )]
    NoPublicUrl,
    #[error("`{0}` must be an http:// or https:// URL")]
    NotAUrl(&'static str),
    #[error("`{0}` is not a valid number")]
    NotANumber(&'static str),
    #[error("`{0}` must not be empty")]
    Empty(&'static str),
}

fn installed() -> &'static Mutex<HashMap<String, Arc<GitlabSettings>>> {
    static INSTALLED: OnceLock<Mutex<HashMap<String, Arc<GitlabSettings>>>> = OnceLock::new();
    INSTALLED.get_or_init(Default::default)
}

/// The server's public base URL: `auth.public_url`, else `https://{web_host}`.
pub fn public_url_of(config: &Config) -> Option<String> {
    let configured = config.auth.public_url.as_deref().map(str::to_owned);
    let from_host = config
        .web_host
        .as_deref()
        .map(|h| format!("https://{}", h.trim()));
    configured
        .filter(|u| !u.trim().is_empty())
        .or(from_host.filter(|u| u.len() > "https://".len()))
        .map(|u| u.trim().trim_end_matches('/').to_owned())
}

/// `url` without a trailing `/`, if it is an http(s) URL with a host.
pub fn normalized_url(url: &str) -> Option<String> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = url::Url::parse(trimmed).ok()?;
    let web = matches!(parsed.scheme(), "http" | "https");
    (web && parsed.host_str().is_some()).then(|| trimmed.to_owned())
}

impl GitlabSettings {
    /// Uses `settings` for the server whose `file_store_path` is `data_dir` (tests).
    pub fn install_for(data_dir: &str, settings: GitlabSettings) {
        installed()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(data_dir.to_owned(), Arc::new(settings));
    }

    /// The settings for this server: installed ones, else the environment; `None` when the
    /// integration is off.
    pub fn for_server(config: &Config) -> Result<Option<Arc<Self>>, ConfigError> {
        if let Some(found) = installed()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&config.file_store_path)
        {
            return Ok(Some(found.clone()));
        }
        Ok(
            Self::from_lookup(|name| std::env::var(name).ok(), public_url_of(config))?
                .map(Arc::new),
        )
    }

    /// Reads the settings through `lookup` (the environment in production).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        public_url: Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let on = get("GITLAB_WEBHOOKS_ENABLED").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
        if !on {
            return Ok(None);
        }
        let number = |name: &'static str, default: u64| match get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ConfigError::NotANumber(name)),
        };
        let base_url = match get("GITLAB_BASE_URL") {
            None => GITLAB_COM.to_owned(),
            Some(url) => normalized_url(&url).ok_or(ConfigError::NotAUrl("GITLAB_BASE_URL"))?,
        };
        let public_url = public_url
            .ok_or(ConfigError::NoPublicUrl)
            .and_then(|u| normalized_url(&u).ok_or(ConfigError::NotAUrl("auth.public_url")))?;
        let mut mention = get("GITLAB_TRIGGER_MENTION").unwrap_or_else(|| "@openhands".to_owned());
        if !mention.starts_with('@') {
            mention.insert(0, '@');
        }
        if mention.len() < 2 {
            return Err(ConfigError::Empty("GITLAB_TRIGGER_MENTION"));
        }
        Ok(Some(Self {
            base_url,
            label: get("GITLAB_TRIGGER_LABEL").unwrap_or_else(|| "openhands".to_owned()),
            mention,
            bot_login: get("GITLAB_BOT_LOGIN"),
            public_url,
            max_attempts: u32::try_from(number("GITLAB_WEBHOOK_MAX_ATTEMPTS", 5)?)
                .map_err(|_| ConfigError::NotANumber("GITLAB_WEBHOOK_MAX_ATTEMPTS"))?,
            backoff_ms: number("GITLAB_WEBHOOK_BACKOFF_MS", 2_000)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variables `pairs`, as `std::env::var` would give them.
    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const PUBLIC: Option<&str> = Some("https://app.example/");

    #[test]
    fn the_docs_name_every_variable() {
        const GUIDE: &str = include_str!("../../../docs/gitlab.md");
        for name in VARIABLES.iter().chain(&["GITLAB_WEBHOOK_BACKOFF_MS"]) {
            assert!(
                GUIDE.contains(&format!("`{name}`")),
                "{name} missing from docs/gitlab.md"
            );
        }
    }

    #[test]
    fn off_unless_enabled() {
        let off = GitlabSettings::from_lookup(env(&[("GITLAB_BASE_URL", "x")]), None);
        assert_eq!(off, Ok(None));
    }

    #[test]
    fn defaults_follow_openhands() {
        let on = GitlabSettings::from_lookup(
            env(&[("GITLAB_WEBHOOKS_ENABLED", "true")]),
            PUBLIC.map(str::to_owned),
        )
        .expect("valid")
        .expect("on");
        assert_eq!(on.base_url, GITLAB_COM);
        assert_eq!(
            (on.label.as_str(), on.mention.as_str()),
            ("openhands", "@openhands")
        );
        assert_eq!(on.public_url, "https://app.example");
        assert_eq!((on.max_attempts, on.backoff_ms), (5, 2_000));
        assert_eq!(on.bot_login, None);
    }

    #[test]
    fn a_missing_or_invalid_setting_is_named() {
        let enabled = ("GITLAB_WEBHOOKS_ENABLED", "1");
        assert_eq!(
            GitlabSettings::from_lookup(env(&[enabled]), None),
            Err(ConfigError::NoPublicUrl)
        );
        assert_eq!(
            GitlabSettings::from_lookup(
                env(&[enabled, ("GITLAB_BASE_URL", "gitlab.example.com")]),
                PUBLIC.map(str::to_owned)
            ),
            Err(ConfigError::NotAUrl("GITLAB_BASE_URL"))
        );
        assert_eq!(
            GitlabSettings::from_lookup(
                env(&[enabled, ("GITLAB_WEBHOOK_BACKOFF_MS", "soon")]),
                PUBLIC.map(str::to_owned)
            ),
            Err(ConfigError::NotANumber("GITLAB_WEBHOOK_BACKOFF_MS"))
        );
    }

    #[test]
    fn overrides_are_read_and_the_mention_gets_its_at() {
        let on = GitlabSettings::from_lookup(
            env(&[
                ("GITLAB_WEBHOOKS_ENABLED", "yes"),
                ("GITLAB_BASE_URL", "https://gitlab.example.com/"),
                ("GITLAB_TRIGGER_MENTION", "robot"),
                ("GITLAB_BOT_LOGIN", "openhands-bot"),
            ]),
            PUBLIC.map(str::to_owned),
        )
        .expect("valid")
        .expect("on");
        assert_eq!(on.base_url, "https://gitlab.example.com");
        assert_eq!(on.mention, "@robot");
        assert_eq!(on.bot_login.as_deref(), Some("openhands-bot"));
    }

    #[test]
    fn the_public_url_comes_from_auth_or_web_host() {
        let mut config = Config::default();
        assert_eq!(public_url_of(&config), None);
        config.web_host = Some("app.example".into());
        assert_eq!(
            public_url_of(&config).as_deref(),
            Some("https://app.example")
        );
        config.auth.public_url = Some("http://localhost:3000/".into());
        assert_eq!(
            public_url_of(&config).as_deref(),
            Some("http://localhost:3000")
        );
    }
}
