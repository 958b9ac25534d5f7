//! Server configuration: built-in defaults < `openhands.toml` < environment.
//!
//! Every field has a default and a doc comment. Environment variables that OpenHands
//! deployers already use keep their meaning; [`LEGACY_ENV`] maps each of them to its key in
//! one place (tested, and listed in `docs/configuration.md`). Any other key can be set as
//! `OPENHANDS_<KEY>`, with `__` between nested keys (`OPENHANDS_PLUGINS__SETTINGS_STORE`).
//! A bad value stops start-up with the key, the value and what was expected.

pub use crate::auth_config::AuthConfig;
pub use crate::cluster_config::ClusterConfig;
use crate::crypto::{
    CryptoError, DEFAULT_KEY_ID, KEY_LEN, MAX_KEY_ID_LEN, decode_key, is_valid_key_id,
};
pub use crate::git_oauth_config::GitOAuthConfig;
pub use crate::sandbox_config::{NetworkMode, NetworkPolicy, SandboxConfig, SandboxLimits};
use crate::secret::{Secret, serialize_redacted};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

mod rate;
pub use rate::{
    RateLimitFailMode, RateWindow, RateWindows, RateWindowsError, UserRateLimitSetting,
};

/// `(environment variable, config key)` for the OpenHands variable names we honour.
pub const LEGACY_ENV: &[(&str, &str)] = &[
    ("OPENHANDS_CONFIG_CLS", "config_class"),
    ("FILE_STORE_PATH", "file_store_path"),
    ("SESSION_API_KEY", "session_api_key"),
    ("PERMITTED_CORS_ORIGINS", "permitted_cors_origins"),
    ("PORT", "port"),
    ("CONVERSATION_MANAGER_CLASS", "plugins.conversation_manager"),
    ("ALLOW_SET_CONVERSATION_ID", "allow_set_conversation_id"),
    ("SERVE_FRONTEND", "serve_frontend"),
    ("FRONTEND_DIRECTORY", "web_dir"),
    ("WEB_HOST", "web_host"),
    ("GITHUB_APP_CLIENT_ID", "github_app_client_id"),
    ("ENABLE_BILLING", "enable_billing"),
    ("HIDE_LLM_SETTINGS", "hide_llm_settings"),
    ("POSTHOG_CLIENT_KEY", "posthog_client_key"),
    ("LOG_JSON", "log_json"),
    ("LOG_LEVEL", "log_level"),
    (
        "MAX_CONCURRENT_CONVERSATIONS",
        "max_concurrent_conversations",
    ),
    ("MAX_RUNNING_CONVERSATIONS", "max_running_conversations"),
    (
        "CONVERSATION_MAX_AGE_SECONDS",
        "conversation_max_age_seconds",
    ),
    ("SANDBOX_CLOSE_DELAY", "sandbox.close_delay"),
    ("DATABASE_URL", "database.url"),
    ("DB_HOST", "database.host"),
    ("DB_PORT", "database.port"),
    ("DB_USER", "database.user"),
    ("DB_PASS", "database.password"),
    ("DB_NAME", "database.name"),
    ("DB_POOL_SIZE", "database.pool_size"),
    ("DB_MAX_OVERFLOW", "database.max_overflow"),
    ("OIDC_ISSUER_URL", "auth.issuer_url"),
    ("OIDC_CLIENT_ID", "auth.client_id"),
    ("OIDC_CLIENT_SECRET", "auth.client_secret"),
    ("KEYCLOAK_SERVER_URL", "auth.keycloak_server_url"),
    ("KEYCLOAK_REALM_NAME", "auth.keycloak_realm_name"),
    ("KEYCLOAK_CLIENT_ID", "auth.client_id"),
    ("KEYCLOAK_CLIENT_SECRET", "auth.client_secret"),
    ("KEYCLOAK_ADMIN_PASSWORD", "auth.keycloak_admin_password"),
    ("GITHUB_USER_LIST_FILE", "auth.allowlist_file"),
    ("DISABLE_WAITLIST", "auth.disable_waitlist"),
    ("OPENHANDS_COOKIE_KEYS", "auth.cookie_keys"),
    ("REDIS_HOST", "redis.host"),
    ("REDIS_PORT", "redis.port"),
    ("REDIS_PASSWORD", "redis.password"),
    ("REDIS_DB", "redis.db"),
    ("GITHUB_APP_CLIENT_SECRET", "git_oauth.github.client_secret"),
    ("GITLAB_APP_CLIENT_ID", "git_oauth.gitlab.client_id"),
    ("GITLAB_APP_CLIENT_SECRET", "git_oauth.gitlab.client_secret"),
    ("BITBUCKET_APP_CLIENT_ID", "git_oauth.bitbucket.client_id"),
    (
        "BITBUCKET_APP_CLIENT_SECRET",
        "git_oauth.bitbucket.client_secret",
    ),
];

