//! The isolation matrix: alice in org X owns data; alice in org Y, bob in org X and the
//! local scope can neither read, list, update nor delete it, through any store.

mod common;

use common::cipher;
use openhands_core::conversation::{ConversationMetadata, ConversationQuery};
use openhands_core::event::{EventQuery, NewEvent};
use openhands_core::extension::{ConversationStore, EventStore, SecretsStore, SettingsStore};
use openhands_core::secret::Secret;
use openhands_core::secrets::{CustomSecretChange, ProviderToken, ProviderType, UserSecrets};
use openhands_core::settings::Settings;
use openhands_core::{StoreError, UserScope};
use openhands_sql_store::{
    Database, SqlConversationStore, SqlEventStore, SqlSecretsStore, SqlSettingsStore,
};
use std::collections::BTreeMap;

fn scope(user: Option<&str>, org: Option<&str>) -> UserScope {
    UserScope {
        user_id: user.map(str::to_owned),
        org_id: org.map(str::to_owned),
    }
}

fn owner() -> UserScope {
    scope(Some("alice"), Some("org-x"))
}

/// Every scope that must not reach the owner's data.
fn others() -> Vec<UserScope> {
    vec![
        scope(Some("alice"), Some("org-y")),
        scope(Some("bob"), Some("org-x")),
        scope(Some("alice"), None),
        scope(None, Some("org-x")),
        UserScope::local(),
    ]
}

async fn settings_are_confined(db: Database) {
    let store = SqlSettingsStore::new(db, cipher());
    let mine: Settings =
        serde_json::from_value(serde_json::json!({"llm_api_key": "sk-owner", "language": "fr"}))
            .expect("settings");
    store.store_merged(&owner(), mine).await.expect("store");
    for other in others() {
        assert!(
            store.load(&other).await.expect("load").is_none(),
            "{other:?} reads nothing"
        );
        let theirs: Settings =
            serde_json::from_value(serde_json::json!({"language": "de"})).expect("settings");
        let stored = store.store_merged(&other, theirs).await.expect("store");
        assert!(stored.llm_api_key.is_none(), "{other:?} inherits no key");
    }
    let kept = store.load(&owner()).await.expect("load").expect("owner's");
    assert_eq!(kept.language.as_deref(), Some("fr"));
    assert_eq!(
        kept.llm_api_key.as_ref().map(Secret::expose),
        Some("sk-owner")
    );
}

async fn secrets_are_confined(db: Database) {
    let store = SqlSecretsStore::new(db, cipher());
    store
        .change_custom_secret(
            &owner(),
            CustomSecretChange::Create {
                name: "A".into(),
                value: Secret::new("owner-value"),
                description: String::new(),
            },
        )
        .await
        .expect("create");
    store
        .replace_provider_tokens(
            &owner(),
            BTreeMap::from([(
                ProviderType::Gitlab,
                ProviderToken {
                    token: Some(Secret::new("glpat-owner")),
                    user_id: None,
                    host: None,
                    ..ProviderToken::default()
                },
            )]),
        )
        .await
        .expect("tokens");
    for other in others() {
        assert!(
            store.load(&other).await.expect("load").is_none(),
            "{other:?}"
        );
        let delete = store
            .change_custom_secret(&other, CustomSecretChange::Delete { name: "A".into() })
            .await;
        assert!(matches!(delete, Err(StoreError::NotFound(_))), "{delete:?}");
        let update = store
            .change_custom_secret(
                &other,
                CustomSecretChange::Update {
                    name: "A".into(),
                    new_name: "B".into(),
                    description: None,
                },
            )
            .await;
        assert!(matches!(update, Err(StoreError::NotFound(_))), "{update:?}");
        store
            .replace_provider_tokens(&other, BTreeMap::new())
            .await
            .expect("their own tokens");
        store
            .store(&other, UserSecrets::default())
            .await
            .expect("their own set");
    }
    let kept = store.load(&owner()).await.expect("load").expect("owner's");
    assert_eq!(kept.custom_secrets["A"].secret.expose(), "owner-value");
    assert!(kept.provider_tokens.contains_key(&ProviderType::Gitlab));
}

async fn conversations_are_confined(db: Database) {
    let store = SqlConversationStore::new(db);
    let mut meta = ConversationMetadata::new("c1".into(), Some("alice".into()), chrono::Utc::now());
    meta.title = Some("owner's".into());
    store.save(&owner(), &meta).await.expect("save");
    for other in others() {
        assert!(
            store.get(&other, "c1").await.expect("get").is_none(),
            "{other:?}"
        );
        let page = store
            .search(
                &other,
                &ConversationQuery {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .expect("search");
        assert!(page.results.is_empty(), "{other:?} lists nothing");
        assert!(
            !store.delete(&other, "c1").await.expect("delete"),
            "{other:?}"
        );
        let mut takeover =
            ConversationMetadata::new("c1".into(), other.user_id.clone(), chrono::Utc::now());
        takeover.org_id = other.org_id.clone();
        takeover.title = Some("taken".into());
        assert!(
            store.save(&other, &takeover).await.is_err(),
            "{other:?} cannot overwrite"
        );
    }
    let kept = store
        .get(&owner(), "c1")
        .await
        .expect("get")
        .expect("owner's");
    assert_eq!(kept.title.as_deref(), Some("owner's"));
    assert_eq!(kept.org_id.as_deref(), Some("org-x"), "the org is recorded");
}

async fn events_are_confined(db: Database) {
    let store = SqlEventStore::new(db);
    store
        .append(&owner(), "c1", NewEvent::user_message("hello", vec![]))
        .await
        .expect("append");
    let all = EventQuery {
        start_id: 0,
        end_id: None,
        reverse: false,
        limit: 100,
    };
    for other in others() {
        let page = store.read(&other, "c1", all).await.expect("read");
        assert!(page.events.is_empty(), "{other:?} reads nothing");
        store
            .delete_all(&other, "c1")
            .await
            .expect("delete nothing");
        let append = store
            .append(&other, "c1", NewEvent::user_message("intruder", vec![]))
            .await;
        assert!(append.is_err(), "{other:?} cannot append to another's log");
    }
    let page = store.read(&owner(), "c1", all).await.expect("read");
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].message, "hello");
}

on_both_databases!(settings, super::settings_are_confined);
on_both_databases!(secrets, super::secrets_are_confined);
on_both_databases!(conversations, super::conversations_are_confined);
on_both_databases!(events, super::events_are_confined);
