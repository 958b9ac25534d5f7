//! Two replicas of the server (in one process) on one SQLite database and one Redis, with
//! `saas.clustered` as the conversation manager: a conversation started on A is watched,
//! driven and listed through B.

use futures_util::{SinkExt, StreamExt};
use openhands_cluster_manager::LEASE;
use openhands_cluster_manager::lease::Leases;
use openhands_core::config::{Config, RedisConfig};
use openhands_core::conversation::ConversationStatus;
use openhands_core::scope::UserScope;
use openhands_core::secret::Secret;
use openhands_redis::RedisPool;
use openhands_runtime::testing::{ScriptedLlm, ScriptedReply};
use openhands_test_support::redis::{RedisForTest, redis_for_test};
use openhands_test_support::{TestServer, json_body};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

// Named so its registration is linked into this test binary.
use openhands_cluster_manager as _;

const WAIT: Duration = Duration::from_secs(20);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn tool(name: &str, arguments: Value) -> ScriptedReply {
    ScriptedReply::tool_call(name, arguments)
}

fn finish() -> ScriptedReply {
    tool("finish", json!({"message": "All done."}))
}

fn clustered(c: &mut Config, database_url: &str, redis: &RedisForTest) {
    c.config_class = "saas".into();
    c.plugins.user_auth = Some("oss.local_user".into());
    c.plugins.conversation_manager = Some("saas.clustered".into());
    c.database.migrate_on_start = true;
    c.database.url = Some(Secret::new(database_url.to_owned()));
    c.redis.url = Some(Secret::new(redis.url().to_owned()));
    c.redis.key_prefix = redis.key_prefix().to_owned();
}

async fn connect(server: &TestServer, id: &str, latest: i64) -> Socket {
    let url = format!(
        "ws://{}/api/conversations/{id}/events/socket?latest_event_id={latest}",
        server.address
    );
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket")
        .0
}

/// The next stored event on the socket (status notices skipped).
async fn next_event(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).expect("json");
            if value.get("status_update").is_none() {
                return value;
            }
        }
    }
}

async fn wait_for_status(server: &TestServer, id: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = server.status_of(id).await;
        if status == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status `{want}` not reached; last `{status}`"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
    let res = a
        .post_json(
            "/api/settings",
            &json!({"llm_model": "openai/test-model", "llm_api_key": "sk-test-llm-key",
                    "llm_base_url": llm.base_url()}),
        )
        .await;
    assert_eq!(res.status(), 200);

    // Started on A; B watches from the start.
    let res = a
        .post_json("/api/conversations", &json!({"initial_user_msg": "first"}))
        .await;
    assert_eq!(res.status(), 200);
    let id = json_body(res).await["conversation_id"]
        .as_str()
        .expect("id")
        .to_owned();
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
    let other = Leases::new(pool, "another-replica", LEASE);
    let owner = other.owner(&id).await.expect("owner").expect("an owner");
    assert_ne!(owner, "another-replica");
    let claimed = other
        .claim(&id, &UserScope::local(), ConversationStatus::Starting)
        .await
        .expect("claim");
    assert!(!claimed, "the second claim is refused");
    assert!(
        !other.release(&id).await.expect("release"),
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
