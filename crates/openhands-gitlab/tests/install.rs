//! Installing and removing the hook through the crate's installer, against the fake GitLab:
//! what GitLab is asked to create, what the table keeps, and that a removed hook's deliveries
//! are refused.

mod common;

use common::{Env, PROJECT_ID, PUBLIC_URL, USER};
use openhands_core::scope::UserScope;
use openhands_gitlab::install::{
    InstallError, install_for_user, install_on_maintained_projects, remove_for_user,
};
use openhands_gitlab::store::{HookStore, secret_digest};

use openhands_gitlab as _;

#[tokio::test]
async fn installing_creates_the_hook_on_gitlab_and_records_its_token_hashed() {
    let mut env = Env::start().await;
    env.link_account(USER, common::ALICE_TOKEN, "alice").await;
    let row = env.install_hook().await;
    let hook = env.hook.clone().expect("hook");

    let created = env
        .gitlab
        .calls()
        .into_iter()
        .find(|c| c.method == "POST" && c.path == format!("/api/v4/projects/{PROJECT_ID}/hooks"))
        .expect("POST hooks");
    let body = &created.body;
    assert_eq!(
        body["url"],
        format!("{PUBLIC_URL}/integration/gitlab/events")
    );
    assert_eq!(body["name"], "OpenHands Resolver");
    assert_eq!(body["enable_ssl_verification"], true);
    for (event, on) in [
        ("issues_events", true),
        ("confidential_issues_events", true),
        ("note_events", true),
        ("confidential_note_events", true),
        ("push_events", false),
    ] {
        assert_eq!(body[event], on, "{event}");
    }
    assert_eq!(hook.token.len(), 64);
    assert_eq!(hook.user_id, USER);
    assert_eq!(hook.webhook_id, row.webhook_id);
    assert_eq!(
        created.token,
        common::ALICE_TOKEN,
        "installed with the user's token"
    );

    assert_eq!(row.project_id, Some(42));
    assert_eq!(row.target_path, "acme/app");
    assert_eq!(row.gitlab_hook_id, Some(77));
    assert_eq!(row.secret_sha256, secret_digest(&hook.token));
    assert_ne!(row.secret_sha256, hook.token);

    // A second installation on the same project is refused.
    let again = install_for_user(&env.cli_config(), &UserScope::user(USER), "acme/app").await;
    assert!(
        matches!(again, Err(InstallError::AlreadyInstalled { .. })),
        "{again:?}"
    );

    // Removed: deleted on GitLab, forgotten here, and its deliveries refused.
    remove_for_user(&env.cli_config(), &UserScope::user(USER), &row.webhook_id)
        .await
        .expect("removing");
    assert!(env.gitlab.calls().iter().any(
        |c| c.method == "DELETE" && c.path == format!("/api/v4/projects/{PROJECT_ID}/hooks/77")
    ));
    let hooks = HookStore::new(env.db.clone());
    assert!(hooks.find(&row.webhook_id).await.expect("read").is_none());
    let res = env
        .deliver("e-after-removal", &env.payload("note_on_issue"))
        .await;
    assert_eq!(res.status(), 403);
    assert!(env.rows().await.is_empty());
}

#[tokio::test]
async fn a_user_without_a_gitlab_token_cannot_install() {
    let env = Env::start().await;
    let result = install_for_user(&env.cli_config(), &UserScope::user("nobody"), "acme/app").await;
    assert!(
        matches!(result, Err(InstallError::NoToken { .. })),
        "{result:?}"
    );
    assert!(env.gitlab.calls().is_empty());
}

#[tokio::test]
async fn every_maintained_project_gets_the_hook_once() {
    let env = Env::start().await;
    env.link_account(USER, common::ALICE_TOKEN, "alice").await;
    env.gitlab.with_state(|s| {
        s.projects.insert("acme/lib".into(), 43);
        s.projects.insert("acme/docs".into(), 44);
        s.members.insert((PROJECT_ID, common::ALICE_ID), 40);
        s.members.insert((43, common::ALICE_ID), 50);
        // A Developer only: not hers to hook.
        s.members.insert((44, common::ALICE_ID), 30);
    });
    let scope = UserScope::user(USER);

    let sweep = install_on_maintained_projects(&env.cli_config(), &scope)
        .await
        .expect("sweep");
    let mut installed: Vec<_> = sweep
        .installed
        .iter()
        .map(|r| r.target_path.clone())
        .collect();
    installed.sort();
    assert_eq!(installed, ["acme/app", "acme/lib"]);
    assert!(sweep.failed.is_empty(), "{sweep:?}");
    let listing = env
        .gitlab
        .calls()
        .into_iter()
        .find(|c| c.method == "GET" && c.path == "/api/v4/projects")
        .expect("listed the projects");
    assert!(
        listing.query.contains("min_access_level=40"),
        "{}",
        listing.query
    );

    let again = install_on_maintained_projects(&env.cli_config(), &scope)
        .await
        .expect("second sweep");
    assert!(again.installed.is_empty(), "{again:?}");
    assert_eq!(again.already.len(), 2);
    let hooks = HookStore::new(env.db.clone());
    assert_eq!(hooks.of_user(USER).await.expect("rows").len(), 2);
}