/// Legacy variables holding secrets, taken as text exactly as written: figment would read
/// `123456` as a number and `[x]` as a list, which a password may well look like.
const VERBATIM_ENV: &[&str] = &[
    "SESSION_API_KEY",
    "DB_PASS",
    "REDIS_PASSWORD",
    "OIDC_CLIENT_SECRET",
    "KEYCLOAK_CLIENT_SECRET",
    "KEYCLOAK_ADMIN_PASSWORD",
    "GITHUB_APP_CLIENT_SECRET",
    "GITLAB_APP_CLIENT_SECRET",
    "BITBUCKET_APP_CLIENT_SECRET",
    "OPENHANDS_COOKIE_KEYS",
];

/// Where the config file is looked for unless `OPENHANDS_CONFIG_FILE` names another.
pub const DEFAULT_CONFIG_FILE: &str = "openhands.toml";

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Which config class selects the implementations: `oss` (default) or `saas`.
    /// Env: `OPENHANDS_CONFIG_CLS`.
    pub config_class: String,
    /// Address to listen on. Env: `OPENHANDS_HOST`.
    pub host: String,
    /// Port to listen on. Env: `OPENHANDS_PORT` or `PORT`.
    pub port: u16,
    /// Root of all OSS file storage; `~` is expanded. Env: `FILE_STORE_PATH`.
    pub file_store_path: String,
    /// When set, `/api` requests must carry it in `X-Session-API-Key`. Env: `SESSION_API_KEY`.
    #[serde(serialize_with = "serialize_redacted")]
    pub session_api_key: Option<Secret>,
    /// Base64 of a 32-byte key that encrypts secrets at rest; generated into the data dir
    /// when unset. Env: `OPENHANDS_SECRETS_KEY`.
    #[serde(serialize_with = "serialize_redacted")]
    pub secrets_key: Option<Secret>,
    /// Versioned keys, oldest first: the last one seals new values, all of them open.
    /// `secrets_key`, when set, is the key `k1` in front of them. A table list
    /// (`[[secrets_keys]]` with `id` and `key`) or, in env, `id:key` pairs separated by
    /// commas. Env: `OPENHANDS_SECRETS_KEYS`.
    #[serde(
        deserialize_with = "versioned_keys",
        serialize_with = "serialize_keys_redacted"
    )]
    pub secrets_keys: Vec<VersionedKey>,
    /// Allowed CORS origins (comma-separated in env); empty means any localhost origin.
    /// Env: `PERMITTED_CORS_ORIGINS`.
    #[serde(deserialize_with = "comma_list")]
    pub permitted_cors_origins: Vec<String>,
    /// Per-client-IP request rate: `off` or requests per second (bursts to twice that).
    /// Env: `OPENHANDS_RATE_LIMIT`.
    pub rate_limit: RateLimitSetting,
    /// Per-user request rate after login: `auto` (OpenHands' `10/s,100/min` in SaaS mode,
    /// off in OSS mode), `off`, or windows such as `10/s,100/min`.
    /// Env: `OPENHANDS_USER_RATE_LIMIT`.
    pub user_rate_limit: UserRateLimitSetting,
    /// What a rate limiter with an external backend (Redis) does while the backend does not
    /// answer: `open` (serve, log a warning) or `closed` (503 with `Retry-After`).
    /// Env: `OPENHANDS_RATE_LIMIT_FAIL_MODE`.
    pub rate_limit_fail_mode: RateLimitFailMode,
    /// Addresses or CIDR networks of the reverse proxies in front of the server
    /// (comma-separated in env). Only a peer in this list may name the client in
    /// `X-Forwarded-For` / `Forwarded` (the right-most address that is not a listed proxy
    /// is the client, for the audit log and the per-IP rate limit); empty (the default)
    /// trusts no forwarding header. Env: `OPENHANDS_TRUSTED_PROXIES`.
    #[serde(deserialize_with = "comma_list")]
    pub trusted_proxies: Vec<String>,
    /// Host names the server answers to besides `localhost`, IP addresses, `web_host`, the
    /// public URL's host and the hosts of `permitted_cors_origins` (comma-separated in env;
    /// `*` turns the check off). Any other `Host` is refused with 421, so a page whose
    /// domain its owner re-points at this machine (DNS rebinding) cannot read or drive a
    /// server on loopback. Env: `OPENHANDS_ALLOWED_HOSTS`.
    #[serde(deserialize_with = "comma_list")]
    pub allowed_hosts: Vec<String>,
    /// Largest accepted request body in bytes. Env: `OPENHANDS_MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// How long the server waits for the next piece of a request body, in milliseconds,
    /// before it gives up (408 on JSON routes) and closes the connection; `0` waits forever. A body that
    /// stops arriving would otherwise hold its connection (and a file descriptor) for good.
    /// Env: `OPENHANDS_BODY_READ_TIMEOUT_MS`.
    pub body_read_timeout_ms: u64,
    /// The slowest average rate, in bytes per second of waiting, at which a request body may
    /// arrive once the server has waited `body_read_timeout_ms` for it in all; `0` turns
    /// the check off. Stops a client that drips a byte just inside every read timeout from
    /// holding a connection for hours. Env: `OPENHANDS_BODY_MIN_BYTES_PER_SECOND`.
    pub body_min_bytes_per_second: u64,
    /// Running conversations per user, counted across all of the user's organizations
    /// (starting one more stops the user's least recently active one).
    /// Env: `MAX_CONCURRENT_CONVERSATIONS`.
    pub max_concurrent_conversations: u32,
    /// Running conversations on the whole server (`oss.standalone`) or cluster
    /// (`saas.clustered`); `0` means no cap. At the cap, a start that would not replace one
    /// of the user's own conversations is refused (503 `capacity_reached`), never made room
    /// for by stopping another user's. Env: `MAX_RUNNING_CONVERSATIONS`.
    pub max_running_conversations: u32,
    /// Conversations older than this are hidden from lists. Env: `CONVERSATION_MAX_AGE_SECONDS`.
    pub conversation_max_age_seconds: u64,
    /// Live messages buffered per conversation; a watcher further behind than this is
    /// closed as too slow (the agent never waits for it). Env: `OPENHANDS_WATCHER_BUFFER`.
    pub watcher_buffer: usize,
    /// At shutdown (SIGTERM), how long, in milliseconds, a command the agent is running may
    /// take to finish before it is interrupted (its result then says so). LLM calls in
    /// flight are abandoned at once and steps end at their boundary, so this bounds the
    /// drain only when a command is slow. Env: `OPENHANDS_SHUTDOWN_DRAIN_MS`.
    pub shutdown_drain_ms: u64,
    /// How long a replica may serve a user's `GET /api/settings` from memory, in seconds;
    /// `0` turns the cache off. Writes invalidate it at once on every replica (through the
    /// change feed); the TTL only bounds staleness after a lost notice.
    /// Env: `OPENHANDS_SETTINGS_CACHE_SECONDS`.
    pub settings_cache_seconds: u64,
    /// Run the webhook worker on this server (SaaS integrations). Off, the server still
    /// receives webhooks (verifies, records and answers them), and the deliveries wait in
    /// the log for a server whose worker is on: receiving replicas apart from working ones.
    /// Env: `OPENHANDS_WEBHOOK_WORKER`.
    #[serde(deserialize_with = "flexible_bool")]
    pub webhook_worker: bool,
    /// SaaS mode: hosts (`ollama.internal`), addresses (`127.0.0.1`) or networks
    /// (`10.0.0.0/8`) the LLM client may reach although they are loopback, private or
    /// otherwise internal (comma-separated in env). Users' `llm_base_url` values resolving
    /// to other internal addresses are refused. Env: `OPENHANDS_LLM_EGRESS_ALLOW`.
    #[serde(deserialize_with = "egress_allow_list")]
    pub llm_egress_allow: Vec<String>,
    /// Sandbox settings.
    pub sandbox: SandboxConfig,
    /// The SQL database of SaaS mode (unused by the OSS file stores).
    pub database: DatabaseConfig,
    /// SaaS login (OIDC), the session cookie and the sign-in gates.
    pub auth: AuthConfig,
    /// The Redis server of SaaS mode (rate limits; unused by the OSS defaults).
    pub redis: RedisConfig,
    /// Timings of the clustered conversation manager (`saas.clustered`).
    pub cluster: ClusterConfig,
    /// Linking GitHub, GitLab and Bitbucket accounts by OAuth (SaaS mode).
    pub git_oauth: GitOAuthConfig,
    /// Organizations (SaaS mode).
    pub orgs: OrgsConfig,
    /// Let `POST /api/conversations` choose the id. Env: `ALLOW_SET_CONVERSATION_ID`.
    #[serde(deserialize_with = "flexible_bool")]
    pub allow_set_conversation_id: bool,
    /// Serve the web app. Env: `SERVE_FRONTEND`.
    #[serde(deserialize_with = "flexible_bool")]
    pub serve_frontend: bool,
    /// Directory of the built web app. Env: `FRONTEND_DIRECTORY` or `OPENHANDS_WEB_DIR`.
    pub web_dir: String,
    /// Public host name for links (`https://{web_host}`). Env: `WEB_HOST`.
    pub web_host: Option<String>,
    /// GitHub App client id, echoed by `/api/options/config`. Env: `GITHUB_APP_CLIENT_ID`.
    pub github_app_client_id: String,
    /// Env: `ENABLE_BILLING`.
    #[serde(deserialize_with = "flexible_bool")]
    pub enable_billing: bool,
    /// Env: `HIDE_LLM_SETTINGS`.
    #[serde(deserialize_with = "flexible_bool")]
    pub hide_llm_settings: bool,
    /// Analytics key echoed to the web app. Env: `POSTHOG_CLIENT_KEY`.
    pub posthog_client_key: String,
    /// One JSON object per log line. Env: `LOG_JSON`.
    #[serde(deserialize_with = "flexible_bool")]
    pub log_json: bool,
    /// `tracing` filter, e.g. `info` or `openhands=debug`. Env: `LOG_LEVEL` (or `RUST_LOG`).
    pub log_level: String,
    /// Per-slot overrides of the config class's choice.
    pub plugins: PluginOverrides,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            config_class: "oss".into(),
            host: "127.0.0.1".into(),
            port: 3000,
            file_store_path: "~/.openhands".into(),
            session_api_key: None,
            secrets_key: None,
            secrets_keys: Vec::new(),
            permitted_cors_origins: Vec::new(),
            rate_limit: RateLimitSetting::PerSecond(10),
            user_rate_limit: UserRateLimitSetting::Auto,
            rate_limit_fail_mode: RateLimitFailMode::Open,
            trusted_proxies: Vec::new(),
            allowed_hosts: Vec::new(),
            max_body_bytes: 10 * 1024 * 1024,
            body_read_timeout_ms: 30_000,
            body_min_bytes_per_second: 1024,
            max_concurrent_conversations: 3,
            max_running_conversations: 0,
            conversation_max_age_seconds: 864_000,
            watcher_buffer: 256,
            shutdown_drain_ms: 10_000,
            settings_cache_seconds: 30,
            webhook_worker: true,
            llm_egress_allow: Vec::new(),
            sandbox: SandboxConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            redis: RedisConfig::default(),
            cluster: ClusterConfig::default(),
            git_oauth: GitOAuthConfig::default(),
            orgs: OrgsConfig::default(),
            allow_set_conversation_id: false,
            serve_frontend: true,
            web_dir: "web/dist".into(),
            web_host: None,
            github_app_client_id: String::new(),
            enable_billing: false,
            hide_llm_settings: false,
            posthog_client_key: String::new(),
            log_json: false,
            log_level: "info".into(),
            plugins: PluginOverrides::default(),
        }
    }
}

