//! Moving a single-box SQLite database to PostgreSQL: after `copy_database` the stores on
//! PostgreSQL return exactly what they returned on SQLite, row counts match, and a target
//! that is not migrated or not empty is refused before anything is written.

mod common;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use common::{Backend, TIMEOUT, cipher, fresh_url, migrated, test_pool};
use openhands_core::UserScope;
use openhands_core::conversation::{ConversationMetadata, ConversationQuery, ConversationTrigger};
use openhands_core::event::{Event, EventQuery, NewEvent};
use openhands_core::extension::{ConversationStore, EventStore, SecretsStore, SettingsStore};
use openhands_core::secret::Secret;
use openhands_core::secrets::{CustomSecret, ProviderToken, ProviderType, UserSecrets};
use openhands_core::settings::Settings;
use openhands_migrations::Migrator;
use openhands_sql_store::copy::{CopyError, CopyProgress, Side, Table, copy_database};
use openhands_sql_store::entity::{
    api_key, audit_log, conversation_metadata, custom_secret, org_invitation, org_membership,
    organization, provider_token, user, user_settings,
};
use openhands_sql_store::{
    Database, SqlConversationStore, SqlEventStore, SqlSecretsStore, SqlSettingsStore,
};
use sea_orm::{
    ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel, PaginatorTrait, QueryOrder, Statement,
};
use sea_orm_migration::MigratorTrait;
use std::collections::BTreeMap;
use std::future::Future;

/// Fails the test instead of hanging.
async fn within_timeout(scenario: impl Future<Output = ()>) {
    tokio::time::timeout(TIMEOUT, scenario)
        .await
        .unwrap_or_else(|_| panic!("scenario took longer than {TIMEOUT:?}"));
}

fn scopes() -> Vec<UserScope> {
    vec![
        UserScope {
            user_id: Some("alice".into()),
            org_id: None,
        },
        UserScope {
            user_id: Some("alice".into()),
            org_id: Some("acme".into()),
        },
        UserScope {
            user_id: Some("bob".into()),
            org_id: Some("acme".into()),
        },
        // The local user of OSS-like set-ups: empty ids.
        UserScope::default(),
    ]
}

/// Timestamps at PostgreSQL's precision, as the stores write them.
fn at(seconds_ago: i64) -> DateTime<Utc> {
    (Utc::now() - Duration::seconds(seconds_ago)).trunc_subsecs(6)
}

fn settings(i: usize) -> Settings {
    serde_json::from_value(serde_json::json!({
        "llm_model": format!("model-{i}"),
        "llm_api_key": format!("llm-key-{i}"),
        "search_api_key": format!("search-key-{i}"),
        "language": "fr",
    }))
    .expect("settings")
}

fn secrets(i: usize) -> UserSecrets {
    UserSecrets {
        custom_secrets: (0..5)
            .map(|n| {
                (
                    format!("SECRET_{n}"),
                    CustomSecret {
                        secret: Secret::new(format!("value-{i}-{n}")),
                        description: format!("secret {n} of scope {i}"),
                    },
                )
            })
            .collect(),
        provider_tokens: BTreeMap::from([
            (
                ProviderType::Github,
                ProviderToken {
                    token: Some(Secret::new(format!("gh-{i}"))),
                    user_id: None,
                    host: None,
                    ..ProviderToken::default()
                },
            ),
            (
                ProviderType::Gitlab,
                ProviderToken {
                    token: Some(Secret::new(format!("gl-{i}"))),
                    user_id: Some(format!("login-{i}")),
                    host: Some("gitlab.example".into()),
                    ..ProviderToken::default()
                },
            ),
        ]),
    }
}

fn conversation_id(scope: usize, n: usize) -> String {
    format!("conv-{scope}-{n}")
}

