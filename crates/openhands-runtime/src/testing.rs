//! Test helpers, for this crate's tests and the server's: a scripted OpenAI-compatible server
//! and an in-memory [`AgentIo`].
//!
//! Enabled by the `testing` feature. [`ScriptedLlm`] speaks just enough HTTP/1.1 (keep-alive,
//! `Content-Length` bodies) for `reqwest`; it is not a general HTTP server.

use crate::agent::AgentIo;
use crate::llm::LlmConfig;
use openhands_core::StoreError;
use openhands_core::event::{Event, EventBody, NewEvent};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One scripted answer of [`ScriptedLlm`].
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptedReply {
    /// A single tool call. A string `arguments` is sent verbatim (so it can be malformed),
    /// anything else is serialized to a JSON string.
    ToolCall { name: String, arguments: Value },
    /// A plain-text answer.
    Text(String),
    /// An error status with a small JSON body.
    Status(u16),
    /// An error status with a `Retry-After: <secs>` header.
    StatusWithRetryAfter { status: u16, retry_after_secs: u64 },
    /// This body, verbatim, with status 200.
    Raw(Value),
    /// `reply`, after `delay_ms` (an LLM that takes its time).
    Delayed {
        delay_ms: u64,
        reply: Box<ScriptedReply>,
    },
}

impl ScriptedReply {
    /// A tool call with JSON arguments.
    pub fn tool_call(name: &str, arguments: Value) -> Self {
        Self::ToolCall {
            name: name.into(),
            arguments,
        }
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl RecordedRequest {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    replies: VecDeque<ScriptedReply>,
    requests: Vec<RecordedRequest>,
    served: u64,
    /// Answers each request once the queue is empty (else `finish`).
    policy: Option<Policy>,
}

/// Decides the reply from the request body (see [`ScriptedLlm::with_policy`]).
pub type Policy = Arc<dyn Fn(&Value) -> ScriptedReply + Send + Sync>;

/// The reply of a task of `steps` numbered steps, decided from the request alone (so one
/// server serves any number of conversations, on any server, resumed anywhere): the number
/// of tool results in the conversation so far is the step; step `k` runs
/// `echo k >> steps.log` then `sleep_seconds`, and once every step has a result the answer
/// is `finish`. A result that says the command was interrupted counts as a step done, as an
/// agent moving on would.
pub fn numbered_steps(steps: usize, sleep_seconds: f64) -> Policy {
    Arc::new(move |request: &Value| {
        let done = request["messages"]
            .as_array()
            .map_or(0, |m| m.iter().filter(|m| m["role"] == "tool").count());
        if done >= steps {
            return ScriptedReply::tool_call("finish", serde_json::json!({"message": "Counted."}));
        }
        ScriptedReply::tool_call(
            "execute_bash",
            serde_json::json!({"command": format!("echo {done} >> steps.log; sleep {sleep_seconds}")}),
        )
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fake chat-completions server answering from a queue; a `finish` call when it is empty.
pub struct ScriptedLlm {
    base_url: String,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ScriptedLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedLlm")
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl Drop for ScriptedLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedLlm {
    /// Binds `127.0.0.1:0` and serves `replies` in order.
    pub async fn start(replies: impl IntoIterator<Item = ScriptedReply>) -> std::io::Result<Self> {
        Self::serve(Shared {
            replies: replies.into_iter().collect(),
            ..Shared::default()
        })
        .await
    }

    /// Binds `127.0.0.1:0` and answers every request with what `policy` decides from it
    /// (e.g. [`numbered_steps`]).
    pub async fn with_policy(policy: Policy) -> std::io::Result<Self> {
        Self::serve(Shared {
            policy: Some(policy),
            ..Shared::default()
        })
        .await
    }

    async fn serve(shared: Shared) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}/v1", listener.local_addr()?);
        let shared = Arc::new(Mutex::new(shared));
        let state = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_connection(stream, Arc::clone(&state)));
            }
        });
        Ok(Self {
            base_url,
            shared,
            task,
        })
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// An [`LlmConfig`] pointing here, with a 1 ms backoff and a short timeout.
    pub fn llm_config(&self, model: &str) -> LlmConfig {
        LlmConfig {
            base_url: Some(self.base_url()),
            initial_backoff: Duration::from_millis(1),
            timeout: Duration::from_secs(10),
            ..LlmConfig::new(model)
        }
    }

    /// Appends a reply to the queue.
    pub fn push(&self, reply: ScriptedReply) {
        lock(&self.shared).replies.push_back(reply);
    }

    /// The bodies of all chat-completions requests received so far.
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.shared)
            .requests
            .iter()
            .map(|r| r.body.clone())
            .collect()
    }

    /// All requests received so far, with path and headers.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        lock(&self.shared).requests.clone()
    }
}

