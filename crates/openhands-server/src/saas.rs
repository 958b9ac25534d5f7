//! SaaS mode in this binary: the `saas` config class and the database commands
//! (`openhands migrate`, `openhands keys`, `openhands db`, `openhands webhooks`).
//!
//! The class names the SQL stores of `openhands-sql-store` and, for login, `saas.oidc` (the
//! OIDC `UserAuth` of `openhands-oidc-auth`, which needs `auth.issuer_url` or the Keycloak
//! settings; tests that do not log in override `plugins.user_auth`).
//! Conversations run on the clustered manager (`saas.clustered`, `docs/cluster.md`): any
//! number of replicas share one database and one Redis, each conversation owned by one of
//! them; a single SaaS box needs a Redis too (or `plugins.conversation_manager =
//! "oss.standalone"`).
//! Rate limits are counted in Redis (`saas.redis_rate_limit` of `openhands-redis`), so all
//! servers of a deployment share them; without Redis they fail open by default.

use anyhow::Context;
use openhands_core::config::Config;
use openhands_core::registry::{ConfigClass, Slot};
use openhands_migrations::runner;
use openhands_sql_store::database::{Database, PoolOptions};
use openhands_sql_store::{copy, rotation};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

inventory::submit! {
    ConfigClass {
        name: "saas",
        description: "Many users and organizations, SQL stores (PostgreSQL or SQLite), OIDC login",
        app_mode: "saas",
        slots: &[
            (Slot::SettingsStore, "saas.sql_settings"),
            (Slot::SecretsStore, "saas.sql_secrets"),
            (Slot::ConversationStore, "saas.sql_conversations"),
            (Slot::EventStore, "saas.sql_events"),
            (Slot::UserAuth, "saas.oidc"),
            (Slot::ConversationManager, "saas.clustered"),
            (Slot::MonitoringListener, "oss.log"),
            (Slot::RateLimiter, "saas.redis_rate_limit"),
            (Slot::Sandbox, "saas.bwrap"),
            (Slot::AuditLog, "saas.sql_audit"),
            (Slot::ProviderTokenSource, "saas.git_oauth"),
            (Slot::ChangeFeed, "saas.redis_changes"),
        ],
    }
}

/// A connection to the configured database (creating the data dir for SQLite).
async fn connect(config: &Config) -> anyhow::Result<Database> {
    let data_dir = config.data_dir();
    let url = config.database.connection_url(&data_dir);
    if url.expose().starts_with("sqlite:") {
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    }
    Database::connect(url.expose(), PoolOptions::from(&config.database))
        .await
        .context("connecting to the database")
}

/// What `openhands keys` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum KeysAction {
    /// Re-seal every secret value under the newest key, in batches; safe to stop (Ctrl-C)
    /// and run again, and the server may keep serving meanwhile.
    Rotate {
        /// Rows per batch (one short transaction each).
        #[arg(long, default_value_t = rotation::DEFAULT_BATCH_SIZE)]
        batch_size: usize,
    },
    /// Count sealed values per table and key id.
    Status,
}

/// Runs `openhands keys <action>` against the configured database. Returns whether the
/// work is complete (every value under the newest key, no unreadable value).
pub async fn keys(
    config: &Config,
    action: KeysAction,
    mut emit: impl FnMut(String),
) -> anyhow::Result<bool> {
    let cipher = crate::load_cipher(config)?;
    let db = connect(config).await?;
    match action {
        KeysAction::Status => {
            let status = rotation::rotation_status(&db, &cipher)
                .await
                .context("counting sealed values")?;
            emit(status.to_string());
            Ok(status.pending() == 0 && status.unknown_key_ids().is_empty())
        }
        KeysAction::Rotate { batch_size } => {
            let interrupted = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&interrupted);
            let watcher = tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    flag.store(true, Ordering::SeqCst);
                }
            });
            let report = rotation::rotate(&db, &cipher, batch_size.max(1), |progress| {
                emit(progress.to_string());
                if interrupted.load(Ordering::SeqCst) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .await
            .context("rotating keys")?;
            watcher.abort();
            for failure in &report.failures {
                emit(format!("unreadable: {failure}"));
            }
            emit(format!(
                "re-sealed {} value(s) under `{}`, {} skipped (changed by a writer meanwhile)",
                report.rotated(),
                report.newest_key_id,
                report.skipped()
            ));
            if report.stopped {
                emit("stopped: run `openhands keys rotate` again to finish".to_owned());
            }
            Ok(report.is_complete())
        }
    }
}

