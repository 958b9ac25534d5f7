//! Helpers shared by the multi-replica tests.

#![allow(dead_code)]

use futures_util::StreamExt;
use openhands_core::config::{Config, RedisConfig};
use openhands_core::secret::Secret;
use openhands_redis::RedisPool;
use openhands_runtime::testing::{ScriptedLlm, ScriptedReply};
use openhands_test_support::redis::RedisForTest;
use openhands_test_support::{TestServer, json_body};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub const WAIT: Duration = Duration::from_secs(20);

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub fn tool(name: &str, arguments: Value) -> ScriptedReply {
    ScriptedReply::tool_call(name, arguments)
}

pub fn finish() -> ScriptedReply {
    tool("finish", json!({"message": "All done."}))
}

/// Logs of the servers under test, shown by the test runner when a test fails.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("openhands=debug,openhands_cluster_manager=debug,warn")
        .with_test_writer()
        .try_init();
}

pub fn clustered(c: &mut Config, database_url: &str, redis: &RedisForTest) {
    logs();
    clustered_on(c, database_url, redis.url(), redis.key_prefix());
}

/// SaaS mode with `saas.clustered` on the Redis at `redis_url`.
pub fn clustered_on(c: &mut Config, database_url: &str, redis_url: &str, key_prefix: &str) {
    logs();
    c.config_class = "saas".into();
    c.plugins.user_auth = Some("oss.local_user".into());
    c.plugins.conversation_manager = Some("saas.clustered".into());
    c.database.migrate_on_start = true;
    c.database.url = Some(Secret::new(database_url.to_owned()));
    c.redis.url = Some(Secret::new(redis_url.to_owned()));
    c.redis.key_prefix = key_prefix.to_owned();
    // Replicas of one deployment share the key that seals secrets (bytes 0..32).
    c.secrets_key = Some(Secret::new(
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned(),
    ));
}

pub async fn connect(server: &TestServer, id: &str, latest: i64) -> Socket {
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
pub async fn next_event(socket: &mut Socket) -> Value {
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

/// Sends a user message on `socket`, then reads the live events that follow until the agent
/// finishes, checking that their ids go on from `last_id` with no gap and no duplicate.
/// Returns those events and the last id.
pub async fn message_until_finished(
    socket: &mut Socket,
    content: &str,
    mut last_id: i64,
) -> (Vec<Value>, i64) {
    use futures_util::SinkExt;
    let message = json!({"action": "message", "args": {"content": content}});
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("send");
    let mut live = Vec::new();
    loop {
        let event = next_event(socket).await;
        let event_id = event["id"].as_i64().expect("event id");
        assert_eq!(event_id, last_id + 1, "no gap, no duplicate: {event}");
        last_id = event_id;
        live.push(event.clone());
        if event["observation"] == "agent_state_changed"
            && event["extras"]["agent_state"] == "finished"
        {
            return (live, last_id);
        }
    }
}

/// Stores the test LLM settings (pointing at `llm`) for the local user through `server`.
pub async fn store_llm_settings(server: &TestServer, llm: &ScriptedLlm) {
    let res = server
        .post_json(
            "/api/settings",
            &json!({"llm_model": "openai/test-model", "llm_api_key": "sk-test-llm-key",
                    "llm_base_url": llm.base_url()}),
        )
        .await;
    assert_eq!(res.status(), 200, "storing settings");
}

/// Starts a conversation on `server` with `message` as its first user message; its id.
pub async fn start_conversation(server: &TestServer, message: &str) -> String {
    let res = server
        .post_json("/api/conversations", &json!({"initial_user_msg": message}))
        .await;
    assert_eq!(res.status(), 200, "starting a conversation");
    json_body(res).await["conversation_id"]
        .as_str()
        .expect("id")
        .to_owned()
}

pub async fn wait_for_status(server: &TestServer, id: &str, want: &str) {
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

/// A pool on the test's Redis, with its key prefix.
pub fn pool(redis: &RedisForTest) -> RedisPool {
    RedisPool::new(&RedisConfig {
        url: Some(Secret::new(redis.url().to_owned())),
        key_prefix: redis.key_prefix().to_owned(),
        ..RedisConfig::default()
    })
    .expect("pool")
}
