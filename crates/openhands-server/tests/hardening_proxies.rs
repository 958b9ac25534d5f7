//! Issue 25, item 6: `X-Forwarded-For` is only believed from a configured trusted proxy.
//! From any other peer a forwarding header changes neither the address in the audit log nor
//! the per-IP rate-limit bucket; from a trusted proxy (here 127.0.0.1, the test client) the
//! forwarded client address is used by both.

use openhands_core::config::{Config, RateLimitSetting};
use openhands_core::extension::{AuditEntry, AuditError, AuditLog};
use openhands_test_support::TestServer;
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// Every audit entry this test binary's servers recorded (tests tell theirs apart by the
/// secret name they create).
static ENTRIES: Mutex<Vec<AuditEntry>> = Mutex::new(Vec::new());

struct CapturingAuditLog;

/// The trait's `#[async_trait]` signature written out (this crate has no `async-trait`).
impl AuditLog for CapturingAuditLog {
    fn record<'this, 'entry, 'call>(
        &'this self,
        entry: &'entry AuditEntry,
    ) -> Pin<Box<dyn Future<Output = Result<(), AuditError>> + Send + 'call>>
    where
        'this: 'call,
        'entry: 'call,
        Self: 'call,
    {
        if let Ok(mut entries) = ENTRIES.lock() {
            entries.push(entry.clone());
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

openhands_core::register_plugin!(
    openhands_core::extension::AuditLog,
    "test.capturing_audit",
    "Keeps audit entries in memory for the proxy tests",
    |ctx| Ok(Arc::new(CapturingAuditLog))
);

async fn server(trusted: &[&str]) -> TestServer {
    let trusted: Vec<String> = trusted.iter().map(|s| (*s).to_owned()).collect();
    TestServer::spawn_with(move |c: &mut Config| {
        c.plugins.audit_log = Some("test.capturing_audit".into());
        c.rate_limit = RateLimitSetting::PerSecond(1);
        c.trusted_proxies = trusted;
    })
    .await
}

/// Creates the secret `name` with `X-Forwarded-For: forwarded_for`; returns the audited IP.
async fn audited_ip(server: &TestServer, name: &str, forwarded_for: &str) -> Option<String> {
    let res = server
        .client
        .post(server.url("/api/secrets"))
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"name": name, "value": "v"}))
        .send()
        .await
        .expect("POST /api/secrets");
    assert_eq!(res.status(), 201, "creating {name}");
    let entries = ENTRIES.lock().map(|e| e.clone()).unwrap_or_default();
    let entry = entries
        .iter()
        .find(|e| e.action == "secret.create" && e.target.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no audit entry for {name}: {entries:#?}"));
    entry.ip.clone()
}

/// Statuses of `GET /alive` sent at once, each with the given `X-Forwarded-For`.
async fn statuses(server: &TestServer, forwarded_for: &[&str]) -> Vec<u16> {
    let mut out = Vec::new();
    for value in forwarded_for {
        let res = server
            .client
            .get(server.url("/alive"))
            .header("X-Forwarded-For", *value)
            .send()
            .await
            .expect("GET /alive");
        out.push(res.status().as_u16());
    }
    out
}

const SPOOFED: [&str; 6] = [
    "198.51.100.1",
    "198.51.100.2",
    "198.51.100.3",
    "198.51.100.4",
    "198.51.100.5",
    "198.51.100.6",
];

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored_by_the_audit_log() {
    let server = server(&[]).await;
    let ip = audited_ip(&server, "PROXY_UNTRUSTED", "203.0.113.50").await;
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_does_not_pick_a_fresh_rate_limit_bucket() {
    // 127.0.0.1 is not trusted here (only a network the test client is not in).
    let server = server(&["10.0.0.0/8"]).await;
    let seen = statuses(&server, &SPOOFED).await;
    assert!(
        seen.contains(&429),
        "one bucket for the peer, whatever it claims: {seen:?}"
    );
}

#[tokio::test]
async fn from_a_trusted_proxy_the_forwarded_client_is_audited() {
    let server = server(&["127.0.0.1"]).await;
    // The client's own claim (left) is not believed past the right-most untrusted hop.
    let ip = audited_ip(&server, "PROXY_TRUSTED", "6.6.6.6, 203.0.113.50").await;
    assert_eq!(ip.as_deref(), Some("203.0.113.50"));
}

#[tokio::test]
async fn from_a_trusted_proxy_each_forwarded_client_has_its_own_rate_limit_bucket() {
    let server = server(&["127.0.0.1"]).await;
    let distinct = statuses(&server, &SPOOFED).await;
    assert!(
        distinct.iter().all(|s| *s == 200),
        "one bucket per client: {distinct:?}"
    );
    let same = statuses(&server, &["192.0.2.9"; 6]).await;
    assert!(
        same.contains(&429),
        "one client behind the proxy is limited: {same:?}"
    );
}
