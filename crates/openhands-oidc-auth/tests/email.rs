//! The e-mail routes the verification gate points to, against the test provider, which
//! also speaks the slice of Keycloak's admin API the routes use: an unverified user changes
//! the address, the provider "sends" the verification e-mail with our landing URL, the
//! user follows the link, and `/api/email/verified` lets them past the gate. Also: bad
//! addresses, an address another account has, the resend throttle, and a provider that is
//! not Keycloak.

mod common;

use common::Env;
use openhands_core::secret::Secret;
use openhands_sql_store::entity::user;
use openhands_test_support::oidc::{KEYCLOAK_ADMIN_PASSWORD, OidcConfig};
use reqwest::{Method, StatusCode};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

/// A server whose provider is plain OIDC (no Keycloak admin API configured).
async fn plain_oidc_env() -> Env {
    Env::start(OidcConfig::default(), |c| c.auth.require_tos = false).await
}

/// A server whose Keycloak admin API is the provider's stand-in.
async fn env_with_admin() -> Env {
    Env::start(OidcConfig::default(), |c| {
        c.auth.require_tos = false;
        // The issuer URL wins for login; the admin calls go to the Keycloak server URL.
        c.auth.keycloak_server_url = c.auth.issuer_url.clone();
        c.auth.keycloak_realm_name = Some("openhands".into());
        c.auth.keycloak_admin_password = Some(Secret::new(KEYCLOAK_ADMIN_PASSWORD));
    })
    .await
}

async fn provider_get(env: &Env, path: &str) -> Value {
    reqwest::get(format!("{}{path}", env.provider.issuer()))
        .await
        .expect("provider")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn an_unverified_user_changes_the_address_verifies_it_and_passes_the_gate() {
    let env = env_with_admin().await;
    let mut browser = env.browser();
    browser.login("bob", "/").await;
    let gated = browser.get("/api/conversations").await;
    assert_eq!(gated.status, StatusCode::FORBIDDEN);
    assert_eq!(gated.code(), "email_not_verified");

    let changed = browser
        .post("/api/email", json!({"email": "  Bob.New@Example.org "}))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(changed.body["email"], "bob.new@example.org");
    assert_eq!(changed.body["verification_sent"], true);
    assert_eq!(
        changed.set_cookies("keycloak_auth").len(),
        1,
        "cookie re-issued"
    );
    let row = user::Entity::find_by_id("bob".to_owned())
        .one(env.db.connection())
        .await
        .expect("query")
        .expect("row");
    assert_eq!(row.email.as_deref(), Some("bob.new@example.org"));
    assert!(!row.email_verified);

    let sent = provider_get(&env, "/test/verify-emails").await;
    let sent = sent.as_array().expect("list");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["email"], "bob.new@example.org");
    assert_eq!(
        sent[0]["redirect_uri"],
        format!("{}/api/email/verified", env.origin())
    );
    assert_eq!(sent[0]["client_id"], env.provider.config().client_id);

    // Still gated until the link is followed.
    assert_eq!(
        browser.get("/api/conversations").await.status,
        StatusCode::FORBIDDEN
    );
    let clicked = reqwest::Client::new()
        .post(format!("{}/test/users/bob/verify", env.provider.issuer()))
        .send()
        .await
        .expect("verify");
    assert_eq!(clicked.status(), 204);
    let landed = browser.get("/api/email/verified").await;
    assert_eq!(landed.status, StatusCode::FOUND, "{:?}", landed.body);
    assert_eq!(landed.location(), "/settings/user");
    assert_eq!(landed.set_cookies("keycloak_auth").len(), 1);
    assert_eq!(
        browser.get("/api/conversations").await.status,
        StatusCode::OK,
        "past the gate"
    );
    let row = user::Entity::find_by_id("bob".to_owned())
        .one(env.db.connection())
        .await
        .expect("query")
        .expect("row");
    assert!(row.email_verified);
}

#[tokio::test]
async fn bad_and_taken_addresses_are_refused_and_change_nothing() {
    let env = env_with_admin().await;
    let mut browser = env.browser();
    browser.login("bob", "/").await;
    for bad in [
        "",
        "bob",
        "bob@localhost",
        "bob@exa mple.com",
        "<script>@x.io",
    ] {
        let answer = browser.post("/api/email", json!({"email": bad})).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(answer.code(), "invalid_email");
    }
    let missing = browser.post("/api/email", json!({})).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);

    let taken = browser
        .post("/api/email", json!({"email": "alice@example.com"}))
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{:?}", taken.body);
    assert_eq!(taken.code(), "email_taken");
    let row = user::Entity::find_by_id("bob".to_owned())
        .one(env.db.connection())
        .await
        .expect("query")
        .expect("row");
    assert_eq!(row.email.as_deref(), Some("bob@example.com"));
    assert!(
        provider_get(&env, "/test/verify-emails")
            .await
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

#[tokio::test]
async fn resending_is_throttled_per_user() {
    let env = env_with_admin().await;
    let mut browser = env.browser();
    browser.login("bob", "/").await;
    let first = browser.send(Method::PUT, "/api/email/verify", None).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let second = browser.send(Method::PUT, "/api/email/verify", None).await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.code(), "verification_throttled");
    let wait: u64 = second
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(
        provider_get(&env, "/test/verify-emails")
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn a_provider_that_is_not_keycloak_says_it_manages_addresses() {
    let env = plain_oidc_env().await;
    let mut browser = env.browser();
    browser.login("bob", "/").await;
    let change = browser
        .post("/api/email", json!({"email": "bob2@example.org"}))
        .await;
    assert_eq!(change.status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(change.code(), "email_managed_by_provider");
    let resend = browser.send(Method::PUT, "/api/email/verify", None).await;
    assert_eq!(resend.status, StatusCode::NOT_IMPLEMENTED);
    // The landing route works with any provider: it re-reads the claims.
    let landed = browser.get("/api/email/verified").await;
    assert_eq!(landed.status, StatusCode::FOUND);
    assert_eq!(landed.location(), "/settings/user");
    // Without a login, 401.
    let mut stranger = env.browser();
    assert_eq!(
        stranger.get("/api/email/verified").await.status,
        StatusCode::UNAUTHORIZED
    );
}
