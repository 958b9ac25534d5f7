//! The CodeAct-style agent loop.
//!
//! [`run_agent`] rebuilds the LLM conversation from the stored events, then alternates LLM
//! calls and tool executions, emitting every step as an OpenHands V0 event through
//! [`AgentIo`]. It waits on its input channel whenever the user has to speak (a plain-text
//! answer, `finish`, an error, a limit or a loop caught by the stuck detector) or confirm an
//! action (confirmation mode). An empty LLM reply (no text, no tool call) is recorded and the
//! LLM asked again; the stuck detector ends a run of them.
//!
//! Lifetime: the loop runs until it receives [`AgentInput::Stop`] or its input channel is
//! closed while it waits. Finishing a task does not end it: a new user message continues the
//! conversation. The returned [`AgentOutcome`] tells in which state the channel was closed.
//!
//! Moving between servers: [`AgentInput::Drain`] (a server shutting down) ends the loop at
//! the next step boundary, keeping everything already received; a run started with
//! [`AgentConfig::resume_work`] goes on with the task without waiting for the user, after
//! recording the fate of an action whose result was lost (see [`resume`]).

mod actions;
mod events;
mod history;
mod inputs;
mod prompt;
pub mod resume;
mod run_loop;
mod stuck;

use crate::llm::LlmConfig;
use crate::tools::SandboxTools;
use openhands_core::StoreError;
use openhands_core::event::{Event, NewEvent};
use openhands_core::tool_protocol::ToolClient;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;

/// Iteration limit used when the settings give none (or 0).
pub const DEFAULT_MAX_ITERATIONS: u32 = 100;
/// Command timeout used by [`AgentConfig::new`].
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Everything one agent run needs.
#[derive(Clone)]
pub struct AgentConfig {
    pub llm: LlmConfig,
    /// LLM calls allowed since the last user message (0 means [`DEFAULT_MAX_ITERATIONS`]).
    pub max_iterations: u32,
    /// USD; when the conversation's accumulated cost reaches it the loop stops with an error.
    /// A new user message then extends the limit by the same amount.
    pub max_budget_per_task: Option<f64>,
    /// Ask the user before executing each tool action (not `think`/`finish`).
    pub confirmation_mode: bool,
    /// The conversation's tool server (shells and editor), configured with the
    /// conversation's environment by its sandbox; possibly still starting.
    pub tools: SandboxTools,
    /// `owner/repo` the conversation works on, if any.
    pub repository: Option<String>,
    /// Extra instructions for this conversation, added to the system prompt.
    pub conversation_instructions: Option<String>,
    /// Default timeout of one shell command (the LLM may ask for another per call).
    pub command_timeout: Duration,
    /// Longest any command may run, whatever the LLM asks for (the deployment's
    /// `sandbox.limits.command_timeout_seconds`); `None`: no cap.
    pub max_command_timeout: Option<Duration>,
    /// The conversation was taken over from a server that was running the agent (it died
    /// or shut down): go on with the task at once instead of waiting for the user.
    pub resume_work: bool,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("llm", &self.llm)
            .field("max_iterations", &self.max_iterations)
            .field("max_budget_per_task", &self.max_budget_per_task)
            .field("confirmation_mode", &self.confirmation_mode)
            .field("workspace", &self.tools.workspace())
            .field("repository", &self.repository)
            .field("conversation_instructions", &self.conversation_instructions)
            .field("command_timeout", &self.command_timeout)
            .field("max_command_timeout", &self.max_command_timeout)
            .field("resume_work", &self.resume_work)
            .finish()
    }
}

impl AgentConfig {
    /// A config with the defaults: 100 iterations, no budget, no confirmation, 120 s commands.
    pub fn new(llm: LlmConfig, tools: Arc<ToolClient>) -> Self {
        Self {
            llm,
            max_iterations: DEFAULT_MAX_ITERATIONS,
            max_budget_per_task: None,
            confirmation_mode: false,
            tools: tools.into(),
            repository: None,
            conversation_instructions: None,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            max_command_timeout: None,
            resume_work: false,
        }
    }

    /// `settings.max_iterations` as an iteration limit: `None`, 0 or negative give the default.
    pub fn max_iterations_from_settings(value: Option<i64>) -> u32 {
        value
            .and_then(|v| u32::try_from(v).ok())
            .filter(|&v| v > 0)
            .unwrap_or(DEFAULT_MAX_ITERATIONS)
    }

