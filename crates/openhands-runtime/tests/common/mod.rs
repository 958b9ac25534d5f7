//! Helpers of the agent-loop tests: a run over a scripted LLM, an in-process tool server on a
//! temporary workspace, and readers of the events it stores.

#![allow(dead_code)]

use openhands_core::event::{Event, EventBody, NewEvent};
use openhands_core::tool_protocol::{Done, Request, ToolClient};
use openhands_runtime::agent::{AgentConfig, AgentInput, AgentOutcome, run_agent};
use openhands_runtime::testing::{MemoryIo, ScriptedLlm, ScriptedReply, event_kind};
use openhands_tool_server::ServeOptions;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub const WAIT: Duration = Duration::from_secs(20);

pub struct Run {
    pub io: Arc<MemoryIo>,
    pub tx: mpsc::Sender<AgentInput>,
    pub task: JoinHandle<AgentOutcome>,
}

impl Run {
    pub async fn wait_for(&self, what: &str, condition: impl Fn(&[Event]) -> bool) {
        let ok = self.io.wait_until(WAIT, condition).await;
        assert!(
            ok,
            "timed out waiting for {what}; events: {:#?}",
            kinds(&self.io.events())
        );
    }

    pub async fn wait_for_state(&self, state: &str, times: usize) {
        let kind = format!("state:{state}");
        self.wait_for(&kind, |events| {
            events.iter().filter(|e| event_kind(e) == kind).count() >= times
        })
        .await;
    }

    pub async fn close(self) -> AgentOutcome {
        drop(self.tx);
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("agent ends")
            .expect("agent task")
    }
}

pub fn kinds(events: &[Event]) -> Vec<String> {
    events.iter().map(event_kind).collect()
}

pub fn args(event: &Event) -> &serde_json::Map<String, Value> {
    match &event.body {
        EventBody::Action { args, .. } => args,
        EventBody::Observation { .. } => panic!("not an action: {event:?}"),
    }
}

pub fn extras(event: &Event) -> (&str, &serde_json::Map<String, Value>) {
    match &event.body {
        EventBody::Observation {
            content, extras, ..
        } => (content.as_str(), extras),
        EventBody::Action { .. } => panic!("not an observation: {event:?}"),
    }
}

pub fn first_message(text: &str) -> Vec<Event> {
    vec![Event::from_new(
        NewEvent::user_message(text, vec![]),
        0,
        "2025-01-01T00:00:00.000000".into(),
    )]
}

pub fn start(config: AgentConfig, history: Vec<Event>) -> Run {
    let io = MemoryIo::starting_at(history.len() as u64);
    let (tx, rx) = mpsc::channel(8);
    let task = tokio::spawn(run_agent(config, history, io.clone(), rx));
    Run { io, tx, task }
}

/// A config whose tools are a tool server running in this process over pipes, configured
/// with the environment a sandbox would give it.
pub async fn config(server: &ScriptedLlm, workspace: &std::path::Path) -> AgentConfig {
    let (client_read, server_write) = tokio::io::duplex(1 << 20);
    let (server_read, client_write) = tokio::io::duplex(1 << 20);
    let options = ServeOptions {
        workspace: workspace.to_owned(),
        shown_workspace: workspace.display().to_string(),
        max_workspace_bytes: 0,
        shell_cpu_seconds: 0,
    };
    tokio::spawn(openhands_tool_server::serve(
        server_read,
        server_write,
        options,
    ));
    let tools = ToolClient::connect(client_read, client_write)
        .await
        .expect("the in-process tool server says hello");
    tools
        .call::<Done>(Request::Configure {
            env: vec![("GREETING".into(), "bonjour".into())],
            git_user_name: None,
            git_user_email: None,
        })
        .await
        .expect("configured");
    AgentConfig::new(server.llm_config("openai/gpt-4o"), Arc::new(tools))
}

pub fn editor(arguments: Value) -> ScriptedReply {
    ScriptedReply::tool_call("str_replace_based_edit_tool", arguments)
}

pub fn bash(command: &str) -> ScriptedReply {
    ScriptedReply::tool_call("execute_bash", json!({ "command": command }))
}

/// Tool messages of one recorded request, as (tool_call_id, content).
pub fn tool_results(request: &Value) -> Vec<(String, String)> {
    request["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            (
                m["tool_call_id"].as_str().unwrap_or_default().to_owned(),
                m["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
