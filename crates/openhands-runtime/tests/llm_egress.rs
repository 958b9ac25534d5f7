//! The LLM client's egress limits (issue 25, SSRF through `llm_base_url`): internal
//! addresses refused before any connection when the check is on, no redirects, capped bodies.

use openhands_core::event::{Event, EventBody, NewEvent};
use openhands_core::net_policy::AllowList;
use openhands_core::secret::Secret;
use openhands_core::tool_protocol::ToolClient;
use openhands_runtime::agent::{AgentConfig, AgentOutcome, run_agent};
use openhands_runtime::llm::{ChatMessage, LlmClient, LlmConfig, LlmEgress, LlmError};
use openhands_runtime::testing::{MemoryIo, ScriptedLlm, ScriptedReply, event_kind};
use openhands_tool_server::ServeOptions;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const KEY: &str = "sk-test-very-secret-key";

fn public_only(allow: &[&str]) -> LlmEgress {
    LlmEgress::Public(AllowList::parse(allow).expect("allow list"))
}

fn hello() -> Vec<ChatMessage> {
    vec![ChatMessage::user("hello")]
}

fn config(base_url: String, egress: LlmEgress) -> LlmConfig {
    LlmConfig {
        base_url: Some(base_url),
        api_key: Some(Secret::new(KEY)),
        initial_backoff: Duration::from_millis(1),
        timeout: Duration::from_secs(10),
        egress,
        ..LlmConfig::new("openai/gpt-4o")
    }
}