/// The SQL database (`[database]`), as OpenHands' `DB_*` variables describe it.
///
/// `url` wins; else `host` (with `port`, `user`, `password`, `name`) names a PostgreSQL
/// server; with neither, SaaS mode keeps a single-box SQLite file at
/// `<data dir>/openhands.db`. See [`DatabaseConfig::connection_url`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// A full connection URL, `postgres://...` or `sqlite://<path>?mode=rwc`. It may hold
    /// a password, so it is redacted in dumps. Env: `DATABASE_URL`.
    #[serde(serialize_with = "serialize_redacted")]
    pub url: Option<Secret>,
    /// PostgreSQL host. Env: `DB_HOST`.
    pub host: Option<String>,
    /// PostgreSQL port. Env: `DB_PORT`.
    pub port: u16,
    /// PostgreSQL user. Env: `DB_USER`.
    pub user: String,
    /// PostgreSQL password. Env: `DB_PASS`.
    #[serde(serialize_with = "serialize_redacted")]
    pub password: Option<Secret>,
    /// Database name. Env: `DB_NAME`.
    pub name: String,
    /// Connections the pool keeps for steady load. Env: `DB_POOL_SIZE`.
    pub pool_size: u32,
    /// Extra connections opened under peak load, closed again when idle.
    /// Env: `DB_MAX_OVERFLOW`.
    pub max_overflow: u32,
    /// Apply pending schema migrations at start-up instead of refusing to start.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            host: None,
            port: 5432,
            user: "postgres".into(),
            password: None,
            name: "openhands".into(),
            pool_size: 25,
            max_overflow: 10,
            migrate_on_start: false,
        }
    }
}

