//! Loading the configuration: defaults, the file, `OPENHANDS_*` and OpenHands' variables,
//! validation and redaction.

use super::*;
use figment::Jail;

fn load_in(jail: &Jail) -> Result<Config, ConfigError> {
    Config::from_figment(Config::figment(&jail.directory().join("openhands.toml")))
}

#[test]
fn defaults_without_file_or_env() {
    Jail::expect_with(|jail| {
        let c = load_in(jail).expect("defaults load");
        assert_eq!(c.config_class, "oss");
        assert_eq!(c.port, 3000);
        assert_eq!(c.rate_limit, RateLimitSetting::PerSecond(10));
        assert_eq!(c.max_concurrent_conversations, 3);
        assert_eq!(c.max_running_conversations, 0, "no global cap by default");
        assert_eq!(c.orgs.max_owned_per_user, 10);
        Ok(())
    });
}

#[test]
fn every_legacy_variable_lands_on_its_key() {
    Jail::expect_with(|jail| {
        let values: &[(&str, &str)] = &[
            ("OPENHANDS_CONFIG_CLS", "saas"),
            ("FILE_STORE_PATH", "/tmp/oh"),
            ("SESSION_API_KEY", "k"),
            (
                "PERMITTED_CORS_ORIGINS",
                "https://a.example, https://b.example",
            ),
            ("PORT", "4000"),
            ("CONVERSATION_MANAGER_CLASS", "oss.standalone"),
            ("ALLOW_SET_CONVERSATION_ID", "1"),
            ("SERVE_FRONTEND", "false"),
            ("FRONTEND_DIRECTORY", "/srv/web"),
            ("WEB_HOST", "app.example"),
            ("GITHUB_APP_CLIENT_ID", "Iv1.abc"),
            ("ENABLE_BILLING", "true"),
            ("HIDE_LLM_SETTINGS", "true"),
            ("POSTHOG_CLIENT_KEY", "phc"),
            ("LOG_JSON", "1"),
            ("LOG_LEVEL", "debug"),
            ("MAX_CONCURRENT_CONVERSATIONS", "5"),
            ("MAX_RUNNING_CONVERSATIONS", "40"),
            ("CONVERSATION_MAX_AGE_SECONDS", "60"),
            ("SANDBOX_CLOSE_DELAY", "30"),
            ("DATABASE_URL", "postgres://u:p@db.example/oh"),
            ("DB_HOST", "db.internal"),
            ("DB_PORT", "6543"),
            ("DB_USER", "oh_user"),
            ("DB_PASS", "db-secret"),
            ("DB_NAME", "oh_db"),
            ("DB_POOL_SIZE", "7"),
            ("DB_MAX_OVERFLOW", "3"),
            ("OIDC_ISSUER_URL", "https://idp.example"),
            ("OIDC_CLIENT_ID", "openhands"),
            ("OIDC_CLIENT_SECRET", "client-secret"),
            ("KEYCLOAK_SERVER_URL", "https://kc.example"),
            ("KEYCLOAK_REALM_NAME", "allhands"),
            ("KEYCLOAK_CLIENT_ID", "openhands"),
            ("KEYCLOAK_CLIENT_SECRET", "client-secret"),
            ("KEYCLOAK_ADMIN_PASSWORD", "12345"),
            ("GITHUB_USER_LIST_FILE", "/etc/openhands/users.txt"),
            ("DISABLE_WAITLIST", "true"),
            (
                "OPENHANDS_COOKIE_KEYS",
                "c1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ),
            ("REDIS_HOST", "redis.internal"),
            ("REDIS_PORT", "6380"),
            ("REDIS_PASSWORD", "redis-secret"),
            ("REDIS_DB", "2"),
            ("GITHUB_APP_CLIENT_SECRET", "gh-secret"),
            ("GITLAB_APP_CLIENT_ID", "gl-id"),
            ("GITLAB_APP_CLIENT_SECRET", "gl-secret"),
            ("BITBUCKET_APP_CLIENT_ID", "bb-key"),
            ("BITBUCKET_APP_CLIENT_SECRET", "bb-secret"),
        ];
        assert_eq!(values.len(), LEGACY_ENV.len(), "test every mapped variable");
        for (k, v) in values {
            jail.set_env(k, v);
        }
        let c = load_in(jail).expect("load");
        assert_eq!(c.config_class, "saas");
        assert_eq!(c.file_store_path, "/tmp/oh");
        assert_eq!(c.session_api_key.as_ref().map(Secret::expose), Some("k"));
        assert_eq!(
            c.permitted_cors_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(c.port, 4000);
        assert_eq!(
            c.plugins.conversation_manager.as_deref(),
            Some("oss.standalone")
        );
        assert!(c.allow_set_conversation_id);
        assert!(!c.serve_frontend);
        assert_eq!(c.web_dir, "/srv/web");
        assert_eq!(c.web_host.as_deref(), Some("app.example"));
        assert_eq!(c.github_app_client_id, "Iv1.abc");
        assert!(c.enable_billing && c.hide_llm_settings && c.log_json);
        assert_eq!(c.posthog_client_key, "phc");
        assert_eq!(c.log_level, "debug");
        assert_eq!(c.max_concurrent_conversations, 5);
        assert_eq!(c.max_running_conversations, 40);
        assert_eq!(c.conversation_max_age_seconds, 60);
        assert_eq!(c.sandbox.close_delay, 30);
        let db = &c.database;
        assert_eq!(
            db.url.as_ref().map(Secret::expose),
            Some("postgres://u:p@db.example/oh")
        );
        assert_eq!(db.host.as_deref(), Some("db.internal"));
        assert_eq!(db.port, 6543);
        assert_eq!(db.user, "oh_user");
        assert_eq!(db.password.as_ref().map(Secret::expose), Some("db-secret"));
        let auth = &c.auth;
        assert_eq!(auth.issuer_url.as_deref(), Some("https://idp.example"));
        assert_eq!(auth.client_id.as_deref(), Some("openhands"));
        assert_eq!(
            auth.client_secret.as_ref().map(Secret::expose),
            Some("client-secret")
        );
        assert_eq!(
            auth.keycloak_admin_password.as_ref().map(Secret::expose),
            Some("12345"),
            "taken verbatim, not as a number"
        );
        assert_eq!(
            auth.keycloak_server_url.as_deref(),
            Some("https://kc.example")
        );
        assert_eq!(auth.keycloak_realm_name.as_deref(), Some("allhands"));
        assert_eq!(
            auth.allowlist_file.as_deref(),
            Some("/etc/openhands/users.txt")
        );
        assert!(auth.disable_waitlist);
        assert_eq!(auth.cookie_key_ring().map(|r| r.len()), Ok(1));
        let git = &c.git_oauth;
        let exposed = |s: &Option<Secret>| s.as_ref().map(|s| s.expose().to_owned());
        assert_eq!(
            exposed(&git.github.client_secret).as_deref(),
            Some("gh-secret")
        );
        assert_eq!(git.gitlab.client_id.as_deref(), Some("gl-id"));
        assert_eq!(
            exposed(&git.gitlab.client_secret).as_deref(),
            Some("gl-secret")
        );
        assert_eq!(git.bitbucket.client_id.as_deref(), Some("bb-key"));
        assert_eq!(
            exposed(&git.bitbucket.client_secret).as_deref(),
            Some("bb-secret")
        );
        assert_eq!(db.name, "oh_db");
        assert_eq!((db.pool_size, db.max_overflow), (7, 3));
        let redis = &c.redis;
        assert_eq!((redis.host.as_str(), redis.port), ("redis.internal", 6380));
        assert_eq!(
            redis.password.as_ref().map(Secret::expose),
            Some("redis-secret")
        );
        assert_eq!(redis.db, 2);
        Ok(())
    });
}

#[test]
fn the_org_limit_is_set_by_its_prefixed_variable_or_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file("openhands.toml", "[orgs]\nmax_owned_per_user = 3\n")?;
        assert_eq!(load_in(jail).expect("file").orgs.max_owned_per_user, 3);
        jail.set_env("OPENHANDS_ORGS__MAX_OWNED_PER_USER", "0");
        assert_eq!(load_in(jail).expect("env").orgs.max_owned_per_user, 0);
        jail.set_env("OPENHANDS_ORGS__MAX_OWNED_PER_USER", "-1");
        let msg = load_in(jail).expect_err("negative").to_string();
        assert!(msg.contains("orgs.max_owned_per_user"), "{msg}");
        Ok(())
    });
}

