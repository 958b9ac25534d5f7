//! Hardening item 9: `/openapi.json` describes the server that serves it. The document
//! lists the routes this server mounts (SaaS mode's org, API key, git-linking and webhook
//! routes only there), declares query parameters in the query and every status an
//! operation answers with its JSON body; and the server bugs that schema fuzzing
//! (`schema_fuzz.rs`) found stay fixed.

use openhands_core::config::Config;
use openhands_test_support::{TestServer, json_body};
use serde_json::{Value, json};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

async fn document(server: &TestServer) -> Value {
    let res = server.get("/openapi.json").await;
    assert_eq!(res.status(), 200);
    json_body(res).await
}

/// SaaS mode on SQLite with the local user and the unisolated sandbox: enough to render
/// SaaS mode's document, no login provider needed.
fn saas(config: &mut Config) {
    config.config_class = "saas".into();
    config.plugins.user_auth = Some("oss.local_user".into());
    config.database.migrate_on_start = true;
    config.plugins.sandbox = Some("oss.process".into());
    config.sandbox.allow_unisolated = true;
}

/// Mounts the Gitea webhook route on the server of `config`.
#[cfg(feature = "gitea")]
fn with_gitea_webhooks(config: &Config) {
    openhands_gitea::config::GiteaConfig::install_for(
        &config.file_store_path,
        openhands_gitea::config::GiteaConfig {
            base_url: "http://127.0.0.1:9".into(),
            webhook_secret: "webhook-secret".into(),
            token: "token".into(),
            user_id: "someone".into(),
            bot_login: "openhands".into(),
            max_attempts: 1,
            backoff_ms: 1_000,
        },
    );
}

/// `(method, path, operation)` of every operation of `doc`.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((method.to_owned(), path.clone(), op.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_saas_document_describes_the_org_and_key_routes_and_the_oss_one_does_not() {
    let oss = document(&TestServer::spawn().await).await;
    let saas = document(&TestServer::spawn_with(saas).await).await;
    for path in [
        "/api/keys",
        "/api/keys/{key_id}",
        "/api/organizations",
        "/api/organizations/{org_id}/members",
        "/api/organizations/{org_id}/members/{user_id}",
        "/api/organizations/{org_id}/switch",
    ] {
        assert!(saas["paths"].get(path).is_some(), "SaaS lacks {path}");
        assert!(oss["paths"].get(path).is_none(), "OSS has {path}");
    }
    // Both describe the open API.
    for doc in [&oss, &saas] {
        assert!(doc["paths"].get("/api/conversations").is_some());
    }
    // Linking and webhooks are mounted only when configured, and described only then.
    assert!(
        saas["paths"]
            .get("/api/git-oauth/{provider}/login")
            .is_none()
    );
    assert!(
        saas["paths"]
            .get("/integration/{provider}/events")
            .is_none()
    );
}