/// Fills `db` through the real stores, plus rows of the tables no store writes yet.
async fn seed(db: &Database) {
    let cipher = cipher();
    let settings_store = SqlSettingsStore::new(db.clone(), cipher.clone());
    let secrets_store = SqlSecretsStore::new(db.clone(), cipher.clone());
    let conversations = SqlConversationStore::new(db.clone());
    let events = SqlEventStore::new(db.clone());
    for (i, scope) in scopes().iter().enumerate() {
        settings_store
            .store_merged(scope, settings(i))
            .await
            .expect("settings");
        secrets_store
            .store(scope, secrets(i))
            .await
            .expect("secrets");
        for n in 0..7 {
            let mut meta = ConversationMetadata::new(
                conversation_id(i, n),
                scope.user_id.clone(),
                // Two conversations share a creation instant: the cursor's tie-break on
                // the id must page the same way on both databases.
                at(1000 - (n as i64 / 2) * 10),
            );
            meta.org_id = scope.org_id.clone();
            meta.selected_repository = Some(format!("acme/repo-{}", n % 3));
            meta.trigger = Some(ConversationTrigger::Gui);
            meta.pr_number = vec![n as i64, 100 + n as i64];
            meta.accumulated_cost = 0.25 * n as f64;
            meta.prompt_tokens = 1000 * n as i64;
            conversations
                .save(scope, &meta)
                .await
                .expect("conversation");
            if n < 3 {
                for e in 0..4 {
                    events
                        .append(
                            scope,
                            &conversation_id(i, n),
                            NewEvent::user_message(&format!("message {e} ü ✓"), vec![]),
                        )
                        .await
                        .expect("event");
                }
            }
        }
    }

    let conn = db.connection();
    organization::Entity::insert(
        organization::Model {
            id: "acme".into(),
            name: "Acme".into(),
            created_at: at(5000),
        }
        .into_active_model(),
    )
    .exec_without_returning(conn)
    .await
    .expect("organization");
    for (id, verified) in [("alice", true), ("bob", false)] {
        user::Entity::insert(
            user::Model {
                id: id.into(),
                oidc_subject: format!("oidc|{id}"),
                email: Some(format!("{id}@acme.example")),
                email_verified: verified,
                tos_accepted_at: verified.then(|| at(4000)),
                created_at: at(4500),
                last_login_at: None,
                current_org_id: Some("acme".into()),
            }
            .into_active_model(),
        )
        .exec_without_returning(conn)
        .await
        .expect("user");
        org_membership::Entity::insert(
            org_membership::Model {
                org_id: "acme".into(),
                user_id: id.into(),
                role: if verified { "owner" } else { "member" }.into(),
                created_at: at(4400),
            }
            .into_active_model(),
        )
        .exec_without_returning(conn)
        .await
        .expect("membership");
    }
    org_invitation::Entity::insert(
        org_invitation::Model {
            id: "inv-1".into(),
            org_id: "acme".into(),
            email: "carol@acme.example".into(),
            role: "admin".into(),
            invited_by: Some("alice".into()),
            created_at: at(300),
            accepted_at: None,
        }
        .into_active_model(),
    )
    .exec_without_returning(conn)
    .await
    .expect("invitation");
    api_key::Entity::insert(
        api_key::Model {
            id: "key-1".into(),
            user_id: "alice".into(),
            org_id: "acme".into(),
            name: "ci".into(),
            prefix: "oh_ab12".into(),
            key_hash: "hash-1".into(),
            created_at: at(200),
            last_used_at: Some(at(100)),
            expires_at: None,
        }
        .into_active_model(),
    )
    .exec_without_returning(conn)
    .await
    .expect("api key");
    for n in 0..3 {
        audit_log::Entity::insert(
            audit_log::Model {
                id: format!("audit-{n}"),
                at: at(50 - n),
                actor_user_id: Some("alice".into()),
                org_id: Some("acme".into()),
                action: "secrets.change".into(),
                target: Some(format!("SECRET_{n}")),
                detail: r#"{"change":"create"}"#.into(),
                ip: Some("192.0.2.1".into()),
            }
            .into_active_model(),
        )
        .exec_without_returning(conn)
        .await
        .expect("audit");
    }
}

