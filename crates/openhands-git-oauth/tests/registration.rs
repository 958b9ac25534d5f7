//! The crate's registrations are linked, and its routes are mounted only where linking
//! can work: SaaS mode with a provider configured.

mod common;

use common::{FakeGit, use_fake};
use openhands_api::contribution::RouteContribution;
use openhands_core::registry::Slot;
use openhands_test_support::TestServer;

#[test]
fn the_token_source_and_the_routes_are_registered() {
    let sources: Vec<&str> = Slot::ProviderTokenSource
        .registered()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(sources, ["oss.stored_tokens", "saas.git_oauth"]);
    assert!(
        RouteContribution::registered()
            .iter()
            .any(|c| c.name == "saas.git_oauth")
    );
}

/// The status of `GET /api/git-oauth/github/login`, redirects not followed.
async fn status_of_login(server: &TestServer) -> u16 {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    client
        .get(server.url("/api/git-oauth/github/login"))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn routes_are_mounted_only_in_saas_mode_with_a_provider_configured() {
    let fake = FakeGit::start().await;
    let saas = |configured: bool| {
        let url = fake.url().to_owned();
        move |c: &mut openhands_core::config::Config| {
            c.config_class = "saas".into();
            c.plugins.user_auth = Some("oss.local_user".into());
            c.database.migrate_on_start = true;
            if configured {
                use_fake(c, &url);
            }
        }
    };
    // Linked: the local user is signed in, so the login redirects to the provider.
    let linked = TestServer::spawn_with(saas(true)).await;
    assert_eq!(status_of_login(&linked).await, 302);
    // SaaS without any provider app: nothing to link, no routes (the API's JSON 404).
    let bare = TestServer::spawn_with(saas(false)).await;
    assert_eq!(status_of_login(&bare).await, 404);
    // OSS mode, even with apps configured: tokens are set by hand there.
    let url = fake.url().to_owned();
    let oss = TestServer::spawn_with(move |c| use_fake(c, &url)).await;
    assert_eq!(status_of_login(&oss).await, 404);
}
