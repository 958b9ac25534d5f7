//! Key rotation re-seals every old value under the newest key, can stop and resume, never
//! overwrites a concurrent write, and reports (without rewriting) rows that do not open.

mod common;

use openhands_core::crypto::{Cipher, KEY_LEN};
use openhands_core::extension::{SecretsStore, SettingsStore};
use openhands_core::secret::Secret;
use openhands_core::secrets::{
    CustomSecret, CustomSecretChange, ProviderToken, ProviderType, UserSecrets,
};
use openhands_core::settings::Settings;
use openhands_core::{StoreError, UserScope};
use openhands_sql_store::entity::{custom_secret, provider_token};
use openhands_sql_store::rotation::{RotationProgress, RotationReport};
use openhands_sql_store::sealing::{self, SETTINGS_FIELDS};
use openhands_sql_store::{
    Database, RotationError, SqlSecretsStore, SqlSettingsStore, rotate, rotation_status,
};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

const K1: [u8; KEY_LEN] = [5; KEY_LEN];
const K2: [u8; KEY_LEN] = [6; KEY_LEN];

fn only_k1() -> Arc<Cipher> {
    Arc::new(Cipher::new(vec![("k1".into(), K1)]).expect("cipher"))
}

fn k1_then_k2() -> Arc<Cipher> {
    Arc::new(Cipher::new(vec![("k1".into(), K1), ("k2".into(), K2)]).expect("cipher"))
}

fn only_k2() -> Arc<Cipher> {
    Arc::new(Cipher::new(vec![("k2".into(), K2)]).expect("cipher"))
}

/// Scopes with and without an organization.
fn scopes(n: usize) -> Vec<UserScope> {
    (0..n)
        .map(|i| UserScope {
            user_id: Some(format!("user-{i}")),
            org_id: (i % 2 == 1).then(|| "acme".to_owned()),
        })
        .collect()
}

fn keep_going(_: RotationProgress) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

fn settings_with(llm_key: &str, search_key: &str) -> Settings {
    serde_json::from_value(serde_json::json!({
        "llm_model": "gpt-test",
        "llm_api_key": llm_key,
        "search_api_key": search_key,
    }))
    .expect("settings")
}

fn secret_set(prefix: &str, names: usize, token: &str) -> UserSecrets {
    UserSecrets {
        custom_secrets: (0..names)
            .map(|n| {
                (
                    format!("SECRET_{n:02}"),
                    CustomSecret {
                        secret: Secret::new(format!("{prefix}-{n}")),
                        description: format!("secret {n}"),
                    },
                )
            })
            .collect(),
        provider_tokens: BTreeMap::from([
            (
                ProviderType::Github,
                ProviderToken {
                    token: Some(Secret::new(format!("gh-{token}"))),
                    user_id: None,
                    host: None,
                    ..ProviderToken::default()
                },
            ),
            (
                ProviderType::Gitlab,
                ProviderToken {
                    token: Some(Secret::new(format!("gl-{token}"))),
                    user_id: Some("login".into()),
                    host: Some("gitlab.example".into()),
                    ..ProviderToken::default()
                },
            ),
        ]),
    }
}

/// Writes settings, `names` custom secrets and two provider tokens per scope under
/// `cipher`, plus a refresh token on every GitHub token.
async fn seed(db: &Database, cipher: &Arc<Cipher>, scopes: &[UserScope], names: usize) {
    let settings = SqlSettingsStore::new(db.clone(), cipher.clone());
    let secrets = SqlSecretsStore::new(db.clone(), cipher.clone());
    for (i, scope) in scopes.iter().enumerate() {
        settings
            .store_merged(
                scope,
                settings_with(&format!("llm-{i}"), &format!("search-{i}")),
            )
            .await
            .expect("settings");
        secrets
            .store(
                scope,
                secret_set(&format!("seed-{i}"), names, &i.to_string()),
            )
            .await
            .expect("secrets");
    }
    // Sealed straight into the column (the store's own writes are covered by its tests):
    // rotation must re-seal this column too.
    let rows = provider_token::Entity::find()
        .all(db.connection())
        .await
        .expect("tokens");
    for row in rows.into_iter().filter(|r| r.provider == "github") {
        let sealed = cipher
            .seal(
                &sealing::provider_refresh_token(ProviderType::Github),
                &format!("refresh-{}", row.user_id),
            )
            .expect("seal");
        let mut active = row.into_active_model();
        active.refresh_token_sealed = Set(Some(sealed));
        active.update(db.connection()).await.expect("refresh token");
    }
}