#[test]
fn the_webhook_worker_is_on_unless_switched_off() {
    Jail::expect_with(|jail| {
        assert!(load_in(jail).expect("load").webhook_worker);
        jail.set_env("OPENHANDS_WEBHOOK_WORKER", "false");
        assert!(!load_in(jail).expect("load").webhook_worker);
        Ok(())
    });
}

#[test]
fn environment_overrides_file_which_overrides_defaults() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "openhands.toml",
            "port = 5000\nhost = \"0.0.0.0\"\n[plugins]\nsettings_store = \"x.y\"\n",
        )?;
        jail.set_env("OPENHANDS_PORT", "6000");
        let c = load_in(jail).expect("load");
        assert_eq!(c.port, 6000);
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.plugins.settings_store.as_deref(), Some("x.y"));
        jail.set_env("OPENHANDS_PLUGINS__SETTINGS_STORE", "z.w");
        assert_eq!(
            load_in(jail)
                .expect("load")
                .plugins
                .settings_store
                .as_deref(),
            Some("z.w")
        );
        Ok(())
    });
}

#[test]
fn bad_port_names_key_value_and_expectation() {
    Jail::expect_with(|jail| {
        jail.set_env("PORT", "eighty");
        let msg = load_in(jail).expect_err("must fail").to_string();
        assert!(msg.contains("`port`"), "{msg}");
        assert!(msg.contains("eighty"), "{msg}");
        assert!(msg.contains("PORT"), "{msg}");
        assert!(msg.contains("u16"), "{msg}");
        Ok(())
    });
}

