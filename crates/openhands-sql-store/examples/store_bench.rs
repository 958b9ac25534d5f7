//! Store figures of SaaS mode on PostgreSQL, for `cargo xtask bench`.
//!
//! Runs the real SQL stores (sea-orm, sealing, scoping) against a fresh database on the
//! machine's PostgreSQL (or a throw-away one, as the tests get it): 10,000 users with
//! settings and secrets, 100,000 conversations (10,000 of them the measured user's), then,
//! for a fixed time each with many concurrent callers (32): settings load, settings store,
//! secrets load; then the latency of listing conversations, one page of 50 per call (the
//! first page or one of the next three by cursor), from 8 callers: a list is a person
//! opening a page, so its figure is about latency at a busy replica's load rather than
//! the saturation throughput the other figures show. Writes the
//! figures as JSON to `--out`; xtask puts them in its report and checks the targets.
//!
//! `cargo run --release -p openhands-sql-store --example store_bench -- --out figures.json`

use openhands_core::conversation::{ConversationQuery, ConversationTrigger};
use openhands_core::crypto::Cipher;
use openhands_core::extension::{ConversationStore, SecretsStore, SettingsStore};
use openhands_core::scope::UserScope;
use openhands_core::secret::Secret;
use openhands_core::secrets::{CustomSecret, UserSecrets};
use openhands_core::settings::Settings;
use openhands_sql_store::entity::conversation_metadata;
use openhands_sql_store::{
    Database, PoolOptions, SqlConversationStore, SqlSecretsStore, SqlSettingsStore,
};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ORG: &str = "org-bench";
const LIST_PAGE: usize = 50;
const INSERT_BATCH: usize = 1000;
/// How many pages deep the list calls go (first page included).
const LIST_DEPTH: usize = 4;

struct Args {
    out: std::path::PathBuf,
    users: usize,
    conversations: usize,
    measured_user_conversations: usize,
    concurrency: usize,
    /// Callers of the list measurement.
    list_concurrency: usize,
    duration: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: "store-figures.json".into(),
        users: 10_000,
        conversations: 100_000,
        measured_user_conversations: 10_000,
        concurrency: 32,
        list_concurrency: 8,
        duration: Duration::from_secs(5),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--out" => args.out = value.clone().into(),
            "--users" => args.users = number()?.max(1),
            "--conversations" => args.conversations = number()?,
            "--concurrency" => args.concurrency = number()?.max(1),
            "--list-concurrency" => args.list_concurrency = number()?.max(1),
            "--duration" => args.duration = Duration::from_secs(number()? as u64),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    args.measured_user_conversations = args.measured_user_conversations.min(args.conversations);
    Ok(args)
}

