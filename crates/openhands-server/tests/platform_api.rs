//! Health, options, middleware (session key, rate limit, cache, CORS, request id), the web
//! app fallback and the OpenAPI document, over HTTP.

use openhands_core::config::{RateLimitSetting, UserRateLimitSetting};
use openhands_core::secret::Secret;
use openhands_test_support::TestServer;
use serde_json::json;

use openhands_test_support::json_body as body;

#[tokio::test]
async fn alive_health_and_server_info() {
    let server = TestServer::spawn().await;
    assert_eq!(
        body(server.get("/alive").await).await,
        json!({"status": "ok"})
    );
    assert_eq!(body(server.get("/health").await).await, json!("OK"));
    let info = body(server.get("/server_info").await).await;
    assert!(info["uptime"].as_f64().is_some_and(|u| u >= 0.0));
    assert!(info["idle_time"].is_number());
    assert!(
        info["resources"]["memory"]["rss"]
            .as_u64()
            .is_some_and(|r| r > 0)
    );
    for key in ["cpu_percent", "memory", "disk", "io"] {
        assert!(info["resources"].get(key).is_some(), "{key}");
    }
}

#[tokio::test]
async fn ready_is_200_when_stores_answer_and_503_naming_the_failure() {
    let server = TestServer::spawn().await;
    let res = server.get("/ready").await;
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await["status"], "ok");

    // Make the sessions directory unusable: a plain file where the directory should be.
    let sessions = server.data_dir().join("sessions");
    let _ = std::fs::remove_dir_all(&sessions);
    std::fs::write(&sessions, b"not a directory").expect("write");
    let res = server.get("/ready").await;
    assert_eq!(res.status(), 503);
    let got = body(res).await;
    assert_eq!(got["status"], "error");
    assert!(got["failed"].get("conversation_store").is_some(), "{got}");
    assert!(got["failed"].get("settings_store").is_none(), "{got}");
}

#[tokio::test]
async fn options_routes() {
    let server = TestServer::spawn_with(|c| {
        c.github_app_client_id = "Iv1.test".into();
        c.hide_llm_settings = true;
    })
    .await;
    let models = body(server.get("/api/options/models").await).await;
    assert!(
        models
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x == "openai/gpt-4o"))
    );
    assert_eq!(
        body(server.get("/api/options/agents").await).await,
        json!(["CodeActAgent"])
    );
    assert_eq!(
        body(server.get("/api/options/security-analyzers").await).await,
        json!([])
    );
    let config = body(server.get("/api/options/config").await).await;
    assert_eq!(
        config,
        json!({"APP_MODE": "oss", "GITHUB_CLIENT_ID": "Iv1.test", "POSTHOG_CLIENT_KEY": "",
               "FEATURE_FLAGS": {"ENABLE_BILLING": false, "HIDE_LLM_SETTINGS": true}})
    );
}

#[tokio::test]
async fn session_api_key_guards_api_routes_only() {
    let server =
        TestServer::spawn_with(|c| c.session_api_key = Some(Secret::new("s3cret-key"))).await;
    for path in [
        "/api/settings",
        "/api/conversations",
        "/api/options/models",
        "/api/secrets",
    ] {
        let res = server.get(path).await;
        assert_eq!(res.status(), 401, "{path} without key");
        assert_eq!(body(res).await, json!({"detail": "Unauthorized"}));
        let res = server
            .client
            .get(server.url(path))
            .header("X-Session-API-Key", "wrong")
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), 401, "{path} with a wrong key");
    }
    let res = server
        .client
        .get(server.url("/api/conversations"))
        .header("X-Session-API-Key", "s3cret-key")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    let res = server
        .client
        .post(server.url("/api/settings"))
        .json(&json!({"language": "x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 401);
    assert_eq!(
        server.get("/alive").await.status(),
        200,
        "health stays open"
    );
    assert_eq!(server.get("/health").await.status(), 200);
}

#[tokio::test]
async fn rate_limit_answers_429_at_once_with_retry_after() {
    let server = TestServer::spawn_with(|c| c.rate_limit = RateLimitSetting::PerSecond(2)).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(server.get("/alive").await);
    }
    let limited: Vec<_> = statuses.iter().filter(|r| r.status() == 429).collect();
    assert!(!limited.is_empty(), "burst of 4 then refused");
    assert!(statuses[0].status() == 200 && statuses[3].status() == 200);
    let refused = limited[0];
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(refused.headers()["x-ratelimit-remaining"], "0");
    assert!(refused.headers().contains_key("x-ratelimit-reset"));
    assert!(statuses[0].headers().contains_key("x-ratelimit-reset"));
    let res = server.get("/alive").await;
    if res.status() == 429 {
        assert_eq!(body(res).await, json!({"message": "Too many requests"}));
    }
    assert_ne!(
        server.get("/assets/app.js").await.status(),
        429,
        "/assets is exempt"
    );
}

#[tokio::test]
async fn user_rate_limit_in_memory_answers_429_in_openhands_shape() {
    let server = TestServer::spawn_with(|c| {
        c.user_rate_limit = UserRateLimitSetting::Windows("2/min".parse().expect("windows"));
    })
    .await;
    assert_eq!(server.get("/api/options/agents").await.status(), 200);
    assert_eq!(server.get("/api/options/agents").await.status(), 200);
    let refused = server.get("/api/options/agents").await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["x-ratelimit-limit"], "2");
    assert_eq!(refused.headers()["x-ratelimit-remaining"], "0");
    assert!(refused.headers().contains_key("retry-after"));
    assert!(refused.headers().contains_key("x-ratelimit-reset"));
    assert_eq!(
        body(refused).await,
        json!({"error": "Rate limit exceeded: 2 per 1 minute"})
    );
    assert_eq!(
        server.get("/alive").await.status(),
        200,
        "no login, no user limit"
    );
}