impl DatabaseConfig {
    /// The URL to connect to: `url` when set; else a PostgreSQL URL built from `host`,
    /// `port`, `user`, `password` and `name` (user and password percent-encoded); else the
    /// SQLite file `<data_dir>/openhands.db`, created on first connect.
    pub fn connection_url(&self, data_dir: &Path) -> Secret {
        if let Some(url) = self.url.as_ref().filter(|u| !u.is_blank()) {
            return url.clone();
        }
        match self
            .host
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
        {
            Some(host) => {
                let password = self
                    .password
                    .as_ref()
                    .map(|p| format!(":{}", percent_encode(p.expose())))
                    .unwrap_or_default();
                Secret::new(format!(
                    "postgres://{}{password}@{host}:{}/{}",
                    percent_encode(&self.user),
                    self.port,
                    percent_encode(&self.name),
                ))
            }
            None => Secret::new(format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("openhands.db").display()
            )),
        }
    }
}

/// Organizations of SaaS mode (`[orgs]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrgsConfig {
    /// Organizations one user may own at once; `0` means no limit. Creating orgs is free,
    /// and per-org quotas would multiply with their number, so it is bounded.
    /// Env: `OPENHANDS_ORGS__MAX_OWNED_PER_USER`.
    pub max_owned_per_user: u32,
}

