//! The OIDC test provider works end to end as a standard client sees it: discovery, the
//! browserless login, the code exchange with PKCE and `client_secret_basic`, and a refresh.
//! Server auth tests rely on exactly this, so it is checked here on its own first.
#![cfg(feature = "oidc")]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openhands_test_support::oidc::{OidcConfig, OidcProvider};
use ring::rand::SecureRandom as _;
use serde_json::Value;
use std::time::Duration;

const REDIRECT_URI: &str = "http://127.0.0.1:1/oauth/keycloak/callback";
const TIMEOUT: Duration = Duration::from_secs(10);

fn random() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("random");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json")
}

async fn json(response: reqwest::Response) -> Value {
    let status = response.status();
    let body = response.text().await.expect("body");
    assert!(status.is_success(), "{status}: {body}");
    serde_json::from_str(&body).expect("json body")
}

#[tokio::test]
async fn login_code_exchange_and_refresh() {
    let config = OidcConfig {
        redirect_uris: vec![REDIRECT_URI.into()],
        access_token_ttl: Duration::from_secs(2),
        ..OidcConfig::default()
    };
    let provider = tokio::task::spawn_blocking(move || OidcProvider::start(config))
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{e}"));
    let issuer = provider.issuer().to_owned();
    assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer}");
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("client");

    let discovery = json(
        http.get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .expect("discovery"),
    )
    .await;
    assert_eq!(discovery["issuer"], issuer.as_str());
    let endpoint = |name: &str| discovery[name].as_str().expect(name).to_owned();
    assert!(
        discovery["code_challenge_methods_supported"]
            .as_array()
            .expect("pkce methods")
            .contains(&"S256".into())
    );

    // The authorization request, built by hand as a client library would.
    let verifier = random();
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    let (state, nonce) = (random(), random());
    let config = provider.config();
    let mut auth_url = reqwest::Url::parse(&endpoint("authorization_endpoint")).expect("url");
    auth_url
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &config.client_id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", "openid email profile offline_access")
        .append_pair("prompt", "consent")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");

    let callback = tokio::time::timeout(
        Duration::from_secs(30),
        provider.login(auth_url.as_str(), "alice"),
    )
    .await
    .expect("login in time")
    .expect("login");
    assert!(callback.as_str().starts_with(REDIRECT_URI), "{callback}");
    let param = |name: &str| {
        callback
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("state").as_deref(), Some(state.as_str()));
    assert_eq!(param("iss").as_deref(), Some(issuer.as_str()));
    let code = param("code").unwrap_or_else(|| panic!("no code in {callback}"));

    // The code exchange, with the verifier and client_secret_basic.
    let tokens = json(
        http.post(endpoint("token_endpoint"))
            .basic_auth(&config.client_id, Some(&config.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .expect("token request"),
    )
    .await;
    let claims = jwt_claims(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["aud"], config.client_id.as_str());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["nonce"], nonce.as_str());
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(tokens["expires_in"], 2);
    let access_token = tokens["access_token"].as_str().expect("access_token");
    let refresh_token = tokens["refresh_token"].as_str().expect("refresh_token");

    // The access token works at userinfo.
    let me = json(
        http.get(endpoint("userinfo_endpoint"))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("userinfo"),
    )
    .await;
    assert_eq!(me["sub"], "alice");

    // After the short access token lifetime, refresh once.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = http
        .get(endpoint("userinfo_endpoint"))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("userinfo with an expired token");
    assert_eq!(expired.status(), reqwest::StatusCode::UNAUTHORIZED);
    let refreshed = json(
        http.post(endpoint("token_endpoint"))
            .basic_auth(&config.client_id, Some(&config.client_secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await
            .expect("refresh"),
    )
    .await;
    assert_ne!(refreshed["access_token"], tokens["access_token"]);
    let claims = jwt_claims(refreshed["id_token"].as_str().expect("refreshed id_token"));
    assert_eq!(claims["sub"], "alice");

    // A code is good once; using it again also revokes what it gave (RFC 6749 4.1.2).
    let reused = http
        .post(endpoint("token_endpoint"))
        .basic_auth(&config.client_id, Some(&config.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .expect("reused code");
    assert_eq!(reused.status(), reqwest::StatusCode::BAD_REQUEST);

    let revoked = http
        .post(endpoint("token_endpoint"))
        .basic_auth(&config.client_id, Some(&config.client_secret))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                refreshed["refresh_token"].as_str().unwrap_or(refresh_token),
            ),
        ])
        .send()
        .await
        .expect("refresh after code reuse");
    assert_eq!(revoked.status(), reqwest::StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_user_cannot_log_in() {
    let provider = tokio::task::spawn_blocking(|| OidcProvider::start(OidcConfig::default()))
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{e}"));
    let config = provider.config();
    let mut auth_url = reqwest::Url::parse(&format!("{}/auth", provider.issuer())).expect("url");
    auth_url
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &config.client_id)
        .append_pair("redirect_uri", &config.redirect_uris[0])
        .append_pair("scope", "openid")
        .append_pair("state", "s")
        .append_pair("code_challenge", &URL_SAFE_NO_PAD.encode([7u8; 32]))
        .append_pair("code_challenge_method", "S256");
    let err = provider
        .login(auth_url.as_str(), "mallory")
        .await
        .expect_err("mallory is not a user");
    assert!(err.to_string().contains("403"), "{err}");
}
