//! API keys through the real server in SaaS mode, on SQLite and PostgreSQL: the `/api/keys`
//! routes, what the database keeps of a key, and `verify_api_key` as the login uses it
//! (`common`'s `test.header_org_user` takes `Authorization: Bearer <key>` through it).

mod common;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use common::{Backend, Env, assert_refused, on_both_databases};
use openhands_saas_api::api_keys::{self, KEY_LEN, PREFIX_LEN, hash_key, looks_like_api_key};
use openhands_saas_api::{ApiKeyOwner, verify_api_key};
use openhands_sql_store::entity::api_key;
use reqwest::Method;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use std::collections::BTreeSet;

impl Env {
    /// `user` creates a key with `body`; returns the answer (which holds the key).
    async fn create_key(&self, user: &str, body: Value) -> Value {
        let (status, created) = self.post(user, "/api/keys", body).await;
        assert_eq!(status, 200, "{created}");
        created
    }

    /// The ids of `user`'s keys in their current org, as listed.
    async fn key_ids(&self, user: &str) -> Vec<String> {
        let (status, body) = self.get(user, "/api/keys").await;
        assert_eq!(status, 200, "{body}");
        body.as_array()
            .expect("a list")
            .iter()
            .map(|k| k["id"].as_str().expect("id").to_owned())
            .collect()
    }

    /// Calls `path` with `Authorization: Bearer <key>` and no other credentials.
    async fn with_key(&self, key: &str, method: Method, path: &str) -> (u16, Value) {
        let req = self.request(method, path).bearer_auth(key);
        Self::send(req, None).await
    }

    async fn verify(&self, key: &str) -> Option<ApiKeyOwner> {
        verify_api_key(&self.db, key).await.expect("verify")
    }

    async fn key_row(&self, id: &str) -> Option<api_key::Model> {
        api_key::Entity::find_by_id(id.to_owned())
            .one(self.db.connection())
            .await
            .expect("api_keys row")
    }

    async fn key_count(&self) -> u64 {
        api_key::Entity::find()
            .count(self.db.connection())
            .await
            .expect("count")
    }

    /// Sets a column of a key's row directly in the database.
    async fn set_key_time(&self, id: &str, column: api_key::Column, at: DateTime<Utc>) {
        api_key::Entity::update_many()
            .col_expr(column, Expr::value(at))
            .filter(api_key::Column::Id.eq(id))
            .exec(self.db.connection())
            .await
            .expect("update api_keys row");
    }
}

fn field_names(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {value}"))
}

on_both_databases!(
    created_key_is_shown_once_and_only_its_hash_is_stored,
    keys_are_listed_and_deleted_only_within_their_user_and_org,
    revoked_and_expired_keys_are_refused,
    bad_name_or_expiry_is_422_and_stores_nothing,
    last_used_at_is_set_on_first_use_and_not_rewritten_within_a_minute,
    malformed_keys_are_refused_without_a_query,
    key_changes_are_audited_without_the_key,
);