impl Default for OrgsConfig {
    fn default() -> Self {
        Self {
            max_owned_per_user: 10,
        }
    }
}

/// The Redis server (`[redis]`), as OpenHands' `REDIS_*` variables describe it.
///
/// `url` wins; else `host`, `port`, `password` and `db` name the server. One pool per server
/// process is shared by every plugin that needs Redis (see the `openhands-redis` crate).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// A full URL, `redis://[:password@]host:port/db` (TLS, `rediss://`, is not built in).
    /// It may hold a password, so it is redacted in dumps.
    /// Env: `OPENHANDS_REDIS__URL`.
    #[serde(
        serialize_with = "serialize_redacted",
        deserialize_with = "crate::secret::deserialize_optional_secret"
    )]
    pub url: Option<Secret>,
    /// Redis host. Env: `REDIS_HOST`.
    pub host: String,
    /// Redis port. Env: `REDIS_PORT`.
    pub port: u16,
    /// Redis password (`AUTH`). Env: `REDIS_PASSWORD`.
    #[serde(
        serialize_with = "serialize_redacted",
        deserialize_with = "crate::secret::deserialize_optional_secret"
    )]
    pub password: Option<Secret>,
    /// Database number. Env: `REDIS_DB`.
    pub db: u32,
    /// Connections the pool holds at most. Env: `OPENHANDS_REDIS__POOL_SIZE`.
    pub pool_size: usize,
    /// Upper bound in milliseconds for one Redis operation, connecting included; a slower
    /// answer counts as a failure. Env: `OPENHANDS_REDIS__COMMAND_TIMEOUT_MS`.
    pub command_timeout_ms: u64,
    /// Put in front of every key this server writes, so several deployments (or tests) can
    /// share one Redis. Env: `OPENHANDS_REDIS__KEY_PREFIX`.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            host: "127.0.0.1".into(),
            port: 6379,
            password: None,
            db: 0,
            pool_size: 16,
            command_timeout_ms: 250,
            key_prefix: "openhands:".into(),
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// One entry of `secrets_keys`: a key id (`[A-Za-z0-9_-]{1,32}`, written into every value
/// it seals) and the base64 of a 32-byte key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionedKey {
    pub id: String,
    pub key: Secret,
}

