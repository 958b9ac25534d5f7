//! Two replicas of the server (in one process) on one SQLite database and one Redis, with
//! `saas.clustered` as the conversation manager: a conversation started on A is watched,
//! driven and listed through B.

use futures_util::SinkExt;
use openhands_cluster_manager::LEASE;
use openhands_cluster_manager::lease::{AtLimit, Claim, Leases};
use openhands_core::config::RedisConfig;
use openhands_core::conversation::ConversationStatus;
use openhands_core::scope::UserScope;
use openhands_core::secret::Secret;
use openhands_redis::RedisPool;
use openhands_runtime::testing::ScriptedLlm;
use openhands_test_support::TestServer;
use openhands_test_support::redis::redis_for_test;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

// Named so its registration is linked into this test binary.
use openhands_cluster_manager as _;

mod common;
use common::*;

#[tokio::test]
async fn a_conversation_run_on_one_replica_is_watched_driven_and_listed_through_another() {
    let redis = redis_for_test().expect("redis");
    let database = openhands_test_support::sqlite::fresh_database().expect("sqlite");
    let llm = ScriptedLlm::start(vec![
        finish(),
        tool("execute_bash", json!({"command": "echo from-b"})),
        finish(),
    ])
    .await
    .expect("scripted LLM");
    let a = TestServer::spawn_with(|c| clustered(c, database.url(), &redis)).await;
    let b = TestServer::spawn_with(|c| clustered(c, database.url(), &redis)).await;
    store_llm_settings(&a, &llm).await;

    // Started on A; B watches from the start.
    let id = start_conversation(&a, "first").await;
    let mut watcher = connect(&b, &id, -1).await;
    let stored = a.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    let mut seen = Vec::new();
    for _ in 0..stored.len() {
        seen.push(next_event(&mut watcher).await);
    }
    assert_eq!(seen, stored, "B's watcher sees A's events in order");

    // B lists the true status.
    wait_for_status(&b, &id, "RUNNING").await;

    // A message sent through B (on B's socket) reaches the agent on A, and B's watcher
    // sees the whole turn live, without gap or duplicate.
    let message = json!({"action": "message", "args": {"content": "second"}});
    watcher
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("send");
    let mut last_id = stored.last().and_then(|e| e["id"].as_i64()).expect("ids");
    let mut live = Vec::new();
    loop {
        let event = next_event(&mut watcher).await;
        let event_id = event["id"].as_i64().expect("event id");
        assert_eq!(event_id, last_id + 1, "no gap, no duplicate: {event}");
        last_id = event_id;
        live.push(event.clone());
        if event["observation"] == "agent_state_changed"
            && event["extras"]["agent_state"] == "finished"
        {
            break;
        }
    }
    assert_eq!(live[0]["action"], "message");
    assert_eq!(live[0]["args"]["content"], "second");
    assert!(
        live.iter().any(|e| e["observation"] == "run"
            && e["content"].as_str().is_some_and(|c| c.contains("from-b"))),
        "the agent on A ran the command: {live:#?}"
    );
    let all = a.all_events(&id).await;
    assert_eq!(all.len(), stored.len() + live.len());
    assert_eq!(&all[stored.len()..], &live[..]);

    // A watcher reconnecting to B with latest_event_id gets only what came after.
    let mut again = connect(&b, &id, last_id - 1).await;
    assert_eq!(next_event(&mut again).await["id"].as_i64(), Some(last_id));

    // While A's lease lives, another replica's claim is refused.
    let pool = RedisPool::new(&RedisConfig {
        url: Some(Secret::new(redis.url().to_owned())),
        key_prefix: redis.key_prefix().to_owned(),
        ..RedisConfig::default()
    })
    .expect("pool");
    let other = Leases::new(pool, "another-replica", LEASE, 3);
    let owner = other.owner(&id).await.expect("owner").expect("an owner");
    assert_ne!(owner, "another-replica");
    let claim = other
        .claim(
            &id,
            &UserScope::local(),
            ConversationStatus::Starting,
            AtLimit::Evict,
        )
        .await
        .expect("claim");
    assert_eq!(claim, Claim::Refused, "the second claim is refused");
    assert!(
        !other
            .release(&id, &UserScope::local())
            .await
            .expect("release"),
        "not ours to release"
    );
    assert_eq!(other.owner(&id).await.expect("owner"), Some(owner));

    // Stopped through B: the owner stops it and gives the lease up.
    let res = b
        .post_json(&format!("/api/conversations/{id}/stop"), &json!({}))
        .await;
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
    wait_for_status(&b, &id, "STOPPED").await;
    assert_eq!(a.status_of(&id).await, "STOPPED");
    assert_eq!(other.owner(&id).await.expect("owner"), None);
}

#[test]
fn the_clustered_manager_is_registered() {
    let names: Vec<&str> = openhands_core::registry::Slot::ConversationManager
        .registered()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert!(names.contains(&"saas.clustered"), "{names:?}");
}