/// Everything a scope's stores return, in plain text.
#[derive(Debug, PartialEq, Eq)]
struct Plain {
    llm_api_key: Option<String>,
    search_api_key: Option<String>,
    custom: BTreeMap<String, String>,
    tokens: BTreeMap<&'static str, String>,
}

async fn read_all(
    db: &Database,
    cipher: &Arc<Cipher>,
    scopes: &[UserScope],
) -> Result<Vec<Plain>, StoreError> {
    let settings = SqlSettingsStore::new(db.clone(), cipher.clone());
    let secrets = SqlSecretsStore::new(db.clone(), cipher.clone());
    let mut all = Vec::new();
    for scope in scopes {
        let stored = settings.load(scope).await?;
        let loaded = secrets.load(scope).await?.unwrap_or_default();
        all.push(Plain {
            llm_api_key: stored
                .as_ref()
                .and_then(|s| s.llm_api_key.as_ref())
                .map(|s| s.expose().to_owned()),
            search_api_key: stored
                .as_ref()
                .and_then(|s| s.search_api_key.as_ref())
                .map(|s| s.expose().to_owned()),
            custom: loaded
                .custom_secrets
                .iter()
                .map(|(name, s)| (name.clone(), s.secret.expose().to_owned()))
                .collect(),
            tokens: loaded
                .provider_tokens
                .iter()
                .filter_map(|(p, t)| Some((p.as_str(), t.token.as_ref()?.expose().to_owned())))
                .collect(),
        });
    }
    Ok(all)
}

/// Every refresh token in plain text, opened with `cipher`.
async fn refresh_tokens(db: &Database, cipher: &Cipher) -> Vec<String> {
    provider_token::Entity::find()
        .all(db.connection())
        .await
        .expect("tokens")
        .into_iter()
        .filter_map(|row| row.refresh_token_sealed)
        .map(|sealed| {
            cipher
                .open(
                    &sealing::provider_refresh_token(ProviderType::Github),
                    &sealed,
                )
                .expect("refresh token opens")
        })
        .collect()
}

/// Values per key id over all tables.
async fn values_per_key(db: &Database, cipher: &Cipher) -> BTreeMap<String, u64> {
    let status = rotation_status(db, cipher).await.expect("status");
    let mut all = BTreeMap::new();
    for table in &status.tables {
        assert_eq!(table.not_sealed, 0, "{}", table.table);
        for (id, n) in &table.by_key {
            *all.entry(id.clone()).or_default() += n;
        }
    }
    all
}

fn rotated_rows(scopes: usize, names: usize) -> u64 {
    // One settings row, `names` custom secrets and two token rows per scope.
    (scopes * (1 + names + 2)) as u64
}

