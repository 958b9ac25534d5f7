//! Failures a client must not see as a 500 (issue 25, item 8): a NUL character, which
//! PostgreSQL text columns refuse, and a lost database connection.

mod common;

use common::{Backend, cipher, fresh_url, test_pool};
use openhands_core::conversation::{ConversationMetadata, ConversationQuery};
use openhands_core::event::{EventQuery, NewEvent};
use openhands_core::extension::{ConversationStore, EventStore, SecretsStore, SettingsStore};
use openhands_core::secret::Secret;
use openhands_core::secrets::CustomSecretChange;
use openhands_core::settings::Settings;
use openhands_core::{StoreError, UserScope};
use openhands_migrations::Migrator;
use openhands_sql_store::{
    Database, SqlConversationStore, SqlEventStore, SqlSecretsStore, SqlSettingsStore,
};
use sea_orm::ConnectionTrait;
use sea_orm_migration::MigratorTrait;

fn alice() -> UserScope {
    UserScope {
        user_id: Some("alice".into()),
        org_id: None,
    }
}

fn all_events() -> EventQuery {
    EventQuery {
        start_id: 0,
        end_id: None,
        reverse: false,
        limit: 100,
    }
}

fn metadata(id: &str) -> ConversationMetadata {
    ConversationMetadata::new(id.into(), Some("alice".into()), chrono::Utc::now())
}

/// Settings are a JSON document, in which a NUL is escaped: it round-trips on both
/// databases. A metadata column is plain text: a NUL there is refused by name on both,
/// not only where PostgreSQL would fail.
async fn nul_round_trips_in_json_and_is_refused_in_text_columns(db: Database) {
    let settings = SqlSettingsStore::new(db.clone(), cipher());
    let incoming: Settings =
        serde_json::from_value(serde_json::json!({"language": "f\u{0}r"})).expect("settings");
    settings
        .store_merged(&alice(), incoming)
        .await
        .expect("store");
    let loaded = settings.load(&alice()).await.expect("load").expect("some");
    assert_eq!(loaded.language.as_deref(), Some("f\u{0}r"));

    let events = SqlEventStore::new(db.clone());
    let stored = events
        .append(
            &alice(),
            "c1",
            NewEvent::user_message("a\u{0}b", Vec::new()),
        )
        .await
        .expect("append");
    let page = events
        .read(&alice(), "c1", all_events())
        .await
        .expect("read");
    assert_eq!(page.events[0].id, stored.id);
    assert!(serde_json::to_string(&page.events[0]).is_ok_and(|j| j.contains("a\\u0000b")));

    let conversations = SqlConversationStore::new(db);
    for (column, meta) in [
        ("title", {
            let mut m = metadata("c2");
            m.title = Some("t\u{0}".into());
            m
        }),
        ("llm_model", {
            let mut m = metadata("c3");
            m.llm_model = Some("gpt\u{0}".into());
            m
        }),
    ] {
        let refused = conversations.save(&alice(), &meta).await;
        match refused {
            Err(StoreError::Invalid(message)) => {
                assert!(message.contains(column), "{message}")
            }
            other => panic!("{column}: {other:?}"),
        }
    }
    conversations
        .save(&alice(), &metadata("c4"))
        .await
        .expect("a clean row is stored");
}

on_both_databases!(
    nul_in_text,
    super::nul_round_trips_in_json_and_is_refused_in_text_columns
);

/// A NUL that reaches a PostgreSQL text column anyway (here a query parameter) is
/// `Invalid`, not a backend failure.
#[tokio::test]
async fn a_nul_postgres_refuses_is_invalid_input() {
    common::run(Backend::Postgres, |db| async move {
        let conversations = SqlConversationStore::new(db.clone());
        let query = ConversationQuery {
            selected_repository: Some("a\u{0}b".into()),
            ..ConversationQuery::default()
        };
        let refused = conversations.search(&alice(), &query).await;
        assert!(
            matches!(refused, Err(StoreError::Invalid(_))),
            "{refused:?}"
        );
        let secrets = SqlSecretsStore::new(db, cipher());
        let refused = secrets
            .change_custom_secret(
                &alice(),
                CustomSecretChange::Create {
                    name: "A".into(),
                    value: Secret::new("v"),
                    description: "d\u{0}".into(),
                },
            )
            .await;
        assert!(
            matches!(refused, Err(StoreError::Invalid(_))),
            "{refused:?}"
        );
    })
    .await;
}

/// Runs `sql` on the server's `postgres` database.
async fn admin(url: &str, name: &str, sql: &str) {
    let admin = Database::connect(&url.replace(name, "postgres"), test_pool())
        .await
        .expect("admin connection");
    admin
        .connection()
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn lost_connections_are_survived_by_reads_and_a_gone_database_is_unavailable() {
    let (url, guard) = fresh_url(Backend::Postgres);
    let common::Guard::Postgres(test_db) = &guard else {
        unreachable!("a PostgreSQL guard")
    };
    let name = test_db.name().to_owned();
    let db = Database::connect(&url, test_pool()).await.expect("connect");
    Migrator::up(db.connection(), None).await.expect("migrate");
    let conversations = SqlConversationStore::new(db.clone());
    let settings = SqlSettingsStore::new(db.clone(), cipher());
    let secrets = SqlSecretsStore::new(db.clone(), cipher());
    let events = SqlEventStore::new(db.clone());
    conversations
        .save(&alice(), &metadata("c1"))
        .await
        .expect("save");

    let terminate = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    );
    for _ in 0..3 {
        admin(&url, &name, &terminate).await;
        assert!(
            conversations
                .get(&alice(), "c1")
                .await
                .expect("get")
                .is_some()
        );
        settings.load(&alice()).await.expect("settings");
        secrets.load(&alice()).await.expect("secrets");
        events
            .read(&alice(), "c1", all_events())
            .await
            .expect("events");
    }

    admin(
        &url,
        &name,
        &format!("DROP DATABASE \"{name}\" WITH (FORCE)"),
    )
    .await;
    let unavailable = |result: Result<(), StoreError>, what: &str| {
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{what}: {result:?}"
        );
    };
    unavailable(conversations.get(&alice(), "c1").await.map(drop), "get");
    unavailable(conversations.save(&alice(), &metadata("c2")).await, "save");
    unavailable(settings.load(&alice()).await.map(drop), "settings");
    unavailable(
        settings
            .store_merged(&alice(), Settings::default())
            .await
            .map(drop),
        "settings write",
    );
    unavailable(secrets.load(&alice()).await.map(drop), "secrets");
}