impl VersionedKey {
    pub fn new(id: impl Into<String>, key: Secret) -> Self {
        Self { id: id.into(), key }
    }
}

/// Accepts a list of `{ id, key }` tables, a list of `id:key` strings, or one string of
/// comma-separated `id:key` pairs (the env form). Shapes are checked by
/// [`Config::key_ring`], whose errors name the entry without echoing the key.
pub(crate) fn versioned_keys<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<VersionedKey>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Table(VersionedKey),
        Text(String),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<Item>),
        Text(String),
    }
    let expected = "expected `id:key` pairs separated by commas, or a list of { id, key } tables";
    let items = match Raw::deserialize(d).map_err(|_| serde::de::Error::custom(expected))? {
        Raw::List(items) => items,
        Raw::Text(text) => text.split(',').map(|t| Item::Text(t.to_owned())).collect(),
    };
    Ok(items
        .into_iter()
        .filter_map(|item| match item {
            Item::Table(key) => Some(key),
            Item::Text(text) if text.trim().is_empty() => None,
            // Without a `:` there is no id; the whole text is kept as the key (never shown).
            Item::Text(text) => Some(match text.trim().split_once(':') {
                Some((id, key)) => VersionedKey::new(id.trim(), Secret::new(key.trim())),
                None => VersionedKey::new("", Secret::new(text.trim())),
            }),
        })
        .collect())
}

/// Dumps `secrets_keys` with ids and redacted keys.
pub(crate) fn serialize_keys_redacted<S: serde::Serializer>(
    keys: &[VersionedKey],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    #[derive(Serialize)]
    struct Redacted<'a> {
        id: &'a str,
        key: &'static str,
    }
    let mut seq = serializer.serialize_seq(Some(keys.len()))?;
    for k in keys {
        seq.serialize_element(&Redacted {
            id: &k.id,
            key: "**********",
        })?;
    }
    seq.end()
}

/// Per-slot implementation overrides (`[plugins]`); unset slots use the config class.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginOverrides {
    pub settings_store: Option<String>,
    pub secrets_store: Option<String>,
    pub conversation_store: Option<String>,
    pub event_store: Option<String>,
    pub user_auth: Option<String>,
    pub conversation_manager: Option<String>,
    pub monitoring_listener: Option<String>,
    pub rate_limiter: Option<String>,
    pub sandbox: Option<String>,
    pub audit_log: Option<String>,
    pub provider_token_source: Option<String>,
    pub change_feed: Option<String>,
}

/// `off` or a number of requests per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitSetting {
    Off,
    PerSecond(u32),
}

impl RateLimitSetting {
    /// The fixed windows that stand for this setting where a token bucket is not available
    /// (the Redis limiter): `2n` per second (the burst) and `60n` per minute (the steady
    /// rate). `None` when off.
    pub fn fixed_windows(&self) -> Option<RateWindows> {
        match *self {
            RateLimitSetting::Off => None,
            RateLimitSetting::PerSecond(n) => RateWindows::new(vec![
                RateWindow::new(n.saturating_mul(2), std::time::Duration::from_secs(1)),
                RateWindow::new(n.saturating_mul(60), std::time::Duration::from_secs(60)),
            ])
            .ok(),
        }
    }
}

impl Serialize for RateLimitSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RateLimitSetting::Off => s.serialize_str("off"),
            RateLimitSetting::PerSecond(n) => s.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for RateLimitSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        let expected = "`off` or a whole number of requests per second (1 or more)";
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom(format!("expected {expected}")))?
        {
            Raw::Number(n) if n >= 1 && n <= i64::from(u32::MAX) => Ok(Self::PerSecond(n as u32)),
            Raw::Text(t) if t.eq_ignore_ascii_case("off") => Ok(Self::Off),
            Raw::Text(t) => match t.trim().parse::<u32>() {
                Ok(n) if n >= 1 => Ok(Self::PerSecond(n)),
                _ => Err(serde::de::Error::custom(format!(
                    "found `{t}`, expected {expected}"
                ))),
            },
            Raw::Number(n) => Err(serde::de::Error::custom(format!(
                "found `{n}`, expected {expected}"
            ))),
        }
    }
}