async fn rotation_moves_everything_to_the_newest_key(db: Database) {
    let scopes = scopes(3);
    seed(&db, &only_k1(), &scopes, 4).await;
    let before = read_all(&db, &only_k1(), &scopes).await.expect("read");
    let sealed_values = values_per_key(&db, &only_k1()).await["k1"];

    let mut lines = Vec::new();
    let report = rotate(&db, &k1_then_k2(), 2, |p| {
        lines.push(p);
        ControlFlow::Continue(())
    })
    .await
    .expect("rotate");

    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.newest_key_id, "k2");
    assert_eq!(report.rotated(), rotated_rows(3, 4));
    assert_eq!(report.skipped(), 0);
    assert!(lines.iter().any(|p| p.table == "custom_secrets"));
    assert_eq!(lines.last().map(|p| p.left_estimate), Some(0), "{lines:?}");
    assert_eq!(
        values_per_key(&db, &k1_then_k2()).await,
        BTreeMap::from([("k2".to_owned(), sealed_values)])
    );
    assert_eq!(
        rotation_status(&db, &k1_then_k2())
            .await
            .expect("status")
            .pending(),
        0
    );
    assert_eq!(
        read_all(&db, &k1_then_k2(), &scopes).await.expect("read"),
        before
    );
    assert_eq!(
        read_all(&db, &only_k2(), &scopes).await.expect("read"),
        before
    );
    let mut refresh = refresh_tokens(&db, &only_k2()).await;
    refresh.sort();
    assert_eq!(
        refresh,
        ["refresh-user-0", "refresh-user-1", "refresh-user-2"]
    );

    let again = rotate(&db, &k1_then_k2(), 2, keep_going)
        .await
        .expect("rotate again");
    assert_eq!((again.rotated(), again.skipped()), (0, 0), "{again:?}");
}

async fn stopped_rotation_resumes_where_it_left_off(db: Database) {
    let scopes = scopes(3);
    seed(&db, &only_k1(), &scopes, 3).await;
    let before = read_all(&db, &only_k1(), &scopes).await.expect("read");

    let first = rotate(&db, &k1_then_k2(), 2, |_| ControlFlow::Break(()))
        .await
        .expect("first run");
    assert!(first.stopped && !first.is_complete(), "{first:?}");
    assert_eq!(first.rotated(), 2, "one batch of two rows");
    let halfway = values_per_key(&db, &k1_then_k2()).await;
    assert!(halfway.get("k1").is_some_and(|n| *n > 0), "{halfway:?}");
    assert!(halfway.get("k2").is_some_and(|n| *n > 0), "{halfway:?}");
    // Halfway, the server reads everything.
    assert_eq!(
        read_all(&db, &k1_then_k2(), &scopes).await.expect("read"),
        before
    );

    let mut batches = 0;
    let second = rotate(&db, &k1_then_k2(), 2, |_| {
        batches += 1;
        ControlFlow::Continue(())
    })
    .await
    .expect("second run");
    assert!(second.is_complete(), "{second:?}");
    assert_eq!(
        first.rotated() + second.rotated(),
        rotated_rows(3, 3),
        "nothing is rotated twice"
    );
    assert!(batches > 1);
    assert!(!values_per_key(&db, &k1_then_k2()).await.contains_key("k1"));
    assert_eq!(
        read_all(&db, &only_k2(), &scopes).await.expect("read"),
        before
    );
}

