//! One conversation's task: prepare the sandbox, then run the agent, again after each
//! new user message once it has finished.

use crate::io::ConversationIo;
use openhands_core::event::{EventBody, EventQuery, EventSource, NewEvent};
use openhands_core::extension::{
    ConversationInput, EventStore, Sandbox, SandboxSpec, StartRequest,
};
use openhands_core::net_policy::AllowList;
use openhands_core::repository::{CloneTarget, RepositoryPolicy, clone_target};
use openhands_core::secret::Secret;
use openhands_core::secrets::{ProviderType, UserSecrets};
use openhands_runtime::agent::{AgentConfig, AgentInput, AgentOutcome, run_agent};
use openhands_runtime::llm::{LlmConfig, LlmEgress};
use openhands_runtime::tools::SandboxTools;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Default iteration cap when settings leave it unset (OpenHands uses 500 for a whole task;
/// ours counts LLM calls per user turn).
const DEFAULT_MAX_ITERATIONS: u32 = 100;

/// What a conversation task receives from the manager.
#[derive(Debug)]
pub enum TaskInput {
    User(ConversationInput),
    Stop,
    /// The server is shutting down: leave at the next step boundary (see
    /// [`AgentInput::Drain`]), storing `stopped` with this reason.
    Drain(String),
}

/// Environment for the sandbox: custom secrets by name, provider tokens as
/// `<provider>_token`, as OpenHands exports them.
pub fn sandbox_env(secrets: &UserSecrets) -> Vec<(String, Secret)> {
    let mut env: Vec<(String, Secret)> = secrets
        .provider_tokens
        .iter()
        .filter_map(|(p, t)| {
            t.token
                .clone()
                .map(|tok| (format!("{}_token", p.as_str()), tok))
        })
        .collect();
    env.extend(
        secrets
            .custom_secrets
            .iter()
            .map(|(name, s)| (name.clone(), s.secret.clone())),
    );
    env
}

/// Every secret value, for masking events.
pub fn secret_values(request: &StartRequest) -> Vec<String> {
    let mut values: Vec<String> = sandbox_env(&request.secrets)
        .into_iter()
        .map(|(_, s)| s.expose().to_owned())
        .collect();
    let settings = &request.settings;
    values.extend(
        [&settings.llm_api_key, &settings.search_api_key]
            .into_iter()
            .flatten()
            .map(|key| key.expose().to_owned()),
    );
    values
}

fn git_token(
    secrets: &UserSecrets,
    provider: Option<ProviderType>,
) -> Option<(Secret, Option<String>)> {
    let provider = provider.unwrap_or(ProviderType::Github);
    let token = secrets.provider_tokens.get(&provider)?;
    Some((token.token.clone()?, token.host.clone()))
}

/// The checked clone of the conversation's repository, if it has one.
fn clone_of(
    request: &StartRequest,
    policy: &RepositoryPolicy,
) -> Result<Option<CloneTarget>, String> {
    let Some(repository) = request
        .metadata
        .selected_repository
        .as_ref()
        .filter(|r| !r.trim().is_empty())
    else {
        return Ok(None);
    };
    let provider = request.metadata.git_provider;
    let token = git_token(&request.secrets, provider);
    clone_target(
        repository,
        provider,
        token.as_ref().map(|(t, h)| (t.expose(), h.as_deref())),
        policy,
    )
    .map(Some)
    .map_err(|e| e.message)
}

fn state_event(state: &str, reason: &str) -> NewEvent {
    let mut extras = Map::new();
    extras.insert("agent_state".into(), json!(state));
    extras.insert("reason".into(), json!(reason));
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

fn error_event(message: &str, error_id: &str) -> NewEvent {
    let mut extras = Map::new();
    extras.insert("error_id".into(), json!(error_id));
    NewEvent {
        source: EventSource::Environment,
        message: message.to_owned(),
        cause: None,
        body: EventBody::Observation {
            observation: "error".into(),
            content: message.to_owned(),
            extras,
        },
        extra: Map::new(),
    }
}

/// Everything a task needs, fixed at start.
pub struct Task {
    pub request: StartRequest,
    pub io: Arc<ConversationIo>,
    pub event_store: Arc<dyn EventStore>,
    pub sandbox: Arc<dyn Sandbox>,
    pub repository_policy: RepositoryPolicy,
    /// `llm_egress_allow`: what a hosted server's LLM client may reach besides public
    /// addresses.
    pub llm_egress_allow: Vec<String>,
    /// `sandbox.limits.command_timeout_seconds` (zero: no cap).
    pub max_command_timeout: Duration,
    /// Called once the sandbox is ready and the agent about to run.
    pub on_running: Box<dyn FnOnce() + Send>,
}

/// How a task ended.
#[derive(Debug)]
pub enum TaskEnd {
    Stopped,
    Failed(String),
}

impl Task {
    /// Runs the agent until the run ends; with the end, the run's sandbox when it was set
    /// up (possibly still starting: the caller waits for it before releasing the sandbox,
    /// after telling everyone the agent left).
    pub async fn run(
        self,
        mut inputs: mpsc::Receiver<TaskInput>,
    ) -> (TaskEnd, Option<SandboxTools>) {
        let Task {
            request,
            io,
            event_store,
            sandbox,
            repository_policy,
            llm_egress_allow,
            max_command_timeout,
            on_running,
        } = self;
        let emit = |event: NewEvent| {
            let io = io.clone();
            async move {
                use openhands_runtime::agent::AgentIo;
                if let Err(err) = io.emit(event).await {
                    tracing::error!(error = %err, "storing a conversation event failed");
                }
            }
        };
        io.live.notice(json!({
            "status_update": true, "type": "info", "id": "STATUS$SETTING_UP_WORKSPACE",
            "message": "Setting up the workspace"
        }));
        let settings = &request.settings;
        let clone = match clone_of(&request, &repository_policy) {
            Ok(clone) => clone,
            Err(reason) => {
                let message = format!("Setting up the workspace failed: {reason}");
                emit(error_event(&message, "STATUS$ERROR")).await;
                emit(state_event("error", &message)).await;
                return (TaskEnd::Failed(message), None);
            }
        };
        let spec = SandboxSpec {
            scope: request.scope.clone(),
            conversation_id: request.metadata.conversation_id.clone(),
            clone,
            branch: request.metadata.selected_branch.clone(),
            env: sandbox_env(&request.secrets),
            git_user_name: settings.git_user_name.clone(),
            git_user_email: settings.git_user_email.clone(),
        };
        let conversation_id = request.metadata.conversation_id.clone();
        let mut start = match sandbox
            .workspace_path(&conversation_id)
            .filter(|_| request.resume_work)
        {
            // Resumed work goes on at once: the LLM is asked while the sandbox starts.
            Some(workspace) => {
                let sandbox = sandbox.clone();
                SandboxStart::pending(
                    SandboxTools::starting(workspace, async move {
                        sandbox
                            .prepare(spec)
                            .await
                            .map(|prepared| prepared.tools)
                            .map_err(|err| err.to_string())
                    }),
                    on_running,
                )
            }
            None => match sandbox.prepare(spec).await {
                Ok(prepared) => {
                    on_running();
                    SandboxStart::ready(SandboxTools::ready(prepared.tools))
                }
                Err(err) => return (fail_setup(&emit, err.to_string()).await, None),
            },
        };
        let max_iterations = settings
            .max_iterations
            .filter(|n| *n > 0)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_MAX_ITERATIONS);
        let mut config = AgentConfig {
            llm: LlmConfig {
                model: settings
                    .llm_model
                    .clone()
                    .unwrap_or_else(|| "openai/gpt-4o".into()),
                base_url: settings
                    .llm_base_url
                    .clone()
                    .filter(|u| !u.trim().is_empty()),
                api_key: settings.llm_api_key.clone(),
                // On a hosted (multi-user) server the base URL is user input: public
                // addresses only. The list was checked at start-up; a bad one allows nothing.
                egress: match repository_policy {
                    RepositoryPolicy::Hosted { .. } => {
                        LlmEgress::Public(AllowList::parse(&llm_egress_allow).unwrap_or_default())
                    }
                    RepositoryPolicy::Local => LlmEgress::Any,
                },
                ..LlmConfig::default()
            },
            max_iterations,
            max_budget_per_task: settings.max_budget_per_task,
            confirmation_mode: settings.confirmation_mode.unwrap_or(false),
            tools: start.tools.clone(),
            repository: request.metadata.selected_repository.clone(),
            conversation_instructions: request.conversation_instructions.clone(),
            command_timeout: Duration::from_secs(120),
            max_command_timeout: Some(max_command_timeout).filter(|t| !t.is_zero()),
            resume_work: request.resume_work,
        };
        let mut pending: Option<AgentInput> = None;
        // `return` in the block ends the run.
        let end = async {
            loop {
                let history = match read_history(&*event_store, &request).await {
                    Ok(history) => history,
                    Err(message) => return TaskEnd::Failed(message),
                };
                let (agent_tx, agent_rx) = mpsc::channel(64);
                if let Some(first) = pending.take() {
                    let _ = agent_tx.send(first).await;
                }
                let agent = run_agent(config.clone(), history, io.clone(), agent_rx);
                // Work is resumed once, by the first run; later runs answer the user.
                config.resume_work = false;
                tokio::pin!(agent);
                let outcome = loop {
                    tokio::select! {
                        outcome = &mut agent => break outcome,
                        started = start.settled() => {
                            if let Err(reason) = started {
                                return fail_setup(&emit, reason).await;
                            }
                        }
                        input = inputs.recv() => {
                            let forwarded = match input {
                                Some(TaskInput::User(input)) => to_agent_input(input),
                                Some(TaskInput::Drain(reason)) => AgentInput::Drain { reason },
                                Some(TaskInput::Stop) | None => AgentInput::Stop,
                            };
                            let _ = agent_tx.send(forwarded).await;
                        }
                    }
                };
                match outcome {
                    AgentOutcome::Stopped | AgentOutcome::Drained => return TaskEnd::Stopped,
                    AgentOutcome::Error(message) => return TaskEnd::Failed(message),
                    AgentOutcome::Finished | AgentOutcome::AwaitingInput => {
                        // Idle until the user says something new.
                        loop {
                            let input = tokio::select! {
                                input = inputs.recv() => input,
                                started = start.settled() => match started {
                                    Ok(()) => continue,
                                    Err(reason) => return fail_setup(&emit, reason).await,
                                },
                            };
                            match input {
                                Some(TaskInput::User(
                                    input @ ConversationInput::Message { .. },
                                )) => {
                                    pending = Some(to_agent_input(input));
                                    break;
                                }
                                Some(TaskInput::User(_)) => continue,
                                Some(TaskInput::Drain(reason)) => {
                                    emit(state_event("stopped", &reason)).await;
                                    return TaskEnd::Stopped;
                                }
                                Some(TaskInput::Stop) | None => {
                                    emit(state_event("stopped", "")).await;
                                    return TaskEnd::Stopped;
                                }
                            }
                        }
                    }
                }
            }
        }
        .await;
        (end, Some(start.tools))
    }
}

/// Ends a run whose workspace could not be set up, telling the user why.
async fn fail_setup<E, F>(emit: &E, reason: String) -> TaskEnd
where
    E: Fn(NewEvent) -> F,
    F: std::future::Future<Output = ()>,
{
    let message = format!("Setting up the workspace failed: {reason}");
    emit(error_event(&message, "STATUS$ERROR")).await;
    emit(state_event("error", &message)).await;
    TaskEnd::Failed(message)
}

/// The sandbox of a run, and whether its start has been seen through: a run whose agent
/// asks the LLM while the sandbox starts learns here when it runs (the conversation is
/// `RUNNING` from then) or why it could not start (the run fails as if it had failed
/// before the agent began).
struct SandboxStart {
    tools: SandboxTools,
    on_running: Option<Box<dyn FnOnce() + Send>>,
    settled: bool,
}

impl SandboxStart {
    fn ready(tools: SandboxTools) -> Self {
        Self {
            tools,
            on_running: None,
            settled: true,
        }
    }

    fn pending(tools: SandboxTools, on_running: Box<dyn FnOnce() + Send>) -> Self {
        Self {
            tools,
            on_running: Some(on_running),
            settled: false,
        }
    }

    /// Resolves once, when the start ends (pending forever after that).
    async fn settled(&mut self) -> Result<(), String> {
        if self.settled {
            return std::future::pending().await;
        }
        let started = self.tools.started().await;
        self.settled = true;
        let client = started?;
        if client.workspace() != self.tools.workspace() {
            tracing::warn!(
                expected = self.tools.workspace(),
                reported = client.workspace(),
                "the sandbox reports another workspace path than the one the agent was told"
            );
        }
        if let Some(on_running) = self.on_running.take() {
            on_running();
        }
        Ok(())
    }
}

fn to_agent_input(input: ConversationInput) -> AgentInput {
    match input {
        ConversationInput::Message {
            content,
            image_urls,
        } => AgentInput::UserMessage {
            content,
            image_urls,
        },
        ConversationInput::Confirm => AgentInput::Confirm,
        ConversationInput::Reject => AgentInput::Reject,
    }
}

async fn read_history(
    event_store: &dyn EventStore,
    request: &StartRequest,
) -> Result<Vec<openhands_core::event::Event>, String> {
    let query = EventQuery {
        start_id: 0,
        end_id: None,
        reverse: false,
        limit: usize::MAX,
    };
    event_store
        .read(&request.scope, &request.metadata.conversation_id, query)
        .await
        .map(|page| page.events)
        .map_err(|e| format!("reading the conversation history failed: {e}"))
}

/// The events a watcher should also receive when a task ends without the agent saying so.
pub fn ended_notice(end: &TaskEnd) -> Option<Value> {
    match end {
        TaskEnd::Stopped => None,
        TaskEnd::Failed(message) => Some(json!({
            "status_update": true, "type": "error", "id": "STATUS$ERROR", "message": message
        })),
    }
}
