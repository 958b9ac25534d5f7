//! Issue 25: DNS rebinding. A page whose domain its owner re-points at 127.0.0.1 talks to
//! the local server as its own origin, so the origin check cannot see it; its `Host`
//! header still names the attacker's domain, and the server refuses such requests, reads
//! included, while serving its own names, IP addresses and configured hosts.

use openhands_test_support::{TestServer, json_body as body};

async fn get_with_host(server: &TestServer, path: &str, host: &str) -> reqwest::Response {
    server
        .client
        .get(server.url(path))
        .header("host", host)
        .send()
        .await
        .expect("GET")
}

#[tokio::test]
async fn a_rebound_domain_can_neither_read_nor_write() {
    let server = TestServer::spawn().await;
    let port = server.address.port();
    let rebound = format!("rebind.evil.example:{port}");

    let read = get_with_host(&server, "/api/settings", &rebound).await;
    assert_eq!(read.status(), 421);
    let refusal = body(read).await;
    assert_eq!(refusal["code"], "host_not_allowed");
    assert!(
        refusal["detail"]
            .as_str()
            .is_some_and(|d| d.contains("allowed_hosts")),
        "{refusal}"
    );

    // Same-origin to the browser, so no cross-site Origin would stop it.
    let write = server
        .client
        .post(server.url("/api/settings"))
        .header("host", &rebound)
        .header("origin", format!("http://{rebound}"))
        .json(&serde_json::json!({"language": "pwned"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(write.status(), 421);
    let settings = body(server.get("/api/settings").await).await;
    assert_ne!(settings["language"], "pwned");
}

#[tokio::test]
async fn own_names_addresses_and_configured_hosts_are_served() {
    let server = TestServer::spawn_with(|c| {
        c.allowed_hosts = vec!["openhands.internal".into()];
    })
    .await;
    let port = server.address.port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("openhands.internal:{port}"),
    ] {
        let res = get_with_host(&server, "/api/conversations", &host).await;
        assert_eq!(res.status(), 200, "{host}");
    }
    let other = get_with_host(&server, "/alive", &format!("other.internal:{port}")).await;
    assert_eq!(other.status(), 421, "health routes are not exempt");
}
