//! Hardening item 5, "limits that hold", over HTTP: when the server runs
//! `max_running_conversations`, starting one more answers 503 `capacity_reached` with
//! `Retry-After`, on the create route and on `/start`, and the conversations that run keep
//! running (nobody's work is stopped to make room).

use openhands_runtime::testing::ScriptedLlm;
use openhands_test_support::TestServer;
use openhands_test_support::header_user::{HEADER_USER_AUTH, USER_HEADER};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// `method path` as `user`: the status, the `Retry-After` header and the JSON body.
async fn call(
    server: &TestServer,
    user: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let mut request = server
        .client
        .request(method, server.url(path))
        .header(USER_HEADER, user);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, retry_after, body)
}

async fn create(server: &TestServer, user: &str) -> (u16, Option<String>, Value) {
    call(
        server,
        user,
        reqwest::Method::POST,
        "/api/conversations",
        Some(json!({"initial_user_msg": "hello"})),
    )
    .await
}

async fn status_of(server: &TestServer, user: &str, id: &str) -> String {
    let (status, _, body) = call(
        server,
        user,
        reqwest::Method::GET,
        &format!("/api/conversations/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["status"].as_str().unwrap_or_default().to_owned()
}

async fn wait_running(server: &TestServer, user: &str, id: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = status_of(server, user, id).await;
        if status == "RUNNING" {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} not running; last {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_capacity_reached((status, retry_after, body): (u16, Option<String>, Value)) {
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "capacity_reached", "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("(1)")),
        "the message names the cap: {body}"
    );
    let seconds: u64 = retry_after
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(seconds > 0);
}

#[tokio::test]
async fn at_the_global_cap_another_users_start_gets_503_capacity_reached_and_nothing_stops() {
    let llm = ScriptedLlm::start(Vec::new()).await.expect("scripted LLM");
    let server = TestServer::spawn_with(|c| {
        c.plugins.user_auth = Some(HEADER_USER_AUTH.into());
        c.max_concurrent_conversations = 3;
        c.max_running_conversations = 1;
    })
    .await;
    for user in ["ann", "bob"] {
        let settings = json!({"llm_model": "openai/test-model", "llm_api_key": "sk-test",
                              "llm_base_url": llm.base_url()});
        let (status, _, body) = call(
            &server,
            user,
            reqwest::Method::POST,
            "/api/settings",
            Some(settings),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    let (status, _, body) = create(&server, "ann").await;
    assert_eq!(status, 200, "{body}");
    let ann_id = body["conversation_id"].as_str().expect("id").to_owned();
    wait_running(&server, "ann", &ann_id).await;

    // Bob's new conversation is refused before anything is stored.
    assert_capacity_reached(create(&server, "bob").await);
    let listed = call(
        &server,
        "bob",
        reqwest::Method::GET,
        "/api/conversations",
        None,
    )
    .await
    .2;
    assert_eq!(
        listed["results"],
        json!([]),
        "nothing left behind: {listed}"
    );
    assert_eq!(status_of(&server, "ann", &ann_id).await, "RUNNING");

    // When Ann's stops, Bob's starts; then Ann's /start is refused the same way.
    let (status, _, body) = call(
        &server,
        "ann",
        reqwest::Method::POST,
        &format!("/api/conversations/{ann_id}/stop"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = create(&server, "bob").await;
    assert_eq!(status, 200, "{body}");
    let bob_id = body["conversation_id"].as_str().expect("id").to_owned();
    wait_running(&server, "bob", &bob_id).await;
    assert_capacity_reached(
        call(
            &server,
            "ann",
            reqwest::Method::POST,
            &format!("/api/conversations/{ann_id}/start"),
            Some(json!({})),
        )
        .await,
    );
    assert_eq!(status_of(&server, "ann", &ann_id).await, "STOPPED");
    assert_eq!(status_of(&server, "bob", &bob_id).await, "RUNNING");
}
