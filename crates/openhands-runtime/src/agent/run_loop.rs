//! The loop itself: LLM call → actions → observations, with confirmation, limits and stop.
//!
//! Iterations are counted as LLM calls since the last user message; a new message resets the
//! count. Budget is the conversation's accumulated cost (continued from the `llm_metrics` of
//! stored events); a new message after the budget was hit extends the limit by
//! `max_budget_per_task`, as OpenHands does. After each step the [`StuckDetector`] looks at
//! the steps since the last user message; when the agent repeats itself the loop stops with
//! an error that names the pattern, as it does at the iteration limit.
//!
//! A drain ([`AgentInput::Drain`]) is honoured at step boundaries: before an LLM call, between
//! the tool calls of one response, and while waiting. It abandons an LLM call in flight (its
//! reply was not stored, so the next server asks again) but lets a command finish; a `Stop`
//! after it interrupts the command and records that as the command's result.

use super::actions::{self, Action};
use super::events::{self, BAD_ACTION, CallContext};
use super::history::{self, Transcript};
use super::inputs::{Cut, Exit, Inputs, Step};
use super::prompt::system_prompt;
use super::resume::{self, ACTION_INTERRUPTED};
use super::stuck::StuckDetector;
use super::{AgentConfig, AgentInput, AgentIo, AgentOutcome};
use crate::llm::{ChatResponse, LlmClient, LlmError, ToolCall, cost_usd};
use crate::tools::tool_specs_json;
use openhands_core::event::{Event, NewEvent};
use openhands_core::tool_protocol::{CommandOutput, Done, EditorOutcome, Request, ToolCallError};
use std::sync::Arc;
use tokio::sync::mpsc::Receiver;

const RUNNING: &str = "running";
const AWAITING_INPUT: &str = "awaiting_user_input";
const AWAITING_CONFIRMATION: &str = "awaiting_user_confirmation";
const FINISHED: &str = "finished";
const STOPPED: &str = "stopped";
const ERROR: &str = "error";
/// `error_id` of the error reported when the stuck detector stops the agent.
const STUCK_IN_LOOP: &str = "AGENT_ERROR$STUCK_IN_LOOP";
/// The tool server's shell session the agent's commands run in.
const SHELL_SESSION: &str = "agent";

/// What the user decided about an action awaiting confirmation.
enum Decision {
    Confirmed,
    Rejected,
    /// Rejected by sending a new message (already recorded).
    NewMessage,
}

pub(crate) struct Agent {
    config: AgentConfig,
    io: Arc<dyn AgentIo>,
    inputs: Inputs,
    /// The LLM messages, updated as events are stored (the events themselves are not kept).
    transcript: Transcript,
    /// Fed the same events, to notice when the agent repeats itself.
    stuck: StuckDetector,
    /// Call the LLM before waiting for anything: the history ended with a user message nobody
    /// answered yet, or the run resumes work cut short elsewhere.
    resume_with_call: bool,
    /// The last action, when its result was lost (recorded before anything else happens).
    lost_action: Option<Event>,
    /// The last action, when it still awaits the user's confirmation (asked about again).
    pending_confirmation: Option<Event>,
    /// The next confirmation is for an action already stored as awaiting it.
    asking_again: bool,
    /// Built on the first call and reused (it holds the connection pool).
    llm: Option<LlmClient>,
    state: Option<&'static str>,
    last_error: String,
    iterations: u32,
    cost: f64,
    prompt_tokens: u64,
    completion_tokens: u64,
    budget_limit: Option<f64>,
}

impl Agent {
    pub fn new(
        config: AgentConfig,
        history: Vec<Event>,
        io: Arc<dyn AgentIo>,
        rx: Receiver<AgentInput>,
    ) -> Self {
        let (cost, prompt_tokens, completion_tokens) = history::last_metrics(&history);
        let budget_limit = config
            .max_budget_per_task
            .filter(|b| *b > 0.0)
            .map(|b| if cost >= b { cost + b } else { b });
        Self {
            transcript: Transcript::new(&system_prompt(&config), &history),
            stuck: StuckDetector::new(&history),
            resume_with_call: history::awaits_reply(&history) || config.resume_work,
            lost_action: resume::lost_action(&history).cloned(),
            pending_confirmation: resume::pending_confirmation(&history).cloned(),
            asking_again: false,
            config,
            io,
            inputs: Inputs::new(rx),
            llm: None,
            state: None,
            last_error: String::new(),
            iterations: 0,
            cost,
            prompt_tokens,
            completion_tokens,
            budget_limit,
        }
    }