async fn created_key_is_shown_once_and_only_its_hash_is_stored(backend: Backend) {
    let env = Env::start(backend).await;
    let org = env.create_org("ann", "Acme").await;

    let res = env
        .request(Method::POST, "/api/keys")
        .header("X-Test-User", "ann")
        .json(&json!({"name": "  ci  "}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    let cache_control = res.headers().get("cache-control");
    assert!(
        cache_control
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("no-store")),
        "{cache_control:?}"
    );
    let created: Value = res.json().await.expect("JSON");
    assert_eq!(
        field_names(&created),
        BTreeSet::from([
            "id",
            "name",
            "prefix",
            "created_at",
            "last_used_at",
            "expires_at",
            "key"
        ])
    );
    let key = str_of(&created, "key");
    assert!(looks_like_api_key(key), "{key}");
    assert_eq!(key.len(), KEY_LEN);
    assert_eq!(created["name"], "ci");
    assert_eq!(created["prefix"], key[..PREFIX_LEN]);
    assert_eq!(created["last_used_at"], Value::Null);
    assert_eq!(created["expires_at"], Value::Null);

    // The list describes it without the key; a key made without a name gets the default
    // and comes first (newest first).
    let unnamed = env.create_key("ann", json!({})).await;
    assert_eq!(unnamed["name"], api_keys::DEFAULT_NAME);
    let (status, listed) = env.get("ann", "/api/keys").await;
    assert_eq!(status, 200, "{listed}");
    let listed = listed.as_array().expect("a list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["id"], unnamed["id"]);
    let mut described = created.clone();
    described.as_object_mut().expect("object").remove("key");
    assert_eq!(listed[1], described);
    assert!(!Value::Array(listed.clone()).to_string().contains(key));

    // The row holds the hash and the display prefix, never the key.
    let row = env
        .key_row(str_of(&created, "id"))
        .await
        .expect("the key's row");
    assert_eq!(row.key_hash, hash_key(key));
    assert_eq!(row.prefix, key[..PREFIX_LEN]);
    assert_eq!((row.user_id.as_str(), row.org_id.as_str()), ("ann", &*org));
    assert!(!format!("{row:?}").contains(&key[PREFIX_LEN..]), "{row:?}");

    // The key authenticates like the cookie: same user, same org, same data.
    let (status, _) = env
        .post("ann", "/api/settings", json!({"llm_model": "ann/model"}))
        .await;
    assert_eq!(status, 200);
    let (status, settings) = env.with_key(key, Method::GET, "/api/settings").await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["llm_model"], "ann/model");
    let (status, by_key) = env.with_key(key, Method::GET, "/api/keys").await;
    assert_eq!(status, 200, "{by_key}");
    assert_eq!(by_key.as_array().map(Vec::len), Some(2));
}

async fn keys_are_listed_and_deleted_only_within_their_user_and_org(backend: Backend) {
    let env = Env::start(backend).await;
    let x = env.create_org("ann", "X").await;
    env.add_member(&x, "ann", "carol", "admin").await;
    let created = env.create_key("ann", json!({"name": "deploy"})).await;
    let (id, key) = (str_of(&created, "id"), str_of(&created, "key"));
    let path = format!("/api/keys/{id}");

    // Another member of the org neither sees nor deletes it.
    assert_eq!(env.key_ids("carol").await, Vec::<String>::new());
    assert_refused(env.delete("carol", &path).await, 404, "api_key_not_found");
    assert!(env.verify(key).await.is_some(), "survives carol's delete");

    // A user without an org has no keys to manage; no user at all is 401.
    assert_refused(env.get("bob", "/api/keys").await, 403, "org_required");
    assert_refused(
        env.post("bob", "/api/keys", json!({})).await,
        403,
        "org_required",
    );
    assert_refused(env.delete("bob", &path).await, 403, "org_required");
    assert_eq!(env.call(None, Method::GET, "/api/keys", None).await.0, 401);

    // The same user in another org sees a separate (empty) set.
    env.create_org("ann", "Y").await;
    assert_eq!(env.key_ids("ann").await, Vec::<String>::new());
    assert_refused(env.delete("ann", &path).await, 404, "api_key_not_found");
    env.switch_org("ann", &x).await;
    assert_eq!(env.key_ids("ann").await, vec![id.to_owned()]);

    // The owner deletes it: gone from the list, and a second delete finds nothing.
    let (status, body) = env.delete("ann", &path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"message": "API key deleted successfully"}));
    assert_eq!(env.key_ids("ann").await, Vec::<String>::new());
    assert!(env.key_row(id).await.is_none());
    assert_refused(env.delete("ann", &path).await, 404, "api_key_not_found");
    assert_refused(
        env.delete("ann", "/api/keys/no-such-key").await,
        404,
        "api_key_not_found",
    );
}

