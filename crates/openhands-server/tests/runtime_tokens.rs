//! `GET /api/refresh-tokens`: a conversation's runtime gets its owner's git token with the
//! session key it was given at start (`SESSION_API_KEY` in its environment).

use openhands_runtime::testing::{ScriptedLlm, ScriptedReply};
use openhands_test_support::{TestServer, json_body as body};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const GITHUB_TOKEN: &str = "ghp_runtime_refresh_test_token";

async fn refresh(server: &TestServer, query: &str, key: Option<&str>) -> (StatusCode, Value) {
    let mut request = server
        .client
        .get(server.url(&format!("/api/refresh-tokens?{query}")));
    if let Some(key) = key {
        request = request.header("X-Session-API-Key", key);
    }
    let response = request.send().await.expect("GET /api/refresh-tokens");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A conversation whose agent wrote its `SESSION_API_KEY` to a file, and that key.
async fn conversation_with_key(server: &TestServer) -> (String, String) {
    let id = server
        .post_json(
            "/api/conversations",
            &json!({"initial_user_msg": "keep the key"}),
        )
        .await;
    assert_eq!(id.status(), 200);
    let id = body(id).await["conversation_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let events = server.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    let key_path = server.data_dir().join(format!("workspaces/{id}/key.txt"));
    let key = std::fs::read_to_string(key_path).expect("the agent wrote the key");
    let key = key.trim().to_owned();
    assert!(!key.is_empty(), "the runtime has a session key");
    let text = serde_json::to_string(&events).expect("json");
    assert!(!text.contains(&key), "the key is masked in events: {text}");
    (id, key)
}

#[tokio::test]
async fn a_runtime_gets_its_owners_token_with_its_own_key_only() {
    let bash =
        |command: &str| ScriptedReply::tool_call("execute_bash", json!({"command": command}));
    let finish = || ScriptedReply::tool_call("finish", json!({"message": "done"}));
    let llm = ScriptedLlm::start(vec![
        bash("printf %s \"$SESSION_API_KEY\" > key.txt"),
        finish(),
        bash("printf %s \"$SESSION_API_KEY\" > key.txt"),
        finish(),
    ])
    .await
    .expect("scripted LLM");
    let server = TestServer::spawn_with(|_| {}).await;
    let stored = server
        .post_json(
            "/api/settings",
            &json!({"llm_model": "openai/test-model", "llm_api_key": "sk-test", "llm_base_url": llm.base_url()}),
        )
        .await;
    assert_eq!(stored.status(), 200);
    let linked = server
        .post_json(
            "/api/add-git-providers",
            &json!({"provider_tokens": {"github": {"token": GITHUB_TOKEN, "host": null}}}),
        )
        .await;
    assert_eq!(linked.status(), 200);

    let (first, key) = conversation_with_key(&server).await;
    let (second, other_key) = conversation_with_key(&server).await;
    assert_ne!(key, other_key);

    let (status, got) = refresh(&server, &format!("provider=github&sid={first}"), Some(&key)).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got, json!({"token": GITHUB_TOKEN}));

    // Another conversation's key, no key, a made-up key: 403.
    for presented in [Some(other_key.as_str()), None, Some("enc:k1:AAAAAAAA")] {
        let (status, got) =
            refresh(&server, &format!("provider=github&sid={first}"), presented).await;
        assert_eq!(status, 403, "{presented:?}: {got}");
        assert!(!got.to_string().contains(GITHUB_TOKEN));
    }
    // No token for that provider: 404; a bad or missing parameter: 422.
    let (status, _) = refresh(&server, &format!("provider=gitlab&sid={first}"), Some(&key)).await;
    assert_eq!(status, 404);
    let (status, got) = refresh(&server, &format!("provider=svn&sid={first}"), Some(&key)).await;
    assert_eq!(
        (status, got["detail"][0]["loc"][1].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("provider"))
    );
    let (status, got) = refresh(&server, "provider=github", Some(&key)).await;
    assert_eq!(
        (status, got["detail"][0]["loc"][1].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("sid"))
    );

    // Deleting the conversation retires its key.
    let deleted = server
        .client
        .delete(server.url(&format!("/api/conversations/{second}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 200);
    let (status, _) = refresh(
        &server,
        &format!("provider=github&sid={second}"),
        Some(&other_key),
    )
    .await;
    assert_eq!(status, 403);
}
