//! The org and role API through the real server in SaaS mode, on SQLite and PostgreSQL,
//! logged in through `common`'s test-only `test.header_org_user`.

mod common;

use common::{Backend, Env, assert_refused, on_both_databases};
use openhands_sql_store::entity::audit_log;
use reqwest::Method;
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{Value, json};

impl Env {
    /// `{user_id: role}` of the org's members, as `as_user` sees them.
    async fn roles(&self, org: &str, as_user: &str) -> Value {
        let (status, body) = self
            .get(as_user, &format!("/api/organizations/{org}/members"))
            .await;
        assert_eq!(status, 200, "{body}");
        let mut roles = serde_json::Map::new();
        for m in body["members"].as_array().expect("members") {
            roles.insert(
                m["user_id"].as_str().expect("user id").to_owned(),
                m["role"].clone(),
            );
        }
        Value::Object(roles)
    }
}

on_both_databases!(
    whole_org_flow_create_invite_accept_role_remove_switch_leave,
    members_and_admins_are_limited_by_role,
    last_owner_cannot_leave_be_removed_or_demoted,
    non_members_get_404_and_see_nothing,
    changes_and_secret_changes_are_audited_without_values,
    failing_audit_write_does_not_fail_the_request,
    open_api_routes_are_isolated_by_user_and_org,
);

