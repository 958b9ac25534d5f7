//! One behaviour suite per storage extension point, run against every implementation.
//!
//! A store crate calls these from its tests with a fresh store; the suite checks the
//! guarantees documented on the trait (scoping by user, atomic changes, id sequencing).
//! The OSS file stores run them in `tests/conformance.rs`; the SQL stores will run the same.

use openhands_core::StoreError;
use openhands_core::conversation::{ConversationMetadata, ConversationQuery};
use openhands_core::event::{EventQuery, NewEvent};
use openhands_core::extension::{ConversationStore, EventStore, SecretsStore, SettingsStore};
use openhands_core::scope::UserScope;
use openhands_core::secret::Secret;
use openhands_core::secrets::{CustomSecretChange, ProviderToken, ProviderType};
use openhands_core::settings::Settings;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

fn alice() -> UserScope {
    UserScope::user("alice")
}

fn bob() -> UserScope {
    UserScope::user("bob")
}

fn settings(json: serde_json::Value) -> Settings {
    serde_json::from_value(json).expect("valid settings")
}

/// [`SettingsStore`] guarantees.
pub async fn settings_store_suite(store: Arc<dyn SettingsStore>) {
    assert!(
        store.load(&alice()).await.expect("load").is_none(),
        "nothing stored yet"
    );
    store
        .store_merged(
            &alice(),
            settings(serde_json::json!({"llm_api_key": "sk-a", "language": "fr"})),
        )
        .await
        .expect("store");
    let kept = store
        .store_merged(
            &alice(),
            settings(serde_json::json!({"agent": "CodeActAgent"})),
        )
        .await
        .expect("store");
    assert_eq!(
        kept.llm_api_key.as_ref().map(Secret::expose),
        Some("sk-a"),
        "key kept"
    );
    let loaded = store.load(&alice()).await.expect("load").expect("stored");
    assert_eq!(loaded.agent.as_deref(), Some("CodeActAgent"));
    assert_eq!(loaded.language, None, "full replacement");
    assert!(
        store.load(&bob()).await.expect("load").is_none(),
        "scoped by user"
    );
    store.health().await.expect("healthy");
}

/// [`SecretsStore`] guarantees.
pub async fn secrets_store_suite(store: Arc<dyn SecretsStore>) {
    let create = |name: &str| CustomSecretChange::Create {
        name: name.to_owned(),
        value: Secret::new(format!("value-of-{name}")),
        description: String::new(),
    };
    store
        .change_custom_secret(&alice(), create("A"))
        .await
        .expect("create");
    let duplicate = store.change_custom_secret(&alice(), create("A")).await;
    assert!(
        matches!(duplicate, Err(StoreError::AlreadyExists(_))),
        "{duplicate:?}"
    );
    let missing = store
        .change_custom_secret(
            &alice(),
            CustomSecretChange::Delete {
                name: "NOPE".into(),
            },
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .change_custom_secret(&alice(), create(&format!("C{i}")))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("concurrent create");
    }
    let all = store.load(&alice()).await.expect("load").expect("stored");
    assert_eq!(all.custom_secrets.len(), 21, "no concurrent change lost");
    assert_eq!(all.custom_secrets["C7"].secret.expose(), "value-of-C7");

    let tokens = BTreeMap::from([(
        ProviderType::Github,
        ProviderToken {
            token: Some(Secret::new("ghp")),
            user_id: None,
            host: None,
        },
    )]);
    store
        .replace_provider_tokens(&alice(), tokens)
        .await
        .expect("tokens");
    let all = store.load(&alice()).await.expect("load").expect("stored");
    assert_eq!(all.custom_secrets.len(), 21, "custom secrets kept");
    assert!(all.provider_tokens.contains_key(&ProviderType::Github));
    assert!(
        store.load(&bob()).await.expect("load").is_none(),
        "scoped by user"
    );
    store.health().await.expect("healthy");
}