#[cfg(feature = "gitea")]
#[tokio::test]
async fn configured_linking_and_webhook_routes_are_described() {
    let server = TestServer::spawn_with(|c| {
        saas(c);
        // GitLab: GitHub's client id would also turn the GitHub App's webhooks on.
        c.git_oauth.gitlab.client_id = Some("client".into());
        c.git_oauth.gitlab.client_secret =
            Some(openhands_core::secret::Secret::new("secret".to_owned()));
        with_gitea_webhooks(c);
    })
    .await;
    let doc = document(&server).await;
    for path in [
        "/api/git-oauth/{provider}/login",
        "/api/git-oauth/{provider}/callback",
        "/api/git-oauth/{provider}",
        "/integration/{provider}/events",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    // The webhook reads its body itself: none of the JSON extractor's statuses.
    let webhook = &doc["paths"]["/integration/{provider}/events"]["post"]["responses"];
    assert!(webhook.get("415").is_none() && webhook.get("422").is_none());
    assert!(webhook.get("413").is_some() && webhook.get("403").is_some());
}

#[tokio::test]
async fn query_parameters_are_declared_in_the_query_and_path_ones_in_the_path() {
    let oss = document(&TestServer::spawn().await).await;
    let saas = document(&TestServer::spawn_with(saas).await).await;
    for doc in [&oss, &saas] {
        for (method, path, op) in operations(doc) {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for param in &params {
                let name = param["name"].as_str().expect("name");
                let in_template = path.contains(&format!("{{{name}}}"));
                assert_eq!(
                    param["in"] == "path",
                    in_template,
                    "{method} {path}: `{name}` is declared in {}",
                    param["in"]
                );
                if [
                    "page_id", "limit", "start_id", "end_id", "reverse", "path", "file",
                ]
                .contains(&name)
                {
                    assert_eq!(param["in"], "query", "{method} {path}: {name}");
                }
            }
            // Every placeholder of the template is a declared path parameter.
            for placeholder in path.split('{').skip(1) {
                let name = placeholder.split('}').next().unwrap_or_default();
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path"),
                    "{method} {path}: `{name}` is not declared"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_error_is_declared_with_a_json_body() {
    let saas = document(&TestServer::spawn_with(saas).await).await;
    for (method, path, op) in operations(&saas) {
        for (status, response) in op["responses"].as_object().expect("responses") {
            let code: u16 = status.parse().expect("a numeric status");
            if code < 400 {
                continue;
            }
            assert!(
                response["content"]["application/json"]["schema"].is_object(),
                "{method} {path} {status}: no JSON body declared"
            );
        }
    }
}

#[tokio::test]
async fn the_shared_middlewares_statuses_are_declared_where_they_apply() {
    let doc = document(&TestServer::spawn().await).await;
    let responses = |path: &str, method: &str| doc["paths"][path][method]["responses"].clone();
    let post_settings = responses("/api/settings", "post");
    for status in [
        "401", "403", "408", "413", "415", "421", "422", "429", "503",
    ] {
        assert!(
            post_settings.get(status).is_some(),
            "POST /api/settings {status}"
        );
    }
    assert_eq!(
        post_settings["401"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
    let list = responses("/api/conversations", "get");
    for status in ["401", "422", "429"] {
        assert!(
            list.get(status).is_some(),
            "GET /api/conversations {status}"
        );
    }
    // No body, no body statuses; no login, no login statuses; a GET is never cross-site.
    assert!(list.get("415").is_none() && list.get("413").is_none());
    let alive = responses("/alive", "get");
    for status in ["401", "403", "415"] {
        assert!(alive.get(status).is_none(), "GET /alive {status}");
    }
}

#[tokio::test]
async fn the_document_names_the_credentials_of_the_mode() {
    let open = document(&TestServer::spawn().await).await;
    assert!(
        open["paths"]["/api/settings"]["get"]
            .get("security")
            .is_none()
    );
    assert!(open["components"].get("securitySchemes").is_none());

    let keyed = document(
        &TestServer::spawn_with(|c| {
            c.session_api_key = Some(openhands_core::secret::Secret::new("k".to_owned()));
        })
        .await,
    )
    .await;
    assert_eq!(
        keyed["paths"]["/api/settings"]["get"]["security"],
        json!([{"session_api_key": []}])
    );
    assert_eq!(
        keyed["components"]["securitySchemes"]["session_api_key"]["name"],
        "X-Session-API-Key"
    );
    assert!(keyed["paths"]["/alive"]["get"].get("security").is_none());

    let saas = document(&TestServer::spawn_with(saas).await).await;
    let schemes = &saas["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    assert!(
        saas["paths"]["/api/keys"]["post"]["security"]
            .as_array()
            .is_some_and(|s| s.contains(&json!({"api_key": []})))
    );
}

#[tokio::test]
async fn json_answers_are_declared_as_json() {
    let server = TestServer::spawn().await;
    let doc = document(&server).await;
    for (method, path) in [
        ("delete", "/api/conversations/{conversation_id}"),
        ("patch", "/api/conversations/{conversation_id}"),
        ("get", "/health"),
    ] {
        let content = &doc["paths"][path][method]["responses"]["200"]["content"];
        assert!(
            content.get("application/json").is_some(),
            "{method} {path}: {content}"
        );
    }
    // What the server really sends for those.
    let res = server
        .client
        .delete(server.url("/api/conversations/abc123"))
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
}

/// Found by schema fuzzing: a NUL in a workspace path reached the tool server, whose file
/// system call failed: a 500.
#[tokio::test]
async fn a_nul_in_a_workspace_path_is_a_422_naming_the_parameter() {
    let server = TestServer::spawn().await;
    server.store_default_settings().await;
    let created = json_body(
        server
            .post_json("/api/conversations", &json!({"initial_user_msg": "hi"}))
            .await,
    )
    .await;
    let id = created["conversation_id"].as_str().expect("id").to_owned();
    for (route, param) in [
        ("list-files?path=a%00b", "path"),
        ("select-file?file=a%00b", "file"),
        ("git/diff?path=%00", "path"),
    ] {
        let res = server
            .get(&format!("/api/conversations/{id}/{route}"))
            .await;
        assert_eq!(res.status(), 422, "{route}");
        let body = json_body(res).await;
        assert_eq!(body["detail"][0]["loc"], json!(["query", param]), "{route}");
    }
    // The workspace still answers.
    let listed = server
        .get(&format!("/api/conversations/{id}/list-files"))
        .await;
    assert_eq!(listed.status(), 200);
}

/// The webhook route read its body with actix's `Bytes` extractor: bodies over 256 KiB
/// (whatever `max_body_bytes` said) got a plain-text 413, not JSON.
#[cfg(feature = "gitea")]
#[tokio::test]
async fn a_webhook_body_is_read_up_to_max_body_bytes_and_a_larger_one_is_a_json_413() {
    let server = TestServer::spawn_with(|c| {
        saas(c);
        c.max_body_bytes = 1024 * 1024;
        with_gitea_webhooks(c);
    })
    .await;
    let send = |size: usize| {
        server
            .client
            .post(server.url("/integration/gitea/events"))
            .header("content-type", "application/json")
            .header("x-gitea-event", "issues")
            .header("x-gitea-delivery", "d1")
            .header("x-gitea-signature", "00")
            .body(format!("{{\"pad\":\"{}\"}}", "x".repeat(size)))
            .send()
    };
    // Larger than actix's default, within `max_body_bytes`: read, and refused for its
    // signature.
    let res = send(300 * 1024).await.expect("post");
    assert_eq!(res.status(), 403);
    assert_eq!(json_body(res).await["error"]["code"], "bad_signature");
    let res = send(2 * 1024 * 1024).await.expect("post");
    assert_eq!(res.status(), 413);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(json_body(res).await["error"]["code"], "payload_too_large");
}
