//! A resumed run (a conversation taken over while its agent worked) asks the LLM while its
//! sandbox is still starting: the conversation is `RUNNING` only once the sandbox runs, a
//! tool call waits for it, and a sandbox that fails to start fails the run as a failed
//! set-up always did. A new conversation still starts its sandbox first.

use async_trait::async_trait;
use openhands_core::config::Config;
use openhands_core::conversation::ConversationStatus;
use openhands_core::crypto::Cipher;
use openhands_core::event::{EventBody, EventQuery, EventSource, NewEvent};
use openhands_core::extension::{
    ConversationManager, PreparedSandbox, Sandbox, SandboxError, SandboxSpec,
};
use openhands_core::registry::{PluginContext, Services};
use openhands_core::scope::UserScope;
use openhands_core::tool_protocol::ToolClient;
use openhands_runtime::testing::{HelloOnlySandbox, ScriptedLlm, ScriptedReply, start_request};
use openhands_standalone_manager::StandaloneConversationManager;
use serde_json::{Map, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(20);

/// A sandbox whose start waits until the test opens the gate, then succeeds or fails.
struct GatedSandbox {
    gate: watch::Receiver<Option<Result<(), String>>>,
    prepares: AtomicUsize,
}

#[async_trait]
impl Sandbox for GatedSandbox {
    async fn prepare(&self, spec: SandboxSpec) -> Result<PreparedSandbox, SandboxError> {
        self.prepares.fetch_add(1, Ordering::SeqCst);
        let mut gate = self.gate.clone();
        let opened = gate
            .wait_for(Option::is_some)
            .await
            .map_err(|_| SandboxError::Setup("the test ended".into()))?
            .clone();
        match opened {
            Some(Err(reason)) => Err(SandboxError::Setup(reason)),
            _ => HelloOnlySandbox.prepare(spec).await,
        }
    }

    async fn tools(
        &self,
        _scope: &UserScope,
        _conversation_id: &str,
    ) -> Result<Option<Arc<ToolClient>>, SandboxError> {
        Ok(None)
    }

    async fn release(&self, _conversation_id: &str) {}

    async fn remove(&self, _scope: &UserScope, _conversation_id: &str) -> Result<(), SandboxError> {
        Ok(())
    }

    fn workspace_path(&self, _conversation_id: &str) -> Option<String> {
        Some("/workspace".into())
    }

    fn isolation(&self) -> openhands_core::sandbox_host::Isolation {
        openhands_core::sandbox_host::Isolation::None
    }
}

struct Harness {
    manager: StandaloneConversationManager,
    services: Services,
    llm: ScriptedLlm,
    gate: watch::Sender<Option<Result<(), String>>>,
    scope: UserScope,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new(replies: Vec<ScriptedReply>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            file_store_path: dir.path().display().to_string(),
            ..Config::default()
        };
        config.sandbox.close_delay = 0;
        let config = Arc::new(config);
        let ctx = PluginContext {
            config: config.clone(),
            data_dir: dir.path().to_path_buf(),
            cipher: Arc::new(Cipher::new(vec![("k1".into(), [7; 32])]).expect("cipher")),
            services: None,
            shared: Default::default(),
        };
        let mut services = openhands_core::registry::resolve(&ctx)
            .await
            .expect("OSS services")
            .services;
        let (gate, opened) = watch::channel(None);
        services.sandbox = Arc::new(GatedSandbox {
            gate: opened,
            prepares: AtomicUsize::new(0),
        });
        Self {
            manager: StandaloneConversationManager::new(config, services.clone()),
            services,
            llm: ScriptedLlm::start(replies).await.expect("scripted LLM"),
            gate,
            scope: UserScope {
                user_id: Some("ann".into()),
                org_id: None,
            },
            _dir: dir,
        }
    }

    /// Starts a conversation whose stored history says the agent was working when its
    /// server went away; `resume_work` as a takeover sets it.
    async fn start_working(&self, resume_work: bool) -> String {
        let mut request = start_request(&self.scope, &self.llm);
        request.resume_work = resume_work;
        let id = request.metadata.conversation_id.clone();
        self.services
            .conversation_store
            .save(&self.scope, &request.metadata)
            .await
            .expect("metadata stored");
        for event in [message("fix the build"), state("running")] {
            self.services
                .event_store
                .append(&self.scope, &id, event)
                .await
                .expect("history stored");
        }
        self.manager.start(request).await.expect("started");
        id
    }

    async fn status(&self, id: &str) -> Option<ConversationStatus> {
        self.manager
            .statuses(&self.scope, &[id.to_owned()])
            .await
            .expect("statuses")
            .get(id)
            .copied()
    }

    async fn wait_for(&self, what: &str, mut done: impl AsyncFnMut(&Self) -> bool) {
        let until = Instant::now() + WAIT;
        while !done(self).await {
            assert!(Instant::now() < until, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn event_kinds(&self, id: &str) -> Vec<String> {
        let page = self
            .services
            .event_store
            .read(
                &self.scope,
                id,
                EventQuery {
                    start_id: 0,
                    end_id: None,
                    reverse: false,
                    limit: 1000,
                },
            )
            .await
            .expect("events");
        page.events
            .iter()
            .map(|e| match &e.body {
                EventBody::Action { action, .. } => format!("action:{action}"),
                EventBody::Observation {
                    observation,
                    extras,
                    content,
                    ..
                } => match extras.get("agent_state").and_then(|s| s.as_str()) {
                    Some(state) => format!("state:{state}"),
                    None => format!("observation:{observation}:{content}"),
                },
            })
            .collect()
    }
}

fn message(text: &str) -> NewEvent {
    NewEvent {
        source: EventSource::User,
        message: text.into(),
        cause: None,
        body: EventBody::Action {
            action: "message".into(),
            args: {
                let mut args = Map::new();
                args.insert("content".into(), json!(text));
                args
            },
        },
        extra: Map::new(),
    }
}

fn state(agent_state: &str) -> NewEvent {
    let mut extras = Map::new();
    extras.insert("agent_state".into(), json!(agent_state));
    NewEvent {
        source: EventSource::Environment,
        message: String::new(),
        cause: None,
        body: EventBody::Observation {
            observation: "agent_state_changed".into(),
            content: String::new(),
            extras,
        },
        extra: Map::new(),
    }
}

#[tokio::test]
async fn resumed_work_asks_the_llm_while_the_sandbox_starts_and_runs_once_it_is_up() {
    let harness = Harness::new(vec![ScriptedReply::tool_call(
        "execute_bash",
        json!({"command": "make"}),
    )])
    .await;
    let id = harness.start_working(true).await;

    // The LLM is asked, and its action stored, while the sandbox has not started.
    harness
        .wait_for("the LLM was asked", async |h| !h.llm.requests().is_empty())
        .await;
    harness
        .wait_for("the action was stored", async |h| {
            h.event_kinds(&id).await.contains(&"action:run".to_owned())
        })
        .await;
    assert_eq!(
        harness.status(&id).await,
        Some(ConversationStatus::Starting),
        "RUNNING before the sandbox runs"
    );
    let before = harness.event_kinds(&id).await;
    assert!(
        !before.iter().any(|k| k.starts_with("observation:run")),
        "the command ran without a sandbox: {before:?}"
    );

    harness.gate.send_replace(Some(Ok(())));
    harness
        .wait_for("RUNNING once the sandbox runs", async |h| {
            h.status(&id).await == Some(ConversationStatus::Running)
        })
        .await;
}

#[tokio::test]
async fn a_resumed_runs_sandbox_that_fails_to_start_fails_the_run_with_the_reason() {
    let harness = Harness::new(vec![ScriptedReply::Delayed {
        delay_ms: 100,
        reply: Box::new(ScriptedReply::tool_call(
            "execute_bash",
            json!({"command": "make"}),
        )),
    }])
    .await;
    let id = harness.start_working(true).await;
    harness
        .wait_for("the LLM was asked", async |h| !h.llm.requests().is_empty())
        .await;
    harness
        .gate
        .send_replace(Some(Err("the disk is full".into())));
    harness
        .wait_for("the run failed", async |h| {
            h.status(&id).await == Some(ConversationStatus::Error)
        })
        .await;
    let kinds = harness.event_kinds(&id).await;
    assert!(
        kinds.iter().any(
            |k| k.contains("Setting up the workspace failed") && k.contains("the disk is full")
        ),
        "no set-up error event: {kinds:?}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("state:error"),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_new_conversation_starts_its_sandbox_before_asking_the_llm() {
    let harness = Harness::new(vec![ScriptedReply::tool_call(
        "finish",
        json!({"message": "done"}),
    )])
    .await;
    let id = harness.start_working(false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        harness.llm.requests().is_empty(),
        "the LLM was asked before the sandbox of a new run started"
    );
    harness.gate.send_replace(Some(Ok(())));
    harness
        .wait_for("the LLM was asked", async |h| !h.llm.requests().is_empty())
        .await;
    assert!(harness.status(&id).await.is_some());
}
