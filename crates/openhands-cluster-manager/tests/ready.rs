//! `/ready` in SaaS mode reports whether Redis answers (the check comes from the shared
//! Redis pool, not from the API crate).

use openhands_test_support::redis::TestRedis;
use openhands_test_support::{TestServer, json_body};

// Named so its registration is linked into this test binary.
use openhands_cluster_manager as _;

mod common;
use common::*;

#[tokio::test]
async fn ready_answers_503_naming_redis_while_it_does_not_answer() {
    let mut redis = TestRedis::start().expect("redis-server");
    let database = openhands_test_support::sqlite::fresh_database().expect("sqlite");
    let url = redis.url();
    let server = TestServer::spawn_with(|c| {
        clustered_on(c, database.url(), &url, "ready-test:");
    })
    .await;

    let res = server.get("/ready").await;
    assert_eq!(res.status(), 200);
    assert_eq!(json_body(res).await["checks"]["redis"], "ok");

    redis.stop();
    let res = server.get("/ready").await;
    assert_eq!(res.status(), 503);
    let body = json_body(res).await;
    assert_eq!(body["checks"]["redis"], "error", "{body}");
    let detail = body["failed"]["redis"].as_str().unwrap_or_default();
    assert!(
        detail.contains("Redis") && detail.contains(&redis.port().to_string()),
        "the detail names the Redis server: {body}"
    );
    assert_eq!(
        body["checks"]["event_store"], "ok",
        "the stores still answer"
    );

    redis.restart().expect("restart");
    let res = server.get("/ready").await;
    assert_eq!(res.status(), 200);
}