    pub async fn run(mut self) -> AgentOutcome {
        let result = self.main().await;
        match result {
            Ok(()) | Err(Exit::Closed) => match self.state {
                Some(FINISHED) => AgentOutcome::Finished,
                Some(ERROR) => AgentOutcome::Error(self.last_error.clone()),
                _ => AgentOutcome::AwaitingInput,
            },
            Err(Exit::Stopped) => {
                if let Err(Exit::Fatal(e)) = self.set_state(STOPPED, "").await {
                    return AgentOutcome::Error(e);
                }
                AgentOutcome::Stopped
            }
            Err(Exit::Drained | Exit::CutShort) => match self.leave().await {
                Ok(()) => AgentOutcome::Drained,
                Err(Exit::Fatal(e)) => AgentOutcome::Error(e),
                Err(_) => AgentOutcome::Drained,
            },
            Err(Exit::Fatal(e)) => {
                tracing::error!(error = %e, "agent loop ended: an event could not be stored");
                AgentOutcome::Error(e)
            }
        }
    }

    /// What a drained agent stores before it goes: the messages that arrived meanwhile (so
    /// the next server answers them), then `stopped` with the drain's reason.
    async fn leave(&mut self) -> Step<()> {
        while let Some(input) = self.inputs.queued.pop_front() {
            match input {
                AgentInput::UserMessage {
                    content,
                    image_urls,
                } => self.user_message(&content, image_urls).await?,
                other => tracing::info!(input = ?other, "input dropped by a draining agent"),
            }
        }
        let reason = self.inputs.draining.take().unwrap_or_default();
        self.state = Some(STOPPED);
        self.emit(events::state_changed(STOPPED, &reason))
            .await
            .map(drop)
    }

    /// Records that the last action's result was lost, as its result (see [`resume`]).
    async fn record_lost_action(&mut self) -> Step<()> {
        let Some(action) = self.lost_action.take() else {
            return Ok(());
        };
        let ctx = self.context_of(&action);
        tracing::info!(
            action_id = action.id,
            "recording that an action's result was lost"
        );
        self.emit(events::error_observation(
            resume::LOST_RESULT,
            ACTION_INTERRUPTED,
            Some(action.id),
            Some(&ctx),
        ))
        .await
        .map(drop)
    }

    /// Waits again for the decision about an action that was awaiting confirmation when the
    /// agent last ended, and carries it out; returns whether to call the LLM next.
    async fn ask_again(&mut self) -> Step<bool> {
        let Some(action) = self.pending_confirmation.take() else {
            return Ok(self.resume_with_call);
        };
        let Some(call) = resume::tool_call_of(&action) else {
            tracing::warn!(
                action_id = action.id,
                "an action awaiting confirmation has no tool call to rebuild"
            );
            return Ok(self.resume_with_call);
        };
        let thought = match &action.body {
            openhands_core::event::EventBody::Action { args, .. } => args
                .get("thought")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            openhands_core::event::EventBody::Observation { .. } => String::new(),
        };
        let ctx = self.context_of(&action);
        self.asking_again = true;
        self.handle_call(&call, &thought, &ctx).await
    }

    async fn main(&mut self) -> Step<()> {
        self.record_lost_action().await?;
        let mut call_llm = self.ask_again().await?;
        loop {
            if call_llm {
                self.inputs.check()?;
                call_llm = self.step().await?;
                continue;
            }
            if self.inputs.draining.is_some() {
                return Err(Exit::Drained);
            }
            match self.inputs.next().await {
                None => return Ok(()),
                Some(AgentInput::Stop) => return Err(Exit::Stopped),
                Some(AgentInput::Drain { reason }) => {
                    self.inputs.draining = Some(reason);
                    return Err(Exit::Drained);
                }
                Some(AgentInput::UserMessage {
                    content,
                    image_urls,
                }) => {
                    self.user_message(&content, image_urls).await?;
                    call_llm = true;
                }
                Some(AgentInput::Confirm | AgentInput::Reject) => {
                    tracing::debug!("confirmation received with no action awaiting it; ignored");
                }
            }
        }
    }

