//! The shared store suites, on SQLite and on PostgreSQL.

mod common;

use common::cipher;
use openhands_sql_store::{
    Database, SqlConversationStore, SqlEventStore, SqlSecretsStore, SqlSettingsStore,
};
use openhands_test_support::conformance;
use std::sync::Arc;

async fn settings(db: Database) {
    conformance::settings_store_suite(Arc::new(SqlSettingsStore::new(db, cipher()))).await;
}

async fn secrets(db: Database) {
    conformance::secrets_store_suite(Arc::new(SqlSecretsStore::new(db, cipher()))).await;
}

async fn conversations(db: Database) {
    conformance::conversation_store_suite(Arc::new(SqlConversationStore::new(db))).await;
}

async fn events(db: Database) {
    conformance::event_store_suite(Arc::new(SqlEventStore::new(db))).await;
}

on_both_databases!(settings_store_suite, super::settings);
on_both_databases!(secrets_store_suite, super::secrets);
on_both_databases!(conversation_store_suite, super::conversations);
on_both_databases!(event_store_suite, super::events);
