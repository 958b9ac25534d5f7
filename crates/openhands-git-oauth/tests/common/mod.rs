//! Set-up shared by the linking tests: the fake providers, a server configured to link
//! accounts through them, and signed-in browsers.

#![allow(dead_code)] // each test file uses a part

mod fake_git;

pub use fake_git::{FakeGit, client_of};
pub use openhands_test_support::saas::{Answer, Browser, Env};

use openhands_core::config::Config;
use openhands_core::secret::Secret;
use openhands_core::secrets::ProviderType;
use openhands_test_support::oidc::{OidcConfig, OidcUser};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashMap;

// Name the crate so its `inventory` registrations are linked into this test binary.
use openhands_git_oauth as _;

/// Points every provider's OAuth app at `fake`, with the fake's client credentials.
pub fn use_fake(c: &mut Config, fake_url: &str) {
    let (github_id, github_secret) = client_of(ProviderType::Github);
    c.github_app_client_id = github_id.into();
    c.git_oauth.github.client_secret = Some(Secret::new(github_secret));
    c.git_oauth.github.base_url = Some(fake_url.to_owned());
    c.git_oauth.github.api_url = Some(fake_url.to_owned());
    let (gitlab_id, gitlab_secret) = client_of(ProviderType::Gitlab);
    c.git_oauth.gitlab.client_id = Some(gitlab_id.into());
    c.git_oauth.gitlab.client_secret = Some(Secret::new(gitlab_secret));
    c.git_oauth.gitlab.base_url = Some(fake_url.to_owned());
    let (bitbucket_id, bitbucket_secret) = client_of(ProviderType::Bitbucket);
    c.git_oauth.bitbucket.client_id = Some(bitbucket_id.into());
    c.git_oauth.bitbucket.client_secret = Some(Secret::new(bitbucket_secret));
    c.git_oauth.bitbucket.base_url = Some(fake_url.to_owned());
}

/// The users who can sign in, all with a verified e-mail.
pub const USERS: [&str; 5] = ["alice", "bob", "carol", "dana", "erin"];

/// A SaaS server linking through `fake`, with its OIDC provider.
pub async fn start(fake: &FakeGit) -> Env {
    let url = fake.url().to_owned();
    let provider = OidcConfig {
        users: USERS.iter().map(|u| OidcUser::new(u, true)).collect(),
        ..OidcConfig::default()
    };
    Env::start(provider, move |c| use_fake(c, &url)).await
}

/// A browser signed in as `username`, terms accepted, with LLM settings stored (so
/// `GET /api/settings` answers).
pub async fn signed_in(env: &Env, username: &str) -> Browser {
    let mut browser = env.browser();
    let done = browser.login(username, "/").await;
    assert_eq!(done.status, StatusCode::FOUND, "{:?}", done.body);
    let accepted = browser.post("/api/accept_tos", json!({})).await;
    assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.body);
    browser
}

/// The query of a URL as a map.
pub fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// Starts a link of `provider`: the redirect to the provider and its query.
pub async fn start_link(browser: &mut Browser, provider: ProviderType) -> HashMap<String, String> {
    let started = browser
        .get(&format!(
            "/api/git-oauth/{}/login?redirect_url=/settings/git",
            provider.as_str()
        ))
        .await;
    assert_eq!(started.status, StatusCode::FOUND, "{:?}", started.body);
    assert!(
        browser.cookie("openhands_git_oauth").is_some(),
        "link cookie set"
    );
    let mut query = query_of(started.location());
    query.insert("_location".into(), started.location().to_owned());
    query
}

/// The callback path for `provider` with `code` and `state`.
pub fn callback(provider: ProviderType, code: &str, state: &str) -> String {
    format!(
        "/api/git-oauth/{}/callback?code={code}&state={state}",
        provider.as_str()
    )
}

/// A whole link: the redirect, the provider's code for `login`, the callback's answer.
pub async fn link(
    browser: &mut Browser,
    fake: &FakeGit,
    provider: ProviderType,
    login: &str,
) -> Answer {
    let authorize = start_link(browser, provider).await;
    let code = fake.issue_code(
        provider,
        login,
        authorize.get("code_challenge").map(String::as_str),
    );
    browser
        .get(&callback(provider, &code, &authorize["state"]))
        .await
}