/// Stored settings: the plain fields, then the LLM and search API keys exposed.
type SettingsSeen = (serde_json::Value, Option<String>, Option<String>);
/// Custom secrets (name → value, description) and provider tokens (provider → token).
type SecretsSeen = (BTreeMap<String, (String, String)>, BTreeMap<String, String>);

/// Everything the stores return for every scope, with secrets exposed.
#[derive(Debug, PartialEq)]
struct Seen {
    settings: Vec<Option<SettingsSeen>>,
    secrets: Vec<Option<SecretsSeen>>,
    /// Every page of a paged search: its results and the cursor to the next one.
    pages: Vec<Vec<(Vec<ConversationMetadata>, Option<String>)>>,
    filtered: Vec<Vec<String>>,
    events: Vec<Vec<Event>>,
}

async fn seen(db: &Database) -> Seen {
    let cipher = cipher();
    let settings_store = SqlSettingsStore::new(db.clone(), cipher.clone());
    let secrets_store = SqlSecretsStore::new(db.clone(), cipher.clone());
    let conversations = SqlConversationStore::new(db.clone());
    let events = SqlEventStore::new(db.clone());
    let mut seen = Seen {
        settings: Vec::new(),
        secrets: Vec::new(),
        pages: Vec::new(),
        filtered: Vec::new(),
        events: Vec::new(),
    };
    for (i, scope) in scopes().iter().enumerate() {
        let stored = settings_store.load(scope).await.expect("settings");
        seen.settings.push(stored.map(|s| {
            (
                serde_json::to_value(&s).expect("json"),
                s.llm_api_key.as_ref().map(|k| k.expose().to_owned()),
                s.search_api_key.as_ref().map(|k| k.expose().to_owned()),
            )
        }));
        let loaded = secrets_store.load(scope).await.expect("secrets");
        seen.secrets.push(loaded.map(|s| {
            (
                s.custom_secrets
                    .iter()
                    .map(|(name, c)| {
                        (
                            name.clone(),
                            (c.secret.expose().to_owned(), c.description.clone()),
                        )
                    })
                    .collect(),
                s.provider_tokens
                    .iter()
                    .map(|(p, t)| {
                        (
                            format!("{}|{:?}|{:?}", p.as_str(), t.user_id, t.host),
                            t.token
                                .as_ref()
                                .map(|v| v.expose().to_owned())
                                .unwrap_or_default(),
                        )
                    })
                    .collect(),
            )
        }));

        let mut pages = Vec::new();
        let mut page_id = None;
        loop {
            let query = ConversationQuery {
                page_id: page_id.clone(),
                limit: 3,
                ..Default::default()
            };
            let page = conversations.search(scope, &query).await.expect("search");
            page_id = page.next_page_id.clone();
            pages.push((page.results, page.next_page_id));
            if page_id.is_none() {
                break;
            }
        }
        seen.pages.push(pages);
        let query = ConversationQuery {
            limit: 100,
            selected_repository: Some("acme/repo-1".into()),
            ..Default::default()
        };
        let filtered = conversations.search(scope, &query).await.expect("search");
        seen.filtered.push(
            filtered
                .results
                .into_iter()
                .map(|m| m.conversation_id)
                .collect(),
        );

        for n in 0..7 {
            let page = events
                .read(
                    scope,
                    &conversation_id(i, n),
                    EventQuery {
                        start_id: 0,
                        end_id: None,
                        reverse: false,
                        limit: 100,
                    },
                )
                .await
                .expect("events");
            seen.events.push(page.events);
        }
    }
    seen
}

/// Rows per table.
async fn row_counts(db: &Database) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    for table in Table::ALL {
        let n = db
            .connection()
            .query_one_raw(Statement::from_string(
                db.backend(),
                format!("SELECT COUNT(*) AS n FROM {}", table.name()),
            ))
            .await
            .expect("count")
            .expect("a row")
            .try_get::<i64>("", "n")
            .expect("n");
        counts.insert(table.name(), u64::try_from(n).expect("non-negative"));
    }
    counts
}

