//! Handover: a replica shutting down hands its running conversations to a live replica
//! instead of just stopping them; watchers elsewhere are told and keep streaming.

use openhands_cluster_manager::lease::Leases;
use openhands_cluster_manager::takeover::HANDED_OVER_REASON;
use openhands_runtime::testing::ScriptedLlm;
use openhands_test_support::TestServer;
use openhands_test_support::redis::redis_for_test;
use serde_json::json;
use std::time::Duration;

// Named so its registration is linked into this test binary.
use openhands_cluster_manager as _;

mod common;
use common::*;

#[tokio::test]
async fn a_replica_shutting_down_hands_its_conversations_to_a_live_one() {
    let redis = redis_for_test().expect("redis");
    let database = openhands_test_support::sqlite::fresh_database().expect("sqlite");
    let llm = ScriptedLlm::start(vec![
        finish(),
        tool("execute_bash", json!({"command": "echo after-handover"})),
        finish(),
    ])
    .await
    .expect("scripted LLM");
    let replica = |name: &'static str| {
        let (database, redis) = (&database, &redis);
        move |c: &mut openhands_core::config::Config| {
            clustered(c, database.url(), redis);
            c.cluster.replica_id = Some(name.into());
        }
    };
    let mut a = TestServer::spawn_with(replica("replica-a")).await;
    let b = TestServer::spawn_with(replica("replica-b")).await;
    store_llm_settings(&a, &llm).await;
    let leases = Leases::new(pool(&redis), "test-observer", Duration::from_secs(15), 3);

    let id = start_conversation(&a, "first").await;
    let stored = a.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    assert_eq!(
        leases.owner(&id).await.expect("owner").as_deref(),
        Some("replica-a")
    );
    let mut watcher = connect(&b, &id, -1).await;
    for _ in 0..stored.len() {
        next_event(&mut watcher).await;
    }
    let mut last_id = stored.last().and_then(|e| e["id"].as_i64()).expect("ids");

    // A shuts down: by the time it is gone, B runs the conversation.
    a.shut_down().await;
    assert_eq!(
        leases.owner(&id).await.expect("owner").as_deref(),
        Some("replica-b")
    );
    wait_for_status(&b, &id, "RUNNING").await;

    // B's watcher sees A's run stop, then the handover, ids in a row.
    let mut moved = Vec::new();
    loop {
        let event = next_event(&mut watcher).await;
        let event_id = event["id"].as_i64().expect("event id");
        assert_eq!(event_id, last_id + 1, "no gap, no duplicate: {event}");
        last_id = event_id;
        let done = event["extras"]["reason"] == HANDED_OVER_REASON;
        moved.push(event);
        if done {
            break;
        }
    }
    let handed = moved.last().expect("the handover event");
    assert_eq!(handed["observation"], "agent_state_changed");
    assert_eq!(
        handed["extras"]["agent_state"], "finished",
        "the state before the stop: {moved:#?}"
    );

    // The conversation goes on, on B.
    let (live, last_id) = message_until_finished(&mut watcher, "second", last_id).await;
    assert!(
        live.iter().any(|e| e["observation"] == "run"
            && e["content"]
                .as_str()
                .is_some_and(|c| c.contains("after-handover"))),
        "the agent on B ran the command: {live:#?}"
    );
    let ids: Vec<i64> = b
        .all_events(&id)
        .await
        .iter()
        .filter_map(|e| e["id"].as_i64())
        .collect();
    assert_eq!(ids, (0..=last_id).collect::<Vec<_>>());
}