/// A server on 127.0.0.1 that answers every request with `response` and counts connections.
struct RawServer {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl RawServer {
    async fn start(response: Vec<u8>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let response = Arc::new(response);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let response = Arc::clone(&response);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = stream.write_all(&response).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { port, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn assert_refused(err: &LlmError, reason: &str) {
    let text = err.to_string();
    assert!(matches!(err, LlmError::EgressRefused(_)), "{err:?}");
    assert!(text.contains(reason), "{text}");
    assert!(text.contains("llm_egress_allow"), "{text}");
    assert!(!text.contains(KEY), "{text}");
}

#[tokio::test]
async fn loopback_base_url_is_refused_when_checked_and_never_reached() {
    let server = ScriptedLlm::start([ScriptedReply::Text("internal".into())])
        .await
        .expect("server");
    let started = Instant::now();
    let err = match LlmClient::new(config(server.base_url(), public_only(&[]))) {
        Err(err) => err,
        Ok(client) => client.complete(&hello(), &[]).await.expect_err("refused"),
    };
    assert_refused(&err, "loopback");
    assert!(started.elapsed() < Duration::from_secs(2), "no retries");
    assert!(server.recorded().is_empty(), "the server got no request");
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_before_connecting() {
    let server =
        RawServer::start(b"HTTP/1.1 500 Internal\r\nContent-Length: 0\r\n\r\n".to_vec()).await;
    let client = LlmClient::new(config(
        format!("http://localhost:{}/v1", server.port),
        public_only(&[]),
    ))
    .expect("names are checked when resolved");
    let err = client.complete(&hello(), &[]).await.expect_err("refused");
    assert_refused(&err, "loopback");
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn metadata_address_is_refused_without_a_connection() {
    let started = Instant::now();
    let err = LlmClient::new(config(
        "http://169.254.169.254/latest/meta-data".into(),
        public_only(&["127.0.0.1"]),
    ))
    .expect_err("refused");
    assert_refused(&err, "cloud metadata");
    assert!(started.elapsed() < Duration::from_secs(1));
    let err = LlmClient::new(config(
        "http://[::ffff:169.254.169.254]/v1".into(),
        public_only(&[]),
    ))
    .expect_err("mapped form refused too");
    assert_refused(&err, "cloud metadata");
}

#[tokio::test]
async fn allow_listed_loopback_works() {
    let server = ScriptedLlm::start([
        ScriptedReply::Text("by address".into()),
        ScriptedReply::Text("by name".into()),
    ])
    .await
    .expect("server");
    let client = LlmClient::new(config(server.base_url(), public_only(&["127.0.0.1"])))
        .expect("allowed address");
    let response = client.complete(&hello(), &[]).await.expect("ok");
    assert_eq!(response.message.content.as_deref(), Some("by address"));
    let by_name = server.base_url().replace("127.0.0.1", "localhost");
    let client = LlmClient::new(config(by_name, public_only(&["localhost"]))).expect("client");
    let response = client.complete(&hello(), &[]).await.expect("ok");
    assert_eq!(response.message.content.as_deref(), Some("by name"));
}

#[tokio::test]
async fn unchecked_client_reaches_localhost_as_before() {
    let server = ScriptedLlm::start([ScriptedReply::Text("local model".into())])
        .await
        .expect("server");
    let client = LlmClient::new(config(server.base_url(), LlmEgress::Any)).expect("client");
    let response = client.complete(&hello(), &[]).await.expect("ok");
    assert_eq!(response.message.content.as_deref(), Some("local model"));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let target = ScriptedLlm::start([ScriptedReply::Text("redirected".into())])
        .await
        .expect("server");
    let location = format!("{}/chat/completions", target.base_url());
    let redirect = RawServer::start(
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes(),
    )
    .await;
    for egress in [public_only(&["127.0.0.1"]), LlmEgress::Any] {
        let client = LlmClient::new(config(
            format!("http://127.0.0.1:{}/v1", redirect.port),
            egress,
        ))
        .expect("client");
        let err = client.complete(&hello(), &[]).await.expect_err("3xx");
        assert!(matches!(err, LlmError::Http { status: 307, .. }), "{err:?}");
    }
    assert!(
        target.recorded().is_empty(),
        "the redirect was not followed"
    );
}

#[tokio::test]
async fn oversized_responses_are_cut_with_an_error() {
    let limit = 64 * 1024;
    let body = "x".repeat(limit + 1);
    let declared = RawServer::start(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
    .await;
    let undeclared = RawServer::start(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{body}"
        )
        .into_bytes(),
    )
    .await;
    for server in [&declared, &undeclared] {
        let client = LlmClient::new(LlmConfig {
            max_response_bytes: limit,
            ..config(
                format!("http://127.0.0.1:{}/v1", server.port),
                LlmEgress::Any,
            )
        })
        .expect("client");
        let err = client.complete(&hello(), &[]).await.expect_err("too large");
        assert!(
            matches!(err, LlmError::ResponseTooLarge { limit: l, .. } if l == limit),
            "{err:?}"
        );
        assert_eq!(server.connections(), 1, "not retried");
    }
}

#[tokio::test]
async fn a_refused_base_url_ends_the_agent_turn_with_a_clear_error_event() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([ScriptedReply::Text("internal".into())])
        .await
        .expect("server");
    let (client_read, server_write) = tokio::io::duplex(1 << 16);
    let (server_read, client_write) = tokio::io::duplex(1 << 16);
    let options = ServeOptions {
        workspace: ws.path().to_owned(),
        shown_workspace: ws.path().display().to_string(),
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
        .expect("tool server");
    let llm = config(server.base_url(), public_only(&[]));
    let history = vec![Event::from_new(
        NewEvent::user_message("hi", vec![]),
        0,
        "2025-01-01T00:00:00.000000".into(),
    )];
    let io = MemoryIo::starting_at(1);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let task = tokio::spawn(run_agent(
        AgentConfig::new(llm, Arc::new(tools)),
        history,
        io.clone(),
        rx,
    ));
    let errored = io
        .wait_until(Duration::from_secs(20), |events| {
            events.iter().any(|e| event_kind(e) == "state:error")
        })
        .await;
    assert!(errored, "the agent reported an error state");
    let events = io.events();
    let content = events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::Observation {
                observation,
                content,
                ..
            } if observation == "error" => Some(content.clone()),
            _ => None,
        })
        .expect("an error event");
    assert!(content.contains("LLM base URL is refused"), "{content}");
    assert!(content.contains("loopback"), "{content}");
    assert!(!content.contains(KEY), "{content}");
    assert!(server.recorded().is_empty());
    drop(tx);
    let outcome = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("agent ends")
        .expect("agent task");
    assert!(matches!(outcome, AgentOutcome::Error(_)), "{outcome:?}");
}
