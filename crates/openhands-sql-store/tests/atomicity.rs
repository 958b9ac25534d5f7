//! A failed change leaves the previous state intact; concurrent changes are never lost.
//!
//! The failure is injected by the database itself: the schema refuses a custom-secret name
//! longer than 255 characters (a CHECK constraint), and the refused row is inserted after
//! the old set was deleted inside the same transaction.

mod common;

use common::cipher;
use openhands_core::UserScope;
use openhands_core::extension::{SecretsStore, SettingsStore};
use openhands_core::secret::Secret;
use openhands_core::secrets::{
    CustomSecret, CustomSecretChange, ProviderToken, ProviderType, UserSecrets,
};
use openhands_core::settings::Settings;
use openhands_sql_store::{Database, SqlSecretsStore, SqlSettingsStore};
use std::collections::BTreeMap;
use std::sync::Arc;

fn scope() -> UserScope {
    UserScope {
        user_id: Some("alice".into()),
        org_id: Some("org-x".into()),
    }
}

fn custom(value: &str) -> CustomSecret {
    CustomSecret {
        secret: Secret::new(value),
        description: format!("about {value}"),
    }
}

fn secrets(names: &[&str]) -> UserSecrets {
    UserSecrets {
        custom_secrets: names
            .iter()
            .map(|n| ((*n).to_owned(), custom(&format!("value-{n}"))))
            .collect(),
        provider_tokens: BTreeMap::from([(
            ProviderType::Github,
            ProviderToken {
                token: Some(Secret::new("ghp_old")),
                user_id: Some("octo".into()),
                host: Some("github.com".into()),
                ..ProviderToken::default()
            },
        )]),
    }
}

fn names(secrets: &UserSecrets) -> Vec<String> {
    secrets.custom_secrets.keys().cloned().collect()
}

async fn failed_store_keeps_the_old_set(db: Database) {
    let store = SqlSecretsStore::new(db, cipher());
    store
        .store(&scope(), secrets(&["A", "B"]))
        .await
        .expect("seed");
    let mut replacement = secrets(&["C", "D"]);
    replacement.provider_tokens.clear();
    // Sorted last, so it is inserted after the delete and after C and D.
    replacement
        .custom_secrets
        .insert("Z".repeat(300), custom("too long"));
    let failed = store.store(&scope(), replacement).await;
    assert!(failed.is_err(), "the database refuses the long name");

    let kept = store.load(&scope()).await.expect("load").expect("old set");
    assert_eq!(names(&kept), ["A", "B"], "old custom secrets survive");
    assert_eq!(kept.custom_secrets["B"].secret.expose(), "value-B");
    let github = &kept.provider_tokens[&ProviderType::Github];
    assert_eq!(github.token.as_ref().map(Secret::expose), Some("ghp_old"));
    assert_eq!(github.user_id.as_deref(), Some("octo"));
}

async fn failed_single_change_keeps_the_old_set(db: Database) {
    let store = SqlSecretsStore::new(db, cipher());
    store
        .store(&scope(), secrets(&["A", "B"]))
        .await
        .expect("seed");
    let failed = store
        .change_custom_secret(
            &scope(),
            CustomSecretChange::Update {
                name: "A".into(),
                new_name: "Y".repeat(300),
                description: None,
            },
        )
        .await;
    assert!(failed.is_err(), "rename to a refused name fails");
    let kept = store.load(&scope()).await.expect("load").expect("old set");
    assert_eq!(names(&kept), ["A", "B"]);
    assert_eq!(kept.custom_secrets["A"].secret.expose(), "value-A");
}

async fn rename_keeps_the_value_and_replace_tokens_keeps_custom_secrets(db: Database) {
    let store = SqlSecretsStore::new(db, cipher());
    store.store(&scope(), secrets(&["A"])).await.expect("seed");
    store
        .change_custom_secret(
            &scope(),
            CustomSecretChange::Update {
                name: "A".into(),
                new_name: "RENAMED".into(),
                description: Some("new words".into()),
            },
        )
        .await
        .expect("rename");
    // A token-less entry keeps the stored token and takes the new host.
    store
        .replace_provider_tokens(
            &scope(),
            BTreeMap::from([(
                ProviderType::Github,
                ProviderToken {
                    token: None,
                    user_id: None,
                    host: Some("ghe.example".into()),
                    ..ProviderToken::default()
                },
            )]),
        )
        .await
        .expect("tokens");
    let now = store.load(&scope()).await.expect("load").expect("set");
    assert_eq!(names(&now), ["RENAMED"]);
    assert_eq!(now.custom_secrets["RENAMED"].secret.expose(), "value-A");
    assert_eq!(now.custom_secrets["RENAMED"].description, "new words");
    let github = &now.provider_tokens[&ProviderType::Github];
    assert_eq!(github.token.as_ref().map(Secret::expose), Some("ghp_old"));
    assert_eq!(github.host.as_deref(), Some("ghe.example"));
}

fn settings(json: serde_json::Value) -> Settings {
    serde_json::from_value(json).expect("settings")
}

/// Two first writers race: one sends only the API key, the other only the model. Both
/// fields are kept by the merge rule, so whichever order the database picks, the result
/// has both; a lost update would drop one.
async fn concurrent_first_writers_lose_nothing(db: Database) {
    let store = Arc::new(SqlSettingsStore::new(db, cipher()));
    let mut tasks = Vec::new();
    for user in 0..12 {
        let scope = UserScope::user(format!("user-{user}"));
        for body in [
            serde_json::json!({"llm_api_key": format!("sk-{user}")}),
            serde_json::json!({"llm_model": format!("model-{user}")}),
        ] {
            let store = store.clone();
            let scope = scope.clone();
            tasks.push(tokio::spawn(async move {
                store.store_merged(&scope, settings(body)).await
            }));
        }
    }
    for task in tasks {
        task.await.expect("join").expect("store");
    }
    for user in 0..12 {
        let loaded = store
            .load(&UserScope::user(format!("user-{user}")))
            .await
            .expect("load")
            .expect("stored");
        let expected_key = format!("sk-{user}");
        assert_eq!(
            loaded.llm_api_key.as_ref().map(Secret::expose),
            Some(expected_key.as_str())
        );
        assert_eq!(
            loaded.llm_model.as_deref(),
            Some(format!("model-{user}").as_str())
        );
    }
}

on_both_databases!(
    failed_store_keeps_old_set,
    super::failed_store_keeps_the_old_set
);
on_both_databases!(
    failed_single_change_keeps_old_set,
    super::failed_single_change_keeps_the_old_set
);
on_both_databases!(
    rename_and_token_merge,
    super::rename_keeps_the_value_and_replace_tokens_keeps_custom_secrets
);
on_both_databases!(
    settings_writers_do_not_lose_updates,
    super::concurrent_first_writers_lose_nothing
);
