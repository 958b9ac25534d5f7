//! Linking git-provider accounts through the real server, a real OIDC login and fake
//! providers that speak GitHub's, GitLab's and Bitbucket's OAuth wire formats.

mod common;

use common::{FakeGit, callback, link, signed_in, start, start_link};
use openhands_core::secrets::ProviderType;
use openhands_sql_store::entity::provider_token;
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

async fn token_rows(env: &common::Env, user: &str) -> Vec<provider_token::Model> {
    provider_token::Entity::find()
        .filter(provider_token::Column::UserId.eq(user))
        .all(env.db.connection())
        .await
        .expect("query")
}

#[tokio::test]
async fn linking_github_stores_the_token_sealed_and_unlinking_forgets_it() {
    let fake = FakeGit::start().await;
    let env = start(&fake).await;
    let mut browser = signed_in(&env, "alice").await;
    let stored = browser
        .post(
            "/api/settings",
            json!({"llm_model": "openai/gpt-4o", "llm_api_key": "sk-test"}),
        )
        .await;
    assert_eq!(stored.status, StatusCode::OK, "{:?}", stored.body);

    // The redirect to GitHub: our client id, state, PKCE and the callback URL.
    let authorize = start_link(&mut browser, ProviderType::Github).await;
    assert!(
        authorize["_location"].starts_with(&format!("{}/login/oauth/authorize?", fake.url())),
        "{}",
        authorize["_location"]
    );
    assert_eq!(authorize["client_id"], "gh-client");
    assert_eq!(authorize["response_type"], "code");
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert_eq!(
        authorize["redirect_uri"],
        format!("{}/api/git-oauth/github/callback", env.origin())
    );
    assert!(!authorize["_location"].contains("gh-secret"));

    // The callback exchanges the code (with the PKCE verifier) and lands on the page.
    let code = fake.issue_code(
        ProviderType::Github,
        "octocat",
        Some(&authorize["code_challenge"]),
    );
    let done = browser
        .get(&callback(ProviderType::Github, &code, &authorize["state"]))
        .await;
    assert_eq!(done.status, StatusCode::FOUND, "{:?}", done.body);
    assert_eq!(done.location(), "/settings/git");
    assert!(
        browser.cookie("openhands_git_oauth").is_none(),
        "link cookie cleared"
    );
    let issued = fake.last_issued(ProviderType::Github).expect("issued");

    // Stored sealed, with its refresh token and expiry, under the user's scope.
    let rows = token_rows(&env, "alice").await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.provider, "github");
    assert_eq!(row.user_login.as_deref(), Some("octocat"));
    assert!(row.token_sealed.starts_with("enc:"), "{}", row.token_sealed);
    assert!(!row.token_sealed.contains(&issued.access_token));
    let refresh = row.refresh_token_sealed.as_deref().expect("refresh token");
    assert!(refresh.starts_with("enc:") && !refresh.contains(&issued.refresh_token));
    let expires = row.expires_at.expect("expiry stored");
    let lifetime = expires - chrono::Utc::now();
    assert!(
        lifetime > chrono::Duration::hours(7) && lifetime <= chrono::Duration::hours(8),
        "{lifetime}"
    );

    let settings = browser.get("/api/settings").await;
    assert_eq!(settings.status, StatusCode::OK);
    // The fake's address is a configured base URL, hence stored as the clone host (as a
    // GitHub Enterprise Server's would be).
    let fake_host = fake.url().trim_start_matches("http://");
    assert_eq!(
        settings.body["provider_tokens_set"],
        json!({"github": fake_host})
    );
    assert_eq!(row.host.as_deref(), Some(fake_host));
    let text = settings.body.to_string();
    assert!(!text.contains(&issued.access_token) && !text.contains(&issued.refresh_token));

    // A settings POST of other fields keeps the linked token whole.
    let kept = browser
        .post(
            "/api/add-git-providers",
            json!({"provider_tokens": {"github": {"token": ""}}}),
        )
        .await;
    assert_eq!(kept.status, StatusCode::OK, "{:?}", kept.body);
    let rows = token_rows(&env, "alice").await;
    assert!(rows[0].refresh_token_sealed.is_some(), "refresh token kept");
    assert_eq!(rows[0].expires_at, row.expires_at, "expiry kept");

    // Unlink, then there is nothing left to unlink.
    let unlinked = browser
        .send(Method::DELETE, "/api/git-oauth/github", None)
        .await;
    assert_eq!(unlinked.status, StatusCode::OK, "{:?}", unlinked.body);
    assert!(token_rows(&env, "alice").await.is_empty());
    let settings = browser.get("/api/settings").await;
    assert_eq!(settings.body["provider_tokens_set"], json!({}));
    let again = browser
        .send(Method::DELETE, "/api/git-oauth/github", None)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.code(), "not_linked");
}

