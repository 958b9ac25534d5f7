//! Redis restarts (killed, started again empty) while a conversation runs on A and is
//! watched through B: without any manual step, A claims its conversation again, the
//! statuses come back, messages sent through B still reach A, and B's watcher keeps
//! getting every new event, without gap or duplicate.

use openhands_cluster_manager::lease::Leases;
use openhands_core::config::RedisConfig;
use openhands_core::secret::Secret;
use openhands_redis::{RedisPool, redis};
use openhands_runtime::testing::ScriptedLlm;
use openhands_test_support::TestServer;
use openhands_test_support::redis::TestRedis;
use serde_json::json;
use std::time::Duration;

// Named so its registration is linked into this test binary.
use openhands_cluster_manager as _;

mod common;
use common::*;

const LEASE_MS: u64 = 1_500;
const PREFIX: &str = "oh_test_restart:";

/// Polls until the conversation has an owner and both replicas listen for commands and
/// replies again (two channels each), so a routed message and its answer get through;
/// returns the owner.
async fn owner_listening(pool: &RedisPool, leases: &Leases, id: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(Some(owner)) = leases.owner(id).await {
            let pattern = format!("{PREFIX}cm:*");
            let channels: Result<Vec<String>, _> = pool
                .run(|mut connection| async move {
                    redis::cmd("PUBSUB")
                        .arg("CHANNELS")
                        .arg(pattern)
                        .query_async(&mut connection)
                        .await
                })
                .await;
            let command_channel = format!("{PREFIX}cm:cmd:{{{owner}}}");
            if channels.is_ok_and(|c| c.len() == 4 && c.contains(&command_channel)) {
                return owner;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the conversation was not claimed again after Redis restarted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn after_a_redis_restart_leases_are_claimed_again_and_events_and_commands_flow() {
    let mut redis_server = tokio::task::spawn_blocking(TestRedis::start)
        .await
        .expect("join")
        .expect("redis-server");
    let url = redis_server.url();
    let database = openhands_test_support::sqlite::fresh_database().expect("sqlite");
    let llm = ScriptedLlm::start(vec![
        finish(),
        tool("execute_bash", json!({"command": "echo after-restart"})),
        finish(),
    ])
    .await
    .expect("scripted LLM");
    let config = |c: &mut openhands_core::config::Config| {
        clustered_on(c, database.url(), &url, PREFIX);
        c.cluster.lease_ms = LEASE_MS;
        c.cluster.renew_interval_ms = 100;
    };
    let a = TestServer::spawn_with(config).await;
    let b = TestServer::spawn_with(config).await;
    store_llm_settings(&a, &llm).await;
    let pool = RedisPool::new(&RedisConfig {
        url: Some(Secret::new(url.clone())),
        key_prefix: PREFIX.to_owned(),
        ..RedisConfig::default()
    })
    .expect("pool");
    let leases = Leases::new(
        pool.clone(),
        "test-observer",
        Duration::from_millis(LEASE_MS),
        3,
    );

    // Running on A, first turn done, watched through B.
    let id = start_conversation(&a, "first").await;
    let stored = a.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    let owner = owner_listening(&pool, &leases, &id).await;
    let mut watcher = connect(&b, &id, -1).await;
    for expected in &stored {
        assert_eq!(&next_event(&mut watcher).await, expected);
    }
    let last_id = stored.last().and_then(|e| e["id"].as_i64()).expect("ids");

    // Redis dies and comes back empty, after longer than a lease.
    redis_server.stop();
    tokio::time::sleep(Duration::from_millis(2 * LEASE_MS)).await;
    let mut redis_server =
        tokio::task::spawn_blocking(move || redis_server.restart().map(|()| redis_server))
            .await
            .expect("join")
            .expect("redis-server restarts");

    // A claims its conversation again (no other replica took it: nothing was stored in
    // between), and both replicas list it as running.
    assert_eq!(owner_listening(&pool, &leases, &id).await, owner);
    wait_for_status(&b, &id, "RUNNING").await;
    wait_for_status(&a, &id, "RUNNING").await;

    // A message through B reaches the agent on A; B's watcher sees the whole turn.
    let (live, last_id) = message_until_finished(&mut watcher, "second", last_id).await;
    assert!(
        live.iter().any(|e| e["observation"] == "run"
            && e["content"]
                .as_str()
                .is_some_and(|c| c.contains("after-restart"))),
        "the agent on A ran the command: {live:#?}"
    );
    let ids: Vec<i64> = b
        .all_events(&id)
        .await
        .iter()
        .filter_map(|e| e["id"].as_i64())
        .collect();
    assert_eq!(ids, (0..=last_id).collect::<Vec<_>>());
    redis_server.stop();
}
