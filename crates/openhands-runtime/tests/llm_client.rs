//! The LLM client against a scripted OpenAI-compatible server: retries, errors, wire shape.

use openhands_core::secret::Secret;
use openhands_runtime::llm::{ChatMessage, LlmClient, LlmConfig, LlmError};
use openhands_runtime::testing::{ScriptedLlm, ScriptedReply};
use openhands_runtime::tools::tool_specs;
use serde_json::json;
use std::time::{Duration, Instant};

const KEY: &str = "sk-test-very-secret-key";

fn config(server: &ScriptedLlm) -> LlmConfig {
    LlmConfig {
        api_key: Some(Secret::new(KEY)),
        ..server.llm_config("openai/gpt-4o")
    }
}

fn hello() -> Vec<ChatMessage> {
    vec![ChatMessage::system("sys"), ChatMessage::user("hello")]
}

#[tokio::test]
async fn sends_openai_shape_with_bearer_key_and_stripped_model() {
    let server = ScriptedLlm::start([ScriptedReply::Text("hi there".into())])
        .await
        .expect("server");
    let client = LlmClient::new(config(&server)).expect("client");
    let response = client.complete(&hello(), &tool_specs()).await.expect("ok");
    assert_eq!(response.message.content.as_deref(), Some("hi there"));
    assert_eq!(response.usage.prompt_tokens, 100);
    assert_eq!(response.usage.completion_tokens, 20);
    assert_eq!(response.response_id.as_deref(), Some("chatcmpl-1"));
    let recorded = server.recorded();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/v1/chat/completions");
    let bearer = format!("Bearer {KEY}");
    assert_eq!(recorded[0].header("authorization"), Some(bearer.as_str()));
    let body = &recorded[0].body;
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(
        body["messages"][1],
        json!({"role": "user", "content": "hello"})
    );
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "execute_bash");
}

#[tokio::test]
async fn full_model_ids_go_to_a_proxy_unchanged() {
    let server = ScriptedLlm::start([ScriptedReply::Text("ok".into())])
        .await
        .expect("server");
    let client =
        LlmClient::new(server.llm_config("anthropic/claude-sonnet-4-20250514")).expect("client");
    client.complete(&hello(), &[]).await.expect("ok");
    let body = &server.requests()[0];
    assert_eq!(body["model"], "anthropic/claude-sonnet-4-20250514");
    assert!(body.get("tools").is_none(), "no tools key without tools");
    assert!(server.recorded()[0].header("authorization").is_none());
}

#[tokio::test]
async fn retries_429_honouring_retry_after() {
    let server = ScriptedLlm::start([
        ScriptedReply::StatusWithRetryAfter {
            status: 429,
            retry_after_secs: 1,
        },
        ScriptedReply::Text("finally".into()),
    ])
    .await
    .expect("server");
    let client = LlmClient::new(config(&server)).expect("client");
    let started = Instant::now();
    let response = client
        .complete(&hello(), &[])
        .await
        .expect("ok after retry");
    assert_eq!(response.message.content.as_deref(), Some("finally"));
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn retries_server_errors_then_succeeds() {
    let server = ScriptedLlm::start([
        ScriptedReply::Status(500),
        ScriptedReply::Status(503),
        ScriptedReply::Status(429),
        ScriptedReply::Text("up again".into()),
    ])
    .await
    .expect("server");
    let client = LlmClient::new(config(&server)).expect("client");
    let started = Instant::now();
    let response = client.complete(&hello(), &[]).await.expect("ok");
    assert_eq!(response.message.content.as_deref(), Some("up again"));
    assert_eq!(server.requests().len(), 4);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "1 ms backoff in tests"
    );
}

#[tokio::test]
async fn gives_up_after_max_retries_without_leaking_the_key() {
    let server = ScriptedLlm::start(vec![ScriptedReply::Status(502); 10])
        .await
        .expect("server");
    let client = LlmClient::new(LlmConfig {
        max_retries: 2,
        ..config(&server)
    })
    .expect("client");
    let err = client.complete(&hello(), &[]).await.expect_err("fails");
    assert!(
        matches!(err, LlmError::RetriesExhausted { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 3);
    let text = err.to_string();
    assert!(text.contains("502"), "{text}");
    assert!(!text.contains(KEY), "{text}");
}

#[tokio::test]
async fn unauthorized_is_not_retried_and_hides_the_key() {
    let server = ScriptedLlm::start([
        ScriptedReply::Status(401),
        ScriptedReply::Text("never".into()),
    ])
    .await
    .expect("server");
    let client = LlmClient::new(config(&server)).expect("client");
    let err = client.complete(&hello(), &[]).await.expect_err("401");
    assert!(
        matches!(err, LlmError::Authentication { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 1, "no retry on 401");
    assert!(!err.to_string().contains(KEY));
    assert!(!format!("{err:?}").contains(KEY));
}

#[tokio::test]
async fn bad_request_is_not_retried_and_echoed_keys_are_redacted() {
    // A server answering 400 with a body that echoes the key, as some providers do.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&hits);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf).await;
            let body = format!("{{\"error\":\"invalid model for key {KEY}\"}}");
            let reply = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
        }
    });
    let client = LlmClient::new(LlmConfig {
        base_url: Some(format!("http://{addr}/v1")),
        api_key: Some(Secret::new(KEY)),
        initial_backoff: Duration::from_millis(1),
        ..LlmConfig::new("gpt-4o")
    })
    .expect("client");
    let err = client.complete(&hello(), &[]).await.expect_err("400");
    let LlmError::BadRequest(body) = &err else {
        panic!("expected BadRequest, got {err:?}");
    };
    assert!(body.contains("invalid model for key [REDACTED]"), "{body}");
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "no retry on 400"
    );
    assert!(!err.to_string().contains(KEY));
}

#[tokio::test]
async fn connection_errors_are_retried_then_reported() {
    // A port nobody listens on.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let client = LlmClient::new(LlmConfig {
        base_url: Some(format!("http://{addr}/v1")),
        api_key: Some(Secret::new(KEY)),
        max_retries: 2,
        initial_backoff: Duration::from_millis(1),
        ..LlmConfig::new("gpt-4o")
    })
    .expect("client");
    let err = client.complete(&hello(), &[]).await.expect_err("refused");
    assert!(
        matches!(err, LlmError::RetriesExhausted { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(KEY));
}

#[tokio::test]
async fn malformed_success_body_is_a_decode_error() {
    let server = ScriptedLlm::start([ScriptedReply::Raw(json!({"choices": []}))])
        .await
        .expect("server");
    let client = LlmClient::new(config(&server)).expect("client");
    let err = client.complete(&hello(), &[]).await.expect_err("decode");
    assert!(matches!(err, LlmError::Decode { .. }), "{err:?}");
}