/// What `user` sees through the open API: settings model, secret names, conversation ids.
async fn visible(env: &Env, user: &str) -> (Value, Vec<String>, Vec<String>) {
    let (_, settings) = env.get(user, "/api/settings").await;
    let (status, secrets) = env.get(user, "/api/secrets").await;
    assert_eq!(status, 200, "{secrets}");
    let (status, conversations) = env.get(user, "/api/conversations").await;
    assert_eq!(status, 200, "{conversations}");
    let names = |list: &Value, key: &str| -> Vec<String> {
        list.as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item[key].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    (
        settings["llm_model"].clone(),
        names(&secrets["custom_secrets"], "name"),
        names(&conversations["results"], "conversation_id"),
    )
}

async fn open_api_routes_are_isolated_by_user_and_org(backend: Backend) {
    let env = Env::start(backend).await;
    let org_x = env.create_org("alice", "X").await;
    let (status, _) = env
        .post(
            "alice",
            "/api/settings",
            json!({"llm_model": "alice/x", "llm_api_key": "sk-alice"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = env
        .post(
            "alice",
            "/api/secrets",
            json!({"name": "X_TOKEN", "value": "x-secret"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, created) = env.post("alice", "/api/conversations", json!({})).await;
    assert_eq!(status, 200, "{created}");
    let conversation = created["conversation_id"].as_str().expect("id").to_owned();
    let alice_in_x = (
        json!("alice/x"),
        vec!["X_TOKEN".to_owned()],
        vec![conversation.clone()],
    );
    assert_eq!(visible(&env, "alice").await, alice_in_x);

    // Another user, with no org or in the same org, sees none of it and cannot touch it.
    env.add_member(&org_x, "alice", "carol", "admin").await;
    for user in ["bob", "carol"] {
        assert_eq!(
            visible(&env, user).await,
            (Value::Null, vec![], vec![]),
            "{user}"
        );
        let path = format!("/api/conversations/{conversation}");
        // OpenHands answers a conversation it does not find with 200 and `null`.
        let (status, body) = env.get(user, &path).await;
        assert_eq!(
            (status, body),
            (200, Value::Null),
            "{user} reads alice's conversation"
        );
        let (status, _) = env.patch(user, &path, json!({"title": "mine"})).await;
        assert_eq!(status, 404, "{user} renames alice's conversation");
        env.delete(user, &path).await;
        let (status, _) = env.delete(user, "/api/secrets/X_TOKEN").await;
        assert_ne!(status, 200, "{user} deletes alice's secret");
    }
    assert_eq!(visible(&env, "alice").await, alice_in_x, "untouched");

    // Alice in another org of hers has a separate set; switching back finds the first.
    let org_y = env.create_org("alice", "Y").await;
    let (status, _) = env
        .post(
            "alice",
            &format!("/api/organizations/{org_y}/switch"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(visible(&env, "alice").await, (Value::Null, vec![], vec![]));
    let (status, _) = env
        .post(
            "alice",
            &format!("/api/organizations/{org_x}/switch"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(visible(&env, "alice").await, alice_in_x);
}

async fn whole_org_flow_create_invite_accept_role_remove_switch_leave(backend: Backend) {
    let env = Env::start(backend).await;
    let (status, _) = env
        .call(None, Method::GET, "/api/organizations", None)
        .await;
    assert_eq!(status, 401);

    // A new user has no org and no current org.
    let (status, body) = env.get("ann", "/api/organizations").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"organizations": [], "current_org_id": null}));

    // Creating makes the creator owner and the org current.
    let (status, created) = env
        .post("ann", "/api/organizations", json!({"name": "  Acme "}))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "Acme");
    assert_eq!(created["role"], "owner");
    assert_eq!(created["is_current"], true);
    let acme = created["id"].as_str().expect("id").to_owned();
    let (_, body) = env.get("ann", "/api/organizations").await;
    assert_eq!(body["current_org_id"], acme.as_str());
    assert_eq!(body["organizations"][0]["role"], "owner");
    let (_, body) = env.get("ann", "/api/organizations/current").await;
    assert_eq!(body["current_org_id"], acme.as_str());

    // Invite bob (known user) and carol (not yet signed in).
    env.get("bob", "/api/organizations").await;
    let (status, invitation) = env
        .post(
            "ann",
            &format!("/api/organizations/{acme}/invitations"),
            json!({"email": "Bob@Example.com", "role": "member"}),
        )
        .await;
    assert_eq!(status, 201, "{invitation}");
    assert_eq!(invitation["email"], "bob@example.com");
    assert_eq!(invitation["user_exists"], true);
    let invitation_id = invitation["id"].as_str().expect("id");
    // Only bob can accept bob's invitation.
    let accept = format!("/api/organizations/{acme}/invitations/{invitation_id}/accept");
    assert_refused(
        env.post("carol", &accept, json!({})).await,
        404,
        "invitation_not_found",
    );
    let (status, body) = env.post("bob", &accept, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "member");
    // Accepting twice finds no open invitation.
    assert_refused(
        env.post("bob", &accept, json!({})).await,
        404,
        "invitation_not_found",
    );
    // bob had no current org, so the new one is current.
    let (_, body) = env.get("bob", "/api/organizations").await;
    assert_eq!(body["current_org_id"], acme.as_str());
    assert_eq!(body["organizations"][0]["role"], "member");
    // A member cannot be invited again.
    assert_refused(
        env.post(
            "ann",
            &format!("/api/organizations/{acme}/invitations"),
            json!({"email": "bob@example.com"}),
        )
        .await,
        409,
        "already_member",
    );
    let (status, carol_invite) = env
        .post(
            "ann",
            &format!("/api/organizations/{acme}/invitations"),
            json!({"email": "carol@example.com", "role": "admin"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(carol_invite["user_exists"], false);
    // carol finds it in her open invitations; others do not see it.
    let (status, mine) = env.get("carol", "/api/organizations/invitations").await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["invitations"][0]["id"], carol_invite["id"]);
    assert_eq!(mine["invitations"][0]["org_name"], "Acme");
    assert_eq!(mine["invitations"][0]["role"], "admin");
    let (_, theirs) = env.get("dan", "/api/organizations/invitations").await;
    assert_eq!(theirs, json!({"invitations": []}));
    let (status, _) = env
        .post(
            "carol",
            &format!(
                "/api/organizations/{acme}/invitations/{}/accept",
                carol_invite["id"].as_str().expect("id")
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);

    let (status, members) = env
        .get("bob", &format!("/api/organizations/{acme}/members"))
        .await;
    assert_eq!(status, 200, "{members}");
    assert_eq!(members["members"].as_array().map(Vec::len), Some(3));
    assert_eq!(members["members"][0]["email"], "ann@example.com");
    assert_eq!(
        env.roles(&acme, "ann").await,
        json!({"ann": "owner", "bob": "member", "carol": "admin"})
    );

    // Change a role, remove a member.
    let (status, body) = env
        .patch(
            "ann",
            &format!("/api/organizations/{acme}/members/bob"),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "admin");
    let (status, _) = env
        .delete("bob", &format!("/api/organizations/{acme}/members/carol"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        env.roles(&acme, "ann").await,
        json!({"ann": "owner", "bob": "admin"})
    );
    assert_refused(
        env.get("carol", &format!("/api/organizations/{acme}/members"))
            .await,
        404,
        "org_not_found",
    );
    // carol's current org was acme; removal cleared it.
    let (_, body) = env.get("carol", "/api/organizations/current").await;
    assert_eq!(body["current_org_id"], Value::Null);

    // A second org becomes current; switching goes back.
    let beta = env.create_org("ann", "Beta").await;
    let (_, body) = env.get("ann", "/api/organizations").await;
    assert_eq!(body["current_org_id"], beta.as_str());
    let (status, body) = env
        .post(
            "ann",
            &format!("/api/organizations/{acme}/switch"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = env.get("ann", "/api/organizations").await;
    assert_eq!(body["current_org_id"], acme.as_str());
    let current: Vec<_> = body["organizations"]
        .as_array()
        .expect("orgs")
        .iter()
        .map(|o| (o["name"].clone(), o["is_current"].clone()))
        .collect();
    assert_eq!(
        current,
        vec![(json!("Acme"), json!(true)), (json!("Beta"), json!(false))]
    );

    // bob leaves: no orgs, no current org.
    let (status, _) = env
        .post(
            "bob",
            &format!("/api/organizations/{acme}/leave"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = env.get("bob", "/api/organizations").await;
    assert_eq!(body, json!({"organizations": [], "current_org_id": null}));

    // Bad input.
    assert_refused(
        env.post("ann", "/api/organizations", json!({"name": "  "}))
            .await,
        400,
        "invalid_request",
    );
    assert_refused(
        env.post(
            "ann",
            &format!("/api/organizations/{acme}/invitations"),
            json!({"email": "not-an-address"}),
        )
        .await,
        400,
        "invalid_request",
    );
    assert_refused(
        env.post(
            "ann",
            &format!("/api/organizations/{acme}/invitations"),
            json!({"email": "dan@example.com", "role": "root"}),
        )
        .await,
        400,
        "invalid_role",
    );
}

async fn members_and_admins_are_limited_by_role(backend: Backend) {
    let env = Env::start(backend).await;
    let org = env.create_org("ann", "Acme").await;
    env.add_member(&org, "ann", "bob", "admin").await;
    env.add_member(&org, "ann", "carol", "member").await;
    env.add_member(&org, "ann", "dave", "member").await;
    let invitations = format!("/api/organizations/{org}/invitations");
    let member = |user: &str| format!("/api/organizations/{org}/members/{user}");

    // A member changes nothing; an admin cannot touch an owner nor grant owner.
    let invite = |role: Option<&str>| {
        let mut body = json!({"email": "eve@example.com"});
        if let Some(role) = role {
            body["role"] = json!(role);
        }
        Some(body)
    };
    let role = |role: &str| Some(json!({ "role": role }));
    let refused = [
        ("carol", Method::POST, invitations.clone(), invite(None)),
        ("carol", Method::DELETE, member("dave"), None),
        ("carol", Method::PATCH, member("dave"), role("admin")),
        ("carol", Method::PATCH, member("carol"), role("owner")),
        ("bob", Method::DELETE, member("ann"), None),
        ("bob", Method::PATCH, member("ann"), role("member")),
        ("bob", Method::PATCH, member("carol"), role("owner")),
        (
            "bob",
            Method::POST,
            invitations.clone(),
            invite(Some("owner")),
        ),
    ];
    for (actor, method, path, body) in refused {
        let what = format!("{actor} {method} {path}");
        let (status, body) = env.call(Some(actor), method, &path, body).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("insufficient_role")),
            "{what}: {body}"
        );
    }
    assert_eq!(
        env.roles(&org, "carol").await,
        json!({"ann": "owner", "bob": "admin", "carol": "member", "dave": "member"})
    );

    // What an admin may do: invite, promote to admin, remove a member.
    let (status, _) = env
        .post("bob", &invitations, json!({"email": "eve@example.com"}))
        .await;
    assert_eq!(status, 201);
    let (status, _) = env
        .patch("bob", &member("carol"), json!({"role": "admin"}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = env.delete("bob", &member("dave")).await;
    assert_eq!(status, 200);
    // A missing member is 404.
    assert_refused(
        env.delete("bob", &member("dave")).await,
        404,
        "member_not_found",
    );

    // Only an owner grants owner.
    let (status, _) = env
        .patch("ann", &member("bob"), json!({"role": "owner"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        env.roles(&org, "ann").await,
        json!({"ann": "owner", "bob": "owner", "carol": "admin"})
    );
}

async fn last_owner_cannot_leave_be_removed_or_demoted(backend: Backend) {
    let env = Env::start(backend).await;
    let org = env.create_org("ann", "Acme").await;
    env.add_member(&org, "ann", "bob", "member").await;
    let leave = format!("/api/organizations/{org}/leave");
    let member = |user: &str| format!("/api/organizations/{org}/members/{user}");

    assert_refused(env.post("ann", &leave, json!({})).await, 409, "last_owner");
    assert_refused(env.delete("ann", &member("ann")).await, 409, "last_owner");
    assert_refused(
        env.patch("ann", &member("ann"), json!({"role": "admin"}))
            .await,
        409,
        "last_owner",
    );
    assert_eq!(
        env.roles(&org, "ann").await,
        json!({"ann": "owner", "bob": "member"})
    );

    // With a second owner, the first may go; then the second is the last.
    let (status, _) = env
        .patch("ann", &member("bob"), json!({"role": "owner"}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = env
        .patch("ann", &member("ann"), json!({"role": "admin"}))
        .await;
    assert_eq!(status, 200);
    assert_refused(
        env.patch("bob", &member("bob"), json!({"role": "member"}))
            .await,
        409,
        "last_owner",
    );
    let (status, _) = env.post("ann", &leave, json!({})).await;
    assert_eq!(status, 200);
    assert_refused(env.post("bob", &leave, json!({})).await, 409, "last_owner");
    assert_eq!(env.roles(&org, "bob").await, json!({"bob": "owner"}));
}

async fn non_members_get_404_and_see_nothing(backend: Backend) {
    let env = Env::start(backend).await;
    let org = env.create_org("ann", "Acme").await;
    let (status, invitation) = env
        .post(
            "ann",
            &format!("/api/organizations/{org}/invitations"),
            json!({"email": "carol@example.com"}),
        )
        .await;
    assert_eq!(status, 201);
    env.create_org("bob", "Bob's").await;

    // bob sees only his own org.
    let (_, body) = env.get("bob", "/api/organizations").await;
    let names: Vec<_> = body["organizations"]
        .as_array()
        .expect("orgs")
        .iter()
        .map(|o| o["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("Bob's")]);

    // An existing org of someone else and a missing org answer alike.
    for target in [org.as_str(), "no-such-org"] {
        let base = format!("/api/organizations/{target}");
        let missing = |r: (u16, Value)| assert_refused(r, 404, "org_not_found");
        let (status, existing_body) = env.get("bob", &format!("{base}/members")).await;
        assert_eq!(status, 404);
        assert_eq!(
            existing_body,
            json!({"detail": "organization not found", "code": "org_not_found"})
        );
        missing(env.post("bob", &format!("{base}/switch"), json!({})).await);
        missing(env.post("bob", &format!("{base}/leave"), json!({})).await);
        missing(
            env.post(
                "bob",
                &format!("{base}/invitations"),
                json!({"email": "x@example.com"}),
            )
            .await,
        );
        missing(
            env.patch(
                "bob",
                &format!("{base}/members/ann"),
                json!({"role": "member"}),
            )
            .await,
        );
        missing(env.delete("bob", &format!("{base}/members/ann")).await);
    }
    // bob cannot accept carol's invitation either.
    assert_refused(
        env.post(
            "bob",
            &format!(
                "/api/organizations/{org}/invitations/{}/accept",
                invitation["id"].as_str().expect("id")
            ),
            json!({}),
        )
        .await,
        404,
        "invitation_not_found",
    );
    // Nothing changed for bob or ann.
    let (_, body) = env.get("bob", "/api/organizations/current").await;
    assert_ne!(body["current_org_id"], org.as_str());
    assert_eq!(env.roles(&org, "ann").await, json!({"ann": "owner"}));
}

async fn changes_and_secret_changes_are_audited_without_values(backend: Backend) {
    let env = Env::start(backend).await;
    let org = env.create_org("ann", "Acme").await;
    env.add_member(&org, "ann", "bob", "member").await;
    let member = format!("/api/organizations/{org}/members/bob");
    assert_eq!(
        env.patch("ann", &member, json!({"role": "admin"})).await.0,
        200
    );
    // A refused change is not audited.
    assert_eq!(
        env.patch(
            "bob",
            "/api/organizations/x/members/ann",
            json!({"role": "member"})
        )
        .await
        .0,
        404
    );
    let other = env.create_org("ann", "Beta").await;
    assert_eq!(
        env.post(
            "ann",
            &format!("/api/organizations/{org}/switch"),
            json!({})
        )
        .await
        .0,
        200
    );
    assert_eq!(env.delete("ann", &member).await.0, 200);
    env.add_member(&org, "ann", "bob", "member").await;
    assert_eq!(
        env.post("bob", &format!("/api/organizations/{org}/leave"), json!({}))
            .await
            .0,
        200
    );

    // Secrets through the open API, in ann's current org.
    let (status, _) = env
        .post(
            "ann",
            "/api/secrets",
            json!({"name": "DEPLOY_TOKEN", "value": "tok-very-secret-42", "description": "d"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = env
        .call(
            Some("ann"),
            Method::PUT,
            "/api/secrets/DEPLOY_TOKEN",
            Some(json!({"name": "RELEASE_TOKEN"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = env.delete("ann", "/api/secrets/RELEASE_TOKEN").await;
    assert_eq!(status, 200);

    let rows = env.audit_rows().await;
    let seen: Vec<(String, String, Option<String>)> = rows
        .iter()
        .map(|r| {
            (
                r.action.clone(),
                r.actor_user_id.clone().unwrap_or_default(),
                r.target.clone(),
            )
        })
        .collect();
    let expected = [
        ("org.create", "ann", Some(org.clone())),
        (
            "org.member.invite",
            "ann",
            Some("bob@example.com".to_owned()),
        ),
        ("org.member.accept", "bob", Some("bob".to_owned())),
        ("org.member.role", "ann", Some("bob".to_owned())),
        ("org.create", "ann", Some(other.clone())),
        ("org.switch", "ann", Some(org.clone())),
        ("org.member.remove", "ann", Some("bob".to_owned())),
        (
            "org.member.invite",
            "ann",
            Some("bob@example.com".to_owned()),
        ),
        ("org.member.accept", "bob", Some("bob".to_owned())),
        ("org.leave", "bob", Some("bob".to_owned())),
        ("secret.create", "ann", Some("DEPLOY_TOKEN".to_owned())),
        ("secret.update", "ann", Some("DEPLOY_TOKEN".to_owned())),
        ("secret.delete", "ann", Some("RELEASE_TOKEN".to_owned())),
    ];
    let expected: Vec<_> = expected
        .into_iter()
        .map(|(a, u, t)| (a.to_owned(), u.to_owned(), t))
        .collect();
    assert_eq!(seen, expected);
    for row in &rows {
        assert_eq!(row.ip.as_deref(), Some("127.0.0.1"), "{row:?}");
        let expected_org = if row.target.as_deref() == Some(other.as_str()) {
            &other
        } else {
            &org
        };
        assert_eq!(row.org_id.as_ref(), Some(expected_org), "{row:?}");
        let detail: Value = serde_json::from_str(&row.detail).expect("detail is JSON");
        assert!(detail.is_object(), "{row:?}");
        assert!(
            !format!("{row:?}").contains("tok-very-secret-42"),
            "{row:?}"
        );
    }
    let role_change = &rows[3];
    assert_eq!(
        serde_json::from_str::<Value>(&role_change.detail).expect("JSON"),
        json!({"from": "member", "to": "admin"})
    );
    let update = &rows[11];
    assert_eq!(
        serde_json::from_str::<Value>(&update.detail).expect("JSON")["new_name"],
        "RELEASE_TOKEN"
    );
}

async fn failing_audit_write_does_not_fail_the_request(backend: Backend) {
    let env = Env::start(backend).await;
    env.db
        .connection()
        .execute_unprepared("DROP TABLE audit_log")
        .await
        .expect("drop audit_log");
    let org = env.create_org("ann", "Acme").await;
    let (status, _) = env
        .post(
            "ann",
            "/api/secrets",
            json!({"name": "TOKEN", "value": "v", "description": ""}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, body) = env.get("ann", "/api/organizations").await;
    assert_eq!(body["current_org_id"], org.as_str());
    let (_, secrets) = env.get("ann", "/api/secrets").await;
    assert_eq!(secrets["custom_secrets"][0]["name"], "TOKEN");
    // The writes did fail: there is no table to write to.
    assert!(
        audit_log::Entity::find()
            .all(env.db.connection())
            .await
            .is_err()
    );
}
