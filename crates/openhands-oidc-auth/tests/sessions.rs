//! Server-side session records against a real OIDC provider: logout revokes the session
//! (a copied cookie dies with it), "log out everywhere", listing and revoking one's own
//! sessions, an org admin revoking a member's, and `last_seen_at` written at most once a
//! minute.

mod common;

use common::{Browser, Env};
use openhands_oidc_auth::session_store::entity as sessions;
use openhands_sql_store::entity::audit_log;
use openhands_test_support::oidc::{OidcConfig, OidcUser};
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use std::time::Duration;

const API: &str = "/api/conversations";

/// A server whose users all have verified e-mails, with the terms gate off.
async fn env_with(users: &[&str], adjust: impl FnOnce(&mut openhands_core::config::Config)) -> Env {
    let provider = OidcConfig {
        users: users.iter().map(|u| OidcUser::new(u, true)).collect(),
        ..OidcConfig::default()
    };
    Env::start(provider, |c| {
        c.auth.require_tos = false;
        adjust(c);
    })
    .await
}

async fn signed_in(env: &Env, user: &str) -> Browser {
    let mut browser = env.browser();
    let done = browser.login(user, "/").await;
    assert_eq!(done.status, StatusCode::FOUND, "{:?}", done.body);
    assert_eq!(browser.get(API).await.status, StatusCode::OK);
    browser
}

/// The 401 of an ended session, which also clears the cookie.
fn assert_ended(answer: &common::Answer) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{:?}", answer.body);
    let cleared = answer.set_cookies("keycloak_auth");
    assert!(
        cleared.len() == 1 && cleared[0].contains("Max-Age=0"),
        "the ended session's cookie is cleared: {cleared:?}"
    );
}

