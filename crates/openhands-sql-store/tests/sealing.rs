//! Secret values never reach a row in plain text, and a tampered row is an error.

mod common;

use common::cipher;
use openhands_core::extension::{SecretsStore, SettingsStore};
use openhands_core::secret::Secret;
use openhands_core::secrets::{CustomSecretChange, ProviderToken, ProviderType};
use openhands_core::settings::Settings;
use openhands_core::{StoreError, UserScope};
use openhands_sql_store::entity::{custom_secret, provider_token, user_settings};
use openhands_sql_store::{Database, SqlSecretsStore, SqlSettingsStore};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel};
use std::collections::BTreeMap;

const SECRET: &str = "plain-text-that-must-not-be-stored";

fn alice() -> UserScope {
    UserScope::user("alice")
}

/// Flips one character of the sealed data, keeping the `enc:<key>:` envelope.
fn tamper(sealed: &str) -> String {
    let mut chars: Vec<char> = sealed.chars().collect();
    let last = chars.len() - 3;
    chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

async fn seed_secrets(store: &SqlSecretsStore) {
    for name in ["FIRST", "SECOND"] {
        store
            .change_custom_secret(
                &alice(),
                CustomSecretChange::Create {
                    name: name.into(),
                    value: Secret::new(format!("{SECRET}-{name}")),
                    description: String::new(),
                },
            )
            .await
            .expect("create");
    }
    store
        .replace_provider_tokens(
            &alice(),
            BTreeMap::from([(
                ProviderType::Github,
                ProviderToken {
                    token: Some(Secret::new(SECRET)),
                    user_id: None,
                    host: None,
                    ..ProviderToken::default()
                },
            )]),
        )
        .await
        .expect("token");
}

async fn secret_rows_hold_only_sealed_values(db: Database) {
    let store = SqlSecretsStore::new(db.clone(), cipher());
    seed_secrets(&store).await;
    let rows = custom_secret::Entity::find()
        .all(db.connection())
        .await
        .expect("rows");
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert!(
            row.value_sealed.starts_with("enc:k1:"),
            "{}",
            row.value_sealed
        );
        assert!(!row.value_sealed.contains(SECRET));
    }
    let tokens = provider_token::Entity::find()
        .all(db.connection())
        .await
        .expect("rows");
    assert!(tokens[0].token_sealed.starts_with("enc:k1:"));
    assert!(!tokens[0].token_sealed.contains(SECRET));
}

async fn settings_rows_hold_only_sealed_keys(db: Database) {
    let store = SqlSettingsStore::new(db.clone(), cipher());
    let settings: Settings = serde_json::from_value(
        serde_json::json!({"llm_api_key": SECRET, "search_api_key": SECRET}),
    )
    .expect("settings");
    store.store_merged(&alice(), settings).await.expect("store");
    let row = user_settings::Entity::find()
        .one(db.connection())
        .await
        .expect("query")
        .expect("row");
    assert!(!row.settings.contains(SECRET), "{}", row.settings);
    let document: serde_json::Value = serde_json::from_str(&row.settings).expect("json");
    assert!(
        document["llm_api_key"]
            .as_str()
            .is_some_and(|v| v.starts_with("enc:"))
    );
}

async fn tampered_secret_is_an_error(db: Database) {
    let store = SqlSecretsStore::new(db.clone(), cipher());
    seed_secrets(&store).await;
    let row =
        custom_secret::Entity::find_by_id(("alice".to_owned(), String::new(), "FIRST".to_owned()))
            .one(db.connection())
            .await
            .expect("query")
            .expect("row");
    let tampered = tamper(&row.value_sealed);
    let mut active = row.into_active_model();
    active.value_sealed = Set(tampered);
    active.update(db.connection()).await.expect("tamper");
    let loaded = store.load(&alice()).await;
    assert!(matches!(loaded, Err(StoreError::Crypto(_))), "{loaded:?}");
}

async fn ciphertext_moved_to_another_secret_is_an_error(db: Database) {
    let store = SqlSecretsStore::new(db.clone(), cipher());
    seed_secrets(&store).await;
    let find = |name: &str| {
        custom_secret::Entity::find_by_id(("alice".to_owned(), String::new(), name.to_owned()))
    };
    let first = find("FIRST")
        .one(db.connection())
        .await
        .expect("query")
        .expect("row");
    let second = find("SECOND")
        .one(db.connection())
        .await
        .expect("query")
        .expect("row");
    let mut active = second.into_active_model();
    active.value_sealed = Set(first.value_sealed);
    active.update(db.connection()).await.expect("swap");
    let loaded = store.load(&alice()).await;
    assert!(matches!(loaded, Err(StoreError::Crypto(_))), "{loaded:?}");
}

async fn tampered_settings_key_is_an_error(db: Database) {
    let store = SqlSettingsStore::new(db.clone(), cipher());
    let settings: Settings =
        serde_json::from_value(serde_json::json!({"llm_api_key": SECRET})).expect("settings");
    store.store_merged(&alice(), settings).await.expect("store");
    let row = user_settings::Entity::find()
        .one(db.connection())
        .await
        .expect("query")
        .expect("row");
    let mut document: serde_json::Value = serde_json::from_str(&row.settings).expect("json");
    let sealed = document["llm_api_key"].as_str().expect("sealed").to_owned();
    document["llm_api_key"] = serde_json::Value::String(tamper(&sealed));
    let mut active = row.into_active_model();
    active.settings = Set(document.to_string());
    active.update(db.connection()).await.expect("tamper");
    let loaded = store.load(&alice()).await;
    assert!(matches!(loaded, Err(StoreError::Crypto(_))), "{loaded:?}");
}

on_both_databases!(
    secret_rows_sealed,
    super::secret_rows_hold_only_sealed_values
);
on_both_databases!(
    settings_rows_sealed,
    super::settings_rows_hold_only_sealed_keys
);
on_both_databases!(tampered_secret, super::tampered_secret_is_an_error);
on_both_databases!(
    moved_ciphertext,
    super::ciphertext_moved_to_another_secret_is_an_error
);
on_both_databases!(tampered_settings, super::tampered_settings_key_is_an_error);
