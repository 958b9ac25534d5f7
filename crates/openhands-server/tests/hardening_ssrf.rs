//! SSRF through `llm_base_url`: on a SaaS server a user's LLM base URL on an internal
//! address is refused before any connection (the conversation ends with an error that
//! says why), unless the deployment allows that address; a single-user server keeps
//! reaching local LLMs.

use openhands_runtime::testing::{ScriptedLlm, ScriptedReply};
use openhands_test_support::{TestServer, json_body};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

async fn server(saas: bool, allow: &[&str]) -> TestServer {
    let allow: Vec<String> = allow.iter().map(|a| (*a).to_owned()).collect();
    TestServer::spawn_with(move |c| {
        if saas {
            c.config_class = "saas".into();
            c.plugins.user_auth = Some("oss.local_user".into());
            c.database.migrate_on_start = true;
        }
        c.llm_egress_allow = allow;
    })
    .await
}

async fn converse(server: &TestServer, llm: &ScriptedLlm) -> (String, Vec<Value>, &'static str) {
    let res = server
        .post_json(
            "/api/settings",
            &json!({"llm_model": "openai/test-model", "llm_api_key": "sk-ssrf-test-key",
                    "llm_base_url": llm.base_url()}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = server
        .post_json("/api/conversations", &json!({"initial_user_msg": "hi"}))
        .await;
    assert_eq!(res.status(), 200);
    let id = json_body(res).await["conversation_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = server.all_events(&id).await;
        for state in ["error", "finished"] {
            if events
                .iter()
                .any(|e| e["extras"]["agent_state"].as_str() == Some(state))
            {
                return (id, events, state);
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{events:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn finish() -> ScriptedReply {
    ScriptedReply::tool_call("finish", json!({"message": "done"}))
}

#[tokio::test]
async fn a_saas_users_llm_base_url_on_loopback_is_refused_before_any_request() {
    let llm = ScriptedLlm::start(vec![finish()]).await.expect("llm");
    let server = server(true, &[]).await;
    let (_, events, state) = converse(&server, &llm).await;
    assert_eq!(state, "error");
    assert!(llm.requests().is_empty(), "the LLM was called");
    let text = serde_json::to_string(&events).expect("json");
    assert!(text.contains("llm_egress_allow"), "{text}");
    assert!(!text.contains("sk-ssrf-test-key"), "{text}");
}

#[tokio::test]
async fn an_allowed_internal_llm_and_a_local_servers_llm_are_reached() {
    for (saas, allow) in [(true, vec!["127.0.0.1"]), (false, vec![])] {
        let llm = ScriptedLlm::start(vec![finish()]).await.expect("llm");
        let server = server(saas, &allow).await;
        let (_, _, state) = converse(&server, &llm).await;
        assert_eq!(state, "finished", "saas: {saas}");
        assert_eq!(llm.requests().len(), 1, "saas: {saas}");
    }
}
