//! `/api/secrets`, `/api/add-git-providers`, `/api/unset-provider-tokens` over HTTP.

use openhands_test_support::TestServer;
use serde_json::{Value, json};

use openhands_test_support::json_body as body;

async fn create(server: &TestServer, name: &str, value: &str) -> reqwest::Response {
    server
        .post_json(
            "/api/secrets",
            &json!({"name": name, "value": value, "description": "d"}),
        )
        .await
}

#[tokio::test]
async fn list_is_empty_at_first() {
    let server = TestServer::spawn().await;
    let res = server.get("/api/secrets").await;
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await, json!({"custom_secrets": []}));
}

#[tokio::test]
async fn create_is_201_and_list_shows_names_never_values() {
    let server = TestServer::spawn().await;
    let res = create(&server, "DB_PASSWORD", "hunter2-value").await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        body(res).await,
        json!({"message": "Secret created successfully"})
    );
    let text = server.get("/api/secrets").await.text().await.expect("text");
    assert!(!text.contains("hunter2-value"));
    let got: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        got,
        json!({"custom_secrets": [{"name": "DB_PASSWORD", "description": "d"}]})
    );
    let file = std::fs::read_to_string(server.data_dir().join("secrets.json")).expect("file");
    assert!(!file.contains("hunter2-value"), "values are sealed at rest");
}

#[tokio::test]
async fn duplicate_name_is_400_and_keeps_the_first_value() {
    let server = TestServer::spawn().await;
    create(&server, "TOKEN", "first").await;
    let res = create(&server, "TOKEN", "second").await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        body(res).await,
        json!({"message": "Secret TOKEN already exists"})
    );
}

#[tokio::test]
async fn invalid_names_and_bodies_are_422() {
    let server = TestServer::spawn().await;
    for name in ["", "1ABC", "HAS SPACE", "A=B"] {
        let res = create(&server, name, "v").await;
        assert_eq!(res.status(), 422, "name {name:?}");
        assert_eq!(body(res).await["detail"][0]["loc"], json!(["body", "name"]));
    }
    let res = server
        .post_json("/api/secrets", &json!({"name": "X"}))
        .await;
    assert_eq!(res.status(), 422);
    assert!(body(res).await.to_string().contains("value"));
}

#[tokio::test]
async fn put_renames_and_describes() {
    let server = TestServer::spawn().await;
    create(&server, "OLD", "v").await;
    let res = server
        .client
        .put(server.url("/api/secrets/OLD"))
        .json(&json!({"name": "NEW", "description": "renamed"}))
        .send()
        .await
        .expect("put");
    assert_eq!(res.status(), 200);
    assert_eq!(
        body(res).await,
        json!({"message": "Secret updated successfully"})
    );
    let got = body(server.get("/api/secrets").await).await;
    assert_eq!(
        got,
        json!({"custom_secrets": [{"name": "NEW", "description": "renamed"}]})
    );
}

#[tokio::test]
async fn put_onto_a_taken_name_is_400_and_missing_is_404() {
    let server = TestServer::spawn().await;
    create(&server, "A", "v").await;
    create(&server, "B", "v").await;
    let put = |from: &str, to: &str| {
        server
            .client
            .put(server.url(&format!("/api/secrets/{from}")))
            .json(&json!({"name": to}))
            .send()
    };
    let res = put("A", "B").await.expect("put");
    assert_eq!(res.status(), 400);
    assert_eq!(
        body(res).await,
        json!({"message": "Secret B already exists"})
    );
    let res = put("MISSING", "C").await.expect("put");
    assert_eq!(res.status(), 404);
    assert_eq!(
        body(res).await,
        json!({"error": "Secret with ID MISSING not found"})
    );
    let names = body(server.get("/api/secrets").await).await;
    assert_eq!(names["custom_secrets"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn delete_removes_and_missing_is_404() {
    let server = TestServer::spawn().await;
    create(&server, "GONE", "v").await;
    let delete = |name: &str| {
        server
            .client
            .delete(server.url(&format!("/api/secrets/{name}")))
            .send()
    };
    let res = delete("GONE").await.expect("delete");
    assert_eq!(res.status(), 200);
    assert_eq!(
        body(res).await,
        json!({"message": "Secret deleted successfully"})
    );
    let res = delete("GONE").await.expect("delete");
    assert_eq!(res.status(), 404);
    assert_eq!(
        body(res).await,
        json!({"error": "Secret with ID GONE not found"})
    );
}

#[tokio::test]
async fn concurrent_creates_lose_nothing() {
    let server = TestServer::spawn().await;
    let server_ref = &server;
    let requests = (0..40).map(|i| async move {
        let secret = json!({"name": format!("S{i}"), "value": format!("v{i}")});
        server_ref.post_json("/api/secrets", &secret).await
    });
    for res in futures_util::future::join_all(requests).await {
        assert_eq!(res.status(), 201);
    }
    let got = body(server.get("/api/secrets").await).await;
    assert_eq!(got["custom_secrets"].as_array().map(Vec::len), Some(40));
    let server = server.restart().await;
    let got = body(server.get("/api/secrets").await).await;
    assert_eq!(
        got["custom_secrets"].as_array().map(Vec::len),
        Some(40),
        "all survive a restart"
    );
}

#[tokio::test]
async fn provider_tokens_are_stored_merged_and_unset() {
    let server = TestServer::spawn().await;
    server
        .post_json("/api/settings", &json!({"language": "en"}))
        .await;
    create(&server, "KEEP_ME", "v").await;
    let res = server
        .post_json(
            "/api/add-git-providers",
            &json!({"provider_tokens": {"github": {"token": "ghp_secret_token", "host": "github.com"},
                                        "gitlab": {"token": "glpat-secret"}}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await, json!({"message": "Git providers stored"}));
    let text = server
        .get("/api/settings")
        .await
        .text()
        .await
        .expect("text");
    assert!(!text.contains("ghp_secret_token") && !text.contains("glpat-secret"));
    let got: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        got["provider_tokens_set"],
        json!({"github": "github.com", "gitlab": null})
    );

    // An entry without a token keeps the stored token with the new host; providers not sent go.
    server
        .post_json(
            "/api/add-git-providers",
            &json!({"provider_tokens": {"github": {"token": "", "host": "ghe.example"}}}),
        )
        .await;
    let got = body(server.get("/api/settings").await).await;
    assert_eq!(got["provider_tokens_set"], json!({"github": "ghe.example"}));

    let res = server
        .post_json("/api/unset-provider-tokens", &json!({}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        body(res).await,
        json!({"message": "Unset Git provider tokens"})
    );
    let got = body(server.get("/api/settings").await).await;
    assert_eq!(got["provider_tokens_set"], json!({}));
    let names = body(server.get("/api/secrets").await).await;
    assert_eq!(
        names["custom_secrets"][0]["name"], "KEEP_ME",
        "custom secrets are kept"
    );
}

#[tokio::test]
async fn unknown_provider_is_422() {
    let server = TestServer::spawn().await;
    let res = server
        .post_json(
            "/api/add-git-providers",
            &json!({"provider_tokens": {"sourceforge": {"token": "x"}}}),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(body(res).await.to_string().contains("provider_tokens"));
}
