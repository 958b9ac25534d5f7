//! The OSS file stores pass the shared store suites.

use openhands_core::crypto::{Cipher, KEY_LEN};
use openhands_core::oss::{
    FileConversationStore, FileEventStore, FileSecretsStore, FileSettingsStore,
};
use openhands_test_support::conformance;
use std::sync::Arc;

fn cipher() -> Arc<Cipher> {
    Arc::new(Cipher::new(vec![("k1".into(), [5; KEY_LEN])]).expect("cipher"))
}

#[tokio::test]
async fn file_settings_store() {
    let dir = tempfile::tempdir().expect("dir");
    conformance::settings_store_suite(Arc::new(FileSettingsStore::new(
        dir.path().into(),
        cipher(),
    )))
    .await;
}

#[tokio::test]
async fn file_secrets_store() {
    let dir = tempfile::tempdir().expect("dir");
    conformance::secrets_store_suite(Arc::new(FileSecretsStore::new(dir.path().into(), cipher())))
        .await;
}

#[tokio::test]
async fn file_conversation_store() {
    let dir = tempfile::tempdir().expect("dir");
    let store = FileConversationStore::open(dir.path().into())
        .await
        .expect("open");
    conformance::conversation_store_suite(Arc::new(store)).await;
}

#[tokio::test]
async fn file_event_store() {
    let dir = tempfile::tempdir().expect("dir");
    conformance::event_store_suite(Arc::new(FileEventStore::new(dir.path().into()))).await;
}