/// `GET /alive` sent from a browser page at `origin`.
async fn get_with_origin(server: &TestServer, origin: &str) -> reqwest::Response {
    server
        .client
        .get(server.url("/alive"))
        .header("Origin", origin)
        .send()
        .await
        .expect("get")
}

#[tokio::test]
async fn cache_headers_request_ids_and_cors() {
    let server = TestServer::spawn().await;
    let res = server.get("/api/conversations").await;
    assert_eq!(
        res.headers()["cache-control"],
        "no-cache, no-store, must-revalidate, max-age=0"
    );
    assert_eq!(res.headers()["pragma"], "no-cache");
    assert_eq!(res.headers()["x-request-id"].len(), 32);
    let res = server
        .client
        .get(server.url("/alive"))
        .header("X-Request-Id", "client-id-1")
        .send()
        .await
        .expect("get");
    assert_eq!(res.headers()["x-request-id"], "client-id-1");

    let res = get_with_origin(&server, "http://localhost:3001").await;
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://localhost:3001"
    );
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let res = get_with_origin(&server, "https://evil.example").await;
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn permitted_cors_origins_replace_the_localhost_rule() {
    let server =
        TestServer::spawn_with(|c| c.permitted_cors_origins = vec!["https://app.example".into()])
            .await;
    let res = get_with_origin(&server, "https://app.example").await;
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let res = get_with_origin(&server, "http://localhost:3001").await;
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn unknown_api_paths_are_json_404_and_pages_fall_back_to_the_app() {
    let web = tempfile::tempdir().expect("web dir");
    std::fs::write(web.path().join("index.html"), "<html>the app</html>").expect("index");
    std::fs::create_dir_all(web.path().join("assets")).expect("assets");
    std::fs::write(web.path().join("assets/app-1234.js"), "console.log(1)").expect("asset");
    let web_dir = web.path().display().to_string();
    let server = TestServer::spawn_with(move |c| c.web_dir = web_dir).await;

    let res = server.get("/api/does-not-exist").await;
    assert_eq!(res.status(), 404);
    assert_eq!(body(res).await, json!({"detail": "Not Found"}));
    let res = server
        .client
        .post(server.url("/somewhere"))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 404);

    let res = server.get("/conversations/abc").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.expect("text"), "<html>the app</html>");
    let res = server.get("/assets/app-1234.js").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=2592000, immutable"
    );
    assert_eq!(server.get("/assets/missing.js").await.status(), 404);
    assert_eq!(
        server
            .get("/%2e%2e/%2e%2e/etc/passwd")
            .await
            .text()
            .await
            .expect("text"),
        "<html>the app</html>"
    );
}

#[tokio::test]
async fn placeholder_page_when_the_app_is_not_built() {
    let server = TestServer::spawn().await;
    let res = server.get("/").await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.expect("text");
    assert!(page.contains("OPENHANDS_WEB_DIR"), "{page}");
    assert!(page.contains("cargo xtask web"), "{page}");
}

#[tokio::test]
async fn openapi_document_lists_the_routes() {
    let server = TestServer::spawn().await;
    let doc = body(server.get("/openapi.json").await).await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/api/settings",
        "/api/secrets",
        "/api/secrets/{secret_id}",
        "/api/conversations",
        "/api/conversations/{conversation_id}/events",
        "/alive",
        "/ready",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    assert!(
        doc["components"]["schemas"]
            .get("GetSettingsModel")
            .is_some()
    );
}

#[tokio::test]
async fn every_response_carries_security_headers_and_the_app_its_policy() {
    let server = TestServer::spawn().await;
    for path in ["/alive", "/api/settings", "/api/no-such-route"] {
        let res = server.get(path).await;
        let headers = res.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(
            headers["content-security-policy"], "frame-ancestors 'none'",
            "{path}"
        );
        assert_eq!(
            headers["referrer-policy"], "strict-origin-when-cross-origin",
            "{path}"
        );
    }
    // The web app (here its placeholder page) gets the full policy.
    let res = server.get("/conversations/abc").await;
    assert!(
        res.headers()["content-type"]
            .to_str()
            .expect("text")
            .starts_with("text/html")
    );
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .expect("text")
        .to_owned();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self' ws: wss:",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
}