async fn serve_connection(mut stream: TcpStream, shared: Arc<Mutex<Shared>>) {
    let mut buffer = Vec::new();
    loop {
        let Some((head, body)) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let path = request_line
            .split(' ')
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let response = if path == "/v1/chat/completions" || path == "/chat/completions" {
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (mut reply, served) = {
                let mut state = lock(&shared);
                state.served += 1;
                let reply = state
                    .replies
                    .pop_front()
                    .or_else(|| state.policy.as_ref().map(|policy| policy(&body)));
                state.requests.push(RecordedRequest {
                    path,
                    headers,
                    body,
                });
                (reply, state.served)
            };
            if let Some(ScriptedReply::Delayed {
                delay_ms,
                reply: later,
            }) = reply
            {
                tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                reply = Some(*later);
            }
            render(reply, served)
        } else {
            http_response(404, &[], &json!({"error": "not found"}).to_string())
        };
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads one request (head and `Content-Length` body); `None` when the connection ends.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Some((head, body))
}

fn render(reply: Option<ScriptedReply>, n: u64) -> String {
    let usage = json!({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120});
    let completion = |message: Value| {
        json!({"id": format!("chatcmpl-{n}"), "object": "chat.completion", "model": "scripted",
               "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
               "usage": usage})
        .to_string()
    };
    let tool_call = |name: &str, arguments: &Value| {
        let arguments = match arguments {
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        };
        completion(json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": format!("call_{n}"), "type": "function",
             "function": {"name": name, "arguments": arguments}}]}))
    };
    match reply {
        None => http_response(200, &[], &tool_call("finish", &json!({"message": "Done."}))),
        Some(ScriptedReply::ToolCall { name, arguments }) => {
            http_response(200, &[], &tool_call(&name, &arguments))
        }
        Some(ScriptedReply::Text(text)) => http_response(
            200,
            &[],
            &completion(json!({"role": "assistant", "content": text})),
        ),
        Some(ScriptedReply::Status(status)) => http_response(status, &[], &error_body(status)),
        Some(ScriptedReply::StatusWithRetryAfter {
            status,
            retry_after_secs,
        }) => http_response(
            status,
            &[("Retry-After", retry_after_secs.to_string())],
            &error_body(status),
        ),
        Some(ScriptedReply::Raw(body)) => http_response(200, &[], &body.to_string()),
        Some(ScriptedReply::Delayed { reply, .. }) => render(Some(*reply), n),
    }
}

fn error_body(status: u16) -> String {
    json!({"error": {"message": format!("scripted error {status}"), "type": "scripted"}})
        .to_string()
}