/// What `openhands db` does.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum DbAction {
    /// Copy every row of the configured database into another, empty and migrated one
    /// (e.g. a single box's SQLite file into PostgreSQL). Stop the server first.
    Copy {
        /// The target database URL (`postgres://...` or `sqlite://...`).
        #[arg(long)]
        to: String,
        /// Rows per batch (one transaction on the target each).
        #[arg(long, default_value_t = copy::DEFAULT_BATCH_SIZE)]
        batch_size: usize,
    },
}

/// Runs `openhands db <action>`, passing progress lines to `emit`.
pub async fn db(
    config: &Config,
    action: DbAction,
    mut emit: impl FnMut(String),
) -> anyhow::Result<()> {
    match action {
        DbAction::Copy { to, batch_size } => {
            let from = connect(config).await?;
            let target = Database::connect(&to, PoolOptions::from(&config.database))
                .await
                .context("connecting to the target database")?;
            let report = copy::copy_database(&from, &target, batch_size, |p| emit(p.to_string()))
                .await
                .context("copying the database")?;
            emit(report.to_string());
            Ok(())
        }
    }
}

/// What `openhands migrate` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration, one line per migration.
    Up,
    /// Revert the newest applied migrations.
    Down {
        /// How many to revert.
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List every migration and whether the database has it.
    Status,
}

/// Runs `openhands migrate <action>` against the configured database, passing each line of
/// the report to `emit` as soon as it is known (one per migration applied or reverted).
pub async fn migrate(
    config: &Config,
    action: MigrateAction,
    mut emit: impl FnMut(String),
) -> anyhow::Result<()> {
    let db = connect(config).await?;
    let conn = db.connection();
    let took =
        |verb: &str, name: &str, took: Duration| format!("{verb} {name} ({} ms)", took.as_millis());
    match action {
        MigrateAction::Up => {
            let applied = runner::up(conn, |name, t| emit(took("applied", name, t)))
                .await
                .context("migration failed")?;
            if applied == 0 {
                emit("nothing to apply: the schema is current".to_owned());
            }
        }
        MigrateAction::Down { steps } => {
            let reverted = runner::down(conn, steps, |name, t| emit(took("reverted", name, t)))
                .await
                .context("revert failed")?;
            if reverted == 0 {
                emit("nothing to revert: no migration is applied".to_owned());
            }
        }
        MigrateAction::Status => {
            let states = runner::status(conn)
                .await
                .context("reading the schema state")?;
            let pending = states.iter().filter(|s| !s.applied).count();
            for state in &states {
                let mark = if state.applied { "applied" } else { "pending" };
                emit(format!("{mark:<8} {}", state.name));
            }
            emit(format!(
                "{} applied, {pending} pending",
                states.len() - pending
            ));
        }
    }
    Ok(())
}

/// What `openhands webhooks` does.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum WebhooksAction {
    /// List webhook deliveries, newest first.
    List {
        /// Only deliveries with this status (queued, processing, done, ignored, failed, dead).
        #[arg(long)]
        status: Option<String>,
    },
    /// Queue a dead (or failed) delivery again; a running server processes it.
    Replay {
        /// The delivery's id (first column of `list`).
        id: String,
    },
}

/// Runs `openhands webhooks <action>` against the configured database.
pub async fn webhooks(
    config: &Config,
    action: WebhooksAction,
    mut emit: impl FnMut(String),
) -> anyhow::Result<()> {
    use openhands_integrations::{Status, cli};
    let db = connect(config).await?;
    match action {
        WebhooksAction::List { status } => {
            let status = match status.as_deref() {
                None => None,
                Some(text) => Some(Status::parse(text).with_context(|| {
                    format!(
                        "unknown status `{text}`; use queued, processing, done, ignored, failed or dead"
                    )
                })?),
            };
            cli::list(&db, status, &mut emit)
                .await
                .context("listing webhook deliveries")?;
        }
        WebhooksAction::Replay { id } => {
            cli::replay(&db, &id, &mut emit)
                .await
                .with_context(|| format!("replaying delivery `{id}`"))?;
        }
    }
    Ok(())
}
