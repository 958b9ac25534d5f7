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
use openhands_core::secrets::{
    CustomSecretChange, ProviderToken, ProviderTokenChange, ProviderType,
};
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
            ..ProviderToken::default()
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
    linked_provider_tokens(store.as_ref()).await;
    store.health().await.expect("healthy");
}

/// A token as OAuth linking stores it: with a refresh token and an expiry (whole seconds,
/// which every backend keeps exactly).
fn linked_token(value: &str, refresh: &str, expires_in_seconds: i64) -> ProviderToken {
    let now = chrono::Utc::now().timestamp();
    ProviderToken {
        token: Some(Secret::new(value)),
        user_id: Some("octocat".into()),
        host: None,
        refresh_token: Some(Secret::new(refresh)),
        expires_at: chrono::DateTime::from_timestamp(now + expires_in_seconds, 0),
    }
}

fn token_of(secrets: &openhands_core::secrets::UserSecrets, provider: ProviderType) -> String {
    secrets
        .provider_tokens
        .get(&provider)
        .and_then(|t| t.token.as_ref())
        .map(|t| t.expose().to_owned())
        .unwrap_or_default()
}

/// Linking, refreshing and unlinking one provider's token
/// ([`SecretsStore::change_provider_token`]), and the settings merge rule on linked tokens.
async fn linked_provider_tokens(store: &dyn SecretsStore) {
    let carol = UserScope::user("carol");
    let linked = linked_token("ghu_1", "ghr_1", 3600);
    assert!(
        store
            .change_provider_token(
                &carol,
                ProviderType::Github,
                ProviderTokenChange::Set(linked.clone())
            )
            .await
            .expect("link")
    );
    store
        .change_provider_token(
            &carol,
            ProviderType::Gitlab,
            ProviderTokenChange::Set(ProviderToken::plain("glpat")),
        )
        .await
        .expect("link gitlab");
    store
        .change_custom_secret(
            &carol,
            CustomSecretChange::Create {
                name: "KEEP".into(),
                value: Secret::new("kept"),
                description: String::new(),
            },
        )
        .await
        .expect("custom");
    let loaded = store.load(&carol).await.expect("load").expect("stored");
    let github = &loaded.provider_tokens[&ProviderType::Github];
    assert_eq!(
        github.refresh_token.as_ref().map(Secret::expose),
        Some("ghr_1"),
        "refresh token stored"
    );
    assert_eq!(github.expires_at, linked.expires_at, "expiry stored");
    assert_eq!(github.user_id.as_deref(), Some("octocat"));
    assert_eq!(
        token_of(&loaded, ProviderType::Gitlab),
        "glpat",
        "other provider kept"
    );

    // A refresh lands only over the token it refreshed.
    let refreshed = ProviderTokenChange::Refreshed {
        previous: Secret::new("ghu_1"),
        token: linked_token("ghu_2", "ghr_2", 7200),
    };
    assert!(
        store
            .change_provider_token(&carol, ProviderType::Github, refreshed.clone())
            .await
            .expect("refresh")
    );
    assert!(
        !store
            .change_provider_token(&carol, ProviderType::Github, refreshed)
            .await
            .expect("stale refresh"),
        "a second refresh of the same token changes nothing"
    );
    let loaded = store.load(&carol).await.expect("load").expect("stored");
    assert_eq!(token_of(&loaded, ProviderType::Github), "ghu_2");
    assert_eq!(
        loaded.provider_tokens[&ProviderType::Github]
            .refresh_token
            .as_ref()
            .map(Secret::expose),
        Some("ghr_2")
    );
    assert_eq!(loaded.custom_secrets["KEEP"].secret.expose(), "kept");

    // The settings rule: an entry without token keeps the linked token whole; a plain
    // token replaces it and drops the refresh token and expiry that belonged to it.
    store
        .replace_provider_tokens(
            &carol,
            BTreeMap::from([
                (ProviderType::Github, ProviderToken::default()),
                (ProviderType::Gitlab, ProviderToken::default()),
            ]),
        )
        .await
        .expect("keep");
    let kept = store.load(&carol).await.expect("load").expect("stored");
    let github = &kept.provider_tokens[&ProviderType::Github];
    assert_eq!(
        github.refresh_token.as_ref().map(Secret::expose),
        Some("ghr_2")
    );
    assert!(github.expires_at.is_some());
    store
        .replace_provider_tokens(
            &carol,
            BTreeMap::from([(ProviderType::Github, ProviderToken::plain("ghp_plain"))]),
        )
        .await
        .expect("plain");
    let plain = store.load(&carol).await.expect("load").expect("stored");
    let github = &plain.provider_tokens[&ProviderType::Github];
    assert_eq!(token_of(&plain, ProviderType::Github), "ghp_plain");
    assert!(
        github.refresh_token.is_none(),
        "stale refresh token cleared"
    );
    assert!(github.expires_at.is_none(), "stale expiry cleared");

    // Concurrent links of different providers lose nothing.
    let link = |provider: ProviderType| {
        store.change_provider_token(
            &carol,
            provider,
            ProviderTokenChange::Set(linked_token(provider.as_str(), "r", 60)),
        )
    };
    let (gitlab, bitbucket) =
        tokio::join!(link(ProviderType::Gitlab), link(ProviderType::Bitbucket));
    assert!(gitlab.expect("link") && bitbucket.expect("link"));
    let both = store.load(&carol).await.expect("load").expect("stored");
    assert_eq!(token_of(&both, ProviderType::Gitlab), "gitlab");
    assert_eq!(token_of(&both, ProviderType::Bitbucket), "bitbucket");
    assert_eq!(token_of(&both, ProviderType::Github), "ghp_plain");

    // Unlink.
    assert!(
        store
            .change_provider_token(&carol, ProviderType::Github, ProviderTokenChange::Remove)
            .await
            .expect("unlink")
    );
    assert!(
        !store
            .change_provider_token(&carol, ProviderType::Github, ProviderTokenChange::Remove)
            .await
            .expect("unlink again"),
        "nothing left to unlink"
    );
    let after = store.load(&carol).await.expect("load").expect("stored");
    assert!(!after.provider_tokens.contains_key(&ProviderType::Github));
    assert_eq!(after.provider_tokens.len(), 2);
    assert!(
        store
            .load(&UserScope::user("dave"))
            .await
            .expect("load")
            .is_none(),
        "scoped by user"
    );
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