    async fn emit(&mut self, event: NewEvent) -> Step<Event> {
        let stored = self
            .io
            .emit(event)
            .await
            .map_err(|e| Exit::Fatal(format!("storing an agent event failed: {e}")))?;
        self.transcript.add(&stored);
        self.stuck.add(&stored);
        Ok(stored)
    }

    async fn set_state(&mut self, state: &'static str, reason: &str) -> Step<()> {
        if self.state == Some(state) && reason.is_empty() {
            return Ok(());
        }
        self.state = Some(state);
        self.emit(events::state_changed(state, reason))
            .await
            .map(drop)
    }

    async fn user_message(&mut self, content: &str, image_urls: Vec<String>) -> Step<()> {
        self.emit(NewEvent::user_message(content, image_urls))
            .await?;
        self.iterations = 0;
        if let (Some(limit), Some(step)) = (self.budget_limit, self.config.max_budget_per_task)
            && self.cost >= limit
        {
            self.budget_limit = Some(self.cost + step);
        }
        Ok(())
    }

    /// Reports an error to the user and waits for them.
    async fn fail(&mut self, content: &str, error_id: &str) -> Step<bool> {
        self.emit(events::error_observation(content, error_id, None, None))
            .await?;
        self.last_error = content.to_owned();
        self.set_state(ERROR, content).await?;
        Ok(false)
    }

    fn metrics(&self) -> serde_json::Value {
        events::llm_metrics(
            &self.config.llm.model,
            self.cost,
            self.prompt_tokens,
            self.completion_tokens,
        )
    }

    /// One LLM call and its actions; returns whether to call the LLM again right away.
    async fn step(&mut self) -> Step<bool> {
        let max = self.config.effective_max_iterations();
        if self.iterations >= max {
            let text = format!(
                "Agent reached maximum iteration limit: {max} LLM calls since the last user message. Send a message to continue."
            );
            return self.fail(&text, "AGENT_ERROR$MAX_ITERATIONS").await;
        }
        if let Some(limit) = self.budget_limit.filter(|l| self.cost >= *l) {
            let text = format!(
                "Agent reached maximum budget for conversation: ${:.4} spent, limit ${limit:.4}. Send a message to continue.",
                self.cost
            );
            return self.fail(&text, "AGENT_ERROR$BUDGET_EXCEEDED").await;
        }
        self.set_state(RUNNING, "").await?;
        let response = match self.call_llm().await? {
            Ok(response) => response,
            Err(e) => {
                let id = match e {
                    LlmError::Authentication { .. } => "STATUS$ERROR_LLM_AUTHENTICATION",
                    LlmError::RetriesExhausted { .. } => "STATUS$ERROR_LLM_SERVICE_UNAVAILABLE",
                    _ => "AGENT_ERROR$LLM_ERROR",
                };
                return self.fail(&format!("LLM call failed: {e}"), id).await;
            }
        };
        self.iterations += 1;
        self.account(&response).await;
        let message = response.message;
        let text = message.content.as_deref().unwrap_or_default();
        if message.tool_calls.is_empty() && text.trim().is_empty() {
            // Nothing to show or to do: not an answer to wait on. Recorded (so the stuck
            // detector counts it) and the LLM asked again.
            self.emit(events::agent_message(text, false, self.metrics()))
                .await?;
            return self.unless_stuck().await;
        }
        if message.tool_calls.is_empty() {
            let text = message.content.unwrap_or_default();
            self.emit(events::agent_message(&text, true, self.metrics()))
                .await?;
            self.set_state(AWAITING_INPUT, "").await?;
            return Ok(false);
        }
        let response_id = response
            .response_id
            .unwrap_or_else(|| format!("local-{}", message.tool_calls[0].id));
        for (index, call) in message.tool_calls.iter().enumerate() {
            let thought = if index == 0 {
                message.content.clone().unwrap_or_default()
            } else {
                String::new()
            };
            if index > 0 {
                // The calls not made yet are left for the next server to ask for again.
                self.inputs.check()?;
            }
            let ctx = CallContext::new(&response_id, &message, call, self.metrics());
            if !self.handle_call(call, &thought, &ctx).await? {
                return Ok(false);
            }
        }
        self.unless_stuck().await
    }

