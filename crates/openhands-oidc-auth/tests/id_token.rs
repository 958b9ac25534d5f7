//! ID token verification against real provider processes: a token is accepted only with
//! its provider's signature, issuer, our audience and the login's nonce. Revocation makes
//! the provider refuse the refresh token.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openhands_oidc_auth::provider::{OidcProvider, ProviderError, Tokens};
use openhands_test_support::oidc::{self, OidcBrowser, OidcConfig};
use std::time::Duration;

const REDIRECT: &str = "http://127.0.0.1:9/oauth/keycloak/callback";

fn relying_party(provider: &oidc::OidcProvider, client_id: &str) -> OidcProvider {
    let secret = provider.config().client_secret.clone();
    OidcProvider::new(
        provider.issuer(),
        client_id,
        Some(&secret),
        vec!["email".into(), "profile".into()],
        Duration::from_secs(60),
    )
    .expect("relying party")
}

/// A whole login as alice; returns the tokens and the nonce used.
async fn login(provider: &oidc::OidcProvider, rp: &OidcProvider) -> (Tokens, String) {
    let request = rp.authorization_request(REDIRECT).await.expect("auth URL");
    let callback = OidcBrowser::new(provider.issuer())
        .expect("browser")
        .login(&request.url, "alice")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let tokens = rp
        .exchange_code(&code, &request.pkce_verifier, REDIRECT, &request.nonce)
        .await
        .expect("exchange");
    (tokens, request.nonce)
}

fn rejected(result: Result<impl std::fmt::Debug, ProviderError>, what: &str) {
    match result {
        Err(ProviderError::InvalidIdToken(_)) => {}
        other => panic!("{what}: expected InvalidIdToken, got {other:?}"),
    }
}

#[tokio::test]
async fn only_our_providers_signed_tokens_for_us_with_our_nonce_pass() {
    let config = || OidcConfig {
        redirect_uris: vec![REDIRECT.into()],
        ..OidcConfig::default()
    };
    let (provider, other_provider) = tokio::join!(
        common::start_provider(config()),
        common::start_provider(config())
    );
    let client_id = provider.config().client_id.clone();
    let rp = relying_party(&provider, &client_id);

    let (tokens, nonce) = login(&provider, &rp).await;
    let identity = tokens.identity.clone().expect("identity");
    assert_eq!(identity.subject, "alice");
    assert_eq!(identity.email.as_deref(), Some("alice@example.com"));
    assert!(identity.email_verified);
    let raw = tokens.id_token.clone().expect("raw ID token");
    assert_eq!(
        rp.verify_id_token(&raw, Some(&nonce)).await.expect("valid"),
        identity
    );

    rejected(
        rp.verify_id_token(&raw, Some("another-nonce")).await,
        "wrong nonce",
    );
    let other_audience = relying_party(&provider, "another-client");
    rejected(
        other_audience.verify_id_token(&raw, Some(&nonce)).await,
        "another audience",
    );
    // The same client at another issuer (its own keys, its own `iss`).
    let other_rp = relying_party(&other_provider, &client_id);
    let (foreign, foreign_nonce) = login(&other_provider, &other_rp).await;
    let foreign_raw = foreign.id_token.expect("raw");
    rejected(
        rp.verify_id_token(&foreign_raw, Some(&foreign_nonce)).await,
        "another issuer",
    );

    // `alg: none` with the real claims, and real claims changed under a real signature.
    let parts: Vec<&str> = raw.split('.').collect();
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{}.", parts[1]);
    rejected(
        rp.verify_id_token(&unsigned, Some(&nonce)).await,
        "alg none",
    );
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    claims["sub"] = "mallory".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    rejected(
        rp.verify_id_token(&forged, Some(&nonce)).await,
        "changed claims",
    );
    rejected(rp.verify_id_token("not-a-jwt", None).await, "garbage");
}

#[tokio::test]
async fn refresh_works_until_the_token_is_revoked() {
    let provider = common::start_provider(OidcConfig {
        redirect_uris: vec![REDIRECT.into()],
        ..OidcConfig::default()
    })
    .await;
    let client_id = provider.config().client_id.clone();
    let rp = relying_party(&provider, &client_id);
    let (tokens, _) = login(&provider, &rp).await;
    let refresh = tokens.refresh_token.expect("refresh token");

    let refreshed = rp.refresh(&refresh, "alice").await.expect("refresh");
    assert_eq!(
        refreshed.identity.map(|i| i.subject).as_deref(),
        Some("alice")
    );
    match rp.refresh(&refresh, "bob").await {
        Err(_) => {}
        Ok(_) => panic!("a refreshed ID token for another subject must be refused"),
    }
    let current = refreshed.refresh_token.expect("refresh token");
    assert!(rp.revoke(&current).await.expect("revoke"));
    match rp.refresh(&current, "alice").await {
        Err(ProviderError::Refused(_)) => {}
        other => panic!("a revoked refresh token must be refused: {other:?}"),
    }
}
