//! `/api/conversations` and `/api/conversations/{id}/events` over HTTP.

use openhands_test_support::TestServer;
use serde_json::{Value, json};
use std::collections::HashSet;

use openhands_test_support::json_body as body;

async fn create(server: &TestServer, request: Value) -> String {
    let res = server.post_json("/api/conversations", &request).await;
    assert_eq!(res.status(), 200, "create conversation");
    let got = body(res).await;
    assert_eq!(got["status"], "ok");
    got["conversation_id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn create_without_settings_is_400_settings_not_found() {
    let server = TestServer::spawn().await;
    let res = server.post_json("/api/conversations", &json!({})).await;
    assert_eq!(res.status(), 400);
    let got = body(res).await;
    assert_eq!(got["status"], "error");
    assert_eq!(got["msg_id"], "CONFIGURATION$SETTINGS_NOT_FOUND");
}

#[tokio::test]
async fn create_without_llm_key_is_400_unless_the_model_needs_none() {
    let server = TestServer::spawn().await;
    server
        .post_json("/api/settings", &json!({"llm_model": "openai/gpt-4o"}))
        .await;
    let res = server.post_json("/api/conversations", &json!({})).await;
    assert_eq!(res.status(), 400);
    let got = body(res).await;
    assert_eq!(got["msg_id"], "STATUS$ERROR_LLM_AUTHENTICATION");
    assert_eq!(
        got["message"],
        "Error authenticating with the LLM provider. Please check your API key"
    );

    server
        .post_json(
            "/api/settings",
            &json!({"llm_model": "bedrock/anthropic.claude"}),
        )
        .await;
    let res = server.post_json("/api/conversations", &json!({})).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn create_returns_openhands_response_and_records_metadata_and_first_message() {
    let server = TestServer::spawn().await;
    server.store_default_settings().await;
    let res = server
        .post_json(
            "/api/conversations",
            &json!({"repository": "octo/repo", "selected_branch": "main", "git_provider": "github",
                    "initial_user_msg": "Fix the tests", "conversation_instructions": "be brief"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let got = body(res).await;
    let id = got["conversation_id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 32);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        got,
        json!({"status": "ok", "conversation_id": id, "message": null, "conversation_status": "STARTING"})
    );

    let info = body(server.get(&format!("/api/conversations/{id}")).await).await;
    assert_eq!(info["conversation_id"], id);
    assert_eq!(info["title"], format!("Conversation {}", &id[..5]));
    assert_eq!(info["selected_repository"], "octo/repo");
    assert_eq!(info["selected_branch"], "main");
    assert_eq!(info["git_provider"], "github");
    assert_eq!(info["trigger"], "gui");
    // The agent starts at once; cloning octo/repo cannot work offline, so it may be in ERROR.
    assert!(
        matches!(
            info["status"].as_str(),
            Some("STARTING" | "RUNNING" | "ERROR")
        ),
        "{info}"
    );
    assert_eq!(info["conversation_version"], "V0");
    assert_eq!(info["num_connections"], 0);

    let events = body(server.get(&format!("/api/conversations/{id}/events")).await).await;
    assert_eq!(events["has_more"], false);
    let first = &events["events"][0];
    assert_eq!(first["id"], 0);
    assert_eq!(first["source"], "user");
    assert_eq!(first["action"], "message");
    assert_eq!(first["args"]["content"], "Fix the tests");
    assert!(first["timestamp"].as_str().is_some_and(|t| t.len() >= 19));
}

#[tokio::test]
async fn unknown_fields_and_unallowed_conversation_id_are_422() {
    let server = TestServer::spawn().await;
    server.store_default_settings().await;
    let res = server
        .post_json("/api/conversations", &json!({"repo": "x"}))
        .await;
    assert_eq!(res.status(), 422);
    assert!(body(res).await.to_string().contains("repo"));
    let res = server
        .post_json("/api/conversations", &json!({"conversation_id": "mine"}))
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(
        body(res).await["detail"][0]["loc"],
        json!(["body", "conversation_id"])
    );
}

#[tokio::test]
async fn conversation_id_can_be_chosen_when_allowed_and_is_validated() {
    let server = TestServer::spawn_with(|c| c.allow_set_conversation_id = true).await;
    server.store_default_settings().await;
    let id = create(&server, json!({"conversation_id": "my-chosen-id"})).await;
    assert_eq!(id, "my-chosen-id");
    let res = server
        .post_json(
            "/api/conversations",
            &json!({"conversation_id": "my-chosen-id"}),
        )
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(body(res).await["msg_id"], "CONVERSATION$ALREADY_EXISTS");
    let res = server
        .post_json(
            "/api/conversations",
            &json!({"conversation_id": "../escape"}),
        )
        .await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn invalid_ids_in_paths_are_400() {
    let server = TestServer::spawn().await;
    let long = "a".repeat(101);
    for path in [
        format!("/api/conversations/{long}"),
        "/api/conversations/a..b".to_owned(),
        "/api/conversations/a%5Cb".to_owned(),
        "/api/conversations/a%01b/events".to_owned(),
    ] {
        let res = server.get(&path).await;
        assert_eq!(res.status(), 400, "{path}");
        assert!(body(res).await["detail"].is_string());
    }
}

#[tokio::test]
async fn unknown_conversation_is_null_false_and_404() {
    let server = TestServer::spawn().await;
    let res = server.get("/api/conversations/doesnotexist").await;
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await, Value::Null);
    let res = server
        .client
        .delete(server.url("/api/conversations/doesnotexist"))
        .send()
        .await
        .expect("delete");
    assert_eq!(body(res).await, json!(false));
    let res = server
        .client
        .patch(server.url("/api/conversations/doesnotexist"))
        .json(&json!({"title": "x"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(res.status(), 404);
    assert_eq!(
        body(res).await,
        json!({"status": "error", "message": "Conversation not found", "msg_id": "CONVERSATION$NOT_FOUND"})
    );
    let res = server.get("/api/conversations/doesnotexist/events").await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn list_pages_through_everything_newest_first_without_duplicates() {
    let server = TestServer::spawn().await;
    server.store_default_settings().await;
    let mut created = Vec::new();
    for _ in 0..25 {
        created.push(create(&server, json!({})).await);
    }
    let mut seen = Vec::new();
    let mut page_id: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &page_id {
            Some(p) => format!("/api/conversations?limit=10&page_id={p}"),
            None => "/api/conversations?limit=10".to_owned(),
        };
        let got = body(server.get(&path).await).await;
        pages += 1;
        let results = got["results"].as_array().expect("results").clone();
        seen.extend(
            results
                .iter()
                .map(|r| r["conversation_id"].as_str().unwrap_or_default().to_owned()),
        );
        match got["next_page_id"].as_str() {
            Some(next) => page_id = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        25,
        "no duplicates"
    );
    created.reverse();
    assert_eq!(seen, created, "newest first");
}

#[tokio::test]
async fn list_filters_by_repository_and_trigger_and_checks_limit() {
    let server = TestServer::spawn().await;
    server.store_default_settings().await;
    create(&server, json!({"repository": "a/one"})).await;
    create(&server, json!({"repository": "b/two"})).await;
    let got = body(
        server
            .get("/api/conversations?selected_repository=a/one")
            .await,
    )
    .await;
    assert_eq!(got["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(got["results"][0]["selected_repository"], "a/one");
    let got = body(
        server
            .get("/api/conversations?conversation_trigger=slack")
            .await,
    )
    .await;
    assert_eq!(got["results"], json!([]));
    let got = body(
        server
            .get("/api/conversations?conversation_trigger=gui")
            .await,
    )
    .await;
    assert_eq!(got["results"].as_array().map(Vec::len), Some(2));
    // As on the events route: 0 is an empty page (hardening_errors.rs pins both).
    assert_eq!(server.get("/api/conversations?limit=0").await.status(), 200);
    assert_eq!(
        server.get("/api/conversations?limit=101").await.status(),
        400
    );
    assert_eq!(
        server.get("/api/conversations?limit=abc").await.status(),
        422
    );
    assert_eq!(
        server
            .get("/api/conversations?page_id=!!bad")
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn rename_trims_and_validates_title() {
    let server = TestServer::spawn().await;
    server.store_default_settings().await;
    let id = create(&server, json!({})).await;
    let patch = |body: Value| {
        server
            .client
            .patch(server.url(&format!("/api/conversations/{id}")))
            .json(&body)
            .send()
    };
    let res = patch(json!({"title": "  New title  "}))
        .await
        .expect("patch");
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await, json!(true));
    let info = body(server.get(&format!("/api/conversations/{id}")).await).await;
    assert_eq!(info["title"], "New title");
    assert_eq!(
        patch(json!({"title": "   "}))
            .await
            .expect("patch")
            .status(),
        422
    );
    assert_eq!(
        patch(json!({"title": "x".repeat(201)}))
            .await
            .expect("patch")
            .status(),
        422
    );
    assert_eq!(
        patch(json!({"title": "ok", "extra": 1}))
            .await
            .expect("patch")
            .status(),
        422
    );
    let info = body(server.get(&format!("/api/conversations/{id}")).await).await;
    assert_eq!(info["title"], "New title", "failed renames change nothing");
}

#[tokio::test]
async fn delete_removes_the_directory_and_events() {
    let server = TestServer::spawn().await;
    server.store_default_settings().await;
    let id = create(&server, json!({"initial_user_msg": "hello"})).await;
    let dir = server.data_dir().join("sessions").join(&id);
    assert!(dir.join("metadata.json").is_file());
    assert!(dir.join("events/0.json").is_file());
    let res = server
        .client
        .delete(server.url(&format!("/api/conversations/{id}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(body(res).await, json!(true));
    assert!(!dir.exists());
    assert_eq!(
        body(server.get(&format!("/api/conversations/{id}")).await).await,
        Value::Null
    );
    let list = body(server.get("/api/conversations").await).await;
    assert_eq!(list["results"], json!([]));
}

#[tokio::test]
async fn events_are_paged_with_limits_and_reverse() {
    let server = TestServer::spawn_with(|c| c.allow_set_conversation_id = true).await;
    server.store_default_settings().await;
    let id = create(
        &server,
        json!({"conversation_id": "paged", "initial_user_msg": "m0"}),
    )
    .await;
    // Only the first message is recorded by the API today; append more through the store layout.
    for n in 1..30 {
        let event = json!({"id": n, "timestamp": "2025-01-01T00:00:00", "source": "agent", "message": format!("m{n}"),
                           "action": "think", "args": {"thought": format!("t{n}")}});
        std::fs::write(
            server
                .data_dir()
                .join(format!("sessions/{id}/events/{n}.json")),
            event.to_string(),
        )
        .expect("write");
    }
    let server = server.restart().await;
    let page = body(
        server
            .get(&format!(
                "/api/conversations/{id}/events?start_id=5&limit=10"
            ))
            .await,
    )
    .await;
    let ids: Vec<i64> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["id"].as_i64())
        .collect();
    assert_eq!(ids, (5..15).collect::<Vec<_>>());
    assert_eq!(page["has_more"], true);
    let page = body(
        server
            .get(&format!("/api/conversations/{id}/events?start_id=25"))
            .await,
    )
    .await;
    assert_eq!(page["events"].as_array().map(Vec::len), Some(5));
    assert_eq!(page["has_more"], false);
    let page = body(
        server
            .get(&format!(
                "/api/conversations/{id}/events?reverse=true&limit=3"
            ))
            .await,
    )
    .await;
    let ids: Vec<i64> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![29, 28, 27]);
    let page = body(
        server
            .get(&format!(
                "/api/conversations/{id}/events?start_id=2&end_id=4"
            ))
            .await,
    )
    .await;
    assert_eq!(page["events"].as_array().map(Vec::len), Some(3));
    for bad in ["limit=101", "limit=-1"] {
        let res = server
            .get(&format!("/api/conversations/{id}/events?{bad}"))
            .await;
        assert_eq!(res.status(), 400, "{bad}");
        assert_eq!(body(res).await, json!({"detail": "Invalid limit"}));
    }
}

#[tokio::test]
async fn concurrent_creates_all_land_and_survive_a_restart() {
    let server = TestServer::spawn().await;
    server.store_default_settings().await;
    let server_ref = &server;
    let requests = (0..30).map(|i| async move {
        let request = json!({"initial_user_msg": format!("task {i}")});
        server_ref.post_json("/api/conversations", &request).await
    });
    let mut ids = HashSet::new();
    for res in futures_util::future::join_all(requests).await {
        assert_eq!(res.status(), 200);
        ids.insert(
            body(res).await["conversation_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(ids.len(), 30);
    let server = server.restart().await;
    let list = body(server.get("/api/conversations?limit=100").await).await;
    let listed: HashSet<String> = list["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["conversation_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(listed, ids);
    for id in &ids {
        let events = body(server.get(&format!("/api/conversations/{id}/events")).await).await;
        let first = &events["events"][0];
        assert_eq!(first["id"], 0);
        assert_eq!(first["action"], "message", "first message of {id} kept");
        assert!(
            first["args"]["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("task "))
        );
    }
}

#[tokio::test]
async fn conversations_older_than_the_max_age_are_hidden_from_the_list_only() {
    let server = TestServer::spawn_with(|c| c.conversation_max_age_seconds = 3600).await;
    let old = json!({"conversation_id": "old1", "selected_repository": null,
                     "created_at": "2020-01-01T00:00:00Z", "title": "Old one"});
    let dir = server.data_dir().join("sessions/old1");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("metadata.json"), old.to_string()).expect("write");
    let server = server.restart().await;
    let list = body(server.get("/api/conversations").await).await;
    assert_eq!(list["results"], json!([]));
    let info = body(server.get("/api/conversations/old1").await).await;
    assert_eq!(info["title"], "Old one");
}