    /// Stops the agent (an error naming the pattern, then waiting for the user) when the
    /// stuck detector sees it repeat itself; returns whether to call the LLM again.
    async fn unless_stuck(&mut self) -> Step<bool> {
        let Some(pattern) = self.stuck.check() else {
            return Ok(true);
        };
        tracing::warn!(%pattern, "agent stopped: stuck in a loop");
        let text = format!("Agent got stuck in a loop: {pattern}. Send a message to continue.");
        self.fail(&text, STUCK_IN_LOOP).await
    }

    /// The LLM call, interruptible by `Stop`. The outer error ends the loop.
    async fn call_llm(&mut self) -> Step<Result<ChatResponse, LlmError>> {
        if self.llm.is_none() {
            match LlmClient::new(self.config.llm.clone()) {
                Ok(client) => self.llm = Some(client),
                Err(e) => return Ok(Err(e)),
            }
        }
        let Some(client) = self.llm.as_ref() else {
            return Ok(Err(LlmError::InvalidConfig("no LLM client".into())));
        };
        let messages = self.transcript.messages();
        let call = client.complete_log(&messages, tool_specs_json());
        match self.inputs.unless_stopped(call, true).await {
            Ok(result) => Ok(result),
            Err(Cut::Stopped) => Err(Exit::Stopped),
            Err(Cut::Drained) => Err(Exit::Drained),
        }
    }

    async fn account(&mut self, response: &ChatResponse) {
        let usage = response.usage;
        let model = &self.config.llm.model;
        let cost = cost_usd(model, &usage);
        self.cost += cost;
        self.prompt_tokens += usage.prompt_tokens;
        self.completion_tokens += usage.completion_tokens;
        self.io
            .record_usage(model, usage.prompt_tokens, usage.completion_tokens, cost)
            .await;
    }

    /// Handles one tool call; returns whether to go on with the response's other calls.
    async fn handle_call(
        &mut self,
        call: &ToolCall,
        thought: &str,
        ctx: &CallContext,
    ) -> Step<bool> {
        let action = match actions::parse(call) {
            Ok(action) => action,
            Err(reason) => {
                let text = format!("Invalid tool call `{}`: {reason}", call.name);
                self.emit(events::error_observation(
                    &text,
                    BAD_ACTION,
                    None,
                    Some(ctx),
                ))
                .await?;
                return Ok(true);
            }
        };
        match action {
            Action::Think { thought } => {
                let stored = self.emit(events::think_action(&thought, ctx)).await?;
                self.emit(events::think_observation(stored.id, ctx)).await?;
                Ok(true)
            }
            Action::Finish { message } => {
                self.emit(events::finish_action(&message, thought, ctx))
                    .await?;
                self.set_state(FINISHED, "").await?;
                Ok(false)
            }
            Action::Run { command, timeout } => {
                let build = |state: &str| events::run_action(&command, thought, state, ctx);
                let Some(cause) = self.confirm(build).await? else {
                    return Ok(false);
                };
                let timeout = timeout.unwrap_or(self.config.command_timeout);
                let timeout = self
                    .config
                    .max_command_timeout
                    .map_or(timeout, |cap| timeout.min(cap));
                let result = match self.run_command(&command, timeout).await {
                    Err(Exit::CutShort) => {
                        self.emit(events::error_observation(
                            resume::CUT_SHORT_RESULT,
                            ACTION_INTERRUPTED,
                            Some(cause),
                            Some(ctx),
                        ))
                        .await?;
                        return Err(Exit::Drained);
                    }
                    other => other?,
                };
                match result {
                    Ok(out) => {
                        self.emit(events::run_observation(cause, &command, &out, ctx))
                            .await?
                    }
                    Err(e) => self.tool_error(cause, &e, ctx).await?,
                };
                Ok(true)
            }
            Action::Edit(cmd) => {
                let build = |state: &str| events::editor_action(&cmd, thought, state, ctx);
                let Some(cause) = self.confirm(build).await? else {
                    return Ok(false);
                };
                let request = Request::Edit {
                    command: cmd.clone(),
                };
                let result = self.config.tools.call::<EditorOutcome>(request).await;
                match result {
                    Ok(out) => {
                        self.emit(events::editor_observation(cause, &cmd, &out, ctx))
                            .await?
                    }
                    Err(e) => self.tool_error(cause, &e, ctx).await?,
                };
                Ok(true)
            }
        }
    }

