//! Takeover: when the replica running a conversation dies (its lease runs out without a
//! release), another replica claims the conversation and resumes it from the stored events;
//! a watcher on the surviving replica is told by a stored status event and keeps streaming.

use openhands_cluster_manager::lease::Leases;
use openhands_cluster_manager::takeover::RESUMED_REASON;
use openhands_runtime::testing::ScriptedLlm;
use openhands_test_support::TestServer;
use openhands_test_support::redis::redis_for_test;
use serde_json::json;
use std::time::Duration;

// Named so its registration is linked into this test binary.
use openhands_cluster_manager as _;

mod common;
use common::*;

/// Short, so the test waits seconds, not the default 15 s.
const LEASE_MS: u64 = 1_500;

#[tokio::test]
async fn a_dead_replicas_conversation_is_resumed_by_another_whose_watchers_are_told() {
    let redis = redis_for_test().expect("redis");
    let database = openhands_test_support::sqlite::fresh_database().expect("sqlite");
    let llm = ScriptedLlm::start(vec![
        finish(),
        tool("execute_bash", json!({"command": "echo after-takeover"})),
        finish(),
    ])
    .await
    .expect("scripted LLM");
    let config = |c: &mut openhands_core::config::Config| {
        clustered(c, database.url(), &redis);
        c.cluster.lease_ms = LEASE_MS;
        c.cluster.renew_interval_ms = 100;
    };
    let a = TestServer::spawn_with(config).await;
    let b = TestServer::spawn_with(config).await;
    store_llm_settings(&a, &llm).await;
    let leases = Leases::new(
        pool(&redis),
        "test-observer",
        Duration::from_millis(LEASE_MS),
        3,
    );

    // Started on A and finished its first turn; B watches.
    let id = start_conversation(&a, "first").await;
    let stored = a.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    wait_for_status(&b, &id, "RUNNING").await;
    let owner_a = leases.owner(&id).await.expect("owner").expect("A owns it");
    let mut watcher = connect(&b, &id, -1).await;
    let mut seen = Vec::new();
    for _ in 0..stored.len() {
        seen.push(next_event(&mut watcher).await);
    }
    assert_eq!(seen, stored);
    let mut last_id = stored.last().and_then(|e| e["id"].as_i64()).expect("ids");

    // A dies: no shutdown, so its lease is not released, only no longer renewed.
    drop(a);

    // B claims the conversation once the lease has run out, and resumes it.
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(3 * LEASE_MS) + Duration::from_secs(10);
    let owner_b = loop {
        match leases.owner(&id).await.expect("owner") {
            Some(owner) if owner != owner_a => break owner,
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no replica took the conversation over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(owner_b, owner_a);
    wait_for_status(&b, &id, "RUNNING").await;

    // B's watcher sees the stored status event next, then the rest of the conversation.
    let resumed = next_event(&mut watcher).await;
    assert_eq!(resumed["id"].as_i64(), Some(last_id + 1), "{resumed}");
    assert_eq!(resumed["observation"], "agent_state_changed");
    assert_eq!(resumed["extras"]["agent_state"], "finished");
    assert_eq!(resumed["extras"]["reason"], RESUMED_REASON);
    last_id += 1;

    let (live, last_id) = message_until_finished(&mut watcher, "second", last_id).await;
    assert!(
        live.iter().any(|e| e["observation"] == "run"
            && e["content"]
                .as_str()
                .is_some_and(|c| c.contains("after-takeover"))),
        "the agent resumed on B ran the command: {live:#?}"
    );

    // The store holds every event once, ids 0, 1, 2, ... without a gap.
    let all = b.all_events(&id).await;
    let ids: Vec<i64> = all.iter().filter_map(|e| e["id"].as_i64()).collect();
    let expected: Vec<i64> = (0..=last_id).collect();
    assert_eq!(ids, expected);
}