/// The rows of the tables, compared as entities (verbatim copy).
///
/// The settings and secrets stores write `updated_at` / `created_at` with nanoseconds, which
/// SQLite keeps and PostgreSQL (microseconds) truncates; those are compared to the
/// microsecond.
async fn raw_rows(db: &Database) -> String {
    let conn = db.connection();
    let mut secrets = custom_secret::Entity::find()
        .order_by_asc(custom_secret::Column::UserId)
        .order_by_asc(custom_secret::Column::OrgId)
        .order_by_asc(custom_secret::Column::Name)
        .all(conn)
        .await
        .expect("custom secrets");
    for row in &mut secrets {
        row.created_at = row.created_at.trunc_subsecs(6);
    }
    let mut settings = user_settings::Entity::find()
        .order_by_asc(user_settings::Column::UserId)
        .order_by_asc(user_settings::Column::OrgId)
        .all(conn)
        .await
        .expect("settings");
    for row in &mut settings {
        row.updated_at = row.updated_at.trunc_subsecs(6);
    }
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        organization::Entity::find()
            .order_by_asc(organization::Column::Id)
            .all(conn)
            .await
            .expect("organizations"),
        user::Entity::find()
            .order_by_asc(user::Column::Id)
            .all(conn)
            .await
            .expect("users"),
        org_membership::Entity::find()
            .order_by_asc(org_membership::Column::UserId)
            .all(conn)
            .await
            .expect("memberships"),
        org_invitation::Entity::find().all(conn).await.expect("inv"),
        api_key::Entity::find().all(conn).await.expect("keys"),
        audit_log::Entity::find()
            .order_by_asc(audit_log::Column::Id)
            .all(conn)
            .await
            .expect("audit"),
        secrets,
        provider_token::Entity::find()
            .order_by_asc(provider_token::Column::UserId)
            .order_by_asc(provider_token::Column::OrgId)
            .order_by_asc(provider_token::Column::Provider)
            .all(conn)
            .await
            .expect("tokens"),
        settings,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_keeps_everything_the_stores_return() {
    within_timeout(async {
        let (source, _source_guard) = migrated(Backend::Sqlite).await;
        let (target, _target_guard) = migrated(Backend::Postgres).await;
        seed(&source).await;
        let before = seen(&source).await;
        let source_counts = row_counts(&source).await;
        assert_eq!(source_counts["events"], 4 * 3 * 4, "seeded events");

        let mut progress: Vec<CopyProgress> = Vec::new();
        // A small batch: several batches per table, the last one partial.
        let report = copy_database(&source, &target, 5, |p| progress.push(p))
            .await
            .expect("copy");

        assert_eq!(row_counts(&target).await, source_counts, "row counts equal");
        let reported: BTreeMap<_, _> = report.tables.iter().map(|t| (t.table, t.rows)).collect();
        assert_eq!(reported, source_counts, "the report lists every table");
        assert_eq!(report.rows(), source_counts.values().sum::<u64>());
        // Provider crates linked into this test binary (through the workspace's features)
        // bring their own tables, which the copy names rather than copies.
        let linked_with_tables: Vec<&str> = Migrator::providers()
            .into_iter()
            .filter(|p| !(p.migrations)().is_empty())
            .map(|p| p.provider)
            .collect();
        assert_eq!(report.providers_not_copied, linked_with_tables);

        let events = progress.iter().filter(|p| p.table == "events");
        let events: Vec<_> = events.collect();
        assert_eq!(events.len(), 48 / 5 + 1, "one progress line per batch");
        assert!(events.windows(2).all(|w| w[0].copied < w[1].copied));
        let last = events.last().expect("events copied");
        assert_eq!((last.copied, last.total, last.batch), (48, 48, 10));
        assert_eq!(last.to_string(), "events: batch 10, 48/48 rows copied");
        let text = report.to_string();
        assert!(text.contains("events: 48 rows"), "{text}");
        assert!(text.contains("row counts match"), "{text}");

        assert_eq!(seen(&target).await, before, "the stores read the same");
        assert_eq!(
            raw_rows(&target).await,
            raw_rows(&source).await,
            "rows verbatim"
        );

        // The copied database keeps working: event ids continue per conversation, and
        // new rows go in next to the copied ones.
        let scope = &scopes()[1];
        let next = SqlEventStore::new(target.clone())
            .append(
                scope,
                &conversation_id(1, 0),
                NewEvent::user_message("after", vec![]),
            )
            .await
            .expect("append after copy");
        assert_eq!(next.id, 4);
        SqlSecretsStore::new(target.clone(), cipher())
            .store(scope, secrets(9))
            .await
            .expect("store after copy");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_back_to_sqlite_round_trips() {
    within_timeout(async {
        let (source, _g1) = migrated(Backend::Sqlite).await;
        let (middle, _g2) = migrated(Backend::Postgres).await;
        let (back, _g3) = migrated(Backend::Sqlite).await;
        seed(&source).await;
        copy_database(&source, &middle, 1000, |_| {})
            .await
            .expect("to PostgreSQL");
        copy_database(&middle, &back, 7, |_| {})
            .await
            .expect("back to SQLite");
        assert_eq!(row_counts(&back).await, row_counts(&source).await);
        assert_eq!(seen(&back).await, seen(&source).await);
        assert_eq!(raw_rows(&back).await, raw_rows(&source).await);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_empty_target_is_refused_and_left_unchanged() {
    within_timeout(async {
        let (source, _g1) = migrated(Backend::Sqlite).await;
        let (target, _g2) = migrated(Backend::Postgres).await;
        seed(&source).await;
        // A row in the last table copied: nothing before it may be written either.
        audit_log::Entity::insert(
            audit_log::Model {
                id: "already-here".into(),
                at: at(1),
                actor_user_id: None,
                org_id: None,
                action: "start".into(),
                target: None,
                detail: "{}".into(),
                ip: None,
            }
            .into_active_model(),
        )
        .exec_without_returning(target.connection())
        .await
        .expect("row");
        let before = row_counts(&target).await;

        let mut called = false;
        let err = copy_database(&source, &target, 10, |_| called = true)
            .await
            .expect_err("refused");
        assert!(
            matches!(
                err,
                CopyError::TargetNotEmpty {
                    table: "audit_log",
                    rows: 1
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("`audit_log`") && text.contains("not empty"),
            "{text}"
        );
        assert!(!called, "no progress: nothing copied");
        assert_eq!(row_counts(&target).await, before, "target unchanged");
        assert_eq!(
            audit_log::Entity::find()
                .all(target.connection())
                .await
                .expect("rows")
                .len(),
            1
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmigrated_target_is_refused_naming_the_command() {
    within_timeout(async {
        let (source, _g1) = migrated(Backend::Sqlite).await;
        seed(&source).await;

        let (url, _g2) = fresh_url(Backend::Postgres);
        let target = Database::connect(&url, test_pool()).await.expect("connect");
        let err = copy_database(&source, &target, 10, |_| {})
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, CopyError::NotMigrated { side: Side::Target, pending } if pending.len() == Migrator::migrations().len()),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("target") && text.contains("`openhands migrate up`"),
            "{text}"
        );

        // Partly migrated is refused too.
        Migrator::up(target.connection(), None).await.expect("up");
        Migrator::down(target.connection(), Some(1))
            .await
            .expect("down one");
        let err = copy_database(&source, &target, 10, |_| {})
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, CopyError::NotMigrated { side: Side::Target, pending } if pending.len() == 1),
            "{err:?}"
        );
        assert_eq!(
            organization::Entity::find()
                .count(target.connection())
                .await
                .expect("count"),
            0,
            "nothing written"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmigrated_source_and_zero_batch_are_refused() {
    within_timeout(async {
        let (target, _g1) = migrated(Backend::Postgres).await;
        let (url, _g2) = fresh_url(Backend::Sqlite);
        let source = Database::connect(&url, test_pool()).await.expect("connect");
        let err = copy_database(&source, &target, 10, |_| {})
            .await
            .expect_err("refused");
        assert!(
            matches!(
                &err,
                CopyError::NotMigrated {
                    side: Side::Source,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("openhands migrate up"), "{err}");

        let (migrated_source, _g3) = migrated(Backend::Sqlite).await;
        let err = copy_database(&migrated_source, &target, 0, |_| {})
            .await
            .expect_err("refused");
        assert!(matches!(err, CopyError::BatchSize), "{err:?}");

        // Both empty: nothing to copy, and that is fine.
        let report = copy_database(&migrated_source, &target, 10, |_| {})
            .await
            .expect("empty copy");
        assert_eq!(report.rows(), 0);
        assert_eq!(report.tables.len(), Table::ALL.len());
    })
    .await;
}

/// The copy sets no sequence because the schema has none on PostgreSQL: if a migration
/// adds a `SERIAL` or identity column, `copy_database` must reset it with `setval`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schema_has_no_sequences_to_reset() {
    within_timeout(async {
        let (db, _guard) = migrated(Backend::Postgres).await;
        let rows = db
            .connection()
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT table_name::text AS t, column_name::text AS c \
                 FROM information_schema.columns \
                 WHERE table_schema = current_schema() \
                   AND table_name <> 'seaql_migrations' \
                   AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')",
            ))
            .await
            .expect("columns");
        let columns: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{}.{}",
                    r.try_get::<String>("", "t").expect("t"),
                    r.try_get::<String>("", "c").expect("c")
                )
            })
            .collect();
        assert!(columns.is_empty(), "auto-increment columns: {columns:?}");
        let sequences = db
            .connection()
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT COUNT(*) AS n FROM information_schema.sequences \
                 WHERE sequence_schema = current_schema() \
                   AND sequence_name NOT LIKE 'seaql_migrations%'",
            ))
            .await
            .expect("sequences")
            .expect("row")
            .try_get::<i64>("", "n")
            .expect("n");
        assert_eq!(sequences, 0, "no sequence in the schema");
    })
    .await;
}

/// A batch of wide rows larger than one statement may bind is split into several
/// statements (SQLite binds at most 32766 parameters; `conversation_metadata` has 20
/// columns), and still copies every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_wider_than_one_statement_are_split() {
    within_timeout(async {
        let (source, _g1) = migrated(Backend::Sqlite).await;
        let (target, _g2) = migrated(Backend::Postgres).await;
        let created = at(10);
        let rows: Vec<conversation_metadata::Model> = (0..1700)
            .map(|n| conversation_metadata::Model {
                conversation_id: format!("c{n:05}"),
                user_id: "alice".into(),
                org_id: String::new(),
                title: Some(format!("conversation {n}")),
                selected_repository: None,
                selected_branch: None,
                git_provider: None,
                trigger: None,
                status: None,
                pr_number: "[]".into(),
                llm_model: None,
                accumulated_cost: 0.0,
                prompt_tokens: n,
                completion_tokens: 0,
                total_tokens: n,
                sandbox_id: None,
                conversation_version: None,
                conversation_instructions: None,
                created_at: created,
                last_updated_at: None,
            })
            .collect();
        for chunk in rows.chunks(500) {
            conversation_metadata::Entity::insert_many(
                chunk
                    .iter()
                    .cloned()
                    .map(IntoActiveModel::into_active_model),
            )
            .exec_without_returning(source.connection())
            .await
            .expect("seed");
        }

        let mut progress = Vec::new();
        let report = copy_database(&source, &target, 2000, |p| progress.push(p))
            .await
            .expect("copy");
        let copied = report
            .tables
            .iter()
            .find(|t| t.table == "conversation_metadata")
            .expect("table");
        assert_eq!(
            (copied.rows, copied.batches),
            (1700, 1),
            "one batch, one transaction"
        );
        assert_eq!(
            progress
                .iter()
                .filter(|p| p.table == "conversation_metadata")
                .count(),
            1
        );
        let on_target = conversation_metadata::Entity::find()
            .order_by_asc(conversation_metadata::Column::ConversationId)
            .all(target.connection())
            .await
            .expect("rows");
        assert_eq!(on_target, rows);
    })
    .await;
}
