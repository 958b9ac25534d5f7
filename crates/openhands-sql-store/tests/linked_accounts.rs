//! The reverse lookup from a provider login to the scopes that linked it.

mod common;

use common::cipher;
use openhands_core::UserScope;
use openhands_core::extension::SecretsStore;
use openhands_core::secret::Secret;
use openhands_core::secrets::{ProviderToken, ProviderType};
use openhands_sql_store::linked_accounts::scopes_linked_to;
use openhands_sql_store::{Database, SqlSecretsStore};
use std::collections::BTreeMap;

async fn link(store: &SqlSecretsStore, scope: &UserScope, provider: ProviderType, login: &str) {
    store
        .replace_provider_tokens(
            scope,
            BTreeMap::from([(
                provider,
                ProviderToken {
                    token: Some(Secret::new(format!("token-of-{login}"))),
                    user_id: Some(login.to_owned()),
                    ..ProviderToken::default()
                },
            )]),
        )
        .await
        .expect("link");
}

async fn a_login_finds_the_scopes_that_linked_it_ignoring_case(db: Database) {
    let store = SqlSecretsStore::new(db.clone(), cipher());
    let in_org = UserScope {
        user_id: Some("alice".into()),
        org_id: Some("acme".into()),
    };
    link(&store, &in_org, ProviderType::Github, "Octo-Cat").await;
    link(
        &store,
        &UserScope::user("alice"),
        ProviderType::Github,
        "octo-cat",
    )
    .await;
    link(
        &store,
        &UserScope::user("bob"),
        ProviderType::Github,
        "bobby",
    )
    .await;
    link(
        &store,
        &UserScope::user("carol"),
        ProviderType::Gitlab,
        "octo-cat",
    )
    .await;

    let found = scopes_linked_to(&db, ProviderType::Github, "OCTO-CAT")
        .await
        .expect("lookup");
    // Personal scopes first, then organizations; other providers and logins never.
    assert_eq!(found, vec![UserScope::user("alice"), in_org]);
    let none = scopes_linked_to(&db, ProviderType::Github, "nobody")
        .await
        .expect("lookup");
    assert!(none.is_empty());
    let blank = scopes_linked_to(&db, ProviderType::Github, "  ")
        .await
        .expect("lookup");
    assert!(blank.is_empty());
}

on_both_databases!(
    login_lookup,
    super::a_login_finds_the_scopes_that_linked_it_ignoring_case
);
