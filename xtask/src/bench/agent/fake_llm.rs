//! The fake LLM the agent measurements point the server at: an OpenAI-compatible
//! `POST /v1/chat/completions` that answers at once, so the figures are the
//! server's and not a model's.
//!
//! Requests do not name their conversation, so the policy is global and set per
//! measurement: a shared budget of steps ("answer `think` for the next N calls"), and
//! `finish` for every call once it is spent. A step is `think` unless the measurement
//! asks for `execute_bash` running `true` (the sandbox figures: a step that reaches the
//! conversation's tool server). A hyper server rather than hand-written HTTP because the
//! server's client (reqwest) keeps connections alive and pipelines requests on them.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The route the server calls under its `llm_base_url` (`.../v1`).
const COMPLETIONS_PATH: &str = "/v1/chat/completions";
/// Back-off after a failed `accept` (e.g. out of file descriptors), so the loop
/// neither spins nor gives up.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// Which tool an answer calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Think,
    /// `execute_bash` with the command `true`.
    Bash,
    Finish,
}

/// A running fake LLM; stops accepting when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    policy: Arc<Policy>,
    task: JoinHandle<()>,
}

/// The shared answer policy and counters.
#[derive(Debug, Default)]
struct Policy {
    /// `think` answers left before every answer is `finish`.
    think_budget: AtomicU64,
    /// Answers served, numbering the tool calls (`call_N`).
    served: AtomicU64,
    /// Milliseconds to wait before each answer (0: answer at once).
    answer_delay_ms: AtomicU64,
    /// Steps are `execute_bash` (`true`) rather than `think`.
    bash_steps: AtomicBool,
}

impl Policy {
    /// Spends one `think` from the budget if any is left.
    fn next_tool(&self) -> Tool {
        let spent = self
            .think_budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(1)
            });
        if spent.is_err() {
            Tool::Finish
        } else if self.bash_steps.load(Ordering::Acquire) {
            Tool::Bash
        } else {
            Tool::Think
        }
    }
}

impl Tool {
    /// The function name and arguments of a call to this tool.
    fn call(self, call: u64) -> (&'static str, serde_json::Value) {
        match self {
            Tool::Think => ("think", json!({"thought": format!("bench step {call}")})),
            // Numbered, like the thoughts: the agent's stuck detector stops an agent that
            // runs the very same command again and again.
            Tool::Bash => (
                "execute_bash",
                json!({"command": format!("true # bench step {call}")}),
            ),
            Tool::Finish => ("finish", json!({"message": "bench task done"})),
        }
    }
}

impl FakeLlm {
    /// Serves on `127.0.0.1:0` with an empty budget (every answer is `finish`).
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding the fake LLM on 127.0.0.1:0")?;
        let addr = listener
            .local_addr()
            .context("reading the fake LLM address")?;
        let policy = Arc::new(Policy::default());
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&policy)));
        Ok(Self { addr, policy, task })
    }

    /// The `llm_base_url` to store in the server's settings.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Makes every following answer wait `delay` (zero: answer at once).
    pub fn set_answer_delay(&self, delay: std::time::Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.policy.answer_delay_ms.store(ms, Ordering::Release);
    }

    /// Answers `think` for the next `calls` requests, then `finish`.
    pub fn set_think_budget(&self, calls: u64) {
        self.policy.think_budget.store(calls, Ordering::Release);
    }

    /// Makes the budget's steps `execute_bash` running `true` (`false`: `think`).
    pub fn set_bash_steps(&self, bash: bool) {
        self.policy.bash_steps.store(bash, Ordering::Release);
    }

    /// Completions answered so far.
    pub fn served(&self) -> u64 {
        self.policy.served.load(Ordering::Acquire)
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, policy: Arc<Policy>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream, Arc::clone(&policy)));
            }
            Err(_) => tokio::time::sleep(ACCEPT_RETRY).await,
        }
    }
}