fn http_response(status: u16, headers: &[(&str, String)], body: &str) -> String {
    let mut out = format!(
        "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out
}

/// Usage reported through [`AgentIo::record_usage`].
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

/// An [`AgentIo`] that numbers events from a start id and keeps them in memory.
#[derive(Debug, Default)]
pub struct MemoryIo {
    next_id: Mutex<u64>,
    events: Mutex<Vec<Event>>,
    usage: Mutex<Vec<UsageRecord>>,
}

impl MemoryIo {
    /// Ids start at 0.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Ids start at `next_id` (e.g. after stored history).
    pub fn starting_at(next_id: u64) -> Arc<Self> {
        Arc::new(Self {
            next_id: Mutex::new(next_id),
            ..Self::default()
        })
    }

    /// The events emitted so far.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }

    /// The usage recorded so far.
    pub fn usage(&self) -> Vec<UsageRecord> {
        lock(&self.usage).clone()
    }

    /// Polls until `condition` holds on the events (true) or `timeout` passes (false).
    pub async fn wait_until(
        &self,
        timeout: Duration,
        condition: impl Fn(&[Event]) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if condition(&self.events()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[async_trait::async_trait]
impl AgentIo for MemoryIo {
    async fn emit(&self, event: NewEvent) -> Result<Event, StoreError> {
        let id = {
            let mut next = lock(&self.next_id);
            let id = *next;
            *next += 1;
            id
        };
        let stored = Event::from_new(event, id, openhands_core::event::event_timestamp_now());
        lock(&self.events).push(stored.clone());
        Ok(stored)
    }

    async fn record_usage(
        &self,
        model: &str,
        prompt_tokens: u64,
        completion_tokens: u64,
        cost_usd: f64,
    ) {
        lock(&self.usage).push(UsageRecord {
            model: model.to_owned(),
            prompt_tokens,
            completion_tokens,
            cost_usd,
        });
    }
}

/// The kind of an event: `action:run`, `observation:agent_state_changed=running`, ...
pub fn event_kind(event: &Event) -> String {
    match &event.body {
        EventBody::Action { action, .. } => format!("action:{action}"),
        EventBody::Observation {
            observation,
            extras,
            ..
        } if observation == "agent_state_changed" => format!(
            "state:{}",
            extras
                .get("agent_state")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ),
        EventBody::Observation { observation, .. } => format!("observation:{observation}"),
    }
}

/// A sandbox whose tool server says hello and nothing else, for tests of conversation
/// managers whose agents call no tool (a scripted LLM that only finishes). No process, no
/// workspace: `prepare` hands back a client over an in-memory pipe.
#[derive(Debug, Clone, Copy, Default)]
pub struct HelloOnlySandbox;

#[async_trait::async_trait]
impl openhands_core::extension::Sandbox for HelloOnlySandbox {
    async fn prepare(
        &self,
        _spec: openhands_core::extension::SandboxSpec,
    ) -> Result<openhands_core::extension::PreparedSandbox, openhands_core::extension::SandboxError>
    {
        use openhands_core::extension::SandboxError;
        use openhands_core::tool_protocol::{Hello, PROTOCOL_VERSION, ToolClient, framing};
        let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            server: "hello-only".into(),
            workspace: "/workspace".into(),
        };
        framing::write_frame(&mut theirs, &hello)
            .await
            .map_err(|e| SandboxError::Io(e.to_string()))?;
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = theirs.read_to_end(&mut sink).await;
        });
        let (reader, writer) = tokio::io::split(ours);
        let tools = ToolClient::connect(reader, writer)
            .await
            .map_err(|e| SandboxError::Setup(e.to_string()))?;
        Ok(openhands_core::extension::PreparedSandbox {
            tools: Arc::new(tools),
        })
    }

    async fn tools(
        &self,
        _scope: &openhands_core::scope::UserScope,
        _conversation_id: &str,
    ) -> Result<
        Option<Arc<openhands_core::tool_protocol::ToolClient>>,
        openhands_core::extension::SandboxError,
    > {
        Ok(None)
    }

    async fn release(&self, _conversation_id: &str) {}

    async fn remove(
        &self,
        _scope: &openhands_core::scope::UserScope,
        _conversation_id: &str,
    ) -> Result<(), openhands_core::extension::SandboxError> {
        Ok(())
    }

    fn isolation(&self) -> openhands_core::sandbox_host::Isolation {
        openhands_core::sandbox_host::Isolation::None
    }
}

/// A start request for a new conversation of `scope` whose agent talks to `llm`, for tests
/// of conversation managers. Store `request.metadata` before starting it.
pub fn start_request(
    scope: &openhands_core::scope::UserScope,
    llm: &ScriptedLlm,
) -> openhands_core::extension::StartRequest {
    let id = openhands_core::conversation::new_conversation_id();
    let mut metadata = openhands_core::conversation::ConversationMetadata::new(
        id,
        scope.user_id.clone(),
        chrono::Utc::now(),
    );
    metadata.org_id = scope.org_id.clone();
    openhands_core::extension::StartRequest {
        scope: scope.clone(),
        metadata,
        settings: openhands_core::settings::Settings {
            llm_model: Some("openai/test-model".into()),
            llm_api_key: Some(openhands_core::secret::Secret::new("sk-test")),
            llm_base_url: Some(llm.base_url()),
            ..Default::default()
        },
        secrets: Default::default(),
        conversation_instructions: None,
        resume_work: false,
    }
}
