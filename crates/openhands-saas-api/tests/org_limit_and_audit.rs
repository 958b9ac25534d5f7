//! Hardening items 5 and 11 through the real server in SaaS mode, on SQLite and PostgreSQL:
//! a user owns at most `orgs.max_owned_per_user` organizations (default 10), and an org's
//! owners and admins read its audit log at `GET /api/organizations/{org_id}/audit`, newest
//! first, paged and filtered, while members get 403 and everyone else 404.

mod common;

use common::{Backend, Env, assert_refused, on_both_databases};
use openhands_sql_store::entity::audit_log;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

on_both_databases!(
    the_eleventh_owned_org_is_refused_with_org_limit_reached,
    admins_read_their_orgs_audit_log_newest_first_paged_and_filtered,
    members_get_403_and_non_members_404_on_the_audit_log,
    bad_audit_queries_are_refused,
);

/// The default of `orgs.max_owned_per_user`.
const MAX_OWNED: usize = 10;

async fn the_eleventh_owned_org_is_refused_with_org_limit_reached(backend: Backend) {
    let env = Env::start(backend).await;
    for n in 0..MAX_OWNED {
        env.create_org("ann", &format!("Org {n}")).await;
    }
    let refused = env
        .post("ann", "/api/organizations", json!({"name": "One too many"}))
        .await;
    let detail = refused.1["detail"].as_str().unwrap_or_default().to_owned();
    assert_refused(refused, 403, "org_limit_reached");
    assert!(
        detail.contains("10"),
        "the message names the limit: {detail}"
    );
    let (status, listed) = env.get("ann", "/api/organizations").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["organizations"].as_array().map(Vec::len),
        Some(MAX_OWNED),
        "nothing was created"
    );
    // Membership in someone else's org is not ownership, and other users have their own count.
    env.create_org("bob", "Bob's").await;
}

/// The org's audit rows as the database holds them, newest first (ties by id).
async fn rows_of(env: &Env, org: &str) -> Vec<audit_log::Model> {
    audit_log::Entity::find()
        .filter(audit_log::Column::OrgId.eq(org))
        .order_by_desc(audit_log::Column::At)
        .order_by_desc(audit_log::Column::Id)
        .all(env.db.connection())
        .await
        .expect("audit rows")
}