    pub(crate) fn effective_max_iterations(&self) -> u32 {
        if self.max_iterations == 0 {
            DEFAULT_MAX_ITERATIONS
        } else {
            self.max_iterations
        }
    }
}

/// What the conversation sends to a running agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentInput {
    /// A new user message; the agent records it as a user `message` event and works on it.
    UserMessage {
        content: String,
        image_urls: Vec<String>,
    },
    /// Execute the action awaiting confirmation.
    Confirm,
    /// Do not execute it.
    Reject,
    /// End the loop (interrupting a running command).
    Stop,
    /// The server is shutting down: end the loop at the next step boundary. An LLM call in
    /// flight is abandoned (nothing of it was stored); a command in flight may finish, until
    /// a `Stop` interrupts it (its result then says so). Messages that arrived meanwhile are
    /// stored, then `stopped` with `reason`.
    Drain { reason: String },
}

/// Where the agent's events and usage go.
#[async_trait::async_trait]
pub trait AgentIo: Send + Sync {
    /// Stores the event (assigning id + timestamp) and publishes it; returns the stored event.
    async fn emit(&self, event: NewEvent) -> Result<Event, StoreError>;
    /// Adds token/cost usage of one LLM call to the conversation's totals.
    async fn record_usage(
        &self,
        model: &str,
        prompt_tokens: u64,
        completion_tokens: u64,
        cost_usd: f64,
    );
}

/// How [`run_agent`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentOutcome {
    /// The input channel closed after the agent called `finish`.
    Finished,
    /// A [`AgentInput::Stop`] arrived.
    Stopped,
    /// The input channel closed while the agent was in the error state (LLM failure, limit),
    /// or an event could not be stored (which ends the loop at once).
    Error(String),
    /// The input channel closed while the agent waited for a message or a confirmation.
    AwaitingInput,
    /// A [`AgentInput::Drain`] ended the loop; the work can go on elsewhere.
    Drained,
}

/// Runs the agent over `history` until stopped or until `inputs` closes while it waits.
pub async fn run_agent(
    config: AgentConfig,
    history: Vec<Event>,
    io: Arc<dyn AgentIo>,
    inputs: Receiver<AgentInput>,
) -> AgentOutcome {
    run_loop::Agent::new(config, history, io, inputs)
        .run()
        .await
}

/// A tool client whose server only says hello (with `workspace`), for unit tests that
/// need a config but run no tool.
#[cfg(test)]
pub(crate) async fn hello_only_tools(workspace: &str) -> Arc<ToolClient> {
    use openhands_core::tool_protocol::{Hello, PROTOCOL_VERSION, framing};
    let (client_read, mut server_write) = tokio::io::duplex(4096);
    let (_server_read, client_write) = tokio::io::duplex(4096);
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        server: "hello-only".into(),
        workspace: workspace.into(),
    };
    framing::write_frame(&mut server_write, &hello)
        .await
        .expect("hello written");
    tokio::spawn(async move {
        // Keeps the connection open for the test's lifetime.
        let _keep = (server_write, _server_read);
        std::future::pending::<()>().await
    });
    Arc::new(
        ToolClient::connect(client_read, client_write)
            .await
            .expect("connects"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn debug_hides_the_api_key_and_shows_the_workspace() {
        let mut llm = LlmConfig::new("gpt-4o");
        llm.api_key = Some(openhands_core::secret::Secret::new("sk-hidden"));
        let config = AgentConfig::new(llm, hello_only_tools("/ws").await);
        let shown = format!("{config:?}");
        assert!(shown.contains("\"/ws\""), "{shown}");
        assert!(!shown.contains("sk-hidden"), "{shown}");
    }

    #[test]
    fn settings_iterations_fall_back_to_the_default() {
        assert_eq!(AgentConfig::max_iterations_from_settings(None), 100);
        assert_eq!(AgentConfig::max_iterations_from_settings(Some(0)), 100);
        assert_eq!(AgentConfig::max_iterations_from_settings(Some(-3)), 100);
        assert_eq!(AgentConfig::max_iterations_from_settings(Some(7)), 7);
    }
}