    async fn tool_error(
        &mut self,
        cause: u64,
        error: &ToolCallError,
        ctx: &CallContext,
    ) -> Step<Event> {
        self.emit(events::error_observation(
            &error.to_string(),
            "",
            Some(cause),
            Some(ctx),
        ))
        .await
    }

    /// Emits the action, asking for confirmation first in confirmation mode. Returns the id
    /// of the action to execute, or `None` when the user rejected it.
    async fn confirm(&mut self, build: impl Fn(&str) -> NewEvent) -> Step<Option<u64>> {
        if std::mem::take(&mut self.asking_again) {
            // Stored as awaiting confirmation by an earlier run: the user decides, whatever
            // the confirmation setting says now.
            self.state = Some(AWAITING_CONFIRMATION);
        } else if !self.config.confirmation_mode {
            return Ok(Some(self.emit(build("confirmed")).await?.id));
        } else {
            self.emit(build("awaiting_confirmation")).await?;
            self.set_state(AWAITING_CONFIRMATION, "").await?;
        }
        if self.inputs.draining.is_some() {
            return Err(Exit::Drained);
        }
        let decision = match self.inputs.next().await {
            None => return Err(Exit::Closed),
            Some(AgentInput::Stop) => return Err(Exit::Stopped),
            Some(AgentInput::Drain { reason }) => {
                // The action stays awaiting confirmation, for the next server to ask about.
                self.inputs.draining = Some(reason);
                return Err(Exit::Drained);
            }
            Some(AgentInput::Confirm) => Decision::Confirmed,
            Some(AgentInput::Reject) => Decision::Rejected,
            Some(message @ AgentInput::UserMessage { .. }) => {
                // Put the message back: it is recorded after the rejection.
                self.inputs.queued.push_front(message);
                Decision::NewMessage
            }
        };
        match decision {
            Decision::Confirmed => {
                let stored = self.emit(build("confirmed")).await?;
                self.set_state(RUNNING, "").await?;
                Ok(Some(stored.id))
            }
            Decision::Rejected | Decision::NewMessage => {
                let stored = self.emit(build("rejected")).await?;
                let ctx_event = events::user_rejected(stored.id, &self.context_of(&stored));
                self.emit(ctx_event).await?;
                self.set_state(AWAITING_INPUT, "").await?;
                Ok(None)
            }
        }
    }

    /// The call context recorded on a stored action.
    fn context_of(&self, event: &Event) -> CallContext {
        CallContext {
            tool_call_metadata: event
                .extra
                .get("tool_call_metadata")
                .cloned()
                .unwrap_or_default(),
            llm_metrics: self.metrics(),
        }
    }

    /// Runs a command in the conversation's shell (started by the tool server on first
    /// use; it keeps its state across turns); a `Stop` interrupts it.
    async fn run_command(
        &mut self,
        command: &str,
        timeout: std::time::Duration,
    ) -> Step<Result<CommandOutput, ToolCallError>> {
        let tools = self.config.tools.clone();
        let request = Request::BashRun {
            session: SHELL_SESSION.into(),
            command: command.to_owned(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        match self.inputs.unless_stopped(tools.call(request), false).await {
            Ok(result) => Ok(result),
            Err(_) => {
                let interrupt = Request::BashInterrupt {
                    session: SHELL_SESSION.into(),
                };
                if let Err(e) = tools.call::<Done>(interrupt).await {
                    tracing::debug!(error = %e, "interrupting the stopped command failed");
                }
                Err(match self.inputs.draining {
                    Some(_) => Exit::CutShort,
                    None => Exit::Stopped,
                })
            }
        }
    }
}