#[test]
fn rate_limit_accepts_off_and_numbers_and_refuses_words() {
    Jail::expect_with(|jail| {
        jail.set_env("OPENHANDS_RATE_LIMIT", "off");
        assert_eq!(
            load_in(jail).expect("off").rate_limit,
            RateLimitSetting::Off
        );
        jail.set_env("OPENHANDS_RATE_LIMIT", "50");
        assert_eq!(
            load_in(jail).expect("50").rate_limit,
            RateLimitSetting::PerSecond(50)
        );
        jail.set_env("OPENHANDS_RATE_LIMIT", "fast");
        let msg = load_in(jail).expect_err("fast").to_string();
        assert!(
            msg.contains("rate_limit") && msg.contains("fast") && msg.contains("off"),
            "{msg}"
        );
        Ok(())
    });
}

#[test]
fn user_rate_limit_accepts_auto_off_and_windows_and_explains_errors() {
    Jail::expect_with(|jail| {
        assert_eq!(
            load_in(jail).expect("default").user_rate_limit,
            UserRateLimitSetting::Auto
        );
        jail.set_env("OPENHANDS_USER_RATE_LIMIT", "off");
        assert_eq!(
            load_in(jail).expect("off").user_rate_limit,
            UserRateLimitSetting::Off
        );
        jail.set_env("OPENHANDS_USER_RATE_LIMIT", "10/second; 100/minute");
        assert_eq!(
            load_in(jail)
                .expect("windows")
                .user_rate_limit
                .effective("oss")
                .map(|w| w.to_string()),
            Some("10/s,100/min".into())
        );
        jail.set_env("OPENHANDS_USER_RATE_LIMIT", "10/fortnight");
        let msg = load_in(jail).expect_err("fortnight").to_string();
        assert!(
            msg.contains("user_rate_limit")
                && msg.contains("OPENHANDS_USER_RATE_LIMIT")
                && msg.contains("`10/fortnight`: unknown period")
                && msg.contains("`off`"),
            "{msg}"
        );
        jail.set_env("OPENHANDS_RATE_LIMIT_FAIL_MODE", "closed");
        jail.set_env("OPENHANDS_USER_RATE_LIMIT", "auto");
        assert_eq!(
            load_in(jail).expect("closed").rate_limit_fail_mode,
            RateLimitFailMode::Closed
        );
        jail.set_env("OPENHANDS_RATE_LIMIT_FAIL_MODE", "ajar");
        let msg = load_in(jail).expect_err("ajar").to_string();
        assert!(
            msg.contains("rate_limit_fail_mode") && msg.contains("ajar"),
            "{msg}"
        );
        Ok(())
    });
}

