//! Idle close counts the watchers of every replica: a conversation run on A and watched
//! only through B stays open on A; once B's watcher leaves, A closes it after the idle delay.

use openhands_runtime::testing::ScriptedLlm;
use openhands_test_support::TestServer;
use openhands_test_support::redis::redis_for_test;
use std::time::Duration;

// Named so its registration is linked into this test binary.
use openhands_cluster_manager as _;

mod common;
use common::*;

/// Seconds without activity and without watchers before the owner closes a conversation.
const CLOSE_DELAY_S: u64 = 1;

#[tokio::test]
async fn a_conversation_watched_only_on_another_replica_is_not_closed_as_idle() {
    let redis = redis_for_test().expect("redis");
    let database = openhands_test_support::sqlite::fresh_database().expect("sqlite");
    let llm = ScriptedLlm::start(vec![finish()])
        .await
        .expect("scripted LLM");
    let config = |c: &mut openhands_core::config::Config| {
        clustered(c, database.url(), &redis);
        c.sandbox.close_delay = CLOSE_DELAY_S;
        c.cluster.renew_interval_ms = 100;
    };
    let a = TestServer::spawn_with(config).await;
    let b = TestServer::spawn_with(config).await;
    store_llm_settings(&a, &llm).await;

    // Started on A (which has no watcher of it), watched through B from the start.
    let id = start_conversation(&a, "first").await;
    let watcher = connect(&b, &id, -1).await;
    a.wait_for_agent_state(&id, "finished", -1, WAIT).await;

    // Several idle delays pass: B's watcher keeps it open on A.
    tokio::time::sleep(Duration::from_secs(4 * CLOSE_DELAY_S)).await;
    assert_eq!(a.status_of(&id).await, "RUNNING", "watched on B: not idle");

    // B's watcher leaves: A closes it as idle.
    drop(watcher);
    wait_for_status(&a, &id, "STOPPED").await;
    wait_for_status(&b, &id, "STOPPED").await;
}