async fn concurrent_writers_and_readers_lose_nothing(db: Database) {
    let scopes = scopes(4);
    let names = 12;
    seed(&db, &only_k1(), &scopes, names).await;
    // The servers already run with k2 added: their writes seal under k2.
    let server = k1_then_k2();
    let rounds = 15;

    let mut writers = Vec::new();
    for (i, scope) in scopes.iter().take(2).cloned().enumerate() {
        let secrets = SqlSecretsStore::new(db.clone(), server.clone());
        let settings = SqlSettingsStore::new(db.clone(), server.clone());
        writers.push(tokio::spawn(async move {
            for round in 0..rounds {
                secrets
                    .store(
                        &scope,
                        secret_set(&format!("w{i}-r{round}"), names, &format!("w{round}")),
                    )
                    .await
                    .expect("store during rotation");
                secrets
                    .change_custom_secret(
                        &scope,
                        CustomSecretChange::Create {
                            name: "ADDED".into(),
                            value: Secret::new(format!("added-{round}")),
                            description: String::new(),
                        },
                    )
                    .await
                    .expect("change during rotation");
                settings
                    .store_merged(
                        &scope,
                        settings_with(&format!("llm-w{round}"), &format!("search-w{round}")),
                    )
                    .await
                    .expect("settings during rotation");
                tokio::task::yield_now().await;
            }
        }));
    }
    let reader = {
        let db = db.clone();
        let server = server.clone();
        let scopes = scopes.clone();
        tokio::spawn(async move {
            for _ in 0..rounds {
                read_all(&db, &server, &scopes)
                    .await
                    .expect("reads keep working during rotation");
            }
        })
    };
    // Untouched scopes keep their seeded values.
    let untouched_before = read_all(&db, &only_k1(), &scopes[2..]).await.expect("read");

    let report = rotate(&db, &server, 3, keep_going).await.expect("rotate");
    for writer in writers {
        writer.await.expect("writer");
    }
    reader.await.expect("reader");
    assert!(report.failures.is_empty(), "{report:?}");
    // Anything the rotation missed was written by a writer, under k2; a second run finds
    // nothing, and no value is left under k1.
    let second = rotate(&db, &server, 3, keep_going).await.expect("rotate");
    assert_eq!(second.rotated(), 0, "{second:?}");
    assert!(!values_per_key(&db, &server).await.contains_key("k1"));

    let after = read_all(&db, &only_k2(), &scopes)
        .await
        .expect("read with k2 only");
    let last = rounds - 1;
    for (i, plain) in after.iter().take(2).enumerate() {
        let mut expected = secret_set(&format!("w{i}-r{last}"), names, &format!("w{last}"));
        expected.custom_secrets.insert(
            "ADDED".into(),
            CustomSecret {
                secret: Secret::new(format!("added-{last}")),
                description: String::new(),
            },
        );
        let expected_custom: BTreeMap<String, String> = expected
            .custom_secrets
            .iter()
            .map(|(n, s)| (n.clone(), s.secret.expose().to_owned()))
            .collect();
        assert_eq!(plain.custom, expected_custom, "writer {i}");
        assert_eq!(
            plain.tokens,
            BTreeMap::from([
                ("github", format!("gh-w{last}")),
                ("gitlab", format!("gl-w{last}"))
            ]),
            "writer {i}"
        );
        assert_eq!(
            plain.llm_api_key.as_deref(),
            Some(format!("llm-w{last}").as_str())
        );
        assert_eq!(
            plain.search_api_key.as_deref(),
            Some(format!("search-w{last}").as_str())
        );
    }
    assert_eq!(&after[2..], untouched_before.as_slice());
}