#[test]
fn redis_url_and_password_are_redacted_and_blank_means_unset() {
    Jail::expect_with(|jail| {
        jail.set_env("REDIS_PASSWORD", "redis-pass-789");
        jail.set_env("OPENHANDS_REDIS__URL", "redis://:url-pass-012@h:6379/0");
        let c = load_in(jail).expect("load");
        let dump = serde_json::to_string(&c).expect("json");
        assert!(!dump.contains("redis-pass-789") && !dump.contains("url-pass-012"));
        assert!(!format!("{c:?}").contains("redis-pass-789"));
        jail.set_env("REDIS_PASSWORD", "123456");
        let c = load_in(jail).expect("a password of digits is text");
        assert_eq!(
            c.redis.password.as_ref().map(Secret::expose),
            Some("123456")
        );
        jail.set_env("REDIS_PASSWORD", "");
        jail.set_env("OPENHANDS_REDIS__URL", " ");
        let c = load_in(jail).expect("load");
        assert!(c.redis.password.is_none() && c.redis.url.is_none());
        jail.set_env("OPENHANDS_REDIS__COMMAND_TIMEOUT_MS", "0");
        let msg = load_in(jail).expect_err("zero timeout").to_string();
        assert!(msg.contains("redis.command_timeout_ms"), "{msg}");
        Ok(())
    });
}

#[test]
fn bad_boolean_is_refused_with_expectation() {
    Jail::expect_with(|jail| {
        jail.set_env("ENABLE_BILLING", "maybe");
        let msg = load_in(jail).expect_err("must fail").to_string();
        assert!(
            msg.contains("enable_billing") && msg.contains("maybe"),
            "{msg}"
        );
        Ok(())
    });
}

#[test]
fn unknown_file_key_is_refused() {
    Jail::expect_with(|jail| {
        jail.create_file("openhands.toml", "prot = 1\n")?;
        let msg = load_in(jail).expect_err("must fail").to_string();
        assert!(msg.contains("prot"), "{msg}");
        Ok(())
    });
}

#[test]
fn secret_values_are_redacted_in_dumps_and_errors() {
    Jail::expect_with(|jail| {
        jail.set_env("SESSION_API_KEY", "super-secret-key");
        let c = load_in(jail).expect("load");
        let dump = serde_json::to_string(&c).expect("json");
        assert!(!dump.contains("super-secret-key"));
        assert!(dump.contains("**********"));
        Ok(())
    });
}

#[test]
fn database_url_prefers_url_then_host_then_sqlite_in_data_dir() {
    let data_dir = Path::new("/srv/oh");
    let mut db = DatabaseConfig::default();
    assert_eq!(
        db.connection_url(data_dir).expose(),
        "sqlite:///srv/oh/openhands.db?mode=rwc"
    );
    db.host = Some("db.internal".into());
    db.password = Some(Secret::new("p@ss:w/rd"));
    assert_eq!(
        db.connection_url(data_dir).expose(),
        "postgres://postgres:p%40ss%3Aw%2Frd@db.internal:5432/openhands"
    );
    db.url = Some(Secret::new("postgres://x@y/z"));
    assert_eq!(db.connection_url(data_dir).expose(), "postgres://x@y/z");
}

#[test]
fn database_secrets_are_redacted_in_dumps() {
    Jail::expect_with(|jail| {
        jail.set_env("DB_PASS", "pg-password-123");
        jail.set_env("DATABASE_URL", "postgres://u:url-secret-456@h/d");
        let c = load_in(jail).expect("load");
        let dump = serde_json::to_string(&c).expect("json");
        assert!(!dump.contains("pg-password-123") && !dump.contains("url-secret-456"));
        assert!(!format!("{c:?}").contains("pg-password-123"));
        Ok(())
    });
}

fn b64(byte: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([byte; KEY_LEN])
}

