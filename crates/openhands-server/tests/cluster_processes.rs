//! Three real server processes (the `openhands` binary) in SaaS mode, so on the clustered
//! conversation manager, against one PostgreSQL and one Redis, with a scripted
//! OpenAI-compatible LLM. The owner of a conversation is killed with SIGKILL in the middle of
//! a turn: another replica resumes the conversation within the lease time, and a watcher
//! that reconnects to a surviving replica with `latest_event_id` has, over both of its
//! sockets, seen exactly the stored events: ids strictly increasing, none missing, none
//! twice.
//!
//! Users: the processes run `oss.local_user` (`OPENHANDS_PLUGINS__USER_AUTH`), the one user
//! of a box without login, so the test needs no OIDC provider; everything else is the `saas`
//! class as deployed (SQL stores, `saas.clustered`, Redis rate limiter and change feed).

use futures_util::{SinkExt, StreamExt};
use openhands_runtime::testing::{ScriptedLlm, ScriptedReply};
use openhands_test_support::redis::{RedisForTest, redis_for_test};
use serde_json::{Value, json};
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Short, so the test waits seconds; the default is 15 s.
const LEASE_MS: u64 = 2_000;
const WAIT: Duration = Duration::from_secs(30);
/// Replicas of one deployment share the key that seals secrets (bytes 0..32).
const SECRETS_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One server process; killed (SIGKILL) when dropped. Its log is printed when the test
/// fails.
struct Replica {
    name: &'static str,
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// The environment every replica (and `openhands migrate`) shares.
fn shared_env(database_url: &str, redis: &RedisForTest) -> Vec<(&'static str, String)> {
    vec![
        ("OPENHANDS_CONFIG_CLS", "saas".into()),
        ("OPENHANDS_PLUGINS__USER_AUTH", "oss.local_user".into()),
        ("DATABASE_URL", database_url.into()),
        ("OPENHANDS_REDIS__URL", redis.url().into()),
        ("OPENHANDS_REDIS__KEY_PREFIX", redis.key_prefix().into()),
        ("OPENHANDS_SECRETS_KEY", SECRETS_KEY.into()),
        ("OPENHANDS_CLUSTER__LEASE_MS", LEASE_MS.to_string()),
        ("OPENHANDS_CLUSTER__RENEW_INTERVAL_MS", "200".into()),
        ("OPENHANDS_RATE_LIMIT", "off".into()),
        ("OPENHANDS_USER_RATE_LIMIT", "off".into()),
        // The scripted LLM listens on loopback, which SaaS mode refuses by default.
        ("OPENHANDS_LLM_EGRESS_ALLOW", "127.0.0.1".into()),
        ("RUST_LOG", "warn,openhands_cluster_manager=info".into()),
    ]
}

fn command(dir: &std::path::Path, env: &[(&'static str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_openhands"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("FILE_STORE_PATH", dir)
        .env("OPENHANDS_CONFIG_FILE", dir.join("none.toml"));
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd
}

impl Replica {
    fn spawn(name: &'static str, env: &[(&'static str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("data dir");
        let port = openhands_test_support::saas::free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = command(dir.path(), env)
            .env("OPENHANDS_HOST", "127.0.0.1")
            .env("OPENHANDS_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting the openhands binary");
        Self {
            name,
            child,
            port,
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until `/ready` answers 200 (database and Redis reachable).
    async fn ready(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited at start-up ({status}):\n{}",
                    self.name,
                    self.log()
                );
            }
            if let Ok(res) = http.get(self.url("/ready")).send().await
                && res.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.dir.path().join("server.log")) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// SIGKILL: no shutdown, no handover, no lease released.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn socket(&self, conversation_id: &str, latest: i64) -> Socket {
        let url = format!(
            "ws://127.0.0.1:{}/api/conversations/{conversation_id}/events/socket?latest_event_id={latest}",
            self.port
        );
        tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket")
            .0
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("----- log of {} -----\n{}", self.name, self.log());
        }
    }
}

/// The next stored event on the socket (status notices skipped); `None` when the socket
/// closed (its server died).
async fn next_event(socket: &mut Socket) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text).expect("json");
                if value.get("status_update").is_none() {
                    return Some(value);
                }
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(_)) => {}
        }
    }
}

async fn send_message(socket: &mut Socket, content: &str) {
    let message = json!({"action": "message", "args": {"content": content}});
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("send");
}

fn is_state(event: &Value, state: &str) -> bool {
    event["observation"] == "agent_state_changed" && event["extras"]["agent_state"] == state
}

