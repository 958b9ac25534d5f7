//! The schema goes up, down and up again on a database holding data, through the
//! `Migrator` API; the stores register under their names and build from config.

mod common;

use common::{Backend, TIMEOUT, cipher, fresh_url, test_pool};
use openhands_core::UserScope;
use openhands_core::config::Config;
use openhands_core::conversation::ConversationMetadata;
use openhands_core::event::NewEvent;
use openhands_core::extension::{ConversationStore, EventStore, SecretsStore, SettingsStore};
use openhands_core::registry::{PluginContext, Slot};
use openhands_core::secret::Secret;
use openhands_core::secrets::CustomSecretChange;
use openhands_migrations::Migrator;
use openhands_sql_store::{
    Database, SqlConversationStore, SqlEventStore, SqlSecretsStore, SqlSettingsStore,
};
use sea_orm_migration::{MigratorTrait, SchemaManager};
use std::sync::Arc;

const TABLES: [&str; 12] = [
    "users",
    "organizations",
    "org_memberships",
    "org_invitations",
    "user_settings",
    "custom_secrets",
    "provider_tokens",
    "conversation_metadata",
    "events",
    "api_keys",
    "audit_log",
    "seaql_migrations",
];

async fn present_tables(db: &Database) -> Vec<&'static str> {
    let manager = SchemaManager::new(db.connection());
    let mut present = Vec::new();
    for table in TABLES {
        if manager.has_table(table).await.expect("has_table") {
            present.push(table);
        }
    }
    present
}

async fn write_some_of_everything(db: &Database) {
    let scope = UserScope::user("alice");
    let settings = serde_json::from_value(serde_json::json!({"llm_api_key": "sk"})).expect("s");
    SqlSettingsStore::new(db.clone(), cipher())
        .store_merged(&scope, settings)
        .await
        .expect("settings");
    SqlSecretsStore::new(db.clone(), cipher())
        .change_custom_secret(
            &scope,
            CustomSecretChange::Create {
                name: "A".into(),
                value: Secret::new("v"),
                description: String::new(),
            },
        )
        .await
        .expect("secret");
    SqlConversationStore::new(db.clone())
        .save(
            &scope,
            &ConversationMetadata::new("c1".into(), Some("alice".into()), chrono::Utc::now()),
        )
        .await
        .expect("conversation");
    SqlEventStore::new(db.clone())
        .append(&scope, "c1", NewEvent::user_message("hi", vec![]))
        .await
        .expect("event");
}

async fn up_down_up_with_data(backend: Backend) {
    let (url, _guard) = fresh_url(backend);
    let db = Database::connect(&url, test_pool()).await.expect("connect");
    Migrator::up(db.connection(), None).await.expect("up");
    assert_eq!(present_tables(&db).await, TABLES, "every table created");
    assert!(
        Migrator::get_pending_migrations(db.connection())
            .await
            .expect("status")
            .is_empty()
    );
    write_some_of_everything(&db).await;

    // Provider crates linked into this test binary (through the workspace's features) run
    // their migrations after the core ones: step down past them to the newest core one.
    let provider_steps: u32 = Migrator::providers()
        .iter()
        .map(|p| (p.migrations)().len() as u32)
        .sum();
    Migrator::down(db.connection(), Some(provider_steps + 1))
        .await
        .expect("down one");
    let pending = Migrator::get_pending_migrations(db.connection())
        .await
        .expect("status");
    assert_eq!(
        pending.len() as u32,
        provider_steps + 1,
        "the newest core migration is pending again"
    );
    assert!(!present_tables(&db).await.contains(&"api_keys"));

    Migrator::down(db.connection(), None)
        .await
        .expect("down all");
    assert_eq!(
        present_tables(&db).await,
        ["seaql_migrations"],
        "down removes every table up created"
    );

    Migrator::up(db.connection(), None).await.expect("up again");
    assert_eq!(present_tables(&db).await, TABLES);
    write_some_of_everything(&db).await;
    let loaded = SqlSecretsStore::new(db.clone(), cipher())
        .load(&UserScope::user("alice"))
        .await
        .expect("load")
        .expect("stored after the second up");
    assert_eq!(loaded.custom_secrets.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_down_up_on_sqlite() {
    tokio::time::timeout(TIMEOUT, up_down_up_with_data(Backend::Sqlite))
        .await
        .expect("in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_down_up_on_postgres() {
    tokio::time::timeout(TIMEOUT, up_down_up_with_data(Backend::Postgres))
        .await
        .expect("in time");
}

#[test]
fn stores_are_registered_under_their_saas_names() {
    let names = |slot: Slot| -> Vec<&str> {
        slot.registered()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    };
    assert!(names(Slot::SettingsStore).contains(&"saas.sql_settings"));
    assert!(names(Slot::SecretsStore).contains(&"saas.sql_secrets"));
    assert!(names(Slot::ConversationStore).contains(&"saas.sql_conversations"));
    assert!(names(Slot::EventStore).contains(&"saas.sql_events"));
}

/// With no `database.url` nor `database.host`, the stores use `<data dir>/openhands.db`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_build_from_config_on_sqlite_in_the_data_dir() {
    let data_dir = tempfile::tempdir().expect("data dir");
    let config = Config {
        file_store_path: data_dir.path().display().to_string(),
        ..Config::default()
    };
    let url = config.database.connection_url(data_dir.path());
    let db = Database::connect(url.expose(), test_pool())
        .await
        .expect("connect");
    Migrator::up(db.connection(), None).await.expect("up");
    let ctx = PluginContext {
        config: Arc::new(config),
        data_dir: data_dir.path().to_path_buf(),
        cipher: cipher(),
        services: None,
        shared: Default::default(),
    };
    let settings = build::<dyn SettingsStore>(&ctx, "saas.sql_settings").await;
    let events = build::<dyn EventStore>(&ctx, "saas.sql_events").await;
    let scope = UserScope::user("alice");
    let stored = serde_json::from_value(serde_json::json!({"language": "fr"})).expect("s");
    settings.store_merged(&scope, stored).await.expect("store");
    events
        .append(&scope, "c1", NewEvent::user_message("hi", vec![]))
        .await
        .expect("append");
    assert!(data_dir.path().join("openhands.db").exists());
    let loaded = settings.load(&scope).await.expect("load").expect("stored");
    assert_eq!(loaded.language.as_deref(), Some("fr"));
}

async fn build<T: ?Sized + 'static>(ctx: &PluginContext, name: &str) -> Arc<T>
where
    openhands_core::registry::Plugin<T>: inventory::Collect,
{
    let plugin = inventory::iter::<openhands_core::registry::Plugin<T>>
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} is registered"));
    match (plugin.build)(ctx.clone()).await {
        Ok(built) => built,
        Err(e) => panic!("building {name}: {e}"),
    }
}