#[tokio::test]
async fn callbacks_that_do_not_match_their_link_are_refused_and_store_nothing() {
    let fake = FakeGit::start().await;
    let env = start(&fake).await;
    let mut browser = signed_in(&env, "bob").await;

    // A state that is not the one we sent.
    let authorize = start_link(&mut browser, ProviderType::Github).await;
    let code = fake.issue_code(
        ProviderType::Github,
        "bob-gh",
        Some(&authorize["code_challenge"]),
    );
    let forged = browser
        .get(&callback(ProviderType::Github, &code, "not-the-state"))
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert_eq!(forged.code(), "bad_state");
    assert!(browser.cookie("openhands_git_oauth").is_none(), "cleared");
    assert!(
        fake.token_requests(ProviderType::Github).is_empty(),
        "no exchange"
    );

    // A callback without a link started in this browser.
    let stray = browser
        .get(&callback(ProviderType::Github, &code, &authorize["state"]))
        .await;
    assert_eq!(stray.status, StatusCode::BAD_REQUEST);
    assert_eq!(stray.code(), "link_expired");

    // A link started for one provider cannot complete another.
    let authorize = start_link(&mut browser, ProviderType::Gitlab).await;
    let crossed = browser
        .get(&callback(ProviderType::Github, &code, &authorize["state"]))
        .await;
    assert_eq!(crossed.code(), "bad_state");

    // A link started by another user cannot complete for this one.
    let mut carol = signed_in(&env, "carol").await;
    let authorize = start_link(&mut carol, ProviderType::Github).await;
    browser.cookies.insert(
        "openhands_git_oauth".into(),
        carol
            .cookie("openhands_git_oauth")
            .expect("cookie")
            .to_owned(),
    );
    let borrowed = browser
        .get(&callback(ProviderType::Github, &code, &authorize["state"]))
        .await;
    assert_eq!(borrowed.code(), "bad_state");

    // GitHub refuses a code with `200 OK` and an error body: still a refusal.
    let authorize = start_link(&mut browser, ProviderType::Github).await;
    let refused = browser
        .get(&callback(
            ProviderType::Github,
            "code-nobody-issued",
            &authorize["state"],
        ))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        refused.body
    );
    assert_eq!(refused.code(), "code_rejected");
    assert!(
        refused.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("bad_verification_code")),
        "{:?}",
        refused.body
    );

    // A code exchanged without the verifier of its challenge is refused too.
    let authorize = start_link(&mut browser, ProviderType::Gitlab).await;
    let code = fake.issue_code(ProviderType::Gitlab, "bob-gl", Some("another-challenge"));
    let mismatched = browser
        .get(&callback(ProviderType::Gitlab, &code, &authorize["state"]))
        .await;
    assert_eq!(mismatched.code(), "code_rejected");

    // The user said no at the provider.
    start_link(&mut browser, ProviderType::Gitlab).await;
    let declined = browser
        .get("/api/git-oauth/gitlab/callback?error=access_denied&error_description=denied")
        .await;
    assert_eq!(declined.status, StatusCode::BAD_REQUEST);
    assert_eq!(declined.code(), "link_refused");

    assert!(token_rows(&env, "bob").await.is_empty(), "nothing stored");
    assert!(token_rows(&env, "carol").await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn gitlab_and_bitbucket_link_with_their_own_wire_formats() {
    let fake = FakeGit::start().await;
    let env = start(&fake).await;
    let mut browser = signed_in(&env, "dana").await;

    let gitlab = link(&mut browser, &fake, ProviderType::Gitlab, "dana-gl").await;
    assert_eq!(gitlab.status, StatusCode::FOUND, "{:?}", gitlab.body);
    let exchange = &fake.token_requests(ProviderType::Gitlab)[0];
    assert_eq!(exchange.form["grant_type"], "authorization_code");
    assert_eq!(exchange.form["client_id"], "gl-client");
    assert!(exchange.form.contains_key("code_verifier"), "PKCE");
    assert!(exchange.basic.is_none());

    // Bitbucket: no PKCE, client credentials as HTTP Basic only.
    let authorize = start_link(&mut browser, ProviderType::Bitbucket).await;
    assert!(authorize["_location"].starts_with(&format!("{}/site/oauth2/authorize?", fake.url())));
    assert!(!authorize.contains_key("code_challenge"));
    let code = fake.issue_code(ProviderType::Bitbucket, "dana-bb", None);
    let bitbucket = browser
        .get(&callback(
            ProviderType::Bitbucket,
            &code,
            &authorize["state"],
        ))
        .await;
    assert_eq!(bitbucket.status, StatusCode::FOUND, "{:?}", bitbucket.body);
    let exchange = &fake.token_requests(ProviderType::Bitbucket)[0];
    assert_eq!(
        exchange.basic,
        Some(("bb-client".to_owned(), "bb-secret".to_owned()))
    );
    assert!(!exchange.form.contains_key("client_secret"));

    let mut rows = token_rows(&env, "dana").await;
    rows.sort_by(|a, b| a.provider.cmp(&b.provider));
    let logins: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.provider.as_str(),
                r.user_login.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(logins, [("bitbucket", "dana-bb"), ("gitlab", "dana-gl")]);
    for row in &rows {
        assert!(row.refresh_token_sealed.is_some() && row.expires_at.is_some());
    }
    let settings = browser.get("/api/settings").await;
    // No settings stored for dana: 404, but the link is there for the conversation.
    assert_eq!(settings.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn linking_needs_a_signed_in_user_and_a_configured_provider() {
    let fake = FakeGit::start().await;
    let env = start(&fake).await;
    let mut anonymous = env.browser();
    let answer = anonymous.get("/api/git-oauth/github/login").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.cookie("openhands_git_oauth").is_none());

    let mut browser = signed_in(&env, "erin").await;
    let unknown = browser.get("/api/git-oauth/sourceforge/login").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "unknown_provider");
    let sso = browser.get("/api/git-oauth/enterprise_sso/login").await;
    assert_eq!(sso.code(), "unknown_provider");
    // A login elsewhere than a local path lands on `/`.
    let authorize = browser
        .get("/api/git-oauth/gitlab/login?redirect_url=https://evil.example")
        .await;
    assert_eq!(authorize.status, StatusCode::FOUND);
    let query = common::query_of(authorize.location());
    let code = fake.issue_code(
        ProviderType::Gitlab,
        "erin",
        query.get("code_challenge").map(String::as_str),
    );
    let done = browser
        .get(&callback(ProviderType::Gitlab, &code, &query["state"]))
        .await;
    assert_eq!(done.location(), "/");
}