/// Throughput and latency of one operation.
#[derive(Debug, Serialize)]
struct Figure {
    operations: usize,
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct Figures {
    database: &'static str,
    users: usize,
    conversations: usize,
    measured_user_conversations: usize,
    concurrency: usize,
    list_concurrency: usize,
    seed_s: f64,
    settings_load: Figure,
    settings_store: Figure,
    secrets_load: Figure,
    conversation_list: Figure,
}

fn user(i: usize) -> UserScope {
    UserScope {
        user_id: Some(format!("user-{i:05}")),
        org_id: Some(ORG.to_owned()),
    }
}

fn settings_for(i: usize) -> Settings {
    Settings {
        llm_model: Some("openai/gpt-4o".to_owned()),
        llm_api_key: Some(Secret::new(format!("sk-bench-{i}"))),
        llm_base_url: Some("https://llm.example.com/v1".to_owned()),
        max_iterations: Some(100),
        git_user_name: Some(format!("user {i}")),
        ..Settings::default()
    }
}

fn secrets_for(i: usize) -> UserSecrets {
    let mut secrets = UserSecrets::default();
    for name in ["DEPLOY_TOKEN", "NPM_TOKEN", "SENTRY_DSN"] {
        secrets.custom_secrets.insert(
            name.to_owned(),
            CustomSecret {
                secret: Secret::new(format!("{name}-{i}")),
                description: "bench".to_owned(),
            },
        );
    }
    secrets
}

/// Runs `op(i)` from `concurrency` tasks for `duration`; `i` counts calls.
async fn measure<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Result<Figure, String>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let op = Arc::clone(&op);
        let counter = Arc::clone(&counter);
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < duration {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                op(i).await?;
                latencies.push(t.elapsed().as_micros() as u64);
            }
            Ok::<_, String>(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let at = |p: f64| {
        let rank = ((p / 100.0) * all.len() as f64).ceil() as usize;
        all.get(rank.saturating_sub(1))
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    Ok(Figure {
        operations: all.len(),
        ops_per_s: (all.len() as f64 / elapsed).round(),
        p50_ms: at(50.0),
        p99_ms: at(99.0),
    })
}

/// Inserts the conversations in batches: the measured user (user 0) gets
/// `measured` of them, the rest are spread over the other users.
async fn seed_conversations(db: &Database, args: &Args) -> Result<(), String> {
    let base = chrono::Utc::now() - chrono::Duration::days(30);
    let mut batch = Vec::with_capacity(INSERT_BATCH);
    for n in 0..args.conversations {
        let owner = if n < args.measured_user_conversations {
            0
        } else {
            1 + n % args.users.saturating_sub(1).max(1)
        };
        let scope = user(owner);
        batch.push(conversation_metadata::ActiveModel {
            conversation_id: Set(format!("{n:032x}")),
            user_id: Set(scope.user_id.unwrap_or_default()),
            org_id: Set(ORG.to_owned()),
            title: Set(Some(format!("Conversation {n}"))),
            selected_repository: Set(Some("acme/app".to_owned())),
            selected_branch: Set(Some("main".to_owned())),
            git_provider: Set(Some("github".to_owned())),
            trigger: Set(Some("gui".to_owned())),
            status: Set(None),
            pr_number: Set("[]".to_owned()),
            llm_model: Set(Some("openai/gpt-4o".to_owned())),
            accumulated_cost: Set(0.0),
            prompt_tokens: Set(0),
            completion_tokens: Set(0),
            total_tokens: Set(0),
            sandbox_id: Set(None),
            conversation_version: Set(Some("V0".to_owned())),
            conversation_instructions: Set(None),
            created_at: Set(base + chrono::Duration::seconds(n as i64)),
            last_updated_at: Set(None),
        });
        if batch.len() == INSERT_BATCH || n + 1 == args.conversations {
            conversation_metadata::Entity::insert_many(std::mem::take(&mut batch))
                .exec(db.connection())
                .await
                .map_err(|e| format!("seeding conversations: {e}"))?;
        }
    }
    Ok(())
}

/// Runs `op(i)` for `0..count` from `concurrency` tasks (for seeding).
async fn for_each<F, Fut>(count: usize, concurrency: usize, op: F) -> Result<(), String>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let op = Arc::clone(&op);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, String>(());
                }
                op(i).await?;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| e.to_string())??;
    }
    Ok(())
}

