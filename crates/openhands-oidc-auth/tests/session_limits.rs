//! What bounds a session besides logout: its absolute lifetime (whatever the provider's
//! refresh token says), the cookie key (separate from the data key), where login redirect
//! URIs come from (only the configured public URL), and the `oidc_sessions` migration.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::Env;
use openhands_core::config::VersionedKey;
use openhands_core::crypto::Cipher;
use openhands_core::secret::Secret;
use openhands_oidc_auth::cookie_key;
use openhands_oidc_auth::session::{CookieJar, Session};
use openhands_test_support::oidc::OidcConfig;
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use std::sync::Arc;
use std::time::Duration;

const API: &str = "/api/conversations";

fn cookie_max_age(set_cookie: &str) -> i64 {
    set_cookie
        .split(';')
        .find_map(|a| a.trim().strip_prefix("Max-Age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

#[tokio::test]
async fn an_expired_absolute_lifetime_is_refused_even_with_a_valid_refresh_token() {
    let env = Env::start(
        OidcConfig {
            access_token_ttl: Duration::from_secs(1),
            ..OidcConfig::default()
        },
        |c| {
            c.auth.require_tos = false;
            c.auth.session_max_age_seconds = 3;
        },
    )
    .await;
    let mut browser = env.browser();
    let done = browser.login("alice", "/").await;
    // The record was created before the callback answered: its lifetime ends earlier.
    let logged_in = std::time::Instant::now();
    let cookie = done.set_cookies("keycloak_auth");
    assert_eq!(cookie.len(), 1);
    let max_age = cookie_max_age(&cookie[0]);
    assert!(
        (1..=3).contains(&max_age),
        "the rest of the lifetime: {cookie:?}"
    );

    // The access token expired: the provider refreshes the session, the cookie's Max-Age
    // shrinks with the record's lifetime.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let refreshed = browser.get(API).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    let reissued = refreshed.set_cookies("keycloak_auth");
    assert_eq!(reissued.len(), 1, "refreshed at the provider");
    assert!(cookie_max_age(&reissued[0]) <= 2, "{reissued:?}");

    // Past the lifetime the provider would refresh again, but the server ends it.
    tokio::time::sleep(Duration::from_millis(3_200).saturating_sub(logged_in.elapsed())).await;
    let ended = browser.get(API).await;
    assert_eq!(ended.status, StatusCode::UNAUTHORIZED, "{:?}", ended.body);
    let cleared = ended.set_cookies("keycloak_auth");
    assert!(
        cleared.len() == 1 && cleared[0].contains("Max-Age=0"),
        "{cleared:?}"
    );
}

/// Logs `alice` in and gives back her session as the cookie holds it.
async fn logged_in_session(env: &Env, cookie_jar: &CookieJar) -> Session {
    let mut browser = env.browser();
    browser.login("alice", "/").await;
    let value = browser.cookie("keycloak_auth").expect("session cookie");
    cookie_jar
        .open_session(value)
        .expect("the cookie opens under the cookie key")
}

/// The status of `API` for a browser presenting `value` as its session cookie.
async fn status_with_cookie(env: &Env, value: String) -> StatusCode {
    let mut browser = env.browser();
    browser.cookies.insert("keycloak_auth".into(), value);
    browser.get(API).await.status
}

/// Seals `session` as the cookie under `cipher`.
fn sealed(cipher: Cipher, session: &Session) -> String {
    CookieJar::new(Arc::new(cipher), false)
        .seal_session(session)
        .expect("seal")
}

#[tokio::test]
async fn a_cookie_sealed_with_the_data_key_does_not_open_as_a_session() {
    let raw = [42u8; 32];
    let env = Env::start(OidcConfig::default(), move |c| {
        c.auth.require_tos = false;
        c.secrets_key = Some(Secret::new(STANDARD.encode(raw)));
    })
    .await;
    let data_key = || Cipher::new(vec![("k1".into(), raw)]).expect("data cipher");
    let cookie_key = || cookie_key::derived_cipher(&[("k1".into(), raw)]).expect("cookie key");
    let session = logged_in_session(&env, &CookieJar::new(Arc::new(cookie_key()), false)).await;
    assert!(!session.token.is_empty());

    // The same session, token and all: under the derived cookie key it works, under the
    // data key it is not a session.
    assert_eq!(
        status_with_cookie(&env, sealed(cookie_key(), &session)).await,
        StatusCode::OK
    );
    assert_eq!(
        status_with_cookie(&env, sealed(data_key(), &session)).await,
        StatusCode::UNAUTHORIZED
    );
    // A cookie from before the session records (no token) is ended.
    let old = Session {
        token: String::new(),
        ..session
    };
    assert_eq!(
        status_with_cookie(&env, sealed(cookie_key(), &old)).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn configured_cookie_keys_seal_the_session_and_the_data_key_does_not() {
    let data = [7u8; 32];
    let cookie = [8u8; 32];
    let env = Env::start(OidcConfig::default(), move |c| {
        c.auth.require_tos = false;
        c.secrets_key = Some(Secret::new(STANDARD.encode(data)));
        c.auth.cookie_keys = vec![VersionedKey::new(
            "c1",
            Secret::new(STANDARD.encode(cookie)),
        )];
    })
    .await;
    let cookie_key = || Cipher::new(vec![("c1".into(), cookie)]).expect("cookie cipher");
    let session = logged_in_session(&env, &CookieJar::new(Arc::new(cookie_key()), false)).await;
    assert_eq!(
        status_with_cookie(&env, sealed(cookie_key(), &session)).await,
        StatusCode::OK
    );
    for foreign in [
        Cipher::new(vec![("c1".into(), data)]).expect("data key under the cookie's id"),
        Cipher::new(vec![("k1".into(), data)]).expect("data key"),
        cookie_key::derived_cipher(&[("k1".into(), data)]).expect("derived"),
    ] {
        assert_eq!(
            status_with_cookie(&env, sealed(foreign, &session)).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

/// The `redirect_uri` of the provider URL that `GET /oauth/keycloak/login` redirects to.
fn redirect_uri_of(location: &str) -> String {
    reqwest::Url::parse(location)
        .expect("provider URL")
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .expect("redirect_uri")
}

#[tokio::test]
async fn the_redirect_uri_ignores_a_forged_host() {
    let env = Env::start(OidcConfig::default(), |c| {
        c.auth.public_url = None;
        c.web_host = Some("app.example.test".into());
    })
    .await;
    let mut browser = env.browser();
    let forged = [
        ("host", "203.0.113.9:8443"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "http"),
        ("forwarded", "host=evil.example;proto=http"),
    ];
    let origin = browser.origin.clone();
    for headers in [&forged[..1], &forged[1..], &forged[..]] {
        let start = browser
            .send_with(
                Some(&origin),
                reqwest::Method::GET,
                "/oauth/keycloak/login?redirect_url=/",
                None,
                headers,
            )
            .await;
        assert_eq!(
            start.status,
            StatusCode::FOUND,
            "{headers:?}: {:?}",
            start.body
        );
        assert_eq!(
            redirect_uri_of(start.location()),
            "https://app.example.test/oauth/keycloak/callback",
            "{headers:?}"
        );
    }
}

#[tokio::test]
async fn saas_mode_without_a_public_url_refuses_to_start() {
    let sqlite = openhands_test_support::sqlite::fresh_database().expect("sqlite");
    let url = sqlite.url().to_owned();
    let err = match openhands_test_support::TestServer::try_spawn_with(move |c| {
        c.config_class = "saas".into();
        c.database.migrate_on_start = true;
        c.database.url = Some(Secret::new(url));
        // Discovery is lazy: nothing needs to listen here.
        c.auth.issuer_url = Some("http://127.0.0.1:9/realms/none".into());
        c.auth.client_id = Some("openhands".into());
        c.auth.public_url = None;
        c.web_host = None;
    })
    .await
    {
        Ok(_) => panic!("a SaaS server without a public URL must not start"),
        Err(err) => err,
    };
    for needle in ["auth.public_url", "OPENHANDS_AUTH__PUBLIC_URL", "WEB_HOST"] {
        assert!(err.contains(needle), "{needle} in {err}");
    }
}

/// Migrates up, checks the table, migrates everything down and up again (a `down` that
/// left anything behind, an index say, fails the second `up`).
async fn sessions_migrate_up_and_down(url: &str) {
    use openhands_migrations::runner;
    use openhands_oidc_auth::session_store::entity as sessions;
    let db = openhands_sql_store::Database::connect(url, Default::default())
        .await
        .expect("connect");
    let conn = db.connection();
    let name = "m20261207_000201_oidc_sessions";
    let mut applied = Vec::new();
    runner::up(conn, |n, _| applied.push(n.to_owned()))
        .await
        .expect("up");
    assert!(applied.iter().any(|n| n == name), "{applied:?}");
    assert!(
        sessions::Entity::find()
            .all(conn)
            .await
            .expect("table")
            .is_empty()
    );
    runner::down(conn, u32::MAX, |_, _| {}).await.expect("down");
    assert!(
        sessions::Entity::find().all(conn).await.is_err(),
        "table dropped"
    );
    runner::up(conn, |_, _| {}).await.expect("up again");
    let backend = conn.get_database_backend();
    assert!(
        sessions::Entity::find().all(conn).await.is_ok(),
        "{backend:?}"
    );
}

#[tokio::test]
async fn the_sessions_migration_goes_up_and_down_on_sqlite() {
    let sqlite = openhands_test_support::sqlite::fresh_database().expect("sqlite");
    sessions_migrate_up_and_down(sqlite.url()).await;
}

#[tokio::test]
async fn the_sessions_migration_goes_up_and_down_on_postgres() {
    let pg = openhands_test_support::postgres::fresh_database().expect("PostgreSQL for tests");
    sessions_migrate_up_and_down(pg.url()).await;
}
