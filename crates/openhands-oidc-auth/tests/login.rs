//! The browser login of SaaS mode against a real OIDC provider process: the flow from the
//! login redirect to an authenticated API call, the terms gate, refresh after expiry,
//! logout, and every refusal the callback and the session cookie must make.

mod common;

use common::Env;
use openhands_sql_store::entity::user;
use openhands_test_support::oidc::OidcConfig;
use reqwest::{Method, StatusCode};
use sea_orm::EntityTrait;
use serde_json::json;
use std::time::Duration;

const API: &str = "/api/conversations";

#[tokio::test]
async fn login_terms_refresh_and_logout() {
    let env = Env::start(
        OidcConfig {
            access_token_ttl: Duration::from_secs(2),
            ..OidcConfig::default()
        },
        |_| {},
    )
    .await;
    let mut browser = env.browser();
    assert_eq!(browser.get(API).await.status, StatusCode::UNAUTHORIZED);

    // Login: the provider's forms, then our callback sets the session and, since the terms
    // are not accepted yet, sends the browser to the terms page with its target.
    let done = browser.login("alice", "/conversations/abc").await;
    assert_eq!(done.status, StatusCode::FOUND, "{:?}", done.body);
    assert_eq!(
        done.location(),
        "/accept-tos?redirect_url=%2Fconversations%2Fabc"
    );
    let session_cookie = done.set_cookies("keycloak_auth");
    assert_eq!(session_cookie.len(), 1);
    for attribute in ["Path=/", "HttpOnly", "SameSite=Lax"] {
        assert!(session_cookie[0].contains(attribute), "{session_cookie:?}");
    }
    assert!(
        !session_cookie[0].contains("Secure"),
        "plain-http public URL: no Secure"
    );
    assert!(
        browser.cookie("openhands_login").is_none(),
        "login cookie cleared"
    );
    let row = user::Entity::find_by_id("alice".to_owned())
        .one(env.db.connection())
        .await
        .expect("query")
        .expect("the login created the user");
    assert_eq!(row.email.as_deref(), Some("alice@example.com"));
    assert!(row.email_verified && row.last_login_at.is_some());
    assert!(row.tos_accepted_at.is_none());

    // The terms gate, then accepting them.
    let gated = browser.get(API).await;
    assert_eq!(gated.status, StatusCode::FORBIDDEN);
    assert_eq!(gated.code(), "tos_not_accepted");
    let accepted = browser
        .post(
            "/api/accept_tos",
            json!({"redirect_url": "/conversations/abc"}),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.body);
    assert_eq!(accepted.body["redirect_url"], "/conversations/abc");
    let ok = browser.get(API).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert!(ok.set_cookies("keycloak_auth").is_empty(), "no refresh yet");
    let authenticated = browser.post("/api/authenticate", json!({})).await;
    assert_eq!(authenticated.status, StatusCode::OK);
    assert_eq!(authenticated.body["message"], "User authenticated");

    // After the access token expires, the next request refreshes the session and re-issues
    // the cookie; concurrent requests of the session share one refresh (the provider
    // rotates refresh tokens and would revoke the grant on a second use).
    let before_refresh = browser.clone();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let calls = (0..4).map(|_| {
        let mut b = before_refresh.clone();
        async move { b.get(API).await }
    });
    for answer in futures_util::future::join_all(calls).await {
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert_eq!(answer.set_cookies("keycloak_auth").len(), 1, "re-issued");
    }
    let refreshed = browser.get(API).await;
    assert_eq!(refreshed.status, StatusCode::OK);
    assert_eq!(refreshed.set_cookies("keycloak_auth").len(), 1);
    assert_ne!(
        browser.cookie("keycloak_auth"),
        before_refresh.cookie("keycloak_auth")
    );
    let again = browser.get(API).await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.set_cookies("keycloak_auth").is_empty(), "fresh again");

    // Logout clears the cookie, revokes the session's record and the refresh token at the
    // provider: a copy of the old cookie stops working at once.
    let stolen = browser.clone();
    let out = browser.post("/api/logout", json!({})).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.body["message"], "User logged out");
    assert!(browser.cookie("keycloak_auth").is_none());
    assert_eq!(browser.get(API).await.status, StatusCode::UNAUTHORIZED);
    let mut stolen = stolen;
    let refused = stolen.get(API).await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        refused.body
    );
    let cleared = refused.set_cookies("keycloak_auth");
    assert!(
        cleared.len() == 1 && cleared[0].contains("Max-Age=0"),
        "the dead session's cookie is cleared: {cleared:?}"
    );
    let not_authenticated = stolen.post("/api/authenticate", json!({})).await;
    assert_eq!(not_authenticated.status, StatusCode::UNAUTHORIZED);
    assert_eq!(not_authenticated.body["error"], "User is not authenticated");
}

