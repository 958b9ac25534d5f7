//! The settings cache across replicas: two servers on one database and one Redis, each
//! answering `GET /api/settings` from memory, stay current because every write is
//! announced through `saas.redis_changes`.
//!
//! The cache TTL is an hour here, so only a change notice can make a replica drop its
//! copy; the control test shows that without the Redis feed the other replica does keep
//! serving its old copy, which is what the notices are for.

use openhands_core::config::Config;
use openhands_core::secret::Secret;
use openhands_test_support::TestServer;
use openhands_test_support::header_user::{HEADER_USER_AUTH, USER_HEADER};
use openhands_test_support::redis::redis_for_test;
use openhands_test_support::sqlite::{TestSqlite, fresh_database};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

// Linked by name so their registrations are in this test binary.
use openhands_redis as _;
use openhands_server as _;

/// One replica: SQL stores on `database`, change notices over `redis` when `feed` says so.
async fn replica(database: &TestSqlite, redis: (&str, &str), feed: &str) -> TestServer {
    let (url, redis_url, prefix, feed) = (
        database.url().to_owned(),
        redis.0.to_owned(),
        redis.1.to_owned(),
        feed.to_owned(),
    );
    TestServer::spawn_with(move |c: &mut Config| {
        c.plugins.user_auth = Some(HEADER_USER_AUTH.into());
        c.plugins.settings_store = Some("saas.sql_settings".into());
        c.plugins.secrets_store = Some("saas.sql_secrets".into());
        c.plugins.change_feed = Some(feed);
        c.database.url = Some(Secret::new(url));
        c.database.migrate_on_start = true;
        c.secrets_key = Some(Secret::new("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="));
        c.redis.url = Some(Secret::new(redis_url));
        c.redis.key_prefix = prefix;
        c.settings_cache_seconds = 3600;
    })
    .await
}

async fn settings_of(server: &TestServer, user: &str) -> Value {
    let response = server
        .client
        .get(server.url("/api/settings"))
        .header(USER_HEADER, user)
        .send()
        .await
        .expect("GET /api/settings");
    assert_eq!(response.status(), 200);
    response.json().await.expect("settings JSON")
}

async fn post(server: &TestServer, user: &str, path: &str, body: Value) {
    let response = server
        .client
        .post(server.url(path))
        .header(USER_HEADER, user)
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
}

async fn store_model(server: &TestServer, user: &str, model: &str) {
    post(server, user, "/api/settings", json!({"llm_model": model})).await;
}

/// Polls `server` until `user`'s settings satisfy `done`, for at most `limit`.
async fn settings_until(
    server: &TestServer,
    user: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let settings = settings_of(server, user).await;
        if done(&settings) || started.elapsed() > limit {
            return settings;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_write_on_one_replica_is_seen_at_once_on_the_other() {
    let redis = redis_for_test().expect("Redis for tests");
    let database = fresh_database().expect("sqlite");
    let redis = (redis.url(), redis.key_prefix());
    let a = replica(&database, redis, "saas.redis_changes").await;
    let b = replica(&database, redis, "saas.redis_changes").await;

    store_model(&a, "carol", "openai/gpt-4o").await;
    store_model(&a, "dave", "openai/gpt-4o").await;
    assert_eq!(settings_of(&b, "carol").await["llm_model"], "openai/gpt-4o");
    assert_eq!(settings_of(&b, "dave").await["llm_model"], "openai/gpt-4o");

    store_model(&a, "carol", "anthropic/claude-sonnet-4").await;
    assert_eq!(
        settings_of(&a, "carol").await["llm_model"],
        "anthropic/claude-sonnet-4",
        "the writing replica never shows its old copy"
    );
    let seen = settings_until(&b, "carol", Duration::from_secs(5), |s| {
        s["llm_model"] == "anthropic/claude-sonnet-4"
    })
    .await;
    assert_eq!(seen["llm_model"], "anthropic/claude-sonnet-4");
    assert_eq!(settings_of(&b, "dave").await["llm_model"], "openai/gpt-4o");

    // Secrets writes change the page too (the provider-token flags).
    post(
        &a,
        "carol",
        "/api/add-git-providers",
        json!({"provider_tokens": {"github": {"token": "ghp_cache_test", "host": null}}}),
    )
    .await;
    let seen = settings_until(&b, "carol", Duration::from_secs(5), |s| {
        s["provider_tokens_set"].get("github").is_some()
    })
    .await;
    assert!(
        seen["provider_tokens_set"].get("github").is_some(),
        "{seen}"
    );
    assert!(!seen.to_string().contains("ghp_cache_test"));
}

#[tokio::test]
async fn without_change_notices_the_other_replica_keeps_its_copy() {
    let redis = redis_for_test().expect("Redis for tests");
    let database = fresh_database().expect("sqlite");
    let redis = (redis.url(), redis.key_prefix());
    let a = replica(&database, redis, "oss.local_changes").await;
    let b = replica(&database, redis, "oss.local_changes").await;

    store_model(&a, "erin", "openai/gpt-4o").await;
    assert_eq!(settings_of(&b, "erin").await["llm_model"], "openai/gpt-4o");
    store_model(&a, "erin", "anthropic/claude-sonnet-4").await;
    let seen = settings_until(&b, "erin", Duration::from_millis(500), |s| {
        s["llm_model"] != "openai/gpt-4o"
    })
    .await;
    assert_eq!(
        seen["llm_model"], "openai/gpt-4o",
        "B serves its cached copy"
    );
    assert_eq!(
        settings_of(&a, "erin").await["llm_model"],
        "anthropic/claude-sonnet-4"
    );
}
