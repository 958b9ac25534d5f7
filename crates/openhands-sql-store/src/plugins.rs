//! Registration of the four SQL stores by name, for the `saas` config class.
//!
//! Each constructor reads the database URL from `[database]` (see
//! `DatabaseConfig::connection_url`: `DATABASE_URL`, else the `DB_*` variables, else SQLite
//! under the data dir) and takes the server's pool for that URL (`PluginContext::shared`), so
//! the four stores share one pool. The schema must be current: with pending migrations start-up fails and
//! names `openhands migrate up`, unless `database.migrate_on_start` applies them here.

use crate::database::{Database, PoolOptions};
use crate::{SqlConversationStore, SqlEventStore, SqlSecretsStore, SqlSettingsStore};
use openhands_core::config::Config;
use openhands_core::registry::{PluginContext, PluginError};
use openhands_core::shared::SharedResources;
use std::path::Path;
use std::sync::Arc;

/// The server's pool for its configured database: opened once per server (in `shared`) with
/// the schema checked, then handed to every store and to routes that query the database.
pub async fn server_database(
    shared: &SharedResources,
    config: &Config,
    data_dir: &Path,
) -> Result<Database, PluginError> {
    let database = &config.database;
    let url = database.connection_url(data_dir);
    shared
        .get_or_try_init(url.expose(), || async {
            if url.expose().starts_with("sqlite:") {
                std::fs::create_dir_all(data_dir).map_err(|e| {
                    PluginError(format!(
                        "creating the data dir {} for SQLite: {e}",
                        data_dir.display()
                    ))
                })?;
            }
            let db = Database::connect(url.expose(), PoolOptions::from(database))
                .await
                .map_err(|e| PluginError(e.to_string()))?;
            ensure_schema_current(&db, database.migrate_on_start).await?;
            Ok(db)
        })
        .await
}

/// The pool for a plugin constructor.
pub async fn database(ctx: &PluginContext) -> Result<Database, PluginError> {
    server_database(&ctx.shared, &ctx.config, &ctx.data_dir).await
}

/// Refuses a database with pending migrations, or applies them when configured to.
async fn ensure_schema_current(db: &Database, migrate: bool) -> Result<(), PluginError> {
    let failed = |e: sea_orm::DbErr| PluginError(format!("checking the database schema: {e}"));
    let pending = openhands_migrations::runner::pending(db.connection())
        .await
        .map_err(failed)?;
    if pending.is_empty() {
        return Ok(());
    }
    if !migrate {
        return Err(PluginError(format!(
            "the database has {} pending migration(s) ({}); run `openhands migrate up`, or set \
             database.migrate_on_start = true (OPENHANDS_DATABASE__MIGRATE_ON_START=true)",
            pending.len(),
            pending.join(", ")
        )));
    }
    openhands_migrations::runner::up(db.connection(), |name, took| {
        tracing::info!(
            migration = name,
            took_ms = took.as_millis() as u64,
            "migration applied"
        );
    })
    .await
    .map_err(failed)?;
    Ok(())
}

openhands_core::register_plugin!(
    openhands_core::extension::SettingsStore,
    "saas.sql_settings",
    "Settings in SQL (PostgreSQL or SQLite), per user and org, API keys sealed",
    |ctx| Ok(Arc::new(SqlSettingsStore::new(
        database(ctx).await?,
        ctx.cipher.clone()
    )))
);

openhands_core::register_plugin!(
    openhands_core::extension::SecretsStore,
    "saas.sql_secrets",
    "Custom secrets and git tokens in SQL, per user and org, values sealed",
    |ctx| Ok(Arc::new(SqlSecretsStore::new(
        database(ctx).await?,
        ctx.cipher.clone()
    )))
);

openhands_core::register_plugin!(
    openhands_core::extension::ConversationStore,
    "saas.sql_conversations",
    "Conversation metadata in SQL, per user and org",
    |ctx| Ok(Arc::new(SqlConversationStore::new(database(ctx).await?)))
);

openhands_core::register_plugin!(
    openhands_core::extension::EventStore,
    "saas.sql_events",
    "Append-only events in SQL",
    |ctx| Ok(Arc::new(SqlEventStore::new(database(ctx).await?)))
);