async fn revoked_and_expired_keys_are_refused(backend: Backend) {
    let env = Env::start(backend).await;
    let org = env.create_org("ann", "Acme").await;
    let lasting = env.create_key("ann", json!({"name": "lasting"})).await;
    let in_an_hour = (Utc::now() + TimeDelta::hours(1))
        .trunc_subsecs(0)
        .to_rfc3339();
    let expiring = env
        .create_key("ann", json!({"name": "expiring", "expires_at": in_an_hour}))
        .await;
    assert_eq!(
        expiring["expires_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok()),
        DateTime::parse_from_rfc3339(&in_an_hour).ok()
    );
    let (lasting_key, expiring_key) = (str_of(&lasting, "key"), str_of(&expiring, "key"));
    let owner = |created: &Value| ApiKeyOwner {
        key_id: str_of(created, "id").to_owned(),
        user_id: "ann".into(),
        org_id: org.clone(),
    };
    assert_eq!(env.verify(lasting_key).await, Some(owner(&lasting)));
    assert_eq!(env.verify(expiring_key).await, Some(owner(&expiring)));
    for key in [lasting_key, expiring_key] {
        assert_eq!(env.with_key(key, Method::GET, "/api/keys").await.0, 200);
    }

    // Revoked: deleted keys authenticate nothing.
    let (status, _) = env
        .delete("ann", &format!("/api/keys/{}", str_of(&lasting, "id")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(env.verify(lasting_key).await, None);
    assert_eq!(
        env.with_key(lasting_key, Method::GET, "/api/keys").await.0,
        401
    );

    // Expired: refused from its expiry on, but still listed so it can be deleted.
    let expiring_id = str_of(&expiring, "id");
    env.set_key_time(
        expiring_id,
        api_key::Column::ExpiresAt,
        Utc::now() - TimeDelta::seconds(1),
    )
    .await;
    assert_eq!(env.verify(expiring_key).await, None);
    assert_eq!(
        env.with_key(expiring_key, Method::GET, "/api/keys").await.0,
        401
    );
    assert_eq!(env.key_ids("ann").await, vec![expiring_id.to_owned()]);

    // A member's key stops working when they leave the org.
    env.add_member(&org, "ann", "carol", "member").await;
    let carols = env.create_key("carol", json!({})).await;
    let carols_key = str_of(&carols, "key");
    assert!(env.verify(carols_key).await.is_some());
    let (status, _) = env
        .delete("ann", &format!("/api/organizations/{org}/members/carol"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(env.verify(carols_key).await, None);
    assert_eq!(
        env.with_key(carols_key, Method::GET, "/api/keys").await.0,
        401
    );
}

async fn bad_name_or_expiry_is_422_and_stores_nothing(backend: Backend) {
    let env = Env::start(backend).await;
    env.create_org("ann", "Acme").await;
    let refused = |body: Value, field: &'static str| {
        let env = &env;
        async move {
            let (status, answer) = env.post("ann", "/api/keys", body).await;
            assert_eq!(status, 422, "{answer}");
            assert_eq!(
                answer["detail"][0]["loc"],
                json!(["body", field]),
                "{answer}"
            );
            answer
        }
    };
    let past = refused(json!({"expires_at": "2000-01-01T00:00:00Z"}), "expires_at").await;
    assert!(
        str_of(&past["detail"][0], "msg").contains("cannot be in the past"),
        "{past}"
    );
    let just_now = (Utc::now() - TimeDelta::seconds(1)).to_rfc3339();
    refused(json!({"expires_at": just_now}), "expires_at").await;
    refused(json!({"expires_at": "next week"}), "expires_at").await;
    refused(json!({"expires_at": 1_900_000_000}), "expires_at").await;
    refused(
        json!({"name": "x".repeat(api_keys::MAX_NAME_LEN + 1)}),
        "name",
    )
    .await;
    refused(json!({"name": 42}), "name").await;
    assert_eq!(env.key_count().await, 0);

    // A timestamp without an offset is UTC, as OpenHands' naive datetimes are.
    let created = env
        .create_key("ann", json!({"expires_at": "2999-01-31T12:00:00"}))
        .await;
    assert_eq!(created["expires_at"], "2999-01-31T12:00:00Z");
    assert_eq!(env.key_count().await, 1);
}

async fn last_used_at_is_set_on_first_use_and_not_rewritten_within_a_minute(backend: Backend) {
    let env = Env::start(backend).await;
    env.create_org("ann", "Acme").await;
    let created = env.create_key("ann", json!({})).await;
    let (id, key) = (str_of(&created, "id"), str_of(&created, "key"));
    let last_used = |row: Option<api_key::Model>| row.expect("row").last_used_at;
    assert_eq!(last_used(env.key_row(id).await), None);

    let before = Utc::now();
    assert!(env.verify(key).await.is_some());
    let first = last_used(env.key_row(id).await).expect("set by the first use");
    // Stored timestamps may be rounded to microseconds.
    assert!(
        first >= before - TimeDelta::milliseconds(1),
        "{first} < {before}"
    );

    // Used again at once (directly and over HTTP): not rewritten.
    assert!(env.verify(key).await.is_some());
    assert_eq!(env.with_key(key, Method::GET, "/api/keys").await.0, 200);
    assert_eq!(last_used(env.key_row(id).await), Some(first));
    let (_, listed) = env.get("ann", "/api/keys").await;
    assert!(listed[0]["last_used_at"].is_string(), "{listed}");

    // Once the last use is more than a minute old, the next one is recorded.
    let long_ago = Utc::now() - TimeDelta::seconds(api_keys::LAST_USED_RESOLUTION_SECS + 30);
    env.set_key_time(id, api_key::Column::LastUsedAt, long_ago)
        .await;
    assert!(env.verify(key).await.is_some());
    let latest = last_used(env.key_row(id).await).expect("still set");
    assert!(latest >= first, "{latest} < {first}");
}

async fn malformed_keys_are_refused_without_a_query(backend: Backend) {
    let env = Env::start(backend).await;
    env.create_org("ann", "Acme").await;
    let created = env.create_key("ann", json!({})).await;
    let key = str_of(&created, "key").to_owned();
    let unknown = format!(
        "{}{}",
        &key[..KEY_LEN - 1],
        if key.ends_with('a') { 'b' } else { 'a' }
    );
    let garbage = [
        String::new(),
        "ohk_".into(),
        "not a key".into(),
        format!("sk-{}", &key[4..]),
        format!("{key}0"),
        format!(" {key}"),
        key.to_uppercase(),
    ];
    for presented in garbage.iter().chain([&unknown]) {
        assert_eq!(env.verify(presented).await, None, "{presented:?}");
    }
    assert_eq!(
        env.with_key("garbage", Method::GET, "/api/keys").await.0,
        401
    );

    // With the table gone, a well-formed key fails on the query; malformed input does not
    // get that far.
    env.db
        .connection()
        .execute_unprepared("DROP TABLE api_keys")
        .await
        .expect("drop api_keys");
    assert!(verify_api_key(&env.db, &key).await.is_err());
    for presented in &garbage {
        assert_eq!(env.verify(presented).await, None, "{presented:?}");
    }
}

async fn key_changes_are_audited_without_the_key(backend: Backend) {
    let env = Env::start(backend).await;
    let org = env.create_org("ann", "Acme").await;
    let created = env.create_key("ann", json!({"name": "ci"})).await;
    let (id, key) = (str_of(&created, "id"), str_of(&created, "key"));
    // Refused changes are not audited.
    assert_eq!(
        env.post(
            "ann",
            "/api/keys",
            json!({"expires_at": "2000-01-01T00:00:00Z"})
        )
        .await
        .0,
        422
    );
    assert_eq!(env.delete("ann", "/api/keys/nope").await.0, 404);
    let (status, _) = env.delete("ann", &format!("/api/keys/{id}")).await;
    assert_eq!(status, 200);

    let rows = env.audit_rows().await;
    let seen: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.action.as_str(),
                r.actor_user_id.as_deref(),
                r.org_id.as_deref(),
                r.target.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("org.create", Some("ann"), Some(&*org), Some(&*org)),
            ("api_key.create", Some("ann"), Some(&*org), Some(id)),
            ("api_key.delete", Some("ann"), Some(&*org), Some(id)),
        ]
    );
    let prefix = &key[..PREFIX_LEN];
    for row in &rows[1..] {
        let detail: Value = serde_json::from_str(&row.detail).expect("detail is JSON");
        assert_eq!(detail["name"], "ci", "{row:?}");
        assert_eq!(detail["prefix"], prefix, "{row:?}");
        assert!(!format!("{row:?}").contains(key), "{row:?}");
        assert!(!format!("{row:?}").contains(&hash_key(key)), "{row:?}");
    }
}