async fn serve_connection(stream: TcpStream, policy: Arc<Policy>) {
    // Small answers on a busy loopback: do not let Nagle delay them.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| answer(request, Arc::clone(&policy)));
    // A connection error only ends this connection; the server's client retries.
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn answer(
    request: Request<Incoming>,
    policy: Arc<Policy>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let route_ok = request.method() == Method::POST && request.uri().path() == COMPLETIONS_PATH;
    // Read the body whatever it holds, so the connection stays reusable.
    let body_ok = request.into_body().collect().await.is_ok();
    let delay_ms = policy.answer_delay_ms.load(Ordering::Acquire);
    if delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
    }
    let response = if route_ok && body_ok {
        let call = policy.served.fetch_add(1, Ordering::AcqRel) + 1;
        respond(StatusCode::OK, completion_body(call, policy.next_tool()))
    } else {
        let detail = format!("the bench's fake LLM only serves POST {COMPLETIONS_PATH}");
        respond(
            StatusCode::NOT_FOUND,
            json!({"error": {"message": detail}}).to_string(),
        )
    };
    Ok(response)
}

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A chat-completions response whose only choice calls `tool` (call id `call_<call>`).
pub fn completion_body(call: u64, tool: Tool) -> String {
    let (name, arguments) = tool.call(call);
    json!({
        "id": format!("chatcmpl-bench-{call}"),
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [{
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": format!("call_{call}"),
                    "type": "function",
                    "function": {"name": name, "arguments": arguments.to_string()},
                }],
            },
        }],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::client::{HttpConn, RequestSpec};
    use serde_json::Value;

    #[test]
    fn budget_gives_think_then_finish() {
        let policy = Policy::default();
        assert_eq!(policy.next_tool(), Tool::Finish, "empty budget");
        policy.think_budget.store(2, Ordering::Release);
        assert_eq!(policy.next_tool(), Tool::Think);
        assert_eq!(policy.next_tool(), Tool::Think);
        assert_eq!(policy.next_tool(), Tool::Finish);
        assert_eq!(policy.next_tool(), Tool::Finish, "stays spent");
        policy.bash_steps.store(true, Ordering::Release);
        policy.think_budget.store(1, Ordering::Release);
        assert_eq!(policy.next_tool(), Tool::Bash);
        assert_eq!(policy.next_tool(), Tool::Finish);
    }

    #[test]
    fn bash_steps_run_true() -> Result<()> {
        let body: Value = serde_json::from_str(&completion_body(3, Tool::Bash))?;
        let function = &body["choices"][0]["message"]["tool_calls"][0]["function"];
        assert_eq!(function["name"], "execute_bash");
        let args: Value = serde_json::from_str(function["arguments"].as_str().context("args")?)?;
        assert_eq!(args["command"], "true # bench step 3");
        Ok(())
    }

    #[test]
    fn body_is_a_chat_completion_with_one_tool_call() -> Result<()> {
        let body: Value = serde_json::from_str(&completion_body(7, Tool::Think))?;
        let call = &body["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["id"], "call_7");
        assert_eq!(call["function"]["name"], "think");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().context("args")?)?;
        assert!(args["thought"].is_string());
        let finish: Value = serde_json::from_str(&completion_body(8, Tool::Finish))?;
        let name = &finish["choices"][0]["message"]["tool_calls"][0]["function"]["name"];
        assert_eq!(name, "finish");
        Ok(())
    }

    #[tokio::test]
    async fn serves_completions_over_keep_alive() -> Result<()> {
        let llm = FakeLlm::start().await?;
        llm.set_think_budget(1);
        let addr: SocketAddr = llm.addr;
        let mut conn = HttpConn::connect(addr).await?;
        let request = RequestSpec::post_json(COMPLETIONS_PATH, r#"{"messages":[]}"#);
        let mut names = Vec::new();
        for _ in 0..2 {
            let reply = conn.send(&request).await?;
            assert_eq!(reply.status, StatusCode::OK);
            let body: Value = serde_json::from_slice(&reply.body)?;
            names.push(body["choices"][0]["message"]["tool_calls"][0]["function"]["name"].clone());
        }
        assert_eq!(names, ["think", "finish"]);
        assert_eq!(llm.served(), 2);
        let other = conn.send(&RequestSpec::get("/v1/models")).await?;
        assert_eq!(other.status, StatusCode::NOT_FOUND);
        Ok(())
    }
}
