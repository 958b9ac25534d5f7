//! `max_concurrent_conversations` holds across replicas: the user's running conversations
//! are counted in Redis, in the claim's own script.

use openhands_cluster_manager::lease::Leases;
use openhands_core::scope::UserScope;
use openhands_runtime::testing::ScriptedLlm;
use openhands_test_support::redis::redis_for_test;
use openhands_test_support::{TestServer, json_body};
use serde_json::json;
use std::time::Duration;

// Named so its registration is linked into this test binary.
use openhands_cluster_manager as _;

mod common;
use common::*;

async fn create(server: &TestServer, message: &str) -> String {
    let res = server
        .post_json("/api/conversations", &json!({"initial_user_msg": message}))
        .await;
    let status = res.status();
    let body = json_body(res).await;
    assert_eq!(status, 200, "{body}");
    body["conversation_id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn with_a_limit_of_one_two_starts_on_two_replicas_at_once_leave_exactly_one_running() {
    let redis = redis_for_test().expect("redis");
    let database = openhands_test_support::sqlite::fresh_database().expect("sqlite");
    let llm = ScriptedLlm::start(vec![finish(), finish()])
        .await
        .expect("scripted LLM");
    let config = |c: &mut openhands_core::config::Config| {
        clustered(c, database.url(), &redis);
        c.max_concurrent_conversations = 1;
    };
    let a = TestServer::spawn_with(config).await;
    let b = TestServer::spawn_with(config).await;
    store_llm_settings(&a, &llm).await;

    let (first, second) = tokio::join!(create(&a, "one"), create(&b, "two"));

    // One of them stops the other, wherever it runs.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let statuses = [a.status_of(&first).await, b.status_of(&second).await];
        let running = statuses.iter().filter(|s| *s == "RUNNING").count();
        let stopped = statuses.iter().filter(|s| *s == "STOPPED").count();
        if running == 1 && stopped == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected one RUNNING and one STOPPED, got {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both replicas agree (the owner publishes its status at its next tick), and Redis
    // counts one conversation for the user.
    let deadline = tokio::time::Instant::now() + WAIT;
    let from_a = loop {
        let from_a = [a.status_of(&first).await, a.status_of(&second).await];
        let from_b = [b.status_of(&first).await, b.status_of(&second).await];
        if from_a == from_b && from_a.iter().any(|s| s == "RUNNING") {
            break from_a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "A sees {from_a:?}, B sees {from_b:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let leases = Leases::new(pool(&redis), "test-observer", Duration::from_secs(15), 1);
    let counted = leases
        .running_of(&UserScope::local())
        .await
        .expect("the user's set");
    assert_eq!(counted.len(), 1, "{counted:?}");
    let running = if from_a[0] == "RUNNING" {
        &first
    } else {
        &second
    };
    assert_eq!(&counted[0], running);
}
