//! The example provider plugs into the real server by name, with no edit to core or server.

use openhands_core::registry::Slot;
use openhands_example_plugin::CONVERSATIONS_CREATED;
use openhands_test_support::TestServer;
use serde_json::json;
use std::sync::atomic::Ordering;

#[test]
fn example_implementations_are_registered_under_their_names() {
    let settings: Vec<_> = Slot::SettingsStore
        .registered()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        settings.contains(&"example.memory_settings"),
        "{settings:?}"
    );
    assert!(settings.contains(&"oss.file_settings"), "{settings:?}");
    let monitors: Vec<_> = Slot::MonitoringListener
        .registered()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        monitors.contains(&"example.counting_monitor"),
        "{monitors:?}"
    );
}

#[tokio::test]
async fn server_uses_the_example_settings_store_when_selected() {
    let server = TestServer::spawn_with(|c| {
        c.plugins.settings_store = Some("example.memory_settings".into());
    })
    .await;
    let res = server
        .post_json(
            "/api/settings",
            &json!({"language": "de", "llm_api_key": "sk-x"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = server
        .get("/api/settings")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(body["language"], "de");
    assert_eq!(body["llm_api_key_set"], true);
    assert!(
        !server.data_dir().join("settings.json").exists(),
        "the file store must not have been used"
    );
}

#[tokio::test]
async fn server_calls_the_example_monitor_when_selected() {
    let server = TestServer::spawn_with(|c| {
        c.plugins.monitoring_listener = Some("example.counting_monitor".into());
    })
    .await;
    server.store_default_settings().await;
    let before = CONVERSATIONS_CREATED.load(Ordering::SeqCst);
    let res = server.post_json("/api/conversations", &json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(CONVERSATIONS_CREATED.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn memory_settings_store_passes_the_shared_suite() {
    let store = std::sync::Arc::new(openhands_example_plugin::MemorySettingsStore::default());
    openhands_test_support::conformance::settings_store_suite(store).await;
}

#[tokio::test]
async fn contributed_route_is_mounted_only_while_the_plugin_is_selected() {
    let server = TestServer::spawn_with(|c| {
        c.plugins.settings_store = Some("example.memory_settings".into());
    })
    .await;
    let res = server.get("/api/example/status").await;
    assert_eq!(res.status(), 200);
    let body = openhands_test_support::json_body(res).await;
    assert_eq!(body["plugin"], "example");
    assert!(
        body["selected"]
            .as_array()
            .expect("list")
            .iter()
            .any(|s| s["implementation"] == "example.memory_settings"),
        "{body}"
    );

    let plain = TestServer::spawn().await;
    let res = plain.get("/api/example/status").await;
    assert_eq!(res.status(), 404, "not mounted with the OSS defaults");
}
