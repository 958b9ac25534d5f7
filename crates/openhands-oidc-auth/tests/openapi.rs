//! The routes of this crate are in `/openapi.json` exactly when they are mounted, with the
//! status codes they answer and their query parameters `in: query` (the document is fuzzed
//! against the server, so what it declares must be what the server does).

mod common;

use common::Env;
use openhands_test_support::TestServer;
use openhands_test_support::oidc::OidcConfig;
use serde_json::Value;

/// `(path, method, every status the route itself answers)`; the server adds those of its
/// middleware (rate limits, host check) to every operation.
const ROUTES: &[(&str, &str, &[&str])] = &[
    (
        "/oauth/keycloak/login",
        "get",
        &["302", "422", "500", "503"],
    ),
    (
        "/oauth/keycloak/callback",
        "get",
        &["302", "400", "401", "403", "422", "500", "503"],
    ),
    (
        "/api/logout",
        "post",
        &["200", "401", "403", "422", "500", "503"],
    ),
    ("/api/authenticate", "post", &["200", "401", "403", "503"]),
    (
        "/api/accept_tos",
        "post",
        &["200", "401", "403", "404", "429", "500", "503"],
    ),
    ("/api/sessions", "get", &["200", "401", "403", "429", "503"]),
    (
        "/api/sessions/{session_id}",
        "delete",
        &["200", "401", "403", "404", "429", "503"],
    ),
    (
        "/api/organizations/{org_id}/members/{user_id}/sessions",
        "delete",
        &["200", "401", "403", "404", "429", "503"],
    ),
];

async fn document(server: &TestServer) -> Value {
    server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON document")
}

fn parameter<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|params| params.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("{method} {path}: no parameter {name}"))
}

#[tokio::test]
async fn the_document_of_a_saas_server_describes_every_login_and_session_route() {
    let env = Env::start(OidcConfig::default(), |_| {}).await;
    let doc = document(&env.server).await;
    for (path, method, statuses) in ROUTES {
        let responses = doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} missing"));
        for status in *statuses {
            assert!(
                responses.contains_key(*status),
                "{method} {path}: {status} not declared"
            );
        }
    }
    for (path, method, name) in [
        ("/oauth/keycloak/login", "get", "redirect_url"),
        ("/oauth/keycloak/callback", "get", "code"),
        ("/oauth/keycloak/callback", "get", "state"),
        ("/api/logout", "post", "everywhere"),
    ] {
        let param = parameter(&doc, path, method, name);
        assert_eq!(param["in"], "query", "{path} {name}");
        assert_eq!(param["required"], false, "{path} {name}");
    }
    let session_id = parameter(&doc, "/api/sessions/{session_id}", "delete", "session_id");
    assert_eq!(session_id["in"], "path");
    let schemas = &doc["components"]["schemas"];
    for schema in ["SessionView", "SessionList", "ErrorBody", "AuthRefusal"] {
        assert!(schemas[schema].is_object(), "{schema} missing");
    }
    let view = &schemas["SessionView"]["properties"];
    for field in [
        "id",
        "created_at",
        "last_seen_at",
        "expires_at",
        "user_agent",
        "ip",
        "current",
    ] {
        assert!(view[field].is_object(), "SessionView.{field}");
    }
}

#[tokio::test]
async fn a_server_without_the_oidc_login_does_not_describe_it() {
    let server = TestServer::spawn().await;
    let doc = document(&server).await;
    for (path, _, _) in ROUTES {
        assert!(
            doc["paths"][path].is_null(),
            "{path} described but not mounted"
        );
    }
}