fn ring_ids(c: &Config) -> Vec<String> {
    c.key_ring()
        .expect("valid ring")
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn secrets_keys_env_form_lists_keys_oldest_first() {
    Jail::expect_with(|jail| {
        jail.set_env(
            "OPENHANDS_SECRETS_KEYS",
            format!("k1:{}, k2:{}", b64(1), b64(2)),
        );
        let c = load_in(jail).expect("load");
        assert_eq!(ring_ids(&c), ["k1", "k2"]);
        let ring = c.key_ring().expect("ring");
        assert_eq!(ring[1].1, [2; KEY_LEN]);
        Ok(())
    });
}

#[test]
fn secrets_keys_file_form_is_a_table_list() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "openhands.toml",
            &format!(
                "[[secrets_keys]]\nid = \"2025-a\"\nkey = \"{}\"\n[[secrets_keys]]\nid = \"2026_b\"\nkey = \"{}\"\n",
                b64(1),
                b64(2)
            ),
        )?;
        let c = load_in(jail).expect("load");
        assert_eq!(ring_ids(&c), ["2025-a", "2026_b"]);
        Ok(())
    });
}

#[test]
fn secrets_key_is_k1_in_front_of_secrets_keys() {
    Jail::expect_with(|jail| {
        jail.set_env("OPENHANDS_SECRETS_KEY", b64(1));
        jail.set_env("OPENHANDS_SECRETS_KEYS", format!("k2:{}", b64(2)));
        assert_eq!(ring_ids(&load_in(jail).expect("load")), ["k1", "k2"]);
        jail.set_env(
            "OPENHANDS_SECRETS_KEYS",
            format!("k1:{},k2:{}", b64(1), b64(2)),
        );
        assert_eq!(
            ring_ids(&load_in(jail).expect("same k1 twice is fine")),
            ["k1", "k2"]
        );
        jail.set_env(
            "OPENHANDS_SECRETS_KEYS",
            format!("k1:{},k2:{}", b64(3), b64(2)),
        );
        let msg = load_in(jail).expect_err("two different k1").to_string();
        assert!(msg.contains("secrets_key") && msg.contains("k1"), "{msg}");
        Ok(())
    });
}

#[test]
fn invalid_secrets_keys_name_the_entry_and_never_the_key() {
    let short = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([7u8; 16])
    };
    let cases = [
        (format!("k1:{short}"), "16 bytes"),
        (format!("k1:{},k1:{}", b64(1), b64(2)), "twice"),
        (format!("bad id!:{}", b64(1)), "A-Z"),
        (format!("{}:{}", "k".repeat(33), b64(1)), "1-32"),
        (b64(1), "no id"),
        ("k1:not base64 at all".to_owned(), "not base64"),
    ];
    for (value, expected) in cases {
        Jail::expect_with(|jail| {
            jail.set_env("OPENHANDS_SECRETS_KEYS", &value);
            let msg = load_in(jail).expect_err("refused").to_string();
            assert!(msg.contains("secrets_keys"), "{msg}");
            assert!(msg.contains(expected), "{value}: {msg}");
            assert!(!msg.contains(&short) && !msg.contains(&b64(1)), "{msg}");
            assert!(!msg.contains(&b64(2)), "{msg}");
            Ok(())
        });
    }
}

#[test]
fn secrets_keys_are_redacted_in_dumps() {
    Jail::expect_with(|jail| {
        jail.set_env("OPENHANDS_SECRETS_KEYS", format!("k1:{}", b64(1)));
        let c = load_in(jail).expect("load");
        let dump = serde_json::to_string(&c).expect("json");
        assert!(!dump.contains(&b64(1)), "{dump}");
        assert!(dump.contains(r#"{"id":"k1","key":"**********"}"#), "{dump}");
        assert!(!format!("{c:?}").contains(&b64(1)));
        Ok(())
    });
}

#[test]
fn home_is_expanded() {
    let home = std::env::var("HOME").unwrap_or_default();
    assert_eq!(
        expand_home("~/.openhands"),
        PathBuf::from(home).join(".openhands")
    );
    assert_eq!(expand_home("/abs"), PathBuf::from("/abs"));
}