/// Accepts booleans the way deployers write them: `true/false`, `1/0`, `yes/no`, `on/off`.
pub(crate) fn flexible_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Number(i64),
        Text(String),
    }
    let expected = "expected a boolean (true/false, 1/0, yes/no, on/off)";
    match Raw::deserialize(d).map_err(|_| serde::de::Error::custom(expected))? {
        Raw::Bool(b) => Ok(b),
        Raw::Number(0) => Ok(false),
        Raw::Number(1) => Ok(true),
        Raw::Number(n) => Err(serde::de::Error::custom(format!("found `{n}`, {expected}"))),
        Raw::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            _ => Err(serde::de::Error::custom(format!("found `{t}`, {expected}"))),
        },
    }
}

/// [`comma_list`] whose entries [`crate::net_policy::AllowList::parse`] accepts.
fn egress_allow_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items = comma_list(d)?;
    crate::net_policy::AllowList::parse(&items).map_err(serde::de::Error::custom)?;
    Ok(items)
}

/// Accepts a list or a comma-separated string; blanks are dropped.
fn comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    let items = match Raw::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected a list or a comma-separated string"))?
    {
        Raw::List(items) => items,
        Raw::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

/// Start-up configuration failure. The message names the key, the value and what was
/// expected; it never contains a secret value.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// `shutdown_drain_ms` as a duration.
    pub fn shutdown_drain(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.shutdown_drain_ms)
    }

    /// Loads from the process environment and `openhands.toml` (or `OPENHANDS_CONFIG_FILE`).
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var("OPENHANDS_CONFIG_FILE")
            .unwrap_or_else(|_| DEFAULT_CONFIG_FILE.to_owned());
        Self::from_figment(Self::figment(Path::new(&file)))
    }

    /// The layered sources: defaults < TOML file < environment.
    pub fn figment(file: &Path) -> Figment {
        let legacy_names: Vec<&str> = LEGACY_ENV.iter().map(|(env, _)| *env).collect();
        let legacy = Env::raw().only(&legacy_names).map(|name| {
            LEGACY_ENV
                .iter()
                .find(|(env, _)| name == *env)
                .map(|(_, key)| (*key).into())
                .unwrap_or_else(|| name.into())
        });
        let ours = Env::prefixed("OPENHANDS_")
            .ignore(&["CONFIG_CLS", "CONFIG_FILE", "WEB_DIR", "COOKIE_KEYS"])
            .split("__");
        let web_dir = Env::raw()
            .only(&["OPENHANDS_WEB_DIR"])
            .map(|_| "web_dir".into());
        let verbatim = LEGACY_ENV
            .iter()
            .filter(|(env, _)| VERBATIM_ENV.contains(env))
            .filter_map(|(env, key)| Some(Serialized::default(key, std::env::var(env).ok()?)));
        verbatim
            .fold(
                Figment::from(Serialized::defaults(Config::default()))
                    .merge(Toml::file(file))
                    .merge(legacy),
                Figment::merge,
            )
            .merge(web_dir)
            .merge(ours)
    }

    /// Extracts and checks the configuration from `figment`.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(describe_figment_error)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.config_class.trim().is_empty() {
            return Err(ConfigError(
                "key `config_class` is empty; expected a config class name such as `oss`".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError(format!(
                "key `max_body_bytes` = `{}`: expected at least 1024",
                self.max_body_bytes
            )));
        }
        if self.redis.pool_size == 0 || self.redis.command_timeout_ms == 0 {
            return Err(ConfigError(format!(
                "keys `redis.pool_size` = `{}` and `redis.command_timeout_ms` = `{}`: expected \
                 both to be at least 1",
                self.redis.pool_size, self.redis.command_timeout_ms
            )));
        }
        if let Some(problem) = self.cluster.problem() {
            return Err(ConfigError(problem));
        }
        self.key_ring()?;
        Ok(())
    }

    /// The configured encryption keys as `(id, raw key)`, oldest first (the last one seals):
    /// `secrets_key` as `k1`, then `secrets_keys`. Empty when neither is set (the OSS key
    /// file is used then). Checks ids (`[A-Za-z0-9_-]{1,32}`, unique) and key lengths; the
    /// error names the key and the entry, never the key material.
    pub fn key_ring(&self) -> Result<Vec<(String, [u8; KEY_LEN])>, ConfigError> {
        let mut ring: Vec<(String, [u8; KEY_LEN])> = Vec::new();
        if let Some(key) = &self.secrets_key {
            let raw = decode_key(key.expose()).map_err(|e| {
                ConfigError(format!(
                    "key `secrets_key` (`OPENHANDS_SECRETS_KEY`): expected base64 of {KEY_LEN} bytes ({})",
                    key_shape(&e)
                ))
            })?;
            ring.push((DEFAULT_KEY_ID.to_owned(), raw));
        }
        let from_secrets_key = !ring.is_empty();
        for (index, entry) in self.secrets_keys.iter().enumerate() {
            let at = format!(
                "key `secrets_keys` (`OPENHANDS_SECRETS_KEYS`) entry {}",
                index + 1
            );
            let id = entry.id.trim();
            if id.is_empty() {
                return Err(ConfigError(format!(
                    "{at} has no id: expected `<id>:<base64 key>` in env or `{{ id, key }}` in the file"
                )));
            }
            if !is_valid_key_id(id) {
                return Err(ConfigError(format!(
                    "{at}: the id ({} characters, not shown) must be 1-{MAX_KEY_ID_LEN} characters of A-Z, a-z, 0-9, `_`, `-`",
                    id.chars().count()
                )));
            }
            let raw = decode_key(entry.key.expose()).map_err(|e| {
                ConfigError(format!(
                    "{at} (id `{id}`): expected base64 of {KEY_LEN} bytes ({})",
                    key_shape(&e)
                ))
            })?;
            match ring.iter().position(|(other, _)| other == id) {
                Some(0) if from_secrets_key && id == DEFAULT_KEY_ID => {
                    if !bool::from(ring[0].1.ct_eq(&raw)) {
                        return Err(ConfigError(format!(
                            "{at} (id `{id}`) differs from `secrets_key`, which is key `{DEFAULT_KEY_ID}`; remove one of them"
                        )));
                    }
                    // The same key given twice: keep `secrets_key`'s place (oldest).
                    if index != 0 {
                        return Err(ConfigError(format!(
                            "{at} (id `{id}`) repeats `secrets_key`, which is key `{DEFAULT_KEY_ID}`; list it first or drop `secrets_key`"
                        )));
                    }
                }
                Some(_) => {
                    return Err(ConfigError(format!(
                        "{at}: id `{id}` is given twice; key ids must be unique"
                    )));
                }
                None => ring.push((id.to_owned(), raw)),
            }
        }
        Ok(ring)
    }

    /// The data directory with `~` expanded.
    pub fn data_dir(&self) -> PathBuf {
        expand_home(&self.file_store_path)
    }
}

