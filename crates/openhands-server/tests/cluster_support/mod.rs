//! Real server processes (the `openhands` binary) in SaaS mode, so on the clustered
//! conversation manager, against one PostgreSQL and one Redis, with a scripted
//! OpenAI-compatible LLM; and WebSocket watchers that follow a conversation across replicas.
//!
//! Users: the processes run `oss.local_user` (`OPENHANDS_PLUGINS__USER_AUTH`), the one user
//! of a box without login, so the tests need no OIDC provider; everything else is the
//! `saas` class as deployed (SQL stores, `saas.clustered`, `saas.bwrap`, Redis rate limiter
//! and change feed). The replicas share one workspaces directory
//! (`OPENHANDS_SANDBOX__WORKSPACES_DIR`), as replicas on a network file system do, so a
//! conversation's files move with it.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use openhands_runtime::testing::ScriptedLlm;
use openhands_test_support::postgres::TestDatabase;
use openhands_test_support::redis::{RedisForTest, redis_for_test};
use serde_json::{Value, json};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Short, so the tests wait seconds; the default is 3 s.
pub const LEASE_MS: u64 = 2_000;
pub const WAIT: Duration = Duration::from_secs(30);
/// Replicas of one deployment share the key that seals secrets (bytes 0..32).
const SECRETS_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One server process; killed (SIGKILL) when dropped. Its log is printed when the test
/// fails.
pub struct Replica {
    pub name: String,
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    exited: Option<ExitStatus>,
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
    fn spawn(name: String, env: &[(&'static str, String)]) -> Self {
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
            exited: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until `/ready` answers 200 (database and Redis reachable).
    pub async fn ready(&mut self, http: &reqwest::Client) {
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no handover, no lease released.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        if let Ok(status) = self.child.wait() {
            self.exited.get_or_insert(status);
        }
    }

    /// SIGTERM: the graceful shutdown a deploy or an orchestrator asks for.
    pub fn terminate(&self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    }

    /// Waits for the process to exit; its status.
    pub async fn exit_status(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited {
                return status;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {within:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn socket(&self, conversation_id: &str, latest: i64) -> Socket {
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

/// Three (or more) replicas on one fresh PostgreSQL database and one Redis prefix, with
/// the local user's LLM settings pointing at `llm`.
pub struct Cluster {
    pub replicas: Vec<Replica>,
    pub http: reqwest::Client,
    pub workspaces: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    started: usize,
    _database: TestDatabase,
    _redis: RedisForTest,
}

impl Cluster {
    pub async fn start(replicas: usize, llm: &ScriptedLlm) -> Self {
        let database =
            tokio::task::spawn_blocking(openhands_test_support::postgres::fresh_database)
                .await
                .expect("join")
                .expect("PostgreSQL");
        let redis = redis_for_test().expect("Redis");
        let workspaces = tempfile::tempdir().expect("workspaces dir");
        let env = vec![
            ("OPENHANDS_CONFIG_CLS", "saas".into()),
            ("OPENHANDS_PLUGINS__USER_AUTH", "oss.local_user".into()),
            ("DATABASE_URL", database.url().into()),
            ("OPENHANDS_REDIS__URL", redis.url().into()),
            ("OPENHANDS_REDIS__KEY_PREFIX", redis.key_prefix().into()),
            ("OPENHANDS_SECRETS_KEY", SECRETS_KEY.into()),
            ("OPENHANDS_CLUSTER__LEASE_MS", LEASE_MS.to_string()),
            ("OPENHANDS_CLUSTER__RENEW_INTERVAL_MS", "200".into()),
            (
                "OPENHANDS_SANDBOX__WORKSPACES_DIR",
                workspaces.path().display().to_string(),
            ),
            ("OPENHANDS_RATE_LIMIT", "off".into()),
            ("OPENHANDS_USER_RATE_LIMIT", "off".into()),
            ("MAX_CONCURRENT_CONVERSATIONS", "50".into()),
            // The scripted LLM listens on loopback, which SaaS mode refuses by default.
            ("OPENHANDS_LLM_EGRESS_ALLOW", "127.0.0.1".into()),
            (
                "RUST_LOG",
                "warn,openhands_cluster_manager=info,openhands=info".into(),
            ),
        ];
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        // The schema first, once; then the replicas.
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
        let mut cluster = Self {
            replicas: Vec::new(),
            http,
            workspaces,
            env,
            started: 0,
            _database: database,
            _redis: redis,
        };
        for _ in 0..replicas {
            cluster.add_replica().await;
        }
        let res = cluster
            .http
            .post(cluster.replicas[0].url("/api/settings"))
            .json(
                &json!({"llm_model": "openai/test-model", "llm_api_key": "sk-test-llm-key",
                          "llm_base_url": llm.base_url()}),
            )
            .send()
            .await
            .expect("settings");
        assert_eq!(res.status(), 200);
        cluster
    }

    /// Starts one more replica (a new process, a new replica id) and waits until it is
    /// ready; its index.
    pub async fn add_replica(&mut self) -> usize {
        let name = format!("replica-{}", self.started);
        self.started += 1;
        let mut replica = Replica::spawn(name, &self.env);
        replica.ready(&self.http).await;
        self.replicas.push(replica);
        self.replicas.len() - 1
    }

    /// Starts a conversation through replica `index` (which then owns it); its id.
    pub async fn start_conversation(&self, index: usize, message: &str) -> String {
        let res = self
            .http
            .post(self.replicas[index].url("/api/conversations"))
            .json(&json!({"initial_user_msg": message}))
            .send()
            .await
            .expect("start");
        assert_eq!(res.status(), 200, "starting a conversation");
        let body: Value = res.json().await.expect("json");
        body["conversation_id"].as_str().expect("id").to_owned()
    }

    /// Every stored event, through `/trajectory` of replica `index`.
    pub async fn stored_events(&self, index: usize, id: &str) -> Vec<Value> {
        stored_events(&self.http, &self.replicas[index], id).await
    }

    /// The lines of `steps.log` in the conversation's workspace.
    pub fn step_log(&self, id: &str) -> Vec<String> {
        std::fs::read_to_string(self.workspaces.path().join(id).join("steps.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// What a watcher read on one socket before it ended.
pub enum Received {
    Event(Value),
    /// The server closed the socket with this code (1012: it is restarting).
    Closed(Option<CloseCode>),
}

/// The next stored event on the socket (status notices skipped), or how it ended.
pub async fn read_event(socket: &mut Socket) -> Received {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text).expect("json");
                if value.get("status_update").is_none() {
                    return Received::Event(value);
                }
            }
            Some(Ok(Message::Close(frame))) => return Received::Closed(frame.map(|f| f.code)),
            Some(Err(_)) | None => return Received::Closed(None),
            Some(Ok(_)) => {}
        }
    }
}

/// The next stored event on the socket; `None` when the socket closed (its server died).
pub async fn next_event(socket: &mut Socket) -> Option<Value> {
    match read_event(socket).await {
        Received::Event(event) => Some(event),
        Received::Closed(_) => None,
    }
}

pub async fn send_message(socket: &mut Socket, content: &str) {
    let message = json!({"action": "message", "args": {"content": content}});
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("send");
}

pub fn is_state(event: &Value, state: &str) -> bool {
    event["observation"] == "agent_state_changed" && event["extras"]["agent_state"] == state
}

/// Every stored event, through `/trajectory` of `replica`.
pub async fn stored_events(http: &reqwest::Client, replica: &Replica, id: &str) -> Vec<Value> {
    let res = http
        .get(replica.url(&format!("/api/conversations/{id}/trajectory")))
        .send()
        .await
        .expect("trajectory");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    body["trajectory"].as_array().cloned().unwrap_or_default()
}

/// The step numbers of the `run` actions whose result says they were interrupted (the
/// server running them was lost or shut down before they finished).
pub fn interrupted_steps(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["extras"]["error_id"] == "AGENT_ERROR$ACTION_INTERRUPTED")
        .filter_map(|result| {
            let cause = result["cause"].as_i64()?;
            let action = events.iter().find(|e| e["id"].as_i64() == Some(cause))?;
            step_of(action)
        })
        .collect()
}

/// `k` of a step's action (`echo k >> steps.log; ...`).
pub fn step_of(action: &Value) -> Option<String> {
    let command = action["args"]["command"].as_str()?;
    let rest = command.strip_prefix("echo ")?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// Checks the exactly-once promise for a task of `steps` numbered steps: every step's
/// action was stored once; every step's command ran once, except those reported
/// interrupted, which ran at most once; and the ids are 0.. with no gap.
pub fn assert_exactly_once(events: &[Value], step_log: &[String], steps: usize) {
    let interrupted = interrupted_steps(events);
    for k in 0..steps {
        let k = k.to_string();
        let actions = events
            .iter()
            .filter(|e| e["action"] == "run" && step_of(e).as_deref() == Some(&k))
            .count();
        assert_eq!(actions, 1, "step {k}'s action stored once: {events:#?}");
        let ran = step_log.iter().filter(|line| **line == k).count();
        if interrupted.contains(&k) {
            assert!(
                ran <= 1,
                "interrupted step {k} ran {ran} times: {step_log:?}"
            );
        } else {
            assert_eq!(
                ran, 1,
                "step {k} ran once: {step_log:?}, interrupted {interrupted:?}"
            );
        }
    }
    let ids: Vec<i64> = events.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert_eq!(
        ids,
        (0..ids.len() as i64).collect::<Vec<_>>(),
        "the store has no gap and no duplicate"
    );
}
