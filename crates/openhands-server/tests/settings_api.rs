//! `/api/settings` and `/api/reset-settings` over HTTP.

use openhands_test_support::TestServer;
use serde_json::{Value, json};

use openhands_test_support::json_body as body;

#[tokio::test]
async fn get_settings_is_404_before_anything_is_stored() {
    let server = TestServer::spawn().await;
    let res = server.get("/api/settings").await;
    assert_eq!(res.status(), 404);
    assert_eq!(body(res).await, json!({"error": "Settings not found"}));
}

#[tokio::test]
async fn post_then_get_returns_fields_and_hides_secrets() {
    let server = TestServer::spawn().await;
    let res = server
        .post_json(
            "/api/settings",
            &json!({"llm_model": "openai/gpt-4o", "llm_api_key": "sk-secret-123",
                    "search_api_key": "tvly-secret", "language": "fr", "max_iterations": 42,
                    "unknown_key": "ignored"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await, json!({"message": "Settings stored"}));

    let res = server.get("/api/settings").await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.expect("text");
    assert!(!text.contains("sk-secret-123") && !text.contains("tvly-secret"));
    let got: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(got["llm_model"], "openai/gpt-4o");
    assert_eq!(got["language"], "fr");
    assert_eq!(got["max_iterations"], 42);
    assert_eq!(got["llm_api_key"], Value::Null);
    assert_eq!(got["llm_api_key_set"], true);
    assert_eq!(got["search_api_key_set"], true);
    assert_eq!(got["enable_default_condenser"], true);
    assert_eq!(got["secrets_store"], json!({"provider_tokens": {}}));
    assert_eq!(got["provider_tokens_set"], json!({}));
    assert!(got.get("unknown_key").is_none());
}

#[tokio::test]
async fn post_keeps_key_model_and_base_url_but_resets_other_fields() {
    let server = TestServer::spawn().await;
    server
        .post_json(
            "/api/settings",
            &json!({"llm_model": "m1", "llm_api_key": "sk-1", "llm_base_url": "http://llm.local",
                    "language": "fr", "confirmation_mode": true}),
        )
        .await;
    let res = server
        .post_json("/api/settings", &json!({"agent": "CodeActAgent"}))
        .await;
    assert_eq!(res.status(), 200);
    let got = body(server.get("/api/settings").await).await;
    assert_eq!(got["llm_model"], "m1");
    assert_eq!(got["llm_base_url"], "http://llm.local");
    assert_eq!(got["llm_api_key_set"], true);
    assert_eq!(got["agent"], "CodeActAgent");
    assert_eq!(
        got["language"],
        Value::Null,
        "a full replacement resets other fields"
    );
    assert_eq!(got["confirmation_mode"], Value::Null);
}

#[tokio::test]
async fn blank_api_key_clears_it() {
    let server = TestServer::spawn().await;
    server
        .post_json("/api/settings", &json!({"llm_api_key": "sk-1"}))
        .await;
    server
        .post_json("/api/settings", &json!({"llm_api_key": ""}))
        .await;
    let got = body(server.get("/api/settings").await).await;
    assert_eq!(got["llm_api_key_set"], false);
}

#[tokio::test]
async fn invalid_settings_are_refused_naming_the_field_and_keep_the_old_ones() {
    let server = TestServer::spawn().await;
    server
        .post_json("/api/settings", &json!({"language": "fr"}))
        .await;

    let res = server
        .post_json("/api/settings", &json!({"condenser_max_size": 5}))
        .await;
    assert_eq!(res.status(), 422);
    let err = body(res).await;
    assert_eq!(
        err["detail"][0]["loc"],
        json!(["body", "condenser_max_size"])
    );

    let res = server
        .post_json("/api/settings", &json!({"max_iterations": "many"}))
        .await;
    assert_eq!(res.status(), 422);
    let err = body(res).await;
    assert_eq!(err["detail"][0]["loc"], json!(["body", "max_iterations"]));

    let res = server
        .client
        .post(server.url("/api/settings"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 422);
    assert_eq!(body(res).await["detail"][0]["type"], "json_invalid");

    let got = body(server.get("/api/settings").await).await;
    assert_eq!(
        got["language"], "fr",
        "failed requests leave the stored settings intact"
    );
}

#[tokio::test]
async fn oversized_body_is_413() {
    let server = TestServer::spawn_with(|c| c.max_body_bytes = 2048).await;
    let big = "x".repeat(4096);
    let res = server
        .post_json("/api/settings", &json!({"language": big}))
        .await;
    assert_eq!(res.status(), 413);
    assert!(
        body(res).await["detail"]
            .as_str()
            .is_some_and(|d| d.contains("2048"))
    );
}

#[tokio::test]
async fn reset_settings_is_gone() {
    let server = TestServer::spawn().await;
    let res = server.post_json("/api/reset-settings", &json!({})).await;
    assert_eq!(res.status(), 410);
    assert_eq!(
        body(res).await,
        json!({"error": "Reset settings functionality has been removed."})
    );
}

#[tokio::test]
async fn api_keys_are_encrypted_on_disk_and_survive_a_restart() {
    let server = TestServer::spawn().await;
    server
        .post_json(
            "/api/settings",
            &json!({"llm_api_key": "sk-on-disk-check", "language": "es"}),
        )
        .await;
    let file =
        std::fs::read_to_string(server.data_dir().join("settings.json")).expect("settings file");
    assert!(
        !file.contains("sk-on-disk-check"),
        "the key must be sealed at rest"
    );
    assert!(file.contains("enc:k1:"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = server.data_dir().join(".secret_key");
        let mode = std::fs::metadata(key)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let server = server.restart().await;
    let got = body(server.get("/api/settings").await).await;
    assert_eq!(got["language"], "es");
    assert_eq!(got["llm_api_key_set"], true);
}

#[tokio::test]
async fn concurrent_posts_never_lose_the_kept_api_key() {
    let server = TestServer::spawn().await;
    server
        .post_json("/api/settings", &json!({"llm_api_key": "sk-keep"}))
        .await;
    let server_ref = &server;
    let requests = (0..20).map(|i| async move {
        let settings = json!({"language": format!("l{i}")});
        server_ref.post_json("/api/settings", &settings).await
    });
    for res in futures_util::future::join_all(requests).await {
        assert_eq!(res.status(), 200);
    }
    let got = body(server.get("/api/settings").await).await;
    assert_eq!(got["llm_api_key_set"], true);
    assert!(got["language"].as_str().is_some_and(|l| l.starts_with('l')));
}