fn describe_figment_error(err: figment::Error) -> ConfigError {
    let mut lines = Vec::new();
    for e in err {
        let key = if e.path.is_empty() {
            "(top level)".to_owned()
        } else {
            e.path.join(".")
        };
        let source = e
            .metadata
            .as_ref()
            .map(|m| match &m.source {
                _ if m.name.contains("environment") => {
                    format!(" (from environment variable {})", env_names_for(&key))
                }
                Some(src) => format!(" (from {} {src})", m.name),
                None => format!(" (from {})", m.name),
            })
            .unwrap_or_default();
        let secret_key = key.contains("key") || key.contains("secret") || key.contains("password");
        let kind = if secret_key {
            "value refused (not shown: secret)".to_owned()
        } else {
            e.kind.to_string()
        };
        lines.push(format!("key `{key}`{source}: {kind}"));
    }
    ConfigError(lines.join("; "))
}

/// What was wrong with a key, without its content.
fn key_shape(err: &CryptoError) -> String {
    match err {
        CryptoError::BadKey(shape) => format!("got {shape}"),
        _ => "unreadable".into(),
    }
}

/// The environment variables that set `key`, the ones set now first.
fn env_names_for(key: &str) -> String {
    let mut names: Vec<String> = LEGACY_ENV
        .iter()
        .filter(|(_, k)| *k == key)
        .map(|(env, _)| (*env).to_owned())
        .collect();
    names.push(format!(
        "OPENHANDS_{}",
        key.replace('.', "__").to_uppercase()
    ));
    let set: Vec<&String> = names
        .iter()
        .filter(|n| std::env::var_os(n).is_some())
        .collect();
    let shown: Vec<String> = if set.is_empty() {
        names.iter().map(|n| format!("`{n}`")).collect()
    } else {
        set.iter().map(|n| format!("`{n}`")).collect()
    };
    shown.join(" or ")
}

/// Expands a leading `~` to `$HOME`.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix('~'), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest.trim_start_matches(['/', '\\'])),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error
mod tests;

#[cfg(test)]
mod reference_doc;
