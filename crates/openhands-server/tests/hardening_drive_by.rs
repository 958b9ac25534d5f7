//! Issue 25, item 1: a web page the user visits must not be able to change anything on the
//! local server. Browsers send simple (unpreflighted) cross-site requests such as a
//! `text/plain` POST and open WebSockets to any site; the server refuses them by their
//! `Origin` and by their content type, while its own web app (same origin) and non-browser
//! clients (no `Origin`) keep working.

use futures_util::StreamExt;
use openhands_test_support::{TestServer, json_body as body};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const EVIL: &str = "https://evil.example";

fn own_origin(server: &TestServer) -> String {
    format!("http://{}", server.address)
}

/// A POST to `path` with a raw body, an optional `Origin` and a content type.
async fn post_raw(
    server: &TestServer,
    path: &str,
    origin: Option<&str>,
    content_type: &str,
    payload: &str,
) -> reqwest::Response {
    let mut request = server
        .client
        .post(server.url(path))
        .header("content-type", content_type)
        .body(payload.to_owned());
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.expect("POST")
}

async fn stored_language(server: &TestServer) -> Value {
    body(server.get("/api/settings").await).await["language"].clone()
}

async fn server_with_language(language: &str) -> TestServer {
    let server = TestServer::spawn().await;
    let res = server
        .post_json("/api/settings", &json!({"language": language}))
        .await;
    assert_eq!(res.status(), 200);
    server
}

#[tokio::test]
async fn a_cross_site_text_plain_post_is_refused_and_changes_nothing() {
    let server = server_with_language("en").await;
    let res = post_raw(
        &server,
        "/api/settings",
        Some(EVIL),
        "text/plain;charset=UTF-8",
        r#"{"language":"pwned","llm_base_url":"https://evil.example/v1"}"#,
    )
    .await;
    assert_eq!(res.status(), 403);
    let err = body(res).await;
    assert_eq!(err["code"], "csrf_rejected", "{err}");
    assert_eq!(stored_language(&server).await, "en");
}

#[tokio::test]
async fn a_cross_site_json_post_is_refused_too() {
    let server = server_with_language("en").await;
    for origin in [EVIL, "null", "http://localhost:1"] {
        let res = post_raw(
            &server,
            "/api/settings",
            Some(origin),
            "application/json",
            r#"{"language":"pwned"}"#,
        )
        .await;
        assert_eq!(res.status(), 403, "Origin: {origin}");
    }
    let res = server
        .client
        .delete(server.url("/api/conversations/whatever"))
        .header("origin", EVIL)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status(), 403);
    assert_eq!(stored_language(&server).await, "en");
}

#[tokio::test]
async fn a_post_from_the_servers_own_origin_or_without_origin_is_accepted() {
    let server = server_with_language("en").await;
    let own = own_origin(&server);
    let res = post_raw(
        &server,
        "/api/settings",
        Some(&own),
        "application/json",
        r#"{"language":"fr"}"#,
    )
    .await;
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
    assert_eq!(stored_language(&server).await, "fr");

    let res = post_raw(
        &server,
        "/api/settings",
        None,
        "application/json; charset=utf-8",
        r#"{"language":"de"}"#,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(stored_language(&server).await, "de");
}

#[tokio::test]
async fn configured_origins_are_accepted() {
    let server = TestServer::spawn_with(|c| {
        c.permitted_cors_origins = vec!["https://app.example/".into()];
        c.web_host = Some("openhands.example".into());
    })
    .await;
    for origin in ["https://app.example", "https://openhands.example"] {
        let res = post_raw(
            &server,
            "/api/settings",
            Some(origin),
            "application/json",
            r#"{"language":"fr"}"#,
        )
        .await;
        assert_eq!(res.status(), 200, "Origin: {origin}");
    }
    let res = post_raw(
        &server,
        "/api/settings",
        Some(EVIL),
        "application/json",
        r#"{"language":"x"}"#,
    )
    .await;
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn reads_from_other_origins_are_left_to_cors() {
    let server = server_with_language("en").await;
    let res = server
        .client
        .get(server.url("/api/settings"))
        .header("origin", EVIL)
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_json_route_wants_a_json_content_type() {
    let server = server_with_language("en").await;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let res = post_raw(
            &server,
            "/api/settings",
            None,
            content_type,
            r#"{"language":"pwned"}"#,
        )
        .await;
        assert_eq!(res.status(), 415, "{content_type}");
        let err = body(res).await;
        let detail = err["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("application/json"), "{err}");
    }
    // No content type at all (a `Blob` body without a type) is refused the same way.
    let res = server
        .client
        .post(server.url("/api/settings"))
        .body(r#"{"language":"pwned"}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 415);
    assert_eq!(stored_language(&server).await, "en");
}

#[tokio::test]
async fn an_array_in_place_of_an_object_is_refused_with_422() {
    let server = server_with_language("en").await;
    // Serde's derived structs also accept their fields as a sequence, in order.
    for payload in [r#"["m1"]"#, "[]", r#"[null, "CodeActAgent"]"#] {
        let res = post_raw(&server, "/api/settings", None, "application/json", payload).await;
        assert_eq!(res.status(), 422, "{payload}");
        let err = body(res).await;
        assert!(err["detail"][0]["msg"].is_string(), "{err}");
    }
    assert_eq!(stored_language(&server).await, "en");
}

#[tokio::test]
async fn trailing_garbage_after_the_body_is_refused_with_422() {
    let server = server_with_language("en").await;
    for payload in [r#"{"language":"fr"} x"#, r#"{"language":"fr"}{}"#] {
        let res = post_raw(&server, "/api/settings", None, "application/json", payload).await;
        assert_eq!(res.status(), 422, "{payload}");
        assert_eq!(body(res).await["detail"][0]["type"], "json_invalid");
    }
    // Whitespace after the object is fine.
    let res = post_raw(
        &server,
        "/api/settings",
        None,
        "application/json",
        "{\"language\":\"fr\"}\r\n ",
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(stored_language(&server).await, "fr");
}

/// Opens the events socket of a new conversation with the given `Origin`.
async fn open_socket(
    server: &TestServer,
    id: &str,
    origin: Option<&str>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let url = format!(
        "ws://{}/api/conversations/{id}/events/socket",
        server.address
    );
    let mut request = url.into_client_request().expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header value"));
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    // The replay's first frame proves the socket is live.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next()).await;
    Ok(())
}

#[tokio::test]
async fn a_cross_site_page_cannot_open_the_events_socket() {
    let server = TestServer::spawn().await;
    server.store_default_settings().await;
    let res = server
        .post_json("/api/conversations", &json!({"initial_user_msg": "hi"}))
        .await;
    assert_eq!(res.status(), 200);
    let id = body(res).await["conversation_id"]
        .as_str()
        .expect("id")
        .to_owned();

    match open_socket(&server, &id, Some(EVIL)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("a cross-site socket must be refused, got {other:?}"),
    }
    open_socket(&server, &id, Some(&own_origin(&server)))
        .await
        .expect("same-origin socket");
    open_socket(&server, &id, None)
        .await
        .expect("socket without Origin");
}