fn ids(list: &Value) -> Vec<String> {
    list["sessions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_copied_cookie_is_refused_after_logout() {
    let env = env_with(&["alice"], |_| {}).await;
    let mut browser = signed_in(&env, "alice").await;
    let mut copy = browser.clone();

    let out = browser.post("/api/logout", json!({})).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(
        out.body,
        json!({"message": "User logged out"}),
        "wire shape"
    );
    assert!(browser.cookie("keycloak_auth").is_none());

    // At once, not when the access token would next be refreshed.
    assert_ended(&copy.get(API).await);
    let row = sessions::Entity::find()
        .filter(sessions::Column::UserId.eq("alice"))
        .one(env.db.connection())
        .await
        .expect("query")
        .expect("the login's record");
    assert!(row.revoked_at.is_some(), "revoked in the database");
    // Logging out again (an ended cookie) still answers 200.
    let again = copy.post("/api/logout", json!({})).await;
    assert_eq!(again.status, StatusCode::OK);
}

#[tokio::test]
async fn logging_out_everywhere_from_browser_b_ends_browser_a() {
    let env = env_with(&["alice", "bob"], |_| {}).await;
    let mut laptop = signed_in(&env, "alice").await;
    let mut phone = signed_in(&env, "alice").await;
    let mut bob = signed_in(&env, "bob").await;

    let phone_cookie = phone.cookie("keycloak_auth").expect("session").to_owned();
    let out = phone.post("/api/logout?everywhere=true", json!({})).await;
    assert_eq!(out.status, StatusCode::OK, "{:?}", out.body);
    assert_eq!(out.body["message"], "User logged out");
    assert_eq!(out.body["sessions_revoked"], 2);
    assert!(phone.cookie("keycloak_auth").is_none());
    assert_ended(&laptop.get(API).await);
    assert_eq!(
        bob.get(API).await.status,
        StatusCode::OK,
        "other users keep theirs"
    );

    // An ended cookie cannot log its user out everywhere: a new login survives the try.
    let mut fresh = signed_in(&env, "alice").await;
    let mut ended = env.browser();
    ended
        .cookies
        .insert("keycloak_auth".into(), phone_cookie.clone());
    let refused = ended.post("/api/logout?everywhere=true", json!({})).await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        refused.body
    );
    assert_eq!(refused.code(), "not_authenticated");
    assert_eq!(fresh.get(API).await.status, StatusCode::OK);
    let bad_flag = fresh.post("/api/logout?everywhere=maybe", json!({})).await;
    assert_eq!(bad_flag.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fresh.get(API).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_session_is_revoked_from_the_list() {
    let env = env_with(&["alice"], |_| {}).await;
    let mut laptop = signed_in(&env, "alice").await;
    let mut phone = signed_in(&env, "alice").await;

    let listed = laptop.get("/api/sessions").await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let all = listed.body["sessions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(all.len(), 2, "{:?}", listed.body);
    let current: Vec<&Value> = all.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "exactly this browser's is current");
    for session in &all {
        for field in ["created_at", "last_seen_at", "expires_at", "ip"] {
            assert!(session[field].is_string(), "{field}: {session}");
        }
        assert!(session.get("token").is_none() && session.get("token_hash").is_none());
    }
    let phone_id = all
        .iter()
        .find(|s| s["current"] == false)
        .and_then(|s| s["id"].as_str())
        .expect("the other session")
        .to_owned();

    let revoked = laptop
        .send(Method::DELETE, &format!("/api/sessions/{phone_id}"), None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
    assert!(
        revoked.set_cookies("keycloak_auth").is_empty(),
        "not this one"
    );
    assert_ended(&phone.get(API).await);
    assert_eq!(laptop.get(API).await.status, StatusCode::OK);
    let again = laptop
        .send(Method::DELETE, &format!("/api/sessions/{phone_id}"), None)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.code(), "session_not_found");

    // Revoking one's own current session logs this browser out.
    let left = ids(&laptop.get("/api/sessions").await.body);
    assert_eq!(left.len(), 1);
    let own = laptop
        .send(Method::DELETE, &format!("/api/sessions/{}", left[0]), None)
        .await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(laptop.cookie("keycloak_auth").is_none(), "cleared");
    assert_eq!(laptop.get(API).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn another_user_cannot_revoke_your_session() {
    let env = env_with(&["alice", "bob"], |_| {}).await;
    let mut alice = signed_in(&env, "alice").await;
    let mut bob = signed_in(&env, "bob").await;
    let alice_id = ids(&alice.get("/api/sessions").await.body)
        .pop()
        .expect("alice's session");
    assert!(!ids(&bob.get("/api/sessions").await.body).contains(&alice_id));

    for path in [
        format!("/api/sessions/{alice_id}"),
        "/api/sessions/not-a-uuid".to_owned(),
        "/api/sessions/%00".to_owned(),
    ] {
        let refused = bob.send(Method::DELETE, &path, None).await;
        assert_eq!(
            refused.status,
            StatusCode::NOT_FOUND,
            "{path}: {:?}",
            refused.body
        );
        assert_eq!(refused.code(), "session_not_found");
    }
    assert_eq!(alice.get(API).await.status, StatusCode::OK);
    assert_eq!(ids(&alice.get("/api/sessions").await.body), vec![alice_id]);
}

#[tokio::test]
async fn an_org_admin_revokes_a_members_sessions_and_a_member_cannot() {
    let users = ["alice", "bob", "carol", "dana"];
    let env = env_with(&users, |_| {}).await;
    let mut alice = signed_in(&env, "alice").await; // owner
    let mut bob = signed_in(&env, "bob").await; // member
    let mut carol = signed_in(&env, "carol").await; // admin
    let mut dana = signed_in(&env, "dana").await; // not in the org
    let created = alice
        .post("/api/organizations", json!({"name": "Acme"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let org = created.body["id"].as_str().expect("org id").to_owned();
    for (browser, role) in [(&mut bob, "member"), (&mut carol, "admin")] {
        let email = format!(
            "{}@example.com",
            if role == "member" { "bob" } else { "carol" }
        );
        let invited = alice
            .post(
                &format!("/api/organizations/{org}/invitations"),
                json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(invited.status, StatusCode::CREATED, "{:?}", invited.body);
        let invitation = invited.body["id"].as_str().expect("invitation id");
        let accepted = browser
            .post(
                &format!("/api/organizations/{org}/invitations/{invitation}/accept"),
                json!({}),
            )
            .await;
        assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.body);
    }
    let revoke = |target: &str| format!("/api/organizations/{org}/members/{target}/sessions");

    // A plain member may not; an admin may not touch the owner.
    let by_member = bob.send(Method::DELETE, &revoke("carol"), None).await;
    assert_eq!(
        by_member.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        by_member.body
    );
    assert_eq!(by_member.code(), "insufficient_role");
    let on_owner = carol.send(Method::DELETE, &revoke("alice"), None).await;
    assert_eq!(on_owner.status, StatusCode::FORBIDDEN);
    // Not a member, or not the caller's org: 404.
    let stranger = carol.send(Method::DELETE, &revoke("dana"), None).await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
    assert_eq!(stranger.code(), "member_not_found");
    let outsider = dana.send(Method::DELETE, &revoke("bob"), None).await;
    assert_eq!(outsider.status, StatusCode::NOT_FOUND);
    assert_eq!(outsider.code(), "org_not_found");
    assert_eq!(
        bob.get(API).await.status,
        StatusCode::OK,
        "nothing revoked yet"
    );

    // The admin revokes the member's sessions: ended at once, and audited.
    let done = carol.send(Method::DELETE, &revoke("bob"), None).await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    assert_eq!(done.body["sessions_revoked"], 1);
    assert_ended(&bob.get(API).await);
    assert_eq!(carol.get(API).await.status, StatusCode::OK);
    assert_eq!(alice.get(API).await.status, StatusCode::OK);
    let audited = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("session.revoke_all"))
        .all(env.db.connection())
        .await
        .expect("audit rows");
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0].actor_user_id.as_deref(), Some("carol"));
    assert_eq!(audited[0].target.as_deref(), Some("bob"));
    assert_eq!(audited[0].org_id.as_deref(), Some(org.as_str()));
    // The owner may revoke an admin's.
    let owner = alice.send(Method::DELETE, &revoke("carol"), None).await;
    assert_eq!(owner.status, StatusCode::OK);
    assert_ended(&carol.get(API).await);
}

#[tokio::test]
async fn last_seen_is_written_at_most_once_a_minute() {
    let env = env_with(&["alice"], |c| c.auth.lookup_cache_ms = 0).await;
    let mut browser = signed_in(&env, "alice").await;
    let row = || async {
        sessions::Entity::find()
            .filter(sessions::Column::UserId.eq("alice"))
            .one(env.db.connection())
            .await
            .expect("query")
            .expect("record")
    };
    let login = row().await;
    for _ in 0..3 {
        assert_eq!(browser.get(API).await.status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        row().await.last_seen_at,
        login.last_seen_at,
        "not per request"
    );

    // Two minutes later (the row made older), the next request writes it once.
    let earlier = login.last_seen_at - chrono::Duration::seconds(120);
    sessions::Entity::update_many()
        .col_expr(sessions::Column::LastSeenAt, Expr::value(earlier))
        .filter(sessions::Column::Id.eq(login.id.as_str()))
        .exec(env.db.connection())
        .await
        .expect("age the row");
    assert_eq!(browser.get(API).await.status, StatusCode::OK);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let touched = loop {
        let seen = row().await.last_seen_at;
        if seen > earlier || std::time::Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        touched > login.last_seen_at - chrono::Duration::seconds(1),
        "written"
    );
    for _ in 0..3 {
        assert_eq!(browser.get(API).await.status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(row().await.last_seen_at, touched, "once, not per request");
}
