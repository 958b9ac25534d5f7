//! A conversation started with a linked token that is about to expire runs with a fresh
//! one: the server refreshes it at the provider, stores the new pair, and the agent's
//! environment holds the new token.

mod common;

use common::{FakeGit, link, signed_in, start};
use openhands_core::secrets::ProviderType;
use openhands_runtime::testing::{ScriptedLlm, ScriptedReply};
use openhands_sql_store::entity::provider_token;
use reqwest::StatusCode;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_conversation_starts_with_a_refreshed_token() {
    let fake = FakeGit::start().await;
    let env = start(&fake).await;
    let mut browser = signed_in(&env, "alice").await;
    let linked = link(&mut browser, &fake, ProviderType::Github, "octocat").await;
    assert_eq!(linked.status, StatusCode::FOUND, "{:?}", linked.body);
    let first = fake.last_issued(ProviderType::Github).expect("issued");

    // The linked token now expires in a minute: inside the four-hour margin.
    let row = provider_token::Entity::find()
        .filter(provider_token::Column::UserId.eq("alice"))
        .one(env.db.connection())
        .await
        .expect("query")
        .expect("linked row");
    let mut expiring = row.into_active_model();
    expiring.expires_at = Set(Some(chrono::Utc::now() + chrono::Duration::seconds(60)));
    expiring.update(env.db.connection()).await.expect("update");

    // The agent shows its `github_token` and writes it into the workspace, then finishes.
    let llm = ScriptedLlm::start(vec![
        ScriptedReply::tool_call(
            "execute_bash",
            json!({"command": "printenv github_token | tee token.txt"}),
        ),
        ScriptedReply::tool_call("finish", json!({"message": "done"})),
    ])
    .await
    .expect("scripted LLM");
    let settings = browser
        .post(
            "/api/settings",
            json!({"llm_model": "openai/test-model", "llm_api_key": "sk-test",
                   "llm_base_url": llm.base_url()}),
        )
        .await;
    assert_eq!(settings.status, StatusCode::OK, "{:?}", settings.body);
    let created = browser
        .post(
            "/api/conversations",
            json!({"initial_user_msg": "Show the token"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    let id = created.body["conversation_id"]
        .as_str()
        .expect("conversation id")
        .to_owned();

    // Wait until the agent has finished (its events are stored by then).
    let deadline = tokio::time::Instant::now() + WAIT;
    let events = loop {
        let trajectory = browser
            .get(&format!("/api/conversations/{id}/trajectory"))
            .await;
        let events = trajectory.body["trajectory"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let finished = events.iter().any(|e| {
            e["observation"] == "agent_state_changed" && e["extras"]["agent_state"] == "finished"
        });
        if finished {
            break events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent did not finish: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let written = std::fs::read_to_string(
        env.server
            .data_dir()
            .join(format!("workspaces/{id}/token.txt")),
    )
    .expect("the agent wrote the token");

    let refreshed = fake.last_issued(ProviderType::Github).expect("refreshed");
    assert_ne!(refreshed, first, "a new pair was issued");
    assert_eq!(fake.refreshes(ProviderType::Github), 1);
    assert_eq!(
        written.trim(),
        refreshed.access_token,
        "the agent got the fresh token"
    );

    // The new pair is what is stored now, sealed.
    let row = provider_token::Entity::find()
        .filter(provider_token::Column::UserId.eq("alice"))
        .one(env.db.connection())
        .await
        .expect("query")
        .expect("row");
    assert!(!row.token_sealed.contains(&refreshed.access_token));
    let left = row.expires_at.expect("expiry") - chrono::Utc::now();
    assert!(left > chrono::Duration::hours(7), "{left}");
    assert!(!fake.accepts_refresh_token(&first.refresh_token), "rotated");
    assert!(fake.accepts_refresh_token(&refreshed.refresh_token));

    // The command's output showed the token: the event holds it masked, like every secret.
    let output = events
        .iter()
        .find(|e| e["observation"] == "run")
        .expect("the command's output");
    assert!(
        output["content"]
            .as_str()
            .is_some_and(|c| c.contains("<secret_hidden>")),
        "{output}"
    );
    let text = serde_json::Value::Array(events).to_string();
    assert!(!text.contains(&refreshed.access_token) && !text.contains(&first.access_token));
}