fn ids(items: &Value) -> Vec<String> {
    items["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

/// An org with history: created by Olga, Adam an admin, Mia a member, Mia promoted and
/// demoted again; and Nick's own org next to it.
async fn org_with_history(env: &Env) -> (String, String) {
    let org = env.create_org("olga", "Acme").await;
    env.add_member(&org, "olga", "adam", "admin").await;
    env.add_member(&org, "olga", "mia", "member").await;
    let mia = format!("/api/organizations/{org}/members/mia");
    for role in ["admin", "member"] {
        let (status, body) = env.patch("olga", &mia, json!({"role": role})).await;
        assert_eq!(status, 200, "{body}");
    }
    let other = env.create_org("nick", "Other").await;
    env.add_member(&other, "nick", "zoe", "member").await;
    (org, other)
}

async fn admins_read_their_orgs_audit_log_newest_first_paged_and_filtered(backend: Backend) {
    let env = Env::start(backend).await;
    let (org, other) = org_with_history(&env).await;
    let path = format!("/api/organizations/{org}/audit");
    let rows = rows_of(&env, &org).await;
    assert_eq!(rows.len(), 7, "{rows:?}");
    let expected: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();

    // The whole log, newest first, with the fields of each entry; nothing of the other org.
    let (status, all) = env.get("adam", &format!("{path}?limit=100")).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(ids(&all), expected);
    assert_eq!(all["next_page_id"], Value::Null);
    let newest = &all["results"][0];
    assert_eq!(newest["action"], "org.member.role");
    assert_eq!(newest["actor_user_id"], "olga");
    assert_eq!(newest["target"], "mia");
    assert_eq!(newest["detail"], json!({"from": "admin", "to": "member"}));
    assert!(
        newest["at"].is_string() && newest.get("ip").is_some(),
        "{newest}"
    );
    let others: Vec<String> = rows_of(&env, &other)
        .await
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(!others.is_empty());
    assert!(ids(&all).iter().all(|id| !others.contains(id)));

    // Pages of 3 (the owner reads it too) give the same entries, once each, in order.
    let mut paged = Vec::new();
    let mut next = format!("{path}?limit=3");
    loop {
        let (status, page) = env.get("olga", &next).await;
        assert_eq!(status, 200, "{page}");
        let page_ids = ids(&page);
        assert!(page_ids.len() <= 3);
        paged.extend(page_ids);
        match page["next_page_id"].as_str() {
            Some(cursor) => next = format!("{path}?limit=3&page_id={cursor}"),
            None => break,
        }
    }
    assert_eq!(paged, expected);
    // The default page is 20 entries.
    let (_, default_page) = env.get("adam", &path).await;
    assert_eq!(ids(&default_page).len(), expected.len().min(20));

    // Filters: an exact action, and a time window.
    let (status, invites) = env
        .get("adam", &format!("{path}?action=org.member.invite"))
        .await;
    assert_eq!(status, 200, "{invites}");
    let invite_ids: Vec<String> = rows
        .iter()
        .filter(|r| r.action == "org.member.invite")
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(invite_ids.len(), 2);
    assert_eq!(ids(&invites), invite_ids);
    let (_, none) = env.get("adam", &format!("{path}?action=org.member")).await;
    assert!(ids(&none).is_empty(), "exact match only: {none}");

    let middle = &all["results"][3];
    let at = middle["at"].as_str().expect("at").replace('+', "%2B");
    let (status, since) = env
        .get("adam", &format!("{path}?limit=100&since={at}"))
        .await;
    assert_eq!(status, 200, "{since}");
    assert_eq!(ids(&since), expected[..=3].to_vec(), "since is inclusive");
    let (status, until) = env
        .get("adam", &format!("{path}?limit=100&until={at}"))
        .await;
    assert_eq!(status, 200, "{until}");
    assert_eq!(ids(&until), expected[4..].to_vec(), "until is exclusive");
}

async fn members_get_403_and_non_members_404_on_the_audit_log(backend: Backend) {
    let env = Env::start(backend).await;
    let (org, other) = org_with_history(&env).await;
    let path = format!("/api/organizations/{org}/audit");
    assert_refused(env.get("mia", &path).await, 403, "insufficient_role");
    assert_refused(env.get("nick", &path).await, 404, "org_not_found");
    assert_refused(
        env.get("olga", "/api/organizations/no-such-org/audit")
            .await,
        404,
        "org_not_found",
    );
    let (status, body) = env.call(None, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 401, "{body}");
    // Nick, owner of the other org, sees only its entries there.
    let (status, theirs) = env
        .get("nick", &format!("/api/organizations/{other}/audit"))
        .await;
    assert_eq!(status, 200, "{theirs}");
    let expected: Vec<String> = rows_of(&env, &other)
        .await
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids(&theirs), expected);
}

async fn bad_audit_queries_are_refused(backend: Backend) {
    let env = Env::start(backend).await;
    let org = env.create_org("olga", "Acme").await;
    let path = format!("/api/organizations/{org}/audit");
    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "page_id=not-a-cursor",
        "since=yesterday",
        "until=2026-13-01T00:00:00Z",
    ] {
        assert_refused(
            env.get("olga", &format!("{path}?{query}")).await,
            400,
            "invalid_request",
        );
    }
    for query in ["limit=abc", "action=a%00b"] {
        let (status, body) = env.get("olga", &format!("{path}?{query}")).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert!(body["detail"].is_array(), "{body}");
    }
}
