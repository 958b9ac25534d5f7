//! The malicious tenant's kit for `sandbox_attacks.rs`: a real server whose conversations
//! run in the sandbox under attack, an agent scripted to run the attacker's commands, and
//! the host-side checks (processes, listening ports) that tell whether an attack got out.
//!
//! The sandbox under attack is `saas.bwrap`. `SANDBOX_ATTACKS_SANDBOX=oss.process` runs the
//! same attacks against the unisolated sandbox, to see which of them isolation alone stops
//! (those tests fail there). Never do that with the resource-limit tests: without a
//! sandbox, their fork bomb and memory hog hit the host.

use openhands_core::config::Config;
use openhands_runtime::testing::{ScriptedLlm, ScriptedReply};
use openhands_test_support::{TestServer, json_body};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest wait for an agent to finish its script.
pub const WAIT: Duration = Duration::from_secs(60);
/// The `bwrap` the isolated sandbox runs.
pub const BWRAP: &str = "/usr/bin/bwrap";
/// The sandbox these attacks are aimed at.
pub const ISOLATED: &str = "saas.bwrap";

/// The sandbox to select: [`ISOLATED`] unless `SANDBOX_ATTACKS_SANDBOX` names another.
pub fn sandbox_under_test() -> String {
    std::env::var("SANDBOX_ATTACKS_SANDBOX").unwrap_or_else(|_| ISOLATED.to_owned())
}

/// Whether to run: false (with the reason printed) only when the isolated sandbox is under
/// test, `bwrap` is missing, and `SANDBOX_TESTS_REQUIRE_BWRAP` (set by CI) is not set.
pub fn sandbox_available() -> bool {
    if sandbox_under_test() != ISOLATED || Path::new(BWRAP).exists() {
        return true;
    }
    assert!(
        std::env::var_os("SANDBOX_TESTS_REQUIRE_BWRAP").is_none(),
        "SANDBOX_TESTS_REQUIRE_BWRAP is set but {BWRAP} is missing: install the Debian \
         package `bubblewrap`"
    );
    eprintln!("skipped: {BWRAP} is missing (install the Debian package `bubblewrap`)");
    false
}

/// The agent runs `command` in its shell.
pub fn bash(command: &str) -> ScriptedReply {
    ScriptedReply::tool_call("execute_bash", json!({ "command": command }))
}

/// The agent runs `command`, giving it at most `seconds`.
pub fn bash_for(command: &str, seconds: u64) -> ScriptedReply {
    ScriptedReply::tool_call(
        "execute_bash",
        json!({ "command": command, "timeout": seconds }),
    )
}

fn finish() -> ScriptedReply {
    ScriptedReply::tool_call("finish", json!({"message": "done"}))
}

/// A server whose conversations run in the sandbox under test, with an LLM that plays
/// whatever script the test gives each conversation.
pub struct Attack {
    pub server: TestServer,
    llm: ScriptedLlm,
}

/// One conversation whose agent ran its script to the end.
pub struct Ran {
    pub id: String,
    /// Every stored event (as `/trajectory` returns them).
    pub events: Vec<Value>,
}

impl Attack {
    /// A server in OSS mode (no login in the way) with the sandbox under test, after
    /// `adjust` changed its config.
    pub async fn start(adjust: impl FnOnce(&mut Config)) -> Self {
        let llm = ScriptedLlm::start(Vec::new()).await.expect("scripted LLM");
        let server = TestServer::spawn_with(|config| {
            config.plugins.sandbox = Some(sandbox_under_test());
            config.sandbox.bwrap_path = BWRAP.into();
            adjust(config);
        })
        .await;
        let settings = json!({"llm_model": "openai/test-model", "llm_api_key": LLM_KEY,
                              "llm_base_url": llm.base_url()});
        let res = server.post_json("/api/settings", &settings).await;
        assert_eq!(res.status(), 200, "storing settings");
        Self { server, llm }
    }

    /// Starts a conversation whose agent plays `script` and then finishes; waits for it.
    pub async fn run(&self, script: Vec<ScriptedReply>) -> Ran {
        for reply in script {
            self.llm.push(reply);
        }
        self.llm.push(finish());
        let res = self
            .server
            .post_json("/api/conversations", &json!({"initial_user_msg": "attack"}))
            .await;
        assert_eq!(res.status(), 200, "creating a conversation");
        let created = json_body(res).await;
        let id = created["conversation_id"]
            .as_str()
            .expect("conversation id")
            .to_owned();
        let events = self
            .server
            .wait_for_agent_state(&id, "finished", -1, WAIT)
            .await;
        Ran { id, events }
    }

    /// The conversation's workspace on the host.
    pub fn workspace(&self, id: &str) -> PathBuf {
        self.server.data_dir().join("workspaces").join(id)
    }

    /// `DELETE /api/conversations/{id}`.
    pub async fn delete(&self, id: &str) -> reqwest::StatusCode {
        let url = self.server.url(&format!("/api/conversations/{id}"));
        let res = self.server.client.delete(url).send().await.expect("DELETE");
        res.status()
    }
}

/// The LLM key stored in the settings: the agent must never see it.
pub const LLM_KEY: &str = "sk-llm-key-7c0d9e1b";

impl Ran {
    /// All events as one JSON text, for "never appears anywhere" checks.
    pub fn text(&self) -> String {
        serde_json::to_string(&self.events).expect("events are JSON")
    }

    /// The `run` observation of `command` (panics, listing the events, when there is none).
    pub fn output(&self, command: &str) -> &Value {
        self.events
            .iter()
            .find(|e| e["observation"] == "run" && e["extras"]["command"] == command)
            .unwrap_or_else(|| panic!("no output of `{command}` in {:#?}", self.events))
    }

    /// The text the command printed.
    pub fn printed(&self, command: &str) -> String {
        self.output(command)["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The command's exit code (-1 when there is none).
    pub fn exit_code(&self, command: &str) -> i64 {
        self.output(command)["extras"]["metadata"]["exit_code"]
            .as_i64()
            .unwrap_or(-1)
    }
}

/// Host processes whose command line contains `needle`.
pub fn host_processes_with(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            })
        })
        .collect()
}

/// Polls until no host process has `needle` in its command line, for at most `patience`;
/// returns those left.
pub async fn survivors(needle: &str, patience: Duration) -> Vec<u32> {
    let deadline = Instant::now() + patience;
    loop {
        let left = host_processes_with(needle);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether something on the host accepts connections at `address`.
pub fn host_listens(address: &str) -> bool {
    address
        .parse()
        .is_ok_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

/// A number unique to this test process, to tell its processes from other tests'.
pub fn marker(base: u32) -> String {
    format!("{base}{:05}", std::process::id() % 100_000)
}

/// Asks `GET /alive` every 100 ms until told to stop; returns the failures and the slowest
/// answer.
pub fn watch_alive(
    server: &TestServer,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<(Vec<String>, Duration)>,
) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let client = server.client.clone();
    let url = server.url("/alive");
    let task = tokio::spawn(async move {
        let mut failures = Vec::new();
        let mut slowest = Duration::ZERO;
        loop {
            let started = Instant::now();
            let res = client
                .get(&url)
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            slowest = slowest.max(started.elapsed());
            match res {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => failures.push(format!("status {}", r.status())),
                Err(e) => failures.push(e.to_string()),
            }
            tokio::select! {
                _ = &mut stopped => return (failures, slowest),
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    });
    (stop, task)
}