async fn run(args: Args) -> Result<Figures, String> {
    let database = openhands_test_support::postgres::fresh_database().map_err(|e| e.to_string())?;
    let pool = PoolOptions {
        pool_size: args.concurrency as u32,
        max_overflow: 0,
    };
    let db = Database::connect(database.url(), pool)
        .await
        .map_err(|e| e.to_string())?;
    openhands_migrations::runner::up(db.connection(), |_, _| {})
        .await
        .map_err(|e| format!("migrating: {e}"))?;
    let cipher =
        Arc::new(Cipher::new(vec![("k1".to_owned(), [7u8; 32])]).map_err(|e| e.to_string())?);
    let settings = Arc::new(SqlSettingsStore::new(db.clone(), cipher.clone()));
    let secrets = Arc::new(SqlSecretsStore::new(db.clone(), cipher));
    let conversations = Arc::new(SqlConversationStore::new(db.clone()));

    eprintln!(
        "==> store bench: seeding {} users, {} conversations",
        args.users, args.conversations
    );
    let seed_started = Instant::now();
    {
        let settings = Arc::clone(&settings);
        let secrets = Arc::clone(&secrets);
        for_each(args.users, args.concurrency, move |i| {
            let settings = Arc::clone(&settings);
            let secrets = Arc::clone(&secrets);
            async move {
                let scope = user(i);
                settings
                    .store_merged(&scope, settings_for(i))
                    .await
                    .map_err(|e| e.to_string())?;
                secrets
                    .store(&scope, secrets_for(i))
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .await?;
    }
    seed_conversations(&db, &args).await?;
    // Fresh bulk-loaded tables have no planner statistics yet; autovacuum would gather
    // them in a running deployment, so gather them now rather than bench a blind planner.
    db.connection()
        .execute_unprepared("ANALYZE")
        .await
        .map_err(|e| format!("analyzing: {e}"))?;
    let seed_s = seed_started.elapsed().as_secs_f64();

    let users = args.users;
    eprintln!("==> store bench: settings load");
    let settings_load = {
        let settings = Arc::clone(&settings);
        measure(args.concurrency, args.duration, move |i| {
            let settings = Arc::clone(&settings);
            async move {
                let found = settings
                    .load(&user(i * 7919 % users))
                    .await
                    .map_err(|e| e.to_string())?;
                found
                    .map(|_| ())
                    .ok_or_else(|| "settings missing".to_owned())
            }
        })
        .await?
    };
    eprintln!("==> store bench: settings store");
    let settings_store = {
        let settings = Arc::clone(&settings);
        measure(args.concurrency, args.duration, move |i| {
            let settings = Arc::clone(&settings);
            async move {
                let update = Settings {
                    max_iterations: Some((i % 500) as i64 + 1),
                    ..Settings::default()
                };
                settings
                    .store_merged(&user(i * 7919 % users), update)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
        .await?
    };
    eprintln!("==> store bench: secrets load");
    let secrets_load = {
        let secrets = Arc::clone(&secrets);
        measure(args.concurrency, args.duration, move |i| {
            let secrets = Arc::clone(&secrets);
            async move {
                let found = secrets
                    .load(&user(i * 7919 % users))
                    .await
                    .map_err(|e| e.to_string())?;
                found
                    .map(|_| ())
                    .ok_or_else(|| "secrets missing".to_owned())
            }
        })
        .await?
    };
    eprintln!("==> store bench: conversation list");
    // One call lists one page: the first, or one of the next few reached by cursor (the
    // cursors are collected once, the way a client pages through its list).
    let query = ConversationQuery {
        page_id: None,
        limit: LIST_PAGE,
        created_after: None,
        selected_repository: None,
        trigger: None::<ConversationTrigger>,
    };
    let mut cursors = vec![None];
    while cursors.len() < LIST_DEPTH {
        let page = conversations
            .search(
                &user(0),
                &ConversationQuery {
                    page_id: cursors.last().cloned().flatten(),
                    ..query.clone()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        match page.next_page_id {
            Some(next) => cursors.push(Some(next)),
            None => break,
        }
    }
    let cursors = Arc::new(cursors);
    let conversation_list = {
        let conversations = Arc::clone(&conversations);
        measure(args.list_concurrency, args.duration, move |i| {
            let conversations = Arc::clone(&conversations);
            let query = ConversationQuery {
                page_id: cursors[i % cursors.len()].clone(),
                ..query.clone()
            };
            async move {
                let page = conversations
                    .search(&user(0), &query)
                    .await
                    .map_err(|e| e.to_string())?;
                if page.results.len() == LIST_PAGE {
                    Ok(())
                } else {
                    Err(format!("a page of {} conversations", page.results.len()))
                }
            }
        })
        .await?
    };
    Ok(Figures {
        database: "postgresql",
        users: args.users,
        conversations: args.conversations,
        measured_user_conversations: args.measured_user_conversations,
        concurrency: args.concurrency,
        list_concurrency: args.list_concurrency,
        seed_s,
        settings_load,
        settings_store,
        secrets_load,
        conversation_list,
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("error: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let out = args.out.clone();
    let figures = match run(args).await {
        Ok(figures) => figures,
        Err(err) => {
            eprintln!("error: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let json = match serde_json::to_string_pretty(&figures) {
        Ok(json) => json,
        Err(err) => {
            eprintln!("error: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{json}");
    if let Err(err) = std::fs::write(&out, json) {
        eprintln!("error: writing {}: {err}", out.display());
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