#[tokio::test]
async fn the_callback_refuses_what_it_cannot_trust() {
    let env = Env::start(OidcConfig::default(), |c| c.auth.require_tos = false).await;

    // No code, and a provider-reported error.
    let mut browser = env.browser();
    let missing = browser.get("/oauth/keycloak/callback?state=x").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.body["error"], "Missing code in request params");
    let denied = browser
        .get("/oauth/keycloak/callback?error=access_denied&error_description=no")
        .await;
    assert_eq!(denied.status, StatusCode::BAD_REQUEST);
    assert_eq!(denied.code(), "login_refused");

    // A callback without the login cookie (a login started elsewhere).
    let callback = browser.login_until_callback("alice", "/").await;
    let mut stranger = env.browser();
    let foreign = stranger.get(&callback).await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST);
    assert_eq!(foreign.code(), "login_expired");

    // A state that does not match the login cookie's.
    let tampered_state = replace_param(&callback, "state", "forged-state");
    let mut same = browser.clone();
    let bad_state = same.get(&tampered_state).await;
    assert_eq!(bad_state.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_state.code(), "bad_state");
    assert!(same.cookie("keycloak_auth").is_none());

    // The real callback works once; replaying the code is refused by the provider.
    let mut replay = browser.clone();
    let first = browser.get(&callback).await;
    assert_eq!(first.status, StatusCode::FOUND, "{:?}", first.body);
    assert_eq!(first.location(), "/");
    assert_eq!(browser.get(API).await.status, StatusCode::OK);
    let second = replay.get(&callback).await;
    assert_eq!(second.status, StatusCode::UNAUTHORIZED, "{:?}", second.body);
    assert_eq!(second.code(), "code_rejected");
    assert!(replay.cookie("keycloak_auth").is_none());

    // A login may only land on a local path.
    let mut elsewhere = env.browser();
    let done = elsewhere.login("alice", "https://evil.example/").await;
    assert_eq!(done.location(), "/");
}

#[tokio::test]
async fn tampered_truncated_and_unsigned_cookies_end_the_session() {
    let env = Env::start(OidcConfig::default(), |c| c.auth.require_tos = false).await;
    let mut browser = env.browser();
    browser.login("alice", "/").await;
    let good = browser.cookie("keycloak_auth").expect("session").to_owned();
    assert_eq!(browser.get(API).await.status, StatusCode::OK);

    let mut flipped = good.clone().into_bytes();
    let middle = flipped.len() / 2;
    flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
    let unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsInRvcyI6dHJ1ZX0.";
    for forged in [
        String::from_utf8(flipped).expect("ascii"),
        good[..good.len() - 6].to_owned(),
        unsigned.to_owned(),
    ] {
        let mut attacker = env.browser();
        attacker
            .cookies
            .insert("keycloak_auth".into(), forged.clone());
        let answer = attacker.get(API).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{forged}");
        let cleared = answer.set_cookies("keycloak_auth");
        assert!(cleared.len() == 1 && cleared[0].contains("Max-Age=0"));
    }
}