/// Flips one character of the sealed data, keeping the `enc:<key>:` envelope.
fn tamper(sealed: &str) -> String {
    let mut chars: Vec<char> = sealed.chars().collect();
    let at = chars.len() - 3;
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

async fn unreadable_rows_are_reported_and_the_rest_rotates(db: Database) {
    let scopes = scopes(2);
    seed(&db, &only_k1(), &scopes, 3).await;
    let id = ("user-0".to_owned(), String::new(), "SECRET_01".to_owned());
    let row = custom_secret::Entity::find_by_id(id.clone())
        .one(db.connection())
        .await
        .expect("query")
        .expect("row");
    let tampered = tamper(&row.value_sealed);
    let mut active = row.into_active_model();
    active.value_sealed = Set(tampered.clone());
    active.update(db.connection()).await.expect("tamper");
    // A token sealed under a key nobody has any more.
    let lost = Cipher::new(vec![("k0".into(), [9; KEY_LEN])]).expect("cipher");
    let token_id = ("user-1".to_owned(), "acme".to_owned(), "gitlab".to_owned());
    let token = provider_token::Entity::find_by_id(token_id.clone())
        .one(db.connection())
        .await
        .expect("query")
        .expect("row");
    let mut active = token.into_active_model();
    active.token_sealed = Set(lost
        .seal(&sealing::provider_token(ProviderType::Gitlab), "gl-lost")
        .expect("seal"));
    active.update(db.connection()).await.expect("lost key");

    let report: RotationReport = rotate(&db, &k1_then_k2(), 2, keep_going)
        .await
        .expect("rotate");

    assert_eq!(report.failures.len(), 2, "{report:?}");
    let failed: Vec<(&str, &str)> = report
        .failures
        .iter()
        .map(|f| (f.table, f.key.as_str()))
        .collect();
    assert!(failed.contains(&("custom_secrets", "user_id=user-0, org_id=, name=SECRET_01")));
    assert!(failed.contains(&(
        "provider_tokens",
        "user_id=user-1, org_id=acme, provider=gitlab"
    )));
    assert!(report.failures.iter().any(|f| f.reason.contains("k0")));
    for failure in &report.failures {
        let text = failure.to_string();
        assert!(
            !text.contains("seed-") && !text.contains("gl-lost"),
            "{text}"
        );
        assert!(!text.contains(&tampered), "{text}");
    }
    assert!(!report.is_complete());
    assert_eq!(report.rotated(), rotated_rows(2, 3) - 2);

    let kept = custom_secret::Entity::find_by_id(id)
        .one(db.connection())
        .await
        .expect("query")
        .expect("row");
    assert_eq!(kept.value_sealed, tampered, "a failed row is not rewritten");
    let per_key = values_per_key(&db, &k1_then_k2()).await;
    assert_eq!(per_key.get("k1"), Some(&1), "{per_key:?}");
    assert_eq!(per_key.get("k0"), Some(&1), "{per_key:?}");
    let status = rotation_status(&db, &k1_then_k2()).await.expect("status");
    assert_eq!(status.unknown_key_ids(), ["k0"]);
    assert_eq!(status.pending(), 2);
    assert!(
        status.to_string().contains("k0: 1 (not configured)"),
        "{status}"
    );
    // Everything else is readable with k2 alone.
    let other = read_all(&db, &only_k2(), &scopes[..1]).await;
    assert!(
        matches!(other, Err(StoreError::Crypto(_))),
        "the tampered row is still an error"
    );
    let settings = SqlSettingsStore::new(db.clone(), only_k2());
    for scope in &scopes {
        assert!(settings.load(scope).await.expect("settings").is_some());
    }
}

async fn batch_size_zero_is_refused(db: Database) {
    let result = rotate(&db, &k1_then_k2(), 0, keep_going).await;
    assert!(
        matches!(result, Err(RotationError::BatchSize)),
        "{result:?}"
    );
}

#[test]
fn settings_fields_are_exactly_the_ones_settings_seal() {
    let cipher = only_k1();
    let settings: Settings = serde_json::from_value(serde_json::json!({
        "llm_api_key": "a", "search_api_key": "b", "sandbox_api_key": "c",
    }))
    .expect("settings");
    let stored = settings.to_stored(&cipher).expect("stored");
    let mut sealed: Vec<&str> = stored
        .as_object()
        .expect("object")
        .iter()
        .filter(|(_, v)| v.as_str().is_some_and(|s| s.starts_with("enc:")))
        .map(|(k, _)| k.as_str())
        .collect();
    sealed.sort();
    let mut expected = SETTINGS_FIELDS.to_vec();
    expected.sort();
    assert_eq!(sealed, expected);
    for field in SETTINGS_FIELDS {
        let value = stored[field].as_str().expect("sealed");
        assert!(cipher.open(&sealing::settings_field(field), value).is_ok());
    }
}

on_both_databases!(
    rotates_everything,
    super::rotation_moves_everything_to_the_newest_key
);
on_both_databases!(
    stop_and_resume,
    super::stopped_rotation_resumes_where_it_left_off
);
on_both_databases!(
    concurrent_writers,
    super::concurrent_writers_and_readers_lose_nothing
);
on_both_databases!(
    unreadable_rows,
    super::unreadable_rows_are_reported_and_the_rest_rotates
);
on_both_databases!(zero_batch, super::batch_size_zero_is_refused);