/// Every stored event, through `/trajectory` of `replica`.
async fn stored_events(http: &reqwest::Client, replica: &Replica, id: &str) -> Vec<Value> {
    let res = http
        .get(replica.url(&format!("/api/conversations/{id}/trajectory")))
        .send()
        .await
        .expect("trajectory");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    body["trajectory"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn killing_the_owner_mid_turn_moves_the_conversation_and_a_reconnecting_watcher_misses_nothing()
 {
    let database = tokio::task::spawn_blocking(openhands_test_support::postgres::fresh_database)
        .await
        .expect("join")
        .expect("PostgreSQL");
    let redis = redis_for_test().expect("Redis");
    let llm = ScriptedLlm::start(vec![
        // First turn.
        ScriptedReply::tool_call("finish", json!({"message": "First done."})),
        // Second turn: a long command, during which the owner dies.
        ScriptedReply::tool_call("execute_bash", json!({"command": "sleep 20"})),
        // Anything after the takeover: `finish` (also what the server answers when the
        // script is used up).
    ])
    .await
    .expect("scripted LLM");
    let env = shared_env(database.url(), &redis);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    // The schema first, once; then three replicas.
    let migrate_dir = tempfile::tempdir().expect("dir");
    let migrated = command(migrate_dir.path(), &env)
        .args(["migrate", "up"])
        .output()
        .expect("openhands migrate up");
    assert!(
        migrated.status.success(),
        "migrate up: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let mut a = Replica::spawn("A", &env);
    let mut b = Replica::spawn("B", &env);
    let mut c = Replica::spawn("C", &env);
    for replica in [&mut a, &mut b, &mut c] {
        replica.ready(&http).await;
    }

    let res = http
        .post(b.url("/api/settings"))
        .json(
            &json!({"llm_model": "openai/test-model", "llm_api_key": "sk-test-llm-key",
                      "llm_base_url": llm.base_url()}),
        )
        .send()
        .await
        .expect("settings");
    assert_eq!(res.status(), 200);

    // Started through A, so A owns it; the watcher is on A too.
    let res = http
        .post(a.url("/api/conversations"))
        .json(&json!({"initial_user_msg": "first"}))
        .send()
        .await
        .expect("start");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    let id = body["conversation_id"].as_str().expect("id").to_owned();
    let mut seen: Vec<Value> = Vec::new();
    let mut watcher = a.socket(&id, -1).await;
    loop {
        let event = next_event(&mut watcher).await.expect("A is alive");
        let finished = is_state(&event, "finished");
        seen.push(event);
        if finished {
            break;
        }
    }

    // Second turn, sent through C (routed to A); A is killed once the command runs.
    let mut sender = c.socket(&id, i64::MAX).await;
    send_message(&mut sender, "second").await;
    loop {
        let event = next_event(&mut watcher).await.expect("A is alive");
        let running = event["action"] == "run";
        seen.push(event);
        if running {
            break;
        }
    }
    a.kill();
    let killed = Instant::now();
    let seen_before_kill = seen.len();
    // Whatever A's socket still delivers, then it closes.
    while let Some(event) = next_event(&mut watcher).await {
        seen.push(event);
    }

    // B or C claims it after the lease ran out (plus at most one sweep), resumes it and
    // stores a status event saying so.
    let deadline = killed + Duration::from_millis(3 * LEASE_MS) + Duration::from_secs(5);
    let resumed_after = loop {
        let stored = stored_events(&http, &b, &id).await;
        let resumed = stored.iter().any(|e| {
            e["observation"] == "agent_state_changed"
                && e["extras"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("Resumed on another server"))
        });
        if resumed {
            break killed.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "no replica resumed the conversation; stored: {stored:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        resumed_after < Duration::from_millis(2 * LEASE_MS) + Duration::from_secs(2),
        "resumed {resumed_after:?} after the kill, lease {LEASE_MS} ms"
    );

    // The watcher reconnects to C from the last event it saw, and drives a third turn.
    let last_seen = seen.last().and_then(|e| e["id"].as_i64()).expect("ids");
    let mut watcher = c.socket(&id, last_seen).await;
    send_message(&mut watcher, "third").await;
    let mut third_sent = false;
    loop {
        let event = next_event(&mut watcher).await.expect("C is alive");
        if event["action"] == "message" && event["args"]["content"] == "third" {
            third_sent = true;
        }
        let done = third_sent && is_state(&event, "finished");
        seen.push(event);
        if done {
            break;
        }
    }

    // Seen over both sockets == stored: every id once, in order, with the same content.
    let stored = stored_events(&http, &c, &id).await;
    let ids: Vec<i64> = seen.iter().filter_map(|e| e["id"].as_i64()).collect();
    let stored_ids: Vec<i64> = stored.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {ids:?}"
    );
    assert_eq!(ids, stored_ids, "none missing, none twice");
    assert_eq!(seen, stored);
    eprintln!(
        "resumed {resumed_after:?} after the kill; {} events, {} seen before the kill",
        stored.len(),
        seen_before_kill
    );
    assert_eq!(
        stored_ids,
        (0..stored_ids.len() as i64).collect::<Vec<_>>(),
        "the store has no gap"
    );

    // Every surviving replica lists it as running (the owner publishes a status change at
    // its next upkeep, so a listing may lag by one renew interval).
    for replica in [&b, &c] {
        let deadline = Instant::now() + WAIT;
        loop {
            let info: Value = http
                .get(replica.url(&format!("/api/conversations/{id}")))
                .send()
                .await
                .expect("info")
                .json()
                .await
                .expect("json");
            if info["status"] == "RUNNING" {
                break;
            }
            assert!(Instant::now() < deadline, "{}: {info}", replica.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