fn metadata(id: &str, scope: &UserScope, age_seconds: i64) -> ConversationMetadata {
    let created = chrono::Utc::now() - chrono::Duration::seconds(age_seconds);
    ConversationMetadata::new(id.to_owned(), scope.user_id.clone(), created)
}

/// [`ConversationStore`] guarantees.
pub async fn conversation_store_suite(store: Arc<dyn ConversationStore>) {
    let unbounded = ConversationQuery {
        limit: usize::MAX,
        ..ConversationQuery::default()
    };
    store
        .search(&alice(), &unbounded)
        .await
        .expect("search with an unbounded limit");
    for i in 0..7 {
        store
            .save(&alice(), &metadata(&format!("a{i}"), &alice(), 100 - i))
            .await
            .expect("save");
    }
    store
        .save(&bob(), &metadata("b0", &bob(), 1))
        .await
        .expect("save");
    assert!(
        store.get(&bob(), "a0").await.expect("get").is_none(),
        "other user's conversation hidden"
    );
    assert!(
        store
            .save(&bob(), &metadata("a0", &bob(), 1))
            .await
            .is_err(),
        "cannot take another user's id"
    );
    assert!(
        !store.delete(&bob(), "a0").await.expect("delete"),
        "cannot delete another user's"
    );

    let mut seen = Vec::new();
    let mut page_id = None;
    loop {
        let query = ConversationQuery {
            page_id: page_id.clone(),
            limit: 3,
            ..Default::default()
        };
        let page = store.search(&alice(), &query).await.expect("search");
        seen.extend(page.results.into_iter().map(|m| m.conversation_id));
        match page.next_page_id {
            Some(next) => page_id = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).rev().map(|i| format!("a{i}")).collect();
    assert_eq!(seen, expected, "newest first, every one once, only alice's");

    assert!(store.delete(&alice(), "a3").await.expect("delete"));
    assert!(store.get(&alice(), "a3").await.expect("get").is_none());
    assert!(!store.delete(&alice(), "a3").await.expect("delete again"));
    store.health().await.expect("healthy");
}

/// [`EventStore`] guarantees.
pub async fn event_store_suite(store: Arc<dyn EventStore>) {
    let scope = alice();
    let tasks: Vec<_> = (0..25)
        .map(|i| {
            let store = store.clone();
            let scope = scope.clone();
            tokio::spawn(async move {
                store
                    .append(
                        &scope,
                        "conv1",
                        NewEvent::user_message(&format!("m{i}"), vec![]),
                    )
                    .await
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.expect("join").expect("append").id);
    }
    assert_eq!(
        ids,
        (0..25).collect::<HashSet<u64>>(),
        "ids 0..25 without gaps or repeats"
    );
    // `usize::MAX` means "everything" (the agent reads its whole history this way); SQL
    // backends must not pass it to the database as an out-of-range LIMIT.
    let everything = store
        .read(
            &scope,
            "conv1",
            EventQuery {
                start_id: 0,
                end_id: None,
                reverse: false,
                limit: usize::MAX,
            },
        )
        .await
        .expect("read with an unbounded limit");
    assert_eq!(everything.events.len(), 25);
    assert!(!everything.has_more);

    let page = store
        .read(
            &scope,
            "conv1",
            EventQuery {
                start_id: 10,
                end_id: None,
                reverse: false,
                limit: 5,
            },
        )
        .await
        .expect("read");
    assert_eq!(
        page.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![10, 11, 12, 13, 14]
    );
    assert!(page.has_more);
    let page = store
        .read(
            &scope,
            "conv1",
            EventQuery {
                start_id: 0,
                end_id: Some(2),
                reverse: true,
                limit: 10,
            },
        )
        .await
        .expect("read");
    assert_eq!(
        page.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![2, 1, 0]
    );
    assert!(!page.has_more);

    store.delete_all(&scope, "conv1").await.expect("delete");
    let fresh = store
        .append(&scope, "conv1", NewEvent::user_message("again", vec![]))
        .await
        .expect("append");
    assert_eq!(fresh.id, 0, "ids restart after deletion");
    store.health().await.expect("healthy");
}