#[tokio::test]
async fn cookie_requests_that_change_state_must_come_from_our_origin() {
    let env = Env::start(OidcConfig::default(), |c| c.auth.require_tos = false).await;
    let mut browser = env.browser();
    browser.login("alice", "/").await;
    let body = || Some(json!({"initial_user_msg": "hi"}));

    let cross_site = browser
        .send_from(Some("https://evil.example"), Method::POST, API, body())
        .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    assert_eq!(cross_site.code(), "csrf_rejected");
    let no_origin = browser.send_from(None, Method::POST, API, body()).await;
    assert_eq!(no_origin.status, StatusCode::FORBIDDEN);
    assert_eq!(no_origin.code(), "csrf_rejected");
    // Reads are not checked; our own origin passes the check (and reaches the route,
    // which then wants LLM settings).
    assert_eq!(
        browser.send_from(None, Method::GET, API, None).await.status,
        StatusCode::OK
    );
    let ours = browser.send(Method::POST, API, body()).await;
    assert_ne!(ours.code(), "csrf_rejected", "{:?}", ours.body);
    assert_ne!(ours.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn unverified_email_and_allowlist_gates() {
    let list = tempfile::NamedTempFile::new().expect("allowlist");
    std::fs::write(list.path(), "# invited\nALICE\nbob\n").expect("write list");
    let path = list.path().display().to_string();
    let mut config = OidcConfig::default();
    config
        .users
        .push(openhands_test_support::oidc::OidcUser::new("carol", true));
    let env = Env::start(config, move |c| {
        c.auth.require_tos = false;
        c.auth.allowlist_file = Some(path);
    })
    .await;

    // bob's e-mail is not verified: signed in, but held at the gate except where he can
    // act on it.
    let mut bob = env.browser();
    assert_eq!(bob.login("bob", "/").await.status, StatusCode::FOUND);
    let gated = bob.get(API).await;
    assert_eq!(gated.status, StatusCode::FORBIDDEN);
    assert_eq!(gated.code(), "email_not_verified");
    assert_ne!(bob.get("/api/settings").await.status, StatusCode::FORBIDDEN);

    // carol is not on the allowlist: no session at all.
    let mut carol = env.browser();
    let refused = carol.login("carol", "/").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "not_allowed");
    assert!(carol.cookie("keycloak_auth").is_none());
    assert!(
        user::Entity::find_by_id("carol".to_owned())
            .one(env.db.connection())
            .await
            .expect("query")
            .is_none()
    );
}

fn replace_param(path_and_query: &str, name: &str, value: &str) -> String {
    let url = reqwest::Url::parse(&format!("http://x{path_and_query}")).expect("url");
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let mut url = url.clone();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

#[tokio::test]
async fn api_keys_authenticate_like_the_cookie_until_revoked_or_expired() {
    use openhands_sql_store::entity::api_key;
    use sea_orm::{ColumnTrait, QueryFilter, sea_query::Expr};

    let env = Env::start(OidcConfig::default(), |c| {
        c.auth.require_tos = false;
        c.auth.lookup_cache_ms = 300;
    })
    .await;
    let mut browser = env.browser();
    browser.login("alice", "/").await;
    // The first login made a personal org, so org-scoped features work at once.
    let orgs = browser.get("/api/organizations").await;
    assert_eq!(orgs.status, StatusCode::OK, "{:?}", orgs.body);
    let created = browser.post("/api/keys", json!({"name": "ci"})).await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    let key = created.body["key"]
        .as_str()
        .expect("key shown once")
        .to_owned();
    let key_id = created.body["id"].as_str().expect("id").to_owned();

    let http = reqwest::Client::new();
    let call = |method: Method, header: (&'static str, String)| {
        let request = http
            .request(method.clone(), env.server.url(API))
            .header(header.0, header.1);
        async move {
            let request = if method == Method::POST {
                request.json(&json!({}))
            } else {
                request
            };
            let response = request.send().await.expect("request");
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, body)
        }
    };
    let bearer = || ("authorization", format!("Bearer {key}"));
    // A key's owner is cached for `lookup_cache_ms`: a change takes effect within it.
    let eventually = |expected: StatusCode| {
        let call = &call;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            loop {
                let (status, _) = call(Method::GET, bearer()).await;
                if status == expected || std::time::Instant::now() > deadline {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(call(Method::GET, bearer()).await.0, StatusCode::OK);
    assert_eq!(
        call(Method::GET, ("x-session-api-key", key.clone()))
            .await
            .0,
        StatusCode::OK
    );
    // No CSRF check for keys: a POST without Origin reaches the route.
    let (status, body) = call(Method::POST, bearer()).await;
    assert_ne!(body["code"], "csrf_rejected", "{status} {body}");
    assert_eq!(
        call(
            Method::GET,
            ("authorization", "Bearer ohk_not-a-real-key".into())
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );

    // Expired: the same key past its expiry is refused.
    api_key::Entity::update_many()
        .col_expr(
            api_key::Column::ExpiresAt,
            Expr::value(Some(chrono::Utc::now() - chrono::Duration::seconds(1))),
        )
        .filter(api_key::Column::Id.eq(key_id.clone()))
        .exec(env.db.connection())
        .await
        .expect("expire");
    assert_eq!(
        eventually(StatusCode::UNAUTHORIZED).await,
        StatusCode::UNAUTHORIZED
    );
    api_key::Entity::update_many()
        .col_expr(
            api_key::Column::ExpiresAt,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .filter(api_key::Column::Id.eq(key_id.clone()))
        .exec(env.db.connection())
        .await
        .expect("unexpire");
    assert_eq!(eventually(StatusCode::OK).await, StatusCode::OK);

    // Revoked.
    let deleted = browser
        .send(Method::DELETE, &format!("/api/keys/{key_id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(
        eventually(StatusCode::UNAUTHORIZED).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_websocket_connect_that_refreshes_the_session_hands_over_the_new_cookie() {
    let env = Env::start(
        OidcConfig {
            access_token_ttl: Duration::from_secs(1),
            ..OidcConfig::default()
        },
        |c| c.auth.require_tos = false,
    )
    .await;
    let mut browser = env.browser();
    browser.login("alice", "/").await;
    let before = browser.cookie("keycloak_auth").expect("session").to_owned();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let upgrade = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let origin = browser.origin.clone();
    // No such conversation: the answer is an error, and it still carries the new cookie.
    let answer = browser
        .send_with(
            Some(&origin),
            Method::GET,
            "/api/conversations/0123456789abcdef0123456789abcdef/events/socket",
            None,
            &upgrade,
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{:?}", answer.body);
    assert_eq!(answer.set_cookies("keycloak_auth").len(), 1);
    assert_ne!(browser.cookie("keycloak_auth"), Some(before.as_str()));
    // A cross-site page cannot open the socket with the cookie.
    let cross = browser
        .send_with(
            Some("https://evil.example"),
            Method::GET,
            "/api/conversations/0123456789abcdef0123456789abcdef/events/socket",
            None,
            &upgrade,
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert_eq!(cross.code(), "csrf_rejected");
}

#[tokio::test]
async fn saas_mode_without_a_provider_refuses_to_start_and_says_what_to_set() {
    let sqlite = openhands_test_support::sqlite::fresh_database().expect("sqlite");
    let url = sqlite.url().to_owned();
    let err = match openhands_test_support::TestServer::try_spawn_with(move |c| {
        c.config_class = "saas".into();
        c.database.migrate_on_start = true;
        c.database.url = Some(openhands_core::secret::Secret::new(url));
    })
    .await
    {
        Ok(_) => panic!("a SaaS server without an OIDC provider must not start"),
        Err(err) => err,
    };
    assert!(err.contains("OIDC_ISSUER_URL"), "{err}");
    assert!(err.contains("KEYCLOAK_SERVER_URL"), "{err}");
}
